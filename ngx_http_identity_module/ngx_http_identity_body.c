
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The POSTed forms of identity providers (a SAML response, a logout token),
 * read by the endpoints that run in the server rewrite phase; their
 * parameters are parse.c's (ngx_http_identity_form_arg()).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_body.h"


static void ngx_http_identity_body_handler(ngx_http_request_t *r);


/*
 * NGX_DONE: ctx->resume(r) is called once the body is in, with
 * ctx->body_ready set; or an HTTP status.  A body that is already in is
 * handled before this returns, and the answer may have ended the request:
 * after NGX_DONE the caller must not touch r, only return NGX_DONE.
 */

ngx_int_t
ngx_http_identity_read_body(ngx_http_request_t *r, size_t max)
{
    ngx_int_t  rc;

    if (r->headers_in.content_length_n > (off_t) max) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: request body of %O bytes is over %uz",
                      r->headers_in.content_length_n, max);
        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    r->request_body_in_single_buf = 1;

    /* as for any wait: the write event must not run the phases again */

    r->write_event_handler = ngx_http_request_empty_handler;

    rc = ngx_http_read_client_request_body(r, ngx_http_identity_body_handler);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    /* reading the body took a reference on the request: give it back */

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_DONE;
}


static void
ngx_http_identity_body_handler(ngx_http_request_t *r)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);
    ctx->body_ready = 1;

    ctx->resume(r);
}


/*
 * The body in one piece: NGX_DECLINED if over max (a chunked body has no
 * Content-Length to refuse it by earlier).  Past client_body_buffer_size it
 * is in a temporary file nginx has just written, and is read back.
 */

ngx_int_t
ngx_http_identity_body(ngx_http_request_t *r, size_t max, ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_ERROR;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > max) {
        return NGX_DECLINED;
    }

    if (len == 0) {
        return NGX_ERROR;
    }

    body->data = ngx_pnalloc(r->pool, len);
    if (body->data == NULL) {
        return NGX_ERROR;
    }

    p = body->data;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                              b->file_pos);
            if (n != b->file_last - b->file_pos) {
                return NGX_ERROR;
            }

            p += n;

        } else {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    body->len = p - body->data;

    return NGX_OK;
}
