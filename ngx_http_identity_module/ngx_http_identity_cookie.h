
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_COOKIE_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_COOKIE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"


#define NGX_HTTP_IDENTITY_COOKIE_SESSION  -1
#define NGX_HTTP_IDENTITY_COOKIE_DELETE   0


ngx_int_t ngx_http_identity_cookie_name(ngx_http_request_t *r,
    ngx_str_t *base, ngx_str_t *domain, const char *suffix, ngx_str_t *name);
ngx_int_t ngx_http_identity_cookie_get(ngx_http_request_t *r,
    ngx_str_t *name, ngx_str_t *value);
ngx_int_t ngx_http_identity_cookie_set(ngx_http_request_t *r,
    ngx_str_t *name, ngx_str_t *value, ngx_str_t *domain, time_t max_age);
ngx_int_t ngx_http_identity_cookie_strip(ngx_http_request_t *r,
    ngx_array_t *names);
ngx_int_t ngx_http_identity_read_cookie(ngx_http_request_t *r,
    ngx_http_identity_loc_conf_t *ilcf, ngx_str_t *token);
ngx_int_t ngx_http_identity_state_cookie(ngx_http_request_t *r,
    ngx_str_t *name, ngx_str_t *domain);
ngx_int_t ngx_http_identity_cookie_auth_name(ngx_conf_t *cf,
    ngx_http_identity_loc_conf_t *conf);
ngx_int_t ngx_http_identity_cookie_bound(ngx_http_request_t *r,
    ngx_str_t *state);


#endif /* _NGX_HTTP_IDENTITY_COOKIE_H_INCLUDED_ */
