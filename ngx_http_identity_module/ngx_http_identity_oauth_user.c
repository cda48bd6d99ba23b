
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The OAuth presets' table, and what each preset's provider says of a user,
 * read from its JSON: the claims at the configured paths, whether the
 * provider vouches for the e-mail (its rule), GitHub's verified primary
 * address in the list of /user/emails, and the tenant and object of a
 * Microsoft ID token's claims.  No task, request, HTTP call or log:
 * oauth_presets.c and oauth.c call it in their thread tasks, and
 * unit/fuzz_provider.c as they do (make fuzz).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <jansson.h>

#include "ngx_http_identity_json.h"
#include "ngx_http_identity_oauth_user.h"


/*
 * The endpoints and user info shapes are those each provider documents;
 * every one of them can be overridden in the provider block.
 */

static ngx_http_identity_oauth_preset_t  ngx_http_identity_oauth_presets[] = {

    { "amazon", "https://www.amazon.com",
      "https://www.amazon.com/ap/oa",
      "https://api.amazon.com/auth/o2/token",
      "https://api.amazon.com/user/profile", NULL,
      "profile",
      { "user_id", "email", "name", NULL, NULL }, NULL, 1, 0,
      ngx_http_identity_email_none },

    { "facebook", "https://www.facebook.com",
      "https://www.facebook.com/v19.0/dialog/oauth",
      "https://graph.facebook.com/v19.0/oauth/access_token",
      "https://graph.facebook.com/me?fields=id,name,email", NULL,
      "public_profile email",
      { "id", "email", "name", NULL, NULL }, NULL, 1, 0,
      ngx_http_identity_email_none },

    { "github", "https://github.com",
      "https://github.com/login/oauth/authorize",
      "https://github.com/login/oauth/access_token",
      "https://api.github.com/user",
      "https://api.github.com/user/emails",
      "read:user user:email",
      { "id", "email", "name", "login", NULL }, NULL, 1, 0,
      ngx_http_identity_email_github },

    { "gitlab", "https://gitlab.com",
      "https://gitlab.com/oauth/authorize",
      "https://gitlab.com/oauth/token",
      "https://gitlab.com/api/v4/user", NULL,
      "read_user",
      { "id", "email", "name", "username", NULL }, "confirmed_at", 1, 0,
      ngx_http_identity_email_stamp },

    { "google", "https://accounts.google.com",
      "https://accounts.google.com/o/oauth2/v2/auth",
      "https://oauth2.googleapis.com/token",
      "https://openidconnect.googleapis.com/v1/userinfo", NULL,
      "openid email profile",
      { "sub", "email", "name", NULL, NULL }, "email_verified", 1, 0,
      ngx_http_identity_email_path },

    { "linkedin", "https://www.linkedin.com",
      "https://www.linkedin.com/oauth/v2/authorization",
      "https://www.linkedin.com/oauth/v2/accessToken",
      "https://api.linkedin.com/v2/userinfo", NULL,
      "openid profile email",
      { "sub", "email", "name", NULL, NULL }, "email_verified", 0, 0,
      ngx_http_identity_email_path },

    { "microsoft", "https://login.microsoftonline.com",
      "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
      "https://login.microsoftonline.com/common/oauth2/v2.0/token",
      "https://graph.microsoft.com/v1.0/me", NULL,
      "openid profile email offline_access User.Read",
      { "id", "mail|userPrincipalName", "displayName", "userPrincipalName",
        NULL }, NULL, 1, 0, ngx_http_identity_email_tenant },

    { "twitch", "https://id.twitch.tv",
      "https://id.twitch.tv/oauth2/authorize",
      "https://id.twitch.tv/oauth2/token",
      "https://api.twitch.tv/helix/users", NULL,
      "user:read:email",
      { "data.0.id", "data.0.email", "data.0.display_name", "data.0.login",
        NULL }, NULL, 0, 1, ngx_http_identity_email_documented },

    { NULL, NULL, NULL, NULL, NULL, NULL, NULL,
      { NULL, NULL, NULL, NULL, NULL }, NULL, 0, 0, 0 }
};


