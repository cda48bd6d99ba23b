
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * OpenID Connect relying party, authorization code flow with PKCE S256.
 * The authorization request, the callback's pending login and the code
 * exchange are the OAuth 2.0 core's (ngx_http_identity_oauth2.c); here are
 * discovery, the JWKS, the ID token, userinfo, back-channel logout and
 * end_session.
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
#include <oauth2/oauth2.h>
#include <oauth2/http.h>
#include <oauth2/log.h>
#include <oauth2/mem.h>
#include <oauth2/util.h>

#include "ngx_http_identity_module.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_store.h"
#include "ngx_http_identity_task.h"
#include "ngx_http_identity_body.h"
#include "ngx_http_identity_fetch.h"
#include "ngx_http_identity_protocol.h"
#include "ngx_http_identity_oauth2.h"
#include "ngx_http_identity_oidc.h"


enum {
    ngx_http_identity_oidc_start = 0,
    ngx_http_identity_oidc_discovery,
    ngx_http_identity_oidc_saving,
    ngx_http_identity_oidc_exchange,
    ngx_http_identity_oidc_revoking,
    ngx_http_identity_oidc_reading,
    ngx_http_identity_oidc_failed
};


#define NGX_HTTP_IDENTITY_OIDC_BACKOFF      5
#define NGX_HTTP_IDENTITY_LOGOUT_TOKEN_MAX  16384
#define NGX_HTTP_IDENTITY_LOGOUT_MAX_AGE    300
#define NGX_HTTP_IDENTITY_LOGOUT_EVENT                                        \
    "http://schemas.openid.net/event/backchannel-logout"


typedef struct ngx_http_identity_oidc_discovery_s
    ngx_http_identity_oidc_discovery_t;


struct ngx_http_identity_oidc_cache_s {
    char                           *authorization_endpoint;
    char                           *token_endpoint;
    char                           *userinfo_endpoint;
    char                           *jwks_uri;
    char                           *end_session_endpoint;
    char                           *jwks;
    time_t                          fetched;
    time_t                          jwks_refetched;   /* for an unknown kid */

    time_t                          retry;      /* after a failed discovery */
    ngx_http_identity_oidc_discovery_t  *fetching;    /* in flight */
    ngx_queue_t                     waiting;    /* requests, for fetching */
};


/* malloc()ed, as is issuer: a discovery outlives the request that began it */

struct ngx_http_identity_oidc_discovery_s {
    ngx_http_identity_provider_t   *provider;
    char                           *issuer;
    ngx_msec_t                      timeout;
    ngx_thread_task_t              *task;

    ngx_http_identity_oidc_cache_t  out;
    ngx_http_identity_http_result_t result;
};


typedef struct {
    ngx_http_identity_provider_t       *provider;
    ngx_http_identity_oauth2_client_t   client;
    ngx_http_identity_oauth2_grant_t    grant;
    char                               *userinfo_endpoint;
    char                               *jwks_uri;
    char                               *jwks;
    char                               *issuer;
    char                               *client_id;
    char                               *nonce;
    char                               *logout_token;
    ngx_uint_t                          may_refetch;
    ngx_uint_t                          userinfo;       /* _USERINFO_* */
    ngx_uint_t                          want_email;     /* scope email */
    ngx_uint_t                          want_profile;   /* scope profile */
    ngx_uint_t                          want_groups;    /* scope groups */

    char                               *new_jwks;
    char                               *sub;
    char                               *email;
    ngx_uint_t                          email_verified;  /* by its source */
    ngx_uint_t                          email_vouched;   /* said either way */
    ngx_uint_t                          email_unverified;   /* and dropped */
    ngx_uint_t                          userinfo_called;
    char                               *name;
    char                               *username;
    char                               *sid;
    char                               *groups;
    char                               *raw;        /* the claims, JSON */
    char                               *jti;
    ngx_http_identity_http_result_t     result;
} ngx_http_identity_oidc_exchange_t;


static char *ngx_http_identity_oidc_conf(ngx_conf_t *cf,
    ngx_http_identity_provider_t *pr);
