
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The risk signals of a login (docs/risk.md): the `identity_risk`
 * directive, the one Redis round trip a login makes before its session is
 * made (the identity's history and how many of its sessions are live),
 * the signals decided over the new session's metadata (risk.c does the
 * arithmetic), the end of the identity's other sessions for
 * `revoke_others`, and the denial of a login the create script (store.c)
 * finds at concurrent_sessions' max when it is to be made.  The history
 * is kept on the identity's record, bounded: risk_countries and
 * risk_devices (one a line, newest first, 16 at most) and risk_last ("lat
 * lon radius country time" of the last login whose place was known); the
 * create script (store.c) writes what ctx->risk_seen holds once the
 * session is made, so a denied login leaves no trace.  Nothing here runs
 * on the authenticated request path.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_events.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_meta.h"
#include "ngx_http_identity_metrics.h"
#include "ngx_http_identity_redis.h"
#include "ngx_http_identity_risk.h"
#include "ngx_http_identity_store.h"
#include "ngx_http_identity_store_cmd.h"
#include "ngx_http_identity_store_risk.h"


/* live sessions counted at most: past it, the count is "at least" */
#define NGX_HTTP_IDENTITY_RISK_COUNT_MAX  1000

#define NGX_HTTP_IDENTITY_RISK_SPEED      900
#define NGX_HTTP_IDENTITY_RISK_MAX        10

/* a device/OS pair is cut to this (the parser's names are short) */
#define NGX_HTTP_IDENTITY_RISK_DEVICE_LEN  64
#define NGX_HTTP_IDENTITY_RISK_LIST_LEN                                       \
    (NGX_HTTP_IDENTITY_RISK_SEEN_MAX * (NGX_HTTP_IDENTITY_RISK_DEVICE_LEN + 1))


static void ngx_http_identity_risk_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_identity_risk_decide(ngx_http_request_t *r,
    redisReply **e, ngx_uint_t live);
static ngx_int_t ngx_http_identity_risk_deny(ngx_http_request_t *r,
    ngx_str_t *uid);
static ngx_int_t ngx_http_identity_risk_here(ngx_http_identity_meta_t *m,
    ngx_http_identity_risk_place_t *pl);
static ngx_int_t ngx_http_identity_risk_copy(ngx_http_request_t *r,
    ngx_str_t *dst, char *src, size_t n);
static json_t *ngx_http_identity_risk_flag(json_t *list, ngx_uint_t signal,
    const char *detail);
static ngx_int_t ngx_http_identity_risk_pack(ngx_pool_t *pool, json_t *flags,
    ngx_str_t *out);
static ngx_int_t ngx_http_identity_risk_dump(ngx_pool_t *pool, json_t *v,
    ngx_str_t *out);
static json_t *ngx_http_identity_risk_place(
    ngx_http_identity_risk_place_t *pl);
static void ngx_http_identity_risk_revoked(ngx_http_request_t *r,
    redisReply *reply, void *data);


/*
 * ARGV: the prefix, the provider, the user's id at it, the count's bound.
 * Answers {} for an identity never seen, else {uid, countries, devices,
 * last place, live sessions}.
 */

/* a denial's reason, by NGX_HTTP_IDENTITY_RISK_* (risk.c's names) */
static char  *ngx_http_identity_risk_reasons[] = {
    "risk:new_country", "risk:new_device", "risk:impossible_travel",
    "risk:concurrent_sessions"
};


static ngx_str_t  ngx_http_identity_risk_script = ngx_string(
    NGX_HTTP_IDENTITY_LUA_LIVE
    "local p = ARGV[1]\n"
    "local uid = redis.call('GET', p .. 'sub:' .. ARGV[2] .. ':' .. ARGV[3])\n"
    "if not uid then return {} end\n"
    "local h = redis.call('HMGET', p .. 'user:' .. uid, 'risk_countries',\n"
    "                     'risk_devices', 'risk_last')\n"
    "return {uid, h[1] or '', h[2] or '', h[3] or '',\n"
    "        live(p, uid, tonumber(ARGV[4]))}\n");


/* ARGV: the prefix, the identity, the session kept; {ended, event} */

static ngx_str_t  ngx_http_identity_risk_revoke_script = ngx_string(
    NGX_HTTP_IDENTITY_LUA_DROP
    "local p, uid, keep = ARGV[1], ARGV[2], ARGV[3]\n"
    "local n = 0\n"
    "for _, o in ipairs(redis.call('ZRANGE', p .. 'user_sessions:' .. uid,\n"
    "                              0, -1)) do\n"
    "  if o ~= keep then\n"
    "    local k = skey(p, o)\n"
    "    if k and redis.call('EXISTS', k) == 1 then n = n + 1 end\n"
    "    drop(p, o, uid)\n"
    "  end\n"
    "end\n"
    "return {n, publish(p)}\n");


/*
 * identity_risk NAME action=flag|deny|revoke_others [speed=KMH] [max=N],
 * at http level only: a session is admitted by every server that uses its
 * provider and Redis, and no request looks at its risk, so a policy of one
 * server would be undone by a login at another (docs/risk.md)
 */

char *
ngx_http_identity_risk_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_identity_main_conf_t *imcf = conf;

    ngx_int_t    n;
    ngx_str_t   *value, v;
    ngx_uint_t   i, j, signal, action;

    value = cf->args->elts;

    if (cf->cmd_type != NGX_HTTP_MAIN_CONF) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" is allowed at http level only: a "
                           "session works at every server that shares its "
                           "provider and Redis, so the risk policy is the "
                           "whole nginx's", &cmd->name);
        return NGX_CONF_ERROR;
    }

    for (signal = 0; ngx_http_identity_risk_signals[signal]; signal++) {
        if (ngx_strcmp(value[1].data, ngx_http_identity_risk_signals[signal])
            == 0)
        {
            break;
        }
    }

    if (ngx_http_identity_risk_signals[signal] == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\": a signal is "
                           "new_country, new_device, impossible_travel or "
                           "concurrent_sessions", &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (imcf->risk_action[signal] != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    action = NGX_CONF_UNSET_UINT;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "action=", 7) == 0) {
            v.data = value[i].data + 7;
            v.len = value[i].len - 7;

            for (j = 0; ngx_http_identity_risk_actions[j]; j++) {
                if (ngx_strcmp(v.data, ngx_http_identity_risk_actions[j])
                    == 0)
                {
                    action = j;
                    break;
                }
            }

            if (action == NGX_CONF_UNSET_UINT) {
                goto invalid;
            }

            continue;
        }

        if (signal == NGX_HTTP_IDENTITY_RISK_TRAVEL
            && ngx_strncmp(value[i].data, "speed=", 6) == 0)
        {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n < 1 || n > 1000000) {
                goto invalid;
            }

            imcf->risk_speed = n;
            continue;
        }

        if (signal == NGX_HTTP_IDENTITY_RISK_CONCURRENT
            && ngx_strncmp(value[i].data, "max=", 4) == 0)
        {
            n = ngx_atoi(value[i].data + 4, value[i].len - 4);
            if (n < 1 || n > NGX_HTTP_IDENTITY_RISK_COUNT_MAX - 1) {
                goto invalid;
            }

            imcf->risk_max = n;
            continue;
        }

        goto invalid;
    }

    if (action == NGX_CONF_UNSET_UINT) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V %V\" needs action=flag, action=deny or "
                           "action=revoke_others", &cmd->name, &value[1]);
        return NGX_CONF_ERROR;
    }

    imcf->risk_action[signal] = action;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V %V\"",
                       &value[i], &cmd->name, &value[1]);
    return NGX_CONF_ERROR;
}


