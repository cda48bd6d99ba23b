
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_RULES_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_RULES_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"


#define NGX_HTTP_IDENTITY_RULE_EMAIL   1
#define NGX_HTTP_IDENTITY_RULE_DOMAIN  2
#define NGX_HTTP_IDENTITY_RULE_GROUP   3
#define NGX_HTTP_IDENTITY_RULE_CLAIM   4


char *ngx_http_identity_rules_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_identity_rules_check(ngx_http_request_t *r,
    ngx_array_t *rules, ngx_http_identity_session_t *s);
ngx_int_t ngx_http_identity_rules_deny(ngx_http_request_t *r,
    ngx_http_identity_session_t *s, ngx_str_t *logout);


#endif /* _NGX_HTTP_IDENTITY_RULES_H_INCLUDED_ */
