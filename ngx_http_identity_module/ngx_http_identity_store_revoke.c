
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * Ending sessions: a logout (by the session's key), the admin API's
 * DELETE of a session (by its public id, with the same script), and an
 * IdP's back-channel logout (of an IdP session, or of a user).  Each is
 * answered once every live node has forgotten what it ended (node.c); in
 * a Redis Cluster what a script ended is published from the nodes' shard
 * (ngx_http_identity_cmd_send_revoking), and a back-channel logout by IdP
 * session alone asks every shard.  The key layout is store.c's.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_events.h"
#include "ngx_http_identity_metrics.h"
#include "ngx_http_identity_node.h"
#include "ngx_http_identity_redis.h"
#include "ngx_http_identity_store.h"
#include "ngx_http_identity_store_cmd.h"


static void ngx_http_identity_destroyed_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_identity_logout_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_identity_logout_shard(ngx_http_request_t *r,
    redisReply *reply, ngx_uint_t shard, void *data);
static void ngx_http_identity_logout_shards_done(ngx_http_request_t *r,
    void *data, ngx_uint_t failed, ngx_int_t event);
static void ngx_http_identity_logout_confirmed(ngx_http_request_t *r,
    void *data);


/*
 * By the session key (logout: answers the session's provider, or 0) or by
 * the public id (admin API: answers 1, or 0 if it had already ended); and
 * with it the event the nodes confirm, or 0 (see publish()).
 */

ngx_str_t  ngx_http_identity_destroy_script = ngx_string(
    NGX_HTTP_IDENTITY_LUA_DROP
    "local p, sid, provider = ARGV[1], ARGV[3], nil\n"
    "if ARGV[2] == 'key' then\n"
    "  local f = redis.call('HMGET', KEYS[1], 'id', 'provider')\n"
    "  sid, provider = f[1], f[2]\n"
    "  if not sid then return {0, 0} end\n"
    "end\n"
    "local k = skey(p, sid)\n"
    "if not k then return {0, 0} end\n"
    "local alive = redis.call('EXISTS', k)\n"
    "local known = alive == 1 or redis.call('ZSCORE', p .. 'sessions', sid)\n"
    "if not known then return {0, 0} end\n"
    "local uid = redis.call('HGET', k, 'uid') or ''\n"
    "drop(p, sid)\n"
    "return {provider or alive, publish(p), sid, uid}\n");


/*
 * Back-channel logout: the token's jti is remembered until it could no
 * longer be accepted (a replay answers -1); then the sessions of that IdP
 * session, or else of that user, end.  Answers how many ended.
 */

static ngx_str_t  ngx_http_identity_logout_script = ngx_string(
    NGX_HTTP_IDENTITY_LUA_DROP
    "local p, provider, sid, sub = ARGV[1], ARGV[2], ARGV[5], ARGV[6]\n"
    "if not redis.call('SET', p .. 'jti:' .. ARGV[3], '1', 'NX', 'EX',\n"
    "                  ARGV[4]) then\n"
    "  return -1\n"
    "end\n"
    "local sids = {}\n"
    "if sid ~= '' then\n"
    "  local k = p .. 'idp_sid:' .. provider .. ':' .. sid\n"
    "  sids = redis.call('SMEMBERS', k)\n"
    "  redis.call('DEL', k)\n"
    "else\n"
    "  local uid = redis.call('GET', p .. 'sub:' .. provider .. ':' .. sub)\n"
    "  if uid then\n"
    "    sids = redis.call('ZRANGE', p .. 'user_sessions:' .. uid, 0, -1)\n"
    "  end\n"
    "end\n"
    "for _, s in ipairs(sids) do drop(p, s) end\n"
    "return {#sids, publish(p)}\n");


ngx_int_t
ngx_http_identity_session_destroy(ngx_http_request_t *r)
{
    ngx_http_identity_cmd_t  cmd;

    if (ngx_http_identity_cmd_init(r, &cmd, "EVAL", 7) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_destroy_script, 1);
    ngx_http_identity_session_cmd_key(r, &cmd, 1);
    ngx_http_identity_cmd_cstr(&cmd, "key");
    ngx_http_identity_cmd_cstr(&cmd, "");

    ngx_http_identity_session_forget(r);

    return ngx_http_identity_cmd_send_revoking(&cmd,
                                         ngx_http_identity_destroyed_handler,
                                         NULL);
}


ngx_int_t
ngx_http_identity_store_logout(ngx_http_request_t *r, ngx_str_t *provider,
    ngx_str_t *jti, time_t ttl, ngx_str_t *sid, ngx_str_t *sub)
{
    u_char                         *hash;
    ngx_int_t                      *event;
    ngx_str_t                       h;
    ngx_http_identity_cmd_t         cmd;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    hash = ngx_pnalloc(r->pool, NGX_HTTP_IDENTITY_SHA256_HEX_LEN);
    if (hash == NULL
        || ngx_http_identity_cmd_init(r, &cmd, "EVAL", 9) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_identity_sha256_hex(jti, hash);
    h.data = hash;
    h.len = NGX_HTTP_IDENTITY_SHA256_HEX_LEN;

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_logout_script, 0);
    ngx_http_identity_cmd_str(&cmd, sub->len
                                    ? ngx_http_identity_store_shard(r,
                                          ngx_http_identity_identity_shard(
                                              provider, sub))
                                    : &imcf->key_prefix);
    ngx_http_identity_cmd_str(&cmd, provider);
    ngx_http_identity_cmd_str(&cmd, &h);
    ngx_http_identity_cmd_num(&cmd, ttl);
    ngx_http_identity_cmd_str(&cmd, sid);
    ngx_http_identity_cmd_str(&cmd, sub);

    if (sub->len || imcf->nshards == 1) {
        return ngx_http_identity_cmd_send_revoking(&cmd,
                                           ngx_http_identity_logout_handler,
                                           NULL);
    }

    /* by the IdP's session alone: its sessions may be in any shard */

    event = ngx_pcalloc(r->pool, sizeof(ngx_int_t));
    if (event == NULL) {
        return NGX_ERROR;
    }

    ngx_http_identity_get_ctx(r)->status = 0;

    return ngx_http_identity_cmd_fanout(&cmd, ngx_http_identity_logout_shard,
                                        ngx_http_identity_logout_shards_done,
                                        event);
}


/* each shard's {ended, event}; -1 if a replay (in every shard alike) */

static void
ngx_http_identity_logout_shard(ngx_http_request_t *r, redisReply *reply,
    ngx_uint_t shard, void *data)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    if (reply == NULL) {
        return;
    }

    /* the event, or in a cluster the keys it ended (store_cmd.c) */

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
        && reply->element[0]->type == REDIS_REPLY_INTEGER)
    {
        ctx->found = 1;
        ctx->status += (ngx_int_t) reply->element[0]->integer;

        if (reply->element[1]->type == REDIS_REPLY_INTEGER
            && reply->element[1]->integer)
        {
            *(ngx_int_t *) data = (ngx_int_t) reply->element[1]->integer;
        }

    } else if (reply->type != REDIS_REPLY_INTEGER) {
        ctx->redis_error = 1;
    }
}


