
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * identity_audit_log (docs/events.md): the audit events' file and syslog
 * copies, besides the stream (events.c makes the documents).
 *
 * The file is opened by nginx (ngx_conf_open_file: O_APPEND, reopened on
 * USR1) and never written on the event loop: its target may be slow or
 * blocked (a full disk, NFS, a FIFO nobody reads).  Each worker appends
 * whole lines to a buffer of NGX_HTTP_IDENTITY_AUDIT_BUF bytes; one
 * thread-pool task at a time writes what the buffer held when it was
 * posted, with one write() of whole lines, on a dup() of the file's
 * descriptor taken then (a reopen may close the old one meanwhile).  The
 * buffers are swapped at each post, so the lines that come meanwhile go
 * with the next task, posted when this one ends: lines stay in order.  A
 * write that stopped within a line (a full disk takes what fits) leaves
 * a part of it at the file's end: the next task ends it with a "\n"
 * first, so that its own first line is not glued to it.  A
 * line that finds the buffer full is dropped and counted, and the count
 * is logged at error at most once per NGX_HTTP_IDENTITY_AUDIT_TELL
 * seconds.  At the worker's exit (the thread pool's threads are over by
 * then) what is left is written at once.
 *
 * Syslog is nginx's ngx_syslog: one UDP datagram a document, on a
 * non-blocking socket, sent at once.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_task.h"
#include "ngx_http_identity_audit_log.h"


#define NGX_HTTP_IDENTITY_AUDIT_BUF      65536   /* bytes a worker holds */
#define NGX_HTTP_IDENTITY_AUDIT_TELL     5       /* s between lost-lines logs */
#define NGX_HTTP_IDENTITY_AUDIT_HEADER   512     /* syslog's, with its tag */


/* what a task writes, and how it went: one in flight a worker */

typedef struct {
    ngx_fd_t                 fd;
    u_char                  *buf;
    size_t                   len;
    size_t                   written;
    ngx_err_t                err;
    ngx_uint_t               torn;     /* a part of a line to end first */
} ngx_http_identity_audit_job_t;


/* per worker */

typedef struct {
    ngx_open_file_t                *file;
    ngx_thread_pool_t              *pool;
    ngx_log_t                      *log;
    u_char                         *buf;       /* the lines that wait */
    size_t                          len;
    u_char                         *spare;     /* the task's, or free */
    ngx_thread_task_t              *task;      /* in flight, or NULL */
    ngx_http_identity_audit_job_t   job;
    ngx_uint_t                      lost;      /* lines, since last said */
    time_t                          told;
    ngx_uint_t                      torn;      /* the file ends mid-line */
} ngx_http_identity_audit_file_t;


static void ngx_http_identity_audit_syslog(ngx_http_request_t *r,
    ngx_syslog_peer_t *peer, ngx_str_t *line);
static void ngx_http_identity_audit_post(void);
static void ngx_http_identity_audit_run(void *data);
static void ngx_http_identity_audit_finish(void *data);
static void ngx_http_identity_audit_lost(ngx_uint_t lines, time_t now);
static ngx_uint_t ngx_http_identity_audit_lines(u_char *p, size_t len);
static ngx_uint_t ngx_http_identity_audit_torn(
    ngx_http_identity_audit_job_t *job);


static ngx_http_identity_audit_file_t  ngx_http_identity_audit_file;


/* identity_audit_log PATH|syslog:server=...[,tag=...] [json]; */

