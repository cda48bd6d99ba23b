
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
 * its caller is checked here: Destination, Recipient, Audience, the time
 * conditions, InResponseTo and the single assertion.  All XML and signature
 * work runs in the thread pool, with a LassoServer built for each task, so
 * that no lasso object is shared between threads.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <lasso/lasso.h>
#include <lasso/xml/saml-2.0/samlp2_authn_request.h>
#include <lasso/xml/saml-2.0/samlp2_name_id_policy.h>
#include <lasso/xml/saml-2.0/samlp2_response.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <lasso/xml/saml-2.0/saml2_attribute.h>
#include <lasso/xml/saml-2.0/saml2_attribute_statement.h>
#include <lasso/xml/saml-2.0/saml2_attribute_value.h>
#include <lasso/xml/saml-2.0/saml2_audience_restriction.h>
#include <lasso/xml/saml-2.0/saml2_name_id.h>
#include <lasso/xml/saml-2.0/saml2_strings.h>
#include <lasso/xml/saml-2.0/saml2_conditions.h>
#include <lasso/xml/saml-2.0/saml2_subject_confirmation.h>
#include <lasso/xml/saml-2.0/saml2_subject_confirmation_data.h>

#include "ngx_http_identity_module.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_cookie.h"
#include "ngx_http_identity_store.h"
#include "ngx_http_identity_task.h"
#include "ngx_http_identity_body.h"
#include "ngx_http_identity_fetch.h"
#include "ngx_http_identity_claims.h"
#include "ngx_http_identity_protocol.h"
#include "ngx_http_identity_saml.h"


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


/* what a thread needs and produces; strings out are malloc()ed */

typedef struct {
    ngx_http_identity_provider_t   *provider;
    char                           *sp_metadata;
    char                           *entity_id;
    char                           *acs_url;
    char                           *relay_state;
    char                           *response;        /* base64 */
    char                           *request_id;      /* expected, or NULL */

    char                           *url;             /* AuthnRequest */
    char                           *id;              /* its ID */

    char                           *name_id;
    char                           *attrs[5];        /* id, email, name,
                                                        username, groups */
    char                           *assertion_id;
    time_t                          not_on_or_after;

    char                           *idp_metadata;    /* in use */
    char                           *metadata_url;    /* to refresh from */
    char                           *new_metadata;    /* refreshed */
    char                            refresh_error[NGX_HTTP_IDENTITY_ERRLEN];

    ngx_int_t                       status;
    ngx_uint_t                      level;
    char                            error[NGX_HTTP_IDENTITY_ERRLEN];
} ngx_http_identity_saml_task_t;


/* the IdP metadata last refreshed from idp_metadata_url, per worker */

typedef struct {
    char                           *metadata;
    time_t                          fetched;
    time_t                          attempted;
} ngx_http_identity_saml_cache_t;


#define NGX_HTTP_IDENTITY_SAML_RETRY  10     /* s between failed refreshes */


static ngx_int_t ngx_http_identity_saml_init(ngx_log_t *log);
static char *ngx_http_identity_saml_conf(ngx_conf_t *cf,
    ngx_http_identity_provider_t *pr);
