
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * SAML 2.0 service provider with lasso: a signed AuthnRequest over
 * HTTP-Redirect, the response over HTTP-POST at {identity_path}saml/acs,
 * the login bound to its browser and finished at {identity_path}saml/finish,
 * and the SP's metadata at {identity_path}saml/metadata.  The SP's entity id
 * and ACS URL come from identity_public_url, never from the request.
 *
 * lasso parses the response and verifies its signature (on the response or
 * on the assertion) with the IdP's key from its metadata; what it leaves to
 * its caller is checked too: Destination, Recipient, Audience, the time
 * conditions, InResponseTo and the single assertion.  All XML and signature
 * work runs in the thread pool, with a LassoServer built for each task, so
 * that no lasso object is shared between threads.
 *
 * This file is what runs on the event loop: the protocol entry, the login
 * redirect and the routes.  The thread side is in saml_message.c (the
 * AuthnRequest built, the response checked and read into the task), the
 * SP and IdP metadata, the per-task LassoServer and the task's posting in
 * saml_idp.c; neither calls back into this file.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <lasso/lasso.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_cookie.h"
#include "ngx_http_identity_store.h"
#include "ngx_http_identity_task.h"
#include "ngx_http_identity_body.h"
#include "ngx_http_identity_fetch.h"
#include "ngx_http_identity_claims.h"
#include "ngx_http_identity_error.h"
#include "ngx_http_identity_protocol.h"
#include "ngx_http_identity_saml.h"
#include "ngx_http_identity_saml_message.h"
#include "ngx_http_identity_saml_idp.h"


#define NGX_HTTP_IDENTITY_SAML_RESPONSE_MAX  (256 * 1024)


enum {
    ngx_http_identity_saml_start = 0,
    ngx_http_identity_saml_authn,
    ngx_http_identity_saml_saving,
    ngx_http_identity_saml_reading,
    ngx_http_identity_saml_taking,
    ngx_http_identity_saml_checking,
    ngx_http_identity_saml_once,
    ngx_http_identity_saml_parking,
    ngx_http_identity_saml_failed
};


static char *ngx_http_identity_saml_conf(ngx_conf_t *cf,
    ngx_http_identity_provider_t *pr);
static ngx_int_t ngx_http_identity_saml_login(ngx_http_request_t *r);
static void ngx_http_identity_saml_authn_done(ngx_http_request_t *r,
    void *data);
