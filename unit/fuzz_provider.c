
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * libFuzzer target: any bytes as a provider's JSON about a user, read as
 * the module reads it, then through ngx_http_identity_claims_sanitize()
 * (make fuzz).  The first byte picks what the JSON is:
 *
 *   0-7  the user info of an OAuth preset (amazon, facebook, github,
 *        gitlab, google, linkedin, microsoft, twitch): its claim paths
 *        (ngx_http_identity_oauth_claims) and its e-mail rule
 *        (ngx_http_identity_oauth_vouched), as oauth.c and
 *        oauth_presets.c call them; the second byte's low bit pins
 *        Microsoft's tenant;
 *   8    the user info of an OAuth provider with no preset, OIDC's claim
 *        names; 9 the same with "claim_map email_verified=
 *        profile.email_verified";
 *   10   the claims of an OpenID Connect ID token (or user info), read
 *        as oidc_token.c reads them (ngx_http_identity_json_strdup,
 *        _verified, _groups);
 *   11   GitHub's /user/emails (ngx_http_identity_oauth_primary);
 *   12   the claims of a Microsoft ID token
 *        (ngx_http_identity_oauth_tenant_user).
 *
 * Whatever the JSON: an e-mail is kept only if its rule vouches for it
 * (each rule computed here again, the way docs/security/oidc-email.md
 * says it); a value is no longer than the JSON; a group is never empty
 * nor two; GitHub's address is the first both primary and verified; a
 * tenant user is of this client, with a tid and an oid of 1 to 64 bytes;
 * and admitted claims pass unit/fuzz_claims_check.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <jansson.h>

#include "ngx_http_identity_claims.h"
#include "ngx_http_identity_json.h"
#include "ngx_http_identity_oauth_user.h"
#include "ngx_stubs.h"
#include "fuzz_claims_check.h"


#define NGX_HTTP_IDENTITY_FUZZ_CLIENT  "0b2c4a6e-client"


static char  *ngx_http_identity_fuzz_presets[] = {
    "amazon", "facebook", "github", "gitlab", "google", "linkedin",
    "microsoft", "twitch"
};


/* a JSON value that counts as "verified", as the rules are documented */

static ngx_uint_t
ngx_http_identity_fuzz_true(json_t *v, ngx_uint_t stamp)
{
    const char  *s;

    if (json_is_true(v)) {
        return 1;
    }

    s = json_string_value(v);

    if (s == NULL) {
        return 0;
    }

    if (strcmp(s, "true") == 0) {
        return 1;
    }

    return stamp && s[0] != '\0' && strcmp(s, "false") != 0;
}


/* what each rule says, computed apart from the module's code */

static ngx_uint_t
ngx_http_identity_fuzz_rule(json_t *info, ngx_uint_t email, const char *path,
    ngx_uint_t pinned)
{
    json_t  *v;

    switch (email) {

    case ngx_http_identity_email_path:
    case ngx_http_identity_email_stamp:

        /* the paths of the presets and of this target: one or two keys */

        if (strcmp(path, "profile.email_verified") == 0) {
            v = json_object_get(json_object_get(info, "profile"),
                                "email_verified");

        } else if (strchr(path, '.') == NULL) {
            v = json_object_get(info, path);

        } else {
            abort();
        }

        return ngx_http_identity_fuzz_true(v,
                                   email == ngx_http_identity_email_stamp);

    case ngx_http_identity_email_documented:
        return 1;

    case ngx_http_identity_email_tenant:
        return pinned;

    default:
        return 0;
    }
}


/* a claim is absent or a string no longer than the JSON; groups: lines */

static void
ngx_http_identity_fuzz_value(char *v, size_t size, ngx_uint_t groups)
{
    char  *p, *nl;

    if (v == NULL) {
        return;
    }

    if (strlen(v) > size) {
        abort();
    }

    if (!groups || v[0] == '\0') {
        return;
    }

    for (p = v; /* void */ ; p = nl + 1) {
        nl = strchr(p, '\n');

        if (nl == p || *p == '\0') {
            abort();
        }

        if (nl == NULL) {
            break;
        }
    }
}