static ngx_int_t ngx_http_identity_saml_init_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_identity_saml_login(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_saml_acs(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_saml_finish(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_saml_metadata(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_saml_sp(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_http_identity_saml_task_t *t);
static ngx_int_t ngx_http_identity_saml_post(ngx_http_request_t *r,
    ngx_http_identity_task_run_pt run, ngx_http_identity_task_done_pt done,
    ngx_http_identity_saml_task_t *t);
static void ngx_http_identity_saml_adopt(ngx_http_request_t *r,
    ngx_http_identity_saml_task_t *t);
static char *ngx_http_identity_saml_refresh(ngx_http_identity_saml_task_t *t);
static ngx_int_t ngx_http_identity_saml_urls(ngx_pool_t *pool,
    ngx_http_identity_provider_t *pr, ngx_str_t *base, ngx_str_t *path,
    ngx_str_t *entity, ngx_str_t *acs);
static ngx_int_t ngx_http_identity_saml_metadata_xml(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_str_t *entity_id, ngx_str_t *base,
    ngx_str_t *xml);
static LassoServer *ngx_http_identity_saml_server(
    ngx_http_identity_saml_task_t *t);
static void ngx_http_identity_saml_authn_run(void *data);
static void ngx_http_identity_saml_authn_done(ngx_http_request_t *r,
    void *data);
static ngx_int_t ngx_http_identity_saml_finish_url(ngx_http_request_t *r,
    ngx_str_t *key, ngx_str_t *url);
static ngx_int_t ngx_http_identity_saml_bound(ngx_http_request_t *r,
    ngx_str_t *hash, ngx_uint_t missing_ok);
static ngx_uint_t ngx_http_identity_saml_is_token(ngx_str_t *s);
static ngx_int_t ngx_http_identity_saml_response(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_saml_post_check(ngx_http_request_t *r,
    char *request_id);
static void ngx_http_identity_saml_check_run(void *data);
static ngx_int_t ngx_http_identity_saml_check(
    ngx_http_identity_saml_task_t *t, LassoLogin *login);
static void ngx_http_identity_saml_attributes(
    ngx_http_identity_saml_task_t *t, LassoSaml2Assertion *assertion);
static LassoSaml2Attribute *ngx_http_identity_saml_attribute(
    LassoSaml2Assertion *assertion, char *name);
static void ngx_http_identity_saml_values(ngx_http_identity_saml_task_t *t,
    ngx_uint_t i, LassoSaml2Attribute *attr);
static char *ngx_http_identity_saml_text(LassoSaml2AttributeValue *value);
static void ngx_http_identity_saml_check_done(ngx_http_request_t *r,
    void *data);
static void ngx_http_identity_saml_task_free(void *data);
static void ngx_http_identity_saml_caches_free(void *data);
static ngx_int_t ngx_http_identity_saml_authorized(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_str_t *groups);
static time_t ngx_http_identity_saml_time(const char *s);
static void ngx_http_identity_saml_fail(ngx_http_identity_saml_task_t *t,
    ngx_int_t status, ngx_uint_t level, const char *fmt, ...);
static void ngx_http_identity_saml_log(const gchar *domain,
    GLogLevelFlags level, const gchar *message, gpointer data);
static char *ngx_http_identity_saml_cstr(ngx_pool_t *pool, ngx_str_t *s);
static ngx_int_t ngx_http_identity_saml_str(ngx_pool_t *pool, char *s,
    ngx_str_t *out);
static ngx_http_identity_provider_t *ngx_http_identity_saml_provider(
    ngx_http_request_t *r, ngx_uint_t idp_initiated);
static ngx_uint_t ngx_http_identity_saml_differ(ngx_str_t *kept, char *url);
static ngx_http_identity_provider_t *ngx_http_identity_saml_here(
    ngx_http_request_t *r, ngx_str_t *name);


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


/* lasso and libxml2 are set up once, in the master, before any thread */

static ngx_int_t
ngx_http_identity_saml_init(ngx_log_t *log)
{
    static ngx_uint_t  done;

    if (done) {
        return NGX_OK;
    }

    if (lasso_init() != 0) {
        ngx_log_error(NGX_LOG_EMERG, log, 0, "identity: lasso_init() failed");
        return NGX_ERROR;
    }

    /* lasso warns on every refused message: the module logs those itself */

    g_log_set_handler("Lasso", G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL
                      | G_LOG_FLAG_RECURSION,
                      ngx_http_identity_saml_log, NULL);

    done = 1;

    return NGX_OK;
}


static void
ngx_http_identity_saml_log(const gchar *domain, GLogLevelFlags level,
    const gchar *message, gpointer data)
{
    return;
}


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

        t->relay_state = ngx_http_identity_saml_cstr(r->pool,
                                                     &ctx->state_param);
        if (t->relay_state == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ngx_http_identity_saml_post(r, ngx_http_identity_saml_authn_run,
                                        ngx_http_identity_saml_authn_done, t)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
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
ngx_http_identity_saml_authn_run(void *data)
{
    ngx_http_identity_saml_task_t *t = data;

    int                        rc;
    LassoLogin                *login;
    LassoServer               *server;
    LassoSamlp2AuthnRequest   *request;
    LassoSamlp2NameIDPolicy   *policy;
    ngx_http_identity_provider_t  *pr;

    pr = t->provider;
    login = NULL;

    server = ngx_http_identity_saml_server(t);
    if (server == NULL) {
        return;
    }

    login = lasso_login_new(server);
    if (login == NULL) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR, "lasso_login_new() failed");
        goto done;
    }

    rc = lasso_login_init_authn_request(login, (char *) pr->issuer.data,
                                        LASSO_HTTP_METHOD_REDIRECT);
    if (rc != 0) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR, "AuthnRequest: %s",
                                    lasso_strerror(rc));
        goto done;
    }

    request = LASSO_SAMLP2_AUTHN_REQUEST(LASSO_PROFILE(login)->request);

    request->ForceAuthn = pr->force_authn ? TRUE : FALSE;
    request->IsPassive = FALSE;

    if (request->NameIDPolicy == NULL) {
        request->NameIDPolicy = LASSO_SAMLP2_NAME_ID_POLICY(
                                             lasso_samlp2_name_id_policy_new());
    }

    policy = request->NameIDPolicy;
    g_free(policy->Format);
    policy->Format = g_strdup((char *) pr->nameid_format.data);
    policy->AllowCreate = TRUE;

    g_free(request->ProtocolBinding);
    request->ProtocolBinding = g_strdup(LASSO_SAML2_METADATA_BINDING_POST);
    g_free(request->AssertionConsumerServiceURL);
    request->AssertionConsumerServiceURL = g_strdup(t->acs_url);

    g_free(LASSO_PROFILE(login)->msg_relayState);
    LASSO_PROFILE(login)->msg_relayState = g_strdup(t->relay_state);

    rc = lasso_login_build_authn_request_msg(login);
    if (rc != 0 || LASSO_PROFILE(login)->msg_url == NULL) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR, "AuthnRequest: %s",
                                    lasso_strerror(rc));
        goto done;
    }

    t->url = strdup(LASSO_PROFILE(login)->msg_url);
    t->id = strdup(LASSO_SAMLP2_REQUEST_ABSTRACT(request)->ID);

    if (t->url == NULL || t->id == NULL) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR, "out of memory");
    }

