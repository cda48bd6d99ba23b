
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The identity_redis directive: where Redis is (one server, or the
 * sentinels that name its primary), how to log in to it, and its timeouts.
 * Names are resolved here, once: workers never make DNS queries.  The
 * connections themselves are redis.c's.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_crypto.h"
#include "ngx_http_identity_redis.h"


static ngx_int_t ngx_http_identity_redis_conf_addr(ngx_conf_t *cf,
    ngx_str_t *url, in_port_t default_port,
    ngx_http_identity_redis_addr_t *addr);
static ngx_int_t ngx_http_identity_redis_conf_password(ngx_conf_t *cf,
    ngx_str_t *arg, char *name, ngx_str_t *password);
static int ngx_http_identity_redis_conf_verify(int ok,
    X509_STORE_CTX *x509_store);
static char *ngx_http_identity_redis_conf_tls(ngx_conf_t *cf,
    ngx_http_identity_redis_conf_t *rc, ngx_str_t *ca, ngx_str_t *cert,
    ngx_str_t *key);


/*
 * identity_redis ADDRESS|sentinel=HOST:PORT,... [master=NAME]
 *                |cluster=HOST:PORT,...
 *                [sentinel_user=NAME] [sentinel_password[_file]=...]
 *                [db=N] [user=NAME] [password=S|password_file=P]
 *                [tls [ca=FILE] [cert=FILE key=FILE] [server_name=NAME]
 *                     [verify=on|off]]
 *                [timeouts]
 */

