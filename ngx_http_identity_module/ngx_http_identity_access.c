
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The access phase: a session cookie is checked against the store on every
 * request to a protected location; without a valid one a browser is sent
 * to login and any other client gets 401.  A step that waits for Redis or
 * a provider returns NGX_AGAIN and is resumed by phase_resume(), which runs
 * the phases again.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_admin.h"
#include "ngx_http_identity_claims.h"
#include "ngx_http_identity_cookie.h"
#include "ngx_http_identity_error.h"
#include "ngx_http_identity_login.h"
#include "ngx_http_identity_protocol.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_rules.h"
#include "ngx_http_identity_store.h"
#include "ngx_http_identity_events.h"
#include "ngx_http_identity_access.h"


enum {
    ngx_http_identity_protect_start = 0,
    ngx_http_identity_protect_lookup,
    ngx_http_identity_protect_claim,
    ngx_http_identity_protect_refresh,
    ngx_http_identity_protect_revoked,
    ngx_http_identity_protect_login
};


static ngx_int_t ngx_http_identity_protect(ngx_http_request_t *r,
    ngx_http_identity_ctx_t *ctx, ngx_http_identity_loc_conf_t *ilcf);
static ngx_int_t ngx_http_identity_session_checked(ngx_http_request_t *r,
    ngx_http_identity_ctx_t *ctx, ngx_http_identity_loc_conf_t *ilcf);
static ngx_int_t ngx_http_identity_refresh_checked(ngx_http_request_t *r,
    ngx_http_identity_ctx_t *ctx, ngx_http_identity_loc_conf_t *ilcf);
static ngx_int_t ngx_http_identity_admit(ngx_http_request_t *r,
    ngx_http_identity_ctx_t *ctx, ngx_http_identity_loc_conf_t *ilcf);
