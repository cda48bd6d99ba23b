
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * libFuzzer target: any bytes as a path under the admin location and as
 * the ids of its query (make fuzz), through the functions admin.c calls:
 * ngx_http_identity_admin_path() routes app/users, app/sessions, app/me
 * and the dashboard's files, ngx_http_identity_admin_id() checks an id of
 * a path or a before_id, ngx_http_identity_id_valid() an endpoint's ep_ id.
 *
 * A route that names a user or a session carries an id of the path: au_
 * or as_ as the route says and 32 lowercase hex digits, which is also
 * what the id checks admit; the dashboard gets the path without its
 * leading "/", never one under app/.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_identity_parse.h"
#include "ngx_stubs.h"


/* "prefix" and n lowercase hex digits, said once more */

static ngx_uint_t
fuzz_id(ngx_str_t *id, const char *prefix, size_t n)
{
    size_t  i;

    if (id->len != 3 + n || ngx_memcmp(id->data, prefix, 3) != 0) {
        return 0;
    }

    for (i = 3; i < id->len; i++) {
        if (!ngx_strchr("0123456789abcdef", id->data[i])
            || id->data[i] == '\0')
        {
            return 0;
        }
    }

    return 1;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                       *want;
    u_char                     *copy;
    ngx_int_t                   rc;
    ngx_str_t                   path, id, whole;
    ngx_uint_t                  item;
    ngx_http_identity_route_e   route;

    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        abort();
    }

    ngx_memcpy(copy, data, size);

    whole.data = copy;
    whole.len = size;

    /* the input as a query's id */

    if (ngx_http_identity_admin_id(&whole, 0) != fuzz_id(&whole, "au_", 32)
        || ngx_http_identity_admin_id(&whole, 1) != fuzz_id(&whole, "as_", 32)
        || ngx_http_identity_id_valid(&whole, "ep_", 16)
           != fuzz_id(&whole, "ep_", 16))
    {
        abort();
    }

    /* the input as a path */

    path = whole;
    ngx_str_null(&id);
    item = 2;

    rc = ngx_http_identity_admin_path(&path, &route, &id, &item);

    if (rc == NGX_DECLINED) {
        goto done;
    }

    if (rc != NGX_OK || item > 1
        || path.data < copy || path.data + path.len != copy + size
        || (path.len && path.data[0] == '/'))
    {
        abort();
    }

    switch (route) {

    case ngx_http_identity_static:
        if (item || (path.len >= 4 && ngx_memcmp(path.data, "app/", 4) == 0)
            || (path.len == 3 && ngx_memcmp(path.data, "app", 3) == 0))
        {
            abort();
        }
        break;

    case ngx_http_identity_users:
    case ngx_http_identity_sessions:
    case ngx_http_identity_me:
        if (item) {
            abort();
        }
        break;

    /* the paths that name these, exactly */

    case ngx_http_identity_metrics_route:
    case ngx_http_identity_events_route:
    case ngx_http_identity_stats_route:
        want = route == ngx_http_identity_metrics_route ? "metrics"
               : route == ngx_http_identity_events_route ? "app/events"
               : "app/stats/logins";

        if (item || path.len != strlen(want)
            || ngx_memcmp(path.data, want, path.len) != 0)
        {
            abort();
        }
        break;

    case ngx_http_identity_user:
    case ngx_http_identity_session:
    case ngx_http_identity_user_sessions:
    case ngx_http_identity_user_sites:
        if (id.data < path.data || id.data + id.len > path.data + path.len
            || !fuzz_id(&id, route == ngx_http_identity_session ? "as_"
                                                                : "au_", 32)
            || item != (route == ngx_http_identity_user
                        || route == ngx_http_identity_session))
        {
            abort();
        }
        break;

    default:
        abort();
    }

done:

    free(copy);

    return 0;
}
