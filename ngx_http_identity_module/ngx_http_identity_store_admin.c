
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
#include "ngx_http_identity_store_risk.h"
#include "ngx_http_identity_metrics.h"


/* an admin call in flight */

typedef struct {
    ngx_http_identity_store_pt         done;
    ngx_uint_t                         kind;       /* _store_kind_e */
    ngx_http_identity_store_result_t   res;        /* kept while waiting */
} ngx_http_identity_store_call_t;


/*
 * A global list in a Redis Cluster: each shard's page (ARGV[12] "1": each
 * record with its index score "ix", the cursor "ID SCORE"), merged newest
 * first.  A shard's cursor is where what it showed ends: what lies beyond
 * it, unseen, may come before what other shards showed further on, so the
 * page ends at the highest of these bounds.  A page costs O(shards x
 * limit); before_id's score is asked of its shard first.
 */

typedef struct {
    long long                          score;
    ngx_str_t                          id;
    void                              *record;
} ngx_http_identity_merge_entry_t;


typedef struct {
    ngx_http_identity_store_call_t    *call;
    ngx_http_identity_cmd_t            cmd;
    ngx_array_t                        entries;
    ngx_http_identity_merge_entry_t    bound;
    ngx_uint_t                         limit;
    unsigned                           bounded:1;
    unsigned                           error:1;
} ngx_http_identity_merge_t;


static ngx_http_identity_store_call_t *ngx_http_identity_store_call(
    ngx_http_request_t *r, ngx_http_identity_store_pt done, ngx_uint_t kind);
static ngx_int_t ngx_http_identity_merge_start(ngx_http_request_t *r,
    ngx_http_identity_merge_t *mg, ngx_str_t *before, ngx_str_t *index);
