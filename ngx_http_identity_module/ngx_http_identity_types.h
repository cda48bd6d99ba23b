
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_TYPES_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_TYPES_H_INCLUDED_


/*
 * The types every file shares: the conf structs, the provider, the
 * records a session and a login carry, and the request ctx.  Types only:
 * each file's functions are declared in its own header, so that any file
 * can include this one without including a file above it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>

#include "ngx_http_identity_records.h"


/* ua.h's parser, opaque here: the main conf only holds it */
typedef struct ngx_http_identity_ua_parser_s  ngx_http_identity_ua_parser_t;

/* cache.h's session cache, as opaque */
typedef struct ngx_http_identity_cache_s  ngx_http_identity_cache_t;


#define NGX_HTTP_IDENTITY_OIDC           1
#define NGX_HTTP_IDENTITY_SAML           2
#define NGX_HTTP_IDENTITY_OAUTH          3

#define NGX_HTTP_IDENTITY_AUTH_BASIC     0
#define NGX_HTTP_IDENTITY_AUTH_POST      1

#define NGX_HTTP_IDENTITY_USERINFO_OFF   0
#define NGX_HTTP_IDENTITY_USERINFO_ON    1
#define NGX_HTTP_IDENTITY_USERINFO_AUTO  2

#define NGX_HTTP_IDENTITY_TOKEN_LEN      43    /* base64url of 32 bytes */
#define NGX_HTTP_IDENTITY_STATE_TTL      600


typedef struct ngx_http_identity_oidc_cache_s  ngx_http_identity_oidc_cache_t;
typedef struct ngx_http_identity_protocol_s    ngx_http_identity_protocol_t;
typedef struct ngx_http_identity_route_s       ngx_http_identity_route_t;


typedef struct {
    ngx_str_t                        name;
    ngx_uint_t                       type;
    ngx_http_identity_protocol_t    *protocol;    /* picked by type */
    ngx_uint_t                       index;
    ngx_uint_t                       defined;

    ngx_str_t                        issuer;
    ngx_str_t                        client_id;
    ngx_str_t                        client_secret;
    ngx_str_t                        scopes;
    ngx_str_t                        authorization_params;
    ngx_str_t                        redirect_uri;
    ngx_array_t                     *signing_algs;    /* of ngx_str_t */
    ngx_uint_t                       token_auth;
    ngx_uint_t                       userinfo;        /* _USERINFO_* */
    ngx_flag_t                       end_session;
    ngx_msec_t                       http_timeout;
    ngx_uint_t                       http_concurrency; /* tasks per worker */
    time_t                           leeway;
    time_t                           metadata_ttl;
    time_t                           jwks_refetch_interval;

    /* saml; the issuer is the IdP's entity id */
    ngx_str_t                        idp_metadata;        /* contents */
    ngx_str_t                        idp_metadata_url;
    ngx_str_t                        sp_cert;             /* PEM */
    ngx_str_t                        sp_key;              /* PEM */
    ngx_str_t                        sp_entity_id;
    ngx_str_t                        nameid_format;
    ngx_flag_t                       force_authn;
    ngx_flag_t                       allow_idp_initiated;
    ngx_str_t                        attributes[5];       /* id, email, name,
                                                             username,
                                                             groups */
    ngx_array_t                     *authorized_groups;   /* of ngx_str_t */

    /* oauth; attributes[] are the claim paths in the user info */
    ngx_str_t                        preset;
    ngx_str_t                        authorization_endpoint;
    ngx_str_t                        token_endpoint;
    ngx_str_t                        userinfo_endpoint;
    ngx_str_t                        emails_endpoint;
    ngx_str_t                        email_verified;  /* claim path */
    ngx_str_t                        tenant;          /* microsoft */
    ngx_flag_t                       pkce;
    time_t                           userinfo_refresh_interval;
    void                            *oauth;   /* for the thread tasks */

    ngx_str_t                        conf_file;
    ngx_uint_t                       conf_line;
} ngx_http_identity_provider_t;


