
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


/* the key "P kind hex", the secret already hashed: "hex" is its hash */

void
ngx_http_identity_cmd_hex_key(ngx_http_identity_cmd_t *cmd, char *kind,
    u_char *hex, size_t n)
{
    u_char                         *p;
    size_t                          len;
    ngx_str_t                       key;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(cmd->request,
                                         ngx_http_identity_module);

    len = ngx_strlen(kind);

    key.len = imcf->key_prefix.len + len + n;
    key.data = ngx_pnalloc(cmd->request->pool, key.len);
    if (key.data == NULL) {
        cmd->failed = 1;
        return;
    }

    p = ngx_cpymem(key.data, imcf->key_prefix.data, imcf->key_prefix.len);
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
