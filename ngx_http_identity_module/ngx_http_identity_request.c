
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * Helpers for the request layer and the protocols: the request ctx, the
 * settings a request uses (auth id, server), what kind of client asks,
 * the public origin and same-site return paths, response headers, and the
 * $request_id on every error log line; and the lookups the configuration
 * shares with requests (providers by name, locations by auth id, a set of
 * names).  The ground of the request layer: it calls nothing above
 * itself, and every file above may call it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_parse.h"
#include "ngx_http_identity_request.h"


static u_char *ngx_http_identity_log_error(ngx_http_request_t *r,
    ngx_http_request_t *sr, u_char *buf, size_t len);
static ngx_int_t ngx_http_identity_host_names_server(ngx_http_request_t *r,
    ngx_str_t *host);


/* {identity_path}logout?redirect_path=back[&auth_id=id] */

ngx_int_t
ngx_http_identity_logout_url(ngx_http_request_t *r,
    ngx_http_identity_loc_conf_t *ilcf, ngx_str_t *back, ngx_str_t *url)
{
    u_char                        *p;
    size_t                         len;
    ngx_http_identity_srv_conf_t  *iscf;

    iscf = ngx_http_get_module_srv_conf(r, ngx_http_identity_module);

    len = iscf->path.len + sizeof("logout?redirect_path=") - 1
          + back->len + 2 * ngx_escape_uri(NULL, back->data, back->len,
                                           NGX_ESCAPE_ARGS)
          + sizeof("&auth_id=") - 1 + ilcf->auth_id.len;

    url->data = ngx_pnalloc(r->pool, len);
    if (url->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(url->data, "%Vlogout?redirect_path=", &iscf->path);
    p = (u_char *) ngx_escape_uri(p, back->data, back->len, NGX_ESCAPE_ARGS);

    if (ilcf->auth_id.len) {
        p = ngx_sprintf(p, "&auth_id=%V", &ilcf->auth_id);
    }

    url->len = p - url->data;

    return NGX_OK;
}


/*
 * A browser navigation gets a redirect to login; anything else (XHR,
 * fetch, API clients, non-GET methods) gets 401: a redirect to an HTML
 * login page is of no use to them.
 */

ngx_int_t
ngx_http_identity_is_browser(ngx_http_request_t *r)
{
    return (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))
           && ngx_http_identity_is_navigation(r);
}


/*
 * A person's browser opening a page, whatever the method: the SAML ACS is
 * a navigation by a form POST.  Scripts say otherwise with Sec-Fetch-Mode
 * or X-Requested-With, API clients by not accepting HTML.
 */

ngx_int_t
ngx_http_identity_is_navigation(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    if (ngx_http_identity_header(r, "x-requested-with",
                                 sizeof("x-requested-with") - 1))
    {
        return 0;
    }

    h = ngx_http_identity_header(r, "sec-fetch-mode",
                                 sizeof("sec-fetch-mode") - 1);

    if (h && !(h->value.len == 8
               && ngx_strncasecmp(h->value.data, (u_char *) "navigate", 8)
                  == 0))
    {
        return 0;
    }

    h = ngx_http_identity_header(r, "accept", sizeof("accept") - 1);

    return h && ngx_strlcasestrn(h->value.data,
                                 h->value.data + h->value.len,
                                 (u_char *) "text/html", 9 - 1)
                != NULL;
}


ngx_int_t
ngx_http_identity_is_preflight(ngx_http_request_t *r)
{
    return r->method == NGX_HTTP_OPTIONS
           && ngx_http_identity_header(r, "origin", sizeof("origin") - 1)
           && ngx_http_identity_header(r, "access-control-request-method",
                               sizeof("access-control-request-method") - 1);
}


/* a request header by its lowercase name */

ngx_table_elt_t *
ngx_http_identity_header(ngx_http_request_t *r, char *name, size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncmp(h[i].lowcase_key, name, len) == 0)
        {
            return &h[i];
        }
    }
}


/*
 * Every error log line about the request carries its $request_id, the
 * one its error page shows.  nginx sets each request's log handler to
 * the same function, which this one follows.
 *
 * The id costs 16 random bytes, so an authenticated request that logs
 * nothing does not make it: the log handler makes it when the first line
 * is logged on the event loop.  A thread may not (the request's pool is
 * not for threads): before a request starts work that logs from a thread,
 * the id is made at once ("now").
 */

