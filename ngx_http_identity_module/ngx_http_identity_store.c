
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * Key layout (version 4), under the configured prefix P ("identity:"):
 *
 *   P session:<h>                 hash, the session; h is the first 128
 *                                 bits of sha256(cookie) in hex, and its
 *                                 public id is "as_" h; TTL = idle
 *                                 timeout, never past the maximum duration
 *   P ua:<sha256(agent), 16 hex>  hash {ua}: a user agent, shared by the
 *                                 sessions whose "uah" names it; TTL the
 *                                 longest maximum duration among them
 *   P sessions                    zset of session ids by creation (ms)
 *   P sweep                       where the sweep of "sessions" goes on
 *   P user:<identity id>          hash, the identity, with its risk
 *                                 history (risk_countries, risk_devices,
 *                                 risk_last: ngx_http_identity_store_risk.c)
 *   P users                       zset of identity ids by creation (ms)
 *   P user_sessions:<id>          zset of that identity's session ids;
 *                                 TTL that of its longest-lived session
 *   P sub:<provider>:<user id>    identity id of a provider's user
 *   P login:<sha256(state)>       hash, a pending login; TTL 10 minutes
 *   P verified:<sha256(key)>      hash, a SAML login verified at the ACS,
 *                                 waiting for its browser; TTL 60 s
 *   P audit                       stream, the audit events (events.c):
 *                                 {action, user, doc}, MAXLEN ~
 *                                 identity_audit_stream_size
 *   P audit:failures              stream, as "P audit", of the login
 *                                 failures that name no identity
 *   P logins:<yyyymmdd>           hash "HH:success|failure" -> logins
 *                                 that hour (UTC); TTL 9 days
 *
 * and the sites an identity used (NGX_HTTP_IDENTITY_LUA_SITE below).
 *
 * In a Redis Cluster, P is followed by a shard's hash tag, {@0} to {@f}
 * (store_cmd.c): an identity's keys, its sessions' and its entries in the
 * indexes are in one shard, the first digit of its id after "au_" and of
 * its sessions' hashes; the nodes' keys are in {@n}, the audit events'
 * streams and login counters in {@0}.
 *
 * Only hashes of the cookie, the state and the key are stored.  Entries of
 * "sessions" that ended are swept by each login, a bounded amount at a
 * time (the create script); an identity's lists (its sessions, its sites'
 * sessions, an IdP session's) are cleaned as the admin API reads them and
 * expire with their longest-lived session.  Version 3 had a record
 * sid:<session id> mapping a random public id to the cookie's full hash;
 * its sessions are not found by this build (their users log in again),
 * and drop() cleans up after them (ngx_http_identity_store_cmd.h).
 *
 * Size (docs/architecture.md, t/63): a session hash holds what the one
 * HMGET of a request reads and the few fields of the admin API (a login
 * writes no empty one), each value under hash-max-listpack-value for an
 * ordinary login (listpack); the user agent, the same for many sessions,
 * is one record.
 *
 * Callers see typed records (ngx_http_identity_store.h), never a Redis
 * reply; the commands are built by name (ngx_http_identity_store_cmd.c),
 * hash fields as name/value pairs.  Here: sessions, pending logins and
 * one-time tokens; the admin API's reads are in
 * ngx_http_identity_store_admin.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_cache.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_node.h"
#include "ngx_http_identity_meta.h"
#include "ngx_http_identity_redis.h"
#include "ngx_http_identity_store.h"
#include "ngx_http_identity_store_cmd.h"
#include "ngx_http_identity_claims.h"
#include "ngx_http_identity_risk.h"


#define NGX_HTTP_IDENTITY_SESSION_FIELDS  31

/* fields no request reads, only the admin API */
#define NGX_HTTP_IDENTITY_NEED_ADMIN      0x80

/* what a cached session holds: every field a request may read */
#define NGX_HTTP_IDENTITY_NEED_REQUEST                                        \
    (NGX_HTTP_IDENTITY_NEED_RULES|NGX_HTTP_IDENTITY_NEED_TOKEN                \
     |NGX_HTTP_IDENTITY_NEED_META)

/* the layout of a cached session; another build's entries are not read */
#define NGX_HTTP_IDENTITY_PACK_VERSION    0x1d000004


static void ngx_http_identity_lookup_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_identity_create_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_identity_session_tokens(ngx_http_request_t *r,
    ngx_str_t *sid, ngx_str_t *out);
static void ngx_http_identity_claim_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static u_char *ngx_http_identity_session_hash(ngx_http_request_t *r);
static ngx_int_t ngx_http_identity_session_cached(ngx_http_request_t *r);
static void ngx_http_identity_session_cache_put(ngx_http_request_t *r);


/*
 * A session lookup reads only what the request may use: the identity
 * always, groups and claims for locations with rules, the encrypted
 * access token and the metadata when a variable needs them.  The admin API
 * reads whole records, by these names.
 */


#define ngx_http_identity_field(name, field, time, need)                      \
    { ngx_string(name), offsetof(ngx_http_identity_session_t, field), time,   \
      need }

