
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_STORE_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_module.h"
#include "ngx_http_identity_redis.h"


#define NGX_HTTP_IDENTITY_ENDPOINT_HASH_LEN  16


/*
 * The session store: the only code that knows the Redis key layout.  Each
 * call either returns NGX_ERROR (Redis unavailable: answer 503) or NGX_OK,
 * and then ctx->resume(r) is called on the loop once ctx holds the answer
 * (ctx->found, ctx->redis_error and the record).
 */

#define NGX_HTTP_IDENTITY_NEED_RULES  0x01    /* groups, claims */
#define NGX_HTTP_IDENTITY_NEED_TOKEN  0x02    /* the access token */
#define NGX_HTTP_IDENTITY_NEED_META   0x04    /* agent, location */

ngx_int_t ngx_http_identity_session_lookup(ngx_http_request_t *r,
    ngx_str_t *token, ngx_uint_t need);
void ngx_http_identity_session_touch(ngx_http_request_t *r);
ngx_int_t ngx_http_identity_session_create(ngx_http_request_t *r,
    ngx_str_t *token);
ngx_int_t ngx_http_identity_session_claim(ngx_http_request_t *r,
    time_t interval);
ngx_int_t ngx_http_identity_session_refreshed(ngx_http_request_t *r);
ngx_int_t ngx_http_identity_session_destroy(ngx_http_request_t *r,
    ngx_str_t *token);

typedef struct {
    ngx_uint_t   sessions;      /* else identities */
    ngx_str_t    user_id;       /* sessions of one identity */
    ngx_str_t    before_id;
    ngx_uint_t   limit;
    ngx_uint_t   scan;          /* entries examined at most, with filters */
    ngx_str_t    provider;
    ngx_str_t    user;
    ngx_str_t    id;
    ngx_str_t    endpoint;      /* sessions of user_id at this endpoint */
} ngx_http_identity_store_query_t;


ngx_int_t ngx_http_identity_store_list(ngx_http_request_t *r,
    ngx_http_identity_redis_handler_pt handler,
    ngx_http_identity_store_query_t *q);
ngx_int_t ngx_http_identity_store_get(ngx_http_request_t *r,
    ngx_http_identity_redis_handler_pt handler, char *kind, ngx_str_t *id);
ngx_int_t ngx_http_identity_store_delete(ngx_http_request_t *r,
    ngx_http_identity_redis_handler_pt handler, ngx_uint_t user,
    ngx_str_t *id);

ngx_int_t ngx_http_identity_store_logout(ngx_http_request_t *r,
    ngx_http_identity_redis_handler_pt handler, ngx_str_t *provider,
    ngx_str_t *jti, time_t ttl, ngx_str_t *sid, ngx_str_t *sub);

ngx_int_t ngx_http_identity_store_once(ngx_http_request_t *r,
    ngx_http_identity_redis_handler_pt handler, ngx_str_t *ns, ngx_str_t *id,
    time_t ttl);

ngx_int_t ngx_http_identity_endpoint_hash(ngx_pool_t *pool, ngx_str_t *url,
    ngx_str_t *out);

ngx_int_t ngx_http_identity_login_save(ngx_http_request_t *r,
    ngx_str_t *state);
ngx_int_t ngx_http_identity_login_take(ngx_http_request_t *r,
    ngx_str_t *state);

#define NGX_HTTP_IDENTITY_VERIFIED_TTL  60

ngx_int_t ngx_http_identity_verified_save(ngx_http_request_t *r,
    ngx_str_t *key, ngx_str_t *state);
ngx_int_t ngx_http_identity_verified_take(ngx_http_request_t *r,
    ngx_str_t *key);


#endif /* _NGX_HTTP_IDENTITY_STORE_H_INCLUDED_ */
