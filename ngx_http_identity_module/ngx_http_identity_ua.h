
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_UA_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_UA_H_INCLUDED_


/*
 * User-Agent parsing with uap-core's regexes.yaml (libyaml, PCRE2).
 *
 * Plain C on purpose: no nginx headers, so that the same file builds into
 * the module and into the unit programs under unit/.
 */

#include <stddef.h>


/* longer User-Agent strings are cut to this before matching */
#define NGX_HTTP_IDENTITY_UA_MAX        1024

/* ngx_http_identity_ua_parse_cached() keeps this many results */
#define NGX_HTTP_IDENTITY_UA_CACHE      1024

/* ... of strings up to this length; longer ones are parsed every time */
#define NGX_HTTP_IDENTITY_UA_CACHE_LEN  512


typedef struct ngx_http_identity_ua_parser_s  ngx_http_identity_ua_parser_t;


/* every field is a NUL-terminated string, "" when absent */

typedef struct {
    char  browser[64];              /* family, "Other" if unknown */
    char  browser_major[32];
    char  browser_minor[32];
    char  browser_patch[32];
    char  browser_patch_minor[32];
    char  browser_version[96];      /* "major.minor.patch", parts present */

    char  os[64];                   /* family, "Other" if unknown */
    char  os_major[32];
    char  os_minor[32];
    char  os_patch[32];
    char  os_patch_minor[32];
    char  os_version[128];          /* "major.minor.patch.patch_minor" */

    char  device[64];               /* family, "Other" if unknown */
    char  device_brand[64];
    char  device_model[64];
    char  device_type[16];          /* Desktop Mobile Tablet Bot Other */
} ngx_http_identity_ua_t;


ngx_http_identity_ua_parser_t *ngx_http_identity_ua_load(const char *path,
    char *err, size_t errlen);
void ngx_http_identity_ua_free(ngx_http_identity_ua_parser_t *p);
void ngx_http_identity_ua_parse(ngx_http_identity_ua_parser_t *p,
    const char *ua, size_t len, ngx_http_identity_ua_t *out);
void ngx_http_identity_ua_parse_cached(ngx_http_identity_ua_parser_t *p,
    const char *ua, size_t len, ngx_http_identity_ua_t *out);


#endif /* _NGX_HTTP_IDENTITY_UA_H_INCLUDED_ */
