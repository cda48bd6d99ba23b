
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The store's commands and replies: a command is built by name, its
 * arguments appended in order, and sent through the Redis adapter; a
 * reply is copied into r->pool, a hash's flat field/value list into a
 * typed record by the fields' names.  Knows no key but "P kind hash".
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_redis.h"
#include "ngx_http_identity_store_cmd.h"


/*
 * The keys' prefixes: in a Redis Cluster, 16 shards "P{@0}" to "P{@f}",
 * each a hash tag, and "P{@n}" for the nodes' keys; elsewhere P alone.  A
 * key's shard is the first hex digit of the id or hash it ends with: a
 * session's hash (the cookie is drawn until its hash's digit is the
 * identity's), an identity's id after "au_", a provider's user's hash.
 */

ngx_int_t
ngx_http_identity_store_init_conf(ngx_conf_t *cf,
    ngx_http_identity_main_conf_t *imcf)
{
    u_char      *p;
    ngx_uint_t   i;

    imcf->nshards = imcf->redis.cluster ? 16 : 1;
    imcf->node_prefix = imcf->key_prefix;

    imcf->shards = ngx_palloc(cf->pool, imcf->nshards * sizeof(ngx_str_t));
    if (imcf->shards == NULL) {
        return NGX_ERROR;
    }

    imcf->shards[0] = imcf->key_prefix;

    if (imcf->nshards == 1) {
        return NGX_OK;
    }

    /*
     * a "{" of the prefix would be the keys' hash tag: all in one slot, or
     * with "{}" each key in its own, and a script's keys in several
     */

    if (ngx_strlchr(imcf->key_prefix.data,
                    imcf->key_prefix.data + imcf->key_prefix.len, '{'))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"identity_redis_prefix\" \"%V\" has a \"{\": "
                           "in a Redis Cluster the module adds the hash "
                           "tags", &imcf->key_prefix);
        return NGX_ERROR;
    }

    /* "0123456789abcdef" and "n" */

    for (i = 0; i <= imcf->nshards; i++) {
        p = ngx_pnalloc(cf->pool, imcf->key_prefix.len + 4);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (i < imcf->nshards) {
            imcf->shards[i].data = p;
            imcf->shards[i].len = ngx_sprintf(p, "%V{@%xi}", &imcf->key_prefix,
                                              (ngx_int_t) i)
                                  - p;
        } else {
            imcf->node_prefix.data = p;
            imcf->node_prefix.len = ngx_sprintf(p, "%V{@n}", &imcf->key_prefix)
                                    - p;
        }
    }

    return NGX_OK;
}


/* the prefix of the shard whose digit is c (a hex digit, or else 0) */

ngx_str_t *
ngx_http_identity_store_shard(ngx_http_request_t *r, u_char c)
{
    ngx_int_t                       n;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    n = ngx_hextoi(&c, 1);

    return &imcf->shards[n == NGX_ERROR ? 0 : n % imcf->nshards];
}


/* "au_X..." and "as_X...": the shard of an identity's or a session's id */

ngx_str_t *
ngx_http_identity_store_id_shard(ngx_http_request_t *r, ngx_str_t *id)
{
    return ngx_http_identity_store_shard(r, id->len > 3 ? id->data[3] : '0');
}


/* the command's name, and room for about n arguments */

