
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_EVENTS_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_EVENTS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_identity_records.h"


/* an audit event (docs/events.md): what happened, to whom, by whom */

typedef struct {
    char                            *action;
    char                            *outcome;    /* or NULL */
    ngx_str_t                        reason;
    ngx_http_identity_session_t     *session;    /* whose, or NULL */
    ngx_str_t                        provider;
    ngx_str_t                        admin;      /* API: who did it */
    ngx_str_t                        target;     /* API: au_ or as_ id */
    ngx_str_t                        whose;      /* API: target's au_ */
    ngx_int_t                        count;      /* sessions; -1: none */
} ngx_http_identity_event_t;


/* a page of the stream (GET app/events), newest first */

typedef struct {
    ngx_str_t                        base;       /* the admin API's URL */
    ngx_uint_t                       limit;
    ngx_str_t                        before_id;
    ngx_str_t                        user;
    ngx_str_t                        action;
} ngx_http_identity_events_query_t;


/* rc NGX_OK with the answer's body (a page, or the stats), else NGX_ERROR */
typedef void (*ngx_http_identity_events_pt)(ngx_http_request_t *r,
    ngx_int_t rc, json_t *body);


void ngx_http_identity_event_init(ngx_http_identity_event_t *ev,
    char *action, char *reason, ngx_int_t count);
void ngx_http_identity_event(ngx_http_request_t *r,
    ngx_http_identity_event_t *ev);
void ngx_http_identity_event_login(ngx_http_request_t *r, ngx_uint_t success,
    char *reason);
void ngx_http_identity_event_session(ngx_http_request_t *r, char *action,
    char *reason, ngx_int_t count);
void ngx_http_identity_event_admin(ngx_http_request_t *r,
    ngx_str_t *token_hash, ngx_uint_t user, ngx_str_t *target,
    ngx_str_t *whose);
ngx_int_t ngx_http_identity_events_query(ngx_http_request_t *r,
    ngx_http_identity_events_query_t *q, char **msg);
ngx_int_t ngx_http_identity_events_list(ngx_http_request_t *r,
    ngx_http_identity_events_query_t *q, ngx_http_identity_events_pt done);
ngx_int_t ngx_http_identity_events_stats(ngx_http_request_t *r,
    ngx_uint_t week, ngx_http_identity_events_pt done);


#endif /* _NGX_HTTP_IDENTITY_EVENTS_H_INCLUDED_ */
