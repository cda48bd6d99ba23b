
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * The SAML messages, built and read in the thread pool with lasso, on a
 * task that ngx_http_identity_saml.c posts and reads back when it is done:
 * the signed AuthnRequest (its URL and ID), and the SAMLResponse verified
 * (lasso's signature check and what lasso leaves to its caller) with the
 * NameID, the assertion's ID and lifetime and the mapped attributes read
 * into the task, or the task's status and error set.  No nginx request,
 * pool or log is touched here: only the task and what it points to.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <lasso/lasso.h>
#include <lasso/xml/saml-2.0/samlp2_authn_request.h>
#include <lasso/xml/saml-2.0/samlp2_name_id_policy.h>
#include <lasso/xml/saml-2.0/samlp2_response.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <lasso/xml/saml-2.0/saml2_attribute.h>
#include <lasso/xml/saml-2.0/saml2_attribute_statement.h>
#include <lasso/xml/saml-2.0/saml2_attribute_value.h>
#include <lasso/xml/saml-2.0/saml2_audience_restriction.h>
#include <lasso/xml/saml-2.0/saml2_name_id.h>
#include <lasso/xml/saml-2.0/saml2_strings.h>
#include <lasso/xml/saml-2.0/saml2_conditions.h>
#include <lasso/xml/saml-2.0/saml2_subject_confirmation.h>
#include <lasso/xml/saml-2.0/saml2_subject_confirmation_data.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_saml_idp.h"
#include "ngx_http_identity_saml_message.h"


static LassoLogin *ngx_http_identity_saml_login_new(
    ngx_http_identity_saml_task_t *t, LassoServer **server);
static ngx_int_t ngx_http_identity_saml_check(
    ngx_http_identity_saml_task_t *t, LassoLogin *login);
static ngx_uint_t ngx_http_identity_saml_answers(
    ngx_http_identity_saml_task_t *t, const char *in_response_to);
static void ngx_http_identity_saml_attributes(
    ngx_http_identity_saml_task_t *t, LassoSaml2Assertion *assertion);
static LassoSaml2Attribute *ngx_http_identity_saml_attribute(
    LassoSaml2Assertion *assertion, char *name);
static void ngx_http_identity_saml_values(ngx_http_identity_saml_task_t *t,
    ngx_uint_t i, LassoSaml2Attribute *attr);
static char *ngx_http_identity_saml_text(LassoSaml2AttributeValue *value);
static time_t ngx_http_identity_saml_time(const char *s);


void
ngx_http_identity_saml_authn_run(void *data)
{
    ngx_http_identity_saml_task_t *t = data;

    int                        rc;
    LassoLogin                *login;
    LassoServer               *server;
    LassoSamlp2AuthnRequest   *request;
    LassoSamlp2NameIDPolicy   *policy;
    ngx_http_identity_provider_t  *pr;

    pr = t->provider;

    login = ngx_http_identity_saml_login_new(t, &server);
    if (login == NULL) {
        return;
    }

    rc = lasso_login_init_authn_request(login, (char *) pr->issuer.data,
                                        LASSO_HTTP_METHOD_REDIRECT);
    if (rc != 0) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR, "AuthnRequest: %s",
                                    lasso_strerror(rc));
        goto done;
    }

    request = LASSO_SAMLP2_AUTHN_REQUEST(LASSO_PROFILE(login)->request);

    request->ForceAuthn = pr->force_authn ? TRUE : FALSE;
    request->IsPassive = FALSE;

    if (request->NameIDPolicy == NULL) {
        request->NameIDPolicy = LASSO_SAMLP2_NAME_ID_POLICY(
                                             lasso_samlp2_name_id_policy_new());
    }

    policy = request->NameIDPolicy;
    g_free(policy->Format);
    policy->Format = g_strdup((char *) pr->nameid_format.data);
    policy->AllowCreate = TRUE;

    g_free(request->ProtocolBinding);
    request->ProtocolBinding = g_strdup(LASSO_SAML2_METADATA_BINDING_POST);
    g_free(request->AssertionConsumerServiceURL);
    request->AssertionConsumerServiceURL = g_strdup(t->acs_url);

    g_free(LASSO_PROFILE(login)->msg_relayState);
    LASSO_PROFILE(login)->msg_relayState = g_strdup(t->relay_state);

    rc = lasso_login_build_authn_request_msg(login);
    if (rc != 0 || LASSO_PROFILE(login)->msg_url == NULL) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR, "AuthnRequest: %s",
                                    lasso_strerror(rc));
        goto done;
    }

    t->url = strdup(LASSO_PROFILE(login)->msg_url);
    t->id = strdup(LASSO_SAMLP2_REQUEST_ABSTRACT(request)->ID);

    if (t->url == NULL || t->id == NULL) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR, "out of memory");
    }

