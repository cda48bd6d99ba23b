
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * Runs uap-core's test files through ngx_http_identity_ua.c.
 *
 *   ua_conformance [-v] REGEXES.yaml TEST.yaml...
 *       one line per file: "test_ua.yaml: 1234/1250 passed (98.72%)";
 *       -v also prints every failure; exits 1 if the cached parse of a
 *       string ever differs from the uncached one
 *   ua_conformance -b [-n REPS] REGEXES.yaml TEST.yaml...
 *       the median time of one uncached parse over every user_agent_string,
 *       and of a cache hit
 *   ua_conformance -p REGEXES.yaml "User-Agent"
 *       the parse of one string, as name=value pairs
 *
 * The kind of a test file (browser, os, device) is told by its name, as
 * uap-core names them: test_ua.yaml, test_os.yaml, test_device.yaml.
 */


#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <yaml.h>

#include "ngx_http_identity_ua.h"


#define UA_CONFORMANCE_REPS  5


typedef enum {
    UA_CONFORMANCE_BROWSER = 0,
    UA_CONFORMANCE_OS,
    UA_CONFORMANCE_DEVICE
} ua_conformance_kind_e;


typedef struct {
    const char  *key;
    size_t       offset;
} ua_conformance_field_t;


typedef struct {
    char       **ua;
    size_t       n;
    size_t       nalloc;
} ua_conformance_strings_t;


typedef int (*ua_conformance_case_pt)(void *data, yaml_document_t *doc,
    yaml_node_t *tc, const char *ua);


typedef struct {
    ngx_http_identity_ua_parser_t  *parser;
    const ua_conformance_field_t   *fields;
    const char                     *file;
    int                             verbose;
    size_t                          passed;
    size_t                          total;
    size_t                          cache_errors;
} ua_conformance_run_t;


static int ua_conformance_each(const char *path, ua_conformance_case_pt h,
    void *data);
static int ua_conformance_check(void *data, yaml_document_t *doc,
    yaml_node_t *tc, const char *ua);
static int ua_conformance_collect(void *data, yaml_document_t *doc,
    yaml_node_t *tc, const char *ua);
static yaml_node_t *ua_conformance_get(yaml_document_t *doc,
    yaml_node_t *map, const char *key);
static int ua_conformance_is_null(yaml_node_t *node);
static const char *ua_conformance_base(const char *path);
static int ua_conformance_kind(const char *path);
static int ua_conformance_files(ngx_http_identity_ua_parser_t *p,
    char **files, int nfiles, int verbose);
static int ua_conformance_bench(ngx_http_identity_ua_parser_t *p,
    char **files, int nfiles, int reps);
static void ua_conformance_print(ngx_http_identity_ua_parser_t *p,
    const char *ua);
static double ua_conformance_now(void);
static int ua_conformance_cmp(const void *a, const void *b);
static void ua_conformance_usage(void);


#define ua_conformance_field(key, f)                                         \
    { key, offsetof(ngx_http_identity_ua_t, f) }

/*
 * The fields uap-core's own runner (tests/test.js) compares: test_ua.yaml's
 * patch_minor, on a few cases only, does not follow its regexes.yaml.
 */

static const ua_conformance_field_t  ua_conformance_browser[] = {
    ua_conformance_field("family", browser),
    ua_conformance_field("major", browser_major),
    ua_conformance_field("minor", browser_minor),
    ua_conformance_field("patch", browser_patch),
    { NULL, 0 }
};

static const ua_conformance_field_t  ua_conformance_os[] = {
    ua_conformance_field("family", os),
    ua_conformance_field("major", os_major),
    ua_conformance_field("minor", os_minor),
    ua_conformance_field("patch", os_patch),
    ua_conformance_field("patch_minor", os_patch_minor),
    { NULL, 0 }
};

static const ua_conformance_field_t  ua_conformance_device[] = {
    ua_conformance_field("family", device),
    ua_conformance_field("brand", device_brand),
    ua_conformance_field("model", device_model),
    { NULL, 0 }
};

