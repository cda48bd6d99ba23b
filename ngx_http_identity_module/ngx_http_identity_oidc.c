
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * OpenID Connect relying party, authorization code flow with PKCE S256.
 * The authorization request, the callback's pending login and the code
 * exchange are the OAuth 2.0 core's (ngx_http_identity_oauth2.c); here is
 * the protocol on the event loop: login, the callback, back-channel logout
 * and end_session.  The discovery and the per-worker caches are in
 * ngx_http_identity_oidc_discovery.c; what runs in threads to verify the ID
 * token and a logout token is in ngx_http_identity_oidc_token.c.
 *
 * Discovery, JWKS, token and userinfo calls are blocking HTTP calls made
 * with liboauth2 (libcurl) in nginx's thread pool; the ID token is verified
 * there too, with cjose, so the event loop only ever sees the outcome.
 * Metadata and the JWKS are cached per worker; an unknown "kid" triggers a
 * JWKS refetch, at most once per jwks_refetch_interval.
 *
 * A worker fetches a provider's metadata once at a time: the discovery is a
 * detached task that every request needing it waits for.  A failed one is
 * remembered for NGX_HTTP_IDENTITY_OIDC_BACKOFF seconds, logged once, and
 * meanwhile logins answer 503 with Retry-After at once, so that a provider
 * that is down cannot fill the thread pool with calls that time out.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>
#include <cjose/cjose.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_store.h"
#include "ngx_http_identity_task.h"
#include "ngx_http_identity_body.h"
#include "ngx_http_identity_fetch.h"
#include "ngx_http_identity_protocol.h"
#include "ngx_http_identity_oauth2.h"
#include "ngx_http_identity_oidc.h"
#include "ngx_http_identity_oidc_discovery.h"
#include "ngx_http_identity_oidc_token.h"


#define NGX_HTTP_IDENTITY_LOGOUT_TOKEN_MAX  16384


static char *ngx_http_identity_oidc_conf(ngx_conf_t *cf,
    ngx_http_identity_provider_t *pr);
