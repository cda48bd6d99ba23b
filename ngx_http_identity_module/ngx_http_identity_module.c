
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The module: its http-level directives, the main, server and location
 * conf (create, merge and the checks across directives), and init.  The
 * rest lives in the files below it:
 *
 *   provider.c   the identity_provider { } block and identity NAME;
 *   variables.c  the $identity_* variables;
 *   access.c     access phase: a session cookie is checked on every
 *                request, else a browser is sent to login;
 *   endpoint.c   server rewrite phase: {identity_path}callback, login and
 *                logout work whichever location of the server is protected;
 *   login.c      a pending login, and finishing one once a protocol has
 *                the claims;
 *   request.c    helpers every request-handling file shares;
 *   redis.c      the identity_redis directive, next to the connection.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <curl/curl.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_access.h"
#include "ngx_http_identity_admin.h"
#include "ngx_http_identity_cache.h"
#include "ngx_http_identity_cookie.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_endpoint.h"
#include "ngx_http_identity_meta.h"
#include "ngx_http_identity_events.h"
#include "ngx_http_identity_metrics.h"
#include "ngx_http_identity_node.h"
#include "ngx_http_identity_protocol.h"
#include "ngx_http_identity_provider.h"
#include "ngx_http_identity_redis.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_rules.h"
#include "ngx_http_identity_store.h"
#include "ngx_http_identity_store_risk.h"
#include "ngx_http_identity_task.h"
#include "ngx_http_identity_variables.h"


static ngx_int_t ngx_http_identity_init(ngx_conf_t *cf);
static void *ngx_http_identity_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_identity_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_identity_create_srv_conf(ngx_conf_t *cf);
static char *ngx_http_identity_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static void *ngx_http_identity_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_identity_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_identity_add_auth(ngx_conf_t *cf,
    ngx_http_identity_srv_conf_t *iscf, ngx_http_identity_loc_conf_t *conf);
static ngx_int_t ngx_http_identity_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_identity_init_process(ngx_cycle_t *cycle);
static void ngx_http_identity_exit_process(ngx_cycle_t *cycle);
static char *ngx_http_identity_token_key_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);