static ngx_int_t ngx_http_identity_oidc_init_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_identity_oidc_login(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_oidc_callback(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_oidc_logout(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_str_t *path, ngx_str_t *url);
static ngx_int_t ngx_http_identity_oidc_backchannel(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_oidc_need_metadata(ngx_http_request_t *r,
    ngx_http_identity_provider_t *provider);
static ngx_int_t ngx_http_identity_oidc_discover(ngx_http_request_t *r,
    ngx_http_identity_provider_t *provider,
    ngx_http_identity_oidc_cache_t *cache);
static void ngx_http_identity_oidc_discovery_run(void *data);
static void ngx_http_identity_oidc_discovery_finish(void *data);
static void ngx_http_identity_oidc_discovery_done(ngx_http_request_t *r,
    void *data);
static void ngx_http_identity_oidc_discovery_free(
    ngx_http_identity_oidc_discovery_t *d);
static ngx_int_t ngx_http_identity_oidc_unavailable(ngx_http_request_t *r,
    ngx_http_identity_oidc_cache_t *cache);
static void ngx_http_identity_oidc_caches_free(void *data);
static ngx_int_t ngx_http_identity_oidc_redirect(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_oidc_post_exchange(ngx_http_request_t *r);
static ngx_http_identity_oidc_exchange_t *ngx_http_identity_oidc_jws_ctx(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_oidc_logout_token(ngx_http_request_t *r);
static void ngx_http_identity_oidc_backchannel_run(void *data);
static ngx_int_t ngx_http_identity_oidc_check_logout(
    ngx_http_identity_oidc_exchange_t *x, json_t *claims);
static void ngx_http_identity_oidc_backchannel_done(ngx_http_request_t *r,
    void *data);
static void ngx_http_identity_oidc_adopt_jwks(
    ngx_http_identity_oidc_exchange_t *x);
static void ngx_http_identity_oidc_exchange_run(void *data);
static void ngx_http_identity_oidc_exchange_done(ngx_http_request_t *r,
    void *data);
static void ngx_http_identity_oidc_exchange_free(void *data);
static ngx_int_t ngx_http_identity_oidc_verify(
    ngx_http_identity_oidc_exchange_t *x, oauth2_log_t *log,
    const char *id_token, oauth2_http_call_ctx_t *hctx);
static ngx_int_t ngx_http_identity_oidc_verify_signature(
    ngx_http_identity_oidc_exchange_t *x, cjose_jws_t *jws, const char *alg,
    const char *kid, const char *jwks, const char *what);
static ngx_int_t ngx_http_identity_oidc_check_claims(
    ngx_http_identity_oidc_exchange_t *x, json_t *claims);
static ngx_int_t ngx_http_identity_oidc_check_audience(
    ngx_http_identity_oidc_exchange_t *x, json_t *claims, const char *what);
static json_t *ngx_http_identity_oidc_decode(
    ngx_http_identity_oidc_exchange_t *x, oauth2_log_t *log,
    const char *token, const char *what, oauth2_http_call_ctx_t *hctx);
static ngx_uint_t ngx_http_identity_oidc_lacks_claims(
    ngx_http_identity_oidc_exchange_t *x);
static ngx_int_t ngx_http_identity_oidc_userinfo(
    ngx_http_identity_oidc_exchange_t *x, oauth2_log_t *log,
    const char *access_token);
static void ngx_http_identity_oidc_merge_raw(
    ngx_http_identity_oidc_exchange_t *x, json_t *info);
static ngx_uint_t ngx_http_identity_oidc_has_scope(ngx_str_t *scopes,
    const char *scope);
static void ngx_http_identity_oidc_cache_free(
    ngx_http_identity_oidc_cache_t *c);
static ngx_http_identity_oidc_cache_t *ngx_http_identity_oidc_cache(
    ngx_http_identity_provider_t *provider);


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


static ngx_array_t  ngx_http_identity_oidc_caches;  /* per worker */


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
    ngx_uint_t                       i;
    ngx_pool_cleanup_t              *cln;
    ngx_http_identity_oidc_cache_t  *caches;
    ngx_http_identity_main_conf_t   *imcf;

    imcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_identity_module);
    if (imcf == NULL) {
        return NGX_OK;
    }

    if (ngx_array_init(&ngx_http_identity_oidc_caches, cycle->pool,
                       imcf->providers.nelts + 1,
                       sizeof(ngx_http_identity_oidc_cache_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < imcf->providers.nelts; i++) {
        if (ngx_array_push(&ngx_http_identity_oidc_caches) == NULL) {
            return NGX_ERROR;
        }
    }

    ngx_memzero(ngx_http_identity_oidc_caches.elts,
                imcf->providers.nelts
                * sizeof(ngx_http_identity_oidc_cache_t));

    caches = ngx_http_identity_oidc_caches.elts;

    for (i = 0; i < imcf->providers.nelts; i++) {
        ngx_queue_init(&caches[i].waiting);
    }

    /* the cached documents are malloc()ed: freed as the worker exits */

    cln = ngx_pool_cleanup_add(cycle->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_identity_oidc_caches_free;
    cln->data = &ngx_http_identity_oidc_caches;

    return NGX_OK;
}


/*
 * The thread pool has finished its tasks by now (it is destroyed before
 * the cycle's pool), so a discovery still marked in flight is one whose
 * "finish" will never run.
 */

static void
ngx_http_identity_oidc_caches_free(void *data)
{
    ngx_array_t *a = data;

    ngx_uint_t                       i;
    ngx_http_identity_oidc_cache_t  *caches;

    caches = a->elts;

    for (i = 0; i < a->nelts; i++) {
        ngx_http_identity_oidc_cache_free(&caches[i]);

        if (caches[i].fetching) {
            ngx_free(caches[i].fetching->task);
            ngx_http_identity_oidc_discovery_free(caches[i].fetching);
            caches[i].fetching = NULL;
        }
    }
}


static ngx_http_identity_oidc_cache_t *
ngx_http_identity_oidc_cache(ngx_http_identity_provider_t *provider)
{
    ngx_http_identity_oidc_cache_t  *caches;

    caches = ngx_http_identity_oidc_caches.elts;

    return &caches[provider->index];
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


/*
 * NGX_DECLINED if the provider's metadata is fresh; NGX_AGAIN if the
 * request waits for a discovery (this worker's one for that provider, begun
 * now if none is in flight); 503 while a failed one is remembered; or an
 * error status.
 */

static ngx_int_t
ngx_http_identity_oidc_need_metadata(ngx_http_request_t *r,
    ngx_http_identity_provider_t *provider)
{
    ngx_http_identity_ctx_t         *ctx;
    ngx_http_identity_oidc_cache_t  *cache;

    cache = ngx_http_identity_oidc_cache(provider);

    if (cache->fetched
        && ngx_time() - cache->fetched < provider->metadata_ttl)
    {
        return NGX_DECLINED;
    }

    if (cache->fetching == NULL) {

        if (ngx_time() < cache->retry) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "identity: provider \"%V\" failed recently",
                           &provider->name);
            return ngx_http_identity_oidc_unavailable(r, cache);
        }

        if (ngx_http_identity_oidc_discover(r, provider, cache) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ngx_http_identity_task_wait(r, &cache->waiting) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_http_identity_get_ctx(r);
    ctx->state = ngx_http_identity_oidc_discovery;

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_identity_oidc_discover(ngx_http_request_t *r,
    ngx_http_identity_provider_t *provider,
    ngx_http_identity_oidc_cache_t *cache)
{
    ngx_http_identity_main_conf_t       *imcf;
    ngx_http_identity_oidc_discovery_t  *d;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    d = ngx_calloc(sizeof(ngx_http_identity_oidc_discovery_t),
                   r->connection->log);
    if (d == NULL) {
        return NGX_ERROR;
    }

    d->provider = provider;
    d->timeout = provider->http_timeout;
    d->issuer = ngx_alloc(provider->issuer.len + 1, r->connection->log);

    if (d->issuer == NULL) {
        ngx_free(d);
        return NGX_ERROR;
    }

    ngx_memcpy(d->issuer, provider->issuer.data, provider->issuer.len);
    d->issuer[provider->issuer.len] = '\0';

    d->task = ngx_http_identity_task_post_detached(imcf->thread_pool,
                  ngx_cycle->log, ngx_http_identity_oidc_discovery_run,
                  ngx_http_identity_oidc_discovery_finish, d);
    if (d->task == NULL) {
        ngx_http_identity_oidc_discovery_free(d);
        return NGX_ERROR;
    }

    cache->fetching = d;

    return NGX_OK;
}


static void
ngx_http_identity_oidc_discovery_run(void *data)
{
    ngx_http_identity_oidc_discovery_t *d = data;

    char                    *url, *body;
    size_t                   len;
    json_t                  *meta, *jwks;
    oauth2_log_t            *log;
    const char              *iss;
    oauth2_http_call_ctx_t  *hctx;

    meta = NULL;
    jwks = NULL;
    url = NULL;

    if (ngx_http_identity_http_begin(&d->result, d->timeout, &log, &hctx)
        != NGX_OK)
    {
        goto done;
    }

    len = strlen(d->issuer);
    url = malloc(len + sizeof("/.well-known/openid-configuration"));
    if (url == NULL) {
        goto done;
    }

    /* an issuer with a trailing slash keeps it: no double slash */

    snprintf(url, len + sizeof("/.well-known/openid-configuration"), "%s%s",
             d->issuer,
             (len && d->issuer[len - 1] == '/')
             ? ".well-known/openid-configuration"
             : "/.well-known/openid-configuration");

    body = ngx_http_identity_http_call(log, url, NULL, hctx, &d->result,
                                       &meta);
    if (body == NULL) {
        goto done;
    }

    free(body);     /* the document is in meta */

    /* OpenID Connect Discovery 1.0, 4.3: the issuer must match exactly */

    iss = json_string_value(json_object_get(meta, "issuer"));

    if (iss == NULL || strcmp(iss, d->issuer) != 0) {
        ngx_http_identity_http_fail(&d->result, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_LOG_ERR,
                                    "discovery document of \"%s\" names "
                                    "issuer \"%s\"", d->issuer,
                                    iss ? iss : "(none)");
        goto done;
    }

    d->out.authorization_endpoint =
        ngx_http_identity_json_strdup(meta, "authorization_endpoint");
    d->out.token_endpoint =
        ngx_http_identity_json_strdup(meta, "token_endpoint");
    d->out.userinfo_endpoint =
        ngx_http_identity_json_strdup(meta, "userinfo_endpoint");
    d->out.jwks_uri = ngx_http_identity_json_strdup(meta, "jwks_uri");
    d->out.end_session_endpoint =
        ngx_http_identity_json_strdup(meta, "end_session_endpoint");

    if (d->out.authorization_endpoint == NULL
        || d->out.token_endpoint == NULL
        || d->out.jwks_uri == NULL)
    {
        ngx_http_identity_http_fail(&d->result, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_LOG_ERR,
                                    "discovery document of \"%s\" lacks "
                                    "an endpoint", d->issuer);
        goto done;
    }

    d->out.jwks = ngx_http_identity_http_call(log, d->out.jwks_uri, NULL,
                                              hctx, &d->result, &jwks);
    if (d->out.jwks == NULL) {
        goto done;
    }

    if (!json_is_array(json_object_get(jwks, "keys"))) {
        ngx_http_identity_http_fail(&d->result, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_LOG_ERR, "JWKS at \"%s\" has no keys",
                                    d->out.jwks_uri);
    }

done:

    if (meta) {
        json_decref(meta);
    }

    if (jwks) {
        json_decref(jwks);
    }

    free(url);

    if (hctx) {
        oauth2_http_call_ctx_free(log, hctx);
    }

    oauth2_log_free(log);
}


/* back on the loop: the cache takes the outcome, the waiting requests go on */

static void
ngx_http_identity_oidc_discovery_finish(void *data)
{
    ngx_http_identity_oidc_discovery_t *d = data;

    ngx_http_identity_oidc_cache_t  *cache;

    cache = ngx_http_identity_oidc_cache(d->provider);
    cache->fetching = NULL;

    if (d->result.status) {

        /* logged once per failure, not per waiting request */

        cache->retry = ngx_time() + NGX_HTTP_IDENTITY_OIDC_BACKOFF;

        ngx_log_error(d->result.level, ngx_cycle->log, 0,
                      "identity: provider \"%V\": %s; logins answer 503 "
                      "for %d s", &d->provider->name, d->result.error,
                      NGX_HTTP_IDENTITY_OIDC_BACKOFF);

    } else {

        /*
         * Only refetches for an unknown kid are rate-limited: keys rotated
         * right after a discovery must still be picked up at once.
         */

        ngx_http_identity_oidc_cache_free(cache);

        cache->authorization_endpoint = d->out.authorization_endpoint;
        cache->token_endpoint = d->out.token_endpoint;
        cache->userinfo_endpoint = d->out.userinfo_endpoint;
        cache->jwks_uri = d->out.jwks_uri;
        cache->end_session_endpoint = d->out.end_session_endpoint;
        cache->jwks = d->out.jwks;
        cache->fetched = ngx_time();
        cache->retry = 0;

        ngx_memzero(&d->out, sizeof(ngx_http_identity_oidc_cache_t));

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "identity: discovered \"%V\"", &d->provider->issuer);
    }

    ngx_http_identity_task_wake(&cache->waiting,
                                ngx_http_identity_oidc_discovery_done, d);

    ngx_http_identity_oidc_discovery_free(d);
}


static void
ngx_http_identity_oidc_discovery_done(ngx_http_request_t *r, void *data)
{
    ngx_http_identity_oidc_discovery_t *d = data;

    ngx_http_identity_ctx_t         *ctx;
    ngx_http_identity_oidc_cache_t  *cache;

    ctx = ngx_http_identity_get_ctx(r);

    if (d->result.status) {
        cache = ngx_http_identity_oidc_cache(d->provider);
        ctx->status = ngx_http_identity_oidc_unavailable(r, cache);
        ctx->state = ngx_http_identity_oidc_failed;
    }

    ctx->resume(r);
}


static void
ngx_http_identity_oidc_discovery_free(ngx_http_identity_oidc_discovery_t *d)
{
    ngx_http_identity_oidc_cache_free(&d->out);
    ngx_free(d->issuer);
    ngx_free(d);
}


/* the provider cannot be used now: 503, and when to try again */

static ngx_int_t
ngx_http_identity_oidc_unavailable(ngx_http_request_t *r,
    ngx_http_identity_oidc_cache_t *cache)
{
    u_char           *p;
    time_t            wait;
    ngx_table_elt_t  *h;

    wait = cache->retry - ngx_time();

    if (wait < 1) {
        wait = 1;
    }

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN + 1);
    if (p == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    *ngx_sprintf(p, "%T", wait) = '\0';

    h = ngx_http_identity_add_header(r, "Retry-After", (char *) p);
    if (h == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    return NGX_HTTP_SERVICE_UNAVAILABLE;
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

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "identity: callback verified by provider \"%V\"",
                       &ctx->provider->name);

        return NGX_OK;

    default:
        return ctx->status ? ctx->status : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


static ngx_int_t
ngx_http_identity_oidc_post_exchange(ngx_http_request_t *r)
{
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

    if (ngx_http_identity_task_post(r, ngx_http_identity_oidc_exchange_run,
                                    ngx_http_identity_oidc_exchange_done,
                                    ngx_http_identity_oidc_exchange_free, x)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
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

        if (ngx_http_identity_task_post(r,
                                        ngx_http_identity_oidc_backchannel_run,
                                        ngx_http_identity_oidc_backchannel_done,
                                        ngx_http_identity_oidc_exchange_free,
                                        x)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
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

    rc = ngx_http_identity_form_arg(r, &body, "logout_token", &token);

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
ngx_http_identity_oidc_backchannel_run(void *data)
{
    ngx_http_identity_oidc_exchange_t *x = data;

    json_t                  *claims;
    oauth2_log_t            *log;
    oauth2_http_call_ctx_t  *hctx;

    if (ngx_http_identity_http_begin(&x->result, x->provider->http_timeout,
                                     &log, &hctx)
        != NGX_OK)
    {
        goto done;
    }

    claims = ngx_http_identity_oidc_decode(x, log, x->logout_token,
                                           "logout_token", hctx);
    if (claims) {
        (void) ngx_http_identity_oidc_check_logout(x, claims);
        json_decref(claims);
    }

done:

    if (hctx) {
        oauth2_http_call_ctx_free(log, hctx);
    }

    oauth2_log_free(log);
}


/* Back-Channel Logout 1.0, 2.6: what makes a logout token valid */

static ngx_int_t
ngx_http_identity_oidc_check_logout(ngx_http_identity_oidc_exchange_t *x,
    json_t *claims)
{
    time_t       now, leeway;
    json_t      *iat, *exp, *events;
    const char  *sub, *sid, *jti;

    now = time(NULL);
    leeway = x->provider->leeway;

    if (ngx_http_identity_oidc_check_audience(x, claims, "logout_token")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    iat = json_object_get(claims, "iat");
    exp = json_object_get(claims, "exp");

    if (!json_is_integer(iat)
        || json_integer_value(iat) - leeway > now
        || json_integer_value(iat) + NGX_HTTP_IDENTITY_LOGOUT_MAX_AGE + leeway
           < now
        || (exp && (!json_is_integer(exp)
                    || json_integer_value(exp) + leeway <= now)))
    {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_BAD_REQUEST,
                                    NGX_LOG_INFO,
                                    "logout_token is not current");
        return NGX_ERROR;
    }

    events = json_object_get(claims, "events");

    if (!json_is_object(events)
        || !json_is_object(json_object_get(events,
                                           NGX_HTTP_IDENTITY_LOGOUT_EVENT)))
    {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_BAD_REQUEST,
                                    NGX_LOG_INFO,
                                    "logout_token without the logout event");
        return NGX_ERROR;
    }

    if (json_object_get(claims, "nonce")) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_BAD_REQUEST,
                                    NGX_LOG_INFO,
                                    "logout_token with a nonce");
        return NGX_ERROR;
    }

    sub = json_string_value(json_object_get(claims, "sub"));
    sid = json_string_value(json_object_get(claims, "sid"));
    jti = json_string_value(json_object_get(claims, "jti"));

    if ((sub == NULL || *sub == '\0') && (sid == NULL || *sid == '\0')) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_BAD_REQUEST,
                                    NGX_LOG_INFO,
                                    "logout_token names no sid or sub");
        return NGX_ERROR;
    }

    if (jti == NULL || *jti == '\0') {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_BAD_REQUEST,
                                    NGX_LOG_INFO, "logout_token without jti");
        return NGX_ERROR;
    }

    x->sub = sub ? strdup(sub) : NULL;
    x->sid = sid ? strdup(sid) : NULL;
    x->jti = malloc(strlen(x->issuer) + 1 + strlen(jti) + 1);

    if ((sub && x->sub == NULL) || (sid && x->sid == NULL) || x->jti == NULL) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_LOG_ERR, "out of memory");
        return NGX_ERROR;
    }

    /* jti is unique per issuer */

    sprintf(x->jti, "%s %s", x->issuer, jti);

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


static void
ngx_http_identity_oidc_exchange_run(void *data)
{
    ngx_http_identity_oidc_exchange_t *x = data;

    json_t                  *tokens;
    const char              *id_token, *access_token, *type;
    oauth2_log_t            *log;
    oauth2_nv_list_t        *form;
    oauth2_http_call_ctx_t  *hctx;

    tokens = NULL;
    form = NULL;

    if (ngx_http_identity_http_begin(&x->result, x->provider->http_timeout,
                                     &log, &hctx)
        != NGX_OK)
    {
        goto done;
    }

    form = ngx_http_identity_oauth2_code_form(log, &x->grant);

    tokens = ngx_http_identity_oauth2_token(&x->client, log, hctx, form,
                                            &x->result);
    if (tokens == NULL) {
        goto done;
    }

    id_token = json_string_value(json_object_get(tokens, "id_token"));
    access_token = json_string_value(json_object_get(tokens,
                                                     "access_token"));
    type = json_string_value(json_object_get(tokens, "token_type"));

    if (id_token == NULL || access_token == NULL || type == NULL
        || strcasecmp(type, "Bearer") != 0)
    {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_ERR,
                                    "token response without an id_token "
                                    "and a Bearer access_token");
        goto done;
    }

    if (ngx_http_identity_oidc_verify(x, log, id_token, hctx) != NGX_OK) {
        goto done;
    }

    if (x->userinfo_endpoint
        && (x->userinfo == NGX_HTTP_IDENTITY_USERINFO_ON
            || ngx_http_identity_oidc_lacks_claims(x)))
    {
        if (ngx_http_identity_oidc_userinfo(x, log, access_token) != NGX_OK) {
            goto done;
        }
    }

    if (x->email && !x->email_verified) {
        free(x->email);
        x->email = NULL;
        x->email_unverified = 1;
    }

done:

    if (tokens) {
        json_decref(tokens);
    }

    if (form) {
        oauth2_nv_list_free(log, form);
    }

    if (hctx) {
        oauth2_http_call_ctx_free(log, hctx);
    }

    oauth2_log_free(log);
}


static ngx_int_t
ngx_http_identity_oidc_verify(ngx_http_identity_oidc_exchange_t *x,
    oauth2_log_t *log, const char *id_token, oauth2_http_call_ctx_t *hctx)
{
    json_t     *claims;
    ngx_int_t   rc;

    claims = ngx_http_identity_oidc_decode(x, log, id_token, "id_token",
                                           hctx);
    if (claims == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_identity_oidc_check_claims(x, claims);

    json_decref(claims);

    return rc;
}


/*
 * The claims of a JWS whose signature a key of the provider's JWKS
 * verifies, fetching the JWKS again for an unknown kid if allowed; or NULL
 * with the result set.
 */

static json_t *
ngx_http_identity_oidc_decode(ngx_http_identity_oidc_exchange_t *x,
    oauth2_log_t *log, const char *token, const char *what,
    oauth2_http_call_ctx_t *hctx)
{
    json_t          *claims, *jwks;
    uint8_t         *plain;
    size_t           plain_len;
    ngx_int_t        rc;
    cjose_err        err;
    const char      *alg, *kid;
    cjose_jws_t     *jws;
    cjose_header_t  *hdr;

    claims = NULL;
    jwks = NULL;

    jws = cjose_jws_import(token, strlen(token), &err);
    if (jws == NULL) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_ERR, "malformed %s: %s", what,
                                    err.message);
        return NULL;
    }

    hdr = cjose_jws_get_protected(jws);
    alg = json_string_value(json_object_get(hdr, "alg"));
    kid = json_string_value(json_object_get(hdr, "kid"));

    rc = ngx_http_identity_oidc_verify_signature(x, jws, alg, kid, x->jwks,
                                                 what);

    if (rc == NGX_DECLINED && x->may_refetch) {

        /* an unknown kid: the provider may have rotated its keys */

        x->new_jwks = ngx_http_identity_http_call(log, x->jwks_uri, NULL,
                                                  hctx, &x->result, &jwks);
        if (x->new_jwks == NULL) {
            goto done;
        }

        rc = ngx_http_identity_oidc_verify_signature(x, jws, alg, kid,
                                                     x->new_jwks, what);
    }

    if (rc != NGX_OK) {
        if (rc == NGX_DECLINED) {
            ngx_http_identity_http_fail(&x->result, NGX_HTTP_FORBIDDEN,
                                        NGX_LOG_ERR,
                                        "%s signed with unknown key \"%s\"",
                                        what, kid ? kid : "");
        }

        goto done;
    }

    if (!cjose_jws_get_plaintext(jws, &plain, &plain_len, &err)) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_ERR, "%s: %s", what, err.message);
        goto done;
    }

    claims = json_loadb((const char *) plain, plain_len, JSON_REJECT_DUPLICATES,
                        NULL);
    if (!json_is_object(claims)) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_ERR,
                                    "%s payload is not a JSON object", what);
        if (claims) {
            json_decref(claims);
            claims = NULL;
        }
    }