static void
ngx_http_identity_fuzz_str(ngx_str_t *s, char *v)
{
    s->data = (u_char *) v;
    s->len = v ? strlen(v) : 0;
}


/* claims as login.c gets them: sanitized, then checked */

static void
ngx_http_identity_fuzz_login(char **claims, char *sid, json_t *root,
    ngx_uint_t vouched)
{
    char                        *raw;
    ngx_str_t                    keep[2];
    ngx_log_t                    log;
    ngx_array_t                  kept;
    ngx_http_identity_claims_t   c;

    if (claims[0] == NULL || claims[0][0] == '\0') {
        return;     /* refused before: "user info has no id" */
    }

    if (ngx_http_identity_stub_reset() != NGX_OK) {
        return;
    }

    raw = json_dumps(root, JSON_COMPACT);

    ngx_memzero(&c, sizeof(ngx_http_identity_claims_t));
    ngx_memzero(&log, sizeof(ngx_log_t));

    ngx_http_identity_fuzz_str(&c.provider_user_id, claims[0]);
    ngx_http_identity_fuzz_str(&c.email, claims[1]);
    ngx_http_identity_fuzz_str(&c.name, claims[2]);
    ngx_http_identity_fuzz_str(&c.username, claims[3]);
    ngx_http_identity_fuzz_str(&c.groups, claims[4]);
    ngx_http_identity_fuzz_str(&c.sid, sid);
    ngx_http_identity_fuzz_str(&c.raw, raw);

    ngx_str_set(&keep[0], "department");
    ngx_str_set(&keep[1], "groups");

    kept.elts = keep;
    kept.nelts = 2;

    if (ngx_http_identity_claims_sanitize(&log, NULL, &c, &kept) == NGX_OK) {
        ngx_http_identity_fuzz_claims_check(&c);

        if (c.email.len && !vouched) {
            abort();
        }
    }

    free(raw);
}


/* the user info of an OAuth provider, as oauth.c reads it */

static void
ngx_http_identity_fuzz_oauth(json_t *info, size_t size,
    ngx_http_identity_oauth_preset_t *ps, ngx_uint_t email,
    const char *path, ngx_uint_t pinned)
{
    char        *claims[5];
    ngx_uint_t   i, ok;

    if (!json_is_object(info)) {
        return;     /* "did not answer a JSON object" */
    }

    ngx_http_identity_oauth_claims(info, ps->claims, claims);

    for (i = 0; i < 5; i++) {
        ngx_http_identity_fuzz_value(claims[i], size, i == 4);
    }

    ok = ngx_http_identity_oauth_vouched(info, email, path, pinned);

    if (ok != ngx_http_identity_fuzz_rule(info, email, path, pinned)) {
        abort();
    }

    /* oauth_presets.c: ngx_http_identity_oauth_vouch() */

    if (!ok && claims[1] && claims[1][0]) {
        free(claims[1]);
        claims[1] = NULL;
    }

    ngx_http_identity_fuzz_login(claims, NULL, info, ok);

    for (i = 0; i < 5; i++) {
        free(claims[i]);
    }
}


/* an ID token's claims (or user info), as oidc_token.c reads them */

static void
ngx_http_identity_fuzz_oidc(json_t *claims, size_t size)
{
    char        *c[5], *sid;
    ngx_uint_t   i, verified;
    const char  *sub;

    if (!json_is_object(claims)) {
        return;
    }

    sub = json_string_value(json_object_get(claims, "sub"));

    if (sub == NULL || *sub == '\0' || strlen(sub) > 255) {
        return;     /* "id_token without a sub" */
    }

    c[0] = strdup(sub);
    c[1] = ngx_http_identity_json_strdup(claims, "email");
    verified = ngx_http_identity_json_verified(claims, "email_verified", 0);
    c[2] = ngx_http_identity_json_strdup(claims, "name");
    c[3] = ngx_http_identity_json_strdup(claims, "preferred_username");
    sid = ngx_http_identity_json_strdup(claims, "sid");
    c[4] = ngx_http_identity_json_groups(claims, "groups");

    for (i = 0; i < 5; i++) {
        ngx_http_identity_fuzz_value(c[i], size, i == 4);
    }

    ngx_http_identity_fuzz_value(sid, size, 0);

    if (verified
        != ngx_http_identity_fuzz_true(json_object_get(claims,
                                                       "email_verified"), 0))
    {
        abort();
    }

    /* oidc_token.c: an unverified e-mail is dropped at the end */

    if (c[1] && !verified) {
        free(c[1]);
        c[1] = NULL;
    }

    ngx_http_identity_fuzz_login(c, sid, claims, verified);

    for (i = 0; i < 5; i++) {
        free(c[i]);
    }

    free(sid);
}


