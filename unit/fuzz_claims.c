
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * libFuzzer target: any bytes as the claims of a login, through
 * ngx_http_identity_claims_sanitize() (make fuzz).  The input is split at
 * 0xff bytes into user id, e-mail, name, username, IdP session id, groups
 * (one per line) and claims JSON.  Whatever it answers, it must not read
 * out of bounds; when it admits, no claim may hold a control character or
 * a byte that is not UTF-8, and every claim must be within its bound
 * (unit/fuzz_claims_check.c).
 *
 * nginx's pool and log are unit/ngx_stubs.c's, so that nothing of nginx
 * but its headers is needed.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_identity_claims.h"
#include "ngx_stubs.h"
#include "fuzz_claims_check.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                      *p, *last, *end, *copy;
    ngx_str_t                   *field[7], keep[2];
    ngx_log_t                    log;
    ngx_int_t                    rc;
    ngx_uint_t                   i;
    ngx_array_t                  kept;
    ngx_http_identity_claims_t   claims;

    if (ngx_http_identity_stub_reset() != NGX_OK) {
        return 0;
    }

    /* a copy of its own, so that reads past the input are caught */

    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }

    memcpy(copy, data, size);

    memset(&claims, 0, sizeof(claims));
    memset(&log, 0, sizeof(log));

    field[0] = &claims.provider_user_id;
    field[1] = &claims.email;
    field[2] = &claims.name;
    field[3] = &claims.username;
    field[4] = &claims.sid;
    field[5] = &claims.groups;
    field[6] = &claims.raw;

    p = copy;
    last = copy + size;

    for (i = 0; i < 7 && p <= last; i++) {
        end = memchr(p, 0xff, last - p);
        if (end == NULL) {
            end = last;
        }

        field[i]->data = p;
        field[i]->len = end - p;
        p = end + 1;
    }

    ngx_str_set(&keep[0], "department");
    ngx_str_set(&keep[1], "groups");

    kept.elts = keep;
    kept.nelts = 2;

    rc = ngx_http_identity_claims_sanitize(&log, NULL, &claims, &kept);

    if (rc == NGX_OK) {
        ngx_http_identity_fuzz_claims_check(&claims);
    }

    free(copy);

    return 0;
}