done:

    if (jwks) {
        json_decref(jwks);
    }

    cjose_jws_release(jws);

    return claims;
}


/*
 * NGX_OK if a key of the set verifies the signature, NGX_DECLINED if no key
 * has that kid, NGX_ERROR (with the result set) otherwise.
 */

static ngx_int_t
ngx_http_identity_oidc_verify_signature(ngx_http_identity_oidc_exchange_t *x,
    cjose_jws_t *jws, const char *alg, const char *kid, const char *jwks,
    const char *what)
{
    size_t         i;
    json_t        *set, *keys, *key;
    ngx_int_t      rc;
    ngx_str_t     *a;
    cjose_err      err;
    ngx_uint_t     n, allowed;
    const char    *kalg, *use, *kkid;
    cjose_jwk_t   *jwk;

    if (alg == NULL) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_ERR, "%s without alg", what);
        return NGX_ERROR;
    }

    allowed = 0;
    a = x->provider->signing_algs->elts;

    for (n = 0; n < x->provider->signing_algs->nelts; n++) {
        if (a[n].len == strlen(alg)
            && ngx_strncmp(a[n].data, alg, a[n].len) == 0)
        {
            allowed = 1;
            break;
        }
    }

    if (!allowed) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_ERR,
                                    "%s alg \"%s\" is not allowed", what,
                                    alg);
        return NGX_ERROR;
    }

    set = json_loads(jwks, 0, NULL);
    keys = json_object_get(set, "keys");
    rc = NGX_DECLINED;

    json_array_foreach(keys, i, key) {

        kkid = json_string_value(json_object_get(key, "kid"));
        kalg = json_string_value(json_object_get(key, "alg"));
        use = json_string_value(json_object_get(key, "use"));

        if ((kid && (kkid == NULL || strcmp(kid, kkid) != 0))
            || (kalg && strcmp(kalg, alg) != 0)
            || (use && strcmp(use, "sig") != 0))
        {
            continue;
        }

        jwk = cjose_jwk_import_json(key, &err);
        if (jwk == NULL) {
            continue;
        }

        if (cjose_jws_verify(jws, jwk, &err)) {
            cjose_jwk_release(jwk);
            rc = NGX_OK;
            break;
        }

        cjose_jwk_release(jwk);
        rc = NGX_ERROR;
    }

    if (set) {
        json_decref(set);
    }

    if (rc == NGX_ERROR) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_ERR,
                                    "%s signature is invalid", what);
    }

    return rc;
}