static const ua_conformance_field_t  ua_conformance_print_fields[] = {
    ua_conformance_field("browser", browser),
    ua_conformance_field("browser_version", browser_version),
    ua_conformance_field("os", os),
    ua_conformance_field("os_version", os_version),
    ua_conformance_field("device", device),
    ua_conformance_field("device_brand", device_brand),
    ua_conformance_field("device_model", device_model),
    ua_conformance_field("device_type", device_type),
    { NULL, 0 }
};

static const ua_conformance_field_t  *ua_conformance_kinds[] = {
    ua_conformance_browser,
    ua_conformance_os,
    ua_conformance_device
};


int
main(int argc, char **argv)
{
    int                             c, verbose, bench, print, reps, rc;
    double                          start, ms;
    char                            err[512];
    ngx_http_identity_ua_parser_t  *p;

    verbose = 0;
    bench = 0;
    print = 0;
    reps = UA_CONFORMANCE_REPS;

    while ((c = getopt(argc, argv, "+vbpn:")) != -1) {
        switch (c) {

        case 'v':
            verbose = 1;
            break;

        case 'b':
            bench = 1;
            break;

        case 'p':
            print = 1;
            break;

        case 'n':
            reps = atoi(optarg);
            if (reps < 1) {
                ua_conformance_usage();
                return 2;
            }
            break;

        default:
            ua_conformance_usage();
            return 2;
        }
    }

    if (argc - optind < 2 || (print && argc - optind != 2)) {
        ua_conformance_usage();
        return 2;
    }

    start = ua_conformance_now();

    p = ngx_http_identity_ua_load(argv[optind], err, sizeof(err));
    if (p == NULL) {
        fprintf(stderr, "ua_conformance: %s\n", err);
        return 1;
    }

    ms = (ua_conformance_now() - start) * 1e3;

    if (print) {
        ua_conformance_print(p, argv[optind + 1]);
        rc = 0;

    } else if (bench) {
        printf("load time: %.1f ms\n", ms);
        rc = ua_conformance_bench(p, argv + optind + 1, argc - optind - 1,
                                  reps);

    } else {
        rc = ua_conformance_files(p, argv + optind + 1, argc - optind - 1,
                                  verbose);
    }

    ngx_http_identity_ua_free(p);

    return rc;
}


static int
ua_conformance_files(ngx_http_identity_ua_parser_t *p, char **files,
    int nfiles, int verbose)
{
    int                   i;
    double                rate;
    ua_conformance_run_t  run;

    for (i = 0; i < nfiles; i++) {
        run.parser = p;
        run.fields = ua_conformance_kinds[ua_conformance_kind(files[i])];
        run.file = ua_conformance_base(files[i]);
        run.verbose = verbose;
        run.passed = 0;
        run.total = 0;
        run.cache_errors = 0;

        if (ua_conformance_each(files[i], ua_conformance_check, &run) != 0) {
            return 1;
        }

        /* rounded down: 100.00% only when every case passed */
        rate = run.total ? (double) run.passed * 100 / run.total : 0;
        rate = (double) (long) (rate * 100) / 100;

        printf("%s: %zu/%zu passed (%.2f%%)\n", run.file, run.passed,
               run.total, rate);

        if (run.cache_errors) {
            fprintf(stderr, "%s: %zu cached parses differ\n", run.file,
                    run.cache_errors);
            return 1;
        }
    }

    return 0;
}