char *
ngx_http_identity_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_identity_main_conf_t *imcf = conf;

    u_char                          *p, *last;
    ngx_str_t                       *value, s, one, ca, cert, key;
    ngx_uint_t                       tls, cluster;
    ngx_array_t                     *servers;
    ngx_int_t                        n;
    ngx_uint_t                       i;
    ngx_http_identity_redis_addr_t   addr, *sa;
    ngx_http_identity_redis_conf_t  *rc;

    rc = &imcf->redis;

    if (rc->configured) {
        return "is duplicate";
    }

    value = cf->args->elts;

    rc->connect_timeout = 1000;
    rc->timeout = 1000;
    rc->tls_verify = 1;

    tls = 0;
    ngx_str_null(&ca);
    ngx_str_null(&cert);
    ngx_str_null(&key);

    cluster = (ngx_strncmp(value[1].data, "cluster=", 8) == 0);

    if (cluster || ngx_strncmp(value[1].data, "sentinel=", 9) == 0) {

        /*
         * the primary is whatever the sentinels name, a slot's whatever the
         * cluster's nodes say (redis.c)
         */

        servers = ngx_array_create(cf->pool, 3,
                                   sizeof(ngx_http_identity_redis_addr_t));
        if (servers == NULL) {
            return NGX_CONF_ERROR;
        }

        p = value[1].data + (cluster ? 8 : 9);
        last = value[1].data + value[1].len;

        while (p < last) {
            one.data = p;

            while (p < last && *p != ',') {
                p++;
            }

            one.len = p - one.data;
            p++;

            if (one.len == 0
                || ngx_http_identity_redis_conf_addr(cf, &one,
                                                     cluster ? 6379 : 26379,
                                                     &addr)
                   != NGX_OK)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid %s \"%V\" in \"%V\"",
                                   cluster ? "cluster node" : "sentinel",
                                   &one, &cmd->name);
                return NGX_CONF_ERROR;
            }

            sa = ngx_array_push(servers);
            if (sa == NULL) {
                return NGX_CONF_ERROR;
            }

            *sa = addr;
        }

        if (servers->nelts == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" names no %s",
                               &cmd->name, cluster ? "node" : "sentinel");
            return NGX_CONF_ERROR;
        }

        if (cluster) {
            rc->cluster = servers;

        } else {
            rc->sentinels = servers;
        }

    } else if (ngx_strncmp(value[1].data, "unix:", 5) == 0) {

        /* what a sockaddr_un holds, its NUL included */

        if (value[1].len == 5
            || value[1].len - 5
               >= sizeof(((struct sockaddr_un *) 0)->sun_path))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid unix socket path \"%V\" in \"%V\"",
                               &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }

        rc->unix_socket = 1;
        rc->host.len = value[1].len - 5;
        rc->host.data = ngx_pnalloc(cf->pool, rc->host.len + 1);
        if (rc->host.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(rc->host.data, value[1].data + 5, rc->host.len + 1);

    } else {
        if (ngx_http_identity_redis_conf_addr(cf, &value[1], 6379, &addr)
            != NGX_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\"",
                               &value[1], &cmd->name);
            return NGX_CONF_ERROR;
        }

        rc->host = addr.host;
        rc->port = addr.port;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "master=", 7) == 0
            && value[i].len > 7 && rc->sentinels)
        {
            rc->master.data = value[i].data + 7;
            rc->master.len = value[i].len - 7;
            continue;
        }

        if (ngx_strncmp(value[i].data, "sentinel_user=", 14) == 0
            && value[i].len > 14 && rc->sentinels)
        {
            rc->sentinel_user.data = value[i].data + 14;
            rc->sentinel_user.len = value[i].len - 14;
            continue;
        }

        if (ngx_strncmp(value[i].data, "sentinel_password", 17) == 0
            && rc->sentinels)
        {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            if (ngx_http_identity_redis_conf_password(cf, &s, "password",
                                                      &rc->sentinel_password)
                != NGX_OK)
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strcmp(value[i].data, "tls") == 0) {
            tls = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "ca=", 3) == 0 && value[i].len > 3) {
            ca.data = value[i].data + 3;
            ca.len = value[i].len - 3;
            continue;
        }

        if (ngx_strncmp(value[i].data, "cert=", 5) == 0
            && value[i].len > 5)
        {
            cert.data = value[i].data + 5;
            cert.len = value[i].len - 5;
            continue;
        }

        if (ngx_strncmp(value[i].data, "key=", 4) == 0 && value[i].len > 4) {
            key.data = value[i].data + 4;
            key.len = value[i].len - 4;
            continue;
        }

        /* SNI carries a DNS name, at most 255 bytes */

        if (ngx_strncmp(value[i].data, "server_name=", 12) == 0
            && value[i].len > 12 && value[i].len - 12 <= 255)
        {
            rc->tls_server_name.data = value[i].data + 12;
            rc->tls_server_name.len = value[i].len - 12;
            continue;
        }

        if (ngx_strcmp(value[i].data, "verify=on") == 0) {
            rc->tls_verify = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "verify=off") == 0) {
            rc->tls_verify = 0;
            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR) {
                goto invalid;
            }

            rc->db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "user=", 5) == 0
            && value[i].len > 5)
        {
            rc->user.data = value[i].data + 5;
            rc->user.len = value[i].len - 5;
            continue;
        }

        if (ngx_strncmp(value[i].data, "password", 8) == 0) {
            if (ngx_http_identity_redis_conf_password(cf, &value[i],
                                                      "password",
                                                      &rc->password)
                != NGX_OK)
            {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            s.data = value[i].data + 16;
            s.len = value[i].len - 16;

            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            rc->connect_timeout = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            rc->timeout = n;
            continue;
        }

        goto invalid;
    }

    /* a cluster has one database, and a key's slot says where it is */

    if (rc->cluster && rc->db) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": a Redis Cluster has no \"db=\"",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (rc->sentinels && rc->master.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" with sentinels needs \"master=\"",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    /* an ACL user without its password would log in as nobody */

    if ((rc->user.len && rc->password.len == 0)
        || (rc->sentinel_user.len && rc->sentinel_password.len == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" with \"%s\" needs its password",
                           &cmd->name, rc->user.len && rc->password.len == 0
                                       ? "user=" : "sentinel_user=");
        return NGX_CONF_ERROR;
    }

    if (!tls && (ca.len || cert.len || key.len || rc->tls_server_name.len
                 || !rc->tls_verify))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": \"ca=\", \"cert=\", \"key=\", "
                           "\"server_name=\" and \"verify=\" need \"tls\"",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (tls) {
        if (rc->unix_socket) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": \"tls\" over a unix socket",
                               &cmd->name);
            return NGX_CONF_ERROR;
        }

        if (ngx_http_identity_redis_conf_tls(cf, rc, &ca, &cert, &key)
            != NGX_CONF_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    rc->configured = 1;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\"", &value[i],
                       &cmd->name);

    return NGX_CONF_ERROR;
}


