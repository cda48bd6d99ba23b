
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The session store's connections to Redis, and what each is for: one
 * per worker for commands, a waiter per command.  How one lives (made
 * lazily, its backoff of 100 to 250 ms, its timers, what the log is told
 * of an outage) is redis_link.c's; while it is down commands fail at once
 * (a quick 503).  The directive is redis_conf.c's.
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
 *
 * In a Redis Cluster, a connection for each primary, for the slots it
 * serves (redis_cluster.c keeps the map); the third asks the nodes in turn
 * for CLUSTER SLOTS at start, when a node's connection fails, after a
 * MOVED.  MOVED and ASK are followed, five times at most; the subscription
 * is on any node.  A command's time from send to reply goes to metrics.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_http_identity_redis.h"
#include "ngx_http_identity_redis_cluster.h"
#include "ngx_http_identity_redis_link.h"
#include "ngx_http_identity_metrics.h"


#define NGX_HTTP_IDENTITY_REDIS_MAX_ARGS     96


typedef struct {
    ngx_http_request_t                 *request;
    ngx_pool_cleanup_t                 *cleanup;
    ngx_http_identity_redis_handler_pt  handler;
    void                               *data;
    ngx_str_t                          *argv;      /* a cluster's: kept */
    ngx_uint_t                          argc;
    ngx_uint_t                          redirects;
    uint64_t                            sent;      /* metrics.c's clock */
} ngx_http_identity_redis_waiter_t;


static ngx_int_t ngx_http_identity_redis_issue(ngx_log_t *log,
    ngx_http_identity_redis_waiter_t *w, ngx_uint_t argc, ngx_str_t *argv);
static ngx_int_t ngx_http_identity_redis_route(
    ngx_http_identity_redis_waiter_t *w);
static void ngx_http_identity_redis_mapped(ngx_uint_t ok);
static ngx_connection_t *ngx_http_identity_redis_answer(
    ngx_http_identity_redis_waiter_t *w, redisReply *reply);
static void ngx_http_identity_redis_map_timeout(ngx_event_t *ev);
static ngx_int_t ngx_http_identity_redis_queue(ngx_http_identity_redis_t *rd,
    ngx_http_identity_redis_waiter_t *w, ngx_uint_t asking);
static ngx_int_t ngx_http_identity_redis_redirect(
    ngx_http_identity_redis_t *rd, ngx_http_identity_redis_waiter_t *w,
    redisReply *reply);
static ngx_http_identity_redis_t *ngx_http_identity_redis_node(ngx_uint_t n);
static void ngx_http_identity_redis_cluster_node(
    ngx_http_identity_redis_t *rd, ngx_uint_t n);
static void ngx_http_identity_redis_free_waiter(
    ngx_http_identity_redis_waiter_t *w);
static void ngx_http_identity_redis_sub_reply(ngx_http_identity_rconn_t *ac,
    redisReply *reply, void *privdata);
static void ngx_http_identity_redis_reply(ngx_http_identity_rconn_t *ac,
    redisReply *reply, void *privdata);
static void ngx_http_identity_redis_waiter_cleanup(void *data);
static void ngx_http_identity_redis_failed(ngx_http_identity_redis_t *rd);
static ngx_int_t ngx_http_identity_redis_locate(
    ngx_http_identity_redis_t *rd);
static void ngx_http_identity_redis_ask(void);
static void ngx_http_identity_redis_sentinel_reply(
    ngx_http_identity_rconn_t *ac, redisReply *reply, void *privdata);
