
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * Audit events (docs/events.md): one JSON document with Elastic Common
 * Schema names for each login, logout, revocation, noticed expiry, admin
 * write and risk flag, made where metrics.c counts the same thing, never
 * on an admitted request.  Each goes, without waiting for an answer, to
 * the Redis Stream "P audit" (XADD MAXLEN ~ identity_audit_stream_size,
 * fields action, user and doc) and to identity_audit_log's file or
 * syslog (ngx_http_identity_audit_log.c, which never blocks the loop).  A
 * login also bumps "P logins:<yyyymmdd>" (field "HH:success" or
 * "HH:failure", kept 9 days) for GET app/stats/logins.  An event that
 * cannot be written is logged and lost: it never fails what it records.
 *
 * A login that failed before naming an identity goes to the stream
 * "P audit:failures" instead, as long: anyone can make one (a forged
 * callback), and in "P audit" they would push the others out.
 *
 * In a Redis Cluster these keys are in the shard {@0}.  What the admin
 * API reads of them is in ngx_http_identity_events_admin.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_redis.h"
#include "ngx_http_identity_store_cmd.h"
#include "ngx_http_identity_events.h"
#include "ngx_http_identity_audit_log.h"


#define NGX_HTTP_IDENTITY_EVENT_FIELD     1024    /* bytes of a string */
#define NGX_HTTP_IDENTITY_EVENT_MAX       7168    /* bytes of a document */
#define NGX_HTTP_IDENTITY_EVENT_SHORT     256     /* a string cut to fit */
#define NGX_HTTP_IDENTITY_EVENT_DAYS      9       /* a day's counters kept */


static json_t *ngx_http_identity_event_doc(ngx_http_request_t *r,
    ngx_http_identity_event_t *ev);
static char *ngx_http_identity_event_dump(json_t *doc);
static void ngx_http_identity_event_cut(json_t *o, const char *key,
    size_t max);
static json_t *ngx_http_identity_event_str(ngx_str_t *s);
static void ngx_http_identity_event_set(json_t *o, char *key, ngx_str_t *s);
static json_t *ngx_http_identity_event_url(ngx_http_request_t *r);
static json_t *ngx_http_identity_event_source(ngx_http_request_t *r,
    ngx_http_identity_session_t *s);
static void ngx_http_identity_event_count(ngx_http_request_t *r,
    ngx_uint_t success);
static void ngx_http_identity_event_failed(ngx_http_request_t *r,
    char *what);


static ngx_str_t  ngx_http_identity_count_script = ngx_string(
    "redis.call('HINCRBY', KEYS[1], ARGV[1], 1)\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[2])\n"
    "return 1\n");


/* an event of this action, reason (or NULL) and number of sessions (or -1) */

