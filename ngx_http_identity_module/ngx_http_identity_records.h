
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_RECORDS_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_RECORDS_H_INCLUDED_


/*
 * The records the store reads and writes, in r->pool; a field the record
 * does not hold is an empty string, or 0.  Types only, and nothing of the
 * module's included, so that the request ctx (ngx_http_identity_types.h)
 * can hold a session without including the store above it.  How Redis
 * holds them is the store's business alone.
 */


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * What a login tells about its client; empty strings for what is not
 * known.  The location is text, as the session record keeps it: "%.4f",
 * the radius in km.
 */

typedef struct {
    ngx_str_t                        ip;
    ngx_str_t                        user_agent;      /* as sent, cut */
    ngx_str_t                        browser;
    ngx_str_t                        browser_version;
    ngx_str_t                        os;
    ngx_str_t                        os_version;
    ngx_str_t                        device;
    ngx_str_t                        device_type;
    ngx_str_t                        country;
    ngx_str_t                        latitude;        /* "%.4f" */
    ngx_str_t                        longitude;
    ngx_str_t                        radius;          /* km, or empty */
} ngx_http_identity_meta_t;


/* a session: what it says about its user, and about the client it began on */

typedef struct {
    ngx_str_t                        version;         /* of the record */
    ngx_str_t                        id;              /* public session id */
    ngx_str_t                        identity_id;
    ngx_str_t                        provider;
    ngx_str_t                        issuer;
    ngx_str_t                        provider_user_id;
    ngx_str_t                        email;
    ngx_str_t                        name;
    ngx_str_t                        username;
    ngx_str_t                        auth_id;
    ngx_str_t                        groups;          /* one per line */
    ngx_str_t                        claims;          /* JSON object */
    ngx_str_t                        access_token;    /* encrypted */
    ngx_str_t                        public_url;      /* its site */
    ngx_http_identity_meta_t         meta;
    time_t                           created_at;
    time_t                           last_active;
    time_t                           expires_at;
    time_t                           idle_timeout;
    time_t                           checked;         /* user info */
    ngx_str_t                        risk;            /* JSON array of
                                                       * {signal, detail},
                                                       * or empty */
} ngx_http_identity_session_t;


/* an identity: one user of one provider, across its sessions */

typedef struct {
    ngx_str_t                        id;
    ngx_str_t                        provider;
    ngx_str_t                        issuer;
    ngx_str_t                        provider_user_id;    /* "sub" */
    ngx_str_t                        email;
    ngx_str_t                        name;
    ngx_str_t                        username;
    time_t                           created_at;
    time_t                           last_active;
    time_t                           last_login;
} ngx_http_identity_identity_t;


/*
 * A site: a public URL (scheme://host[:port]) an identity used its
 * sessions at.  The admin API and the dashboard call it an endpoint, and
 * so do the Redis keys; the code calls it a site, as "endpoint" names the
 * module's reserved /_identity/ paths.
 */

typedef struct {
    ngx_str_t                        url;
    time_t                           first;
    time_t                           last;
    ngx_uint_t                       sessions;
} ngx_http_identity_site_t;


#endif /* _NGX_HTTP_IDENTITY_RECORDS_H_INCLUDED_ */