ngx_int_t
ngx_http_identity_cmd_init(ngx_http_request_t *r,
    ngx_http_identity_cmd_t *cmd, char *name, ngx_uint_t n)
{
    cmd->request = r;
    cmd->failed = 0;

    if (ngx_array_init(&cmd->args, r->pool, n, sizeof(ngx_str_t)) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_identity_cmd_cstr(cmd, name);

    return NGX_OK;
}


/* EVAL's script and number of keys */

void
ngx_http_identity_cmd_eval(ngx_http_identity_cmd_t *cmd, ngx_str_t *script,
    ngx_uint_t keys)
{
    ngx_http_identity_cmd_str(cmd, script);
    ngx_http_identity_cmd_num(cmd, keys);
}


void
ngx_http_identity_cmd_str(ngx_http_identity_cmd_t *cmd, ngx_str_t *value)
{
    ngx_str_t  *arg;

    arg = ngx_array_push(&cmd->args);
    if (arg == NULL) {
        cmd->failed = 1;
        return;
    }

    *arg = *value;
}


void
ngx_http_identity_cmd_cstr(ngx_http_identity_cmd_t *cmd, char *value)
{
    ngx_str_t  v;

    v.data = (u_char *) value;
    v.len = ngx_strlen(value);

    ngx_http_identity_cmd_str(cmd, &v);
}


void
ngx_http_identity_cmd_num(ngx_http_identity_cmd_t *cmd, time_t value)
{
    ngx_str_t  v;

    if (ngx_http_identity_store_num(cmd->request, &v, value) == NULL) {
        cmd->failed = 1;
        return;
    }

    ngx_http_identity_cmd_str(cmd, &v);
}


/* the key "P kind sha256hex(secret)" */

void
ngx_http_identity_cmd_key(ngx_http_identity_cmd_t *cmd, char *kind,
    ngx_str_t *secret)
{
    u_char  hex[NGX_HTTP_IDENTITY_SHA256_HEX_LEN];

    ngx_http_identity_sha256_hex(secret, hex);
    ngx_http_identity_cmd_hex_key(cmd, kind, hex,
                                  NGX_HTTP_IDENTITY_SHA256_HEX_LEN);
}


/*
 * the key "P kind hex", the secret already hashed: "hex" is its hash, the
 * first digit its shard's
 */

void
ngx_http_identity_cmd_hex_key(ngx_http_identity_cmd_t *cmd, char *kind,
    u_char *hex, size_t n)
{
    u_char     *p;
    size_t      len;
    ngx_str_t   key, *prefix;

    prefix = ngx_http_identity_store_shard(cmd->request, hex[0]);

    len = ngx_strlen(kind);

    key.len = prefix->len + len + n;
    key.data = ngx_pnalloc(cmd->request->pool, key.len);
    if (key.data == NULL) {
        cmd->failed = 1;
        return;
    }

    p = ngx_cpymem(key.data, prefix->data, prefix->len);
    p = ngx_cpymem(p, kind, len);
    ngx_memcpy(p, hex, n);

    ngx_http_identity_cmd_str(cmd, &key);
}


void
ngx_http_identity_cmd_field_str(ngx_http_identity_cmd_t *cmd, char *name,
    ngx_str_t *value)
{
    ngx_http_identity_cmd_cstr(cmd, name);
    ngx_http_identity_cmd_str(cmd, value);
}


void
ngx_http_identity_cmd_field_num(ngx_http_identity_cmd_t *cmd, char *name,
    time_t value)
{
    ngx_http_identity_cmd_cstr(cmd, name);
    ngx_http_identity_cmd_num(cmd, value);
}


ngx_int_t
ngx_http_identity_cmd_send(ngx_http_identity_cmd_t *cmd,
    ngx_http_identity_redis_handler_pt handler, void *data)
{
    if (cmd->failed) {
        return NGX_ERROR;
    }

    return ngx_http_identity_redis_request(cmd->request, handler, data,
                                           cmd->args.nelts, cmd->args.elts);
}


/* without waiting for the answer */

ngx_int_t
ngx_http_identity_cmd_post(ngx_http_identity_cmd_t *cmd)
{
    if (cmd->failed) {
        return NGX_ERROR;
    }

    return ngx_http_identity_redis_send(cmd->request->connection->log,
                                        cmd->args.nelts, cmd->args.elts);
}


/*
 * In a Redis Cluster, a script that revokes answers {result, KEYS} where
 * KEYS, the hashes of the sessions it ended, are then published from the
 * nodes' shard with the event the nodes confirm (event() and "inv" of
 * store_cmd.h): the handler then has {result, EVENT} as elsewhere.  And a
 * command for every shard (the admin API's global lists, a back-channel
 * logout by IdP session): ARGV[1], the prefix, is each shard's in turn;
 * "each" has each reply (NULL: failed), "done" follows the last, with the
 * event of what all of them ended.
 */

typedef struct {
    ngx_http_identity_cmd_t              cmd;
    ngx_http_identity_redis_handler_pt   handler;
    ngx_http_identity_shard_pt           each;
    ngx_http_identity_shards_done_pt     done;
    void                                *data;
    redisReply                           result;     /* a copy, to answer */
    redisReply                           ids[2];     /* the destroy
                                                        script's, copied */
    ngx_uint_t                           nids;
    ngx_str_t                            keys;
    size_t                               keys_size;
    ngx_uint_t                           pending;
    ngx_uint_t                           failed;
} ngx_http_identity_relay_t;


typedef struct {
    ngx_http_identity_relay_t           *relay;
    ngx_uint_t                           shard;
} ngx_http_identity_relay_shard_t;


static ngx_str_t  ngx_http_identity_publish_script = ngx_string(
    NGX_HTTP_IDENTITY_LUA_EVENT
    "local ev = event(ARGV[1])\n"
    "redis.call('PUBLISH', ARGV[2] .. 'invalidate',\n"
    "           'inv ' .. ev .. ' ' .. ARGV[3])\n"
    "return ev\n");


static ngx_http_identity_relay_t *ngx_http_identity_relay(
    ngx_http_identity_cmd_t *cmd, void *data);
static ngx_int_t ngx_http_identity_relay_copy(ngx_http_request_t *r,
    redisReply *from, redisReply *to);
static void ngx_http_identity_relay_revoked(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_identity_relay_keep(ngx_http_identity_relay_t *rl,
    redisReply *keys);
static ngx_int_t ngx_http_identity_relay_publish(
    ngx_http_identity_relay_t *rl);
static void ngx_http_identity_relay_published(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_identity_relay_shard_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_identity_relay_end(ngx_http_identity_relay_t *rl);


ngx_int_t
ngx_http_identity_cmd_send_revoking(ngx_http_identity_cmd_t *cmd,
    ngx_http_identity_redis_handler_pt handler, void *data)
{
    ngx_http_identity_relay_t      *rl;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(cmd->request,
                                         ngx_http_identity_module);

    if (imcf->nshards == 1) {
        return ngx_http_identity_cmd_send(cmd, handler, data);
    }

    rl = ngx_http_identity_relay(cmd, data);
    if (rl == NULL) {
        return NGX_ERROR;
    }

    rl->handler = handler;

    return ngx_http_identity_cmd_send(&rl->cmd,
                                      ngx_http_identity_relay_revoked, rl);
}


/* NGX_ERROR: not one could be sent */

ngx_int_t
ngx_http_identity_cmd_fanout(ngx_http_identity_cmd_t *cmd,
    ngx_http_identity_shard_pt each, ngx_http_identity_shards_done_pt done,
    void *data)
{
    ngx_str_t                        *args;
    ngx_uint_t                        i, n;
    ngx_http_request_t               *r;
    ngx_http_identity_relay_t        *rl;
    ngx_http_identity_main_conf_t    *imcf;
    ngx_http_identity_relay_shard_t  *rs;

    r = cmd->request;
    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    rl = ngx_http_identity_relay(cmd, data);
    rs = ngx_palloc(r->pool, imcf->nshards
                             * sizeof(ngx_http_identity_relay_shard_t));
    if (rl == NULL || rs == NULL) {
        return NGX_ERROR;
    }

    rl->each = each;
    rl->done = done;
    rl->pending = imcf->nshards;
    n = rl->cmd.args.nelts;

    for (i = 0; i < imcf->nshards; i++) {
        rs[i].relay = rl;
        rs[i].shard = i;

        args = ngx_palloc(r->pool, n * sizeof(ngx_str_t));

        if (args != NULL) {
            ngx_memcpy(args, rl->cmd.args.elts, n * sizeof(ngx_str_t));
            args[3] = imcf->shards[i];

            if (ngx_http_identity_redis_request(r,
                                      ngx_http_identity_relay_shard_handler,
                                      &rs[i], n, args)
                == NGX_OK)
            {
                continue;
            }
        }

        rl->failed = 1;
        rl->pending--;
    }

    return rl->pending ? NGX_OK : NGX_ERROR;
}


static ngx_http_identity_relay_t *
ngx_http_identity_relay(ngx_http_identity_cmd_t *cmd, void *data)
{
    ngx_http_identity_relay_t  *rl;

    if (cmd->failed || cmd->args.nelts < 4) {
        return NULL;
    }

    rl = ngx_pcalloc(cmd->request->pool, sizeof(ngx_http_identity_relay_t));
    if (rl == NULL) {
        return NULL;
    }

    rl->cmd = *cmd;
    rl->data = data;

    return rl;
}


/* a string or an integer of a reply, kept past it */

static ngx_int_t
ngx_http_identity_relay_copy(ngx_http_request_t *r, redisReply *from,
    redisReply *to)
{
    *to = *from;

    if (from->type == REDIS_REPLY_INTEGER) {
        return NGX_OK;
    }

    if (from->type != REDIS_REPLY_STRING && from->type != REDIS_REPLY_STATUS)
    {
        return NGX_ERROR;
    }

    to->str = ngx_pnalloc(r->pool, from->len + 1);
    if (to->str == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(to->str, from->str, from->len);
    to->str[from->len] = '\0';

    return NGX_OK;
}


/*
 * {result, KEYS[, sid, uid]}: its result kept, KEYS published, the ids
 * (the destroy script's, for an audit event) kept too; else as it is
 */

static void
ngx_http_identity_relay_revoked(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_http_identity_relay_t *rl = data;

    redisReply  *res;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 2
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        rl->handler(r, reply, rl->data);
        return;
    }

    res = reply->element[0];

    if (ngx_http_identity_relay_copy(r, res, &rl->result) != NGX_OK) {
        rl->handler(r, NULL, rl->data);
        return;
    }

    /* the ids only name the session in an event: not there, not named */

    for (rl->nids = 0; reply->elements == 4 && rl->nids < 2; rl->nids++) {
        if (ngx_http_identity_relay_copy(r, reply->element[2 + rl->nids],
                                         &rl->ids[rl->nids])
            != NGX_OK)
        {
            rl->nids = 0;
            break;
        }
    }

    if (ngx_http_identity_relay_keep(rl, reply->element[1]) != NGX_OK
        || ngx_http_identity_relay_publish(rl) != NGX_OK)
    {
        rl->handler(r, NULL, rl->data);
    }
}


/* the keys a script ended, added to those of the others */

static ngx_int_t
ngx_http_identity_relay_keep(ngx_http_identity_relay_t *rl, redisReply *keys)
{
    u_char  *p;
    size_t   size;

    if (keys->len == 0) {
        return NGX_OK;
    }

    size = rl->keys.len + 1 + keys->len;

    if (size > rl->keys_size) {
        rl->keys_size = ngx_max(2 * rl->keys_size, size);

        p = ngx_pnalloc(rl->cmd.request->pool, rl->keys_size);
        if (p == NULL) {
            return NGX_ERROR;
        }

        if (rl->keys.len) {
            ngx_memcpy(p, rl->keys.data, rl->keys.len);
        }

        rl->keys.data = p;
    }

    p = rl->keys.data + rl->keys.len;

    if (rl->keys.len) {
        *p++ = ' ';
    }

    ngx_memcpy(p, keys->str, keys->len);
    rl->keys.len = p + keys->len - rl->keys.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_identity_relay_publish(ngx_http_identity_relay_t *rl)
{
    ngx_str_t                       key;
    ngx_http_request_t             *r;
    ngx_http_identity_cmd_t         cmd;
    ngx_http_identity_main_conf_t  *imcf;

    r = rl->cmd.request;
    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    key.len = imcf->node_prefix.len + sizeof("nodes") - 1;
    key.data = ngx_pnalloc(r->pool, key.len);

    if (key.data == NULL
        || ngx_http_identity_cmd_init(r, &cmd, "EVAL", 7) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_sprintf(key.data, "%Vnodes", &imcf->node_prefix);

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_publish_script, 1);
    ngx_http_identity_cmd_str(&cmd, &key);
    ngx_http_identity_cmd_str(&cmd, &imcf->node_prefix);
    ngx_http_identity_cmd_str(&cmd, &imcf->key_prefix);
    ngx_http_identity_cmd_str(&cmd, &rl->keys);

    return ngx_http_identity_cmd_send(&cmd,
                                      ngx_http_identity_relay_published, rl);
}


/* the event: the handler has {result, EVENT} */

static void
ngx_http_identity_relay_published(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_http_identity_relay_t *rl = data;

    redisReply   answer, event, *elts[4];

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        if (rl->handler) {
            rl->handler(r, NULL, rl->data);

        } else {
            rl->done(r, rl->data, 1, 0);
        }

        return;
    }

    if (rl->handler == NULL) {
        rl->done(r, rl->data, rl->failed, (ngx_int_t) reply->integer);
        return;
    }

    ngx_memzero(&event, sizeof(redisReply));
    event.type = REDIS_REPLY_INTEGER;
    event.integer = reply->integer;

    elts[0] = &rl->result;
    elts[1] = &event;
    elts[2] = &rl->ids[0];
    elts[3] = &rl->ids[1];

    ngx_memzero(&answer, sizeof(redisReply));
    answer.type = REDIS_REPLY_ARRAY;
    answer.elements = 2 + rl->nids;
    answer.element = elts;

    rl->handler(r, &answer, rl->data);
}


static void
ngx_http_identity_relay_shard_handler(ngx_http_request_t *r,
    redisReply *reply, void *data)
{
    ngx_http_identity_relay_shard_t *rs = data;

    ngx_http_identity_relay_t  *rl = rs->relay;

    if (reply == NULL) {
        rl->failed = 1;

    } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
               && reply->element[1]->type == REDIS_REPLY_STRING
               && ngx_http_identity_relay_keep(rl, reply->element[1])
                  != NGX_OK)
    {
        rl->failed = 1;
    }

    rl->each(r, reply, rs->shard, rl->data);

    if (--rl->pending == 0) {
        ngx_http_identity_relay_end(rl);
    }
}


/*
 * the shards have answered: what they ended is published, then done; even
 * if some failed, what the others ended is gone and the nodes are told
 */

static void
ngx_http_identity_relay_end(ngx_http_identity_relay_t *rl)
{
    ngx_http_request_t  *r = rl->cmd.request;

    if (rl->keys.len && ngx_http_identity_relay_publish(rl) == NGX_OK) {
        return;
    }

    rl->done(r, rl->data, rl->failed || rl->keys.len, 0);
}


/*
 * A record packed in its table's order, as the node's cache keeps it: the
 * version, then each field whose need has none of "skip", a time as a
 * time_t, a string as its length (uint32_t) and bytes.  Unpacked strings
 * point into "in"; NGX_DECLINED for anything else than such a record.
 */

ngx_int_t
ngx_http_identity_record_pack(ngx_pool_t *pool, void *record,
    ngx_http_identity_field_t *fields, ngx_uint_t skip, uint32_t version,
    ngx_str_t *out)
{
    u_char                     *p, *rec;
    size_t                      size;
    uint32_t                    len;
    ngx_str_t                  *v;
    ngx_http_identity_field_t  *f;

    rec = record;
    size = sizeof(uint32_t);

    for (f = fields; f->name.len; f++) {
        if (!(f->need & skip)) {
            size += f->time ? sizeof(time_t)
                            : sizeof(uint32_t)
                              + ((ngx_str_t *) (rec + f->offset))->len;
        }
    }

    out->data = ngx_pnalloc(pool, size);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->len = size;
    p = ngx_cpymem(out->data, &version, sizeof(uint32_t));

    for (f = fields; f->name.len; f++) {
        if (f->need & skip) {
            continue;
        }

        if (f->time) {
            p = ngx_cpymem(p, rec + f->offset, sizeof(time_t));
            continue;
        }

        v = (ngx_str_t *) (rec + f->offset);
        len = (uint32_t) v->len;
        p = ngx_cpymem(p, &len, sizeof(uint32_t));

        if (v->len) {
            p = ngx_cpymem(p, v->data, v->len);
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_identity_record_unpack(ngx_str_t *in, void *record,
    ngx_http_identity_field_t *fields, ngx_uint_t skip, uint32_t version)
{
    u_char                     *p, *last, *rec;
    uint32_t                    len;
    ngx_str_t                  *v;
    ngx_http_identity_field_t  *f;

    rec = record;
    p = in->data;
    last = p + in->len;

    if (last - p < (ssize_t) sizeof(uint32_t)) {
        return NGX_DECLINED;
    }

    ngx_memcpy(&len, p, sizeof(uint32_t));
    p += sizeof(uint32_t);

    if (len != version) {
        return NGX_DECLINED;
    }

    for (f = fields; f->name.len; f++) {
        if (f->need & skip) {
            continue;
        }

        len = sizeof(time_t);

        if (!f->time) {
            if (last - p < (ssize_t) sizeof(uint32_t)) {
                return NGX_DECLINED;
            }

            ngx_memcpy(&len, p, sizeof(uint32_t));
            p += sizeof(uint32_t);
        }

        if ((size_t) (last - p) < len) {
            return NGX_DECLINED;
        }

        if (f->time) {
            ngx_memcpy(rec + f->offset, p, sizeof(time_t));

        } else {
            v = (ngx_str_t *) (rec + f->offset);
            v->data = p;
            v->len = len;
        }

        p += len;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_identity_reply_str(ngx_http_request_t *r, redisReply *reply,
    ngx_str_t *out)
{
    if (reply->type == REDIS_REPLY_NIL) {
        ngx_str_null(out);
        return NGX_OK;
    }

    if (reply->type != REDIS_REPLY_STRING
        && reply->type != REDIS_REPLY_STATUS)
    {
        return NGX_ERROR;
    }

    out->len = reply->len;
    out->data = ngx_pnalloc(r->pool, reply->len + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, reply->str, reply->len);
    out->data[out->len] = '\0';

    return NGX_OK;
}


time_t
ngx_http_identity_reply_time(redisReply *reply)
{
    time_t  t;

    if (reply->type == REDIS_REPLY_INTEGER) {
        return (time_t) reply->integer;
    }

    if (reply->type != REDIS_REPLY_STRING) {
        return 0;
    }

    t = ngx_atotm((u_char *) reply->str, reply->len);

    return t == NGX_ERROR ? 0 : t;
}


ngx_str_t *
ngx_http_identity_store_num(ngx_http_request_t *r, ngx_str_t *s, time_t n)
{
    s->data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (s->data == NULL) {
        return NULL;
    }

    s->len = ngx_sprintf(s->data, "%T", n) - s->data;

    return s;
}


/* a flat field/value list into a record, by the fields' names */

ngx_int_t
ngx_http_identity_store_record(ngx_http_request_t *r, redisReply *rec,
    ngx_http_identity_field_t *fields, void *out)
{
    size_t                      i;
    redisReply                 *name;
    ngx_http_identity_field_t  *f;

    if (rec->type != REDIS_REPLY_ARRAY) {
        return NGX_OK;
    }

    for (i = 0; i + 1 < rec->elements; i += 2) {
        name = rec->element[i];

        for (f = fields; f->name.len; f++) {
            if (f->name.len == name->len
                && ngx_strncmp(f->name.data, name->str, name->len) == 0)
            {
                break;
            }
        }

        if (f->name.len == 0) {
            continue;
        }

        if (f->time) {
            *(time_t *) ((u_char *) out + f->offset) =
                              ngx_http_identity_reply_time(rec->element[i + 1]);

        } else if (ngx_http_identity_reply_str(r, rec->element[i + 1],
                                        (ngx_str_t *) ((u_char *) out
                                                       + f->offset))
                   != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}