done:

    if (login) {
        lasso_login_destroy(login);
    }

    lasso_server_destroy(server);
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
        && (ngx_http_identity_saml_str(r->pool, t->url, &ctx->redirect_uri)
            != NGX_OK
            || ngx_http_identity_saml_str(r->pool, t->id, &ctx->login.nonce)
               != NGX_OK))
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR, "out of memory");
    }

    free(t->url);
    free(t->id);

    if (t->status) {
        ngx_log_error(t->level, r->connection->log, 0,
                      "identity: provider \"%V\": %s", &ctx->provider->name,
                      t->error);
        ctx->status = t->status;
        ctx->state = ngx_http_identity_saml_failed;
    }

    ctx->resume(r);
}


/* the SP's metadata, for the IdP to be configured from */

static ngx_int_t
ngx_http_identity_saml_metadata(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_buf_t                      *b;
    ngx_str_t                       xml;
    ngx_chain_t                     out;
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
    b->last_buf = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = xml.len;
    ngx_str_set(&r->headers_out.content_type, "application/samlmetadata+xml");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
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

        request_id = ngx_http_identity_saml_cstr(r->pool, &ctx->login.nonce);
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

    if (ngx_http_identity_form_arg(r, &body, "SAMLResponse", &response)
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

    rc = ngx_http_identity_form_arg(r, &body, "RelayState", &relay);

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

    if (ngx_http_identity_saml_post(r, ngx_http_identity_saml_check_run,
                                    ngx_http_identity_saml_check_done, t)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->state = ngx_http_identity_saml_checking;

    return NGX_AGAIN;
}


static void
ngx_http_identity_saml_check_run(void *data)
{
    ngx_http_identity_saml_task_t *t = data;

    int           rc;
    ngx_int_t     status;
    LassoLogin   *login;
    LassoServer  *server;

    server = ngx_http_identity_saml_server(t);
    if (server == NULL) {
        return;
    }

    login = lasso_login_new(server);
    if (login == NULL) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR, "lasso_login_new() failed");
        lasso_server_destroy(server);
        return;
    }

    /*
     * Parses, and verifies the signature of the response or assertion.
     * What is not an HTTP-POST SAML message at all lasso 2.8 reports as an
     * unsupported profile.
     */

    rc = lasso_login_process_authn_response_msg(login, t->response);

    if (rc != 0) {
        status = (rc == LASSO_PROFILE_ERROR_INVALID_MSG
                  || rc == LASSO_PROFILE_ERROR_UNSUPPORTED_PROFILE)
                 ? NGX_HTTP_BAD_REQUEST : NGX_HTTP_FORBIDDEN;

        ngx_http_identity_saml_fail(t, status, NGX_LOG_INFO,
                                    "SAML response refused: %s",
                                    lasso_strerror(rc));

    } else {
        (void) ngx_http_identity_saml_check(t, login);
    }

    lasso_login_destroy(login);
    lasso_server_destroy(server);
}


/* what lasso leaves to its caller (SAML 2.0 profiles, 4.1.4.3) */

static ngx_int_t
ngx_http_identity_saml_check(ngx_http_identity_saml_task_t *t,
    LassoLogin *login)
{
    time_t                              now, skew, nb, noa;
    GList                              *l;
    ngx_uint_t                          audience;
    LassoSamlp2Response                *response;
    LassoSaml2Assertion                *assertion;
    LassoSaml2Conditions               *conditions;
    LassoSamlp2StatusResponse          *status;
    LassoSaml2SubjectConfirmation      *sc;
    LassoSaml2SubjectConfirmationData  *scd;
    LassoSaml2AudienceRestriction      *ar;

    now = time(NULL);
    skew = t->provider->leeway;

    response = LASSO_SAMLP2_RESPONSE(LASSO_PROFILE(login)->response);
    status = LASSO_SAMLP2_STATUS_RESPONSE(response);

    if (status->Destination == NULL
        || strcmp(status->Destination, t->acs_url) != 0)
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML response Destination \"%s\" is "
                                    "not \"%s\"",
                                    status->Destination
                                    ? status->Destination : "",
                                    t->acs_url);
        return NGX_ERROR;
    }

    if (g_list_length(response->Assertion) != 1
        || !LASSO_IS_SAML2_ASSERTION(response->Assertion->data))
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML response must carry exactly one "
                                    "assertion");
        return NGX_ERROR;
    }

    assertion = response->Assertion->data;

    /* InResponseTo: our pending request, or nothing if unsolicited */

    if (t->request_id
        ? (status->InResponseTo == NULL
           || strcmp(status->InResponseTo, t->request_id) != 0)
        : (status->InResponseTo != NULL))
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML response InResponseTo does not "
                                    "match the request");
        return NGX_ERROR;
    }

    if (assertion->Subject == NULL || assertion->Subject->NameID == NULL
        || assertion->Subject->NameID->content == NULL
        || assertion->Subject->NameID->content[0] == '\0')
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML assertion without a NameID");
        return NGX_ERROR;
    }

    sc = assertion->Subject->SubjectConfirmation;
    scd = sc ? sc->SubjectConfirmationData : NULL;

    if (sc == NULL || sc->Method == NULL
        || strcmp(sc->Method, LASSO_SAML2_CONFIRMATION_METHOD_BEARER) != 0
        || scd == NULL || scd->Recipient == NULL
        || strcmp(scd->Recipient, t->acs_url) != 0)
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML assertion is not a bearer "
                                    "assertion for \"%s\"", t->acs_url);
        return NGX_ERROR;
    }

    if (t->request_id
        ? (scd->InResponseTo == NULL
           || strcmp(scd->InResponseTo, t->request_id) != 0)
        : (scd->InResponseTo != NULL))
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML subject confirmation InResponseTo "
                                    "does not match the request");
        return NGX_ERROR;
    }

    noa = ngx_http_identity_saml_time(scd->NotOnOrAfter);
    nb = scd->NotBefore ? ngx_http_identity_saml_time(scd->NotBefore) : 0;

    if (noa == 0 || noa + skew <= now || (scd->NotBefore && nb == 0)
        || nb - skew > now)
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML subject confirmation is not "
                                    "current");
        return NGX_ERROR;
    }

    t->not_on_or_after = noa;

    conditions = assertion->Conditions;

    if (conditions == NULL) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML assertion without conditions");
        return NGX_ERROR;
    }

    nb = conditions->NotBefore
         ? ngx_http_identity_saml_time(conditions->NotBefore) : 0;
    noa = conditions->NotOnOrAfter
          ? ngx_http_identity_saml_time(conditions->NotOnOrAfter) : 0;

    if ((conditions->NotBefore && (nb == 0 || nb - skew > now))
        || (conditions->NotOnOrAfter && (noa == 0 || noa + skew <= now)))
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML assertion is not current");
        return NGX_ERROR;
    }

    if (noa && noa < t->not_on_or_after) {
        t->not_on_or_after = noa;
    }

    /* every AudienceRestriction must name this SP, and there is one */

    audience = 0;

    for (l = conditions->AudienceRestriction; l; l = l->next) {
        ar = l->data;

        if (!LASSO_IS_SAML2_AUDIENCE_RESTRICTION(ar) || ar->Audience == NULL
            || strcmp(ar->Audience, t->entity_id) != 0)
        {
            audience = 0;
            break;
        }

        audience = 1;
    }

    if (!audience) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML assertion is not for audience "
                                    "\"%s\"", t->entity_id);
        return NGX_ERROR;
    }

    if (assertion->ID == NULL || assertion->ID[0] == '\0') {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML assertion without an ID");
        return NGX_ERROR;
    }

    t->assertion_id = strdup(assertion->ID);
    t->name_id = strdup(assertion->Subject->NameID->content);

    if (t->assertion_id == NULL || t->name_id == NULL) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR, "out of memory");
        return NGX_ERROR;
    }

    ngx_http_identity_saml_attributes(t, assertion);

    return NGX_OK;
}


