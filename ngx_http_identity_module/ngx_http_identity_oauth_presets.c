
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * What is particular to some OAuth presets and needs the configuration or
 * a call (the table and the JSON they read are oauth_user.c's).
 * Microsoft: a pinned tenant's endpoints, and the user's key (tid.oid)
 * from the token response's ID token; GitHub: the verified primary
 * address of /user/emails; and, for every preset, the user info's e-mail
 * dropped unless the provider vouches for it.  The user info calls block:
 * they run in the thread pool, for ngx_http_identity_oauth.c, which alone
 * calls this file; results go back in the task.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>
#include <oauth2/oauth2.h>
#include <oauth2/http.h>
#include <oauth2/log.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_fetch.h"
#include "ngx_http_identity_oauth2.h"
#include "ngx_http_identity_oauth_user.h"
#include "ngx_http_identity_oauth_presets.h"
#include "ngx_http_identity_metrics.h"


#define NGX_HTTP_IDENTITY_OAUTH_JWT_MAX  16384

#define NGX_HTTP_IDENTITY_MS_LOGIN                                            \
    "https://login.microsoftonline.com/"


/*
 * Microsoft with a pinned tenant: its GUID, lowercase, since the tid claim
 * is compared with it; the endpoints of that tenant, not of "common".
 */

char *
ngx_http_identity_oauth_tenant(ngx_conf_t *cf,
    ngx_http_identity_provider_t *pr, ngx_http_identity_oauth_preset_t *ps,
    ngx_http_identity_oauth_preset_t *pinned)
{
    u_char      *p;
    ngx_uint_t   i;

    if (ps->email != ngx_http_identity_email_tenant) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tenant\" is for providers of preset "
                           "microsoft");
        return NGX_CONF_ERROR;
    }

    /* 8-4-4-4-12 hex digits: "common", "organizations" pin nothing */

    if (pr->tenant.len != 36) {
        goto invalid;
    }

    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (pr->tenant.data[i] != '-') {
                goto invalid;
            }

            continue;
        }

        if (!isxdigit(pr->tenant.data[i])) {
            goto invalid;
        }
    }

    p = ngx_pnalloc(cf->pool, 36 + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_strlow(p, pr->tenant.data, 36);
    p[36] = '\0';
    pr->tenant.data = p;

    *pinned = *ps;

    pinned->authorization_endpoint = ngx_pnalloc(cf->pool, 128);
    pinned->token_endpoint = ngx_pnalloc(cf->pool, 128);

    if (pinned->authorization_endpoint == NULL
        || pinned->token_endpoint == NULL)
    {
        return NGX_CONF_ERROR;
    }

    ngx_sprintf((u_char *) pinned->authorization_endpoint,
                NGX_HTTP_IDENTITY_MS_LOGIN "%V/oauth2/v2.0/authorize%Z",
                &pr->tenant);
    ngx_sprintf((u_char *) pinned->token_endpoint,
                NGX_HTTP_IDENTITY_MS_LOGIN "%V/oauth2/v2.0/token%Z",
                &pr->tenant);

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"tenant\": a tenant id "
                       "(GUID) is needed", &pr->tenant);
    return NGX_CONF_ERROR;
}


/*
 * Microsoft: the ID token of the token response names the user's tenant
 * (tid) and object (oid).  It came straight from the token endpoint over
 * TLS, which OpenID Connect Core 3.1.3.7 accepts in place of checking its
 * signature; its audience must still be this client.  A login needs one;
 * a refresh may come without.
 */

