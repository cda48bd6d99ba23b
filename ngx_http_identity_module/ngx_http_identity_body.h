
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_BODY_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_BODY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


ngx_int_t ngx_http_identity_read_body(ngx_http_request_t *r, size_t max);
ngx_int_t ngx_http_identity_body(ngx_http_request_t *r, size_t max,
    ngx_str_t *body);


#endif /* _NGX_HTTP_IDENTITY_BODY_H_INCLUDED_ */
