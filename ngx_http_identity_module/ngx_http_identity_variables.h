
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_VARIABLES_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_VARIABLES_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"


ngx_int_t ngx_http_identity_add_variables(ngx_conf_t *cf);
void ngx_http_identity_variables_used(ngx_conf_t *cf,
    ngx_http_core_main_conf_t *cmcf);


#endif /* _NGX_HTTP_IDENTITY_VARIABLES_H_INCLUDED_ */
