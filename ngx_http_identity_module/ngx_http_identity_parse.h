
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_PARSE_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_PARSE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"


ngx_uint_t ngx_http_identity_is_word(ngx_str_t *s);
ngx_int_t ngx_http_identity_local_path(ngx_str_t *path);
ngx_int_t ngx_http_identity_return_path(ngx_str_t *uri, ngx_str_t *target);
ngx_int_t ngx_http_identity_cookie_find(ngx_log_t *log, ngx_array_t *headers,
    ngx_str_t *name, ngx_str_t *value);
size_t ngx_http_identity_cookie_filter(ngx_str_t *header, ngx_array_t *names,
    u_char *buf);
ngx_uint_t ngx_http_identity_cookie_token(ngx_str_t *token);


#endif /* _NGX_HTTP_IDENTITY_PARSE_H_INCLUDED_ */
