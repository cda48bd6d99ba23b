
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * geo_lookup DB IP...: looks each address up with ngx_http_identity_geo
 * and prints one line for it:
 *
 *     IP country=FR lat=48.8500 lon=2.3500 radius=20
 *     IP not-found
 *
 * with "-" for a country, location or radius the record lacks.  Exits 1 if
 * the database cannot be opened or a lookup fails, 2 on bad usage or an
 * unparsable address (which prints "IP invalid-address").
 */


#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "ngx_http_identity_geo.h"


static int ngx_http_identity_geo_lookup_print(ngx_http_identity_geo_t *g,
    const char *ip);


int
main(int argc, char **argv)
{
    int                       i, rc, status;
    char                      err[512];
    ngx_http_identity_geo_t  *g;

    if (argc < 3) {
        fprintf(stderr, "usage: geo_lookup DB IP...\n");
        return 2;
    }

    g = ngx_http_identity_geo_open(argv[1], err, sizeof(err));
    if (g == NULL) {
        fprintf(stderr, "geo_lookup: %s\n", err);
        return 1;
    }

    status = 0;

    for (i = 2; i < argc; i++) {
        rc = ngx_http_identity_geo_lookup_print(g, argv[i]);
        if (rc > status) {
            status = rc;
        }
    }

    ngx_http_identity_geo_close(g);

    if (fflush(stdout) != 0) {
        return 1;
    }

    return status;
}


static int
ngx_http_identity_geo_lookup_print(ngx_http_identity_geo_t *g,
    const char *ip)
{
    int                             rc;
    char                            lat[32], lon[32], radius[16];
    struct sockaddr_in              sin;
    struct sockaddr_in6             sin6;
    const struct sockaddr          *sa;
    ngx_http_identity_geo_result_t  res;

    memset(&sin, 0, sizeof(struct sockaddr_in));
    memset(&sin6, 0, sizeof(struct sockaddr_in6));

    if (inet_pton(AF_INET, ip, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sa = (const struct sockaddr *) &sin;

    } else if (inet_pton(AF_INET6, ip, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sa = (const struct sockaddr *) &sin6;

    } else {
        printf("%s invalid-address\n", ip);
        return 2;
    }

    rc = ngx_http_identity_geo_lookup(g, sa, &res);

    switch (rc) {

    case NGX_HTTP_IDENTITY_GEO_OK:
        break;

    case NGX_HTTP_IDENTITY_GEO_NOT_FOUND:
        printf("%s not-found\n", ip);
        return 0;

    default:
        printf("%s error: %s\n", ip, res.error ? res.error : "unknown");
        return 1;
    }

    if (res.has_location) {
        snprintf(lat, sizeof(lat), "%.4f", res.latitude);
        snprintf(lon, sizeof(lon), "%.4f", res.longitude);

    } else {
        strcpy(lat, "-");
        strcpy(lon, "-");
    }

    if (res.accuracy_radius) {
        snprintf(radius, sizeof(radius), "%u", res.accuracy_radius);

    } else {
        strcpy(radius, "-");
    }

    printf("%s country=%s lat=%s lon=%s radius=%s\n",
           ip, res.country[0] ? res.country : "-", lat, lon, radius);

    return 0;
}
