
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * One connection of a worker to Redis (or to a sentinel), through its
 * life: made lazily, no sooner than its backoff allows (100 ms doubling up
 * to 250 ms after a failure), logged in (AUTH, and SELECT) by commands
 * queued ahead of the first; a command timer while replies are
 * outstanding; and what the log is told of it (redis_state.c).  A server
 * the sentinels named answers no command before ROLE says "master".
 *
 * What a connection is for, and where it goes, is redis.c's: it says
 * through two hooks, locate (the address to connect to now, or none yet)
 * and failed (called after each failure is told).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_identity_redis_link.h"


static void ngx_http_identity_redis_setup_reply(ngx_http_identity_rconn_t *ac,
    redisReply *reply, void *privdata);
static void ngx_http_identity_redis_connected(ngx_http_identity_rconn_t *ac,
    ngx_uint_t ok);
static void ngx_http_identity_redis_closed(ngx_http_identity_rconn_t *ac,
    ngx_uint_t err);
static void ngx_http_identity_redis_arm_timer(ngx_http_identity_redis_t *rd);
static void ngx_http_identity_redis_put_off(ngx_http_identity_redis_t *rd);
static void ngx_http_identity_redis_link_timeout(ngx_event_t *ev);
static void ngx_http_identity_redis_role_reply(ngx_http_identity_rconn_t *ac,
    redisReply *reply, void *privdata);


ngx_int_t
ngx_http_identity_redis_link_connect(ngx_http_identity_redis_t *rd)
{
    char                             why[NGX_HTTP_IDENTITY_RCONN_ERRLEN];
    u_char                           buf[NGX_INT_T_LEN];
    size_t                           lens[3];
    ngx_str_t                       *user, *password;
    ngx_uint_t                       n;
    const char                      *args[3];
    ngx_http_identity_rconn_t       *ac;
    ngx_http_identity_redis_conf_t  *conf;

    if (rd->ac) {
        return NGX_OK;
    }

    conf = rd->conf;

    /* the sentinel's connection moves on to the next one at once */

    if ((!rd->sentinel || conf->cluster)
        && (ngx_msec_int_t) (ngx_current_msec - rd->retry_at) < 0)
    {
        /* the failed attempt was logged; each request logs its own 503 */

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                       "identity: redis at \"%V\" is down, next attempt "
                       "in %M ms", &rd->addr.host,
                       rd->retry_at - ngx_current_msec);
        return NGX_ERROR;
    }

    /* where the sentinels say; none named: down, asked at this pace */

    if (rd->locate && rd->locate(rd) != NGX_OK) {
        goto failed;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "identity: connecting to redis at \"%V\" port %d",
                   &rd->addr.host, (int) rd->addr.port);

    /* the address is numeric or a path: no DNS here */

    ac = ngx_http_identity_rconn_connect(rd->log, &rd->addr,
                                         conf->unix_socket && !rd->sentinel,
                                         conf, rd,
                                         ngx_http_identity_redis_connected,
                                         ngx_http_identity_redis_closed, why);
    if (ac == NULL) {
        ngx_http_identity_redis_link_failed(rd, "connect failed", why);
        goto failed;
    }

    rd->ac = ac;
    rd->connected = 0;

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    ngx_add_timer(&rd->timer, conf->connect_timeout);

    /* queued ahead of every command that caused this connect */

    n = (rd->sentinel && conf->sentinels);
    user = n ? &conf->sentinel_user : &conf->user;
    password = n ? &conf->sentinel_password : &conf->password;

    if (password->len) {
        n = 0;
        args[n] = "AUTH";
        lens[n++] = 4;

        if (user->len) {
            args[n] = (const char *) user->data;
            lens[n++] = user->len;
        }

        args[n] = (const char *) password->data;
        lens[n++] = password->len;

        ngx_http_identity_redis_link_setup(rd, n, args, lens);
    }

    if (rd->sentinel) {
        return NGX_OK;
    }

    /* a server the sentinels named answers nothing before it says "master" */

    if (conf->sentinels) {
        args[0] = "ROLE";
        lens[0] = 4;

        if (ngx_http_identity_rconn_command(ac,
                                            ngx_http_identity_redis_role_reply,
                                            NULL, 0, 1, args, lens)
            != NGX_OK)
        {
            ngx_http_identity_rconn_free(ac);    /* never unchecked */
            return NGX_ERROR;
        }

        rd->pending++;
    }

    if (conf->db) {
        args[0] = "SELECT";
        lens[0] = 6;
        args[1] = (const char *) buf;
        lens[1] = ngx_sprintf(buf, "%ui", conf->db) - buf;

        ngx_http_identity_redis_link_setup(rd, 2, args, lens);
    }

    return NGX_OK;