static char  *ngx_http_identity_oauth_generic_claims[5] = {
    "sub", "email", "name", "preferred_username", "groups"
};


/* the preset of that name, or NULL */

ngx_http_identity_oauth_preset_t *
ngx_http_identity_oauth_preset(ngx_str_t *name)
{
    ngx_http_identity_oauth_preset_t  *ps;

    for (ps = ngx_http_identity_oauth_presets; ps->name; ps++) {
        if (ngx_strlen(ps->name) == name->len
            && ngx_strncmp(ps->name, name->data, name->len) == 0)
        {
            return ps;
        }
    }

    return NULL;
}


/* no preset: every endpoint configured, OIDC's claim names by default */

void
ngx_http_identity_oauth_generic(ngx_http_identity_oauth_preset_t *generic)
{
    ngx_uint_t  i;

    ngx_memzero(generic, sizeof(ngx_http_identity_oauth_preset_t));

    for (i = 0; i < 5; i++) {
        generic->claims[i] = ngx_http_identity_oauth_generic_claims[i];
    }

    generic->pkce = 1;
}


/* the claims at the paths (id, email, name, username, groups), malloc()ed */

void
ngx_http_identity_oauth_claims(json_t *info, char **paths, char **claims)
{
    ngx_uint_t  i;

    for (i = 0; i < 5; i++) {
        claims[i] = paths[i] == NULL
                    ? NULL
                    : i == 4
                    ? ngx_http_identity_json_groups(info, paths[i])
                    : ngx_http_identity_json_claim(info, paths[i]);
    }
}


/*
 * Whether the provider vouches for the user info's e-mail, by its rule;
 * "pinned": a Microsoft tenant is pinned.
 */

ngx_uint_t
ngx_http_identity_oauth_vouched(json_t *info, ngx_uint_t email,
    const char *path, ngx_uint_t pinned)
{
    switch (email) {

    case ngx_http_identity_email_path:
    case ngx_http_identity_email_stamp:
        return ngx_http_identity_json_verified(info, path,
                                   email == ngx_http_identity_email_stamp);

    case ngx_http_identity_email_documented:
        return 1;

    case ngx_http_identity_email_github:
        return 0;   /* replaced by the verified primary address */

    case ngx_http_identity_email_tenant:

        /*
         * "mail" and "userPrincipalName" are whatever a tenant's admins
         * set (nOAuth): only those of the pinned tenant, whose tid the
         * token response showed, are trusted.
         */

        return pinned;

    default:
        return 0;
    }
}


/* GitHub's /user/emails: the first address both primary and verified */

char *
ngx_http_identity_oauth_primary(json_t *list)
{
    size_t       i;
    json_t      *e;
    const char  *addr;

    json_array_foreach(list, i, e) {
        addr = json_string_value(json_object_get(e, "email"));

        if (addr && json_is_true(json_object_get(e, "primary"))
            && json_is_true(json_object_get(e, "verified")))
        {
            return strdup(addr);
        }
    }

    return NULL;
}


/*
 * A Microsoft ID token's claims: NGX_OK with its tenant and object ids
 * (in the claims) if its audience is this client and both are there, of
 * 64 bytes at most; else NGX_DECLINED.
 */

ngx_int_t
ngx_http_identity_oauth_tenant_user(json_t *claims, const char *client_id,
    const char **tid, const char **oid)
{
    const char  *aud;

    aud = json_string_value(json_object_get(claims, "aud"));
    *tid = json_string_value(json_object_get(claims, "tid"));
    *oid = json_string_value(json_object_get(claims, "oid"));

    if (aud == NULL || strcmp(aud, client_id) != 0
        || *tid == NULL || (*tid)[0] == '\0' || strlen(*tid) > 64
        || *oid == NULL || (*oid)[0] == '\0' || strlen(*oid) > 64)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}