/* "host[:port]", resolved now: the worker never does DNS */

static ngx_int_t
ngx_http_identity_redis_conf_addr(ngx_conf_t *cf, ngx_str_t *url,
    in_port_t default_port, ngx_http_identity_redis_addr_t *addr)
{
    u_char     *p;
    ngx_url_t   u;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *url;
    u.default_port = default_port;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V: %s", url, u.err);
        }

        return NGX_ERROR;
    }

    addr->port = u.port;
    addr->host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (addr->host.data == NULL) {
        return NGX_ERROR;
    }

    addr->host.len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                                   addr->host.data, NGX_SOCKADDR_STRLEN, 0);

    /* hiredis wants an IPv6 address without brackets */

    p = addr->host.data;
    if (p[0] == '[') {
        ngx_memmove(p, p + 1, addr->host.len - 2);
        addr->host.len -= 2;
    }

    addr->host.data[addr->host.len] = '\0';

    return NGX_OK;
}


/* the chain is judged once the handshake is over (redis_conn.c), as nginx's */

static int
ngx_http_identity_redis_conf_verify(int ok, X509_STORE_CTX *x509_store)
{
    return 1;
}


/*
 * nginx's own TLS, as proxy_ssl_* sets it up: TLS 1.2 and 1.3, the
 * certificate verified against "ca" (or the system's) unless verify=off,
 * and a client certificate when one is given
 */

static char *
ngx_http_identity_redis_conf_tls(ngx_conf_t *cf,
    ngx_http_identity_redis_conf_t *rc, ngx_str_t *ca, ngx_str_t *cert,
    ngx_str_t *key)
{
    ngx_pool_cleanup_t  *cln;

    if ((cert->len == 0) != (key->len == 0)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"identity_redis\": \"cert=\" and \"key=\" "
                           "go together");
        return NGX_CONF_ERROR;
    }

    rc->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (rc->ssl == NULL) {
        return NGX_CONF_ERROR;
    }

    rc->ssl->log = cf->log;

    if (ngx_ssl_create(rc->ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(rc->ssl);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = rc->ssl;

    if (cert->len
        && ngx_ssl_certificate(cf, rc->ssl, cert, key, NULL) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (!rc->tls_verify) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"identity_redis\" with \"verify=off\": the "
                           "server's certificate is not checked");
        return NGX_CONF_OK;
    }

    if (ca->len) {
        if (ngx_ssl_trusted_certificate(cf, rc->ssl, ca, 4) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

    } else {
        SSL_CTX_set_verify(rc->ssl->ctx, SSL_VERIFY_PEER,
                           ngx_http_identity_redis_conf_verify);

        if (SSL_CTX_set_default_verify_paths(rc->ssl->ctx) != 1) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"identity_redis\": no \"ca=\" and no "
                               "system certificates");
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* "password=SECRET" or "password_file=PATH" */

static ngx_int_t
ngx_http_identity_redis_conf_password(ngx_conf_t *cf, ngx_str_t *arg,
    char *name, ngx_str_t *password)
{
    size_t     len;
    ngx_str_t  path;

    len = ngx_strlen(name);

    if (arg->len > len + 1 && arg->data[len] == '='
        && ngx_strncmp(arg->data, name, len) == 0)
    {
        password->data = arg->data + len + 1;
        password->len = arg->len - len - 1;
        return NGX_OK;
    }

    if (arg->len > len + 6 && ngx_strncmp(arg->data, name, len) == 0
        && ngx_strncmp(arg->data + len, "_file=", 6) == 0)
    {
        path.data = arg->data + len + 6;
        path.len = arg->len - len - 6;

        return ngx_http_identity_read_secret(cf, &path, password);
    }

    return NGX_ERROR;
}
