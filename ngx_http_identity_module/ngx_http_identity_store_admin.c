
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The store's directory, for the admin API: pages of identities and
 * sessions, one record, the sites an identity used, and deletes.
 * Answers through a callback with typed records (ngx_http_identity_store.h);
 * the key layout is the one described in ngx_http_identity_store.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_node.h"
#include "ngx_http_identity_redis.h"
#include "ngx_http_identity_store.h"
#include "ngx_http_identity_store_cmd.h"


/* an admin call in flight */

typedef struct {
    ngx_http_identity_store_pt         done;
    ngx_uint_t                         kind;       /* _store_kind_e */
    ngx_http_identity_store_result_t   res;        /* kept while waiting */
} ngx_http_identity_store_call_t;


static ngx_http_identity_store_call_t *ngx_http_identity_store_call(
    ngx_http_request_t *r, ngx_http_identity_store_pt done, ngx_uint_t kind);
static void ngx_http_identity_list_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_identity_get_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_identity_sites_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_identity_delete_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_identity_delete_confirmed(ngx_http_request_t *r,
    void *data);
static ngx_int_t ngx_http_identity_records(ngx_http_request_t *r,
    ngx_uint_t kind, redisReply **recs, size_t n,
    ngx_http_identity_store_result_t *res);
static time_t ngx_http_identity_word(u_char **pos, u_char *last);
static int ngx_cdecl ngx_http_identity_site_cmp(const void *one,
    const void *two);


#define ngx_http_identity_user_field(name, field, time)                       \
    { ngx_string(name), offsetof(ngx_http_identity_identity_t, field), time,  \
      0 }

static ngx_http_identity_field_t  ngx_http_identity_user_fields[] = {
    ngx_http_identity_user_field("id", id, 0),
    ngx_http_identity_user_field("provider", provider, 0),
    ngx_http_identity_user_field("issuer", issuer, 0),
    ngx_http_identity_user_field("sub", provider_user_id, 0),
    ngx_http_identity_user_field("email", email, 0),
    ngx_http_identity_user_field("name", name, 0),
    ngx_http_identity_user_field("username", username, 0),
    ngx_http_identity_user_field("created_at", created_at, 1),
    ngx_http_identity_user_field("last_active", last_active, 1),
    ngx_http_identity_user_field("last_login", last_login, 1),
    { ngx_null_string, 0, 0, 0 }
};


/*
 * every session of an identity, and the identity itself; its sites' hashes
 * end the values of endpoints:<uid> (user_endpoints:<uid> before version 3)
 */

static ngx_str_t  ngx_http_identity_delete_user_script = ngx_string(
    NGX_HTTP_IDENTITY_LUA_DROP
    "local p, uid = ARGV[1], ARGV[2]\n"
    "local u = redis.call('HMGET', p .. 'user:' .. uid, 'provider', 'sub')\n"
    "if not u[1] then return 0 end\n"
    "for _, sid in ipairs(redis.call('ZRANGE', p .. 'user_sessions:' .. uid,"
    " 0, -1)) do\n"
    "  drop(p, sid, uid)\n"
    "end\n"
    "local eps = redis.call('SMEMBERS', p .. 'user_endpoints:' .. uid)\n"
    "for _, v in ipairs(redis.call('HVALS', p .. 'endpoints:' .. uid)) do\n"
    "  eps[#eps + 1] = string.match(v, '^%d+ %d+ %d+ (%x+)$')\n"
    "end\n"
    "for _, ep in ipairs(eps) do\n"
    "  redis.call('DEL', p .. 'endpoint_sessions:' .. uid .. ':' .. ep)\n"
    "end\n"
    "redis.call('DEL', p .. 'user:' .. uid, p .. 'user_sessions:' .. uid,\n"
    "           p .. 'endpoints:' .. uid, p .. 'user_endpoints:' .. uid,\n"
    "           p .. 'sub:' .. u[1] .. ':' .. u[2])\n"
    "redis.call('ZREM', p .. 'users', uid)\n"
    "return {1, publish(p)}\n");


/*
 * A session's record as the admin API shows it: its hash, and the user
 * agent of the shared record its "uah" names; an identity's: its hash and
 * its id.
 */

