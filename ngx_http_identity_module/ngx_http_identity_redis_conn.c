
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * One connection to a Redis server (or a sentinel), owned by nginx: its
 * socket is an nginx peer connection on the event loop (edge-triggered, as
 * nginx's own), TLS is nginx's OpenSSL (ngx_ssl_create_connection,
 * ngx_ssl_handshake, the certificate checked as proxy_ssl_verify does),
 * and hiredis only formats commands (redisFormatCommandArgv) and parses
 * replies (redisReader).  Replies come back in the order of the commands:
 * each has its handler in a ring; a SUBSCRIBE's handler gets every message
 * after it.
 *
 * Commands written while the loop handles a batch of events go out
 * together, once it is done (a posted write event).  When the connection
 * closes, for any reason, each pending handler is called with NULL, then
 * "closed"; a handler may free the connection, which then closes once it
 * returns.  The connection's own log is quiet (alerts only; OpenSSL's
 * errors are crit): redis.c says what happened, once per change of state.
 *
 * A reply is bounded, as a server that is broken, hostile or not Redis at
 * all (a MITM without TLS) may announce anything: hiredis's reader would
 * allocate an array whole when it reads its count, and buffer a string of
 * any length.  Here the reader builds replies with our functions (objects
 * freeReplyObject() frees), which count what one reply holds: at most
 * MAX_ELTS array elements, nested or not, and MAX_SIZE bytes, its objects
 * and what is buffered of it (the reader's buffer may hold as much again,
 * as a string is copied out of it); a string is refused by the length it
 * announces, a line (status, error) past MAX_LINE bytes without its end.
 * A reply over that closes the connection as a malformed one.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_redis_conn.h"


/* the module's largest replies, admin API pages, are kilobytes */
#define NGX_HTTP_IDENTITY_RCONN_MAX_ELTS  1048576
#define NGX_HTTP_IDENTITY_RCONN_MAX_SIZE  (64 * 1024 * 1024)
#define NGX_HTTP_IDENTITY_RCONN_MAX_LINE  65536


static void ngx_http_identity_rconn_write_handler(ngx_event_t *wev);
static void ngx_http_identity_rconn_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_http_identity_rconn_test_connect(
    ngx_http_identity_rconn_t *rc);
static void ngx_http_identity_rconn_ssl_init(ngx_http_identity_rconn_t *rc);
static void ngx_http_identity_rconn_ssl_handshake(ngx_connection_t *c);
static ngx_int_t ngx_http_identity_rconn_check_name(
    ngx_http_identity_rconn_t *rc);
static void ngx_http_identity_rconn_ready(ngx_http_identity_rconn_t *rc);
static void ngx_http_identity_rconn_flush(ngx_http_identity_rconn_t *rc);
static void ngx_http_identity_rconn_fail(ngx_http_identity_rconn_t *rc,
    const char *fmt, ngx_err_t err);
static void ngx_http_identity_rconn_close(ngx_http_identity_rconn_t *rc);
static ngx_int_t ngx_http_identity_rconn_addr(ngx_http_identity_rconn_t *rc,
    ngx_http_identity_redis_addr_t *addr, ngx_uint_t unix_socket);
static void ngx_http_identity_rconn_malformed(ngx_http_identity_rconn_t *rc);
static ngx_int_t ngx_http_identity_rconn_bounded(
    ngx_http_identity_rconn_t *rc);
static void ngx_http_identity_rconn_refuse(ngx_http_identity_rconn_t *rc,
    const char *what, uint64_t n, const char *unit, size_t max);
static redisReply *ngx_http_identity_rconn_object(const redisReadTask *task,
    int type, size_t size);
static void *ngx_http_identity_rconn_link(const redisReadTask *task,
    redisReply *reply);
static void *ngx_http_identity_rconn_string(const redisReadTask *task,
    char *str, size_t len);
