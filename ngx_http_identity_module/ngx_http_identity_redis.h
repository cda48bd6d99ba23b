
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_REDIS_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_identity_types.h"


/*
 * Called on the event loop with the reply, or with NULL when Redis is
 * unreachable, timed out or answered with an error, and with the data
 * given to the request.  The reply is freed after the call: copy what is
 * needed into r->pool.  The handler is not called if the request went away
 * meanwhile.  Only the session store calls this.
 */
typedef void (*ngx_http_identity_redis_handler_pt)(ngx_http_request_t *r,
    redisReply *reply, void *data);


ngx_int_t ngx_http_identity_redis_init(ngx_cycle_t *cycle,
    ngx_http_identity_redis_conf_t *conf);
void ngx_http_identity_redis_done(ngx_cycle_t *cycle);

ngx_int_t ngx_http_identity_redis_request(ngx_http_request_t *r,
    ngx_http_identity_redis_handler_pt handler, void *data, ngx_uint_t argc,
    ngx_str_t *argv);
ngx_int_t ngx_http_identity_redis_send(ngx_log_t *log, ngx_uint_t argc,
    ngx_str_t *argv);

/*
 * whether Redis is failing now in a way its own log lines tell (down, or
 * answering errors): the requests it fails then log at info
 */
ngx_uint_t ngx_http_identity_redis_down(void);
/* a subscription's events: UP once subscribed, MESSAGE, DOWN once over */
#define NGX_HTTP_IDENTITY_SUB_UP       0
#define NGX_HTTP_IDENTITY_SUB_DOWN     1
#define NGX_HTTP_IDENTITY_SUB_MESSAGE  2

typedef void (*ngx_http_identity_redis_sub_pt)(void *data, ngx_uint_t event,
    ngx_str_t *message);

ngx_int_t ngx_http_identity_redis_subscribe(ngx_log_t *log,
    ngx_str_t *channel, ngx_str_t *name,
    ngx_http_identity_redis_sub_pt handler, void *data);
void ngx_http_identity_redis_unsubscribe(void);

char *ngx_http_identity_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_HTTP_IDENTITY_REDIS_H_INCLUDED_ */