static ngx_int_t
ngx_http_identity_oidc_check_claims(ngx_http_identity_oidc_exchange_t *x,
    json_t *claims)
{
    time_t       now, leeway;
    json_t      *exp, *iat;
    ngx_str_t    a, b;
    const char  *nonce, *sub;

    now = time(NULL);
    leeway = x->provider->leeway;

    if (ngx_http_identity_oidc_check_audience(x, claims, "id_token")
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    exp = json_object_get(claims, "exp");
    iat = json_object_get(claims, "iat");

    if (!json_is_integer(exp) || !json_is_integer(iat)) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_ERR, "id_token lacks exp or iat");
        return NGX_ERROR;
    }

    if (json_integer_value(exp) + leeway <= now) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_ERR, "id_token has expired");
        return NGX_ERROR;
    }

    if (json_integer_value(iat) - leeway > now) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_ERR,
                                    "id_token was issued in the future");
        return NGX_ERROR;
    }

    nonce = json_string_value(json_object_get(claims, "nonce"));

    a.data = (u_char *) x->nonce;
    a.len = strlen(x->nonce);
    b.data = (u_char *) nonce;
    b.len = nonce ? strlen(nonce) : 0;

    if (nonce == NULL || !ngx_http_identity_secure_equal(&a, &b)) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_ERR,
                                    "id_token nonce does not match");
        return NGX_ERROR;
    }

    sub = json_string_value(json_object_get(claims, "sub"));

    if (sub == NULL || *sub == '\0' || strlen(sub) > 255) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_ERR, "id_token without a sub");
        return NGX_ERROR;
    }

    x->sub = strdup(sub);

    /*
     * An e-mail counts only if the response that supplied it says it is
     * verified; until the end of the exchange it is kept with that word
     * (userinfo may replace both), then dropped if unverified.
     */

    x->email = ngx_http_identity_json_strdup(claims, "email");
    x->email_verified = ngx_http_identity_json_verified(claims,
                                                        "email_verified", 0);
    x->email_vouched = (json_object_get(claims, "email_verified") != NULL);
    x->name = ngx_http_identity_json_strdup(claims, "name");
    x->username = ngx_http_identity_json_strdup(claims, "preferred_username");
    x->sid = ngx_http_identity_json_strdup(claims, "sid");
    x->groups = ngx_http_identity_json_groups(claims, "groups");
    x->raw = json_dumps(claims, JSON_COMPACT);

    if (x->sub == NULL) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_LOG_ERR, "out of memory");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* iss is the provider, aud names the client, and so does azp if needed */

