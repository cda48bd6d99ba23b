
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * Work that may block (HTTP calls to identity providers, signature checks)
 * runs as nginx thread-pool tasks.  The request is marked blocked meanwhile,
 * as nginx does for threaded file I/O, so that it cannot be freed under the
 * thread's feet.
 *
 * Contract of a request's task: back on the loop exactly one of "done" (the
 * request is still there) or "release" (the client has gone) runs; either
 * one frees what "run" malloc()ed.
 *
 * A detached task belongs to no request (a provider's discovery): requests
 * that need its outcome wait for it in a queue, blocked the same way, and
 * are woken by whoever finishes it, each with "done", or finalized if their
 * client has gone meanwhile.
 *
 * A request's task is for a provider, and a provider may have at most
 * http_concurrency of them in this worker's pool at a time: one provider
 * that hangs holds that many threads until http_timeout, never the whole
 * pool, so the other providers' logins go on.  Past the cap the task is
 * refused at once (NGX_DECLINED: 503), logged at error once per
 * NGX_HTTP_IDENTITY_TASK_TELL seconds and provider, else at info.  Its
 * sessions' userinfo refreshes and the checks of its back-channel logout
 * tokens are counted apart, each under a cap of its own: logins that hang,
 * or that anyone keeps busy with codes of their own, must not skip a
 * refresh (a user the provider no longer admits would keep the session
 * one more interval) or make a logout fail (the provider may never send
 * it again).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_task.h"


#define NGX_HTTP_IDENTITY_TASK_TELL  5


/* per worker and provider */

typedef struct {
    ngx_uint_t                         busy;
    time_t                             told;
} ngx_http_identity_task_slot_t;


typedef struct {
    ngx_http_request_t                *request;
    ngx_http_identity_task_slot_t     *slot;
    ngx_http_identity_task_run_pt      run;
    ngx_http_identity_task_done_pt     done;
    ngx_http_identity_task_free_pt     release;
    ngx_http_identity_task_finish_pt   finish;
    void                              *data;
} ngx_http_identity_task_t;


typedef struct {
    ngx_queue_t                        queue;
    ngx_http_request_t                *request;
} ngx_http_identity_task_waiter_t;


static void ngx_http_identity_task_handler(void *data, ngx_log_t *log);
static void ngx_http_identity_task_event_handler(ngx_event_t *ev);
static void ngx_http_identity_task_detached_handler(ngx_event_t *ev);
static void ngx_http_identity_task_block(ngx_http_request_t *r);
static ngx_uint_t ngx_http_identity_task_unblock(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_task_full(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_http_identity_task_slot_t *slot,
    ngx_uint_t lane);


/* per worker: the providers' logins, then their refreshes, then logouts */

static ngx_array_t  ngx_http_identity_task_slots;
static ngx_uint_t   ngx_http_identity_task_nproviders;


ngx_int_t
ngx_http_identity_task_init_process(ngx_cycle_t *cycle,
    ngx_http_identity_main_conf_t *imcf)
{
    ngx_uint_t  n;

    ngx_http_identity_task_nproviders = imcf->providers.nelts;
    n = NGX_HTTP_IDENTITY_TASK_LANES * imcf->providers.nelts;

    if (ngx_array_init(&ngx_http_identity_task_slots, cycle->pool, n + 1,
                       sizeof(ngx_http_identity_task_slot_t))
        != NGX_OK
        || ngx_array_push_n(&ngx_http_identity_task_slots, n + 1) == NULL)
    {
        return NGX_ERROR;
    }

    ngx_memzero(ngx_http_identity_task_slots.elts,
                (n + 1) * sizeof(ngx_http_identity_task_slot_t));

    return NGX_OK;
}


/* NGX_OK, NGX_DECLINED if the provider has its cap of tasks, or an error */

ngx_int_t
ngx_http_identity_task_post(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_http_identity_task_run_pt run,
    ngx_http_identity_task_done_pt done,
    ngx_http_identity_task_free_pt release, void *data)
{
    return ngx_http_identity_task_post_apart(r, pr,
                                             NGX_HTTP_IDENTITY_TASK_LOGIN,
                                             run, done, release, data);
}


/* the same, under the cap of one lane (NGX_HTTP_IDENTITY_TASK_*) */

ngx_int_t
ngx_http_identity_task_post_apart(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_uint_t lane,
    ngx_http_identity_task_run_pt run, ngx_http_identity_task_done_pt done,
    ngx_http_identity_task_free_pt release, void *data)
{
    ngx_thread_task_t              *task;
    ngx_http_identity_task_t       *t;
    ngx_http_identity_task_slot_t  *slot;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    slot = ngx_http_identity_task_slots.elts;
    slot = &slot[lane * ngx_http_identity_task_nproviders + pr->index];

    if (slot->busy >= pr->http_concurrency) {
        return ngx_http_identity_task_full(r, pr, slot, lane);
    }

    task = ngx_thread_task_alloc(r->pool, sizeof(ngx_http_identity_task_t));
    if (task == NULL) {
        return NGX_ERROR;
    }

    t = task->ctx;
    t->request = r;
    t->slot = slot;
    t->run = run;
    t->done = done;
    t->release = release;
    t->data = data;

    task->handler = ngx_http_identity_task_handler;
    task->event.handler = ngx_http_identity_task_event_handler;
    task->event.data = t;

    if (ngx_thread_task_post(imcf->thread_pool, task) != NGX_OK) {
        return NGX_ERROR;
    }

    slot->busy++;

    ngx_http_identity_task_block(r);

    return NGX_OK;
}


static ngx_int_t
ngx_http_identity_task_full(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_http_identity_task_slot_t *slot,
    ngx_uint_t lane)
{
    ngx_uint_t                level;
    ngx_http_identity_ctx_t  *ctx;

    static const char  *what[] = {
        "calls", "logins answer 503",
        "userinfo refreshes", "refreshes are skipped",
        "logout checks", "back-channel logouts answer 503"
    };

    level = NGX_LOG_INFO;

    if (ngx_time() - slot->told >= NGX_HTTP_IDENTITY_TASK_TELL) {
        slot->told = ngx_time();
        level = NGX_LOG_ERR;
    }

    ngx_log_error(level, r->connection->log, 0,
                  "identity: provider \"%V\" has %ui %s in flight in "
                  "this worker (http_concurrency): %s until one ends",
                  &pr->name, slot->busy, what[2 * lane], what[2 * lane + 1]);

    /* the 503 that follows was said; a skipped refresh is no failure */

    ctx = ngx_http_get_module_ctx(r, ngx_http_identity_module);
    if (ctx && lane != NGX_HTTP_IDENTITY_TASK_REFRESH) {
        ctx->told = 1;
    }

    return NGX_DECLINED;
}


/*
 * The task is malloc()ed: it may outlive any request.  "finish" runs on the
 * loop once "run" is over, frees "data", and the task is freed after it.
 * If the worker exits first, "finish" never runs: the owner then frees
 * "data" and, with ngx_free(), the task returned here.
 */

ngx_thread_task_t *
ngx_http_identity_task_post_detached(ngx_thread_pool_t *tp, ngx_log_t *log,
    ngx_http_identity_task_run_pt run,
    ngx_http_identity_task_finish_pt finish, void *data)
{
    ngx_thread_task_t         *task;
    ngx_http_identity_task_t  *t;

    task = ngx_calloc(sizeof(ngx_thread_task_t)
                      + sizeof(ngx_http_identity_task_t), log);
    if (task == NULL) {
        return NULL;
    }

    t = (ngx_http_identity_task_t *) (task + 1);
    t->run = run;
    t->finish = finish;
    t->data = data;

    task->ctx = t;
    task->handler = ngx_http_identity_task_handler;
    task->event.handler = ngx_http_identity_task_detached_handler;
    task->event.data = task;
    task->event.log = log;

    if (ngx_thread_task_post(tp, task) != NGX_OK) {
        ngx_free(task);
        return NULL;
    }

    return task;
}


/* the request waits in the queue until ngx_http_identity_task_wake() */

ngx_int_t
ngx_http_identity_task_wait(ngx_http_request_t *r, ngx_queue_t *waiting)
{
    ngx_http_identity_task_waiter_t  *w;

    w = ngx_palloc(r->pool, sizeof(ngx_http_identity_task_waiter_t));
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->request = r;
    ngx_queue_insert_tail(waiting, &w->queue);

    ngx_http_identity_task_block(r);

    return NGX_OK;
}


void
ngx_http_identity_task_wake(ngx_queue_t *waiting,
    ngx_http_identity_task_done_pt done, void *data)
{
    ngx_queue_t                       all, *q;
    ngx_connection_t                 *c;
    ngx_http_request_t               *r;
    ngx_http_identity_task_waiter_t  *w;

    /* "done" may make a request wait again: on the queue, not on this list */

    if (ngx_queue_empty(waiting)) {
        return;
    }

    all = *waiting;
    all.next->prev = &all;
    all.prev->next = &all;
    ngx_queue_init(waiting);

    while (!ngx_queue_empty(&all)) {
        q = ngx_queue_head(&all);
        ngx_queue_remove(q);

        w = ngx_queue_data(q, ngx_http_identity_task_waiter_t, queue);
        r = w->request;
        c = r->connection;

        if (ngx_http_identity_task_unblock(r)) {
            done(r, data);
        }

        ngx_http_run_posted_requests(c);
    }
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

    t->slot->busy--;

    if (ngx_http_identity_task_unblock(r)) {
        t->done(r, t->data);

    } else if (t->release) {
        t->release(t->data);
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_identity_task_detached_handler(ngx_event_t *ev)
{
    ngx_thread_task_t         *task;
    ngx_http_identity_task_t  *t;

    task = ev->data;
    t = task->ctx;

    t->finish(t->data);

    ngx_free(task);
}


/*
 * Meanwhile a client that closes the connection is noticed, as the proxy
 * module notices it: the request is then finalized once unblocked, and what
 * its task found is freed, not used.
 */

static void
ngx_http_identity_task_block(ngx_http_request_t *r)
{
    r->main->blocked++;
    r->aio = 1;
    r->read_event_handler = ngx_http_test_reading;
}


/* 1 if the request goes on; 0 if its client went away (it is finalized) */

static ngx_uint_t
ngx_http_identity_task_unblock(ngx_http_request_t *r)
{
    ngx_connection_t  *c;

    c = r->connection;

    r->main->blocked--;
    r->aio = 0;
    r->read_event_handler = ngx_http_block_reading;

    if (c->error) {
        ngx_http_finalize_request(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);
        return 0;
    }

    /*
     * A close that came with the request itself raised no event since:
     * this finalizes the request if its client has gone.
     */

    ngx_http_test_reading(r);

    return !c->error;
}