/* every signal flags unless told otherwise (docs/risk.md says why) */

void
ngx_http_identity_risk_init_conf(ngx_http_identity_main_conf_t *imcf)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_IDENTITY_RISK_SIGNALS; i++) {
        ngx_conf_init_uint_value(imcf->risk_action[i],
                                 NGX_HTTP_IDENTITY_RISK_FLAG);
    }

    ngx_conf_init_uint_value(imcf->risk_speed, NGX_HTTP_IDENTITY_RISK_SPEED);
    ngx_conf_init_uint_value(imcf->risk_max, NGX_HTTP_IDENTITY_RISK_MAX);
}


ngx_int_t
ngx_http_identity_risk_check(ngx_http_request_t *r)
{
    u_char                    k;
    ngx_http_identity_ctx_t  *ctx;
    ngx_http_identity_cmd_t   cmd;

    ctx = ngx_http_identity_get_ctx(r);

    /* the session will record the same metadata: collected once */

    if (ngx_http_identity_meta_collect(r, &ctx->session.meta) != NGX_OK
        || ngx_http_identity_cmd_init(r, &cmd, "EVAL", 7) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->meta_done = 1;

    k = ngx_http_identity_identity_shard(&ctx->provider->name,
                                         &ctx->claims.provider_user_id);

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_risk_script, 0);
    ngx_http_identity_cmd_str(&cmd, ngx_http_identity_store_shard(r, k));
    ngx_http_identity_cmd_str(&cmd, &ctx->provider->name);
    ngx_http_identity_cmd_str(&cmd, &ctx->claims.provider_user_id);
    ngx_http_identity_cmd_num(&cmd, NGX_HTTP_IDENTITY_RISK_COUNT_MAX);

    return ngx_http_identity_cmd_send(&cmd, ngx_http_identity_risk_handler,
                                      NULL);
}


