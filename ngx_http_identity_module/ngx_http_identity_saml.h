
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_SAML_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_SAML_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"


/* the protocol table entry: ngx_http_identity_protocol.h */

extern ngx_http_identity_protocol_t  ngx_http_identity_saml_protocol;


#endif /* _NGX_HTTP_IDENTITY_SAML_H_INCLUDED_ */