static ngx_int_t
ngx_http_identity_oidc_check_audience(ngx_http_identity_oidc_exchange_t *x,
    json_t *claims, const char *what)
{
    size_t       i;
    json_t      *aud, *v;
    ngx_uint_t   found;
    const char  *iss, *azp;

    iss = json_string_value(json_object_get(claims, "iss"));

    if (iss == NULL || strcmp(iss, x->issuer) != 0) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_ERR,
                                    "%s iss \"%s\" is not \"%s\"", what,
                                    iss ? iss : "", x->issuer);
        return NGX_ERROR;
    }

    aud = json_object_get(claims, "aud");
    found = 0;

    if (json_is_string(aud)) {
        found = (strcmp(json_string_value(aud), x->client_id) == 0);

    } else if (json_is_array(aud)) {
        json_array_foreach(aud, i, v) {
            if (json_is_string(v)
                && strcmp(json_string_value(v), x->client_id) == 0)
            {
                found = 1;
            }
        }

        if (found && json_array_size(aud) > 1) {
            azp = json_string_value(json_object_get(claims, "azp"));
            if (azp == NULL || strcmp(azp, x->client_id) != 0) {
                ngx_http_identity_http_fail(&x->result, NGX_HTTP_FORBIDDEN,
                                            NGX_LOG_ERR,
                                            "%s has several audiences and azp "
                                            "is not the client", what);
                return NGX_ERROR;
            }
        }
    }

    if (!found) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_ERR,
                                    "%s audience is not the client",
                                    what);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * userinfo auto: the ID token lacks a claim of a requested scope.  Many
 * providers (oidc-provider by default, conformIdTokenClaims) put only sub
 * and protocol claims in a code flow's ID token and the rest in userinfo.
 */