static void
ngx_http_identity_risk_handler(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_uint_t                i;
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || (reply->elements != 0 && reply->elements != 5))
    {
        ctx->redis_error = 1;
        ctx->resume(r);
        return;
    }

    for (i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type
            != (i == 4 ? REDIS_REPLY_INTEGER : REDIS_REPLY_STRING))
        {
            ctx->redis_error = 1;
            ctx->resume(r);
            return;
        }
    }

    if (ngx_http_identity_risk_decide(r, reply->elements ? reply->element
                                                         : NULL,
                                      reply->elements
                                      ? (ngx_uint_t)
                                        reply->element[4]->integer
                                      : 0)
        != NGX_OK)
    {
        ctx->redis_error = 1;
    }

    ctx->resume(r);
}


/*
 * The signals over the history "e" ({uid, countries, devices, last}, or
 * NULL for a first login, which flags nothing), the new history for the
 * session to write, and what the configured actions make of them: the
 * first denied signal denies, else any revoke_others revokes.
 */

static ngx_int_t
ngx_http_identity_risk_decide(ngx_http_request_t *r, redisReply **e,
    ngx_uint_t live)
{
    u_char                         *p;
    char                            detail[256], dev[128];
    char                            list[NGX_HTTP_IDENTITY_RISK_LIST_LEN];
    size_t                          n, dn, i;
    double                          km;
    ngx_str_t                       uid;
    json_t                         *flags, *f;
    time_t                          dt;
    ngx_int_t                       here;
    ngx_uint_t                      signal, action, raised[4];
    ngx_http_identity_ctx_t        *ctx;
    ngx_http_identity_meta_t       *m;
    ngx_http_identity_main_conf_t  *imcf;
    ngx_http_identity_risk_place_t  last, now;

    ctx = ngx_http_identity_get_ctx(r);
    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);
    m = &ctx->session.meta;

    ngx_memzero(raised, sizeof(raised));

    flags = json_array();
    if (flags == NULL) {
        return NGX_ERROR;
    }

    here = ngx_http_identity_risk_here(m, &now);

    /* "Desktop / Linux": what new_device compares, cut */

    dn = ngx_min(m->device_type.len, 60);

    if (dn) {
        ngx_memcpy(dev, m->device_type.data, dn);
    }

    if (m->os.len) {
        n = ngx_min(m->os.len, NGX_HTTP_IDENTITY_RISK_DEVICE_LEN - dn - 3);
        ngx_memcpy(dev + dn, " / ", 3);
        ngx_memcpy(dev + dn + 3, m->os.data, n);
        dn += 3 + n;
    }

    /*
     * no User-Agent, or an empty one, is a device too: the parser's name
     * for one it does not know, or "new_device action=deny" would admit
     * any login whose callback is sent without one
     */

    if (dn == 0 && imcf->ua) {
        dn = sizeof("Other / Other") - 1;
        ngx_memcpy(dev, "Other / Other", dn);
    }

    dev[dn] = '\0';

    /*
     * the parser's names are ASCII words; what a user agent's text made of
     * them is kept printable ASCII, for the JSON and the history's lines
     */

    for (i = 0; i < dn; i++) {
        if (dev[i] < 0x20 || dev[i] > 0x7e) {
            dev[i] = '?';
        }
    }

    if (e == NULL) {
        goto history;
    }

    /* new_country: "FR; seen before: JP, US" */

    if (m->country.len && e[1]->len
        && !ngx_http_identity_risk_seen(e[1]->str, e[1]->len,
                                        (char *) m->country.data,
                                        m->country.len))
    {
        p = ngx_snprintf((u_char *) detail, 32, "%V; seen before: ",
                         &m->country);

        /* 16 countries at most, each 2 letters and ", ": the room is known */

        for (i = 0; i < e[1]->len && p < (u_char *) detail + 200; i++) {
            if (e[1]->str[i] == '\n') {
                *p++ = ',';
                *p++ = ' ';

            } else {
                *p++ = (e[1]->str[i] > 0x20 && e[1]->str[i] < 0x7f)
                       ? e[1]->str[i] : '?';
            }
        }

        *p = '\0';

        raised[NGX_HTTP_IDENTITY_RISK_NEW_COUNTRY] = 1;

        if (ngx_http_identity_risk_flag(flags,
                                        NGX_HTTP_IDENTITY_RISK_NEW_COUNTRY,
                                        detail)
            == NULL)
        {
            goto failed;
        }
    }

    /* new_device: "Mobile / iOS" */

    if (dn && e[2]->len
        && !ngx_http_identity_risk_seen(e[2]->str, e[2]->len, dev, dn))
    {
        raised[NGX_HTTP_IDENTITY_RISK_NEW_DEVICE] = 1;

        if (ngx_http_identity_risk_flag(flags,
                                        NGX_HTTP_IDENTITY_RISK_NEW_DEVICE,
                                        dev)
            == NULL)
        {
            goto failed;
        }
    }

    /* impossible_travel: "9,712 km in 10 min", and both places */

    if (here == NGX_OK
        && ngx_http_identity_risk_place_parse(e[3]->str, e[3]->len, &last)
           == 0
        && ngx_http_identity_risk_travel(&last, &now,
                                         (double) imcf->risk_speed, &km))
    {
        dt = now.at - last.at;
        n = (size_t) (km + 0.5);

        if (n >= 1000) {
            p = ngx_snprintf((u_char *) detail, sizeof(detail), "%uz,%03uz km",
                             n / 1000, n % 1000);
        } else {
            p = ngx_snprintf((u_char *) detail, sizeof(detail), "%uz km", n);
        }

        if (dt < 120) {
            p = ngx_snprintf(p, 64, " in %T s", dt < 0 ? 0 : dt);
        } else {
            p = ngx_snprintf(p, 64, " in %T min", (dt + 30) / 60);
        }

        *p = '\0';

        raised[NGX_HTTP_IDENTITY_RISK_TRAVEL] = 1;

        f = ngx_http_identity_risk_flag(flags, NGX_HTTP_IDENTITY_RISK_TRAVEL,
                                        detail);
        if (f == NULL) {
            goto failed;
        }

        json_object_set_new(f, "from", ngx_http_identity_risk_place(&last));
        json_object_set_new(f, "to", ngx_http_identity_risk_place(&now));
    }

    /* concurrent_sessions: "6 sessions, limit 5", the new one counted */

    if (live + 1 > imcf->risk_max) {
        p = ngx_snprintf((u_char *) detail, sizeof(detail) - 1,
                         "%ui sessions, limit %ui", live + 1, imcf->risk_max);
        *p = '\0';

        raised[NGX_HTTP_IDENTITY_RISK_CONCURRENT] = 1;

        if (ngx_http_identity_risk_flag(flags,
                                        NGX_HTTP_IDENTITY_RISK_CONCURRENT,
                                        detail)
            == NULL)
        {
            goto failed;
        }
    }

