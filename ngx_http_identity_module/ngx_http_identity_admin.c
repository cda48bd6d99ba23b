
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The admin API, shaped like ngrok's App Users and App Sessions API:
 *
 *   GET    app/users                  GET    app/sessions
 *   GET    app/users/{id}             GET    app/sessions/{id}
 *   DELETE app/users/{id}             DELETE app/sessions/{id}
 *   GET    app/users/{id}/sessions
 *   GET    app/users/{id}/endpoints
 *
 * relative to the location holding "identity_admin", with GET app/me (who
 * is signed in, and the CSRF token), GET metrics (Prometheus's text,
 * metrics.c), GET app/events and app/stats/logins (the audit events,
 * events_admin.c), and the dashboard at the location's root.  A request is
 * admitted with the bearer token, or with a session the location's
 * "identity" and rules admitted; a session's DELETE must carry the
 * X-CSRF-Token that app/me gave.  Lists are newest
 * first, paged with limit and before_id, and filtered with provider, user
 * (a substring of email, name or username) and id.  Deletes answer 204 once
 * Redis has applied them atomically; the next request with a deleted
 * session's cookie is refused by every nginx sharing the Redis.
 *
 * Here: routing, admission and paging; the records' JSON is rendered by
 * ngx_http_identity_admin_json.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_store.h"
#include "ngx_http_identity_admin.h"
#include "ngx_http_identity_admin_json.h"
#include "ngx_http_identity_dashboard.h"
#include "ngx_http_identity_redis.h"
#include "ngx_http_identity_events.h"
#include "ngx_http_identity_metrics.h"
#include "ngx_http_identity_risk.h"


#define NGX_HTTP_IDENTITY_ADMIN_LIMIT    100
#define NGX_HTTP_IDENTITY_ADMIN_SCAN     10000
#define NGX_HTTP_IDENTITY_ADMIN_FILTER   256
#define NGX_HTTP_IDENTITY_ADMIN_COUNTED  5         /* s a count is kept */


typedef struct {
    ngx_http_identity_route_e        route;
    ngx_str_t                        id;
    ngx_str_t                        base;      /* scheme://host/location/ */
    ngx_str_t                        file;      /* of the dashboard */
    ngx_http_identity_store_query_t  query;
    ngx_http_identity_events_query_t events;
    char                            *msg;       /* of a refusal */
    ngx_uint_t                       by_session;
} ngx_http_identity_admin_ctx_t;


static ngx_int_t ngx_http_identity_admin_route(ngx_http_request_t *r,
    ngx_http_identity_admin_ctx_t *actx);
static ngx_int_t ngx_http_identity_admin_query(ngx_http_request_t *r,
    ngx_http_identity_admin_ctx_t *actx);
static ngx_int_t ngx_http_identity_admin_arg(ngx_http_request_t *r,
    char *name, ngx_str_t *value);
static ngx_uint_t ngx_http_identity_admin_one_of(ngx_str_t *v,
    const char **list);
static ngx_int_t ngx_http_identity_admin_risk_filters(ngx_http_request_t *r,
    ngx_http_identity_admin_ctx_t *actx, ngx_http_identity_store_query_t *q);
static ngx_int_t ngx_http_identity_admin_authorized(ngx_http_request_t *r,
    ngx_http_identity_loc_conf_t *ilcf);
static ngx_int_t ngx_http_identity_admin_csrf(ngx_http_request_t *r,
    ngx_http_identity_admin_ctx_t *actx);
static ngx_int_t ngx_http_identity_admin_metrics(ngx_http_request_t *r);
static void ngx_http_identity_admin_count_done(ngx_http_request_t *r,
    ngx_http_identity_store_result_t *res);
