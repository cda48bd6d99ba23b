
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The SAML IdP and SP as lasso sees them, below ngx_http_identity_saml.c:
 * lasso set up once, the SP's entity id, ACS URL and metadata XML from
 * configuration, a LassoServer built for each thread task from them and
 * the IdP metadata, that IdP metadata kept per worker and refreshed from
 * idp_metadata_url in the thread, and which SAML provider of this server
 * an endpoint or a kept login is for.  The task struct is declared in
 * ngx_http_identity_saml_idp.h; nothing here calls back into saml.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <lasso/lasso.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_task.h"
#include "ngx_http_identity_fetch.h"
#include "ngx_http_identity_saml_idp.h"
#include "ngx_http_identity_metrics.h"


/* the IdP metadata last refreshed from idp_metadata_url, per worker */

typedef struct {
    char                           *metadata;
    time_t                          fetched;
    time_t                          attempted;
} ngx_http_identity_saml_cache_t;


#define NGX_HTTP_IDENTITY_SAML_RETRY  10     /* s between failed refreshes */


static void ngx_http_identity_saml_log(const gchar *domain,
    GLogLevelFlags level, const gchar *message, gpointer data);
static char *ngx_http_identity_saml_refresh(ngx_http_identity_saml_task_t *t);
static void ngx_http_identity_saml_caches_free(void *data);
static void ngx_http_identity_saml_task_free(void *data);


/* lasso and libxml2 are set up once, in the master, before any thread */

ngx_int_t
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
 * The SP's entity id, ACS URL and metadata, from configuration only: the
 * server's identity_public_url (which "nginx -t" requires where a SAML
 * provider is used) and sp_entity_id.  A Host header never enters them,
 * or a response made for another SP could be replayed here under its
 * name.
 */

ngx_int_t
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

ngx_int_t
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
        entity->data = (u_char *) ngx_http_identity_cstr(pool,
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

ngx_int_t
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


LassoServer *
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
    uint64_t                       start;
    gpointer                       key, value;
    ngx_uint_t                     same;
    LassoServer                   *check;
    GHashTableIter                 iter;
    ngx_http_identity_provider_t  *pr;

    pr = t->provider;

    start = ngx_http_identity_metrics_now();
    md = ngx_http_identity_http_get(t->metadata_url, pr->http_timeout,
                                    t->refresh_error,
                                    NGX_HTTP_IDENTITY_ERRLEN);
    ngx_http_identity_metrics_idp(pr, NGX_HTTP_IDENTITY_CALL_SAML, start);
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


ngx_int_t
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

ngx_int_t
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

    t->idp_metadata = ngx_http_identity_cstr(r->pool, &md);
    if (t->idp_metadata == NULL) {
        return NGX_ERROR;
    }

    if (pr->idp_metadata_url.len
        && now - cache->fetched >= pr->metadata_ttl
        && now - cache->attempted >= NGX_HTTP_IDENTITY_SAML_RETRY)
    {
        t->metadata_url = ngx_http_identity_cstr(r->pool,
                                                      &pr->idp_metadata_url);
        if (t->metadata_url == NULL) {
            return NGX_ERROR;
        }

        cache->attempted = now;
    }

    return ngx_http_identity_task_post(r, pr, run, done,
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


void
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


/* a provider for this server's endpoints: ?provider=, else the first */

ngx_http_identity_provider_t *
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

ngx_uint_t
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

ngx_http_identity_provider_t *
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


void
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
