
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include <maxminddb.h>

#include "ngx_http_identity_geo.h"


/* half the Earth's circumference: a larger radius says nothing */
#define NGX_HTTP_IDENTITY_GEO_MAX_RADIUS  20038

#define ngx_http_identity_geo_nelts(a)    (sizeof(a) / sizeof((a)[0]))


struct ngx_http_identity_geo_s {
    MMDB_s  mmdb;
};


static int ngx_http_identity_geo_country(MMDB_entry_s *entry,
    ngx_http_identity_geo_result_t *out);
static int ngx_http_identity_geo_location(MMDB_entry_s *entry,
    ngx_http_identity_geo_result_t *out);
static int ngx_http_identity_geo_coordinate(MMDB_entry_s *entry,
    const char *const *path, double min, double max, double *v,
    const char **error);
static int ngx_http_identity_geo_value(MMDB_entry_s *entry,
    const char *const *path, MMDB_entry_data_s *data, const char **error);
static int ngx_http_identity_geo_number(MMDB_entry_data_s *data, double *v);


/*
 * GeoIP2/GeoLite2 City and Country first (registered_country is where the
 * network is registered, a fallback for anycast and satellite networks),
 * then the flat records of the ip-location-db databases.
 */

static const char *const  ngx_http_identity_geo_country_paths[][3] = {
    { "country", "iso_code", NULL },
    { "registered_country", "iso_code", NULL },
    { "country_code", NULL, NULL },
};


/* { latitude, longitude } of each schema, in the same order */

static const char *const  ngx_http_identity_geo_location_paths[][2][3] = {
    { { "location", "latitude", NULL }, { "location", "longitude", NULL } },
    { { "latitude", NULL, NULL }, { "longitude", NULL, NULL } },
};


static const char *const  ngx_http_identity_geo_radius_path[] = {
    "location", "accuracy_radius", NULL
};


ngx_http_identity_geo_t *
ngx_http_identity_geo_open(const char *path, char *err, size_t errlen)
{
    int                       rc, saved;
    ngx_http_identity_geo_t  *g;

    g = calloc(1, sizeof(ngx_http_identity_geo_t));
    if (g == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    errno = 0;
    rc = MMDB_open(path, MMDB_MODE_MMAP, &g->mmdb);

    if (rc != MMDB_SUCCESS) {
        saved = errno;

        /* libmaxminddb's own text hides which system call failed and why */

        if (rc == MMDB_FILE_OPEN_ERROR && saved != 0) {
            snprintf(err, errlen, "cannot open \"%s\": %s",
                     path, strerror(saved));

        } else if (rc == MMDB_IO_ERROR && saved != 0) {
            snprintf(err, errlen, "cannot open \"%s\": %s (%s)",
                     path, MMDB_strerror(rc), strerror(saved));

        } else {
            snprintf(err, errlen, "cannot open \"%s\": %s",
                     path, MMDB_strerror(rc));
        }

        /* MMDB_open() has released what it had allocated */
        free(g);
        return NULL;
    }

    return g;
}


void
ngx_http_identity_geo_close(ngx_http_identity_geo_t *g)
{
    if (g == NULL) {
        return;
    }

    MMDB_close(&g->mmdb);
    free(g);
}


int
ngx_http_identity_geo_lookup(ngx_http_identity_geo_t *g,
    const struct sockaddr *sa, ngx_http_identity_geo_result_t *out)
{
    int                         rc, mmdb_error;
    const char                 *error;
    struct sockaddr_in          sin;
    MMDB_lookup_result_s        res;
    const struct sockaddr_in6  *sin6;

    memset(out, 0, sizeof(ngx_http_identity_geo_result_t));

    if (sa->sa_family == AF_INET6) {
        sin6 = (const struct sockaddr_in6 *) sa;

        /*
         * An IPv4 client of a dual-stack socket: its address is found in
         * the IPv4 part of any database, whether or not the database
         * aliases ::ffff:0:0/96 to it, and in IPv4-only databases too.
         */

        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            memset(&sin, 0, sizeof(struct sockaddr_in));
            sin.sin_family = AF_INET;
            memcpy(&sin.sin_addr, &sin6->sin6_addr.s6_addr[12], 4);
            sa = (const struct sockaddr *) &sin;
        }

    } else if (sa->sa_family != AF_INET) {
        /* unix sockets */
        return NGX_HTTP_IDENTITY_GEO_NOT_FOUND;
    }

    res = MMDB_lookup_sockaddr(&g->mmdb, sa, &mmdb_error);

    if (mmdb_error == MMDB_IPV6_LOOKUP_IN_IPV4_DATABASE_ERROR) {
        /* ip-location-db ships IPv4 and IPv6 as two files */
        return NGX_HTTP_IDENTITY_GEO_NOT_FOUND;
    }

    if (mmdb_error != MMDB_SUCCESS) {
        out->error = MMDB_strerror(mmdb_error);
        return NGX_HTTP_IDENTITY_GEO_ERROR;
    }

    if (!res.found_entry) {
        return NGX_HTTP_IDENTITY_GEO_NOT_FOUND;
    }

    rc = ngx_http_identity_geo_country(&res.entry, out);

    if (rc != NGX_HTTP_IDENTITY_GEO_ERROR) {
        rc = ngx_http_identity_geo_location(&res.entry, out);
    }

    if (rc == NGX_HTTP_IDENTITY_GEO_ERROR) {
        error = out->error;
        memset(out, 0, sizeof(ngx_http_identity_geo_result_t));
        out->error = error;
        return NGX_HTTP_IDENTITY_GEO_ERROR;
    }

    if (out->country[0] == '\0' && !out->has_location) {
        return NGX_HTTP_IDENTITY_GEO_NOT_FOUND;
    }

    return NGX_HTTP_IDENTITY_GEO_OK;
}