/*
 * The attribute names looked for, per key, in this order; the first present
 * wins.  attribute_map replaces a key's list by its one name.  They are the
 * names SimpleSAMLphp, Shibboleth, ADFS, Entra ID and Okta release: LDAP
 * names, their OIDs (attrname-format:uri) and the WS-Federation claims.
 */

static char  *ngx_http_identity_saml_email_names[] = {
    "mail",
    "email",
    "emailAddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    NULL
};

static char  *ngx_http_identity_saml_name_names[] = {
    "displayName",
    "cn",
    "urn:oid:2.16.840.1.113730.3.1.241",
    "urn:oid:2.5.4.3",
    "http://schemas.microsoft.com/identity/claims/displayname",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    NULL
};

static char  *ngx_http_identity_saml_username_names[] = {
    "uid",
    "urn:oid:0.9.2342.19200300.100.1.1",
    "eduPersonPrincipalName",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.6",
    NULL
};

static char  *ngx_http_identity_saml_groups_names[] = {
    "memberOf",
    "groups",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.1",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    "http://schemas.xmlsoap.org/claims/Group",
    NULL
};

static char **ngx_http_identity_saml_default_names[5] = {
    NULL,                                       /* id: the NameID */
    ngx_http_identity_saml_email_names,
    ngx_http_identity_saml_name_names,
    ngx_http_identity_saml_username_names,
    ngx_http_identity_saml_groups_names
};


/* the mapped attributes: one may give several keys, as id=uid username=uid */

static void
ngx_http_identity_saml_attributes(ngx_http_identity_saml_task_t *t,
    LassoSaml2Assertion *assertion)
{
    char                **names, *one[2];
    ngx_str_t            *map;
    ngx_uint_t            i, j;
    LassoSaml2Attribute  *attr;
    LassoSaml2NameID     *name_id;

    map = t->provider->attributes;

    for (i = 0; i < 5; i++) {

        if (map[i].len) {
            one[0] = (char *) map[i].data;
            one[1] = NULL;
            names = one;

        } else {
            names = ngx_http_identity_saml_default_names[i];
        }

        for (j = 0; names && names[j] && t->attrs[i] == NULL; j++) {
            attr = ngx_http_identity_saml_attribute(assertion, names[j]);

            if (attr) {
                ngx_http_identity_saml_values(t, i, attr);
            }
        }
    }

    /* an e-mail NameID is the e-mail when no attribute gives one */

    name_id = assertion->Subject->NameID;

    if (t->attrs[1] == NULL
        && name_id->Format
        && strcmp(name_id->Format, LASSO_SAML2_NAME_IDENTIFIER_FORMAT_EMAIL)
           == 0)
    {
        t->attrs[1] = strdup(t->name_id);
    }
}


static LassoSaml2Attribute *
ngx_http_identity_saml_attribute(LassoSaml2Assertion *assertion, char *name)
{
    GList                *s, *a;
    LassoSaml2Attribute  *attr;

    for (s = assertion->AttributeStatement; s; s = s->next) {
        if (!LASSO_IS_SAML2_ATTRIBUTE_STATEMENT(s->data)) {
            continue;
        }

        for (a = LASSO_SAML2_ATTRIBUTE_STATEMENT(s->data)->Attribute;
             a;
             a = a->next)
        {
            if (!LASSO_IS_SAML2_ATTRIBUTE(a->data)) {
                continue;
            }

            attr = a->data;

            if (attr->Name && strcmp(attr->Name, name) == 0) {
                return attr;
            }
        }
    }

    return NULL;
}