static void
ngx_http_identity_fuzz_github(json_t *list)
{
    char        *email;
    size_t       i;
    json_t      *e;
    const char  *want;

    email = ngx_http_identity_oauth_primary(list);

    want = NULL;

    json_array_foreach(list, i, e) {
        if (json_is_string(json_object_get(e, "email"))
            && json_is_true(json_object_get(e, "primary"))
            && json_is_true(json_object_get(e, "verified")))
        {
            want = json_string_value(json_object_get(e, "email"));
            break;
        }
    }

    if ((want == NULL) != (email == NULL)
        || (want && strcmp(want, email) != 0))
    {
        abort();
    }

    free(email);
}


static void
ngx_http_identity_fuzz_microsoft(json_t *claims)
{
    const char  *tid, *oid, *aud;

    if (ngx_http_identity_oauth_tenant_user(claims,
                                            NGX_HTTP_IDENTITY_FUZZ_CLIENT,
                                            &tid, &oid)
        != NGX_OK)
    {
        return;
    }

    aud = json_string_value(json_object_get(claims, "aud"));

    if (aud == NULL || strcmp(aud, NGX_HTTP_IDENTITY_FUZZ_CLIENT) != 0
        || tid == NULL || strlen(tid) == 0 || strlen(tid) > 64
        || oid == NULL || strlen(oid) == 0 || strlen(oid) > 64
        || tid != json_string_value(json_object_get(claims, "tid"))
        || oid != json_string_value(json_object_get(claims, "oid")))
    {
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                              *body;
    json_t                            *root;
    ngx_str_t                          name;
    ngx_uint_t                         mode, pinned;
    ngx_http_identity_oauth_preset_t  *ps, generic;

    if (size < 2) {
        return 0;
    }

    mode = data[0] % 13;
    pinned = data[1] & 1;

    /* fetch.c: the body as a C string, parsed as the module does */

    body = malloc(size - 1);
    if (body == NULL) {
        return 0;
    }

    memcpy(body, data + 2, size - 2);
    body[size - 2] = '\0';

    root = json_loads(body, JSON_REJECT_DUPLICATES, NULL);

    if (root == NULL) {
        free(body);
        return 0;
    }

    if (mode < 8) {
        name.data = (u_char *) ngx_http_identity_fuzz_presets[mode];
        name.len = ngx_strlen(name.data);

        ps = ngx_http_identity_oauth_preset(&name);
        if (ps == NULL) {
            abort();
        }

        ngx_http_identity_fuzz_oauth(root, size, ps, ps->email,
                                     ps->email_verified, pinned);

    } else if (mode < 10) {
        ngx_http_identity_oauth_generic(&generic);

        /* oauth.c: claim_map email_verified= makes it a path rule */

        ngx_http_identity_fuzz_oauth(root, size, &generic,
                                     mode == 8
                                     ? generic.email
                                     : ngx_http_identity_email_path,
                                     mode == 8
                                     ? generic.email_verified
                                     : "profile.email_verified",
                                     pinned);

    } else if (mode == 10) {
        ngx_http_identity_fuzz_oidc(root, size);

    } else if (mode == 11) {
        ngx_http_identity_fuzz_github(root);

    } else {
        ngx_http_identity_fuzz_microsoft(root);
    }

    json_decref(root);
    free(body);

    return 0;
}