history:

    /* what the identity will have been seen with, once the session is made */

    n = ngx_http_identity_risk_remember(list, sizeof(list),
                                        e ? e[1]->str : "",
                                        e ? e[1]->len : 0,
                                        (char *) m->country.data,
                                        m->country.len);
    if (ngx_http_identity_risk_copy(r, &ctx->risk_seen[0], list, n)
        != NGX_OK)
    {
        goto failed;
    }

    n = ngx_http_identity_risk_remember(list, sizeof(list),
                                        e ? e[2]->str : "",
                                        e ? e[2]->len : 0, dev, dn);
    if (ngx_http_identity_risk_copy(r, &ctx->risk_seen[1], list, n)
        != NGX_OK)
    {
        goto failed;
    }

    n = (here == NGX_OK)
        ? ngx_http_identity_risk_place_print(list, sizeof(list), &now) : 0;

    if (ngx_http_identity_risk_copy(r, &ctx->risk_seen[2], list, n)
        != NGX_OK)
    {
        goto failed;
    }

    /* the actions */

    for (signal = 0; signal < NGX_HTTP_IDENTITY_RISK_SIGNALS; signal++) {
        if (!raised[signal]) {
            continue;
        }

        action = imcf->risk_action[signal];

        ngx_http_identity_metrics_risk(signal, action);

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: login of \"%V\" raised \"%s\", action \"%s\"",
                      &ctx->claims.provider_user_id,
                      ngx_http_identity_risk_signals[signal],
                      ngx_http_identity_risk_actions[action]);

        if (action == NGX_HTTP_IDENTITY_RISK_DENY && !ctx->risk_denied) {
            ctx->risk_denied = signal + 1;
        }

        if (action == NGX_HTTP_IDENTITY_RISK_REVOKE) {
            ctx->risk_revoke = 1;
        }
    }

    if (ctx->risk_denied) {
        uid.len = e ? e[0]->len : 0;
        uid.data = e ? (u_char *) e[0]->str : NULL;

        if (ngx_http_identity_risk_deny(r, &uid) != NGX_OK) {
            goto failed;
        }
    }

    /*
     * the session's risk: the contract's JSON for this request (the audit
     * events read it), and its packed form for the session hash; nothing
     * when no signal
     */

    ngx_str_null(&ctx->session.risk);
    ngx_str_null(&ctx->risk_seen[3]);

    if (json_array_size(flags)
        && (ngx_http_identity_risk_dump(r->pool, flags, &ctx->session.risk)
            != NGX_OK
            || ngx_http_identity_risk_pack(r->pool, flags, &ctx->risk_seen[3])
               != NGX_OK))
    {
        goto failed;
    }

    json_decref(flags);

    return NGX_OK;