ngx_int_t
ngx_http_identity_oauth_microsoft(ngx_http_identity_oauth_task_t *t,
    json_t *tokens)
{
    char                            *dot, *key;
    json_t                          *claims;
    ngx_str_t                        src, dst;
    const char                      *jwt, *tid, *oid;
    ngx_http_identity_oauth_conf_t  *oc;

    oc = t->conf;
    claims = NULL;
    dst.data = NULL;

    jwt = json_string_value(json_object_get(tokens, "id_token"));

    if (jwt == NULL) {
        if (t->grant.code == NULL) {
            return NGX_OK;
        }

        goto invalid;
    }

    src.data = (u_char *) strchr(jwt, '.');
    dot = src.data ? strchr((char *) src.data + 1, '.') : NULL;

    if (dot == NULL || dot - jwt > NGX_HTTP_IDENTITY_OAUTH_JWT_MAX) {
        goto invalid;
    }

    src.data++;
    src.len = (u_char *) dot - src.data;

    dst.data = malloc(ngx_base64_decoded_length(src.len) + 1);
    if (dst.data == NULL) {
        ngx_http_identity_http_fail(&t->result, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_LOG_ERR, "out of memory");
        return NGX_ERROR;
    }

    if (ngx_decode_base64url(&dst, &src) != NGX_OK) {
        goto invalid;
    }

    claims = json_loadb((const char *) dst.data, dst.len,
                        JSON_REJECT_DUPLICATES, NULL);

    if (ngx_http_identity_oauth_tenant_user(claims, oc->client.client_id,
                                            &tid, &oid)
        != NGX_OK)
    {
        goto invalid;
    }

    if (oc->tenant && strcasecmp(tid, oc->tenant) != 0) {
        ngx_http_identity_http_fail(&t->result, NGX_HTTP_FORBIDDEN,
                                    NGX_LOG_INFO,
                                    "user of tenant \"%s\", not of the "
                                    "pinned tenant", tid);
        goto failed;
    }

    key = malloc(strlen(tid) + 1 + strlen(oid) + 1);
    if (key == NULL) {
        ngx_http_identity_http_fail(&t->result, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_LOG_ERR, "out of memory");
        goto failed;
    }

    sprintf(key, "%s.%s", tid, oid);

    free(t->user_key);
    t->user_key = key;

    json_decref(claims);
    free(dst.data);

    return NGX_OK;

invalid:

    ngx_http_identity_http_fail(&t->result, NGX_HTTP_FORBIDDEN, NGX_LOG_ERR,
                                "token response of \"%s\" without an "
                                "id_token for this client with tid and oid",
                                oc->client.token_endpoint);

failed:

    if (claims) {
        json_decref(claims);
    }

    free(dst.data);

    return NGX_ERROR;
}


/* an e-mail no one vouches for is dropped: no rule can then match it */

void
ngx_http_identity_oauth_vouch(ngx_http_identity_oauth_task_t *t,
    json_t *info)
{
    ngx_uint_t                       ok;
    ngx_http_identity_oauth_conf_t  *oc;

    oc = t->conf;

    ok = ngx_http_identity_oauth_vouched(info, oc->email, oc->email_verified,
                                         oc->tenant != NULL);

    if (!ok && t->claims[1] && t->claims[1][0]) {
        t->email_unverified = (oc->email != ngx_http_identity_email_github);
        free(t->claims[1]);
        t->claims[1] = NULL;
    }
}


char *
ngx_http_identity_oauth_primary_email(ngx_http_identity_oauth_task_t *t,
    oauth2_log_t *log)
{
    char    *email;
    json_t  *list;

    list = ngx_http_identity_oauth_get(t, log, t->conf->emails_endpoint, 1);
    if (list == NULL) {
        return NULL;
    }

    email = ngx_http_identity_oauth_primary(list);

    json_decref(list);

    return email;
}


/* a GET with the access token; an object, or with "any" an array too */

json_t *
ngx_http_identity_oauth_get(ngx_http_identity_oauth_task_t *t,
    oauth2_log_t *log, const char *url, ngx_uint_t any)
{
    char                    *body;
    json_t                  *json;
    uint64_t                 start;
    const char              *token;
    oauth2_http_call_ctx_t  *hctx;

    token = t->new_access ? t->new_access : t->access_token;

    hctx = ngx_http_identity_http_ctx(&t->result, log, t->conf->timeout);
    if (hctx == NULL) {
        return NULL;
    }

    if (ngx_http_identity_oauth2_bearer(log, hctx, token, &t->result)
        != NGX_OK)
    {
        oauth2_http_call_ctx_free(log, hctx);
        return NULL;
    }

    /* Twitch's API wants the client id beside the token */

    if (t->conf->client_id_header) {
        oauth2_http_call_ctx_hdr_set(log, hctx, "Client-Id",
                                     t->conf->client.client_id);
    }

    json = NULL;
    start = ngx_http_identity_metrics_now();
    body = ngx_http_identity_http_fetch(log, url, NULL, hctx, &t->result,
                                        &json, any);
    ngx_http_identity_metrics_idp(t->provider, NGX_HTTP_IDENTITY_CALL_USERINFO,
                                  start);
    oauth2_http_call_ctx_free(log, hctx);

    if (body == NULL) {
        return NULL;
    }

    free(body);

    if (any && !json_is_array(json) && !json_is_object(json)) {
        json_decref(json);
        ngx_http_identity_http_fail(&t->result, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_LOG_ERR, "\"%s\" did not answer JSON",
                                    url);
        return NULL;
    }

    return json;
}
