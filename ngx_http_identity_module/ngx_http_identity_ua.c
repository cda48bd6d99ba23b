
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * User-Agent parsing after uap-core's specification: regexes.yaml has three
 * lists (user_agent_parsers, os_parsers, device_parsers); in each list the
 * first regex that matches wins, and its *_replacement strings, with $1..$9
 * standing for its capture groups, give the fields.  Without a replacement
 * a field is the capture group of its rank (family $1, major $2, ...); the
 * device brand has no default and the device model defaults to $1.  Every
 * field is trimmed, an empty field is absent, and an absent family is
 * "Other".
 *
 * The parser is single-threaded: one match data block, one JIT stack and
 * the result cache belong to the parser, and an nginx worker calls it from
 * its event loop only.
 */


#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH  8
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include <pcre2.h>
#include <yaml.h>

#include "ngx_http_identity_ua.h"


#define NGX_HTTP_IDENTITY_UA_FIELDS       5

/* one field after substitution, before it is cut to the output buffer */
#define NGX_HTTP_IDENTITY_UA_VALUE        256

/*
 * uap-core bounds its repeats ({0,100}, {1,200}): crafted 1024-byte
 * User-Agents take about 2 ms for the whole parse.  The limits are a
 * backstop for a future regexes.yaml; hitting one counts as no match.
 */
#define NGX_HTTP_IDENTITY_UA_MATCH_LIMIT  1000000
#define NGX_HTTP_IDENTITY_UA_DEPTH_LIMIT  10000
#define NGX_HTTP_IDENTITY_UA_JIT_STACK    (256 * 1024)


enum {
    NGX_HTTP_IDENTITY_UA_BROWSER = 0,
    NGX_HTTP_IDENTITY_UA_OS,
    NGX_HTTP_IDENTITY_UA_DEVICE,
    NGX_HTTP_IDENTITY_UA_KINDS
};


typedef struct {
    const char                    *section;
    const char                    *keys[NGX_HTTP_IDENTITY_UA_FIELDS];
    int                            groups[NGX_HTTP_IDENTITY_UA_FIELDS];
} ngx_http_identity_ua_kind_t;


typedef struct {
    pcre2_code                    *re;
    int                            jit;
    char                          *repl[NGX_HTTP_IDENTITY_UA_FIELDS];
} ngx_http_identity_ua_rule_t;


typedef struct {
    ngx_http_identity_ua_rule_t   *rules;
    size_t                         nrules;
    size_t                         nalloc;
} ngx_http_identity_ua_list_t;


typedef struct {
    unsigned                       used;
    size_t                         len;
    char                           ua[NGX_HTTP_IDENTITY_UA_CACHE_LEN];
    ngx_http_identity_ua_t         result;
} ngx_http_identity_ua_cache_t;


struct ngx_http_identity_ua_parser_s {
    ngx_http_identity_ua_list_t    lists[NGX_HTTP_IDENTITY_UA_KINDS];
    uint32_t                       max_groups;
    pcre2_match_data              *match;
    pcre2_match_context           *mctx;
    pcre2_jit_stack               *jit_stack;
    ngx_http_identity_ua_cache_t  *cache;
};


typedef struct {
    yaml_parser_t                  yaml;
    ngx_http_identity_ua_parser_t *p;
    const char                    *path;
    char                          *err;
    size_t                         errlen;
} ngx_http_identity_ua_loader_t;


typedef char  ngx_http_identity_ua_fields_t[NGX_HTTP_IDENTITY_UA_FIELDS]
                                           [NGX_HTTP_IDENTITY_UA_VALUE];


static int ngx_http_identity_ua_load_doc(ngx_http_identity_ua_loader_t *ld);
static int ngx_http_identity_ua_load_list(ngx_http_identity_ua_loader_t *ld,
    int kind);
static int ngx_http_identity_ua_load_rule(ngx_http_identity_ua_loader_t *ld,
    int kind, size_t line);
static int ngx_http_identity_ua_add(ngx_http_identity_ua_loader_t *ld,
    int kind, size_t line, const char *regex, int caseless, char **repl);
static int ngx_http_identity_ua_next(ngx_http_identity_ua_loader_t *ld,
    yaml_event_t *ev);
static int ngx_http_identity_ua_skip(ngx_http_identity_ua_loader_t *ld,
    yaml_event_t *ev);
static int ngx_http_identity_ua_is_null(yaml_event_t *ev);
static void ngx_http_identity_ua_error(ngx_http_identity_ua_loader_t *ld,
    size_t line, const char *msg, const char *quoted, const char *detail);