char *
ngx_http_identity_audit_log(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_identity_main_conf_t *imcf = conf;

    ngx_str_t  *value, name;

    value = cf->args->elts;

    if (cf->args->nelts == 3
        && ngx_strcmp(value[2].data, "json") != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\"", &value[2],
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    /* one file and one syslog server at most */

    if (ngx_strncmp(value[1].data, "syslog:", 7) == 0) {
        if (imcf->audit_syslog) {
            return "is duplicate";
        }

        imcf->audit_syslog = ngx_pcalloc(cf->pool, sizeof(ngx_syslog_peer_t));
        if (imcf->audit_syslog == NULL) {
            return NGX_CONF_ERROR;
        }

        return ngx_syslog_process_conf(cf, imcf->audit_syslog);
    }

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"\" in \"%V\"", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (imcf->audit_file) {
        return "is duplicate";
    }

    if (ngx_conf_full_name(cf->cycle, &value[1], 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    imcf->audit_file = ngx_conf_open_file(cf->cycle, &value[1]);
    if (imcf->audit_file == NULL) {
        return NGX_CONF_ERROR;
    }

    /* the providers' pool, the same whether they come or not */

    ngx_str_set(&name, "default");

    imcf->thread_pool = ngx_thread_pool_add(cf, &name);
    if (imcf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_identity_audit_log_init_process(ngx_cycle_t *cycle,
    ngx_http_identity_main_conf_t *imcf)
{
    ngx_http_identity_audit_file_t  *af;

    af = &ngx_http_identity_audit_file;

    if (imcf->audit_file == NULL) {
        return NGX_OK;
    }

    af->buf = ngx_alloc(NGX_HTTP_IDENTITY_AUDIT_BUF, cycle->log);
    af->spare = ngx_alloc(NGX_HTTP_IDENTITY_AUDIT_BUF, cycle->log);

    if (af->buf == NULL || af->spare == NULL) {
        return NGX_ERROR;
    }

    af->file = imcf->audit_file;
    af->pool = imcf->thread_pool;
    af->log = cycle->log;

    return NGX_OK;
}


/*
 * The thread pool's exit ran before this module's: a task in flight has
 * written, and its "finish" will not run.  What it could not write is
 * counted, and what waits is written here, on the loop, as a task writes
 * (on after EINTR or a part: a signal, such as timer_resolution's, ends a
 * write to a slow FIFO early).
 */

void
ngx_http_identity_audit_log_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_identity_audit_job_t   *job;
    ngx_http_identity_audit_file_t  *af;

    af = &ngx_http_identity_audit_file;

    if (af->file == NULL) {
        return;
    }

    job = &af->job;

    if (af->task) {
        ngx_free(af->task);
        af->task = NULL;

        if (job->err) {
            af->lost += ngx_http_identity_audit_lines(job->buf + job->written,
                                                      job->len - job->written);
        }

        af->torn = ngx_http_identity_audit_torn(job);
    }

    if (af->len) {
        job->fd = dup(af->file->fd);
        job->buf = af->buf;
        job->len = af->len;
        job->written = 0;
        job->err = (job->fd == NGX_INVALID_FILE) ? ngx_errno : 0;
        job->torn = af->torn;

        if (job->err == 0) {
            ngx_http_identity_audit_run(job);
        }

        if (job->err) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, job->err,
                          "identity: audit log \"%s\" not written",
                          af->file->name.data);
            af->lost += ngx_http_identity_audit_lines(job->buf + job->written,
                                                      job->len - job->written);
        }

        af->len = 0;
    }

    if (af->lost) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                      "identity: audit log \"%s\": lines lost: %ui",
                      af->file->name.data, af->lost);
    }

    ngx_free(af->buf);
    ngx_free(af->spare);
    ngx_memzero(af, sizeof(ngx_http_identity_audit_file_t));
}


/* a document to each of identity_audit_log's targets */

void
ngx_http_identity_audit_log_write(ngx_http_request_t *r, ngx_str_t *line)
{
    u_char                          *p;
    ngx_http_identity_audit_file_t  *af;
    ngx_http_identity_main_conf_t   *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    if (imcf->audit_syslog) {
        ngx_http_identity_audit_syslog(r, imcf->audit_syslog, line);
    }

    af = &ngx_http_identity_audit_file;

    if (af->file == NULL) {
        return;
    }

    /* a whole line, or none */

    if (line->len + 1 > NGX_HTTP_IDENTITY_AUDIT_BUF - af->len) {
        ngx_http_identity_audit_lost(1, ngx_time());
        return;
    }

    p = ngx_cpymem(af->buf + af->len, line->data, line->len);
    *p++ = '\n';
    af->len = p - af->buf;

    if (af->task == NULL) {
        ngx_http_identity_audit_post();
    }
}


static void
ngx_http_identity_audit_syslog(ngx_http_request_t *r, ngx_syslog_peer_t *peer,
    ngx_str_t *line)
{
    u_char  *buf, *p;

    /* busy: what ngx_syslog logs of its own failure does not come here */

    if (peer->busy) {
        return;
    }

    buf = ngx_pnalloc(r->pool, NGX_HTTP_IDENTITY_AUDIT_HEADER + line->len);
    if (buf == NULL) {
        return;
    }

    p = ngx_syslog_add_header(peer, buf);
    p = ngx_cpymem(p, line->data, line->len);

    peer->busy = 1;
    (void) ngx_syslog_send(peer, buf, p - buf);
    peer->busy = 0;
}


