
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The admin API's answers, in ngrok's shapes: ApplicationUser,
 * ApplicationSession (with the parsed user agent and the location), the
 * sites an identity used, and the error object; and sending a JSON
 * body.  Renders typed records (ngx_http_identity_store.h); knows nothing
 * of the routes, which are ngx_http_identity_admin.c's.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_store.h"
#include "ngx_http_identity_admin_json.h"


static json_t *ngx_http_identity_admin_json_site_id(ngx_pool_t *pool,
    ngx_str_t *url);
static void ngx_http_identity_admin_json_number(json_t *obj, char *key,
    ngx_str_t *v);
static void ngx_http_identity_admin_json_self(json_t *obj, ngx_str_t *base,
    char *kind, ngx_str_t *id);
static json_t *ngx_http_identity_admin_json_ref(ngx_str_t *base,
    char *kind, ngx_str_t *id);
static json_t *ngx_http_identity_admin_json_time(time_t t);
static json_t *ngx_http_identity_admin_json_risk(ngx_str_t *risk);


/* ApplicationUser */

json_t *
ngx_http_identity_admin_json_user(ngx_http_request_t *r, ngx_str_t *base,
    ngx_http_identity_identity_t *rec)
{
    json_t  *u, *idp;

    u = json_object();
    idp = json_object();

    ngx_http_identity_admin_json_self(u, base, "app/users/", &rec->id);

    json_object_set_new(idp, "name",
                        ngx_http_identity_admin_json_string(&rec->provider));
    json_object_set_new(idp, "url",
                        ngx_http_identity_admin_json_string(&rec->issuer));
    json_object_set_new(u, "identity_provider", idp);

    json_object_set_new(u, "provider_user_id",
                        ngx_http_identity_admin_json_string(
                                                     &rec->provider_user_id));
    json_object_set_new(u, "username",
                        ngx_http_identity_admin_json_string(&rec->username));
    json_object_set_new(u, "email",
                        ngx_http_identity_admin_json_string(&rec->email));
    json_object_set_new(u, "name",
                        ngx_http_identity_admin_json_string(&rec->name));
    json_object_set_new(u, "created_at",
                        ngx_http_identity_admin_json_time(rec->created_at));
    json_object_set_new(u, "last_active",
                        ngx_http_identity_admin_json_time(rec->last_active));
    json_object_set_new(u, "last_login",
                        ngx_http_identity_admin_json_time(rec->last_login));

    return u;
}


/* ApplicationSession, with the parsed user agent and the location */

