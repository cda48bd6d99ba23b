
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * What the admin API reads of the audit events (events.c writes them):
 * GET app/events, a page of the streams "P audit" and "P audit:failures"
 * merged newest first (XREVRANGE of each in one script, before_id
 * exclusive), filtered by the entries' action and user fields without
 * parsing their documents; and GET app/stats/logins,
 * the logins by hour or by six hours from the days' counters
 * "P logins:<yyyymmdd>" (at most 8 in one script).  In a Redis Cluster
 * both are in the shard {@0}.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_parse.h"
#include "ngx_http_identity_store_cmd.h"
#include "ngx_http_identity_events.h"


#define NGX_HTTP_IDENTITY_EVENT_SCAN      1000    /* entries a filter reads */
#define NGX_HTTP_IDENTITY_EVENT_PAGE      100     /* at most, a page */


typedef struct {
    ngx_http_identity_events_pt      done;
    ngx_http_identity_events_query_t *query;
    ngx_uint_t                       week;
    time_t                           first;       /* the first bucket */
    ngx_uint_t                       streams;     /* read: 1 or 2 */
    ngx_uint_t                       count;       /* read of each */
} ngx_http_identity_events_call_t;


typedef struct {
    ngx_str_t                        id;
    ngx_str_t                        doc;
} ngx_http_identity_events_entry_t;


/* what a page read of one stream */

typedef struct {
    ngx_http_identity_events_entry_t *entry;     /* matching, newest first */
    ngx_uint_t                       n;
    ngx_uint_t                       next;        /* the first not shown */
    ngx_str_t                        last;        /* the last id read */
    ngx_uint_t                       ended;       /* no more to read */
} ngx_http_identity_events_read_t;


static ngx_uint_t ngx_http_identity_event_action(ngx_str_t *action);
static ngx_uint_t ngx_http_identity_event_id(ngx_str_t *id);
static json_t *ngx_http_identity_events_page(ngx_http_request_t *r,
    ngx_http_identity_events_query_t *q, json_t *list, ngx_str_t *cursor);
static void ngx_http_identity_events_list_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);
static ngx_int_t ngx_http_identity_events_read(ngx_http_request_t *r,
    ngx_http_identity_events_call_t *call, redisReply *reply,
    ngx_http_identity_events_read_t *rd);
static ngx_uint_t ngx_http_identity_events_add(json_t *list,
    ngx_http_identity_events_entry_t *en);
static ngx_int_t ngx_http_identity_event_cmp(ngx_str_t *one,
    ngx_str_t *two);
static void ngx_http_identity_events_stats_handler(ngx_http_request_t *r,
    redisReply *reply, void *data);


static char  *ngx_http_identity_event_actions[] = {
    "login", "logout", "session_revoked", "user_deleted", "session_expired",
    "risk_flagged", NULL
};


/* a page of each stream, KEYS[1] and [2]: the same range and count */

static ngx_str_t  ngx_http_identity_events_script = ngx_string(
    "local out = {}\n"
    "for i, k in ipairs(KEYS) do\n"
    "  out[i] = redis.call('XREVRANGE', k, ARGV[1], '-', 'COUNT', ARGV[2])\n"
    "end\n"
    "return out\n");


/* the days' counters, KEYS[1..n], each a flat HGETALL */

static ngx_str_t  ngx_http_identity_stats_script = ngx_string(
    "local out = {}\n"
    "for i, k in ipairs(KEYS) do\n"
    "  out[i] = redis.call('HGETALL', k)\n"
    "end\n"
    "return out\n");


/* app/events?limit=&before_id=&user=&action=: NGX_OK, or *msg says why not */

ngx_int_t
ngx_http_identity_events_query(ngx_http_request_t *r,
    ngx_http_identity_events_query_t *q, char **msg)
{
    ngx_int_t  n;
    ngx_str_t  v;

    q->limit = NGX_HTTP_IDENTITY_EVENT_PAGE;

    /* an empty parameter is an absent one, as on the other lists */

    if (ngx_http_arg(r, (u_char *) "limit", 5, &v) == NGX_OK && v.len) {
        n = ngx_atoi(v.data, v.len);

        if (n < 1 || n > NGX_HTTP_IDENTITY_EVENT_PAGE) {
            *msg = "limit must be a number from 1 to 100";
            goto invalid;
        }

        q->limit = n;
    }

    /* the values are checked as sent: ids and words need no escaping */

    if (ngx_http_arg(r, (u_char *) "before_id", 9, &q->before_id) == NGX_OK
        && q->before_id.len
        && !ngx_http_identity_event_id(&q->before_id))
    {
        *msg = "invalid before_id";
        goto invalid;
    }

    if (ngx_http_arg(r, (u_char *) "user", 4, &q->user) == NGX_OK
        && q->user.len
        && !ngx_http_identity_admin_id(&q->user, 0))
    {
        *msg = "user must be an au_ id";
        goto invalid;
    }

    if (ngx_http_arg(r, (u_char *) "action", 6, &q->action) == NGX_OK
        && q->action.len
        && !ngx_http_identity_event_action(&q->action))
    {
        *msg = "unknown action";
        goto invalid;
    }

    return NGX_OK;

invalid:

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "identity: admin: %s", *msg);

    return NGX_HTTP_BAD_REQUEST;
}


