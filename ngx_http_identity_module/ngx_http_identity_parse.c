
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The parsers of what a request sends that need no request: the pairs of
 * a Cookie header, the module's own cookies among them and the shape of a
 * session token, and the same-site paths a login or logout may return to.
 * They take strings, arrays and a log, never an ngx_http_request_t, so
 * that the fuzzers of unit/ (make fuzz) and its checks call them as the
 * module does; request.c, cookie.c and admin.c wrap them for a request.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_parse.h"


#define NGX_HTTP_IDENTITY_COOKIE_MAX  4096


static ngx_uint_t ngx_http_identity_cookie_ours(ngx_str_t *name,
    ngx_array_t *names);
static u_char *ngx_http_identity_cookie_next(u_char *p, u_char *last,
    ngx_str_t *name, ngx_str_t *value);


ngx_str_t  ngx_http_identity_admin_kinds[] = {
    ngx_string("app/users"),
    ngx_string("app/sessions")
};


/* letters, digits, "-" and "_": base64url, and safe in a cookie name */

ngx_uint_t
ngx_http_identity_is_word(ngx_str_t *s)
{
    u_char  *p;

    for (p = s->data; p < s->data + s->len; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * The one check of every return target, whatever absolute_redirect says:
 * "/" and then anything but a second "/" or "\" (which browsers read as
 * another host), no "\" at all, no control characters, at most 2048
 * bytes.  Percent-encoded slashes are left as they are: a browser does
 * not decode them in a Location.
 */

ngx_int_t
ngx_http_identity_local_path(ngx_str_t *path)
{
    u_char  *p, *last;

    p = path->data;
    last = p + path->len;

    if (path->len == 0 || path->len > 2048 || p[0] != '/'
        || (path->len > 1 && (p[1] == '/' || p[1] == '\\')))
    {
        return NGX_DECLINED;
    }

    for ( /* void */ ; p < last; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '\\') {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/*
 * A request's path as a return target, written to target->data (room for
 * uri->len + 1 bytes): any run of "/" and "\" at its start made one "/"
 * ("//host/x" is "/host/x" to nginx's merge_slashes, but another host to
 * a browser).  NGX_DECLINED, and "/", if it still is not a same-site path.
 */

ngx_int_t
ngx_http_identity_return_path(ngx_str_t *uri, ngx_str_t *target)
{
    u_char  *p, *last;

    p = uri->data;
    last = p + uri->len;

    while (p < last && (*p == '/' || *p == '\\')) {
        p++;
    }

    target->len = 1 + (last - p);
    target->data[0] = '/';

    if (last > p) {
        ngx_memcpy(target->data + 1, p, last - p);
    }

    if (ngx_http_identity_local_path(target) != NGX_OK) {
        ngx_str_set(target, "/");
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * The cookie "name" in the Cookie headers (an array of ngx_table_elt_t *,
 * as r->headers_in.cookies): NGX_OK and the value, NGX_DECLINED if absent,
 * or NGX_HTTP_BAD_REQUEST if the cookie is sent twice or a header is
 * oversized: two session cookies cannot be told apart safely.
 */

ngx_int_t
ngx_http_identity_cookie_find(ngx_log_t *log, ngx_array_t *headers,
    ngx_str_t *name, ngx_str_t *value)
{
    u_char            *p, *last;
    ngx_str_t          n, v;
    ngx_uint_t         i, found;
    ngx_table_elt_t  **h;

    found = 0;
    h = headers->elts;

    for (i = 0; i < headers->nelts; i++) {

        if (h[i]->value.len > NGX_HTTP_IDENTITY_COOKIE_MAX) {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "identity: oversized Cookie header (%uz bytes)",
                          h[i]->value.len);
            return NGX_HTTP_BAD_REQUEST;
        }

        p = h[i]->value.data;
        last = p + h[i]->value.len;

        while (p < last) {
            p = ngx_http_identity_cookie_next(p, last, &n, &v);

            if (n.len != name->len
                || ngx_strncmp(n.data, name->data, n.len) != 0)
            {
                continue;
            }

            if (found) {
                ngx_log_error(NGX_LOG_INFO, log, 0,
                              "identity: duplicate cookie \"%V\"", name);
                return NGX_HTTP_BAD_REQUEST;
            }

            found = 1;
            *value = v;
        }
    }

    return found ? NGX_OK : NGX_DECLINED;
}


/*
 * One Cookie header without the module's cookies, written to "buf" (room
 * for twice the header's length): for each name of the list, "name" and
 * "name_..." (the auth id and state cookies), "__Host-" or not.  Other
 * cookies pass as they came.  Returns the length written.
 */

size_t
ngx_http_identity_cookie_filter(ngx_str_t *header, ngx_array_t *names,
    u_char *buf)
{
    u_char     *p, *last, *out;
    ngx_str_t   n, v;

    out = buf;
    p = header->data;
    last = p + header->len;

    while (p < last) {
        p = ngx_http_identity_cookie_next(p, last, &n, &v);

        if (n.len == 0 || ngx_http_identity_cookie_ours(&n, names)) {
            continue;
        }

        if (out != buf) {
            *out++ = ';';
            *out++ = ' ';
        }

        out = ngx_cpymem(out, n.data, n.len);

        if (v.data) {
            *out++ = '=';
            out = ngx_cpymem(out, v.data, v.len);
        }
    }

    return out - buf;
}


static ngx_uint_t
ngx_http_identity_cookie_ours(ngx_str_t *name, ngx_array_t *names)
{
    ngx_str_t   bare, *base;
    ngx_uint_t  i;

    bare = *name;

    if (bare.len >= sizeof("__Host-") - 1
        && ngx_strncmp(bare.data, "__Host-", sizeof("__Host-") - 1) == 0)
    {
        bare.data += sizeof("__Host-") - 1;
        bare.len -= sizeof("__Host-") - 1;
    }

    base = names->elts;

    for (i = 0; i < names->nelts; i++) {
        if (bare.len >= base[i].len
            && ngx_strncmp(bare.data, base[i].data, base[i].len) == 0
            && (bare.len == base[i].len || bare.data[base[i].len] == '_'))
        {
            return 1;
        }
    }

    return 0;
}


/* one "name=value" pair of a Cookie header; returns where the next starts */

static u_char *
ngx_http_identity_cookie_next(u_char *p, u_char *last, ngx_str_t *name,
    ngx_str_t *value)
{
    u_char  *end, *eq;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    end = ngx_strlchr(p, last, ';');
    if (end == NULL) {
        end = last;
    }

    eq = ngx_strlchr(p, end, '=');

    name->data = p;
    name->len = (eq ? eq : end) - p;

    while (name->len && name->data[name->len - 1] == ' ') {
        name->len--;
    }

    if (eq) {
        value->data = eq + 1;
        value->len = end - (eq + 1);

        while (value->len && value->data[value->len - 1] == ' ') {
            value->len--;
        }

    } else {
        ngx_str_null(value);
    }

    return end < last ? end + 1 : last;
}


/* a session token's shape: 43 characters of base64url */

ngx_uint_t
ngx_http_identity_cookie_token(ngx_str_t *token)
{
    return token->len == NGX_HTTP_IDENTITY_TOKEN_LEN
           && ngx_http_identity_is_word(token);
}


/*
 * A path under the admin location (what follows the location's name):
 * app/users[/{id}[/sessions|/endpoints]], app/sessions[/{id}], app/me and
 * metrics; anything else but app/ is a file of the dashboard (route
 * "static", the path
 * without its leading "/"s).  NGX_OK, the route, the id and whether it
 * names one user or session ("item": GET, HEAD and DELETE), or
 * NGX_DECLINED: no such resource.
 */

ngx_int_t
ngx_http_identity_admin_path(ngx_str_t *path, ngx_http_identity_route_e *route,
    ngx_str_t *id, ngx_uint_t *item)
{
    u_char      *p, *last, *slash;
    ngx_str_t    rest;
    ngx_uint_t   kind;

    *item = 0;

    while (path->len && path->data[0] == '/') {
        path->data++;
        path->len--;
    }

    if (path->len == 7 && ngx_strncmp(path->data, "metrics", 7) == 0) {
        *route = ngx_http_identity_metrics_route;
        return NGX_OK;
    }

    /* the dashboard's files are anything but app/ */

    if (path->len < 3 || ngx_strncmp(path->data, "app", 3) != 0
        || (path->len > 3 && path->data[3] != '/'))
    {
        *route = ngx_http_identity_static;
        return NGX_OK;
    }

    if (path->len == 6 && ngx_strncmp(path->data, "app/me", 6) == 0) {
        *route = ngx_http_identity_me;
        return NGX_OK;
    }

    if (path->len == 10 && ngx_strncmp(path->data, "app/events", 10) == 0) {
        *route = ngx_http_identity_events_route;
        return NGX_OK;
    }

    if (path->len == 16
        && ngx_strncmp(path->data, "app/stats/logins", 16) == 0)
    {
        *route = ngx_http_identity_stats_route;
        return NGX_OK;
    }

    for (kind = 0; kind < 2; kind++) {
        if (path->len >= ngx_http_identity_admin_kinds[kind].len
            && ngx_strncmp(path->data, ngx_http_identity_admin_kinds[kind].data,
                           ngx_http_identity_admin_kinds[kind].len)
               == 0)
        {
            break;
        }
    }

    if (kind == 2) {
        return NGX_DECLINED;
    }

    rest.data = path->data + ngx_http_identity_admin_kinds[kind].len;
    rest.len = path->len - ngx_http_identity_admin_kinds[kind].len;

    if (rest.len == 0 || (rest.len == 1 && rest.data[0] == '/')) {
        *route = kind ? ngx_http_identity_sessions : ngx_http_identity_users;
        return NGX_OK;
    }

    if (rest.data[0] != '/') {
        return NGX_DECLINED;
    }

    last = rest.data + rest.len;
    p = rest.data + 1;
    slash = ngx_strlchr(p, last, '/');

    id->data = p;
    id->len = (slash ? slash : last) - p;

    /* ids are ours: au_ or as_ and 32 hex digits */

    if (!ngx_http_identity_admin_id(id, kind)) {
        return NGX_DECLINED;
    }

    *item = 1;
    *route = kind ? ngx_http_identity_session : ngx_http_identity_user;

    if (slash == NULL || slash + 1 >= last) {
        return NGX_OK;
    }

    *item = 0;
    rest.data = slash + 1;
    rest.len = last - rest.data;

    if (kind == 0 && rest.len == 8
        && ngx_strncmp(rest.data, "sessions", 8) == 0)
    {
        *route = ngx_http_identity_user_sessions;
        return NGX_OK;
    }

    if (kind == 0 && rest.len == 9
        && ngx_strncmp(rest.data, "endpoints", 9) == 0)
    {
        *route = ngx_http_identity_user_sites;
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/* ids are ours: au_ (identities) or as_ (sessions) and 32 hex digits */

ngx_uint_t
ngx_http_identity_admin_id(ngx_str_t *id, ngx_uint_t session)
{
    return ngx_http_identity_id_valid(id, session ? "as_" : "au_", 32);
}


/* a prefix of three characters, then "n" lowercase hex digits */

ngx_uint_t
ngx_http_identity_id_valid(ngx_str_t *id, char *prefix, size_t n)
{
    ngx_uint_t  i;

    if (id->len != 3 + n || ngx_strncmp(id->data, prefix, 3) != 0) {
        return 0;
    }

    for (i = 3; i < id->len; i++) {
        if (!((id->data[i] >= '0' && id->data[i] <= '9')
              || (id->data[i] >= 'a' && id->data[i] <= 'f')))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * One parameter of an application/x-www-form-urlencoded body, decoded
 * ("+" is a space, made one in the body) and NUL-terminated; NGX_DECLINED
 * if absent or empty.
 */

ngx_int_t
ngx_http_identity_form_arg(ngx_pool_t *pool, ngx_str_t *body, char *name,
    ngx_str_t *value)
{
    u_char  *p, *last, *amp, *dst, *src, *q;
    size_t   len;

    len = ngx_strlen(name);
    p = body->data;
    last = body->data + body->len;

    while (p < last) {
        amp = ngx_strlchr(p, last, '&');
        if (amp == NULL) {
            amp = last;
        }

        if ((size_t) (amp - p) > len && p[len] == '='
            && ngx_strncmp(p, name, len) == 0)
        {
            value->data = ngx_pnalloc(pool, amp - p - len);
            if (value->data == NULL) {
                return NGX_ERROR;
            }

            for (q = p + len + 1; q < amp; q++) {
                if (*q == '+') {
                    *q = ' ';
                }
            }

            src = p + len + 1;
            dst = value->data;
            ngx_unescape_uri(&dst, &src, amp - p - len - 1, 0);
            value->len = dst - value->data;
            *dst = '\0';

            return value->len ? NGX_OK : NGX_DECLINED;
        }

        p = amp + 1;
    }

    return NGX_DECLINED;
}


/*
 * An http(s) URL a provider named, fit for a Location header or a fetch:
 * no space, control character or DEL in it ("&#13;&#10;" in XML, say,
 * would end the header and add headers of the provider's choosing)
 */

ngx_uint_t
ngx_http_identity_http_url(const char *url)
{
    u_char  *p;

    for (p = (u_char *) url; *p > 0x20 && *p != 0x7f; p++) {
        /* void */
    }

    return *p == '\0'
           && (ngx_strncasecmp((u_char *) url, (u_char *) "https://", 8) == 0
               || ngx_strncasecmp((u_char *) url, (u_char *) "http://", 7)
                  == 0);
}