json_t *
ngx_http_identity_admin_json_session(ngx_http_request_t *r, ngx_str_t *base,
    ngx_http_identity_session_t *rec)
{
    json_t                    *s, *bs, *ua, *loc, *ref, *id;
    ngx_http_identity_meta_t  *m;

    m = &rec->meta;
    s = json_object();
    bs = json_object();
    ua = json_object();
    loc = json_object();

    ngx_http_identity_admin_json_self(s, base, "app/sessions/", &rec->id);

    json_object_set_new(s, "public_url",
                        ngx_http_identity_admin_json_string(&rec->public_url));

    /* its site ("endpoint"): the public URL the session was made for */

    ref = json_object();

    id = ngx_http_identity_admin_json_site_id(r->pool, &rec->public_url);
    if (id) {
        json_object_set_new(ref, "id", id);
    }

    json_object_set_new(ref, "uri",
                        ngx_http_identity_admin_json_string(&rec->public_url));

    json_object_set_new(ua, "raw",
                        ngx_http_identity_admin_json_string(&m->user_agent));
    json_object_set_new(ua, "browser_name",
                        ngx_http_identity_admin_json_string(&m->browser));
    json_object_set_new(ua, "browser_version",
                        ngx_http_identity_admin_json_string(
                                                      &m->browser_version));
    json_object_set_new(ua, "os_name",
                        ngx_http_identity_admin_json_string(&m->os));
    json_object_set_new(ua, "os_version",
                        ngx_http_identity_admin_json_string(&m->os_version));
    json_object_set_new(ua, "device_type",
                        ngx_http_identity_admin_json_string(&m->device_type));
    json_object_set_new(ua, "device_family",
                        ngx_http_identity_admin_json_string(&m->device));

    json_object_set_new(bs, "user_agent", ua);
    json_object_set_new(bs, "ip_address",
                        ngx_http_identity_admin_json_string(&m->ip));

    if (m->country.len) {
        json_object_set_new(loc, "country_code",
                            ngx_http_identity_admin_json_string(&m->country));
    }

    ngx_http_identity_admin_json_number(loc, "latitude", &m->latitude);
    ngx_http_identity_admin_json_number(loc, "longitude", &m->longitude);
    ngx_http_identity_admin_json_number(loc, "lat_long_radius_km", &m->radius);

    json_object_set_new(bs, "location", loc);
    json_object_set_new(s, "browser_session", bs);

    json_object_set_new(s, "application_user",
                        ngx_http_identity_admin_json_ref(base, "app/users/",
                                                         &rec->identity_id));

    json_object_set_new(s, "created_at",
                        ngx_http_identity_admin_json_time(rec->created_at));
    json_object_set_new(s, "last_active",
                        ngx_http_identity_admin_json_time(rec->last_active));
    json_object_set_new(s, "expires_at",
                        ngx_http_identity_admin_json_time(rec->expires_at));
    json_object_set_new(s, "endpoint", ref);
    json_object_set_new(s, "risk",
                        ngx_http_identity_admin_json_risk(&rec->risk));

    return s;
}


/*
 * The session's risk flags (store_risk.c wrote them as a JSON array): an
 * array always, [] when none, or when what Redis holds is not one
 */

static json_t *
ngx_http_identity_admin_json_risk(ngx_str_t *risk)
{
    json_t  *v;

    if (risk->len == 0) {
        return json_array();
    }

    v = json_loadb((char *) risk->data, risk->len, 0, NULL);

    if (v == NULL || !json_is_array(v)) {
        json_decref(v);
        return json_array();
    }

    return v;
}


/* the sites an identity used ("endpoints"), as the store gives them */

json_t *
ngx_http_identity_admin_json_sites(ngx_http_request_t *r,
    ngx_http_identity_store_result_t *res)
{
    json_t                    *list, *e, *id;
    size_t                     i;
    ngx_http_identity_site_t  *sites;

    sites = res->sites;
    list = json_array();

    for (i = 0; i < res->nelts; i++) {
        id = ngx_http_identity_admin_json_site_id(r->pool, &sites[i].url);
        if (id == NULL) {
            continue;
        }

        e = json_object();

        json_object_set_new(e, "id", id);
        json_object_set_new(e, "public_url",
                            ngx_http_identity_admin_json_string(&sites[i].url));
        json_object_set_new(e, "first_accessed",
                            ngx_http_identity_admin_json_time(sites[i].first));
        json_object_set_new(e, "last_accessed",
                            ngx_http_identity_admin_json_time(sites[i].last));
        json_object_set_new(e, "session_count",
                            json_integer((json_int_t) sites[i].sessions));
        json_array_append_new(list, e);
    }

    return list;
}


/* a site's id: "ep_" and its hash, as sessions and sites both name it */

static json_t *
ngx_http_identity_admin_json_site_id(ngx_pool_t *pool, ngx_str_t *url)
{
    u_char     id[3 + NGX_HTTP_IDENTITY_SITE_HASH_LEN];
    ngx_str_t  hash;

    if (ngx_http_identity_site_hash(pool, url, &hash) != NGX_OK) {
        return NULL;
    }

    ngx_sprintf(id, "ep_%V", &hash);

    return json_stringn((char *) id, sizeof(id));
}


/* a number the session record holds as text, if it holds one */

