
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * Where a command goes in a Redis Cluster: the worker's map of the 16384
 * slots to the primaries that serve them, learnt from CLUSTER SLOTS and
 * corrected by MOVED, and the slot of a command's key (its hash tag's, as
 * the cluster computes it).  No connection here: redis.c holds one per
 * primary, by the index this file gives it.
 *
 * A command's key is its first: KEYS[1] of a script, else argv[1].  A
 * script that declares no key is routed by its first argument, the key
 * prefix of the shard it works in, which ends with the shard's hash tag
 * (store_cmd.c): every key such a script touches is in that slot.  A
 * command without any argument goes where slot 0 does: any node answers
 * it.
 *
 * What the servers say is not trusted further than needed: an address is
 * taken only if it is a numeric IP and a port, a slot only in range, and
 * no more than NGX_HTTP_IDENTITY_CLUSTER_NODES primaries are known at a
 * time; a map or a redirect that breaks these is refused whole, and a
 * redirect only for the slot of the command it answers.
 *
 * A node stays known while the map names it, or a redirect did since the
 * map was last replaced; the entry of one that is no longer known is
 * given to the next new address, so that a cluster whose nodes change
 * over the worker's life (or a server that names ever new ones) never
 * fills the table for good.  redis.c sees that an index's address changed
 * (ngx_http_identity_cluster_addr) and connects anew.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>

#include "ngx_http_identity_redis_cluster.h"
#include "ngx_http_identity_redis_conn.h"


typedef struct {
    ngx_http_identity_redis_addr_t  addr;
    u_char                          host[NGX_SOCKADDR_STRLEN + 1];
} ngx_http_identity_cluster_node_t;


/* an address as a CLUSTER SLOTS reply holds it, while the map is checked */

typedef struct {
    u_char                         *host;
    size_t                          len;
    ngx_int_t                       port;
} ngx_http_identity_cluster_seen_t;


static ngx_int_t ngx_http_identity_cluster_valid(u_char *host, size_t len,
    ngx_int_t port);
static ngx_int_t ngx_http_identity_cluster_find(u_char *host, size_t len,
    ngx_int_t port);
static ngx_uint_t ngx_http_identity_cluster_put(u_char *host, size_t len,
    ngx_int_t port, uint64_t taken);
static ngx_int_t ngx_http_identity_cluster_node(u_char *host, size_t len,
    ngx_int_t port);


/* by slot, the node's index + 1; 0: not known */

static u_char                            ngx_http_identity_cluster_slots[
                                             NGX_HTTP_IDENTITY_CLUSTER_SLOTS];
static ngx_http_identity_cluster_node_t  ngx_http_identity_cluster_nodes[
                                             NGX_HTTP_IDENTITY_CLUSTER_NODES];

/* the entries ever written; bit i: node i is known (mapped or redirected) */
static ngx_uint_t                        ngx_http_identity_cluster_nnodes;
static uint64_t                          ngx_http_identity_cluster_live;


void
ngx_http_identity_cluster_init(void)
{
    ngx_memzero(ngx_http_identity_cluster_slots,
                sizeof(ngx_http_identity_cluster_slots));
    ngx_http_identity_cluster_nnodes = 0;
    ngx_http_identity_cluster_live = 0;
}


/* CRC16-CCITT (XModem) of the key, or of its hash tag: the cluster's slot */