/*
 * The first value, or for groups (key 4) all of them joined by newlines;
 * empty values and values that are not text are skipped.
 */

static void
ngx_http_identity_saml_values(ngx_http_identity_saml_task_t *t, ngx_uint_t i,
    LassoSaml2Attribute *attr)
{
    char   *v, *joined;
    size_t  len;
    GList  *av;

    for (av = attr->AttributeValue; av; av = av->next) {
        if (!LASSO_IS_SAML2_ATTRIBUTE_VALUE(av->data)) {
            continue;
        }

        v = ngx_http_identity_saml_text(av->data);

        if (v == NULL) {
            continue;
        }

        /* a group with a newline would read as two: dropped, as in JSON */

        if (i == 4 && strchr(v, '\n')) {
            free(v);
            continue;
        }

        if (t->attrs[i] == NULL) {
            t->attrs[i] = v;

            if (i != 4) {
                return;
            }

            continue;
        }

        len = strlen(t->attrs[i]) + 1 + strlen(v) + 1;
        joined = malloc(len);

        if (joined) {
            snprintf(joined, len, "%s\n%s", t->attrs[i], v);
            free(t->attrs[i]);
            t->attrs[i] = joined;
        }

        free(v);
    }
}


/*
 * A value's whole text, malloc()ed, read from the XML lasso parsed: lasso
 * itself gives each text node of an AttributeValue apart, drops comments
 * and CDATA sections, so that "alice@example.org<!---->.evil.example" or
 * "<![CDATA[evil.]]>alice@example.org" (whose canonical form, and so
 * signature, is that of the whole) would arrive as a different value
 * (CVE-2017-11427).  Text and CDATA are joined, comments and processing
 * instructions skipped; a value with an element inside is no text value
 * at all: NULL.
 */

