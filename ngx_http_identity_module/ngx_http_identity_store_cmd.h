
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_STORE_CMD_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_STORE_CMD_H_INCLUDED_


/*
 * The store's own plumbing, shared by its files (store.c, store_admin.c)
 * and included by no other: commands built by name, Redis replies read
 * into typed records, and what the sessions' scripts have in common.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_records.h"
#include "ngx_http_identity_redis.h"


/*
 * A command built by name: arguments are appended in order, a hash's
 * fields as name/value pairs.  A failed allocation is remembered and
 * reported once, when the command is sent.
 */

typedef struct {
    ngx_http_request_t           *request;
    ngx_array_t                   args;       /* of ngx_str_t */
    ngx_uint_t                    failed;
} ngx_http_identity_cmd_t;


/* a hash field of a record: its name in Redis, where it goes in the record */

typedef struct {
    ngx_str_t                     name;
    size_t                        offset;
    ngx_uint_t                    time;       /* time_t, else ngx_str_t */
    ngx_uint_t                    need;       /* 0: always */
} ngx_http_identity_field_t;


/*
 * drop(p, sid) removes a session and every index entry that names it; every
 * script that ends sessions uses it, so none is left half-deleted.  The
 * keys of the sessions it ended are published by publish(p), which every
 * such script calls last: "inv EVENT KEY...", for the nodes' caches
 * (node.c), with P inv:EVENT the set of nodes registered now, each to
 * remove itself once it has evicted them (event()).  publish() answers
 * EVENT, or 0 when no node is to confirm.  In a Redis Cluster the nodes'
 * keys are in a shard of their own: publish() sends the keys at once
 * with no event (every cache evicts them, whatever becomes of the request
 * that revoked) and answers them; ngx_http_identity_cmd_send_revoking()
 * then publishes them from that shard with the event the nodes confirm
 * (so that this "inv" and the nodes' pings come from one server, in
 * order).  A session is taken out of the session
 * lists of each of its identity's sites (few: the configured sites), their
 * hashes ending the values of endpoints:<uid>; session_endpoints:<sid>
 * named them before version 3.  The user agent's shared record is no
 * session's: it expires on its own.
 *
 * skey(p, sid) is the key of the session whose public id is sid: "as_"
 * and the first 128 bits of its cookie's hash, in hex (version 4).  Its
 * identity and IdP session are read from its hash; once it has expired,
 * the caller that knows whose it was says so (owner): the lists of an
 * identity are cleaned as they are read (the admin API) and at its logins,
 * and expire with their last session (the create script).  A session of
 * version 3 had a record sid:<sid> {th, uid, isid}: drop() still reads it,
 * so what an older build made is cleaned the same way.
 */

#define NGX_HTTP_IDENTITY_LUA_EVENT                                           \
    "local function event(p)\n"                                               \
    "  local t = redis.call('TIME')\n"                                        \
    "  local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"                   \
    "  redis.call('ZREMRANGEBYSCORE', p .. 'nodes', '-inf', now)\n"           \
    "  local live = redis.call('ZRANGE', p .. 'nodes', 0, -1)\n"              \
    "  local ev = redis.call('INCR', p .. 'events')\n"                        \
    "  if #live == 0 then return 0 end\n"                                     \
    "  redis.call('SADD', p .. 'inv:' .. ev, unpack(live))\n"                 \
    "  redis.call('PEXPIRE', p .. 'inv:' .. ev, 10000)\n"                     \
    "  return ev\n"                                                           \
    "end\n"

/*
 * live(p, uid, n): how many of the identity's first n sessions still have
 * their hash (the risk check's count and the create script's recount)
 */

#define NGX_HTTP_IDENTITY_LUA_LIVE                                            \
    "local function live(p, uid, n)\n"                                        \
    "  local c = 0\n"                                                         \
    "  for _, o in ipairs(redis.call('ZRANGE', p .. 'user_sessions:' .. uid,\n"\
    "                                0, n - 1)) do\n"                          \
    "    local h = string.match(o, '^as_(%x+)$')\n"                           \
    "    if h and redis.call('EXISTS', p .. 'session:' .. h) == 1 then\n"     \
    "      c = c + 1\n"                                                       \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "  return c\n"                                                            \
    "end\n"

