
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * Inside the OAuth protocol (ngx_http_identity_oauth.c only): its types,
 * and what the presets need of the configuration or an HTTP call
 * (Microsoft's tenant and object id, GitHub's primary address, the
 * e-mail dropped); the presets' table and their shapes of the user are
 * ngx_http_identity_oauth_user.h's.
 */


#ifndef _NGX_HTTP_IDENTITY_OAUTH_PRESETS_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_OAUTH_PRESETS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>
#include <oauth2/log.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_fetch.h"
#include "ngx_http_identity_oauth2.h"
#include "ngx_http_identity_oauth_user.h"


/* NUL-terminated copies of the configuration, read by the thread tasks */

typedef struct {
    ngx_http_identity_oauth2_client_t   client;
    char                               *authorization_endpoint;
    char                               *userinfo_endpoint;
    char                               *emails_endpoint;
    char                               *claims[5];
    char                               *email_verified;
    ngx_uint_t                          email;  /* ngx_http_identity_email_* */
    char                               *tenant;   /* microsoft, or NULL */
    ngx_uint_t                          microsoft;
    ngx_uint_t                          client_id_header;
    ngx_msec_t                          timeout;
} ngx_http_identity_oauth_conf_t;


typedef struct {
    ngx_http_identity_provider_t     *provider;
    ngx_http_identity_oauth_conf_t   *conf;

    /* in: a code grant, or the tokens of a session */
    ngx_http_identity_oauth2_grant_t  grant;
    char                             *access_token;
    char                             *refresh_token;
    time_t                            access_expires;

    /* out, malloc()ed */
    char                             *new_access;
    char                             *new_refresh;
    time_t                            new_expires;
    char                             *claims[5];
    char                             *raw;
    char                             *user_key;     /* microsoft: tid.oid */
    ngx_uint_t                        refreshed;
    ngx_uint_t                        email_unverified;   /* and dropped */

    ngx_http_identity_http_result_t   result;
} ngx_http_identity_oauth_task_t;


char *ngx_http_identity_oauth_tenant(ngx_conf_t *cf,
    ngx_http_identity_provider_t *pr, ngx_http_identity_oauth_preset_t *ps,
    ngx_http_identity_oauth_preset_t *pinned);
ngx_int_t ngx_http_identity_oauth_microsoft(
    ngx_http_identity_oauth_task_t *t, json_t *tokens);
void ngx_http_identity_oauth_vouch(ngx_http_identity_oauth_task_t *t,
    json_t *info);
char *ngx_http_identity_oauth_primary_email(
    ngx_http_identity_oauth_task_t *t, oauth2_log_t *log);
json_t *ngx_http_identity_oauth_get(ngx_http_identity_oauth_task_t *t,
    oauth2_log_t *log, const char *url, ngx_uint_t any);


#endif /* _NGX_HTTP_IDENTITY_OAUTH_PRESETS_H_INCLUDED_ */
