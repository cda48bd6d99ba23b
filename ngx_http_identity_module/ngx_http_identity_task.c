
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * Work that may block (HTTP calls to identity providers, signature checks)
 * runs as nginx thread-pool tasks.  The request is marked blocked meanwhile,
 * as nginx does for threaded file I/O, so that it cannot be freed under the
 * thread's feet.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>

#include "ngx_http_identity_module.h"
#include "ngx_http_identity_task.h"


typedef struct {
    ngx_http_request_t              *request;
    ngx_http_identity_task_run_pt    run;
    ngx_http_identity_task_done_pt   done;
    void                            *data;
} ngx_http_identity_task_t;


static void ngx_http_identity_task_handler(void *data, ngx_log_t *log);
static void ngx_http_identity_task_event_handler(ngx_event_t *ev);


ngx_int_t
ngx_http_identity_task_post(ngx_http_request_t *r,
    ngx_http_identity_task_run_pt run, ngx_http_identity_task_done_pt done,
    void *data)
{
    ngx_thread_task_t              *task;
    ngx_http_identity_task_t       *t;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    task = ngx_thread_task_alloc(r->pool, sizeof(ngx_http_identity_task_t));
    if (task == NULL) {
        return NGX_ERROR;
    }

    t = task->ctx;
    t->request = r;
    t->run = run;
    t->done = done;
    t->data = data;

    task->handler = ngx_http_identity_task_handler;
    task->event.handler = ngx_http_identity_task_event_handler;
    task->event.data = t;

    if (ngx_thread_task_post(imcf->thread_pool, task) != NGX_OK) {
        return NGX_ERROR;
    }

    r->main->blocked++;
    r->aio = 1;

    return NGX_OK;
}


static void
ngx_http_identity_task_handler(void *data, ngx_log_t *log)
{
    ngx_http_identity_task_t  *t = data;

    t->run(t->data);
}


static void
ngx_http_identity_task_event_handler(ngx_event_t *ev)
{
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_identity_task_t  *t;

    t = ev->data;
    r = t->request;
    c = r->connection;

    r->main->blocked--;
    r->aio = 0;

    if (c->error) {
        ngx_http_finalize_request(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);

    } else {
        t->done(r, t->data);
    }

    ngx_http_run_posted_requests(c);
}