static ngx_int_t ngx_http_identity_strip(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_deny(ngx_http_request_t *r,
    ngx_http_identity_ctx_t *ctx, ngx_http_identity_loc_conf_t *ilcf);
static ngx_int_t ngx_http_identity_unauthenticated(ngx_http_request_t *r,
    ngx_http_identity_ctx_t *ctx, ngx_http_identity_loc_conf_t *ilcf);
static void ngx_http_identity_phase_resume(ngx_http_request_t *r);


ngx_int_t
ngx_http_identity_access_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_http_identity_ctx_t       *ctx;
    ngx_http_identity_loc_conf_t  *ilcf;

    ilcf = ngx_http_get_module_loc_conf(r, ngx_http_identity_module);

    /*
     * Requests that no login guards here keep the module's cookies from
     * their upstream too: any location's session, the state cookie.
     */

    if (ilcf->provider == NULL) {
        return ngx_http_identity_strip(r);
    }

    /*
     * The admin API checks a bearer token itself: scripts have no login.
     * Only the admin API: a location nested in it, or one whose content
     * comes from elsewhere, is not the one that checks the token.
     */

    if (r->headers_in.authorization
        && r->content_handler == ngx_http_identity_admin_handler)
    {
        return ngx_http_identity_strip(r);
    }

    /* a CORS preflight carries no cookie: it cannot log in */

    if (ilcf->cors_preflight && ngx_http_identity_is_preflight(r)) {
        return ngx_http_identity_strip(r);
    }

    ctx = ngx_http_identity_create_ctx(r);
    if (ctx == NULL || ngx_http_identity_log_request_id(r, 0) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_identity_protect(r, ctx, ilcf);

    if (rc == NGX_AGAIN) {
        /*
         * Nothing but the answer may run the phases again: on a kept-alive
         * connection the write event is ready and would re-enter them.
         */
        r->write_event_handler = ngx_http_request_empty_handler;
        return rc;
    }

    /* Redis or the provider down: a page to try again from, as at login */

    if (rc != NGX_HTTP_SERVICE_UNAVAILABLE
        && rc != NGX_HTTP_BAD_GATEWAY
        && rc != NGX_HTTP_GATEWAY_TIME_OUT)
    {
        return rc;
    }

    if (ctx->login.return_to.len == 0
        && ngx_http_identity_return_target(r, &r->unparsed_uri,
                                           &ctx->login.return_to)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_finalize_request(r, ngx_http_identity_fail(r, rc,
                                  rc == NGX_HTTP_SERVICE_UNAVAILABLE
                                  ? NGX_HTTP_IDENTITY_ERROR_UNAVAILABLE
                                  : NGX_HTTP_IDENTITY_ERROR_PROVIDER));
    return NGX_DONE;
}


static ngx_int_t
ngx_http_identity_protect(ngx_http_request_t *r, ngx_http_identity_ctx_t *ctx,
    ngx_http_identity_loc_conf_t *ilcf)
{
    ngx_int_t                       rc;
    ngx_http_identity_main_conf_t  *imcf;

    switch (ctx->protect) {

    case ngx_http_identity_protect_start:

        if (ctx->authenticated) {
            return NGX_OK;
        }

        ctx->resume = ngx_http_identity_phase_resume;

        rc = ngx_http_identity_read_cookie(r, ilcf, &ctx->token);

        if (rc == NGX_DECLINED) {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "identity: no session cookie");
            return ngx_http_identity_unauthenticated(r, ctx, ilcf);
        }

        if (rc != NGX_OK) {
            return rc;
        }

        imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

        rc = ngx_http_identity_session_lookup(r, imcf->need
                                              | (ilcf->rules
                                                 ? NGX_HTTP_IDENTITY_NEED_RULES
                                                 : 0));

        /* found in the node's session cache: checked at once */

        if (rc == NGX_DONE) {
            return ngx_http_identity_session_checked(r, ctx, ilcf);
        }

        if (rc != NGX_OK) {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "identity: session lookup sent");

        ctx->protect = ngx_http_identity_protect_lookup;
        return NGX_AGAIN;

    case ngx_http_identity_protect_lookup:

        return ngx_http_identity_session_checked(r, ctx, ilcf);

    case ngx_http_identity_protect_claim:

        if (ctx->redis_error) {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        /* another request is checking the user info now */

        if (!ctx->found) {
            return ngx_http_identity_admit(r, ctx, ilcf);
        }

        ctx->provider = ilcf->provider;

        /* the refresh may log from a thread: the request id is made now */

        if (ngx_http_identity_log_request_id(r, 1) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ctx->provider->protocol->refresh
             ? ctx->provider->protocol->refresh(r) : NGX_DECLINED;

        if (rc == NGX_DECLINED) {
            return ngx_http_identity_admit(r, ctx, ilcf);
        }

        if (rc != NGX_AGAIN) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "identity: session \"%V\": user info refresh",
                       &ctx->session.id);

        ctx->protect = ngx_http_identity_protect_refresh;
        return NGX_AGAIN;

    case ngx_http_identity_protect_refresh:

        return ngx_http_identity_refresh_checked(r, ctx, ilcf);

    case ngx_http_identity_protect_revoked:

        if (ctx->redis_error) {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        if (ctx->denied) {
            return ngx_http_identity_deny(r, ctx, ilcf);
        }

        ctx->reauth = 1;

        return ngx_http_identity_unauthenticated(r, ctx, ilcf);

    default: /* ngx_http_identity_protect_login */

        return ngx_http_identity_login(r);
    }
}


static ngx_int_t
ngx_http_identity_session_checked(ngx_http_request_t *r,
    ngx_http_identity_ctx_t *ctx, ngx_http_identity_loc_conf_t *ilcf)
{
    time_t                         now;
    ngx_http_identity_provider_t  *pr;
    ngx_http_identity_session_t   *s;

    /* logged with the error page */

    if (ctx->redis_error) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    s = &ctx->session;
    now = ngx_time();

    if (!ctx->found) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: unknown, expired or revoked session");
        ctx->reauth = 1;
        return ngx_http_identity_unauthenticated(r, ctx, ilcf);
    }

    if (s->expires_at <= now) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: session \"%V\" reached its maximum duration",
                      &s->id);
        ngx_http_identity_event_session(r, "session_expired",
                                        "max_duration", -1);
        return ngx_http_identity_unauthenticated(r, ctx, ilcf);
    }

    if (s->provider.len != ilcf->provider->name.len
        || ngx_strncmp(s->provider.data, ilcf->provider->name.data,
                       s->provider.len) != 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: session \"%V\" is for provider \"%V\"",
                      &s->id, &s->provider);
        return ngx_http_identity_unauthenticated(r, ctx, ilcf);
    }

    /* a session without an auth id holds none: no pointer to compare */

    if (s->auth_id.len != ilcf->auth_id.len
        || (s->auth_id.len
            && ngx_strncmp(s->auth_id.data, ilcf->auth_id.data,
                           s->auth_id.len)
               != 0))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: session \"%V\" is for auth id \"%V\"",
                      &s->id, &s->auth_id);
        return ngx_http_identity_unauthenticated(r, ctx, ilcf);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "identity: session \"%V\" checked, user \"%V\"",
                   &s->id, &s->provider_user_id);

    pr = ilcf->provider;

    if (pr->userinfo_refresh_interval
        && now - s->checked >= pr->userinfo_refresh_interval)
    {
        if (ngx_http_identity_session_claim(r, pr->userinfo_refresh_interval)
            != NGX_OK)
        {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        ctx->protect = ngx_http_identity_protect_claim;
        return NGX_AGAIN;
    }

    return ngx_http_identity_admit(r, ctx, ilcf);
}


/*
 * Continuous authorization: a provider that now refuses, or rules the
 * fresh user info no longer satisfies, end the session.  A provider that
 * cannot be reached leaves it as it was until the next interval.
 */

