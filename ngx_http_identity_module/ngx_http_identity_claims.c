
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The one gate between what a provider says of a user and everything that
 * uses it: $identity_* variables (and so request and response headers,
 * log formats), the session record, the admin API and the 403 page.  Every
 * login of the three protocols passes here before its session is made, and
 * every user info refresh before the session is updated.
 *
 * A control character is one of C0 (0x00-0x1f, tab included), DEL and C1
 * (U+0080-U+009F).  The rules, in docs/security/claims.md:
 *
 *   provider user id, e-mail, username, IdP session id: an identity, so
 *     never altered: control characters, bytes that are not UTF-8, or a
 *     length over the bound refuse the login;
 *   name: for display, so control characters become spaces, bytes that
 *     are not UTF-8 become U+FFFD, and it is cut at a character boundary;
 *   groups: a group is a name that rules match, so a group with control
 *     characters, bytes that are not UTF-8 or over its bound is dropped
 *     whole, never altered into another group's name; groups past the
 *     count or total bound are dropped too (rules can only admit less);
 *   the provider's claims JSON: only the claims that identity_require_claim
 *     names are kept, each only while the kept JSON stays within its bound.
 *
 * No ngx_http_request_t here, so that a fuzzer can call it.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <jansson.h>

#include "ngx_http_identity_claims.h"


#define NGX_HTTP_IDENTITY_UTF8_INVALID  0x110000


typedef struct {
    const char                   *what;
    size_t                        offset;
    size_t                        max;
} ngx_http_identity_claims_bound_t;


static uint32_t ngx_http_identity_utf8_next(u_char *p, u_char *last,
    size_t *n);
static ngx_uint_t ngx_http_identity_claims_control(uint32_t u);
static const char *ngx_http_identity_claims_check(ngx_str_t *s, size_t max);
static ngx_int_t ngx_http_identity_claims_name(ngx_pool_t *pool,
    ngx_str_t *name);
static ngx_int_t ngx_http_identity_claims_groups(ngx_log_t *log,
    ngx_pool_t *pool, ngx_str_t *groups);
static ngx_int_t ngx_http_identity_claims_keep(ngx_log_t *log,
    ngx_pool_t *pool, ngx_str_t *raw, ngx_array_t *keep);


/* identities: refused, never altered, when they are not fit as they are */

static ngx_http_identity_claims_bound_t  ngx_http_identity_claims_ids[] = {
    { "user id", offsetof(ngx_http_identity_claims_t, provider_user_id),
      NGX_HTTP_IDENTITY_MAX_USER_ID },
    { "e-mail", offsetof(ngx_http_identity_claims_t, email),
      NGX_HTTP_IDENTITY_MAX_EMAIL },
    { "username", offsetof(ngx_http_identity_claims_t, username),
      NGX_HTTP_IDENTITY_MAX_USERNAME },
    { "session id", offsetof(ngx_http_identity_claims_t, sid),
      NGX_HTTP_IDENTITY_MAX_SID },
    { NULL, 0, 0 }
};


/*
 * NGX_OK: the claims are fit for headers, logs and the session store.
 * NGX_DECLINED: refused, and said so at info level.  NGX_ERROR: no memory.
 */

