
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * Audit events (docs/events.md): one JSON document with Elastic Common
 * Schema names for each login, logout, revocation, noticed expiry, admin
 * write and risk flag, made where metrics.c counts the same thing, never
 * on an admitted request.  Each goes, without waiting for an answer, to
 * the Redis Stream "P audit" (XADD MAXLEN ~ identity_audit_stream_size,
 * fields action, user and doc) and to identity_audit_log: a file written
 * as access_log writes one (opened by nginx, O_APPEND, one write() a
 * line, reopened on USR1) or syslog over UDP (nginx's ngx_syslog).  A
 * login also bumps "P logins:<yyyymmdd>" (field "HH:success" or
 * "HH:failure", kept 9 days) for GET app/stats/logins.  An event that
 * cannot be written is logged and lost: it never fails what it records.
 *
 * In a Redis Cluster these keys are in the shard {@0}.  Here too: the
 * reads of the admin API (XREVRANGE, and at most 8 of the days' hashes).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_parse.h"
#include "ngx_http_identity_redis.h"
#include "ngx_http_identity_store_cmd.h"
#include "ngx_http_identity_events.h"


#define NGX_HTTP_IDENTITY_EVENT_FIELD     1024    /* bytes of a string */
#define NGX_HTTP_IDENTITY_EVENT_MAX       8192    /* bytes of a document */
#define NGX_HTTP_IDENTITY_EVENT_SCAN      1000    /* entries a filter reads */
#define NGX_HTTP_IDENTITY_EVENT_PAGE      100     /* at most, a page */
#define NGX_HTTP_IDENTITY_EVENT_DAYS      9       /* a day's counters kept */
#define NGX_HTTP_IDENTITY_EVENT_HEADER    512     /* syslog's, with its tag */


typedef struct {
    ngx_http_identity_events_pt      done;
    ngx_http_identity_events_query_t *query;
    ngx_uint_t                       week;
    time_t                           first;       /* the first bucket */
} ngx_http_identity_events_call_t;


static json_t *ngx_http_identity_event_doc(ngx_http_request_t *r,
    ngx_http_identity_event_t *ev);
static json_t *ngx_http_identity_event_str(ngx_str_t *s);
static void ngx_http_identity_event_set(json_t *o, char *key, ngx_str_t *s);
static json_t *ngx_http_identity_event_source(ngx_http_request_t *r,
    ngx_http_identity_session_t *s);
static void ngx_http_identity_event_write(ngx_http_request_t *r,
    ngx_str_t *line);
static void ngx_http_identity_event_count(ngx_http_request_t *r,
    ngx_uint_t success);
static void ngx_http_identity_event_failed(ngx_http_request_t *r,
    char *what);
static ngx_uint_t ngx_http_identity_event_action(ngx_str_t *action);
static ngx_uint_t ngx_http_identity_event_id(ngx_str_t *id);
static json_t *ngx_http_identity_events_page(ngx_http_request_t *r,
    ngx_http_identity_events_query_t *q, json_t *list, ngx_str_t *cursor);
static void ngx_http_identity_events_list_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_identity_events_stats_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);


static char  *ngx_http_identity_event_actions[] = {
    "login", "logout", "session_revoked", "user_deleted", "session_expired",
    "risk_flagged", NULL
};


/* the days' counters, KEYS[1..n], each a flat HGETALL */

static ngx_str_t  ngx_http_identity_stats_script = ngx_string(
    "local out = {}\n"
    "for i, k in ipairs(KEYS) do\n"
    "  out[i] = redis.call('HGETALL', k)\n"
    "end\n"
    "return out\n");

static ngx_str_t  ngx_http_identity_count_script = ngx_string(
    "redis.call('HINCRBY', KEYS[1], ARGV[1], 1)\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[2])\n"
    "return 1\n");


/* identity_audit_log PATH|syslog:server=...[,tag=...] [json]; */

char *
ngx_http_identity_audit_log(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_identity_main_conf_t *imcf = conf;

    ngx_str_t  *value;

    value = cf->args->elts;

    if (cf->args->nelts == 3
        && ngx_strcmp(value[2].data, "json") != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\"", &value[2],
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    /* one file and one syslog server at most */

    if (ngx_strncmp(value[1].data, "syslog:", 7) == 0) {
        if (imcf->audit_syslog) {
            return "is duplicate";
        }

        imcf->audit_syslog = ngx_pcalloc(cf->pool, sizeof(ngx_syslog_peer_t));
        if (imcf->audit_syslog == NULL) {
            return NGX_CONF_ERROR;
        }

        return ngx_syslog_process_conf(cf, imcf->audit_syslog);
    }

    if (value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"\" in \"%V\"", &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (imcf->audit_file) {
        return "is duplicate";
    }

    if (ngx_conf_full_name(cf->cycle, &value[1], 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    imcf->audit_file = ngx_conf_open_file(cf->cycle, &value[1]);
    if (imcf->audit_file == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* a login's end: success (with its risk flag), or failure and why */

void
ngx_http_identity_event_login(ngx_http_request_t *r, ngx_uint_t success,
    char *reason)
{
    ngx_http_identity_ctx_t    *ctx;
    ngx_http_identity_event_t   ev;

    ctx = ngx_http_identity_get_ctx(r);
    if (ctx == NULL) {
        return;
    }

    ngx_memzero(&ev, sizeof(ngx_http_identity_event_t));

    ev.action = "login";
    ev.outcome = success ? "success" : "failure";
    ev.count = -1;

    if (reason) {
        ev.reason.data = (u_char *) reason;
        ev.reason.len = ngx_strlen(reason);
    }

    if (ctx->provider) {
        ev.provider = ctx->provider->name;
    }

    /* the claims of a login, sanitized, are the session's */

    if (ctx->claims.provider_user_id.len) {
        ctx->session.email = ctx->claims.email;
        ctx->session.name = ctx->claims.name;
        ctx->session.username = ctx->claims.username;
    }

    ev.session = &ctx->session;

    ngx_http_identity_event(r, &ev);
    ngx_http_identity_event_count(r, success);

    if (success && ctx->session.risk.len > 2) {
        ev.action = "risk_flagged";
        ev.outcome = NULL;
        ngx_http_identity_event(r, &ev);
    }
}


/* logout, refresh, back-channel, expiry: the request's session */

void
ngx_http_identity_event_session(ngx_http_request_t *r, char *action,
    char *reason, ngx_int_t count)
{
    ngx_http_identity_ctx_t    *ctx;
    ngx_http_identity_event_t   ev;

    ctx = ngx_http_identity_get_ctx(r);
    if (ctx == NULL) {
        return;
    }

    ngx_memzero(&ev, sizeof(ngx_http_identity_event_t));

    ev.action = action;
    ev.count = count;

    if (reason) {
        ev.reason.data = (u_char *) reason;
        ev.reason.len = ngx_strlen(reason);
    }

    if (ctx->session.id.len) {
        ev.session = &ctx->session;
        ev.provider = ctx->session.provider;
    }

    if (ev.provider.len == 0 && ctx->provider) {
        ev.provider = ctx->provider->name;
    }

    ngx_http_identity_event(r, &ev);
}


void
ngx_http_identity_event(ngx_http_request_t *r, ngx_http_identity_event_t *ev)
{
    char                           *text;
    json_t                         *doc;
    ngx_str_t                       line, size, key, *prefix;
    ngx_http_identity_cmd_t         cmd;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    doc = ngx_http_identity_event_doc(r, ev);
    if (doc == NULL) {
        ngx_http_identity_event_failed(r, "made");
        return;
    }

    text = json_dumps(doc, JSON_COMPACT);

    /* bounded: past the bound, what the client sent goes first */

    if (text && ngx_strlen(text) > NGX_HTTP_IDENTITY_EVENT_MAX) {
        free(text);
        json_object_del(doc, "user_agent");
        json_object_del(doc, "risk");
        text = json_dumps(doc, JSON_COMPACT);
    }

    json_decref(doc);

    if (text == NULL) {
        ngx_http_identity_event_failed(r, "made");
        return;
    }

    line.len = ngx_strlen(text);
    line.data = ngx_pnalloc(r->pool, line.len + 1);

    if (line.data == NULL) {
        free(text);
        return;
    }

    ngx_memcpy(line.data, text, line.len);
    free(text);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "identity: event \"%s\", %uz bytes", ev->action, line.len);

    ngx_http_identity_event_write(r, &line);

    if (imcf->audit_stream_size == 0 || !imcf->redis.configured) {
        return;
    }

    prefix = ngx_http_identity_store_shard(r, '0');

    if (ngx_http_identity_cmd_init(r, &cmd, "XADD", 12) != NGX_OK
        || ngx_http_identity_store_num(r, &size, imcf->audit_stream_size)
           == NULL)
    {
        ngx_http_identity_event_failed(r, "sent");
        return;
    }

    key.len = prefix->len + sizeof("audit") - 1;
    key.data = ngx_pnalloc(r->pool, key.len);
    if (key.data == NULL) {
        return;
    }

    ngx_sprintf(key.data, "%Vaudit", prefix);
    ngx_http_identity_cmd_str(&cmd, &key);

    ngx_http_identity_cmd_cstr(&cmd, "MAXLEN");
    ngx_http_identity_cmd_cstr(&cmd, "~");
    ngx_http_identity_cmd_str(&cmd, &size);
    ngx_http_identity_cmd_cstr(&cmd, "*");
    ngx_http_identity_cmd_cstr(&cmd, "action");
    ngx_http_identity_cmd_cstr(&cmd, ev->action);
    ngx_http_identity_cmd_cstr(&cmd, "user");

    if (ev->session && ev->session->identity_id.len) {
        ngx_http_identity_cmd_str(&cmd, &ev->session->identity_id);

    } else if (ev->target.len && ev->target.data[1] == 'u') {
        ngx_http_identity_cmd_str(&cmd, &ev->target);

    } else {
        ngx_http_identity_cmd_cstr(&cmd, "");
    }

    ngx_http_identity_cmd_cstr(&cmd, "doc");
    ngx_http_identity_cmd_str(&cmd, &line);

    if (ngx_http_identity_cmd_post(&cmd) != NGX_OK) {
        ngx_http_identity_event_failed(r, "sent");
    }
}


/* the document: ECS names, and "identity" a field set of our own */

static json_t *
ngx_http_identity_event_doc(ngx_http_request_t *r,
    ngx_http_identity_event_t *ev)
{
    u_char                        buf[sizeof("1970-01-01T00:00:00Z")];
    char                         *category;
    u_char                       *p, *last;
    json_t                       *doc, *event, *user, *o, *risk;
    ngx_tm_t                      tm;
    ngx_str_t                     id, url;
    ngx_http_identity_session_t  *s;

    s = ev->session;

    doc = json_object();
    event = json_object();
    user = json_object();

    if (doc == NULL || event == NULL || user == NULL
        || ngx_http_identity_random_hex(r->pool, 16, &id) != NGX_OK)
    {
        json_decref(doc);
        json_decref(event);
        json_decref(user);
        return NULL;
    }

    ngx_gmtime(ngx_time(), &tm);
    ngx_sprintf(buf, "%4d-%02d-%02dT%02d:%02d:%02dZ", tm.ngx_tm_year,
                tm.ngx_tm_mon, tm.ngx_tm_mday, tm.ngx_tm_hour,
                tm.ngx_tm_min, tm.ngx_tm_sec);

    json_object_set_new(doc, "@timestamp",
                        json_stringn((char *) buf, sizeof(buf) - 1));

    ngx_http_identity_event_set(event, "id", &id);
    json_object_set_new(event, "kind", json_string("event"));
    category = ngx_strcmp(ev->action, "login") == 0 ? "authentication"
               : ngx_strcmp(ev->action, "user_deleted") == 0 ? "iam"
               : "session";

    json_object_set_new(event, "category", json_pack("[s]", category));
    json_object_set_new(event, "action", json_string(ev->action));

    if (ev->outcome) {
        json_object_set_new(event, "outcome", json_string(ev->outcome));
    }

    ngx_http_identity_event_set(event, "reason", &ev->reason);
    json_object_set_new(doc, "event", event);

    /* the API's admin is the user; whose it was, the target */

    if (ev->admin.len) {
        ngx_http_identity_event_set(user, "id", &ev->admin);

        o = json_object();
        if (o) {
            ngx_http_identity_event_set(o, "id", &ev->target);
            json_object_set_new(user, "target", o);
        }

    } else if (s) {
        ngx_http_identity_event_set(user, "id", &s->identity_id);
        ngx_http_identity_event_set(user, "email", &s->email);
        ngx_http_identity_event_set(user, "name", &s->name);
        ngx_http_identity_event_set(user, "username", &s->username);
    }

    json_object_set_new(doc, "user", user);

    o = json_object();
    if (o) {
        ngx_http_identity_event_set(o, "provider", &ev->provider);

        if (ev->count >= 0) {
            json_object_set_new(o, "sessions", json_integer(ev->count));
        }

        json_object_set_new(doc, "identity", o);
    }

    json_object_set_new(doc, "source", ngx_http_identity_event_source(r, s));

    if (s && s->meta.user_agent.len) {
        o = json_pack("{s:o, s:o, s:{s:o}, s:{s:o}}",
                      "original",
                      ngx_http_identity_event_str(&s->meta.user_agent),
                      "name", ngx_http_identity_event_str(&s->meta.browser),
                      "os", "name", ngx_http_identity_event_str(&s->meta.os),
                      "device", "name",
                      ngx_http_identity_event_str(&s->meta.device_type));
        if (o) {
            json_object_set_new(doc, "user_agent", o);
        }
    }

    if (ngx_http_identity_public_origin(r, &url) == NGX_OK && url.len) {
        o = json_object();
        if (o) {
            ngx_http_identity_event_set(o, "full", &url);

            /* the host of scheme://host[:port] */

            last = url.data + url.len;
            p = ngx_strlchr(url.data, last, '/');

            if (p && p + 2 <= last) {
                url.data = p + 2;
                p = (url.data < last && url.data[0] == '[')
                    ? ngx_strlchr(url.data, last, ']')
                    : ngx_strlchr(url.data, last, ':');
                url.len = (p ? p + (url.data[0] == '[') : last) - url.data;
                ngx_http_identity_event_set(o, "domain", &url);
            }

            json_object_set_new(doc, "url", o);
        }
    }

    if (s && s->id.len) {
        o = json_object();
        if (o) {
            ngx_http_identity_event_set(o, "id", &s->id);
            json_object_set_new(doc, "session", o);
        }

    } else if (ev->target.len && ev->target.data[1] == 's') {
        o = json_object();
        if (o) {
            ngx_http_identity_event_set(o, "id", &ev->target);
            json_object_set_new(doc, "session", o);
        }
    }

    /* the session's flags, as RISK stored them: a JSON array */

    if (s && s->risk.len > 2 && ev->admin.len == 0) {
        risk = json_loadb((char *) s->risk.data, s->risk.len, 0, NULL);

        if (json_is_array(risk)) {
            json_object_set_new(doc, "risk", risk);

        } else {
            json_decref(risk);
        }
    }

    return doc;
}


/* the client: where it was, by the session's metadata or the connection */

static json_t *
ngx_http_identity_event_source(ngx_http_request_t *r,
    ngx_http_identity_session_t *s)
{
    u_char     *lat, *lon;
    json_t     *src, *geo;
    ngx_str_t   ip;

    src = json_object();
    if (src == NULL) {
        return json_object();
    }

    ip = (s && s->meta.ip.len) ? s->meta.ip : r->connection->addr_text;
    ngx_http_identity_event_set(src, "ip", &ip);

    if (s == NULL || s->meta.country.len == 0) {
        return src;
    }

    geo = json_object();
    if (geo == NULL) {
        return src;
    }

    ngx_http_identity_event_set(geo, "country_iso_code", &s->meta.country);

    /* "%.4f" strings in the session, NUL-terminated here for strtod() */

    lat = ngx_pnalloc(r->pool, s->meta.latitude.len + 1);
    lon = ngx_pnalloc(r->pool, s->meta.longitude.len + 1);

    if (lat && lon && s->meta.latitude.len && s->meta.longitude.len) {
        ngx_cpystrn(lat, s->meta.latitude.data, s->meta.latitude.len + 1);
        ngx_cpystrn(lon, s->meta.longitude.data, s->meta.longitude.len + 1);

        json_object_set_new(geo, "location",
                            json_pack("{s:f, s:f}",
                                      "lat", strtod((char *) lat, NULL),
                                      "lon", strtod((char *) lon, NULL)));
    }

    json_object_set_new(src, "geo", geo);

    return src;
}


/* a string cut at the bound, on a character's boundary; "" if not UTF-8 */

static json_t *
ngx_http_identity_event_str(ngx_str_t *s)
{
    size_t   n;
    json_t  *j;

    n = s->len;

    if (n > NGX_HTTP_IDENTITY_EVENT_FIELD) {
        n = NGX_HTTP_IDENTITY_EVENT_FIELD;

        while (n && (s->data[n] & 0xc0) == 0x80) {
            n--;
        }
    }

    j = json_stringn((char *) s->data, n);

    return j ? j : json_string("");
}


static void
ngx_http_identity_event_set(json_t *o, char *key, ngx_str_t *s)
{
    if (s->len) {
        json_object_set_new(o, key, ngx_http_identity_event_str(s));
    }
}


/* identity_audit_log: a whole line at once, as access_log writes */

static void
ngx_http_identity_event_write(ngx_http_request_t *r, ngx_str_t *line)
{
    u_char                         *buf, *p;
    ssize_t                         n;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    if (imcf->audit_file == NULL && imcf->audit_syslog == NULL) {
        return;
    }

    buf = ngx_pnalloc(r->pool, NGX_HTTP_IDENTITY_EVENT_HEADER + line->len + 1);
    if (buf == NULL) {
        return;
    }

    if (imcf->audit_syslog && !imcf->audit_syslog->busy) {
        p = ngx_syslog_add_header(imcf->audit_syslog, buf);
        p = ngx_cpymem(p, line->data, line->len);

        imcf->audit_syslog->busy = 1;
        (void) ngx_syslog_send(imcf->audit_syslog, buf, p - buf);
        imcf->audit_syslog->busy = 0;
    }

    if (imcf->audit_file == NULL) {
        return;
    }

    p = ngx_cpymem(buf, line->data, line->len);
    *p++ = '\n';

    n = ngx_write_fd(imcf->audit_file->fd, buf, p - buf);

    if (n != p - buf) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, ngx_errno,
                      "identity: audit log \"%s\" not written",
                      imcf->audit_file->name.data);
    }
}


/* a login's hour in its day's counters */

static void
ngx_http_identity_event_count(ngx_http_request_t *r, ngx_uint_t success)
{
    u_char                          kbuf[sizeof("logins:19700101")];
    u_char                          fbuf[sizeof("00:failure")];
    ngx_tm_t                        tm;
    ngx_str_t                       key, field, ttl, *prefix;
    ngx_http_identity_cmd_t         cmd;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    if (!imcf->redis.configured) {
        return;
    }

    ngx_gmtime(ngx_time(), &tm);

    prefix = ngx_http_identity_store_shard(r, '0');

    key.len = prefix->len + sizeof("logins:19700101") - 1;
    key.data = ngx_pnalloc(r->pool, key.len);
    if (key.data == NULL) {
        return;
    }

    ngx_sprintf(kbuf, "logins:%4d%02d%02d", tm.ngx_tm_year, tm.ngx_tm_mon,
                tm.ngx_tm_mday);
    ngx_sprintf(key.data, "%V%*s", prefix, sizeof(kbuf) - 1, kbuf);

    field.data = fbuf;
    field.len = ngx_sprintf(fbuf, "%02d:%s", tm.ngx_tm_hour,
                            success ? "success" : "failure")
                - fbuf;

    if (ngx_http_identity_cmd_init(r, &cmd, "EVAL", 6) != NGX_OK
        || ngx_http_identity_store_num(r, &ttl,
                                       NGX_HTTP_IDENTITY_EVENT_DAYS * 86400)
           == NULL)
    {
        return;
    }

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_count_script, 1);
    ngx_http_identity_cmd_str(&cmd, &key);
    ngx_http_identity_cmd_str(&cmd, &field);
    ngx_http_identity_cmd_str(&cmd, &ttl);

    if (ngx_http_identity_cmd_post(&cmd) != NGX_OK) {
        ngx_http_identity_event_failed(r, "counted");
    }
}


/* Redis down: its state is logged already (redis_state.c) */

static void
ngx_http_identity_event_failed(ngx_http_request_t *r, char *what)
{
    ngx_uint_t  level;

    level = ngx_http_identity_redis_down() ? NGX_LOG_INFO : NGX_LOG_ERR;

    ngx_log_error(level, r->connection->log, 0,
                  "identity: audit event not %s", what);
}


/*
 * An admin's write: the admin is the user (its session's identity, or
 * "token:" and 8 hex digits of the bearer token's hash, which names the
 * token without revealing it), the target whose session or identity
 */

void
ngx_http_identity_event_admin(ngx_http_request_t *r, ngx_str_t *token_hash,
    ngx_uint_t user, ngx_str_t *target)
{
    u_char                      buf[sizeof("token:") - 1 + 8];
    ngx_http_identity_ctx_t    *ctx;
    ngx_http_identity_event_t   ev;

    ctx = ngx_http_identity_get_ctx(r);

    ngx_memzero(&ev, sizeof(ngx_http_identity_event_t));

    ev.count = -1;
    ev.target = *target;

    if (token_hash == NULL) {
        ev.admin = ctx->session.identity_id;
        ev.provider = ctx->session.provider;

    } else if (token_hash->len >= 8) {
        ev.admin.data = buf;
        ev.admin.len = ngx_sprintf(buf, "token:%*s", (size_t) 8,
                                   token_hash->data)
                       - buf;
    }

    if (user) {
        ev.action = "user_deleted";

    } else {
        ev.action = "session_revoked";
        ngx_str_set(&ev.reason, "api");
    }

    ngx_http_identity_event(r, &ev);
}


/* app/events?limit=&before_id=&user=&action=: NGX_OK, or *msg says why not */

ngx_int_t
ngx_http_identity_events_query(ngx_http_request_t *r,
    ngx_http_identity_events_query_t *q, char **msg)
{
    ngx_int_t  n;
    ngx_str_t  v;

    q->limit = NGX_HTTP_IDENTITY_EVENT_PAGE;

    /* an empty parameter is an absent one, as on the other lists */

    if (ngx_http_arg(r, (u_char *) "limit", 5, &v) == NGX_OK && v.len) {
        n = ngx_atoi(v.data, v.len);

        if (n < 1 || n > NGX_HTTP_IDENTITY_EVENT_PAGE) {
            *msg = "limit must be a number from 1 to 100";
            goto invalid;
        }

        q->limit = n;
    }

    /* the values are checked as sent: ids and words need no escaping */

    if (ngx_http_arg(r, (u_char *) "before_id", 9, &q->before_id) == NGX_OK
        && q->before_id.len
        && !ngx_http_identity_event_id(&q->before_id))
    {
        *msg = "invalid before_id";
        goto invalid;
    }

    if (ngx_http_arg(r, (u_char *) "user", 4, &q->user) == NGX_OK
        && q->user.len
        && !ngx_http_identity_admin_id(&q->user, 0))
    {
        *msg = "user must be an au_ id";
        goto invalid;
    }

    if (ngx_http_arg(r, (u_char *) "action", 6, &q->action) == NGX_OK
        && q->action.len
        && !ngx_http_identity_event_action(&q->action))
    {
        *msg = "unknown action";
        goto invalid;
    }

    return NGX_OK;

invalid:

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "identity: admin: %s", *msg);

    return NGX_HTTP_BAD_REQUEST;
}


/* one of the actions above */

static ngx_uint_t
ngx_http_identity_event_action(ngx_str_t *action)
{
    ngx_uint_t  i;

    for (i = 0; ngx_http_identity_event_actions[i]; i++) {
        if (action->len == ngx_strlen(ngx_http_identity_event_actions[i])
            && ngx_strncmp(action->data, ngx_http_identity_event_actions[i],
                           action->len)
               == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* a stream entry's id: ms "-" sequence, each at most 20 digits */

static ngx_uint_t
ngx_http_identity_event_id(ngx_str_t *id)
{
    u_char      *p, *dash;
    ngx_uint_t   ms, seq;

    if (id->len < 3 || id->len > 41) {
        return 0;
    }

    dash = ngx_strlchr(id->data, id->data + id->len, '-');
    if (dash == NULL) {
        return 0;
    }

    ms = dash - id->data;
    seq = id->data + id->len - dash - 1;

    if (ms == 0 || ms > 20 || seq == 0 || seq > 20) {
        return 0;
    }

    for (p = id->data; p < id->data + id->len; p++) {
        if (p != dash && (*p < '0' || *p > '9')) {
            return 0;
        }
    }

    return 1;
}


ngx_int_t
ngx_http_identity_events_list(ngx_http_request_t *r,
    ngx_http_identity_events_query_t *q, ngx_http_identity_events_pt done)
{
    ngx_str_t                         key, end, count, *prefix;
    ngx_http_identity_cmd_t           cmd;
    ngx_http_identity_events_call_t  *call;

    call = ngx_pcalloc(r->pool, sizeof(ngx_http_identity_events_call_t));
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->done = done;
    call->query = q;

    prefix = ngx_http_identity_store_shard(r, '0');

    key.len = prefix->len + sizeof("audit") - 1;
    key.data = ngx_pnalloc(r->pool, key.len);
    end.data = ngx_pnalloc(r->pool, q->before_id.len + 1);

    if (key.data == NULL || end.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(key.data, "%Vaudit", prefix);

    /* before_id is not in the page: "(" excludes it */

    if (q->before_id.len) {
        end.len = ngx_sprintf(end.data, "(%V", &q->before_id) - end.data;

    } else {
        ngx_str_set(&end, "+");
    }

    if (ngx_http_identity_store_num(r, &count,
                                    (q->user.len || q->action.len)
                                    ? NGX_HTTP_IDENTITY_EVENT_SCAN
                                    : q->limit)
           == NULL
        || ngx_http_identity_cmd_init(r, &cmd, "XREVRANGE", 6) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_identity_cmd_str(&cmd, &key);
    ngx_http_identity_cmd_str(&cmd, &end);
    ngx_http_identity_cmd_cstr(&cmd, "-");
    ngx_http_identity_cmd_cstr(&cmd, "COUNT");
    ngx_http_identity_cmd_str(&cmd, &count);

    return ngx_http_identity_cmd_send(&cmd,
                                      ngx_http_identity_events_list_handler,
                                      call);
}


/*
 * [[id, [field, value, ...]], ...]: the entries whose action and user
 * match, up to the limit; the cursor is the last entry read, when the
 * stream may hold more
 */

static void
ngx_http_identity_events_list_handler(ngx_http_request_t *r,
    redisReply *reply, void *data)
{
    ngx_http_identity_events_call_t *call = data;

    size_t                             i, j;
    json_t                            *list, *doc, *body;
    ngx_str_t                          cursor, action, user, text;
    redisReply                        *e, *f;
    ngx_http_identity_events_query_t  *q;

    q = call->query;
    ngx_str_null(&cursor);

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        call->done(r, NGX_ERROR, NULL);
        return;
    }

    list = json_array();
    if (list == NULL) {
        call->done(r, NGX_ERROR, NULL);
        return;
    }

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
            || e->element[0]->type != REDIS_REPLY_STRING
            || e->element[1]->type != REDIS_REPLY_ARRAY)
        {
            continue;
        }

        cursor.data = (u_char *) e->element[0]->str;
        cursor.len = e->element[0]->len;

        f = e->element[1];
        ngx_str_null(&action);
        ngx_str_null(&user);
        ngx_str_null(&text);

        for (j = 0; j + 1 < f->elements; j += 2) {
            if (f->element[j]->type != REDIS_REPLY_STRING
                || f->element[j + 1]->type != REDIS_REPLY_STRING)
            {
                continue;
            }

            if (ngx_strcmp(f->element[j]->str, "action") == 0) {
                action.data = (u_char *) f->element[j + 1]->str;
                action.len = f->element[j + 1]->len;

            } else if (ngx_strcmp(f->element[j]->str, "user") == 0) {
                user.data = (u_char *) f->element[j + 1]->str;
                user.len = f->element[j + 1]->len;

            } else if (ngx_strcmp(f->element[j]->str, "doc") == 0) {
                text.data = (u_char *) f->element[j + 1]->str;
                text.len = f->element[j + 1]->len;
            }
        }

        if ((q->action.len
             && (action.len != q->action.len
                 || ngx_strncmp(action.data, q->action.data, action.len)
                    != 0))
            || (q->user.len
                && (user.len != q->user.len
                    || ngx_strncmp(user.data, q->user.data, user.len) != 0)))
        {
            continue;
        }

        doc = json_loadb((char *) text.data, text.len, 0, NULL);
        if (!json_is_object(doc)) {
            json_decref(doc);
            continue;
        }

        json_object_set_new(doc, "id",
                            json_stringn((char *) cursor.data, cursor.len));
        json_array_append_new(list, doc);

        if (json_array_size(list) == q->limit) {
            break;
        }
    }

    /* the stream's end reached: no next page */

    if (i == reply->elements
        && reply->elements < ((q->user.len || q->action.len)
                              ? NGX_HTTP_IDENTITY_EVENT_SCAN : q->limit))
    {
        ngx_str_null(&cursor);
    }

    body = ngx_http_identity_events_page(r, q, list, &cursor);

    call->done(r, body ? NGX_OK : NGX_ERROR, body);
}


/* {"events": [...], "uri": "...", "next_page_uri": "..." or null} */

static json_t *
ngx_http_identity_events_page(ngx_http_request_t *r,
    ngx_http_identity_events_query_t *q, json_t *list, ngx_str_t *cursor)
{
    u_char  *p;
    json_t  *body;

    body = json_object();
    p = ngx_pnalloc(r->pool, q->base.len + 256);

    if (body == NULL || p == NULL) {
        json_decref(body);
        json_decref(list);
        return NULL;
    }

    json_object_set_new(body, "events", list);
    json_object_set_new(body, "uri",
                        json_stringn((char *) p,
                                     ngx_sprintf(p, "%Vapp/events", &q->base)
                                     - p));

    if (cursor->len == 0) {
        json_object_set_new(body, "next_page_uri", json_null());
        return body;
    }

    /* user and action were checked: nothing to escape */

    json_object_set_new(body, "next_page_uri",
                        json_stringn((char *) p,
                                     ngx_sprintf(p, "%Vapp/events?limit=%ui"
                                                 "&before_id=%V%s%V%s%V",
                                                 &q->base, q->limit, cursor,
                                                 q->user.len ? "&user=" : "",
                                                 &q->user,
                                                 q->action.len ? "&action="
                                                               : "",
                                                 &q->action)
                                     - p));

    return body;
}


/* the days a range covers: 24 buckets of 1 h, or 28 of 6 h */

ngx_int_t
ngx_http_identity_events_stats(ngx_http_request_t *r, ngx_uint_t week,
    ngx_http_identity_events_pt done)
{
    time_t                            step, now, day;
    ngx_tm_t                          tm;
    ngx_str_t                         key, *prefix;
    ngx_uint_t                        n;
    ngx_http_identity_cmd_t           cmd;
    ngx_http_identity_events_call_t  *call;

    call = ngx_pcalloc(r->pool, sizeof(ngx_http_identity_events_call_t));
    if (call == NULL) {
        return NGX_ERROR;
    }

    step = week ? 21600 : 3600;
    now = ngx_time();

    call->done = done;
    call->week = week;
    call->first = now / step * step - (week ? 27 : 23) * step;

    if (ngx_http_identity_cmd_init(r, &cmd, "EVAL", 12) != NGX_OK) {
        return NGX_ERROR;
    }

    n = (now / 86400) - (call->first / 86400) + 1;

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_stats_script, n);

    prefix = ngx_http_identity_store_shard(r, '0');

    for (day = call->first / 86400 * 86400; day <= now; day += 86400) {
        ngx_gmtime(day, &tm);

        key.len = prefix->len + sizeof("logins:19700101") - 1;
        key.data = ngx_pnalloc(r->pool, key.len);
        if (key.data == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(key.data, "%Vlogins:%4d%02d%02d", prefix,
                    tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday);
        ngx_http_identity_cmd_str(&cmd, &key);
    }

    return ngx_http_identity_cmd_send(&cmd,
                                      ngx_http_identity_events_stats_handler,
                                      call);
}


static void
ngx_http_identity_events_stats_handler(ngx_http_request_t *r,
    redisReply *reply, void *data)
{
    ngx_http_identity_events_call_t *call = data;

    u_char       buf[sizeof("1970-01-01T00:00:00Z")];
    time_t       step, day, t, at;
    json_t      *body, *buckets, *b;
    ngx_tm_t     tm;
    ngx_int_t    hour, v;
    ngx_uint_t   i, j, k, nb, success[28], failure[28];
    redisReply  *h;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        call->done(r, NGX_ERROR, NULL);
        return;
    }

    step = call->week ? 21600 : 3600;
    nb = call->week ? 28 : 24;
    day = call->first / 86400 * 86400;

    ngx_memzero(success, sizeof(success));
    ngx_memzero(failure, sizeof(failure));

    for (i = 0; i < reply->elements; i++) {
        h = reply->element[i];

        if (h->type != REDIS_REPLY_ARRAY) {
            continue;
        }

        for (j = 0; j + 1 < h->elements; j += 2) {
            if (h->element[j]->type != REDIS_REPLY_STRING
                || h->element[j]->len < 4
                || h->element[j + 1]->type != REDIS_REPLY_STRING)
            {
                continue;
            }

            hour = ngx_atoi((u_char *) h->element[j]->str, 2);
            v = ngx_atoi((u_char *) h->element[j + 1]->str,
                         h->element[j + 1]->len);

            if (hour == NGX_ERROR || hour > 23 || v == NGX_ERROR) {
                continue;
            }

            at = day + (time_t) i * 86400 + hour * 3600;

            if (at < call->first) {
                continue;
            }

            k = (at - call->first) / step;
            if (k >= nb) {
                continue;
            }

            if (ngx_strcmp(h->element[j]->str + 2, ":success") == 0) {
                success[k] += v;

            } else if (ngx_strcmp(h->element[j]->str + 2, ":failure") == 0) {
                failure[k] += v;
            }
        }
    }

    body = json_object();
    buckets = json_array();

    if (body == NULL || buckets == NULL) {
        json_decref(body);
        json_decref(buckets);
        call->done(r, NGX_ERROR, NULL);
        return;
    }

    json_object_set_new(body, "range", json_string(call->week ? "7d" : "24h"));
    json_object_set_new(body, "bucket_seconds", json_integer(step));

    for (k = 0; k < nb; k++) {
        t = call->first + (time_t) k * step;
        ngx_gmtime(t, &tm);
        ngx_sprintf(buf, "%4d-%02d-%02dT%02d:%02d:%02dZ", tm.ngx_tm_year,
                    tm.ngx_tm_mon, tm.ngx_tm_mday, tm.ngx_tm_hour,
                    tm.ngx_tm_min, tm.ngx_tm_sec);

        b = json_pack("{s:s%, s:I, s:I}", "start", (char *) buf,
                      sizeof(buf) - 1, "success", (json_int_t) success[k],
                      "failure", (json_int_t) failure[k]);
        if (b) {
            json_array_append_new(buckets, b);
        }
    }

    json_object_set_new(body, "buckets", buckets);

    call->done(r, NGX_OK, body);
}