static ngx_uint_t
ngx_http_identity_oidc_lacks_claims(ngx_http_identity_oidc_exchange_t *x)
{
    if (x->want_email && (x->email == NULL || !x->email_vouched)) {
        return 1;
    }

    if (x->want_profile && (x->name == NULL || x->username == NULL)) {
        return 1;
    }

    if (x->want_groups && x->groups == NULL) {
        return 1;
    }

    return 0;
}


/*
 * identity_require_claim reads the claims: userinfo's join the ID token's,
 * and replace them, except the ID token's own protocol claims.
 */

static void
ngx_http_identity_oidc_merge_raw(ngx_http_identity_oidc_exchange_t *x,
    json_t *info)
{
    char        *raw;
    json_t      *claims, *v;
    ngx_uint_t   i;
    const char  *key;

    static const char  *protocol[] = {
        "iss", "sub", "aud", "azp", "exp", "iat", "nbf", "nonce", "auth_time",
        "acr", "amr", "at_hash", "c_hash", "sid", "jti", NULL
    };

    if (x->raw == NULL) {
        return;
    }

    claims = json_loads(x->raw, 0, NULL);
    if (!json_is_object(claims)) {
        if (claims) {
            json_decref(claims);
        }

        return;
    }

    json_object_foreach(info, key, v) {
        for (i = 0; protocol[i]; i++) {
            if (strcmp(key, protocol[i]) == 0) {
                break;
            }
        }

        if (protocol[i] == NULL) {
            json_object_set(claims, key, v);
        }
    }

    raw = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);

    if (raw) {
        free(x->raw);
        x->raw = raw;
    }
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


