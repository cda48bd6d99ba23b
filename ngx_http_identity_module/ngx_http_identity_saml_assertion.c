
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * What a SAML assertion says of its user, read from what lasso parsed once
 * saml_message.c has checked the response: the mapped attributes (the
 * names each key is looked for under, their values as whole text, groups
 * joined by newlines) and its xs:dateTime stamps.  No task, request, pool
 * or log: only lasso's objects and malloc()ed strings, so that
 * unit/fuzz_saml.c calls it as the module does (make fuzz).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <lasso/lasso.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <lasso/xml/saml-2.0/saml2_attribute.h>
#include <lasso/xml/saml-2.0/saml2_attribute_statement.h>
#include <lasso/xml/saml-2.0/saml2_attribute_value.h>
#include <lasso/xml/saml-2.0/saml2_name_id.h>
#include <lasso/xml/saml-2.0/saml2_strings.h>

#include "ngx_http_identity_saml_assertion.h"


static LassoSaml2Attribute *ngx_http_identity_saml_attribute(
    LassoSaml2Assertion *assertion, char *name);
static void ngx_http_identity_saml_values(char **attrs, ngx_uint_t i,
    LassoSaml2Attribute *attr);
static char *ngx_http_identity_saml_text(LassoSaml2AttributeValue *value);


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


/*
 * The mapped attributes into attrs (id, email, name, username, groups),
 * each malloc()ed or NULL: one may give several keys, as id=uid
 * username=uid.  The assertion has a NameID (name_id, its content), as
 * ngx_http_identity_saml_check() made sure.
 */

void
ngx_http_identity_saml_attributes(LassoSaml2Assertion *assertion,
    ngx_str_t *map, const char *name_id, char **attrs)
{
    char                **names, *one[2];
    ngx_uint_t            i, j;
    LassoSaml2Attribute  *attr;
    LassoSaml2NameID     *nid;

    for (i = 0; i < 5; i++) {

        if (map[i].len) {
            one[0] = (char *) map[i].data;
            one[1] = NULL;
            names = one;

        } else {
            names = ngx_http_identity_saml_default_names[i];
        }

        for (j = 0; names && names[j] && attrs[i] == NULL; j++) {
            attr = ngx_http_identity_saml_attribute(assertion, names[j]);

            if (attr) {
                ngx_http_identity_saml_values(attrs, i, attr);
            }
        }
    }

    /* an e-mail NameID is the e-mail when no attribute gives one */

    nid = assertion->Subject->NameID;

    if (attrs[1] == NULL
        && nid->Format
        && strcmp(nid->Format, LASSO_SAML2_NAME_IDENTIFIER_FORMAT_EMAIL) == 0)
    {
        attrs[1] = strdup(name_id);
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
ngx_http_identity_saml_values(char **attrs, ngx_uint_t i,
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

        if (attrs[i] == NULL) {
            attrs[i] = v;

            if (i != 4) {
                return;
            }

            continue;
        }

        len = strlen(attrs[i]) + 1 + strlen(v) + 1;
        joined = malloc(len);

        if (joined) {
            snprintf(joined, len, "%s\n%s", attrs[i], v);
            free(attrs[i]);
            attrs[i] = joined;
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


/*
 * xs:dateTime in UTC, as SAML requires: 2026-11-28T02:33:10[.123]Z; 0 if
 * it is not one
 */

time_t
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
