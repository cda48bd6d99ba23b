
/*
 * Copyright (C) ngx_http_identity_module authors
 */


/*
 * libFuzzer target: any bytes as a SAML assertion, or a response with one,
 * parsed by lasso, then read as the module reads it once the response is
 * checked (make fuzz): its xs:dateTime stamps
 * (ngx_http_identity_saml_time) and, if it has a NameID, the mapped
 * attributes (ngx_http_identity_saml_attributes).  The first byte picks
 * an attribute_map (its bits: email=email, id=uid, groups=memberOf,
 * name=cn); the rest is the XML.  Whatever it holds: every value is text
 * of the assertion, so no longer than it; a key is absent or not empty;
 * groups are not empty and hold no empty line; nothing is left behind
 * (LeakSanitizer).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <lasso/lasso.h>
#include <lasso/xml/saml-2.0/saml2_assertion.h>
#include <lasso/xml/saml-2.0/saml2_conditions.h>
#include <lasso/xml/saml-2.0/saml2_name_id.h>
#include <lasso/xml/saml-2.0/saml2_subject.h>
#include <lasso/xml/saml-2.0/saml2_subject_confirmation.h>
#include <lasso/xml/saml-2.0/saml2_subject_confirmation_data.h>
#include <lasso/xml/saml-2.0/samlp2_response.h>

#include "ngx_http_identity_saml_assertion.h"


/* lasso warns of every attribute it does not know: millions of lines */

static void
ngx_http_identity_fuzz_saml_quiet(const gchar *domain, GLogLevelFlags level,
    const gchar *message, gpointer data)
{
    (void) domain;
    (void) level;
    (void) message;
    (void) data;
}


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;

    if (lasso_init() != 0) {
        abort();
    }

    g_log_set_default_handler(ngx_http_identity_fuzz_saml_quiet, NULL);

    return 0;
}


/* a time is 0, or read from a whole "YYYY-MM-DDThh:mm:ss[.s]Z" */

static void
ngx_http_identity_fuzz_saml_time(const char *s)
{
    size_t  len;

    if (ngx_http_identity_saml_time(s) == 0) {
        return;
    }

    len = strlen(s);

    if (len < 12 || s[len - 1] != 'Z' || strchr(s, 'T') == NULL) {
        abort();
    }
}


static void
ngx_http_identity_fuzz_saml_check(char **attrs, size_t size)
{
    char        *p, *nl;
    ngx_uint_t   i;

    for (i = 0; i < 5; i++) {
        if (attrs[i] == NULL) {
            continue;
        }

        if (attrs[i][0] == '\0' || strlen(attrs[i]) > size) {
            abort();
        }
    }

    if (attrs[4] == NULL) {
        return;
    }

    for (p = attrs[4]; /* void */ ; p = nl + 1) {
        nl = strchr(p, '\n');

        if (nl == p || *p == '\0') {
            abort();
        }

        if (nl == NULL) {
            break;
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                               *xml, *name_id, *attrs[5];
    GList                              *l;
    ngx_str_t                           map[5];
    ngx_uint_t                          i;
    LassoNode                          *node;
    LassoSaml2Subject                  *subject;
    LassoSaml2Assertion                *assertion;
    LassoSaml2SubjectConfirmationData  *scd;

    if (size < 1) {
        return 0;
    }

    xml = malloc(size);
    if (xml == NULL) {
        return 0;
    }

    memcpy(xml, data + 1, size - 1);
    xml[size - 1] = '\0';

    ngx_memzero(map, sizeof(map));

    if (data[0] & 1) {
        ngx_str_set(&map[1], "email");
    }

    if (data[0] & 2) {
        ngx_str_set(&map[0], "uid");
    }

    if (data[0] & 4) {
        ngx_str_set(&map[4], "memberOf");
    }

    if (data[0] & 8) {
        ngx_str_set(&map[2], "cn");
    }

    node = lasso_node_new_from_dump(xml);

    if (node == NULL) {
        free(xml);
        return 0;
    }

    /* a response's one assertion, as saml_message.c takes it, or one */

    assertion = NULL;

    if (LASSO_IS_SAML2_ASSERTION(node)) {
        assertion = LASSO_SAML2_ASSERTION(node);

    } else if (LASSO_IS_SAMLP2_RESPONSE(node)) {
        l = LASSO_SAMLP2_RESPONSE(node)->Assertion;

        if (g_list_length(l) == 1 && LASSO_IS_SAML2_ASSERTION(l->data)) {
            assertion = l->data;
        }
    }

    if (assertion == NULL) {
        g_object_unref(node);
        free(xml);
        return 0;
    }

    ngx_http_identity_fuzz_saml_time(assertion->IssueInstant);

    if (assertion->Conditions) {
        ngx_http_identity_fuzz_saml_time(assertion->Conditions->NotBefore);
        ngx_http_identity_fuzz_saml_time(assertion->Conditions->NotOnOrAfter);
    }

    subject = assertion->Subject;

    if (subject && subject->SubjectConfirmation) {
        scd = subject->SubjectConfirmation->SubjectConfirmationData;

        if (scd) {
            ngx_http_identity_fuzz_saml_time(scd->NotBefore);
            ngx_http_identity_fuzz_saml_time(scd->NotOnOrAfter);
        }
    }

    /* saml_message.c reads the attributes of an assertion with a NameID */

    if (subject && subject->NameID && subject->NameID->content
        && subject->NameID->content[0])
    {
        name_id = strdup(subject->NameID->content);

        if (name_id) {
            ngx_memzero(attrs, sizeof(attrs));

            ngx_http_identity_saml_attributes(assertion, map, name_id,
                                              attrs);

            ngx_http_identity_fuzz_saml_check(attrs, size);

            for (i = 0; i < 5; i++) {
                free(attrs[i]);
            }

            free(name_id);
        }
    }

    g_object_unref(node);
    free(xml);

    return 0;
}
