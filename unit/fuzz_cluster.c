
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * libFuzzer target: any bytes as what a Redis Cluster node answers,
 * through ngx_http_identity_redis_cluster.c (make fuzz).  The first two
 * bytes are the slot of the command a redirect answers; the rest is read
 * by hiredis's own redisReader twice: once as the text of an error reply
 * ("-" before it: a MOVED or ASK), once as RESP, each reply taken as
 * CLUSTER SLOTS and as a redirect, its strings as a command to route.
 *
 * After each input, the map must hold: every slot empty or on a known node
 * whose address is a numeric IP and a port, and at most 64 nodes known.
 * The file is included, not linked, to see its tables.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_identity_redis_cluster.c"
#include "ngx_stubs.h"


static ngx_log_t  fuzz_log;


static void
ngx_http_identity_fuzz_invariants(void)
{
    ngx_uint_t                         i, n;
    ngx_http_identity_cluster_node_t  *nd;

    if (ngx_http_identity_cluster_nnodes > NGX_HTTP_IDENTITY_CLUSTER_NODES) {
        abort();
    }

    for (i = 0; i < NGX_HTTP_IDENTITY_CLUSTER_SLOTS; i++) {
        n = ngx_http_identity_cluster_slots[i];

        if (n == 0) {
            continue;
        }

        n--;

        if (n >= ngx_http_identity_cluster_nnodes
            || !(ngx_http_identity_cluster_live & ((uint64_t) 1 << n)))
        {
            abort();
        }
    }

    for (i = 0; i < ngx_http_identity_cluster_nnodes; i++) {
        nd = &ngx_http_identity_cluster_nodes[i];

        if (nd->addr.port == 0 || nd->addr.host.data != nd->host
            || nd->host[nd->addr.host.len] != '\0'
            || ngx_http_identity_rconn_numeric(nd->host, nd->addr.host.len)
               != NGX_OK)
        {
            abort();
        }
    }
}


static void
ngx_http_identity_fuzz_reply(redisReply *reply, ngx_int_t slot)
{
    size_t                           i;
    ngx_int_t                        n;
    ngx_str_t                        argv[8];
    ngx_uint_t                       ask;
    ngx_http_identity_redis_addr_t   from;

    from.host.data = (u_char *) "127.0.0.1";
    from.host.len = 9;
    from.port = 7000;

    (void) ngx_http_identity_cluster_map(reply, &fuzz_log);

    ask = 7;
    n = ngx_http_identity_cluster_redirect(reply, slot, &from, &ask);

    if (n >= 0) {
        if (ask > 1 || n >= (ngx_int_t) ngx_http_identity_cluster_nnodes) {
            abort();
        }

        if (!ask && ngx_http_identity_cluster_slots[slot] != n + 1) {
            abort();
        }
    }

    if (reply->type != REDIS_REPLY_ARRAY) {
        return;
    }

    for (i = 0; i < reply->elements && i < 8; i++) {
        if (reply->element[i]->type != REDIS_REPLY_STRING) {
            return;
        }

        argv[i].data = (u_char *) reply->element[i]->str;
        argv[i].len = reply->element[i]->len;
    }

    n = ngx_http_identity_cluster_route(i, argv);

    if (n != NGX_DECLINED
        && (n < 0 || n >= (ngx_int_t) ngx_http_identity_cluster_nnodes))
    {
        abort();
    }
}


/*
 * hiredis 0.14's reader allocates an array as soon as it reads its count:
 * "*2000000000" asks for 16 GB before any element came.  That is the
 * reader's (and every connection's, not only a cluster's), so the count
 * is bounded here, to fuzz what the module does with what it is given.
 */

static ngx_uint_t
ngx_http_identity_fuzz_huge(const char *text, size_t len)
{
    size_t  i, n;

    for (i = 0; i < len; i++) {
        if (text[i] != '*') {
            continue;
        }

        for (n = 0, i++; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
            n = n * 10 + (text[i] - '0');

            if (n > 65536) {
                return 1;
            }
        }
    }

    return 0;
}


/* each reply the reader makes of TEXT */

static void
ngx_http_identity_fuzz_read(const char *text, size_t len, ngx_int_t slot)
{
    void         *reply;
    ngx_uint_t    i;
    redisReader  *reader;

    if (ngx_http_identity_fuzz_huge(text, len)) {
        return;
    }

    reader = redisReaderCreate();
    if (reader == NULL) {
        abort();
    }

    if (redisReaderFeed(reader, text, len) == REDIS_OK) {
        for (i = 0; i < 16; i++) {
            reply = NULL;

            if (redisReaderGetReply(reader, &reply) != REDIS_OK
                || reply == NULL)
            {
                break;
            }

            ngx_http_identity_fuzz_reply(reply, slot);
            freeReplyObject(reply);
        }
    }

    redisReaderFree(reader);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char        *buf;
    ngx_int_t    slot;

    static char  base[] =
        "*3\r\n"
        "*3\r\n:0\r\n:5460\r\n*2\r\n$9\r\n127.0.0.1\r\n:7000\r\n"
        "*3\r\n:5461\r\n:10922\r\n*2\r\n$9\r\n127.0.0.1\r\n:7001\r\n"
        "*3\r\n:10923\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:7002\r\n";

    if (size < 2) {
        return 0;
    }

    fuzz_log.log_level = NGX_LOG_DEBUG_ALL;

    slot = ((data[0] << 8) | data[1]) & (NGX_HTTP_IDENTITY_CLUSTER_SLOTS - 1);
    data += 2;
    size -= 2;

    /* a worker that has a map of three primaries */

    ngx_http_identity_cluster_init();
    ngx_http_identity_fuzz_read(base, sizeof(base) - 1, slot);

    /* the bytes as an error: "MOVED ...", "ASK ..." */

    buf = malloc(size + 3);
    if (buf == NULL) {
        abort();
    }

    buf[0] = '-';
    ngx_memcpy(buf + 1, data, size);
    buf[size + 1] = '\r';
    buf[size + 2] = '\n';

    ngx_http_identity_fuzz_read(buf, size + 3, slot);
    free(buf);

    /* the bytes as RESP: CLUSTER SLOTS, commands, errors */

    ngx_http_identity_fuzz_read((const char *) data, size, slot);

    ngx_http_identity_fuzz_invariants();

    return 0;
}
