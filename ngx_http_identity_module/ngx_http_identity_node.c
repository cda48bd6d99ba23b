
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * A node (one nginx with an identity_session_cache zone) and the others
 * that share its Redis: how a revocation reaches every node's cache, and
 * how the revoker knows that it has.  docs/session-cache.md tells the
 * protocol and its failure cases; in short:
 *
 *   - every script that ends sessions publishes "inv EVENT KEY..." on
 *     P invalidate, and keeps the set P inv:EVENT of the nodes that were
 *     registered (P nodes, a zset scored by Redis time) at that moment;
 *   - one worker per node (cache.c's owner) holds a subscription to
 *     P invalidate; on "inv" it evicts the keys from the node's cache,
 *     then removes itself from P inv:EVENT (the acknowledgement);
 *   - every 250 ms that worker registers the node for 3 s and publishes
 *     "ping NODE MSEC" through its command connection; the ping coming
 *     back on the subscription proves that every message published
 *     before it has been handled, and leases the cache for 1 s from MSEC.
 *     Without a lease, the cache is not used (strict mode, Redis on every
 *     request); a new subscription empties the cache before its first
 *     ping can lease it;
 *   - the revoker waits until P inv:EVENT is empty, or 1.5 s: a node that
 *     did not acknowledge by then has no lease that began before the
 *     revocation, so it asks Redis for the revoked sessions.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_cache.h"
#include "ngx_http_identity_node.h"
#include "ngx_http_identity_redis.h"


#define NGX_HTTP_IDENTITY_NODE_TICK          250
#define NGX_HTTP_IDENTITY_NODE_LEASE         1000
#define NGX_HTTP_IDENTITY_NODE_OWNER_STALE   2000
#define NGX_HTTP_IDENTITY_NODE_REGISTRATION  3000
#define NGX_HTTP_IDENTITY_NODE_SILENT        3000
#define NGX_HTTP_IDENTITY_NODE_POLL          5


typedef struct {
    ngx_http_identity_cache_t       *cache;
    ngx_str_t                        prefix;
    ngx_str_t                        channel;     /* P invalidate */
    ngx_str_t                        nodes;       /* P nodes */
    ngx_str_t                        name;        /* client name */
    u_char                          *ack;         /* room for P inv:EVENT */
    ngx_str_t                       *id;
    ngx_log_t                       *log;
    ngx_event_t                      timer;
    ngx_msec_t                       heard;       /* last ping back */
    unsigned                         owner:1;
    unsigned                         subscribed:1;
    unsigned                         lost:1;      /* logged as lost */
    unsigned                         leaving:1;   /* dropped on purpose */
} ngx_http_identity_node_t;


typedef struct {
    ngx_http_request_t              *request;
    ngx_event_t                      timer;
    ngx_str_t                        key;         /* P inv:EVENT */
    ngx_msec_t                       until;
    ngx_uint_t                       failed;
    ngx_http_identity_node_done_pt   done;
    void                            *data;
} ngx_http_identity_confirm_t;


static void ngx_http_identity_node_tick(ngx_event_t *ev);
static void ngx_http_identity_node_heartbeat(ngx_http_identity_node_t *nd);
static void ngx_http_identity_node_event(void *data, ngx_uint_t event,
    ngx_str_t *msg);
static void ngx_http_identity_node_evict(ngx_http_identity_node_t *nd,
    ngx_str_t *msg);
static void ngx_http_identity_node_ping(ngx_http_identity_node_t *nd,
    ngx_str_t *msg);
static ngx_int_t ngx_http_identity_node_word(u_char **pos, u_char *last,
    ngx_str_t *word);
static void ngx_http_identity_confirm_timer(ngx_event_t *ev);
static void ngx_http_identity_confirm_poll(ngx_http_identity_confirm_t *cf);
static void ngx_http_identity_confirm_reply(ngx_http_request_t *r,
    redisReply *reply, void *data);
static void ngx_http_identity_confirm_cleanup(void *data);


static ngx_http_identity_node_t  ngx_http_identity_node;

/* what the node's timer names in the debug log, as nginx's own "dumb" */
static ngx_connection_t          ngx_http_identity_node_conn;


/* registers the node and pings itself: one script, fire and forget */

static ngx_str_t  ngx_http_identity_heartbeat_script = ngx_string(
    "local t = redis.call('TIME')\n"
    "local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"
    "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])\n"
    "redis.call('PUBLISH', ARGV[3], 'ping ' .. ARGV[1] .. ' ' .. ARGV[4])\n"
    "return 1\n");


ngx_int_t
ngx_http_identity_node_init_process(ngx_cycle_t *cycle,
    ngx_http_identity_main_conf_t *imcf)
{
    u_char                    *p;
    ngx_http_identity_node_t  *nd = &ngx_http_identity_node;

    ngx_memzero(nd, sizeof(ngx_http_identity_node_t));

    if (imcf->cache == NULL || !imcf->redis.configured) {
        return NGX_OK;
    }

    nd->cache = imcf->cache;
    nd->prefix = imcf->node_prefix;     /* in a cluster, a shard's own */
    nd->id = ngx_http_identity_cache_node_id(nd->cache);
    nd->log = cycle->log;

    nd->channel.len = imcf->key_prefix.len + sizeof("invalidate") - 1;
    nd->nodes.len = nd->prefix.len + sizeof("nodes") - 1;
    nd->name.len = sizeof("identity-node--") - 1 + nd->id->len + NGX_INT64_LEN;

    /* and room for an acknowledgement's key, whatever the prefix */

    p = ngx_pnalloc(cycle->pool,
                    nd->channel.len + nd->nodes.len + nd->name.len + 3
                    + nd->prefix.len + sizeof("inv:") - 1 + NGX_INT_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    nd->ack = p;
    p += nd->prefix.len + sizeof("inv:") - 1 + NGX_INT_T_LEN;

    nd->channel.data = p;
    p = ngx_sprintf(p, "%Vinvalidate%Z", &imcf->key_prefix);
    nd->nodes.data = p;
    p = ngx_sprintf(p, "%Vnodes%Z", &nd->prefix);
    nd->name.data = p;
    nd->name.len = ngx_sprintf(p, "identity-node-%V-%P", nd->id, ngx_pid) - p;

    ngx_http_identity_node_conn.fd = (ngx_socket_t) -1;
    ngx_http_identity_node_conn.data = nd;

    nd->timer.handler = ngx_http_identity_node_tick;
    nd->timer.data = &ngx_http_identity_node_conn;
    nd->timer.log = cycle->log;
    nd->timer.cancelable = 1;

    /* the lease left by a worker of an earlier cycle ends with it */

    ngx_add_timer(&nd->timer, 1);

    return NGX_OK;
}


void
ngx_http_identity_node_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_identity_node_t  *nd = &ngx_http_identity_node;

    if (nd->cache == NULL) {
        return;
    }

    if (nd->timer.timer_set) {
        ngx_del_timer(&nd->timer);
    }

    if (nd->owner) {
        ngx_http_identity_cache_lease(nd->cache, 0);
        (void) ngx_http_identity_cache_owner(nd->cache, 0, 1);
    }
}


/*
 * Every worker ticks; the owner keeps the subscription and the heartbeat,
 * another takes over when the owner has not ticked for a second.
 */

static void
ngx_http_identity_node_tick(ngx_event_t *ev)
{
    ngx_connection_t          *c = ev->data;
    ngx_http_identity_node_t  *nd = c->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        if (nd->owner) {
            ngx_http_identity_cache_lease(nd->cache, 0);
            (void) ngx_http_identity_cache_owner(nd->cache, 0, 1);
            nd->owner = 0;
        }

        nd->subscribed = 0;
        ngx_http_identity_redis_unsubscribe();
        return;
    }

    if (!ngx_http_identity_cache_owner(nd->cache,
                                       NGX_HTTP_IDENTITY_NODE_OWNER_STALE, 0))
    {
        if (nd->owner) {
            /* another worker took over while this one was held up */
            ngx_log_error(NGX_LOG_INFO, nd->log, 0,
                          "identity: another worker holds the node's "
                          "subscription now");
            nd->owner = 0;
            nd->subscribed = 0;
            nd->leaving = 1;
            ngx_http_identity_redis_unsubscribe();
            nd->leaving = 0;
        }

        goto next;
    }

    if (!nd->owner) {
        nd->owner = 1;
        nd->heard = ngx_current_msec;

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, nd->log, 0,
                       "identity: this worker holds the node's subscription");
    }

    if (!nd->subscribed) {
        if (ngx_http_identity_redis_subscribe(nd->log, &nd->channel,
                                              &nd->name,
                                              ngx_http_identity_node_event,
                                              nd)
            != NGX_OK)
        {
            /* the lost subscription was logged once */
            nd->heard = ngx_current_msec;
        }

        goto next;
    }

    /* a subscription whose pings stopped coming back is made anew */

    if ((ngx_msec_int_t) (ngx_current_msec - nd->heard)
        > NGX_HTTP_IDENTITY_NODE_SILENT)
    {
        ngx_log_error(NGX_LOG_WARN, nd->log, 0,
                      "identity: no answer on the redis subscription for "
                      "%M ms, reconnecting", ngx_current_msec - nd->heard);
        ngx_http_identity_redis_unsubscribe();
        goto next;
    }

    ngx_http_identity_node_heartbeat(nd);