done:

    lasso_login_destroy(login);
    lasso_server_destroy(server);
}


void
ngx_http_identity_saml_check_run(void *data)
{
    ngx_http_identity_saml_task_t *t = data;

    int           rc;
    ngx_int_t     status;
    LassoLogin   *login;
    LassoServer  *server;

    login = ngx_http_identity_saml_login_new(t, &server);
    if (login == NULL) {
        return;
    }

    /*
     * Parses, and verifies the signature of the response or assertion.
     * What is not an HTTP-POST SAML message at all lasso 2.8 reports as an
     * unsupported profile.
     */

    rc = lasso_login_process_authn_response_msg(login, t->response);

    if (rc != 0) {
        status = (rc == LASSO_PROFILE_ERROR_INVALID_MSG
                  || rc == LASSO_PROFILE_ERROR_UNSUPPORTED_PROFILE)
                 ? NGX_HTTP_BAD_REQUEST : NGX_HTTP_FORBIDDEN;

        ngx_http_identity_saml_fail(t, status, NGX_LOG_INFO,
                                    "SAML response refused: %s",
                                    lasso_strerror(rc));

    } else {
        (void) ngx_http_identity_saml_check(t, login);
    }

    lasso_login_destroy(login);
    lasso_server_destroy(server);
}


/*
 * The task's LassoServer and a LassoLogin on it, both for the caller to
 * destroy; NULL, with the task failed and nothing left to destroy, if
 * either cannot be made.
 */

static LassoLogin *
ngx_http_identity_saml_login_new(ngx_http_identity_saml_task_t *t,
    LassoServer **server)
{
    LassoLogin  *login;

    *server = ngx_http_identity_saml_server(t);
    if (*server == NULL) {
        return NULL;
    }

    login = lasso_login_new(*server);
    if (login == NULL) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR, "lasso_login_new() failed");
        lasso_server_destroy(*server);
        return NULL;
    }

    return login;
}


/* what lasso leaves to its caller (SAML 2.0 profiles, 4.1.4.3) */

