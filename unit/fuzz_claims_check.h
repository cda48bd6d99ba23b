
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _FUZZ_CLAIMS_CHECK_H_INCLUDED_
#define _FUZZ_CLAIMS_CHECK_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_identity_claims.h"


/* abort() unless admitted claims are clean and within their bounds */
void ngx_http_identity_fuzz_claims_check(ngx_http_identity_claims_t *claims);


#endif /* _FUZZ_CLAIMS_CHECK_H_INCLUDED_ */