ngx_http_identity_field_t  ngx_http_identity_session_fields[] = {
    ngx_http_identity_field("v", version, 0, 0),
    ngx_http_identity_field("id", id, 0, 0),
    ngx_http_identity_field("uid", identity_id, 0, 0),
    ngx_http_identity_field("provider", provider, 0, 0),
    ngx_http_identity_field("sub", provider_user_id, 0, 0),
    ngx_http_identity_field("email", email, 0, 0),
    ngx_http_identity_field("name", name, 0, 0),
    ngx_http_identity_field("username", username, 0, 0),
    ngx_http_identity_field("auth", auth_id, 0, 0),
    ngx_http_identity_field("created_at", created_at, 1, 0),
    ngx_http_identity_field("last_active", last_active, 1, 0),
    ngx_http_identity_field("expires_at", expires_at, 1, 0),
    ngx_http_identity_field("idle", idle_timeout, 1, 0),
    ngx_http_identity_field("checked", checked, 1, 0),
    ngx_http_identity_field("groups", groups, 0, NGX_HTTP_IDENTITY_NEED_RULES),
    ngx_http_identity_field("claims", claims, 0, NGX_HTTP_IDENTITY_NEED_RULES),
    ngx_http_identity_field("at", access_token, 0,
                            NGX_HTTP_IDENTITY_NEED_TOKEN),
    ngx_http_identity_field("browser", meta.browser, 0,
                            NGX_HTTP_IDENTITY_NEED_META),
    ngx_http_identity_field("browser_version", meta.browser_version, 0,
                            NGX_HTTP_IDENTITY_NEED_META),
    ngx_http_identity_field("os", meta.os, 0, NGX_HTTP_IDENTITY_NEED_META),
    ngx_http_identity_field("os_version", meta.os_version, 0,
                            NGX_HTTP_IDENTITY_NEED_META),
    ngx_http_identity_field("device_type", meta.device_type, 0,
                            NGX_HTTP_IDENTITY_NEED_META),
    ngx_http_identity_field("country", meta.country, 0,
                            NGX_HTTP_IDENTITY_NEED_META),
    ngx_http_identity_field("lat", meta.latitude, 0,
                            NGX_HTTP_IDENTITY_NEED_META),
    ngx_http_identity_field("lon", meta.longitude, 0,
                            NGX_HTTP_IDENTITY_NEED_META),
    ngx_http_identity_field("url", public_url, 0,
                            NGX_HTTP_IDENTITY_NEED_ADMIN),
    ngx_http_identity_field("ip", meta.ip, 0, NGX_HTTP_IDENTITY_NEED_ADMIN),
    ngx_http_identity_field("device", meta.device, 0,
                            NGX_HTTP_IDENTITY_NEED_ADMIN),
    ngx_http_identity_field("radius", meta.radius, 0,
                            NGX_HTTP_IDENTITY_NEED_ADMIN),
    ngx_http_identity_field("risk", risk, 0, NGX_HTTP_IDENTITY_NEED_ADMIN),

    /* not in the session's hash: the admin API's scripts add it */

    ngx_http_identity_field("ua", meta.user_agent, 0,
                            NGX_HTTP_IDENTITY_NEED_ADMIN),
    { ngx_null_string, 0, 0, 0 }
};


/*
 * The sites (the keys say endpoints) a session is used at:
 * endpoints:<uid> maps a public URL to "first last sessions hash", the
 * hash (ep) naming endpoint_sessions:<uid>:<ep>, the sessions that used
 * the site (by first use).  While an identity has used one site, that
 * list is its user_sessions (the admin API's list script reads it so):
 * the list is made when a second site comes.  A session ends in every
 * site list of its identity (drop).
 */

#define NGX_HTTP_IDENTITY_LUA_SITE                                            \
    "local function outlive(k, life)\n"                                       \
    "  if redis.call('TTL', k) < life then redis.call('EXPIRE', k, life) end\n"\
    "end\n"                                                                   \
    "local function endpoint(p, uid, sid, url, ep, now, new, life)\n"         \
    "  local k = p .. 'endpoints:' .. uid\n"                                  \
    "  local first, n = now, 0\n"                                             \
    "  local e = redis.call('HGET', k, url)\n"                                \
    "  if e then\n"                                                           \
    "    local f, _, c = string.match(e, '^(%d+) (%d+) (%d+)')\n"             \
    "    if f then first, n = f, tonumber(c) end\n"                           \
    "  end\n"                                                                 \
    "  redis.call('HSET', k, url,\n"                                          \
    "             first .. ' ' .. now .. ' ' .. (n + new) .. ' ' .. ep)\n"    \
    "  local sites = redis.call('HVALS', k)\n"                                \
    "  if #sites < 2 then return end\n"                                       \
    "  local l = p .. 'endpoint_sessions:' .. uid .. ':'\n"                   \
    "  if not e and #sites == 2 then\n"                                       \
    "    for _, v in ipairs(sites) do\n"                                      \
    "      local o = string.match(v, '^%d+ %d+ %d+ (%x+)$')\n"                \
    "      if o and o ~= ep then\n"                                           \
    "        local us = p .. 'user_sessions:' .. uid\n"                      \
    "        redis.call('ZUNIONSTORE', l .. o, 1, us)\n"                      \
    "        outlive(l .. o, redis.call('TTL', us))\n"                        \
    "        if new == 1 then redis.call('ZREM', l .. o, sid) end\n"          \
    "      end\n"                                                             \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "  redis.call('ZADD', l .. ep, 'NX', now * 1000, sid)\n"                  \
    "  outlive(l .. ep, life)\n"                                              \
    "end\n"