ngx_int_t
ngx_http_identity_cluster_key_slot(u_char *key, size_t len)
{
    u_char      *open, *close;
    uint16_t     crc;
    ngx_uint_t   i;

    open = ngx_strlchr(key, key + len, '{');

    if (open) {
        close = ngx_strlchr(open + 1, key + len, '}');

        if (close && close > open + 1) {
            key = open + 1;
            len = close - key;
        }
    }

    crc = 0;

    while (len--) {
        crc ^= (uint16_t) (*key++ << 8);

        for (i = 0; i < 8; i++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }

    return crc & (NGX_HTTP_IDENTITY_CLUSTER_SLOTS - 1);
}


/* the slot of a command: its key's; 0 for a command without arguments */

ngx_int_t
ngx_http_identity_cluster_slot(ngx_uint_t argc, ngx_str_t *argv)
{
    ngx_uint_t  k;

    /* a script's KEYS[1], or else its ARGV[1]: the key prefix */

    k = (argc && argv[0].len >= 4
         && ngx_strncasecmp(argv[0].data, (u_char *) "EVAL", 4) == 0)
        ? 3 : 1;

    if (k >= argc) {
        return 0;
    }

    return ngx_http_identity_cluster_key_slot(argv[k].data, argv[k].len);
}


/* the node of the command's key's slot; NGX_DECLINED: not known yet */

ngx_int_t
ngx_http_identity_cluster_route(ngx_uint_t argc, ngx_str_t *argv)
{
    ngx_int_t  slot;

    slot = ngx_http_identity_cluster_slot(argc, argv);

    if (ngx_http_identity_cluster_slots[slot] == 0) {
        return NGX_DECLINED;
    }

    return ngx_http_identity_cluster_slots[slot] - 1;
}


ngx_http_identity_redis_addr_t *
ngx_http_identity_cluster_addr(ngx_uint_t n)
{
    return &ngx_http_identity_cluster_nodes[n].addr;
}


/*
 * How many entries were ever written (0 to n - 1 are addresses of
 * primaries the maps or redirects named; one a map no longer names may
 * have been given to another since)
 */

ngx_uint_t
ngx_http_identity_cluster_known(void)
{
    return ngx_http_identity_cluster_nnodes;
}


/*
 * CLUSTER SLOTS: [[start, end, [ip, port, id, ...], replica...], ...].
 * The map is replaced whole, or kept if the reply is not one: it is read
 * twice, checked first, then taken, so that a refused one leaves no node
 * behind either.
 */

ngx_int_t
ngx_http_identity_cluster_map(redisReply *reply, ngx_log_t *log)
{
    u_char                            map[NGX_HTTP_IDENTITY_CLUSTER_SLOTS];
    uint64_t                          taken;
    ngx_int_t                         port;
    ngx_int_t                         node[NGX_HTTP_IDENTITY_CLUSTER_NODES];
    ngx_uint_t                        i, j, nseen, covered;
    long long                         start, end;
    redisReply                       *range, *primary;
    ngx_http_identity_cluster_seen_t  seen[NGX_HTTP_IDENTITY_CLUSTER_NODES];

    /* no sane map has more ranges than slots */

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements > NGX_HTTP_IDENTITY_CLUSTER_SLOTS)
    {
        goto invalid;
    }

    nseen = 0;
    covered = 0;

    for (i = 0; i < reply->elements; i++) {
        range = reply->element[i];

        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3
            || range->element[0]->type != REDIS_REPLY_INTEGER
            || range->element[1]->type != REDIS_REPLY_INTEGER
            || range->element[2]->type != REDIS_REPLY_ARRAY
            || range->element[2]->elements < 2
            || range->element[2]->element[0]->type != REDIS_REPLY_STRING
            || range->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
        {
            goto invalid;
        }

        start = range->element[0]->integer;
        end = range->element[1]->integer;
        primary = range->element[2];

        if (start < 0 || end < start
            || end >= NGX_HTTP_IDENTITY_CLUSTER_SLOTS
            || primary->element[1]->integer <= 0
            || primary->element[1]->integer > 65535)
        {
            goto invalid;
        }

        port = (ngx_int_t) primary->element[1]->integer;

        if (ngx_http_identity_cluster_valid((u_char *) primary->element[0]->str,
                                            primary->element[0]->len, port)
            != NGX_OK)
        {
            goto invalid;
        }

        for (j = 0; j < nseen; j++) {
            if (seen[j].port == port && seen[j].len == primary->element[0]->len
                && ngx_strncmp(seen[j].host, primary->element[0]->str,
                               seen[j].len) == 0)
            {
                break;
            }
        }

        if (j == nseen) {
            if (nseen == NGX_HTTP_IDENTITY_CLUSTER_NODES) {
                goto invalid;
            }

            seen[nseen].host = (u_char *) primary->element[0]->str;
            seen[nseen].len = primary->element[0]->len;
            seen[nseen].port = port;
            nseen++;
        }

        covered += (ngx_uint_t) (end - start + 1);
    }

    if (covered == 0) {
        goto invalid;
    }

    /* the nodes already known keep their index, new ones take free ones */

    taken = 0;

    for (j = 0; j < nseen; j++) {
        node[j] = ngx_http_identity_cluster_find(seen[j].host, seen[j].len,
                                                 seen[j].port);
        if (node[j] != NGX_DECLINED) {
            taken |= (uint64_t) 1 << node[j];
        }
    }

    for (j = 0; j < nseen; j++) {
        if (node[j] == NGX_DECLINED) {
            node[j] = ngx_http_identity_cluster_put(seen[j].host, seen[j].len,
                                                    seen[j].port, taken);
            taken |= (uint64_t) 1 << node[j];
        }
    }

    ngx_memzero(map, sizeof(map));

    for (i = 0; i < reply->elements; i++) {
        range = reply->element[i];
        primary = range->element[2];

        for (j = 0; j < nseen; j++) {
            if (seen[j].port == primary->element[1]->integer
                && seen[j].len == primary->element[0]->len
                && ngx_strncmp(seen[j].host, primary->element[0]->str,
                               seen[j].len) == 0)
            {
                break;
            }
        }

        start = range->element[0]->integer;
        end = range->element[1]->integer;

        ngx_memset(&map[start], (int) node[j] + 1, (size_t) (end - start + 1));
    }

    ngx_memcpy(ngx_http_identity_cluster_slots, map, sizeof(map));
    ngx_http_identity_cluster_live = taken;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "identity: redis cluster map: %ui slots, %ui nodes",
                   covered, nseen);

    return NGX_OK;

