
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_PARSE_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_PARSE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"


/* the admin API's routes (admin.c), as its paths name them */
typedef enum {
    ngx_http_identity_users = 0,
    ngx_http_identity_user,
    ngx_http_identity_user_sessions,
    ngx_http_identity_user_sites,
    ngx_http_identity_sessions,
    ngx_http_identity_session,
    ngx_http_identity_me,
    ngx_http_identity_metrics_route,
    ngx_http_identity_events_route,
    ngx_http_identity_stats_route,
    ngx_http_identity_static
} ngx_http_identity_route_e;


extern ngx_str_t  ngx_http_identity_admin_kinds[];


ngx_uint_t ngx_http_identity_is_word(ngx_str_t *s);
ngx_int_t ngx_http_identity_local_path(ngx_str_t *path);
ngx_int_t ngx_http_identity_return_path(ngx_str_t *uri, ngx_str_t *target);
ngx_int_t ngx_http_identity_cookie_find(ngx_log_t *log, ngx_array_t *headers,
    ngx_str_t *name, ngx_str_t *value);
size_t ngx_http_identity_cookie_filter(ngx_str_t *header, ngx_array_t *names,
    u_char *buf);
ngx_uint_t ngx_http_identity_cookie_token(ngx_str_t *token);
ngx_int_t ngx_http_identity_admin_path(ngx_str_t *path,
    ngx_http_identity_route_e *route, ngx_str_t *id, ngx_uint_t *item);
ngx_uint_t ngx_http_identity_admin_id(ngx_str_t *id, ngx_uint_t session);
ngx_uint_t ngx_http_identity_id_valid(ngx_str_t *id, char *prefix, size_t n);
ngx_int_t ngx_http_identity_form_arg(ngx_pool_t *pool, ngx_str_t *body,
    char *name, ngx_str_t *value);
ngx_uint_t ngx_http_identity_http_url(const char *url);


#endif /* _NGX_HTTP_IDENTITY_PARSE_H_INCLUDED_ */
