
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The session store's connection to Redis: one per worker, an nginx peer
 * connection (redis_conn.c), nginx timers for the connect and command
 * timeouts.  A lost connection is re-established lazily, after a backoff
 * of 100 ms doubling up to 250 ms (a worker admits again within a second
 * of Redis answering); meanwhile commands fail at once: a quick 503.
 *
 * What is logged of an outage is its changes of state: one line when a
 * connection goes down (why), one every 5 s while it stays down (how many
 * requests were refused), one when Redis answers again; the requests
 * refused meanwhile log at info only.  The identity_redis directive that
 * configures it is redis_conf.c's.
 *
 * A second connection, made only where a session cache is configured,
 * holds a subscription (node.c's): the same glue, its messages handed to
 * one handler, and UP and DOWN when the subscription begins and ends.
 *
 * With sentinels, a third connection asks them in turn for the primary
 * (SENTINEL get-master-addr-by-name) when the worker starts, and whenever
 * a connection to it fails, its ROLE (checked before any command is
 * answered) is not "master" or a write is refused as READONLY; a fourth
 * listens to +switch-master.  No request is answered from a replica.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_identity_redis.h"
#include "ngx_http_identity_redis_conn.h"
#include "ngx_http_identity_redis_state.h"


#define NGX_HTTP_IDENTITY_REDIS_BACKOFF_MIN  100
#define NGX_HTTP_IDENTITY_REDIS_BACKOFF_MAX  250
#define NGX_HTTP_IDENTITY_REDIS_MAX_ARGS     96


typedef struct {
    ngx_http_identity_rconn_t          *ac;
    ngx_http_identity_redis_conf_t     *conf;
    ngx_http_identity_redis_addr_t      addr;       /* where it connects */
    u_char                              host[NGX_SOCKADDR_STRLEN + 1];
    ngx_log_t                          *log;
    ngx_event_t                         timer;
    ngx_uint_t                          pending;
    ngx_msec_t                          backoff;
    ngx_msec_t                          retry_at;
    ngx_http_identity_redis_sub_pt      sub_handler;
    void                               *sub_data;
    ngx_http_identity_redis_state_t     state;        /* for the log */
    unsigned                            sentinel:1;
    unsigned                            connected:1;
    unsigned                            subscribed:1;
} ngx_http_identity_redis_t;


typedef struct {
    ngx_http_request_t                 *request;
    ngx_pool_cleanup_t                 *cleanup;
    ngx_http_identity_redis_handler_pt  handler;
    void                               *data;
} ngx_http_identity_redis_waiter_t;


static ngx_int_t ngx_http_identity_redis_connect(
    ngx_http_identity_redis_t *rd);
static ngx_int_t ngx_http_identity_redis_issue(ngx_log_t *log,
    ngx_http_identity_redis_waiter_t *w, ngx_uint_t argc, ngx_str_t *argv);
static void ngx_http_identity_redis_setup(ngx_http_identity_redis_t *rd,
    ngx_uint_t argc, const char **args, size_t *lens);
static void ngx_http_identity_redis_sub_reply(ngx_http_identity_rconn_t *ac,
    redisReply *reply, void *privdata);
static void ngx_http_identity_redis_reply(ngx_http_identity_rconn_t *ac,
    redisReply *reply, void *privdata);
static void ngx_http_identity_redis_setup_reply(ngx_http_identity_rconn_t *ac,
    redisReply *reply, void *privdata);
static void ngx_http_identity_redis_connected(ngx_http_identity_rconn_t *ac,
    ngx_uint_t ok);
static void ngx_http_identity_redis_closed(ngx_http_identity_rconn_t *ac,
    ngx_uint_t err);
static void ngx_http_identity_redis_timeout(ngx_event_t *ev);
static void ngx_http_identity_redis_arm_timer(ngx_http_identity_redis_t *rd);
static void ngx_http_identity_redis_put_off(ngx_http_identity_redis_t *rd);
static void ngx_http_identity_redis_replied(ngx_http_identity_redis_t *rd);
static void ngx_http_identity_redis_waiter_cleanup(void *data);
static void ngx_http_identity_redis_failed(ngx_http_identity_redis_t *rd,
    const char *what, const char *why);
static void ngx_http_identity_redis_refusal(ngx_http_identity_redis_t *rd,
    char *what, redisReply *reply);
static void ngx_http_identity_redis_ask(void);
static void ngx_http_identity_redis_sentinel_reply(
    ngx_http_identity_rconn_t *ac, redisReply *reply, void *privdata);
static void ngx_http_identity_redis_role_reply(ngx_http_identity_rconn_t *ac,
    redisReply *reply, void *privdata);
static ngx_int_t ngx_http_identity_redis_subscribe_on(
    ngx_http_identity_redis_t *rd, ngx_log_t *log, ngx_str_t *channel,
    ngx_str_t *name, ngx_http_identity_redis_sub_pt handler, void *data);
static void ngx_http_identity_redis_watch(ngx_event_t *ev);
static void ngx_http_identity_redis_switch(void *data, ngx_uint_t event,
    ngx_str_t *message);


static ngx_http_identity_redis_t  ngx_http_identity_redis;
static ngx_http_identity_redis_t  ngx_http_identity_redis_sub;
static ngx_http_identity_redis_t  ngx_http_identity_redis_sentinel;
static ngx_http_identity_redis_t  ngx_http_identity_redis_switches;
static ngx_event_t                ngx_http_identity_redis_watcher;

static ngx_http_identity_redis_t  *ngx_http_identity_redis_all[] = {
    &ngx_http_identity_redis, &ngx_http_identity_redis_sub,
    &ngx_http_identity_redis_sentinel, &ngx_http_identity_redis_switches
};


/* the primary the sentinels named last; not "known" when to be asked again */

static u_char                          ngx_http_identity_primary_host[
                                           NGX_SOCKADDR_STRLEN + 1];
static ngx_http_identity_redis_addr_t  ngx_http_identity_primary;
static ngx_uint_t                      ngx_http_identity_next_sentinel;
static ngx_uint_t                      ngx_http_identity_next_watched;
static ngx_uint_t                      ngx_http_identity_primary_known;
static ngx_uint_t                      ngx_http_identity_asking;


ngx_int_t
ngx_http_identity_redis_init(ngx_cycle_t *cycle,
    ngx_http_identity_redis_conf_t *conf)
{
    ngx_uint_t                  i;
    ngx_event_t                *ev;
    ngx_http_identity_redis_t  *rd;

    static char  *roles[] = {
        "", " (subscription)", " sentinel", " sentinel (subscription)"
    };

    for (i = 0; i < 4; i++) {
        rd = ngx_http_identity_redis_all[i];

        ngx_memzero(rd, sizeof(ngx_http_identity_redis_t));

        rd->conf = conf;
        rd->log = cycle->log;
        rd->state.log = cycle->log;
        rd->state.role = roles[i];
        rd->state.host = &rd->addr.host;
        rd->sentinel = (i >= 2);
        rd->addr.host = (conf->sentinels && i < 2) ? conf->master
                                                   : conf->host;
        rd->addr.port = conf->port;
        rd->backoff = NGX_HTTP_IDENTITY_REDIS_BACKOFF_MIN;

        rd->timer.handler = ngx_http_identity_redis_timeout;
        rd->timer.data = rd;
        rd->timer.log = cycle->log;

        /*
         * Requests wait for the commands' replies with no timer of their
         * own: a worker told to exit waits for them, the timeout at most.
         * The subscription holds no request.
         */

        rd->timer.cancelable = (i != 0);
    }

    ngx_http_identity_primary.host.data = ngx_http_identity_primary_host;
    ngx_http_identity_primary.host.len = 0;
    ngx_http_identity_primary_known = 0;
    ngx_http_identity_next_sentinel = 0;
    ngx_http_identity_asking = 0;
    ngx_http_identity_next_watched = 0;

    if (conf->configured && conf->sentinels) {
        ngx_http_identity_redis_ask();

        ev = &ngx_http_identity_redis_watcher;

        ngx_memzero(ev, sizeof(ngx_event_t));
        ev->handler = ngx_http_identity_redis_watch;
        ev->data = &ngx_http_identity_redis_switches;
        ev->log = cycle->log;
        ev->cancelable = 1;

        ngx_http_identity_redis_watch(ev);
    }

    return NGX_OK;
}


void
ngx_http_identity_redis_done(ngx_cycle_t *cycle)
{
    ngx_uint_t                  i;
    ngx_http_identity_redis_t  *rd;

    if (ngx_http_identity_redis_watcher.timer_set) {
        ngx_del_timer(&ngx_http_identity_redis_watcher);
    }

    for (i = 0; i < 4; i++) {
        rd = ngx_http_identity_redis_all[i];

        rd->sub_handler = NULL;

        if (rd->ac) {
            ngx_http_identity_rconn_free(rd->ac);
        }

        if (rd->timer.timer_set) {
            ngx_del_timer(&rd->timer);
        }
    }
}


ngx_int_t
ngx_http_identity_redis_request(ngx_http_request_t *r,
    ngx_http_identity_redis_handler_pt handler, void *data, ngx_uint_t argc,
    ngx_str_t *argv)
{
    ngx_uint_t                         level;
    ngx_pool_cleanup_t                *cln;
    ngx_http_identity_redis_waiter_t  *w;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    /*
     * The waiter lives outside the request pool: hiredis may call back
     * after the request is gone, and then only the waiter is touched.
     */

    w = ngx_alloc(sizeof(ngx_http_identity_redis_waiter_t),
                  r->connection->log);
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->request = r;
    w->cleanup = cln;
    w->handler = handler;
    w->data = data;

    cln->handler = ngx_http_identity_redis_waiter_cleanup;
    cln->data = w;

    if (ngx_http_identity_redis_issue(r->connection->log, w, argc, argv)
        != NGX_OK)
    {
        /* while Redis is down, its state changes are logged instead */

        level = ngx_http_identity_redis_down() ? NGX_LOG_INFO : NGX_LOG_ERR;
        ngx_log_error(level, r->connection->log, 0,
                      "identity: session store unavailable");
        cln->handler = NULL;
        ngx_free(w);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* fire and forget: the reply is only checked for errors */

ngx_int_t
ngx_http_identity_redis_send(ngx_log_t *log, ngx_uint_t argc,
    ngx_str_t *argv)
{
    ngx_http_identity_redis_waiter_t  *w;

    w = ngx_alloc(sizeof(ngx_http_identity_redis_waiter_t), log);
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->request = NULL;
    w->cleanup = NULL;
    w->handler = NULL;
    w->data = NULL;

    if (ngx_http_identity_redis_issue(log, w, argc, argv) != NGX_OK) {
        ngx_free(w);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_identity_redis_issue(ngx_log_t *log,
    ngx_http_identity_redis_waiter_t *w, ngx_uint_t argc, ngx_str_t *argv)
{
    size_t                      lens[NGX_HTTP_IDENTITY_REDIS_MAX_ARGS];
    ngx_uint_t                  i;
    const char                 *args[NGX_HTTP_IDENTITY_REDIS_MAX_ARGS];
    ngx_http_identity_redis_t  *rd = &ngx_http_identity_redis;

    if (argc > NGX_HTTP_IDENTITY_REDIS_MAX_ARGS) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "identity: too many redis arguments: %ui", argc);
        return NGX_ERROR;
    }

    if (rd->conf == NULL || !rd->conf->configured) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "identity: no \"identity_redis\" is configured");
        return NGX_ERROR;
    }

    if (ngx_http_identity_redis_connect(rd) != NGX_OK) {
        ngx_http_identity_redis_state_refused(&rd->state);
        return NGX_ERROR;
    }

    for (i = 0; i < argc; i++) {
        args[i] = argv[i].data ? (const char *) argv[i].data : "";
        lens[i] = argv[i].len;
    }

    if (ngx_http_identity_rconn_command(rd->ac, ngx_http_identity_redis_reply,
                                        w, 0, argc, args, lens)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "identity: redis command not queued");
        return NGX_ERROR;
    }

    rd->pending++;

    if (rd->connected && !rd->timer.timer_set) {
        ngx_add_timer(&rd->timer, rd->conf->timeout);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_identity_redis_connect(ngx_http_identity_redis_t *rd)
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

    if (!rd->sentinel
        && (ngx_msec_int_t) (ngx_current_msec - rd->retry_at) < 0)
    {
        /* the failed attempt was logged; each request logs its own 503 */

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, rd->log, 0,
                       "identity: redis at \"%V\" is down, next attempt "
                       "in %M ms", &rd->addr.host,
                       rd->retry_at - ngx_current_msec);
        return NGX_ERROR;
    }

    if (conf->sentinels && !rd->sentinel) {
        if (!ngx_http_identity_primary_known) {

            /* down until one is named; sentinels asked at the backoff's pace */

            ngx_http_identity_redis_state_down(&rd->state, "has no primary "
                                               "from the sentinels yet", NULL);
            ngx_http_identity_redis_ask();
            goto failed;
        }

        /* its own copy: the sentinels may name another meanwhile */

        ngx_memcpy(rd->host, ngx_http_identity_primary_host,
                   ngx_http_identity_primary.host.len + 1);
        rd->addr.host.data = rd->host;
        rd->addr.host.len = ngx_http_identity_primary.host.len;
        rd->addr.port = ngx_http_identity_primary.port;
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
        ngx_http_identity_redis_failed(rd, "connect failed", why);
        goto failed;
    }

    rd->ac = ac;
    rd->connected = 0;

    if (rd->timer.timer_set) {
        ngx_del_timer(&rd->timer);
    }

    ngx_add_timer(&rd->timer, conf->connect_timeout);

    /* queued ahead of every command that caused this connect */

    user = rd->sentinel ? &conf->sentinel_user : &conf->user;
    password = rd->sentinel ? &conf->sentinel_password : &conf->password;

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

        ngx_http_identity_redis_setup(rd, n, args, lens);
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

        ngx_http_identity_redis_setup(rd, 2, args, lens);
    }

    return NGX_OK;

