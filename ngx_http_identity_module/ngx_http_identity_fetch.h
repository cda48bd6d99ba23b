
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_FETCH_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_FETCH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <jansson.h>
#include <oauth2/oauth2.h>
#include <oauth2/http.h>
#include <oauth2/log.h>


#define NGX_HTTP_IDENTITY_ERRLEN  256


/* the outcome of a thread task; the thread fills it, the loop logs it */

typedef struct {
    ngx_int_t                       status;     /* 0 when all went well */
    ngx_uint_t                      level;      /* of the log line */
    char                            error[NGX_HTTP_IDENTITY_ERRLEN];
} ngx_http_identity_http_result_t;


/* blocking: for thread tasks only */
char *ngx_http_identity_http_get(const char *url, ngx_msec_t timeout,
    char *err, size_t errlen);

ngx_int_t ngx_http_identity_http_begin(ngx_http_identity_http_result_t *res,
    ngx_msec_t timeout, oauth2_log_t **log, oauth2_http_call_ctx_t **hctx);
oauth2_log_t *ngx_http_identity_http_log(
    ngx_http_identity_http_result_t *res);
oauth2_http_call_ctx_t *ngx_http_identity_http_ctx(
    ngx_http_identity_http_result_t *res, oauth2_log_t *log,
    ngx_msec_t timeout);
char *ngx_http_identity_http_call(oauth2_log_t *log, const char *url,
    oauth2_nv_list_t *form, oauth2_http_call_ctx_t *hctx,
    ngx_http_identity_http_result_t *res, json_t **json);
char *ngx_http_identity_http_fetch(oauth2_log_t *log, const char *url,
    oauth2_nv_list_t *form, oauth2_http_call_ctx_t *hctx,
    ngx_http_identity_http_result_t *res, json_t **json, ngx_uint_t any);
void ngx_http_identity_http_fail(ngx_http_identity_http_result_t *res,
    ngx_int_t status, ngx_uint_t level, const char *fmt, ...);
void ngx_http_identity_log_safe(char *s);

/* on the loop */
char *ngx_http_identity_cstr(ngx_pool_t *pool, ngx_str_t *s);
char *ngx_http_identity_dup_str(ngx_pool_t *pool, const char *s);
ngx_int_t ngx_http_identity_pool_str(ngx_pool_t *pool, char *s,
    ngx_str_t *out);


#endif /* _NGX_HTTP_IDENTITY_FETCH_H_INCLUDED_ */