static void *ngx_http_identity_rconn_array(const redisReadTask *task,
    int elements);
static void *ngx_http_identity_rconn_integer(const redisReadTask *task,
    long long value);
static void *ngx_http_identity_rconn_nil(const redisReadTask *task);


static redisReplyObjectFunctions  ngx_http_identity_rconn_replies = {
    ngx_http_identity_rconn_string,
    ngx_http_identity_rconn_array,
    ngx_http_identity_rconn_integer,
    ngx_http_identity_rconn_nil,
    freeReplyObject
};


ngx_http_identity_rconn_t *
ngx_http_identity_rconn_connect(ngx_log_t *log,
    ngx_http_identity_redis_addr_t *addr, ngx_uint_t unix_socket,
    ngx_http_identity_redis_conf_t *conf, void *data,
    ngx_http_identity_rconn_event_pt connected,
    ngx_http_identity_rconn_event_pt closed, char *why)
{
    u_char                     *p;
    ngx_int_t                   rv;
    ngx_connection_t           *c;
    ngx_http_identity_rconn_t  *rc;

    rc = ngx_calloc(sizeof(ngx_http_identity_rconn_t), log);
    if (rc == NULL) {
        ngx_cpystrn((u_char *) why, (u_char *) "out of memory",
                    NGX_HTTP_IDENTITY_RCONN_ERRLEN);
        return NULL;
    }

    rc->log = *log;
    rc->log.log_level = NGX_LOG_ALERT;
    rc->data = data;
    rc->connected = connected;
    rc->closed = closed;
    rc->ssl = conf->ssl;
    rc->verify = conf->tls_verify;
    rc->server_name = conf->tls_server_name.len ? conf->tls_server_name
                                                : addr->host;

    rc->reader = redisReaderCreateWithFunctions(
                                           &ngx_http_identity_rconn_replies);
    if (rc->reader) {
        rc->reader->privdata = rc;
    }

    if (rc->reader == NULL
        || ngx_http_identity_rconn_addr(rc, addr, unix_socket) != NGX_OK)
    {
        ngx_cpystrn((u_char *) why, (u_char *) "out of memory",
                    NGX_HTTP_IDENTITY_RCONN_ERRLEN);
        goto failed;
    }

    rc->peer.sockaddr = (struct sockaddr *) &rc->sockaddr;
    rc->peer.name = &rc->name;
    rc->peer.get = ngx_event_get_peer;
    rc->peer.log = &rc->log;
    rc->peer.log_error = NGX_ERROR_ERR;

    rv = ngx_event_connect_peer(&rc->peer);

    if (rv == NGX_ERROR || rv == NGX_BUSY || rv == NGX_DECLINED) {
        p = ngx_snprintf((u_char *) why, NGX_HTTP_IDENTITY_RCONN_ERRLEN - 1,
                         "%s", rv == NGX_DECLINED ? "connection refused"
                                                  : "no socket");
        *p = '\0';

        if (rc->peer.connection) {
            ngx_close_connection(rc->peer.connection);
        }

        goto failed;
    }

    c = rc->peer.connection;
    c->data = rc;
    c->log = &rc->log;
    c->read->log = &rc->log;
    c->write->log = &rc->log;
    c->read->handler = ngx_http_identity_rconn_read_handler;
    c->write->handler = ngx_http_identity_rconn_write_handler;
    /* TLS allocates from it */

    c->pool = ngx_create_pool(1024, &rc->log);
    if (c->pool == NULL) {
        ngx_close_connection(c);
        ngx_cpystrn((u_char *) why, (u_char *) "out of memory",
                    NGX_HTTP_IDENTITY_RCONN_ERRLEN);
        goto failed;
    }

    if (rv == NGX_OK) {
        ngx_post_event(c->write, &ngx_posted_events);
    }

    return rc;

failed:

    if (rc->reader) {
        redisReaderFree(rc->reader);
    }

    ngx_free(rc);

    return NULL;
}


