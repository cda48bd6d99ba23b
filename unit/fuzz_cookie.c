
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * libFuzzer target: any bytes as the Cookie headers of a request, through
 * the functions cookie.c calls (make fuzz): ngx_http_identity_cookie_find()
 * as ngx_http_identity_read_cookie() and the state cookie's check look a
 * cookie up, ngx_http_identity_cookie_token() as a session token is
 * accepted, ngx_http_identity_cookie_filter() as the module's cookies are
 * stripped before the request goes upstream.
 *
 * The first byte picks the cookie looked up and the base names stripped;
 * the rest is split at "\n" into up to 8 Cookie headers, each in a buffer
 * of its own so that a read past one is caught.  Whatever it answers, it
 * must not read or write out of bounds; a value found lies inside a
 * header and holds no ";"; a token accepted is 43 characters of base64url;
 * a filtered header fits in twice its length, holds none of the module's
 * cookies, and filtering it again changes nothing.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_identity_parse.h"
#include "ngx_stubs.h"


#define FUZZ_HEADERS  8


static ngx_str_t  fuzz_names[] = {
    ngx_string("identity"),
    ngx_string("identity_state"),
    ngx_string("__Host-identity"),
    ngx_string("__Host-identity_app"),
    ngx_string("sid"),
    ngx_string(""),
};


/*
 * none of the module's names in a filtered header, "__Host-" or not, with
 * or without "_...": each is absent, neither found nor sent twice
 */

static void
fuzz_none_ours(ngx_log_t *log, ngx_table_elt_t *header, ngx_uint_t names)
{
    ngx_str_t         v;
    ngx_uint_t        i;
    ngx_array_t       headers;
    ngx_table_elt_t  *h;

    if (header->value.len > 4096) {
        return;
    }

    h = header;
    headers.elts = &h;
    headers.nelts = 1;

    for (i = 0; i < names; i++) {
        if (ngx_http_identity_cookie_find(log, &headers, &fuzz_names[i], &v)
            != NGX_DECLINED)
        {
            abort();
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char            *p, *last, *end, *buf[FUZZ_HEADERS], *again;
    size_t             len, n2;
    ngx_str_t          value, base[2], *name;
    ngx_log_t          log;
    ngx_int_t          rc;
    ngx_uint_t         i, k, n, found;
    ngx_array_t        headers, names;
    ngx_table_elt_t    elt[FUZZ_HEADERS], filtered[FUZZ_HEADERS];
    ngx_table_elt_t   *h[FUZZ_HEADERS];

    if (size == 0 || ngx_http_identity_stub_reset() != NGX_OK) {
        return 0;
    }

    ngx_memzero(&log, sizeof(ngx_log_t));

    name = &fuzz_names[data[0] % (sizeof(fuzz_names) / sizeof(ngx_str_t))];

    ngx_str_set(&base[0], "identity");
    ngx_str_set(&base[1], "sid");

    names.elts = base;
    names.nelts = (data[0] & 0x80) ? 2 : 1;

    p = (u_char *) data + 1;
    last = (u_char *) data + size;

    for (n = 0; n < FUZZ_HEADERS && p <= last; n++) {
        end = memchr(p, '\n', last - p);
        if (end == NULL) {
            end = last;
        }

        len = end - p;
        buf[n] = malloc(len ? len : 1);
        if (buf[n] == NULL) {
            abort();
        }

        ngx_memcpy(buf[n], p, len);

        ngx_memzero(&elt[n], sizeof(ngx_table_elt_t));
        elt[n].value.data = buf[n];
        elt[n].value.len = len;
        h[n] = &elt[n];

        p = end + 1;
    }

    headers.elts = h;
    headers.nelts = n;

    /* a lookup: the value is inside one header, up to a ";" */

    ngx_str_null(&value);
    rc = ngx_http_identity_cookie_find(&log, &headers, name, &value);

    if (rc == NGX_OK && value.data) {
        for (found = 0, i = 0; i < n; i++) {
            if (value.data >= buf[i]
                && value.data + value.len <= buf[i] + elt[i].value.len)
            {
                found = 1;
            }
        }

        if (!found || memchr(value.data, ';', value.len) != NULL
            || (value.len && value.data[value.len - 1] == ' '))
        {
            abort();
        }

        if (ngx_http_identity_cookie_token(&value)
            && (value.len != 43 || !ngx_http_identity_is_word(&value)))
        {
            abort();
        }

    } else if (rc != NGX_OK && rc != NGX_DECLINED
               && rc != NGX_HTTP_BAD_REQUEST)
    {
        abort();
    }

    /* the module's cookies stripped: none left, and stripping is done */

    for (i = 0; i < n; i++) {
        len = elt[i].value.len;

        filtered[i].value.data = malloc(2 * len ? 2 * len : 1);
        if (filtered[i].value.data == NULL) {
            abort();
        }

        filtered[i].value.len = ngx_http_identity_cookie_filter(&elt[i].value,
                                                &names,
                                                filtered[i].value.data);

        if (filtered[i].value.len > 2 * len) {
            abort();
        }

        fuzz_none_ours(&log, &filtered[i], names.nelts == 2 ? 5 : 4);
    }

    for (i = 0; i < n; i++) {
        len = filtered[i].value.len;

        again = malloc(2 * len ? 2 * len : 1);
        if (again == NULL) {
            abort();
        }

        n2 = ngx_http_identity_cookie_filter(&filtered[i].value, &names,
                                             again);

        if (n2 != len || ngx_memcmp(again, filtered[i].value.data, len) != 0) {
            abort();
        }

        free(again);
    }

    for (k = 0; k < n; k++) {
        free(filtered[k].value.data);
        free(buf[k]);
    }

    return 0;
}