failed:

    ngx_http_identity_redis_put_off(rd);

    return NGX_ERROR;
}


static void
ngx_http_identity_redis_setup(ngx_http_identity_redis_t *rd, ngx_uint_t argc,
    const char **args, size_t *lens)
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
ngx_http_identity_redis_reply(ngx_http_identity_rconn_t *ac,
    redisReply *reply, void *privdata)
{
    ngx_uint_t                         readonly;
    ngx_connection_t                  *c;
    ngx_http_request_t                *req;
    ngx_http_identity_redis_t         *rd = ac->data;
    ngx_http_identity_redis_waiter_t  *w = privdata;

    readonly = 0;
    c = NULL;

    ngx_http_identity_redis_replied(rd);

    if (reply) {
        ngx_http_identity_redis_state_up(&rd->state);

    } else if (ac->err) {

        /* the connection is lost: said before its requests answer 503 */

        ngx_http_identity_redis_failed(rd, rd->connected
                                           ? "lost the connection"
                                           : "connect failed",
                                       ac->errstr);
    }

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_http_identity_redis_state_error(&rd->state, reply);

        readonly = (reply->len >= 8
                    && ngx_strncmp(reply->str, "READONLY", 8) == 0);
        reply = NULL;
    }

    req = w->request;

    if (req) {
        w->cleanup->handler = NULL;
        c = req->connection;

        w->handler(req, reply, w->data);
    }

    ngx_free(w);

    /* a replica now (a failover): the sentinels are asked again */

    if (readonly && !ac->freeing && !ac->done) {
        ngx_http_identity_redis_failed(rd, "answers as a replica", NULL);
        rd->connected = 0;
        ngx_http_identity_rconn_free(ac);
    }

    if (c) {
        ngx_http_run_posted_requests(c);
    }
}


