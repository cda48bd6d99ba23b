
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_TASK_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_TASK_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>

#include "ngx_http_identity_types.h"


/*
 * The lanes of a provider's tasks, each under its http_concurrency: its
 * logins (ngx_http_identity_task_post), its sessions' userinfo refreshes,
 * its back-channel logout checks.
 */
#define NGX_HTTP_IDENTITY_TASK_LOGIN    0
#define NGX_HTTP_IDENTITY_TASK_REFRESH  1
#define NGX_HTTP_IDENTITY_TASK_LOGOUT   2
#define NGX_HTTP_IDENTITY_TASK_LANES    3


/* runs in a thread of the pool: no nginx pools, events or timers there */
typedef void (*ngx_http_identity_task_run_pt)(void *data);

/* runs back on the event loop */
typedef void (*ngx_http_identity_task_done_pt)(ngx_http_request_t *r,
    void *data);

/* runs back on the event loop instead of done when the client has gone */
typedef void (*ngx_http_identity_task_free_pt)(void *data);

/* a task that belongs to no request; runs back on the event loop */
typedef void (*ngx_http_identity_task_finish_pt)(void *data);


ngx_int_t ngx_http_identity_task_init_process(ngx_cycle_t *cycle,
    ngx_http_identity_main_conf_t *imcf);
ngx_int_t ngx_http_identity_task_post(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_http_identity_task_run_pt run,
    ngx_http_identity_task_done_pt done,
    ngx_http_identity_task_free_pt release, void *data);
ngx_int_t ngx_http_identity_task_post_apart(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_uint_t lane,
    ngx_http_identity_task_run_pt run, ngx_http_identity_task_done_pt done,
    ngx_http_identity_task_free_pt release, void *data);

ngx_thread_task_t *ngx_http_identity_task_post_detached(
    ngx_thread_pool_t *tp, ngx_log_t *log, ngx_http_identity_task_run_pt run,
    ngx_http_identity_task_finish_pt finish, void *data);

ngx_int_t ngx_http_identity_task_wait(ngx_http_request_t *r,
    ngx_queue_t *waiting);
void ngx_http_identity_task_wake(ngx_queue_t *waiting,
    ngx_http_identity_task_done_pt done, void *data);


#endif /* _NGX_HTTP_IDENTITY_TASK_H_INCLUDED_ */
