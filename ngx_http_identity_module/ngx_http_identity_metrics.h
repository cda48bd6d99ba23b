
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_METRICS_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_identity_types.h"


#define NGX_HTTP_IDENTITY_LOGIN_SUCCESS      0
#define NGX_HTTP_IDENTITY_LOGIN_DENIED       1
#define NGX_HTTP_IDENTITY_LOGIN_FAILED       2
#define NGX_HTTP_IDENTITY_LOGIN_OUTCOMES     3

#define NGX_HTTP_IDENTITY_DENIAL_EMAIL       0
#define NGX_HTTP_IDENTITY_DENIAL_GROUP       1
#define NGX_HTTP_IDENTITY_DENIAL_CLAIM       2
#define NGX_HTTP_IDENTITY_DENIALS            3

#define NGX_HTTP_IDENTITY_REVOKED_API        0
#define NGX_HTTP_IDENTITY_REVOKED_BACKCHANNEL  1
#define NGX_HTTP_IDENTITY_REVOKED_LOGOUT     2
#define NGX_HTTP_IDENTITY_REVOKED_REFRESH    3
#define NGX_HTTP_IDENTITY_REVOKED_RISK       4
#define NGX_HTTP_IDENTITY_REVOKED_SOURCES    5

/* a provider's calls (thread tasks) */
#define NGX_HTTP_IDENTITY_CALL_TOKEN         0
#define NGX_HTTP_IDENTITY_CALL_USERINFO      1
#define NGX_HTTP_IDENTITY_CALL_DISCOVERY     2
#define NGX_HTTP_IDENTITY_CALL_JWKS          3
#define NGX_HTTP_IDENTITY_CALL_SAML          4
#define NGX_HTTP_IDENTITY_CALLS              5


/* what /metrics shows besides the zone's counters (admin.c fills it) */
typedef struct {
    ngx_array_t                     *providers;   /* of provider * */
    ngx_uint_t                       cache;       /* a session cache */
    ngx_uint_t                       redis_up;
    ngx_int_t                        sessions;    /* active; -1: unknown */
} ngx_http_identity_metrics_view_t;


ngx_int_t ngx_http_identity_metrics_init_conf(ngx_conf_t *cf,
    ngx_uint_t nproviders);
void ngx_http_identity_metrics_login(ngx_http_identity_provider_t *pr,
    ngx_uint_t outcome);
void ngx_http_identity_metrics_denial(ngx_uint_t reason);
void ngx_http_identity_metrics_risk(ngx_uint_t signal, ngx_uint_t action);
void ngx_http_identity_metrics_revoked(ngx_uint_t source, ngx_uint_t n);
void ngx_http_identity_metrics_cache(ngx_uint_t hit);
uint64_t ngx_http_identity_metrics_now(void);
void ngx_http_identity_metrics_redis(uint64_t start);
void ngx_http_identity_metrics_idp(ngx_http_identity_provider_t *pr,
    ngx_uint_t call, uint64_t start);
ngx_chain_t *ngx_http_identity_metrics_render(ngx_pool_t *pool,
    ngx_http_identity_metrics_view_t *view);


#endif /* _NGX_HTTP_IDENTITY_METRICS_H_INCLUDED_ */
