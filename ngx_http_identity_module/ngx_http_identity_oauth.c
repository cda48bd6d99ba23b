
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * OAuth 2.0 providers (type oauth): presets for eight well-known providers,
 * or every endpoint and claim path configured.  The authorization code
 * flow (with PKCE S256 where the provider takes it), through the OAuth 2.0
 * core (ngx_http_identity_oauth2.c), gives an access token, and the
 * provider's user info endpoint gives the identity.  The presets, and what
 * is particular to GitHub and Microsoft, are in
 * ngx_http_identity_oauth_presets.c.
 *
 * The tokens are kept with the session, encrypted.  With
 * userinfo_refresh_interval the user info is fetched again (after a
 * refresh grant when the access token has expired): a provider that now
 * refuses ends the session.  Calls to the provider run in the thread pool.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>
#include <oauth2/oauth2.h>
#include <oauth2/http.h>
#include <oauth2/log.h>
#include <oauth2/mem.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_task.h"
#include "ngx_http_identity_fetch.h"
#include "ngx_http_identity_protocol.h"
#include "ngx_http_identity_oauth2.h"
#include "ngx_http_identity_oauth.h"
#include "ngx_http_identity_oauth_user.h"
#include "ngx_http_identity_oauth_presets.h"
#include "ngx_http_identity_metrics.h"


#define NGX_HTTP_IDENTITY_OAUTH_EARLY    30    /* refresh this soon */


enum {
    ngx_http_identity_oauth_start = 0,
    ngx_http_identity_oauth_saving,
    ngx_http_identity_oauth_exchange,
    ngx_http_identity_oauth_failed
};


static char *ngx_http_identity_oauth_conf(ngx_conf_t *cf,
    ngx_http_identity_provider_t *pr);
