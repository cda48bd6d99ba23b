
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * redis_cluster: checks ngx_http_identity_redis_cluster.c without nginx or
 * Redis.  With no argument, runs its checks and prints one line a failure
 * and a summary ("redis_cluster: N checks, M failed"); exits 1 if any
 * failed.  With "-k HEX...", prints the slot of each key (hex-encoded, so
 * that any bytes pass), one a line, for t/ to hold against a live Redis's
 * CLUSTER KEYSLOT.
 *
 * The replies the module parses are made as Redis makes them: RESP text
 * read by hiredis's own redisReader, so that the trees are hiredis's.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>

#include "ngx_http_identity_redis_cluster.h"
#include "ngx_stubs.h"


static ngx_uint_t  checks, failed;
static ngx_log_t   unit_log;


static void
check(int ok, const char *what)
{
    checks++;

    if (!ok) {
        failed++;
        fprintf(stderr, "not ok: %s\n", what);
    }
}


/* RESP text to a hiredis reply tree; NULL if hiredis refuses it */

static redisReply *
resp(const char *text, size_t len)
{
    void         *reply;
    redisReader  *reader;

    reader = redisReaderCreate();
    if (reader == NULL) {
        abort();
    }

    reply = NULL;

    if (redisReaderFeed(reader, text, len) != REDIS_OK
        || redisReaderGetReply(reader, &reply) != REDIS_OK)
    {
        reply = NULL;
    }

    redisReaderFree(reader);

    return reply;
}


/* one range of a CLUSTER SLOTS reply, its primary and a node id */

static size_t
range(char *p, long long start, long long end, const char *host,
    long long port)
{
    return sprintf(p, "*3\r\n:%lld\r\n:%lld\r\n*3\r\n$%zu\r\n%s\r\n:%lld\r\n"
                   "$40\r\n%040d\r\n", start, end, strlen(host), host, port,
                   0);
}


/* CLUSTER SLOTS of N ranges, given as RESP text after the array header */

static ngx_int_t
map_len(const char *body, size_t len, size_t n)
{
    ngx_int_t    rc;
    redisReply  *reply;
    static char  buf[1 << 21];

    n = sprintf(buf, "*%zu\r\n", n);
    ngx_memcpy(buf + n, body, len);
    n += len;

    reply = resp(buf, n);
    if (reply == NULL) {
        fprintf(stderr, "hiredis refused a test map\n");
        abort();
    }

    rc = ngx_http_identity_cluster_map(reply, &unit_log);
    freeReplyObject(reply);

    return rc;
}


static ngx_int_t
map(const char *body, size_t n)
{
    return map_len(body, strlen(body), n);
}


/* the three primaries of the maps below */

static ngx_int_t
map3(void)
{
    char  body[512], *p;

    p = body;
    p += range(p, 0, 5460, "127.0.0.1", 7000);
    p += range(p, 5461, 10922, "127.0.0.1", 7001);
    p += range(p, 10923, 16383, "127.0.0.1", 7002);

    return map(body, 3);
}


/* the port of the node KEY goes to; 0: none */

static in_port_t
port_of(const char *key)
{
    ngx_int_t  n;
    ngx_str_t  argv[2];

    argv[0].data = (u_char *) "GET";
    argv[0].len = 3;
    argv[1].data = (u_char *) key;
    argv[1].len = strlen(key);

    n = ngx_http_identity_cluster_route(2, argv);

    return (n < 0) ? 0 : ngx_http_identity_cluster_addr(n)->port;
}


static ngx_str_t *
addr_of(const char *key)
{
    ngx_int_t  n;
    ngx_str_t  argv[2];

    argv[0].data = (u_char *) "GET";
    argv[0].len = 3;
    argv[1].data = (u_char *) key;
    argv[1].len = strlen(key);

    n = ngx_http_identity_cluster_route(2, argv);

    return (n < 0) ? NULL : &ngx_http_identity_cluster_addr(n)->host;
}


static int
host_is(ngx_str_t *h, const char *want)
{
    return h && h->len == strlen(want)
           && ngx_strncmp(h->data, want, h->len) == 0;
}


