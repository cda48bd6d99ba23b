
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The OAuth 2.0 core (RFC 6749, RFC 7636), shared by OpenID Connect
 * (ngx_http_identity_oidc.c) and the OAuth presets
 * (ngx_http_identity_oauth.c), and calling neither: the authorization
 * request (state, nonce where OpenID Connect wants one, the PKCE verifier
 * and its S256 challenge, the pending login saved, the redirect with the
 * provider's params and the state cookie), the callback up to the pending
 * login it names, and the code exchange at the token endpoint with the
 * client authenticated by Basic or in the form.
 *
 * The loop side works on the request ctx.  The token endpoint side blocks:
 * the protocols call it from their thread tasks, with NUL-terminated
 * copies (ngx_http_identity_oauth2_client_t, _grant_t) and a result that
 * the loop logs.
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
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_cookie.h"
#include "ngx_http_identity_store.h"
#include "ngx_http_identity_fetch.h"
#include "ngx_http_identity_protocol.h"
#include "ngx_http_identity_oauth2.h"


#define NGX_HTTP_IDENTITY_OAUTH2_CODE_MAX  2048


static ngx_int_t ngx_http_identity_oauth2_callback(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_oauth2_take(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_oauth2_taken(ngx_http_request_t *r);


/*
 * The redirect_uri is one for every provider of the family, OpenID Connect
 * and OAuth alike: the pending login names the provider, whose protocol's
 * callback goes on from there.
 */

ngx_http_identity_route_t  ngx_http_identity_oauth2_callback_route = {
    ngx_string("callback"),
    ngx_http_identity_oauth2_callback,
    NGX_HTTP_IDENTITY_ROUTE_FINISH|NGX_HTTP_IDENTITY_ROUTE_PAGE
    |NGX_HTTP_IDENTITY_ROUTE_BACK|NGX_HTTP_IDENTITY_ROUTE_CANCEL
};


/*
 * The first step of a login: state, a nonce if asked for, and a PKCE
 * verifier (always, so that the pending login is the same whether the
 * provider takes PKCE or not), saved as a pending login.  NGX_AGAIN while
 * Redis saves it (ctx->resume is called then), or the status to answer.
 */

ngx_int_t
ngx_http_identity_oauth2_login(ngx_http_request_t *r, ngx_uint_t nonce)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    if (ngx_http_identity_random(r->pool, 32, &ctx->state_param) != NGX_OK
        || (nonce
            && ngx_http_identity_random(r->pool, 32, &ctx->login.nonce)
               != NGX_OK)
        || ngx_http_identity_random(r->pool, 32, &ctx->login.code_verifier)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!nonce) {
        ngx_str_null(&ctx->login.nonce);
    }

    ctx->login.provider = ctx->provider->name;
    ctx->found = 0;

    if (ngx_http_identity_login_save(r, &ctx->state_param) != NGX_OK) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    return NGX_AGAIN;
}


/*
 * The redirect to an authorization endpoint, for OAuth and OpenID Connect
 * alike; the state cookie binds the login to this browser.
 */

ngx_int_t
ngx_http_identity_oauth2_redirect(ngx_http_request_t *r, char *endpoint,
    ngx_uint_t pkce, ngx_str_t *nonce)
{
    u_char                        *p;
    size_t                         len;
    uintptr_t                      esc;
    ngx_str_t                      location, challenge, name, domain, *v;
    ngx_http_identity_ctx_t       *ctx;
    ngx_http_identity_provider_t  *pr;

    ctx = ngx_http_identity_get_ctx(r);
    pr = ctx->provider;

    ngx_str_null(&challenge);

    if (pkce
        && ngx_http_identity_pkce_challenge(r->pool,
                                            &ctx->login.code_verifier,
                                            &challenge)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v = &ctx->login.redirect_uri;
    esc = 2 * ngx_escape_uri(NULL, v->data, v->len, NGX_ESCAPE_URI_COMPONENT)
          + 2 * ngx_escape_uri(NULL, pr->client_id.data, pr->client_id.len,
                               NGX_ESCAPE_URI_COMPONENT)
          + 2 * ngx_escape_uri(NULL, pr->scopes.data, pr->scopes.len,
                               NGX_ESCAPE_URI_COMPONENT);

    len = ngx_strlen(endpoint)
          + sizeof("?response_type=code&client_id=") - 1 + pr->client_id.len
          + sizeof("&redirect_uri=") - 1 + v->len
          + sizeof("&scope=") - 1 + pr->scopes.len
          + sizeof("&state=") - 1 + ctx->state_param.len
          + sizeof("&nonce=") - 1 + (nonce ? nonce->len : 0)
          + sizeof("&code_challenge=") - 1 + challenge.len
          + sizeof("&code_challenge_method=S256") - 1
          + pr->authorization_params.len + sizeof("&prompt=login") - 1 + esc;

    location.data = ngx_pnalloc(r->pool, len);
    if (location.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpystrn(location.data, (u_char *) endpoint, len);
    *p = ngx_strlchr(location.data, p, '?') ? '&' : '?';
    p++;
    p = ngx_cpymem(p, "response_type=code&client_id=",
                   sizeof("response_type=code&client_id=") - 1);
    p = (u_char *) ngx_escape_uri(p, pr->client_id.data, pr->client_id.len,
                                  NGX_ESCAPE_URI_COMPONENT);
    p = ngx_cpymem(p, "&redirect_uri=", sizeof("&redirect_uri=") - 1);
    p = (u_char *) ngx_escape_uri(p, v->data, v->len, NGX_ESCAPE_URI_COMPONENT);
    p = ngx_cpymem(p, "&scope=", sizeof("&scope=") - 1);
    p = (u_char *) ngx_escape_uri(p, pr->scopes.data, pr->scopes.len,
                                  NGX_ESCAPE_URI_COMPONENT);
    p = ngx_sprintf(p, "&state=%V", &ctx->state_param);

    if (nonce) {
        p = ngx_sprintf(p, "&nonce=%V", nonce);
    }

    if (pkce) {
        p = ngx_sprintf(p, "&code_challenge=%V&code_challenge_method=S256",
                        &challenge);
    }

    if (pr->authorization_params.len) {
        p = ngx_cpymem(p, pr->authorization_params.data,
                       pr->authorization_params.len);
    }

    /*
     * A browser whose session was revoked or has ended must authenticate
     * again: the provider's own session would otherwise log it straight
     * back in (OpenID Connect prompt=login, unless configured otherwise).
     */

    if (ctx->reauth && nonce
        && (pr->authorization_params.len < sizeof("&prompt=") - 1
            || ngx_strlcasestrn(pr->authorization_params.data,
                                pr->authorization_params.data
                                + pr->authorization_params.len,
                                (u_char *) "prompt=", 7 - 1)
               == NULL))
    {
        p = ngx_cpymem(p, "&prompt=login", sizeof("&prompt=login") - 1);
    }

    location.len = p - location.data;

    if (ngx_http_identity_state_cookie(r, &name, &domain) != NGX_OK
        || ngx_http_identity_cookie_set(r, &name, &ctx->state_param, &domain,
                                        NGX_HTTP_IDENTITY_STATE_TTL)
           != NGX_OK
        || ngx_http_identity_set_location(r, &location) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_HTTP_MOVED_TEMPORARILY;
}


/*
 * The redirect_uri: the pending login the state names is taken, then the
 * provider's protocol goes on with its callback, from its first state,
 * until it has the claims (NGX_OK).  ctx->provider is set once the
 * pending login was taken.
 */

static ngx_int_t
ngx_http_identity_oauth2_callback(ngx_http_request_t *r)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    if (ctx->provider) {
        return ctx->provider->protocol->callback(r);
    }

    if (ctx->state == 0) {
        ctx->state = 1;
        return ngx_http_identity_oauth2_take(r);
    }

    return ngx_http_identity_oauth2_taken(r);
}


/*
 * The redirect_uri, first step: code and state, or an error from the
 * provider; the pending login the state names is taken, bound to this
 * browser's state cookie.  NGX_AGAIN, or an HTTP status.
 */

static ngx_int_t
ngx_http_identity_oauth2_take(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_str_t                 arg;
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    if (ngx_http_arg(r, (u_char *) "error", 5, &arg) == NGX_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: provider refused the login: \"%V\"", &arg);

        /*
         * A 403 either way; the pending login of this browser's state is
         * taken all the same, so that the refusal is counted under its
         * provider and the error page's retry link is its return path
         */

        if (ngx_http_arg(r, (u_char *) "state", 5, &ctx->state_param)
            != NGX_OK
            || ctx->state_param.len != NGX_HTTP_IDENTITY_TOKEN_LEN
            || ngx_http_identity_cookie_bound(r, &ctx->state_param) != NGX_OK)
        {
            return NGX_HTTP_FORBIDDEN;
        }

        ctx->found = 0;

        if (ngx_http_identity_login_take(r, &ctx->state_param) != NGX_OK) {
            return NGX_HTTP_FORBIDDEN;
        }

        return NGX_AGAIN;
    }

    if (ngx_http_arg(r, (u_char *) "state", 5, &ctx->state_param) != NGX_OK
        || ngx_http_arg(r, (u_char *) "code", 4, &ctx->code) != NGX_OK
        || ctx->state_param.len != NGX_HTTP_IDENTITY_TOKEN_LEN
        || ctx->code.len == 0
        || ctx->code.len > NGX_HTTP_IDENTITY_OAUTH2_CODE_MAX)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: callback without a valid code and state");
        return NGX_HTTP_BAD_REQUEST;
    }

    /* a code may hold "/" or "+" (Google's do): it came URL-encoded */

    if (ngx_http_identity_unescape_arg(r, &ctx->code) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_identity_cookie_bound(r, &ctx->state_param);
    if (rc != NGX_OK) {
        return rc;
    }

    ctx->found = 0;

    if (ngx_http_identity_login_take(r, &ctx->state_param) != NGX_OK) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    return NGX_AGAIN;
}


/* the redirect_uri, second step: the pending login names its provider */

static ngx_int_t
ngx_http_identity_oauth2_taken(ngx_http_request_t *r)
{
    ngx_str_t                 arg;
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    /* the provider refused the login: only its name is wanted */

    if (ngx_http_arg(r, (u_char *) "error", 5, &arg) == NGX_OK) {
        if (!ctx->redis_error && ctx->found) {
            ctx->provider = ngx_http_identity_find_provider(r,
                                                        &ctx->login.provider);
        }

        if (ctx->provider && ctx->provider->protocol->callback == NULL) {
            ctx->provider = NULL;
        }

        return NGX_HTTP_FORBIDDEN;
    }

    if (ctx->redis_error) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    if (!ctx->found) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: unknown, expired or used state");
        return NGX_HTTP_BAD_REQUEST;
    }

    ctx->provider = ngx_http_identity_find_provider(r, &ctx->login.provider);

    if (ctx->provider == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: login for unknown provider \"%V\"",
                      &ctx->login.provider);
        return NGX_HTTP_BAD_REQUEST;
    }

    /* a SAML login's RelayState brought to the OAuth 2.0 callback */

    if (ctx->provider->protocol->callback == NULL) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: login of provider \"%V\" is not an "
                      "OAuth 2.0 one", &ctx->provider->name);
        ctx->provider = NULL;
        return NGX_HTTP_BAD_REQUEST;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "identity: callback for provider \"%V\"",
                   &ctx->provider->name);

    ctx->state = 0;

    return ctx->provider->protocol->callback(r);
}