static int
ua_conformance_check(void *data, yaml_document_t *doc, yaml_node_t *tc,
    const char *ua)
{
    int                            ok;
    const char                    *want, *got;
    yaml_node_t                   *node;
    ngx_http_identity_ua_t         out, cached;
    ua_conformance_run_t          *run;
    const ua_conformance_field_t  *f;

    run = data;

    ngx_http_identity_ua_parse(run->parser, ua, strlen(ua), &out);

    /*
     * every 4th case through the cache too, a miss that fills the slot and
     * then a hit: all of them would double the time of a run
     */

    if (run->total % 4 == 0) {
        ngx_http_identity_ua_parse_cached(run->parser, ua, strlen(ua),
                                          &cached);
        run->cache_errors += memcmp(&out, &cached, sizeof(out)) != 0;

        ngx_http_identity_ua_parse_cached(run->parser, ua, strlen(ua),
                                          &cached);
        run->cache_errors += memcmp(&out, &cached, sizeof(out)) != 0;
    }

    ok = 1;

    for (f = run->fields; f->key != NULL; f++) {
        node = ua_conformance_get(doc, tc, f->key);

        /* a field the case does not list is not checked */
        if (node == NULL) {
            continue;
        }

        want = ua_conformance_is_null(node)
               ? "" : (const char *) node->data.scalar.value;
        got = (const char *) &out + f->offset;

        if (strcmp(want, got) == 0) {
            continue;
        }

        if (run->verbose) {
            if (ok) {
                printf("FAIL %s: \"%s\"\n", run->file, ua);
            }

            printf("    %s: got \"%s\", want \"%s\"\n", f->key, got, want);
        }

        ok = 0;
    }

    run->passed += ok;
    run->total++;

    return 0;
}


static int
ua_conformance_bench(ngx_http_identity_ua_parser_t *p, char **files,
    int nfiles, int reps)
{
    int                       i, r;
    size_t                    n, len;
    double                    start, *times, median;
    ngx_http_identity_ua_t    out;
    ua_conformance_strings_t  s;

    memset(&s, 0, sizeof(ua_conformance_strings_t));

    for (i = 0; i < nfiles; i++) {
        if (ua_conformance_each(files[i], ua_conformance_collect, &s) != 0) {
            return 1;
        }
    }

    if (s.n == 0) {
        fprintf(stderr, "ua_conformance: no user_agent_string\n");
        return 1;
    }

    times = malloc(s.n * sizeof(double));
    if (times == NULL) {
        fprintf(stderr, "ua_conformance: out of memory\n");
        return 1;
    }

    for (n = 0; n < s.n; n++) {
        len = strlen(s.ua[n]);
        start = ua_conformance_now();

        for (r = 0; r < reps; r++) {
            ngx_http_identity_ua_parse(p, s.ua[n], len, &out);
        }

        times[n] = (ua_conformance_now() - start) / reps;
    }

    qsort(times, s.n, sizeof(double), ua_conformance_cmp);

    median = (s.n % 2) ? times[s.n / 2]
                       : (times[s.n / 2 - 1] + times[s.n / 2]) / 2;

    printf("median parse time: %.2f us per string over %zu strings\n",
           median * 1e6, s.n);
    printf("90th percentile: %.2f us, slowest: %.2f us\n",
           times[s.n * 9 / 10] * 1e6, times[s.n - 1] * 1e6);

    /* the string was just cached: every timed call is a hit */

    for (n = 0; n < s.n; n++) {
        len = strlen(s.ua[n]);
        ngx_http_identity_ua_parse_cached(p, s.ua[n], len, &out);
        start = ua_conformance_now();

        for (r = 0; r < reps; r++) {
            ngx_http_identity_ua_parse_cached(p, s.ua[n], len, &out);
        }

        times[n] = (ua_conformance_now() - start) / reps;
    }

    qsort(times, s.n, sizeof(double), ua_conformance_cmp);

    printf("median cache hit time: %.2f us\n", times[s.n / 2] * 1e6);

    for (n = 0; n < s.n; n++) {
        free(s.ua[n]);
    }

    free(s.ua);
    free(times);

    return 0;
}


static int
ua_conformance_collect(void *data, yaml_document_t *doc, yaml_node_t *tc,
    const char *ua)
{
    char                      **a;
    size_t                      n;
    ua_conformance_strings_t   *s;

    (void) doc;
    (void) tc;

    s = data;

    if (s->n == s->nalloc) {
        n = s->nalloc ? s->nalloc * 2 : 1024;

        a = realloc(s->ua, n * sizeof(char *));
        if (a == NULL) {
            return -1;
        }

        s->ua = a;
        s->nalloc = n;
    }

    s->ua[s->n] = strdup(ua);
    if (s->ua[s->n] == NULL) {
        return -1;
    }

    s->n++;

    return 0;
}