/* ------------------------------------------------------------ key slots */

static void
check_key_slots(void)
{
    size_t      i;
    u_char      ff[300];
    ngx_int_t   slot;
    ngx_str_t   argv[5];
    char        what[128];

    /*
     * Obtained from Redis 7.0.15 (Debian 12), a redis-server started with
     * --cluster-enabled yes, asked CLUSTER KEYSLOT over a raw socket for
     * each key; t/64-redis-cluster-slots.t asks it again
     */

    static struct {
        const char  *key;
        size_t       len;
        ngx_int_t    slot;
    } keys[] = {
        { "", 0, 0 },
        { "foo", 3, 12182 },
        { "bar", 3, 5061 },
        { "hello", 5, 866 },
        { "123456789", 9, 12739 },              /* CRC16/XMODEM's 0x31c3 */
        { "{user1000}.following", 20, 3443 },
        { "{user1000}.followers", 20, 3443 },
        { "user1000", 8, 3443 },
        { "foo{}{bar}", 10, 8363 },             /* "{}": the whole key */
        { "foo{{bar}}zap", 13, 4015 },          /* the tag is "{bar" */
        { "foo{bar}{zap}", 13, 5061 },          /* the first tag: "bar" */
        { "{}", 2, 15257 },
        { "{", 1, 4092 },
        { "}", 1, 12090 },
        { "}{", 2, 12793 },
        { "{}foo", 5, 9500 },
        { "foo{", 4, 7673 },
        { "a{b", 3, 13340 },
        { "}{a}", 4, 15495 },
        { "{a}", 3, 15495 },
        { "a", 1, 15495 },
        { "\0", 1, 0 },
        { "\xff\0{\x01}z", 6, 4129 },
        { "{\0}", 3, 0 },
        { "\0{}\xff", 4, 2060 },
        { "{identity}:session:0123456789abcdef", 35, 2653 },
        { "{identity}:", 11, 2653 },
        { "identity", 8, 2653 },
        { "{{}}", 4, 4092 },                    /* the tag is "{" */
        { "{{a}}", 5, 10276 },
        { "x{a}y{b}z", 9, 15495 },
    };

    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        slot = ngx_http_identity_cluster_key_slot((u_char *) keys[i].key,
                                                  keys[i].len);
        snprintf(what, sizeof(what), "key_slot of key %zu: %ld, not %ld", i,
                 (long) slot, (long) keys[i].slot);
        check(slot == keys[i].slot, what);
    }

    ngx_memset(ff, 0xff, sizeof(ff));
    check(ngx_http_identity_cluster_key_slot(ff, sizeof(ff)) == 6874,
          "key_slot of 300 bytes 0xff");

    /* a command's slot: KEYS[1] of a script, else its first argument */

    argv[0].data = (u_char *) "EVALSHA";
    argv[0].len = 7;
    argv[1].data = (u_char *) "0123";
    argv[1].len = 4;
    argv[2].data = (u_char *) "1";
    argv[2].len = 1;
    argv[3].data = (u_char *) "foo";
    argv[3].len = 3;
    argv[4].data = (u_char *) "bar";
    argv[4].len = 3;

    check(ngx_http_identity_cluster_slot(5, argv) == 12182,
          "EVALSHA: KEYS[1]'s slot");
    check(ngx_http_identity_cluster_slot(3, argv) == 0,
          "EVALSHA without keys or arguments: slot 0");
    check(ngx_http_identity_cluster_slot(1, argv) == 0,
          "a command alone: slot 0");
    check(ngx_http_identity_cluster_slot(0, argv) == 0, "nothing: slot 0");

    argv[0].data = (u_char *) "eval";
    argv[0].len = 4;
    check(ngx_http_identity_cluster_slot(4, argv) == 12182,
          "eval in lower case is a script");

    argv[0].data = (u_char *) "DEL";
    argv[0].len = 3;
    check(ngx_http_identity_cluster_slot(2, argv)
          == ngx_http_identity_cluster_key_slot((u_char *) "0123", 4),
          "DEL: argv[1]'s slot");
}


/* ------------------------------------------------------------ maps */