ngx_int_t
ngx_http_identity_claims_sanitize(ngx_log_t *log, ngx_pool_t *pool,
    ngx_http_identity_claims_t *claims, ngx_array_t *keep)
{
    ngx_str_t                         *id;
    ngx_uint_t                         i;
    const char                        *what, *why;
    ngx_http_identity_claims_bound_t  *b;

    what = NULL;
    why = NULL;

    for (i = 0; ngx_http_identity_claims_ids[i].what; i++) {
        b = &ngx_http_identity_claims_ids[i];
        id = (ngx_str_t *) ((u_char *) claims + b->offset);

        why = ngx_http_identity_claims_check(id, b->max);

        if (why) {
            what = b->what;
            break;
        }
    }

    /* e.g. "attribute_map id=mail" for a user without mail */

    if (why == NULL && claims->provider_user_id.len == 0) {
        i = 0;
        what = "user id";
        why = "is empty";
    }

    if (why) {
        /* the values themselves are not logged: they may forge lines */

        if (i == 0) {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "identity: user refused: the provider's %s %s",
                          what, why);

        } else {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "identity: user \"%V\" refused: the provider's "
                          "%s %s", &claims->provider_user_id, what, why);
        }

        return NGX_DECLINED;
    }

    if (ngx_http_identity_claims_name(pool, &claims->name) != NGX_OK
        || ngx_http_identity_claims_groups(log, pool, &claims->groups)
           != NGX_OK
        || ngx_http_identity_claims_keep(log, pool, &claims->raw, keep)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A user id for a log line written before the claims pass the gate (a
 * protocol's own refusal): itself when it would pass, else a placeholder,
 * so that it cannot forge a line.
 */

ngx_str_t *
ngx_http_identity_claims_loggable(ngx_str_t *id)
{
    static ngx_str_t  unfit = ngx_string("(a user id unfit to log)");

    if (id->len == 0
        || ngx_http_identity_claims_check(id, NGX_HTTP_IDENTITY_MAX_USER_ID))
    {
        return &unfit;
    }

    return id;
}


/* the longest prefix of at most max bytes that does not cut a character */

size_t
ngx_http_identity_utf8_prefix(u_char *p, size_t len, size_t max)
{
    size_t  i;

    if (len <= max) {
        return len;
    }

    /* back over at most three continuation bytes */

    for (i = max; i > 0 && max - i < 4 && (p[i] & 0xc0) == 0x80; i--) {
        /* void */
    }

    return (max - i < 4) ? i : max;
}


/*
 * The code point at p and its length in *n: a strict decoder (no overlong
 * forms, no surrogates, nothing past U+10FFFF), NGX_HTTP_IDENTITY_UTF8_INVALID
 * with *n = 1 for a byte that does not start a valid sequence.
 */

static uint32_t
ngx_http_identity_utf8_next(u_char *p, u_char *last, size_t *n)
{
    size_t    len, i;
    uint32_t  u, min;

    u = p[0];
    *n = 1;

    if (u < 0x80) {
        return u;
    }

    if (u >= 0xc2 && u <= 0xdf) {
        len = 2;
        min = 0x80;
        u &= 0x1f;

    } else if (u >= 0xe0 && u <= 0xef) {
        len = 3;
        min = 0x800;
        u &= 0x0f;

    } else if (u >= 0xf0 && u <= 0xf4) {
        len = 4;
        min = 0x10000;
        u &= 0x07;

    } else {
        return NGX_HTTP_IDENTITY_UTF8_INVALID;
    }

    if ((size_t) (last - p) < len) {
        return NGX_HTTP_IDENTITY_UTF8_INVALID;
    }

    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return NGX_HTTP_IDENTITY_UTF8_INVALID;
        }

        u = (u << 6) | (p[i] & 0x3f);
    }

    if (u < min || u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) {
        return NGX_HTTP_IDENTITY_UTF8_INVALID;
    }

    *n = len;

    return u;
}


/*
 * C0, DEL and C1; and the invisible characters that reorder or hide text
 * (bidi marks, embeddings, overrides and isolates, zero width space, word
 * joiner and invisible operators, line and paragraph separators, the BOM):
 * with them "admin" can show as another name, or another name as "admin".
 * The zero width joiners U+200C and U+200D are spelling in several
 * scripts and stay.
 */

static ngx_uint_t
ngx_http_identity_claims_control(uint32_t u)
{
    return u < 0x20
           || (u >= 0x7f && u <= 0x9f)
           || u == 0x200b || u == 0x200e || u == 0x200f
           || (u >= 0x2028 && u <= 0x202e)
           || (u >= 0x2060 && u <= 0x2064)
           || (u >= 0x2066 && u <= 0x2069)
           || u == 0xfeff;
}


/* why an identity claim cannot be taken as it is, or NULL */

static const char *
ngx_http_identity_claims_check(ngx_str_t *s, size_t max)
{
    size_t     n;
    u_char    *p, *last;
    uint32_t   u;

    if (s->len == 0) {
        return NULL;
    }

    if (s->len > max) {
        return "is too long";
    }

    p = s->data;
    last = p + s->len;

    while (p < last) {
        u = ngx_http_identity_utf8_next(p, last, &n);

        if (u == NGX_HTTP_IDENTITY_UTF8_INVALID) {
            return "is not UTF-8";
        }

        if (ngx_http_identity_claims_control(u)) {
            return "has a control character";
        }

        p += n;
    }

    return NULL;
}


/*
 * The display name: a control character becomes a space, a byte that is
 * not UTF-8 becomes U+FFFD, and the result is cut at a character boundary.
 */

static ngx_int_t
ngx_http_identity_claims_name(ngx_pool_t *pool, ngx_str_t *name)
{
    size_t     n, len;
    u_char    *p, *last, *out, *o;
    uint32_t   u;

    if (name->len == 0) {
        return NGX_OK;
    }

    out = ngx_pnalloc(pool, NGX_HTTP_IDENTITY_MAX_NAME);
    if (out == NULL) {
        return NGX_ERROR;
    }

    o = out;
    p = name->data;
    last = p + name->len;

    while (p < last) {
        u = ngx_http_identity_utf8_next(p, last, &n);

        if (u == NGX_HTTP_IDENTITY_UTF8_INVALID) {
            len = 3;

        } else if (ngx_http_identity_claims_control(u)) {
            len = 1;

        } else {
            len = n;
        }

        if ((size_t) (o - out) + len > NGX_HTTP_IDENTITY_MAX_NAME) {
            break;
        }

        if (u == NGX_HTTP_IDENTITY_UTF8_INVALID) {
            *o++ = 0xef;
            *o++ = 0xbf;
            *o++ = 0xbd;

        } else if (ngx_http_identity_claims_control(u)) {
            *o++ = ' ';

        } else {
            o = ngx_cpymem(o, p, n);
        }

        p += n;
    }

    name->data = out;
    name->len = o - out;

    return NGX_OK;
}