/* OpenID Connect Core 5.3.2: userinfo's sub must be the id_token's */

static ngx_int_t
ngx_http_identity_oidc_userinfo(ngx_http_identity_oidc_exchange_t *x,
    oauth2_log_t *log, const char *access_token)
{
    char                    *body, *v, **fields[3];
    json_t                  *info;
    const char              *sub, *names[3];
    ngx_uint_t               i;
    oauth2_http_call_ctx_t  *hctx;

    hctx = oauth2_http_call_ctx_init(log);

    if (hctx == NULL) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_LOG_ERR, "out of memory");
        return NGX_ERROR;
    }

    oauth2_http_call_ctx_timeout_set(log, hctx,
                            (int) ((x->provider->http_timeout + 999) / 1000));

    if (ngx_http_identity_oauth2_bearer(log, hctx, access_token, &x->result)
        != NGX_OK)
    {
        oauth2_http_call_ctx_free(log, hctx);
        return NGX_ERROR;
    }

    info = NULL;
    body = ngx_http_identity_http_call(log, x->userinfo_endpoint, NULL, hctx,
                                       &x->result, &info);
    oauth2_http_call_ctx_free(log, hctx);

    if (body == NULL) {
        return NGX_ERROR;
    }

    oauth2_mem_free(body);

    sub = json_string_value(json_object_get(info, "sub"));

    if (sub == NULL || strcmp(sub, x->sub) != 0) {
        ngx_http_identity_http_fail(&x->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_ERR,
                                    "userinfo sub does not match the "
                                    "id_token's");
        json_decref(info);
        return NGX_ERROR;
    }

    names[0] = "email";
    fields[0] = &x->email;
    names[1] = "name";
    fields[1] = &x->name;
    names[2] = "preferred_username";
    fields[2] = &x->username;

    for (i = 0; i < 3; i++) {
        v = ngx_http_identity_json_strdup(info, names[i]);
        if (v) {
            free(*fields[i]);
            *fields[i] = v;

            /* userinfo's e-mail counts only with userinfo's word for it */

            if (i == 0) {
                x->email_verified = ngx_http_identity_json_verified(info,
                                                      "email_verified", 0);
                x->email_vouched = 1;
            }
        }
    }

    v = ngx_http_identity_json_groups(info, "groups");
    if (v) {
        free(x->groups);
        x->groups = v;
    }

    ngx_http_identity_oidc_merge_raw(x, info);

    x->userinfo_called = 1;

    json_decref(info);

    return NGX_OK;
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
        ctx->status = x->result.status;
        ctx->state = ngx_http_identity_oidc_failed;
    }

    ctx->resume(r);
}