#define NGX_HTTP_IDENTITY_LUA_DROP                                            \
    NGX_HTTP_IDENTITY_LUA_EVENT                                               \
    "local dropped = {}\n"                                                    \
    "local function publish(p)\n"                                             \
    "  if #dropped == 0 then return 0 end\n"                                  \
    "  local keys = table.concat(dropped, ' ')\n"                             \
    "  dropped = {}\n"                                                        \
    "  local base = string.match(p, '^(.*){@%x}$')\n"                         \
    "  if base then\n"                                                        \
    "    redis.call('PUBLISH', base .. 'invalidate', 'inv 0 ' .. keys)\n"     \
    "    return keys\n"                                                       \
    "  end\n"                                                                 \
    "  local ev = event(p)\n"                                                 \
    "  redis.call('PUBLISH', p .. 'invalidate', 'inv ' .. ev .. ' ' .. keys)\n"\
    "  return ev\n"                                                           \
    "end\n"                                                                   \
    "local function skey(p, sid)\n"                                           \
    "  local h = string.match(sid, '^as_(%x+)$')\n"                          \
    "  if not h or #h ~= 32 then return nil end\n"                           \
    "  return p .. 'session:' .. h, h\n"                                      \
    "end\n"                                                                   \
    "local function drop(p, sid, owner)\n"                                    \
    "  local k, h = skey(p, sid)\n"                                           \
    "  local m = {}\n"                                                        \
    "  if k then\n"                                                           \
    "    m = redis.call('HMGET', k, 'uid', 'provider', 'idp_sid')\n"         \
    "    redis.call('DEL', k)\n"                                              \
    "    dropped[#dropped + 1] = h\n"                                         \
    "  end\n"                                                                 \
    "  local uid, isid = m[1] or owner, m[3] and m[2] .. ':' .. m[3]\n"       \
    "  local old = p .. 'sid:' .. sid\n"                                      \
    "  if not m[1] then\n"                                                    \
    "    local o = redis.call('HMGET', old, 'th', 'uid', 'isid')\n"           \
    "    if o[1] then redis.call('DEL', p .. 'session:' .. o[1]) end\n"       \
    "    uid, isid = o[2] or uid, o[3]\n"                                     \
    "  end\n"                                                                 \
    "  local eps = p .. 'session_endpoints:' .. sid\n"                       \
    "  local list = redis.call('SMEMBERS', eps)\n"                            \
    "  if uid then\n"                                                         \
    "    redis.call('ZREM', p .. 'user_sessions:' .. uid, sid)\n"             \
    "    local e = p .. 'endpoints:' .. uid\n"                                \
    "    for _, v in ipairs(redis.call('HVALS', e)) do\n"                     \
    "      list[#list + 1] = string.match(v, '^%d+ %d+ %d+ (%x+)$')\n"        \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "  if isid then redis.call('SREM', p .. 'idp_sid:' .. isid, sid) end\n"   \
    "  for _, ep in ipairs(list) do\n"                                        \
    "    if uid then\n"                                                       \
    "      local e = p .. 'endpoint_sessions:' .. uid .. ':' .. ep\n"         \
    "      redis.call('ZREM', e, sid)\n"                                      \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "  redis.call('DEL', old, eps)\n"                                         \
    "  redis.call('ZREM', p .. 'sessions', sid)\n"                            \
    "  redis.call('ZREM', p .. 'session_expiry', sid)\n"                      \
    "end\n"


/* the session's fields, by name; the admin API reads them all */
extern ngx_http_identity_field_t  ngx_http_identity_session_fields[];

/* ends a session by its key or by its public id (see store_revoke.c) */
extern ngx_str_t  ngx_http_identity_destroy_script;