static void
ngx_http_identity_redis_setup_reply(ngx_http_identity_rconn_t *ac,
    redisReply *reply, void *privdata)
{
    ngx_http_identity_redis_t  *rd = ac->data;

    ngx_http_identity_redis_replied(rd);

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

    ngx_http_identity_redis_refusal(rd, (char *) privdata, reply);
    rd->connected = 0;
    ngx_http_identity_rconn_free(ac);
}


/* "refused AUTH: "WRONGPASS ..."", the server's words bounded */

static void
ngx_http_identity_redis_refusal(ngx_http_identity_redis_t *rd, char *what,
    redisReply *reply)
{
    u_char  *p, buf[256];

    p = ngx_snprintf(buf, sizeof(buf) - 1, "refused %s: \"%*s\"", what,
                     (size_t) ngx_min(reply->len, 200), reply->str);
    *p = '\0';

    ngx_http_identity_redis_failed(rd, (char *) buf, NULL);
}


/*
 * The subscription: a connection of its own, named so that an operator
 * sees (and a test can cut) it, and one SUBSCRIBE.  NGX_ERROR only when
 * it cannot be made now; a failure later is told as DOWN.
 */

ngx_int_t
ngx_http_identity_redis_subscribe(ngx_log_t *log, ngx_str_t *channel,
    ngx_str_t *name, ngx_http_identity_redis_sub_pt handler, void *data)
{
    return ngx_http_identity_redis_subscribe_on(&ngx_http_identity_redis_sub,
                                                log, channel, name, handler,
                                                data);
}