/* a Redis server's or a sentinel's address: numeric, NUL-terminated */

typedef struct {
    ngx_str_t                        host;        /* numeric IP or path */
    in_port_t                        port;
} ngx_http_identity_redis_addr_t;


typedef struct {
    ngx_str_t                        host;        /* numeric IP or path */
    in_port_t                        port;
    ngx_uint_t                       unix_socket;
    ngx_array_t                     *sentinels;   /* of _redis_addr_t */
    ngx_array_t                     *cluster;     /* its nodes, as these */
    ngx_str_t                        master;      /* the sentinels' name */
    ngx_str_t                        sentinel_user;
    ngx_str_t                        sentinel_password;
    ngx_uint_t                       db;
    ngx_str_t                        user;        /* an ACL user, or "" */
    ngx_str_t                        password;
    ngx_ssl_t                       *ssl;         /* NULL: plain TCP */
    ngx_str_t                        tls_server_name;
    ngx_uint_t                       tls_verify;
    ngx_msec_t                       connect_timeout;
    ngx_msec_t                       timeout;
    ngx_uint_t                       configured;
} ngx_http_identity_redis_conf_t;


typedef struct {
    ngx_http_identity_redis_conf_t   redis;
    ngx_array_t                      providers;   /* of provider * */
    ngx_http_identity_protocol_t   **protocols;   /* NULL-terminated */
    ngx_thread_pool_t               *thread_pool;
    ngx_str_t                        key_prefix;
    ngx_str_t                       *shards;      /* the keys' prefixes */
    ngx_uint_t                       nshards;     /* 1, or 16 (cluster) */
    ngx_str_t                        node_prefix; /* the nodes' keys' */
    u_char                          *token_key;   /* AES-256, or NULL */
    ngx_http_identity_ua_parser_t   *ua;
    ngx_uint_t                       ua_set;
    ngx_array_t                     *geo;   /* of ngx_http_identity_geo_t * */
    ngx_uint_t                       need;  /* session fields variables use */
    ngx_int_t                        request_id;  /* variable index */
    ngx_array_t                     *claims_kept;  /* of ngx_str_t, the
                                                      claims rules read */
    ngx_http_identity_cache_t       *cache;       /* or NULL: strict */
    ngx_array_t                     *cookies;     /* of ngx_str_t: every
                                                     identity_cookie_name
                                                     in use, stripped in
                                                     every server */
    ngx_int_t                        audit_stream_size;  /* 0: no stream */
    ngx_open_file_t                 *audit_file;  /* identity_audit_log */
    ngx_syslog_peer_t               *audit_syslog;
    ngx_uint_t                       risk_action[4];  /* by signal:
                                                         NGX_HTTP_IDENTITY_
                                                         RISK_FLAG ...; the
                                                         whole nginx's */
    ngx_uint_t                       risk_speed;  /* km/h */
    ngx_uint_t                       risk_max;    /* concurrent sessions */
} ngx_http_identity_main_conf_t;


typedef struct {
    ngx_str_t                        path;
    ngx_str_t                        public_url;  /* scheme://host[:port] */
    ngx_uint_t                       public_https;
    ngx_array_t                     *names;       /* server_name entries,
                                                     ngx_http_server_name_t */
    ngx_array_t                     *providers;   /* used in this server */
    ngx_array_t                     *auths;       /* of loc conf *, with
                                                     an auth id */
} ngx_http_identity_srv_conf_t;


typedef struct {
    ngx_http_identity_provider_t    *provider;
    ngx_uint_t                       off;
    time_t                           idle_timeout;
    time_t                           max_duration;
    time_t                           touch_interval;
    ngx_str_t                        cookie_name;
    ngx_str_t                        cookie_domain;
    ngx_str_t                        auth_id;
    ngx_str_t                        session_cookie;  /* name, auth id */
    ngx_flag_t                       cors_preflight;
    ngx_array_t                     *rules;           /* authorization */
    ngx_str_t                        admin_token_hash;    /* sha256 hex */
    ngx_flag_t                       admin;
} ngx_http_identity_loc_conf_t;


