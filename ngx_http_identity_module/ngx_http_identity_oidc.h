
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_OIDC_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_OIDC_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_module.h"


ngx_int_t ngx_http_identity_oidc_init_process(ngx_cycle_t *cycle);

/*
 * Both return NGX_AGAIN while waiting (ctx->resume is called later), or the
 * HTTP status to answer with; headers (Location, Set-Cookie) are set.
 */
ngx_int_t ngx_http_identity_oidc_login(ngx_http_request_t *r);
ngx_int_t ngx_http_identity_oidc_callback(ngx_http_request_t *r);
ngx_int_t ngx_http_identity_oidc_backchannel(ngx_http_request_t *r);
ngx_int_t ngx_http_identity_oidc_end_session(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_str_t *back, ngx_str_t *url);


#endif /* _NGX_HTTP_IDENTITY_OIDC_H_INCLUDED_ */
