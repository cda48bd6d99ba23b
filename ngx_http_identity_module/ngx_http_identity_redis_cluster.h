
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_REDIS_CLUSTER_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_REDIS_CLUSTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>

#include "ngx_http_identity_types.h"


/* the primaries a worker may know of at a time; more are not connected to */
#define NGX_HTTP_IDENTITY_CLUSTER_NODES  64

#define NGX_HTTP_IDENTITY_CLUSTER_SLOTS  16384


void ngx_http_identity_cluster_init(void);
ngx_int_t ngx_http_identity_cluster_key_slot(u_char *key, size_t len);
ngx_int_t ngx_http_identity_cluster_slot(ngx_uint_t argc, ngx_str_t *argv);
ngx_int_t ngx_http_identity_cluster_route(ngx_uint_t argc, ngx_str_t *argv);
ngx_http_identity_redis_addr_t *ngx_http_identity_cluster_addr(ngx_uint_t n);
ngx_uint_t ngx_http_identity_cluster_known(void);
ngx_int_t ngx_http_identity_cluster_map(redisReply *reply, ngx_log_t *log);
ngx_int_t ngx_http_identity_cluster_redirect(redisReply *reply,
    ngx_int_t slot, ngx_http_identity_redis_addr_t *from, ngx_uint_t *ask);


#endif /* _NGX_HTTP_IDENTITY_REDIS_CLUSTER_H_INCLUDED_ */
