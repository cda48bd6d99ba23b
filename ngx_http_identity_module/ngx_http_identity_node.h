
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_NODE_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_NODE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_identity_types.h"


/* how long a confirmed revocation waits for the nodes at most, in ms */
#define NGX_HTTP_IDENTITY_NODE_CONFIRM_WAIT  1500


typedef void (*ngx_http_identity_node_done_pt)(ngx_http_request_t *r,
    void *data);


ngx_int_t ngx_http_identity_node_init_process(ngx_cycle_t *cycle,
    ngx_http_identity_main_conf_t *imcf);
void ngx_http_identity_node_exit_process(ngx_cycle_t *cycle);

ngx_int_t ngx_http_identity_node_confirm(ngx_http_request_t *r,
    ngx_int_t event, ngx_http_identity_node_done_pt done, void *data);


#endif /* _NGX_HTTP_IDENTITY_NODE_H_INCLUDED_ */