static ngx_int_t ngx_http_identity_oauth_login(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_oauth_callback(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_oauth_refresh(ngx_http_request_t *r);
static ngx_http_identity_oauth_task_t *ngx_http_identity_oauth_task(
    ngx_http_request_t *r);
static void ngx_http_identity_oauth_exchange_run(void *data);
static void ngx_http_identity_oauth_refresh_run(void *data);
static void ngx_http_identity_oauth_task_done(ngx_http_request_t *r,
    void *data);
static ngx_int_t ngx_http_identity_oauth_grant(
    ngx_http_identity_oauth_task_t *t, oauth2_log_t *log,
    oauth2_nv_list_t *form);
static ngx_int_t ngx_http_identity_oauth_refresh_grant(
    ngx_http_identity_oauth_task_t *t, oauth2_log_t *log);
static ngx_int_t ngx_http_identity_oauth_userinfo(
    ngx_http_identity_oauth_task_t *t, oauth2_log_t *log);
static ngx_int_t ngx_http_identity_oauth_adopt(ngx_http_request_t *r,
    ngx_http_identity_ctx_t *ctx, ngx_http_identity_oauth_task_t *t);
static void ngx_http_identity_oauth_task_free(void *data);
static char *ngx_http_identity_oauth_strdup(ngx_conf_t *cf, ngx_str_t *s,
    char *dflt);


static ngx_http_identity_route_t  *ngx_http_identity_oauth_routes[] = {
    &ngx_http_identity_oauth2_callback_route,
    NULL
};


ngx_http_identity_protocol_t  ngx_http_identity_oauth_protocol = {
    ngx_string("oauth"),
    ngx_http_identity_oauth_conf,
    NULL,                                   /* init_process */
    ngx_http_identity_oauth_login,
    ngx_http_identity_oauth_callback,
    ngx_http_identity_oauth_refresh,
    NULL,                                   /* logout */
    ngx_http_identity_oauth_routes
};


/* the end of an identity_provider block of type oauth */

static char *
ngx_http_identity_oauth_conf(ngx_conf_t *cf, ngx_http_identity_provider_t *pr)
{
    ngx_uint_t                         i;
    ngx_http_identity_oauth_conf_t    *oc;
    ngx_http_identity_oauth_preset_t  *ps, generic, pinned;

    if (pr->preset.len) {
        ps = ngx_http_identity_oauth_preset(&pr->preset);

        if (ps == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"preset\"",
                               &pr->preset);
            return NGX_CONF_ERROR;
        }

    } else {
        ngx_http_identity_oauth_generic(&generic);
        ps = &generic;
    }

    if (pr->tenant.len) {
        if (ngx_http_identity_oauth_tenant(cf, pr, ps, &pinned)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }

        ps = &pinned;
    }

    if (pr->email_verified.len
        && (ps->email == ngx_http_identity_email_github
            || ps->email == ngx_http_identity_email_tenant))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"claim_map email_verified\" cannot be used with "
                           "preset \"%V\": it vouches for e-mails its own "
                           "way", &pr->preset);
        return NGX_CONF_ERROR;
    }

    oc = ngx_pcalloc(cf->pool, sizeof(ngx_http_identity_oauth_conf_t));
    if (oc == NULL) {
        return NGX_CONF_ERROR;
    }

    pr->oauth = oc;

    oc->authorization_endpoint = ngx_http_identity_oauth_strdup(cf,
                                    &pr->authorization_endpoint,
                                    ps->authorization_endpoint);
    oc->client.token_endpoint = ngx_http_identity_oauth_strdup(cf,
                                    &pr->token_endpoint, ps->token_endpoint);
    oc->userinfo_endpoint = ngx_http_identity_oauth_strdup(cf,
                                    &pr->userinfo_endpoint,
                                    ps->userinfo_endpoint);
    oc->emails_endpoint = ngx_http_identity_oauth_strdup(cf,
                                    &pr->emails_endpoint,
                                    ps->emails_endpoint);
    oc->client.client_id = ngx_http_identity_oauth_strdup(cf, &pr->client_id,
                                                          NULL);
    oc->client.client_secret = ngx_http_identity_oauth_strdup(cf,
                                                   &pr->client_secret, NULL);

    if (oc->authorization_endpoint == NULL
        || oc->client.token_endpoint == NULL
        || oc->userinfo_endpoint == NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "identity provider \"%V\" needs a \"preset\" or "
                           "\"authorization_endpoint\", \"token_endpoint\" "
                           "and \"userinfo_endpoint\"", &pr->name);
        return NGX_CONF_ERROR;
    }

    if (oc->client.client_id == NULL || oc->client.client_secret == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "identity provider \"%V\" needs \"client_id\" "
                           "and \"client_secret\"", &pr->name);
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < 5; i++) {
        oc->claims[i] = ngx_http_identity_oauth_strdup(cf, &pr->attributes[i],
                                                       ps->claims[i]);
    }

    if (oc->claims[0] == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "identity provider \"%V\" needs \"claim_map "
                           "id=PATH\"", &pr->name);
        return NGX_CONF_ERROR;
    }

    oc->email_verified = ps->email_verified;
    oc->email = ps->email;

    if (pr->email_verified.len) {
        oc->email_verified = ngx_http_identity_oauth_strdup(cf,
                                                    &pr->email_verified, NULL);
        oc->email = ngx_http_identity_email_path;
    }

    if (ps->email == ngx_http_identity_email_tenant) {
        oc->microsoft = 1;
        oc->tenant = pr->tenant.len ? (char *) pr->tenant.data : NULL;
    }

    oc->client_id_header = ps->client_id_header;
    oc->timeout = pr->http_timeout;

    ngx_conf_init_value(pr->pkce, (ngx_flag_t) ps->pkce);
    ngx_conf_init_value(pr->userinfo_refresh_interval, 0);

    /* presets: every provider takes the secret in the form */

    ngx_conf_init_uint_value(pr->token_auth, pr->preset.len
                                             ? NGX_HTTP_IDENTITY_AUTH_POST
                                             : NGX_HTTP_IDENTITY_AUTH_BASIC);
    oc->client.token_auth = pr->token_auth;
    oc->client.timeout = pr->http_timeout;

    if (pr->scopes.len == 0 && ps->scopes) {
        pr->scopes.data = (u_char *) ps->scopes;
        pr->scopes.len = ngx_strlen(ps->scopes);
    }

    /* the identity's provider URL */

    if (pr->issuer.len == 0) {
        pr->issuer.data = (u_char *) (ps->issuer ? ps->issuer
                                                 : oc->client.token_endpoint);
        pr->issuer.len = ngx_strlen(pr->issuer.data);
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_identity_oauth_strdup(ngx_conf_t *cf, ngx_str_t *s, char *dflt)
{
    char  *p;

    if (s->len == 0) {
        return dflt;
    }

    p = ngx_pnalloc(cf->pool, s->len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s->data, s->len);
    p[s->len] = '\0';

    return p;
}


/* login: a pending login in Redis, then the redirect */

static ngx_int_t
ngx_http_identity_oauth_login(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_http_identity_ctx_t         *ctx;
    ngx_http_identity_oauth_conf_t  *oc;

    ctx = ngx_http_identity_get_ctx(r);
    oc = ctx->provider->oauth;

    switch (ctx->state) {

    case ngx_http_identity_oauth_start:

        rc = ngx_http_identity_oauth2_login(r, 0);

        if (rc == NGX_AGAIN) {
            ctx->state = ngx_http_identity_oauth_saving;
        }

        return rc;

    case ngx_http_identity_oauth_saving:

        if (ctx->redis_error) {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        return ngx_http_identity_oauth2_redirect(r, oc->authorization_endpoint,
                                                 ctx->provider->pkce, NULL);

    default:
        return ctx->status ? ctx->status : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


/*
 * The callback, once the OAuth 2.0 core took the pending login: code for
 * tokens, then the user info; NGX_OK with the claims in ctx->claims.
 */

static ngx_int_t
ngx_http_identity_oauth_callback(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_http_identity_ctx_t         *ctx;
    ngx_http_identity_oauth_task_t  *t;

    ctx = ngx_http_identity_get_ctx(r);

    switch (ctx->state) {

    case ngx_http_identity_oauth_start:

        t = ngx_http_identity_oauth_task(r);
        if (t == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ngx_http_identity_oauth2_grant(r, ctx->provider->pkce, &t->grant)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_http_identity_task_post(r, ctx->provider,
                                         ngx_http_identity_oauth_exchange_run,
                                         ngx_http_identity_oauth_task_done,
                                         ngx_http_identity_oauth_task_free, t);
        if (rc != NGX_OK) {
            return rc == NGX_DECLINED ? NGX_HTTP_SERVICE_UNAVAILABLE
                                      : NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->state = ngx_http_identity_oauth_exchange;
        return NGX_AGAIN;

    case ngx_http_identity_oauth_exchange:

        if (ctx->status) {
            return ctx->status;
        }

        return NGX_OK;     /* login.c traces the verified login */

    default:
        return ctx->status ? ctx->status : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


/*
 * Continuous authorization: the session's tokens (as the session store
 * gave them, encrypted) are decrypted and the user info is fetched again.
 * NGX_AGAIN, then ctx->status says 0 (claims fresh), 403 (the provider
 * refuses) or 503; NGX_DECLINED when there is nothing to check with.
 */

static ngx_int_t
ngx_http_identity_oauth_refresh(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_str_t                        plain;
    ngx_http_identity_ctx_t         *ctx;
    ngx_http_identity_main_conf_t   *imcf;
    ngx_http_identity_oauth_task_t  *t;

    ctx = ngx_http_identity_get_ctx(r);
    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    if (imcf->token_key == NULL || ctx->claims.access_token.len == 0) {
        return NGX_DECLINED;
    }

    t = ngx_http_identity_oauth_task(r);
    if (t == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_identity_decrypt(r->pool, imcf->token_key, &ctx->session.id,
                                  &ctx->claims.access_token, &plain)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    t->access_token = (char *) plain.data;

    if (ngx_http_identity_decrypt(r->pool, imcf->token_key, &ctx->session.id,
                                  &ctx->claims.refresh_token, &plain)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    t->refresh_token = plain.len ? (char *) plain.data : NULL;
    t->access_expires = ctx->claims.access_expires;

    rc = ngx_http_identity_task_post_apart(r, ctx->provider,
                                     NGX_HTTP_IDENTITY_TASK_REFRESH,
                                     ngx_http_identity_oauth_refresh_run,
                                     ngx_http_identity_oauth_task_done,
                                     ngx_http_identity_oauth_task_free, t);

    /* refused for the cap: the session stays as it is, as when unreachable */

    if (rc != NGX_OK) {
        return rc;
    }

    /* the tokens stay unless the provider hands out new ones */

    ctx->claims.access_token.data = (u_char *) t->access_token;
    ctx->claims.access_token.len = ngx_strlen(t->access_token);
    ctx->claims.refresh_token = plain;
    ctx->status = 0;

    return NGX_AGAIN;
}


static ngx_http_identity_oauth_task_t *
ngx_http_identity_oauth_task(ngx_http_request_t *r)
{
    ngx_http_identity_ctx_t         *ctx;
    ngx_http_identity_oauth_task_t  *t;

    ctx = ngx_http_identity_get_ctx(r);

    t = ngx_pcalloc(r->pool, sizeof(ngx_http_identity_oauth_task_t));
    if (t == NULL) {
        return NULL;
    }

    t->provider = ctx->provider;
    t->conf = ctx->provider->oauth;

    return t;
}


static void
ngx_http_identity_oauth_exchange_run(void *data)
{
    ngx_http_identity_oauth_task_t *t = data;

    oauth2_log_t      *log;
    oauth2_nv_list_t  *form;

    log = ngx_http_identity_http_log(&t->result);
    if (log == NULL) {
        return;
    }

    form = ngx_http_identity_oauth2_code_form(log, &t->grant);

    if (ngx_http_identity_oauth_grant(t, log, form) == NGX_OK) {
        (void) ngx_http_identity_oauth_userinfo(t, log);
    }

    oauth2_nv_list_free(log, form);
    oauth2_log_free(log);
}


/*
 * An expired access token is refreshed first; one the provider refuses
 * before its expiry is refreshed once too.  A refresh or a user info
 * call that is refused then ends the session.
 */

static void
ngx_http_identity_oauth_refresh_run(void *data)
{
    ngx_http_identity_oauth_task_t *t = data;

    oauth2_log_t  *log;

    log = ngx_http_identity_http_log(&t->result);
    if (log == NULL) {
        return;
    }

    if (t->refresh_token && t->access_expires
        && t->access_expires <= time(NULL) + NGX_HTTP_IDENTITY_OAUTH_EARLY
        && ngx_http_identity_oauth_refresh_grant(t, log) != NGX_OK)
    {
        goto done;
    }

    if (ngx_http_identity_oauth_userinfo(t, log) == NGX_OK
        || t->result.status != NGX_HTTP_FORBIDDEN
        || t->refresh_token == NULL || t->refreshed)
    {
        goto done;
    }

    ngx_memzero(&t->result, sizeof(ngx_http_identity_http_result_t));

    if (ngx_http_identity_oauth_refresh_grant(t, log) == NGX_OK) {
        (void) ngx_http_identity_oauth_userinfo(t, log);
    }

done:

    oauth2_log_free(log);
}


static ngx_int_t
ngx_http_identity_oauth_refresh_grant(ngx_http_identity_oauth_task_t *t,
    oauth2_log_t *log)
{
    ngx_int_t          rc;
    oauth2_nv_list_t  *form;

    form = oauth2_nv_list_init(log);
    oauth2_nv_list_add(log, form, "grant_type", "refresh_token");
    oauth2_nv_list_add(log, form, "refresh_token",
                       t->new_refresh ? t->new_refresh : t->refresh_token);

    rc = ngx_http_identity_oauth_grant(t, log, form);

    oauth2_nv_list_free(log, form);

    t->refreshed = 1;

    return rc;
}


/* a grant at the token endpoint, and the tokens it gives */

static ngx_int_t
ngx_http_identity_oauth_grant(ngx_http_identity_oauth_task_t *t,
    oauth2_log_t *log, oauth2_nv_list_t *form)
{
    json_t                          *tokens, *v;
    uint64_t                         start;
    const char                      *access, *type, *refresh, *err;
    ngx_http_identity_oauth_conf_t  *oc;

    oc = t->conf;

    start = ngx_http_identity_metrics_now();
    tokens = ngx_http_identity_oauth2_token(&oc->client, log, form,
                                            &t->result);
    ngx_http_identity_metrics_idp(t->provider, NGX_HTTP_IDENTITY_CALL_TOKEN,
                                  start);

    if (tokens == NULL) {
        return NGX_ERROR;
    }

    /* GitHub answers a refused code with 200 and an "error" */

    err = json_string_value(json_object_get(tokens, "error"));

    if (err) {
        ngx_http_identity_http_fail(&t->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_INFO,
                                    "\"%s\" answered %s",
                                    oc->client.token_endpoint, err);
        json_decref(tokens);
        return NGX_ERROR;
    }

    access = json_string_value(json_object_get(tokens, "access_token"));
    type = json_string_value(json_object_get(tokens, "token_type"));
    refresh = json_string_value(json_object_get(tokens, "refresh_token"));

    if (access == NULL || access[0] == '\0'
        || (type && strcasecmp(type, "bearer") != 0))
    {
        ngx_http_identity_http_fail(&t->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_ERR,
                                    "token response without a Bearer "
                                    "access_token");
        json_decref(tokens);
        return NGX_ERROR;
    }

    free(t->new_access);
    t->new_access = strdup(access);

    if (refresh && refresh[0]) {
        free(t->new_refresh);
        t->new_refresh = strdup(refresh);
    }

    if (t->conf->microsoft
        && ngx_http_identity_oauth_microsoft(t, tokens) != NGX_OK)
    {
        json_decref(tokens);
        return NGX_ERROR;
    }

    v = json_object_get(tokens, "expires_in");
    t->new_expires = 0;

    if (json_is_integer(v) && json_integer_value(v) > 0) {
        t->new_expires = time(NULL) + (time_t) json_integer_value(v);

    } else if (json_is_string(v) && atol(json_string_value(v)) > 0) {
        t->new_expires = time(NULL) + atol(json_string_value(v));
    }

    json_decref(tokens);

    if (t->new_access == NULL) {
        ngx_http_identity_http_fail(&t->result, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_LOG_ERR, "out of memory");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_identity_oauth_userinfo(ngx_http_identity_oauth_task_t *t,
    oauth2_log_t *log)
{
    json_t                          *info;
    ngx_uint_t                       i;
    ngx_http_identity_oauth_conf_t  *oc;

    oc = t->conf;

    info = ngx_http_identity_oauth_get(t, log, oc->userinfo_endpoint, 0);
    if (info == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < 5; i++) {
        free(t->claims[i]);
    }

    ngx_http_identity_oauth_claims(info, oc->claims, t->claims);

    ngx_http_identity_oauth_vouch(t, info);

    /* only the claims rules name are kept (ngx_http_identity_claims.c) */

    free(t->raw);
    t->raw = json_dumps(info, JSON_COMPACT);

    json_decref(info);

    if (t->claims[0] == NULL || t->claims[0][0] == '\0') {
        ngx_http_identity_http_fail(&t->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_ERR,
                                    "user info of \"%s\" has no \"%s\"",
                                    oc->userinfo_endpoint, oc->claims[0]);
        return NGX_ERROR;
    }

    /*
     * GitHub: /user's "email" is the public one the user picked, so the
     * address is always the verified primary one of /user/emails.
     */

    if (oc->email == ngx_http_identity_email_github && oc->emails_endpoint) {
        free(t->claims[1]);
        t->claims[1] = ngx_http_identity_oauth_primary_email(t, log);

        if (t->result.status) {
            return NGX_ERROR;
        }
    }

    /* Microsoft: the key is the tenant and the object id, never an address */

    if (t->user_key) {
        free(t->claims[0]);
        t->claims[0] = strdup(t->user_key);

        if (t->claims[0] == NULL) {
            ngx_http_identity_http_fail(&t->result,
                                        NGX_HTTP_SERVICE_UNAVAILABLE,
                                        NGX_LOG_ERR, "out of memory");
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_identity_oauth_task_done(ngx_http_request_t *r, void *data)
{
    ngx_http_identity_oauth_task_t *t = data;

    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    if (t->result.status == 0
        && ngx_http_identity_oauth_adopt(r, ctx, t) != NGX_OK)
    {
        ngx_http_identity_http_fail(&t->result,
                                    NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR, "out of memory");
    }

    if (t->result.status) {
        ngx_log_error(t->result.level, r->connection->log, 0,
                      "identity: provider \"%V\": %s", &t->provider->name,
                      t->result.error);
        ctx->told = 1;

    } else if (t->email_unverified) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: provider \"%V\" does not vouch for the "
                      "user's e-mail: it is not used", &t->provider->name);
    }

    ctx->status = t->result.status;
    ctx->refreshed = t->refreshed;

    ngx_http_identity_oauth_task_free(t);

    ctx->resume(r);
}


/* the thread's findings, into the request's pool */

static ngx_int_t
ngx_http_identity_oauth_adopt(ngx_http_request_t *r,
    ngx_http_identity_ctx_t *ctx, ngx_http_identity_oauth_task_t *t)
{
    ngx_str_t   *claims[5];
    ngx_uint_t   i;

    claims[0] = &ctx->claims.provider_user_id;
    claims[1] = &ctx->claims.email;
    claims[2] = &ctx->claims.name;
    claims[3] = &ctx->claims.username;
    claims[4] = &ctx->claims.groups;

    for (i = 0; i < 5; i++) {
        if (ngx_http_identity_pool_str(r->pool, t->claims[i], claims[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (ngx_http_identity_pool_str(r->pool, t->raw, &ctx->claims.raw)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (t->new_access) {
        if (ngx_http_identity_pool_str(r->pool, t->new_access,
                                       &ctx->claims.access_token)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ctx->claims.access_expires = t->new_expires;
    }

    if (t->new_refresh
        && ngx_http_identity_pool_str(r->pool, t->new_refresh,
                                      &ctx->claims.refresh_token)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* also the task's "release": the client went away (task.c) */

static void
ngx_http_identity_oauth_task_free(void *data)
{
    ngx_http_identity_oauth_task_t *t = data;

    ngx_uint_t  i;

    for (i = 0; i < 5; i++) {
        free(t->claims[i]);
    }

    free(t->raw);
    free(t->user_key);

    if (t->new_access) {
        ngx_explicit_memzero(t->new_access, strlen(t->new_access));
        free(t->new_access);
    }

    if (t->new_refresh) {
        ngx_explicit_memzero(t->new_refresh, strlen(t->new_refresh));
        free(t->new_refresh);
    }
}