static ngx_str_t  ngx_http_identity_touch_script = ngx_string(
    NGX_HTTP_IDENTITY_LUA_SITE
    "local s, p = KEYS[1], ARGV[1]\n"
    "if redis.call('EXISTS', s) == 0 then return 0 end\n"
    "local now = tonumber(ARGV[2])\n"
    "local f = redis.call('HMGET', s, 'uid', 'expires_at', 'idle', 'id')\n"
    "local ttl = math.min(tonumber(f[3]), tonumber(f[2]) - now)\n"
    "if ttl <= 0 then return 0 end\n"
    "redis.call('HSET', s, 'last_active', now)\n"
    "redis.call('EXPIRE', s, ttl)\n"
    "redis.call('HSET', p .. 'user:' .. f[1], 'last_active', now)\n"
    "endpoint(p, f[1], f[4], ARGV[3], ARGV[4], now, 0, tonumber(f[2]) - now)\n"
    "return 1\n");


/*
 * ARGV: the prefix, a new identity id, the session id, the hash of its
 * cookie, the time in ms and the site's hash; then the login's fields,
 * name/value pairs.  The session hash gets those a request or the admin
 * API reads, except the identity's issuer (its record has it) and the user
 * agent (its shared record, named by "uah").  Empty values are left out.
 * The identity's record has no id either: its key says it, and the admin
 * API's scripts add it.
 *
 * With "max_live" (concurrent_sessions action=deny), the identity's live
 * sessions are counted again here, with the creation in one script, so
 * that logins checked at once (store_risk.c) do not pass max together: at
 * max, nothing is written and it answers {uid}.
 *
 * Then the sweep: the identity's 10 oldest sessions are checked, and the
 * next 100 sessions of the index, from where the last
 * login left off, are checked and those that ended (expired: no session
 * hash) are dropped; at the end of the index it starts over.  At a steady
 * rate of logins about rate x maximum duration sessions are indexed, so a
 * round takes about the maximum duration / 100, and the sweep needs no
 * index of its own.
 */

static ngx_str_t  ngx_http_identity_create_script = ngx_string(
    NGX_HTTP_IDENTITY_LUA_DROP
    NGX_HTTP_IDENTITY_LUA_LIVE
    NGX_HTTP_IDENTITY_LUA_SITE
    "local p, sid, th = ARGV[1], ARGV[3], ARGV[4]\n"
    "local now_ms, ep = tonumber(ARGV[5]), ARGV[6]\n"
    "local f, rec = {}, {}\n"
    "local elsewhere = {issuer = 1, ua = 1, risk_countries = 1,\n"
    "                   risk_devices = 1, risk_last = 1, max_live = 1}\n"
    "for i = 7, #ARGV, 2 do\n"
    "  local k, v = ARGV[i], ARGV[i + 1]\n"
    "  f[k] = v\n"
    "  if v ~= '' and not elsewhere[k] then\n"
    "    rec[#rec + 1] = k\n"
    "    rec[#rec + 1] = v\n"
    "  end\n"
    "end\n"
    "local provider, issuer, sub = f.provider, f.issuer, f.sub\n"
    "local now, expires = tonumber(f.created_at), tonumber(f.expires_at)\n"
    "local idle, url, isid = tonumber(f.idle), f.url, f.idp_sid\n"
    "local subkey = p .. 'sub:' .. provider .. ':' .. sub\n"
    "local uid = redis.call('GET', subkey)\n"
    "local max = f.max_live and tonumber(f.max_live)\n"
    "if uid and max and live(p, uid, 1000) >= max then return {uid} end\n"
    "if not uid then\n"
    "  uid = ARGV[2]\n"
    "  redis.call('SET', subkey, uid)\n"
    "  redis.call('ZADD', p .. 'users', now_ms, uid)\n"
    "  redis.call('HSET', p .. 'user:' .. uid, 'provider', provider,\n"
    "             'sub', sub, 'created_at', now)\n"
    "  if issuer ~= '' then\n"
    "    redis.call('HSET', p .. 'user:' .. uid, 'issuer', issuer)\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', p .. 'user:' .. uid, 'email', f.email,\n"
    "           'name', f.name, 'username', f.username,\n"
    "           'last_login', now, 'last_active', now)\n"
    "for _, k in ipairs({'risk_countries', 'risk_devices', 'risk_last'}) do\n"
    "  if f[k] and f[k] ~= '' then\n"
    "    redis.call('HSET', p .. 'user:' .. uid, k, f[k])\n"
    "  end\n"
    "end\n"
    "local s = p .. 'session:' .. th\n"
    "redis.call('HSET', s, 'v', '4', 'id', sid, 'uid', uid, unpack(rec))\n"
    "redis.call('EXPIRE', s, math.max(1, math.min(idle, expires - now)))\n"
    "local life = math.max(1, expires - now)\n"
    "if f.uah and f.uah ~= '' then\n"
    "  redis.call('HSET', p .. 'ua:' .. f.uah, 'ua', f.ua)\n"
    "  outlive(p .. 'ua:' .. f.uah, life)\n"
    "end\n"
    "if isid ~= '' then\n"
    "  local k = p .. 'idp_sid:' .. provider .. ':' .. isid\n"
    "  redis.call('SADD', k, sid)\n"
    "  outlive(k, life)\n"
    "end\n"
    "redis.call('ZADD', p .. 'sessions', now_ms, sid)\n"
    "redis.call('ZADD', p .. 'user_sessions:' .. uid, now_ms, sid)\n"
    "outlive(p .. 'user_sessions:' .. uid, life)\n"
    "endpoint(p, uid, sid, url, ep, now, 1, life)\n"
    "for _, o in ipairs(redis.call('ZRANGE', p .. 'user_sessions:' .. uid,\n"
    "                              0, 9)) do\n"
    "  local k = skey(p, o)\n"
    "  if not k or redis.call('EXISTS', k) == 0 then drop(p, o, uid) end\n"
    "end\n"
    "local sweep = p .. 'sweep'\n"
    "local pos = tonumber(redis.call('GET', sweep) or '0')\n"
    "local ids = redis.call('ZRANGE', p .. 'sessions', pos, pos + 99)\n"
    "local ended = 0\n"
    "for _, o in ipairs(ids) do\n"
    "  local k = skey(p, o)\n"
    "  if not k or redis.call('EXISTS', k) == 0 then\n"
    "    drop(p, o)\n"
    "    ended = ended + 1\n"
    "  end\n"
    "end\n"
    "pos = #ids < 100 and 0 or pos + #ids - ended\n"
    "redis.call('SET', sweep, pos)\n"
    "publish(p)\n"
    "return {sid, uid}\n");


