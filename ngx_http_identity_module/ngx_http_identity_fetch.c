
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
static char *ngx_http_identity_json_value(json_t *root, const char *paths,
    ngx_uint_t groups);
static json_t *ngx_http_identity_json_path(json_t *root, const char *path,
    size_t len);
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
ngx_http_identity_json_strdup(json_t *obj, const char *key)
{
    const char  *s;

    s = json_string_value(json_object_get(obj, key));

    return s ? strdup(s) : NULL;
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


/*
 * A claim path: keys separated by dots, a number indexes an array
 * ("data.0.login"); "a|b" takes b when a is absent.  Strings come as they
 * are, integers in decimal, an array of strings one per line (groups).
 */

char *
ngx_http_identity_json_claim(json_t *root, const char *paths)
{
    return ngx_http_identity_json_value(root, paths, 0);
}


/*
 * Groups, one per line: a lone string is one group, and like a group of an
 * array it is dropped if it holds a newline, which would make it two.
 */

char *
ngx_http_identity_json_groups(json_t *root, const char *paths)
{
    return ngx_http_identity_json_value(root, paths, 1);
}


static char *
ngx_http_identity_json_value(json_t *root, const char *paths,
    ngx_uint_t groups)
{
    char        *out, *p;
    size_t       i, len, n;
    json_t      *v, *e;
    const char  *path, *end;

    for (path = paths; *path; path = end + 1) {
        end = strchr(path, '|');
        if (end == NULL) {
            end = path + strlen(path);
        }

        v = ngx_http_identity_json_path(root, path, end - path);

        if (json_is_string(v) && json_string_length(v)) {
            if (groups
                && memchr(json_string_value(v), '\n', json_string_length(v)))
            {
                return NULL;
            }

            return strdup(json_string_value(v));
        }

        if (json_is_integer(v)) {
            out = malloc(NGX_INT64_LEN + 1);
            if (out) {
                snprintf(out, NGX_INT64_LEN + 1, "%" JSON_INTEGER_FORMAT,
                         json_integer_value(v));
            }

            return out;
        }

        if (json_is_array(v) && json_array_size(v)) {
            len = 0;

            json_array_foreach(v, i, e) {
                len += json_is_string(e) ? json_string_length(e) + 1 : 0;
            }

            out = malloc(len + 1);
            if (out == NULL) {
                return NULL;
            }

            p = out;

            json_array_foreach(v, i, e) {
                n = json_is_string(e) ? json_string_length(e) : 0;

                if (n && memchr(json_string_value(e), '\n', n) == NULL) {
                    memcpy(p, json_string_value(e), n);
                    p += n;
                    *p++ = '\n';
                }
            }

            if (p > out) {
                p--;
            }

            *p = '\0';

            return out;
        }

        if (*end == '\0') {
            break;
        }
    }

    return NULL;
}


/*
 * Whether a provider vouches for an e-mail: the value at the path is JSON
 * true or the string "true" (AWS Cognito sends strings); with "stamp", a
 * non-empty date string (GitLab's confirmed_at) counts too.  Anything
 * else, absent included, does not.
 */

ngx_uint_t
ngx_http_identity_json_verified(json_t *root, const char *path,
    ngx_uint_t stamp)
{
    json_t      *v;
    const char  *s;

    v = ngx_http_identity_json_path(root, path, strlen(path));

    if (json_is_true(v)) {
        return 1;
    }

    if (!json_is_string(v)) {
        return 0;
    }

    s = json_string_value(v);

    if (strcmp(s, "true") == 0) {
        return 1;
    }

    return stamp && s[0] != '\0' && strcmp(s, "false") != 0;
}


static json_t *
ngx_http_identity_json_path(json_t *root, const char *path, size_t len)
{
    char        key[128], *endp;
    size_t      n;
    json_t     *v;
    long        index;
    const char  *p, *last, *dot;

    v = root;
    p = path;
    last = path + len;

    while (v && p < last) {
        dot = memchr(p, '.', last - p);
        if (dot == NULL) {
            dot = last;
        }

        n = dot - p;

        if (n == 0 || n >= sizeof(key)) {
            return NULL;
        }

        memcpy(key, p, n);
        key[n] = '\0';

        if (json_is_array(v)) {
            index = strtol(key, &endp, 10);
            v = (*endp == '\0' && index >= 0)
                ? json_array_get(v, (size_t) index) : NULL;

        } else {
            v = json_object_get(v, key);
        }

        p = dot + 1;
    }

    return v;
}
