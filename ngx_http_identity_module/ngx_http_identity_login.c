
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The login lifecycle: a login is prepared (where to return, which auth
 * id) by the access phase or the login endpoint, started by the provider's
 * protocol (its table entry's login), bound to the browser by the state
 * cookie, and finished here once a route of the protocol has the claims:
 * claims sanitized, a session, its cookie and a redirect back.  A login
 * that fails ends on the error page (error.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_claims.h"
#include "ngx_http_identity_cookie.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_error.h"
#include "ngx_http_identity_events.h"
#include "ngx_http_identity_metrics.h"
#include "ngx_http_identity_protocol.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_store.h"
#include "ngx_http_identity_store_risk.h"
#include "ngx_http_identity_login.h"


enum {
    ngx_http_identity_finish_verify = 0,
    ngx_http_identity_finish_risk,
    ngx_http_identity_finish_create,
    ngx_http_identity_finish_revoke
};


static ngx_int_t ngx_http_identity_login_risk(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_login_denied(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_login_create(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_login_done(ngx_http_request_t *r);


ngx_int_t
ngx_http_identity_prepare_login(ngx_http_request_t *r,
    ngx_http_identity_loc_conf_t *ilcf, ngx_str_t *return_to)
{
    u_char                        *p;
    ngx_str_t                      base;
    ngx_http_identity_ctx_t       *ctx;
    ngx_http_identity_srv_conf_t  *iscf;

    ctx = ngx_http_identity_get_ctx(r);
    iscf = ngx_http_get_module_srv_conf(r, ngx_http_identity_module);

    if (ctx->provider == NULL) {
        ctx->provider = ilcf->provider;
    }

    if (ngx_http_identity_return_target(r, return_to, &ctx->login.return_to)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->login.cookie_name = ilcf->session_cookie;
    ctx->login.auth_id = ilcf->auth_id;
    ctx->login.cookie_domain = ilcf->cookie_domain;
    ctx->login.idle_timeout = ilcf->idle_timeout;
    ctx->login.max_duration = ilcf->max_duration;

    if (ctx->provider->redirect_uri.len) {
        ctx->login.redirect_uri = ctx->provider->redirect_uri;
        return NGX_OK;
    }

    if (ngx_http_identity_public_origin(r, &base) != NGX_OK) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, base.len + iscf->path.len
                             + sizeof("callback") - 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ctx->login.redirect_uri.data = p;
    p = ngx_cpymem(p, base.data, base.len);
    p = ngx_cpymem(p, iscf->path.data, iscf->path.len);
    p = ngx_cpymem(p, "callback", sizeof("callback") - 1);
    ctx->login.redirect_uri.len = p - ctx->login.redirect_uri.data;

    return NGX_OK;
}


/*
 * The error page: its retry link is where the pending login was to
 * return, once known and still a same-site path, else "/".
 */

ngx_int_t
ngx_http_identity_fail(ngx_http_request_t *r, ngx_int_t status,
    ngx_uint_t reason)
{
    ngx_str_t                       retry, id;
    ngx_http_identity_ctx_t        *ctx;
    ngx_http_variable_value_t      *v;
    ngx_http_identity_main_conf_t  *imcf;

    ctx = ngx_http_identity_get_ctx(r);
    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    if (ctx == NULL) {
        return status;
    }

    retry = ctx->login.return_to;

    if (ngx_http_identity_local_path(&retry) != NGX_OK) {
        ngx_str_set(&retry, "/");
    }

    v = ngx_http_get_indexed_variable(r, imcf->request_id);

    if (v == NULL || v->not_found) {
        ngx_str_set(&id, "-");

    } else {
        id.data = v->data;
        id.len = v->len;
    }

    return ngx_http_identity_error_page(r, status, reason, &retry, &id);
}


/* the redirect to the provider: ctx->provider and ctx->login are set */

ngx_int_t
ngx_http_identity_login(ngx_http_request_t *r)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "identity: login started with \"%V\" (%V)",
                   &ctx->provider->name, &ctx->provider->protocol->name);

    return ctx->provider->protocol->login(r);
}


/*
 * A route that finishes a login: its handler runs until it has verified
 * the provider's answer (NGX_OK, with ctx->claims, ctx->provider and
 * ctx->login filled), then the session is made here.  NGX_AGAIN while
 * waiting, resumed by calling this again; else the status to answer.
 */

ngx_int_t
ngx_http_identity_login_finish(ngx_http_request_t *r,
    ngx_http_identity_route_pt verify)
{
    ngx_int_t                 rc;
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    switch (ctx->finish) {

    case ngx_http_identity_finish_verify:

        rc = verify(r);
        if (rc != NGX_OK) {
            return rc;
        }

        /* the claims are not logged before the gate: they may forge lines */

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "identity: login verified by \"%V\"",
                       &ctx->provider->name);

        ctx->finish = ngx_http_identity_finish_risk;

        return ngx_http_identity_login_risk(r);

    case ngx_http_identity_finish_risk:

        if (ctx->redis_error) {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        if (ctx->risk_denied) {
            return ngx_http_identity_login_denied(r);
        }

        ctx->finish = ngx_http_identity_finish_create;

        return ngx_http_identity_login_create(r);

    case ngx_http_identity_finish_create:

        /* over concurrent_sessions' max when made (store.c): as above */

        if (ctx->risk_denied && !ctx->redis_error) {
            if (ngx_http_identity_risk_refused(r) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_http_identity_login_denied(r);
        }

        if (ctx->risk_revoke && ctx->found && !ctx->redis_error) {
            ctx->finish = ngx_http_identity_finish_revoke;

            if (ngx_http_identity_risk_revoke(r) != NGX_OK) {
                return NGX_HTTP_SERVICE_UNAVAILABLE;
            }

            return NGX_AGAIN;
        }

        return ngx_http_identity_login_done(r);

    default: /* ngx_http_identity_finish_revoke */
        return ngx_http_identity_login_done(r);
    }
}


/*
 * The claims gate, then the risk signals (store_risk.c): compared with
 * the identity's history before the session is made
 */

static ngx_int_t
ngx_http_identity_login_risk(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_http_identity_ctx_t        *ctx;
    ngx_http_identity_main_conf_t  *imcf;

    ctx = ngx_http_identity_get_ctx(r);
    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    /* every protocol's claims pass here, and only here, for a session */

    rc = ngx_http_identity_claims_sanitize(r->connection->log, r->pool,
                                           &ctx->claims, imcf->claims_kept);

    if (rc == NGX_DECLINED) {
        return NGX_HTTP_FORBIDDEN;
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_identity_risk_check(r) != NGX_OK) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    return NGX_AGAIN;
}


/* a denial by risk ends as a denial by the rules: 403, no session */

static ngx_int_t
ngx_http_identity_login_denied(ngx_http_request_t *r)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "identity: login of \"%V\" with \"%V\" denied by \"%s\"",
                  &ctx->claims.provider_user_id, &ctx->provider->name,
                  ctx->fail_reason);

    return NGX_HTTP_FORBIDDEN;
}


/* a login was accepted: a new session, for ngx_http_identity_login_done() */

static ngx_int_t
ngx_http_identity_login_create(ngx_http_request_t *r)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    if (ngx_http_identity_random(r->pool, 32, &ctx->token) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->found = 0;

    if (ngx_http_identity_session_create(r, &ctx->token) != NGX_OK) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "identity: claims of \"%V\" sanitized, session create "
                   "sent", &ctx->claims.provider_user_id);

    return NGX_AGAIN;
}


/* the session is in Redis: its cookie, and back to where the user was */

static ngx_int_t
ngx_http_identity_login_done(ngx_http_request_t *r)
{
    ngx_str_t                 name, domain, empty, location;
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    if (ctx->redis_error || !ctx->found) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "identity: \"%V\" logged in with \"%V\", session \"%V\"",
                  &ctx->claims.provider_user_id, &ctx->provider->name,
                  &ctx->session.id);

    ngx_http_identity_metrics_login(ctx->provider,
                                    NGX_HTTP_IDENTITY_LOGIN_SUCCESS);
    ngx_http_identity_event_login(r, 1, NULL);

    ngx_str_null(&empty);

    if (ngx_http_identity_cookie_name(r, &ctx->login.cookie_name,
                                      &ctx->login.cookie_domain, "", &name)
        != NGX_OK
        || ngx_http_identity_cookie_set(r, &name, &ctx->token,
                                        &ctx->login.cookie_domain,
                                        NGX_HTTP_IDENTITY_COOKIE_SESSION)
           != NGX_OK
        || ngx_http_identity_state_cookie(r, &name, &domain) != NGX_OK
        || ngx_http_identity_cookie_set(r, &name, &empty, &domain,
                                        NGX_HTTP_IDENTITY_COOKIE_DELETE)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    location = ctx->login.return_to;

    if (ngx_http_identity_set_location(r, &location) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_HTTP_MOVED_TEMPORARILY;
}