static ngx_int_t
ngx_http_identity_saml_check(ngx_http_identity_saml_task_t *t,
    LassoLogin *login)
{
    time_t                              now, skew, nb, noa;
    GList                              *l;
    ngx_uint_t                          audience;
    LassoSamlp2Response                *response;
    LassoSaml2Assertion                *assertion;
    LassoSaml2Conditions               *conditions;
    LassoSamlp2StatusResponse          *status;
    LassoSaml2SubjectConfirmation      *sc;
    LassoSaml2SubjectConfirmationData  *scd;
    LassoSaml2AudienceRestriction      *ar;

    now = time(NULL);
    skew = t->provider->leeway;

    response = LASSO_SAMLP2_RESPONSE(LASSO_PROFILE(login)->response);
    status = LASSO_SAMLP2_STATUS_RESPONSE(response);

    if (status->Destination == NULL
        || strcmp(status->Destination, t->acs_url) != 0)
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML response Destination \"%s\" is "
                                    "not \"%s\"",
                                    status->Destination
                                    ? status->Destination : "",
                                    t->acs_url);
        return NGX_ERROR;
    }

    if (g_list_length(response->Assertion) != 1
        || !LASSO_IS_SAML2_ASSERTION(response->Assertion->data))
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML response must carry exactly one "
                                    "assertion");
        return NGX_ERROR;
    }

    assertion = response->Assertion->data;

    /* InResponseTo: our pending request, or nothing if unsolicited */

    if (!ngx_http_identity_saml_answers(t, status->InResponseTo)) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML response InResponseTo does not "
                                    "match the request");
        return NGX_ERROR;
    }

    if (assertion->Subject == NULL || assertion->Subject->NameID == NULL
        || assertion->Subject->NameID->content == NULL
        || assertion->Subject->NameID->content[0] == '\0')
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML assertion without a NameID");
        return NGX_ERROR;
    }

    sc = assertion->Subject->SubjectConfirmation;
    scd = sc ? sc->SubjectConfirmationData : NULL;

    if (sc == NULL || sc->Method == NULL
        || strcmp(sc->Method, LASSO_SAML2_CONFIRMATION_METHOD_BEARER) != 0
        || scd == NULL || scd->Recipient == NULL
        || strcmp(scd->Recipient, t->acs_url) != 0)
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML assertion is not a bearer "
                                    "assertion for \"%s\"", t->acs_url);
        return NGX_ERROR;
    }

    if (!ngx_http_identity_saml_answers(t, scd->InResponseTo)) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML subject confirmation InResponseTo "
                                    "does not match the request");
        return NGX_ERROR;
    }

    noa = ngx_http_identity_saml_time(scd->NotOnOrAfter);
    nb = scd->NotBefore ? ngx_http_identity_saml_time(scd->NotBefore) : 0;

    if (noa == 0 || noa + skew <= now || (scd->NotBefore && nb == 0)
        || nb - skew > now)
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML subject confirmation is not "
                                    "current");
        return NGX_ERROR;
    }

    t->not_on_or_after = noa;

    conditions = assertion->Conditions;

    if (conditions == NULL) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML assertion without conditions");
        return NGX_ERROR;
    }

    nb = conditions->NotBefore
         ? ngx_http_identity_saml_time(conditions->NotBefore) : 0;
    noa = conditions->NotOnOrAfter
          ? ngx_http_identity_saml_time(conditions->NotOnOrAfter) : 0;

    if ((conditions->NotBefore && (nb == 0 || nb - skew > now))
        || (conditions->NotOnOrAfter && (noa == 0 || noa + skew <= now)))
    {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML assertion is not current");
        return NGX_ERROR;
    }

    if (noa && noa < t->not_on_or_after) {
        t->not_on_or_after = noa;
    }

    /* every AudienceRestriction must name this SP, and there is one */

    audience = 0;

    for (l = conditions->AudienceRestriction; l; l = l->next) {
        ar = l->data;

        if (!LASSO_IS_SAML2_AUDIENCE_RESTRICTION(ar) || ar->Audience == NULL
            || strcmp(ar->Audience, t->entity_id) != 0)
        {
            audience = 0;
            break;
        }

        audience = 1;
    }

    if (!audience) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML assertion is not for audience "
                                    "\"%s\"", t->entity_id);
        return NGX_ERROR;
    }

    if (assertion->ID == NULL || assertion->ID[0] == '\0') {
        ngx_http_identity_saml_fail(t, NGX_HTTP_FORBIDDEN, NGX_LOG_INFO,
                                    "SAML assertion without an ID");
        return NGX_ERROR;
    }

    t->assertion_id = strdup(assertion->ID);
    t->name_id = strdup(assertion->Subject->NameID->content);

    if (t->assertion_id == NULL || t->name_id == NULL) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    NGX_LOG_ERR, "out of memory");
        return NGX_ERROR;
    }

    ngx_http_identity_saml_attributes(t, assertion);

    return NGX_OK;
}


