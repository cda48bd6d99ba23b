
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ngx_http_identity_crypto.h"


static const EVP_MD *ngx_http_identity_sha256(void);


/* before any thread may hash */

ngx_int_t
ngx_http_identity_crypto_init(void)
{
    return ngx_http_identity_sha256() ? NGX_OK : NGX_ERROR;
}


/* a base64url-encoded secret of "bytes" random bytes from OpenSSL */

ngx_int_t
ngx_http_identity_random(ngx_pool_t *pool, size_t bytes, ngx_str_t *out)
{
    u_char     buf[64];
    ngx_str_t  raw;

    if (bytes > sizeof(buf) || RAND_bytes(buf, (int) bytes) != 1) {
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, ngx_base64_encoded_length(bytes));
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    raw.data = buf;
    raw.len = bytes;

    ngx_encode_base64url(out, &raw);
    ngx_explicit_memzero(buf, sizeof(buf));

    return NGX_OK;
}


ngx_int_t
ngx_http_identity_random_hex(ngx_pool_t *pool, size_t bytes, ngx_str_t *out)
{
    u_char  buf[32];

    if (bytes > sizeof(buf) || RAND_bytes(buf, (int) bytes) != 1) {
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, 2 * bytes);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->len = ngx_hex_dump(out->data, buf, bytes) - out->data;

    return NGX_OK;
}


/* out must hold NGX_HTTP_IDENTITY_SHA256_HEX_LEN bytes */

void
ngx_http_identity_sha256_hex(ngx_str_t *in, u_char *out)
{
    u_char        md[EVP_MAX_MD_SIZE];
    unsigned int  len;

    len = 0;

    if (EVP_Digest(in->data, in->len, md, &len, ngx_http_identity_sha256(),
                   NULL)
        != 1
        || len != 32)
    {
        /* cannot happen with a working libcrypto; never yield a weak key */
        ngx_memset(out, '0', NGX_HTTP_IDENTITY_SHA256_HEX_LEN);
        return;
    }

    ngx_hex_dump(out, md, len);
}


/* RFC 7636 S256: BASE64URL(SHA256(ASCII(code_verifier))) */

ngx_int_t
ngx_http_identity_pkce_challenge(ngx_pool_t *pool, ngx_str_t *verifier,
    ngx_str_t *challenge)
{
    u_char        md[EVP_MAX_MD_SIZE];
    ngx_str_t     raw;
    unsigned int  len;

    if (EVP_Digest(verifier->data, verifier->len, md, &len,
                   ngx_http_identity_sha256(), NULL)
        != 1)
    {
        return NGX_ERROR;
    }

    challenge->data = ngx_pnalloc(pool, ngx_base64_encoded_length(len));
    if (challenge->data == NULL) {
        return NGX_ERROR;
    }

    raw.data = md;
    raw.len = len;

    ngx_encode_base64url(challenge, &raw);

    return NGX_OK;
}


/* constant time in the length of the secret; lengths are not secret */

ngx_int_t
ngx_http_identity_secure_equal(ngx_str_t *a, ngx_str_t *b)
{
    if (a->len != b->len || a->len == 0) {
        return 0;
    }

    return CRYPTO_memcmp(a->data, b->data, a->len) == 0;
}


/*
 * Every request hashes its cookie: OpenSSL 3 would look the digest up on
 * each EVP_sha256() call, so it is fetched once per process.
 */

static const EVP_MD *
ngx_http_identity_sha256(void)
{
#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
    static EVP_MD  *md;

    if (md == NULL) {
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (md == NULL) {
            return EVP_sha256();
        }
    }

    return md;
#else
    return EVP_sha256();
#endif
}