/* the address is numeric or a path (identity_redis resolved it) */

static ngx_int_t
ngx_http_identity_rconn_addr(ngx_http_identity_rconn_t *rc,
    ngx_http_identity_redis_addr_t *addr, ngx_uint_t unix_socket)
{
    ngx_addr_t  a;
    ngx_pool_t  *pool;

#if (NGX_HAVE_UNIX_DOMAIN)
    struct sockaddr_un  *sun;

    if (unix_socket) {
        sun = (struct sockaddr_un *) &rc->sockaddr;

        if (addr->host.len >= sizeof(sun->sun_path)) {
            return NGX_ERROR;
        }

        sun->sun_family = AF_UNIX;
        ngx_memcpy(sun->sun_path, addr->host.data, addr->host.len);
        sun->sun_path[addr->host.len] = '\0';

        rc->peer.socklen = sizeof(struct sockaddr_un);
        rc->name.data = rc->name_data;
        rc->name.len = ngx_min(addr->host.len, NGX_SOCKADDR_STRLEN);
        ngx_memcpy(rc->name_data, addr->host.data, rc->name.len);

        return NGX_OK;
    }
#endif

    pool = ngx_create_pool(NGX_MIN_POOL_SIZE, &rc->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    if (ngx_parse_addr(pool, &a, addr->host.data, addr->host.len) != NGX_OK
        || a.socklen > sizeof(struct sockaddr_storage))
    {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    ngx_memcpy(&rc->sockaddr, a.sockaddr, a.socklen);
    rc->peer.socklen = a.socklen;
    ngx_inet_set_port((struct sockaddr *) &rc->sockaddr, addr->port);

    ngx_destroy_pool(pool);

    rc->name.data = rc->name_data;
    rc->name.len = ngx_sock_ntop((struct sockaddr *) &rc->sockaddr,
                                 rc->peer.socklen, rc->name_data,
                                 NGX_SOCKADDR_STRLEN, 1);

    return NGX_OK;
}


ngx_int_t
ngx_http_identity_rconn_command(ngx_http_identity_rconn_t *rc,
    ngx_http_identity_rconn_reply_pt handler, void *data, ngx_uint_t every,
    ngx_uint_t argc, const char **argv, const size_t *lens)
{
    u_char                        *p;
    char                          *cmd;
    size_t                         size;
    long long                      len;
    ngx_uint_t                     i, n;
    ngx_connection_t              *c;
    ngx_http_identity_rconn_cb_t  *cbs;

    if (rc->done || rc->freeing || rc->err) {
        return NGX_ERROR;
    }

    len = redisFormatCommandArgv(&cmd, (int) argc, argv, lens);
    if (len < 0) {
        return NGX_ERROR;
    }

    if (rc->out_len + len > rc->out_size) {
        size = ngx_max(2 * rc->out_size, rc->out_len + (size_t) len);
        size = ngx_max(size, 4096);

        p = ngx_alloc(size, &rc->log);
        if (p == NULL) {
            redisFreeCommand(cmd);
            return NGX_ERROR;
        }

        if (rc->out) {
            ngx_memcpy(p, rc->out, rc->out_len);
            ngx_free(rc->out);
        }

        rc->out = p;
        rc->out_size = size;
    }

    if (rc->count == rc->size) {
        n = rc->size ? 2 * rc->size : 16;

        cbs = ngx_alloc(n * sizeof(ngx_http_identity_rconn_cb_t), &rc->log);
        if (cbs == NULL) {
            redisFreeCommand(cmd);
            return NGX_ERROR;
        }

        for (i = 0; i < rc->count; i++) {
            cbs[i] = rc->cbs[(rc->head + i) % rc->size];
        }

        if (rc->cbs) {
            ngx_free(rc->cbs);
        }

        rc->cbs = cbs;
        rc->head = 0;
        rc->size = n;
    }

    ngx_memcpy(rc->out + rc->out_len, cmd, (size_t) len);
    rc->out_len += len;
    redisFreeCommand(cmd);

    cbs = &rc->cbs[(rc->head + rc->count) % rc->size];
    cbs->handler = handler;
    cbs->data = data;
    cbs->every = every;
    rc->count++;

    /* written once the current batch of events is handled */

    c = rc->peer.connection;

    if (rc->ready && !c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }

    return NGX_OK;
}


/*
 * An IP address, as the sentinels must name a primary: connected to as it
 * is and logged, so bounded (workers make no DNS queries)
 */

ngx_int_t
ngx_http_identity_rconn_numeric(u_char *host, size_t len)
{
#if (NGX_HAVE_INET6)
    u_char  addr[16];
#endif

    if (len == 0 || len > NGX_SOCKADDR_STRLEN) {
        return NGX_ERROR;
    }

    if (ngx_inet_addr(host, len) != INADDR_NONE) {
        return NGX_OK;
    }

#if (NGX_HAVE_INET6)
    if (ngx_inet6_addr(host, len, addr) == NGX_OK) {
        return NGX_OK;
    }
#endif

    return NGX_ERROR;
}


void
ngx_http_identity_rconn_free(ngx_http_identity_rconn_t *rc)
{
    if (rc->in_callback) {
        rc->freeing = 1;
        return;
    }

    ngx_http_identity_rconn_close(rc);
}


static void
ngx_http_identity_rconn_write_handler(ngx_event_t *wev)
{
    ngx_connection_t           *c = wev->data;
    ngx_http_identity_rconn_t  *rc = c->data;

    if (rc->ready) {
        ngx_http_identity_rconn_flush(rc);
        return;
    }

    /* the non-blocking connect() is over */

    if (ngx_http_identity_rconn_test_connect(rc) != NGX_OK) {
        return;
    }

    if (rc->ssl && c->ssl == NULL) {
        ngx_http_identity_rconn_ssl_init(rc);
        return;
    }

    ngx_http_identity_rconn_ready(rc);
}


static ngx_int_t
ngx_http_identity_rconn_test_connect(ngx_http_identity_rconn_t *rc)
{
    int                err;
    socklen_t          len;
    ngx_connection_t  *c;

    c = rc->peer.connection;
    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        ngx_http_identity_rconn_fail(rc, "connect failed", err);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_identity_rconn_ssl_init(ngx_http_identity_rconn_t *rc)
{
    u_char            *name;
    ngx_int_t          rv;
    ngx_connection_t  *c;

    c = rc->peer.connection;

    if (ngx_ssl_create_connection(rc->ssl, c, NGX_SSL_BUFFER|NGX_SSL_CLIENT)
        != NGX_OK)
    {
        ngx_http_identity_rconn_fail(rc, "TLS setup failed", 0);
        return;
    }

    c->ssl->no_wait_shutdown = 1;
    c->ssl->no_send_shutdown = 1;

    /* SNI, when the name is a name */

    if (rc->server_name.len
        && ngx_inet_addr(rc->server_name.data, rc->server_name.len)
           == INADDR_NONE
        && ngx_strlchr(rc->server_name.data,
                       rc->server_name.data + rc->server_name.len, ':')
           == NULL)
    {
        name = ngx_alloc(rc->server_name.len + 1, &rc->log);
        if (name == NULL) {
            ngx_http_identity_rconn_fail(rc, "TLS setup failed", 0);
            return;
        }

        (void) ngx_cpystrn(name, rc->server_name.data,
                           rc->server_name.len + 1);

        rv = SSL_set_tlsext_host_name(c->ssl->connection, (char *) name);
        ngx_free(name);

        if (rv == 0) {
            ngx_http_identity_rconn_fail(rc, "TLS setup failed", 0);
            return;
        }
    }

    rv = ngx_ssl_handshake(c);

    if (rv == NGX_AGAIN) {
        c->ssl->handler = ngx_http_identity_rconn_ssl_handshake;
        return;
    }

    ngx_http_identity_rconn_ssl_handshake(c);
}


/* as proxy_ssl_verify: the chain, then the name */

static void
ngx_http_identity_rconn_ssl_handshake(ngx_connection_t *c)
{
    long                        v;
    ngx_http_identity_rconn_t  *rc = c->data;

    if (!c->ssl->handshaked) {
        ngx_http_identity_rconn_fail(rc, "TLS handshake failed", 0);
        return;
    }

    if (rc->verify) {
        v = SSL_get_verify_result(c->ssl->connection);

        if (v != X509_V_OK) {
            ngx_snprintf((u_char *) rc->errstr,
                         NGX_HTTP_IDENTITY_RCONN_ERRLEN - 1,
                         "its certificate failed verification: %s%Z",
                         X509_verify_cert_error_string(v));
            rc->err = 1;
            ngx_http_identity_rconn_close(rc);
            return;
        }

        if (ngx_http_identity_rconn_check_name(rc) != NGX_OK) {
            ngx_snprintf((u_char *) rc->errstr,
                         NGX_HTTP_IDENTITY_RCONN_ERRLEN - 1,
                         "its certificate does not match \"%V\"%Z",
                         &rc->server_name);
            rc->err = 1;
            ngx_http_identity_rconn_close(rc);
            return;
        }
    }

    c->read->handler = ngx_http_identity_rconn_read_handler;
    c->write->handler = ngx_http_identity_rconn_write_handler;

    ngx_http_identity_rconn_ready(rc);
}


/* a name against the certificate's names; an address against its IPs */

static ngx_int_t
ngx_http_identity_rconn_check_name(ngx_http_identity_rconn_t *rc)
{
    int                rv;
    u_char             ip[NGX_SOCKADDR_STRLEN + 1];
    X509              *cert;
    ngx_addr_t         a;
    ngx_pool_t        *pool;
    ngx_connection_t  *c;

    c = rc->peer.connection;
    pool = c->pool;

    if (rc->server_name.len > NGX_SOCKADDR_STRLEN
        || ngx_parse_addr(pool, &a, rc->server_name.data, rc->server_name.len)
           != NGX_OK)
    {
        return ngx_ssl_check_host(c, &rc->server_name);
    }

    cert = SSL_get_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_cpystrn(ip, rc->server_name.data, rc->server_name.len + 1);

    rv = X509_check_ip_asc(cert, (char *) ip, 0);
    X509_free(cert);

    return rv == 1 ? NGX_OK : NGX_ERROR;
}


static void
ngx_http_identity_rconn_ready(ngx_http_identity_rconn_t *rc)
{
    ngx_connection_t  *c;

    c = rc->peer.connection;
    rc->ready = 1;

    /* a failure in here closes the connection once this is done with it */

    rc->in_callback = 1;
    rc->connected(rc, 1);

    if (!rc->freeing) {
        ngx_http_identity_rconn_flush(rc);
    }

    rc->in_callback = 0;

    if (rc->freeing) {
        ngx_http_identity_rconn_close(rc);
        return;
    }

    if (c->read->ready) {
        ngx_http_identity_rconn_read_handler(c->read);
    }
}


static void
ngx_http_identity_rconn_flush(ngx_http_identity_rconn_t *rc)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = rc->peer.connection;

    while (rc->out_sent < rc->out_len) {
        n = c->send(c, rc->out + rc->out_sent, rc->out_len - rc->out_sent);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_http_identity_rconn_fail(rc, "write failed", 0);
            }

            return;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_http_identity_rconn_fail(rc, c->ssl ? "TLS write failed"
                                                    : "write failed",
                                         c->ssl ? 0 : ngx_socket_errno);
            return;
        }

        rc->out_sent += n;
    }

    rc->out_len = 0;
    rc->out_sent = 0;
}


