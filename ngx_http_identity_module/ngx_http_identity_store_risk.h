
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_STORE_RISK_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_STORE_RISK_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/*
 * The risk signals of a login (docs/risk.md), by the store's ctx
 * convention: NGX_OK and ctx->resume(r) once decided (ctx->session.risk,
 * ctx->risk_denied, ctx->risk_revoke, ctx->risk_seen), NGX_ERROR when
 * Redis is unavailable.
 */

char *ngx_http_identity_risk_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
void ngx_http_identity_risk_init_conf(ngx_http_identity_main_conf_t *imcf);
ngx_int_t ngx_http_identity_risk_refused(ngx_http_request_t *r);

ngx_int_t ngx_http_identity_risk_check(ngx_http_request_t *r);

/* a session hash's packed flags made the API's JSON, in place */
ngx_int_t ngx_http_identity_risk_unpack(ngx_pool_t *pool, ngx_str_t *risk);

/* the identity's other sessions end, as a DELETE of each would */
ngx_int_t ngx_http_identity_risk_revoke(ngx_http_request_t *r);


#endif /* _NGX_HTTP_IDENTITY_STORE_RISK_H_INCLUDED_ */
