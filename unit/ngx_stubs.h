
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_STUBS_H_INCLUDED_
#define _NGX_STUBS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* empties the arena ngx_pnalloc() takes from; NGX_ERROR without memory */
ngx_int_t ngx_http_identity_stub_reset(void);


#endif /* _NGX_STUBS_H_INCLUDED_ */
