
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The counters of GET {admin}/metrics (docs/metrics.md), in a small shared
 * memory zone of their own, created whenever a provider is configured: the
 * node's workers add to them with atomics and any worker reads them all.
 * Counting takes no lock and no Redis command; a zone that is missing (no
 * provider) makes every call here do nothing.  The zone's name holds the
 * number of providers: it is kept across a reload that keeps that number
 * (a provider's index names its counters); else a new zone starts at 0,
 * as Prometheus allows, and the old workers count in the old one until
 * they exit.
 * Durations are microseconds (CLOCK_MONOTONIC), in fixed buckets; a
 * provider's calls are timed in the thread tasks, atomics as well.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_metrics.h"


#define NGX_HTTP_IDENTITY_METRICS_BUCKETS  13


/* as ngx_http_identity_risk.h numbers them (this file includes no other) */
#define NGX_HTTP_IDENTITY_METRICS_SIGNALS    4
#define NGX_HTTP_IDENTITY_METRICS_ACTIONS    3


typedef struct {
    ngx_atomic_t                     bucket[NGX_HTTP_IDENTITY_METRICS_BUCKETS
                                            + 1];      /* the last: +Inf */
    ngx_atomic_t                     sum;              /* microseconds */
} ngx_http_identity_histogram_t;


typedef struct {
    ngx_uint_t                       nproviders;
    ngx_atomic_t                     denials[NGX_HTTP_IDENTITY_DENIALS];
    ngx_atomic_t                     revoked[NGX_HTTP_IDENTITY_REVOKED_SOURCES];
    ngx_atomic_t                     risk[NGX_HTTP_IDENTITY_METRICS_SIGNALS
                                          * NGX_HTTP_IDENTITY_METRICS_ACTIONS];
    ngx_atomic_t                     cache[2];         /* misses, hits */
    ngx_http_identity_histogram_t    redis;

    /* by provider (its index; the last: none known), allocated apart */
    ngx_atomic_t                    *logins;           /* the outcomes of
                                                          a provider */
    ngx_http_identity_histogram_t   *idp;              /* a call's each */
} ngx_http_identity_metrics_sh_t;


static ngx_int_t ngx_http_identity_metrics_init_zone(ngx_shm_zone_t *zone,
    void *data);
static void ngx_http_identity_metrics_observe(
    ngx_http_identity_histogram_t *h, uint64_t us);
static u_char *ngx_http_identity_metrics_histogram(u_char *p, char *name,
    char *help, ngx_str_t *provider, ngx_uint_t call,
    ngx_http_identity_histogram_t *h, ngx_uint_t first);
static size_t ngx_http_identity_metrics_label_len(ngx_str_t *v);
static u_char *ngx_http_identity_metrics_label(u_char *p, ngx_str_t *v);


static ngx_http_identity_metrics_sh_t  *ngx_http_identity_metrics;

/* the buckets' upper bounds, as microseconds and as shown */
static uint64_t  ngx_http_identity_metrics_le[] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000
};

static char  *ngx_http_identity_metrics_le_text[] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5", "10", "+Inf"
};

/* as ngx_http_identity_risk.c names them */
static char  *ngx_http_identity_metrics_signals[] = {
    "new_country", "new_device", "impossible_travel", "concurrent_sessions"
};

static char  *ngx_http_identity_metrics_actions[] = {
    "flag", "deny", "revoke_others"
};

static char  *ngx_http_identity_metrics_outcomes[] = {
    "success", "denied", "failed"
};

static char  *ngx_http_identity_metrics_reasons[] = {
    "email", "group", "claim"
};

static char  *ngx_http_identity_metrics_sources[] = {
    "api", "backchannel", "logout", "refresh", "risk"
};

static char  *ngx_http_identity_metrics_calls[] = {
    "token", "userinfo", "discovery", "jwks", "saml"
};


#define ngx_http_identity_metrics_per_provider                               \
    (NGX_HTTP_IDENTITY_LOGIN_OUTCOMES * sizeof(ngx_atomic_t)                 \
     + NGX_HTTP_IDENTITY_CALLS * sizeof(ngx_http_identity_histogram_t))


ngx_int_t
ngx_http_identity_metrics_init_conf(ngx_conf_t *cf, ngx_uint_t nproviders)
{
    size_t           size;
    ngx_str_t        name;
    ngx_shm_zone_t  *zone;

    name.data = ngx_pnalloc(cf->pool, sizeof("identity_metrics_") - 1
                                      + NGX_INT_T_LEN);
    if (name.data == NULL) {
        return NGX_ERROR;
    }

    name.len = ngx_sprintf(name.data, "identity_metrics_%ui", nproviders)
               - name.data;

    size = sizeof(ngx_http_identity_metrics_sh_t)
           + (nproviders + 1) * ngx_http_identity_metrics_per_provider;

    /* the slab pool's own pages, and room for its rounding up */

    size = 8 * ngx_pagesize + ngx_align(2 * size, ngx_pagesize);

    zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_identity_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_identity_metrics_init_zone;
    zone->data = (void *) nproviders;

    return NGX_OK;
}


