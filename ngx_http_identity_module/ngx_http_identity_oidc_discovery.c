
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The OIDC protocol's metadata: per worker and provider, the discovery
 * document's endpoints and the JWKS, in malloc()ed memory that lives as
 * long as the worker.  A request that needs them waits for this worker's
 * one discovery of that provider (a detached thread task); a failed one is
 * remembered for NGX_HTTP_IDENTITY_OIDC_BACKOFF seconds, and meanwhile the
 * answer is 503 with Retry-After.  Called by ngx_http_identity_oidc.c only.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>
#include <oauth2/oauth2.h>
#include <oauth2/http.h>
#include <oauth2/log.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_task.h"
#include "ngx_http_identity_fetch.h"
#include "ngx_http_identity_json.h"
#include "ngx_http_identity_oidc_discovery.h"
#include "ngx_http_identity_parse.h"
#include "ngx_http_identity_metrics.h"


#define NGX_HTTP_IDENTITY_OIDC_BACKOFF      5


/* malloc()ed, as is issuer: a discovery outlives the request that began it */

struct ngx_http_identity_oidc_discovery_s {
    ngx_http_identity_provider_t   *provider;
    char                           *issuer;
    ngx_msec_t                      timeout;
    ngx_thread_task_t              *task;

    ngx_http_identity_oidc_cache_t  out;
    ngx_http_identity_http_result_t result;
};


static void ngx_http_identity_oidc_caches_free(void *data);
static ngx_int_t ngx_http_identity_oidc_discover(ngx_http_request_t *r,
    ngx_http_identity_provider_t *provider,
    ngx_http_identity_oidc_cache_t *cache);
static void ngx_http_identity_oidc_discovery_run(void *data);
static void ngx_http_identity_oidc_discovery_finish(void *data);
static void ngx_http_identity_oidc_discovery_done(ngx_http_request_t *r,
    void *data);
static void ngx_http_identity_oidc_discovery_free(
    ngx_http_identity_oidc_discovery_t *d);
static ngx_int_t ngx_http_identity_oidc_endpoints_http(
    ngx_http_identity_oidc_discovery_t *d);
static ngx_int_t ngx_http_identity_oidc_unavailable(ngx_http_request_t *r,
    ngx_http_identity_oidc_cache_t *cache);
static void ngx_http_identity_oidc_cache_free(
    ngx_http_identity_oidc_cache_t *c);


static ngx_array_t  ngx_http_identity_oidc_caches;  /* per worker */


ngx_int_t
ngx_http_identity_oidc_caches_init(ngx_cycle_t *cycle)
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


ngx_http_identity_oidc_cache_t *
ngx_http_identity_oidc_cache(ngx_http_identity_provider_t *provider)
{
    ngx_http_identity_oidc_cache_t  *caches;

    caches = ngx_http_identity_oidc_caches.elts;

    return &caches[provider->index];
}


/*
 * NGX_DECLINED if the provider's metadata is fresh; NGX_AGAIN if the
 * request waits for a discovery (this worker's one for that provider, begun
 * now if none is in flight); 503 while a failed one is remembered; or an
 * error status.
 */

ngx_int_t
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
    uint64_t                 start;
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

    start = ngx_http_identity_metrics_now();
    body = ngx_http_identity_http_call(log, url, NULL, hctx, &d->result,
                                       &meta);
    ngx_http_identity_metrics_idp(d->provider,
                                  NGX_HTTP_IDENTITY_CALL_DISCOVERY, start);
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

    if (ngx_http_identity_oidc_endpoints_http(d) != NGX_OK) {
        goto done;
    }

    start = ngx_http_identity_metrics_now();
    d->out.jwks = ngx_http_identity_http_call(log, d->out.jwks_uri, NULL,
                                              hctx, &d->result, &jwks);
    ngx_http_identity_metrics_idp(d->provider, NGX_HTTP_IDENTITY_CALL_JWKS,
                                  start);
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


/*
 * The endpoints a discovery names are fetched by this worker (token,
 * userinfo, JWKS) or shown to browsers (authorization, end_session): an
 * IdP, or whoever answers in its name, must not make the module read a
 * file: or any other scheme's URL.  libcurl refuses them too, today; this
 * does not depend on how it was built.  Nor may one hold a space or a
 * control character: CR LF would end the Location header of a redirect
 * to it and add headers of the IdP's choosing.
 */

static ngx_int_t
ngx_http_identity_oidc_endpoints_http(ngx_http_identity_oidc_discovery_t *d)
{
    char        *url[5];
    ngx_uint_t   i;

    static const char  *names[] = {
        "authorization_endpoint", "token_endpoint", "userinfo_endpoint",
        "jwks_uri", "end_session_endpoint"
    };

    url[0] = d->out.authorization_endpoint;
    url[1] = d->out.token_endpoint;
    url[2] = d->out.userinfo_endpoint;
    url[3] = d->out.jwks_uri;
    url[4] = d->out.end_session_endpoint;

    for (i = 0; i < 5; i++) {
        if (url[i] == NULL) {
            continue;
        }

        if (ngx_http_identity_http_url(url[i])) {
            continue;
        }

        ngx_http_identity_http_fail(&d->result, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_LOG_ERR,
                                    "discovery document of \"%s\": %s "
                                    "\"%.64s\" is not an http(s) URL",
                                    d->issuer, names[i], url[i]);
        return NGX_ERROR;
    }

    return NGX_OK;
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

        /*
         * Logged once per failure, not per waiting request; at error
         * whatever the provider answered (a GET's "invalid_grant" is no
         * browser's doing): the 503s it makes are logged at info.
         */

        cache->retry = ngx_time() + NGX_HTTP_IDENTITY_OIDC_BACKOFF;

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
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
    u_char                   *p;
    time_t                    wait;
    ngx_table_elt_t          *h;
    ngx_http_identity_ctx_t  *ctx;

    /* logged once as it failed, not for each login refused meanwhile */

    ctx = ngx_http_identity_get_ctx(r);
    ctx->told = 1;

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