static ngx_int_t ngx_http_identity_oidc_init_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_identity_oidc_login(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_oidc_callback(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_oidc_logout(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_str_t *path, ngx_str_t *url);
static ngx_int_t ngx_http_identity_oidc_backchannel(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_oidc_redirect(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_oidc_post_exchange(ngx_http_request_t *r);
static ngx_http_identity_oidc_exchange_t *ngx_http_identity_oidc_jws_ctx(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_oidc_logout_token(ngx_http_request_t *r);
static void ngx_http_identity_oidc_backchannel_done(ngx_http_request_t *r,
    void *data);
static void ngx_http_identity_oidc_adopt_jwks(
    ngx_http_identity_oidc_exchange_t *x);
static void ngx_http_identity_oidc_exchange_done(ngx_http_request_t *r,
    void *data);
static ngx_uint_t ngx_http_identity_oidc_has_scope(ngx_str_t *scopes,
    const char *scope);


static ngx_http_identity_route_t  ngx_http_identity_oidc_backchannel_route = {
    ngx_string("backchannel_logout"),
    ngx_http_identity_oidc_backchannel,
    NGX_HTTP_IDENTITY_ROUTE_BODY
};


static ngx_http_identity_route_t  *ngx_http_identity_oidc_routes[] = {
    &ngx_http_identity_oauth2_callback_route,
    &ngx_http_identity_oidc_backchannel_route,
    NULL
};


ngx_http_identity_protocol_t  ngx_http_identity_oidc_protocol = {
    ngx_string("oidc"),
    ngx_http_identity_oidc_conf,
    ngx_http_identity_oidc_init_process,
    ngx_http_identity_oidc_login,
    ngx_http_identity_oidc_callback,
    NULL,                                   /* refresh */
    ngx_http_identity_oidc_logout,
    ngx_http_identity_oidc_routes
};


/* the end of an identity_provider block of type oidc */

static char *
ngx_http_identity_oidc_conf(ngx_conf_t *cf, ngx_http_identity_provider_t *pr)
{
    ngx_str_t  *alg;

    if (pr->issuer.len == 0 || pr->client_id.len == 0
        || pr->client_secret.len == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "identity provider \"%V\" needs \"issuer\", "
                           "\"client_id\" and \"client_secret\"", &pr->name);
        return NGX_CONF_ERROR;
    }

    if (pr->scopes.len == 0) {
        ngx_str_set(&pr->scopes, "openid email profile");
    }

    ngx_conf_init_uint_value(pr->token_auth, NGX_HTTP_IDENTITY_AUTH_BASIC);
    ngx_conf_init_uint_value(pr->userinfo, NGX_HTTP_IDENTITY_USERINFO_AUTO);
    ngx_conf_init_value(pr->end_session, 0);
    ngx_conf_init_value(pr->jwks_refetch_interval, 60);

    if (pr->signing_algs == NGX_CONF_UNSET_PTR) {
        pr->signing_algs = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
        if (pr->signing_algs == NULL) {
            return NGX_CONF_ERROR;
        }

        alg = ngx_array_push_n(pr->signing_algs, 2);
        if (alg == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_str_set(&alg[0], "RS256");
        ngx_str_set(&alg[1], "ES256");
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_identity_oidc_init_process(ngx_cycle_t *cycle)
{
    return ngx_http_identity_oidc_caches_init(cycle);
}


/*
 * RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the
 * provider's end_session_endpoint, back to post_logout_redirect_uri.
 * NGX_DECLINED if this worker has not discovered one.
 */

static ngx_int_t
ngx_http_identity_oidc_logout(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_str_t *path, ngx_str_t *url)
{
    u_char                          *p, sep;
    size_t                           len;
    ngx_str_t                        base, back;
    ngx_http_identity_oidc_cache_t  *cache;

    /* with end_session on, the provider's session ends too */

    if (!pr->end_session
        || ngx_http_identity_public_origin(r, &base) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    back.data = ngx_pnalloc(r->pool, base.len + path->len);
    if (back.data == NULL) {
        return NGX_ERROR;
    }

    back.len = ngx_sprintf(back.data, "%V%V", &base, path) - back.data;

    cache = ngx_http_identity_oidc_cache(pr);

    if (cache->end_session_endpoint == NULL) {
        return NGX_DECLINED;
    }

    len = ngx_strlen(cache->end_session_endpoint)
          + sizeof("?client_id=&post_logout_redirect_uri=") - 1
          + 3 * pr->client_id.len + 3 * back.len;

    url->data = ngx_pnalloc(r->pool, len);
    if (url->data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpystrn(url->data, (u_char *) cache->end_session_endpoint, len);
    sep = ngx_strlchr(url->data, p, '?') ? '&' : '?';
    *p++ = sep;
    p = ngx_cpymem(p, "client_id=", sizeof("client_id=") - 1);
    p = (u_char *) ngx_escape_uri(p, pr->client_id.data, pr->client_id.len,
                                  NGX_ESCAPE_URI_COMPONENT);
    p = ngx_cpymem(p, "&post_logout_redirect_uri=",
                   sizeof("&post_logout_redirect_uri=") - 1);
    p = (u_char *) ngx_escape_uri(p, back.data, back.len,
                                  NGX_ESCAPE_URI_COMPONENT);

    url->len = p - url->data;

    return NGX_OK;
}


/* login: discovery if needed, a pending login in Redis, then a redirect */

static ngx_int_t
ngx_http_identity_oidc_login(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    switch (ctx->state) {

    case ngx_http_identity_oidc_start:

        rc = ngx_http_identity_oidc_need_metadata(r, ctx->provider);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        /* fall through */

    case ngx_http_identity_oidc_discovery:

        rc = ngx_http_identity_oauth2_login(r, 1);

        if (rc == NGX_AGAIN) {
            ctx->state = ngx_http_identity_oidc_saving;
        }

        return rc;

    case ngx_http_identity_oidc_saving:

        if (ctx->redis_error) {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        return ngx_http_identity_oidc_redirect(r);

    default:
        return ctx->status ? ctx->status : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


static ngx_int_t
ngx_http_identity_oidc_redirect(ngx_http_request_t *r)
{
    ngx_http_identity_ctx_t         *ctx;
    ngx_http_identity_oidc_cache_t  *cache;

    ctx = ngx_http_identity_get_ctx(r);
    cache = ngx_http_identity_oidc_cache(ctx->provider);

    return ngx_http_identity_oauth2_redirect(r, cache->authorization_endpoint,
                                             1, &ctx->login.nonce);
}


/*
 * The callback, once the OAuth 2.0 core took the pending login: the
 * metadata if stale, then the code for tokens and the ID token verified;
 * NGX_OK with the claims in ctx->claims.
 */

static ngx_int_t
ngx_http_identity_oidc_callback(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    switch (ctx->state) {

    case ngx_http_identity_oidc_start:

        rc = ngx_http_identity_oidc_need_metadata(r, ctx->provider);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        /* fall through */

    case ngx_http_identity_oidc_discovery:

        return ngx_http_identity_oidc_post_exchange(r);

    case ngx_http_identity_oidc_exchange:

        return NGX_OK;     /* login.c traces the verified login */

    default:
        return ctx->status ? ctx->status : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


static ngx_int_t
ngx_http_identity_oidc_post_exchange(ngx_http_request_t *r)
{
    ngx_int_t                           rc;
    ngx_pool_t                         *pool;
    ngx_http_identity_ctx_t            *ctx;
    ngx_http_identity_provider_t       *pr;
    ngx_http_identity_oidc_cache_t     *cache;
    ngx_http_identity_oidc_exchange_t  *x;

    ctx = ngx_http_identity_get_ctx(r);
    pr = ctx->provider;
    pool = r->pool;
    cache = ngx_http_identity_oidc_cache(pr);

    x = ngx_http_identity_oidc_jws_ctx(r);
    if (x == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    x->client.token_endpoint = ngx_http_identity_dup_str(pool,
                                                     cache->token_endpoint);
    x->client.client_id = x->client_id;
    x->client.client_secret = ngx_http_identity_cstr(pool,
                                                     &pr->client_secret);
    x->client.token_auth = pr->token_auth;
    x->client.timeout = pr->http_timeout;
    x->nonce = ngx_http_identity_cstr(pool, &ctx->login.nonce);

    x->userinfo = pr->userinfo;
    x->want_email = ngx_http_identity_oidc_has_scope(&pr->scopes, "email");
    x->want_profile = ngx_http_identity_oidc_has_scope(&pr->scopes,
                                                       "profile");
    x->want_groups = ngx_http_identity_oidc_has_scope(&pr->scopes, "groups");

    if (pr->userinfo != NGX_HTTP_IDENTITY_USERINFO_OFF
        && cache->userinfo_endpoint)
    {
        x->userinfo_endpoint = ngx_http_identity_dup_str(pool,
                                                     cache->userinfo_endpoint);
        if (x->userinfo_endpoint == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (x->client.token_endpoint == NULL || x->client.client_secret == NULL
        || ngx_http_identity_oauth2_grant(r, 1, &x->grant) != NGX_OK
        || x->nonce == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_identity_task_post(r, pr,
                                     ngx_http_identity_oidc_exchange_run,
                                     ngx_http_identity_oidc_exchange_done,
                                     ngx_http_identity_oidc_exchange_free, x);
    if (rc != NGX_OK) {
        return rc == NGX_DECLINED ? NGX_HTTP_SERVICE_UNAVAILABLE
                                  : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->state = ngx_http_identity_oidc_exchange;

    return NGX_AGAIN;
}


/*
 * OpenID Connect Back-Channel Logout 1.0: the provider POSTs a logout token;
 * once it is verified, the sessions of that provider session (sid), or else
 * of that user (sub), end.  200 on success, 400 for any invalid token.
 */

static ngx_int_t
ngx_http_identity_oidc_backchannel(ngx_http_request_t *r)
{
    ngx_int_t                           rc;
    ngx_http_identity_ctx_t            *ctx;
    ngx_http_identity_oidc_exchange_t  *x;

    ctx = ngx_http_identity_get_ctx(r);

    switch (ctx->state) {

    case ngx_http_identity_oidc_start:

        if (r->method != NGX_HTTP_POST) {
            return NGX_HTTP_NOT_ALLOWED;
        }

        ctx->state = ngx_http_identity_oidc_reading;

        return ngx_http_identity_read_body(r,
                                           NGX_HTTP_IDENTITY_LOGOUT_TOKEN_MAX);

    case ngx_http_identity_oidc_reading:

        if (!ctx->body_ready) {
            return NGX_AGAIN;
        }

        rc = ngx_http_identity_oidc_logout_token(r);
        if (rc != NGX_OK) {
            return rc;
        }

        rc = ngx_http_identity_oidc_need_metadata(r, ctx->provider);
        if (rc != NGX_DECLINED) {
            return rc;
        }

        /* fall through */

    case ngx_http_identity_oidc_discovery:

        x = ngx_http_identity_oidc_jws_ctx(r);
        if (x == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        x->logout_token = (char *) ctx->code.data;

        rc = ngx_http_identity_task_post_apart(r, ctx->provider,
                                      NGX_HTTP_IDENTITY_TASK_LOGOUT,
                                      ngx_http_identity_oidc_backchannel_run,
                                      ngx_http_identity_oidc_backchannel_done,
                                      ngx_http_identity_oidc_exchange_free, x);
        if (rc != NGX_OK) {
            return rc == NGX_DECLINED ? NGX_HTTP_SERVICE_UNAVAILABLE
                                      : NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->state = ngx_http_identity_oidc_exchange;
        return NGX_AGAIN;

    case ngx_http_identity_oidc_exchange:

        ctx->found = 0;

        if (ngx_http_identity_store_logout(r, &ctx->provider->name,
                                           &ctx->code,
                                           2 * NGX_HTTP_IDENTITY_LOGOUT_MAX_AGE,
                                           &ctx->claims.sid,
                                           &ctx->claims.provider_user_id)
            != NGX_OK)
        {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        ctx->state = ngx_http_identity_oidc_revoking;
        return NGX_AGAIN;

    case ngx_http_identity_oidc_revoking:

        if (ctx->redis_error) {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        if (!ctx->found) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "identity: replayed logout token");
            return NGX_HTTP_BAD_REQUEST;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: back-channel logout from \"%V\" ended %i "
                      "session(s)", &ctx->provider->name, ctx->status);

        if (ngx_http_identity_add_header(r, "Cache-Control", "no-store")
            == NULL)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        r->headers_out.status = NGX_HTTP_OK;
        r->headers_out.content_length_n = 0;
        r->header_only = 1;

        return ngx_http_send_header(r);

    default:
        return ctx->status ? NGX_HTTP_BAD_REQUEST
                           : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


/*
 * The logout_token form parameter, and the provider whose issuer its (not
 * yet verified) iss names; the thread then verifies it completely.
 */

static ngx_int_t
ngx_http_identity_oidc_logout_token(ngx_http_request_t *r)
{
    json_t                             *claims;
    uint8_t                            *plain;
    size_t                              plain_len;
    ngx_int_t                           rc;
    ngx_str_t                           token, iss, body;
    cjose_err                           err;
    cjose_jws_t                        *jws;
    ngx_http_identity_ctx_t            *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    rc = ngx_http_identity_body(r, NGX_HTTP_IDENTITY_LOGOUT_TOKEN_MAX, &body);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: back-channel logout without a usable body");
        return rc == NGX_DECLINED ? NGX_HTTP_REQUEST_ENTITY_TOO_LARGE
                                  : NGX_HTTP_BAD_REQUEST;
    }

    rc = ngx_http_identity_form_arg(r->pool, &body, "logout_token", &token);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: back-channel logout without logout_token");
        return NGX_HTTP_BAD_REQUEST;
    }

    jws = cjose_jws_import((char *) token.data, token.len, &err);
    claims = NULL;

    if (jws && cjose_jws_get_plaintext(jws, &plain, &plain_len, &err)) {
        claims = json_loadb((const char *) plain, plain_len, 0, NULL);
    }

    iss.data = (u_char *) json_string_value(json_object_get(claims, "iss"));
    iss.len = iss.data ? ngx_strlen(iss.data) : 0;

    ctx->provider = iss.len ? ngx_http_identity_find_issuer(r, &iss) : NULL;

    if (claims) {
        json_decref(claims);
    }

    if (jws) {
        cjose_jws_release(jws);
    }

    if (ctx->provider == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: logout token from no known issuer");
        return NGX_HTTP_BAD_REQUEST;
    }

    ctx->code = token;

    return NGX_OK;
}


static void
ngx_http_identity_oidc_backchannel_done(ngx_http_request_t *r, void *data)
{
    ngx_http_identity_oidc_exchange_t *x = data;

    ngx_uint_t                       level;
    ngx_http_identity_ctx_t         *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    ngx_http_identity_oidc_adopt_jwks(x);

    if (x->result.status == 0
        && (ngx_http_identity_pool_str(r->pool, x->sub,
                                       &ctx->claims.provider_user_id)
            != NGX_OK
            || ngx_http_identity_pool_str(r->pool, x->sid, &ctx->claims.sid)
               != NGX_OK
            || ngx_http_identity_pool_str(r->pool, x->jti, &ctx->code)
               != NGX_OK))
    {
        ngx_http_identity_http_fail(&x->result,
                                    NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR, "out of memory");
    }

    ngx_http_identity_oidc_exchange_free(x);

    if (x->result.status) {

        /*
         * Anyone can post a logout token: an invalid one is logged at info;
         * a provider that cannot be reached, at error.  Both answer 400.
         */

        level = (x->result.status == NGX_HTTP_SERVICE_UNAVAILABLE)
                ? NGX_LOG_ERR : NGX_LOG_INFO;

        ngx_log_error(level, r->connection->log, 0,
                      "identity: back-channel logout refused: %s",
                      x->result.error);
        ctx->status = x->result.status;
        ctx->state = ngx_http_identity_oidc_failed;
    }

    ctx->resume(r);
}


/* what every check of a provider's JWS needs, copied for the thread */

static ngx_http_identity_oidc_exchange_t *
ngx_http_identity_oidc_jws_ctx(ngx_http_request_t *r)
{
    ngx_http_identity_ctx_t            *ctx;
    ngx_http_identity_provider_t       *pr;
    ngx_http_identity_oidc_cache_t     *cache;
    ngx_http_identity_oidc_exchange_t  *x;

    ctx = ngx_http_identity_get_ctx(r);
    pr = ctx->provider;
    cache = ngx_http_identity_oidc_cache(pr);

    x = ngx_pcalloc(r->pool, sizeof(ngx_http_identity_oidc_exchange_t));
    if (x == NULL) {
        return NULL;
    }

    x->provider = pr;
    x->jwks_uri = ngx_http_identity_dup_str(r->pool, cache->jwks_uri);
    x->jwks = ngx_http_identity_dup_str(r->pool, cache->jwks);
    x->issuer = ngx_http_identity_cstr(r->pool, &pr->issuer);
    x->client_id = ngx_http_identity_cstr(r->pool, &pr->client_id);

    if (x->jwks_uri == NULL || x->jwks == NULL || x->issuer == NULL
        || x->client_id == NULL)
    {
        return NULL;
    }

    x->may_refetch = (ngx_time() - cache->jwks_refetched
                      >= pr->jwks_refetch_interval);

    return x;
}


static ngx_uint_t
ngx_http_identity_oidc_has_scope(ngx_str_t *scopes, const char *scope)
{
    u_char  *p, *last, *end;
    size_t   len;

    len = ngx_strlen(scope);
    p = scopes->data;
    last = p + scopes->len;

    while (p < last) {
        end = ngx_strlchr(p, last, ' ');
        if (end == NULL) {
            end = last;
        }

        if ((size_t) (end - p) == len && ngx_strncmp(p, scope, len) == 0) {
            return 1;
        }

        p = end + 1;
    }

    return 0;
}


static void
ngx_http_identity_oidc_exchange_done(ngx_http_request_t *r, void *data)
{
    ngx_http_identity_oidc_exchange_t *x = data;

    ngx_http_identity_ctx_t         *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    ngx_http_identity_oidc_adopt_jwks(x);

    if (x->result.status == 0
        && (ngx_http_identity_pool_str(r->pool, x->sub,
                                       &ctx->claims.provider_user_id)
            != NGX_OK
            || ngx_http_identity_pool_str(r->pool, x->email,
                                          &ctx->claims.email) != NGX_OK
            || ngx_http_identity_pool_str(r->pool, x->name,
                                          &ctx->claims.name) != NGX_OK
            || ngx_http_identity_pool_str(r->pool, x->username,
                                          &ctx->claims.username) != NGX_OK
            || ngx_http_identity_pool_str(r->pool, x->sid,
                                          &ctx->claims.sid) != NGX_OK
            || ngx_http_identity_pool_str(r->pool, x->groups,
                                          &ctx->claims.groups) != NGX_OK
            || ngx_http_identity_pool_str(r->pool, x->raw,
                                          &ctx->claims.raw) != NGX_OK))
    {
        ngx_http_identity_http_fail(&x->result,
                                    NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR, "out of memory");
    }

    ngx_http_identity_oidc_exchange_free(x);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "identity: provider \"%V\" userinfo called: %ui",
                   &x->provider->name, x->userinfo_called);

    if (x->result.status == 0 && x->email_unverified) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: provider \"%V\" did not say the user's "
                      "e-mail is verified: it is not used",
                      &x->provider->name);
    }

    if (x->result.status) {
        ngx_log_error(x->result.level, r->connection->log, 0,
                      "identity: login with provider \"%V\" failed: %s",
                      &x->provider->name, x->result.error);
        ctx->told = 1;
        ctx->status = x->result.status;
        ctx->state = ngx_http_identity_oidc_failed;
    }

    ctx->resume(r);
}


/* a JWKS a thread fetched again for an unknown kid replaces the cached one */

static void
ngx_http_identity_oidc_adopt_jwks(ngx_http_identity_oidc_exchange_t *x)
{
    ngx_http_identity_oidc_cache_t  *cache;

    if (x->new_jwks == NULL) {
        return;
    }

    cache = ngx_http_identity_oidc_cache(x->provider);

    free(cache->jwks);
    cache->jwks = x->new_jwks;
    cache->jwks_refetched = ngx_time();
    x->new_jwks = NULL;
}