next:

    ngx_add_timer(&nd->timer, NGX_HTTP_IDENTITY_NODE_TICK);
}


static void
ngx_http_identity_node_heartbeat(ngx_http_identity_node_t *nd)
{
    u_char     reg[NGX_INT_T_LEN], now[NGX_INT_T_LEN];
    ngx_str_t  argv[8];

    ngx_str_set(&argv[0], "EVAL");
    argv[1] = ngx_http_identity_heartbeat_script;
    ngx_str_set(&argv[2], "1");
    argv[3] = nd->nodes;
    argv[4] = *nd->id;
    argv[5].data = reg;
    argv[5].len = ngx_sprintf(reg, "%d", NGX_HTTP_IDENTITY_NODE_REGISTRATION)
                  - reg;
    argv[6] = nd->channel;
    argv[7].data = now;
    argv[7].len = ngx_sprintf(now, "%M", ngx_current_msec) - now;

    (void) ngx_http_identity_redis_send(nd->log, 8, argv);
}


static void
ngx_http_identity_node_event(void *data, ngx_uint_t event, ngx_str_t *msg)
{
    ngx_http_identity_node_t  *nd = data;

    switch (event) {

    case NGX_HTTP_IDENTITY_SUB_UP:

        /*
         * What was published before now was not heard: nothing cached
         * before may be trusted.  The first ping back leases it again.
         */

        ngx_http_identity_cache_flush(nd->cache);

        nd->subscribed = 1;
        nd->heard = ngx_current_msec;

        ngx_log_error(NGX_LOG_NOTICE, nd->log, 0,
                      "identity: node %V subscribed to \"%V\"%s", nd->id,
                      &nd->channel,
                      nd->lost ? ", session cache subscribed again" : "");
        nd->lost = 0;

        ngx_http_identity_node_heartbeat(nd);
        return;

    case NGX_HTTP_IDENTITY_SUB_DOWN:

        ngx_http_identity_cache_lease(nd->cache, 0);

        if (!nd->lost && !nd->leaving
            && !ngx_exiting && !ngx_quit && !ngx_terminate)
        {
            nd->lost = 1;
            ngx_log_error(NGX_LOG_WARN, nd->log, 0,
                          "identity: session cache subscription lost, "
                          "every request asks redis until it is back");
        }

        nd->subscribed = 0;
        return;

    default: /* NGX_HTTP_IDENTITY_SUB_MESSAGE */

        if (msg->len > 4 && ngx_strncmp(msg->data, "inv ", 4) == 0) {
            ngx_http_identity_node_evict(nd, msg);

        } else if (msg->len > 5 && ngx_strncmp(msg->data, "ping ", 5) == 0) {
            ngx_http_identity_node_ping(nd, msg);
        }
    }
}


