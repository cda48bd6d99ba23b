
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * parse_check: the known answers of ngx_http_identity_parse.c, the parsers
 * the fuzzers of make fuzz run (fuzz_cookie, fuzz_return, fuzz_admin,
 * fuzz_form), without nginx: a cookie found, absent or refused (sent
 * twice, an oversized header), the module's cookies stripped for upstream,
 * a session token's shape, return targets admitted or refused, the admin
 * API's routes and ids, and the parameters of a POSTed form.  Prints one
 * line a failure and a summary ("parse_check: N checks, M failed"); exits
 * 1 if any failed.  t/65-parse.t runs it.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_identity_parse.h"
#include "ngx_stubs.h"


static ngx_uint_t  checks, failed;
static ngx_log_t   unit_log;


static void
check(int ok, const char *what)
{
    checks++;

    if (!ok) {
        failed++;
        fprintf(stderr, "not ok: %s\n", what);
    }
}


/* "name" in one Cookie header, or two: rc and value */

static ngx_int_t
find(const char *name, ngx_str_t *value, const char *h1, const char *h2)
{
    ngx_str_t         n;
    ngx_array_t       headers;
    ngx_table_elt_t   elt[2], *h[2];

    ngx_memzero(elt, sizeof(elt));

    elt[0].value.data = (u_char *) h1;
    elt[0].value.len = strlen(h1);
    h[0] = &elt[0];

    if (h2) {
        elt[1].value.data = (u_char *) h2;
        elt[1].value.len = strlen(h2);
        h[1] = &elt[1];
    }

    headers.elts = h;
    headers.nelts = h2 ? 2 : 1;

    n.data = (u_char *) name;
    n.len = strlen(name);

    ngx_str_null(value);

    return ngx_http_identity_cookie_find(&unit_log, &headers, &n, value);
}


static int
is(ngx_str_t *s, const char *text)
{
    return s->len == strlen(text) && ngx_memcmp(s->data, text, s->len) == 0;
}


static void
check_find(void)
{
    u_char     big[4098];
    ngx_str_t  v;

    check(find("identity", &v, "identity=tok", NULL) == NGX_OK
          && is(&v, "tok"), "a cookie alone");
    check(find("identity", &v, "a=b; identity=tok; c=d", NULL) == NGX_OK
          && is(&v, "tok"), "a cookie among others");
    check(find("identity", &v, "a=b;identity=tok  ;c", NULL) == NGX_OK
          && is(&v, "tok"), "no space after ';', trailing spaces trimmed");
    check(find("identity", &v, " identity = tok", NULL) == NGX_OK
          && is(&v, " tok"), "spaces around '=': the name is trimmed");
    check(find("identity", &v, "identity=a; identity=b", NULL)
          == NGX_HTTP_BAD_REQUEST, "sent twice in one header: refused");
    check(find("identity", &v, "identity=a", "x=1; identity=a")
          == NGX_HTTP_BAD_REQUEST, "sent twice in two headers: refused");
    check(find("identity", &v, "identity_app=a; xidentity=b; Identity=c",
               NULL) == NGX_DECLINED, "other names are not it");
    check(find("identity", &v, "", NULL) == NGX_DECLINED, "empty header");
    check(find("identity", &v, ";;; ;", NULL) == NGX_DECLINED,
          "only separators");
    check(find("identity", &v, "identity", NULL) == NGX_OK && v.len == 0,
          "no '=': found, empty");
    check(find("__Host-identity_state", &v, "__Host-identity_state=s1",
               "identity_state=s2") == NGX_OK && is(&v, "s1"),
          "the __Host- state cookie is its own name");
    check(find("identity", &v, "identity=a=b", NULL) == NGX_OK
          && is(&v, "a=b"), "a value holds '='");

    ngx_memset(big, 'a', sizeof(big));
    ngx_memcpy(big, "identity=", 9);

    big[4096] = '\0';
    check(find("identity", &v, (char *) big, NULL) == NGX_OK
          && v.len == 4096 - 9, "a header of 4096 bytes is read");

    big[4096] = 'a';
    big[4097] = '\0';
    check(find("identity", &v, (char *) big, NULL) == NGX_HTTP_BAD_REQUEST,
          "a header of 4097 bytes is refused");
}


