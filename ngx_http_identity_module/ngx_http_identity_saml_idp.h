
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_SAML_IDP_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_SAML_IDP_H_INCLUDED_


/* internal to the SAML protocol: included by ngx_http_identity_saml*.c only */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <lasso/lasso.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_task.h"
#include "ngx_http_identity_fetch.h"


/* what a thread needs and produces; strings out are malloc()ed */

typedef struct {
    ngx_http_identity_provider_t   *provider;
    char                           *sp_metadata;
    char                           *entity_id;
    char                           *acs_url;
    char                           *relay_state;
    char                           *response;        /* base64 */
    char                           *request_id;      /* expected, or NULL */

    char                           *url;             /* AuthnRequest */
    char                           *id;              /* its ID */

    char                           *name_id;
    char                           *attrs[5];        /* id, email, name,
                                                        username, groups */
    char                           *assertion_id;
    time_t                          not_on_or_after;

    char                           *idp_metadata;    /* in use */
    char                           *metadata_url;    /* to refresh from */
    char                           *new_metadata;    /* refreshed */
    char                            refresh_error[NGX_HTTP_IDENTITY_ERRLEN];

    ngx_int_t                       status;
    ngx_uint_t                      level;
    char                            error[NGX_HTTP_IDENTITY_ERRLEN];
} ngx_http_identity_saml_task_t;


ngx_int_t ngx_http_identity_saml_init(ngx_log_t *log);
ngx_int_t ngx_http_identity_saml_sp(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_http_identity_saml_task_t *t);
ngx_int_t ngx_http_identity_saml_urls(ngx_pool_t *pool,
    ngx_http_identity_provider_t *pr, ngx_str_t *base, ngx_str_t *path,
    ngx_str_t *entity, ngx_str_t *acs);
ngx_int_t ngx_http_identity_saml_metadata_xml(ngx_http_request_t *r,
    ngx_http_identity_provider_t *pr, ngx_str_t *entity_id, ngx_str_t *base,
    ngx_str_t *xml);
LassoServer *ngx_http_identity_saml_server(
    ngx_http_identity_saml_task_t *t);
ngx_int_t ngx_http_identity_saml_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_identity_saml_post(ngx_http_request_t *r,
    ngx_http_identity_task_run_pt run, ngx_http_identity_task_done_pt done,
    ngx_http_identity_saml_task_t *t);
void ngx_http_identity_saml_adopt(ngx_http_request_t *r,
    ngx_http_identity_saml_task_t *t);
ngx_http_identity_provider_t *ngx_http_identity_saml_provider(
    ngx_http_request_t *r, ngx_uint_t idp_initiated);
ngx_uint_t ngx_http_identity_saml_differ(ngx_str_t *kept, char *url);
ngx_http_identity_provider_t *ngx_http_identity_saml_here(
    ngx_http_request_t *r, ngx_str_t *name);
void ngx_http_identity_saml_fail(ngx_http_identity_saml_task_t *t,
    ngx_int_t status, ngx_uint_t level, const char *fmt, ...);


#endif /* _NGX_HTTP_IDENTITY_SAML_IDP_H_INCLUDED_ */