/* a command for every shard: each reply (NULL: failed), then done */
typedef void (*ngx_http_identity_shard_pt)(ngx_http_request_t *r,
    redisReply *reply, ngx_uint_t shard, void *data);
typedef void (*ngx_http_identity_shards_done_pt)(ngx_http_request_t *r,
    void *data, ngx_uint_t failed, ngx_int_t event);


ngx_str_t *ngx_http_identity_store_shard(ngx_http_request_t *r, u_char c);
ngx_str_t *ngx_http_identity_store_id_shard(ngx_http_request_t *r,
    ngx_str_t *id);

/*
 * A revocation's answer waits for every live node to confirm (store_revoke.c):
 * ctx->resume(r) then, or at once when no node is to confirm
 */
void ngx_http_identity_session_wait_nodes(ngx_http_request_t *r,
    long long event);

/* the request's session (store.c), for store_revoke.c */
void ngx_http_identity_session_cmd_key(ngx_http_request_t *r,
    ngx_http_identity_cmd_t *cmd, ngx_uint_t prefix);
void ngx_http_identity_session_forget(ngx_http_request_t *r);
u_char ngx_http_identity_identity_shard(ngx_str_t *provider, ngx_str_t *sub);

ngx_int_t ngx_http_identity_cmd_init(ngx_http_request_t *r,
    ngx_http_identity_cmd_t *cmd, char *name, ngx_uint_t n);
void ngx_http_identity_cmd_eval(ngx_http_identity_cmd_t *cmd,
    ngx_str_t *script, ngx_uint_t keys);
void ngx_http_identity_cmd_str(ngx_http_identity_cmd_t *cmd,
    ngx_str_t *value);
void ngx_http_identity_cmd_cstr(ngx_http_identity_cmd_t *cmd, char *value);
void ngx_http_identity_cmd_num(ngx_http_identity_cmd_t *cmd, time_t value);
void ngx_http_identity_cmd_key(ngx_http_identity_cmd_t *cmd, char *kind,
    ngx_str_t *secret);
void ngx_http_identity_cmd_hex_key(ngx_http_identity_cmd_t *cmd, char *kind,
    u_char *hex, size_t n);
void ngx_http_identity_cmd_field_str(ngx_http_identity_cmd_t *cmd,
    char *name, ngx_str_t *value);
void ngx_http_identity_cmd_field_num(ngx_http_identity_cmd_t *cmd,
    char *name, time_t value);
ngx_int_t ngx_http_identity_cmd_send(ngx_http_identity_cmd_t *cmd,
    ngx_http_identity_redis_handler_pt handler, void *data);
ngx_int_t ngx_http_identity_cmd_post(ngx_http_identity_cmd_t *cmd);
ngx_int_t ngx_http_identity_cmd_send_revoking(ngx_http_identity_cmd_t *cmd,
    ngx_http_identity_redis_handler_pt handler, void *data);
ngx_int_t ngx_http_identity_cmd_fanout(ngx_http_identity_cmd_t *cmd,
    ngx_http_identity_shard_pt each, ngx_http_identity_shards_done_pt done,
    void *data);

ngx_int_t ngx_http_identity_store_record(ngx_http_request_t *r,
    redisReply *rec, ngx_http_identity_field_t *fields, void *out);
ngx_int_t ngx_http_identity_record_pack(ngx_pool_t *pool, void *record,
    ngx_http_identity_field_t *fields, ngx_uint_t skip, uint32_t version,
    ngx_str_t *out);
ngx_int_t ngx_http_identity_record_unpack(ngx_str_t *in, void *record,
    ngx_http_identity_field_t *fields, ngx_uint_t skip, uint32_t version);
ngx_int_t ngx_http_identity_reply_str(ngx_http_request_t *r,
    redisReply *reply, ngx_str_t *out);
time_t ngx_http_identity_reply_time(redisReply *reply);
ngx_str_t *ngx_http_identity_store_num(ngx_http_request_t *r, ngx_str_t *s,
    time_t n);


#endif /* _NGX_HTTP_IDENTITY_STORE_CMD_H_INCLUDED_ */
