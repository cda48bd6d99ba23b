
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The store's short-lived records, each used once: a pending login
 * (P login:<sha256(state)>, 10 minutes), a SAML login verified at the ACS
 * and waiting for its browser (P verified:<sha256(key)>, 60 s), and
 * one-time tokens (P once:<sha256(namespace id)>).  Each is read and
 * deleted atomically, so that a replay finds nothing.  The sessions
 * themselves are in ngx_http_identity_store.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_redis.h"
#include "ngx_http_identity_store.h"
#include "ngx_http_identity_store_cmd.h"


static void ngx_http_identity_done_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_identity_take_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_identity_verified_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_identity_once_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static redisReply **ngx_http_identity_taken(ngx_http_request_t *r,
    redisReply *reply, size_t n);


static ngx_str_t  ngx_http_identity_login_save_script = ngx_string(
    "redis.call('HSET', KEYS[1], unpack(ARGV, 2))\n"
    "redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))\n"
    "return 1\n");


/* a pending login is used once: read and deleted atomically */

static ngx_str_t  ngx_http_identity_login_take_script = ngx_string(
    "local v = redis.call('HMGET', KEYS[1], 'provider', 'nonce',\n"
    "                     'verifier', 'return_to', 'cookie', 'domain',\n"
    "                     'redirect_uri', 'idle', 'max', 'auth', 'entity')\n"
    "redis.call('DEL', KEYS[1])\n"
    "return v\n");


/* so is a verified login: its fields are those the verified save writes */

static ngx_str_t  ngx_http_identity_verified_take_script = ngx_string(
    "local v = redis.call('HMGET', KEYS[1], 'provider', 'state',\n"
    "                     'return_to', 'cookie', 'domain', 'idle', 'max',\n"
    "                     'auth', 'sub', 'email', 'name', 'username',\n"
    "                     'groups', 'sid', 'acs')\n"
    "redis.call('DEL', KEYS[1])\n"
    "return v\n");


