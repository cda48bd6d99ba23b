
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * libFuzzer target: any bytes as a POSTed application/x-www-form-urlencoded
 * body, through ngx_http_identity_form_arg() as the SAML ACS reads
 * SAMLResponse and RelayState and the back-channel logout reads
 * logout_token (make fuzz).  The first byte picks the parameter; the rest
 * is the body, in a buffer of its own (form_arg() makes "+" a space in
 * it).  The value is decoded by unit/ngx_stubs.c's stand-in for nginx's
 * ngx_unescape_uri(), and allocated from the stubs' arena, which
 * AddressSanitizer watches as it does malloc().
 *
 * A value found is not empty, fits in the bytes the body gave it, and is
 * NUL-terminated within its allocation; a parameter absent from the body,
 * or present only empty, is NGX_DECLINED.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_identity_parse.h"
#include "ngx_stubs.h"


static char  *fuzz_params[] = {
    "SAMLResponse",
    "RelayState",
    "logout_token",
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char     *copy;
    char       *name;
    size_t      len;
    ngx_int_t   rc;
    ngx_str_t   body, value;

    if (size == 0 || ngx_http_identity_stub_reset() != NGX_OK) {
        return 0;
    }

    name = fuzz_params[data[0] % 3];
    len = ngx_strlen(name);

    copy = malloc(size - 1 ? size - 1 : 1);
    if (copy == NULL) {
        abort();
    }

    ngx_memcpy(copy, data + 1, size - 1);

    body.data = copy;
    body.len = size - 1;

    ngx_str_null(&value);

    rc = ngx_http_identity_form_arg(NULL, &body, name, &value);

    if (rc == NGX_OK) {
        /* the terminating NUL is read: within the allocation, or caught */

        if (value.len == 0 || value.len + len + 1 > body.len
            || value.data[value.len] != '\0')
        {
            abort();
        }

    } else if (rc != NGX_DECLINED) {
        abort();

    } else if (body.len >= len + 1) {

        /* declined: no "name=" with a value at the start of a pair */

        if (body.len > len + 1 && ngx_strncmp(copy, name, len) == 0
            && copy[len] == '=' && copy[len + 1] != '&'
            && copy[len + 1] != '%')
        {
            abort();
        }
    }

    free(copy);

    return 0;
}
