
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_LOGIN_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_LOGIN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_protocol.h"


ngx_int_t ngx_http_identity_prepare_login(ngx_http_request_t *r,
    ngx_http_identity_loc_conf_t *ilcf, ngx_str_t *return_to);
ngx_int_t ngx_http_identity_fail(ngx_http_request_t *r,
    ngx_int_t status, ngx_uint_t reason);
ngx_int_t ngx_http_identity_login(ngx_http_request_t *r);
ngx_int_t ngx_http_identity_login_finish(ngx_http_request_t *r,
    ngx_http_identity_route_pt verify);


#endif /* _NGX_HTTP_IDENTITY_LOGIN_H_INCLUDED_ */