static void ngx_http_identity_redis_slots_reply(ngx_http_identity_rconn_t *ac,
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

/* a Redis Cluster's primaries, by redis_cluster.c's index; and how many */
static ngx_http_identity_redis_t  ngx_http_identity_redis_nodes[
                                      NGX_HTTP_IDENTITY_CLUSTER_NODES];
static ngx_uint_t                 ngx_http_identity_redis_nnodes;
static ngx_uint_t                 ngx_http_identity_next_sub;

/* the commands waiting for a map of the slots, and how long they may */
#define NGX_HTTP_IDENTITY_REDIS_UNMAPPED  256
static ngx_http_identity_redis_waiter_t  *ngx_http_identity_redis_unmapped[
                                              NGX_HTTP_IDENTITY_REDIS_UNMAPPED];
static ngx_uint_t                 ngx_http_identity_redis_unmapped_n;
static ngx_event_t                ngx_http_identity_redis_map_timer;
/* what that timer names in the debug log (nginx reads a connection's fd) */
static ngx_connection_t           ngx_http_identity_redis_map_conn;

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

        ngx_http_identity_redis_link_init(rd, conf, cycle->log,
                                          (conf->cluster && i == 2)
                                          ? " (cluster slots)" : roles[i],
                                          ngx_http_identity_redis_failed);
        rd->sentinel = (i >= 2);
        rd->addr.host = (conf->sentinels && i < 2) ? conf->master
                                                   : conf->host;

        if (conf->cluster && i == 0) {
            rd->addr = *(ngx_http_identity_redis_addr_t *) conf->cluster->elts;
        }
        rd->addr.port = conf->port;
        rd->locate = (conf->sentinels && i < 2) ? ngx_http_identity_redis_locate
                                                : NULL;

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
    ngx_http_identity_next_sub = 0;
    ngx_http_identity_redis_nnodes = 0;
    ngx_http_identity_redis_unmapped_n = 0;
    ngx_http_identity_cluster_init();

    ev = &ngx_http_identity_redis_map_timer;
    ngx_memzero(ev, sizeof(ngx_event_t));
    ev->handler = ngx_http_identity_redis_map_timeout;
    ev->data = &ngx_http_identity_redis_map_conn;
    ev->log = cycle->log;
    ngx_http_identity_redis_map_conn.fd = (ngx_socket_t) -1;

    if (conf->configured && (conf->sentinels || conf->cluster)) {
        ngx_http_identity_redis_ask();
    }

    if (conf->configured && conf->sentinels) {
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

    ngx_http_identity_redis_mapped(0);

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

    for (i = 0; i < ngx_http_identity_redis_nnodes; i++) {
        rd = &ngx_http_identity_redis_nodes[i];

        if (rd->ac) {
            ngx_http_identity_rconn_free(rd->ac);
        }

        if (rd->timer.timer_set) {
            ngx_del_timer(&rd->timer);
        }
    }
}


/*
 * The Nth of a cluster's nodes to ask, or to subscribe on: those configured,
 * then the primaries the maps named (the first may be gone after failovers)
 */

static void
ngx_http_identity_redis_cluster_node(ngx_http_identity_redis_t *rd,
    ngx_uint_t n)
{
    ngx_array_t                     *seeds;
    ngx_http_identity_redis_addr_t  *sa, *addr;

    seeds = ngx_http_identity_redis.conf->cluster;
    sa = seeds->elts;

    n %= seeds->nelts + ngx_http_identity_cluster_known();

    addr = (n < seeds->nelts)
           ? &sa[n] : ngx_http_identity_cluster_addr(n - seeds->nelts);

    (void) ngx_http_identity_redis_link_address(rd, addr);
}


/*
 * The connection to a cluster's node N, made ready the first time; to its
 * entry's address now (redis_cluster.c gives a gone node's to the next one)
 */

static ngx_http_identity_redis_t *
ngx_http_identity_redis_node(ngx_uint_t n)
{
    ngx_http_identity_redis_t  *rd, *main = &ngx_http_identity_redis;

    while (ngx_http_identity_redis_nnodes <= n) {
        rd = &ngx_http_identity_redis_nodes[ngx_http_identity_redis_nnodes++];

        ngx_http_identity_redis_link_init(rd, main->conf, main->log,
                                          " (cluster node)",
                                          ngx_http_identity_redis_failed);
    }

    rd = &ngx_http_identity_redis_nodes[n];

    if (ngx_http_identity_redis_link_address(rd,
                                             ngx_http_identity_cluster_addr(n)))
    {
        rd->retry_at = ngx_current_msec;    /* not the last node's backoff */
    }

    return rd;
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

    ngx_memzero(w, sizeof(ngx_http_identity_redis_waiter_t));

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
        ngx_http_identity_redis_free_waiter(w);
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

    ngx_memzero(w, sizeof(ngx_http_identity_redis_waiter_t));

    if (ngx_http_identity_redis_issue(log, w, argc, argv) != NGX_OK) {
        ngx_http_identity_redis_free_waiter(w);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_identity_redis_issue(ngx_log_t *log,
    ngx_http_identity_redis_waiter_t *w, ngx_uint_t argc, ngx_str_t *argv)
{
    u_char                     *p;
    size_t                      size;
    ngx_int_t                   n;
    ngx_uint_t                  i;
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

    if (rd->conf->cluster == NULL) {
        w->argv = argv;
        w->argc = argc;

        n = ngx_http_identity_redis_queue(rd, w, 0);

        w->argv = NULL;     /* the caller's */
        return n;
    }

    {
        /* kept for a redirect: the caller's arguments are its own */

        size = argc * sizeof(ngx_str_t);

        for (i = 0; i < argc; i++) {
            size += argv[i].len;
        }

        w->argv = ngx_alloc(size, log);
        if (w->argv == NULL) {
            return NGX_ERROR;
        }

        p = (u_char *) &w->argv[argc];
        w->argc = argc;

        for (i = 0; i < argc; i++) {
            w->argv[i].data = p;
            w->argv[i].len = argv[i].len;
            p = argv[i].len ? ngx_cpymem(p, argv[i].data, argv[i].len) : p;
        }
    }

    return ngx_http_identity_redis_route(w);
}


/*
 * To the primary of the command's slot; while the worker has no map of
 * the slots (it has just started, or lost the map's every node), the
 * command waits for one, the timeout at most
 */

static ngx_int_t
ngx_http_identity_redis_route(ngx_http_identity_redis_waiter_t *w)
{
    ngx_int_t                   n;
    ngx_http_identity_redis_t  *rd = &ngx_http_identity_redis;

    n = ngx_http_identity_cluster_route(w->argc, w->argv);

    if (n != NGX_DECLINED) {
        return ngx_http_identity_redis_queue(ngx_http_identity_redis_node(n),
                                             w, 0);
    }

    ngx_http_identity_redis_ask();

    /* while no node gives a map, refused at once, as when Redis is down */

    if (ngx_http_identity_redis_state_told(&rd->state)
        || ngx_http_identity_redis_unmapped_n
           == NGX_HTTP_IDENTITY_REDIS_UNMAPPED)
    {
        ngx_http_identity_redis_state_down(&rd->state, "has no map of "
                                           "the cluster's slots yet", NULL);
        ngx_http_identity_redis_state_refused(&rd->state);
        return NGX_ERROR;
    }

    ngx_http_identity_redis_unmapped[ngx_http_identity_redis_unmapped_n++] =
                                                                          w;

    if (!ngx_http_identity_redis_map_timer.timer_set) {
        ngx_add_timer(&ngx_http_identity_redis_map_timer, rd->conf->timeout);
    }

    return NGX_OK;
}


/* a map came (ok), or none in time: the commands that waited for it go on */

static void
ngx_http_identity_redis_mapped(ngx_uint_t ok)
{
    ngx_uint_t                         i, n;
    ngx_connection_t                  *c;
    ngx_http_identity_redis_waiter_t  *w;
    ngx_http_identity_redis_waiter_t  *waiting[
                                          NGX_HTTP_IDENTITY_REDIS_UNMAPPED];

    n = ngx_http_identity_redis_unmapped_n;
    ngx_memcpy(waiting, ngx_http_identity_redis_unmapped, n * sizeof(w));
    ngx_http_identity_redis_unmapped_n = 0;

    if (ngx_http_identity_redis_map_timer.timer_set) {
        ngx_del_timer(&ngx_http_identity_redis_map_timer);
    }

    for (i = 0; i < n; i++) {
        w = waiting[i];

        if (ok && ngx_http_identity_cluster_route(w->argc, w->argv)
                  != NGX_DECLINED
            && ngx_http_identity_redis_route(w) == NGX_OK)
        {
            continue;
        }

        c = ngx_http_identity_redis_answer(w, NULL);

        if (c) {
            ngx_http_run_posted_requests(c);
        }
    }
}


/* the waiter's request has its reply (NULL: failed): its connection */

static ngx_connection_t *
ngx_http_identity_redis_answer(ngx_http_identity_redis_waiter_t *w,
    redisReply *reply)
{
    ngx_connection_t  *c;

    c = NULL;

    if (w->request) {
        w->cleanup->handler = NULL;
        c = w->request->connection;
        w->handler(w->request, reply, w->data);
    }

    ngx_http_identity_redis_free_waiter(w);

    return c;
}


static void
ngx_http_identity_redis_map_timeout(ngx_event_t *ev)
{
    ngx_http_identity_redis_t  *rd = &ngx_http_identity_redis;

    ngx_http_identity_redis_state_down(&rd->state, "has no map of the "
                                       "cluster's slots yet", NULL);
    ngx_http_identity_redis_mapped(0);
}


/* the waiter's command on RD's connection, after ASKING if a redirect said */

static ngx_int_t
ngx_http_identity_redis_queue(ngx_http_identity_redis_t *rd,
    ngx_http_identity_redis_waiter_t *w, ngx_uint_t asking)
{
    size_t       lens[NGX_HTTP_IDENTITY_REDIS_MAX_ARGS];
    ngx_uint_t   i;
    const char  *args[NGX_HTTP_IDENTITY_REDIS_MAX_ARGS];

    if (ngx_http_identity_redis_link_connect(rd) != NGX_OK) {
        ngx_http_identity_redis_state_refused(&rd->state);
        return NGX_ERROR;
    }

    if (asking) {
        args[0] = "ASKING";
        lens[0] = 6;
        ngx_http_identity_redis_link_setup(rd, 1, args, lens);
    }

    for (i = 0; i < w->argc; i++) {
        args[i] = w->argv[i].data ? (const char *) w->argv[i].data : "";
        lens[i] = w->argv[i].len;
    }

    if (ngx_http_identity_rconn_command(rd->ac, ngx_http_identity_redis_reply,
                                        w, 0, w->argc, args, lens)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "identity: redis command not queued");

        /* an ASKING alone would apply to another request's command */

        if (asking && rd->ac) {
            ngx_http_identity_rconn_free(rd->ac);
        }

        return NGX_ERROR;
    }

    rd->pending++;
    w->sent = ngx_http_identity_metrics_now();

    if (rd->connected && !rd->timer.timer_set) {
        ngx_add_timer(&rd->timer, rd->conf->timeout);
    }

    return NGX_OK;
}


static void
ngx_http_identity_redis_reply(ngx_http_identity_rconn_t *ac,
    redisReply *reply, void *privdata)
{
    ngx_uint_t                         readonly;
    ngx_connection_t                  *c;
    ngx_http_identity_redis_t         *rd = ac->data;
    ngx_http_identity_redis_waiter_t  *w = privdata;

    readonly = 0;

    ngx_http_identity_redis_link_replied(rd);

    if (reply) {
        ngx_http_identity_redis_state_up(&rd->state);
        ngx_http_identity_metrics_redis(w->sent);

    } else if (ac->err) {

        /* the connection is lost: said before its requests answer 503 */

        ngx_http_identity_redis_link_failed(rd, rd->connected
                                            ? "lost the connection"
                                            : "connect failed",
                                            ac->errstr);
    }

    /* a cluster's redirect: the waiter goes on, to the node named */

    if (reply && w->argv
        && ngx_http_identity_redis_redirect(rd, w, reply) == NGX_OK)
    {
        return;
    }

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_http_identity_redis_state_error(&rd->state, reply);

        readonly = (reply->len >= 8
                    && ngx_strncmp(reply->str, "READONLY", 8) == 0);
        reply = NULL;
    }

    c = ngx_http_identity_redis_answer(w, reply);

    /* a replica now (a failover): the sentinels are asked again */

    if (readonly && !ac->freeing && !ac->done) {
        ngx_http_identity_redis_link_failed(rd, "answers as a replica", NULL);
        rd->connected = 0;
        ngx_http_identity_rconn_free(ac);
    }

    if (c) {
        ngx_http_run_posted_requests(c);
    }
}


/*
 * MOVED (the map is asked for again: a slot seldom moves alone) or ASK: the
 * command is sent again where the cluster says, five times at most
 */

static ngx_int_t
ngx_http_identity_redis_redirect(ngx_http_identity_redis_t *rd,
    ngx_http_identity_redis_waiter_t *w, redisReply *reply)
{
    ngx_int_t   n;
    ngx_uint_t  ask;

    n = ngx_http_identity_cluster_redirect(reply,
            ngx_http_identity_cluster_slot(w->argc, w->argv), &rd->addr, &ask);

    if (n == NGX_DECLINED) {
        return NGX_DECLINED;
    }

    if (n == NGX_ERROR || w->redirects++ == 5) {
        ngx_log_error(NGX_LOG_ERR, rd->log, 0,
                      "identity: redis cluster redirect not followed: "
                      "\"%*s\"", (size_t) ngx_min(reply->len, 200),
                      reply->str);
        return NGX_DECLINED;
    }

    if (!ask) {
        ngx_http_identity_redis_ask();
    }

    return ngx_http_identity_redis_queue(ngx_http_identity_redis_node(n), w,
                                         ask);
}


static void
ngx_http_identity_redis_free_waiter(ngx_http_identity_redis_waiter_t *w)
{
    if (w->argv) {
        ngx_free(w->argv);
    }

    ngx_free(w);
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

    if (rd->conf && rd->conf->cluster) {
        ngx_http_identity_redis_cluster_node(rd, ngx_http_identity_next_sub);
    }

    if (rd->conf == NULL || !rd->conf->configured
        || ngx_http_identity_redis_link_connect(rd) != NGX_OK)
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

        ngx_http_identity_redis_link_setup(rd, 3, args, lens);
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
        ngx_http_identity_redis_link_refusal(rd, "SUBSCRIBE", reply);
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


/*
 * A connection failed.  With sentinels, a connection to the primary that
 * failed forgets it, and the next sentinel is asked (the one that named it
 * may be stale); the sentinel's connection moves on to the next sentinel.
 */

static void
ngx_http_identity_redis_failed(ngx_http_identity_redis_t *rd)
{
    /* a cluster: the next node is asked, or the map asked for again */

    if (rd->conf->cluster) {
        if (rd == &ngx_http_identity_redis_sentinel) {
            ngx_http_identity_next_sentinel++;
            ngx_http_identity_asking = 0;

            /* what waits for a map is refused (the next node is asked) */

            if (ngx_http_identity_redis_unmapped_n) {
                ngx_http_identity_redis_state_down(
                    &ngx_http_identity_redis.state,
                    "has no map of the cluster's slots", NULL);
                ngx_http_identity_redis_mapped(0);
            }

        } else if (rd == &ngx_http_identity_redis_sub) {
            ngx_http_identity_next_sub++;

        } else {
            ngx_http_identity_redis_ask();
        }

        return;
    }

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


/* the primary the sentinels named: its own copy, as they may name another */

static ngx_int_t
ngx_http_identity_redis_locate(ngx_http_identity_redis_t *rd)
{
    if (!ngx_http_identity_primary_known) {
        ngx_http_identity_redis_state_down(&rd->state, "has no primary "
                                           "from the sentinels yet", NULL);
        ngx_http_identity_redis_ask();
        return NGX_ERROR;
    }

    ngx_memcpy(rd->host, ngx_http_identity_primary_host,
               ngx_http_identity_primary.host.len + 1);
    rd->addr.host.data = rd->host;
    rd->addr.host.len = ngx_http_identity_primary.host.len;
    rd->addr.port = ngx_http_identity_primary.port;

    return NGX_OK;
}


/*
 * SENTINEL get-master-addr-by-name, of one sentinel, one at a time; or
 * CLUSTER SLOTS, of one of a cluster's configured nodes
 */

static void
ngx_http_identity_redis_ask(void)
{
    size_t                           lens[3];
    ngx_uint_t                       n;
    const char                      *args[3];
    ngx_array_t                     *servers;
    ngx_http_identity_redis_t       *rd = &ngx_http_identity_redis_sentinel;
    ngx_http_identity_redis_addr_t  *sa;

    if (ngx_http_identity_asking) {
        return;
    }

    servers = rd->conf->cluster ? rd->conf->cluster : rd->conf->sentinels;

    if (rd->ac == NULL) {
        sa = servers->elts;
        rd->addr = sa[ngx_http_identity_next_sentinel % servers->nelts];

        if (rd->conf->cluster) {
            ngx_http_identity_redis_cluster_node(rd,
                                            ngx_http_identity_next_sentinel);
        }

        if (ngx_http_identity_redis_link_connect(rd) != NGX_OK) {
            return;
        }
    }

    if (rd->conf->cluster) {
        args[0] = "CLUSTER";
        lens[0] = 7;
        args[1] = "SLOTS";
        lens[1] = 5;
        n = 2;

    } else {
        args[0] = "SENTINEL";
        lens[0] = 8;
        args[1] = "get-master-addr-by-name";
        lens[1] = 23;
        args[2] = (const char *) rd->conf->master.data;
        lens[2] = rd->conf->master.len;
        n = 3;
    }

    if (ngx_http_identity_rconn_command(rd->ac,
                                    rd->conf->cluster
                                    ? ngx_http_identity_redis_slots_reply
                                    : ngx_http_identity_redis_sentinel_reply,
                                    NULL, 0, n, args, lens)
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

    ngx_http_identity_redis_link_replied(rd);
    ngx_http_identity_asking = 0;

    if (reply == NULL) {
        return;     /* the connection failed: said, and the next is next */
    }

    /* a sentinel that refuses, names none or not by an address is left */

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_identity_redis_link_refusal(rd, "SENTINEL", reply);
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
        ngx_http_identity_redis_link_failed(rd, "names no primary (an IP "
                                            "address and port) for",
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

    (void) ngx_http_identity_redis_link_connect(&ngx_http_identity_redis);
}


/* a cluster's map: a node that gives none is left for the next */

static void
ngx_http_identity_redis_slots_reply(ngx_http_identity_rconn_t *ac,
    redisReply *reply, void *privdata)
{
    ngx_http_identity_redis_t  *rd = ac->data;

    ngx_http_identity_redis_link_replied(rd);
    ngx_http_identity_asking = 0;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_identity_redis_link_refusal(rd, "CLUSTER SLOTS", reply);
        ngx_http_identity_rconn_free(ac);
        return;
    }

    if (ngx_http_identity_cluster_map(reply, rd->log) != NGX_OK) {
        ngx_http_identity_redis_link_failed(rd, "gave no map of the cluster",
                                            NULL);
        ngx_http_identity_rconn_free(ac);
        return;
    }

    ngx_http_identity_redis_state_up(&rd->state);
    ngx_http_identity_redis_state_up(&ngx_http_identity_redis.state);

    ngx_http_identity_redis_mapped(1);
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

    (void) ngx_http_identity_redis_link_connect(main);
}


ngx_uint_t
ngx_http_identity_redis_down(void)
{
    ngx_uint_t  i;

    for (i = 0; i < ngx_http_identity_redis_nnodes; i++) {
        if (ngx_http_identity_redis_state_told(
                &ngx_http_identity_redis_nodes[i].state))
        {
            return 1;
        }
    }

    return ngx_http_identity_redis_state_told(&ngx_http_identity_redis.state);
}


static void
ngx_http_identity_redis_waiter_cleanup(void *data)
{
    ngx_http_identity_redis_waiter_t  *w = data;

    w->request = NULL;
}