static void ngx_http_identity_merge_before(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_identity_merge_shard(ngx_http_request_t *r,
    redisReply *reply, ngx_uint_t shard, void *data);
static void ngx_http_identity_merge_done(ngx_http_request_t *r, void *data,
    ngx_uint_t failed, ngx_int_t event);
static ngx_int_t ngx_http_identity_merge_cmp(
    ngx_http_identity_merge_entry_t *a, ngx_http_identity_merge_entry_t *b);
static int ngx_cdecl ngx_http_identity_merge_sort(const void *one,
    const void *two);
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
static void ngx_http_identity_count_shard(ngx_http_request_t *r,
    redisReply *reply, ngx_uint_t shard, void *data);
static void ngx_http_identity_count_done(ngx_http_request_t *r, void *data,
    ngx_uint_t failed, ngx_int_t event);
static int ngx_cdecl ngx_http_identity_site_cmp(const void *one,
    const void *two);


static ngx_str_t  ngx_http_identity_empty = ngx_null_string;


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
 * unindexed on the way, but for the last one examined when no other was
 * alive: it is the cursor then, lest the page look like the last.  The
 * sessions of an identity's only site are its sessions (store.c makes the
 * site's list when a second site comes).
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
    "local pos, merged = 0, ARGV[12] == '1'\n"
    "if before ~= '' then\n"
    "  local rank = redis.call('ZREVRANK', key, before)\n"
    "  if not rank then return -1 end\n"
    "  pos = rank + 1\n"
    "elseif ARGV[10] ~= '' then\n"
    "  pos = redis.call('ZCOUNT', key, '(' .. ARGV[10], '+inf')\n"
    "  for _, m in ipairs(redis.call('ZRANGEBYSCORE', key, ARGV[10],\n"
    "                                ARGV[10])) do\n"
    "    if m >= ARGV[11] then pos = pos + 1 end\n"
    "  end\n"
    "end\n"
    "local function ix(id) return redis.call('ZSCORE', key, id) end\n"
    "local fcountry, fdevice, frisk = ARGV[13], ARGV[14], ARGV[15]\n"
    "local filtered = fprov ~= '' or fuser ~= '' or fid ~= ''\n"
    "                 or fcountry ~= '' or fdevice ~= '' or frisk ~= ''\n"
    "local function risky(v)\n"
    "  if frisk == '' then return true end\n"
    "  if not v or v == '' or v == '[]' then return false end\n"
    "  return frisk == 'any'\n"
    "         or string.find(v, '[\"' .. frisk .. '\"', 1, true)\n"
    "end\n"
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
    "         and (fcountry == '' or f.country == fcountry)\n"
    "         and (fdevice == '' or f.device_type == fdevice)\n"
    "         and risky(f.risk)\n"
    "      then\n"
    "        rec = agent(p, rec)\n"
    "        if merged then\n"
    "          rec[#rec + 1], rec[#rec + 2] = 'ix', ix(id)\n"
    "        end\n"
    "        table.insert(out, rec)\n"
    "        table.insert(ids, id)\n"
    "      end\n"
    "      last = id\n"
    "    end\n"
    "    if #out > limit or scanned >= scan then break end\n"
    "  end\n"
    "end\n"
    "if last == '' and scanned >= scan and #dead > 0 then\n"
    "  last = table.remove(dead)\n"
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
    "if merged and cursor ~= '' then cursor = cursor .. ' ' .. ix(cursor) end\n"
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
    ngx_str_t                        index, *prefix;
    ngx_http_identity_cmd_t          cmd;
    ngx_http_identity_merge_t       *mg;
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

    if (ngx_http_identity_cmd_init(r, &cmd, "EVAL", 15) != NGX_OK) {
        return NGX_ERROR;
    }

    /* an identity's lists are in its shard; the global ones in each */

    prefix = ngx_http_identity_store_id_shard(r, &q->user_id);
    mg = NULL;

    if (q->user_id.len == 0 && imcf->nshards > 1) {
        mg = ngx_pcalloc(r->pool, sizeof(ngx_http_identity_merge_t));
        if (mg == NULL
            || ngx_array_init(&mg->entries, r->pool, 16,
                              sizeof(ngx_http_identity_merge_entry_t))
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        mg->call = call;
        mg->limit = q->limit;
    }

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_list_script, 0);
    ngx_http_identity_cmd_str(&cmd, prefix);
    ngx_http_identity_cmd_str(&cmd, &index);
    ngx_http_identity_cmd_cstr(&cmd, q->sessions ? "session" : "user");
    ngx_http_identity_cmd_str(&cmd, mg ? &ngx_http_identity_empty
                                       : &q->before_id);
    ngx_http_identity_cmd_num(&cmd, q->limit);
    ngx_http_identity_cmd_str(&cmd, &q->provider);
    ngx_http_identity_cmd_str(&cmd, &q->user);
    ngx_http_identity_cmd_str(&cmd, &q->id);
    ngx_http_identity_cmd_num(&cmd, q->scan);
    ngx_http_identity_cmd_cstr(&cmd, "");       /* before's score */
    ngx_http_identity_cmd_cstr(&cmd, "");       /* before */
    ngx_http_identity_cmd_cstr(&cmd, mg ? "1" : "");
    ngx_http_identity_cmd_str(&cmd, &q->country);
    ngx_http_identity_cmd_str(&cmd, &q->device);
    ngx_http_identity_cmd_str(&cmd, &q->risk);

    if (mg) {
        mg->cmd = cmd;
        return ngx_http_identity_merge_start(r, mg, &q->before_id, &index);
    }

    return ngx_http_identity_cmd_send(&cmd, ngx_http_identity_list_handler,
                                      call);
}


/* before_id's score first, if there is one */