/*
 * What the exchange and back-channel threads malloc()ed, once it is in the
 * request's pool, or when the client has gone (ngx_http_identity_task_post).
 */

static void
ngx_http_identity_oidc_exchange_free(void *data)
{
    ngx_http_identity_oidc_exchange_t *x = data;

    char        **p[9];
    ngx_uint_t    i;

    p[0] = &x->sub;
    p[1] = &x->email;
    p[2] = &x->name;
    p[3] = &x->username;
    p[4] = &x->sid;
    p[5] = &x->groups;
    p[6] = &x->raw;
    p[7] = &x->jti;
    p[8] = &x->new_jwks;

    for (i = 0; i < 9; i++) {
        free(*p[i]);
        *p[i] = NULL;
    }
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


/*
 * A GET (form == NULL) or a form POST; returns the body, and its JSON
 * object in *json, or NULL with the result set.  It blocks: it is only
 * called from the thread tasks (*_run).
 */



















/* the documents only: the state of the cache stays */

static void
ngx_http_identity_oidc_cache_free(ngx_http_identity_oidc_cache_t *c)
{
    free(c->authorization_endpoint);
    free(c->token_endpoint);
    free(c->userinfo_endpoint);
    free(c->jwks_uri);
    free(c->end_session_endpoint);
    free(c->jwks);

    c->authorization_endpoint = NULL;
    c->token_endpoint = NULL;
    c->userinfo_endpoint = NULL;
    c->jwks_uri = NULL;
    c->end_session_endpoint = NULL;
    c->jwks = NULL;
}
