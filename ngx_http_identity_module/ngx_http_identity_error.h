
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_ERROR_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_ERROR_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* the look of the pages a person sees: the 403 page, the error page */

#define NGX_HTTP_IDENTITY_PAGE_HEAD(title)                                    \
    "<!DOCTYPE html>" CRLF                                                    \
    "<html lang=\"en\"><head><meta charset=\"utf-8\">"                        \
    "<meta name=\"viewport\" content=\"width=device-width,"                   \
    "initial-scale=1\"><title>" title "</title>"                              \
    "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;"          \
    "margin:4em auto;padding:0 1em;color:#1f2328}"                            \
    "a{color:#0969da}</style></head>" CRLF                                    \
    "<body><h1>" title "</h1>" CRLF


/* why a login failed, in words its user understands */

#define NGX_HTTP_IDENTITY_ERROR_STATE        0
#define NGX_HTTP_IDENTITY_ERROR_LINK         1
#define NGX_HTTP_IDENTITY_ERROR_CANCELLED    2
#define NGX_HTTP_IDENTITY_ERROR_REFUSED      3
#define NGX_HTTP_IDENTITY_ERROR_UNAVAILABLE  4
#define NGX_HTTP_IDENTITY_ERROR_PROVIDER     5
#define NGX_HTTP_IDENTITY_ERROR_INTERNAL     6
/* denied by a risk signal: this, plus the signal (store_risk.h) */
#define NGX_HTTP_IDENTITY_ERROR_RISK         7


#define NGX_HTTP_IDENTITY_RETRY_AFTER        "10"


ngx_int_t ngx_http_identity_error_page(ngx_http_request_t *r,
    ngx_int_t status, ngx_uint_t reason, ngx_str_t *retry,
    ngx_str_t *request_id);
ngx_int_t ngx_http_identity_page_send(ngx_http_request_t *r,
    ngx_int_t status, ngx_buf_t *b, ngx_uint_t html);
ngx_int_t ngx_http_identity_body_send(ngx_http_request_t *r,
    ngx_int_t status, ngx_buf_t *b, ngx_str_t *type, size_t type_len);


#endif /* _NGX_HTTP_IDENTITY_ERROR_H_INCLUDED_ */