static ngx_http_log_handler_pt  ngx_http_identity_log_next;
static ngx_tid_t                ngx_http_identity_loop_tid;
static ngx_uint_t               ngx_http_identity_loop_tid_set;


ngx_int_t
ngx_http_identity_log_request_id(ngx_http_request_t *r, ngx_uint_t now)
{
    ngx_http_identity_main_conf_t  *imcf;

    if (r->log_handler != ngx_http_identity_log_error) {

        if (!ngx_http_identity_loop_tid_set) {
            ngx_http_identity_loop_tid = ngx_thread_tid();
            ngx_http_identity_loop_tid_set = 1;
        }

        ngx_http_identity_log_next = r->log_handler;
        r->log_handler = ngx_http_identity_log_error;
    }

    if (!now) {
        return NGX_OK;
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    if (ngx_http_get_indexed_variable(r, imcf->request_id) == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static u_char *
ngx_http_identity_log_error(ngx_http_request_t *r, ngx_http_request_t *sr,
    u_char *buf, size_t len)
{
    u_char                         *p;
    ngx_http_variable_value_t      *v;
    ngx_http_identity_main_conf_t  *imcf;

    p = ngx_http_identity_log_next(r, sr, buf, len);
    len -= p - buf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);
    v = &r->variables[imcf->request_id];

    if (!v->valid && !v->not_found
        && ngx_thread_tid() == ngx_http_identity_loop_tid)
    {
        v = ngx_http_get_indexed_variable(r, imcf->request_id);
    }

    if (v && v->valid && !v->not_found) {
        p = ngx_snprintf(p, len, ", request_id: \"%v\"", v);
    }

    return p;
}


/*
 * The settings the login and logout endpoints use: those of the protected
 * locations with the auth id the request names, else the server's.  NULL
 * (logged) for an unknown auth id.
 */

ngx_http_identity_loc_conf_t *
ngx_http_identity_auth_conf(ngx_http_request_t *r)
{
    ngx_str_t                      id;
    ngx_http_identity_srv_conf_t  *iscf;
    ngx_http_identity_loc_conf_t  *conf;

    if (ngx_http_arg(r, (u_char *) "auth_id", 7, &id) != NGX_OK) {
        return ngx_http_identity_server_conf(r);
    }

    iscf = ngx_http_get_module_srv_conf(r, ngx_http_identity_module);

    conf = ngx_http_identity_find_auth(iscf, &id);

    if (conf == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: unknown auth id \"%V\"", &id);
    }

    return conf;
}


/* the first location of the server with the auth id "id", or NULL */

ngx_http_identity_loc_conf_t *
ngx_http_identity_find_auth(ngx_http_identity_srv_conf_t *iscf, ngx_str_t *id)
{
    ngx_uint_t                      i;
    ngx_http_identity_loc_conf_t  **lp;

    if (iscf->auths == NULL) {
        return NULL;
    }

    lp = iscf->auths->elts;

    for (i = 0; i < iscf->auths->nelts; i++) {
        if (lp[i]->auth_id.len == id->len
            && ngx_strncmp(lp[i]->auth_id.data, id->data, id->len) == 0)
        {
            return lp[i];
        }
    }

    return NULL;
}


ngx_http_identity_loc_conf_t *
ngx_http_identity_server_conf(ngx_http_request_t *r)
{
    ngx_http_core_srv_conf_t  *cscf;

    cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);

    return cscf->ctx->loc_conf[ngx_http_identity_module.ctx_index];
}


/* redirect_path, else "/"; NGX_ERROR (logged) if not a same-site path */

