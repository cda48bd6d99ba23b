
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_parse.h"
#include "ngx_http_identity_cookie.h"


/*
 * "__Host-" binds the cookie to this exact origin over https; it is only
 * possible without a Domain attribute.
 */

ngx_int_t
ngx_http_identity_cookie_name(ngx_http_request_t *r, ngx_str_t *base,
    ngx_str_t *domain, const char *suffix, ngx_str_t *name)
{
    u_char     *p;
    size_t      slen;
    ngx_uint_t  host;

    host = ngx_http_identity_is_https(r) && domain->len == 0;
    slen = ngx_strlen(suffix);

    name->len = (host ? sizeof("__Host-") - 1 : 0) + base->len + slen;
    name->data = ngx_pnalloc(r->pool, name->len);
    if (name->data == NULL) {
        return NGX_ERROR;
    }

    p = name->data;

    if (host) {
        p = ngx_cpymem(p, "__Host-", sizeof("__Host-") - 1);
    }

    p = ngx_cpymem(p, base->data, base->len);
    ngx_memcpy(p, suffix, slen);

    return NGX_OK;
}


/*
 * NGX_OK and the value, NGX_DECLINED if absent, or NGX_HTTP_BAD_REQUEST if
 * the cookie is sent twice or the header is oversized (parse.c).
 */

ngx_int_t
ngx_http_identity_cookie_get(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value)
{
    return ngx_http_identity_cookie_find(r->connection->log,
                                         &r->headers_in.cookies, name, value);
}


ngx_int_t
ngx_http_identity_cookie_set(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *value, ngx_str_t *domain, time_t max_age)
{
    u_char           *p;
    size_t            len;
    ngx_table_elt_t  *h;

    len = name->len + 1 + value->len
          + sizeof("; Domain=") - 1 + domain->len
          + sizeof("; Max-Age=") - 1 + NGX_TIME_T_LEN
          + sizeof("; Path=/; HttpOnly; SameSite=Lax; Secure") - 1;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    h = ngx_http_identity_add_header(r, "Set-Cookie", NULL);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->value.data = p;

    p = ngx_sprintf(p, "%V=%V", name, value);

    if (domain->len) {
        p = ngx_sprintf(p, "; Domain=%V", domain);
    }

    if (max_age != NGX_HTTP_IDENTITY_COOKIE_SESSION) {
        p = ngx_sprintf(p, "; Max-Age=%T", max_age);
    }

    p = ngx_cpymem(p, "; Path=/; HttpOnly; SameSite=Lax",
                   sizeof("; Path=/; HttpOnly; SameSite=Lax") - 1);

    if (ngx_http_identity_is_https(r)) {
        p = ngx_cpymem(p, "; Secure", sizeof("; Secure") - 1);
    }

    h->value.len = p - h->value.data;

    return NGX_OK;
}


/*
 * The module's cookies are removed from the Cookie headers that go
 * upstream (ngx_http_identity_cookie_filter() in parse.c).  Other cookies
 * pass as they came.
 */

ngx_int_t
ngx_http_identity_cookie_strip(ngx_http_request_t *r, ngx_array_t *names)
{
    u_char            *buf;
    ngx_uint_t         i;
    ngx_table_elt_t  **h;

    h = r->headers_in.cookies.elts;

    for (i = 0; i < r->headers_in.cookies.nelts; i++) {

        buf = ngx_pnalloc(r->pool, 2 * h[i]->value.len);
        if (buf == NULL) {
            return NGX_ERROR;
        }

        h[i]->value.len = ngx_http_identity_cookie_filter(&h[i]->value, names,
                                                          buf);
        h[i]->value.data = buf;
    }

    return NGX_OK;
}


/* NGX_OK, NGX_DECLINED when absent or malformed, or an HTTP status */

ngx_int_t
ngx_http_identity_read_cookie(ngx_http_request_t *r,
    ngx_http_identity_loc_conf_t *ilcf, ngx_str_t *token)
{
    ngx_int_t  rc;
    ngx_str_t  name;

    if (ngx_http_identity_cookie_name(r, &ilcf->session_cookie,
                                      &ilcf->cookie_domain, "", &name)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_identity_cookie_get(r, &name, token);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_identity_cookie_token(token)) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "identity: malformed session cookie");

    return NGX_DECLINED;
}


/*
 * The state cookie binds a login in progress to the browser.  It is named
 * after the server's session cookie whichever location started the login:
 * the callback, which reads it, belongs to no location.
 */

ngx_int_t
ngx_http_identity_state_cookie(ngx_http_request_t *r, ngx_str_t *name,
    ngx_str_t *domain)
{
    ngx_http_identity_loc_conf_t  *ilcf;

    ilcf = ngx_http_identity_server_conf(r);
    *domain = ilcf->cookie_domain;

    return ngx_http_identity_cookie_name(r, &ilcf->cookie_name,
                                         &ilcf->cookie_domain, "_state",
                                         name);
}


/*
 * An auth id keeps the sessions of its locations apart from the others of
 * the server: its own cookie, and sessions that only its locations admit.
 */

ngx_int_t
ngx_http_identity_cookie_auth_name(ngx_conf_t *cf,
    ngx_http_identity_loc_conf_t *conf)
{
    if (conf->auth_id.len == 0) {
        conf->session_cookie = conf->cookie_name;
        return NGX_OK;
    }

    if (conf->auth_id.len > 64
        || !ngx_http_identity_is_word(&conf->auth_id)
        || (conf->auth_id.len == 5
            && ngx_strncmp(conf->auth_id.data, "state", 5) == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"identity_auth_id\"",
                           &conf->auth_id);
        return NGX_ERROR;
    }

    conf->session_cookie.len = conf->cookie_name.len + 1 + conf->auth_id.len;
    conf->session_cookie.data = ngx_pnalloc(cf->pool,
                                            conf->session_cookie.len);
    if (conf->session_cookie.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(conf->session_cookie.data, "%V_%V", &conf->cookie_name,
                &conf->auth_id);

    return NGX_OK;
}


/*
 * The state that came back from the provider must be the one in this
 * browser's state cookie, compared in constant time: NGX_OK, else an HTTP
 * status.
 */

ngx_int_t
ngx_http_identity_cookie_bound(ngx_http_request_t *r, ngx_str_t *state)
{
    ngx_int_t  rc;
    ngx_str_t  name, domain, cookie;

    if (ngx_http_identity_state_cookie(r, &name, &domain) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_identity_cookie_get(r, &name, &cookie);

    if (rc == NGX_HTTP_BAD_REQUEST) {
        return rc;
    }

    if (rc != NGX_OK || !ngx_http_identity_secure_equal(&cookie, state)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: state does not match this browser's");
        return NGX_HTTP_BAD_REQUEST;
    }

    return NGX_OK;
}
