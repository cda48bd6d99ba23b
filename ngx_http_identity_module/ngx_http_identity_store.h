
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_STORE_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_records.h"


#define NGX_HTTP_IDENTITY_SITE_HASH_LEN  16


/*
 * The session store: the only code that knows the Redis key layout.  Each
 * call either returns NGX_ERROR (Redis unavailable: answer 503) or NGX_OK,
 * and then ctx->resume(r) is called on the loop once ctx holds the answer
 * (ctx->found, ctx->redis_error and the record: ctx->session, ctx->login,
 * ctx->claims), except the admin calls, which answer their callback.
 */

#define NGX_HTTP_IDENTITY_NEED_RULES  0x01    /* groups, claims */
#define NGX_HTTP_IDENTITY_NEED_TOKEN  0x02    /* the access token */
#define NGX_HTTP_IDENTITY_NEED_META   0x04    /* agent, location */

/* of the request's cookie, ctx->token */
/* the keys' prefixes, by shard: at configuration (store_cmd.c) */
ngx_int_t ngx_http_identity_store_init_conf(ngx_conf_t *cf,
    ngx_http_identity_main_conf_t *imcf);

ngx_int_t ngx_http_identity_session_lookup(ngx_http_request_t *r,
    ngx_uint_t need);
void ngx_http_identity_session_touch(ngx_http_request_t *r);
ngx_int_t ngx_http_identity_session_create(ngx_http_request_t *r,
    ngx_str_t *token);
ngx_int_t ngx_http_identity_session_claim(ngx_http_request_t *r,
    time_t interval);
ngx_int_t ngx_http_identity_session_refreshed(ngx_http_request_t *r);
ngx_int_t ngx_http_identity_session_destroy(ngx_http_request_t *r);

/* admin API: what to list */

typedef struct {
    ngx_uint_t   sessions;      /* else identities */
    ngx_str_t    user_id;       /* sessions of one identity */
    ngx_str_t    before_id;
    ngx_uint_t   limit;
    ngx_uint_t   scan;          /* entries examined at most, with filters */
    ngx_str_t    provider;
    ngx_str_t    user;
    ngx_str_t    id;
    ngx_str_t    site;          /* sessions of user_id at this site */
    ngx_str_t    country;       /* sessions: two letters */
    ngx_str_t    device;        /* sessions: a device type */
    ngx_str_t    risk;          /* sessions: "any" or a signal */
} ngx_http_identity_store_query_t;


/*
 * What an admin call found, handed to its callback: rc is NGX_OK;
 * NGX_DECLINED when there is nothing of that id (a list: before_id is
 * unknown; a delete: nothing was deleted); NGX_ERROR when the store failed
 * (Redis unavailable: answer 503); NGX_ABORT when memory ran out.
 */

typedef struct {
    ngx_int_t                        rc;
    ngx_uint_t                       nelts;
    ngx_http_identity_session_t     *sessions;
    ngx_http_identity_identity_t    *identities;
    ngx_http_identity_site_t        *sites;       /* latest use first */
    ngx_str_t                        cursor;      /* next page, or empty */
} ngx_http_identity_store_result_t;


typedef enum {
    ngx_http_identity_store_identity = 0,
    ngx_http_identity_store_session,
    ngx_http_identity_store_sites    /* of an identity */
} ngx_http_identity_store_kind_e;


typedef void (*ngx_http_identity_store_pt)(ngx_http_request_t *r,
    ngx_http_identity_store_result_t *res);


ngx_int_t ngx_http_identity_store_list(ngx_http_request_t *r,
    ngx_http_identity_store_pt done, ngx_http_identity_store_query_t *q);
ngx_int_t ngx_http_identity_store_get(ngx_http_request_t *r,
    ngx_http_identity_store_pt done, ngx_http_identity_store_kind_e kind,
    ngx_str_t *id);
ngx_int_t ngx_http_identity_store_delete(ngx_http_request_t *r,
    ngx_http_identity_store_pt done, ngx_uint_t user, ngx_str_t *id);
ngx_int_t ngx_http_identity_store_count(ngx_http_request_t *r,
    ngx_http_identity_store_pt done);

/*
 * Back-channel logout, by the ctx convention above: ctx->found is 0 for a
 * replayed token, ctx->status how many sessions ended.
 */
ngx_int_t ngx_http_identity_store_logout(ngx_http_request_t *r,
    ngx_str_t *provider, ngx_str_t *jti, time_t ttl, ngx_str_t *sid,
    ngx_str_t *sub);

/* ctx->found: "id" is seen in "ns" for the first time within ttl */
ngx_int_t ngx_http_identity_store_once(ngx_http_request_t *r, ngx_str_t *ns,
    ngx_str_t *id, time_t ttl);

ngx_int_t ngx_http_identity_site_hash(ngx_pool_t *pool, ngx_str_t *url,
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