ngx_int_t
ngx_http_identity_redirect_path(ngx_http_request_t *r, ngx_str_t *path)
{
    if (ngx_http_arg(r, (u_char *) "redirect_path", 13, path) != NGX_OK) {
        ngx_str_set(path, "/");
        return NGX_OK;
    }

    if (ngx_http_identity_unescape_arg(r, path) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_identity_local_path(path) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: redirect_path is not a same-site path");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Where a login returns to: the path the browser asked for, made a
 * same-site path by ngx_http_identity_return_path() (parse.c), else "/".
 */

ngx_int_t
ngx_http_identity_return_target(ngx_http_request_t *r, ngx_str_t *uri,
    ngx_str_t *target)
{
    target->data = ngx_pnalloc(r->pool, uri->len + 1);
    if (target->data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_identity_return_path(uri, target) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: the request's path is not a return "
                      "target, \"/\" instead");
    }

    return NGX_OK;
}


/*
 * The request ctx has one owner: the handler that takes the request in
 * (the access phase, the reserved paths, the admin API) creates it, and
 * everything below reads it with ngx_http_identity_get_ctx().
 */

ngx_http_identity_ctx_t *
ngx_http_identity_create_ctx(ngx_http_request_t *r)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_identity_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_identity_ctx_t));
        if (ctx == NULL) {
            return NULL;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_identity_module);
    }

    return ctx;
}


/* the ctx its owner created; NULL only where no owner took the request */

ngx_http_identity_ctx_t *
ngx_http_identity_get_ctx(ngx_http_request_t *r)
{
    return ngx_http_get_module_ctx(r, ngx_http_identity_module);
}


ngx_http_identity_provider_t *
ngx_http_identity_find_provider(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    return ngx_http_identity_provider_named(imcf, name);
}


/* at configuration time as well as on a request */

ngx_http_identity_provider_t *
ngx_http_identity_provider_named(ngx_http_identity_main_conf_t *imcf,
    ngx_str_t *name)
{
    ngx_uint_t                      i;
    ngx_http_identity_provider_t  **pp;

    pp = imcf->providers.elts;

    for (i = 0; i < imcf->providers.nelts; i++) {
        if (pp[i]->name.len == name->len
            && ngx_strncmp(pp[i]->name.data, name->data, name->len) == 0)
        {
            return pp[i];
        }
    }

    return NULL;
}


ngx_http_identity_provider_t *
ngx_http_identity_find_issuer(ngx_http_request_t *r, ngx_str_t *issuer)
{
    ngx_uint_t                      i;
    ngx_http_identity_provider_t  **pp;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);
    pp = imcf->providers.elts;

    for (i = 0; i < imcf->providers.nelts; i++) {
        if (pp[i]->type == NGX_HTTP_IDENTITY_OIDC
            && pp[i]->issuer.len == issuer->len
            && ngx_strncmp(pp[i]->issuer.data, issuer->data, issuer->len)
               == 0)
        {
            return pp[i];
        }
    }

    return NULL;
}


/*
 * The public scheme: that of identity_public_url when it is set (nginx may
 * sit behind a proxy that terminates TLS), else whether nginx itself does.
 */

ngx_int_t
ngx_http_identity_is_https(ngx_http_request_t *r)
{
    ngx_http_identity_srv_conf_t  *iscf;

    iscf = ngx_http_get_module_srv_conf(r, ngx_http_identity_module);

    if (iscf->public_url.len) {
        return iscf->public_https;
    }

#if (NGX_HTTP_SSL)
    return r->connection->ssl != NULL;
#else
    return 0;
#endif
}


/*
 * scheme://host[:port] under which users reach this server, for cookies,
 * redirect_uri, the recorded endpoint and the admin API's URIs.  It is
 * identity_public_url when set.  Otherwise the Host header is taken only
 * when it names this server (one of its server_name entries, or the
 * address the connection arrived at), and the port is always the one the
 * connection arrived at: a client cannot make the module speak of a site
 * that is not this one.  Failing that, the server's first literal name,
 * or its address.
 */