static int ngx_http_identity_ua_prepare(ngx_http_identity_ua_parser_t *p,
    char *err, size_t errlen);

static int ngx_http_identity_ua_match(ngx_http_identity_ua_parser_t *p,
    int kind, const char *ua, size_t len, ngx_http_identity_ua_fields_t f);
static void ngx_http_identity_ua_subst(char *dst, const char *repl,
    const char *ua, PCRE2_SIZE *ov, int rc);
static void ngx_http_identity_ua_trim(char *s);
static void ngx_http_identity_ua_copy(char *dst, size_t size,
    const char *src, size_t len);
static void ngx_http_identity_ua_version(char *dst, size_t size,
    const char *major, const char *minor, const char *patch,
    const char *patch_minor);
static void ngx_http_identity_ua_device_type(ngx_http_identity_ua_t *out,
    const char *ua, size_t len);
static int ngx_http_identity_ua_tablet_name(const char *s);
static int ngx_http_identity_ua_in(const char *s, const char **list);
static int ngx_http_identity_ua_prefixed(const char *s, const char **list);
static const char *ngx_http_identity_ua_strnstr(const char *s, size_t len,
    const char *needle);
static uint32_t ngx_http_identity_ua_hash(const char *s, size_t len);


static const ngx_http_identity_ua_kind_t  ngx_http_identity_ua_kinds[] = {

    { "user_agent_parsers",
      { "family_replacement", "v1_replacement", "v2_replacement",
        "v3_replacement", "v4_replacement" },
      { 1, 2, 3, 4, 5 } },

    { "os_parsers",
      { "os_replacement", "os_v1_replacement", "os_v2_replacement",
        "os_v3_replacement", "os_v4_replacement" },
      { 1, 2, 3, 4, 5 } },

    { "device_parsers",
      { "device_replacement", "brand_replacement", "model_replacement",
        NULL, NULL },
      { 1, 0, 1, 0, 0 } }
};


static const char  *ngx_http_identity_ua_mobile_os[] = {
    "iOS", "Android", "Firefox OS", "KaiOS", "Bada", "MeeGo", "Maemo",
    "Sailfish", "webOS", "WatchOS", "Ubuntu Touch", NULL
};

static const char  *ngx_http_identity_ua_mobile_os_prefix[] = {
    "Windows Phone", "Windows Mobile", "Windows CE", "BlackBerry",
    "Symbian", "Nokia Series", "Brew", "BREW", NULL
};

static const char  *ngx_http_identity_ua_desktop_os[] = {
    "Windows", "Mac OS X", "Mac OS", "Linux", "Ubuntu", "Kubuntu",
    "Xubuntu", "Lubuntu", "Linux Mint", "Debian", "Fedora", "Red Hat",
    "CentOS", "SUSE", "openSUSE", "Gentoo", "Mandriva", "Slackware",
    "Arch Linux", "Chrome OS", "FreeBSD", "OpenBSD", "NetBSD", "BSD",
    "Solaris", "SerenityOS", NULL
};

static const char  *ngx_http_identity_ua_desktop_os_prefix[] = {
    "Windows ", NULL
};

static const char  *ngx_http_identity_ua_tv_words[] = {
    " TV", "-TV", "GoogleTV", "SmartTV", "HbbTV", "AndroidTV", "BRAVIA",
    NULL
};

static const char  *ngx_http_identity_ua_tablet_words[] = {
    "iPad", "Kindle", "Tablet", "PlayBook", "TouchPad", "MediaPad",
    "MI PAD", "Xoom", NULL
};


ngx_http_identity_ua_parser_t *
ngx_http_identity_ua_load(const char *path, char *err, size_t errlen)
{
    int                             rc;
    FILE                           *f;
    ngx_http_identity_ua_parser_t  *p;
    ngx_http_identity_ua_loader_t   ld;

    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }

    p = calloc(1, sizeof(ngx_http_identity_ua_parser_t));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        fclose(f);
        return NULL;
    }

    memset(&ld, 0, sizeof(ngx_http_identity_ua_loader_t));
    ld.p = p;
    ld.path = path;
    ld.err = err;
    ld.errlen = errlen;

    if (!yaml_parser_initialize(&ld.yaml)) {
        snprintf(err, errlen, "out of memory");
        free(p);
        fclose(f);
        return NULL;
    }

    yaml_parser_set_input_file(&ld.yaml, f);

    rc = ngx_http_identity_ua_load_doc(&ld);

    yaml_parser_delete(&ld.yaml);
    fclose(f);

    if (rc == 0) {
        rc = ngx_http_identity_ua_prepare(p, err, errlen);
    }

    if (rc != 0) {
        ngx_http_identity_ua_free(p);
        return NULL;
    }

    return p;
}