failed:

    ngx_http_identity_redis_put_off(rd);

    return NGX_ERROR;
}


/*
 * Where RD connects from now on, copied into its own buffer (the one
 * ADDR is in may be given to another address); a connection to another
 * address is dropped, failing what it still waits for.  1: it changed.
 */

ngx_uint_t
ngx_http_identity_redis_link_address(ngx_http_identity_redis_t *rd,
    ngx_http_identity_redis_addr_t *addr)
{
    if (rd->addr.host.data == rd->host && rd->addr.port == addr->port
        && rd->addr.host.len == addr->host.len
        && ngx_strncmp(rd->host, addr->host.data, addr->host.len) == 0)
    {
        return 0;
    }

    if (rd->ac) {
        ngx_http_identity_rconn_free(rd->ac);
    }

    ngx_memcpy(rd->host, addr->host.data, addr->host.len);
    rd->host[addr->host.len] = '\0';
    rd->addr.host.data = rd->host;
    rd->addr.host.len = addr->host.len;
    rd->addr.port = addr->port;

    return 1;
}


void
ngx_http_identity_redis_link_setup(ngx_http_identity_redis_t *rd,
    ngx_uint_t argc, const char **args, size_t *lens)
{
    if (ngx_http_identity_rconn_command(rd->ac,
                                        ngx_http_identity_redis_setup_reply,
                                        (void *) args[0], 0, argc, args, lens)
        == NGX_OK)
    {
        rd->pending++;
    }
}


static void
ngx_http_identity_redis_setup_reply(ngx_http_identity_rconn_t *ac,
    redisReply *reply, void *privdata)
{
    ngx_http_identity_redis_t  *rd = ac->data;

    ngx_http_identity_redis_link_replied(rd);

    if (reply == NULL) {
        return;
    }

    if (reply->type != REDIS_REPLY_ERROR) {
        if (rd->pending == 0) {     /* else what follows says it is up */
            ngx_http_identity_redis_state_up(&rd->state);
        }

        return;
    }

    /*
     * Refused credentials or database: what follows would fail too, one
     * error a request; the connection is dropped and tried again later
     */

    ngx_http_identity_redis_link_refusal(rd, (char *) privdata, reply);
    rd->connected = 0;
    ngx_http_identity_rconn_free(ac);
}


/* "refused AUTH: "WRONGPASS ..."", the server's words bounded */

void
ngx_http_identity_redis_link_refusal(ngx_http_identity_redis_t *rd, char *what,
    redisReply *reply)
{
    u_char  *p, buf[256];

    p = ngx_snprintf(buf, sizeof(buf) - 1, "refused %s: \"%*s\"", what,
                     (size_t) ngx_min(reply->len, 200), reply->str);
    *p = '\0';

    ngx_http_identity_redis_link_failed(rd, (char *) buf, NULL);
}


static void
ngx_http_identity_redis_connected(ngx_http_identity_rconn_t *ac,
    ngx_uint_t ok)
{
    ngx_http_identity_redis_t  *rd = ac->data;

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                   "identity: redis connected");

    rd->connected = 1;
    rd->backoff = NGX_HTTP_IDENTITY_REDIS_BACKOFF_MIN;

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    ngx_http_identity_redis_arm_timer(rd);
}


/*
 * The connection is gone, its pending commands told; a connection that
 * never connected puts off the next attempt
 */

