
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_JSON_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_JSON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <jansson.h>


char *ngx_http_identity_json_strdup(json_t *obj, const char *key);
char *ngx_http_identity_json_claim(json_t *root, const char *paths);
char *ngx_http_identity_json_groups(json_t *root, const char *paths);
ngx_uint_t ngx_http_identity_json_verified(json_t *root, const char *path,
    ngx_uint_t stamp);


#endif /* _NGX_HTTP_IDENTITY_JSON_H_INCLUDED_ */