static void
check_maps(void)
{
    char        *body, *p, host[32];
    size_t       i;
    redisReply  *r;

    body = malloc(1 << 21);
    if (body == NULL) {
        abort();
    }

    ngx_http_identity_cluster_init();

    check(port_of("foo") == 0, "no map: no node");
    check(map3() == NGX_OK, "a well-formed map");
    check(port_of("bar") == 7000 && port_of("hello") == 7000,
          "slots 0-5460 to 7000");
    check(port_of("{user1000}") == 7000, "a tag's slot");
    check(port_of("foo") == 7002, "slot 12182 to 7002");
    check(port_of("}{") == 7002, "slot 12793 to 7002");
    check(port_of("foo{") == 7001, "slot 7673 to 7001");

    /* each refused whole, the map before kept */

#define REFUSED_LEN(what, text, len, n)                                      \
    check(map_len(text, len, n) == NGX_ERROR, "refused: " what);             \
    check(port_of("foo") == 7002 && port_of("bar") == 7000,                  \
          "map kept after: " what)

#define REFUSED(what, text, n)                                               \
    REFUSED_LEN(what, text, sizeof(text) - 1, n)

#define REFUSED_BODY(what, text, n)                                          \
    check(map(text, n) == NGX_ERROR, "refused: " what);                      \
    check(port_of("foo") == 7002 && port_of("bar") == 7000,                  \
          "map kept after: " what)

    REFUSED("an empty array", "", 0);
    REFUSED("a nil range", "$-1\r\n", 1);
    REFUSED("a range that is a string", "$3\r\nabc\r\n", 1);
    REFUSED("a range of two", "*2\r\n:0\r\n:1\r\n", 1);
    REFUSED("start a string",
            "*3\r\n$1\r\n0\r\n:1\r\n*2\r\n$9\r\n127.0.0.1\r\n:1\r\n", 1);
    REFUSED("end a string",
            "*3\r\n:0\r\n$1\r\n1\r\n*2\r\n$9\r\n127.0.0.1\r\n:1\r\n", 1);
    REFUSED("primary not an array",
            "*3\r\n:0\r\n:1\r\n$9\r\n127.0.0.1\r\n", 1);
    REFUSED("primary of one element",
            "*3\r\n:0\r\n:1\r\n*1\r\n$9\r\n127.0.0.1\r\n", 1);
    REFUSED("host an integer", "*3\r\n:0\r\n:1\r\n*2\r\n:1\r\n:1\r\n", 1);
    REFUSED("host nil", "*3\r\n:0\r\n:1\r\n*2\r\n$-1\r\n:1\r\n", 1);
    REFUSED("port a string",
            "*3\r\n:0\r\n:1\r\n*2\r\n$9\r\n127.0.0.1\r\n$4\r\n7000\r\n", 1);
    REFUSED("host with a NUL",
            "*3\r\n:0\r\n:1\r\n*2\r\n$11\r\n127.0.0.1\0x\r\n:7000\r\n", 1);

#define REFUSED_RANGE(what, s, e, h, port)                                   \
    range(body, s, e, h, port);                                              \
    REFUSED_BODY(what, body, 1)

    REFUSED_RANGE("start > end", 10, 9, "127.0.0.1", 7000);
    REFUSED_RANGE("end 16384", 0, 16384, "127.0.0.1", 7000);
    REFUSED_RANGE("start -1", -1, 10, "127.0.0.1", 7000);
    REFUSED_RANGE("huge end", 0, 9223372036854775807LL, "127.0.0.1", 7000);
    REFUSED_RANGE("huge negative start", -9223372036854775807LL - 1, 0,
                  "127.0.0.1", 7000);
    REFUSED_RANGE("a hostname", 0, 100, "localhost", 7000);
    REFUSED_RANGE("unknown endpoint \"?\"", 0, 100, "?", 7000);
    REFUSED_RANGE("an empty host", 0, 100, "", 7000);
    REFUSED_RANGE("five octets", 0, 100, "127.0.0.1.5", 7000);
    REFUSED_RANGE("IPv6 in brackets", 0, 100, "[::1]", 7000);
    REFUSED_RANGE("a zone", 0, 100, "fe80::1%eth0", 7000);
    REFUSED_RANGE("port 0", 0, 100, "127.0.0.1", 0);
    REFUSED_RANGE("port 70000", 0, 100, "127.0.0.1", 70000);
    REFUSED_RANGE("port -1", 0, 100, "127.0.0.1", -1);
    REFUSED_RANGE("port 2^32 + 7000", 0, 100, "127.0.0.1", 4294974296LL);

    /* a bad range after good ones: nothing of the good ones is taken */

    p = body;
    p += range(p, 0, 100, "10.0.0.1", 7000);
    p += range(p, 101, 200, "10.0.0.2", 7000);
    p += range(p, 201, 300, "10.0.0.3", 0);
    REFUSED_BODY("a bad third range", body, 3);

    /* 65 distinct primaries: refused; 64: taken */

    p = body;
    for (i = 0; i < 65; i++) {
        sprintf(host, "10.1.0.%zu", i);
        p += range(p, i * 200, i * 200 + 199, host, 7000);
    }
    REFUSED_BODY("65 primaries", body, 65);

    p = body;
    for (i = 0; i < 64; i++) {
        sprintf(host, "10.1.0.%zu", i);
        p += range(p, i * 256, i * 256 + 255, host, 7000);
    }
    check(map(body, 64) == NGX_OK, "64 primaries");
    check(host_is(addr_of("foo"), "10.1.0.47"), "slot 12182 of 64 nodes");

    /*
     * Another 64 after them (the cluster's nodes all replaced, as on
     * Kubernetes): the entries of those that left are taken again
     */

    p = body;
    for (i = 0; i < 64; i++) {
        sprintf(host, "10.2.0.%zu", i);
        p += range(p, i * 256, i * 256 + 255, host, 7100);
    }
    check(map(body, 64) == NGX_OK, "64 new primaries after 64 old ones");
    check(host_is(addr_of("foo"), "10.2.0.47") && port_of("foo") == 7100,
          "slot 12182 of the new nodes");

    /* more ranges than slots */

    p = body;
    for (i = 0; i < NGX_HTTP_IDENTITY_CLUSTER_SLOTS + 1; i++) {
        p += range(p, 0, 0, "127.0.0.1", 7000);
    }
    check(map(body, NGX_HTTP_IDENTITY_CLUSTER_SLOTS + 1) == NGX_ERROR,
          "refused: 16385 ranges");

    /* Redis 7's longer node entries, replicas, IPv6; a partial map */

    p = body;
    p += sprintf(p, "*4\r\n:0\r\n:8191\r\n"
                 "*4\r\n$3\r\n::1\r\n:7000\r\n$2\r\nid\r\n*0\r\n"
                 "*3\r\n$9\r\n127.0.0.2\r\n:7000\r\n$2\r\nid\r\n");
    check(map(body, 1) == NGX_OK, "IPv6, a replica and metadata");
    check(host_is(addr_of("bar"), "::1") && port_of("bar") == 7000,
          "slot 5061 to [::1]:7000");
    check(port_of("foo") == 0, "slot 12182 not in a partial map");

    /* not an array at all */

    r = resp(":1\r\n", 4);
    check(ngx_http_identity_cluster_map(r, &unit_log) == NGX_ERROR,
          "refused: an integer");
    freeReplyObject(r);

    r = resp("-ERR This instance has cluster support disabled\r\n", 49);
    check(ngx_http_identity_cluster_map(r, &unit_log) == NGX_ERROR,
          "refused: an error");
    freeReplyObject(r);

    free(body);
}


