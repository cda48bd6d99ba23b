
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_AUDIT_LOG_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_AUDIT_LOG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"


char *ngx_http_identity_audit_log(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_identity_audit_log_init_process(ngx_cycle_t *cycle,
    ngx_http_identity_main_conf_t *imcf);
void ngx_http_identity_audit_log_exit_process(ngx_cycle_t *cycle);
void ngx_http_identity_audit_log_write(ngx_http_request_t *r,
    ngx_str_t *line);


#endif /* _NGX_HTTP_IDENTITY_AUDIT_LOG_H_INCLUDED_ */
