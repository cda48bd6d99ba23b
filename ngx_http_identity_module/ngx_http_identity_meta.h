
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_META_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_META_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_module.h"


/*
 * What a login tells about its client; empty strings for what is not
 * known.  The location is text, as the session record keeps it.
 */

typedef struct {
    ngx_str_t                        ip;
    ngx_str_t                        user_agent;      /* as sent, cut */
    ngx_str_t                        browser;
    ngx_str_t                        browser_version;
    ngx_str_t                        os;
    ngx_str_t                        os_version;
    ngx_str_t                        device;
    ngx_str_t                        device_type;
    ngx_str_t                        country;
    ngx_str_t                        latitude;        /* "%.4f" */
    ngx_str_t                        longitude;
    ngx_str_t                        radius;          /* km */
} ngx_http_identity_meta_t;


char *ngx_http_identity_meta_geoip(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_identity_meta_regexes(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_identity_meta_init_conf(ngx_conf_t *cf,
    ngx_http_identity_main_conf_t *imcf);
ngx_int_t ngx_http_identity_meta_collect(ngx_http_request_t *r,
    ngx_http_identity_meta_t *m);


#endif /* _NGX_HTTP_IDENTITY_META_H_INCLUDED_ */