static ngx_int_t
ngx_http_identity_merge_start(ngx_http_request_t *r,
    ngx_http_identity_merge_t *mg, ngx_str_t *before, ngx_str_t *index)
{
    ngx_str_t                *args, key, *prefix;
    ngx_http_identity_cmd_t   cmd;

    if (before->len == 0) {
        return ngx_http_identity_cmd_fanout(&mg->cmd,
                                            ngx_http_identity_merge_shard,
                                            ngx_http_identity_merge_done, mg);
    }

    args = mg->cmd.args.elts;
    args[13] = *before;

    prefix = ngx_http_identity_store_id_shard(r, before);

    key.len = prefix->len + index->len;
    key.data = ngx_pnalloc(r->pool, key.len);

    if (key.data == NULL
        || ngx_http_identity_cmd_init(r, &cmd, "ZSCORE", 3) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_sprintf(key.data, "%V%V", prefix, index);
    ngx_http_identity_cmd_str(&cmd, &key);
    ngx_http_identity_cmd_str(&cmd, before);

    return ngx_http_identity_cmd_send(&cmd, ngx_http_identity_merge_before,
                                      mg);
}


static void
ngx_http_identity_merge_before(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_http_identity_merge_t *mg = data;

    ngx_str_t                         *args;
    ngx_http_identity_store_result_t   res;

    ngx_memzero(&res, sizeof(ngx_http_identity_store_result_t));
    args = mg->cmd.args.elts;

    if (reply == NULL) {
        res.rc = NGX_ERROR;

    } else if (reply->type != REDIS_REPLY_STRING) {
        res.rc = NGX_DECLINED;      /* before_id is unknown */

    } else if (ngx_http_identity_reply_str(r, reply, &args[12]) != NGX_OK) {
        res.rc = NGX_ABORT;

    } else if (ngx_http_identity_cmd_fanout(&mg->cmd,
                                            ngx_http_identity_merge_shard,
                                            ngx_http_identity_merge_done, mg)
               != NGX_OK)
    {
        res.rc = NGX_ERROR;

    } else {
        return;
    }

    mg->call->done(r, &res);
}


/* one shard's page: its records, with their scores, and its bound */

static void
ngx_http_identity_merge_shard(ngx_http_request_t *r, redisReply *reply,
    ngx_uint_t shard, void *data)
{
    ngx_http_identity_merge_t *mg = data;

    u_char                            *p;
    size_t                             i, j;
    redisReply                        *rec, *v;
    ngx_http_identity_merge_entry_t   *e, b;
    ngx_http_identity_store_result_t   res;

    if (reply == NULL) {
        return;     /* failed: done() says so */
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        mg->error = 1;
        return;
    }

    /* "ID SCORE": this shard showed nothing beyond it */

    if (reply->element[0]->len) {
        p = (u_char *) reply->element[0]->str;
        v = reply->element[0];

        for (i = 0; i < v->len && p[i] != ' '; i++) { /* void */ }

        b.score = (i < v->len) ? ngx_atoof(p + i + 1, v->len - i - 1)
                               : NGX_ERROR;
        b.id.data = ngx_pnalloc(r->pool, i);

        if (b.score == NGX_ERROR || b.id.data == NULL) {
            mg->error = 1;
            return;
        }

        ngx_memcpy(b.id.data, p, i);
        b.id.len = i;

        /* the newest bound: beyond it, this shard's unseen may come first */

        if (!mg->bounded || ngx_http_identity_merge_cmp(&b, &mg->bound) > 0) {
            mg->bound = b;
            mg->bounded = 1;
        }
    }

    ngx_memzero(&res, sizeof(ngx_http_identity_store_result_t));

    if (ngx_http_identity_records(r, mg->call->kind, &reply->element[1],
                                  reply->elements - 1, &res)
        != NGX_OK)
    {
        mg->error = 1;
        return;
    }

    for (i = 1; i < reply->elements; i++) {
        rec = reply->element[i];

        e = ngx_array_push(&mg->entries);
        if (e == NULL) {
            mg->error = 1;
            return;
        }

        e->score = NGX_ERROR;
        ngx_str_null(&e->id);
        e->record = (mg->call->kind == ngx_http_identity_store_session)
                    ? (void *) &res.sessions[i - 1]
                    : (void *) &res.identities[i - 1];

        for (j = 0; rec->type == REDIS_REPLY_ARRAY && j + 1 < rec->elements;
             j += 2)
        {
            v = rec->element[j + 1];

            if (rec->element[j]->len == 2 && v->type == REDIS_REPLY_STRING
                && ngx_strncmp(rec->element[j]->str, "ix", 2) == 0)
            {
                e->score = ngx_atoof((u_char *) v->str, v->len);

            } else if (rec->element[j]->len == 2
                       && ngx_strncmp(rec->element[j]->str, "id", 2) == 0
                       && ngx_http_identity_reply_str(r, v, &e->id) != NGX_OK)
            {
                mg->error = 1;
                return;
            }
        }

        if (e->score == NGX_ERROR || e->id.len == 0) {
            mg->error = 1;
            return;
        }
    }
}


static void
ngx_http_identity_merge_done(ngx_http_request_t *r, void *data,
    ngx_uint_t failed, ngx_int_t event)
{
    ngx_http_identity_merge_t *mg = data;

    u_char                            *p;
    size_t                             size;
    ngx_uint_t                         i, n;
    ngx_http_identity_merge_entry_t   *e;
    ngx_http_identity_store_result_t   res;

    ngx_memzero(&res, sizeof(ngx_http_identity_store_result_t));

    if (failed || mg->error) {
        res.rc = failed ? NGX_ERROR : NGX_ABORT;
        mg->call->done(r, &res);
        return;
    }

    e = mg->entries.elts;
    ngx_qsort(e, mg->entries.nelts, sizeof(ngx_http_identity_merge_entry_t),
              ngx_http_identity_merge_sort);

    /* what comes before the highest bound, newest first, "limit" of it */

    for (n = 0; n < mg->entries.nelts; n++) {
        if (mg->bounded && ngx_http_identity_merge_cmp(&e[n], &mg->bound) < 0)
        {
            break;
        }
    }

    if (n > mg->limit) {
        n = mg->limit;
        res.cursor = e[n - 1].id;

    } else if (mg->bounded) {
        res.cursor = mg->bound.id;
    }

    size = (mg->call->kind == ngx_http_identity_store_session)
           ? sizeof(ngx_http_identity_session_t)
           : sizeof(ngx_http_identity_identity_t);

    p = ngx_pcalloc(r->pool, (n + 1) * size);
    if (p == NULL) {
        res.rc = NGX_ABORT;
        mg->call->done(r, &res);
        return;
    }

    for (i = 0; i < n; i++) {
        ngx_memcpy(p + i * size, e[i].record, size);
    }

    if (mg->call->kind == ngx_http_identity_store_session) {
        res.sessions = (ngx_http_identity_session_t *) p;

    } else {
        res.identities = (ngx_http_identity_identity_t *) p;
    }

    res.nelts = n;
    res.rc = NGX_OK;

    mg->call->done(r, &res);
}


/* newest first: a higher score, then (as ZREVRANGE) a greater id, first */

static ngx_int_t
ngx_http_identity_merge_cmp(ngx_http_identity_merge_entry_t *a,
    ngx_http_identity_merge_entry_t *b)
{
    ngx_int_t  rc;

    if (a->score != b->score) {
        return a->score > b->score ? 1 : -1;
    }

    rc = ngx_memn2cmp(a->id.data, b->id.data, a->id.len, b->id.len);

    return rc > 0 ? 1 : (rc < 0 ? -1 : 0);
}


static int ngx_cdecl
ngx_http_identity_merge_sort(const void *one, const void *two)
{
    return (int) ngx_http_identity_merge_cmp(
                     (ngx_http_identity_merge_entry_t *) two,
                     (ngx_http_identity_merge_entry_t *) one);
}


ngx_int_t
ngx_http_identity_store_get(ngx_http_request_t *r,
    ngx_http_identity_store_pt done, ngx_http_identity_store_kind_e kind,
    ngx_str_t *id)
{
    ngx_http_identity_cmd_t          cmd;
    ngx_http_identity_store_call_t  *call;

    static char  *kinds[] = { "user", "session", "endpoints" };

    call = ngx_http_identity_store_call(r, done, kind);
    if (call == NULL
        || ngx_http_identity_cmd_init(r, &cmd, "EVAL", 6) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_get_script, 0);
    ngx_http_identity_cmd_str(&cmd, ngx_http_identity_store_id_shard(r, id));
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
    ngx_str_t                       *prefix;
    ngx_http_identity_cmd_t          cmd;
    ngx_http_identity_store_call_t  *call;

    call = ngx_http_identity_store_call(r, done,
                                        user
                                        ? ngx_http_identity_store_identity
                                        : ngx_http_identity_store_session);
    if (call == NULL
        || ngx_http_identity_cmd_init(r, &cmd, "EVAL", 6) != NGX_OK)
    {
        return NGX_ERROR;
    }

    prefix = ngx_http_identity_store_id_shard(r, id);

    if (user) {
        ngx_http_identity_cmd_eval(&cmd,
                                   &ngx_http_identity_delete_user_script, 0);
        ngx_http_identity_cmd_str(&cmd, prefix);

    } else {
        ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_destroy_script,
                                   0);
        ngx_http_identity_cmd_str(&cmd, prefix);
        ngx_http_identity_cmd_cstr(&cmd, "sid");
    }

    ngx_http_identity_cmd_str(&cmd, id);

    return ngx_http_identity_cmd_send_revoking(&cmd,
                                             ngx_http_identity_delete_handler,
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
            != NGX_OK
            || (kind == ngx_http_identity_store_session
                && ngx_http_identity_risk_unpack(r->pool,
                       &((ngx_http_identity_session_t *) (p + i * size))->risk)
                   != NGX_OK))
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
        || reply->elements < 2
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_INTEGER)
    {
        call->res.rc = NGX_ERROR;
        call->done(r, &call->res);
        return;
    }

    call->res.rc = reply->element[0]->integer ? NGX_OK : NGX_DECLINED;

    /* a session's: {1, event, sid, uid}, whose it was, for its event */

    if (call->kind == ngx_http_identity_store_session
        && reply->elements == 4
        && reply->element[3]->type == REDIS_REPLY_STRING
        && reply->element[3]->len)
    {
        call->res.sessions = ngx_pcalloc(r->pool,
                                         sizeof(ngx_http_identity_session_t));

        if (call->res.sessions
            && ngx_http_identity_reply_str(r, reply->element[3],
                                       &call->res.sessions[0].identity_id)
               == NGX_OK)
        {
            call->res.nelts = 1;
        }
    }

    if (reply->element[0]->integer > 0) {
        ngx_http_identity_metrics_revoked(NGX_HTTP_IDENTITY_REVOKED_API,
                                   (ngx_uint_t) reply->element[0]->integer);
    }
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