/* answers {at, rt, at_exp} to the one request that is to check */

static ngx_str_t  ngx_http_identity_claim_script = ngx_string(
    "local f = redis.call('HMGET', KEYS[1], 'checked', 'at', 'rt',\n"
    "                     'at_exp')\n"
    "if not f[2] then return 0 end\n"
    "local now = tonumber(ARGV[1])\n"
    "if now - tonumber(f[1] or 0) < tonumber(ARGV[2]) then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'checked', now)\n"
    "return {f[2], f[3] or '', f[4] or '0'}\n");


static ngx_str_t  ngx_http_identity_refreshed_script = ngx_string(
    "local s, p = KEYS[1], ARGV[1]\n"
    "local uid = redis.call('HGET', s, 'uid')\n"
    "if not uid then return 0 end\n"
    "redis.call('PUBLISH', (string.match(p, '^(.*){@%x}$') or p)\n"
    "           .. 'invalidate', 'inv 0 ' .. string.sub(s, #p + 9))\n"
    "redis.call('HSET', s, 'email', ARGV[2], 'name', ARGV[3],\n"
    "           'username', ARGV[4], 'groups', ARGV[5], 'claims', ARGV[6])\n"
    "if ARGV[7] ~= '' then\n"
    "  redis.call('HSET', s, 'at', ARGV[7], 'rt', ARGV[8],\n"
    "             'at_exp', ARGV[9])\n"
    "end\n"
    "redis.call('HSET', p .. 'user:' .. uid, 'email', ARGV[2],\n"
    "           'name', ARGV[3], 'username', ARGV[4])\n"
    "return 1\n");


ngx_int_t
ngx_http_identity_session_lookup(ngx_http_request_t *r, ngx_uint_t need)
{
    ngx_int_t                       rc;
    ngx_http_identity_ctx_t        *ctx;
    ngx_http_identity_cmd_t         cmd;
    ngx_http_identity_field_t      *f;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);
    ctx = ngx_http_identity_get_ctx(r);
    ctx->need = need;

    /* NGX_DONE: found in the node's cache, no Redis call */

    if (imcf->cache) {
        rc = ngx_http_identity_session_cached(r);

        if (rc != NGX_DECLINED) {
            return rc;
        }

        if (ctx->cache_status == NGX_HTTP_IDENTITY_CACHE_MISS) {
            need = NGX_HTTP_IDENTITY_NEED_REQUEST;
            ctx->need = need;
        }
    }

    if (ngx_http_identity_cmd_init(r, &cmd, "HMGET",
                                   2 + NGX_HTTP_IDENTITY_SESSION_FIELDS)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_identity_session_cmd_key(r, &cmd, 0);

    for (f = ngx_http_identity_session_fields; f->name.len; f++) {
        if (f->need == 0 || (f->need & need)) {
            ngx_http_identity_cmd_str(&cmd, &f->name);
        }
    }

    return ngx_http_identity_cmd_send(&cmd, ngx_http_identity_lookup_handler,
                                      NULL);
}


