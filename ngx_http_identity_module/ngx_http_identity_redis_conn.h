
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_REDIS_CONN_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_REDIS_CONN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include <hiredis/hiredis.h>

#include "ngx_http_identity_types.h"


#define NGX_HTTP_IDENTITY_RCONN_ERRLEN  160


typedef struct ngx_http_identity_rconn_s  ngx_http_identity_rconn_t;

/* a reply, or NULL once the connection is closed with the command pending */
typedef void (*ngx_http_identity_rconn_reply_pt)(ngx_http_identity_rconn_t *rc,
    redisReply *reply, void *data);

/* connected (ok 1) or not; closed (err 1 when it failed) */
typedef void (*ngx_http_identity_rconn_event_pt)(ngx_http_identity_rconn_t *rc,
    ngx_uint_t ok);


typedef struct {
    ngx_http_identity_rconn_reply_pt   handler;
    void                              *data;
    ngx_uint_t                         every;    /* SUBSCRIBE: each message */
} ngx_http_identity_rconn_cb_t;


struct ngx_http_identity_rconn_s {
    ngx_peer_connection_t              peer;
    ngx_log_t                          log;       /* quiet: errors are told */
    void                              *data;
    ngx_http_identity_rconn_event_pt   connected;
    ngx_http_identity_rconn_event_pt   closed;

    ngx_ssl_t                         *ssl;
    ngx_str_t                          server_name;
    ngx_uint_t                         verify;

    redisReader                       *reader;

    u_char                            *out;
    size_t                             out_len;
    size_t                             out_sent;
    size_t                             out_size;

    ngx_http_identity_rconn_cb_t      *cbs;       /* a ring */
    ngx_uint_t                         head;
    ngx_uint_t                         count;
    ngx_uint_t                         size;

    struct sockaddr_storage            sockaddr;
    ngx_str_t                          name;
    u_char                             name_data[NGX_SOCKADDR_STRLEN];

    char                               errstr[NGX_HTTP_IDENTITY_RCONN_ERRLEN];

    size_t                             reply_size;  /* the reply read */
    ngx_uint_t                         reply_elts;

    unsigned                           err:1;
    unsigned                           refused:1;   /* a reply too big */
    unsigned                           ready:1;   /* connected, TLS done */
    unsigned                           in_callback:1;
    unsigned                           freeing:1;
    unsigned                           done:1;
};


/* NULL when it failed at once: "why" (ERRLEN bytes) says why */
ngx_http_identity_rconn_t *ngx_http_identity_rconn_connect(ngx_log_t *log,
    ngx_http_identity_redis_addr_t *addr, ngx_uint_t unix_socket,
    ngx_http_identity_redis_conf_t *conf, void *data,
    ngx_http_identity_rconn_event_pt connected,
    ngx_http_identity_rconn_event_pt closed, char *why);
ngx_int_t ngx_http_identity_rconn_command(ngx_http_identity_rconn_t *rc,
    ngx_http_identity_rconn_reply_pt handler, void *data, ngx_uint_t every,
    ngx_uint_t argc, const char **argv, const size_t *lens);
void ngx_http_identity_rconn_free(ngx_http_identity_rconn_t *rc);
ngx_int_t ngx_http_identity_rconn_numeric(u_char *host, size_t len);


#endif /* _NGX_HTTP_IDENTITY_REDIS_CONN_H_INCLUDED_ */