void
ngx_http_identity_ua_free(ngx_http_identity_ua_parser_t *p)
{
    int                           k, i;
    size_t                        n;
    ngx_http_identity_ua_rule_t  *rule;

    if (p == NULL) {
        return;
    }

    for (k = 0; k < NGX_HTTP_IDENTITY_UA_KINDS; k++) {

        for (n = 0; n < p->lists[k].nrules; n++) {
            rule = &p->lists[k].rules[n];

            pcre2_code_free(rule->re);

            for (i = 0; i < NGX_HTTP_IDENTITY_UA_FIELDS; i++) {
                free(rule->repl[i]);
            }
        }

        free(p->lists[k].rules);
    }

    pcre2_match_data_free(p->match);
    pcre2_match_context_free(p->mctx);
    pcre2_jit_stack_free(p->jit_stack);
    free(p->cache);
    free(p);
}


/*
 * The file is read as a stream of events: a mapping of list name to a
 * sequence of rule mappings.  Unknown top-level keys and unknown rule keys
 * are skipped, so that newer uap-core files still load.
 */

static int
ngx_http_identity_ua_load_doc(ngx_http_identity_ua_loader_t *ld)
{
    int           k, kind, rc, seen;
    size_t        line;
    yaml_event_t  ev;

    do {
        if (ngx_http_identity_ua_next(ld, &ev) != 0) {
            return -1;
        }

        rc = ev.type;
        line = ev.start_mark.line + 1;
        yaml_event_delete(&ev);

        if (rc == YAML_STREAM_END_EVENT) {
            ngx_http_identity_ua_error(ld, line, "no document", NULL, NULL);
            return -1;
        }

    } while (rc != YAML_MAPPING_START_EVENT);

    seen = 0;

    for ( ;; ) {
        if (ngx_http_identity_ua_next(ld, &ev) != 0) {
            return -1;
        }

        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }

        line = ev.start_mark.line + 1;

        if (ev.type != YAML_SCALAR_EVENT) {
            yaml_event_delete(&ev);
            ngx_http_identity_ua_error(ld, line, "expected a list name", NULL,
                                       NULL);
            return -1;
        }

        kind = -1;

        for (k = 0; k < NGX_HTTP_IDENTITY_UA_KINDS; k++) {
            if (strcmp((char *) ev.data.scalar.value,
                       ngx_http_identity_ua_kinds[k].section)
                == 0)
            {
                kind = k;
            }
        }

        yaml_event_delete(&ev);

        if (ngx_http_identity_ua_next(ld, &ev) != 0) {
            return -1;
        }

        if (kind == -1) {
            rc = ngx_http_identity_ua_skip(ld, &ev);
            yaml_event_delete(&ev);

            if (rc != 0) {
                return -1;
            }

            continue;
        }

        rc = ev.type;
        yaml_event_delete(&ev);

        if (rc != YAML_SEQUENCE_START_EVENT) {
            ngx_http_identity_ua_error(ld, line, "expected a list for",
                                       ngx_http_identity_ua_kinds[kind]
                                       .section, NULL);
            return -1;
        }

        if (ngx_http_identity_ua_load_list(ld, kind) != 0) {
            return -1;
        }

        seen |= 1 << kind;
    }

    for (k = 0; k < NGX_HTTP_IDENTITY_UA_KINDS; k++) {
        if (!(seen & (1 << k))) {
            ngx_http_identity_ua_error(ld, 0, "no list",
                                       ngx_http_identity_ua_kinds[k].section,
                                       NULL);
            return -1;
        }
    }

    return 0;
}


static int
ngx_http_identity_ua_load_list(ngx_http_identity_ua_loader_t *ld, int kind)
{
    int           type;
    size_t        line;
    yaml_event_t  ev;

    for ( ;; ) {
        if (ngx_http_identity_ua_next(ld, &ev) != 0) {
            return -1;
        }

        type = ev.type;
        line = ev.start_mark.line + 1;
        yaml_event_delete(&ev);

        if (type == YAML_SEQUENCE_END_EVENT) {
            return 0;
        }

        if (type != YAML_MAPPING_START_EVENT) {
            ngx_http_identity_ua_error(ld, line, "expected a rule", NULL,
                                       NULL);
            return -1;
        }

        if (ngx_http_identity_ua_load_rule(ld, kind, line) != 0) {
            return -1;
        }
    }
}