/*
 * The first valid code wins: exactly two ASCII letters, upper-cased.
 * A value of another type or length is skipped, not trusted.
 */

static int
ngx_http_identity_geo_country(MMDB_entry_s *entry,
    ngx_http_identity_geo_result_t *out)
{
    int                  rc;
    char                 c[2];
    size_t               i, k, n;
    MMDB_entry_data_s    data;
    const char *const   *path;

    n = ngx_http_identity_geo_nelts(ngx_http_identity_geo_country_paths);

    for (i = 0; i < n; i++) {
        path = ngx_http_identity_geo_country_paths[i];

        rc = ngx_http_identity_geo_value(entry, path, &data, &out->error);

        if (rc == NGX_HTTP_IDENTITY_GEO_ERROR) {
            return rc;
        }

        if (rc != NGX_HTTP_IDENTITY_GEO_OK
            || data.type != MMDB_DATA_TYPE_UTF8_STRING
            || data.data_size != 2)
        {
            continue;
        }

        for (k = 0; k < 2; k++) {
            c[k] = data.utf8_string[k];

            if (c[k] >= 'a' && c[k] <= 'z') {
                c[k] = (char) (c[k] - 'a' + 'A');
            }
        }

        if (c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z') {
            continue;
        }

        out->country[0] = c[0];
        out->country[1] = c[1];
        out->country[2] = '\0';

        return NGX_HTTP_IDENTITY_GEO_OK;
    }

    return NGX_HTTP_IDENTITY_GEO_NOT_FOUND;
}


/*
 * A location needs both coordinates of one schema, each a number in range;
 * the accuracy radius only makes sense with them.
 */