static ngx_int_t
ngx_http_identity_metrics_init_zone(ngx_shm_zone_t *zone, void *data)
{
    size_t                           size, logins;
    ngx_uint_t                       nproviders;
    ngx_slab_pool_t                 *shpool;
    ngx_http_identity_metrics_sh_t  *sh;

    nproviders = (ngx_uint_t) zone->data;
    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (data || zone->shm.exists) {
        sh = shpool->data;

        if (sh && sh->nproviders == nproviders) {
            ngx_http_identity_metrics = sh;
            return NGX_OK;
        }
    }

    size = (nproviders + 1) * NGX_HTTP_IDENTITY_CALLS
           * sizeof(ngx_http_identity_histogram_t);
    logins = (nproviders + 1) * NGX_HTTP_IDENTITY_LOGIN_OUTCOMES
             * sizeof(ngx_atomic_t);

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_identity_metrics_sh_t));

    if (sh == NULL
        || (sh->logins = ngx_slab_calloc(shpool, logins)) == NULL
        || (sh->idp = ngx_slab_calloc(shpool, size)) == NULL)
    {
        return NGX_ERROR;
    }

    sh->nproviders = nproviders;
    shpool->data = sh;
    ngx_http_identity_metrics = sh;

    return NGX_OK;
}


/* pr NULL: a login whose provider is not known (a forged state) */

void
ngx_http_identity_metrics_login(ngx_http_identity_provider_t *pr,
    ngx_uint_t outcome)
{
    ngx_uint_t                       i;
    ngx_http_identity_metrics_sh_t  *sh;

    sh = ngx_http_identity_metrics;

    if (sh == NULL) {
        return;
    }

    i = (pr && pr->index < sh->nproviders) ? pr->index : sh->nproviders;

    i = i * NGX_HTTP_IDENTITY_LOGIN_OUTCOMES + outcome;

    (void) ngx_atomic_fetch_add(&sh->logins[i], 1);
}


void
ngx_http_identity_metrics_denial(ngx_uint_t reason)
{
    if (ngx_http_identity_metrics) {
        (void) ngx_atomic_fetch_add(
                            &ngx_http_identity_metrics->denials[reason], 1);
    }
}


/* a signal raised at a login, and what its action was */

void
ngx_http_identity_metrics_risk(ngx_uint_t signal, ngx_uint_t action)
{
    if (ngx_http_identity_metrics
        && signal < NGX_HTTP_IDENTITY_METRICS_SIGNALS
        && action < NGX_HTTP_IDENTITY_METRICS_ACTIONS)
    {
        signal = signal * NGX_HTTP_IDENTITY_METRICS_ACTIONS + action;

        (void) ngx_atomic_fetch_add(&ngx_http_identity_metrics->risk[signal],
                                    1);
    }
}


void
ngx_http_identity_metrics_revoked(ngx_uint_t source, ngx_uint_t n)
{
    if (ngx_http_identity_metrics && n) {
        (void) ngx_atomic_fetch_add(
                            &ngx_http_identity_metrics->revoked[source], n);
    }
}


void
ngx_http_identity_metrics_cache(ngx_uint_t hit)
{
    if (ngx_http_identity_metrics) {
        (void) ngx_atomic_fetch_add(
                            &ngx_http_identity_metrics->cache[hit ? 1 : 0], 1);
    }
}


uint64_t
ngx_http_identity_metrics_now(void)
{
    struct timespec  ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 0;
    }

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/* a Redis command's time from its send (start) to its reply */

void
ngx_http_identity_metrics_redis(uint64_t start)
{
    uint64_t  now;

    if (ngx_http_identity_metrics == NULL || start == 0) {
        return;
    }

    now = ngx_http_identity_metrics_now();

    ngx_http_identity_metrics_observe(&ngx_http_identity_metrics->redis,
                                      now > start ? now - start : 0);
}


/* a provider's call, timed in its thread task from start */

void
ngx_http_identity_metrics_idp(ngx_http_identity_provider_t *pr,
    ngx_uint_t call, uint64_t start)
{
    uint64_t                         now;
    ngx_uint_t                       i;
    ngx_http_identity_metrics_sh_t  *sh;

    sh = ngx_http_identity_metrics;

    if (sh == NULL || start == 0) {
        return;
    }

    now = ngx_http_identity_metrics_now();
    i = (pr && pr->index < sh->nproviders) ? pr->index : sh->nproviders;

    ngx_http_identity_metrics_observe(
                                 &sh->idp[i * NGX_HTTP_IDENTITY_CALLS + call],
                                 now > start ? now - start : 0);
}