static int
ngx_http_identity_ua_load_rule(ngx_http_identity_ua_loader_t *ld, int kind,
    size_t line)
{
    int                                 i, rc, caseless;
    char                               *regex, *value, **slot;
    char                               *repl[NGX_HTTP_IDENTITY_UA_FIELDS];
    char                                key[32];
    yaml_event_t                        ev;
    const ngx_http_identity_ua_kind_t  *kd;

    kd = &ngx_http_identity_ua_kinds[kind];
    regex = NULL;
    caseless = 0;
    memset(repl, 0, sizeof(repl));
    rc = -1;

    for ( ;; ) {
        if (ngx_http_identity_ua_next(ld, &ev) != 0) {
            goto done;
        }

        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }

        if (ev.type != YAML_SCALAR_EVENT) {
            yaml_event_delete(&ev);
            ngx_http_identity_ua_error(ld, line, "bad rule key", NULL, NULL);
            goto done;
        }

        ngx_http_identity_ua_copy(key, sizeof(key),
                                  (char *) ev.data.scalar.value,
                                  ev.data.scalar.length);
        yaml_event_delete(&ev);

        if (ngx_http_identity_ua_next(ld, &ev) != 0) {
            goto done;
        }

        if (ev.type != YAML_SCALAR_EVENT) {
            i = ngx_http_identity_ua_skip(ld, &ev);
            yaml_event_delete(&ev);

            if (i != 0) {
                goto done;
            }

            continue;
        }

        if (ngx_http_identity_ua_is_null(&ev)) {
            yaml_event_delete(&ev);
            continue;
        }

        /*
         * 'i' is the only flag the specification knows; other letters are
         * ignored so that a newer regexes.yaml does not stop nginx.
         */

        if (strcmp(key, "regex_flag") == 0) {
            caseless = strchr((char *) ev.data.scalar.value, 'i') != NULL;
            yaml_event_delete(&ev);
            continue;
        }

        slot = NULL;

        if (strcmp(key, "regex") == 0) {
            slot = &regex;

        } else {
            for (i = 0; i < NGX_HTTP_IDENTITY_UA_FIELDS; i++) {
                if (kd->keys[i] != NULL && strcmp(key, kd->keys[i]) == 0) {
                    slot = &repl[i];
                }
            }
        }

        if (slot == NULL) {
            yaml_event_delete(&ev);
            continue;
        }

        value = strdup((char *) ev.data.scalar.value);
        yaml_event_delete(&ev);

        if (value == NULL) {
            ngx_http_identity_ua_error(ld, line, "out of memory", NULL, NULL);
            goto done;
        }

        free(*slot);
        *slot = value;
    }

    if (regex == NULL) {
        ngx_http_identity_ua_error(ld, line, "rule without \"regex\"", NULL,
                                   NULL);
        goto done;
    }

    rc = ngx_http_identity_ua_add(ld, kind, line, regex, caseless, repl);

done:

    free(regex);

    if (rc != 0) {
        for (i = 0; i < NGX_HTTP_IDENTITY_UA_FIELDS; i++) {
            free(repl[i]);
        }
    }

    return rc;
}


/* on success the rule owns repl[] */

static int
ngx_http_identity_ua_add(ngx_http_identity_ua_loader_t *ld, int kind,
    size_t line, const char *regex, int caseless, char **repl)
{
    int                           errcode;
    size_t                        n;
    uint32_t                      groups;
    PCRE2_SIZE                    erroffset;
    pcre2_code                   *re;
    char                          detail[160];
    PCRE2_UCHAR                   msg[128];
    ngx_http_identity_ua_list_t  *list;
    ngx_http_identity_ua_rule_t  *rules;

    list = &ld->p->lists[kind];

    if (list->nrules == list->nalloc) {
        n = list->nalloc ? list->nalloc * 2 : 256;

        rules = realloc(list->rules, n * sizeof(ngx_http_identity_ua_rule_t));
        if (rules == NULL) {
            ngx_http_identity_ua_error(ld, line, "out of memory", NULL, NULL);
            return -1;
        }

        list->rules = rules;
        list->nalloc = n;
    }

    re = pcre2_compile((PCRE2_SPTR) regex, PCRE2_ZERO_TERMINATED,
                       caseless ? PCRE2_CASELESS : 0, &errcode, &erroffset,
                       NULL);
    if (re == NULL) {
        pcre2_get_error_message(errcode, msg, sizeof(msg));
        snprintf(detail, sizeof(detail), "%s at offset %zu", (char *) msg,
                 (size_t) erroffset);
        ngx_http_identity_ua_error(ld, line, "bad regex", regex, detail);
        return -1;
    }

    /* without JIT support the pattern is interpreted */
    list->rules[list->nrules].jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE)
                                    == 0;

    if (pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &groups) == 0
        && groups > ld->p->max_groups)
    {
        ld->p->max_groups = groups;
    }

    list->rules[list->nrules].re = re;
    memcpy(list->rules[list->nrules].repl, repl,
           NGX_HTTP_IDENTITY_UA_FIELDS * sizeof(char *));
    list->nrules++;

    return 0;
}