static void
ngx_http_identity_rconn_read_handler(ngx_event_t *rev)
{
    void                          *r;
    u_char                         buf[16384];
    ssize_t                        n;
    ngx_connection_t              *c = rev->data;
    ngx_http_identity_rconn_cb_t   cb;
    ngx_http_identity_rconn_t     *rc = c->data;

    if (!rc->ready) {
        return;
    }

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0) {
            ngx_http_identity_rconn_fail(rc, "Server closed the connection",
                                         0);
            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_identity_rconn_fail(rc, c->ssl ? "TLS read failed"
                                                    : "read failed",
                                         c->ssl ? 0 : ngx_socket_errno);
            return;
        }

        if (redisReaderFeed(rc->reader, (const char *) buf, n) != REDIS_OK) {
            ngx_http_identity_rconn_fail(rc, "out of memory", 0);
            return;
        }

        for ( ;; ) {
            r = NULL;

            if (redisReaderGetReply(rc->reader, &r) != REDIS_OK) {
                ngx_http_identity_rconn_malformed(rc);
                return;
            }

            if (r == NULL) {
                if (ngx_http_identity_rconn_bounded(rc) != NGX_OK) {
                    ngx_http_identity_rconn_malformed(rc);
                    return;
                }

                break;
            }

            rc->reply_size = 0;
            rc->reply_elts = 0;

            if (rc->count == 0) {
                freeReplyObject(r);
                ngx_http_identity_rconn_fail(rc, "sent a reply to nothing",
                                             0);
                return;
            }

            cb = rc->cbs[rc->head];

            if (!cb.every) {
                rc->head = (rc->head + 1) % rc->size;
                rc->count--;
            }

            rc->in_callback = 1;
            cb.handler(rc, r, cb.data);
            rc->in_callback = 0;

            freeReplyObject(r);

            if (rc->freeing) {
                ngx_http_identity_rconn_close(rc);
                return;
            }
        }

        /*
         * A short read of a plain socket drained it: what comes later is a
         * new edge, so no recv() is spent to learn EAGAIN.  OpenSSL may
         * hold more than the socket showed: read on.
         */

        if (c->ssl == NULL && (size_t) n < sizeof(buf)) {
            rev->ready = 0;
            break;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_identity_rconn_fail(rc, "read failed", 0);
    }
}


