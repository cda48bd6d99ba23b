
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The reserved paths under identity_path (/_identity/ by default), routed
 * in the server rewrite phase so that they work whichever location of the
 * server is protected: login and logout here, and the routes each protocol
 * lists in its table (the login callback, back-channel logout, the SAML
 * endpoints).  A route that finishes a login goes through login.c.  A step
 * that waits returns NGX_AGAIN and is resumed by endpoint_resume().
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_cookie.h"
#include "ngx_http_identity_error.h"
#include "ngx_http_identity_login.h"
#include "ngx_http_identity_protocol.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_store.h"
#include "ngx_http_identity_endpoint.h"
#include "ngx_http_identity_events.h"
#include "ngx_http_identity_metrics.h"


static ngx_http_identity_route_t *ngx_http_identity_endpoint_route(
    ngx_http_request_t *r, ngx_str_t *path);
static ngx_int_t ngx_http_identity_endpoint(ngx_http_request_t *r);
static void ngx_http_identity_endpoint_resume(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_endpoint_failed(ngx_http_request_t *r,
    ngx_int_t rc);
static ngx_int_t ngx_http_identity_login_endpoint(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_logout_endpoint(ngx_http_request_t *r);


static ngx_http_identity_route_t  ngx_http_identity_endpoint_routes[] = {

    { ngx_string("login"), ngx_http_identity_login_endpoint,
      NGX_HTTP_IDENTITY_ROUTE_PAGE },

    { ngx_string("logout"), ngx_http_identity_logout_endpoint,
      NGX_HTTP_IDENTITY_ROUTE_PAGE },

    { ngx_null_string, NULL, 0 }
};


ngx_int_t
ngx_http_identity_endpoint_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      rest;
    ngx_http_identity_ctx_t       *ctx;
    ngx_http_identity_srv_conf_t  *iscf;

    iscf = ngx_http_get_module_srv_conf(r, ngx_http_identity_module);

    /* a server that protects nothing keeps its whole URI space */

    if (iscf->providers == NULL
        || iscf->path.len == 0
        || r->uri.len < iscf->path.len
        || ngx_strncmp(r->uri.data, iscf->path.data, iscf->path.len) != 0)
    {
        return NGX_DECLINED;
    }

    ctx = ngx_http_identity_create_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rest.data = r->uri.data + iscf->path.len;
    rest.len = r->uri.len - iscf->path.len;

    ctx->route = ngx_http_identity_endpoint_route(r, &rest);
    if (ctx->route == NULL) {
        return NGX_HTTP_NOT_FOUND;
    }

    ctx->resume = ngx_http_identity_endpoint_resume;

    if (ngx_http_identity_log_request_id(r, 1) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!(ctx->route->flags & NGX_HTTP_IDENTITY_ROUTE_BODY)) {
        if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST))) {
            return NGX_HTTP_NOT_ALLOWED;
        }

        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    rc = ngx_http_identity_endpoint(r);

    if (rc == NGX_AGAIN) {
        r->write_event_handler = ngx_http_request_empty_handler;
        return NGX_DONE;
    }

    return ngx_http_identity_endpoint_failed(r, rc);
}


/* the module's own routes, then those of the protocols, in their order */

