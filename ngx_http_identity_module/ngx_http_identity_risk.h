
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_RISK_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_RISK_H_INCLUDED_


/*
 * The arithmetic of the risk signals (docs/risk.md), plain C with no nginx
 * headers, so that the same file builds into the module and into
 * unit/risk_check: the great-circle distance, the speed a move between two
 * logins needs, and the bounded lists of what an identity was seen with.
 * Nothing here knows Redis or a request.
 */


#include <stddef.h>
#include <time.h>


#define NGX_HTTP_IDENTITY_RISK_NEW_COUNTRY   0
#define NGX_HTTP_IDENTITY_RISK_NEW_DEVICE    1
#define NGX_HTTP_IDENTITY_RISK_TRAVEL        2
#define NGX_HTTP_IDENTITY_RISK_CONCURRENT    3
#define NGX_HTTP_IDENTITY_RISK_SIGNALS       4

#define NGX_HTTP_IDENTITY_RISK_FLAG          0
#define NGX_HTTP_IDENTITY_RISK_DENY          1
#define NGX_HTTP_IDENTITY_RISK_REVOKE        2
#define NGX_HTTP_IDENTITY_RISK_ACTIONS       3

/* entries kept of each list: seen countries, seen device/OS pairs */
#define NGX_HTTP_IDENTITY_RISK_SEEN_MAX      16

/* a place a login came from, and when */
typedef struct {
    double       latitude;
    double       longitude;
    double       radius;         /* km; 0 when unknown */
    char         country[3];     /* "" when unknown */
    time_t       at;
} ngx_http_identity_risk_place_t;


extern const char  *ngx_http_identity_risk_signals[];
extern const char  *ngx_http_identity_risk_actions[];

double ngx_http_identity_risk_distance(double lat1, double lon1,
    double lat2, double lon2);
int ngx_http_identity_risk_travel(const ngx_http_identity_risk_place_t *from,
    const ngx_http_identity_risk_place_t *to, double speed, double *km);
int ngx_http_identity_risk_seen(const char *list, size_t len,
    const char *item, size_t n);
size_t ngx_http_identity_risk_remember(char *out, size_t size,
    const char *list, size_t len, const char *item, size_t n);
int ngx_http_identity_risk_place_parse(const char *s, size_t len,
    ngx_http_identity_risk_place_t *pl);
size_t ngx_http_identity_risk_place_print(char *out, size_t size,
    const ngx_http_identity_risk_place_t *pl);


#endif /* _NGX_HTTP_IDENTITY_RISK_H_INCLUDED_ */
