
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The risk signals' arithmetic (ngx_http_identity_risk.h): haversine on a
 * sphere of the Earth's mean radius, the distance less both accuracy radii
 * over the time between two logins, and the lists of countries and
 * device/OS pairs an identity was seen with: entries one a line, newest
 * first, at most NGX_HTTP_IDENTITY_RISK_SEEN_MAX.  A place is kept as text,
 * "lat lon radius country time" ("-" for no country).  Callers own every
 * buffer; nothing is allocated.
 */


#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_http_identity_risk.h"


#define NGX_HTTP_IDENTITY_EARTH_KM  6371.0088


const char  *ngx_http_identity_risk_signals[] = {
    "new_country", "new_device", "impossible_travel", "concurrent_sessions",
    NULL
};

const char  *ngx_http_identity_risk_actions[] = {
    "flag", "deny", "revoke_others", NULL
};


double
ngx_http_identity_risk_distance(double lat1, double lon1, double lat2,
    double lon2)
{
    double  rad, dlat, dlon, a;

    rad = M_PI / 180.0;
    dlat = (lat2 - lat1) * rad;
    dlon = (lon2 - lon1) * rad;

    a = sin(dlat / 2) * sin(dlat / 2)
        + cos(lat1 * rad) * cos(lat2 * rad) * sin(dlon / 2) * sin(dlon / 2);

    if (a > 1.0) {
        a = 1.0;
    }

    return 2 * NGX_HTTP_IDENTITY_EARTH_KM * asin(sqrt(a));
}


/*
 * 1 if going from "from" to "to" in the time between them needs more than
 * "speed" km/h, both places taken at the edge of their radius nearest the
 * other; *km is that least distance.  Logins at the same second, or out of
 * order, are impossible as soon as the least distance is not 0.
 */

int
ngx_http_identity_risk_travel(const ngx_http_identity_risk_place_t *from,
    const ngx_http_identity_risk_place_t *to, double speed, double *km)
{
    double  d, hours;

    d = ngx_http_identity_risk_distance(from->latitude, from->longitude,
                                        to->latitude, to->longitude)
        - from->radius - to->radius;

    if (d < 0) {
        d = 0;
    }

    *km = d;

    if (d == 0) {
        return 0;
    }

    if (to->at <= from->at) {
        return 1;
    }

    hours = (double) (to->at - from->at) / 3600.0;

    return d / hours > speed;
}


/* whether the line "item" is in the list */

int
ngx_http_identity_risk_seen(const char *list, size_t len, const char *item,
    size_t n)
{
    const char  *p, *last, *nl;

    p = list;
    last = list + len;

    while (p < last) {
        nl = memchr(p, '\n', last - p);
        if (nl == NULL) {
            nl = last;
        }

        if ((size_t) (nl - p) == n && memcmp(p, item, n) == 0) {
            return 1;
        }

        p = nl + 1;
    }

    return 0;
}


/*
 * The list with "item" first and without its older copy, cut to its
 * newest NGX_HTTP_IDENTITY_RISK_SEEN_MAX entries and to "size" bytes (an
 * entry that does not fit whole is left out); an empty item, or one with a
 * line break, is not remembered.  Answers the length written in "out".
 */

size_t
ngx_http_identity_risk_remember(char *out, size_t size, const char *list,
    size_t len, const char *item, size_t n)
{
    size_t       w, e;
    unsigned     count;
    const char  *p, *last, *nl;

    w = 0;
    count = 0;

    if (n && memchr(item, '\n', n) == NULL && n <= size) {
        memcpy(out, item, n);
        w = n;
        count = 1;
    }

    p = list;
    last = list + len;

    while (p < last && count < NGX_HTTP_IDENTITY_RISK_SEEN_MAX) {
        nl = memchr(p, '\n', last - p);
        if (nl == NULL) {
            nl = last;
        }

        e = nl - p;

        if (e && !(e == n && memcmp(p, item, n) == 0)) {
            if (w + (w ? 1 : 0) + e > size) {
                break;
            }

            if (w) {
                out[w++] = '\n';
            }

            memcpy(out + w, p, e);
            w += e;
            count++;
        }

        p = nl + 1;
    }

    return w;
}


/* "lat lon radius country time"; 0 if well formed and in range, else -1 */

int
ngx_http_identity_risk_place_parse(const char *s, size_t len,
    ngx_http_identity_risk_place_t *pl)
{
    char       buf[128], country[4];
    long long  at;

    if (len == 0 || len >= sizeof(buf)) {
        return -1;
    }

    memcpy(buf, s, len);
    buf[len] = '\0';

    if (sscanf(buf, "%lf %lf %lf %3s %lld", &pl->latitude, &pl->longitude,
               &pl->radius, country, &at)
        != 5
        || !(pl->latitude >= -90 && pl->latitude <= 90)
        || !(pl->longitude >= -180 && pl->longitude <= 180)
        || !(pl->radius >= 0 && pl->radius <= 20000)
        || at < 0)
    {
        return -1;
    }

    if (strcmp(country, "-") == 0) {
        pl->country[0] = '\0';

    } else if (strlen(country) == 2) {
        memcpy(pl->country, country, 3);

    } else {
        return -1;
    }

    pl->at = (time_t) at;

    return 0;
}


/* the text of a place; 0 if it does not fit */

size_t
ngx_http_identity_risk_place_print(char *out, size_t size,
    const ngx_http_identity_risk_place_t *pl)
{
    int  n;

    n = snprintf(out, size, "%.4f %.4f %.0f %s %lld", pl->latitude,
                 pl->longitude, pl->radius,
                 pl->country[0] ? pl->country : "-", (long long) pl->at);

    if (n < 0 || (size_t) n >= size) {
        return 0;
    }

    return (size_t) n;
}
