
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_HTTP_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_HTTP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* blocking: for thread tasks only */
char *ngx_http_identity_http_get(const char *url, ngx_msec_t timeout,
    char *err, size_t errlen);


#endif /* _NGX_HTTP_IDENTITY_HTTP_H_INCLUDED_ */
