
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_META_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_META_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_records.h"


char *ngx_http_identity_meta_geoip(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_identity_meta_regexes(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_identity_meta_init_conf(ngx_conf_t *cf,
    ngx_http_identity_main_conf_t *imcf);
ngx_int_t ngx_http_identity_meta_collect(ngx_http_request_t *r,
    ngx_http_identity_meta_t *m);


#endif /* _NGX_HTTP_IDENTITY_META_H_INCLUDED_ */