ngx_int_t
ngx_http_identity_public_origin(ngx_http_request_t *r, ngx_str_t *origin)
{
    u_char                        *p;
    ngx_str_t                      host;
    ngx_uint_t                     https;
    in_port_t                      port;
    ngx_connection_t              *c;
    ngx_http_core_srv_conf_t      *cscf;
    ngx_http_identity_srv_conf_t  *iscf;
    u_char                         addr[NGX_SOCKADDR_STRLEN];

    iscf = ngx_http_get_module_srv_conf(r, ngx_http_identity_module);

    if (iscf->public_url.len) {
        *origin = iscf->public_url;
        return NGX_OK;
    }

    c = r->connection;
    https = ngx_http_identity_is_https(r);

    host.len = NGX_SOCKADDR_STRLEN;
    host.data = addr;

    if (ngx_connection_local_sockaddr(c, &host, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    port = ngx_inet_get_port(c->local_sockaddr);

    if (r->headers_in.server.len
        && ngx_http_identity_host_names_server(r, &host) == NGX_OK)
    {
        host = r->headers_in.server;

    } else {
        cscf = ngx_http_get_module_srv_conf(r, ngx_http_core_module);

        if (cscf->server_name.len
            && ngx_strlchr(cscf->server_name.data,
                           cscf->server_name.data + cscf->server_name.len,
                           '*')
               == NULL
            && cscf->server_name.data[0] != '~'
            && cscf->server_name.data[0] != '.'
            && !(cscf->server_name.len == 1
                 && cscf->server_name.data[0] == '_'))
        {
            host = cscf->server_name;
        }

        /* else the address, as ngx_connection_local_sockaddr() wrote it */
    }

    p = ngx_pnalloc(r->pool, sizeof("https://[]:65535") - 1 + host.len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    origin->data = p;

    p = ngx_sprintf(p, "%s://", https ? "https" : "http");

    if (c->local_sockaddr->sa_family == AF_INET6 && host.data == addr) {
        p = ngx_sprintf(p, "[%V]", &host);

    } else {
        p = ngx_cpymem(p, host.data, host.len);
    }

    if (port != (https ? 443 : 80)) {
        p = ngx_sprintf(p, ":%d", (int) port);
    }

    origin->len = p - origin->data;

    return NGX_OK;
}


/*
 * Whether the Host header's name (lowercase, without port, as nginx
 * validated it) is one of this server's names or the address the
 * connection arrived at ("addr", in text).
 */

static ngx_int_t
ngx_http_identity_host_names_server(ngx_http_request_t *r, ngx_str_t *addr)
{
    ngx_str_t                      host, name;
    ngx_uint_t                     i;
    ngx_http_server_name_t        *sn;
    ngx_http_identity_srv_conf_t  *iscf;

    host = r->headers_in.server;

    /* "[::1]" for the IPv6 address "::1" */

    if (host.len > 2 && host.data[0] == '[') {
        name.data = host.data + 1;
        name.len = host.len - 2;

    } else {
        name = host;
    }

    if (name.len == addr->len
        && ngx_strncasecmp(name.data, addr->data, name.len) == 0)
    {
        return NGX_OK;
    }

    iscf = ngx_http_get_module_srv_conf(r, ngx_http_identity_module);
    sn = iscf->names->elts;

    for (i = 0; i < iscf->names->nelts; i++) {
        name = sn[i].name;

#if (NGX_PCRE)
        if (sn[i].regex) {
            if (ngx_regex_exec(sn[i].regex->regex, &host, NULL, 0) >= 0) {
                return NGX_OK;
            }

            continue;
        }
#endif

        if (name.len == 0) {
            continue;
        }

        /* "*.example.org" and ".example.org" */

        if (name.data[0] == '*' || name.data[0] == '.') {
            if (name.data[0] == '*') {
                name.data++;
                name.len--;
            }

            if ((host.len > name.len
                 && ngx_strncmp(host.data + host.len - name.len, name.data,
                                name.len) == 0)
                || (sn[i].name.data[0] == '.'
                    && host.len == name.len - 1
                    && ngx_strncmp(host.data, name.data + 1, host.len) == 0))
            {
                return NGX_OK;
            }

            continue;
        }

        /* "www.example.*" */

        if (name.data[name.len - 1] == '*') {
            if (host.len > name.len - 1
                && ngx_strncmp(host.data, name.data, name.len - 1) == 0)
            {
                return NGX_OK;
            }

            continue;
        }

        if (host.len == name.len
            && ngx_strncmp(host.data, name.data, host.len) == 0)
        {
            return NGX_OK;
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "identity: Host \"%V\" does not name this server",
                   &host);

    return NGX_DECLINED;
}


/* a response header; key is a literal */

ngx_table_elt_t *
ngx_http_identity_add_header(ngx_http_request_t *r, char *key,
    char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value.data = (u_char *) value;
    h->value.len = value ? ngx_strlen(value) : 0;

    return h;
}


ngx_int_t
ngx_http_identity_set_location(ngx_http_request_t *r, ngx_str_t *location)
{
    u_char                        *p;
    ngx_table_elt_t               *h;
    ngx_http_identity_srv_conf_t  *iscf;

    ngx_http_clear_location(r);

    h = ngx_http_identity_add_header(r, "Location", NULL);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->value = *location;
    r->headers_out.location = h;

    /*
     * A path on this site, behind a proxy: at the public origin, not where
     * absolute_redirect would put it (the Host header, the scheme here)
     */

    iscf = ngx_http_get_module_srv_conf(r, ngx_http_identity_module);

    if (iscf->public_url.len && location->len && location->data[0] == '/') {
        p = ngx_pnalloc(r->pool, iscf->public_url.len + location->len);
        if (p == NULL) {
            return NGX_ERROR;
        }

        h->value.data = p;
        p = ngx_cpymem(p, iscf->public_url.data, iscf->public_url.len);
        p = ngx_cpymem(p, location->data, location->len);
        h->value.len = p - h->value.data;
    }

    return NGX_OK;
}


/* a query argument as it was before URL encoding */

ngx_int_t
ngx_http_identity_unescape_arg(ngx_http_request_t *r, ngx_str_t *arg)
{
    u_char  *dst, *src, *p;

    p = ngx_pnalloc(r->pool, arg->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    src = arg->data;
    dst = p;

    ngx_unescape_uri(&dst, &src, arg->len, NGX_UNESCAPE_URI);

    arg->data = p;
    arg->len = dst - p;

    return NGX_OK;
}


/* "s" in the set of strings "*set", made on first use; once */

ngx_int_t
ngx_http_identity_add_unique(ngx_pool_t *pool, ngx_array_t **set,
    ngx_str_t *s)
{
    ngx_str_t   *e;
    ngx_uint_t   i;

    if (*set == NULL) {
        *set = ngx_array_create(pool, 4, sizeof(ngx_str_t));
        if (*set == NULL) {
            return NGX_ERROR;
        }
    }

    e = (*set)->elts;

    for (i = 0; i < (*set)->nelts; i++) {
        if (e[i].len == s->len
            && ngx_strncmp(e[i].data, s->data, s->len) == 0)
        {
            return NGX_OK;
        }
    }

    e = ngx_array_push(*set);
    if (e == NULL) {
        return NGX_ERROR;
    }

    *e = *s;

    return NGX_OK;
}


/*
 * identity_public_url https://app.example.org[:port]: the origin users
 * reach this server at, as a TLS-terminating proxy in front shows it.
 */

char *
ngx_http_identity_public_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_identity_srv_conf_t *iscf = conf;

    u_char     *p, *last;
    ngx_str_t  *value, url;
    ngx_url_t   u;

    if (iscf->public_url.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    url = value[1];

    if (url.len && url.data[url.len - 1] == '/') {
        url.len--;
    }

    if (url.len > 8 && ngx_strncasecmp(url.data, (u_char *) "https://", 8)
                       == 0)
    {
        iscf->public_https = 1;
        p = url.data + 8;

    } else if (url.len > 7
               && ngx_strncasecmp(url.data, (u_char *) "http://", 7) == 0)
    {
        iscf->public_https = 0;
        p = url.data + 7;

    } else {
        goto invalid;
    }

    /* a bare origin: no user, path, query or fragment */

    last = url.data + url.len;

    for ( /* void */ ; p < last; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '/' || *p == '@' || *p == '?'
            || *p == '#' || *p == '\\' || *p == '%')
        {
            goto invalid;
        }
    }

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url.data = url.data + (iscf->public_https ? 8 : 7);
    u.url.len = last - u.url.data;
    u.default_port = iscf->public_https ? 443 : 80;
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.host.len == 0) {
        goto invalid;
    }

    iscf->public_url.data = ngx_pnalloc(cf->pool, url.len);
    if (iscf->public_url.data == NULL) {
        return NGX_CONF_ERROR;
    }

    /* scheme and host compare without case: keep them lowercase */

    iscf->public_url.len = url.len;
    ngx_strlow(iscf->public_url.data, url.data, url.len);

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\": an origin such as "
                       "\"https://app.example.org\" is expected", &value[1],
                       &cmd->name);
    return NGX_CONF_ERROR;
}