failed:

    json_decref(flags);

    return NGX_ERROR;
}


/*
 * The denial of ctx->risk_denied: its reason "risk:<signal>", which the
 * login's failure event names (endpoint.c) with whose it was, "uid" (of
 * 64 bytes at most; else unknown)
 */

static ngx_int_t
ngx_http_identity_risk_deny(ngx_http_request_t *r, ngx_str_t *uid)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    ctx->fail_reason = ngx_http_identity_risk_reasons[ctx->risk_denied - 1];

    if (uid->len && uid->len <= 64) {
        ctx->session.identity_id.data = ngx_pstrdup(r->pool, uid);
        if (ctx->session.identity_id.data == NULL) {
            return NGX_ERROR;
        }

        ctx->session.identity_id.len = uid->len;
    }

    return NGX_OK;
}


/*
 * The create script (store.c) found the identity at concurrent_sessions'
 * max, which the check before it had not: another login of the identity
 * made its session in between.  The same denial, counted and logged as
 * the check's.
 */

ngx_int_t
ngx_http_identity_risk_refused(ngx_http_request_t *r)
{
    ngx_str_t                 uid;
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    ngx_http_identity_metrics_risk(NGX_HTTP_IDENTITY_RISK_CONCURRENT,
                                   NGX_HTTP_IDENTITY_RISK_DENY);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "identity: login of \"%V\" raised \"%s\" when made, "
                  "action \"%s\"", &ctx->claims.provider_user_id,
                  ngx_http_identity_risk_signals[
                      NGX_HTTP_IDENTITY_RISK_CONCURRENT],
                  ngx_http_identity_risk_actions[NGX_HTTP_IDENTITY_RISK_DENY]);

    ctx->risk_denied = NGX_HTTP_IDENTITY_RISK_CONCURRENT + 1;
    ctx->risk_revoke = 0;

    /* store.c put the identity's id in the session */

    uid = ctx->session.identity_id;

    return ngx_http_identity_risk_deny(r, &uid);
}


