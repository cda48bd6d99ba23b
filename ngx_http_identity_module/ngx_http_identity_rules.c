
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * Authorization rules of a protected location: who, among the users the
 * provider authenticated, may use it.  They are checked against the
 * session on every request (no I/O: the session record holds the e-mail,
 * groups and claims), so they hold at login and after every user info
 * refresh.  A denied browser gets a page saying who it is signed in as.
 *
 *   identity_allow_email         a@example.com ~^ops-.*@example\.com$ ...;
 *   identity_allow_email_domain  example.com ~*\.example\.org$ ...;
 *   identity_require_group       admins ~^team-;
 *   identity_require_claim       hd example.com;
 *
 * E-mail rules together: the address must match one of them.  Each group
 * or claim directive must hold: one of its values matches.  "~" starts a
 * regular expression, "~*" a case-insensitive one.
 *
 * A refusal is an audit event (a login failure, "rule:<kind>") at most
 * once a minute for a session in a worker: a refused session that keeps
 * asking would flood the stream.  Each worker remembers the sessions it
 * refused last in a small table (the oldest entry replaced).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_request.h"
#include "ngx_http_identity_rules.h"
#include "ngx_http_identity_error.h"
#include "ngx_http_identity_events.h"
#include "ngx_http_identity_metrics.h"


#define NGX_HTTP_IDENTITY_RULES_SEEN      64      /* sessions remembered */
#define NGX_HTTP_IDENTITY_RULES_SEEN_ID   40      /* bytes of an id kept */
#define NGX_HTTP_IDENTITY_RULES_QUIET     60      /* s between two events */


typedef struct {
    ngx_str_t                     value;
    ngx_regex_t                  *regex;
} ngx_http_identity_match_t;


/* a session refused lately, and when its refusal was an event */

typedef struct {
    u_char                        id[NGX_HTTP_IDENTITY_RULES_SEEN_ID];
    size_t                        len;
    time_t                        at;
} ngx_http_identity_rules_seen_t;


typedef struct {
    ngx_uint_t                    kind;
    ngx_str_t                     claim;
    ngx_array_t                   matches;    /* of ngx_http_identity_match_t */
} ngx_http_identity_rule_t;


static ngx_uint_t ngx_http_identity_rules_mail_claim(ngx_str_t *claim);
static void ngx_http_identity_rules_event(ngx_http_request_t *r,
    ngx_http_identity_session_t *s, char *reason);
static ngx_uint_t ngx_http_identity_rules_quiet(ngx_str_t *id);
static ngx_int_t ngx_http_identity_rules_keep(ngx_conf_t *cf,
    ngx_str_t *claim);
static ngx_int_t ngx_http_identity_rules_email(ngx_http_request_t *r,
    ngx_array_t *rules, ngx_str_t *email);
static ngx_int_t ngx_http_identity_rules_values(ngx_http_request_t *r,
    ngx_http_identity_rule_t *rule, ngx_str_t *values);
static ngx_int_t ngx_http_identity_rules_claim(ngx_http_request_t *r,
    ngx_http_identity_rule_t *rule, json_t *claims);
static ngx_uint_t ngx_http_identity_rules_match(ngx_http_request_t *r,
    ngx_http_identity_rule_t *rule, ngx_str_t *value);


/* per worker: its own memory, used by its one thread */

static ngx_http_identity_rules_seen_t
    ngx_http_identity_rules_seen[NGX_HTTP_IDENTITY_RULES_SEEN];


/*
 * The raw claims hold what the provider said of the e-mail, verified or
 * not (and for Microsoft, what any tenant set): a rule on them would admit
 * an address nobody vouched for.  The e-mail rules read the identity's
 * e-mail, which is there only when the provider vouched for it.
 */

