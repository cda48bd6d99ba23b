
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * Inside the OIDC protocol (ngx_http_identity_oidc.c only): what runs in
 * the thread pool to check a provider's JWS.  The exchange of a code for
 * tokens with the ID token verified (and userinfo merged), and the check of
 * a back-channel logout token, fill an ngx_http_identity_oidc_exchange_t
 * that the loop side prepared; they return through it and call nothing of
 * the protocol.
 */


#ifndef _NGX_HTTP_IDENTITY_OIDC_TOKEN_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_OIDC_TOKEN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_fetch.h"
#include "ngx_http_identity_oauth2.h"


#define NGX_HTTP_IDENTITY_LOGOUT_MAX_AGE    300


/*
 * In: copies of the configuration and the cached metadata, for the thread;
 * out: malloc()ed, freed by ngx_http_identity_oidc_exchange_free().
 */

typedef struct {
    ngx_http_identity_provider_t       *provider;
    ngx_http_identity_oauth2_client_t   client;
    ngx_http_identity_oauth2_grant_t    grant;
    char                               *userinfo_endpoint;
    char                               *jwks_uri;
    char                               *jwks;
    char                               *issuer;
    char                               *client_id;
    char                               *nonce;
    char                               *logout_token;
    ngx_uint_t                          may_refetch;
    ngx_uint_t                          userinfo;       /* _USERINFO_* */
    ngx_uint_t                          want_email;     /* scope email */
    ngx_uint_t                          want_profile;   /* scope profile */
    ngx_uint_t                          want_groups;    /* scope groups */

    char                               *new_jwks;
    char                               *sub;
    char                               *email;
    ngx_uint_t                          email_verified;  /* by its source */
    ngx_uint_t                          email_vouched;   /* said either way */
    ngx_uint_t                          email_unverified;   /* and dropped */
    ngx_uint_t                          userinfo_called;
    char                               *name;
    char                               *username;
    char                               *sid;
    char                               *groups;
    char                               *raw;        /* the claims, JSON */
    char                               *jti;
    ngx_http_identity_http_result_t     result;
} ngx_http_identity_oidc_exchange_t;


void ngx_http_identity_oidc_backchannel_run(void *data);
void ngx_http_identity_oidc_exchange_run(void *data);
void ngx_http_identity_oidc_exchange_free(void *data);


#endif /* _NGX_HTTP_IDENTITY_OIDC_TOKEN_H_INCLUDED_ */
