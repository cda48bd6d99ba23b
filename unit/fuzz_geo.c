
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * libFuzzer target: any bytes as the client address the module looks up,
 * through ngx_http_identity_geo_lookup() (make fuzz), in the databases
 * unit/fuzz_geo_db.pl wrote into FUZZ_GEO_DIR.  The first byte picks the
 * database (its high bits) and the address's shape (its two low bits):
 * the next 4 bytes as an IPv4 address, the next 16 as an IPv6 one (as a
 * socket's address, with IPv4-mapped ones), the rest as the text of an
 * address (as unit/geo_lookup reads them), or a socket of another family
 * (unix, as nginx's connection may be).  Whatever the database holds, an
 * answer is one of the three codes; a country is two capital letters or
 * nothing; a location is in range and written as meta.c writes it into
 * 32 bytes; a radius is between 1 and 20038 km, or 0 (unknown) and only
 * with a location; an error says why and carries nothing else.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "ngx_http_identity_geo.h"


#define NGX_HTTP_IDENTITY_FUZZ_GEO_DBS  6


static ngx_http_identity_geo_t  *dbs[NGX_HTTP_IDENTITY_FUZZ_GEO_DBS];
static size_t                    ndbs;


static const char  *ngx_http_identity_fuzz_geo_files[] = {
    "1-city6.mmdb", "2-city4.mmdb", "3-flat4.mmdb", "4-strings.mmdb",
    "5-raw.mmdb", "6-bad-data.mmdb"
};


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char         path[4096], err[512];
    size_t       i;
    const char  *dir;

    (void) argc;
    (void) argv;

    dir = getenv("FUZZ_GEO_DIR");
    if (dir == NULL) {
        fprintf(stderr, "fuzz_geo: FUZZ_GEO_DIR is not set\n");
        exit(2);
    }

    for (i = 0; i < NGX_HTTP_IDENTITY_FUZZ_GEO_DBS; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir,
                 ngx_http_identity_fuzz_geo_files[i]);

        dbs[i] = ngx_http_identity_geo_open(path, err, sizeof(err));
        if (dbs[i] == NULL) {
            fprintf(stderr, "fuzz_geo: %s\n", err);
            exit(2);
        }
    }

    ndbs = i;

    return 0;
}


static void
ngx_http_identity_fuzz_geo_check(int rc, ngx_http_identity_geo_result_t *res)
{
    char  buf[32];

    if (rc == NGX_HTTP_IDENTITY_GEO_ERROR) {
        if (res->error == NULL || res->country[0] || res->has_location
            || res->accuracy_radius)
        {
            abort();
        }

        return;
    }

    if (rc != NGX_HTTP_IDENTITY_GEO_OK
        && rc != NGX_HTTP_IDENTITY_GEO_NOT_FOUND)
    {
        abort();
    }

    if (res->country[0]
        && (res->country[0] < 'A' || res->country[0] > 'Z'
            || res->country[1] < 'A' || res->country[1] > 'Z'
            || res->country[2] != '\0'))
    {
        abort();
    }

    if (rc == NGX_HTTP_IDENTITY_GEO_NOT_FOUND) {
        if (res->country[0] || res->has_location || res->accuracy_radius) {
            abort();
        }

        return;
    }

    if (res->country[0] == '\0' && !res->has_location) {
        abort();
    }

    if (!res->has_location) {
        if (res->accuracy_radius) {
            abort();
        }

        return;
    }

    /* "!(v >= min)" holds for NaN too */

    if (!(res->latitude >= -90.0 && res->latitude <= 90.0)
        || !(res->longitude >= -180.0 && res->longitude <= 180.0)
        || res->accuracy_radius > 20038)
    {
        abort();
    }

    if (snprintf(buf, sizeof(buf), "%.4f", res->latitude)
        >= (int) sizeof(buf)
        || snprintf(buf, sizeof(buf), "%.4f", res->longitude)
           >= (int) sizeof(buf))
    {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                              rc;
    char                             text[64];
    size_t                           n;
    struct sockaddr_in               sin;
    struct sockaddr_un               sun;
    struct sockaddr_in6              sin6;
    const struct sockaddr           *sa;
    ngx_http_identity_geo_t         *g;
    ngx_http_identity_geo_result_t   res;

    if (size == 0) {
        return 0;
    }

    g = dbs[(data[0] >> 2) % ndbs];

    memset(&sin, 0, sizeof(struct sockaddr_in));
    memset(&sin6, 0, sizeof(struct sockaddr_in6));
    memset(&sun, 0, sizeof(struct sockaddr_un));

    n = size - 1;

    switch (data[0] & 3) {

    case 0:
        sin.sin_family = AF_INET;
        memcpy(&sin.sin_addr, data + 1, n < 4 ? n : 4);
        sa = (const struct sockaddr *) &sin;
        break;

    case 1:
        sin6.sin6_family = AF_INET6;
        memcpy(&sin6.sin6_addr, data + 1, n < 16 ? n : 16);
        sa = (const struct sockaddr *) &sin6;
        break;

    case 2:
        if (n >= sizeof(text)) {
            return 0;
        }

        memcpy(text, data + 1, n);
        text[n] = '\0';

        if (inet_pton(AF_INET, text, &sin.sin_addr) == 1) {
            sin.sin_family = AF_INET;
            sa = (const struct sockaddr *) &sin;

        } else if (inet_pton(AF_INET6, text, &sin6.sin6_addr) == 1) {
            sin6.sin6_family = AF_INET6;
            sa = (const struct sockaddr *) &sin6;

        } else {
            return 0;
        }

        break;

    default:
        sun.sun_family = AF_UNIX;
        memcpy(sun.sun_path, data + 1,
               n < sizeof(sun.sun_path) - 1 ? n : sizeof(sun.sun_path) - 1);
        sa = (const struct sockaddr *) &sun;
    }

    /* a stale answer must not show through: the result is filled anew */

    memset(&res, 0xa5, sizeof(res));

    rc = ngx_http_identity_geo_lookup(g, sa, &res);

    ngx_http_identity_fuzz_geo_check(rc, &res);

    return 0;
}