/* one of the actions above */

static ngx_uint_t
ngx_http_identity_event_action(ngx_str_t *action)
{
    ngx_uint_t  i;

    for (i = 0; ngx_http_identity_event_actions[i]; i++) {
        if (action->len == ngx_strlen(ngx_http_identity_event_actions[i])
            && ngx_strncmp(action->data, ngx_http_identity_event_actions[i],
                           action->len)
               == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * A stream entry's id: ms "-" sequence, each a number Redis takes (at
 * most 2^64 - 1), and not 0-0, which no entry has and before which Redis
 * refuses to look: either would be a Redis error, not a client's
 */

static ngx_uint_t
ngx_http_identity_event_id(ngx_str_t *id)
{
    u_char      *p, *dash;
    ngx_uint_t   ms, seq;

    if (id->len < 3 || id->len > 41) {
        return 0;
    }

    dash = ngx_strlchr(id->data, id->data + id->len, '-');
    if (dash == NULL) {
        return 0;
    }

    ms = dash - id->data;
    seq = id->data + id->len - dash - 1;

    if (ms == 0 || ms > 20 || seq == 0 || seq > 20) {
        return 0;
    }

    for (p = id->data; p < id->data + id->len; p++) {
        if (p != dash && (*p < '0' || *p > '9')) {
            return 0;
        }
    }

    if ((ms == 20 && ngx_strncmp(id->data, "18446744073709551615", 20) > 0)
        || (seq == 20 && ngx_strncmp(dash + 1, "18446744073709551615", 20)
                         > 0))
    {
        return 0;
    }

    for (p = id->data; p < id->data + id->len; p++) {
        if (p != dash && *p != '0') {
            return 1;
        }
    }

    return 0;
}


ngx_int_t
ngx_http_identity_events_list(ngx_http_request_t *r,
    ngx_http_identity_events_query_t *q, ngx_http_identity_events_pt done)
{
    ngx_str_t                         key, fkey, end, count, *prefix;
    ngx_http_identity_cmd_t           cmd;
    ngx_http_identity_events_call_t  *call;

    call = ngx_pcalloc(r->pool, sizeof(ngx_http_identity_events_call_t));
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->done = done;
    call->query = q;
    call->count = (q->user.len || q->action.len)
                  ? NGX_HTTP_IDENTITY_EVENT_SCAN : q->limit;

    /* the failures' stream holds logins that name nobody: no user= */

    call->streams = (q->user.len == 0
                     && (q->action.len == 0
                         || (q->action.len == 5
                             && ngx_strncmp(q->action.data, "login", 5)
                                == 0)))
                    ? 2 : 1;

    prefix = ngx_http_identity_store_shard(r, '0');

    key.len = prefix->len + sizeof("audit") - 1;
    key.data = ngx_pnalloc(r->pool, key.len);
    fkey.len = prefix->len + sizeof("audit:failures") - 1;
    fkey.data = ngx_pnalloc(r->pool, fkey.len);
    end.data = ngx_pnalloc(r->pool, q->before_id.len + 1);

    if (key.data == NULL || fkey.data == NULL || end.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(key.data, "%Vaudit", prefix);
    ngx_sprintf(fkey.data, "%Vaudit:failures", prefix);

    /* before_id is not in the page: "(" excludes it */

    if (q->before_id.len) {
        end.len = ngx_sprintf(end.data, "(%V", &q->before_id) - end.data;

    } else {
        ngx_str_set(&end, "+");
    }

    if (ngx_http_identity_store_num(r, &count, call->count) == NULL
        || ngx_http_identity_cmd_init(r, &cmd, "EVAL", 8) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_events_script,
                               call->streams);
    ngx_http_identity_cmd_str(&cmd, &key);

    if (call->streams == 2) {
        ngx_http_identity_cmd_str(&cmd, &fkey);
    }

    ngx_http_identity_cmd_str(&cmd, &end);
    ngx_http_identity_cmd_str(&cmd, &count);

    return ngx_http_identity_cmd_send(&cmd,
                                      ngx_http_identity_events_list_handler,
                                      call);
}


/*
 * One stream's [[id, [field, value, ...]], ...]: the entries whose action
 * and user match, newest first, the last id read, and whether the stream
 * has no more
 */

static ngx_int_t
ngx_http_identity_events_read(ngx_http_request_t *r,
    ngx_http_identity_events_call_t *call, redisReply *reply,
    ngx_http_identity_events_read_t *rd)
{
    size_t                             i, j;
    ngx_str_t                          action, user, *v;
    redisReply                        *e, *f;
    ngx_http_identity_events_query_t  *q;
    ngx_http_identity_events_entry_t  *en;

    q = call->query;
    ngx_memzero(rd, sizeof(ngx_http_identity_events_read_t));

    if (reply->type != REDIS_REPLY_ARRAY) {
        return NGX_ERROR;
    }

    rd->ended = (reply->elements < call->count);

    rd->entry = ngx_palloc(r->pool, (reply->elements + 1)
                                    * sizeof(ngx_http_identity_events_entry_t));
    if (rd->entry == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
            || e->element[0]->type != REDIS_REPLY_STRING
            || e->element[1]->type != REDIS_REPLY_ARRAY)
        {
            continue;
        }

        en = &rd->entry[rd->n];
        en->id.data = (u_char *) e->element[0]->str;
        en->id.len = e->element[0]->len;
        rd->last = en->id;

        f = e->element[1];
        ngx_str_null(&action);
        ngx_str_null(&user);
        ngx_str_null(&en->doc);

        for (j = 0; j + 1 < f->elements; j += 2) {
            if (f->element[j]->type != REDIS_REPLY_STRING
                || f->element[j + 1]->type != REDIS_REPLY_STRING)
            {
                continue;
            }

            v = (ngx_strcmp(f->element[j]->str, "action") == 0) ? &action
                : (ngx_strcmp(f->element[j]->str, "user") == 0) ? &user
                : (ngx_strcmp(f->element[j]->str, "doc") == 0) ? &en->doc
                : NULL;

            if (v) {
                v->data = (u_char *) f->element[j + 1]->str;
                v->len = f->element[j + 1]->len;
            }
        }

        if ((q->action.len
             && (action.len != q->action.len
                 || ngx_strncmp(action.data, q->action.data, action.len)
                    != 0))
            || (q->user.len
                && (user.len != q->user.len
                    || ngx_strncmp(user.data, q->user.data, user.len) != 0)))
        {
            continue;
        }

        rd->n++;
    }

    return NGX_OK;
}


/*
 * The streams merged, newest first.  Past the newest "last read" of a
 * stream that has more, the other may hold entries this read did not
 * see: the page stops there, and goes on from there.  Else it stops at
 * the limit, and goes on from its last entry.  An id in both streams
 * (two events of the same millisecond and sequence) is shown as a pair,
 * never split by a page: a page that cannot hold the pair ends before
 * it, unless the pair is its start (limit 1: then the page has 2).
 */

static void
ngx_http_identity_events_list_handler(ngx_http_request_t *r,
    redisReply *reply, void *data)
{
    ngx_http_identity_events_call_t *call = data;

    json_t                            *list, *body;
    ngx_str_t                          cursor, bound;
    ngx_int_t                          rc;
    ngx_uint_t                         k, n, full;
    ngx_http_identity_events_read_t    rd[2], *a, *b;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != call->streams)
    {
        call->done(r, NGX_ERROR, NULL);
        return;
    }

    ngx_str_null(&bound);
    ngx_memzero(&rd[1], sizeof(ngx_http_identity_events_read_t));

    for (k = 0; k < call->streams; k++) {
        if (ngx_http_identity_events_read(r, call, reply->element[k], &rd[k])
            != NGX_OK)
        {
            call->done(r, NGX_ERROR, NULL);
            return;
        }

        if (!rd[k].ended
            && (bound.len == 0
                || ngx_http_identity_event_cmp(&rd[k].last, &bound) > 0))
        {
            bound = rd[k].last;
        }
    }

    list = json_array();
    if (list == NULL) {
        call->done(r, NGX_ERROR, NULL);
        return;
    }

    ngx_str_null(&cursor);
    n = 0;
    full = 0;

    for ( ;; ) {
        a = rd[0].next < rd[0].n ? &rd[0] : NULL;
        b = rd[1].next < rd[1].n ? &rd[1] : NULL;

        rc = (a && b) ? ngx_http_identity_event_cmp(&a->entry[a->next].id,
                                                    &b->entry[b->next].id)
                      : (a ? 1 : -1);

        if (a == NULL && b == NULL) {
            break;
        }

        if (rc < 0) {
            a = b;
            b = NULL;

        } else if (rc > 0) {
            b = NULL;
        }

        if (bound.len
            && ngx_http_identity_event_cmp(&a->entry[a->next].id, &bound)
               < 0)
        {
            break;
        }

        /* ">=": a pair that starts a page of 1 makes it 2 */

        if (n >= call->query->limit
            || (b && n + 2 > call->query->limit && n > 0))
        {
            full = 1;
            break;
        }

        for (k = 0; k < 2; k++, a = b) {
            if (a == NULL) {
                break;
            }

            cursor = a->entry[a->next].id;
            n += ngx_http_identity_events_add(list, &a->entry[a->next]);
            a->next++;
        }
    }

    if (!full) {
        cursor = bound;
    }

    body = ngx_http_identity_events_page(r, call->query, list, &cursor);

    call->done(r, body ? NGX_OK : NGX_ERROR, body);
}


/* an entry's document, with its stream id added: 1, or 0 if not JSON */

static ngx_uint_t
ngx_http_identity_events_add(json_t *list,
    ngx_http_identity_events_entry_t *en)
{
    json_t  *doc;

    doc = json_loadb((char *) en->doc.data, en->doc.len, 0, NULL);

    if (!json_is_object(doc)) {
        json_decref(doc);
        return 0;
    }

    json_object_set_new(doc, "id",
                        json_stringn((char *) en->id.data, en->id.len));
    json_array_append_new(list, doc);

    return 1;
}


/* two stream ids as numbers: Redis writes them without leading zeros */

static ngx_int_t
ngx_http_identity_event_cmp(ngx_str_t *one, ngx_str_t *two)
{
    u_char     *d1, *d2;
    size_t      m1, m2;
    ngx_int_t   rc;

    d1 = ngx_strlchr(one->data, one->data + one->len, '-');
    d2 = ngx_strlchr(two->data, two->data + two->len, '-');
    m1 = d1 ? (size_t) (d1 - one->data) : one->len;
    m2 = d2 ? (size_t) (d2 - two->data) : two->len;

    if (m1 != m2) {
        return m1 < m2 ? -1 : 1;
    }

    rc = ngx_strncmp(one->data, two->data, m1);
    if (rc != 0) {
        return rc;
    }

    /* the sequences, with their "-" */

    if (one->len - m1 != two->len - m2) {
        return one->len - m1 < two->len - m2 ? -1 : 1;
    }

    return ngx_strncmp(one->data + m1, two->data + m2, one->len - m1);
}


/* {"events": [...], "uri": "...", "next_page_uri": "..." or null} */

static json_t *
ngx_http_identity_events_page(ngx_http_request_t *r,
    ngx_http_identity_events_query_t *q, json_t *list, ngx_str_t *cursor)
{
    u_char  *p;
    json_t  *body;

    body = json_object();
    p = ngx_pnalloc(r->pool, q->base.len + 256);

    if (body == NULL || p == NULL) {
        json_decref(body);
        json_decref(list);
        return NULL;
    }

    json_object_set_new(body, "events", list);
    json_object_set_new(body, "uri",
                        json_stringn((char *) p,
                                     ngx_sprintf(p, "%Vapp/events", &q->base)
                                     - p));

    if (cursor->len == 0) {
        json_object_set_new(body, "next_page_uri", json_null());
        return body;
    }

    /* user and action were checked: nothing to escape */

    json_object_set_new(body, "next_page_uri",
                        json_stringn((char *) p,
                                     ngx_sprintf(p, "%Vapp/events?limit=%ui"
                                                 "&before_id=%V%s%V%s%V",
                                                 &q->base, q->limit, cursor,
                                                 q->user.len ? "&user=" : "",
                                                 &q->user,
                                                 q->action.len ? "&action="
                                                               : "",
                                                 &q->action)
                                     - p));

    return body;
}


/* the days a range covers: 24 buckets of 1 h, or 28 of 6 h */

ngx_int_t
ngx_http_identity_events_stats(ngx_http_request_t *r, ngx_uint_t week,
    ngx_http_identity_events_pt done)
{
    time_t                            step, now, day;
    ngx_tm_t                          tm;
    ngx_str_t                         key, *prefix;
    ngx_uint_t                        n;
    ngx_http_identity_cmd_t           cmd;
    ngx_http_identity_events_call_t  *call;

    call = ngx_pcalloc(r->pool, sizeof(ngx_http_identity_events_call_t));
    if (call == NULL) {
        return NGX_ERROR;
    }

    step = week ? 21600 : 3600;
    now = ngx_time();

    call->done = done;
    call->week = week;
    call->first = now / step * step - (week ? 27 : 23) * step;

    if (ngx_http_identity_cmd_init(r, &cmd, "EVAL", 12) != NGX_OK) {
        return NGX_ERROR;
    }

    n = (now / 86400) - (call->first / 86400) + 1;

    ngx_http_identity_cmd_eval(&cmd, &ngx_http_identity_stats_script, n);

    prefix = ngx_http_identity_store_shard(r, '0');

    for (day = call->first / 86400 * 86400; day <= now; day += 86400) {
        ngx_gmtime(day, &tm);

        key.len = prefix->len + sizeof("logins:19700101") - 1;
        key.data = ngx_pnalloc(r->pool, key.len);
        if (key.data == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(key.data, "%Vlogins:%4d%02d%02d", prefix,
                    tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday);
        ngx_http_identity_cmd_str(&cmd, &key);
    }

    return ngx_http_identity_cmd_send(&cmd,
                                      ngx_http_identity_events_stats_handler,
                                      call);
}


static void
ngx_http_identity_events_stats_handler(ngx_http_request_t *r,
    redisReply *reply, void *data)
{
    ngx_http_identity_events_call_t *call = data;

    u_char       buf[sizeof("1970-01-01T00:00:00Z")];
    time_t       step, day, t, at;
    json_t      *body, *buckets, *b;
    ngx_tm_t     tm;
    ngx_int_t    hour, v;
    ngx_uint_t   i, j, k, nb, success[28], failure[28];
    redisReply  *h;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        call->done(r, NGX_ERROR, NULL);
        return;
    }

    step = call->week ? 21600 : 3600;
    nb = call->week ? 28 : 24;
    day = call->first / 86400 * 86400;

    ngx_memzero(success, sizeof(success));
    ngx_memzero(failure, sizeof(failure));

    for (i = 0; i < reply->elements; i++) {
        h = reply->element[i];

        if (h->type != REDIS_REPLY_ARRAY) {
            continue;
        }

        for (j = 0; j + 1 < h->elements; j += 2) {
            if (h->element[j]->type != REDIS_REPLY_STRING
                || h->element[j]->len < 4
                || h->element[j + 1]->type != REDIS_REPLY_STRING)
            {
                continue;
            }

            hour = ngx_atoi((u_char *) h->element[j]->str, 2);
            v = ngx_atoi((u_char *) h->element[j + 1]->str,
                         h->element[j + 1]->len);

            if (hour == NGX_ERROR || hour > 23 || v == NGX_ERROR) {
                continue;
            }

            at = day + (time_t) i * 86400 + hour * 3600;

            if (at < call->first) {
                continue;
            }

            k = (at - call->first) / step;
            if (k >= nb) {
                continue;
            }

            if (ngx_strcmp(h->element[j]->str + 2, ":success") == 0) {
                success[k] += v;

            } else if (ngx_strcmp(h->element[j]->str + 2, ":failure") == 0) {
                failure[k] += v;
            }
        }
    }

    body = json_object();
    buckets = json_array();

    if (body == NULL || buckets == NULL) {
        json_decref(body);
        json_decref(buckets);
        call->done(r, NGX_ERROR, NULL);
        return;
    }

    json_object_set_new(body, "range", json_string(call->week ? "7d" : "24h"));
    json_object_set_new(body, "bucket_seconds", json_integer(step));

    for (k = 0; k < nb; k++) {
        t = call->first + (time_t) k * step;
        ngx_gmtime(t, &tm);
        ngx_sprintf(buf, "%4d-%02d-%02dT%02d:%02d:%02dZ", tm.ngx_tm_year,
                    tm.ngx_tm_mon, tm.ngx_tm_mday, tm.ngx_tm_hour,
                    tm.ngx_tm_min, tm.ngx_tm_sec);

        b = json_pack("{s:s%, s:I, s:I}", "start", (char *) buf,
                      sizeof(buf) - 1, "success", (json_int_t) success[k],
                      "failure", (json_int_t) failure[k]);
        if (b) {
            json_array_append_new(buckets, b);
        }
    }

    json_object_set_new(body, "buckets", buckets);

    call->done(r, NGX_OK, body);
}
