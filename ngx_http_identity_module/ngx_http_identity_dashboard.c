
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The Identities dashboard: a page, a script and a style sheet from
 * dashboard/, compiled in by scripts/embed-dashboard.sh, served at the root
 * of the admin location next to the API they call.  The page runs under a
 * Content-Security-Policy that allows nothing but its own files and the
 * API, so that a name or a user agent string from an identity provider
 * cannot become script.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_dashboard.h"


typedef struct {
    ngx_str_t                            name;
    ngx_str_t                            type;
    const u_char                        *data;
    size_t                               len;
    ngx_str_t                            etag;      /* quoted */
} ngx_http_identity_dashboard_file_t;


#include "ngx_http_identity_dashboard_files.h"


static ngx_http_identity_dashboard_file_t *
    ngx_http_identity_dashboard_find(ngx_str_t *file);
static ngx_int_t ngx_http_identity_dashboard_headers(ngx_http_request_t *r,
    ngx_http_identity_dashboard_file_t *f);


static char  *ngx_http_identity_dashboard_security[] = {
    "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options", "nosniff",
    "Referrer-Policy", "no-referrer",
    "Cache-Control", "no-cache",
    NULL
};


ngx_int_t
ngx_http_identity_dashboard_handler(ngx_http_request_t *r, ngx_str_t *file)
{
    ngx_int_t                            rc;
    ngx_buf_t                           *b;
    ngx_chain_t                          out;
    ngx_http_identity_dashboard_file_t  *f;

    f = ngx_http_identity_dashboard_find(file);
    if (f == NULL) {
        return NGX_DECLINED;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        if (ngx_http_identity_add_header(r, "Allow", "GET, HEAD") == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "identity: dashboard \"%V\"", &f->name);

    if (ngx_http_identity_dashboard_headers(r, f) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* If-None-Match is answered by nginx's not_modified filter */

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the embedded bytes are only read: the buffer points at them */

    b->pos = (u_char *) f->data;
    b->last = b->pos + f->len;
    b->memory = f->len ? 1 : 0;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_http_identity_dashboard_file_t *
ngx_http_identity_dashboard_find(ngx_str_t *file)
{
    ngx_str_t                            name;
    ngx_http_identity_dashboard_file_t  *f;

    name = *file;

    while (name.len && name.data[0] == '/') {
        name.data++;
        name.len--;
    }

    if (name.len == 0) {
        ngx_str_set(&name, "index.html");
    }

    for (f = ngx_http_identity_dashboard_files; f->name.len; f++) {
        if (f->name.len == name.len
            && ngx_strncmp(f->name.data, name.data, name.len) == 0)
        {
            return f;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_identity_dashboard_headers(ngx_http_request_t *r,
    ngx_http_identity_dashboard_file_t *f)
{
    char             **h;
    ngx_table_elt_t   *etag;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = f->len;

    r->headers_out.content_type = f->type;
    r->headers_out.content_type_len = f->type.len;
    r->headers_out.content_type_lowcase = NULL;

    /* fixed at build time, so If-None-Match needs no Last-Modified */

    etag = ngx_http_identity_add_header(r, "ETag", NULL);
    if (etag == NULL) {
        return NGX_ERROR;
    }

    etag->value = f->etag;
    r->headers_out.etag = etag;

    for (h = ngx_http_identity_dashboard_security; *h; h += 2) {
        if (ngx_http_identity_add_header(r, h[0], h[1]) == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}
