
/*
 * Copyright (C) ngx_http_identity_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>

/*
 * SHA256_Init(), _Update() and _Final() of the low-level API: OpenSSL 3
 * deprecates them, yet keeps them, and they hash without the provider
 * lookups and the context an EVP digest costs (SHA256() itself now goes
 * through EVP).  Every authenticated request hashes its cookie with them.
 */
#ifndef OPENSSL_SUPPRESS_DEPRECATED
#define OPENSSL_SUPPRESS_DEPRECATED
#endif

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "ngx_http_identity_crypto.h"


static const EVP_MD *ngx_http_identity_sha256(void);
static ngx_int_t ngx_http_identity_base64url(ngx_pool_t *pool, u_char *data,
    size_t len, ngx_str_t *out);


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
    ngx_int_t  rc;

    if (bytes > sizeof(buf) || RAND_bytes(buf, (int) bytes) != 1) {
        return NGX_ERROR;
    }

    rc = ngx_http_identity_base64url(pool, buf, bytes, out);
    ngx_explicit_memzero(buf, sizeof(buf));

    return rc;
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
    u_char      md[SHA256_DIGEST_LENGTH];
    SHA256_CTX  c;

    if (SHA256_Init(&c) != 1
        || SHA256_Update(&c, in->data, in->len) != 1
        || SHA256_Final(md, &c) != 1)
    {
        /* cannot happen with a working libcrypto; never yield a weak key */
        ngx_memset(out, '0', NGX_HTTP_IDENTITY_SHA256_HEX_LEN);
        return;
    }

    ngx_hex_dump(out, md, SHA256_DIGEST_LENGTH);
}


/* RFC 7636 S256: BASE64URL(SHA256(ASCII(code_verifier))) */

ngx_int_t
ngx_http_identity_pkce_challenge(ngx_pool_t *pool, ngx_str_t *verifier,
    ngx_str_t *challenge)
{
    u_char        md[EVP_MAX_MD_SIZE];
    unsigned int  len;

    if (EVP_Digest(verifier->data, verifier->len, md, &len,
                   ngx_http_identity_sha256(), NULL)
        != 1)
    {
        return NGX_ERROR;
    }

    return ngx_http_identity_base64url(pool, md, len, challenge);
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


/*
 * The key that encrypts OAuth tokens at rest: HMAC-SHA256 of a fixed label
 * keyed with the operator's secret, so that any secret of 32 bytes or more
 * (a file of random base64, say) gives a uniform AES-256 key.
 */

ngx_int_t
ngx_http_identity_token_key(ngx_str_t *secret, u_char *key)
{
    unsigned int  len;

    len = NGX_HTTP_IDENTITY_TOKEN_KEY_LEN;

    if (HMAC(EVP_sha256(), secret->data, (int) secret->len,
             (u_char *) "ngx_http_identity token encryption", 34, key, &len)
        == NULL
        || len != NGX_HTTP_IDENTITY_TOKEN_KEY_LEN)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * AES-256-GCM with a random 96-bit nonce; "aad" binds the ciphertext to
 * its session, so a token copied into another session does not decrypt.
 * The result is base64url(nonce | ciphertext | tag).
 */

ngx_int_t
ngx_http_identity_encrypt(ngx_pool_t *pool, u_char *key, ngx_str_t *aad,
    ngx_str_t *plain, ngx_str_t *out)
{
    int              len, n;
    u_char          *buf;
    ngx_int_t        rc;
    ngx_str_t        raw;
    EVP_CIPHER_CTX  *c;

    if (plain->len == 0) {
        ngx_str_null(out);
        return NGX_OK;
    }

    if (plain->len > 16384) {
        return NGX_ERROR;
    }

    buf = ngx_pnalloc(pool, 12 + plain->len + 16);
    out->data = ngx_pnalloc(pool,
                            ngx_base64_encoded_length(12 + plain->len + 16));
    c = EVP_CIPHER_CTX_new();

    if (buf == NULL || out->data == NULL || c == NULL) {
        EVP_CIPHER_CTX_free(c);
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (RAND_bytes(buf, 12) != 1
        || EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, buf) != 1
        || EVP_EncryptUpdate(c, NULL, &n, aad->data, (int) aad->len) != 1
        || EVP_EncryptUpdate(c, buf + 12, &len, plain->data,
                             (int) plain->len)
           != 1
        || EVP_EncryptFinal_ex(c, buf + 12 + len, &n) != 1
        || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16,
                               buf + 12 + len + n)
           != 1)
    {
        goto done;
    }

    raw.data = buf;
    raw.len = 12 + len + n + 16;

    ngx_encode_base64url(out, &raw);
    rc = NGX_OK;

done:

    EVP_CIPHER_CTX_free(c);

    return rc;
}


/* NGX_DECLINED when the text was not made with this key for this aad */

ngx_int_t
ngx_http_identity_decrypt(ngx_pool_t *pool, u_char *key, ngx_str_t *aad,
    ngx_str_t *in, ngx_str_t *plain)
{
    int              len, n;
    ngx_int_t        rc;
    ngx_str_t        raw;
    EVP_CIPHER_CTX  *c;

    if (in->len == 0) {
        ngx_str_null(plain);
        return NGX_OK;
    }

    raw.data = ngx_pnalloc(pool, ngx_base64_decoded_length(in->len));
    if (raw.data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_decode_base64url(&raw, in) != NGX_OK || raw.len < 12 + 16) {
        return NGX_DECLINED;
    }

    plain->data = ngx_pnalloc(pool, raw.len - 12 - 16 + 1);
    c = EVP_CIPHER_CTX_new();

    if (plain->data == NULL || c == NULL) {
        EVP_CIPHER_CTX_free(c);
        return NGX_ERROR;
    }

    rc = NGX_DECLINED;

    if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, raw.data) != 1
        || EVP_DecryptUpdate(c, NULL, &n, aad->data, (int) aad->len) != 1
        || EVP_DecryptUpdate(c, plain->data, &len, raw.data + 12,
                             (int) (raw.len - 12 - 16))
           != 1
        || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16,
                               raw.data + raw.len - 16)
           != 1
        || EVP_DecryptFinal_ex(c, plain->data + len, &n) != 1)
    {
        goto done;
    }

    plain->len = len + n;
    plain->data[plain->len] = '\0';
    rc = NGX_OK;