/* ------------------------------------------------------------ redirects */

static ngx_int_t
redirect(const char *text, ngx_int_t slot, ngx_uint_t *ask)
{
    size_t                          n;
    ngx_int_t                       rc;
    redisReply                     *reply;
    ngx_http_identity_redis_addr_t  from;
    char                            buf[512];

    from.host.data = (u_char *) "127.0.0.9";
    from.host.len = 9;
    from.port = 7009;

    n = snprintf(buf, sizeof(buf), "%s\r\n", text);

    reply = resp(buf, n);
    if (reply == NULL) {
        abort();
    }

    *ask = 7;
    rc = ngx_http_identity_cluster_redirect(reply, slot, &from, ask);
    freeReplyObject(reply);

    return rc;
}


static void
check_redirects(void)
{
    char                             text[128];
    size_t                           i;
    ngx_int_t                        n;
    ngx_uint_t                       ask;
    ngx_http_identity_redis_addr_t  *a;

    ngx_http_identity_cluster_init();
    check(map3() == NGX_OK, "the three primaries again");

    n = redirect("-MOVED 12182 127.0.0.1:7001", 12182, &ask);
    check(n >= 0 && ask == 0, "MOVED is followed");
    check(n >= 0 && ngx_http_identity_cluster_addr(n)->port == 7001,
          "MOVED: to 7001");
    check(port_of("foo") == 7001, "MOVED: the map says so from now on");
    check(port_of("}{") == 7002, "MOVED: the other slots stay");

    n = redirect("-ASK 12182 127.0.0.1:7003", 12182, &ask);
    check(n >= 0 && ask == 1, "ASK is followed");
    check(n >= 0 && ngx_http_identity_cluster_addr(n)->port == 7003,
          "ASK: to 7003");
    check(port_of("foo") == 7001, "ASK: the map stays");

    n = redirect("-MOVED 12182 :7005", 12182, &ask);
    a = (n >= 0) ? ngx_http_identity_cluster_addr(n) : NULL;
    check(a && host_is(&a->host, "127.0.0.9") && a->port == 7005,
          "MOVED with an empty host: the server that answered");

    n = redirect("-MOVED 12182 ::1:7000", 12182, &ask);
    a = (n >= 0) ? ngx_http_identity_cluster_addr(n) : NULL;
    check(a && host_is(&a->host, "::1") && a->port == 7000,
          "MOVED to IPv6 as Redis writes it (no brackets)");

    n = redirect("-MOVED 12182 2001:db8::7:16379", 12182, &ask);
    a = (n >= 0) ? ngx_http_identity_cluster_addr(n) : NULL;
    check(a && host_is(&a->host, "2001:db8::7") && a->port == 16379,
          "MOVED to a longer IPv6 address");

    n = redirect("-MOVED 12182 127.0.0.1:7001", 12182, &ask);
    check(port_of("foo") == 7001, "MOVED back to 7001");

    /* a plain error, or no error: not a redirect */

    check(redirect("-ERR unknown command", 12182, &ask) == NGX_DECLINED,
          "ERR: not a redirect");
    check(redirect("-MOVED", 12182, &ask) == NGX_DECLINED,
          "MOVED alone: not a redirect");
    check(redirect("-MOVED ", 12182, &ask) == NGX_DECLINED,
          "\"MOVED \": not a redirect");
    check(redirect("-ASK ", 12182, &ask) == NGX_DECLINED,
          "\"ASK \": not a redirect");
    check(redirect("-MOVEDX 1 127.0.0.1:7000", 1, &ask) == NGX_DECLINED,
          "MOVEDX: not a redirect");
    check(redirect("-moved 12182 127.0.0.1:7000", 12182, &ask)
          == NGX_DECLINED, "lower case: not a redirect");
    check(redirect("+MOVED 12182 127.0.0.1:7000", 12182, &ask)
          == NGX_DECLINED, "a status: not a redirect");
    check(redirect(":12182", 12182, &ask) == NGX_DECLINED,
          "an integer: not a redirect");

    /* redirects not followed, the map untouched */

#define NOT_FOLLOWED(text, slot)                                             \
    check(redirect(text, slot, &ask) == NGX_ERROR, "not followed: " text);   \
    check(port_of("foo") == 7001, "map kept after: " text)

    NOT_FOLLOWED("-MOVED 12182 [::1]:7000", 12182);
    NOT_FOLLOWED("-MOVED 12182 127.0.0.1", 12182);
    NOT_FOLLOWED("-MOVED 12182 127.0.0.1:", 12182);
    NOT_FOLLOWED("-MOVED 12182 127.0.0.1:0", 12182);
    NOT_FOLLOWED("-MOVED 12182 127.0.0.1:65536", 12182);
    NOT_FOLLOWED("-MOVED 12182 127.0.0.1:-1", 12182);
    NOT_FOLLOWED("-MOVED 12182 127.0.0.1:99999999999999999999999", 12182);
    NOT_FOLLOWED("-MOVED 12182 127.0.0.1:7000 extra", 12182);
    NOT_FOLLOWED("-MOVED 12182 localhost:7000", 12182);
    NOT_FOLLOWED("-MOVED 12182 :", 12182);
    NOT_FOLLOWED("-MOVED 12182 ", 12182);
    NOT_FOLLOWED("-MOVED 12182", 12182);
    NOT_FOLLOWED("-MOVED  12182 127.0.0.1:7000", 12182);
    NOT_FOLLOWED("-MOVED -1 127.0.0.1:7000", 12182);
    NOT_FOLLOWED("-MOVED 16384 127.0.0.1:7000", 12182);
    NOT_FOLLOWED("-MOVED 99999999999999999999999 127.0.0.1:7000", 12182);
    NOT_FOLLOWED("-MOVED 0x2f8e 127.0.0.1:7000", 12182);
    NOT_FOLLOWED("-ASK 12182 garbage", 12182);
    NOT_FOLLOWED("-ASK 12182 999.1.1.1:7000", 12182);

    /* a server that names another slot than the command's poisons none */

    NOT_FOLLOWED("-MOVED 5061 10.9.9.9:7000", 12182);
    check(port_of("bar") == 7000, "slot 5061 untouched by a stray MOVED");

    /*
     * A server that names ever new addresses: 64 nodes at most are known
     * until the map is asked again, which forgets those it does not name
     */

    for (i = 0; i < 80; i++) {
        sprintf(text, "-ASK 12182 10.3.%zu.%zu:7000", i / 256, i % 256);
        n = redirect(text, 12182, &ask);

        if (n == NGX_ERROR) {
            break;
        }
    }

    /* 3 mapped, then 7003 by ASK, :7005, ::1 and 2001:db8::7 */
    check(i == 64 - 7, "ASK to new addresses: up to 64 nodes known");
    check(port_of("foo") == 7001, "map kept while the table is full");

    check(map3() == NGX_OK, "the map asked again");
    n = redirect("-MOVED 12182 10.4.0.1:7000", 12182, &ask);
    check(n >= 0, "a new node after the map was asked again");
    check(host_is(addr_of("foo"), "10.4.0.1"), "and the slot goes there");

    /* the map again: the nodes it names keep their index */

    n = ngx_http_identity_cluster_route(0, NULL);
    check(map3() == NGX_OK, "the map a third time");
    check(ngx_http_identity_cluster_route(0, NULL) == n,
          "the node of slot 0 keeps its index");
}


static int
keyslots(int argc, char **argv)
{
    int      i;
    size_t   len, j;
    u_char  *key;
    unsigned  c;

    for (i = 0; i < argc; i++) {
        len = strlen(argv[i]) / 2;
        key = malloc(len + 1);
        if (key == NULL) {
            return 1;
        }

        for (j = 0; j < len; j++) {
            if (sscanf(&argv[i][2 * j], "%2x", &c) != 1) {
                fprintf(stderr, "not hex: \"%s\"\n", argv[i]);
                return 2;
            }

            key[j] = (u_char) c;
        }

        printf("%ld\n", (long) ngx_http_identity_cluster_key_slot(key, len));
        free(key);
    }

    return 0;
}


int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "-k") == 0) {
        return keyslots(argc - 2, argv + 2);
    }

    if (argc > 1) {
        fprintf(stderr, "usage: redis_cluster [-k HEX...]\n");
        return 2;
    }

    unit_log.log_level = NGX_LOG_DEBUG_ALL;

    check_key_slots();
    check_maps();
    check_redirects();

    printf("redis_cluster: %lu checks, %lu failed\n",
           (unsigned long) checks, (unsigned long) failed);

    return failed ? 1 : 0;
}