/* the lines that wait go to a task; they wait on if it cannot be posted */

static void
ngx_http_identity_audit_post(void)
{
    u_char                          *p;
    ngx_http_identity_audit_job_t   *job;
    ngx_http_identity_audit_file_t  *af;

    af = &ngx_http_identity_audit_file;
    job = &af->job;

    job->fd = dup(af->file->fd);

    if (job->fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_ERR, af->log, ngx_errno,
                      "identity: audit log \"%s\": dup() failed",
                      af->file->name.data);
        return;
    }

    job->buf = af->buf;
    job->len = af->len;
    job->written = 0;
    job->err = 0;
    job->torn = af->torn;

    af->task = ngx_http_identity_task_post_detached(af->pool, af->log,
                   ngx_http_identity_audit_run,
                   ngx_http_identity_audit_finish, job);
    if (af->task == NULL) {
        (void) ngx_close_file(job->fd);
        return;
    }

    p = af->buf;
    af->buf = af->spare;
    af->spare = p;
    af->len = 0;
}


/* in a thread (or at exit): the lines at once, the rest after a part */

static void
ngx_http_identity_audit_run(void *data)
{
    ngx_http_identity_audit_job_t  *job = data;

    ssize_t  n;

    while (job->torn) {
        n = ngx_write_fd(job->fd, "\n", 1);

        if (n == 1) {
            job->torn = 0;
            break;
        }

        if (n == -1 && ngx_errno == NGX_EINTR) {
            continue;
        }

        job->err = (n == -1) ? ngx_errno : NGX_ENOSPC;
        (void) ngx_close_file(job->fd);
        return;
    }

    while (job->written < job->len) {
        n = ngx_write_fd(job->fd, job->buf + job->written,
                         job->len - job->written);

        if (n == -1) {
            if (ngx_errno == NGX_EINTR) {
                continue;
            }

            job->err = ngx_errno;
            break;
        }

        if (n == 0) {
            job->err = NGX_ENOSPC;
            break;
        }

        job->written += n;
    }

    (void) ngx_close_file(job->fd);
}


/* on the loop: the task is over, the next takes what waits */

static void
ngx_http_identity_audit_finish(void *data)
{
    ngx_http_identity_audit_job_t  *job = data;

    ngx_uint_t                       lines;
    ngx_http_identity_audit_file_t  *af;

    af = &ngx_http_identity_audit_file;
    af->task = NULL;
    af->torn = ngx_http_identity_audit_torn(job);

    if (job->err) {
        lines = ngx_http_identity_audit_lines(job->buf + job->written,
                                              job->len - job->written);

        if (ngx_time() - af->told >= NGX_HTTP_IDENTITY_AUDIT_TELL) {
            ngx_log_error(NGX_LOG_ERR, af->log, job->err,
                          "identity: audit log \"%s\" not written",
                          af->file->name.data);
        }

        ngx_http_identity_audit_lost(lines, ngx_time());

    } else {
        ngx_http_identity_audit_lost(0, ngx_time());
    }

    if (af->len) {
        ngx_http_identity_audit_post();
    }
}


/* lines lost: counted, and said at most once per interval */

static void
ngx_http_identity_audit_lost(ngx_uint_t lines, time_t now)
{
    ngx_http_identity_audit_file_t  *af;

    af = &ngx_http_identity_audit_file;
    af->lost += lines;

    if (af->lost == 0
        || now - af->told < NGX_HTTP_IDENTITY_AUDIT_TELL)
    {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, af->log, 0,
                  "identity: audit log \"%s\": lines lost: %ui, its target "
                  "too slow or failing", af->file->name.data, af->lost);

    af->lost = 0;
    af->told = now;
}


/* whole lines in a part written: the ends of lines in it */

static ngx_uint_t
ngx_http_identity_audit_lines(u_char *p, size_t len)
{
    u_char      *last;
    ngx_uint_t   n;

    n = 0;
    last = p + len;

    while (p < last) {
        p = ngx_strlchr(p, last, '\n');
        if (p == NULL) {
            break;
        }

        n++;
        p++;
    }

    return n;
}


/* the file ends within a line once this job is over */

static ngx_uint_t
ngx_http_identity_audit_torn(ngx_http_identity_audit_job_t *job)
{
    return job->torn
           || (job->err && job->written && job->buf[job->written - 1] != '\n');
}
