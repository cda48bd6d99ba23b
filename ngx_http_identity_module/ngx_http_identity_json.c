
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * What a provider's JSON says of a user, read without a request or an
 * HTTP call: a key's string, a claim path's value ("data.0.login",
 * "mail|userPrincipalName"), groups one per line, and whether a claim
 * vouches for an e-mail.  Results are malloc()ed, for the thread tasks of
 * OpenID Connect and OAuth, and for unit/fuzz_provider.c (make fuzz).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <jansson.h>

#include "ngx_http_identity_json.h"


static char *ngx_http_identity_json_value(json_t *root, const char *paths,
    ngx_uint_t groups);
static json_t *ngx_http_identity_json_path(json_t *root, const char *path,
    size_t len);


/* a key's string, or NULL */

char *
ngx_http_identity_json_strdup(json_t *obj, const char *key)
{
    const char  *s;

    s = json_string_value(json_object_get(obj, key));

    return s ? strdup(s) : NULL;
}


/*
 * A claim path: keys separated by dots, a number indexes an array
 * ("data.0.login"); "a|b" takes b when a is absent.  Strings come as they
 * are, integers in decimal, an array of strings one per line (groups).
 */

char *
ngx_http_identity_json_claim(json_t *root, const char *paths)
{
    return ngx_http_identity_json_value(root, paths, 0);
}


/*
 * Groups, one per line: a lone string is one group, and like a group of an
 * array it is dropped if it holds a newline, which would make it two.
 */

char *
ngx_http_identity_json_groups(json_t *root, const char *paths)
{
    return ngx_http_identity_json_value(root, paths, 1);
}


static char *
ngx_http_identity_json_value(json_t *root, const char *paths,
    ngx_uint_t groups)
{
    char        *out, *p;
    size_t       i, len, n;
    json_t      *v, *e;
    const char  *path, *end;

    for (path = paths; *path; path = end + 1) {
        end = strchr(path, '|');
        if (end == NULL) {
            end = path + strlen(path);
        }

        v = ngx_http_identity_json_path(root, path, end - path);

        if (json_is_string(v) && json_string_length(v)) {
            if (groups
                && memchr(json_string_value(v), '\n', json_string_length(v)))
            {
                return NULL;
            }

            return strdup(json_string_value(v));
        }

        if (json_is_integer(v)) {
            out = malloc(NGX_INT64_LEN + 1);
            if (out) {
                snprintf(out, NGX_INT64_LEN + 1, "%" JSON_INTEGER_FORMAT,
                         json_integer_value(v));
            }

            return out;
        }

        if (json_is_array(v) && json_array_size(v)) {
            len = 0;

            json_array_foreach(v, i, e) {
                len += json_is_string(e) ? json_string_length(e) + 1 : 0;
            }

            out = malloc(len + 1);
            if (out == NULL) {
                return NULL;
            }

            p = out;

            json_array_foreach(v, i, e) {
                n = json_is_string(e) ? json_string_length(e) : 0;

                if (n && memchr(json_string_value(e), '\n', n) == NULL) {
                    memcpy(p, json_string_value(e), n);
                    p += n;
                    *p++ = '\n';
                }
            }

            if (p > out) {
                p--;
            }

            *p = '\0';

            return out;
        }

        if (*end == '\0') {
            break;
        }
    }

    return NULL;
}


/*
 * Whether a provider vouches for an e-mail: the value at the path is JSON
 * true or the string "true" (AWS Cognito sends strings); with "stamp", a
 * non-empty date string (GitLab's confirmed_at) counts too.  Anything
 * else, absent included, does not.
 */

ngx_uint_t
ngx_http_identity_json_verified(json_t *root, const char *path,
    ngx_uint_t stamp)
{
    json_t      *v;
    const char  *s;

    v = ngx_http_identity_json_path(root, path, strlen(path));

    if (json_is_true(v)) {
        return 1;
    }

    if (!json_is_string(v)) {
        return 0;
    }

    s = json_string_value(v);

    if (strcmp(s, "true") == 0) {
        return 1;
    }

    return stamp && s[0] != '\0' && strcmp(s, "false") != 0;
}


static json_t *
ngx_http_identity_json_path(json_t *root, const char *path, size_t len)
{
    char        key[128], *endp;
    size_t      n;
    json_t     *v;
    long        index;
    const char  *p, *last, *dot;

    v = root;
    p = path;
    last = path + len;

    while (v && p < last) {
        dot = memchr(p, '.', last - p);
        if (dot == NULL) {
            dot = last;
        }

        n = dot - p;

        if (n == 0 || n >= sizeof(key)) {
            return NULL;
        }

        memcpy(key, p, n);
        key[n] = '\0';

        if (json_is_array(v)) {
            index = strtol(key, &endp, 10);
            v = (*endp == '\0' && index >= 0)
                ? json_array_get(v, (size_t) index) : NULL;

        } else {
            v = json_object_get(v, key);
        }

        p = dot + 1;
    }

    return v;
}