static ngx_int_t ngx_http_identity_admin_metrics_send(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_admin_me(ngx_http_request_t *r,
    ngx_http_identity_admin_ctx_t *actx);
static void ngx_http_identity_admin_list_done(ngx_http_request_t *r,
    ngx_http_identity_store_result_t *res);
static void ngx_http_identity_admin_get_done(ngx_http_request_t *r,
    ngx_http_identity_store_result_t *res);
static void ngx_http_identity_admin_sites_done(ngx_http_request_t *r,
    ngx_http_identity_store_result_t *res);
static void ngx_http_identity_admin_delete_done(ngx_http_request_t *r,
    ngx_http_identity_store_result_t *res);
static ngx_int_t ngx_http_identity_admin_failed(ngx_http_request_t *r,
    ngx_http_identity_store_result_t *res);
static u_char *ngx_http_identity_admin_list_uri(u_char *p,
    ngx_http_identity_admin_ctx_t *actx);
static json_t *ngx_http_identity_admin_next(ngx_http_request_t *r,
    ngx_http_identity_admin_ctx_t *actx, ngx_str_t *cursor);
static ngx_int_t ngx_http_identity_admin_events(ngx_http_request_t *r,
    ngx_http_identity_admin_ctx_t *actx);
static void ngx_http_identity_admin_events_done(ngx_http_request_t *r,
    ngx_int_t rc, json_t *body);
static void ngx_http_identity_admin_finish(ngx_http_request_t *r,
    ngx_int_t status, json_t *body);


ngx_int_t
ngx_http_identity_admin_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_table_elt_t                *h;
    ngx_http_identity_ctx_t        *ctx;
    ngx_http_identity_loc_conf_t   *ilcf;
    ngx_http_identity_admin_ctx_t  *actx;

    ilcf = ngx_http_get_module_loc_conf(r, ngx_http_identity_module);

    ctx = ngx_http_identity_create_ctx(r);
    actx = ngx_pcalloc(r->pool, sizeof(ngx_http_identity_admin_ctx_t));

    if (ctx == NULL || actx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * The access phase let a bearer token through to be checked here;
     * without one, only a session it admitted (with the rules) will do.
     */

    if (r->headers_in.authorization || !ctx->authenticated) {

        if (!ngx_http_identity_admin_authorized(r, ilcf)) {
            h = ngx_http_identity_add_header(r, "WWW-Authenticate",
                                             "Bearer realm=\"identity\"");
            if (h == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            r->headers_out.www_authenticate = h;

            return ngx_http_identity_admin_json_error(r,
                                                      NGX_HTTP_UNAUTHORIZED,
                                                      "a valid bearer token "
                                                      "or an admin login is "
                                                      "required");
        }

    } else {
        actx->by_session = 1;
    }

    ctx->admin = actx;

    rc = ngx_http_identity_admin_route(r, actx);
    if (rc != NGX_OK) {
        return ngx_http_identity_admin_json_error(r, rc,
                                                  actx->msg ? actx->msg
                                                  : "internal error");
    }

    if (actx->route == ngx_http_identity_static) {
        rc = ngx_http_identity_dashboard_handler(r, &actx->file);

        return rc == NGX_DECLINED
               ? ngx_http_identity_admin_json_error(r, NGX_HTTP_NOT_FOUND,
                                                    "no such resource")
               : rc;
    }

    if (r->method == NGX_HTTP_DELETE && actx->by_session
        && ngx_http_identity_admin_csrf(r, actx) != NGX_OK)
    {
        return ngx_http_identity_admin_json_error(r, NGX_HTTP_FORBIDDEN,
                                                  "missing or wrong "
                                                  "X-CSRF-Token");
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    switch (actx->route) {

    case ngx_http_identity_me:
        return ngx_http_identity_admin_me(r, actx);

    case ngx_http_identity_metrics_route:
        return ngx_http_identity_admin_metrics(r);

    case ngx_http_identity_events_route:
    case ngx_http_identity_stats_route:
        rc = ngx_http_identity_admin_events(r, actx);
        if (rc != NGX_OK) {
            return ngx_http_identity_admin_json_error(r, rc,
                                                      actx->msg ? actx->msg
                                                      : "internal error");
        }

        r->main->count++;
        return NGX_DONE;

    case ngx_http_identity_users:
    case ngx_http_identity_sessions:
    case ngx_http_identity_user_sessions:
        rc = ngx_http_identity_admin_query(r, actx);
        if (rc != NGX_OK) {
            return ngx_http_identity_admin_json_error(r, rc,
                                                      actx->msg ? actx->msg
                                                      : "internal error");
        }

        rc = ngx_http_identity_store_list(r,
                                          ngx_http_identity_admin_list_done,
                                          &actx->query);
        break;

    case ngx_http_identity_user_sites:
        rc = ngx_http_identity_store_get(r,
                                       ngx_http_identity_admin_sites_done,
                                       ngx_http_identity_store_sites,
                                       &actx->id);
        break;

    default: /* one user or session */

        if (r->method == NGX_HTTP_DELETE) {
            rc = ngx_http_identity_store_delete(r,
                                         ngx_http_identity_admin_delete_done,
                                         actx->route == ngx_http_identity_user,
                                         &actx->id);

        } else {
            rc = ngx_http_identity_store_get(r,
                                           ngx_http_identity_admin_get_done,
                                           actx->route
                                           == ngx_http_identity_user
                                           ? ngx_http_identity_store_identity
                                           : ngx_http_identity_store_session,
                                           &actx->id);
        }
    }

    if (rc != NGX_OK) {
        return ngx_http_identity_admin_json_error(r,
                                                  NGX_HTTP_SERVICE_UNAVAILABLE,
                                                  "the session store is "
                                                  "unavailable");
    }

    r->main->count++;

    return NGX_DONE;
}


/* app/users[/{id}[/sessions|/endpoints]] and app/sessions[/{id}] */

static ngx_int_t
ngx_http_identity_admin_route(ngx_http_request_t *r,
    ngx_http_identity_admin_ctx_t *actx)
{
    u_char                    *p;
    ngx_str_t                  path, host;
    ngx_uint_t                 item;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    path.data = r->uri.data + clcf->name.len;
    path.len = r->uri.len - clcf->name.len;

    if (clcf->name.len > r->uri.len) {
        ngx_str_null(&path);
    }

    /* base: where the URIs in answers start */

    if (ngx_http_identity_public_origin(r, &host) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    actx->base.data = ngx_pnalloc(r->pool, host.len + clcf->name.len + 1);
    if (actx->base.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(actx->base.data, host.data, host.len);
    p = ngx_cpymem(p, clcf->name.data, clcf->name.len);

    if (p[-1] != '/') {
        *p++ = '/';
    }

    actx->base.len = p - actx->base.data;

    if (ngx_http_identity_admin_path(&path, &actx->route, &actx->id, &item)
        != NGX_OK)
    {
        actx->msg = "no such resource";
        return NGX_HTTP_NOT_FOUND;
    }

    if (actx->route == ngx_http_identity_static) {
        actx->file = path;
        return NGX_OK;
    }

    if (actx->route == ngx_http_identity_user_sessions) {
        actx->query.user_id = actx->id;
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        return NGX_OK;
    }

    if (item && r->method == NGX_HTTP_DELETE) {
        return NGX_OK;
    }

    if (ngx_http_identity_add_header(r, "Allow", item ? "GET, HEAD, DELETE"
                                                      : "GET, HEAD")
        == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    actx->msg = "method not allowed";
    return NGX_HTTP_NOT_ALLOWED;
}


static ngx_int_t
ngx_http_identity_admin_query(ngx_http_request_t *r,
    ngx_http_identity_admin_ctx_t *actx)
{
    ngx_int_t                         n;
    ngx_str_t                         v;
    ngx_http_identity_store_query_t  *q;

    q = &actx->query;
    q->sessions = (actx->route != ngx_http_identity_users);
    q->limit = NGX_HTTP_IDENTITY_ADMIN_LIMIT;
    q->scan = NGX_HTTP_IDENTITY_ADMIN_SCAN;

    if (ngx_http_identity_admin_arg(r, "limit", &v) == NGX_OK) {
        n = ngx_atoi(v.data, v.len);

        if (n < 1 || n > NGX_HTTP_IDENTITY_ADMIN_LIMIT) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "identity: admin: invalid limit \"%V\"", &v);
            actx->msg = "limit must be a number from 1 to 100";
            return NGX_HTTP_BAD_REQUEST;
        }

        q->limit = n;
    }

    if (ngx_http_identity_admin_arg(r, "before_id", &v) == NGX_OK) {
        if (!ngx_http_identity_admin_id(&v, q->sessions)) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "identity: admin: invalid before_id \"%V\"", &v);
            actx->msg = "invalid before_id";
            return NGX_HTTP_BAD_REQUEST;
        }

        q->before_id = v;
    }

    if (ngx_http_identity_admin_arg(r, "endpoint", &v) == NGX_OK) {
        if (actx->route != ngx_http_identity_user_sessions
            || !ngx_http_identity_id_valid(&v, "ep_",
                                        NGX_HTTP_IDENTITY_SITE_HASH_LEN))
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "identity: admin: invalid endpoint \"%V\"", &v);
            actx->msg = "endpoint must be an ep_ id, on a user's sessions";
            return NGX_HTTP_BAD_REQUEST;
        }

        q->site.data = v.data + 3;
        q->site.len = NGX_HTTP_IDENTITY_SITE_HASH_LEN;
    }

    if (ngx_http_identity_admin_arg(r, "provider", &q->provider) == NGX_ERROR
        || ngx_http_identity_admin_arg(r, "user", &q->user) == NGX_ERROR
        || ngx_http_identity_admin_arg(r, "id", &q->id) == NGX_ERROR)
    {
        actx->msg = "invalid filter";
        return NGX_HTTP_BAD_REQUEST;
    }

    return ngx_http_identity_admin_risk_filters(r, actx, q);
}


