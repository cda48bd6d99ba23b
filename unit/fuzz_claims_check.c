
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * What the claims a login admits must be, whoever sent them: the checks of
 * unit/fuzz_claims.c and unit/fuzz_provider.c once
 * ngx_http_identity_claims_sanitize() said NGX_OK; abort() otherwise.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_identity_claims.h"
#include "fuzz_claims_check.h"


/* valid UTF-8 without control characters, or abort() */

static void
ngx_http_identity_fuzz_clean(ngx_str_t *s, size_t max, ngx_uint_t lines)
{
    size_t   i, n, len;
    u_char   c;

    if (s->len > max) {
        abort();
    }

    for (i = 0; i < s->len; i += n) {
        c = s->data[i];

        if (c == '\n' && lines) {
            n = 1;
            continue;
        }

        if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xc2) || c > 0xf4) {
            abort();
        }

        n = (c < 0x80) ? 1 : (c < 0xe0) ? 2 : (c < 0xf0) ? 3 : 4;

        if (i + n > s->len) {
            abort();
        }

        for (len = 1; len < n; len++) {
            if ((s->data[i + len] & 0xc0) != 0x80) {
                abort();
            }
        }

        /* C1: U+0080 - U+009F */

        if (c == 0xc2 && s->data[i + 1] < 0xa0) {
            abort();
        }
    }
}


void
ngx_http_identity_fuzz_claims_check(ngx_http_identity_claims_t *claims)
{
    u_char      *p, *last, *end;
    ngx_uint_t   groups;

    ngx_http_identity_fuzz_clean(&claims->provider_user_id,
                                 NGX_HTTP_IDENTITY_MAX_USER_ID, 0);
    ngx_http_identity_fuzz_clean(&claims->email,
                                 NGX_HTTP_IDENTITY_MAX_EMAIL, 0);
    ngx_http_identity_fuzz_clean(&claims->username,
                                 NGX_HTTP_IDENTITY_MAX_USERNAME, 0);
    ngx_http_identity_fuzz_clean(&claims->sid,
                                 NGX_HTTP_IDENTITY_MAX_SID, 0);
    ngx_http_identity_fuzz_clean(&claims->name,
                                 NGX_HTTP_IDENTITY_MAX_NAME, 0);
    ngx_http_identity_fuzz_clean(&claims->groups,
                                 NGX_HTTP_IDENTITY_MAX_GROUPS_LEN, 1);

    if (claims->provider_user_id.len == 0
        || claims->raw.len > NGX_HTTP_IDENTITY_MAX_KEPT_CLAIMS)
    {
        abort();
    }

    /* groups: none empty, none over its bound, not too many */

    groups = 0;
    p = claims->groups.data;
    last = claims->groups.len ? p + claims->groups.len : p;

    while (p < last) {
        end = memchr(p, '\n', last - p);
        if (end == NULL) {
            end = last;
        }

        if (end == p || end - p > NGX_HTTP_IDENTITY_MAX_GROUP) {
            abort();
        }

        groups++;
        p = end + 1;
    }

    if (groups > NGX_HTTP_IDENTITY_MAX_GROUPS) {
        abort();
    }
}
