
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * Calls to identity providers with liboauth2's libcurl client: a plain GET
 * of a document (SAML metadata), and JSON GETs and form POSTs (OpenID
 * Connect, OAuth 2.0).  They block, so they run in thread tasks only; the
 * outcome goes back to the loop in a result, logged there.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <oauth2/oauth2.h>
#include <oauth2/http.h>
#include <oauth2/log.h>
#include <oauth2/mem.h>
#include <jansson.h>

#include "ngx_http_identity_fetch.h"


typedef struct {
    char    *buf;
    size_t   len;
} ngx_http_identity_http_err_t;


static void ngx_http_identity_http_sink(oauth2_log_sink_t *sink,
    const char *filename, unsigned long line, const char *function,
    oauth2_log_level_t level, const char *msg);
static void ngx_http_identity_http_log_sink(oauth2_log_sink_t *sink,
    const char *filename, unsigned long line, const char *function,
    oauth2_log_level_t level, const char *msg);


/* the body (malloc()ed), or NULL with the reason in err */

char *
ngx_http_identity_http_get(const char *url, ngx_msec_t timeout, char *err,
    size_t errlen)
{
    char                          *body, *copy;
    oauth2_log_t                  *log;
    oauth2_log_sink_t             *sink;
    oauth2_http_call_ctx_t        *hctx;
    oauth2_http_status_code_t      status;
    ngx_http_identity_http_err_t   e;

    e.buf = err;
    e.len = errlen;
    err[0] = '\0';

    body = NULL;
    copy = NULL;
    hctx = NULL;
    status = 0;

    sink = oauth2_log_sink_create(OAUTH2_LOG_ERROR,
                                  ngx_http_identity_http_sink, &e);
    log = sink ? oauth2_log_init(OAUTH2_LOG_ERROR, sink) : NULL;

    if (log == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    hctx = oauth2_http_call_ctx_init(log);
    if (hctx == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }

    oauth2_http_call_ctx_timeout_set(log, hctx, (int) ((timeout + 999) / 1000));

    if (!oauth2_http_get(log, url, NULL, hctx, &body, &status)) {
        if (err[0] == '\0') {
            snprintf(err, errlen, "\"%s\" is unreachable", url);
        }

        goto done;
    }

    if (status != 200) {
        snprintf(err, errlen, "\"%s\" answered %d", url, (int) status);
        goto done;
    }

    copy = strdup(body);
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
    }

done:

    if (body) {
        oauth2_mem_free(body);
    }

    if (hctx) {
        oauth2_http_call_ctx_free(log, hctx);
    }

    oauth2_log_free(log);

    return copy;
}


static void
ngx_http_identity_http_sink(oauth2_log_sink_t *sink, const char *filename,
    unsigned long line, const char *function, oauth2_log_level_t level,
    const char *msg)
{
    ngx_http_identity_http_err_t  *e;

    e = oauth2_log_sink_ctx_get(sink);

    if (e->buf[0] == '\0') {
        snprintf(e->buf, e->len, "%s", msg);
    }
}


/*
 * A GET (form == NULL) or a form POST; returns the body, and its JSON
 * object in *json, or NULL with the result set.
 */

char *
ngx_http_identity_http_call(oauth2_log_t *log, const char *url,
    oauth2_nv_list_t *form, oauth2_http_call_ctx_t *hctx,
    ngx_http_identity_http_result_t *res, json_t **json)
{
    return ngx_http_identity_http_fetch(log, url, form, hctx, res, json, 0);
}


/* as ngx_http_identity_http_call(), and any JSON value with "any" */

char *
ngx_http_identity_http_fetch(oauth2_log_t *log, const char *url,
    oauth2_nv_list_t *form, oauth2_http_call_ctx_t *hctx,
    ngx_http_identity_http_result_t *res, json_t **json, ngx_uint_t any)
{
    char                       *body, *copy;
    json_t                     *j;
    const char                 *error;
    oauth2_http_status_code_t   status;

    body = NULL;
    status = 0;

    if (!(form ? oauth2_http_post_form(log, url, form, hctx, &body, &status)
               : oauth2_http_get(log, url, NULL, hctx, &body, &status)))
    {
        ngx_http_identity_http_fail(res, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_LOG_ERR, "\"%s\" is unreachable%s%s",
                                    url, res->error[0] ? ": " : "",
                                    res->error);
        goto failed;
    }

    j = json_loads(body, JSON_REJECT_DUPLICATES, NULL);

    if (status < 200 || status > 299) {
        error = json_string_value(json_object_get(j, "error"));

        if (status == 400 && error && strcmp(error, "invalid_grant") == 0) {
            /* a used, expired or foreign code: the browser's doing */
            ngx_http_identity_http_fail(res, NGX_HTTP_FORBIDDEN,
                                        NGX_LOG_INFO,
                                        "\"%s\" answered invalid_grant", url);

        } else {
            ngx_http_identity_http_fail(res, status >= 500
                                             ? NGX_HTTP_SERVICE_UNAVAILABLE
                                             : NGX_HTTP_FORBIDDEN,
                                        NGX_LOG_ERR,
                                        "\"%s\" answered %d %s", url,
                                        (int) status, error ? error : "");
        }

        if (j) {
            json_decref(j);
        }

        goto failed;
    }

    if (any ? j == NULL : !json_is_object(j)) {
        ngx_http_identity_http_fail(res, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_LOG_ERR,
                                    "\"%s\" did not answer a JSON object",
                                    url);
        if (j) {
            json_decref(j);
        }

        goto failed;
    }

    *json = j;

    copy = strdup(body);
    oauth2_mem_free(body);

    return copy;

failed:

    if (body) {
        oauth2_mem_free(body);
    }

    return NULL;
}