done:

    EVP_CIPHER_CTX_free(c);

    return rc;
}


/*
 * The dashboard's CSRF token: HMAC-SHA256 keyed with the session's secret,
 * so that only a page that can read the API (same origin) knows it.
 */

ngx_int_t
ngx_http_identity_csrf_token(ngx_pool_t *pool, ngx_str_t *secret,
    ngx_str_t *out)
{
    u_char        mac[EVP_MAX_MD_SIZE];
    unsigned int  len;

    len = sizeof(mac);

    if (HMAC(EVP_sha256(), secret->data, (int) secret->len,
             (u_char *) "ngx_http_identity csrf", 22, mac, &len)
        == NULL)
    {
        return NGX_ERROR;
    }

    return ngx_http_identity_base64url(pool, mac, len, out);
}


/* "len" bytes at "data", base64url-encoded in the pool */

static ngx_int_t
ngx_http_identity_base64url(ngx_pool_t *pool, u_char *data, size_t len,
    ngx_str_t *out)
{
    ngx_str_t  raw;

    out->data = ngx_pnalloc(pool, ngx_base64_encoded_length(len));
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    raw.data = data;
    raw.len = len;

    ngx_encode_base64url(out, &raw);

    return NGX_OK;
}


/* a secret kept in a file; surrounding whitespace is ignored */

ngx_int_t
ngx_http_identity_read_secret(ngx_conf_t *cf, ngx_str_t *path,
    ngx_str_t *secret)
{
    return ngx_http_identity_read_file(cf, path, secret, 4096);
}


/* surrounding whitespace is dropped; the contents are NUL-terminated */

ngx_int_t
ngx_http_identity_read_file(ngx_conf_t *cf, ngx_str_t *path,
    ngx_str_t *secret, size_t max)
{
    u_char           *start, *end;
    ssize_t           n;
    ngx_str_t         name;
    ngx_file_t        file;
    ngx_file_info_t   fi;

    name = *path;

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = name;
    file.log = cf->log;

    file.fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &name);
        return NGX_ERROR;
    }

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > (off_t) max)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "file \"%V\" is unreadable or too large",
                           &name);
        ngx_close_file(file.fd);
        return NGX_ERROR;
    }

    start = ngx_pnalloc(cf->pool, ngx_file_size(&fi) + 1);
    if (start == NULL) {
        ngx_close_file(file.fd);
        return NGX_ERROR;
    }

    n = ngx_read_file(&file, start, ngx_file_size(&fi), 0);
    ngx_close_file(file.fd);

    if (n == NGX_ERROR) {
        return NGX_ERROR;
    }

    end = start + n;

    while (start < end && isspace(*start)) {
        start++;
    }

    while (end > start && isspace(end[-1])) {
        end--;
    }

    if (start == end) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "file \"%V\" is empty", &name);
        return NGX_ERROR;
    }

    *end = '\0';

    secret->data = start;
    secret->len = end - start;

    return NGX_OK;
}