ngx_int_t
ngx_http_identity_store_once(ngx_http_request_t *r, ngx_str_t *ns,
    ngx_str_t *id, time_t ttl)
{
    u_char                         *p;
    ngx_str_t                       name, key;
    ngx_http_identity_cmd_t         cmd;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    name.len = ns->len + 1 + id->len;
    name.data = ngx_pnalloc(r->pool, name.len);
    if (name.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(name.data, ns->data, ns->len);
    *p++ = ' ';
    ngx_memcpy(p, id->data, id->len);

    key.len = imcf->key_prefix.len + sizeof("once:") - 1
              + NGX_HTTP_IDENTITY_SHA256_HEX_LEN;
    key.data = ngx_pnalloc(r->pool, key.len);
    if (key.data == NULL
        || ngx_http_identity_cmd_init(r, &cmd, "SET", 6) != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = ngx_sprintf(key.data, "%Vonce:", &imcf->key_prefix);
    ngx_http_identity_sha256_hex(&name, p);

    ngx_http_identity_cmd_str(&cmd, &key);
    ngx_http_identity_cmd_cstr(&cmd, "1");
    ngx_http_identity_cmd_cstr(&cmd, "NX");
    ngx_http_identity_cmd_cstr(&cmd, "EX");
    ngx_http_identity_cmd_num(&cmd, ngx_max(ttl, 1));

    return ngx_http_identity_cmd_send(&cmd, ngx_http_identity_once_handler,
                                      NULL);
}


static void
ngx_http_identity_once_handler(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    if (reply == NULL) {
        ctx->redis_error = 1;

    } else {
        ctx->found = (reply->type == REDIS_REPLY_STATUS);
    }

    ctx->resume(r);
}


ngx_int_t
ngx_http_identity_login_save(ngx_http_request_t *r, ngx_str_t *state)
{
    ngx_http_identity_ctx_t          *ctx;
    ngx_http_identity_cmd_t           cmd;
    ngx_http_identity_login_state_t  *ls;

    ctx = ngx_http_identity_get_ctx(r);
    ls = &ctx->login;

    if (ngx_http_identity_cmd_init(r, &cmd, "EVAL", 27) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_login_save_script, 1);
    ngx_http_identity_cmd_key(&cmd, "login:", state);
    ngx_http_identity_cmd_num(&cmd, NGX_HTTP_IDENTITY_STATE_TTL);

    /* field names are the ones the take script reads */

    ngx_http_identity_cmd_field_str(&cmd, "provider", &ls->provider);
    ngx_http_identity_cmd_field_str(&cmd, "nonce", &ls->nonce);
    ngx_http_identity_cmd_field_str(&cmd, "verifier", &ls->code_verifier);
    ngx_http_identity_cmd_field_str(&cmd, "return_to", &ls->return_to);
    ngx_http_identity_cmd_field_str(&cmd, "cookie", &ls->cookie_name);
    ngx_http_identity_cmd_field_str(&cmd, "domain", &ls->cookie_domain);
    ngx_http_identity_cmd_field_str(&cmd, "redirect_uri", &ls->redirect_uri);
    ngx_http_identity_cmd_field_num(&cmd, "idle", ls->idle_timeout);
    ngx_http_identity_cmd_field_num(&cmd, "max", ls->max_duration);
    ngx_http_identity_cmd_field_str(&cmd, "auth", &ls->auth_id);
    ngx_http_identity_cmd_field_str(&cmd, "entity", &ls->sp_entity_id);

    return ngx_http_identity_cmd_send(&cmd, ngx_http_identity_done_handler,
                                      NULL);
}


ngx_int_t
ngx_http_identity_login_take(ngx_http_request_t *r, ngx_str_t *state)
{
    ngx_http_identity_cmd_t  cmd;

    if (ngx_http_identity_cmd_init(r, &cmd, "EVAL", 4) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_login_take_script, 1);
    ngx_http_identity_cmd_key(&cmd, "login:", state);

    return ngx_http_identity_cmd_send(&cmd, ngx_http_identity_take_handler,
                                      NULL);
}


/*
 * What a take script answers: the record's fields, or NULL, when there was
 * no record (its fields are nil) or the reply is not of that shape (then
 * ctx->redis_error is set).
 */

static redisReply **
ngx_http_identity_taken(ngx_http_request_t *r, redisReply *reply, size_t n)
{
    ngx_http_identity_ctx_t  *ctx;

    if (reply == NULL
        || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != n)
    {
        ctx = ngx_http_identity_get_ctx(r);
        ctx->redis_error = 1;
        return NULL;
    }

    if (reply->element[0]->type != REDIS_REPLY_STRING) {
        return NULL;
    }

    return reply->element;
}


static void
ngx_http_identity_take_handler(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    redisReply                       **e;
    ngx_http_identity_ctx_t           *ctx;
    ngx_http_identity_login_state_t   *ls;

    ctx = ngx_http_identity_get_ctx(r);
    ls = &ctx->login;

    e = ngx_http_identity_taken(r, reply, 11);
    if (e == NULL) {
        goto done;
    }

    if (ngx_http_identity_reply_str(r, e[0], &ls->provider) != NGX_OK
        || ngx_http_identity_reply_str(r, e[1], &ls->nonce) != NGX_OK
        || ngx_http_identity_reply_str(r, e[2], &ls->code_verifier) != NGX_OK
        || ngx_http_identity_reply_str(r, e[3], &ls->return_to) != NGX_OK
        || ngx_http_identity_reply_str(r, e[4], &ls->cookie_name) != NGX_OK
        || ngx_http_identity_reply_str(r, e[5], &ls->cookie_domain) != NGX_OK
        || ngx_http_identity_reply_str(r, e[6], &ls->redirect_uri) != NGX_OK
        || ngx_http_identity_reply_str(r, e[9], &ls->auth_id) != NGX_OK
        || ngx_http_identity_reply_str(r, e[10], &ls->sp_entity_id)
           != NGX_OK)
    {
        ctx->redis_error = 1;
        goto done;
    }

    ls->idle_timeout = ngx_http_identity_reply_time(e[7]);
    ls->max_duration = ngx_http_identity_reply_time(e[8]);

    ctx->found = 1;

done:

    ctx->resume(r);
}


/*
 * A SAML login verified at the ACS waits here for its browser's next
 * request, under a one-time key (only its hash is stored): ctx->login and
 * ctx->claims, and "state", the SHA-256 hex of the RelayState the browser's
 * state cookie must hold (empty: unsolicited).
 */

ngx_int_t
ngx_http_identity_verified_save(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *state)
{
    ngx_http_identity_ctx_t          *ctx;
    ngx_http_identity_cmd_t           cmd;
    ngx_http_identity_claims_t       *cl;
    ngx_http_identity_login_state_t  *ls;

    ctx = ngx_http_identity_get_ctx(r);
    ls = &ctx->login;
    cl = &ctx->claims;

    if (ngx_http_identity_cmd_init(r, &cmd, "EVAL", 35) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_login_save_script, 1);
    ngx_http_identity_cmd_key(&cmd, "verified:", key);
    ngx_http_identity_cmd_num(&cmd, NGX_HTTP_IDENTITY_VERIFIED_TTL);

    /* field names are the ones the verified take script reads */

    ngx_http_identity_cmd_field_str(&cmd, "provider", &ls->provider);
    ngx_http_identity_cmd_field_str(&cmd, "state", state);
    ngx_http_identity_cmd_field_str(&cmd, "return_to", &ls->return_to);
    ngx_http_identity_cmd_field_str(&cmd, "cookie", &ls->cookie_name);
    ngx_http_identity_cmd_field_str(&cmd, "domain", &ls->cookie_domain);
    ngx_http_identity_cmd_field_num(&cmd, "idle", ls->idle_timeout);
    ngx_http_identity_cmd_field_num(&cmd, "max", ls->max_duration);
    ngx_http_identity_cmd_field_str(&cmd, "auth", &ls->auth_id);
    ngx_http_identity_cmd_field_str(&cmd, "sub", &cl->provider_user_id);
    ngx_http_identity_cmd_field_str(&cmd, "email", &cl->email);
    ngx_http_identity_cmd_field_str(&cmd, "name", &cl->name);
    ngx_http_identity_cmd_field_str(&cmd, "username", &cl->username);
    ngx_http_identity_cmd_field_str(&cmd, "groups", &cl->groups);
    ngx_http_identity_cmd_field_str(&cmd, "sid", &cl->sid);

    /* where it was verified */
    ngx_http_identity_cmd_field_str(&cmd, "acs", &ls->redirect_uri);

    return ngx_http_identity_cmd_send(&cmd, ngx_http_identity_done_handler,
                                      NULL);
}


/* read and deleted at once; the state hash lands in ctx->state_param */

ngx_int_t
ngx_http_identity_verified_take(ngx_http_request_t *r, ngx_str_t *key)
{
    ngx_http_identity_cmd_t  cmd;

    if (ngx_http_identity_cmd_init(r, &cmd, "EVAL", 4) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_verified_take_script,
                               1);
    ngx_http_identity_cmd_key(&cmd, "verified:", key);

    return ngx_http_identity_cmd_send(&cmd,
                                      ngx_http_identity_verified_handler,
                                      NULL);
}


static void
ngx_http_identity_verified_handler(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    redisReply                       **e;
    ngx_http_identity_ctx_t           *ctx;
    ngx_http_identity_claims_t        *cl;
    ngx_http_identity_login_state_t   *ls;

    ctx = ngx_http_identity_get_ctx(r);
    ls = &ctx->login;
    cl = &ctx->claims;

    e = ngx_http_identity_taken(r, reply, 15);
    if (e == NULL) {
        goto done;
    }

    if (ngx_http_identity_reply_str(r, e[14], &ls->redirect_uri) != NGX_OK) {
        ctx->redis_error = 1;
        goto done;
    }

    if (ngx_http_identity_reply_str(r, e[0], &ls->provider) != NGX_OK
        || ngx_http_identity_reply_str(r, e[1], &ctx->state_param) != NGX_OK
        || ngx_http_identity_reply_str(r, e[2], &ls->return_to) != NGX_OK
        || ngx_http_identity_reply_str(r, e[3], &ls->cookie_name) != NGX_OK
        || ngx_http_identity_reply_str(r, e[4], &ls->cookie_domain) != NGX_OK
        || ngx_http_identity_reply_str(r, e[7], &ls->auth_id) != NGX_OK
        || ngx_http_identity_reply_str(r, e[8], &cl->provider_user_id)
           != NGX_OK
        || ngx_http_identity_reply_str(r, e[9], &cl->email) != NGX_OK
        || ngx_http_identity_reply_str(r, e[10], &cl->name) != NGX_OK
        || ngx_http_identity_reply_str(r, e[11], &cl->username) != NGX_OK
        || ngx_http_identity_reply_str(r, e[12], &cl->groups) != NGX_OK
        || ngx_http_identity_reply_str(r, e[13], &cl->sid) != NGX_OK)
    {
        ctx->redis_error = 1;
        goto done;
    }

    ls->idle_timeout = ngx_http_identity_reply_time(e[5]);
    ls->max_duration = ngx_http_identity_reply_time(e[6]);

    ctx->found = 1;

done:

    ctx->resume(r);
}


/* ctx->session.provider: whose session the logout ended */


static void
ngx_http_identity_done_handler(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_http_identity_ctx_t  *ctx;

    ctx = ngx_http_identity_get_ctx(r);

    if (reply == NULL) {
        ctx->redis_error = 1;

    } else {
        ctx->found = (reply->type == REDIS_REPLY_INTEGER && reply->integer);
    }

    ctx->resume(r);
}
