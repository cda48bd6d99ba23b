
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#ifndef _NGX_HTTP_IDENTITY_CRYPTO_H_INCLUDED_
#define _NGX_HTTP_IDENTITY_CRYPTO_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_IDENTITY_SHA256_HEX_LEN  64
#define NGX_HTTP_IDENTITY_TOKEN_KEY_LEN   32

/* a session's key and public id: the first 128 bits of sha256(cookie) */
#define NGX_HTTP_IDENTITY_SESSION_KEY_LEN  32


ngx_int_t ngx_http_identity_crypto_init(void);
ngx_int_t ngx_http_identity_random(ngx_pool_t *pool, size_t bytes,
    ngx_str_t *out);
ngx_int_t ngx_http_identity_random_hex(ngx_pool_t *pool, size_t bytes,
    ngx_str_t *out);
void ngx_http_identity_sha256_hex(ngx_str_t *in, u_char *out);
ngx_int_t ngx_http_identity_pkce_challenge(ngx_pool_t *pool,
    ngx_str_t *verifier, ngx_str_t *challenge);
ngx_int_t ngx_http_identity_secure_equal(ngx_str_t *a, ngx_str_t *b);
ngx_int_t ngx_http_identity_csrf_token(ngx_pool_t *pool, ngx_str_t *secret,
    ngx_str_t *out);
ngx_int_t ngx_http_identity_token_key(ngx_str_t *secret, u_char *key);
ngx_int_t ngx_http_identity_encrypt(ngx_pool_t *pool, u_char *key,
    ngx_str_t *aad, ngx_str_t *plain, ngx_str_t *out);
ngx_int_t ngx_http_identity_decrypt(ngx_pool_t *pool, u_char *key,
    ngx_str_t *aad, ngx_str_t *in, ngx_str_t *plain);
ngx_int_t ngx_http_identity_read_secret(ngx_conf_t *cf, ngx_str_t *path,
    ngx_str_t *secret);
ngx_int_t ngx_http_identity_read_file(ngx_conf_t *cf, ngx_str_t *path,
    ngx_str_t *secret, size_t max);


#endif /* _NGX_HTTP_IDENTITY_CRYPTO_H_INCLUDED_ */