static ngx_int_t
ngx_http_identity_redis_subscribe_on(ngx_http_identity_redis_t *rd,
    ngx_log_t *log, ngx_str_t *channel, ngx_str_t *name,
    ngx_http_identity_redis_sub_pt handler, void *data)
{
    size_t       lens[3];
    const char  *args[3];

    if (rd->ac) {
        return NGX_OK;
    }

    if (rd->conf == NULL || !rd->conf->configured
        || ngx_http_identity_redis_connect(rd) != NGX_OK)
    {
        return NGX_ERROR;
    }

    rd->sub_handler = handler;
    rd->sub_data = data;
    rd->subscribed = 0;

    if (name) {
        args[0] = "CLIENT";
        lens[0] = 6;
        args[1] = "SETNAME";
        lens[1] = 7;
        args[2] = (const char *) name->data;
        lens[2] = name->len;

        ngx_http_identity_redis_setup(rd, 3, args, lens);
    }

    args[0] = "SUBSCRIBE";
    lens[0] = 9;
    args[1] = (const char *) channel->data;
    lens[1] = channel->len;

    if (ngx_http_identity_rconn_command(rd->ac,
                                        ngx_http_identity_redis_sub_reply, rd,
                                        1, 2, args, lens)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "identity: redis subscription not queued");
        ngx_http_identity_rconn_free(rd->ac);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* a subscription that stopped answering is dropped: DOWN follows */

void
ngx_http_identity_redis_unsubscribe(void)
{
    ngx_http_identity_redis_t  *rd = &ngx_http_identity_redis_sub;

    if (rd->ac) {
        ngx_http_identity_rconn_free(rd->ac);
    }
}


/* called for each message, and with NULL once it is over */

static void
ngx_http_identity_redis_sub_reply(ngx_http_identity_rconn_t *ac,
    redisReply *reply, void *privdata)
{
    ngx_str_t                   msg;
    ngx_http_identity_redis_t  *rd = privdata;

    if (rd->sub_handler == NULL) {
        return;
    }

    if (reply == NULL) {
        rd->subscribed = 0;
        rd->sub_handler(rd->sub_data, NGX_HTTP_IDENTITY_SUB_DOWN, NULL);
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_identity_redis_refusal(rd, "SUBSCRIBE", reply);
        ngx_http_identity_rconn_free(ac);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "identity: unexpected reply on the redis subscription");
        return;
    }

    if (ngx_strcmp(reply->element[0]->str, "subscribe") == 0) {
        ngx_http_identity_redis_state_up(&rd->state);
        rd->subscribed = 1;
        rd->sub_handler(rd->sub_data, NGX_HTTP_IDENTITY_SUB_UP, NULL);
        return;
    }

    if (ngx_strcmp(reply->element[0]->str, "message") == 0
        && reply->element[2]->type == REDIS_REPLY_STRING)
    {
        msg.data = (u_char *) reply->element[2]->str;
        msg.len = reply->element[2]->len;
        rd->sub_handler(rd->sub_data, NGX_HTTP_IDENTITY_SUB_MESSAGE, &msg);
    }
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
        ngx_http_identity_redis_failed(rd, rd->connected
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

static void
ngx_http_identity_redis_replied(ngx_http_identity_redis_t *rd)
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
ngx_http_identity_redis_timeout(ngx_event_t *ev)
{
    ngx_http_identity_redis_t  *rd = ev->data;

    ngx_http_identity_redis_failed(rd, rd->connected
                                       ? "timed out while waiting for a "
                                         "reply"
                                       : "timed out while connecting",
                                   NULL);

    if (rd->ac) {
        /* fails every pending command: their requests answer 503 */
        ngx_http_identity_rconn_free(rd->ac);
    }
}


/*
 * A connection failed.  With sentinels, a connection to the primary that
 * failed forgets it, and the next sentinel is asked (the one that named it
 * may be stale); the sentinel's connection moves on to the next sentinel.
 */

static void
ngx_http_identity_redis_failed(ngx_http_identity_redis_t *rd,
    const char *what, const char *why)
{
    ngx_http_identity_redis_state_down(&rd->state, what, why);

    if (rd->conf->sentinels == NULL) {
        return;
    }

    if (rd->sentinel) {
        ngx_http_identity_next_sentinel++;
        ngx_http_identity_asking = 0;
        return;
    }

    if (ngx_http_identity_primary_known && !ngx_http_identity_asking
        && ngx_http_identity_redis_sentinel.ac)
    {
        ngx_http_identity_next_sentinel++;
        ngx_http_identity_rconn_free(ngx_http_identity_redis_sentinel.ac);
    }

    ngx_http_identity_primary_known = 0;
    ngx_http_identity_redis_ask();
}


/* SENTINEL get-master-addr-by-name, of one sentinel, one at a time */

static void
ngx_http_identity_redis_ask(void)
{
    size_t                           lens[3];
    const char                      *args[3];
    ngx_http_identity_redis_t       *rd = &ngx_http_identity_redis_sentinel;
    ngx_http_identity_redis_addr_t  *sa;

    if (ngx_http_identity_asking) {
        return;
    }

    if (rd->ac == NULL) {
        sa = rd->conf->sentinels->elts;
        rd->addr = sa[ngx_http_identity_next_sentinel
                      % rd->conf->sentinels->nelts];

        if (ngx_http_identity_redis_connect(rd) != NGX_OK) {
            return;
        }
    }

    args[0] = "SENTINEL";
    lens[0] = 8;
    args[1] = "get-master-addr-by-name";
    lens[1] = 23;
    args[2] = (const char *) rd->conf->master.data;
    lens[2] = rd->conf->master.len;

    if (ngx_http_identity_rconn_command(rd->ac,
                                        ngx_http_identity_redis_sentinel_reply,
                                        NULL, 0, 3, args, lens)
        != NGX_OK)
    {
        return;
    }

    rd->pending++;
    ngx_http_identity_asking = 1;

    if (rd->connected && !rd->timer.timer_set) {
        ngx_add_timer(&rd->timer, rd->conf->timeout);
    }
}


static void
ngx_http_identity_redis_sentinel_reply(ngx_http_identity_rconn_t *ac,
    redisReply *reply, void *privdata)
{
    ngx_int_t                        port;
    ngx_http_identity_redis_t       *rd = ac->data;
    ngx_http_identity_redis_addr_t  *primary = &ngx_http_identity_primary;

    ngx_http_identity_redis_replied(rd);
    ngx_http_identity_asking = 0;

    if (reply == NULL) {
        return;     /* the connection failed: said, and the next is next */
    }

    /* a sentinel that refuses, names none or not by an address is left */

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_identity_redis_refusal(rd, "SENTINEL", reply);
        ngx_http_identity_rconn_free(ac);
        return;
    }

    port = (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
            && reply->element[1]->type == REDIS_REPLY_STRING)
           ? ngx_atoi((u_char *) reply->element[1]->str,
                      reply->element[1]->len)
           : NGX_ERROR;

    if (port <= 0 || port > 65535
        || reply->element[0]->type != REDIS_REPLY_STRING
        || ngx_http_identity_rconn_numeric((u_char *) reply->element[0]->str,
                                           reply->element[0]->len)
           != NGX_OK)
    {
        ngx_http_identity_redis_failed(rd, "names no primary (an IP address "
                                       "and port) for",
                                       (char *) rd->conf->master.data);
        ngx_http_identity_rconn_free(ac);
        return;
    }

    ngx_http_identity_redis_state_up(&rd->state);

    if (primary->port != (in_port_t) port
        || primary->host.len != reply->element[0]->len
        || ngx_strncmp(ngx_http_identity_primary_host, reply->element[0]->str,
                       reply->element[0]->len) != 0)
    {
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "identity: the sentinel at \"%V\" port %d names "
                      "\"%*s\" port %i the primary of \"%V\"",
                      &rd->addr.host, (int) rd->addr.port,
                      (size_t) reply->element[0]->len, reply->element[0]->str,
                      port, &rd->conf->master);
    }

    ngx_memcpy(ngx_http_identity_primary_host, reply->element[0]->str,
               reply->element[0]->len);
    ngx_http_identity_primary_host[reply->element[0]->len] = '\0';
    primary->host.len = reply->element[0]->len;
    ngx_http_identity_primary_known = 1;
    primary->port = (in_port_t) port;

    /* connected before the next request asks for it */

    (void) ngx_http_identity_redis_connect(&ngx_http_identity_redis);
}