/* "inv EVENT KEY KEY ...": evicted first, acknowledged after */

static void
ngx_http_identity_node_evict(ngx_http_identity_node_t *nd, ngx_str_t *msg)
{
    u_char     *pos, *last;
    ngx_str_t   event, key, argv[3];

    pos = msg->data + 4;
    last = msg->data + msg->len;

    if (ngx_http_identity_node_word(&pos, last, &event) != NGX_OK
        || event.len > NGX_INT_T_LEN
        || ngx_atoi(event.data, event.len) == NGX_ERROR)
    {
        ngx_log_error(NGX_LOG_ERR, nd->log, 0,
                      "identity: malformed invalidation ignored");
        return;
    }

    while (ngx_http_identity_node_word(&pos, last, &key) == NGX_OK) {
        if (key.len == NGX_HTTP_IDENTITY_CACHE_KEY_LEN) {
            ngx_http_identity_cache_evict(nd->cache, key.data);
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, nd->log, 0,
                   "identity: invalidation %V handled", &event);

    /* event 0: a changed session, which no one waits for */

    if (event.len == 1 && event.data[0] == '0') {
        return;
    }

    ngx_str_set(&argv[0], "SREM");
    argv[1].data = nd->ack;
    argv[1].len = ngx_sprintf(nd->ack, "%Vinv:%V", &nd->prefix, &event)
                  - nd->ack;
    argv[2] = *nd->id;

    (void) ngx_http_identity_redis_send(nd->log, 3, argv);
}


/* "ping NODE MSEC": this node's own, all before it heard */

static void
ngx_http_identity_node_ping(ngx_http_identity_node_t *nd, ngx_str_t *msg)
{
    u_char     *pos, *last;
    ngx_str_t   node, sent;
    ngx_int_t   msec;

    pos = msg->data + 5;
    last = msg->data + msg->len;

    if (ngx_http_identity_node_word(&pos, last, &node) != NGX_OK
        || ngx_http_identity_node_word(&pos, last, &sent) != NGX_OK
        || node.len != nd->id->len
        || ngx_strncmp(node.data, nd->id->data, node.len) != 0)
    {
        return;
    }

    msec = ngx_atoi(sent.data, sent.len);
    if (msec == NGX_ERROR
        || (ngx_msec_int_t) ((ngx_msec_t) msec - ngx_current_msec) > 0)
    {
        return;
    }

    nd->heard = ngx_current_msec;

    ngx_http_identity_cache_lease(nd->cache,
                                  (ngx_msec_t) msec
                                  + NGX_HTTP_IDENTITY_NODE_LEASE);
}


static ngx_int_t
ngx_http_identity_node_word(u_char **pos, u_char *last, ngx_str_t *word)
{
    u_char  *p;

    p = *pos;

    while (p < last && *p == ' ') {
        p++;
    }

    word->data = p;

    while (p < last && *p != ' ') {
        p++;
    }

    word->len = p - word->data;
    *pos = p;

    return word->len ? NGX_OK : NGX_DONE;
}


/*
 * The revoker's wait: NGX_DECLINED if there is nothing to wait for (no
 * node was registered), else "done" is called once every node has
 * acknowledged, or after NGX_HTTP_IDENTITY_NODE_CONFIRM_WAIT ms.
 */

ngx_int_t
ngx_http_identity_node_confirm(ngx_http_request_t *r, ngx_int_t event,
    ngx_http_identity_node_done_pt done, void *data)
{
    ngx_pool_cleanup_t              *cln;
    ngx_http_identity_confirm_t     *cf;
    ngx_http_identity_main_conf_t   *imcf;

    if (event <= 0) {
        return NGX_DECLINED;
    }

    imcf = ngx_http_get_module_main_conf(r, ngx_http_identity_module);

    cf = ngx_pcalloc(r->pool, sizeof(ngx_http_identity_confirm_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cf == NULL || cln == NULL) {
        return NGX_ERROR;
    }

    cf->key.data = ngx_pnalloc(r->pool,
                               imcf->node_prefix.len + 4 + NGX_INT_T_LEN);
    if (cf->key.data == NULL) {
        return NGX_ERROR;
    }

    cf->key.len = ngx_sprintf(cf->key.data, "%Vinv:%i", &imcf->node_prefix,
                              event)
                  - cf->key.data;

    cf->request = r;
    cf->done = done;
    cf->data = data;
    /* from now, not from when this turn of the event loop began */

    cf->until = ngx_http_identity_cache_clock()
                + NGX_HTTP_IDENTITY_NODE_CONFIRM_WAIT;

    cf->timer.handler = ngx_http_identity_confirm_timer;
    cf->timer.data = cf;
    cf->timer.log = r->connection->log;

    cln->handler = ngx_http_identity_confirm_cleanup;
    cln->data = cf;

    ngx_http_identity_confirm_poll(cf);

    return NGX_OK;
}


/* from a timer, "done" may have posted requests: they run here */

static void
ngx_http_identity_confirm_timer(ngx_event_t *ev)
{
    ngx_connection_t             *c;
    ngx_http_identity_confirm_t  *cf = ev->data;

    c = cf->request->connection;

    ngx_http_identity_confirm_poll(cf);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_identity_confirm_poll(ngx_http_identity_confirm_t *cf)
{
    ngx_str_t  argv[2];

    if (cf->failed) {
        cf->done(cf->request, cf->data);
        return;
    }

    ngx_str_set(&argv[0], "SCARD");
    argv[1] = cf->key;

    if (ngx_http_identity_redis_request(cf->request,
                                        ngx_http_identity_confirm_reply, cf,
                                        2, argv)
        != NGX_OK)
    {
        ngx_http_identity_confirm_reply(cf->request, NULL, cf);
    }
}


static void
ngx_http_identity_confirm_reply(ngx_http_request_t *r, redisReply *reply,
    void *data)
{
    ngx_http_identity_confirm_t *cf = data;

    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "identity: every node confirmed \"%V\"", &cf->key);
        cf->done(r, cf->data);
        return;
    }

    /*
     * Whether Redis answers or not, a node that has not confirmed by then
     * has no lease left from before the revocation.  Without Redis, the
     * rest of the wait is waited out in one go.
     */

    if (reply == NULL) {
        cf->failed = 1;

        if ((ngx_msec_int_t) (cf->until - ngx_current_msec) > 0) {
            ngx_add_timer(&cf->timer, cf->until - ngx_current_msec);
            return;
        }
    }

    if ((ngx_msec_int_t) (ngx_current_msec - cf->until) >= 0) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "identity: %i node(s) did not confirm \"%V\" within "
                      "%d ms; their session caches are no longer trusted",
                      reply && reply->type == REDIS_REPLY_INTEGER
                      ? (ngx_int_t) reply->integer : (ngx_int_t) -1,
                      &cf->key, NGX_HTTP_IDENTITY_NODE_CONFIRM_WAIT);
        cf->done(r, cf->data);
        return;
    }

    ngx_add_timer(&cf->timer, NGX_HTTP_IDENTITY_NODE_POLL);
}


static void
ngx_http_identity_confirm_cleanup(void *data)
{
    ngx_http_identity_confirm_t *cf = data;

    if (cf->timer.timer_set) {
        ngx_del_timer(&cf->timer);
    }
}
