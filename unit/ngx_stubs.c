
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * nginx's pool and log for the programs of unit/ that call the module's
 * ground files without nginx: allocations come from one arena that
 * ngx_http_identity_stub_reset() empties before each input, and log lines
 * go nowhere.  Only nginx's headers are needed.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_stubs.h"


#define NGX_HTTP_IDENTITY_STUB_ARENA  (1024 * 1024)


static u_char  *arena, *arena_last;


ngx_int_t
ngx_http_identity_stub_reset(void)
{
    if (arena == NULL) {
        arena = malloc(NGX_HTTP_IDENTITY_STUB_ARENA);
        if (arena == NULL) {
            return NGX_ERROR;
        }
    }

    arena_last = arena;

    return NGX_OK;
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    u_char  *p;

    (void) pool;

    if (size > (size_t) (arena + NGX_HTTP_IDENTITY_STUB_ARENA - arena_last)) {
        return NULL;
    }

    p = arena_last;
    arena_last += size;

    return p;
}


void
ngx_log_error_core(ngx_uint_t level, ngx_log_t *log, ngx_err_t err,
    const char *fmt, ...)
{
    (void) level;
    (void) log;
    (void) err;
    (void) fmt;
}