static void
ngx_http_identity_logout_shards_done(ngx_http_request_t *r, void *data,
    ngx_uint_t failed, ngx_int_t event)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    if (failed || ctx->redis_error) {
        ctx->redis_error = 1;
        ctx->found = 0;

        /* a shard failed: an error, once the nodes forgot what others ended */

        if (event) {
            ngx_http_identity_session_wait_nodes(r, event);

        } else {
            ctx->resume(r);
        }

        return;
    }

    if (!ctx->found) {
        ctx->resume(r);     /* a replay: no shard took it */
        return;
    }

    ngx_http_identity_metrics_revoked(NGX_HTTP_IDENTITY_REVOKED_BACKCHANNEL,
                                      ctx->status > 0 ? ctx->status : 0);

    if (ctx->status > 0) {
        ngx_http_identity_event_session(r, "session_revoked", "backchannel",
                                        ctx->status);
    }

    /* the event of what they ended, published once (store_cmd.c) */

    ngx_http_identity_session_wait_nodes(r, event ? event
                                                  : *(ngx_int_t *) data);
}


static void
ngx_http_identity_logout_handler(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    /* -1, a replay; or {sessions ended, the event the nodes confirm} */

    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        ctx->resume(r);
        return;
    }

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

    ctx->found = 1;
    ctx->status = (ngx_int_t) reply->element[0]->integer;

    ngx_http_identity_metrics_revoked(NGX_HTTP_IDENTITY_REVOKED_BACKCHANNEL,
                                      ctx->status > 0 ? ctx->status : 0);

    if (ctx->status > 0) {
        ngx_http_identity_event_session(r, "session_revoked", "backchannel",
                                        ctx->status);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "identity: logout revoked %i session(s)", ctx->status);

    /* the IdP is answered once every node has forgotten them */

    ngx_http_identity_session_wait_nodes(r, reply->element[1]->integer);
}


