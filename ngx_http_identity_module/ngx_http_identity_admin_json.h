
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_ADMIN_JSON_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_ADMIN_JSON_H_INCLUDED_


/* the admin API's JSON: for ngx_http_identity_admin.c only */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_identity_store.h"


json_t *ngx_http_identity_admin_json_user(ngx_http_request_t *r,
    ngx_str_t *base, ngx_http_identity_identity_t *rec);
json_t *ngx_http_identity_admin_json_session(ngx_http_request_t *r,
    ngx_str_t *base, ngx_http_identity_session_t *rec);
json_t *ngx_http_identity_admin_json_sites(ngx_http_request_t *r,
    ngx_http_identity_store_result_t *res);
json_t *ngx_http_identity_admin_json_string(ngx_str_t *v);
ngx_int_t ngx_http_identity_admin_json_error(ngx_http_request_t *r,
    ngx_int_t status, char *msg);
ngx_int_t ngx_http_identity_admin_json_send(ngx_http_request_t *r,
    ngx_int_t status, json_t *body);


#endif /* _NGX_HTTP_IDENTITY_ADMIN_JSON_H_INCLUDED_ */