#define NGX_HTTP_IDENTITY_LUA_AGENT                                           \
    "local function agent(p, rec)\n"                                          \
    "  for i = 1, #rec, 2 do\n"                                               \
    "    if rec[i] == 'uah' then\n"                                           \
    "      local a = redis.call('HGET', p .. 'ua:' .. rec[i + 1], 'ua')\n"     \
    "      rec[#rec + 1], rec[#rec + 2] = 'ua', a or ''\n"                    \
    "      break\n"                                                           \
    "    end\n"                                                               \
    "  end\n"                                                                 \
    "  return rec\n"                                                          \
    "end\n"                                                                   \
    "local function with_id(rec, id)\n"                                       \
    "  if #rec > 0 then\n"                                                    \
    "    rec[#rec + 1], rec[#rec + 2] = 'id', id\n"                           \
    "  end\n"                                                                 \
    "  return rec\n"                                                          \
    "end\n"


/*
 * One page, newest first, strictly after "before": {cursor, record, ...}
 * where each record is a flat field/value list and cursor is "" on the
 * last page; -1 if "before" is unknown.  Without filters a page costs
 * O(log N + limit); with filters at most "scan" entries are examined, and
 * the cursor then says where to go on.  Sessions found expired are
 * unindexed on the way.  The sessions of an identity's only site are its
 * sessions (store.c makes the site's list when a second site comes).
 */

static ngx_str_t  ngx_http_identity_list_script = ngx_string(
    NGX_HTTP_IDENTITY_LUA_DROP
    NGX_HTTP_IDENTITY_LUA_AGENT
    "local p, index, kind, before = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n"
    "local limit, fprov, fuser, fid = tonumber(ARGV[5]), ARGV[6],\n"
    "                                 string.lower(ARGV[7]), ARGV[8]\n"
    "local key = p .. index\n"
    "local uid, ep = string.match(index, '^endpoint_sessions:([^:]+):(%x+)$')\n"
    "local owner = uid or string.match(index, '^user_sessions:(.+)$')\n"
    "if uid then\n"
    "  local sites = redis.call('HVALS', p .. 'endpoints:' .. uid)\n"
    "  if #sites == 1 and string.match(sites[1], ' (%x+)$') == ep then\n"
    "    key = p .. 'user_sessions:' .. uid\n"
    "  end\n"
    "end\n"
    "local pos = 0\n"
    "if before ~= '' then\n"
    "  local rank = redis.call('ZREVRANK', key, before)\n"
    "  if not rank then return -1 end\n"
    "  pos = rank + 1\n"
    "end\n"
    "local filtered = fprov ~= '' or fuser ~= '' or fid ~= ''\n"
    "local scan = filtered and tonumber(ARGV[9]) or 4 * (limit + 1)\n"
    "local function has(v, needle)\n"
    "  return v and string.find(string.lower(v), needle, 1, true)\n"
    "end\n"
    "local out, ids, dead, last = {}, {}, {}, ''\n"
    "local scanned = 0\n"
    "while #out <= limit and scanned < scan do\n"
    "  local batch = redis.call('ZREVRANGE', key, pos, pos + limit)\n"
    "  if #batch == 0 then break end\n"
    "  for _, id in ipairs(batch) do\n"
    "    pos = pos + 1\n"
    "    scanned = scanned + 1\n"
    "    local rec = {}\n"
    "    if kind == 'user' then\n"
    "      rec = with_id(redis.call('HGETALL', p .. 'user:' .. id), id)\n"
    "    else\n"
    "      local k = skey(p, id)\n"
    "      if k then rec = redis.call('HGETALL', k) end\n"
    "      if #rec == 0 then table.insert(dead, id) end\n"
    "    end\n"
    "    if #rec > 0 then\n"
    "      local f = {}\n"
    "      for i = 1, #rec, 2 do f[rec[i]] = rec[i + 1] end\n"
    "      if (fprov == '' or f.provider == fprov)\n"
    "         and (fuser == '' or has(f.email, fuser) or has(f.name, fuser)\n"
    "              or has(f.username, fuser))\n"
    "         and (fid == '' or has(f.id, fid) or has(f.uid, fid))\n"
    "      then\n"
    "        table.insert(out, agent(p, rec))\n"
    "        table.insert(ids, id)\n"
    "      end\n"
    "      last = id\n"
    "    end\n"
    "    if #out > limit or scanned >= scan then break end\n"
    "  end\n"
    "end\n"
    "for _, id in ipairs(dead) do\n"
    "  drop(p, id, owner)\n"
    "  redis.call('ZREM', key, id)\n"
    "end\n"
    "local cursor = ''\n"
    "if #out > limit then\n"
    "  table.remove(out)\n"
    "  cursor = ids[limit]\n"
    "elseif scanned >= scan and last ~= '' then\n"
    "  cursor = last\n"
    "end\n"
    "table.insert(out, 1, cursor)\n"
    "return out\n");


