
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The OIDC protocol's thread side: the code exchanged for tokens, the ID
 * token verified with cjose (signature against the provider's JWKS, fetched
 * again once for an unknown kid, then iss, aud, azp, exp, iat, nonce),
 * userinfo merged in when asked or needed, and a back-channel logout token
 * checked (Back-Channel Logout 1.0, 2.6).  Everything blocks and runs in
 * nginx's thread pool: the outcome goes back in the exchange, for
 * ngx_http_identity_oidc.c to adopt on the event loop.
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

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_fetch.h"
#include "ngx_http_identity_json.h"
#include "ngx_http_identity_oauth2.h"
#include "ngx_http_identity_oidc_token.h"
#include "ngx_http_identity_metrics.h"


#define NGX_HTTP_IDENTITY_LOGOUT_EVENT                                        \
    "http://schemas.openid.net/event/backchannel-logout"


static ngx_int_t ngx_http_identity_oidc_check_logout(
    ngx_http_identity_oidc_exchange_t *x, json_t *claims);
static ngx_int_t ngx_http_identity_oidc_verify(
    ngx_http_identity_oidc_exchange_t *x, oauth2_log_t *log,
    const char *id_token, oauth2_http_call_ctx_t *hctx);
static json_t *ngx_http_identity_oidc_decode(
    ngx_http_identity_oidc_exchange_t *x, oauth2_log_t *log,
    const char *token, const char *what, oauth2_http_call_ctx_t *hctx);
static ngx_int_t ngx_http_identity_oidc_verify_signature(
    ngx_http_identity_oidc_exchange_t *x, cjose_jws_t *jws, const char *alg,
    const char *kid, const char *jwks, const char *what);
static ngx_int_t ngx_http_identity_oidc_check_claims(
    ngx_http_identity_oidc_exchange_t *x, json_t *claims);
static ngx_int_t ngx_http_identity_oidc_check_audience(
    ngx_http_identity_oidc_exchange_t *x, json_t *claims, const char *what);
static ngx_uint_t ngx_http_identity_oidc_lacks_claims(
    ngx_http_identity_oidc_exchange_t *x);
static void ngx_http_identity_oidc_merge_raw(
    ngx_http_identity_oidc_exchange_t *x, json_t *info);
static ngx_int_t ngx_http_identity_oidc_userinfo(
    ngx_http_identity_oidc_exchange_t *x, oauth2_log_t *log,
    const char *access_token);


void
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


void
ngx_http_identity_oidc_exchange_run(void *data)
{
    ngx_http_identity_oidc_exchange_t *x = data;

    json_t                  *tokens;
    uint64_t                 start;
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

    start = ngx_http_identity_metrics_now();
    tokens = ngx_http_identity_oauth2_token(&x->client, log, form,
                                            &x->result);
    ngx_http_identity_metrics_idp(x->provider, NGX_HTTP_IDENTITY_CALL_TOKEN,
                                  start);
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
    uint64_t         start;
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

        start = ngx_http_identity_metrics_now();
        x->new_jwks = ngx_http_identity_http_call(log, x->jwks_uri, NULL,
                                                  hctx, &x->result, &jwks);
        ngx_http_identity_metrics_idp(x->provider,
                                      NGX_HTTP_IDENTITY_CALL_JWKS, start);
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


/* OpenID Connect Core 5.3.2: userinfo's sub must be the id_token's */

static ngx_int_t
ngx_http_identity_oidc_userinfo(ngx_http_identity_oidc_exchange_t *x,
    oauth2_log_t *log, const char *access_token)
{
    char                    *body, *v, **fields[3];
    json_t                  *info;
    uint64_t                 start;
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
    start = ngx_http_identity_metrics_now();
    body = ngx_http_identity_http_call(log, x->userinfo_endpoint, NULL, hctx,
                                       &x->result, &info);
    ngx_http_identity_metrics_idp(x->provider, NGX_HTTP_IDENTITY_CALL_USERINFO,
                                  start);
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


/*
 * What the exchange and back-channel threads malloc()ed, once it is in the
 * request's pool, or when the client has gone (ngx_http_identity_task_post).
 */

void
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