static char *
ngx_http_identity_saml_text(LassoSaml2AttributeValue *value)
{
    char     *v, *p;
    size_t    len;
    xmlNode  *xml, *n;

    xml = lasso_node_get_original_xmlnode(LASSO_NODE(value));

    if (xml == NULL) {
        return NULL;
    }

    len = 0;

    for (n = xml->children; n; n = n->next) {

        switch (n->type) {

        case XML_TEXT_NODE:
        case XML_CDATA_SECTION_NODE:
            len += n->content ? strlen((char *) n->content) : 0;
            break;

        case XML_COMMENT_NODE:
        case XML_PI_NODE:
            break;

        default:
            return NULL;
        }
    }

    if (len == 0) {
        return NULL;
    }

    v = malloc(len + 1);
    if (v == NULL) {
        return NULL;
    }

    p = v;

    for (n = xml->children; n; n = n->next) {
        if ((n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE)
            && n->content)
        {
            len = strlen((char *) n->content);
            memcpy(p, n->content, len);
            p += len;
        }
    }

    *p = '\0';

    return v;
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
        && (ngx_http_identity_saml_str(r->pool, t->attrs[0] ? t->attrs[0]
                                                            : t->name_id,
                                       &ctx->claims.provider_user_id)
            != NGX_OK
            || ngx_http_identity_saml_str(r->pool, t->attrs[1],
                                          &ctx->claims.email) != NGX_OK
            || ngx_http_identity_saml_str(r->pool, t->attrs[2],
                                          &ctx->claims.name) != NGX_OK
            || ngx_http_identity_saml_str(r->pool, t->attrs[3],
                                          &ctx->claims.username) != NGX_OK
            || ngx_http_identity_saml_str(r->pool, t->attrs[4],
                                          &ctx->claims.groups) != NGX_OK
            || ngx_http_identity_saml_str(r->pool, t->assertion_id,
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

    if (t->status) {
        ngx_log_error(t->level, r->connection->log, 0,
                      "identity: provider \"%V\": %s", &ctx->provider->name,
                      t->error);
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


/*
 * The SP's entity id, ACS URL and metadata, from configuration only: the
 * server's identity_public_url (which "nginx -t" requires where a SAML
 * provider is used) and sp_entity_id.  A Host header never enters them,
 * or a response made for another SP could be replayed here under its
 * name.
 */

static ngx_int_t
ngx_http_identity_saml_sp(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_http_identity_saml_task_t *t)
{
    ngx_str_t                      base, entity, acs, xml;
    ngx_http_identity_srv_conf_t  *iscf;

    iscf = ngx_http_get_module_srv_conf(r, ngx_http_identity_module);
    base = iscf->public_url;

    if (base.len == 0) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "identity: SAML provider \"%V\" without "
                      "\"identity_public_url\"", &pr->name);
        return NGX_ERROR;
    }

    if (ngx_http_identity_saml_urls(r->pool, pr, &base, &iscf->path, &entity,
                                    &acs)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    t->acs_url = (char *) acs.data;
    t->entity_id = (char *) entity.data;

    if (ngx_http_identity_saml_metadata_xml(r, pr, &entity, &base, &xml)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    t->provider = pr;
    t->sp_metadata = (char *) xml.data;

    return NGX_OK;
}


/*
 * entity id: sp_entity_id, else {base}{path}saml/metadata; ACS URL:
 * {base}{path}saml/acs.  Both NUL-terminated.
 */

static ngx_int_t
ngx_http_identity_saml_urls(ngx_pool_t *pool,
    ngx_http_identity_provider_t *pr, ngx_str_t *base, ngx_str_t *path,
    ngx_str_t *entity, ngx_str_t *acs)
{
    acs->data = ngx_pnalloc(pool, base->len + path->len + sizeof("saml/acs"));
    if (acs->data == NULL) {
        return NGX_ERROR;
    }

    acs->len = ngx_sprintf(acs->data, "%V%Vsaml/acs%Z", base, path)
               - acs->data - 1;

    if (pr->sp_entity_id.len) {
        entity->data = (u_char *) ngx_http_identity_saml_cstr(pool,
                                                            &pr->sp_entity_id);
        if (entity->data == NULL) {
            return NGX_ERROR;
        }

        entity->len = pr->sp_entity_id.len;

        return NGX_OK;
    }

    entity->data = ngx_pnalloc(pool, base->len + path->len
                                     + sizeof("saml/metadata"));
    if (entity->data == NULL) {
        return NGX_ERROR;
    }

    entity->len = ngx_sprintf(entity->data, "%V%Vsaml/metadata%Z", base, path)
                  - entity->data - 1;

    return NGX_OK;
}


/*
 * The SP metadata, NUL-terminated: in r->pool, or malloc()ed when r is NULL
 * (configuration).  Values are XML-escaped; the certificate is the PEM's
 * base64 body.
 */

static ngx_int_t
ngx_http_identity_saml_metadata_xml(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_str_t *entity_id, ngx_str_t *base,
    ngx_str_t *xml)
{
    u_char                        *p, *cert, *c, *end;
    size_t                         len, elen;
    ngx_str_t                      path;
    ngx_http_identity_srv_conf_t  *iscf;

    static char  tmpl_head[] =
        "<?xml version=\"1.0\"?>\n"
        "<md:EntityDescriptor"
        " xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\""
        " xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"";

    if (r) {
        iscf = ngx_http_get_module_srv_conf(r, ngx_http_identity_module);
        path = iscf->path;

    } else {
        ngx_str_set(&path, "/_identity/");
    }

    elen = 2 * (entity_id->len
                + ngx_escape_html(NULL, entity_id->data, entity_id->len)
                + base->len + ngx_escape_html(NULL, base->data, base->len));

    len = sizeof(tmpl_head) + 1024 + elen + 2 * path.len
          + pr->sp_cert.len + pr->nameid_format.len;

    p = r ? ngx_pnalloc(r->pool, len) : ngx_alloc(len, ngx_cycle->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    xml->data = p;

    p = ngx_cpymem(p, tmpl_head, sizeof(tmpl_head) - 1);
    p = (u_char *) ngx_escape_html(p, entity_id->data, entity_id->len);
    p = ngx_sprintf(p, "\">\n"
                    " <md:SPSSODescriptor AuthnRequestsSigned=\"true\""
                    " WantAssertionsSigned=\"false\""
                    " protocolSupportEnumeration="
                    "\"urn:oasis:names:tc:SAML:2.0:protocol\">\n"
                    "  <md:KeyDescriptor use=\"signing\"><ds:KeyInfo>"
                    "<ds:X509Data><ds:X509Certificate>");

    /* the certificate's base64, without the PEM armour */

    cert = pr->sp_cert.data;
    end = cert + pr->sp_cert.len;
    c = ngx_strlcasestrn(cert, end, (u_char *) "-----BEGIN CERTIFICATE-----",
                         27 - 1);

    if (c) {
        for (c += 27; c < end && *c != '-'; c++) {
            if (*c != '\r' && *c != '\n' && *c != ' ') {
                *p++ = *c;
            }
        }
    }

    p = ngx_sprintf(p, "</ds:X509Certificate></ds:X509Data></ds:KeyInfo>"
                    "</md:KeyDescriptor>\n"
                    "  <md:NameIDFormat>%V</md:NameIDFormat>\n"
                    "  <md:AssertionConsumerService index=\"0\""
                    " isDefault=\"true\""
                    " Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:"
                    "HTTP-POST\" Location=\"", &pr->nameid_format);
    p = (u_char *) ngx_escape_html(p, base->data, base->len);
    p = ngx_sprintf(p, "%Vsaml/acs\"/>\n"
                    " </md:SPSSODescriptor>\n"
                    "</md:EntityDescriptor>\n%Z", &path);

    xml->len = p - xml->data - 1;

    return NGX_OK;
}


static LassoServer *
ngx_http_identity_saml_server(ngx_http_identity_saml_task_t *t)
{
    LassoServer                   *server;
    ngx_http_identity_provider_t  *pr;

    pr = t->provider;

    server = lasso_server_new_from_buffers(t->sp_metadata,
                                           (char *) pr->sp_key.data, NULL,
                                           (char *) pr->sp_cert.data);
    if (server == NULL) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR,
                                    "lasso refuses the SP metadata");
        return NULL;
    }

    /* lasso signs with RSA-SHA1 unless told otherwise */

    server->signature_method = LASSO_SIGNATURE_METHOD_RSA_SHA256;

    if (t->metadata_url) {
        t->new_metadata = ngx_http_identity_saml_refresh(t);

        if (t->new_metadata) {
            t->idp_metadata = t->new_metadata;
        }
    }

    if (lasso_server_add_provider_from_buffer(server,
                                              LASSO_PROVIDER_ROLE_IDP,
                                              t->idp_metadata, NULL, NULL)
        != 0)
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR,
                                    "lasso refuses the IdP metadata");
        lasso_server_destroy(server);
        return NULL;
    }

    return server;
}


/*
 * idp_metadata_url: the IdP's metadata fetched again, in the thread; it is
 * used only if lasso accepts it and it describes the same one IdP (its
 * entity id is the provider's issuer).  NULL keeps the previous metadata.
 */

static char *
ngx_http_identity_saml_refresh(ngx_http_identity_saml_task_t *t)
{
    char                          *md;
    gpointer                       key, value;
    ngx_uint_t                     same;
    LassoServer                   *check;
    GHashTableIter                 iter;
    ngx_http_identity_provider_t  *pr;

    pr = t->provider;

    md = ngx_http_identity_http_get(t->metadata_url, pr->http_timeout,
                                    t->refresh_error,
                                    NGX_HTTP_IDENTITY_ERRLEN);
    if (md == NULL) {
        ngx_http_identity_log_safe(t->refresh_error);
        return NULL;
    }

    same = 0;
    check = lasso_server_new_from_buffers(t->sp_metadata,
                                          (char *) pr->sp_key.data, NULL,
                                          (char *) pr->sp_cert.data);

    if (check
        && lasso_server_add_provider_from_buffer(check,
                                                 LASSO_PROVIDER_ROLE_IDP, md,
                                                 NULL, NULL)
           == 0
        && g_hash_table_size(check->providers) == 1)
    {
        g_hash_table_iter_init(&iter, check->providers);

        while (g_hash_table_iter_next(&iter, &key, &value)) {
            same = (ngx_strcmp(LASSO_PROVIDER(value)->ProviderID,
                               pr->issuer.data) == 0);
        }
    }

    if (check) {
        lasso_server_destroy(check);
    }

    if (!same) {
        snprintf(t->refresh_error, NGX_HTTP_IDENTITY_ERRLEN,
                 "\"%s\" is not metadata of \"%s\"", t->metadata_url,
                 (char *) pr->issuer.data);
        free(md);
        return NULL;
    }

    return md;
}


static ngx_array_t  ngx_http_identity_saml_caches;  /* per worker */


static ngx_int_t
ngx_http_identity_saml_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                      n;
    ngx_pool_cleanup_t             *cln;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_identity_module);
    if (imcf == NULL) {
        return NGX_OK;
    }

    n = imcf->providers.nelts;

    if (ngx_array_init(&ngx_http_identity_saml_caches, cycle->pool, n + 1,
                       sizeof(ngx_http_identity_saml_cache_t))
        != NGX_OK
        || ngx_array_push_n(&ngx_http_identity_saml_caches, n + 1) == NULL)
    {
        return NGX_ERROR;
    }

    ngx_memzero(ngx_http_identity_saml_caches.elts,
                (n + 1) * sizeof(ngx_http_identity_saml_cache_t));

    /* refreshed metadata is malloc()ed: freed as the worker exits */

    cln = ngx_pool_cleanup_add(cycle->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_identity_saml_caches_free;
    cln->data = &ngx_http_identity_saml_caches;

    return NGX_OK;
}