static void
ngx_http_identity_lookup_handler(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    u_char                       *s;
    ngx_uint_t                    i;
    redisReply                  **e;
    ngx_http_identity_ctx_t      *ctx;
    ngx_http_identity_field_t    *f;

    ctx = ngx_http_identity_get_ctx(r);
    s = (u_char *) &ctx->session;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        ctx->redis_error = 1;
        goto done;
    }

    e = reply->element;
    i = 0;

    if (reply->elements == 0 || e[0]->type != REDIS_REPLY_STRING) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "identity: no such session");
        goto done;
    }

    for (f = ngx_http_identity_session_fields; f->name.len; f++) {
        if (f->need && !(f->need & ctx->need)) {
            continue;
        }

        if (i == reply->elements) {
            ctx->redis_error = 1;
            goto done;
        }

        if (f->time) {
            *(time_t *) (s + f->offset) = ngx_http_identity_reply_time(e[i]);

        } else if (ngx_http_identity_reply_str(r, e[i],
                                               (ngx_str_t *) (s + f->offset))
                   != NGX_OK)
        {
            ctx->redis_error = 1;
            goto done;
        }

        i++;
    }

    /*
     * A session written before the claims gate (no version 2) may hold
     * what it now refuses: its user logs in again; so does one of another
     * layout (the key layout at the top)
     */

    if (ctx->session.version.len != 1 || ctx->session.version.data[0] != '4')
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "identity: session \"%V\" of an earlier version "
                      "ignored", &ctx->session.id);
        goto done;
    }

    ctx->found = 1;

    if (ctx->cache_status == NGX_HTTP_IDENTITY_CACHE_MISS) {
        ngx_http_identity_session_cache_put(r);
    }

done:

    ctx->resume(r);
}


/* a cached session is its request fields packed (store_cmd.c) */

static ngx_int_t
ngx_http_identity_session_cached(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_http_identity_ctx_t          *ctx;
    ngx_http_identity_main_conf_t    *imcf;
    ngx_http_identity_cache_entry_t   e;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);
    ctx = ngx_http_identity_get_ctx(r);

    if (ngx_http_identity_session_hash(r) == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_identity_cache_get(imcf->cache, r->pool, ctx->session_key,
                                     &e);

    if (rc == NGX_BUSY) {
        ctx->cache_status = NGX_HTTP_IDENTITY_CACHE_BYPASS;
        return NGX_DECLINED;
    }

    if (rc != NGX_OK && rc != NGX_DECLINED) {
        return NGX_ERROR;
    }

    ctx->cache_status = NGX_HTTP_IDENTITY_CACHE_MISS;
    ctx->cache_seq = e.seq;

    if (rc == NGX_DECLINED) {
        return NGX_DECLINED;
    }

    if (ngx_http_identity_record_unpack(&e.value, &ctx->session,
                                        ngx_http_identity_session_fields,
                                        NGX_HTTP_IDENTITY_NEED_ADMIN,
                                        NGX_HTTP_IDENTITY_PACK_VERSION)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    ctx->session.last_active = e.last_active;
    ctx->need = NGX_HTTP_IDENTITY_NEED_REQUEST;
    ctx->cache_status = NGX_HTTP_IDENTITY_CACHE_HIT;
    ctx->found = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "identity: session \"%V\" found in the node's cache",
                   &ctx->session.id);

    return NGX_DONE;
}


/* kept no longer than Redis keeps it: its maximum, or its idle timeout */

static void
ngx_http_identity_session_cache_put(ngx_http_request_t *r)
{
    time_t                          deadline;
    ngx_str_t                       value;
    ngx_http_identity_ctx_t        *ctx;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);
    ctx = ngx_http_identity_get_ctx(r);

    if (ngx_http_identity_record_pack(r->pool, &ctx->session,
                                      ngx_http_identity_session_fields,
                                      NGX_HTTP_IDENTITY_NEED_ADMIN,
                                      NGX_HTTP_IDENTITY_PACK_VERSION, &value)
        != NGX_OK)
    {
        return;
    }

    deadline = ngx_min(ctx->session.expires_at,
                       ctx->session.last_active + ctx->session.idle_timeout);

    ngx_http_identity_cache_put(imcf->cache, ctx->session_key, &value,
                                deadline, ctx->session.last_active,
                                ctx->cache_seq);
}


/* this node's cache forgets a session at once; the others are told */

void
ngx_http_identity_session_forget(ngx_http_request_t *r)
{
    u_char                         *key;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    if (imcf->cache) {
        key = ngx_http_identity_session_hash(r);

        if (key) {
            ngx_http_identity_cache_evict(imcf->cache, key);
        }
    }
}


/*
 * The session's key is the first half of the hex SHA-256 of the request's
 * cookie (its public id is "as_" and the same), hashed once per request
 * whatever asks for it: the cache, or a command.
 */

static u_char *
ngx_http_identity_session_hash(ngx_http_request_t *r)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    if (ctx->session_key == NULL) {
        ctx->session_key = ngx_pnalloc(r->pool,
                                       NGX_HTTP_IDENTITY_SHA256_HEX_LEN);
        if (ctx->session_key == NULL) {
            return NULL;
        }

        ngx_http_identity_sha256_hex(&ctx->token, ctx->session_key);
    }

    return ctx->session_key;
}


/*
 * The request's session's key; with "prefix", its shard's prefix after
 * it, as the scripts that touch more than the session want (store_cmd.c)
 */

void
ngx_http_identity_session_cmd_key(ngx_http_request_t *r,
    ngx_http_identity_cmd_t *cmd, ngx_uint_t prefix)
{
    u_char  *key;

    key = ngx_http_identity_session_hash(r);

    if (key == NULL) {
        cmd->failed = 1;
        return;
    }

    ngx_http_identity_cmd_hex_key(cmd, "session:", key,
                                  NGX_HTTP_IDENTITY_SESSION_KEY_LEN);

    if (prefix) {
        ngx_http_identity_cmd_str(cmd,
                                  ngx_http_identity_store_shard(r, key[0]));
    }
}