/* claims of a fresh login, produced off the loop by a protocol */

typedef struct {
    ngx_str_t                        provider_user_id;
    ngx_str_t                        email;
    ngx_str_t                        name;
    ngx_str_t                        username;
    ngx_str_t                        sid;             /* IdP session id */
    ngx_str_t                        groups;          /* one per line */
    ngx_str_t                        raw;             /* JSON object */
    ngx_str_t                        access_token;    /* in clear */
    ngx_str_t                        refresh_token;
    time_t                           access_expires;  /* 0: unknown */
} ngx_http_identity_claims_t;


/* a pending login, kept in Redis between the redirect and the callback */

typedef struct {
    ngx_str_t                        provider;
    ngx_str_t                        nonce;
    ngx_str_t                        code_verifier;
    ngx_str_t                        return_to;
    ngx_str_t                        cookie_name;
    ngx_str_t                        cookie_domain;
    ngx_str_t                        redirect_uri;    /* or SAML ACS */
    ngx_str_t                        sp_entity_id;    /* SAML */
    ngx_str_t                        auth_id;
    time_t                           idle_timeout;
    time_t                           max_duration;
} ngx_http_identity_login_state_t;


typedef struct ngx_http_identity_ctx_s  ngx_http_identity_ctx_t;

/* how the session of a request was found: $identity_session_cache */
#define NGX_HTTP_IDENTITY_CACHE_NONE    0     /* no cache, or no lookup */
#define NGX_HTTP_IDENTITY_CACHE_HIT     1
#define NGX_HTTP_IDENTITY_CACHE_MISS    2
#define NGX_HTTP_IDENTITY_CACHE_BYPASS  3     /* cache not trusted now */

typedef void (*ngx_http_identity_resume_pt)(ngx_http_request_t *r);


struct ngx_http_identity_ctx_s {
    ngx_uint_t                       protect;         /* access phase step */
    ngx_http_identity_route_t       *route;           /* reserved path */
    ngx_uint_t                       finish;          /* login.c's step */
    ngx_uint_t                       state;           /* protocol step */
    ngx_int_t                        status;          /* final answer */
    ngx_uint_t                       need;            /* session fields */
    ngx_http_identity_resume_pt      resume;

    ngx_str_t                        token;           /* cookie secret */
    u_char                          *session_key;     /* its hex SHA-256 */
    ngx_uint_t                       cache_seq;       /* of a cache miss */
    ngx_uint_t                       cache_status;    /* NGX_HTTP_IDENTITY_
                                                         CACHE_* */
    ngx_http_identity_session_t      session;
    ngx_http_identity_login_state_t  login;
    ngx_http_identity_claims_t       claims;
    ngx_http_identity_provider_t    *provider;

    void                            *admin;           /* admin API state */
    char                            *fail_reason;     /* a failed login's,
                                                         for its event */

    ngx_str_t                        risk_seen[4];    /* the identity's
                                                         countries, devices,
                                                         last place; the new
                                                         session's packed
                                                         risk (store_risk.c) */
    ngx_uint_t                       risk_denied;     /* signal + 1, or 0 */

    ngx_str_t                        state_param;
    ngx_str_t                        code;
    ngx_str_t                        redirect_uri;

    unsigned                         authenticated:1;
    unsigned                         found:1;
    unsigned                         redis_error:1;
    unsigned                         body_ready:1;
    unsigned                         refreshed:1;
    unsigned                         denied:1;
    unsigned                         reauth:1;        /* session ended */
    unsigned                         told:1;          /* failure logged */
    unsigned                         meta_done:1;     /* session.meta */
    unsigned                         risk_revoke:1;   /* revoke_others */
};


extern ngx_module_t  ngx_http_identity_module;


#endif /* _NGX_HTTP_IDENTITY_TYPES_H_INCLUDED_ */
