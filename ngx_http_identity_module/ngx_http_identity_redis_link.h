
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_REDIS_LINK_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_REDIS_LINK_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_redis_conn.h"
#include "ngx_http_identity_redis_state.h"


#define NGX_HTTP_IDENTITY_REDIS_BACKOFF_MIN  100
#define NGX_HTTP_IDENTITY_REDIS_BACKOFF_MAX  250


typedef struct ngx_http_identity_redis_s  ngx_http_identity_redis_t;

/* NGX_OK: rd->addr is where to connect now */
typedef ngx_int_t (*ngx_http_identity_redis_locate_pt)(
    ngx_http_identity_redis_t *rd);
typedef void (*ngx_http_identity_redis_failed_pt)(
    ngx_http_identity_redis_t *rd);


struct ngx_http_identity_redis_s {
    ngx_http_identity_rconn_t          *ac;
    ngx_http_identity_redis_conf_t     *conf;
    ngx_http_identity_redis_addr_t      addr;       /* where it connects */
    u_char                              host[NGX_SOCKADDR_STRLEN + 1];
    ngx_log_t                          *log;
    ngx_event_t                         timer;
    ngx_uint_t                          pending;
    ngx_msec_t                          backoff;
    ngx_msec_t                          retry_at;
    void                              (*sub_handler)(void *data,
                                           ngx_uint_t event,
                                           ngx_str_t *message);
    void                               *sub_data;
    ngx_http_identity_redis_state_t     state;        /* for the log */
    ngx_http_identity_redis_locate_pt   locate;       /* NULL: rd->addr */
    ngx_http_identity_redis_failed_pt   failed;
    unsigned                            sentinel:1;
    unsigned                            connected:1;
    unsigned                            subscribed:1;
};


void ngx_http_identity_redis_link_init(ngx_http_identity_redis_t *rd,
    ngx_http_identity_redis_conf_t *conf, ngx_log_t *log, char *role,
    ngx_http_identity_redis_failed_pt failed);
ngx_int_t ngx_http_identity_redis_link_connect(ngx_http_identity_redis_t *rd);
ngx_uint_t ngx_http_identity_redis_link_address(ngx_http_identity_redis_t *rd,
    ngx_http_identity_redis_addr_t *addr);
void ngx_http_identity_redis_link_setup(ngx_http_identity_redis_t *rd,
    ngx_uint_t argc, const char **args, size_t *lens);
void ngx_http_identity_redis_link_refusal(ngx_http_identity_redis_t *rd,
    char *what, redisReply *reply);
void ngx_http_identity_redis_link_replied(ngx_http_identity_redis_t *rd);
void ngx_http_identity_redis_link_failed(ngx_http_identity_redis_t *rd,
    const char *what, const char *why);


#endif /* _NGX_HTTP_IDENTITY_REDIS_LINK_H_INCLUDED_ */
