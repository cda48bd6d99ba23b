
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_CACHE_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_CACHE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"


/*
 * a session's key in the cache, as in Redis: the first 128 bits of its
 * cookie's SHA-256 in hex (NGX_HTTP_IDENTITY_SESSION_KEY_LEN)
 */
#define NGX_HTTP_IDENTITY_CACHE_KEY_LEN  32

/* the node's id, hex, made once per shared zone */
#define NGX_HTTP_IDENTITY_NODE_ID_LEN    16


/* what a hit gives back; a miss gives only seq, for the put that follows */

typedef struct {
    ngx_str_t                        value;       /* copied into the pool */
    time_t                           last_active;
    ngx_uint_t                       seq;
} ngx_http_identity_cache_entry_t;


char *ngx_http_identity_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

ngx_int_t ngx_http_identity_cache_get(ngx_http_identity_cache_t *cache,
    ngx_pool_t *pool, u_char *key, ngx_http_identity_cache_entry_t *e);
void ngx_http_identity_cache_put(ngx_http_identity_cache_t *cache,
    u_char *key, ngx_str_t *value, time_t deadline, time_t last_active,
    ngx_uint_t seq);
void ngx_http_identity_cache_touch(ngx_http_identity_cache_t *cache,
    u_char *key, time_t last_active);
void ngx_http_identity_cache_evict(ngx_http_identity_cache_t *cache,
    u_char *key);

/* the node: its subscription's state, kept with the cache it guards */
void ngx_http_identity_cache_flush(ngx_http_identity_cache_t *cache);
void ngx_http_identity_cache_lease(ngx_http_identity_cache_t *cache,
    ngx_msec_t until);
ngx_uint_t ngx_http_identity_cache_owner(ngx_http_identity_cache_t *cache,
    ngx_msec_t stale, ngx_uint_t release);
ngx_str_t *ngx_http_identity_cache_node_id(ngx_http_identity_cache_t *cache);

/* ngx_current_msec's clock, read now: leases are measured with it */
ngx_msec_t ngx_http_identity_cache_clock(void);


#endif /* _NGX_HTTP_IDENTITY_CACHE_H_INCLUDED_ */