/*
 * A revocation is answered once every live node has forgotten what it
 * ended (event: what the script's publish() answered; 0: no node to wait)
 */

void
ngx_http_identity_session_wait_nodes(ngx_http_request_t *r,
    long long event)
{
    ngx_int_t                 rc;
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    rc = ngx_http_identity_node_confirm(r, (ngx_int_t) event,
                                        ngx_http_identity_logout_confirmed,
                                        NULL);
    if (rc == NGX_DECLINED) {
        ctx->resume(r);

    } else if (rc != NGX_OK) {
        ctx->redis_error = 1;
        ctx->resume(r);
    }
}


static void
ngx_http_identity_logout_confirmed(ngx_http_request_t *r, void *data)
{
    ngx_http_identity_get_ctx(r)->resume(r);
}


static void
ngx_http_identity_destroyed_handler(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    /*
     * {the session's provider, or 0; the event the nodes confirm; its id
     * and its identity's, for the event (not in a cluster's relay)}
     */

    if (reply == NULL
        || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 2
        || reply->element[1]->type != REDIS_REPLY_INTEGER)
    {
        ctx->redis_error = 1;
        ctx->resume(r);
        return;
    }

    if (reply->element[0]->type == REDIS_REPLY_STRING) {
        ctx->found = 1;

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "identity: session revoked at logout");

        /* an endpoint's (logout), or the access phase's (a refresh) */

        ngx_http_identity_metrics_revoked(ctx->route
                                          ? NGX_HTTP_IDENTITY_REVOKED_LOGOUT
                                          : NGX_HTTP_IDENTITY_REVOKED_REFRESH,
                                          1);

        if (ngx_http_identity_reply_str(r, reply->element[0],
                                        &ctx->session.provider)
            != NGX_OK
            || (reply->elements == 4
                && (ngx_http_identity_reply_str(r, reply->element[2],
                                                &ctx->session.id)
                    != NGX_OK
                    || ngx_http_identity_reply_str(r, reply->element[3],
                                              &ctx->session.identity_id)
                       != NGX_OK)))
        {
            ctx->redis_error = 1;
            ctx->resume(r);
            return;
        }

        if (ctx->route) {
            ngx_http_identity_event_session(r, "logout", NULL, -1);
        }

        ngx_http_identity_event_session(r, "session_revoked",
                                        ctx->route ? "logout" : "refresh",
                                        -1);
    }

    /* a logout, like a DELETE, is over once every node has forgotten it */

    ngx_http_identity_session_wait_nodes(r, reply->element[1]->integer);
}
