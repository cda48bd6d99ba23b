
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_OAUTH_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_OAUTH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_module.h"


typedef struct ngx_http_identity_oauth_conf_s  ngx_http_identity_oauth_conf_t;


char *ngx_http_identity_oauth_conf(ngx_conf_t *cf,
    ngx_http_identity_provider_t *pr);
ngx_int_t ngx_http_identity_oauth_login(ngx_http_request_t *r);
ngx_int_t ngx_http_identity_oauth_callback(ngx_http_request_t *r);
ngx_int_t ngx_http_identity_oauth_refresh(ngx_http_request_t *r);


#endif /* _NGX_HTTP_IDENTITY_OAUTH_H_INCLUDED_ */