/* where this login comes from: NGX_DECLINED when not known */

static ngx_int_t
ngx_http_identity_risk_here(ngx_http_identity_meta_t *m,
    ngx_http_identity_risk_place_t *pl)
{
    char  buf[32];

    ngx_memzero(pl, sizeof(ngx_http_identity_risk_place_t));

    pl->at = ngx_time();

    if (m->country.len == 2) {
        ngx_memcpy(pl->country, m->country.data, 2);
    }

    if (m->latitude.len == 0 || m->latitude.len >= sizeof(buf)
        || m->longitude.len == 0 || m->longitude.len >= sizeof(buf)
        || m->radius.len >= sizeof(buf))
    {
        return NGX_DECLINED;
    }

    ngx_memcpy(buf, m->latitude.data, m->latitude.len);
    buf[m->latitude.len] = '\0';
    pl->latitude = strtod(buf, NULL);

    ngx_memcpy(buf, m->longitude.data, m->longitude.len);
    buf[m->longitude.len] = '\0';
    pl->longitude = strtod(buf, NULL);

    if (m->radius.len) {
        ngx_memcpy(buf, m->radius.data, m->radius.len);
        buf[m->radius.len] = '\0';
        pl->radius = strtod(buf, NULL);
    }

    if (!(pl->latitude >= -90 && pl->latitude <= 90)
        || !(pl->longitude >= -180 && pl->longitude <= 180)
        || !(pl->radius >= 0 && pl->radius <= 20000))
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_identity_risk_copy(ngx_http_request_t *r, ngx_str_t *dst,
    char *src, size_t n)
{
    dst->len = n;
    dst->data = (u_char *) "";

    if (n == 0) {
        return NGX_OK;
    }

    dst->data = ngx_pnalloc(r->pool, n);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, src, n);

    return NGX_OK;
}


/* {"signal": ..., "detail": ...} appended; NULL if out of memory */

static json_t *
ngx_http_identity_risk_flag(json_t *list, ngx_uint_t signal,
    const char *detail)
{
    json_t  *f;

    f = json_object();

    if (f == NULL
        || json_object_set_new(f, "signal",
                   json_string(ngx_http_identity_risk_signals[signal])) != 0
        || json_object_set_new(f, "detail", json_string(detail)) != 0
        || json_array_append_new(list, f) != 0)
    {
        return NULL;
    }

    return f;
}


/* {"country_code", "latitude", "longitude", "at"} as the API shows a place */

static json_t *
ngx_http_identity_risk_place(ngx_http_identity_risk_place_t *pl)
{
    char       at[32];
    json_t    *o;
    struct tm  tm;

    o = json_object();
    if (o == NULL) {
        return NULL;
    }

    if (pl->country[0]) {
        json_object_set_new(o, "country_code", json_string(pl->country));
    }

    json_object_set_new(o, "latitude", json_real(pl->latitude));
    json_object_set_new(o, "longitude", json_real(pl->longitude));

    ngx_libc_gmtime(pl->at, &tm);

    if (strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm)) {
        json_object_set_new(o, "at", json_string(at));
    }

    return o;
}


/*
 * The session hash keeps the flags packed, [[signal, detail(, from, to)]],
 * so that a flag such as concurrent_sessions' stays under Redis's
 * hash-max-listpack-value (64 bytes) and the hash compact (t/63)
 */

static ngx_int_t
ngx_http_identity_risk_pack(ngx_pool_t *pool, json_t *flags, ngx_str_t *out)
{
    size_t     i;
    json_t    *packed, *f, *e, *v;
    ngx_int_t  rc;

    packed = json_array();
    if (packed == NULL) {
        return NGX_ERROR;
    }

    json_array_foreach(flags, i, f) {
        e = json_array();
        if (e == NULL || json_array_append_new(packed, e) != 0) {
            json_decref(packed);
            return NGX_ERROR;
        }

        json_array_append(e, json_object_get(f, "signal"));
        json_array_append(e, json_object_get(f, "detail"));

        v = json_object_get(f, "from");

        if (v) {
            json_array_append(e, v);
            json_array_append(e, json_object_get(f, "to"));
        }
    }

    rc = ngx_http_identity_risk_dump(pool, packed, out);

    json_decref(packed);

    return rc;
}