/* what every thread task needs to call the provider */

ngx_int_t
ngx_http_identity_http_begin(ngx_http_identity_http_result_t *res,
    ngx_msec_t timeout, oauth2_log_t **log, oauth2_http_call_ctx_t **hctx)
{
    *log = ngx_http_identity_http_log(res);
    *hctx = *log ? oauth2_http_call_ctx_init(*log) : NULL;

    if (*hctx == NULL) {
        ngx_http_identity_http_fail(res, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_LOG_ERR, "out of memory");
        return NGX_ERROR;
    }

    oauth2_http_call_ctx_timeout_set(*log, *hctx,
                                     (int) ((timeout + 999) / 1000));

    return NGX_OK;
}

/* a call context for JSON APIs: some refuse clients without a User-Agent */

oauth2_http_call_ctx_t *
ngx_http_identity_http_ctx(ngx_http_identity_http_result_t *res,
    oauth2_log_t *log, ngx_msec_t timeout)
{
    oauth2_http_call_ctx_t  *hctx;

    hctx = oauth2_http_call_ctx_init(log);
    if (hctx == NULL) {
        ngx_http_identity_http_fail(res, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_LOG_ERR, "out of memory");
        return NULL;
    }

    oauth2_http_call_ctx_timeout_set(log, hctx,
                                     (int) ((timeout + 999) / 1000));
    oauth2_http_call_ctx_hdr_set(log, hctx, "Accept", "application/json");
    oauth2_http_call_ctx_hdr_set(log, hctx, "User-Agent",
                                 "ngx_http_identity_module");

    return hctx;
}


oauth2_log_t *
ngx_http_identity_http_log(ngx_http_identity_http_result_t *res)
{
    oauth2_log_sink_t  *sink;

    sink = oauth2_log_sink_create(OAUTH2_LOG_ERROR,
                                  ngx_http_identity_http_log_sink, res);
    if (sink == NULL) {
        return NULL;
    }

    return oauth2_log_init(OAUTH2_LOG_ERROR, sink);
}

/*
 * liboauth2's errors are kept for the log line written on the loop; the
 * first one says why (a body over liboauth2's 1 MiB, say), the ones after
 * it only that curl stopped.
 */

static void
ngx_http_identity_http_log_sink(oauth2_log_sink_t *sink, const char *filename,
    unsigned long line, const char *function, oauth2_log_level_t level,
    const char *msg)
{
    ngx_http_identity_http_result_t  *res;

    res = oauth2_log_sink_ctx_get(sink);

    if (res->status == 0 && res->error[0] == '\0') {
        snprintf(res->error, NGX_HTTP_IDENTITY_ERRLEN, "%s", msg);
        ngx_http_identity_log_safe(res->error);
    }
}


/*
 * Error texts quote what a provider or a client sent (URLs, XML attributes,
 * JSON messages): a control character there would end the log line and
 * start a forged one.
 */

void
ngx_http_identity_log_safe(char *s)
{
    for ( /* void */ ; *s; s++) {
        if ((u_char) *s < 0x20 || (u_char) *s == 0x7f) {
            *s = '?';
        }
    }
}

void
ngx_http_identity_http_fail(ngx_http_identity_http_result_t *res,
    ngx_int_t status, ngx_uint_t level, const char *fmt, ...)
{
    char     buf[NGX_HTTP_IDENTITY_ERRLEN];
    va_list  args;

    if (res->status) {
        return;         /* the first failure is the one that matters */
    }

    va_start(args, fmt);
    vsnprintf(buf, sizeof(buf), fmt, args);
    va_end(args);

    ngx_http_identity_log_safe(buf);
    ngx_memcpy(res->error, buf, sizeof(buf));
    res->status = status;
    res->level = level;
}

char *
ngx_http_identity_cstr(ngx_pool_t *pool, ngx_str_t *s)
{
    char  *p;

    p = ngx_pnalloc(pool, s->len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s->data, s->len);
    p[s->len] = '\0';

    return p;
}

char *
ngx_http_identity_dup_str(ngx_pool_t *pool, const char *s)
{
    ngx_str_t  v;

    if (s == NULL) {
        return NULL;
    }

    v.data = (u_char *) s;
    v.len = ngx_strlen(s);

    return ngx_http_identity_cstr(pool, &v);
}

ngx_int_t
ngx_http_identity_pool_str(ngx_pool_t *pool, char *s, ngx_str_t *out)
{
    if (s == NULL) {
        ngx_str_null(out);
        return NGX_OK;
    }

    out->len = ngx_strlen(s);
    out->data = ngx_pnalloc(pool, out->len + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, s, out->len + 1);

    return NGX_OK;
}
