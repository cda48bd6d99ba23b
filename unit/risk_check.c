
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * risk_check: the known answers of ngx_http_identity_risk.c without nginx:
 * great-circle distances between known cities, impossible travel with and
 * without the accuracy radii, logins out of order, the seen lists (found,
 * remembered newest first, bounded, no line breaks) and the place's text
 * (round trip, refused when malformed or out of range).  Prints one line a
 * failure and a summary ("risk_check: N checks, M failed"); exits 1 if any
 * failed.  t/98-risk.t runs it.
 */


#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ngx_http_identity_risk.h"


static unsigned  checks, failed;


static void
check(int ok, const char *what)
{
    checks++;

    if (!ok) {
        failed++;
        fprintf(stderr, "not ok: %s\n", what);
    }
}


static ngx_http_identity_risk_place_t
place(double lat, double lon, double radius, const char *cc, time_t at)
{
    ngx_http_identity_risk_place_t  pl;

    pl.latitude = lat;
    pl.longitude = lon;
    pl.radius = radius;
    snprintf(pl.country, sizeof(pl.country), "%s", cc);
    pl.at = at;

    return pl;
}


int
main(void)
{
    char                            out[256];
    double                          d, km;
    size_t                          n;
    ngx_http_identity_risk_place_t  paris, tokyo, pl;

    /* Paris - Tokyo is about 9,712 km, London - New York about 5,570 km */

    d = ngx_http_identity_risk_distance(48.8566, 2.3522, 35.6762, 139.6503);
    check(fabs(d - 9712) < 10, "Paris - Tokyo");
    d = ngx_http_identity_risk_distance(51.5074, -0.1278, 40.7128, -74.0060);
    check(fabs(d - 5570) < 10, "London - New York");
    check(ngx_http_identity_risk_distance(10, 20, 10, 20) == 0, "no move");
    d = ngx_http_identity_risk_distance(0, 0, 0, 180);
    check(fabs(d - M_PI * 6371.0088) < 1, "antipodes");

    /* 9,712 km in 10 minutes; in a day (405 km/h) */

    tokyo = place(35.6762, 139.6503, 0, "JP", 1000000);
    paris = place(48.8566, 2.3522, 0, "FR", 1000000 + 600);
    check(ngx_http_identity_risk_travel(&tokyo, &paris, 900, &km) == 1,
          "Tokyo to Paris in 10 minutes");
    check(fabs(km - 9712) < 10, "its distance");

    paris.at = 1000000 + 86400;
    check(ngx_http_identity_risk_travel(&tokyo, &paris, 900, &km) == 0,
          "Tokyo to Paris in a day");
    check(ngx_http_identity_risk_travel(&tokyo, &paris, 400, &km) == 1,
          "Tokyo to Paris in a day, at most 400 km/h");

    /* radii that cover the distance: possible, even at once */

    paris.at = 1000000 + 600;
    tokyo.radius = 5000;
    paris.radius = 5000;
    check(ngx_http_identity_risk_travel(&tokyo, &paris, 900, &km) == 0,
          "radii cover the distance");
    check(km == 0, "least distance 0");

    /* radii that leave 112 km in 10 minutes: 672 km/h, possible */

    tokyo.radius = 4800;
    paris.radius = 4800;
    check(ngx_http_identity_risk_travel(&tokyo, &paris, 900, &km) == 0,
          "672 km/h");

    /* out of order, or at the same second */

    tokyo.radius = 0;
    paris.radius = 0;
    paris.at = tokyo.at;
    check(ngx_http_identity_risk_travel(&tokyo, &paris, 900, &km) == 1,
          "same second, far apart");
    pl = tokyo;
    check(ngx_http_identity_risk_travel(&tokyo, &pl, 900, &km) == 0,
          "same second, same place");

    /* the seen lists */

    check(ngx_http_identity_risk_seen("FR\nJP", 5, "JP", 2) == 1, "seen JP");
    check(ngx_http_identity_risk_seen("FR\nJP", 5, "J", 1) == 0, "not J");
    check(ngx_http_identity_risk_seen("FR\nJP", 5, "US", 2) == 0, "not US");
    check(ngx_http_identity_risk_seen("", 0, "US", 2) == 0, "empty list");

    n = ngx_http_identity_risk_remember(out, sizeof(out), "FR\nJP", 5,
                                        "JP", 2);
    check(n == 5 && memcmp(out, "JP\nFR", 5) == 0, "JP moves first");
    n = ngx_http_identity_risk_remember(out, sizeof(out), "", 0, "US", 2);
    check(n == 2 && memcmp(out, "US", 2) == 0, "first entry");
    n = ngx_http_identity_risk_remember(out, sizeof(out), "FR", 2,
                                        "a\nb", 3);
    check(n == 2 && memcmp(out, "FR", 2) == 0, "a line break is refused");

    {
        int   i;
        char  list[256], item[4];

        list[0] = '\0';
        n = 0;

        for (i = 0; i < 20; i++) {
            snprintf(item, sizeof(item), "%02d", i);
            n = ngx_http_identity_risk_remember(out, sizeof(out), list, n,
                                                item, 2);
            memcpy(list, out, n);
        }

        check(n == 16 * 3 - 1, "16 entries kept");
        check(memcmp(out, "19\n18", 5) == 0, "newest first");
        check(!ngx_http_identity_risk_seen(out, n, "03", 2), "oldest gone");
        check(ngx_http_identity_risk_seen(out, n, "04", 2), "16th kept");
    }

    n = ngx_http_identity_risk_remember(out, 5, "FR\nJP", 5, "US", 2);
    check(n == 5 && memcmp(out, "US\nFR", 5) == 0, "cut to the size");

    /* places */

    pl = place(48.8566, 2.3522, 20, "FR", 1700000000);
    n = ngx_http_identity_risk_place_print(out, sizeof(out), &pl);
    check(n && strcmp(out, "48.8566 2.3522 20 FR 1700000000") == 0,
          "place printed");
    check(ngx_http_identity_risk_place_parse(out, n, &paris) == 0
          && paris.at == 1700000000 && strcmp(paris.country, "FR") == 0
          && paris.radius == 20, "place read back");

    pl.country[0] = '\0';
    n = ngx_http_identity_risk_place_print(out, sizeof(out), &pl);
    check(ngx_http_identity_risk_place_parse(out, n, &paris) == 0
          && paris.country[0] == '\0', "no country");

    check(ngx_http_identity_risk_place_parse("91 0 0 FR 1", 11, &pl) == -1,
          "latitude out of range");
    check(ngx_http_identity_risk_place_parse("0 0 0 FRA 1", 11, &pl) == -1,
          "three letters");
    check(ngx_http_identity_risk_place_parse("0 0 0 FR", 8, &pl) == -1,
          "no time");
    check(ngx_http_identity_risk_place_parse("nan 0 0 FR 1", 12, &pl) == -1,
          "nan");
    check(ngx_http_identity_risk_place_parse("", 0, &pl) == -1, "empty");

    printf("risk_check: %u checks, %u failed\n", checks, failed);

    return failed ? 1 : 0;
}
