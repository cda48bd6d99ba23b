
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * libFuzzer target: any bytes as a User-Agent, through the cache and the
 * full parse with uap-core's regexes.  The parser must return, never read
 * out of bounds, and give NUL-terminated fields (make fuzz).
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_identity_ua.h"


static ngx_http_identity_ua_parser_t  *parser;


static void
ngx_http_identity_fuzz_check(const char *field, size_t size)
{
    if (memchr(field, '\0', size) == NULL) {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                    err[256];
    const char             *path;
    ngx_http_identity_ua_t  out;

    if (parser == NULL) {
        path = getenv("UAP_REGEXES");
        parser = ngx_http_identity_ua_load(path ? path
                                           : "/usr/share/uap-core/regexes.yaml",
                                           err, sizeof(err));
        if (parser == NULL) {
            fprintf(stderr, "fuzz_ua: %s\n", err);
            abort();
        }
    }

    ngx_http_identity_ua_parse_cached(parser, (const char *) data, size, &out);

    ngx_http_identity_fuzz_check(out.browser, sizeof(out.browser));
    ngx_http_identity_fuzz_check(out.browser_version,
                                 sizeof(out.browser_version));
    ngx_http_identity_fuzz_check(out.os, sizeof(out.os));
    ngx_http_identity_fuzz_check(out.os_version, sizeof(out.os_version));
    ngx_http_identity_fuzz_check(out.device, sizeof(out.device));
    ngx_http_identity_fuzz_check(out.device_type, sizeof(out.device_type));

    return 0;
}