static void
ngx_http_identity_saml_caches_free(void *data)
{
    ngx_array_t *a = data;

    ngx_uint_t                       i;
    ngx_http_identity_saml_cache_t  *caches;

    caches = a->elts;

    for (i = 0; i < a->nelts; i++) {
        free(caches[i].metadata);
        caches[i].metadata = NULL;
    }
}


/*
 * Every task gets its own copy of the IdP metadata in use, and is told to
 * refresh it from idp_metadata_url when it is older than metadata_ttl.
 */

static ngx_int_t
ngx_http_identity_saml_post(ngx_http_request_t *r,
    ngx_http_identity_task_run_pt run, ngx_http_identity_task_done_pt done,
    ngx_http_identity_saml_task_t *t)
{
    time_t                           now;
    ngx_str_t                        md;
    ngx_http_identity_provider_t    *pr;
    ngx_http_identity_saml_cache_t  *cache;

    pr = t->provider;
    now = ngx_time();
    cache = ngx_http_identity_saml_caches.elts;
    cache = &cache[pr->index];

    if (cache->metadata) {
        md.data = (u_char *) cache->metadata;
        md.len = ngx_strlen(cache->metadata);

    } else {
        md = pr->idp_metadata;
    }

    t->idp_metadata = ngx_http_identity_saml_cstr(r->pool, &md);
    if (t->idp_metadata == NULL) {
        return NGX_ERROR;
    }

    if (pr->idp_metadata_url.len
        && now - cache->fetched >= pr->metadata_ttl
        && now - cache->attempted >= NGX_HTTP_IDENTITY_SAML_RETRY)
    {
        t->metadata_url = ngx_http_identity_saml_cstr(r->pool,
                                                      &pr->idp_metadata_url);
        if (t->metadata_url == NULL) {
            return NGX_ERROR;
        }

        cache->attempted = now;
    }

    return ngx_http_identity_task_post(r, run, done,
                                       ngx_http_identity_saml_task_free, t);
}


/* what the thread malloc()ed, when the client went away (task.c) */

