
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_REQUEST_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_REQUEST_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_parse.h"


ngx_int_t ngx_http_identity_logout_url(ngx_http_request_t *r,
    ngx_http_identity_loc_conf_t *ilcf, ngx_str_t *back, ngx_str_t *url);
ngx_int_t ngx_http_identity_is_browser(ngx_http_request_t *r);
ngx_int_t ngx_http_identity_is_navigation(ngx_http_request_t *r);
ngx_int_t ngx_http_identity_is_preflight(ngx_http_request_t *r);
ngx_table_elt_t *ngx_http_identity_header(ngx_http_request_t *r,
    char *name, size_t len);
ngx_int_t ngx_http_identity_log_request_id(ngx_http_request_t *r,
    ngx_uint_t now);
ngx_http_identity_loc_conf_t *ngx_http_identity_auth_conf(
    ngx_http_request_t *r);
ngx_http_identity_loc_conf_t *ngx_http_identity_find_auth(
    ngx_http_identity_srv_conf_t *iscf, ngx_str_t *id);
ngx_http_identity_loc_conf_t *ngx_http_identity_server_conf(
    ngx_http_request_t *r);
ngx_int_t ngx_http_identity_redirect_path(ngx_http_request_t *r,
    ngx_str_t *path);
ngx_int_t ngx_http_identity_return_target(ngx_http_request_t *r,
    ngx_str_t *uri, ngx_str_t *target);
ngx_http_identity_ctx_t *ngx_http_identity_create_ctx(ngx_http_request_t *r);
ngx_http_identity_ctx_t *ngx_http_identity_get_ctx(ngx_http_request_t *r);
ngx_http_identity_provider_t *ngx_http_identity_find_provider(
    ngx_http_request_t *r, ngx_str_t *name);
ngx_http_identity_provider_t *ngx_http_identity_provider_named(
    ngx_http_identity_main_conf_t *imcf, ngx_str_t *name);
ngx_http_identity_provider_t *ngx_http_identity_find_issuer(
    ngx_http_request_t *r, ngx_str_t *issuer);
ngx_int_t ngx_http_identity_is_https(ngx_http_request_t *r);
ngx_int_t ngx_http_identity_public_origin(ngx_http_request_t *r,
    ngx_str_t *origin);
ngx_table_elt_t *ngx_http_identity_add_header(ngx_http_request_t *r,
    char *key, char *value);
ngx_int_t ngx_http_identity_set_location(ngx_http_request_t *r,
    ngx_str_t *location);
ngx_int_t ngx_http_identity_unescape_arg(ngx_http_request_t *r,
    ngx_str_t *arg);
ngx_int_t ngx_http_identity_add_unique(ngx_pool_t *pool, ngx_array_t **set,
    ngx_str_t *s);
char *ngx_http_identity_public_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_HTTP_IDENTITY_REQUEST_H_INCLUDED_ */