/*
 * The sessions' own filters (docs/admin-api.md): country=XX, a device
 * type, risk=any or a signal; each exact, on lists of sessions only
 */

static ngx_int_t
ngx_http_identity_admin_risk_filters(ngx_http_request_t *r,
    ngx_http_identity_admin_ctx_t *actx, ngx_http_identity_store_query_t *q)
{
    ngx_str_t  *v;

    static const char  *devices[] = { "Desktop", "Mobile", "Tablet", "Bot",
                                      "Other", NULL };

    if (ngx_http_identity_admin_arg(r, "country", &q->country) == NGX_ERROR
        || ngx_http_identity_admin_arg(r, "device", &q->device) == NGX_ERROR
        || ngx_http_identity_admin_arg(r, "risk", &q->risk) == NGX_ERROR)
    {
        actx->msg = "invalid filter";
        return NGX_HTTP_BAD_REQUEST;
    }

    if (!q->sessions && (q->country.len || q->device.len || q->risk.len)) {
        actx->msg = "country, device and risk filter sessions only";
        return NGX_HTTP_BAD_REQUEST;
    }

    v = &q->country;

    if (v->len && (v->len != 2
                   || v->data[0] < 'A' || v->data[0] > 'Z'
                   || v->data[1] < 'A' || v->data[1] > 'Z'))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: admin: invalid country \"%V\"", v);
        actx->msg = "country must be two capital letters (ISO 3166-1)";
        return NGX_HTTP_BAD_REQUEST;
    }

    if (!ngx_http_identity_admin_one_of(&q->device, devices)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: admin: invalid device \"%V\"", &q->device);
        actx->msg = "device must be Desktop, Mobile, Tablet, Bot or Other";
        return NGX_HTTP_BAD_REQUEST;
    }

    if (!(q->risk.len == 3 && ngx_strncmp(q->risk.data, "any", 3) == 0)
        && !ngx_http_identity_admin_one_of(&q->risk,
                                           ngx_http_identity_risk_signals))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: admin: invalid risk \"%V\"", &q->risk);
        actx->msg = "risk must be any, new_country, new_device, "
                    "impossible_travel or concurrent_sessions";
        return NGX_HTTP_BAD_REQUEST;
    }

    return NGX_OK;
}