static void
ngx_http_identity_rconn_fail(ngx_http_identity_rconn_t *rc, const char *what,
    ngx_err_t err)
{
    u_char  *p;

    p = ngx_snprintf((u_char *) rc->errstr,
                     NGX_HTTP_IDENTITY_RCONN_ERRLEN - 1, "%s", what);

    if (err) {
        p = ngx_snprintf(p, (u_char *) rc->errstr
                            + NGX_HTTP_IDENTITY_RCONN_ERRLEN - 1 - p,
                         ": ");
        p = ngx_strerror(err, p, (u_char *) rc->errstr
                                 + NGX_HTTP_IDENTITY_RCONN_ERRLEN - 1 - p);
    }

    *p = '\0';
    rc->err = 1;

    if (rc->in_callback) {
        rc->freeing = 1;
        return;
    }

    ngx_http_identity_rconn_close(rc);
}


/* what the reader refused, bounded: its words or ours, never the bytes */

static void
ngx_http_identity_rconn_malformed(ngx_http_identity_rconn_t *rc)
{
    u_char  *p;

    if (!rc->refused) {
        p = ngx_snprintf((u_char *) rc->errstr,
                         NGX_HTTP_IDENTITY_RCONN_ERRLEN - 1,
                         "sent a malformed reply (%s)", rc->reader->errstr);
        *p = '\0';
    }

    rc->err = 1;
    ngx_http_identity_rconn_close(rc);
}


