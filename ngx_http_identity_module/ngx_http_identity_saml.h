
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_SAML_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_SAML_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_module.h"


ngx_int_t ngx_http_identity_saml_init(ngx_log_t *log);
ngx_int_t ngx_http_identity_saml_init_process(ngx_cycle_t *cycle,
    ngx_uint_t n);
char *ngx_http_identity_saml_conf(ngx_conf_t *cf,
    ngx_http_identity_provider_t *pr);

/*
 * As the OIDC ones: NGX_AGAIN while waiting, else the HTTP status; the ACS
 * returns NGX_DONE, without touching r, once its body is being read.
 */
ngx_int_t ngx_http_identity_saml_login(ngx_http_request_t *r);
ngx_int_t ngx_http_identity_saml_acs(ngx_http_request_t *r);
ngx_int_t ngx_http_identity_saml_finish(ngx_http_request_t *r);
ngx_int_t ngx_http_identity_saml_metadata(ngx_http_request_t *r);


#endif /* _NGX_HTTP_IDENTITY_SAML_H_INCLUDED_ */