/* the callback's code grant, copied for a thread task */

ngx_int_t
ngx_http_identity_oauth2_grant(ngx_http_request_t *r, ngx_uint_t pkce,
    ngx_http_identity_oauth2_grant_t *grant)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    grant->code = ngx_http_identity_cstr(r->pool, &ctx->code);
    grant->redirect_uri = ngx_http_identity_cstr(r->pool,
                                                 &ctx->login.redirect_uri);
    grant->verifier = NULL;

    if (pkce) {
        grant->verifier = ngx_http_identity_cstr(r->pool,
                                                 &ctx->login.code_verifier);
        if (grant->verifier == NULL) {
            return NGX_ERROR;
        }
    }

    if (grant->code == NULL || grant->redirect_uri == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* RFC 6749 4.1.3, with RFC 7636 4.5: the form of a code grant */

oauth2_nv_list_t *
ngx_http_identity_oauth2_code_form(oauth2_log_t *log,
    ngx_http_identity_oauth2_grant_t *grant)
{
    oauth2_nv_list_t  *form;

    form = oauth2_nv_list_init(log);
    oauth2_nv_list_add(log, form, "grant_type", "authorization_code");
    oauth2_nv_list_add(log, form, "code", grant->code);
    oauth2_nv_list_add(log, form, "redirect_uri", grant->redirect_uri);

    if (grant->verifier) {
        oauth2_nv_list_add(log, form, "code_verifier", grant->verifier);
    }

    return form;
}


/*
 * RFC 6749 4.1.3 and 6: a grant at the token endpoint, with client
 * authentication; the response's JSON object, or NULL with the result set.
 * What the tokens must be is the protocol's to check.
 */

json_t *
ngx_http_identity_oauth2_token(ngx_http_identity_oauth2_client_t *client,
    oauth2_log_t *log, oauth2_nv_list_t *form,
    ngx_http_identity_http_result_t *result)
{
    char                    *body;
    json_t                  *tokens;
    oauth2_http_call_ctx_t  *hctx;

    /*
     * a call context of its own: the client's credentials are for the token
     * endpoint alone, never for the keys or user info fetched after it
     */

    hctx = ngx_http_identity_http_ctx(result, log, client->timeout);
    if (hctx == NULL) {
        return NULL;
    }

    if (client->token_auth == NGX_HTTP_IDENTITY_AUTH_POST) {
        oauth2_nv_list_add(log, form, "client_id", client->client_id);
        oauth2_nv_list_add(log, form, "client_secret", client->client_secret);

    } else {
        /* RFC 6749 2.3.1: form-encode the credentials before Basic */
        oauth2_http_call_ctx_basic_auth_set(log, hctx, client->client_id,
                                            client->client_secret, true);
    }

    tokens = NULL;
    body = ngx_http_identity_http_call(log, client->token_endpoint, form, hctx,
                                       result, &tokens);

    oauth2_http_call_ctx_free(log, hctx);

    if (body == NULL) {
        return NULL;
    }

    free(body);     /* the response is in tokens */

    return tokens;
}


/* RFC 6750 2.1: the access token in the Authorization header */

ngx_int_t
ngx_http_identity_oauth2_bearer(oauth2_log_t *log,
    oauth2_http_call_ctx_t *hctx, const char *token,
    ngx_http_identity_http_result_t *result)
{
    char    *auth;
    size_t   len;

    len = sizeof("Bearer ") + strlen(token);

    auth = malloc(len);
    if (auth == NULL) {
        ngx_http_identity_http_fail(result, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_LOG_ERR, "out of memory");
        return NGX_ERROR;
    }

    snprintf(auth, len, "Bearer %s", token);
    oauth2_http_call_ctx_hdr_set(log, hctx, "Authorization", auth);
    free(auth);

    return NGX_OK;
}