static int
ngx_http_identity_geo_location(MMDB_entry_s *entry,
    ngx_http_identity_geo_result_t *out)
{
    int                  rc;
    double               lat, lon, radius;
    size_t               i, n;
    MMDB_entry_data_s    data;
    const char *const  (*paths)[3];

    n = ngx_http_identity_geo_nelts(ngx_http_identity_geo_location_paths);

    for (i = 0; i < n; i++) {
        paths = ngx_http_identity_geo_location_paths[i];

        rc = ngx_http_identity_geo_coordinate(entry, paths[0], -90.0, 90.0,
                                              &lat, &out->error);
        if (rc == NGX_HTTP_IDENTITY_GEO_ERROR) {
            return rc;
        }

        if (rc != NGX_HTTP_IDENTITY_GEO_OK) {
            continue;
        }

        rc = ngx_http_identity_geo_coordinate(entry, paths[1], -180.0, 180.0,
                                              &lon, &out->error);
        if (rc == NGX_HTTP_IDENTITY_GEO_ERROR) {
            return rc;
        }

        if (rc == NGX_HTTP_IDENTITY_GEO_OK) {
            break;
        }
    }

    if (i == n) {
        return NGX_HTTP_IDENTITY_GEO_NOT_FOUND;
    }

    out->has_location = 1;
    out->latitude = lat;
    out->longitude = lon;

    rc = ngx_http_identity_geo_value(entry, ngx_http_identity_geo_radius_path,
                                     &data, &out->error);
    if (rc == NGX_HTTP_IDENTITY_GEO_ERROR) {
        return rc;
    }

    if (rc == NGX_HTTP_IDENTITY_GEO_OK
        && ngx_http_identity_geo_number(&data, &radius)
        && radius >= 1.0 && radius <= NGX_HTTP_IDENTITY_GEO_MAX_RADIUS)
    {
        out->accuracy_radius = (unsigned) radius;
    }

    return NGX_HTTP_IDENTITY_GEO_OK;
}


static int
ngx_http_identity_geo_coordinate(MMDB_entry_s *entry, const char *const *path,
    double min, double max, double *v, const char **error)
{
    int                rc;
    MMDB_entry_data_s  data;

    rc = ngx_http_identity_geo_value(entry, path, &data, error);
    if (rc != NGX_HTTP_IDENTITY_GEO_OK) {
        return rc;
    }

    /* "v >= min" is false for NaN */

    if (!ngx_http_identity_geo_number(&data, v) || !(*v >= min && *v <= max)) {
        return NGX_HTTP_IDENTITY_GEO_NOT_FOUND;
    }

    return NGX_HTTP_IDENTITY_GEO_OK;
}


static int
ngx_http_identity_geo_value(MMDB_entry_s *entry, const char *const *path,
    MMDB_entry_data_s *data, const char **error)
{
    int  rc;

    rc = MMDB_aget_value(entry, data, path);

    if (rc == MMDB_SUCCESS) {
        return data->has_data ? NGX_HTTP_IDENTITY_GEO_OK
                              : NGX_HTTP_IDENTITY_GEO_NOT_FOUND;
    }

    /* e.g. "country" is a string where the path wants a map */

    if (rc == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR
        || rc == MMDB_INVALID_LOOKUP_PATH_ERROR)
    {
        return NGX_HTTP_IDENTITY_GEO_NOT_FOUND;
    }

    *error = MMDB_strerror(rc);

    return NGX_HTTP_IDENTITY_GEO_ERROR;
}


/*
 * MaxMind writes doubles, ip-location-db floats, and some converters
 * strings; a string must be a plain decimal number ("nan", "inf" and hex
 * floats are refused, and the C locale's decimal point is assumed).
 */

static int
ngx_http_identity_geo_number(MMDB_entry_data_s *data, double *v)
{
    char      buf[32], *end;
    uint32_t  i;

    switch (data->type) {

    case MMDB_DATA_TYPE_DOUBLE:
        *v = data->double_value;
        return 1;

    case MMDB_DATA_TYPE_FLOAT:
        *v = data->float_value;
        return 1;

    case MMDB_DATA_TYPE_UINT16:
        *v = data->uint16;
        return 1;

    case MMDB_DATA_TYPE_UINT32:
        *v = data->uint32;
        return 1;

    case MMDB_DATA_TYPE_INT32:
        *v = data->int32;
        return 1;

    case MMDB_DATA_TYPE_UTF8_STRING:

        if (data->data_size == 0 || data->data_size >= sizeof(buf)) {
            return 0;
        }

        for (i = 0; i < data->data_size; i++) {
            buf[i] = data->utf8_string[i];

            if ((buf[i] < '0' || buf[i] > '9')
                && buf[i] != '.' && buf[i] != '-' && buf[i] != '+'
                && buf[i] != 'e' && buf[i] != 'E')
            {
                return 0;
            }
        }

        buf[i] = '\0';

        errno = 0;
        *v = strtod(buf, &end);

        return end == buf + i && errno == 0;

    default:
        return 0;
    }
}
