
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_DASHBOARD_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_DASHBOARD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* file: the path after the admin location ("" is index.html) */
ngx_int_t ngx_http_identity_dashboard_handler(ngx_http_request_t *r,
    ngx_str_t *file);


#endif /* _NGX_HTTP_IDENTITY_DASHBOARD_H_INCLUDED_ */
