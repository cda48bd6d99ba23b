
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_ENDPOINT_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_ENDPOINT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"


ngx_int_t ngx_http_identity_endpoint_handler(ngx_http_request_t *r);
char *ngx_http_identity_path(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


#endif /* _NGX_HTTP_IDENTITY_ENDPOINT_H_INCLUDED_ */