/* 1: "v" is empty, or one of the NULL-ended "list" */

static ngx_uint_t
ngx_http_identity_admin_one_of(ngx_str_t *v, const char **list)
{
    for ( /* void */ ; v->len && *list; list++) {
        if (v->len == ngx_strlen(*list)
            && ngx_strncmp(v->data, *list, v->len) == 0)
        {
            return 1;
        }
    }

    return v->len == 0;
}


/* a query argument, unescaped; NGX_DECLINED if absent or empty */

static ngx_int_t
ngx_http_identity_admin_arg(ngx_http_request_t *r, char *name,
    ngx_str_t *value)
{
    u_char     *dst, *src, *p;
    ngx_str_t   raw;

    if (ngx_http_arg(r, (u_char *) name, ngx_strlen(name), &raw) != NGX_OK
        || raw.len == 0)
    {
        ngx_str_null(value);
        return NGX_DECLINED;
    }

    if (raw.len > 3 * NGX_HTTP_IDENTITY_ADMIN_FILTER) {
        return NGX_ERROR;
    }

    value->data = ngx_pnalloc(r->pool, raw.len);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    for (p = raw.data; p < raw.data + raw.len; p++) {
        if (*p == '+') {
            *p = ' ';
        }
    }

    src = raw.data;
    dst = value->data;
    ngx_unescape_uri(&dst, &src, raw.len, 0);
    value->len = dst - value->data;

    return value->len ? NGX_OK : NGX_DECLINED;
}


/*
 * A DELETE made with a session cookie must prove it comes from the
 * dashboard: the X-CSRF-Token of app/me (a keyed hash of the session's
 * secret, which another site cannot read), and an Origin, when the
 * browser sends one, of this site.
 */

static ngx_int_t
ngx_http_identity_admin_csrf(ngx_http_request_t *r,
    ngx_http_identity_admin_ctx_t *actx)
{
    ngx_str_t                 want, site;
    ngx_table_elt_t          *token, *origin;
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);
    token = ngx_http_identity_header(r, "x-csrf-token",
                                     sizeof("x-csrf-token") - 1);
    origin = ngx_http_identity_header(r, "origin", sizeof("origin") - 1);

    if (origin) {
        if (ngx_http_identity_public_origin(r, &site) != NGX_OK) {
            return NGX_ERROR;
        }

        if (origin->value.len != site.len
            || ngx_strncasecmp(origin->value.data, site.data, site.len) != 0)
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "identity: admin: DELETE from origin \"%V\"",
                          &origin->value);
            return NGX_DECLINED;
        }
    }

    if (token == NULL
        || ngx_http_identity_csrf_token(r->pool, &ctx->token, &want)
           != NGX_OK
        || !ngx_http_identity_secure_equal(&token->value, &want))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: admin: DELETE without the CSRF token");
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * The sessions in Redis, counted at most every few seconds by a worker (a
 * scrape seldom costs a Redis call), then the node's counters (metrics.c)
 */

