
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * How a Redis connection's health is told: by its changes of state, not
 * by each request they touch.  One [error] line when it goes down (why),
 * one every 5 s while it stays down (how many requests were refused), one
 * [notice] when it answers again.  Error replies of a live server (OOM, a
 * script error) the same way: the first, then a count every 5 s; each of
 * them at info.  The requests refused meanwhile are logged at info by
 * their callers (ngx_http_identity_redis_down()).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_identity_redis_state.h"


#define NGX_HTTP_IDENTITY_REDIS_REPORT  5000


void
ngx_http_identity_redis_state_down(ngx_http_identity_redis_state_t *st,
    const char *what, const char *why)
{
    if (st->down) {
        ngx_log_debug4(NGX_LOG_DEBUG_HTTP, st->log, 0,
                       "identity: redis%s at \"%V\" still down: %s%s",
                       st->role, st->host, what, why ? why : "");
        return;
    }

    st->down = 1;
    st->down_since = ngx_current_msec;
    st->reported = ngx_current_msec;
    st->refused = 0;
    st->refused_all = 0;

    ngx_log_error(NGX_LOG_ERR, st->log, 0,
                  "identity: redis%s at \"%V\" %s%s%s: refusing what "
                  "needs it until it answers", st->role, st->host,
                  what, why ? ": " : "", why ? why : "");
}


void
ngx_http_identity_redis_state_up(ngx_http_identity_redis_state_t *st)
{
    if (!st->down) {
        return;
    }

    st->down = 0;

    ngx_log_error(NGX_LOG_NOTICE, st->log, 0,
                  "identity: redis%s at \"%V\" answers again after %M ms; "
                  "%ui requests were refused", st->role, st->host,
                  ngx_current_msec - st->down_since, st->refused_all);
}


void
ngx_http_identity_redis_state_refused(ngx_http_identity_redis_state_t *st)
{
    ngx_msec_t  now;

    if (!st->down) {
        return;
    }

    st->refused++;
    st->refused_all++;

    now = ngx_current_msec;

    if (now - st->reported < NGX_HTTP_IDENTITY_REDIS_REPORT) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, st->log, 0,
                  "identity: redis%s at \"%V\" still down after %M ms: "
                  "%ui requests refused in the last %M ms", st->role,
                  st->host, now - st->down_since, st->refused,
                  now - st->reported);

    st->reported = now;
    st->refused = 0;
}


/* an error reply: its words, bounded; the first of 5 s at [error] */

void
ngx_http_identity_redis_state_error(ngx_http_identity_redis_state_t *st,
    redisReply *reply)
{
    size_t      len;
    ngx_msec_t  now;

    now = ngx_current_msec;
    len = ngx_min(reply->len, 200);

    if (st->errors_reported
        && now - st->errors_reported < NGX_HTTP_IDENTITY_REDIS_REPORT)
    {
        st->errors++;
        ngx_log_error(NGX_LOG_INFO, st->log, 0,
                      "identity: redis error: \"%*s\"", len, reply->str);
        return;
    }

    if (st->errors) {
        ngx_log_error(NGX_LOG_ERR, st->log, 0,
                      "identity: redis error: \"%*s\" (and %ui more in the "
                      "last %M ms)", len, reply->str, st->errors,
                      now - st->errors_reported);

    } else {
        ngx_log_error(NGX_LOG_ERR, st->log, 0,
                      "identity: redis error: \"%*s\"", len, reply->str);
    }

    st->errors_reported = now;
    st->errors = 0;
}


/* whether what fails now is already told by the lines above */

ngx_uint_t
ngx_http_identity_redis_state_told(ngx_http_identity_redis_state_t *st)
{
    return st->down
           || (st->errors_reported
               && ngx_current_msec - st->errors_reported
                  < NGX_HTTP_IDENTITY_REDIS_REPORT);
}