/*
 * The sessions' index, counted (ZCARD of each shard's "sessions", summed),
 * for /metrics: res.nelts; NGX_ERROR if a shard failed.  It may count
 * sessions that expired since the index was last pruned.
 */

static ngx_str_t  ngx_http_identity_count_script = ngx_string(
    "return redis.call('ZCARD', ARGV[1] .. 'sessions')\n");


ngx_int_t
ngx_http_identity_store_count(ngx_http_request_t *r,
    ngx_http_identity_store_pt done)
{
    ngx_http_identity_cmd_t          cmd;
    ngx_http_identity_store_call_t  *call;

    call = ngx_http_identity_store_call(r, done,
                                        ngx_http_identity_store_session);
    if (call == NULL
        || ngx_http_identity_cmd_init(r, &cmd, "EVAL", 4) != NGX_OK)
    {
        return NGX_ERROR;
    }

    call->res.rc = NGX_OK;
    call->res.nelts = 0;

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_count_script, 0);
    ngx_http_identity_cmd_cstr(&cmd, "");       /* the shard's prefix */

    return ngx_http_identity_cmd_fanout(&cmd, ngx_http_identity_count_shard,
                                        ngx_http_identity_count_done, call);
}


static void
ngx_http_identity_count_shard(ngx_http_request_t *r, redisReply *reply,
    ngx_uint_t shard, void *data)
{
    ngx_http_identity_store_call_t  *call = data;

    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer >= 0) {
        call->res.nelts += (ngx_uint_t) reply->integer;

    } else {
        call->res.rc = NGX_ERROR;
    }
}


static void
ngx_http_identity_count_done(ngx_http_request_t *r, void *data,
    ngx_uint_t failed, ngx_int_t event)
{
    ngx_http_identity_store_call_t  *call = data;

    if (failed) {
        call->res.rc = NGX_ERROR;
    }

    call->done(r, &call->res);
}