static void
ua_conformance_print(ngx_http_identity_ua_parser_t *p, const char *ua)
{
    ngx_http_identity_ua_t         out;
    const ua_conformance_field_t  *f;

    ngx_http_identity_ua_parse(p, ua, strlen(ua), &out);

    for (f = ua_conformance_print_fields; f->key != NULL; f++) {
        printf("%s%s=%s", f == ua_conformance_print_fields ? "" : " ",
               f->key, (const char *) &out + f->offset);
    }

    printf("\n");
}


/* calls h for every entry of the file's test_cases list */

static int
ua_conformance_each(const char *path, ua_conformance_case_pt h, void *data)
{
    int               rc;
    FILE             *f;
    yaml_node_t      *root, *list, *tc, *ua;
    yaml_parser_t     parser;
    yaml_document_t   doc;
    yaml_node_item_t *item;

    f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }

    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return -1;
    }

    yaml_parser_set_input_file(&parser, f);

    if (!yaml_parser_load(&parser, &doc)) {
        fprintf(stderr, "%s:%zu: %s\n", path, parser.problem_mark.line + 1,
                parser.problem ? parser.problem : "YAML error");
        yaml_parser_delete(&parser);
        fclose(f);
        return -1;
    }

    rc = -1;

    root = yaml_document_get_root_node(&doc);
    list = root ? ua_conformance_get(&doc, root, "test_cases") : NULL;

    if (list == NULL || list->type != YAML_SEQUENCE_NODE) {
        fprintf(stderr, "%s: no test_cases list\n", path);
        goto done;
    }

    for (item = list->data.sequence.items.start;
         item < list->data.sequence.items.top;
         item++)
    {
        tc = yaml_document_get_node(&doc, *item);
        ua = ua_conformance_get(&doc, tc, "user_agent_string");

        if (ua == NULL) {
            continue;
        }

        if (h(data, &doc, tc,
              ua_conformance_is_null(ua)
              ? "" : (const char *) ua->data.scalar.value)
            != 0)
        {
            fprintf(stderr, "%s: out of memory\n", path);
            goto done;
        }
    }

    rc = 0;

done:

    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);

    return rc;
}


/* the value of key in a mapping, or NULL */

static yaml_node_t *
ua_conformance_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    yaml_node_t       *k, *v;
    yaml_node_pair_t  *pair;

    if (map == NULL || map->type != YAML_MAPPING_NODE) {
        return NULL;
    }

    for (pair = map->data.mapping.pairs.start;
         pair < map->data.mapping.pairs.top;
         pair++)
    {
        k = yaml_document_get_node(doc, pair->key);
        v = yaml_document_get_node(doc, pair->value);

        if (k != NULL && k->type == YAML_SCALAR_NODE
            && strcmp((char *) k->data.scalar.value, key) == 0)
        {
            return v;
        }
    }

    return NULL;
}


static int
ua_conformance_is_null(yaml_node_t *node)
{
    const char  *v;

    /* a list or a mapping where a string is expected counts as absent */
    if (node->type != YAML_SCALAR_NODE) {
        return 1;
    }

    if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return 0;
    }

    v = (const char *) node->data.scalar.value;

    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0
           || strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}


static const char *
ua_conformance_base(const char *path)
{
    const char  *s;

    s = strrchr(path, '/');

    return s ? s + 1 : path;
}


static int
ua_conformance_kind(const char *path)
{
    const char  *base;

    base = ua_conformance_base(path);

    if (strstr(base, "device") != NULL) {
        return UA_CONFORMANCE_DEVICE;
    }

    if (strstr(base, "os") != NULL) {
        return UA_CONFORMANCE_OS;
    }

    return UA_CONFORMANCE_BROWSER;
}


static double
ua_conformance_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static int
ua_conformance_cmp(const void *a, const void *b)
{
    double  x, y;

    x = *(const double *) a;
    y = *(const double *) b;

    return (x > y) - (x < y);
}


static void
ua_conformance_usage(void)
{
    fprintf(stderr,
            "usage: ua_conformance [-v] REGEXES.yaml TEST.yaml...\n"
            "       ua_conformance -b [-n REPS] REGEXES.yaml TEST.yaml...\n"
            "       ua_conformance -p REGEXES.yaml USER-AGENT\n");
}