static ngx_int_t  ngx_http_identity_admin_sessions = -1;
static time_t     ngx_http_identity_admin_counted;


static ngx_int_t
ngx_http_identity_admin_metrics(ngx_http_request_t *r)
{
    if (ngx_http_identity_admin_counted
        && ngx_time() - ngx_http_identity_admin_counted
           < NGX_HTTP_IDENTITY_ADMIN_COUNTED)
    {
        return ngx_http_identity_admin_metrics_send(r);
    }

    if (ngx_http_identity_store_count(r, ngx_http_identity_admin_count_done)
        != NGX_OK)
    {
        ngx_http_identity_admin_sessions = -1;
        return ngx_http_identity_admin_metrics_send(r);
    }

    r->main->count++;

    return NGX_DONE;
}


/* a count that failed is not kept: the next scrape asks again */

static void
ngx_http_identity_admin_count_done(ngx_http_request_t *r,
    ngx_http_identity_store_result_t *res)
{
    if (res->rc == NGX_OK) {
        ngx_http_identity_admin_sessions = (ngx_int_t) res->nelts;
        ngx_http_identity_admin_counted = ngx_time();

    } else {
        ngx_http_identity_admin_sessions = -1;
        ngx_http_identity_admin_counted = 0;
    }

    ngx_http_finalize_request(r, ngx_http_identity_admin_metrics_send(r));
}


static ngx_int_t
ngx_http_identity_admin_metrics_send(ngx_http_request_t *r)
{
    ngx_int_t                          rc;
    ngx_chain_t                       *cl;
    ngx_http_identity_main_conf_t     *imcf;
    ngx_http_identity_metrics_view_t   view;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    view.providers = &imcf->providers;
    view.cache = (imcf->cache != NULL);
    view.redis_up = !ngx_http_identity_redis_down();
    view.sessions = ngx_http_identity_admin_sessions;

    cl = ngx_http_identity_metrics_render(r->pool, &view);
    if (cl == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = cl->buf->last - cl->buf->pos;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    if (ngx_http_identity_add_header(r, "Cache-Control", "no-store")
        == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, cl);
}


/* who is signed in to the dashboard, and what it needs to act */

static ngx_int_t
ngx_http_identity_admin_me(ngx_http_request_t *r,
    ngx_http_identity_admin_ctx_t *actx)
{
    json_t                        *body;
    ngx_str_t                      v;
    ngx_http_identity_ctx_t       *ctx;
    ngx_http_core_loc_conf_t      *clcf;
    ngx_http_identity_session_t   *sess;
    ngx_http_identity_loc_conf_t  *ilcf;

    ctx = ngx_http_identity_get_ctx(r);
    sess = &ctx->session;
    body = json_object();

    if (!actx->by_session) {
        json_object_set_new(body, "authenticated_by", json_string("token"));
        return ngx_http_identity_admin_json_send(r, NGX_HTTP_OK, body);
    }

    json_object_set_new(body, "authenticated_by", json_string("session"));
    json_object_set_new(body, "email",
                        ngx_http_identity_admin_json_string(&sess->email));
    json_object_set_new(body, "name",
                        ngx_http_identity_admin_json_string(&sess->name));
    json_object_set_new(body, "username",
                        ngx_http_identity_admin_json_string(&sess->username));
    json_object_set_new(body, "provider",
                        ngx_http_identity_admin_json_string(&sess->provider));
    json_object_set_new(body, "identity_id",
                        ngx_http_identity_admin_json_string(
                                                        &sess->identity_id));
    json_object_set_new(body, "session_id",
                        ngx_http_identity_admin_json_string(&sess->id));

    if (ngx_http_identity_csrf_token(r->pool, &ctx->token, &v) != NGX_OK) {
        json_decref(body);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_object_set_new(body, "csrf_token",
                        ngx_http_identity_admin_json_string(&v));

    /* the logout endpoint, back to the dashboard (to log in again) */

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    ilcf = ngx_http_get_module_loc_conf(r, ngx_http_identity_module);

    if (ngx_http_identity_logout_url(r, ilcf, &clcf->name, &v) != NGX_OK) {
        json_decref(body);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_object_set_new(body, "logout_url",
                        ngx_http_identity_admin_json_string(&v));

    return ngx_http_identity_admin_json_send(r, NGX_HTTP_OK, body);
}


/* the hashes are compared, in constant time, whatever the lengths */

static ngx_int_t
ngx_http_identity_admin_authorized(ngx_http_request_t *r,
    ngx_http_identity_loc_conf_t *ilcf)
{
    u_char            hash[NGX_HTTP_IDENTITY_SHA256_HEX_LEN];
    ngx_str_t         token, got;
    ngx_table_elt_t  *h;

    h = r->headers_in.authorization;

    if (h == NULL || ilcf->admin_token_hash.len == 0
        || h->value.len <= sizeof("Bearer ") - 1
        || ngx_strncasecmp(h->value.data, (u_char *) "Bearer ",
                           sizeof("Bearer ") - 1) != 0)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: admin request without a bearer token");
        return 0;
    }

    token.data = h->value.data + sizeof("Bearer ") - 1;
    token.len = h->value.len - (sizeof("Bearer ") - 1);

    ngx_http_identity_sha256_hex(&token, hash);

    got.data = hash;
    got.len = NGX_HTTP_IDENTITY_SHA256_HEX_LEN;

    if (!ngx_http_identity_secure_equal(&got, &ilcf->admin_token_hash)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: admin request with a wrong token");
        return 0;
    }

    return 1;
}


static void
ngx_http_identity_admin_list_done(ngx_http_request_t *r,
    ngx_http_identity_store_result_t *res)
{
    json_t                         *body, *list, *item;
    size_t                          i;
    ngx_str_t                       uri;
    ngx_http_identity_admin_ctx_t  *actx;

    actx = ngx_http_identity_get_ctx(r)->admin;

    if (res->rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: admin: unknown before_id \"%V\"",
                      &actx->query.before_id);
        ngx_http_identity_admin_finish(r, NGX_HTTP_BAD_REQUEST, NULL);
        return;
    }

    if (ngx_http_identity_admin_failed(r, res)) {
        return;
    }

    body = json_object();
    list = json_array();

    if (body == NULL || list == NULL) {
        json_decref(body);
        json_decref(list);
        ngx_http_identity_admin_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                       NULL);
        return;
    }

    for (i = 0; i < res->nelts; i++) {
        item = actx->query.sessions
               ? ngx_http_identity_admin_json_session(r, &actx->base,
                                                      &res->sessions[i])
               : ngx_http_identity_admin_json_user(r, &actx->base,
                                                   &res->identities[i]);
        json_array_append_new(list, item);
    }

    json_object_set_new(body, actx->query.sessions ? "application_sessions"
                                                   : "application_users",
                        list);

    uri.data = ngx_pnalloc(r->pool, actx->base.len + 64);
    if (uri.data == NULL) {
        json_decref(body);
        ngx_http_identity_admin_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                       NULL);
        return;
    }

    uri.len = ngx_http_identity_admin_list_uri(uri.data, actx) - uri.data;

    json_object_set_new(body, "uri", ngx_http_identity_admin_json_string(&uri));
    json_object_set_new(body, "next_page_uri",
                        ngx_http_identity_admin_next(r, actx,
                                                     &res->cursor));

    ngx_http_identity_admin_finish(r, NGX_HTTP_OK, body);
}