/*
 * A provider's user's shard: the first digit of the hash of "provider:sub"
 * (in a cluster, its identity's id and its sessions' hashes begin with it)
 */

u_char
ngx_http_identity_identity_shard(ngx_str_t *provider, ngx_str_t *sub)
{
    u_char      hex[NGX_HTTP_IDENTITY_SHA256_HEX_LEN], buf[1024];
    ngx_str_t   s;

    /* both bounded (a provider's name, a claim), and cut alike anyway */

    s.len = ngx_snprintf(buf, sizeof(buf), "%V:%V", provider, sub) - buf;
    s.data = buf;

    ngx_http_identity_sha256_hex(&s, hex);

    return hex[0];
}


/* last_active is written at most once per touch interval, without waiting */

void
ngx_http_identity_session_touch(ngx_http_request_t *r)
{
    ngx_str_t                       url, site;
    ngx_http_identity_cmd_t         cmd;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    /* the site is the one in use now: a session may span several */

    if (ngx_http_identity_public_origin(r, &url) != NGX_OK
        || ngx_http_identity_site_hash(r->pool, &url, &site) != NGX_OK
        || ngx_http_identity_cmd_init(r, &cmd, "EVAL", 8) != NGX_OK)
    {
        return;
    }

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_touch_script, 1);
    ngx_http_identity_session_cmd_key(r, &cmd, 1);
    ngx_http_identity_cmd_num(&cmd, ngx_time());
    ngx_http_identity_cmd_str(&cmd, &url);
    ngx_http_identity_cmd_str(&cmd, &site);

    if (ngx_http_identity_cmd_post(&cmd) == NGX_OK && imcf->cache) {
        ngx_http_identity_cache_touch(imcf->cache,
                                      ngx_http_identity_get_ctx(r)
                                      ->session_key,
                                      ngx_time());
    }
}


