
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * Inside the OIDC protocol (ngx_http_identity_oidc.c only): each worker's
 * cache of a provider's discovered metadata and JWKS, and the discovery
 * that fills it.
 */


#ifndef _NGX_HTTP_IDENTITY_OIDC_DISCOVERY_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_OIDC_DISCOVERY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"


/*
 * The states of an OIDC request (ctx->state); a request that waited for a
 * discovery is moved on by it: to "failed" if there is no metadata.
 */

enum {
    ngx_http_identity_oidc_start = 0,
    ngx_http_identity_oidc_discovery,
    ngx_http_identity_oidc_saving,
    ngx_http_identity_oidc_exchange,
    ngx_http_identity_oidc_revoking,
    ngx_http_identity_oidc_reading,
    ngx_http_identity_oidc_failed
};


typedef struct ngx_http_identity_oidc_discovery_s
    ngx_http_identity_oidc_discovery_t;


struct ngx_http_identity_oidc_cache_s {
    char                           *authorization_endpoint;
    char                           *token_endpoint;
    char                           *userinfo_endpoint;
    char                           *jwks_uri;
    char                           *end_session_endpoint;
    char                           *jwks;
    time_t                          fetched;
    time_t                          jwks_refetched;   /* for an unknown kid */

    time_t                          retry;      /* after a failed discovery */
    ngx_http_identity_oidc_discovery_t  *fetching;    /* in flight */
    ngx_queue_t                     waiting;    /* requests, for fetching */
};


ngx_int_t ngx_http_identity_oidc_caches_init(ngx_cycle_t *cycle);
ngx_http_identity_oidc_cache_t *ngx_http_identity_oidc_cache(
    ngx_http_identity_provider_t *provider);
ngx_int_t ngx_http_identity_oidc_need_metadata(ngx_http_request_t *r,
    ngx_http_identity_provider_t *provider);


#endif /* _NGX_HTTP_IDENTITY_OIDC_DISCOVERY_H_INCLUDED_ */