static void
ngx_http_identity_redis_closed(ngx_http_identity_rconn_t *ac, ngx_uint_t err)
{
    ngx_http_identity_redis_t  *rd = ac->data;

    if (err) {
        ngx_http_identity_redis_link_failed(rd, rd->connected
                                            ? "lost the connection"
                                            : "connect failed",
                                            ac->errstr);
    }

    if (!rd->connected) {
        ngx_http_identity_redis_put_off(rd);
    }

    rd->ac = NULL;
    rd->connected = 0;
    rd->pending = 0;

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }
}


/* the next attempt to connect, no sooner than the backoff allows */

static void
ngx_http_identity_redis_put_off(ngx_http_identity_redis_t *rd)
{
    rd->retry_at = ngx_current_msec + rd->backoff;
    rd->backoff = ngx_min(2 * rd->backoff, NGX_HTTP_IDENTITY_REDIS_BACKOFF_MAX);
}


/* a reply came: one fewer outstanding, and the command timer follows */

void
ngx_http_identity_redis_link_replied(ngx_http_identity_redis_t *rd)
{
    if (rd->pending) {
        rd->pending--;
    }

    ngx_http_identity_redis_arm_timer(rd);
}


/* a command timer runs while replies are outstanding on a live connection */

static void
ngx_http_identity_redis_arm_timer(ngx_http_identity_redis_t *rd)
{
    if (!rd->connected) {
        return;
    }

    if (rd->pending == 0) {
        if (rd->timer.timer_set) {
            ngx_del_timer(&rd->timer);
        }

        return;
    }

    ngx_add_timer(&rd->timer, rd->conf->timeout);
}


static void
ngx_http_identity_redis_link_timeout(ngx_event_t *ev)
{
    ngx_http_identity_redis_t  *rd = ev->data;

    ngx_http_identity_redis_link_failed(rd, rd->connected
                                        ? "timed out while waiting for a "
                                          "reply"
                                        : "timed out while connecting",
                                        NULL);

    if (rd->ac) {
        /* fails every pending command: their requests answer 503 */
        ngx_http_identity_rconn_free(rd->ac);
    }
}


/* the server the sentinels named must say it is the primary */

static void
ngx_http_identity_redis_role_reply(ngx_http_identity_rconn_t *ac,
    redisReply *reply, void *privdata)
{
    ngx_http_identity_redis_t  *rd = ac->data;

    ngx_http_identity_redis_link_replied(rd);

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ARRAY
        && reply->elements > 0
        && reply->element[0]->type == REDIS_REPLY_STRING
        && ngx_strcmp(reply->element[0]->str, "master") == 0)
    {
        ngx_http_identity_redis_state_up(&rd->state);
        return;
    }

    ngx_http_identity_redis_link_failed(rd, "is not the primary",
                                        (char *) rd->conf->master.data);
    rd->connected = 0;
    ngx_http_identity_rconn_free(ac);
}



/* a connection not made yet, for what redis.c says (the role, in the log) */

void
ngx_http_identity_redis_link_init(ngx_http_identity_redis_t *rd,
    ngx_http_identity_redis_conf_t *conf, ngx_log_t *log, char *role,
    ngx_http_identity_redis_failed_pt failed)
{
    ngx_memzero(rd, sizeof(ngx_http_identity_redis_t));

    rd->conf = conf;
    rd->log = log;
    rd->state.log = log;
    rd->state.role = role;
    rd->state.host = &rd->addr.host;
    rd->backoff = NGX_HTTP_IDENTITY_REDIS_BACKOFF_MIN;
    rd->timer.handler = ngx_http_identity_redis_link_timeout;
    rd->timer.data = rd;
    rd->timer.log = log;
    rd->failed = failed;
}


/* a failure, told; then what redis.c makes of it */

void
ngx_http_identity_redis_link_failed(ngx_http_identity_redis_t *rd,
    const char *what, const char *why)
{
    ngx_http_identity_redis_state_down(&rd->state, what, why);

    if (rd->failed) {
        rd->failed(rd);
    }
}