static void
ngx_http_identity_metrics_observe(ngx_http_identity_histogram_t *h,
    uint64_t us)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_IDENTITY_METRICS_BUCKETS; i++) {
        if (us <= ngx_http_identity_metrics_le[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&h->bucket[i], 1);
    (void) ngx_atomic_fetch_add(&h->sum, (ngx_atomic_int_t) us);
}


/*
 * The text exposition format, version 0.0.4: one buffer, sized up front
 * (each line is short; the providers' names are escaped)
 */

ngx_chain_t *
ngx_http_identity_metrics_render(ngx_pool_t *pool,
    ngx_http_identity_metrics_view_t *view)
{
    u_char                          *p;
    size_t                           len;
    ngx_str_t                        none, *name;
    ngx_buf_t                       *b;
    ngx_uint_t                       i, j, n;
    ngx_chain_t                     *cl;
    ngx_http_identity_provider_t   **pp;
    ngx_http_identity_metrics_sh_t  *sh;

    sh = ngx_http_identity_metrics;
    pp = view->providers->elts;
    n = view->providers->nelts;

    ngx_str_set(&none, "");

    len = 8192 + 2048;

    for (i = 0; i < n; i++) {
        len += (NGX_HTTP_IDENTITY_LOGIN_OUTCOMES + NGX_HTTP_IDENTITY_CALLS
                    * (NGX_HTTP_IDENTITY_METRICS_BUCKETS + 3))
               * (128 + ngx_http_identity_metrics_label_len(&pp[i]->name));
    }

    b = ngx_create_temp_buf(pool, len);
    cl = ngx_alloc_chain_link(pool);

    if (b == NULL || cl == NULL) {
        return NULL;
    }

    p = b->last;

    p = ngx_sprintf(p,
            "# HELP identity_redis_up 0 while this worker knows Redis "
            "to be down.\n"
            "# TYPE identity_redis_up gauge\n"
            "identity_redis_up %ui\n", view->redis_up ? 1 : 0);

    if (view->sessions >= 0) {
        p = ngx_sprintf(p,
                "# HELP identity_sessions_active Sessions in the store's "
                "index (cached a few seconds).\n"
                "# TYPE identity_sessions_active gauge\n"
                "identity_sessions_active %i\n", view->sessions);
    }

    if (sh == NULL || sh->nproviders != n) {
        goto done;
    }

    p = ngx_sprintf(p,
            "# HELP identity_logins_total Logins finished, by provider "
            "and outcome.\n"
            "# TYPE identity_logins_total counter\n");

    for (i = 0; i <= n; i++) {
        name = (i < n) ? &pp[i]->name : &none;

        for (j = 0; j < NGX_HTTP_IDENTITY_LOGIN_OUTCOMES; j++) {
            p = ngx_cpymem(p, "identity_logins_total{provider=\"",
                           sizeof("identity_logins_total{provider=\"") - 1);
            p = ngx_http_identity_metrics_label(p, name);
            p = ngx_sprintf(p, "\",outcome=\"%s\"} %uA\n",
                            ngx_http_identity_metrics_outcomes[j],
                            sh->logins[i * NGX_HTTP_IDENTITY_LOGIN_OUTCOMES
                                       + j]);
        }
    }

    p = ngx_sprintf(p,
            "# HELP identity_denials_total Requests of a session that "
            "the rules refused.\n"
            "# TYPE identity_denials_total counter\n");

    for (j = 0; j < NGX_HTTP_IDENTITY_DENIALS; j++) {
        p = ngx_sprintf(p, "identity_denials_total{reason=\"%s\"} %uA\n",
                        ngx_http_identity_metrics_reasons[j], sh->denials[j]);
    }

    p = ngx_sprintf(p,
            "# HELP identity_revocations_total Sessions ended before "
            "their time.\n"
            "# TYPE identity_revocations_total counter\n");

    for (j = 0; j < NGX_HTTP_IDENTITY_REVOKED_SOURCES; j++) {
        p = ngx_sprintf(p, "identity_revocations_total{source=\"%s\"} %uA\n",
                        ngx_http_identity_metrics_sources[j], sh->revoked[j]);
    }

    p = ngx_sprintf(p,
            "# HELP identity_risk_signals_total Risk signals raised at "
            "logins, by signal and the action taken.\n"
            "# TYPE identity_risk_signals_total counter\n");

    for (i = 0; i < NGX_HTTP_IDENTITY_METRICS_SIGNALS; i++) {
        for (j = 0; j < NGX_HTTP_IDENTITY_METRICS_ACTIONS; j++) {
            p = ngx_sprintf(p, "identity_risk_signals_total{signal=\"%s\","
                            "action=\"%s\"} %uA\n",
                            ngx_http_identity_metrics_signals[i],
                            ngx_http_identity_metrics_actions[j],
                            sh->risk[i * NGX_HTTP_IDENTITY_METRICS_ACTIONS
                                     + j]);
        }
    }

    if (view->cache) {
        p = ngx_sprintf(p,
                "# HELP identity_session_cache_hits_total Sessions found "
                "in the node's cache.\n"
                "# TYPE identity_session_cache_hits_total counter\n"
                "identity_session_cache_hits_total %uA\n"
                "# HELP identity_session_cache_misses_total Sessions "
                "looked for in Redis.\n"
                "# TYPE identity_session_cache_misses_total counter\n"
                "identity_session_cache_misses_total %uA\n",
                sh->cache[1], sh->cache[0]);
    }

    p = ngx_http_identity_metrics_histogram(p,
            "identity_redis_request_duration_seconds",
            "Time from a Redis command's send to its reply.", NULL, 0,
            &sh->redis, 1);

    for (i = 0; i < n; i++) {
        for (j = 0; j < NGX_HTTP_IDENTITY_CALLS; j++) {
            p = ngx_http_identity_metrics_histogram(p,
                    "identity_idp_request_duration_seconds",
                    "Time of a call to an identity provider.", &pp[i]->name,
                    j, &sh->idp[i * NGX_HTTP_IDENTITY_CALLS + j],
                    i == 0 && j == 0);
        }
    }

done:

    b->last = p;
    b->last_buf = 1;
    b->last_in_chain = 1;

    cl->buf = b;
    cl->next = NULL;

    return cl;
}


/*
 * One histogram's lines; with a provider, labelled with it and the call
 * (its HELP and TYPE only before the first)
 */

static u_char *
ngx_http_identity_metrics_histogram(u_char *p, char *name, char *help,
    ngx_str_t *provider, ngx_uint_t call, ngx_http_identity_histogram_t *h,
    ngx_uint_t first)
{
    u_char             *labels, *end;
    ngx_uint_t          i;
    ngx_atomic_uint_t   count, sum;
    u_char              buf[512];

    if (first) {
        p = ngx_sprintf(p, "# HELP %s %s\n# TYPE %s histogram\n",
                        name, help, name);
    }

    /* the labels, escaped, before "le" */

    labels = buf;
    end = buf;

    if (provider) {
        if (ngx_http_identity_metrics_label_len(provider) > sizeof(buf) - 64)
        {
            return p;
        }

        end = ngx_cpymem(end, "provider=\"", sizeof("provider=\"") - 1);
        end = ngx_http_identity_metrics_label(end, provider);
        end = ngx_sprintf(end, "\",call=\"%s\"",
                          ngx_http_identity_metrics_calls[call]);
    }

    count = 0;

    for (i = 0; i <= NGX_HTTP_IDENTITY_METRICS_BUCKETS; i++) {
        count += h->bucket[i];
        p = ngx_sprintf(p, "%s_bucket{%*s%sle=\"%s\"} %uA\n", name,
                        (size_t) (end - labels), labels, provider ? "," : "",
                        ngx_http_identity_metrics_le_text[i], count);
    }

    sum = h->sum;

    p = ngx_sprintf(p, "%s_sum", name);

    if (provider) {
        p = ngx_sprintf(p, "{%*s}", (size_t) (end - labels), labels);
    }

    p = ngx_sprintf(p, " %uA.%06uA\n%s_count", sum / 1000000, sum % 1000000,
                    name);

    if (provider) {
        p = ngx_sprintf(p, "{%*s}", (size_t) (end - labels), labels);
    }

    return ngx_sprintf(p, " %uA\n", count);
}


/* a label's value: \, " and a new line are escaped */

static size_t
ngx_http_identity_metrics_label_len(ngx_str_t *v)
{
    size_t      len;
    ngx_uint_t  i;

    len = v->len;

    for (i = 0; i < v->len; i++) {
        if (v->data[i] == '\\' || v->data[i] == '"' || v->data[i] == '\n') {
            len++;
        }
    }

    return len;
}


static u_char *
ngx_http_identity_metrics_label(u_char *p, ngx_str_t *v)
{
    ngx_uint_t  i;

    for (i = 0; i < v->len; i++) {

        switch (v->data[i]) {

        case '\\':
        case '"':
            *p++ = '\\';
            *p++ = v->data[i];
            break;

        case '\n':
            *p++ = '\\';
            *p++ = 'n';
            break;

        default:
            *p++ = v->data[i];
        }
    }

    return p;
}