/* the list's own URI, without its query */

static u_char *
ngx_http_identity_admin_list_uri(u_char *p,
    ngx_http_identity_admin_ctx_t *actx)
{
    if (actx->route == ngx_http_identity_user_sessions) {
        return ngx_sprintf(p, "%Vapp/users/%V/sessions", &actx->base,
                           &actx->id);
    }

    return ngx_sprintf(p, "%V%V", &actx->base,
                       &ngx_http_identity_admin_kinds[actx->query.sessions]);
}


/* the same list, after the cursor, with the same filters; or null */

static json_t *
ngx_http_identity_admin_next(ngx_http_request_t *r,
    ngx_http_identity_admin_ctx_t *actx, ngx_str_t *cursor)
{
    u_char                           *p;
    size_t                            len;
    json_t                           *next;
    ngx_str_t                        *f[6];
    ngx_uint_t                        i;
    ngx_http_identity_store_query_t  *q;

    static char  *names[] = { "provider", "user", "id", "country", "device",
                              "risk" };

    if (cursor->len == 0) {
        return json_null();
    }

    q = &actx->query;
    f[0] = &q->provider;
    f[1] = &q->user;
    f[2] = &q->id;
    f[3] = &q->country;
    f[4] = &q->device;
    f[5] = &q->risk;

    len = actx->base.len + sizeof("app/users/au_/sessions") - 1 + 32
          + sizeof("?limit=100&before_id=") - 1 + cursor->len
          + sizeof("&endpoint=ep_") - 1 + q->site.len;

    for (i = 0; i < 6; i++) {
        len += sizeof("&provider=") - 1 + 3 * f[i]->len;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return json_null();
    }

    next = NULL;

    {
        u_char  *start = p;

        p = ngx_http_identity_admin_list_uri(p, actx);
        p = ngx_sprintf(p, "?limit=%ui&before_id=%V", q->limit, cursor);

        for (i = 0; i < 6; i++) {
            if (f[i]->len) {
                p = ngx_sprintf(p, "&%s=", names[i]);
                p = (u_char *) ngx_escape_uri(p, f[i]->data, f[i]->len,
                                              NGX_ESCAPE_URI_COMPONENT);
            }
        }

        if (q->site.len) {
            p = ngx_sprintf(p, "&endpoint=ep_%V", &q->site);
        }

        next = json_stringn((char *) start, p - start);
    }

    return next ? next : json_null();
}