static ngx_http_identity_route_t *
ngx_http_identity_endpoint_route(ngx_http_request_t *r, ngx_str_t *path)
{
    ngx_http_identity_route_t       *rt, **rp;
    ngx_http_identity_protocol_t   **pp;
    ngx_http_identity_main_conf_t   *imcf;

    for (rt = ngx_http_identity_endpoint_routes; rt->handler; rt++) {
        if (rt->path.len == path->len
            && ngx_strncmp(rt->path.data, path->data, path->len) == 0)
        {
            return rt;
        }
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    for (pp = imcf->protocols; *pp; pp++) {
        for (rp = (*pp)->routes; rp && *rp; rp++) {
            rt = *rp;

            if (rt->path.len == path->len
                && ngx_strncmp(rt->path.data, path->data, path->len) == 0)
            {
                return rt;
            }
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_identity_endpoint(ngx_http_request_t *r)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    if (ctx->route->flags & NGX_HTTP_IDENTITY_ROUTE_FINISH) {
        return ngx_http_identity_login_finish(r, ctx->route->handler);
    }

    return ctx->route->handler(r);
}


static void
ngx_http_identity_endpoint_resume(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_identity_endpoint(r);

    if (rc != NGX_AGAIN) {
        ngx_http_finalize_request(r, ngx_http_identity_endpoint_failed(r, rc));
    }
}


/* an audit event's reason, by NGX_HTTP_IDENTITY_ERROR_* */

static char  *ngx_http_identity_fail_reasons[] = {
    "state", "link", "cancelled", "refused", "unavailable", "provider",
    "internal"
};


/*
 * Every way a login can fail at an endpoint ends here: a page that says
 * what happened instead of nginx's bare one.  Returns what the request is
 * to be finalized with.
 */

static ngx_int_t
ngx_http_identity_endpoint_failed(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_str_t                 arg;
    ngx_uint_t                reason, back, flags;
    ngx_http_identity_ctx_t  *ctx;

    /*
     * Not an error status: the request may be gone already (NGX_DONE once
     * a body read at once was handled to the end), so it is not touched.
     */

    if (rc < NGX_HTTP_BAD_REQUEST) {
        return rc;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_identity_module);

    if (ctx == NULL
        || ctx->route == NULL
        || rc == NGX_HTTP_NOT_FOUND
        || rc == NGX_HTTP_NOT_ALLOWED
        || rc == NGX_HTTP_CLIENT_CLOSED_REQUEST
        || r->header_sent)
    {
        return rc;
    }

    flags = ctx->route->flags;

    if (!(flags & NGX_HTTP_IDENTITY_ROUTE_PAGE)) {
        return rc;
    }

    /* where the provider's answer comes back, and SAML's second step */

    back = flags & NGX_HTTP_IDENTITY_ROUTE_BACK;

    if (flags & NGX_HTTP_IDENTITY_ROUTE_FINISH) {
        ngx_http_identity_metrics_login(ctx->provider,
                                        rc == NGX_HTTP_FORBIDDEN
                                        ? NGX_HTTP_IDENTITY_LOGIN_DENIED
                                        : NGX_HTTP_IDENTITY_LOGIN_FAILED);
    }

    switch (rc) {

    case NGX_HTTP_SERVICE_UNAVAILABLE:
        reason = NGX_HTTP_IDENTITY_ERROR_UNAVAILABLE;
        break;

    case NGX_HTTP_BAD_GATEWAY:
    case NGX_HTTP_GATEWAY_TIME_OUT:
        reason = NGX_HTTP_IDENTITY_ERROR_PROVIDER;
        break;

    case NGX_HTTP_FORBIDDEN:

        if (ctx->risk_denied) {
            reason = NGX_HTTP_IDENTITY_ERROR_RISK + ctx->risk_denied - 1;
            break;
        }

        reason = ((flags & NGX_HTTP_IDENTITY_ROUTE_CANCEL)
                  && ngx_http_arg(r, (u_char *) "error", 5, &arg) == NGX_OK)
                 ? NGX_HTTP_IDENTITY_ERROR_CANCELLED
                 : NGX_HTTP_IDENTITY_ERROR_REFUSED;
        break;

    case NGX_HTTP_BAD_REQUEST:
        reason = back ? NGX_HTTP_IDENTITY_ERROR_STATE
                      : NGX_HTTP_IDENTITY_ERROR_LINK;
        break;

    default:
        reason = (rc >= NGX_HTTP_INTERNAL_SERVER_ERROR)
                 ? NGX_HTTP_IDENTITY_ERROR_INTERNAL
                 : NGX_HTTP_IDENTITY_ERROR_LINK;
    }

    /* where a provider's answer arrives: SAML's ACS refuses a response */

    if (flags & (NGX_HTTP_IDENTITY_ROUTE_FINISH|NGX_HTTP_IDENTITY_ROUTE_BACK))
    {
        ngx_http_identity_event_login(r, 0, ctx->fail_reason
                                            ? ctx->fail_reason
                                            : ngx_http_identity_fail_reasons[
                                                  reason]);
    }

    return ngx_http_identity_fail(r, rc, reason);
}


/* login?redirect_path=/x[&provider=NAME][&auth_id=ID] */

static ngx_int_t
ngx_http_identity_login_endpoint(ngx_http_request_t *r)
{
    ngx_str_t                       path, name;
    ngx_uint_t                      i;
    ngx_http_identity_ctx_t        *ctx;
    ngx_http_identity_loc_conf_t   *ilcf;
    ngx_http_identity_srv_conf_t   *iscf;
    ngx_http_identity_provider_t  **pp;

    ctx = ngx_http_identity_get_ctx(r);

    if (ctx->provider) {
        return ngx_http_identity_login(r);
    }

    iscf = ngx_http_get_module_srv_conf(r, ngx_http_identity_module);

    ilcf = ngx_http_identity_auth_conf(r);
    if (ilcf == NULL) {
        return NGX_HTTP_BAD_REQUEST;
    }

    if (iscf->providers == NULL || iscf->providers->nelts == 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: login on a server that protects nothing");
        return NGX_HTTP_NOT_FOUND;
    }

    pp = iscf->providers->elts;
    ctx->provider = ilcf->provider ? ilcf->provider : pp[0];

    if (ngx_http_arg(r, (u_char *) "provider", 8, &name) == NGX_OK) {
        ctx->provider = NULL;

        for (i = 0; i < iscf->providers->nelts; i++) {
            if (pp[i]->name.len == name.len
                && ngx_strncmp(pp[i]->name.data, name.data, name.len) == 0)
            {
                ctx->provider = pp[i];
                break;
            }
        }

        if (ctx->provider == NULL) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "identity: login with unknown provider \"%V\"",
                          &name);
            return NGX_HTTP_BAD_REQUEST;
        }
    }

    if (ngx_http_identity_redirect_path(r, &path) != NGX_OK) {
        return NGX_HTTP_BAD_REQUEST;
    }

    if (ngx_http_identity_prepare_login(r, ilcf, &path) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->state = 0;

    return ngx_http_identity_login(r);
}


/*
 * logout?redirect_path=/x[&auth_id=ID]: the session is deleted in Redis,
 * not only here
 */

static ngx_int_t
ngx_http_identity_logout_endpoint(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      path, name, empty, idp;
    ngx_http_identity_ctx_t       *ctx;
    ngx_http_identity_loc_conf_t  *ilcf;
    ngx_http_identity_provider_t  *pr;

    ctx = ngx_http_identity_get_ctx(r);

    ilcf = ngx_http_identity_auth_conf(r);
    if (ilcf == NULL) {
        return NGX_HTTP_BAD_REQUEST;
    }

    if (ctx->state == 0) {
        ctx->state = 1;

        rc = ngx_http_identity_read_cookie(r, ilcf, &ctx->token);

        if (rc == NGX_OK) {
            if (ngx_http_identity_session_destroy(r) != NGX_OK) {
                return NGX_HTTP_SERVICE_UNAVAILABLE;
            }

            return NGX_AGAIN;
        }

        if (rc != NGX_DECLINED) {
            return rc;
        }

    } else if (ctx->redis_error) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    if (ngx_http_identity_redirect_path(r, &path) != NGX_OK) {
        return NGX_HTTP_BAD_REQUEST;
    }

    ngx_str_null(&empty);

    if (ngx_http_identity_cookie_name(r, &ilcf->session_cookie,
                                      &ilcf->cookie_domain, "", &name)
        != NGX_OK
        || ngx_http_identity_cookie_set(r, &name, &empty, &ilcf->cookie_domain,
                                        NGX_HTTP_IDENTITY_COOKIE_DELETE)
           != NGX_OK
        || ngx_http_identity_set_location(r, &path) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!ctx->found) {
        return NGX_HTTP_MOVED_TEMPORARILY;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "identity: logged out");

    /* the provider's session may end too (OpenID Connect end_session) */

    pr = ngx_http_identity_find_provider(r, &ctx->session.provider);

    if (pr == NULL || pr->protocol->logout == NULL) {
        return NGX_HTTP_MOVED_TEMPORARILY;
    }

    rc = pr->protocol->logout(r, pr, &path, &idp);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_OK && ngx_http_identity_set_location(r, &idp) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_HTTP_MOVED_TEMPORARILY;
}


char *
ngx_http_identity_path(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_identity_srv_conf_t *iscf = conf;

    ngx_str_t  *value;

    if (iscf->path.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len < 2 || value[1].data[0] != '/'
        || value[1].data[value[1].len - 1] != '/')
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\": a prefix such as "
                           "\"/_identity/\" is expected", &value[1],
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    iscf->path = value[1];

    return NGX_CONF_OK;
}
