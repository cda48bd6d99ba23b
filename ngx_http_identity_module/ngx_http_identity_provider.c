
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The identity_provider NAME { ... } block: its directives, parsed into an
 * ngx_http_identity_provider_t that identity NAME refers to by name, and
 * the helpers that read secrets and files at configuration time.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_protocol.h"
#include "ngx_http_identity_oidc.h"
#include "ngx_http_identity_saml.h"
#include "ngx_http_identity_oauth.h"
#include "ngx_http_identity_provider.h"


static char *ngx_http_identity_provider_directive(ngx_conf_t *cf,
    ngx_command_t *dummy, void *conf);
static char *ngx_http_identity_provider_type(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_identity_words(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_identity_str_list(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_identity_params(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_identity_secret_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_identity_algs(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_identity_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_identity_nameid_format(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_identity_attribute_map(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_http_identity_provider_t *ngx_http_identity_provider_get(
    ngx_conf_t *cf, ngx_str_t *name);


/* a provider's "type" picks one, and is its index + 1 */

ngx_http_identity_protocol_t  *ngx_http_identity_protocols[] = {
    &ngx_http_identity_oidc_protocol,       /* NGX_HTTP_IDENTITY_OIDC */
    &ngx_http_identity_saml_protocol,       /* NGX_HTTP_IDENTITY_SAML */
    &ngx_http_identity_oauth_protocol,      /* NGX_HTTP_IDENTITY_OAUTH */
    NULL
};


static ngx_conf_enum_t  ngx_http_identity_userinfo[] = {
    { ngx_string("off"), NGX_HTTP_IDENTITY_USERINFO_OFF },
    { ngx_string("on"), NGX_HTTP_IDENTITY_USERINFO_ON },
    { ngx_string("auto"), NGX_HTTP_IDENTITY_USERINFO_AUTO },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_identity_token_auth[] = {
    { ngx_string("client_secret_basic"), NGX_HTTP_IDENTITY_AUTH_BASIC },
    { ngx_string("client_secret_post"), NGX_HTTP_IDENTITY_AUTH_POST },
    { ngx_null_string, 0 }
};


/* directives inside an identity_provider { } block */

static ngx_command_t  ngx_http_identity_provider_commands[] = {

    { ngx_string("type"), NGX_CONF_TAKE1,
      ngx_http_identity_provider_type, 0, 0, NULL },

    { ngx_string("issuer"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
      offsetof(ngx_http_identity_provider_t, issuer), NULL },

    { ngx_string("client_id"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
      offsetof(ngx_http_identity_provider_t, client_id), NULL },

    { ngx_string("client_secret"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
      offsetof(ngx_http_identity_provider_t, client_secret), NULL },

    { ngx_string("client_secret_file"), NGX_CONF_TAKE1,
      ngx_http_identity_secret_file, 0,
      offsetof(ngx_http_identity_provider_t, client_secret), NULL },

    { ngx_string("scopes"), NGX_CONF_1MORE, ngx_http_identity_words, 0,
      offsetof(ngx_http_identity_provider_t, scopes), NULL },

    { ngx_string("authorization_params"), NGX_CONF_1MORE,
      ngx_http_identity_params, 0,
      offsetof(ngx_http_identity_provider_t, authorization_params), NULL },
    { ngx_string("authz_url_params"), NGX_CONF_1MORE,
      ngx_http_identity_params, 0,
      offsetof(ngx_http_identity_provider_t, authorization_params), NULL },
    { ngx_string("preset"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
      offsetof(ngx_http_identity_provider_t, preset), NULL },
    { ngx_string("authorization_endpoint"), NGX_CONF_TAKE1,
      ngx_conf_set_str_slot, 0,
      offsetof(ngx_http_identity_provider_t, authorization_endpoint), NULL },
    { ngx_string("token_endpoint"), NGX_CONF_TAKE1, ngx_conf_set_str_slot,
      0, offsetof(ngx_http_identity_provider_t, token_endpoint), NULL },
    { ngx_string("userinfo_endpoint"), NGX_CONF_TAKE1, ngx_conf_set_str_slot,
      0, offsetof(ngx_http_identity_provider_t, userinfo_endpoint), NULL },
    { ngx_string("emails_endpoint"), NGX_CONF_TAKE1, ngx_conf_set_str_slot,
      0, offsetof(ngx_http_identity_provider_t, emails_endpoint), NULL },
    { ngx_string("claim_map"), NGX_CONF_1MORE,
      ngx_http_identity_attribute_map, 0, 0, NULL },
    { ngx_string("pkce"), NGX_CONF_FLAG, ngx_conf_set_flag_slot, 0,
      offsetof(ngx_http_identity_provider_t, pkce), NULL },
    { ngx_string("userinfo_refresh_interval"), NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot, 0,
      offsetof(ngx_http_identity_provider_t, userinfo_refresh_interval),
      NULL },

    { ngx_string("redirect_uri"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
      offsetof(ngx_http_identity_provider_t, redirect_uri), NULL },

    { ngx_string("token_endpoint_auth"), NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot, 0,
      offsetof(ngx_http_identity_provider_t, token_auth),
      &ngx_http_identity_token_auth },

    { ngx_string("userinfo"), NGX_CONF_TAKE1, ngx_conf_set_enum_slot, 0,
      offsetof(ngx_http_identity_provider_t, userinfo),
      &ngx_http_identity_userinfo },

    { ngx_string("tenant"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
      offsetof(ngx_http_identity_provider_t, tenant), NULL },

    { ngx_string("end_session"), NGX_CONF_FLAG, ngx_conf_set_flag_slot, 0,
      offsetof(ngx_http_identity_provider_t, end_session), NULL },

    { ngx_string("signing_algs"), NGX_CONF_1MORE, ngx_http_identity_algs, 0,
      offsetof(ngx_http_identity_provider_t, signing_algs), NULL },

    { ngx_string("http_timeout"), NGX_CONF_TAKE1, ngx_conf_set_msec_slot, 0,
      offsetof(ngx_http_identity_provider_t, http_timeout), NULL },

    { ngx_string("http_concurrency"), NGX_CONF_TAKE1, ngx_conf_set_num_slot,
      0, offsetof(ngx_http_identity_provider_t, http_concurrency), NULL },

    { ngx_string("clock_skew"), NGX_CONF_TAKE1, ngx_conf_set_sec_slot, 0,
      offsetof(ngx_http_identity_provider_t, leeway), NULL },

    { ngx_string("metadata_ttl"), NGX_CONF_TAKE1, ngx_conf_set_sec_slot, 0,
      offsetof(ngx_http_identity_provider_t, metadata_ttl), NULL },

    { ngx_string("jwks_refetch_interval"), NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot, 0,
      offsetof(ngx_http_identity_provider_t, jwks_refetch_interval), NULL },

    { ngx_string("idp_metadata"), NGX_CONF_TAKE1, ngx_http_identity_file, 0,
      offsetof(ngx_http_identity_provider_t, idp_metadata), NULL },

    { ngx_string("idp_metadata_url"), NGX_CONF_TAKE1, ngx_conf_set_str_slot,
      0, offsetof(ngx_http_identity_provider_t, idp_metadata_url), NULL },

    { ngx_string("sp_certificate"), NGX_CONF_TAKE1, ngx_http_identity_file,
      0, offsetof(ngx_http_identity_provider_t, sp_cert), NULL },

    { ngx_string("sp_certificate_key"), NGX_CONF_TAKE1,
      ngx_http_identity_file, 0,
      offsetof(ngx_http_identity_provider_t, sp_key), NULL },

    { ngx_string("sp_entity_id"), NGX_CONF_TAKE1, ngx_conf_set_str_slot, 0,
      offsetof(ngx_http_identity_provider_t, sp_entity_id), NULL },

    { ngx_string("nameid_format"), NGX_CONF_TAKE1,
      ngx_http_identity_nameid_format, 0,
      offsetof(ngx_http_identity_provider_t, nameid_format), NULL },

    { ngx_string("force_authn"), NGX_CONF_FLAG, ngx_conf_set_flag_slot, 0,
      offsetof(ngx_http_identity_provider_t, force_authn), NULL },

    { ngx_string("allow_idp_initiated"), NGX_CONF_FLAG,
      ngx_conf_set_flag_slot, 0,
      offsetof(ngx_http_identity_provider_t, allow_idp_initiated), NULL },

    { ngx_string("attribute_map"), NGX_CONF_1MORE,
      ngx_http_identity_attribute_map, 0, 0, NULL },

    { ngx_string("authorized_groups"), NGX_CONF_1MORE,
      ngx_http_identity_str_list, 0,
      offsetof(ngx_http_identity_provider_t, authorized_groups), NULL },

      ngx_null_command
};


char *
ngx_http_identity_provider_block(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char                          *rv;
    ngx_str_t                     *value;
    ngx_conf_t                     save;
    ngx_http_identity_provider_t  *pr;

    value = cf->args->elts;

    pr = ngx_http_identity_provider_get(cf, &value[1]);
    if (pr == NULL) {
        return NGX_CONF_ERROR;
    }

    if (pr->defined) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate identity provider \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    pr->defined = 1;
    pr->token_auth = NGX_CONF_UNSET_UINT;
    pr->userinfo = NGX_CONF_UNSET_UINT;
    pr->end_session = NGX_CONF_UNSET;
    pr->signing_algs = NGX_CONF_UNSET_PTR;
    pr->http_timeout = NGX_CONF_UNSET_MSEC;
    pr->http_concurrency = NGX_CONF_UNSET_UINT;
    pr->leeway = NGX_CONF_UNSET;
    pr->metadata_ttl = NGX_CONF_UNSET;
    pr->jwks_refetch_interval = NGX_CONF_UNSET;
    pr->force_authn = NGX_CONF_UNSET;
    pr->allow_idp_initiated = NGX_CONF_UNSET;
    pr->authorized_groups = NGX_CONF_UNSET_PTR;
    pr->pkce = NGX_CONF_UNSET;
    pr->userinfo_refresh_interval = NGX_CONF_UNSET;

    save = *cf;
    cf->handler = ngx_http_identity_provider_directive;
    cf->handler_conf = (char *) pr;

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (pr->type == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "identity provider \"%V\" has no \"type\"",
                           &pr->name);
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_value(pr->leeway, 60);
    ngx_conf_init_msec_value(pr->http_timeout, 10000);
    ngx_conf_init_uint_value(pr->http_concurrency, 8);
    ngx_conf_init_value(pr->metadata_ttl, 3600);
    ngx_conf_init_value(pr->force_authn, 0);
    ngx_conf_init_value(pr->allow_idp_initiated, 0);

    if (pr->http_concurrency == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"0\" in \"http_concurrency\" "
                           "of identity provider \"%V\"", &pr->name);
        return NGX_CONF_ERROR;
    }

    if (pr->authorized_groups == NGX_CONF_UNSET_PTR) {
        pr->authorized_groups = NULL;
    }

    if (pr->type != NGX_HTTP_IDENTITY_OAUTH
        && (pr->userinfo_refresh_interval != NGX_CONF_UNSET
            || pr->pkce != NGX_CONF_UNSET))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"userinfo_refresh_interval\" and \"pkce\" "
                           "are for providers of type oauth");
        return NGX_CONF_ERROR;
    }

    if (pr->type != NGX_HTTP_IDENTITY_OAUTH
        && (pr->tenant.len || pr->email_verified.len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tenant\" and \"claim_map email_verified\" "
                           "are for providers of type oauth");
        return NGX_CONF_ERROR;
    }

    if (pr->type != NGX_HTTP_IDENTITY_OAUTH) {
        pr->userinfo_refresh_interval = 0;
    }

    return pr->protocol->conf(cf, pr);
}


static char *
ngx_http_identity_provider_directive(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf)
{
    ngx_str_t      *value;
    ngx_uint_t      nargs;
    ngx_command_t  *cmd;

    value = cf->args->elts;
    nargs = cf->args->nelts - 1;

    for (cmd = ngx_http_identity_provider_commands; cmd->name.len; cmd++) {

        if (cmd->name.len != value[0].len
            || ngx_strncmp(cmd->name.data, value[0].data, value[0].len) != 0)
        {
            continue;
        }

        if (((cmd->type & NGX_CONF_1MORE) && nargs < 1)
            || ((cmd->type & (NGX_CONF_TAKE1|NGX_CONF_FLAG)) && nargs != 1))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid number of arguments in \"%V\"",
                               &cmd->name);
            return NGX_CONF_ERROR;
        }

        return cmd->set(cf, cmd, cf->handler_conf);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown directive \"%V\" in identity_provider",
                       &value[0]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_identity_provider_type(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_identity_provider_t *pr = conf;

    ngx_str_t   *value, *name;
    ngx_uint_t   i;

    value = cf->args->elts;

    for (i = 0; ngx_http_identity_protocols[i]; i++) {
        name = &ngx_http_identity_protocols[i]->name;

        if (value[1].len == name->len
            && ngx_strncmp(value[1].data, name->data, name->len) == 0)
        {
            pr->type = i + 1;
            pr->protocol = ngx_http_identity_protocols[i];
            return NGX_CONF_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"type\"", &value[1]);

    return NGX_CONF_ERROR;
}


/* several words joined by spaces, as the scope parameter wants them */

static char *
ngx_http_identity_words(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    u_char      *p;
    size_t       len;
    ngx_str_t   *value, *field;
    ngx_uint_t   i;

    field = (ngx_str_t *) ((u_char *) conf + cmd->offset);
    value = cf->args->elts;

    len = 0;
    for (i = 1; i < cf->args->nelts; i++) {
        len += value[i].len + 1;
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    field->data = p;

    for (i = 1; i < cf->args->nelts; i++) {
        if (i > 1) {
            *p++ = ' ';
        }

        p = ngx_cpymem(p, value[i].data, value[i].len);
    }

    field->len = p - field->data;

    return NGX_CONF_OK;
}


/* all the words into an array: ngx_conf_set_str_array_slot() takes one */

static char *
ngx_http_identity_str_list(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t     *value, *s;
    ngx_uint_t     i;
    ngx_array_t  **a;

    a = (ngx_array_t **) ((u_char *) conf + cmd->offset);

    if (*a == NGX_CONF_UNSET_PTR || *a == NULL) {
        *a = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
        if (*a == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        s = ngx_array_push(*a);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


/* NAME=VALUE ... becomes "&NAME=VALUE..." with both escaped */

static char *
ngx_http_identity_params(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    u_char      *p, *eq;
    size_t       len;
    ngx_str_t   *value, *field;
    ngx_uint_t   i;

    field = (ngx_str_t *) ((u_char *) conf + cmd->offset);
    value = cf->args->elts;

    len = 0;
    for (i = 1; i < cf->args->nelts; i++) {
        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');
        if (eq == NULL || eq == value[i].data) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\"", &value[i],
                               &cmd->name);
            return NGX_CONF_ERROR;
        }

        len += 2 + value[i].len
               + 2 * ngx_escape_uri(NULL, value[i].data, value[i].len,
                                    NGX_ESCAPE_URI_COMPONENT);
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    field->data = p;

    for (i = 1; i < cf->args->nelts; i++) {
        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');

        *p++ = '&';
        p = (u_char *) ngx_escape_uri(p, value[i].data, eq - value[i].data,
                                      NGX_ESCAPE_URI_COMPONENT);
        *p++ = '=';
        p = (u_char *) ngx_escape_uri(p, eq + 1,
                                      value[i].data + value[i].len - eq - 1,
                                      NGX_ESCAPE_URI_COMPONENT);
    }

    field->len = p - field->data;

    return NGX_CONF_OK;
}


static char *
ngx_http_identity_secret_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t  *value, *field;

    field = (ngx_str_t *) ((u_char *) conf + cmd->offset);
    value = cf->args->elts;

    if (ngx_http_identity_read_secret(cf, &value[1], field) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_identity_algs(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_identity_provider_t *pr = conf;

    ngx_str_t   *value;
    ngx_uint_t   i, j;

    static char *known[] = { "RS256", "RS384", "RS512", "PS256", "PS384",
                             "PS512", "ES256", "ES384", "ES512", NULL };

    if (pr->signing_algs != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* asymmetric algorithms only: never "none", never a shared secret */

    for (i = 1; i < cf->args->nelts; i++) {
        for (j = 0; known[j]; j++) {
            if (ngx_strlen(known[j]) == value[i].len
                && ngx_strncmp(known[j], value[i].data, value[i].len) == 0)
            {
                break;
            }
        }

        if (known[j] == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\"", &value[i],
                               &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    return ngx_http_identity_str_list(cf, cmd, conf);
}


/* a file's contents, NUL-terminated (metadata, PEM) */

static char *
ngx_http_identity_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t  *value, *field;

    field = (ngx_str_t *) ((u_char *) conf + cmd->offset);
    value = cf->args->elts;

    if (ngx_http_identity_read_file(cf, &value[1], field, 1024 * 1024)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_identity_nameid_format(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_identity_provider_t *pr = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    static ngx_str_t  formats[][2] = {
        { ngx_string("persistent"),
          ngx_string("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent") },
        { ngx_string("transient"),
          ngx_string("urn:oasis:names:tc:SAML:2.0:nameid-format:transient") },
        { ngx_string("email"),
          ngx_string("urn:oasis:names:tc:SAML:1.1:nameid-format:"
                     "emailAddress") },
        { ngx_string("unspecified"),
          ngx_string("urn:oasis:names:tc:SAML:1.1:nameid-format:"
                     "unspecified") }
    };

    value = cf->args->elts;

    for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        if ((value[1].len == formats[i][0].len
             && ngx_strncmp(value[1].data, formats[i][0].data,
                            value[1].len) == 0)
            || (value[1].len == formats[i][1].len
                && ngx_strncmp(value[1].data, formats[i][1].data,
                               value[1].len) == 0))
        {
            pr->nameid_format = formats[i][1];
            return NGX_CONF_OK;
        }
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\"", &value[1],
                       &cmd->name);

    return NGX_CONF_ERROR;
}


/* attribute_map id=uid email=mail name=displayName username=uid ... */

static char *
ngx_http_identity_attribute_map(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_identity_provider_t *pr = conf;

    u_char      *eq;
    ngx_str_t   *value, key;
    ngx_uint_t   i, j;

    static ngx_str_t  keys[] = {
        ngx_string("id"), ngx_string("email"), ngx_string("name"),
        ngx_string("username"), ngx_string("groups")
    };

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        eq = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');

        if (eq == NULL || eq + 1 == value[i].data + value[i].len) {
            goto invalid;
        }

        key.data = value[i].data;
        key.len = eq - value[i].data;

        /* oauth: where the user info says the e-mail is verified */

        if (key.len == sizeof("email_verified") - 1
            && ngx_strncmp(key.data, "email_verified", key.len) == 0
            && cmd->name.len == sizeof("claim_map") - 1)
        {
            pr->email_verified.data = eq + 1;
            pr->email_verified.len = value[i].data + value[i].len - eq - 1;
            continue;
        }

        for (j = 0; j < 5; j++) {
            if (key.len == keys[j].len
                && ngx_strncmp(key.data, keys[j].data, key.len) == 0)
            {
                break;
            }
        }

        if (j == 5) {
            goto invalid;
        }

        /* NUL-terminated: compared with lasso's strings */

        pr->attributes[j].data = eq + 1;
        pr->attributes[j].len = value[i].data + value[i].len - eq - 1;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\"", &value[i],
                       &cmd->name);

    return NGX_CONF_ERROR;
}


char *
ngx_http_identity_identity(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_identity_loc_conf_t *ilcf = conf;

    ngx_str_t  *value;

    if (ilcf->provider != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        ilcf->provider = NULL;
        return NGX_CONF_OK;
    }

    /* a provider may be defined after its first use */

    ilcf->provider = ngx_http_identity_provider_get(cf, &value[1]);
    if (ilcf->provider == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_http_identity_provider_t *
ngx_http_identity_provider_get(ngx_conf_t *cf, ngx_str_t *name)
{
    ngx_http_identity_provider_t   *pr, **pp;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_identity_module);

    pr = ngx_http_identity_provider_named(imcf, name);
    if (pr) {
        return pr;
    }

    pr = ngx_pcalloc(cf->pool, sizeof(ngx_http_identity_provider_t));
    if (pr == NULL) {
        return NULL;
    }

    pp = ngx_array_push(&imcf->providers);
    if (pp == NULL) {
        return NULL;
    }

    pr->name = *name;
    pr->index = imcf->providers.nelts - 1;
    pr->conf_file = cf->conf_file->file.name;
    pr->conf_line = cf->conf_file->line;
    *pp = pr;

    return pr;
}