static void
ngx_http_identity_admin_get_done(ngx_http_request_t *r,
    ngx_http_identity_store_result_t *res)
{
    json_t                         *body;
    ngx_http_identity_admin_ctx_t  *actx;

    actx = ngx_http_identity_get_ctx(r)->admin;

    if (ngx_http_identity_admin_failed(r, res)) {
        return;
    }

    body = (actx->route == ngx_http_identity_user)
           ? ngx_http_identity_admin_json_user(r, &actx->base,
                                               res->identities)
           : ngx_http_identity_admin_json_session(r, &actx->base,
                                                  res->sessions);

    ngx_http_identity_admin_finish(r, NGX_HTTP_OK, body);
}


/* the store gives the latest used first */

static void
ngx_http_identity_admin_sites_done(ngx_http_request_t *r,
    ngx_http_identity_store_result_t *res)
{
    json_t                         *body, *list;
    ngx_str_t                       v;
    ngx_http_identity_admin_ctx_t  *actx;

    actx = ngx_http_identity_get_ctx(r)->admin;

    if (ngx_http_identity_admin_failed(r, res)) {
        return;
    }

    body = json_object();
    list = ngx_http_identity_admin_json_sites(r, res);

    json_object_set_new(body, "endpoints", list);

    v.data = ngx_pnalloc(r->pool, actx->base.len + 64);
    if (v.data) {
        v.len = ngx_sprintf(v.data, "%Vapp/users/%V/endpoints", &actx->base,
                            &actx->id)
                - v.data;
        json_object_set_new(body, "uri",
                            ngx_http_identity_admin_json_string(&v));
    }

    ngx_http_identity_admin_finish(r, NGX_HTTP_OK, body);
}


static void
ngx_http_identity_admin_delete_done(ngx_http_request_t *r,
    ngx_http_identity_store_result_t *res)
{
    ngx_http_identity_loc_conf_t   *ilcf;
    ngx_http_identity_admin_ctx_t  *actx;

    actx = ngx_http_identity_get_ctx(r)->admin;
    ilcf = ngx_http_get_module_loc_conf(r, ngx_http_identity_module);

    if (ngx_http_identity_admin_failed(r, res)) {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "identity: admin deleted %s \"%V\"",
                  actx->route == ngx_http_identity_user ? "user" : "session",
                  &actx->id);

    /* the audit event (docs/events.md); a session's: whose, if known */

    ngx_http_identity_event_admin(r, actx->by_session ? NULL
                                                      : &ilcf->admin_token_hash,
                                  actx->route == ngx_http_identity_user,
                                  &actx->id,
                                  res->nelts ? &res->sessions[0].identity_id
                                             : NULL);

    ngx_http_identity_admin_finish(r, NGX_HTTP_NO_CONTENT, NULL);
}


/* GET app/events?limit=&before_id=&user=&action= and app/stats/logins */

static ngx_int_t
ngx_http_identity_admin_events(ngx_http_request_t *r,
    ngx_http_identity_admin_ctx_t *actx)
{
    ngx_int_t                          n;
    ngx_str_t                          v;
    ngx_http_identity_events_query_t  *q;

    q = &actx->events;

    if (actx->route == ngx_http_identity_stats_route) {
        n = ngx_http_identity_admin_arg(r, "range", &v);

        if (n == NGX_ERROR
            || (n == NGX_OK
                && !(v.len == 3 && ngx_strncmp(v.data, "24h", 3) == 0)
                && !(v.len == 2 && ngx_strncmp(v.data, "7d", 2) == 0)))
        {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "identity: admin: invalid range");
            actx->msg = "range must be 24h or 7d";
            return NGX_HTTP_BAD_REQUEST;
        }

        if (ngx_http_identity_events_stats(r, n == NGX_OK && v.len == 2,
                                           ngx_http_identity_admin_events_done)
            != NGX_OK)
        {
            actx->msg = "the session store is unavailable";
            return NGX_HTTP_SERVICE_UNAVAILABLE;
        }

        return NGX_OK;
    }

    q->base = actx->base;

    if (ngx_http_identity_events_query(r, q, &actx->msg) != NGX_OK) {
        return NGX_HTTP_BAD_REQUEST;
    }

    if (ngx_http_identity_events_list(r, q,
                                      ngx_http_identity_admin_events_done)
        != NGX_OK)
    {
        actx->msg = "the session store is unavailable";
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    return NGX_OK;
}