static int
ngx_http_identity_ua_next(ngx_http_identity_ua_loader_t *ld,
    yaml_event_t *ev)
{
    if (yaml_parser_parse(&ld->yaml, ev)) {
        return 0;
    }

    ngx_http_identity_ua_error(ld, ld->yaml.problem_mark.line + 1,
                               ld->yaml.problem ? ld->yaml.problem
                                                : "YAML error",
                               NULL, NULL);
    return -1;
}


/* skips the node that ev starts; the caller deletes ev */

static int
ngx_http_identity_ua_skip(ngx_http_identity_ua_loader_t *ld,
    yaml_event_t *ev)
{
    int           depth, type;
    yaml_event_t  e;

    if (ev->type != YAML_SEQUENCE_START_EVENT
        && ev->type != YAML_MAPPING_START_EVENT)
    {
        return 0;
    }

    depth = 1;

    while (depth > 0) {
        if (ngx_http_identity_ua_next(ld, &e) != 0) {
            return -1;
        }

        type = e.type;
        yaml_event_delete(&e);

        if (type == YAML_SEQUENCE_START_EVENT
            || type == YAML_MAPPING_START_EVENT)
        {
            depth++;

        } else if (type == YAML_SEQUENCE_END_EVENT
                   || type == YAML_MAPPING_END_EVENT)
        {
            depth--;

        } else if (type == YAML_STREAM_END_EVENT) {
            return -1;
        }
    }

    return 0;
}


static int
ngx_http_identity_ua_is_null(yaml_event_t *ev)
{
    const char  *v;

    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return 0;
    }

    v = (const char *) ev->data.scalar.value;

    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0
           || strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}


/* "path:line: msg "quoted": detail", cut to the caller's buffer */

static void
ngx_http_identity_ua_error(ngx_http_identity_ua_loader_t *ld, size_t line,
    const char *msg, const char *quoted, const char *detail)
{
    int     n;
    size_t  len;

    if (ld->errlen == 0) {
        return;
    }

    n = line ? snprintf(ld->err, ld->errlen, "%s:%zu: %s", ld->path, line,
                        msg)
             : snprintf(ld->err, ld->errlen, "%s: %s", ld->path, msg);
    len = (n < 0) ? ld->errlen : (size_t) n;

    if (quoted != NULL && len < ld->errlen) {
        n = snprintf(ld->err + len, ld->errlen - len, " \"%s\"", quoted);
        len = (n < 0) ? ld->errlen : len + n;
    }

    if (detail != NULL && len < ld->errlen) {
        snprintf(ld->err + len, ld->errlen - len, ": %s", detail);
    }
}


