
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The $identity_* variables: one table, added in preconfiguration; the
 * getters read the session the access phase put in the request ctx.
 * variables_used() tells the store which session fields to fetch.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_store.h"
#include "ngx_http_identity_variables.h"


typedef struct {
    ngx_str_t                   name;
    ngx_uint_t                  offset;
    ngx_http_get_variable_pt    get;      /* NULL: the string at offset */
    ngx_uint_t                  need;     /* session fields it reads */
} ngx_http_identity_var_t;


static ngx_http_identity_session_t *ngx_http_identity_variable_session(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_variable_value(
    ngx_http_variable_value_t *v, u_char *data, size_t len);
static ngx_int_t ngx_http_identity_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_identity_groups_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_identity_access_token_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_identity_cache_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_identity_var_t  ngx_http_identity_vars[] = {
    { ngx_string("identity_id"),
      offsetof(ngx_http_identity_session_t, identity_id), NULL, 0 },
    { ngx_string("identity_email"),
      offsetof(ngx_http_identity_session_t, email), NULL, 0 },
    { ngx_string("identity_name"),
      offsetof(ngx_http_identity_session_t, name), NULL, 0 },
    { ngx_string("identity_username"),
      offsetof(ngx_http_identity_session_t, username), NULL, 0 },
    { ngx_string("identity_provider"),
      offsetof(ngx_http_identity_session_t, provider), NULL, 0 },
    { ngx_string("identity_provider_user_id"),
      offsetof(ngx_http_identity_session_t, provider_user_id), NULL, 0 },
    { ngx_string("identity_session_id"),
      offsetof(ngx_http_identity_session_t, id), NULL, 0 },
    { ngx_string("identity_auth_id"),
      offsetof(ngx_http_identity_session_t, auth_id), NULL, 0 },
    { ngx_string("identity_browser"),
      offsetof(ngx_http_identity_session_t, meta.browser), NULL,
      NGX_HTTP_IDENTITY_NEED_META },
    { ngx_string("identity_browser_version"),
      offsetof(ngx_http_identity_session_t, meta.browser_version), NULL,
      NGX_HTTP_IDENTITY_NEED_META },
    { ngx_string("identity_os"),
      offsetof(ngx_http_identity_session_t, meta.os), NULL,
      NGX_HTTP_IDENTITY_NEED_META },
    { ngx_string("identity_os_version"),
      offsetof(ngx_http_identity_session_t, meta.os_version), NULL,
      NGX_HTTP_IDENTITY_NEED_META },
    { ngx_string("identity_device_type"),
      offsetof(ngx_http_identity_session_t, meta.device_type), NULL,
      NGX_HTTP_IDENTITY_NEED_META },
    { ngx_string("identity_country"),
      offsetof(ngx_http_identity_session_t, meta.country), NULL,
      NGX_HTTP_IDENTITY_NEED_META },
    { ngx_string("identity_latitude"),
      offsetof(ngx_http_identity_session_t, meta.latitude), NULL,
      NGX_HTTP_IDENTITY_NEED_META },
    { ngx_string("identity_longitude"),
      offsetof(ngx_http_identity_session_t, meta.longitude), NULL,
      NGX_HTTP_IDENTITY_NEED_META },
    { ngx_string("identity_groups"), 0,
      ngx_http_identity_groups_variable, NGX_HTTP_IDENTITY_NEED_RULES },
    { ngx_string("identity_access_token"), 0,
      ngx_http_identity_access_token_variable, NGX_HTTP_IDENTITY_NEED_TOKEN },
    { ngx_string("identity_session_cache"), 0,
      ngx_http_identity_cache_variable, 0 },
    { ngx_null_string, 0, NULL, 0 }
};


/*
 * How the session was found, as $upstream_cache_status says it: HIT (the
 * node's cache), MISS (Redis, then cached), BYPASS (Redis: the cache is not
 * trusted now); empty without a cache or a session.
 */

static ngx_int_t
ngx_http_identity_cache_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_identity_ctx_t  *ctx;

    static ngx_str_t  status[] = {
        ngx_null_string,
        ngx_string("HIT"),
        ngx_string("MISS"),
        ngx_string("BYPASS")
    };

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_identity_module);

    if (ctx == NULL || !ctx->authenticated || ctx->cache_status > 3) {
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_http_identity_variable_value(v,
                                            status[ctx->cache_status].data,
                                            status[ctx->cache_status].len);
}