static void
check_filter(void)
{
    u_char       buf[256];
    size_t       len;
    ngx_str_t    h, base[2];
    ngx_array_t  names;

    ngx_str_set(&base[0], "identity");
    ngx_str_set(&base[1], "other");
    names.elts = base;
    names.nelts = 2;

    ngx_str_set(&h, "a=1; identity=t; identity_state=s; __Host-identity=x; "
                "__Host-identity_app=y; identityx=z; other_q=1; b; =c; d=");
    len = ngx_http_identity_cookie_filter(&h, &names, buf);
    h.data = buf;
    h.len = len;
    check(is(&h, "a=1; identityx=z; b; d="),
          "the module's cookies are stripped, the others kept");

    ngx_str_set(&h, "identity=t");
    len = ngx_http_identity_cookie_filter(&h, &names, buf);
    check(len == 0, "a header of only ours is emptied");

    ngx_str_set(&h, "x=1;y=2");
    len = ngx_http_identity_cookie_filter(&h, &names, buf);
    h.data = buf;
    h.len = len;
    check(is(&h, "x=1; y=2") && len <= 2 * sizeof("x=1;y=2"),
          "separators are made '; ', within twice the length");
}


static void
check_token(void)
{
    ngx_str_t  t;

    ngx_str_set(&t, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-_");
    check(ngx_http_identity_cookie_token(&t), "43 base64url characters");

    t.len = 42;
    check(!ngx_http_identity_cookie_token(&t), "42 characters");

    ngx_str_set(&t, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-_A");
    check(!ngx_http_identity_cookie_token(&t), "44 characters");

    ngx_str_set(&t, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    check(!ngx_http_identity_cookie_token(&t), "base64 padding");

    ngx_str_set(&t, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+/");
    check(!ngx_http_identity_cookie_token(&t), "base64, not base64url");

    ngx_str_set(&t, "");
    check(!ngx_http_identity_cookie_token(&t), "empty");
}


static ngx_int_t
local(const char *text, size_t len)
{
    ngx_str_t  p;

    p.data = (u_char *) text;
    p.len = len;

    return ngx_http_identity_local_path(&p);
}


#define LOCAL(s)  local(s, sizeof(s) - 1)


static ngx_int_t
ret(const char *uri, const char *want)
{
    u_char     buf[64];
    ngx_int_t  rc;
    ngx_str_t  u, t;

    u.data = (u_char *) uri;
    u.len = strlen(uri);
    t.data = buf;

    rc = ngx_http_identity_return_path(&u, &t);

    return is(&t, want) ? rc : NGX_ERROR;
}


static void
check_paths(void)
{
    static u_char  long_path[2050];

    check(LOCAL("/") == NGX_OK, "/");
    check(LOCAL("/app/page?x=1&y=%2F#f") == NGX_OK, "a path and query");
    check(LOCAL("/%2F%2Fevil.example") == NGX_OK,
          "percent-encoded slashes stay a path");
    check(LOCAL("") == NGX_DECLINED, "empty");
    check(LOCAL("app") == NGX_DECLINED, "relative");
    check(LOCAL("https://evil.example/") == NGX_DECLINED, "absolute URL");
    check(LOCAL("//evil.example/") == NGX_DECLINED, "//host");
    check(LOCAL("/\\evil.example/") == NGX_DECLINED, "/\\host");
    check(LOCAL("\\\\evil.example/") == NGX_DECLINED, "\\\\host");
    check(LOCAL("/a\\b") == NGX_DECLINED, "a backslash anywhere");
    check(LOCAL("/a\r\nSet-Cookie: x") == NGX_DECLINED, "CR LF");
    check(LOCAL("/a\tb") == NGX_DECLINED, "a tab");
    check(LOCAL("/a\x7f") == NGX_DECLINED, "DEL");
    check(LOCAL("/a\0b") == NGX_DECLINED, "NUL");
    check(LOCAL("/\xc3\xa9") == NGX_OK, "UTF-8 passes");

    ngx_memset(long_path, 'a', sizeof(long_path));
    long_path[0] = '/';
    check(local((char *) long_path, 2048) == NGX_OK, "2048 bytes");
    check(local((char *) long_path, 2049) == NGX_DECLINED, "2049 bytes");

    check(ret("/app?x=1", "/app?x=1") == NGX_OK, "a request's path kept");
    check(ret("//evil.example/x", "/evil.example/x") == NGX_OK,
          "//host made a path");
    check(ret("/\\/\\evil", "/evil") == NGX_OK, "a run of / and \\ made one");
    check(ret("", "/") == NGX_OK, "empty made /");
    check(ret("/a\\b", "/") == NGX_DECLINED, "a backslash inside: /");
    check(ret("/a\r\nb", "/") == NGX_DECLINED, "CR LF inside: /");
}


static ngx_int_t
route(const char *text, ngx_http_identity_route_e want, ngx_uint_t want_item,
    const char *want_rest)
{
    ngx_str_t                   path, id;
    ngx_uint_t                  item;
    ngx_http_identity_route_e   r;

    path.data = (u_char *) text;
    path.len = strlen(text);
    ngx_str_null(&id);

    if (ngx_http_identity_admin_path(&path, &r, &id, &item) != NGX_OK) {
        return NGX_DECLINED;
    }

    if (r != want || item != want_item
        || (want_rest && !is(&path, want_rest)))
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


#define HEX  "0123456789abcdef0123456789abcdef"


static void
check_admin(void)
{
    ngx_str_t  id;

    check(route("app/users", ngx_http_identity_users, 0, NULL) == NGX_OK,
          "app/users");
    check(route("/app/users/", ngx_http_identity_users, 0, NULL) == NGX_OK,
          "/app/users/");
    check(route("app/sessions", ngx_http_identity_sessions, 0, NULL)
          == NGX_OK, "app/sessions");
    check(route("app/me", ngx_http_identity_me, 0, NULL) == NGX_OK,
          "app/me");
    check(route("app/users/au_" HEX, ngx_http_identity_user, 1, NULL)
          == NGX_OK, "one user");
    check(route("app/users/au_" HEX "/", ngx_http_identity_user, 1, NULL)
          == NGX_OK, "one user, a trailing /");
    check(route("app/sessions/as_" HEX, ngx_http_identity_session, 1, NULL)
          == NGX_OK, "one session");
    check(route("app/users/au_" HEX "/sessions",
                ngx_http_identity_user_sessions, 0, NULL) == NGX_OK,
          "a user's sessions");
    check(route("app/users/au_" HEX "/endpoints",
                ngx_http_identity_user_sites, 0, NULL) == NGX_OK,
          "a user's endpoints");
    check(route("//index.html", ngx_http_identity_static, 0, "index.html")
          == NGX_OK, "a dashboard file, leading /s dropped");
    check(route("", ngx_http_identity_static, 0, "") == NGX_OK,
          "the dashboard's root");
    check(route("application", ngx_http_identity_static, 0, "application")
          == NGX_OK, "app... but not app/ is a file");

    check(route("app", 0, 0, NULL) == NGX_DECLINED, "app alone");
    check(route("app/", 0, 0, NULL) == NGX_DECLINED, "app/ alone");
    check(route("app/me/", 0, 0, NULL) == NGX_DECLINED, "app/me/");
    check(route("app/usersx", 0, 0, NULL) == NGX_DECLINED, "app/usersx");
    check(route("app/sessions/au_" HEX, 0, 0, NULL) == NGX_DECLINED,
          "a user's id as a session's");
    check(route("app/users/as_" HEX, 0, 0, NULL) == NGX_DECLINED,
          "a session's id as a user's");
    check(route("app/users/au_0123456789ABCDEF0123456789abcdef", 0, 0, NULL)
          == NGX_DECLINED, "uppercase hex");
    check(route("app/users/au_" HEX "0", 0, 0, NULL) == NGX_DECLINED,
          "33 digits");
    check(route("app/users/au_" HEX "/sessions/x", 0, 0, NULL)
          == NGX_DECLINED, "past sessions");
    check(route("app/sessions/as_" HEX "/sessions", 0, 0, NULL)
          == NGX_DECLINED, "a session's sessions");
    check(route("app/users//au_" HEX, 0, 0, NULL) == NGX_DECLINED,
          "a double /");
    check(route("app/users/../sessions", 0, 0, NULL) == NGX_DECLINED,
          "dot segments");

    ngx_str_set(&id, "as_" HEX);
    check(ngx_http_identity_admin_id(&id, 1)
          && !ngx_http_identity_admin_id(&id, 0), "before_id of a session");

    ngx_str_set(&id, "ep_0123456789abcdef");
    check(ngx_http_identity_id_valid(&id, "ep_", 16), "an endpoint id");

    ngx_str_set(&id, "ep_0123456789abcde");
    check(!ngx_http_identity_id_valid(&id, "ep_", 16), "a short endpoint id");

    ngx_str_set(&id, "");
    check(!ngx_http_identity_admin_id(&id, 0), "an empty id");
}


static ngx_int_t
form(const char *text, const char *name, const char *want)
{
    u_char     buf[128];
    ngx_int_t  rc;
    ngx_str_t  body, value;

    body.len = strlen(text);
    body.data = ngx_cpymem(buf, text, body.len) - body.len;
    ngx_str_null(&value);

    rc = ngx_http_identity_form_arg(NULL, &body, (char *) name, &value);

    if (rc == NGX_OK && (!is(&value, want) || value.data[value.len] != '\0')) {
        return NGX_ERROR;
    }

    return rc;
}


static void
check_form(void)
{
    check(form("SAMLResponse=PHNhbWw%2B&RelayState=%2Fapp%3Fx%3D1",
               "SAMLResponse", "PHNhbWw+") == NGX_OK,
          "SAMLResponse decoded, %2B a plus");
    check(form("SAMLResponse=PHNhbWw%2B&RelayState=%2Fapp%3Fx%3D1",
               "RelayState", "/app?x=1") == NGX_OK, "RelayState decoded");
    check(form("RelayState=/a+b", "RelayState", "/a b") == NGX_OK,
          "+ is a space");
    check(form("logout_token=a.b.c", "logout_token", "a.b.c") == NGX_OK,
          "a logout token");
    check(form("SAMLResponse=", "SAMLResponse", NULL) == NGX_DECLINED,
          "empty");
    check(form("SAMLResponse", "SAMLResponse", NULL) == NGX_DECLINED,
          "no '='");
    check(form("xSAMLResponse=1&SAMLResponsex=2", "SAMLResponse", NULL)
          == NGX_DECLINED, "other names are not it");
    check(form("a=1&&SAMLResponse=2", "SAMLResponse", "2") == NGX_OK,
          "after an empty pair");
    check(form("SAMLResponse=1&SAMLResponse=2", "SAMLResponse", "1")
          == NGX_OK, "the first of two");
    check(form("", "SAMLResponse", NULL) == NGX_DECLINED, "an empty body");
}


int
main(void)
{
    if (ngx_http_identity_stub_reset() != NGX_OK) {
        return 2;
    }

    check_find();
    check_filter();
    check_token();
    check_paths();
    check_admin();
    check_form();

    printf("parse_check: %lu checks, %lu failed\n", (unsigned long) checks,
           (unsigned long) failed);

    return failed ? 1 : 0;
}