static int
ngx_http_identity_ua_prepare(ngx_http_identity_ua_parser_t *p, char *err,
    size_t errlen)
{
    p->match = pcre2_match_data_create(p->max_groups + 1, NULL);
    p->mctx = pcre2_match_context_create(NULL);
    p->jit_stack = pcre2_jit_stack_create(32 * 1024,
                                          NGX_HTTP_IDENTITY_UA_JIT_STACK,
                                          NULL);

    if (p->match == NULL || p->mctx == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    pcre2_set_match_limit(p->mctx, NGX_HTTP_IDENTITY_UA_MATCH_LIMIT);
    pcre2_set_depth_limit(p->mctx, NGX_HTTP_IDENTITY_UA_DEPTH_LIMIT);

    /* NULL without JIT support: PCRE2's own 32K stack is then unused */
    if (p->jit_stack != NULL) {
        pcre2_jit_stack_assign(p->mctx, NULL, p->jit_stack);
    }

    return 0;
}


void
ngx_http_identity_ua_parse(ngx_http_identity_ua_parser_t *p, const char *ua,
    size_t len, ngx_http_identity_ua_t *out)
{
    ngx_http_identity_ua_fields_t  f;

    memset(out, 0, sizeof(ngx_http_identity_ua_t));

    if (ua == NULL) {
        ua = "";
        len = 0;
    }

    /* real User-Agents are far shorter; this bounds the cost of a match */
    if (len > NGX_HTTP_IDENTITY_UA_MAX) {
        len = NGX_HTTP_IDENTITY_UA_MAX;
    }

#define ngx_http_identity_ua_set(dst, i)                                     \
    ngx_http_identity_ua_copy(dst, sizeof(dst), f[i], strlen(f[i]))

    if (ngx_http_identity_ua_match(p, NGX_HTTP_IDENTITY_UA_BROWSER, ua, len,
                                   f))
    {
        ngx_http_identity_ua_set(out->browser, 0);
        ngx_http_identity_ua_set(out->browser_major, 1);
        ngx_http_identity_ua_set(out->browser_minor, 2);
        ngx_http_identity_ua_set(out->browser_patch, 3);
        ngx_http_identity_ua_set(out->browser_patch_minor, 4);
    }

    if (ngx_http_identity_ua_match(p, NGX_HTTP_IDENTITY_UA_OS, ua, len, f)) {
        ngx_http_identity_ua_set(out->os, 0);
        ngx_http_identity_ua_set(out->os_major, 1);
        ngx_http_identity_ua_set(out->os_minor, 2);
        ngx_http_identity_ua_set(out->os_patch, 3);
        ngx_http_identity_ua_set(out->os_patch_minor, 4);
    }

    if (ngx_http_identity_ua_match(p, NGX_HTTP_IDENTITY_UA_DEVICE, ua, len,
                                   f))
    {
        ngx_http_identity_ua_set(out->device, 0);
        ngx_http_identity_ua_set(out->device_brand, 1);
        ngx_http_identity_ua_set(out->device_model, 2);
    }

#undef ngx_http_identity_ua_set

    if (out->browser[0] == '\0') {
        strcpy(out->browser, "Other");
    }

    if (out->os[0] == '\0') {
        strcpy(out->os, "Other");
    }

    if (out->device[0] == '\0') {
        strcpy(out->device, "Other");
    }

    ngx_http_identity_ua_version(out->browser_version,
                                 sizeof(out->browser_version),
                                 out->browser_major, out->browser_minor,
                                 out->browser_patch, NULL);

    ngx_http_identity_ua_version(out->os_version, sizeof(out->os_version),
                                 out->os_major, out->os_minor,
                                 out->os_patch, out->os_patch_minor);

    ngx_http_identity_ua_device_type(out, ua, len);
}


/*
 * A direct-mapped cache: a slot holds the last User-Agent that hashed to
 * it.  Not thread-safe; it is allocated on first use, so in the worker that
 * uses it, not in the master.
 */

void
ngx_http_identity_ua_parse_cached(ngx_http_identity_ua_parser_t *p,
    const char *ua, size_t len, ngx_http_identity_ua_t *out)
{
    ngx_http_identity_ua_cache_t  *c;

    if (ua == NULL) {
        ua = "";
        len = 0;
    }

    if (len > NGX_HTTP_IDENTITY_UA_CACHE_LEN) {
        ngx_http_identity_ua_parse(p, ua, len, out);
        return;
    }

    if (p->cache == NULL) {
        p->cache = calloc(NGX_HTTP_IDENTITY_UA_CACHE,
                          sizeof(ngx_http_identity_ua_cache_t));
        if (p->cache == NULL) {
            ngx_http_identity_ua_parse(p, ua, len, out);
            return;
        }
    }

    c = &p->cache[ngx_http_identity_ua_hash(ua, len)
                  % NGX_HTTP_IDENTITY_UA_CACHE];

    if (c->used && c->len == len && memcmp(c->ua, ua, len) == 0) {
        memcpy(out, &c->result, sizeof(ngx_http_identity_ua_t));
        return;
    }

    ngx_http_identity_ua_parse(p, ua, len, out);

    c->used = 1;
    c->len = len;
    memcpy(c->ua, ua, len);
    memcpy(&c->result, out, sizeof(ngx_http_identity_ua_t));
}


static int
ngx_http_identity_ua_match(ngx_http_identity_ua_parser_t *p, int kind,
    const char *ua, size_t len, ngx_http_identity_ua_fields_t f)
{
    int                                 i, g, rc;
    size_t                              n;
    PCRE2_SIZE                         *ov;
    ngx_http_identity_ua_list_t        *list;
    ngx_http_identity_ua_rule_t        *rule;
    const ngx_http_identity_ua_kind_t  *kd;

    kd = &ngx_http_identity_ua_kinds[kind];
    list = &p->lists[kind];

    for (n = 0; n < list->nrules; n++) {
        rule = &list->rules[n];

        /* pcre2_jit_match() skips pcre2_match()'s checks of its arguments */

        if (rule->jit) {
            rc = pcre2_jit_match(rule->re, (PCRE2_SPTR) ua, len, 0, 0,
                                 p->match, p->mctx);

        } else {
            rc = pcre2_match(rule->re, (PCRE2_SPTR) ua, len, 0, 0, p->match,
                             p->mctx);
        }

        /* no match, or a limit: either way the next rule is tried */
        if (rc <= 0) {
            continue;
        }

        ov = pcre2_get_ovector_pointer(p->match);

        for (i = 0; i < NGX_HTTP_IDENTITY_UA_FIELDS; i++) {
            f[i][0] = '\0';

            if (rule->repl[i] != NULL) {
                ngx_http_identity_ua_subst(f[i], rule->repl[i], ua, ov, rc);

            } else {
                g = kd->groups[i];

                if (g > 0 && g < rc && ov[2 * g] != PCRE2_UNSET) {
                    ngx_http_identity_ua_copy(f[i], NGX_HTTP_IDENTITY_UA_VALUE,
                                              ua + ov[2 * g],
                                              ov[2 * g + 1] - ov[2 * g]);
                }
            }

            ngx_http_identity_ua_trim(f[i]);
        }

        return 1;
    }

    return 0;
}


/* $1..$9 of a group that did not take part, or does not exist, is empty */

static void
ngx_http_identity_ua_subst(char *dst, const char *repl, const char *ua,
    PCRE2_SIZE *ov, int rc)
{
    int          g;
    size_t       n, len;
    const char  *s;

    n = 0;

    for (s = repl; *s != '\0' && n < NGX_HTTP_IDENTITY_UA_VALUE - 1; s++) {

        if (s[0] != '$' || s[1] < '1' || s[1] > '9') {
            dst[n++] = *s;
            continue;
        }

        g = s[1] - '0';
        s++;

        if (g >= rc || ov[2 * g] == PCRE2_UNSET) {
            continue;
        }

        len = ov[2 * g + 1] - ov[2 * g];

        if (len > NGX_HTTP_IDENTITY_UA_VALUE - 1 - n) {
            len = NGX_HTTP_IDENTITY_UA_VALUE - 1 - n;
        }

        memcpy(dst + n, ua + ov[2 * g], len);
        n += len;
    }

    dst[n] = '\0';
}


static void
ngx_http_identity_ua_trim(char *s)
{
    size_t  start, end;

    end = strlen(s);

    while (end > 0 && strchr(" \t\r\n\f\v", s[end - 1]) != NULL) {
        end--;
    }

    for (start = 0; start < end && strchr(" \t\r\n\f\v", s[start]) != NULL;
         start++)
    {
        /* void */
    }

    memmove(s, s + start, end - start);
    s[end - start] = '\0';
}


/* copies at most size - 1 bytes, never cutting a UTF-8 sequence in two */

static void
ngx_http_identity_ua_copy(char *dst, size_t size, const char *src,
    size_t len)
{
    size_t  n;

    n = len;

    if (n > size - 1) {
        n = size - 1;

        while (n > 0 && ((unsigned char) src[n] & 0xc0) == 0x80) {
            n--;
        }
    }

    memcpy(dst, src, n);
    dst[n] = '\0';
}


/* "major.minor.patch[.patch_minor]" up to the first absent part */

static void
ngx_http_identity_ua_version(char *dst, size_t size, const char *major,
    const char *minor, const char *patch, const char *patch_minor)
{
    int          i;
    size_t       n, len;
    const char  *part[4];

    part[0] = major;
    part[1] = minor;
    part[2] = patch;
    part[3] = patch_minor;

    n = 0;
    dst[0] = '\0';

    for (i = 0; i < 4 && part[i] != NULL && part[i][0] != '\0'; i++) {
        len = strlen(part[i]) + (i > 0);

        if (n + len > size - 1) {
            break;
        }

        if (i > 0) {
            dst[n++] = '.';
        }

        memcpy(dst + n, part[i], strlen(part[i]));
        n += strlen(part[i]);
        dst[n] = '\0';
    }
}


/*
 * device_type, first rule that applies:
 *
 *   Bot     the device family is "Spider" (uap-core's family for crawlers);
 *   Other   a TV: the User-Agent has " TV", "GoogleTV", "SmartTV", "HbbTV"
 *           and the like, and no "Mobi";
 *   Tablet  the device family or model names a tablet (iPad, Kindle,
 *           Tablet, Galaxy Tab, PlayBook, ...), the OS is "BlackBerry
 *           Tablet OS", or the OS is Android and the User-Agent has no
 *           "Mobi" (Google's rule: Android phones send "Mobile", Opera
 *           "Mobi") unless the device is a generic phone;
 *   Mobile  iPhone, iPod, a generic smartphone or feature phone, a mobile
 *           OS (iOS, Android, Windows Phone, Windows Mobile, BlackBerry,
 *           Symbian, KaiOS, Firefox OS, ...), or "Mobi" in the User-Agent;
 *   Desktop the device is a Mac, or the OS is a desktop one (Windows,
 *           Mac OS X, Linux distributions, Chrome OS, the BSDs, Solaris),
 *           except plain "Linux" on a named device (TVs, consoles, boxes);
 *   Other   everything else: TVs, consoles, libraries, unknown clients.
 */

static void
ngx_http_identity_ua_device_type(ngx_http_identity_ua_t *out, const char *ua,
    size_t len)
{
    int          mobi, tv, generic_phone;
    const char  *type, **w;

    mobi = ngx_http_identity_ua_strnstr(ua, len, "Mobi") != NULL;

    tv = 0;

    for (w = ngx_http_identity_ua_tv_words; *w != NULL; w++) {
        if (ngx_http_identity_ua_strnstr(ua, len, *w) != NULL) {
            tv = 1;
            break;
        }
    }

    generic_phone = strcmp(out->device, "Generic Smartphone") == 0
                    || strcmp(out->device, "Generic Feature Phone") == 0;

    if (strcmp(out->device, "Spider") == 0) {
        type = "Bot";

    } else if (tv && !mobi) {
        type = "Other";

    } else if (ngx_http_identity_ua_tablet_name(out->device)
               || ngx_http_identity_ua_tablet_name(out->device_model)
               || strcmp(out->os, "BlackBerry Tablet OS") == 0
               || (strcmp(out->os, "Android") == 0 && !mobi
                   && !generic_phone))
    {
        type = "Tablet";

    } else if (strncmp(out->device, "iPhone", 6) == 0
               || strncmp(out->device, "iPod", 4) == 0
               || generic_phone
               || ngx_http_identity_ua_in(out->os,
                                          ngx_http_identity_ua_mobile_os)
               || ngx_http_identity_ua_prefixed(out->os,
                                     ngx_http_identity_ua_mobile_os_prefix)
               || mobi)
    {
        type = "Mobile";

    } else if (strcmp(out->device, "Mac") == 0
               || ngx_http_identity_ua_prefixed(out->os,
                                     ngx_http_identity_ua_desktop_os_prefix)
               || (ngx_http_identity_ua_in(out->os,
                                           ngx_http_identity_ua_desktop_os)
                   && (strcmp(out->os, "Linux") != 0
                       || strcmp(out->device, "Other") == 0)))
    {
        type = "Desktop";

    } else {
        type = "Other";
    }

    strcpy(out->device_type, type);
}


/* "Tab" counts when a capital or a digit or nothing follows: "Galaxy Tab" */

static int
ngx_http_identity_ua_tablet_name(const char *s)
{
    const char  *t, **w;

    for (w = ngx_http_identity_ua_tablet_words; *w != NULL; w++) {
        if (strstr(s, *w) != NULL) {
            return 1;
        }
    }

    for (t = strstr(s, "Tab"); t != NULL; t = strstr(t + 1, "Tab")) {
        if (t[3] < 'a' || t[3] > 'z') {
            return 1;
        }
    }

    return 0;
}


static int
ngx_http_identity_ua_in(const char *s, const char **list)
{
    for ( /* void */ ; *list != NULL; list++) {
        if (strcmp(s, *list) == 0) {
            return 1;
        }
    }

    return 0;
}


static int
ngx_http_identity_ua_prefixed(const char *s, const char **list)
{
    for ( /* void */ ; *list != NULL; list++) {
        if (strncmp(s, *list, strlen(*list)) == 0) {
            return 1;
        }
    }

    return 0;
}


/* the User-Agent is not NUL-terminated */

static const char *
ngx_http_identity_ua_strnstr(const char *s, size_t len, const char *needle)
{
    size_t       n;
    const char  *last;

    n = strlen(needle);

    if (n > len) {
        return NULL;
    }

    for (last = s + len - n; s <= last; s++) {
        if (*s == *needle && memcmp(s, needle, n) == 0) {
            return s;
        }
    }

    return NULL;
}


/* FNV-1a */

static uint32_t
ngx_http_identity_ua_hash(const char *s, size_t len)
{
    size_t    i;
    uint32_t  h;

    h = 2166136261u;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char) s[i];
        h *= 16777619u;
    }

    return h;
}