/* one record: {} if unknown; an expired session is unindexed */

static ngx_str_t  ngx_http_identity_get_script = ngx_string(
    NGX_HTTP_IDENTITY_LUA_DROP
    NGX_HTTP_IDENTITY_LUA_AGENT
    "local p, kind, id = ARGV[1], ARGV[2], ARGV[3]\n"
    "if kind == 'user' then\n"
    "  return with_id(redis.call('HGETALL', p .. 'user:' .. id), id)\n"
    "end\n"
    "if kind == 'endpoints' then\n"
    "  if redis.call('EXISTS', p .. 'user:' .. id) == 0 then return -1 end\n"
    "  return redis.call('HGETALL', p .. 'endpoints:' .. id)\n"
    "end\n"
    "local k = skey(p, id)\n"
    "if not k then return {} end\n"
    "local rec = redis.call('HGETALL', k)\n"
    "if #rec == 0 and redis.call('ZSCORE', p .. 'sessions', id) then\n"
    "  drop(p, id)\n"
    "end\n"
    "return agent(p, rec)\n");


/* admin API: the replies' shapes are described with the scripts */

ngx_int_t
ngx_http_identity_store_list(ngx_http_request_t *r,
    ngx_http_identity_store_pt done, ngx_http_identity_store_query_t *q)
{
    ngx_str_t                        index;
    ngx_http_identity_cmd_t          cmd;
    ngx_http_identity_main_conf_t   *imcf;
    ngx_http_identity_store_call_t  *call;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    call = ngx_http_identity_store_call(r, done,
                                        q->sessions
                                        ? ngx_http_identity_store_session
                                        : ngx_http_identity_store_identity);
    if (call == NULL) {
        return NGX_ERROR;
    }

    if (q->user_id.len && q->site.len) {
        index.len = sizeof("endpoint_sessions::") - 1 + q->user_id.len
                    + q->site.len;
        index.data = ngx_pnalloc(r->pool, index.len);
        if (index.data == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(index.data, "endpoint_sessions:%V:%V", &q->user_id,
                    &q->site);

    } else if (q->user_id.len) {
        index.len = sizeof("user_sessions:") - 1 + q->user_id.len;
        index.data = ngx_pnalloc(r->pool, index.len);
        if (index.data == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(index.data, "user_sessions:%V", &q->user_id);

    } else if (q->sessions) {
        ngx_str_set(&index, "sessions");

    } else {
        ngx_str_set(&index, "users");
    }

    if (ngx_http_identity_cmd_init(r, &cmd, "EVAL", 12) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_list_script, 0);
    ngx_http_identity_cmd_str(&cmd, &imcf->key_prefix);
    ngx_http_identity_cmd_str(&cmd, &index);
    ngx_http_identity_cmd_cstr(&cmd, q->sessions ? "session" : "user");
    ngx_http_identity_cmd_str(&cmd, &q->before_id);
    ngx_http_identity_cmd_num(&cmd, q->limit);
    ngx_http_identity_cmd_str(&cmd, &q->provider);
    ngx_http_identity_cmd_str(&cmd, &q->user);
    ngx_http_identity_cmd_str(&cmd, &q->id);
    ngx_http_identity_cmd_num(&cmd, q->scan);

    return ngx_http_identity_cmd_send(&cmd, ngx_http_identity_list_handler,
                                      call);
}


ngx_int_t
ngx_http_identity_store_get(ngx_http_request_t *r,
    ngx_http_identity_store_pt done, ngx_http_identity_store_kind_e kind,
    ngx_str_t *id)
{
    ngx_http_identity_cmd_t          cmd;
    ngx_http_identity_main_conf_t   *imcf;
    ngx_http_identity_store_call_t  *call;

    static char  *kinds[] = { "user", "session", "endpoints" };

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    call = ngx_http_identity_store_call(r, done, kind);
    if (call == NULL
        || ngx_http_identity_cmd_init(r, &cmd, "EVAL", 6) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_get_script, 0);
    ngx_http_identity_cmd_str(&cmd, &imcf->key_prefix);
    ngx_http_identity_cmd_cstr(&cmd, kinds[kind]);
    ngx_http_identity_cmd_str(&cmd, id);

    return ngx_http_identity_cmd_send(&cmd,
                                      kind == ngx_http_identity_store_sites
                                      ? ngx_http_identity_sites_handler
                                      : ngx_http_identity_get_handler,
                                      call);
}


/* answers 1 if something was deleted, 0 if there was nothing to delete */

ngx_int_t
ngx_http_identity_store_delete(ngx_http_request_t *r,
    ngx_http_identity_store_pt done, ngx_uint_t user, ngx_str_t *id)
{
    ngx_http_identity_cmd_t          cmd;
    ngx_http_identity_main_conf_t   *imcf;
    ngx_http_identity_store_call_t  *call;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    call = ngx_http_identity_store_call(r, done,
                                        user
                                        ? ngx_http_identity_store_identity
                                        : ngx_http_identity_store_session);
    if (call == NULL
        || ngx_http_identity_cmd_init(r, &cmd, "EVAL", 6) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (user) {
        ngx_http_identity_cmd_eval(&cmd,
                                   &ngx_http_identity_delete_user_script, 0);
        ngx_http_identity_cmd_str(&cmd, &imcf->key_prefix);

    } else {
        ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_destroy_script,
                                   0);
        ngx_http_identity_cmd_str(&cmd, &imcf->key_prefix);
        ngx_http_identity_cmd_cstr(&cmd, "sid");
    }

    ngx_http_identity_cmd_str(&cmd, id);

    return ngx_http_identity_cmd_send(&cmd, ngx_http_identity_delete_handler,
                                      call);
}


static ngx_http_identity_store_call_t *
ngx_http_identity_store_call(ngx_http_request_t *r,
    ngx_http_identity_store_pt done, ngx_uint_t kind)
{
    ngx_http_identity_store_call_t  *call;

    call = ngx_palloc(r->pool, sizeof(ngx_http_identity_store_call_t));
    if (call == NULL) {
        return NULL;
    }

    call->done = done;
    call->kind = kind;

    return call;
}


/* {cursor, record, ...}, or -1: before_id is unknown */

static void
ngx_http_identity_list_handler(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_http_identity_store_call_t *call = data;

    ngx_http_identity_store_result_t   res;

    ngx_memzero(&res, sizeof(ngx_http_identity_store_result_t));

    if (reply == NULL) {
        res.rc = NGX_ERROR;

    } else if (reply->type == REDIS_REPLY_INTEGER) {
        res.rc = NGX_DECLINED;

    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        res.rc = NGX_ERROR;

    } else if ((reply->element[0]->type == REDIS_REPLY_STRING
                && ngx_http_identity_reply_str(r, reply->element[0],
                                               &res.cursor)
                   != NGX_OK)
               || ngx_http_identity_records(r, call->kind,
                                            &reply->element[1],
                                            reply->elements - 1, &res)
                  != NGX_OK)
    {
        res.rc = NGX_ABORT;

    } else {
        res.rc = NGX_OK;
    }

    call->done(r, &res);
}


/* one record, or none */

static void
ngx_http_identity_get_handler(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_http_identity_store_call_t *call = data;

    ngx_http_identity_store_result_t   res;

    ngx_memzero(&res, sizeof(ngx_http_identity_store_result_t));

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        res.rc = NGX_ERROR;

    } else if (reply->elements == 0) {
        res.rc = NGX_DECLINED;

    } else if (ngx_http_identity_records(r, call->kind, &reply, 1, &res)
               != NGX_OK)
    {
        res.rc = NGX_ABORT;

    } else {
        res.rc = NGX_OK;
    }

    call->done(r, &res);
}


/* n flat field/value lists, as sessions or identities */

static ngx_int_t
ngx_http_identity_records(ngx_http_request_t *r, ngx_uint_t kind,
    redisReply **recs, size_t n, ngx_http_identity_store_result_t *res)
{
    u_char                     *p;
    size_t                      i, size;
    ngx_http_identity_field_t  *fields;

    if (kind == ngx_http_identity_store_session) {
        size = sizeof(ngx_http_identity_session_t);
        fields = ngx_http_identity_session_fields;

    } else {
        size = sizeof(ngx_http_identity_identity_t);
        fields = ngx_http_identity_user_fields;
    }

    p = ngx_pcalloc(r->pool, (n + 1) * size);
    if (p == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_identity_store_record(r, recs[i], fields, p + i * size)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (kind == ngx_http_identity_store_session) {
        res->sessions = (ngx_http_identity_session_t *) p;

    } else {
        res->identities = (ngx_http_identity_identity_t *) p;
    }

    res->nelts = n;

    return NGX_OK;
}


/*
 * The sites of an identity: endpoints:<uid> is {url: "first last
 * sessions"}, or -1 for an unknown identity; the latest used first
 */

static void
ngx_http_identity_sites_handler(ngx_http_request_t *r,
    redisReply *reply, void *data)
{
    ngx_http_identity_store_call_t *call = data;

    u_char                            *p, *last;
    size_t                             i;
    ngx_uint_t                         n;
    ngx_http_identity_site_t          *sites;
    ngx_http_identity_store_result_t   res;

    ngx_memzero(&res, sizeof(ngx_http_identity_store_result_t));

    if (reply == NULL) {
        res.rc = NGX_ERROR;
        goto done;
    }

    if (reply->type == REDIS_REPLY_INTEGER) {
        res.rc = NGX_DECLINED;
        goto done;
    }

    if (reply->type != REDIS_REPLY_ARRAY) {
        res.rc = NGX_ERROR;
        goto done;
    }

    sites = ngx_pcalloc(r->pool, (reply->elements / 2 + 1)
                                 * sizeof(ngx_http_identity_site_t));
    if (sites == NULL) {
        res.rc = NGX_ABORT;
        goto done;
    }

    n = 0;

    for (i = 0; i + 1 < reply->elements; i += 2) {
        if (ngx_http_identity_reply_str(r, reply->element[i], &sites[n].url)
            != NGX_OK)
        {
            res.rc = NGX_ABORT;
            goto done;
        }

        p = (u_char *) reply->element[i + 1]->str;
        last = p + reply->element[i + 1]->len;

        sites[n].first = ngx_http_identity_word(&p, last);
        sites[n].last = ngx_http_identity_word(&p, last);
        sites[n].sessions = ngx_http_identity_word(&p, last);

        n++;
    }

    ngx_qsort(sites, n, sizeof(ngx_http_identity_site_t),
              ngx_http_identity_site_cmp);

    res.rc = NGX_OK;
    res.nelts = n;
    res.sites = sites;

done:

    call->done(r, &res);
}


static void
ngx_http_identity_delete_handler(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_http_identity_store_call_t *call = data;

    ngx_int_t   rc, event;

    ngx_memzero(&call->res, sizeof(ngx_http_identity_store_result_t));

    /* 0: nothing to delete; or {deleted, the event the nodes confirm} */

    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        call->res.rc = NGX_DECLINED;
        call->done(r, &call->res);
        return;
    }

    if (reply == NULL
        || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_INTEGER)
    {
        call->res.rc = NGX_ERROR;
        call->done(r, &call->res);
        return;
    }

    call->res.rc = reply->element[0]->integer ? NGX_OK : NGX_DECLINED;
    event = (ngx_int_t) reply->element[1]->integer;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "identity: admin delete: %s",
                   reply->element[0]->integer ? "revoked"
                                              : "nothing to revoke");

    /* the answer waits until every node's cache has forgotten them */

    rc = ngx_http_identity_node_confirm(r, event,
                                        ngx_http_identity_delete_confirmed,
                                        call);
    if (rc == NGX_DECLINED) {
        call->done(r, &call->res);

    } else if (rc != NGX_OK) {
        call->res.rc = NGX_ERROR;
        call->done(r, &call->res);
    }
}


static void
ngx_http_identity_delete_confirmed(ngx_http_request_t *r, void *data)
{
    ngx_http_identity_store_call_t *call = data;

    call->done(r, &call->res);
}


/* the next space-separated number, or 0 */

static time_t
ngx_http_identity_word(u_char **pos, u_char *last)
{
    u_char  *p, *end;
    time_t   n;

    p = *pos;
    end = ngx_strlchr(p, last, ' ');
    if (end == NULL) {
        end = last;
    }

    n = ngx_atotm(p, end - p);
    *pos = end < last ? end + 1 : last;

    return n == NGX_ERROR ? 0 : n;
}


static int ngx_cdecl
ngx_http_identity_site_cmp(const void *one, const void *two)
{
    const ngx_http_identity_site_t  *a = one, *b = two;

    return (a->last < b->last) - (a->last > b->last);
}
