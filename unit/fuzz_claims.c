
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * libFuzzer target: any bytes as the claims of a login, through
 * ngx_http_identity_claims_sanitize() (make fuzz).  The input is split at
 * 0xff bytes into user id, e-mail, name, username, IdP session id, groups
 * (one per line) and claims JSON.  Whatever it answers, it must not read
 * out of bounds; when it admits, no claim may hold a control character or
 * a byte that is not UTF-8, and every claim must be within its bound.
 *
 * nginx's pool and log are unit/ngx_stubs.c's, so that nothing of nginx
 * but its headers is needed.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_identity_claims.h"
#include "ngx_stubs.h"


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


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                      *p, *last, *end, *copy;
    ngx_str_t                   *field[7], keep[2];
    ngx_log_t                    log;
    ngx_int_t                    rc;
    ngx_uint_t                   i, groups;
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
        ngx_http_identity_fuzz_clean(&claims.provider_user_id,
                                     NGX_HTTP_IDENTITY_MAX_USER_ID, 0);
        ngx_http_identity_fuzz_clean(&claims.email,
                                     NGX_HTTP_IDENTITY_MAX_EMAIL, 0);
        ngx_http_identity_fuzz_clean(&claims.username,
                                     NGX_HTTP_IDENTITY_MAX_USERNAME, 0);
        ngx_http_identity_fuzz_clean(&claims.sid,
                                     NGX_HTTP_IDENTITY_MAX_SID, 0);
        ngx_http_identity_fuzz_clean(&claims.name,
                                     NGX_HTTP_IDENTITY_MAX_NAME, 0);
        ngx_http_identity_fuzz_clean(&claims.groups,
                                     NGX_HTTP_IDENTITY_MAX_GROUPS_LEN, 1);

        if (claims.provider_user_id.len == 0
            || claims.raw.len > NGX_HTTP_IDENTITY_MAX_KEPT_CLAIMS)
        {
            abort();
        }

        /* groups: none empty, none over its bound, not too many */

        groups = 0;
        p = claims.groups.data;
        last = claims.groups.len ? p + claims.groups.len : p;

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

    free(copy);

    return 0;
}