static ngx_int_t ngx_http_identity_saml_metadata(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_saml_acs(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_saml_finish_url(ngx_http_request_t *r,
    ngx_str_t *key, ngx_str_t *url);
static ngx_int_t ngx_http_identity_saml_finish(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_saml_bound(ngx_http_request_t *r,
    ngx_str_t *hash, ngx_uint_t missing_ok);
static ngx_uint_t ngx_http_identity_saml_is_token(ngx_str_t *s);
static ngx_int_t ngx_http_identity_saml_response(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_saml_post_check(ngx_http_request_t *r,
    char *request_id);
static void ngx_http_identity_saml_check_done(ngx_http_request_t *r,
    void *data);
static ngx_int_t ngx_http_identity_saml_authorized(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_str_t *groups);
static void ngx_http_identity_saml_task_end(ngx_http_request_t *r,
    ngx_http_identity_saml_task_t *t);


/*
 * The ACS answers a POST from the IdP, reading its body; the finish step
 * is where the login is bound to the browser, and finished.
 */

static ngx_http_identity_route_t  ngx_http_identity_saml_acs_route = {
    ngx_string("saml/acs"),
    ngx_http_identity_saml_acs,
    NGX_HTTP_IDENTITY_ROUTE_PAGE|NGX_HTTP_IDENTITY_ROUTE_BACK
    |NGX_HTTP_IDENTITY_ROUTE_BODY
};


static ngx_http_identity_route_t  ngx_http_identity_saml_metadata_route = {
    ngx_string("saml/metadata"),
    ngx_http_identity_saml_metadata,
    0
};


static ngx_http_identity_route_t  ngx_http_identity_saml_finish_route = {
    ngx_string("saml/finish"),
    ngx_http_identity_saml_finish,
    NGX_HTTP_IDENTITY_ROUTE_FINISH|NGX_HTTP_IDENTITY_ROUTE_PAGE
    |NGX_HTTP_IDENTITY_ROUTE_BACK
};


static ngx_http_identity_route_t  *ngx_http_identity_saml_routes[] = {
    &ngx_http_identity_saml_acs_route,
    &ngx_http_identity_saml_metadata_route,
    &ngx_http_identity_saml_finish_route,
    NULL
};


ngx_http_identity_protocol_t  ngx_http_identity_saml_protocol = {
    ngx_string("saml"),
    ngx_http_identity_saml_conf,
    ngx_http_identity_saml_init_process,
    ngx_http_identity_saml_login,
    NULL,                                   /* callback */
    NULL,                                   /* refresh */
    NULL,                                   /* logout */
    ngx_http_identity_saml_routes
};


/*
 * The IdP's metadata and the SP's key and certificate are loaded into a
 * LassoServer once at configuration, so that "nginx -t" refuses what lasso
 * would; the IdP's entity id becomes the provider's issuer.
 */

static char *
ngx_http_identity_saml_conf(ngx_conf_t *cf, ngx_http_identity_provider_t *pr)
{
    char            *md, *id;
    ngx_str_t        base, entity, xml;
    LassoServer     *server;
    GHashTableIter   iter;
    gpointer         key, value;

    if (pr->idp_metadata.len == 0 || pr->sp_cert.len == 0
        || pr->sp_key.len == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "identity provider \"%V\" needs \"idp_metadata\", "
                           "\"sp_certificate\" and \"sp_certificate_key\"",
                           &pr->name);
        return NGX_CONF_ERROR;
    }

    if (pr->nameid_format.len == 0) {
        ngx_str_set(&pr->nameid_format,
            "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent");
    }

    if (ngx_http_identity_saml_init(cf->log) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_str_set(&base, "https://sp.invalid");
    ngx_str_set(&entity, "https://sp.invalid/_identity/saml/metadata");

    if (ngx_http_identity_saml_metadata_xml(NULL, pr, &entity, &base, &xml)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    md = (char *) xml.data;

    server = lasso_server_new_from_buffers(md, (char *) pr->sp_key.data,
                                           NULL, (char *) pr->sp_cert.data);
    ngx_free(md);

    if (server == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "identity provider \"%V\": lasso refuses the SP "
                           "key or certificate", &pr->name);
        return NGX_CONF_ERROR;
    }

    if (lasso_server_add_provider_from_buffer(server,
                                              LASSO_PROVIDER_ROLE_IDP,
                                              (char *) pr->idp_metadata.data,
                                              NULL, NULL)
        != 0)
    {
        lasso_server_destroy(server);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "identity provider \"%V\": lasso refuses the IdP "
                           "metadata", &pr->name);
        return NGX_CONF_ERROR;
    }

    id = NULL;
    g_hash_table_iter_init(&iter, server->providers);

    while (g_hash_table_iter_next(&iter, &key, &value)) {
        id = LASSO_PROVIDER(value)->ProviderID;
    }

    if (id == NULL || g_hash_table_size(server->providers) != 1) {
        lasso_server_destroy(server);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "identity provider \"%V\": the IdP metadata must "
                           "describe exactly one IdP", &pr->name);
        return NGX_CONF_ERROR;
    }

    pr->issuer.len = ngx_strlen(id);
    pr->issuer.data = ngx_pnalloc(cf->pool, pr->issuer.len + 1);
    if (pr->issuer.data == NULL) {
        lasso_server_destroy(server);
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(pr->issuer.data, id, pr->issuer.len + 1);

    lasso_server_destroy(server);

    return NGX_CONF_OK;
}


/* login: a signed AuthnRequest, a pending login in Redis, a redirect */

static ngx_int_t
ngx_http_identity_saml_login(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_str_t                       name, domain, location;
    ngx_http_identity_ctx_t        *ctx;
    ngx_http_identity_saml_task_t  *t;

    ctx = ngx_http_identity_get_ctx(r);

    switch (ctx->state) {

    case ngx_http_identity_saml_start:

        t = ngx_pcalloc(r->pool, sizeof(ngx_http_identity_saml_task_t));
        if (t == NULL
            || ngx_http_identity_random(r->pool, 32, &ctx->state_param)
               != NGX_OK
            || ngx_http_identity_saml_sp(r, ctx->provider, t) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        t->relay_state = ngx_http_identity_cstr(r->pool,
                                                     &ctx->state_param);
        if (t->relay_state == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_http_identity_saml_post(r, ngx_http_identity_saml_authn_run,
                                         ngx_http_identity_saml_authn_done, t);
        if (rc != NGX_OK) {
            return rc == NGX_DECLINED ? NGX_HTTP_SERVICE_UNAVAILABLE
                                      : NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->state = ngx_http_identity_saml_authn;
        return NGX_AGAIN;

    case ngx_http_identity_saml_authn:

        /* the AuthnRequest's ID is what InResponseTo must name */

        ctx->login.provider = ctx->provider->name;
        ngx_str_null(&ctx->login.code_verifier);
        ctx->found = 0;

        if (ngx_http_identity_login_save(r, &ctx->state_param) != NGX_OK) {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        ctx->state = ngx_http_identity_saml_saving;
        return NGX_AGAIN;

    case ngx_http_identity_saml_saving:

        if (ctx->redis_error) {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        location = ctx->redirect_uri;

        if (ngx_http_identity_state_cookie(r, &name, &domain)
               != NGX_OK
            || ngx_http_identity_cookie_set(r, &name, &ctx->state_param,
                                            &domain,
                                            NGX_HTTP_IDENTITY_STATE_TTL)
               != NGX_OK
            || ngx_http_identity_set_location(r, &location) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_HTTP_MOVED_TEMPORARILY;

    default:
        return ctx->status ? ctx->status : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


static void
ngx_http_identity_saml_authn_done(ngx_http_request_t *r, void *data)
{
    ngx_http_identity_saml_task_t *t = data;

    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    ngx_http_identity_saml_adopt(r, t);

    /* the pending login keeps what the AuthnRequest told the IdP */

    ctx->login.redirect_uri.data = (u_char *) t->acs_url;
    ctx->login.redirect_uri.len = ngx_strlen(t->acs_url);
    ctx->login.sp_entity_id.data = (u_char *) t->entity_id;
    ctx->login.sp_entity_id.len = ngx_strlen(t->entity_id);

    if (t->status == 0
        && (ngx_http_identity_pool_str(r->pool, t->url, &ctx->redirect_uri)
            != NGX_OK
            || ngx_http_identity_pool_str(r->pool, t->id, &ctx->login.nonce)
               != NGX_OK))
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR, "out of memory");
    }

    free(t->url);
    free(t->id);

    ngx_http_identity_saml_task_end(r, t);
}


/* the SP's metadata, for the IdP to be configured from */

static ngx_int_t
ngx_http_identity_saml_metadata(ngx_http_request_t *r)
{
    ngx_buf_t                      *b;
    ngx_str_t                       xml, type;
    ngx_http_identity_provider_t   *pr;
    ngx_http_identity_saml_task_t   t;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    pr = ngx_http_identity_saml_provider(r, 0);
    if (pr == NULL) {
        return NGX_HTTP_NOT_FOUND;
    }

    ngx_memzero(&t, sizeof(ngx_http_identity_saml_task_t));

    if (ngx_http_identity_saml_sp(r, pr, &t) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    xml.data = (u_char *) t.sp_metadata;
    xml.len = ngx_strlen(t.sp_metadata);

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = xml.data;
    b->last = xml.data + xml.len;
    b->memory = 1;

    ngx_str_set(&type, "application/samlmetadata+xml");

    return ngx_http_identity_body_send(r, NGX_HTTP_OK, b, &type, type.len);
}


/*
 * The Assertion Consumer Service: HTTP-POST of SAMLResponse and RelayState.
 *
 * The IdP's form posts here cross-site, so browsers send no SameSite=Lax
 * cookie with it, and the state cookie that binds a login to its browser
 * is missing.  The ACS therefore verifies the response completely, off the
 * loop (signature, Destination, Recipient, Audience, times, InResponseTo
 * of the pending login that RelayState names, which it takes; the
 * assertion id once; authorized_groups), keeps the result in the store
 * under a one-time key, and answers 303 to
 * {identity_public_url}{identity_path}saml/finish?k=KEY.  That GET is a
 * same-site top-level navigation and carries the state cookie: the binding
 * is checked there, and the session made.
 */

static ngx_int_t
ngx_http_identity_saml_acs(ngx_http_request_t *r)
{
    char                           *request_id;
    ngx_int_t                       rc;
    ngx_str_t                       location;
    ngx_http_identity_ctx_t        *ctx;
    ngx_http_identity_main_conf_t  *imcf;

    ctx = ngx_http_identity_get_ctx(r);

    switch (ctx->state) {

    case ngx_http_identity_saml_start:

        if (r->method != NGX_HTTP_POST) {
            return NGX_HTTP_NOT_ALLOWED;
        }

        ctx->state = ngx_http_identity_saml_reading;

        return ngx_http_identity_read_body(r,
                                           NGX_HTTP_IDENTITY_SAML_RESPONSE_MAX);

    case ngx_http_identity_saml_reading:

        if (!ctx->body_ready) {
            return NGX_AGAIN;
        }

        return ngx_http_identity_saml_response(r);

    case ngx_http_identity_saml_taking:

        if (ctx->redis_error) {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        if (!ctx->found) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "identity: unknown, expired or used RelayState");
            return NGX_HTTP_BAD_REQUEST;
        }

        ctx->provider = ngx_http_identity_saml_here(r, &ctx->login.provider);

        if (ctx->provider == NULL) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "identity: SAML response for provider \"%V\", "
                          "not used here", &ctx->login.provider);
            return NGX_HTTP_BAD_REQUEST;
        }

        /* without the request id it would be checked as unsolicited */

        request_id = ngx_http_identity_cstr(r->pool, &ctx->login.nonce);
        if (request_id == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_identity_saml_post_check(r, request_id);

    case ngx_http_identity_saml_checking:

        /*
         * An assertion is accepted once, until it would be refused anyway:
         * clock_skew past its NotOnOrAfter.
         */

        ctx->found = 0;

        if (ngx_http_identity_store_once(r, &ctx->provider->issuer,
                                         &ctx->code,
                                         ctx->session.expires_at
                                         + ctx->provider->leeway
                                         - ngx_time() + 1)
            != NGX_OK)
        {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        ctx->state = ngx_http_identity_saml_once;
        return NGX_AGAIN;

    case ngx_http_identity_saml_once:

        if (ctx->redis_error) {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        if (!ctx->found) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "identity: replayed SAML assertion \"%V\"",
                          &ctx->code);
            return NGX_HTTP_FORBIDDEN;
        }

        /*
         * The claims gate before anything of the assertion is stored: the
         * verified login waits in Redis for the finish step
         */

        imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

        rc = ngx_http_identity_claims_sanitize(r->connection->log, r->pool,
                                               &ctx->claims,
                                               imcf->claims_kept);
        if (rc == NGX_DECLINED) {
            return NGX_HTTP_FORBIDDEN;
        }

        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_http_identity_saml_authorized(r, ctx->provider,
                                               &ctx->claims.groups);
        if (rc != NGX_OK) {
            return rc;
        }

        /* ctx->token: the one-time key of the verified login */

        if (ngx_http_identity_random(r->pool, 32, &ctx->token) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->found = 0;

        if (ngx_http_identity_verified_save(r, &ctx->token, &ctx->state_param)
            != NGX_OK)
        {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        ctx->state = ngx_http_identity_saml_parking;
        return NGX_AGAIN;

    case ngx_http_identity_saml_parking:

        if (ctx->redis_error || !ctx->found) {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        if (ngx_http_identity_saml_finish_url(r, &ctx->token, &location)
            != NGX_OK
            || ngx_http_identity_set_location(r, &location) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_HTTP_SEE_OTHER;

    default:
        return ctx->status ? ctx->status : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


/* {identity_public_url}{identity_path}saml/finish?k=KEY */

static ngx_int_t
ngx_http_identity_saml_finish_url(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *url)
{
    ngx_http_identity_srv_conf_t  *iscf;

    iscf = ngx_http_get_module_srv_conf(r, ngx_http_identity_module);

    url->data = ngx_pnalloc(r->pool, iscf->public_url.len + iscf->path.len
                                     + sizeof("saml/finish?k=") - 1
                                     + key->len);
    if (url->data == NULL) {
        return NGX_ERROR;
    }

    url->len = ngx_sprintf(url->data, "%V%Vsaml/finish?k=%V",
                           &iscf->public_url, &iscf->path, key)
               - url->data;

    return NGX_OK;
}


/*
 * {identity_path}saml/finish?k=KEY: the verified login the ACS kept under
 * KEY, taken once; a solicited one only in the browser whose state cookie
 * holds its RelayState.  NGX_OK then, for login.c to make the session.
 */

static ngx_int_t
ngx_http_identity_saml_finish(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      key, entity, acs;
    ngx_http_identity_ctx_t       *ctx;
    ngx_http_identity_srv_conf_t  *iscf;

    ctx = ngx_http_identity_get_ctx(r);

    switch (ctx->state) {

    case ngx_http_identity_saml_start:

        if (r->method != NGX_HTTP_GET) {
            return NGX_HTTP_NOT_ALLOWED;
        }

        if (ngx_http_arg(r, (u_char *) "k", 1, &key) != NGX_OK
            || !ngx_http_identity_saml_is_token(&key))
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "identity: SAML finish without a valid key");
            return NGX_HTTP_BAD_REQUEST;
        }

        ctx->found = 0;

        if (ngx_http_identity_verified_take(r, &key) != NGX_OK) {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        ctx->state = ngx_http_identity_saml_taking;
        return NGX_AGAIN;

    case ngx_http_identity_saml_taking:

        if (ctx->redis_error) {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        if (!ctx->found) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "identity: unknown, expired or used SAML finish "
                          "key");
            return NGX_HTTP_BAD_REQUEST;
        }

        ctx->provider = ngx_http_identity_saml_here(r, &ctx->login.provider);

        if (ctx->provider == NULL) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "identity: SAML login of provider \"%V\", "
                          "not used here", &ctx->login.provider);
            return NGX_HTTP_BAD_REQUEST;
        }

        iscf = ngx_http_get_module_srv_conf(r, ngx_http_identity_module);

        if (ngx_http_identity_saml_urls(r->pool, ctx->provider,
                                        &iscf->public_url, &iscf->path,
                                        &entity, &acs)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ngx_http_identity_saml_differ(&ctx->login.redirect_uri,
                                          (char *) acs.data))
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "identity: SAML login verified at another SP, "
                          "with ACS URL \"%V\"", &ctx->login.redirect_uri);
            return NGX_HTTP_BAD_REQUEST;
        }

        /* ctx->state_param: the hash of the RelayState, empty if unsolicited */

        if (ctx->state_param.len) {
            rc = ngx_http_identity_saml_bound(r, &ctx->state_param, 0);
            if (rc != NGX_OK) {
                return rc;
            }
        }

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "identity: SAML login of provider \"%V\" verified",
                       &ctx->provider->name);

        return NGX_OK;

    default:
        return ctx->status ? ctx->status : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


/*
 * Whether this browser's state cookie holds the RelayState whose SHA-256
 * hex is "hash": NGX_OK, else an HTTP status.  With "missing_ok" (at the
 * ACS, where browsers send no state cookie) a missing cookie answers
 * NGX_DECLINED; one that names another login is refused at once.
 */

static ngx_int_t
ngx_http_identity_saml_bound(ngx_http_request_t *r, ngx_str_t *hash,
    ngx_uint_t missing_ok)
{
    ngx_int_t  rc;
    ngx_str_t  name, domain, cookie, h;
    u_char     buf[NGX_HTTP_IDENTITY_SHA256_HEX_LEN];

    if (ngx_http_identity_state_cookie(r, &name, &domain) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_identity_cookie_get(r, &name, &cookie);

    if (rc == NGX_HTTP_BAD_REQUEST) {
        return rc;
    }

    if (rc == NGX_DECLINED && missing_ok) {
        return NGX_DECLINED;
    }

    if (rc == NGX_OK) {
        ngx_http_identity_sha256_hex(&cookie, buf);
        h.data = buf;
        h.len = NGX_HTTP_IDENTITY_SHA256_HEX_LEN;

        if (ngx_http_identity_secure_equal(&h, hash)) {
            return NGX_OK;
        }
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "identity: state does not match this browser's");

    return NGX_HTTP_BAD_REQUEST;
}


/* a token of ngx_http_identity_random(32): 43 base64url characters */

static ngx_uint_t
ngx_http_identity_saml_is_token(ngx_str_t *s)
{
    u_char  *p, *last;

    if (s->len != NGX_HTTP_IDENTITY_TOKEN_LEN) {
        return 0;
    }

    last = s->data + s->len;

    for (p = s->data; p < last; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')
              || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * The POSTed form: a RelayState that names a pending login (not another
 * one than this browser's state cookie, if it sent one) is solicited;
 * none, and the response is unsolicited (IdP-initiated).
 */

static ngx_int_t
ngx_http_identity_saml_response(ngx_http_request_t *r)
{
    u_char                        *xml;
    ngx_int_t                      rc;
    ngx_str_t                      body, response, relay, raw;
    ngx_http_identity_ctx_t       *ctx;
    ngx_http_identity_loc_conf_t  *ilcf;

    ctx = ngx_http_identity_get_ctx(r);
    ilcf = ngx_http_get_module_loc_conf(r, ngx_http_identity_module);

    rc = ngx_http_identity_body(r, NGX_HTTP_IDENTITY_SAML_RESPONSE_MAX, &body);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: SAML response without a usable body");
        return rc == NGX_DECLINED ? NGX_HTTP_REQUEST_ENTITY_TOO_LARGE
                                  : NGX_HTTP_BAD_REQUEST;
    }

    if (ngx_http_identity_form_arg(r->pool, &body, "SAMLResponse", &response)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: POST without SAMLResponse");
        return NGX_HTTP_BAD_REQUEST;
    }

    /* SAML messages have no DTD: one is an entity-expansion attempt */

    xml = ngx_pnalloc(r->pool, ngx_base64_decoded_length(response.len));
    if (xml == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    raw.data = xml;

    if (ngx_decode_base64(&raw, &response) != NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: SAMLResponse is not base64");
        return NGX_HTTP_BAD_REQUEST;
    }

    if (ngx_strlcasestrn(raw.data, raw.data + raw.len,
                         (u_char *) "<!DOCTYPE", 9 - 1)
        || ngx_strlcasestrn(raw.data, raw.data + raw.len,
                            (u_char *) "<!ENTITY", 8 - 1))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: SAMLResponse with a DOCTYPE");
        return NGX_HTTP_BAD_REQUEST;
    }

    ctx->code = response;

    ctx->login.cookie_name = ilcf->cookie_name;
    ctx->login.cookie_domain = ilcf->cookie_domain;

    rc = ngx_http_identity_form_arg(r->pool, &body, "RelayState", &relay);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_DECLINED) {
        ngx_str_null(&relay);
    }

    if (relay.len == NGX_HTTP_IDENTITY_TOKEN_LEN) {

        /* ctx->state_param: the RelayState's hash, for the finish step */

        ctx->state_param.data = ngx_pnalloc(r->pool,
                                            NGX_HTTP_IDENTITY_SHA256_HEX_LEN);
        if (ctx->state_param.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_identity_sha256_hex(&relay, ctx->state_param.data);
        ctx->state_param.len = NGX_HTTP_IDENTITY_SHA256_HEX_LEN;

        rc = ngx_http_identity_saml_bound(r, &ctx->state_param, 1);

        if (rc != NGX_OK && rc != NGX_DECLINED) {
            return rc;
        }

        ctx->found = 0;

        if (ngx_http_identity_login_take(r, &relay) != NGX_OK) {
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        ctx->state = ngx_http_identity_saml_taking;
        return NGX_AGAIN;
    }

    /* unsolicited: only where allow_idp_initiated is on */

    ngx_str_null(&ctx->state_param);

    ctx->provider = ngx_http_identity_saml_provider(r, 1);

    if (ctx->provider == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: unsolicited SAML response refused");
        return NGX_HTTP_FORBIDDEN;
    }

    ctx->login.provider = ctx->provider->name;
    ctx->login.idle_timeout = ilcf->idle_timeout;
    ctx->login.max_duration = ilcf->max_duration;
    ngx_str_set(&ctx->login.return_to, "/");

    /* a RelayState path: the same check as every return target */

    if (ngx_http_identity_local_path(&relay) == NGX_OK) {
        ctx->login.return_to = relay;
    }

    return ngx_http_identity_saml_post_check(r, NULL);
}


static ngx_int_t
ngx_http_identity_saml_post_check(ngx_http_request_t *r, char *request_id)
{
    ngx_int_t                       rc;
    ngx_http_identity_ctx_t        *ctx;
    ngx_http_identity_saml_task_t  *t;

    ctx = ngx_http_identity_get_ctx(r);

    t = ngx_pcalloc(r->pool, sizeof(ngx_http_identity_saml_task_t));
    if (t == NULL || ngx_http_identity_saml_sp(r, ctx->provider, t) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * A solicited response answers what the AuthnRequest said, and that
     * must be this SP: servers with other public URLs may share the
     * provider (and Redis), and the IdP may admit a user to one SP only.
     */

    if (request_id
        && (ngx_http_identity_saml_differ(&ctx->login.redirect_uri,
                                          t->acs_url)
            || ngx_http_identity_saml_differ(&ctx->login.sp_entity_id,
                                             t->entity_id)))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: SAML login started for another SP, with "
                      "ACS URL \"%V\"", &ctx->login.redirect_uri);
        return NGX_HTTP_BAD_REQUEST;
    }

    /* the verified login is finished only where it was verified */

    ctx->login.redirect_uri.data = (u_char *) t->acs_url;
    ctx->login.redirect_uri.len = ngx_strlen(t->acs_url);

    t->request_id = request_id;
    t->response = (char *) ctx->code.data;

    rc = ngx_http_identity_saml_post(r, ngx_http_identity_saml_check_run,
                                     ngx_http_identity_saml_check_done, t);
    if (rc != NGX_OK) {
        return rc == NGX_DECLINED ? NGX_HTTP_SERVICE_UNAVAILABLE
                                  : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->state = ngx_http_identity_saml_checking;

    return NGX_AGAIN;
}


static void
ngx_http_identity_saml_check_done(ngx_http_request_t *r, void *data)
{
    ngx_http_identity_saml_task_t *t = data;

    ngx_uint_t                i;
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    ngx_http_identity_saml_adopt(r, t);

    if (t->status == 0
        && (ngx_http_identity_pool_str(r->pool, t->attrs[0] ? t->attrs[0]
                                                            : t->name_id,
                                       &ctx->claims.provider_user_id)
            != NGX_OK
            || ngx_http_identity_pool_str(r->pool, t->attrs[1],
                                          &ctx->claims.email) != NGX_OK
            || ngx_http_identity_pool_str(r->pool, t->attrs[2],
                                          &ctx->claims.name) != NGX_OK
            || ngx_http_identity_pool_str(r->pool, t->attrs[3],
                                          &ctx->claims.username) != NGX_OK
            || ngx_http_identity_pool_str(r->pool, t->attrs[4],
                                          &ctx->claims.groups) != NGX_OK
            || ngx_http_identity_pool_str(r->pool, t->assertion_id,
                                          &ctx->code) != NGX_OK))
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR, "out of memory");
    }

    /* the IdP's NameID is its session's key for single logout */

    ngx_str_null(&ctx->claims.sid);
    ctx->session.expires_at = t->not_on_or_after;

    free(t->name_id);
    free(t->assertion_id);

    for (i = 0; i < 5; i++) {
        free(t->attrs[i]);
    }

    ngx_http_identity_saml_task_end(r, t);
}


/*
 * The end of a lasso task: a failure is logged and puts the login in the
 * failed state, then the waiting request runs on.
 */

static void
ngx_http_identity_saml_task_end(ngx_http_request_t *r,
    ngx_http_identity_saml_task_t *t)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    if (t->status) {
        ngx_log_error(t->level, r->connection->log, 0,
                      "identity: provider \"%V\": %s", &ctx->provider->name,
                      t->error);

        /* one [error] line per failure: the error page's is then at info */

        ctx->told = (t->level <= NGX_LOG_ERR);
        ctx->status = t->status;
        ctx->state = ngx_http_identity_saml_failed;
    }

    ctx->resume(r);
}


/* authorized_groups: one of the user's groups must be among them */

static ngx_int_t
ngx_http_identity_saml_authorized(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_str_t *groups)
{
    u_char      *p, *last, *nl;
    ngx_str_t   *g;
    ngx_uint_t   i;

    if (pr->authorized_groups == NULL) {
        return NGX_OK;
    }

    g = pr->authorized_groups->elts;
    p = groups->data;
    last = p + groups->len;

    while (p && p < last) {
        nl = ngx_strlchr(p, last, '\n');
        if (nl == NULL) {
            nl = last;
        }

        for (i = 0; i < pr->authorized_groups->nelts; i++) {
            if ((size_t) (nl - p) == g[i].len
                && ngx_strncmp(p, g[i].data, g[i].len) == 0)
            {
                return NGX_OK;
            }
        }

        p = nl + 1;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "identity: \"%V\" is in none of the authorized groups of "
                  "\"%V\"",
                  ngx_http_identity_claims_loggable(
                      &ngx_http_identity_get_ctx(r)->claims.provider_user_id),
                  &pr->name);

    return NGX_HTTP_FORBIDDEN;
}
