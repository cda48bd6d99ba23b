
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_SAML_MESSAGE_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_SAML_MESSAGE_H_INCLUDED_


/*
 * internal to the SAML protocol: included by ngx_http_identity_saml*.c only;
 * both are ngx_http_identity_task_run_pt on an ngx_http_identity_saml_task_t
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


void ngx_http_identity_saml_authn_run(void *data);
void ngx_http_identity_saml_check_run(void *data);


#endif /* _NGX_HTTP_IDENTITY_SAML_MESSAGE_H_INCLUDED_ */
