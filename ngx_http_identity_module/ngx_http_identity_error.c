
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The answer to a login that failed: a small page for a person, with what
 * happened, a link to try again and the request id the error log shows;
 * JSON for any other client.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_error.h"
#include "ngx_http_identity_redis.h"


typedef struct {
    ngx_str_t                   code;       /* JSON "error" */
    ngx_str_t                   text;       /* plain words, no markup */
} ngx_http_identity_error_t;


static ngx_uint_t ngx_http_identity_error_has_header(ngx_http_request_t *r,
    char *name);


static ngx_http_identity_error_t  ngx_http_identity_errors[] = {

    { ngx_string("login_expired"),
      ngx_string("This sign-in link has expired, was already used, or was "
                 "opened in another browser than the one that started the "
                 "sign-in.") },

    { ngx_string("invalid_request"),
      ngx_string("This sign-in link is not valid.") },

    { ngx_string("login_cancelled"),
      ngx_string("The sign-in was cancelled or refused at the identity "
                 "provider.") },

    { ngx_string("login_refused"),
      ngx_string("The answer of the identity provider could not be "
                 "accepted, so you are not signed in.") },

    { ngx_string("temporarily_unavailable"),
      ngx_string("Signing in is not possible right now. Please try again "
                 "in a moment.") },

    { ngx_string("provider_error"),
      ngx_string("The identity provider could not be reached, or its "
                 "answer could not be used.") },

    { ngx_string("internal_error"),
      ngx_string("Something went wrong on this site while signing you "
                 "in.") },

    /* the risk signals, in the order of ngx_http_identity_risk.h */

    { ngx_string("risk_new_country"),
      ngx_string("This sign-in was blocked because it came from a country "
                 "this account has not used before. Contact your "
                 "administrator.") },

    { ngx_string("risk_new_device"),
      ngx_string("This sign-in was blocked because it came from a kind of "
                 "device or an operating system this account has not used "
                 "before. Contact your administrator.") },

    { ngx_string("risk_impossible_travel"),
      ngx_string("This sign-in was blocked because it came from too far "
                 "away from the last one for the time between them. "
                 "Contact your administrator.") },

    { ngx_string("risk_concurrent_sessions"),
      ngx_string("This sign-in was blocked because this account has too "
                 "many sessions open. Sign out elsewhere, or contact your "
                 "administrator.") }
};


/* what ngx_http_finalize_request() is to be called with */

ngx_int_t
ngx_http_identity_error_page(ngx_http_request_t *r, ngx_int_t status,
    ngx_uint_t reason, ngx_str_t *retry, ngx_str_t *request_id)
{
    u_char                     *p;
    size_t                      len;
    ngx_buf_t                  *b;
    ngx_uint_t                  level;
    ngx_table_elt_t            *h;
    ngx_http_identity_ctx_t    *ctx;
    ngx_http_identity_error_t  *e;

    static u_char  head[] = NGX_HTTP_IDENTITY_PAGE_HEAD("Sign-in failed")
                            "<p id=\"reason\">";
    static u_char  mid[] = "</p>" CRLF "<p><a id=\"retry\" href=\"";
    static u_char  mid2[] = "\">Try again</a></p>" CRLF
                            "<p><small>If this keeps happening, give the "
                            "site's administrator this request id: "
                            "<code id=\"request-id\">";
    static u_char  tail[] = "</code></small></p>" CRLF "</body></html>" CRLF;

    e = &ngx_http_identity_errors[reason];

    /*
     * A client's mistake was logged where it was found; a failure of the
     * store is not always logged with its request, so every 5xx is here,
     * with the request id the page shows.
     */

    if (status >= NGX_HTTP_INTERNAL_SERVER_ERROR) {

        /*
         * While Redis is down its state changes are logged (redis.c); a
         * provider's failure was logged where it was found (ctx->told):
         * one [error] line per failure, this one then at info.
         */

        ctx = ngx_http_identity_get_ctx(r);

        level = ((status == NGX_HTTP_SERVICE_UNAVAILABLE
                  && ngx_http_identity_redis_down())
                 || (ctx && ctx->told))
                ? NGX_LOG_INFO : NGX_LOG_ERR;
        ngx_log_error(level, r->connection->log, 0,
                      "identity: sign-in failed with %i \"%V\"",
                      status, &e->code);
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a backoff may have said when to come back already */

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE
        && !ngx_http_identity_error_has_header(r, "Retry-After"))
    {
        h = ngx_http_identity_add_header(r, "Retry-After",
                                         NGX_HTTP_IDENTITY_RETRY_AFTER);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (!ngx_http_identity_is_navigation(r)) {

        /* the words and the id are plain ASCII with no '"' or '\' */

        len = sizeof("{\"error\":\"\",\"error_description\":\"\","
                     "\"request_id\":\"\"}") - 1
              + e->code.len + e->text.len + request_id->len;

        b = ngx_create_temp_buf(r->pool, len);
        if (b == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->last = ngx_sprintf(b->last,
                              "{\"error\":\"%V\",\"error_description\":"
                              "\"%V\",\"request_id\":\"%V\"}",
                              &e->code, &e->text, request_id);

        return ngx_http_identity_page_send(r, status, b, 0);
    }

    len = sizeof(head) - 1 + e->text.len
          + sizeof(mid) - 1
          + retry->len + ngx_escape_html(NULL, retry->data, retry->len)
          + sizeof(mid2) - 1
          + request_id->len
          + ngx_escape_html(NULL, request_id->data, request_id->len)
          + sizeof(tail) - 1;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(b->last, head, sizeof(head) - 1);
    p = ngx_cpymem(p, e->text.data, e->text.len);
    p = ngx_cpymem(p, mid, sizeof(mid) - 1);
    p = (u_char *) ngx_escape_html(p, retry->data, retry->len);
    p = ngx_cpymem(p, mid2, sizeof(mid2) - 1);
    p = (u_char *) ngx_escape_html(p, request_id->data, request_id->len);
    b->last = ngx_cpymem(p, tail, sizeof(tail) - 1);

    return ngx_http_identity_page_send(r, status, b, 1);
}


/*
 * A page (html) or JSON the module made, not to be cached; returns what
 * ngx_http_finalize_request() is to be called with.
 */

ngx_int_t
ngx_http_identity_page_send(ngx_http_request_t *r, ngx_int_t status,
    ngx_buf_t *b, ngx_uint_t html)
{
    ngx_str_t  type;

    if (ngx_http_identity_add_header(r, "Cache-Control", "no-store")
        == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (html) {
        ngx_str_set(&type, "text/html; charset=utf-8");
        return ngx_http_identity_body_send(r, status, b, &type,
                                           sizeof("text/html") - 1);
    }

    ngx_str_set(&type, "application/json");

    return ngx_http_identity_body_send(r, status, b, &type, type.len);
}


/*
 * A response whose body is the one buffer b, of the given Content-Type
 * (type_len: its length without parameters); returns what
 * ngx_http_finalize_request() is to be called with.
 */

ngx_int_t
ngx_http_identity_body_send(ngx_http_request_t *r, ngx_int_t status,
    ngx_buf_t *b, ngx_str_t *type, size_t type_len)
{
    ngx_int_t    rc;
    ngx_chain_t  out;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type_len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_uint_t
ngx_http_identity_error_has_header(ngx_http_request_t *r, char *name)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return 0;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash && h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return 1;
        }
    }
}