void
ngx_http_identity_event_init(ngx_http_identity_event_t *ev, char *action,
    char *reason, ngx_int_t count)
{
    ngx_memzero(ev, sizeof(ngx_http_identity_event_t));

    ev->action = action;
    ev->count = count;

    if (reason) {
        ev->reason.data = (u_char *) reason;
        ev->reason.len = ngx_strlen(reason);
    }
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

    ngx_http_identity_event_init(&ev, "login", reason, -1);
    ev.outcome = success ? "success" : "failure";

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

    ngx_http_identity_event_init(&ev, action, reason, count);

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
    ngx_uint_t                      anonymous;
    ngx_http_identity_cmd_t         cmd;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    doc = ngx_http_identity_event_doc(r, ev);
    if (doc == NULL) {
        ngx_http_identity_event_failed(r, "made");
        return;
    }

    text = ngx_http_identity_event_dump(doc);
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

    ngx_http_identity_audit_log_write(r, &line);

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

    /*
     * a login that failed before an identity was known names nobody, and
     * anyone can make one: its own stream, so that it never pushes the
     * history of known identities out of "P audit"
     */

    anonymous = ev->outcome && ngx_strcmp(ev->outcome, "failure") == 0
                && (ev->session == NULL || ev->session->identity_id.len == 0)
                && ev->target.len == 0;

    key.len = prefix->len + sizeof("audit:failures") - 1;
    key.data = ngx_pnalloc(r->pool, key.len);
    if (key.data == NULL) {
        return;
    }

    key.len = ngx_sprintf(key.data, "%Vaudit%s", prefix,
                          anonymous ? ":failures" : "")
              - key.data;
    ngx_http_identity_cmd_str(&cmd, &key);

    ngx_http_identity_cmd_cstr(&cmd, "MAXLEN");
    ngx_http_identity_cmd_cstr(&cmd, "~");
    ngx_http_identity_cmd_str(&cmd, &size);
    ngx_http_identity_cmd_cstr(&cmd, "*");
    ngx_http_identity_cmd_cstr(&cmd, "action");
    ngx_http_identity_cmd_cstr(&cmd, ev->action);
    ngx_http_identity_cmd_cstr(&cmd, "user");

    /* whom the event is about, not the admin: that user's page lists it */

    if (ev->session && ev->session->identity_id.len) {
        ngx_http_identity_cmd_str(&cmd, &ev->session->identity_id);

    } else if (ev->whose.len) {
        ngx_http_identity_cmd_str(&cmd, &ev->whose);

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
    json_t                       *doc, *event, *user, *o, *risk;
    ngx_tm_t                      tm;
    ngx_str_t                     id;
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

    o = ngx_http_identity_event_url(r);
    if (o) {
        json_object_set_new(doc, "url", o);
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


/*
 * The text of a document, at most NGX_HTTP_IDENTITY_EVENT_MAX bytes: with
 * syslog's header it stays within the 8 KiB that rsyslog takes by default.
 * Past the bound what the client sent goes first (user_agent, risk), then
 * the long strings are cut shorter, then left out.  NULL: no memory, or
 * still over (what is left is ours: ids, the reason, the provider's name).
 */

static char *
ngx_http_identity_event_dump(json_t *doc)
{
    char        *text;
    json_t      *o;
    ngx_uint_t   i, step;

    static const char  *longest[][2] = {
        { "user", "email" }, { "user", "name" }, { "user", "username" },
        { "url", "full" }, { "url", "domain" }
    };

    for (step = 0; /* void */; step++) {
        text = json_dumps(doc, JSON_COMPACT);

        if (text == NULL || ngx_strlen(text) <= NGX_HTTP_IDENTITY_EVENT_MAX) {
            return text;
        }

        free(text);

        if (step == 0) {
            json_object_del(doc, "user_agent");
            json_object_del(doc, "risk");
            continue;
        }

        if (step == 3) {
            return NULL;
        }

        for (i = 0; i < sizeof(longest) / sizeof(longest[0]); i++) {
            o = json_object_get(doc, longest[i][0]);

            if (step == 1) {
                ngx_http_identity_event_cut(o, longest[i][1],
                                            NGX_HTTP_IDENTITY_EVENT_SHORT);

            } else {
                json_object_del(o, longest[i][1]);
            }
        }
    }
}


/* a string member cut to max bytes, on a character's boundary */

static void
ngx_http_identity_event_cut(json_t *o, const char *key, size_t max)
{
    u_char  *p;
    json_t  *s;

    s = json_object_get(o, key);

    if (!json_is_string(s) || json_string_length(s) <= max) {
        return;
    }

    p = (u_char *) json_string_value(s);

    while (max && (p[max] & 0xc0) == 0x80) {
        max--;
    }

    json_object_set_new(o, key, json_stringn((char *) p, max));
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


/* the site: its public origin, and the host in it */

static json_t *
ngx_http_identity_event_url(ngx_http_request_t *r)
{
    u_char     *p, *last;
    json_t     *o;
    ngx_str_t   url;

    if (ngx_http_identity_public_origin(r, &url) != NGX_OK || url.len == 0) {
        return NULL;
    }

    o = json_object();
    if (o == NULL) {
        return NULL;
    }

    ngx_http_identity_event_set(o, "full", &url);

    /* scheme://host[:port], an IPv6 host in brackets */

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

    return o;
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
 * token without revealing it), the target whose session or identity; the
 * stream's user field is whose it was (the identity deleted, or the
 * session's, when the store knew it), as for the user's own events
 */

void
ngx_http_identity_event_admin(ngx_http_request_t *r, ngx_str_t *token_hash,
    ngx_uint_t user, ngx_str_t *target, ngx_str_t *whose)
{
    u_char                      buf[sizeof("token:") - 1 + 8];
    ngx_http_identity_ctx_t    *ctx;
    ngx_http_identity_event_t   ev;

    ctx = ngx_http_identity_get_ctx(r);

    if (user) {
        ngx_http_identity_event_init(&ev, "user_deleted", NULL, -1);

    } else {
        ngx_http_identity_event_init(&ev, "session_revoked", "api", -1);
    }

    ev.target = *target;
    ev.whose = user ? *target : whose ? *whose : ev.whose;

    if (token_hash == NULL) {
        ev.admin = ctx->session.identity_id;
        ev.provider = ctx->session.provider;

    } else if (token_hash->len >= 8) {
        ev.admin.data = buf;
        ev.admin.len = ngx_sprintf(buf, "token:%*s", (size_t) 8,
                                   token_hash->data)
                       - buf;
    }

    ngx_http_identity_event(r, &ev);
}