/*
 * Groups, one per line: each kept whole or dropped whole.  The order is the
 * provider's, so the bounds keep its first groups.
 */

static ngx_int_t
ngx_http_identity_claims_groups(ngx_log_t *log, ngx_pool_t *pool,
    ngx_str_t *groups)
{
    u_char      *p, *last, *eol, *out, *o;
    ngx_str_t    g;
    ngx_uint_t   kept, dropped;

    if (groups->len == 0) {
        return NGX_OK;
    }

    out = ngx_pnalloc(pool, ngx_min(groups->len,
                                    NGX_HTTP_IDENTITY_MAX_GROUPS_LEN));
    if (out == NULL) {
        return NGX_ERROR;
    }

    o = out;
    kept = 0;
    dropped = 0;
    p = groups->data;
    last = p + groups->len;

    while (p < last) {
        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            eol = last;
        }

        g.data = p;
        g.len = eol - p;
        p = eol + 1;

        if (g.len == 0) {
            continue;
        }

        if (kept == NGX_HTTP_IDENTITY_MAX_GROUPS
            || ngx_http_identity_claims_check(&g, NGX_HTTP_IDENTITY_MAX_GROUP)
            || (size_t) (o - out) + (kept ? 1 : 0) + g.len
               > NGX_HTTP_IDENTITY_MAX_GROUPS_LEN)
        {
            dropped++;
            continue;
        }

        if (kept++) {
            *o++ = '\n';
        }

        o = ngx_cpymem(o, g.data, g.len);
    }

    if (dropped) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "identity: %ui of the provider's groups dropped "
                      "(control characters, not UTF-8, or over the bounds "
                      "of %d groups, %d bytes each, %d in all)", dropped,
                      NGX_HTTP_IDENTITY_MAX_GROUPS,
                      NGX_HTTP_IDENTITY_MAX_GROUP,
                      NGX_HTTP_IDENTITY_MAX_GROUPS_LEN);
    }

    groups->data = out;
    groups->len = o - out;

    return NGX_OK;
}


/*
 * Of the provider's claims JSON, only what identity_require_claim rules
 * read (keep: their claim names, NUL-terminated), so a session record does
 * not carry an ID token's every claim.  A claim whose value would take the
 * kept JSON over its bound is left out: a rule on it then fails.
 */

static ngx_int_t
ngx_http_identity_claims_keep(ngx_log_t *log, ngx_pool_t *pool,
    ngx_str_t *raw, ngx_array_t *keep)
{
    char        *text;
    size_t       len, size;
    json_t      *all, *kept, *v;
    ngx_str_t   *name;
    ngx_uint_t   i;
    ngx_int_t    rc;

    all = NULL;

    if (keep && keep->nelts && raw->len) {
        all = json_loadb((char *) raw->data, raw->len, 0, NULL);
    }

    if (!json_is_object(all)) {
        json_decref(all);
        ngx_str_null(raw);
        return NGX_OK;
    }

    kept = json_object();
    if (kept == NULL) {
        json_decref(all);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;
    size = sizeof("{}") - 1;
    name = keep->elts;

    for (i = 0; i < keep->nelts; i++) {
        v = json_object_get(all, (char *) name[i].data);
        if (v == NULL) {
            continue;
        }

        /* "name":value, with the comma */

        len = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY)
              + name[i].len + 4;

        if (size + len > NGX_HTTP_IDENTITY_MAX_KEPT_CLAIMS) {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "identity: the provider's claim \"%V\" is not kept: "
                          "over %d bytes", &name[i],
                          NGX_HTTP_IDENTITY_MAX_KEPT_CLAIMS);
            continue;
        }

        if (json_object_set(kept, (char *) name[i].data, v) != 0) {
            goto done;
        }

        size += len;
    }

    text = json_dumps(kept, JSON_COMPACT);
    if (text == NULL) {
        goto done;
    }

    raw->len = ngx_strlen(text);

    /* names that JSON escapes may take it over the estimate above */

    if (raw->len > NGX_HTTP_IDENTITY_MAX_KEPT_CLAIMS) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "identity: the provider's claims are not kept: "
                      "over %d bytes", NGX_HTTP_IDENTITY_MAX_KEPT_CLAIMS);
        raw->len = 0;
    }

    raw->data = ngx_pnalloc(pool, raw->len ? raw->len : 1);

    if (raw->data) {
        ngx_memcpy(raw->data, text, raw->len);
        rc = NGX_OK;
    }

    free(text);

done:

    json_decref(kept);
    json_decref(all);

    return rc;
}
