
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_SAML_ASSERTION_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_SAML_ASSERTION_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <lasso/xml/saml-2.0/saml2_assertion.h>


void ngx_http_identity_saml_attributes(LassoSaml2Assertion *assertion,
    ngx_str_t *map, const char *name_id, char **attrs);
time_t ngx_http_identity_saml_time(const char *s);


#endif /* _NGX_HTTP_IDENTITY_SAML_ASSERTION_H_INCLUDED_ */
