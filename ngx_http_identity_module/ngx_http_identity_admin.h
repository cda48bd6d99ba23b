
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_ADMIN_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_ADMIN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"


ngx_int_t ngx_http_identity_admin_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_identity_admin_conf_check(ngx_conf_t *cf,
    ngx_http_identity_loc_conf_t *conf, ngx_array_t *own_rules);
char *ngx_http_identity_admin_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_identity_admin_token_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_HTTP_IDENTITY_ADMIN_H_INCLUDED_ */