invalid:

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "identity: redis cluster: CLUSTER SLOTS answered no map "
                  "of numeric addresses (at most %d primaries)",
                  NGX_HTTP_IDENTITY_CLUSTER_NODES);

    return NGX_ERROR;
}


/*
 * "MOVED SLOT HOST:PORT" (the slot is another node's now: the map says so
 * from now on) or "ASK SLOT HOST:PORT" (this command only, during a
 * migration), for the command of slot SLOT.  An empty HOST is the server
 * that answered; Redis writes an IPv6 address without brackets.  Answers
 * the node to send to; NGX_DECLINED: not a redirect.
 */

ngx_int_t
ngx_http_identity_cluster_redirect(redisReply *reply, ngx_int_t slot,
    ngx_http_identity_redis_addr_t *from, ngx_uint_t *ask)
{
    u_char     *p, *last, *colon, *host;
    size_t      len;
    ngx_int_t   moved, port, node;

    if (reply->type != REDIS_REPLY_ERROR) {
        return NGX_DECLINED;
    }

    p = (u_char *) reply->str;
    last = p + reply->len;

    if (reply->len > 6 && ngx_strncmp(p, "MOVED ", 6) == 0) {
        *ask = 0;
        p += 6;

    } else if (reply->len > 4 && ngx_strncmp(p, "ASK ", 4) == 0) {
        *ask = 1;
        p += 4;

    } else {
        return NGX_DECLINED;
    }

    host = ngx_strlchr(p, last, ' ');
    if (host == NULL) {
        return NGX_ERROR;
    }

    moved = ngx_atoi(p, host - p);
    host++;

    /* the port follows the last colon: an IPv6 address has more */

    colon = NULL;

    for (p = host; p < last; p++) {
        if (*p == ':') {
            colon = p;
        }
    }

    /* a server names another slot than the command's: not believed */

    if (moved != slot || colon == NULL) {
        return NGX_ERROR;
    }

    port = ngx_atoi(colon + 1, last - colon - 1);
    len = colon - host;

    if (len == 0) {
        host = from->host.data;
        len = from->host.len;
    }

    node = ngx_http_identity_cluster_node(host, len, port);

    if (node == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (!*ask) {
        ngx_http_identity_cluster_slots[slot] = (u_char) (node + 1);
    }

    return node;
}


/* an address a node may have: a numeric IP and a port */

static ngx_int_t
ngx_http_identity_cluster_valid(u_char *host, size_t len, ngx_int_t port)
{
    if (port <= 0 || port > 65535 || len == 0 || len > NGX_SOCKADDR_STRLEN
        || ngx_http_identity_rconn_numeric(host, len) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the entry holding HOST:PORT, known or not; NGX_DECLINED: none */

static ngx_int_t
ngx_http_identity_cluster_find(u_char *host, size_t len, ngx_int_t port)
{
    ngx_uint_t                         i;
    ngx_http_identity_cluster_node_t  *nd;

    for (i = 0; i < ngx_http_identity_cluster_nnodes; i++) {
        nd = &ngx_http_identity_cluster_nodes[i];

        if (nd->addr.port == port && nd->addr.host.len == len
            && ngx_strncmp(nd->host, host, len) == 0)
        {
            return i;
        }
    }

    return NGX_DECLINED;
}


/* HOST:PORT written into the first entry that TAKEN leaves; there is one */

static ngx_uint_t
ngx_http_identity_cluster_put(u_char *host, size_t len, ngx_int_t port,
    uint64_t taken)
{
    ngx_uint_t                         i;
    ngx_http_identity_cluster_node_t  *nd;

    for (i = 0; taken & ((uint64_t) 1 << i); i++) { /* void */ }

    nd = &ngx_http_identity_cluster_nodes[i];

    ngx_memcpy(nd->host, host, len);
    nd->host[len] = '\0';
    nd->addr.host.data = nd->host;
    nd->addr.host.len = len;
    nd->addr.port = (in_port_t) port;

    if (i >= ngx_http_identity_cluster_nnodes) {
        ngx_http_identity_cluster_nnodes = i + 1;
    }

    return i;
}


/* the index of the node a redirect names, known from now on */

static ngx_int_t
ngx_http_identity_cluster_node(u_char *host, size_t len, ngx_int_t port)
{
    ngx_int_t  i;

    if (ngx_http_identity_cluster_valid(host, len, port) != NGX_OK) {
        return NGX_ERROR;
    }

    i = ngx_http_identity_cluster_find(host, len, port);

    if (i == NGX_DECLINED) {
        if (~ngx_http_identity_cluster_live == 0) {
            return NGX_ERROR;
        }

        i = ngx_http_identity_cluster_put(host, len, port,
                                          ngx_http_identity_cluster_live);
    }

    ngx_http_identity_cluster_live |= (uint64_t) 1 << i;

    return i;
}
