
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_TASK_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_TASK_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* runs in a thread of the pool: no nginx pools, events or timers there */
typedef void (*ngx_http_identity_task_run_pt)(void *data);

/* runs back on the event loop */
typedef void (*ngx_http_identity_task_done_pt)(ngx_http_request_t *r,
    void *data);


ngx_int_t ngx_http_identity_task_post(ngx_http_request_t *r,
    ngx_http_identity_task_run_pt run, ngx_http_identity_task_done_pt done,
    void *data);


#endif /* _NGX_HTTP_IDENTITY_TASK_H_INCLUDED_ */