ngx_int_t
ngx_http_identity_session_create(ngx_http_request_t *r, ngx_str_t *token)
{
    u_char                         *th, k;
    ngx_uint_t                      n;
    time_t                          now, expires;
    ngx_str_t                       uid, sid, url, site, hash, uah, tokens[3];
    ngx_time_t                     *tp;
    ngx_http_identity_ctx_t        *ctx;
    ngx_http_identity_cmd_t         cmd;
    ngx_http_identity_meta_t        m;
    ngx_http_identity_claims_t     *cl;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);
    ctx = ngx_http_identity_get_ctx(r);
    cl = &ctx->claims;

    /*
     * ids in the style of ngrok's: au_ for users, as_ for sessions; a
     * session's is its key, the first half of its cookie's hash, so no
     * record maps one to the other
     */

    uid.len = 3 + 32;
    uid.data = ngx_pnalloc(r->pool, uid.len);
    sid.len = 3 + NGX_HTTP_IDENTITY_SESSION_KEY_LEN;
    sid.data = ngx_pnalloc(r->pool, sid.len);
    th = ngx_pnalloc(r->pool, NGX_HTTP_IDENTITY_SHA256_HEX_LEN);

    if (uid.data == NULL || sid.data == NULL || th == NULL
        || ngx_http_identity_random_hex(r->pool, 16, &hash) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_sprintf(uid.data, "au_%V", &hash);

    ngx_http_identity_sha256_hex(token, th);

    /*
     * In a cluster, the identity's shard is its id's first digit, and its
     * sessions' (the cookie is drawn again until its hash begins with it:
     * 16 draws on average, the cookie keeping 252 random bits): what a
     * login, a logout or a DELETE touches is in one slot (store_cmd.c)
     */

    k = '0';

    if (imcf->nshards > 1) {
        k = ngx_http_identity_identity_shard(&ctx->provider->name,
                                             &cl->provider_user_id);
        uid.data[3] = k;

        for (n = 0; th[0] != k; n++) {
            if (n == 1000
                || ngx_http_identity_random(r->pool, 32, token) != NGX_OK)
            {
                return NGX_ERROR;
            }

            ngx_http_identity_sha256_hex(token, th);
        }

        ctx->session_key = NULL;
    }
    hash.data = th;
    hash.len = NGX_HTTP_IDENTITY_SESSION_KEY_LEN;

    ngx_sprintf(sid.data, "as_%V", &hash);

    if (ngx_http_identity_public_origin(r, &url) != NGX_OK
        || ngx_http_identity_site_hash(r->pool, &url, &site) != NGX_OK
        || ngx_http_identity_session_tokens(r, &sid, tokens) != NGX_OK
        || (!ctx->meta_done
            && ngx_http_identity_meta_collect(r, &ctx->session.meta)
               != NGX_OK)
        || ngx_http_identity_cmd_init(r, &cmd, "EVAL", 90) != NGX_OK)
    {
        return NGX_ERROR;
    }

    m = ctx->session.meta;

    /* sessions of one user agent share its record: ua:<64 bits of hash> */

    ngx_str_null(&uah);

    if (m.user_agent.len
        && ngx_http_identity_site_hash(r->pool, &m.user_agent, &uah)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    tp = ngx_timeofday();
    now = tp->sec;
    expires = now + ctx->login.max_duration;

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_create_script, 0);
    ngx_http_identity_cmd_str(&cmd, ngx_http_identity_store_shard(r, k));
    ngx_http_identity_cmd_str(&cmd, &uid);
    ngx_http_identity_cmd_str(&cmd, &sid);
    ngx_http_identity_cmd_str(&cmd, &hash);
    ngx_http_identity_cmd_num(&cmd, (time_t) tp->sec * 1000 + tp->msec);
    ngx_http_identity_cmd_str(&cmd, &site);

    /*
     * The login's fields, in the order the record has always had them; the
     * script keeps some elsewhere (see there)
     */

    ngx_http_identity_cmd_field_str(&cmd, "provider", &ctx->provider->name);
    ngx_http_identity_cmd_field_str(&cmd, "issuer", &ctx->provider->issuer);
    ngx_http_identity_cmd_field_str(&cmd, "sub", &cl->provider_user_id);
    ngx_http_identity_cmd_field_str(&cmd, "email", &cl->email);
    ngx_http_identity_cmd_field_str(&cmd, "name", &cl->name);
    ngx_http_identity_cmd_field_str(&cmd, "username", &cl->username);
    ngx_http_identity_cmd_field_num(&cmd, "created_at", now);
    ngx_http_identity_cmd_field_num(&cmd, "last_active", now);
    ngx_http_identity_cmd_field_num(&cmd, "expires_at", expires);
    ngx_http_identity_cmd_field_num(&cmd, "idle", ctx->login.idle_timeout);
    ngx_http_identity_cmd_field_str(&cmd, "ip", &m.ip);
    ngx_http_identity_cmd_field_str(&cmd, "ua", &m.user_agent);
    ngx_http_identity_cmd_field_str(&cmd, "uah", &uah);
    ngx_http_identity_cmd_field_str(&cmd, "url", &url);
    ngx_http_identity_cmd_field_str(&cmd, "idp_sid", &cl->sid);
    ngx_http_identity_cmd_field_str(&cmd, "auth", &ctx->login.auth_id);
    ngx_http_identity_cmd_field_str(&cmd, "groups", &cl->groups);
    ngx_http_identity_cmd_field_str(&cmd, "claims", &cl->raw);

    /* tokens only when kept */

    if (tokens[0].len) {
        ngx_http_identity_cmd_field_str(&cmd, "at", &tokens[0]);
        ngx_http_identity_cmd_field_str(&cmd, "rt", &tokens[1]);
        ngx_http_identity_cmd_field_str(&cmd, "at_exp", &tokens[2]);
    }

    ngx_http_identity_cmd_field_num(&cmd, "checked", now);

    ngx_http_identity_cmd_field_str(&cmd, "browser", &m.browser);
    ngx_http_identity_cmd_field_str(&cmd, "browser_version",
                                    &m.browser_version);
    ngx_http_identity_cmd_field_str(&cmd, "os", &m.os);
    ngx_http_identity_cmd_field_str(&cmd, "os_version", &m.os_version);
    ngx_http_identity_cmd_field_str(&cmd, "device", &m.device);
    ngx_http_identity_cmd_field_str(&cmd, "device_type", &m.device_type);
    ngx_http_identity_cmd_field_str(&cmd, "country", &m.country);
    ngx_http_identity_cmd_field_str(&cmd, "lat", &m.latitude);
    ngx_http_identity_cmd_field_str(&cmd, "lon", &m.longitude);
    ngx_http_identity_cmd_field_str(&cmd, "radius", &m.radius);
    ngx_http_identity_cmd_field_str(&cmd, "risk", &ctx->risk_seen[3]);

    /* the identity's risk history (store_risk.c), for its record */

    ngx_http_identity_cmd_field_str(&cmd, "risk_countries",
                                    &ctx->risk_seen[0]);
    ngx_http_identity_cmd_field_str(&cmd, "risk_devices", &ctx->risk_seen[1]);
    ngx_http_identity_cmd_field_str(&cmd, "risk_last", &ctx->risk_seen[2]);

    if (imcf->risk_action[NGX_HTTP_IDENTITY_RISK_CONCURRENT]
        == NGX_HTTP_IDENTITY_RISK_DENY)
    {
        ngx_http_identity_cmd_field_num(&cmd, "max_live", imcf->risk_max);
    }

    ctx->session.created_at = now;
    ctx->session.expires_at = expires;

    return ngx_http_identity_cmd_send(&cmd, ngx_http_identity_create_handler,
                                      NULL);
}


static void
ngx_http_identity_create_handler(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    /* {uid}: the identity has max live sessions, none made (the login's) */

    if (reply != NULL
        && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == 1)
    {
        if (ngx_http_identity_reply_str(r, reply->element[0],
                                        &ctx->session.identity_id)
            != NGX_OK)
        {
            ctx->redis_error = 1;

        } else {
            ctx->risk_denied = NGX_HTTP_IDENTITY_RISK_CONCURRENT + 1;
        }

        ctx->resume(r);
        return;
    }

    if (reply == NULL
        || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || ngx_http_identity_reply_str(r, reply->element[0], &ctx->session.id)
           != NGX_OK
        || ngx_http_identity_reply_str(r, reply->element[1],
                                       &ctx->session.identity_id)
           != NGX_OK)
    {
        ctx->redis_error = 1;

    } else {
        ctx->found = 1;
    }

    ctx->resume(r);
}


