
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * What a login tells about its client, kept with the new session: the user
 * agent parsed with uap-core's regexes (ngx_http_identity_ua.c, with a
 * per-worker cache keyed by the string) and the location of the client
 * address in MaxMind DB files (ngx_http_identity_geo.c).  Both are looked
 * at once per new session, never per request; the $identity_country-like
 * variables read what the session record holds.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_ua.h"
#include "ngx_http_identity_geo.h"
#include "ngx_http_identity_meta.h"
#include "ngx_http_identity_claims.h"


#define NGX_HTTP_IDENTITY_UA_REGEXES  "/usr/share/uap-core/regexes.yaml"


static ngx_int_t ngx_http_identity_meta_load_ua(ngx_conf_t *cf,
    ngx_http_identity_main_conf_t *imcf, ngx_str_t *path);
static void ngx_http_identity_meta_ua_cleanup(void *data);
static void ngx_http_identity_meta_geo_cleanup(void *data);
static ngx_int_t ngx_http_identity_meta_copy(ngx_pool_t *pool, char *s,
    ngx_str_t *out);


/* identity_geoip_database path;  may be given once per file (IPv4, IPv6) */

char *
ngx_http_identity_meta_geoip(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_identity_main_conf_t *imcf = conf;

    char                       err[256];
    ngx_str_t                 *value, path;
    ngx_pool_cleanup_t        *cln;
    ngx_http_identity_geo_t   *g, **gp;

    value = cf->args->elts;
    path = value[1];

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (imcf->geo == NULL) {
        imcf->geo = ngx_array_create(cf->pool, 2,
                                     sizeof(ngx_http_identity_geo_t *));
        if (imcf->geo == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    g = ngx_http_identity_geo_open((char *) path.data, err, sizeof(err));
    if (g == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\": %s", &value[1],
                           &cmd->name, err);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_identity_meta_geo_cleanup;
    cln->data = g;

    gp = ngx_array_push(imcf->geo);
    if (gp == NULL) {
        return NGX_CONF_ERROR;
    }

    *gp = g;

    return NGX_CONF_OK;
}


/* identity_user_agent_regexes path | off; */

char *
ngx_http_identity_meta_regexes(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_identity_main_conf_t *imcf = conf;

    ngx_str_t  *value, path;

    if (imcf->ua_set) {
        return "is duplicate";
    }

    imcf->ua_set = 1;
    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        return NGX_CONF_OK;
    }

    path = value[1];

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK
        || ngx_http_identity_meta_load_ua(cf, imcf, &path) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* uap-core's regexes from Debian's package, unless told otherwise */

ngx_int_t
ngx_http_identity_meta_init_conf(ngx_conf_t *cf,
    ngx_http_identity_main_conf_t *imcf)
{
    ngx_str_t        path;
    ngx_file_info_t  fi;

    if (imcf->ua_set || imcf->providers.nelts == 0) {
        return NGX_OK;
    }

    ngx_str_set(&path, NGX_HTTP_IDENTITY_UA_REGEXES);

    if (ngx_file_info(path.data, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"%V\" not found: user agents are not parsed "
                           "(install uap-core, or set "
                           "\"identity_user_agent_regexes\")", &path);
        return NGX_OK;
    }

    return ngx_http_identity_meta_load_ua(cf, imcf, &path);
}


static ngx_int_t
ngx_http_identity_meta_load_ua(ngx_conf_t *cf,
    ngx_http_identity_main_conf_t *imcf, ngx_str_t *path)
{
    char                 err[256];
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    imcf->ua = ngx_http_identity_ua_load((char *) path->data, err,
                                         sizeof(err));
    if (imcf->ua == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "user agent regexes \"%V\": %s", path, err);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_identity_meta_ua_cleanup;
    cln->data = imcf->ua;

    return NGX_OK;
}


static void
ngx_http_identity_meta_ua_cleanup(void *data)
{
    ngx_http_identity_ua_free(data);
}


static void
ngx_http_identity_meta_geo_cleanup(void *data)
{
    ngx_http_identity_geo_close(data);
}


/*
 * The metadata of the request that makes a session: the client address,
 * its User-Agent, what the regexes make of it, and where the address is.
 */

ngx_int_t
ngx_http_identity_meta_collect(ngx_http_request_t *r,
    ngx_http_identity_meta_t *m)
{
    u_char                          *p;
    ngx_str_t                       *ua;
    ngx_uint_t                       i;
    ngx_http_identity_ua_t           parsed;
    ngx_http_identity_geo_t        **gp;
    ngx_http_identity_main_conf_t   *imcf;
    ngx_http_identity_geo_result_t   geo;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    ngx_memzero(m, sizeof(ngx_http_identity_meta_t));

    m->ip = r->connection->addr_text;

    ua = r->headers_in.user_agent ? &r->headers_in.user_agent->value : NULL;

    if (ua) {

        /* what is parsed is what the session keeps: its first 512 bytes */

        m->user_agent.data = ua->data;
        m->user_agent.len = ngx_http_identity_utf8_prefix(ua->data, ua->len,
                                             NGX_HTTP_IDENTITY_MAX_USER_AGENT);
    }

    if (imcf->ua && ua && ua->len) {

        ngx_http_identity_ua_parse_cached(imcf->ua,
                                          (char *) m->user_agent.data,
                                          m->user_agent.len, &parsed);

        if (ngx_http_identity_meta_copy(r->pool, parsed.browser, &m->browser)
            != NGX_OK
            || ngx_http_identity_meta_copy(r->pool, parsed.browser_version,
                                           &m->browser_version)
               != NGX_OK
            || ngx_http_identity_meta_copy(r->pool, parsed.os, &m->os)
               != NGX_OK
            || ngx_http_identity_meta_copy(r->pool, parsed.os_version,
                                           &m->os_version)
               != NGX_OK
            || ngx_http_identity_meta_copy(r->pool, parsed.device, &m->device)
               != NGX_OK
            || ngx_http_identity_meta_copy(r->pool, parsed.device_type,
                                           &m->device_type)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (imcf->geo == NULL) {
        return NGX_OK;
    }

    /* the first database that knows the address answers */

    gp = imcf->geo->elts;

    for (i = 0; i < imcf->geo->nelts; i++) {

        switch (ngx_http_identity_geo_lookup(gp[i], r->connection->sockaddr,
                                             &geo))
        {
        case NGX_HTTP_IDENTITY_GEO_OK:
            break;

        case NGX_HTTP_IDENTITY_GEO_ERROR:
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "identity: geo lookup of \"%V\" failed: %s",
                          &r->connection->addr_text, geo.error);
            continue;

        default:
            continue;
        }

        if (ngx_http_identity_meta_copy(r->pool, geo.country, &m->country)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (geo.has_location) {
            p = ngx_pnalloc(r->pool, 3 * 32);
            if (p == NULL) {
                return NGX_ERROR;
            }

            m->latitude.data = p;
            m->latitude.len = snprintf((char *) p, 32, "%.4f", geo.latitude);
            m->longitude.data = p + 32;
            m->longitude.len = snprintf((char *) p + 32, 32, "%.4f",
                                        geo.longitude);

            if (geo.accuracy_radius) {
                m->radius.data = p + 64;
                m->radius.len = ngx_sprintf(p + 64, "%ui",
                                            (ngx_uint_t) geo.accuracy_radius)
                                - (p + 64);
            }
        }

        break;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_identity_meta_copy(ngx_pool_t *pool, char *s, ngx_str_t *out)
{
    out->len = ngx_strlen(s);

    if (out->len == 0) {
        out->data = NULL;
        return NGX_OK;
    }

    out->data = ngx_pnalloc(pool, out->len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, s, out->len);

    return NGX_OK;
}
