
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
#include <lasso/xml/saml-2.0/saml2_audience_restriction.h>
#include <lasso/xml/saml-2.0/saml2_name_id.h>
#include <lasso/xml/saml-2.0/saml2_strings.h>
#include <lasso/xml/saml-2.0/saml2_conditions.h>
#include <lasso/xml/saml-2.0/saml2_subject_confirmation.h>
#include <lasso/xml/saml-2.0/saml2_subject_confirmation_data.h>

#include "ngx_http_identity_types.h"
#include "ngx_http_identity_saml_idp.h"
#include "ngx_http_identity_saml_message.h"
#include "ngx_http_identity_saml_assertion.h"
#include "ngx_http_identity_parse.h"


static LassoLogin *ngx_http_identity_saml_login_new(
    ngx_http_identity_saml_task_t *t, LassoServer **server);
static ngx_int_t ngx_http_identity_saml_check(
    ngx_http_identity_saml_task_t *t, LassoLogin *login);
static ngx_uint_t ngx_http_identity_saml_answers(
    ngx_http_identity_saml_task_t *t, const char *in_response_to);


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

    /*
     * The URL is the IdP metadata's SSO Location (with the request in its
     * query): a space or control character there, CR LF say, which the
     * XML may carry as "&#13;&#10;", would end the Location header and add
     * headers of the metadata's choosing.
     */

    if (!ngx_http_identity_http_url(LASSO_PROFILE(login)->msg_url)) {
        ngx_http_identity_saml_fail(t, NGX_HTTP_SERVICE_UNAVAILABLE,
                                    NGX_LOG_ERR, "the IdP metadata's SSO URL "
                                    "\"%.64s\" is not a URL",
                                    LASSO_PROFILE(login)->msg_url);
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

    ngx_http_identity_saml_attributes(assertion, t->provider->attributes,
                                      t->name_id, t->attrs);

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