/*
 * The tokens of a login or a refresh, encrypted for the session "sid":
 * access, refresh, and the access token's expiry.  Without a key, or
 * without tokens, nothing is kept.
 */

static ngx_int_t
ngx_http_identity_session_tokens(ngx_http_request_t *r, ngx_str_t *sid,
    ngx_str_t *out)
{
    ngx_http_identity_ctx_t        *ctx;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);
    ctx = ngx_http_identity_get_ctx(r);

    ngx_str_null(&out[0]);
    ngx_str_null(&out[1]);
    ngx_str_set(&out[2], "0");

    if (imcf->token_key == NULL || ctx->claims.access_token.len == 0) {
        return NGX_OK;
    }

    if (ngx_http_identity_encrypt(r->pool, imcf->token_key, sid,
                                  &ctx->claims.access_token, &out[0])
        != NGX_OK
        || ngx_http_identity_encrypt(r->pool, imcf->token_key, sid,
                                     &ctx->claims.refresh_token, &out[1])
           != NGX_OK
        || ngx_http_identity_store_num(r, &out[2], ctx->claims.access_expires)
           == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Continuous authorization: a session due for a user info check is
 * claimed atomically, so that one request (of any nginx) checks it, and
 * the claimer gets the encrypted tokens: ctx->found and ctx->claims.
 */

ngx_int_t
ngx_http_identity_session_claim(ngx_http_request_t *r, time_t interval)
{
    ngx_http_identity_ctx_t  *ctx;
    ngx_http_identity_cmd_t   cmd;

    ctx = ngx_http_identity_get_ctx(r);

    if (ngx_http_identity_cmd_init(r, &cmd, "EVAL", 6) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_claim_script, 1);
    ngx_http_identity_session_cmd_key(r, &cmd, 0);
    ngx_http_identity_cmd_num(&cmd, ngx_time());
    ngx_http_identity_cmd_num(&cmd, interval);

    ctx->found = 0;

    /* the cached copy's "checked" is out of date from now on */

    ngx_http_identity_session_forget(r);

    return ngx_http_identity_cmd_send(&cmd, ngx_http_identity_claim_handler,
                                      NULL);
}


static void
ngx_http_identity_claim_handler(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    if (reply == NULL) {
        ctx->redis_error = 1;

    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3) {

        if (ngx_http_identity_reply_str(r, reply->element[0],
                                        &ctx->claims.access_token)
            != NGX_OK
            || ngx_http_identity_reply_str(r, reply->element[1],
                                           &ctx->claims.refresh_token)
               != NGX_OK)
        {
            ctx->redis_error = 1;

        } else {
            ctx->claims.access_expires =
                               ngx_http_identity_reply_time(reply->element[2]);
            ctx->found = 1;
        }
    }

    ctx->resume(r);
}


/* what a user info check found replaces the session's, without waiting */

ngx_int_t
ngx_http_identity_session_refreshed(ngx_http_request_t *r)
{
    ngx_str_t                 tokens[3];
    ngx_http_identity_ctx_t  *ctx;
    ngx_http_identity_cmd_t   cmd;

    ctx = ngx_http_identity_get_ctx(r);

    if (ngx_http_identity_session_tokens(r, &ctx->session.id, tokens)
        != NGX_OK
        || ngx_http_identity_cmd_init(r, &cmd, "EVAL", 13) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* this very request passes the new access token upstream */

    if (tokens[0].len) {
        ctx->session.access_token = tokens[0];
    }

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_refreshed_script, 1);
    ngx_http_identity_session_cmd_key(r, &cmd, 1);
    ngx_http_identity_cmd_str(&cmd, &ctx->claims.email);
    ngx_http_identity_cmd_str(&cmd, &ctx->claims.name);
    ngx_http_identity_cmd_str(&cmd, &ctx->claims.username);
    ngx_http_identity_cmd_str(&cmd, &ctx->claims.groups);
    ngx_http_identity_cmd_str(&cmd, &ctx->claims.raw);
    ngx_http_identity_cmd_str(&cmd, &tokens[0]);
    ngx_http_identity_cmd_str(&cmd, &tokens[1]);
    ngx_http_identity_cmd_str(&cmd, &tokens[2]);

    return ngx_http_identity_cmd_post(&cmd);
}


/* a site's id: the first 64 bits of the SHA-256 of its URL, in hex */

ngx_int_t
ngx_http_identity_site_hash(ngx_pool_t *pool, ngx_str_t *url,
    ngx_str_t *out)
{
    u_char  hash[NGX_HTTP_IDENTITY_SHA256_HEX_LEN];

    out->data = ngx_pnalloc(pool, NGX_HTTP_IDENTITY_SITE_HASH_LEN);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_http_identity_sha256_hex(url, hash);
    ngx_memcpy(out->data, hash, NGX_HTTP_IDENTITY_SITE_HASH_LEN);
    out->len = NGX_HTTP_IDENTITY_SITE_HASH_LEN;

    return NGX_OK;
}
