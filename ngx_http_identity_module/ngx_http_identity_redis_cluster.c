
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
 * prefix, which in a cluster has a hash tag (module.c checks), so that
 * every key the module writes is in the prefix's slot.
 *
 * What the servers say is not trusted further than needed: an address is
 * taken only if it is a numeric IP and a port, a slot only in range, and
 * no more than NGX_HTTP_IDENTITY_CLUSTER_NODES primaries are ever known;
 * a map or a redirect that breaks these is refused whole.
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


static ngx_int_t ngx_http_identity_cluster_node(u_char *host, size_t len,
    ngx_int_t port);


/* by slot, the node's index + 1; 0: not known */

static u_char                            ngx_http_identity_cluster_slots[
                                             NGX_HTTP_IDENTITY_CLUSTER_SLOTS];
static ngx_http_identity_cluster_node_t  ngx_http_identity_cluster_nodes[
                                             NGX_HTTP_IDENTITY_CLUSTER_NODES];
static ngx_uint_t                        ngx_http_identity_cluster_nnodes;


void
ngx_http_identity_cluster_init(void)
{
    ngx_memzero(ngx_http_identity_cluster_slots,
                sizeof(ngx_http_identity_cluster_slots));
    ngx_http_identity_cluster_nnodes = 0;
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


/* the node of the command's key's slot; NGX_DECLINED: not known yet */

ngx_int_t
ngx_http_identity_cluster_route(ngx_uint_t argc, ngx_str_t *argv)
{
    ngx_int_t   slot;
    ngx_uint_t  k;

    if (argc < 2) {
        return ngx_http_identity_cluster_nnodes ? 0 : NGX_DECLINED;
    }

    /* a script's KEYS[1], or else its ARGV[1]: the key prefix */

    k = (argv[0].len >= 4
         && ngx_strncasecmp(argv[0].data, (u_char *) "EVAL", 4) == 0)
        ? 3 : 1;

    if (k >= argc) {
        return NGX_DECLINED;
    }

    slot = ngx_http_identity_cluster_key_slot(argv[k].data, argv[k].len);

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


/* how many primaries the maps named so far */

ngx_uint_t
ngx_http_identity_cluster_known(void)
{
    return ngx_http_identity_cluster_nnodes;
}


/*
 * CLUSTER SLOTS: [[start, end, [ip, port, id, ...], replica...], ...].
 * The map is replaced whole, or kept if the reply is not one.
 */

ngx_int_t
ngx_http_identity_cluster_map(redisReply *reply, ngx_log_t *log)
{
    u_char       map[NGX_HTTP_IDENTITY_CLUSTER_SLOTS];
    ngx_int_t    node;
    ngx_uint_t   i, covered;
    long long    start, end;
    redisReply  *range, *primary;

    if (reply->type != REDIS_REPLY_ARRAY) {
        goto invalid;
    }

    ngx_memzero(map, sizeof(map));
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
            || end >= NGX_HTTP_IDENTITY_CLUSTER_SLOTS)
        {
            goto invalid;
        }

        node = ngx_http_identity_cluster_node(
                   (u_char *) primary->element[0]->str,
                   primary->element[0]->len,
                   (ngx_int_t) primary->element[1]->integer);

        if (node == NGX_ERROR) {
            goto invalid;
        }

        ngx_memset(&map[start], (int) node + 1, (size_t) (end - start + 1));
        covered += (ngx_uint_t) (end - start + 1);
    }

    if (covered == 0) {
        goto invalid;
    }

    ngx_memcpy(ngx_http_identity_cluster_slots, map, sizeof(map));

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "identity: redis cluster map: %ui slots, %ui nodes",
                   covered, ngx_http_identity_cluster_nnodes);

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
 * migration).  An empty HOST is the server that answered.  Answers the
 * node to send to; NGX_DECLINED: not a redirect.
 */

ngx_int_t
ngx_http_identity_cluster_redirect(redisReply *reply,
    ngx_http_identity_redis_addr_t *from, ngx_uint_t *ask)
{
    u_char     *p, *last, *colon, *host;
    size_t      len;
    ngx_int_t   slot, port, node;

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

    slot = ngx_atoi(p, host - p);
    host++;

    /* the port follows the last colon: an IPv6 address has more */

    colon = NULL;

    for (p = host; p < last; p++) {
        if (*p == ':') {
            colon = p;
        }
    }

    if (slot == NGX_ERROR || slot >= NGX_HTTP_IDENTITY_CLUSTER_SLOTS
        || colon == NULL)
    {
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


/* the index of the node at HOST:PORT, known from now on if it was not */

static ngx_int_t
ngx_http_identity_cluster_node(u_char *host, size_t len, ngx_int_t port)
{
    ngx_uint_t                         i;
    ngx_http_identity_cluster_node_t  *nd;

    if (port <= 0 || port > 65535 || len == 0 || len > NGX_SOCKADDR_STRLEN
        || ngx_http_identity_rconn_numeric(host, len) != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < ngx_http_identity_cluster_nnodes; i++) {
        nd = &ngx_http_identity_cluster_nodes[i];

        if (nd->addr.port == port && nd->addr.host.len == len
            && ngx_strncmp(nd->host, host, len) == 0)
        {
            return i;
        }
    }

    if (i == NGX_HTTP_IDENTITY_CLUSTER_NODES) {
        return NGX_ERROR;
    }

    nd = &ngx_http_identity_cluster_nodes[i];

    ngx_memcpy(nd->host, host, len);
    nd->host[len] = '\0';
    nd->addr.host.data = nd->host;
    nd->addr.host.len = len;
    nd->addr.port = (in_port_t) port;

    ngx_http_identity_cluster_nnodes++;

    return i;
}
