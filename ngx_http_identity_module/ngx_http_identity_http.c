
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * A plain GET of a document from an identity provider (SAML metadata) with
 * liboauth2's libcurl client.  It blocks, so it runs in thread tasks only.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <oauth2/oauth2.h>
#include <oauth2/http.h>
#include <oauth2/log.h>
#include <oauth2/mem.h>

#include "ngx_http_identity_http.h"


typedef struct {
    char    *buf;
    size_t   len;
} ngx_http_identity_http_err_t;


static void ngx_http_identity_http_sink(oauth2_log_sink_t *sink,
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
