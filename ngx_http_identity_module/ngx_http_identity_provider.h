
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_PROVIDER_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_PROVIDER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"


extern ngx_http_identity_protocol_t  *ngx_http_identity_protocols[];


char *ngx_http_identity_provider_block(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_identity_identity(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_HTTP_IDENTITY_PROVIDER_H_INCLUDED_ */