static ngx_int_t
ngx_http_identity_refresh_checked(ngx_http_request_t *r,
    ngx_http_identity_ctx_t *ctx, ngx_http_identity_loc_conf_t *ilcf)
{
    ngx_int_t                       rc;
    ngx_http_identity_session_t    *s;
    ngx_http_identity_main_conf_t  *imcf;

    s = &ctx->session;

    if (ctx->status == 0) {
        imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

        rc = ngx_http_identity_claims_sanitize(r->connection->log, r->pool,
                                               &ctx->claims,
                                               imcf->claims_kept);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc == NGX_DECLINED) {
            ctx->status = NGX_HTTP_FORBIDDEN;
            ctx->denied = 1;
        }
    }

    if (ctx->status && ctx->status != NGX_HTTP_FORBIDDEN) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "identity: user info of session \"%V\" not checked, "
                      "kept until the next check", &s->id);
        ctx->status = 0;
        return ngx_http_identity_admit(r, ctx, ilcf);
    }

    if (ctx->status == 0) {
        s->email = ctx->claims.email;
        s->name = ctx->claims.name;
        s->username = ctx->claims.username;
        s->groups = ctx->claims.groups;
        s->claims = ctx->claims.raw;

        /* the identity shows what the provider says now, either way */

        (void) ngx_http_identity_session_refreshed(r);

        rc = ngx_http_identity_rules_check(r, ilcf->rules, s);

        if (rc == NGX_ERROR) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (rc == NGX_OK) {
            return ngx_http_identity_admit(r, ctx, ilcf);
        }

        ctx->denied = 1;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "identity: session \"%V\" ended: %s", &s->id,
                  ctx->denied ? "the rules no longer admit its user"
                              : "the provider refuses its tokens");

    ctx->status = 0;

    if (ngx_http_identity_session_destroy(r) != NGX_OK) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ctx->protect = ngx_http_identity_protect_revoked;
    return NGX_AGAIN;
}


/* a valid session: the location's rules decide */

static ngx_int_t
ngx_http_identity_admit(ngx_http_request_t *r, ngx_http_identity_ctx_t *ctx,
    ngx_http_identity_loc_conf_t *ilcf)
{
    ngx_int_t  rc;

    rc = ngx_http_identity_rules_check(r, ilcf->rules, &ctx->session);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_identity_deny(r, ctx, ilcf);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "identity: session \"%V\" admitted", &ctx->session.id);

    ctx->authenticated = 1;
    ctx->protect = ngx_http_identity_protect_start;

    if (ngx_time() - ctx->session.last_active >= ilcf->touch_interval) {
        ngx_http_identity_session_touch(r);
    }

    if (ngx_http_identity_strip(r) != NGX_DECLINED) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_OK;
}


/* NGX_DECLINED once the module's cookies are off the request headers */

static ngx_int_t
ngx_http_identity_strip(ngx_http_request_t *r)
{
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    if (imcf->cookies == NULL || r->headers_in.cookies.nelts == 0) {
        return NGX_DECLINED;
    }

    if (ngx_http_identity_cookie_strip(r, imcf->cookies) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


/*
 * 403: a browser gets a page naming the account, with a link to log out
 * and come back here; other clients a bare 403.
 */

static ngx_int_t
ngx_http_identity_deny(ngx_http_request_t *r, ngx_http_identity_ctx_t *ctx,
    ngx_http_identity_loc_conf_t *ilcf)
{
    ngx_str_t  logout;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "identity: session \"%V\" denied by the rules",
                   &ctx->session.id);

    if (!ngx_http_identity_is_browser(r)) {
        return NGX_HTTP_FORBIDDEN;
    }

    if (ngx_http_identity_logout_url(r, ilcf, &r->uri, &logout) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_identity_rules_deny(r, &ctx->session, &logout);
}


static ngx_int_t
ngx_http_identity_unauthenticated(ngx_http_request_t *r,
    ngx_http_identity_ctx_t *ctx, ngx_http_identity_loc_conf_t *ilcf)
{
    ngx_table_elt_t  *h;

    if (!ngx_http_identity_is_browser(r)) {
        h = ngx_http_identity_add_header(r, "WWW-Authenticate",
                                         "Cookie realm=\"identity\"");
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        r->headers_out.www_authenticate = h;

        return NGX_HTTP_UNAUTHORIZED;
    }

    /* a login may log from a thread (discovery): the request id now */

    if (ngx_http_identity_log_request_id(r, 1) != NGX_OK
        || ngx_http_identity_prepare_login(r, ilcf, &r->unparsed_uri)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "identity: browser sent to log in with \"%V\"",
                   &ilcf->provider->name);

    ctx->protect = ngx_http_identity_protect_login;
    ctx->state = 0;

    return ngx_http_identity_login(r);
}


static void
ngx_http_identity_phase_resume(ngx_http_request_t *r)
{
    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}
