
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * Inside the OAuth protocol: the presets' table and each one's shape of the
 * user, read from the provider's JSON with no task, request or HTTP call.
 */


#ifndef _NGX_HTTP_IDENTITY_OAUTH_USER_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_OAUTH_USER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <jansson.h>


/*
 * Who vouches for a user info e-mail (docs/security/oidc-email.md); an
 * e-mail no one vouches for is dropped, so that no rule can match it.
 */

enum {
    ngx_http_identity_email_none = 0,  /* never: no word from the provider */
    ngx_http_identity_email_path,      /* a claim path says true */
    ngx_http_identity_email_stamp,     /* a claim path has a date */
    ngx_http_identity_email_documented,   /* verified by definition */
    ngx_http_identity_email_github,    /* the verified primary address */
    ngx_http_identity_email_tenant     /* microsoft, with a pinned tenant */
};


/* claim paths: id, email, name, username, groups */

typedef struct {
    char                             *name;
    char                             *issuer;
    char                             *authorization_endpoint;
    char                             *token_endpoint;
    char                             *userinfo_endpoint;
    char                             *emails_endpoint;
    char                             *scopes;
    char                             *claims[5];
    char                             *email_verified;
    ngx_uint_t                        pkce;
    ngx_uint_t                        client_id_header;
    ngx_uint_t                        email;    /* ngx_http_identity_email_* */
} ngx_http_identity_oauth_preset_t;



ngx_http_identity_oauth_preset_t *ngx_http_identity_oauth_preset(
    ngx_str_t *name);
void ngx_http_identity_oauth_generic(
    ngx_http_identity_oauth_preset_t *generic);
void ngx_http_identity_oauth_claims(json_t *info, char **paths,
    char **claims);
ngx_uint_t ngx_http_identity_oauth_vouched(json_t *info, ngx_uint_t email,
    const char *path, ngx_uint_t pinned);
char *ngx_http_identity_oauth_primary(json_t *list);
ngx_int_t ngx_http_identity_oauth_tenant_user(json_t *claims,
    const char *client_id, const char **tid, const char **oid);


#endif /* _NGX_HTTP_IDENTITY_OAUTH_USER_H_INCLUDED_ */
