
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_GEO_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_GEO_H_INCLUDED_


/*
 * IP geolocation over libmaxminddb.  Plain C with no nginx headers, so that
 * the same file builds into the module and into unit/geo_lookup.
 *
 * The database is opened once (at configuration load) and only read after
 * that: a lookup touches no shared mutable state, so any thread may call
 * ngx_http_identity_geo_lookup() on the same handle.
 */


#include <stddef.h>
#include <sys/socket.h>


#define NGX_HTTP_IDENTITY_GEO_OK         0
#define NGX_HTTP_IDENTITY_GEO_NOT_FOUND  1
#define NGX_HTTP_IDENTITY_GEO_ERROR     -1


typedef struct ngx_http_identity_geo_s  ngx_http_identity_geo_t;

typedef struct {
    char         country[3];       /* ISO 3166-1 alpha-2, "" if unknown */
    unsigned     has_location:1;
    double       latitude;         /* degrees, valid if has_location */
    double       longitude;
    unsigned     accuracy_radius;  /* km, 0 if unknown */
    const char  *error;            /* static text on GEO_ERROR */
} ngx_http_identity_geo_result_t;


/*
 * NULL and a message in err on failure.  The file is mapped, not read: it
 * must be replaced by rename (as geoipupdate does), never rewritten in place.
 */
ngx_http_identity_geo_t *ngx_http_identity_geo_open(const char *path,
    char *err, size_t errlen);
void ngx_http_identity_geo_close(ngx_http_identity_geo_t *g);

/*
 * GEO_OK if the address has a country or a location, GEO_NOT_FOUND if it
 * has neither (including an IPv6 address in an IPv4-only database and
 * non-IP families), GEO_ERROR with out->error for a corrupt database.
 */
int ngx_http_identity_geo_lookup(ngx_http_identity_geo_t *g,
    const struct sockaddr *sa, ngx_http_identity_geo_result_t *out);


#endif /* _NGX_HTTP_IDENTITY_GEO_H_INCLUDED_ */