/*
 * InResponseTo: it names the pending request, or, for an unsolicited
 * response (no request id), is absent.
 */

static ngx_uint_t
ngx_http_identity_saml_answers(ngx_http_identity_saml_task_t *t,
    const char *in_response_to)
{
    if (t->request_id == NULL) {
        return in_response_to == NULL;
    }

    return in_response_to != NULL
           && strcmp(in_response_to, t->request_id) == 0;
}


/*
 * The attribute names looked for, per key, in this order; the first present
 * wins.  attribute_map replaces a key's list by its one name.  They are the
 * names SimpleSAMLphp, Shibboleth, ADFS, Entra ID and Okta release: LDAP
 * names, their OIDs (attrname-format:uri) and the WS-Federation claims.
 */

static char  *ngx_http_identity_saml_email_names[] = {
    "mail",
    "email",
    "emailAddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    NULL
};

static char  *ngx_http_identity_saml_name_names[] = {
    "displayName",
    "cn",
    "urn:oid:2.16.840.1.113730.3.1.241",
    "urn:oid:2.5.4.3",
    "http://schemas.microsoft.com/identity/claims/displayname",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    NULL
};

static char  *ngx_http_identity_saml_username_names[] = {
    "uid",
    "urn:oid:0.9.2342.19200300.100.1.1",
    "eduPersonPrincipalName",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.6",
    NULL
};

static char  *ngx_http_identity_saml_groups_names[] = {
    "memberOf",
    "groups",
    "urn:oid:1.3.6.1.4.1.5923.1.1.1.1",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    "http://schemas.xmlsoap.org/claims/Group",
    NULL
};

static char **ngx_http_identity_saml_default_names[5] = {
    NULL,                                       /* id: the NameID */
    ngx_http_identity_saml_email_names,
    ngx_http_identity_saml_name_names,
    ngx_http_identity_saml_username_names,
    ngx_http_identity_saml_groups_names
};


/* the mapped attributes: one may give several keys, as id=uid username=uid */

static void
ngx_http_identity_saml_attributes(ngx_http_identity_saml_task_t *t,
    LassoSaml2Assertion *assertion)
{
    char                **names, *one[2];
    ngx_str_t            *map;
    ngx_uint_t            i, j;
    LassoSaml2Attribute  *attr;
    LassoSaml2NameID     *name_id;

    map = t->provider->attributes;

    for (i = 0; i < 5; i++) {

        if (map[i].len) {
            one[0] = (char *) map[i].data;
            one[1] = NULL;
            names = one;

        } else {
            names = ngx_http_identity_saml_default_names[i];
        }

        for (j = 0; names && names[j] && t->attrs[i] == NULL; j++) {
            attr = ngx_http_identity_saml_attribute(assertion, names[j]);

            if (attr) {
                ngx_http_identity_saml_values(t, i, attr);
            }
        }
    }

    /* an e-mail NameID is the e-mail when no attribute gives one */

    name_id = assertion->Subject->NameID;

    if (t->attrs[1] == NULL
        && name_id->Format
        && strcmp(name_id->Format, LASSO_SAML2_NAME_IDENTIFIER_FORMAT_EMAIL)
           == 0)
    {
        t->attrs[1] = strdup(t->name_id);
    }
}


static LassoSaml2Attribute *
ngx_http_identity_saml_attribute(LassoSaml2Assertion *assertion, char *name)
{
    GList                *s, *a;
    LassoSaml2Attribute  *attr;

    for (s = assertion->AttributeStatement; s; s = s->next) {
        if (!LASSO_IS_SAML2_ATTRIBUTE_STATEMENT(s->data)) {
            continue;
        }

        for (a = LASSO_SAML2_ATTRIBUTE_STATEMENT(s->data)->Attribute;
             a;
             a = a->next)
        {
            if (!LASSO_IS_SAML2_ATTRIBUTE(a->data)) {
                continue;
            }

            attr = a->data;

            if (attr->Name && strcmp(attr->Name, name) == 0) {
                return attr;
            }
        }
    }

    return NULL;
}


