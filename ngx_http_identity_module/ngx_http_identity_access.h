
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_ACCESS_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_ACCESS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"


ngx_int_t ngx_http_identity_access_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_IDENTITY_ACCESS_H_INCLUDED_ */
