
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * nginx's pool and log for the programs of unit/ that call the module's
 * ground files without nginx: allocations come from one arena that
 * ngx_http_identity_stub_reset() empties before each input, and log lines
 * go nowhere.  Only nginx's headers are needed.  Under AddressSanitizer
 * (make fuzz) all of the arena but what was handed out is poisoned, with
 * a gap after each allocation, so that a write or read past one is caught
 * as if it were malloc()'s.
 *
 * Debian ships nginx's headers, not its sources, so the few functions of
 * nginx's core the Redis Cluster code calls are stand-ins here, written to
 * what nginx 1.22 documents and does: ngx_atoi() refuses an empty string,
 * anything but digits and a value past NGX_MAX_INT_T_VALUE; the address
 * parsers take a bare IPv4 or IPv6 address (no brackets, no zone);
 * ngx_unescape_uri() of type 0 (what a form or a query argument is
 * decoded with) turns "%" and two hex digits into their byte, drops a "%"
 * not followed by a hex digit and a "%" and hex digit not followed by a
 * second, and never writes more than it reads.  So is redis_conn.c's
 * ngx_http_identity_rconn_numeric(), whose file needs nginx's event loop.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <arpa/inet.h>
#include <sanitizer/asan_interface.h>

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

    ASAN_POISON_MEMORY_REGION(arena, NGX_HTTP_IDENTITY_STUB_ARENA);

    return NGX_OK;
}


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    u_char  *p;

    (void) pool;

    /* 8-aligned, as AddressSanitizer poisons, and 8 poisoned bytes after */

    p = ngx_align_ptr(arena_last, 8);

    if ((size_t) (arena + NGX_HTTP_IDENTITY_STUB_ARENA - p) < 8
        || size > (size_t) (arena + NGX_HTTP_IDENTITY_STUB_ARENA - p) - 8)
    {
        return NULL;
    }

    arena_last = p + size + 8;

    ASAN_UNPOISON_MEMORY_REGION(p, size);

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


ngx_int_t
ngx_atoi(u_char *line, size_t n)
{
    ngx_int_t  value;

    if (n == 0) {
        return NGX_ERROR;
    }

    for (value = 0; n--; line++) {
        if (*line < '0' || *line > '9') {
            return NGX_ERROR;
        }

        if (value > (NGX_MAX_INT_T_VALUE - (*line - '0')) / 10) {
            return NGX_ERROR;
        }

        value = value * 10 + (*line - '0');
    }

    return value;
}


ngx_int_t
ngx_strncasecmp(u_char *s1, u_char *s2, size_t n)
{
    return strncasecmp((char *) s1, (char *) s2, n);
}


static ngx_int_t
ngx_http_identity_stub_hex(u_char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }

    ch |= 0x20;

    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }

    return -1;
}


void
ngx_unescape_uri(u_char **dst, u_char **src, size_t size, ngx_uint_t type)
{
    u_char     *d, *s;
    ngx_int_t   hi, lo;

    (void) type;

    d = *dst;
    s = *src;

    while (size) {
        size--;

        if (*s != '%') {
            *d++ = *s++;
            continue;
        }

        s++;

        if (size == 0) {
            break;
        }

        hi = ngx_http_identity_stub_hex(*s);
        size--;

        if (hi < 0) {
            *d++ = *s++;
            continue;
        }

        s++;

        if (size == 0) {
            break;
        }

        lo = ngx_http_identity_stub_hex(*s++);
        size--;

        if (lo >= 0) {
            *d++ = (u_char) (hi * 16 + lo);
        }
    }

    *dst = d;
    *src = s;
}


/* inet_pton() of a copy: the text has no NUL at its end, and fails with one */

static int
ngx_http_identity_stub_pton(int af, u_char *text, size_t len, void *addr)
{
    char  buf[NGX_SOCKADDR_STRLEN + 1];

    if (len >= sizeof(buf) || memchr(text, '\0', len) != NULL) {
        return 0;
    }

    ngx_memcpy(buf, text, len);
    buf[len] = '\0';

    return inet_pton(af, buf, addr);
}


in_addr_t
ngx_inet_addr(u_char *text, size_t len)
{
    struct in_addr  a;

    if (ngx_http_identity_stub_pton(AF_INET, text, len, &a) != 1) {
        return INADDR_NONE;
    }

    return a.s_addr;
}


ngx_int_t
ngx_inet6_addr(u_char *p, size_t len, u_char *addr)
{
    return ngx_http_identity_stub_pton(AF_INET6, p, len, addr) == 1
           ? NGX_OK : NGX_ERROR;
}


/*
 * redis_conn.c's, which needs nginx's event loop: a numeric IPv4 or IPv6
 * address, as there
 */

ngx_int_t ngx_http_identity_rconn_numeric(u_char *host, size_t len);


ngx_int_t
ngx_http_identity_rconn_numeric(u_char *host, size_t len)
{
    u_char  addr[16];

    if (len == 0 || len > NGX_SOCKADDR_STRLEN) {
        return NGX_ERROR;
    }

    if (ngx_inet_addr(host, len) != INADDR_NONE) {
        return NGX_OK;
    }

    return ngx_inet6_addr(host, len, addr);
}
