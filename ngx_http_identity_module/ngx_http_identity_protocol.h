
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_PROTOCOL_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_PROTOCOL_H_INCLUDED_


/*
 * What a protocol (oidc, oauth, saml) offers the layers above, as one
 * table each protocol exports: ngx_http_identity_<name>_protocol.  Types
 * only, at the bottom of the protocol layer, so that the protocols and the
 * files above them can include it.  A provider's "type" picks the entry.
 *
 * Every request function returns NGX_AGAIN while it waits (ctx->resume is
 * called later) or the HTTP status to answer with, headers set.  A route
 * that finishes a login returns NGX_OK once ctx->claims, ctx->provider and
 * ctx->login are filled: login.c makes the session then.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"


/* a reserved path under identity_path */

#define NGX_HTTP_IDENTITY_ROUTE_FINISH  0x01  /* finishes a login */
#define NGX_HTTP_IDENTITY_ROUTE_PAGE    0x02  /* fails on the error page */
#define NGX_HTTP_IDENTITY_ROUTE_BACK    0x04  /* the provider's answer comes
                                                 back here: a 400 is a
                                                 state that does not match */
#define NGX_HTTP_IDENTITY_ROUTE_CANCEL  0x08  /* a 403 with "error" in the
                                                 query: the user cancelled */
#define NGX_HTTP_IDENTITY_ROUTE_BODY    0x10  /* reads its own body, checks
                                                 its own method */


typedef ngx_int_t (*ngx_http_identity_route_pt)(ngx_http_request_t *r);


struct ngx_http_identity_route_s {
    ngx_str_t                        path;
    ngx_http_identity_route_pt       handler;
    ngx_uint_t                       flags;   /* NGX_HTTP_IDENTITY_ROUTE_* */
};


struct ngx_http_identity_protocol_s {
    ngx_str_t                        name;     /* the provider's "type" */

    /* the end of its identity_provider block: checks and defaults */
    char                          *(*conf)(ngx_conf_t *cf,
                                       ngx_http_identity_provider_t *pr);

    /* each worker's caches; NULL: none */
    ngx_int_t                      (*init_process)(ngx_cycle_t *cycle);

    /* the redirect to the provider, ctx->provider and ctx->login set */
    ngx_int_t                      (*login)(ngx_http_request_t *r);

    /*
     * the OAuth 2.0 callback, once the core took the pending login it
     * names; NULL outside the OAuth 2.0 family
     */
    ngx_int_t                      (*callback)(ngx_http_request_t *r);

    /*
     * a session's claims checked again (ctx->status says how); NULL or
     * NGX_DECLINED: nothing to check with
     */
    ngx_int_t                      (*refresh)(ngx_http_request_t *r);

    /*
     * the provider's own logout URL for a browser to return to "path":
     * NGX_OK with "url" set, NGX_DECLINED, or NGX_ERROR; NULL: none
     */
    ngx_int_t                      (*logout)(ngx_http_request_t *r,
                                       ngx_http_identity_provider_t *pr,
                                       ngx_str_t *path, ngx_str_t *url);

    ngx_http_identity_route_t      **routes;   /* NULL-terminated */
};


#endif /* _NGX_HTTP_IDENTITY_PROTOCOL_H_INCLUDED_ */
