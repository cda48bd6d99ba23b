
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_CLAIMS_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_CLAIMS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_identity_types.h"


/* bounds on what a provider says of a user, in bytes (docs/security) */

#define NGX_HTTP_IDENTITY_MAX_USER_ID      256    /* refused beyond */
#define NGX_HTTP_IDENTITY_MAX_EMAIL        254    /* refused beyond */
#define NGX_HTTP_IDENTITY_MAX_USERNAME     256    /* refused beyond */
#define NGX_HTTP_IDENTITY_MAX_SID          256    /* refused beyond */
#define NGX_HTTP_IDENTITY_MAX_NAME         256    /* truncated */
#define NGX_HTTP_IDENTITY_MAX_GROUP        256    /* dropped beyond */
#define NGX_HTTP_IDENTITY_MAX_GROUPS       256    /* the rest dropped */
#define NGX_HTTP_IDENTITY_MAX_GROUPS_LEN   4096   /* the rest dropped */
#define NGX_HTTP_IDENTITY_MAX_KEPT_CLAIMS  1024   /* a claim beyond: left out */
#define NGX_HTTP_IDENTITY_MAX_USER_AGENT   512    /* truncated */


ngx_int_t ngx_http_identity_claims_sanitize(ngx_log_t *log, ngx_pool_t *pool,
    ngx_http_identity_claims_t *claims, ngx_array_t *keep);
size_t ngx_http_identity_utf8_prefix(u_char *p, size_t len, size_t max);
ngx_str_t *ngx_http_identity_claims_loggable(ngx_str_t *id);


#endif /* _NGX_HTTP_IDENTITY_CLAIMS_H_INCLUDED_ */