static ngx_uint_t
ngx_http_identity_rules_mail_claim(ngx_str_t *claim)
{
    ngx_uint_t  i;

    static ngx_str_t  names[] = {
        ngx_string("email"),
        ngx_string("email_verified"),
        ngx_string("emails"),
        ngx_string("emailaddress"),
        ngx_string("email_address"),
        ngx_string("mail"),
        ngx_string("upn"),
        ngx_string("userprincipalname"),
        ngx_string("unique_name"),
        ngx_string("confirmed_at")
    };

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (claim->len == names[i].len
            && ngx_strncasecmp(claim->data, names[i].data, claim->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


char *
ngx_http_identity_rules_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_identity_loc_conf_t *ilcf = conf;

    u_char                     errstr[NGX_MAX_CONF_ERRSTR];
    ngx_str_t                 *value;
    ngx_uint_t                 i, first;
    ngx_regex_compile_t        rc;
    ngx_http_identity_rule_t  *rule;
    ngx_http_identity_match_t *m;

    value = cf->args->elts;

    if (ilcf->rules == NULL) {
        ilcf->rules = ngx_array_create(cf->pool, 2,
                                       sizeof(ngx_http_identity_rule_t));
        if (ilcf->rules == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    rule = ngx_array_push(ilcf->rules);
    if (rule == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(rule, sizeof(ngx_http_identity_rule_t));
    rule->kind = (ngx_uint_t) cmd->post;
    first = 1;

    if (rule->kind == NGX_HTTP_IDENTITY_RULE_CLAIM) {
        if (cf->args->nelts < 3) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" needs a claim and a value",
                               &cmd->name);
            return NGX_CONF_ERROR;
        }

        rule->claim = value[1];
        first = 2;

        if (ngx_http_identity_rules_mail_claim(&rule->claim)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\": an e-mail "
                               "claim counts only when the provider vouches "
                               "for it; use \"identity_allow_email\" or "
                               "\"identity_allow_email_domain\"",
                               &rule->claim, &cmd->name);
            return NGX_CONF_ERROR;
        }

        if (ngx_http_identity_rules_keep(cf, &rule->claim) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_array_init(&rule->matches, cf->pool, cf->args->nelts - first,
                       sizeof(ngx_http_identity_match_t))
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    for (i = first; i < cf->args->nelts; i++) {
        m = ngx_array_push(&rule->matches);
        if (m == NULL) {
            return NGX_CONF_ERROR;
        }

        m->value = value[i];
        m->regex = NULL;

        if (value[i].len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"\" in \"%V\"", &cmd->name);
            return NGX_CONF_ERROR;
        }

        if (value[i].data[0] != '~') {
            continue;
        }

        ngx_memzero(&rc, sizeof(ngx_regex_compile_t));

        rc.pattern.data = value[i].data + 1;
        rc.pattern.len = value[i].len - 1;

        if (rc.pattern.len && rc.pattern.data[0] == '*') {
            rc.pattern.data++;
            rc.pattern.len--;
            rc.options = NGX_REGEX_CASELESS;
        }

        rc.pool = cf->pool;
        rc.err.len = NGX_MAX_CONF_ERRSTR;
        rc.err.data = errstr;

        if (ngx_regex_compile(&rc) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid value \"%V\" in \"%V\": %V",
                               &value[i], &cmd->name, &rc.err);
            return NGX_CONF_ERROR;
        }

        m->regex = rc.regex;
    }

    return NGX_CONF_OK;
}


/* NGX_OK: allowed; NGX_DECLINED: denied (logged); NGX_ERROR */

/*
 * The claims a rule reads are the only ones a session keeps of the
 * provider's claims JSON (ngx_http_identity_claims_sanitize()).
 */

static ngx_int_t
ngx_http_identity_rules_keep(ngx_conf_t *cf, ngx_str_t *claim)
{
    ngx_str_t                       name;
    ngx_http_identity_main_conf_t  *imcf;

    imcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_identity_module);

    /* NUL-terminated for jansson */

    name.len = claim->len;
    name.data = ngx_pnalloc(cf->pool, claim->len + 1);
    if (name.data == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(name.data, claim->data, claim->len + 1);

    return ngx_http_identity_add_unique(cf->pool, &imcf->claims_kept, &name);
}


ngx_int_t
ngx_http_identity_rules_check(ngx_http_request_t *r, ngx_array_t *rules,
    ngx_http_identity_session_t *s)
{
    json_t                    *claims;
    ngx_int_t                  rc;
    ngx_uint_t                 i;
    ngx_http_identity_rule_t  *rule;

    if (rules == NULL) {
        return NGX_OK;
    }

    rc = ngx_http_identity_rules_email(r, rules, &s->email);
    if (rc != NGX_OK) {
        if (rc == NGX_DECLINED) {
            ngx_http_identity_metrics_denial(NGX_HTTP_IDENTITY_DENIAL_EMAIL);
            ngx_http_identity_rules_event(r, s, "rule:email");
        }

        return rc;
    }

    claims = NULL;
    rule = rules->elts;

    for (i = 0; i < rules->nelts; i++) {

        switch (rule[i].kind) {

        case NGX_HTTP_IDENTITY_RULE_GROUP:
            rc = ngx_http_identity_rules_values(r, &rule[i], &s->groups);
            break;

        case NGX_HTTP_IDENTITY_RULE_CLAIM:
            if (claims == NULL) {
                claims = json_loadb((char *) s->claims.data, s->claims.len,
                                    0, NULL);
            }

            rc = ngx_http_identity_rules_claim(r, &rule[i], claims);
            break;

        default:
            continue;
        }

        if (rc != NGX_OK) {
            break;
        }
    }

    if (rc == NGX_DECLINED) {
        ngx_http_identity_metrics_denial(
                                   rule[i].kind == NGX_HTTP_IDENTITY_RULE_GROUP
                                   ? NGX_HTTP_IDENTITY_DENIAL_GROUP
                                   : NGX_HTTP_IDENTITY_DENIAL_CLAIM);
        ngx_http_identity_rules_event(r, s,
                                   rule[i].kind == NGX_HTTP_IDENTITY_RULE_GROUP
                                   ? "rule:group" : "rule:claim");
    }

    if (claims) {
        json_decref(claims);
    }

    return rc;
}


/*
 * A session the rules refuse: a login refused, as the metrics count it,
 * with the rule's kind as its reason (docs/events.md)
 */

static void
ngx_http_identity_rules_event(ngx_http_request_t *r,
    ngx_http_identity_session_t *s, char *reason)
{
    ngx_http_identity_event_t  ev;

    if (ngx_http_identity_rules_quiet(&s->id)) {
        return;
    }

    ngx_http_identity_event_init(&ev, "login", reason, -1);
    ev.outcome = "failure";
    ev.session = s;
    ev.provider = s->provider;

    ngx_http_identity_event(r, &ev);
}


/* 1: this session's refusal was an event less than a minute ago */

static ngx_uint_t
ngx_http_identity_rules_quiet(ngx_str_t *id)
{
    size_t                           len;
    time_t                           now;
    ngx_uint_t                       i, oldest;
    ngx_http_identity_rules_seen_t  *e, *seen;

    seen = ngx_http_identity_rules_seen;
    now = ngx_time();
    len = ngx_min(id->len, NGX_HTTP_IDENTITY_RULES_SEEN_ID);
    oldest = 0;

    for (i = 0; i < NGX_HTTP_IDENTITY_RULES_SEEN; i++) {
        e = &seen[i];

        if (len && e->len == len && ngx_memcmp(e->id, id->data, len) == 0) {
            if (now - e->at < NGX_HTTP_IDENTITY_RULES_QUIET) {
                return 1;
            }

            e->at = now;
            return 0;
        }

        if (e->at < seen[oldest].at) {
            oldest = i;
        }
    }

    /* a session not seen lately: in place of the oldest, or a free slot */

    e = &seen[oldest];
    ngx_memcpy(e->id, id->data, len);
    e->len = len;
    e->at = now;

    return 0;
}


static ngx_int_t
ngx_http_identity_rules_email(ngx_http_request_t *r, ngx_array_t *rules,
    ngx_str_t *email)
{
    u_char                    *at;
    ngx_str_t                  domain;
    ngx_uint_t                 i, any;
    ngx_http_identity_rule_t  *rule;

    any = 0;
    rule = rules->elts;

    at = email->len ? ngx_strlchr(email->data, email->data + email->len, '@')
                    : NULL;

    while (at && ngx_strlchr(at + 1, email->data + email->len, '@')) {
        at = ngx_strlchr(at + 1, email->data + email->len, '@');
    }

    for (i = 0; i < rules->nelts; i++) {

        if (rule[i].kind == NGX_HTTP_IDENTITY_RULE_EMAIL) {
            any = 1;

            if (at && ngx_http_identity_rules_match(r, &rule[i], email)) {
                return NGX_OK;
            }

        } else if (rule[i].kind == NGX_HTTP_IDENTITY_RULE_DOMAIN) {
            any = 1;

            if (at == NULL) {
                continue;
            }

            domain.data = at + 1;
            domain.len = email->data + email->len - domain.data;

            if (ngx_http_identity_rules_match(r, &rule[i], &domain)) {
                return NGX_OK;
            }
        }
    }

    if (!any) {
        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "identity: e-mail \"%V\" is not allowed here", email);

    return NGX_DECLINED;
}


/* one of the user's values (one per line) must match */

static ngx_int_t
ngx_http_identity_rules_values(ngx_http_request_t *r,
    ngx_http_identity_rule_t *rule, ngx_str_t *values)
{
    u_char     *p, *last, *nl;
    ngx_str_t   v;

    p = values->data;
    last = p + values->len;

    while (p < last) {
        nl = ngx_strlchr(p, last, '\n');
        if (nl == NULL) {
            nl = last;
        }

        v.data = p;
        v.len = nl - p;

        if (v.len && ngx_http_identity_rules_match(r, rule, &v)) {
            return NGX_OK;
        }

        p = nl + 1;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "identity: user is in none of the required groups");

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_identity_rules_claim(ngx_http_request_t *r,
    ngx_http_identity_rule_t *rule, json_t *claims)
{
    char        buf[NGX_INT64_LEN + 1];
    size_t      i;
    json_t     *v, *e;
    ngx_str_t   s;

    v = NULL;

    if (claims) {
        s.len = rule->claim.len;
        s.data = ngx_pnalloc(r->pool, s.len + 1);
        if (s.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(s.data, rule->claim.data, s.len);
        s.data[s.len] = '\0';

        v = json_object_get(claims, (char *) s.data);
    }

    if (json_is_array(v)) {
        json_array_foreach(v, i, e) {
            if (json_is_string(e)) {
                s.data = (u_char *) json_string_value(e);
                s.len = json_string_length(e);

                if (ngx_http_identity_rules_match(r, rule, &s)) {
                    return NGX_OK;
                }
            }
        }

    } else if (json_is_string(v)) {
        s.data = (u_char *) json_string_value(v);
        s.len = json_string_length(v);

        if (ngx_http_identity_rules_match(r, rule, &s)) {
            return NGX_OK;
        }

    } else if (json_is_integer(v) || json_is_boolean(v)) {
        if (json_is_integer(v)) {
            snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT,
                     json_integer_value(v));

        } else {
            snprintf(buf, sizeof(buf), "%s",
                     json_is_true(v) ? "true" : "false");
        }

        s.data = (u_char *) buf;
        s.len = ngx_strlen(buf);

        if (ngx_http_identity_rules_match(r, rule, &s)) {
            return NGX_OK;
        }
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "identity: claim \"%V\" does not match", &rule->claim);

    return NGX_DECLINED;
}


static ngx_uint_t
ngx_http_identity_rules_match(ngx_http_request_t *r,
    ngx_http_identity_rule_t *rule, ngx_str_t *value)
{
    ngx_uint_t                  i, caseless;
    ngx_http_identity_match_t  *m;

    /* addresses and domains are compared without case, as DNS does */

    caseless = (rule->kind == NGX_HTTP_IDENTITY_RULE_EMAIL
                || rule->kind == NGX_HTTP_IDENTITY_RULE_DOMAIN);

    m = rule->matches.elts;

    for (i = 0; i < rule->matches.nelts; i++) {

        if (m[i].regex) {
            if (ngx_regex_exec(m[i].regex, value, NULL, 0) >= 0) {
                return 1;
            }

            continue;
        }

        if (m[i].value.len != value->len) {
            continue;
        }

        if (caseless
            ? ngx_strncasecmp(m[i].value.data, value->data, value->len) == 0
            : ngx_strncmp(m[i].value.data, value->data, value->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * 403 for a user the rules refuse.  A browser gets a page that says who it
 * is signed in as and links to the logout endpoint; it is sent from the
 * access phase, so the caller returns NGX_DONE.
 */

ngx_int_t
ngx_http_identity_rules_deny(ngx_http_request_t *r,
    ngx_http_identity_session_t *s, ngx_str_t *logout)
{
    u_char     *p;
    size_t      len;
    ngx_buf_t  *b;
    ngx_str_t  *who;

    static u_char  head[] =
        NGX_HTTP_IDENTITY_PAGE_HEAD("Access denied")
        "<p>You are signed in as <strong id=\"who\">";
    static u_char  mid[] = "</strong> with <span id=\"provider\">";
    static u_char  mid2[] =
        "</span>, and this account may not open this page.</p>" CRLF
        "<p><a id=\"logout\" href=\"";
    static u_char  tail[] =
        "\">Sign out</a> to sign in with another account.</p>" CRLF
        "</body></html>" CRLF;

    who = s->email.len ? &s->email
          : s->username.len ? &s->username
          : s->name.len ? &s->name : &s->provider_user_id;

    len = sizeof(head) - 1
          + who->len + ngx_escape_html(NULL, who->data, who->len)
          + sizeof(mid) - 1
          + s->provider.len
          + ngx_escape_html(NULL, s->provider.data, s->provider.len)
          + sizeof(mid2) - 1
          + logout->len + ngx_escape_html(NULL, logout->data, logout->len)
          + sizeof(tail) - 1;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(b->last, head, sizeof(head) - 1);
    p = (u_char *) ngx_escape_html(p, who->data, who->len);
    p = ngx_cpymem(p, mid, sizeof(mid) - 1);
    p = (u_char *) ngx_escape_html(p, s->provider.data, s->provider.len);
    p = ngx_cpymem(p, mid2, sizeof(mid2) - 1);
    p = (u_char *) ngx_escape_html(p, logout->data, logout->len);
    p = ngx_cpymem(p, tail, sizeof(tail) - 1);

    b->last = p;

    ngx_http_finalize_request(r, ngx_http_identity_page_send(r,
                                     NGX_HTTP_FORBIDDEN, b, 1));

    return NGX_DONE;
}
