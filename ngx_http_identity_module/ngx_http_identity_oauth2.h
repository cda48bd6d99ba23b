
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_OAUTH2_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_OAUTH2_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>
#include <oauth2/oauth2.h>
#include <oauth2/http.h>
#include <oauth2/log.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_fetch.h"


/* NUL-terminated copies, read by the thread tasks */

typedef struct {
    char                            *token_endpoint;
    char                            *client_id;
    char                            *client_secret;
    ngx_uint_t                       token_auth;  /* NGX_HTTP_IDENTITY_AUTH_* */
    ngx_msec_t                       timeout;
} ngx_http_identity_oauth2_client_t;


typedef struct {
    char                            *code;
    char                            *redirect_uri;
    char                            *verifier;    /* PKCE, or NULL */
} ngx_http_identity_oauth2_grant_t;


/* the redirect_uri, in the routes of OpenID Connect and OAuth */
extern ngx_http_identity_route_t  ngx_http_identity_oauth2_callback_route;


/* on the loop */
ngx_int_t ngx_http_identity_oauth2_login(ngx_http_request_t *r,
    ngx_uint_t nonce);
ngx_int_t ngx_http_identity_oauth2_redirect(ngx_http_request_t *r,
    char *endpoint, ngx_uint_t pkce, ngx_str_t *nonce);
ngx_int_t ngx_http_identity_oauth2_grant(ngx_http_request_t *r,
    ngx_uint_t pkce, ngx_http_identity_oauth2_grant_t *grant);

/* blocking: for thread tasks only */
oauth2_nv_list_t *ngx_http_identity_oauth2_code_form(oauth2_log_t *log,
    ngx_http_identity_oauth2_grant_t *grant);
json_t *ngx_http_identity_oauth2_token(
    ngx_http_identity_oauth2_client_t *client, oauth2_log_t *log,
    oauth2_nv_list_t *form, ngx_http_identity_http_result_t *result);
ngx_int_t ngx_http_identity_oauth2_bearer(oauth2_log_t *log,
    oauth2_http_call_ctx_t *hctx, const char *token,
    ngx_http_identity_http_result_t *result);


#endif /* _NGX_HTTP_IDENTITY_OAUTH2_H_INCLUDED_ */