static void
ngx_http_identity_admin_json_number(json_t *obj, char *key, ngx_str_t *v)
{
    u_char  buf[32];

    if (v->len == 0 || v->len >= sizeof(buf)) {
        return;
    }

    ngx_memcpy(buf, v->data, v->len);
    buf[v->len] = '\0';

    json_object_set_new(obj, key,
                        ngx_strlchr(buf, buf + v->len, '.')
                        ? json_real(strtod((char *) buf, NULL))
                        : json_integer(strtoll((char *) buf, NULL, 10)));
}


/* a record's own "id" and "uri", those of its Ref */

static void
ngx_http_identity_admin_json_self(json_t *obj, ngx_str_t *base, char *kind,
    ngx_str_t *id)
{
    json_t  *ref;

    json_object_set_new(obj, "id", ngx_http_identity_admin_json_string(id));

    ref = ngx_http_identity_admin_json_ref(base, kind, id);
    json_object_set(obj, "uri", json_object_get(ref, "uri"));
    json_decref(ref);
}


/* {id, uri}, ngrok's Ref */

static json_t *
ngx_http_identity_admin_json_ref(ngx_str_t *base, char *kind, ngx_str_t *id)
{
    char    *uri;
    size_t   len;
    json_t  *ref;

    ref = json_object();

    len = base->len + ngx_strlen(kind) + id->len;
    uri = malloc(len);
    if (uri == NULL) {
        return ref;
    }

    ngx_sprintf((u_char *) uri, "%V%s%V", base, kind, id);

    json_object_set_new(ref, "id", ngx_http_identity_admin_json_string(id));
    json_object_set_new(ref, "uri", json_stringn(uri, len));
    free(uri);

    return ref;
}


/* RFC 3339, UTC; null when unknown */

static json_t *
ngx_http_identity_admin_json_time(time_t t)
{
    u_char    buf[sizeof("1970-01-01T00:00:00Z")];
    ngx_tm_t  tm;

    if (t <= 0) {
        return json_null();
    }

    ngx_gmtime(t, &tm);

    ngx_sprintf(buf, "%4d-%02d-%02dT%02d:%02d:%02dZ",
                tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);

    return json_stringn((char *) buf, sizeof(buf) - 1);
}


json_t *
ngx_http_identity_admin_json_string(ngx_str_t *v)
{
    json_t  *j;

    j = json_stringn(v->data ? (char *) v->data : "", v->len);

    /* not UTF-8 (a raw User-Agent may be anything): keep it visible */

    return j ? j : json_string("");
}


/* ngrok's error shape: {error_code, status_code, msg, details} */

ngx_int_t
ngx_http_identity_admin_json_error(ngx_http_request_t *r, ngx_int_t status,
    char *msg)
{
    u_char   code[32];
    json_t  *body;

    body = json_object();
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_sprintf(code, "ERR_IDENTITY_%i%Z", status);

    json_object_set_new(body, "error_code", json_string((char *) code));
    json_object_set_new(body, "status_code", json_integer(status));
    json_object_set_new(body, "msg", json_string(msg));
    json_object_set_new(body, "details", json_object());

    return ngx_http_identity_admin_json_send(r, status, body);
}


ngx_int_t
ngx_http_identity_admin_json_send(ngx_http_request_t *r, ngx_int_t status,
    json_t *body)
{
    char         *text;
    size_t        len;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    text = NULL;
    len = 0;

    if (body) {
        text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(body);

        if (text == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        len = ngx_strlen(text);
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    if (len) {
        ngx_str_set(&r->headers_out.content_type, "application/json");
        r->headers_out.content_type_len = r->headers_out.content_type.len;
    }

    b = NULL;

    if (len) {
        b = ngx_create_temp_buf(r->pool, len);
        if (b == NULL) {
            free(text);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        b->last = ngx_cpymem(b->pos, text, len);
        b->last_buf = (r == r->main) ? 1 : 0;
        b->last_in_chain = 1;
    }

    free(text);

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only || b == NULL) {
        return rc == NGX_OK && b == NULL ? ngx_http_send_special(r,
                                                     NGX_HTTP_LAST)
                                         : rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