/* the page or the stats, as events_admin.c made them */

static void
ngx_http_identity_admin_events_done(ngx_http_request_t *r, ngx_int_t rc,
    json_t *body)
{
    ngx_http_identity_admin_finish(r, rc == NGX_OK
                                      ? NGX_HTTP_OK
                                      : NGX_HTTP_SERVICE_UNAVAILABLE,
                                   body);
}


/* a store answer that is not a record: finishes the request */

static ngx_int_t
ngx_http_identity_admin_failed(ngx_http_request_t *r,
    ngx_http_identity_store_result_t *res)
{
    switch (res->rc) {

    case NGX_OK:
        return 0;

    case NGX_DECLINED:
        ngx_http_identity_admin_finish(r, NGX_HTTP_NOT_FOUND, NULL);
        break;

    case NGX_ABORT:
        ngx_http_identity_admin_finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                       NULL);
        break;

    default:
        ngx_http_identity_admin_finish(r, NGX_HTTP_SERVICE_UNAVAILABLE, NULL);
    }

    return 1;
}


static void
ngx_http_identity_admin_finish(ngx_http_request_t *r, ngx_int_t status,
    json_t *body)
{
    ngx_int_t   rc;
    ngx_uint_t  level;

    switch (status) {

    case NGX_HTTP_OK:
    case NGX_HTTP_NO_CONTENT:
        rc = ngx_http_identity_admin_json_send(r, status, body);
        break;

    case NGX_HTTP_NOT_FOUND:
        rc = ngx_http_identity_admin_json_error(r, status, "no such resource");
        break;

    case NGX_HTTP_BAD_REQUEST:
        rc = ngx_http_identity_admin_json_error(r, status, "unknown before_id");
        break;

    case NGX_HTTP_SERVICE_UNAVAILABLE:
        /* while Redis is down its state changes are logged (redis.c) */

        level = (status == NGX_HTTP_SERVICE_UNAVAILABLE
                 && ngx_http_identity_redis_down())
                ? NGX_LOG_INFO : NGX_LOG_ERR;
        ngx_log_error(level, r->connection->log, 0,
                      "identity: session store unavailable");
        rc = ngx_http_identity_admin_json_error(r, status,
                                                "the session store is "
                                                "unavailable");
        break;

    default:
        json_decref(body);
        rc = status;
    }

    ngx_http_finalize_request(r, rc);
}


/*
 * The admin API answers scripts with a token and people with a session.
 * A location that logs people in and admits all of them would make every
 * user of the provider an admin: it must name them with a rule of its
 * own, since a rule inherited from the server admits the site's users, not
 * its admins.  The API must also be the location's content, or the login
 * it skips for a token would guard nothing.
 */

ngx_int_t
ngx_http_identity_admin_conf_check(ngx_conf_t *cf,
    ngx_http_identity_loc_conf_t *conf, ngx_array_t *own_rules)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != ngx_http_identity_admin_handler) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"identity_admin\" cannot share location \"%V\" "
                           "with another content handler, such as "
                           "\"proxy_pass\"", &clcf->name);
        return NGX_ERROR;
    }

    if (conf->provider == NULL) {
        if (conf->admin_token_hash.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"identity_admin\" needs "
                               "\"identity_admin_token_file\" or "
                               "\"identity\"");
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (own_rules == NULL || own_rules->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"identity_admin\" with \"identity %V\" in "
                           "location \"%V\" needs a rule of its own naming "
                           "the admins: "
                           "\"identity_allow_email\", "
                           "\"identity_allow_email_domain\", "
                           "\"identity_require_group\" or "
                           "\"identity_require_claim\"; without one every "
                           "user of the provider would be an admin",
                           &conf->provider->name, &clcf->name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


char *
ngx_http_identity_admin_conf(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_identity_loc_conf_t *ilcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (ilcf->admin != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    ilcf->admin = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_identity_admin_handler;

    return NGX_CONF_OK;
}


/* only the token's hash is kept: it is compared in constant time */

char *
ngx_http_identity_admin_token_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_identity_loc_conf_t *ilcf = conf;

    ngx_str_t  *value, token;

    if (ilcf->admin_token_hash.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_http_identity_read_secret(cf, &value[1], &token) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ilcf->admin_token_hash.data = ngx_pnalloc(cf->pool,
                                          NGX_HTTP_IDENTITY_SHA256_HEX_LEN);
    if (ilcf->admin_token_hash.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_http_identity_sha256_hex(&token, ilcf->admin_token_hash.data);
    ilcf->admin_token_hash.len = NGX_HTTP_IDENTITY_SHA256_HEX_LEN;
    ngx_explicit_memzero(token.data, token.len);

    return NGX_CONF_OK;
}
