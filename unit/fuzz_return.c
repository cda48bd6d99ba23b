
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * libFuzzer target: any bytes as a return target, through the open-redirect
 * gate of every login and logout (make fuzz): ngx_http_identity_local_path()
 * as redirect_path, a SAML RelayState and a retry path are checked, and
 * ngx_http_identity_return_path() as a request's own path becomes where
 * its login returns to.
 *
 * A path admitted starts with one "/" and no second "/" or "\", holds no
 * "\" and no control character and is at most 2048 bytes: a browser reads
 * it as a path of this site.  A request's path always becomes such a path
 * or "/", at most one byte longer, and a path admitted stays as it was.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_identity_parse.h"
#include "ngx_stubs.h"


/* what a browser reads as a path of the same origin, said once more */

static ngx_uint_t
fuzz_same_site(ngx_str_t *path)
{
    size_t  i;

    if (path->len == 0 || path->len > 2048 || path->data[0] != '/') {
        return 0;
    }

    if (path->len > 1 && (path->data[1] == '/' || path->data[1] == '\\')) {
        return 0;
    }

    for (i = 0; i < path->len; i++) {
        if (path->data[i] < 0x20 || path->data[i] == 0x7f
            || path->data[i] == '\\')
        {
            return 0;
        }
    }

    return 1;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char     *copy, *out;
    ngx_int_t   rc, local;
    ngx_str_t   path, target;

    copy = malloc(size ? size : 1);
    out = malloc(size + 1);
    if (copy == NULL || out == NULL) {
        abort();
    }

    ngx_memcpy(copy, data, size);

    path.data = copy;
    path.len = size;

    local = ngx_http_identity_local_path(&path);

    if ((local == NGX_OK) != fuzz_same_site(&path)) {
        abort();
    }

    target.data = out;
    rc = ngx_http_identity_return_path(&path, &target);

    if (!fuzz_same_site(&target) || target.len > size + 1) {
        abort();
    }

    if (rc != NGX_OK
        && (target.len != 1 || target.data[0] != '/' || rc != NGX_DECLINED))
    {
        abort();
    }

    if (local == NGX_OK
        && (rc != NGX_OK || target.len != size
            || ngx_memcmp(target.data, copy, size) != 0))
    {
        abort();
    }

    free(out);
    free(copy);

    return 0;
}