static void
ngx_http_identity_saml_task_free(void *data)
{
    ngx_http_identity_saml_task_t *t = data;

    ngx_uint_t  i;

    free(t->url);
    free(t->id);
    free(t->name_id);
    free(t->assertion_id);
    free(t->new_metadata);

    for (i = 0; i < 5; i++) {
        free(t->attrs[i]);
    }
}


static void
ngx_http_identity_saml_adopt(ngx_http_request_t *r,
    ngx_http_identity_saml_task_t *t)
{
    ngx_http_identity_saml_cache_t  *cache;

    if (t->metadata_url == NULL) {
        return;
    }

    if (t->new_metadata == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "identity: provider \"%V\": IdP metadata not "
                      "refreshed, the previous is kept: %s",
                      &t->provider->name, t->refresh_error);
        return;
    }

    cache = ngx_http_identity_saml_caches.elts;
    cache = &cache[t->provider->index];

    free(cache->metadata);
    cache->metadata = t->new_metadata;
    cache->fetched = ngx_time();
    t->new_metadata = NULL;

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "identity: provider \"%V\": IdP metadata refreshed from "
                  "\"%V\"", &t->provider->name,
                  &t->provider->idp_metadata_url);
}


/* xs:dateTime in UTC, as SAML requires: 2026-11-28T02:33:10[.123]Z */

static time_t
ngx_http_identity_saml_time(const char *s)
{
    int        n;
    struct tm  tm;

    if (s == NULL) {
        return 0;
    }

    ngx_memzero(&tm, sizeof(struct tm));
    n = 0;

    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
               &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n)
        != 6)
    {
        return 0;
    }

    s += n;

    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++) { /* void */ }
    }

    if (s[0] != 'Z' || s[1] != '\0') {
        return 0;
    }

    tm.tm_year -= 1900;
    tm.tm_mon -= 1;

    return timegm(&tm);
}


/* a provider for this server's endpoints: ?provider=, else the first */

static ngx_http_identity_provider_t *
ngx_http_identity_saml_provider(ngx_http_request_t *r,
    ngx_uint_t idp_initiated)
{
    ngx_str_t                       name;
    ngx_uint_t                      i;
    ngx_http_identity_srv_conf_t   *iscf;
    ngx_http_identity_provider_t  **pp;

    iscf = ngx_http_get_module_srv_conf(r, ngx_http_identity_module);

    if (iscf->providers == NULL) {
        return NULL;
    }

    if (ngx_http_arg(r, (u_char *) "provider", 8, &name) != NGX_OK) {
        ngx_str_null(&name);
    }

    pp = iscf->providers->elts;

    for (i = 0; i < iscf->providers->nelts; i++) {
        if (pp[i]->type != NGX_HTTP_IDENTITY_SAML
            || (idp_initiated && !pp[i]->allow_idp_initiated)
            || (name.len && (pp[i]->name.len != name.len
                             || ngx_strncmp(pp[i]->name.data, name.data,
                                            name.len) != 0)))
        {
            continue;
        }

        return pp[i];
    }

    return NULL;
}


/* whether a URL kept with a login is not this SP's "url" */

static ngx_uint_t
ngx_http_identity_saml_differ(ngx_str_t *kept, char *url)
{
    size_t  len;

    len = ngx_strlen(url);

    return kept->len != len || ngx_strncmp(kept->data, url, len) != 0;
}


/*
 * The SAML provider of that name among this server's: a login kept in
 * Redis (which servers may share) is finished only where it can be used.
 */

static ngx_http_identity_provider_t *
ngx_http_identity_saml_here(ngx_http_request_t *r, ngx_str_t *name)
{
    ngx_uint_t                      i;
    ngx_http_identity_srv_conf_t   *iscf;
    ngx_http_identity_provider_t  **pp;

    iscf = ngx_http_get_module_srv_conf(r, ngx_http_identity_module);

    if (iscf->providers == NULL) {
        return NULL;
    }

    pp = iscf->providers->elts;

    for (i = 0; i < iscf->providers->nelts; i++) {
        if (pp[i]->type == NGX_HTTP_IDENTITY_SAML
            && pp[i]->name.len == name->len
            && ngx_strncmp(pp[i]->name.data, name->data, name->len) == 0)
        {
            return pp[i];
        }
    }

    return NULL;
}


static void
ngx_http_identity_saml_fail(ngx_http_identity_saml_task_t *t,
    ngx_int_t status, ngx_uint_t level, const char *fmt, ...)
{
    va_list  args;

    if (t->status) {
        return;
    }

    va_start(args, fmt);
    vsnprintf(t->error, NGX_HTTP_IDENTITY_ERRLEN, fmt, args);
    va_end(args);

    ngx_http_identity_log_safe(t->error);

    t->status = status;
    t->level = level;
}


static char *
ngx_http_identity_saml_cstr(ngx_pool_t *pool, ngx_str_t *s)
{
    char  *p;

    p = ngx_pnalloc(pool, s->len + 1);
    if (p == NULL) {
        return NULL;
    }

    ngx_memcpy(p, s->data, s->len);
    p[s->len] = '\0';

    return p;
}


static ngx_int_t
ngx_http_identity_saml_str(ngx_pool_t *pool, char *s, ngx_str_t *out)
{
    if (s == NULL) {
        ngx_str_null(out);
        return NGX_OK;
    }

    out->len = ngx_strlen(s);
    out->data = ngx_pnalloc(pool, out->len + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, s, out->len + 1);

    return NGX_OK;
}