/*
 * The first value, or for groups (key 4) all of them joined by newlines;
 * empty values and values that are not text are skipped.
 */

static void
ngx_http_identity_saml_values(ngx_http_identity_saml_task_t *t, ngx_uint_t i,
    LassoSaml2Attribute *attr)
{
    char   *v, *joined;
    size_t  len;
    GList  *av;

    for (av = attr->AttributeValue; av; av = av->next) {
        if (!LASSO_IS_SAML2_ATTRIBUTE_VALUE(av->data)) {
            continue;
        }

        v = ngx_http_identity_saml_text(av->data);

        if (v == NULL) {
            continue;
        }

        /* a group with a newline would read as two: dropped, as in JSON */

        if (i == 4 && strchr(v, '\n')) {
            free(v);
            continue;
        }

        if (t->attrs[i] == NULL) {
            t->attrs[i] = v;

            if (i != 4) {
                return;
            }

            continue;
        }

        len = strlen(t->attrs[i]) + 1 + strlen(v) + 1;
        joined = malloc(len);

        if (joined) {
            snprintf(joined, len, "%s\n%s", t->attrs[i], v);
            free(t->attrs[i]);
            t->attrs[i] = joined;
        }

        free(v);
    }
}


/*
 * A value's whole text, malloc()ed, read from the XML lasso parsed: lasso
 * itself gives each text node of an AttributeValue apart, drops comments
 * and CDATA sections, so that "alice@example.org<!---->.evil.example" or
 * "<![CDATA[evil.]]>alice@example.org" (whose canonical form, and so
 * signature, is that of the whole) would arrive as a different value
 * (CVE-2017-11427).  Text and CDATA are joined, comments and processing
 * instructions skipped; a value with an element inside is no text value
 * at all: NULL.
 */

static char *
ngx_http_identity_saml_text(LassoSaml2AttributeValue *value)
{
    char     *v, *p;
    size_t    len;
    xmlNode  *xml, *n;

    xml = lasso_node_get_original_xmlnode(LASSO_NODE(value));

    if (xml == NULL) {
        return NULL;
    }

    len = 0;

    for (n = xml->children; n; n = n->next) {

        switch (n->type) {

        case XML_TEXT_NODE:
        case XML_CDATA_SECTION_NODE:
            len += n->content ? strlen((char *) n->content) : 0;
            break;

        case XML_COMMENT_NODE:
        case XML_PI_NODE:
            break;

        default:
            return NULL;
        }
    }

    if (len == 0) {
        return NULL;
    }

    v = malloc(len + 1);
    if (v == NULL) {
        return NULL;
    }

    p = v;

    for (n = xml->children; n; n = n->next) {
        if ((n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE)
            && n->content)
        {
            len = strlen((char *) n->content);
            memcpy(p, n->content, len);
            p += len;
        }
    }

    *p = '\0';

    return v;
}


/* xs:dateTime in UTC, as SAML requires: 2026-11-28T02:33:10[.123]Z */

static time_t
ngx_http_identity_saml_time(const char *s)
{
    int        n;
    struct tm  tm;

    if (s == NULL) {
        return 0;
    }

    ngx_memzero(&tm, sizeof(struct tm));
    n = 0;

    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
               &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n)
        != 6)
    {
        return 0;
    }

    s += n;

    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++) { /* void */ }
    }

    if (s[0] != 'Z' || s[1] != '\0') {
        return 0;
    }

    tm.tm_year -= 1900;
    tm.tm_mon -= 1;

    return timegm(&tm);
}
