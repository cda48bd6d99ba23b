
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_REDIS_STATE_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_REDIS_STATE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>


/* what the log has been told of one connection's health */

typedef struct {
    ngx_log_t                   *log;
    char                        *role;        /* "", " (subscription)" */
    ngx_str_t                   *host;        /* where it connects */
    ngx_msec_t                   down_since;
    ngx_msec_t                   reported;
    ngx_uint_t                   refused;     /* since reported */
    ngx_uint_t                   refused_all; /* since down */
    ngx_msec_t                   errors_reported;
    ngx_uint_t                   errors;      /* since errors_reported */
    unsigned                     down:1;
} ngx_http_identity_redis_state_t;


void ngx_http_identity_redis_state_down(ngx_http_identity_redis_state_t *st,
    const char *what, const char *why);
void ngx_http_identity_redis_state_up(ngx_http_identity_redis_state_t *st);
void ngx_http_identity_redis_state_refused(
    ngx_http_identity_redis_state_t *st);
void ngx_http_identity_redis_state_error(ngx_http_identity_redis_state_t *st,
    redisReply *reply);
ngx_uint_t ngx_http_identity_redis_state_told(
    ngx_http_identity_redis_state_t *st);


#endif /* _NGX_HTTP_IDENTITY_REDIS_STATE_H_INCLUDED_ */