static ngx_command_t  ngx_http_identity_commands[] = {

    { ngx_string("identity_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_identity_redis_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("identity_session_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_identity_cache_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("identity_audit_stream_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_identity_main_conf_t, audit_stream_size),
      NULL },

    { ngx_string("identity_audit_log"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_identity_audit_log,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("identity_redis_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_identity_main_conf_t, key_prefix),
      NULL },

    { ngx_string("identity_provider"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_TAKE1,
      ngx_http_identity_provider_block,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("identity"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_identity_identity,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("identity_path"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_identity_path,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("identity_risk"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_identity_risk_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("identity_public_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_http_identity_public_url,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("identity_idle_session_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_identity_loc_conf_t, idle_timeout),
      NULL },

    { ngx_string("identity_max_session_duration"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_identity_loc_conf_t, max_duration),
      NULL },

    { ngx_string("identity_session_touch_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_identity_loc_conf_t, touch_interval),
      NULL },

    { ngx_string("identity_cookie_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_identity_loc_conf_t, cookie_name),
      NULL },

    { ngx_string("identity_cookie_domain"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_identity_loc_conf_t, cookie_domain),
      NULL },

    { ngx_string("identity_auth_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_identity_loc_conf_t, auth_id),
      NULL },

    { ngx_string("identity_allow_cors_preflight"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_identity_loc_conf_t, cors_preflight),
      NULL },

    { ngx_string("identity_allow_email"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_identity_rules_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) NGX_HTTP_IDENTITY_RULE_EMAIL },

    { ngx_string("identity_allow_email_domain"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_identity_rules_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) NGX_HTTP_IDENTITY_RULE_DOMAIN },

    { ngx_string("identity_require_group"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_identity_rules_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) NGX_HTTP_IDENTITY_RULE_GROUP },

    { ngx_string("identity_require_claim"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_identity_rules_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) NGX_HTTP_IDENTITY_RULE_CLAIM },

    { ngx_string("identity_geoip_database"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_identity_meta_geoip,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("identity_user_agent_regexes"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_identity_meta_regexes,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("identity_token_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_identity_token_key_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("identity_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_identity_admin_conf,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("identity_admin_token_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_identity_admin_token_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_identity_module_ctx = {
    ngx_http_identity_add_variables,       /* preconfiguration */
    ngx_http_identity_init,                /* postconfiguration */

    ngx_http_identity_create_main_conf,    /* create main configuration */
    ngx_http_identity_init_main_conf,      /* init main configuration */

    ngx_http_identity_create_srv_conf,     /* create server configuration */
    ngx_http_identity_merge_srv_conf,      /* merge server configuration */

    ngx_http_identity_create_loc_conf,     /* create location configuration */
    ngx_http_identity_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_identity_module = {
    NGX_MODULE_V1,
    &ngx_http_identity_module_ctx,         /* module context */
    ngx_http_identity_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_identity_init_module,         /* init module */
    ngx_http_identity_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_identity_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_identity_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt            *h;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_identity_main_conf_t  *imcf;

    static ngx_str_t  request_id = ngx_string("request_id");

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_identity_module);

    imcf->request_id = ngx_http_get_variable_index(cf, &request_id);
    if (imcf->request_id == NGX_ERROR) {
        return NGX_ERROR;
    }

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_SERVER_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_identity_endpoint_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_identity_access_handler;

    ngx_http_identity_variables_used(cf, cmcf);

    return NGX_OK;
}


static void *
ngx_http_identity_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_identity_main_conf_t));
    if (imcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&imcf->providers, cf->pool, 4,
                       sizeof(ngx_http_identity_provider_t *))
        != NGX_OK)
    {
        return NULL;
    }

    imcf->protocols = ngx_http_identity_protocols;
    imcf->audit_stream_size = NGX_CONF_UNSET;

    /* NGX_CONF_UNSET_UINT each */
    ngx_memset(imcf->risk_action, 0xff, sizeof(imcf->risk_action));
    imcf->risk_speed = NGX_CONF_UNSET_UINT;
    imcf->risk_max = NGX_CONF_UNSET_UINT;

    return imcf;
}


static char *
ngx_http_identity_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_identity_main_conf_t *imcf = conf;

    ngx_str_t                       name;
    ngx_uint_t                      i;
    ngx_http_identity_provider_t  **pp;

    pp = imcf->providers.elts;

    for (i = 0; i < imcf->providers.nelts; i++) {
        if (!pp[i]->defined) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown identity provider \"%V\" in %V:%ui",
                               &pp[i]->name, &pp[i]->conf_file,
                               pp[i]->conf_line);
            return NGX_CONF_ERROR;
        }

        if (pp[i]->userinfo_refresh_interval && imcf->token_key == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"userinfo_refresh_interval\" of identity "
                               "provider \"%V\" needs "
                               "\"identity_token_key_file\"", &pp[i]->name);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_identity_meta_init_conf(cf, imcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_value(imcf->audit_stream_size, 10000);

    ngx_http_identity_risk_init_conf(imcf);

    if (imcf->key_prefix.data == NULL) {
        ngx_str_set(&imcf->key_prefix, "identity:");
    }

    if (ngx_http_identity_store_init_conf(cf, imcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (imcf->providers.nelts) {
        if (!imcf->redis.configured) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"identity_provider\" needs "
                               "\"identity_redis\"");
            return NGX_CONF_ERROR;
        }

        ngx_str_set(&name, "default");

        imcf->thread_pool = ngx_thread_pool_add(cf, &name);
        if (imcf->thread_pool == NULL) {
            return NGX_CONF_ERROR;
        }

        if (ngx_http_identity_metrics_init_conf(cf, imcf->providers.nelts)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_identity_create_srv_conf(ngx_conf_t *cf)
{
    ngx_http_identity_srv_conf_t  *iscf;

    iscf = ngx_pcalloc(cf->pool, sizeof(ngx_http_identity_srv_conf_t));
    if (iscf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     iscf->path = { 0, NULL };
     *     iscf->public_url = { 0, NULL };
     *     iscf->providers = NULL;
     */

    iscf->public_https = NGX_CONF_UNSET_UINT;

    return iscf;
}


static char *
ngx_http_identity_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_identity_srv_conf_t *prev = parent;
    ngx_http_identity_srv_conf_t *conf = child;

    ngx_http_server_name_t    *sn;
    ngx_http_core_srv_conf_t  *cscf;

    ngx_conf_merge_str_value(conf->path, prev->path, "/_identity/");
    ngx_conf_merge_str_value(conf->public_url, prev->public_url, "");
    ngx_conf_merge_uint_value(conf->public_https, prev->public_https, 0);

    /*
     * The server's names, for ngx_http_identity_public_origin(): nginx
     * keeps its own list in the configuration's temporary pool.
     */

    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);

    conf->names = ngx_array_create(cf->pool, cscf->server_names.nelts + 1,
                                   sizeof(ngx_http_server_name_t));
    if (conf->names == NULL) {
        return NGX_CONF_ERROR;
    }

    sn = ngx_array_push_n(conf->names, cscf->server_names.nelts);
    if (sn == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(sn, cscf->server_names.elts,
               cscf->server_names.nelts * sizeof(ngx_http_server_name_t));

    return NGX_CONF_OK;
}


static void *
ngx_http_identity_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_identity_loc_conf_t  *ilcf;

    ilcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_identity_loc_conf_t));
    if (ilcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     ilcf->cookie_name = { 0, NULL };
     *     ilcf->cookie_domain = { 0, NULL };
     *     ilcf->auth_id = { 0, NULL };
     *     ilcf->rules = NULL;
     */

    ilcf->provider = NGX_CONF_UNSET_PTR;
    ilcf->admin = NGX_CONF_UNSET;
    ilcf->idle_timeout = NGX_CONF_UNSET;
    ilcf->max_duration = NGX_CONF_UNSET;
    ilcf->touch_interval = NGX_CONF_UNSET;
    ilcf->cors_preflight = NGX_CONF_UNSET;

    return ilcf;
}


static char *
ngx_http_identity_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_identity_loc_conf_t *prev = parent;
    ngx_http_identity_loc_conf_t *conf = child;

    ngx_uint_t                      i;
    ngx_array_t                    *own_rules;
    ngx_http_core_srv_conf_t       *cscf;
    ngx_http_identity_loc_conf_t   *slcf;
    ngx_http_identity_srv_conf_t   *iscf;
    ngx_http_identity_main_conf_t  *imcf;
    ngx_http_identity_provider_t  **pp;

    ngx_conf_merge_ptr_value(conf->provider, prev->provider, NULL);
    ngx_conf_merge_sec_value(conf->idle_timeout, prev->idle_timeout, 86400);
    ngx_conf_merge_sec_value(conf->max_duration, prev->max_duration,
                             7 * 86400);
    ngx_conf_merge_sec_value(conf->touch_interval, prev->touch_interval, 60);
    ngx_conf_merge_str_value(conf->cookie_name, prev->cookie_name,
                             "identity_session");
    ngx_conf_merge_str_value(conf->cookie_domain, prev->cookie_domain, "");
    ngx_conf_merge_str_value(conf->auth_id, prev->auth_id, "");
    ngx_conf_merge_value(conf->cors_preflight, prev->cors_preflight, 0);

    own_rules = conf->rules;

    if (conf->rules == NULL) {
        conf->rules = prev->rules;
    }

    if (ngx_http_identity_cookie_auth_name(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_str_value(conf->admin_token_hash, prev->admin_token_hash,
                             "");

    /*
     * identity_admin names the one location whose content is the admin
     * API; a location nested in it is an ordinary protected location.
     */

    if (conf->admin == NGX_CONF_UNSET) {
        conf->admin = 0;
    }

    if (conf->admin
        && ngx_http_identity_admin_conf_check(cf, conf, own_rules) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (conf->idle_timeout <= 0 || conf->max_duration <= 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "session timeouts must be positive");
        return NGX_CONF_ERROR;
    }

    /* an active session must be touched before its idle timeout ends */

    if (conf->touch_interval > conf->idle_timeout / 2) {
        conf->touch_interval = conf->idle_timeout / 2;
    }

    if (conf->provider == NULL) {
        return NGX_CONF_OK;
    }

    iscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_identity_module);

    if (conf->auth_id.len
        && ngx_http_identity_add_auth(cf, iscf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /*
     * A SAML provider's entity id and ACS URL are part of what the IdP
     * signs for: they must be known here, never taken from a request.
     */

    if (conf->provider->type == NGX_HTTP_IDENTITY_SAML
        && iscf->public_url.len == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "SAML identity provider \"%V\" needs "
                           "\"identity_public_url\" in the server that uses "
                           "it: the SP's entity id and ACS URL cannot come "
                           "from the request", &conf->provider->name);
        return NGX_CONF_ERROR;
    }

    /*
     * Every location of the server strips the cookies of all of them: the
     * session cookies of this one, and the state cookie, which is named
     * after the server's identity_cookie_name.
     */

    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);
    slcf = cscf->ctx->loc_conf[ngx_http_identity_module.ctx_index];

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_identity_module);

    if (ngx_http_identity_add_unique(cf->pool, &imcf->cookies,
                                     &conf->cookie_name)
        != NGX_OK
        || ngx_http_identity_add_unique(cf->pool, &imcf->cookies,
                                        &slcf->cookie_name)
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* remember which providers this server uses, for its login endpoint */

    if (iscf->providers == NULL) {
        iscf->providers = ngx_array_create(cf->pool, 2,
                                        sizeof(ngx_http_identity_provider_t *));
        if (iscf->providers == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    pp = iscf->providers->elts;

    for (i = 0; i < iscf->providers->nelts; i++) {
        if (pp[i] == conf->provider) {
            return NGX_CONF_OK;
        }
    }

    pp = ngx_array_push(iscf->providers);
    if (pp == NULL) {
        return NGX_CONF_ERROR;
    }

    *pp = conf->provider;

    return NGX_CONF_OK;
}


/* the first location of an auth id gives its login endpoint's settings */

static ngx_int_t
ngx_http_identity_add_auth(ngx_conf_t *cf, ngx_http_identity_srv_conf_t *iscf,
    ngx_http_identity_loc_conf_t *conf)
{
    ngx_http_identity_loc_conf_t  **lp;

    if (ngx_http_identity_find_auth(iscf, &conf->auth_id)) {
        return NGX_OK;
    }

    if (iscf->auths == NULL) {
        iscf->auths = ngx_array_create(cf->pool, 2,
                                       sizeof(ngx_http_identity_loc_conf_t *));
        if (iscf->auths == NULL) {
            return NGX_ERROR;
        }
    }

    lp = ngx_array_push(iscf->auths);
    if (lp == NULL) {
        return NGX_ERROR;
    }

    *lp = conf;

    return NGX_OK;
}


static ngx_int_t
ngx_http_identity_init_module(ngx_cycle_t *cycle)
{
    /* libcurl's global state must be set up before any thread uses it */

    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "identity: curl_global_init() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_identity_init_process(ngx_cycle_t *cycle)
{
    ngx_http_identity_protocol_t   **pp;
    ngx_http_identity_main_conf_t   *imcf;

    imcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_identity_module);
    if (imcf == NULL) {
        return NGX_OK;
    }

    if (ngx_http_identity_crypto_init() != NGX_OK
        || ngx_http_identity_task_init_process(cycle, imcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (pp = imcf->protocols; *pp; pp++) {
        if ((*pp)->init_process && (*pp)->init_process(cycle) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (ngx_http_identity_redis_init(cycle, &imcf->redis) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_identity_node_init_process(cycle, imcf);
}


static void
ngx_http_identity_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_identity_node_exit_process(cycle);
    ngx_http_identity_redis_done(cycle);
}


/* the secret that encrypts OAuth tokens kept in Redis */

static char *
ngx_http_identity_token_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_identity_main_conf_t *imcf = conf;

    ngx_str_t  *value, secret;

    if (imcf->token_key) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_http_identity_read_secret(cf, &value[1], &secret) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (secret.len < 32) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must hold at least 32 bytes of secret",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    imcf->token_key = ngx_pnalloc(cf->pool, NGX_HTTP_IDENTITY_TOKEN_KEY_LEN);
    if (imcf->token_key == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_identity_token_key(&secret, imcf->token_key) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ngx_explicit_memzero(secret.data, secret.len);

    return NGX_CONF_OK;
}