/*
 * What the reader holds of a reply it has not finished: the bytes it
 * buffered; a line (a status, an error, a number, a length) without its
 * end, as the reader looks for that end again in all it holds at each
 * read; and the length a string announced, before the string comes.  The
 * reader's stack (read.h) says what the item begun is; its buffer starts
 * there.
 */

static ngx_int_t
ngx_http_identity_rconn_bounded(ngx_http_identity_rconn_t *rc)
{
    size_t        unread, max;
    u_char       *p, *last;
    uint64_t      n;
    redisReader  *reader;

    reader = rc->reader;
    max = NGX_HTTP_IDENTITY_RCONN_MAX_SIZE - rc->reply_size;
    unread = reader->len - reader->pos;

    if (unread > max) {
        ngx_http_identity_rconn_refuse(rc, "", rc->reply_size + unread,
                                       "bytes",
                                       NGX_HTTP_IDENTITY_RCONN_MAX_SIZE);
        return NGX_ERROR;
    }

    if (reader->ridx < 0 || unread == 0) {
        return NGX_OK;
    }

    p = (u_char *) reader->buf + reader->pos;
    last = p + ngx_min(unread, NGX_HTTP_IDENTITY_RCONN_MAX_LINE + 2);

    while (p + 1 < last && (p[0] != CR || p[1] != LF)) {
        p++;
    }

    if (p + 1 >= last && unread > NGX_HTTP_IDENTITY_RCONN_MAX_LINE + 1) {
        ngx_http_identity_rconn_refuse(rc, "a line of ", unread, "bytes",
                                       NGX_HTTP_IDENTITY_RCONN_MAX_LINE);
        return NGX_ERROR;
    }

    if (reader->rstack[reader->ridx].type != REDIS_REPLY_STRING) {
        return NGX_OK;
    }

    /* 19 digits at most: hiredis takes no length over LLONG_MAX */

    p = (u_char *) reader->buf + reader->pos;
    last = p + ngx_min(unread, 19);
    n = 0;

    while (p < last && *p >= '0' && *p <= '9') {
        n = n * 10 + (*p++ - '0');
    }

    if (n + sizeof(redisReply) + 1 > max) {
        ngx_http_identity_rconn_refuse(rc, "a string of ", n, "bytes",
                                       NGX_HTTP_IDENTITY_RCONN_MAX_SIZE);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_identity_rconn_refuse(ngx_http_identity_rconn_t *rc,
    const char *what, uint64_t n, const char *unit, size_t max)
{
    u_char  *p;

    p = ngx_snprintf((u_char *) rc->errstr,
                     NGX_HTTP_IDENTITY_RCONN_ERRLEN - 1,
                     "sent a reply out of bounds: %s%uL %s (at most %uz)",
                     what, n, unit, max);
    *p = '\0';

    rc->refused = 1;
}


/*
 * The reader's object functions: what freeReplyObject() frees (malloc()ed
 * objects, strings terminated, arrays of pointers), each counted into the
 * reply first.  NULL tells the reader to give up.
 */

static redisReply *
ngx_http_identity_rconn_object(const redisReadTask *task, int type,
    size_t size)
{
    redisReply                 *reply;
    ngx_http_identity_rconn_t  *rc = task->privdata;

    size += sizeof(redisReply);

    if (size > NGX_HTTP_IDENTITY_RCONN_MAX_SIZE - rc->reply_size) {
        ngx_http_identity_rconn_refuse(rc, "", rc->reply_size + size,
                                       "bytes",
                                       NGX_HTTP_IDENTITY_RCONN_MAX_SIZE);
        return NULL;
    }

    rc->reply_size += size;

    reply = ngx_calloc(sizeof(redisReply), &rc->log);
    if (reply == NULL) {
        return NULL;
    }

    reply->type = type;

    return reply;
}


/* its parent holds it, once it is whole (freed with the parent, then) */

static void *
ngx_http_identity_rconn_link(const redisReadTask *task, redisReply *reply)
{
    redisReply  *parent;

    if (task->parent) {
        parent = task->parent->obj;
        parent->element[task->idx] = reply;
    }

    return reply;
}


static void *
ngx_http_identity_rconn_string(const redisReadTask *task, char *str,
    size_t len)
{
    redisReply                 *reply;
    ngx_http_identity_rconn_t  *rc = task->privdata;

    reply = ngx_http_identity_rconn_object(task, task->type, len + 1);
    if (reply == NULL) {
        return NULL;
    }

    reply->str = ngx_alloc(len + 1, &rc->log);
    if (reply->str == NULL) {
        ngx_free(reply);
        return NULL;
    }

    ngx_memcpy(reply->str, str, len);
    reply->str[len] = '\0';
    reply->len = len;

    return ngx_http_identity_rconn_link(task, reply);
}


static void *
ngx_http_identity_rconn_array(const redisReadTask *task, int elements)
{
    redisReply                 *reply;
    ngx_http_identity_rconn_t  *rc = task->privdata;

    if (elements < 0
        || (ngx_uint_t) elements
           > NGX_HTTP_IDENTITY_RCONN_MAX_ELTS - rc->reply_elts)
    {
        ngx_http_identity_rconn_refuse(rc, "",
                                       (uint64_t) elements + rc->reply_elts,
                                       "array elements",
                                       NGX_HTTP_IDENTITY_RCONN_MAX_ELTS);
        return NULL;
    }

    rc->reply_elts += elements;

    reply = ngx_http_identity_rconn_object(task, REDIS_REPLY_ARRAY,
                                           elements * sizeof(redisReply *));
    if (reply == NULL) {
        return NULL;
    }

    if (elements) {
        reply->element = ngx_calloc(elements * sizeof(redisReply *),
                                    &rc->log);
        if (reply->element == NULL) {
            ngx_free(reply);
            return NULL;
        }

        reply->elements = elements;
    }

    return ngx_http_identity_rconn_link(task, reply);
}


static void *
ngx_http_identity_rconn_integer(const redisReadTask *task, long long value)
{
    redisReply  *reply;

    reply = ngx_http_identity_rconn_object(task, REDIS_REPLY_INTEGER, 0);
    if (reply == NULL) {
        return NULL;
    }

    reply->integer = value;

    return ngx_http_identity_rconn_link(task, reply);
}


static void *
ngx_http_identity_rconn_nil(const redisReadTask *task)
{
    redisReply  *reply;

    reply = ngx_http_identity_rconn_object(task, REDIS_REPLY_NIL, 0);
    if (reply == NULL) {
        return NULL;
    }

    return ngx_http_identity_rconn_link(task, reply);
}


/*
 * The socket first, so that nothing more comes; then each pending command
 * learns that it failed, and the owner that the connection is gone.
 */

static void
ngx_http_identity_rconn_close(ngx_http_identity_rconn_t *rc)
{
    ngx_connection_t              *c;
    ngx_http_identity_rconn_cb_t   cb;

    if (rc->done) {
        return;
    }

    rc->done = 1;
    c = rc->peer.connection;

    if (c) {
        if (c->ssl) {
            (void) ngx_ssl_shutdown(c);
        }

        if (c->pool) {
            ngx_destroy_pool(c->pool);
        }

        ngx_close_connection(c);
        rc->peer.connection = NULL;
    }

    rc->in_callback = 1;

    while (rc->count) {
        cb = rc->cbs[rc->head];
        rc->head = (rc->head + 1) % rc->size;
        rc->count--;

        cb.handler(rc, NULL, cb.data);
    }

    rc->closed(rc, rc->err);

    if (rc->reader) {
        redisReaderFree(rc->reader);
    }

    if (rc->out) {
        ngx_free(rc->out);
    }

    if (rc->cbs) {
        ngx_free(rc->cbs);
    }

    ngx_free(rc);
}