/* the packed flags of a session hash as the API shows them; [] if bad */

ngx_int_t
ngx_http_identity_risk_unpack(ngx_pool_t *pool, ngx_str_t *risk)
{
    size_t     i;
    json_t    *packed, *flags, *e, *f, *v;
    ngx_int_t  rc;

    if (risk->len == 0) {
        return NGX_OK;
    }

    packed = json_loadb((char *) risk->data, risk->len, 0, NULL);
    flags = json_array();

    if (flags == NULL || packed == NULL || !json_is_array(packed)) {
        json_decref(packed);
        json_decref(flags);
        ngx_str_null(risk);
        return flags ? NGX_OK : NGX_ERROR;
    }

    json_array_foreach(packed, i, e) {
        v = json_array_get(e, 0);

        if (!json_is_string(v)) {
            continue;
        }

        f = json_object();
        if (f == NULL || json_array_append_new(flags, f) != 0) {
            json_decref(packed);
            json_decref(flags);
            return NGX_ERROR;
        }

        json_object_set(f, "signal", v);
        json_object_set(f, "detail", json_array_get(e, 1));

        if (json_is_object(json_array_get(e, 2))) {
            json_object_set(f, "from", json_array_get(e, 2));
            json_object_set(f, "to", json_array_get(e, 3));
        }
    }

    rc = ngx_http_identity_risk_dump(pool, flags, risk);

    json_decref(packed);
    json_decref(flags);

    return rc;
}


/* compact JSON text in the pool */

static ngx_int_t
ngx_http_identity_risk_dump(ngx_pool_t *pool, json_t *v, ngx_str_t *out)
{
    char    *s;
    size_t   n;

    s = json_dumps(v, JSON_COMPACT);
    if (s == NULL) {
        return NGX_ERROR;
    }

    n = ngx_strlen(s);

    out->data = ngx_pnalloc(pool, n);
    if (out->data == NULL) {
        free(s);
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, s, n);
    out->len = n;
    free(s);

    return NGX_OK;
}


ngx_int_t
ngx_http_identity_risk_revoke(ngx_http_request_t *r)
{
    ngx_http_identity_ctx_t  *ctx;
    ngx_http_identity_cmd_t   cmd;

    ctx = ngx_http_identity_get_ctx(r);

    if (ngx_http_identity_cmd_init(r, &cmd, "EVAL", 6) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_risk_revoke_script, 0);
    ngx_http_identity_cmd_str(&cmd,
                              ngx_http_identity_store_id_shard(r,
                                                   &ctx->session.identity_id));
    ngx_http_identity_cmd_str(&cmd, &ctx->session.identity_id);
    ngx_http_identity_cmd_str(&cmd, &ctx->session.id);

    return ngx_http_identity_cmd_send_revoking(&cmd,
                                              ngx_http_identity_risk_revoked,
                                              NULL);
}


/* {ended, the event the nodes confirm}: answered once they have */

static void
ngx_http_identity_risk_revoked(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_http_identity_ctx_t      *ctx;
    ngx_http_identity_event_t     ev;
    ngx_http_identity_session_t   whose;

    ctx = ngx_http_identity_get_ctx(r);

    if (reply == NULL
        || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_INTEGER)
    {
        ctx->redis_error = 1;
        ctx->resume(r);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "identity: %i other sessions of \"%V\" revoked (risk)",
                  (ngx_int_t) reply->element[0]->integer,
                  &ctx->session.identity_id);

    ngx_http_identity_metrics_revoked(NGX_HTTP_IDENTITY_REVOKED_RISK,
                                      (ngx_uint_t) reply->element[0]->integer);

    /*
     * one event for the sessions ended: the user and the client of the
     * login that ended them, without the new session's id
     */

    whose = ctx->session;
    ngx_str_null(&whose.id);

    ngx_http_identity_event_init(&ev, "session_revoked", "risk",
                                 reply->element[0]->integer);
    ev.session = &whose;
    ev.provider = ctx->session.provider;

    ngx_http_identity_event(r, &ev);

    /* answered, as a DELETE is, once every node has forgotten them */

    ngx_http_identity_session_wait_nodes(r, reply->element[1]->integer);
}