/*
 * Each second: the worker listens to a sentinel's +switch-master, so that
 * it follows a failover the moment it is decided, even one that left the
 * old primary reachable; a sentinel that went away is replaced by the next.
 */

static void
ngx_http_identity_redis_watch(ngx_event_t *ev)
{
    ngx_http_identity_redis_t       *rd = ev->data;
    ngx_http_identity_redis_addr_t  *sa;

    static ngx_str_t  channel = ngx_string("+switch-master");

    if (rd->ac == NULL) {
        sa = rd->conf->sentinels->elts;
        rd->addr = sa[ngx_http_identity_next_watched
                      % rd->conf->sentinels->nelts];

        if (ngx_http_identity_redis_subscribe_on(rd, ev->log, &channel, NULL,
                                                 ngx_http_identity_redis_switch,
                                                 NULL)
            != NGX_OK)
        {
            ngx_http_identity_next_watched++;
        }
    }

    ngx_add_timer(ev, 1000);
}


/* "+switch-master": "NAME OLD-IP OLD-PORT NEW-IP NEW-PORT" */

static void
ngx_http_identity_redis_switch(void *data, ngx_uint_t event,
    ngx_str_t *message)
{
    u_char                          *p, *last, *f[5];
    size_t                           len[5];
    ngx_int_t                        port;
    ngx_uint_t                       n;
    ngx_http_identity_redis_t       *rd, *main;
    ngx_http_identity_redis_addr_t  *primary = &ngx_http_identity_primary;

    rd = &ngx_http_identity_redis_switches;

    if (event == NGX_HTTP_IDENTITY_SUB_DOWN) {
        ngx_http_identity_next_watched++;
        return;
    }

    if (event != NGX_HTTP_IDENTITY_SUB_MESSAGE) {
        return;
    }

    p = message->data;
    last = p + message->len;

    for (n = 0; n < 5 && p < last; n++) {
        f[n] = p;

        while (p < last && *p != ' ') {
            p++;
        }

        len[n] = p - f[n];
        p++;
    }

    if (n != 5
        || len[0] != rd->conf->master.len
        || ngx_strncmp(f[0], rd->conf->master.data, len[0]) != 0)
    {
        return;
    }

    port = ngx_atoi(f[4], len[4]);

    if (port <= 0 || port > 65535
        || ngx_http_identity_rconn_numeric(f[3], len[3]) != NGX_OK)
    {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                  "identity: the sentinels switched the primary of \"%V\" "
                  "to \"%*s\" port %i", &rd->conf->master, len[3], f[3],
                  port);

    ngx_memcpy(ngx_http_identity_primary_host, f[3], len[3]);
    ngx_http_identity_primary_host[len[3]] = '\0';
    primary->host.len = len[3];
    ngx_http_identity_primary_known = 1;
    primary->port = (in_port_t) port;

    /* what is connected elsewhere is dropped: it reconnects to the new one */

    main = &ngx_http_identity_redis;

    for (n = 0; n < 2; n++) {
        rd = n ? &ngx_http_identity_redis_sub : main;

        if (rd->ac
            && (rd->addr.port != primary->port
                || rd->addr.host.len != primary->host.len
                || ngx_strncmp(rd->addr.host.data, primary->host.data,
                               primary->host.len) != 0))
        {
            rd->retry_at = ngx_current_msec;
            ngx_http_identity_rconn_free(rd->ac);
        }
    }

    (void) ngx_http_identity_redis_connect(main);
}


/* the server the sentinels named must say it is the primary */

static void
ngx_http_identity_redis_role_reply(ngx_http_identity_rconn_t *ac,
    redisReply *reply, void *privdata)
{
    ngx_http_identity_redis_t  *rd = ac->data;

    ngx_http_identity_redis_replied(rd);

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

    ngx_http_identity_redis_failed(rd, "is not the primary",
                                   (char *) rd->conf->master.data);
    rd->connected = 0;
    ngx_http_identity_rconn_free(ac);
}


ngx_uint_t
ngx_http_identity_redis_down(void)
{
    return ngx_http_identity_redis_state_told(&ngx_http_identity_redis.state);
}


static void
ngx_http_identity_redis_waiter_cleanup(void *data)
{
    ngx_http_identity_redis_waiter_t  *w = data;

    w->request = NULL;
}