/* the session of an authenticated request, or NULL */

static ngx_http_identity_session_t *
ngx_http_identity_variable_session(ngx_http_request_t *r)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_identity_module);

    if (ctx == NULL || !ctx->authenticated) {
        return NULL;
    }

    return &ctx->session;
}


static ngx_int_t
ngx_http_identity_variable_value(ngx_http_variable_value_t *v, u_char *data,
    size_t len)
{
    v->data = data;
    v->len = len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_identity_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                    *s;
    ngx_http_identity_session_t  *sess;

    sess = ngx_http_identity_variable_session(r);

    if (sess == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((u_char *) sess + data);

    return ngx_http_identity_variable_value(v, s->data, s->len);
}


/* groups, comma-separated as a header would list them */

static ngx_int_t
ngx_http_identity_groups_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                       *p, *q, *list;
    ngx_http_identity_session_t  *sess;

    sess = ngx_http_identity_variable_session(r);

    if (sess == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    list = ngx_pnalloc(r->pool, sess->groups.len);
    if (list == NULL && sess->groups.len) {
        return NGX_ERROR;
    }

    p = list;

    for (q = sess->groups.data; q < sess->groups.data + sess->groups.len; q++) {
        *p++ = (*q == '\n') ? ',' : *q;
    }

    return ngx_http_identity_variable_value(v, list, sess->groups.len);
}


/* the OAuth access token, decrypted only when something uses it */

static ngx_int_t
ngx_http_identity_access_token_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                       plain;
    ngx_http_identity_session_t    *sess;
    ngx_http_identity_main_conf_t  *imcf;

    sess = ngx_http_identity_variable_session(r);
    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    if (sess == NULL || imcf->token_key == NULL
        || sess->access_token.len == 0)
    {
        v->not_found = 1;
        return NGX_OK;
    }

    if (ngx_http_identity_decrypt(r->pool, imcf->token_key, &sess->id,
                                  &sess->access_token, &plain)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "identity: the access token of session \"%V\" does "
                      "not decrypt with identity_token_key_file",
                      &sess->id);
        v->not_found = 1;
        return NGX_OK;
    }

    return ngx_http_identity_variable_value(v, plain.data, plain.len);
}


ngx_int_t
ngx_http_identity_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t      *var;
    ngx_http_identity_var_t  *v;

    for (v = ngx_http_identity_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, NGX_HTTP_VAR_NOCACHEABLE);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get ? v->get : ngx_http_identity_variable;
        var->data = v->offset;
    }

    return NGX_OK;
}


/*
 * Which session fields the configuration's variables read: a lookup then
 * fetches those, and no more, on every request.
 */

void
ngx_http_identity_variables_used(ngx_conf_t *cf,
    ngx_http_core_main_conf_t *cmcf)
{
    ngx_uint_t                      i;
    ngx_http_variable_t            *v;
    ngx_http_identity_var_t        *iv;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_identity_module);
    v = cmcf->variables.elts;

    for (i = 0; i < cmcf->variables.nelts; i++) {
        for (iv = ngx_http_identity_vars; iv->name.len; iv++) {
            if (iv->need
                && iv->name.len == v[i].name.len
                && ngx_strncmp(iv->name.data, v[i].name.data, v[i].name.len)
                   == 0)
            {
                imcf->need |= iv->need;
            }
        }
    }
}
