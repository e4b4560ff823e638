/*
 * tls.c — the TLS layer of cairn-server over OpenSSL memory BIOs (see
 * tls.h).
 *
 * Invariants:
 *   - Each connection is one SSL in server mode with two memory BIOs that
 *     the SSL owns: rbio holds received ciphertext not yet read by the SSL,
 *     wbio the ciphertext the SSL produced that the caller has not taken.
 *     Memory BIOs never block: an empty rbio makes the SSL report
 *     SSL_ERROR_WANT_READ (its EOF return is -1, "retry"), and wbio grows as
 *     needed, so SSL_ERROR_WANT_WRITE cannot happen and every SSL_write
 *     completes in one call.
 *   - Input is pushed into rbio in slices of FEED_SLICE bytes, and the SSL
 *     is drained after each slice, so a large feed never sits whole in
 *     rbio. Memory BIOs keep their largest size; once empty, a BIO grown
 *     past BIO_KEEP bytes is swapped for a fresh one.
 *   - Until the handshake completes, srv_tls_write() appends to `early`;
 *     the handshake's completion encrypts it first, then frees it.
 *   - rc != 0 is the sticky state (TLS error, close_notify received, out of
 *     memory); `failed` is set for errors after which OpenSSL forbids
 *     SSL_shutdown().
 *   - Every OpenSSL call that may fail is preceded by ERR_clear_error(), so
 *     SSL_get_error() and the messages see only that call's errors.
 *
 * Locking: none; see tls.h.
 */
#include "server/tls.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "cairn.h"

#define FEED_SLICE ((size_t)64 << 10)
#define READ_CHUNK 16384 /* one TLS record's worth of plaintext */
#define BIO_KEEP ((size_t)256 << 10)
#define ERR_LEN 320

struct srv_tls_ctx {
    SSL_CTX *ssl_ctx;
};

struct srv_tls_conn {
    SSL *ssl;
    BIO *rbio; /* owned by ssl */
    BIO *wbio; /* owned by ssl */
    uint8_t *early;
    size_t early_len, early_cap;
    int rc;         /* sticky result, 0 while usable */
    bool done;      /* handshake completed */
    bool failed;    /* fatal TLS error: no SSL_shutdown() */
    bool shut_sent; /* srv_tls_shutdown() was called */
    char err[ERR_LEN];
};

/* ------------------------------------------------------------- messages */

/* Append to buf (NUL-terminated, size len) as much of the text as fits. */
static void appendf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || len == 0)
        return;
    buf[len - 1] = '\0';
    size_t used = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
}

/* OpenSSL's reason text for error e ("No such file or directory", "wrong
 * version number"): the last field of ERR_error_string_n(), which also
 * covers system errors (ERR_reason_error_string() does not). */
static const char *reason_text(unsigned long e, char *buf, size_t len)
{
    ERR_error_string_n(e, buf, len); /* "error:HEX:lib:func:reason" */
    const char *p = buf;
    for (int i = 0; i < 4; i++) {
        const char *q = strchr(p, ':');
        if (!q)
            return buf;
        p = q + 1;
    }
    return *p ? p : buf;
}

/* Append ": " and the reasons on this thread's OpenSSL error queue (the
 * first few distinct ones, earliest first, each with its detail text),
 * emptying the queue. */
static void append_reasons(char *buf, size_t len)
{
    const char *data = NULL;
    int flags = 0;
    unsigned long e;
    int n = 0;
    char prev[256] = "";
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        char tmp[256];
        const char *r = reason_text(e, tmp, sizeof tmp);
        /* "system lib" only wraps the system error already reported */
        if (n >= 3 || strcmp(r, prev) == 0 ||
            (n > 0 && strcmp(r, "system lib") == 0))
            continue;
        snprintf(prev, sizeof prev, "%s", r);
        appendf(buf, len, "%s%s", n ? "; " : ": ", r);
        if ((flags & ERR_TXT_STRING) && data && *data)
            appendf(buf, len, " (%s)", data);
        n++;
    }
    if (n == 0)
        appendf(buf, len, ": unknown error");
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- context */

/* Keys with a passphrase are refused instead of prompting on a terminal;
 * u, when not NULL, is a bool set to say a passphrase was asked for. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    if (u)
        *(bool *)u = true;
    return 0;
}

static EVP_PKEY *load_key(const char *path, char *err, size_t errlen)
{
    ERR_clear_error();
    BIO *in = BIO_new_file(path, "r");
    if (!in) {
        set_err(err, errlen, "cannot open private key file '%s'", path);
        append_reasons(err, errlen);
        return NULL;
    }
    bool asked = false;
    EVP_PKEY *k = PEM_read_bio_PrivateKey(in, NULL, no_password, &asked);
    BIO_free(in);
    if (!k && asked) {
        ERR_clear_error();
        set_err(err, errlen,
                "the private key in '%s' is protected by a passphrase; an "
                "unencrypted key is needed",
                path);
    } else if (!k) {
        set_err(err, errlen,
                "cannot read a PEM private key (unencrypted) from '%s'",
                path);
        append_reasons(err, errlen);
    }
    return k;
}

srv_tls_ctx *srv_tls_ctx_new(const char *cert_file, const char *key_file,
                             const char *ca_file, bool verify_clients,
                             char *err, size_t errlen)
{
    set_err(err, errlen, "%s", "");
    if (!cert_file || !*cert_file || !key_file || !*key_file) {
        set_err(err, errlen, "TLS needs a certificate file and a key file");
        return NULL;
    }
    if (verify_clients && (!ca_file || !*ca_file)) {
        set_err(err, errlen,
                "verifying client certificates needs a CA certificate file");
        return NULL;
    }
    srv_tls_ctx *t = calloc(1, sizeof *t);
    if (!t) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    EVP_PKEY *key = NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        set_err(err, errlen, "cannot create the TLS context");
        append_reasons(err, errlen);
        goto fail;
    }
    t->ssl_ctx = ctx;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        set_err(err, errlen, "cannot require TLS 1.2 or later");
        append_reasons(err, errlen);
        goto fail;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(ctx, no_password);
    static const unsigned char sid_ctx[] = "cairn-server";
    if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1) !=
        1) {
        set_err(err, errlen, "cannot set the TLS session id context");
        append_reasons(err, errlen);
        goto fail;
    }

    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        set_err(err, errlen, "cannot load the certificate chain from '%s'",
                cert_file);
        append_reasons(err, errlen);
        goto fail;
    }
    key = load_key(key_file, err, errlen);
    if (!key)
        goto fail;
    ERR_clear_error();
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    if (!cert || X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        set_err(err, errlen,
                "the private key in '%s' does not match the certificate in "
                "'%s'",
                key_file, cert_file);
        goto fail;
    }
    ERR_clear_error();
    if (SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        set_err(err, errlen, "cannot use the private key from '%s'", key_file);
        append_reasons(err, errlen);
        goto fail;
    }
    EVP_PKEY_free(key);
    key = NULL;

    if (ca_file && *ca_file) {
        ERR_clear_error();
        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            set_err(err, errlen, "cannot load CA certificates from '%s'",
                    ca_file);
            append_reasons(err, errlen);
            goto fail;
        }
        if (verify_clients) {
            ERR_clear_error();
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
            if (!names) {
                set_err(err, errlen,
                        "cannot read CA names from '%s'", ca_file);
                append_reasons(err, errlen);
                goto fail;
            }
            SSL_CTX_set_client_CA_list(ctx, names); /* takes ownership */
            SSL_CTX_set_verify(ctx,
                               SSL_VERIFY_PEER |
                                   SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                               NULL);
        }
    }
    ERR_clear_error();
    return t;

fail:
    EVP_PKEY_free(key);
    srv_tls_ctx_free(t);
    ERR_clear_error();
    return NULL;
}

void srv_tls_ctx_free(srv_tls_ctx *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ssl_ctx); /* connections hold their own references */
    free(t);
}

/* ------------------------------------------------------------ connection */

static BIO *new_mem_bio(void)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b)
        BIO_set_mem_eof_return(b, -1); /* empty means "retry", never EOF */
    return b;
}

srv_tls_conn *srv_tls_conn_new(srv_tls_ctx *t)
{
    if (!t)
        return NULL;
    srv_tls_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    ERR_clear_error();
    c->ssl = SSL_new(t->ssl_ctx);
    c->rbio = new_mem_bio();
    c->wbio = new_mem_bio();
    if (!c->ssl || !c->rbio || !c->wbio) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        SSL_free(c->ssl);
        free(c);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio); /* the SSL owns both now */
    SSL_set_accept_state(c->ssl);
    return c;
}

void srv_tls_conn_free(srv_tls_conn *c)
{
    if (!c)
        return;
    SSL_free(c->ssl);
    free(c->early);
    free(c);
    ERR_clear_error();
}

/* Make the state sticky with a message. */
static int fail_msg(srv_tls_conn *c, int rc, const char *msg)
{
    c->rc = rc;
    if (rc != CAIRN_ECLOSED)
        c->failed = true;
    snprintf(c->err, sizeof c->err, "%s", msg);
    return rc;
}

/* Make the state sticky after an SSL call returned r (not success). */
static int fail_ssl(srv_tls_conn *c, int r, const char *what)
{
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        return fail_msg(c, CAIRN_ECLOSED,
                        "the peer closed the TLS session (close_notify)");
    }
    c->rc = CAIRN_EINVAL;
    c->failed = true;
    snprintf(c->err, sizeof c->err, "%s", what);
    if (e == SSL_ERROR_SSL || ERR_peek_error() != 0)
        append_reasons(c->err, sizeof c->err);
    else
        appendf(c->err, sizeof c->err, ": SSL error %d", e);
    long v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK)
        appendf(c->err, sizeof c->err, " (client certificate: %s)",
                X509_verify_cert_error_string(v));
    return c->rc;
}

/* Swap an empty memory BIO that grew past BIO_KEEP for a fresh one. */
static void shrink_bio(srv_tls_conn *c, bool read_side)
{
    BIO *b = read_side ? c->rbio : c->wbio;
    BUF_MEM *bm = NULL;
    if (BIO_ctrl_pending(b) != 0 || BIO_get_mem_ptr(b, &bm) != 1 || !bm ||
        bm->max <= BIO_KEEP)
        return;
    if (!read_side && !c->done)
        return; /* during the handshake a buffering BIO sits above wbio */
    BIO *nb = new_mem_bio();
    if (!nb)
        return; /* keep the big one; nothing is lost */
    if (read_side) {
        SSL_set0_rbio(c->ssl, nb); /* frees the old one */
        c->rbio = nb;
    } else {
        SSL_set0_wbio(c->ssl, nb);
        c->wbio = nb;
    }
}

static int push_input(srv_tls_conn *c, const uint8_t *p, size_t n)
{
    while (n > 0) {
        size_t w = 0;
        ERR_clear_error();
        if (BIO_write_ex(c->rbio, p, n, &w) != 1 || w == 0) {
            ERR_clear_error();
            return fail_msg(c, CAIRN_ENOMEM,
                            "out of memory buffering TLS input");
        }
        p += w;
        n -= w;
    }
    return 0;
}

static int ssl_write_all(srv_tls_conn *c, const uint8_t *p, size_t n)
{
    while (n > 0) {
        size_t w = 0;
        ERR_clear_error();
        int r = SSL_write_ex(c->ssl, p, n, &w);
        if (r != 1)
            return fail_ssl(c, r, "TLS write failed");
        p += w;
        n -= w;
    }
    return 0;
}

/* Hand every plaintext byte the SSL can give to on_plain. */
static int drain(srv_tls_conn *c,
                 int (*on_plain)(void *, const uint8_t *, size_t), void *arg)
{
    uint8_t buf[READ_CHUNK];
    for (;;) {
        size_t got = 0;
        ERR_clear_error();
        int r = SSL_read_ex(c->ssl, buf, sizeof buf, &got);
        if (r == 1) {
            if (on_plain) {
                int rc = on_plain(arg, buf, got);
                if (rc < 0)
                    return rc;
            }
            if (c->rc) /* on_plain's write failed */
                return c->rc;
            continue;
        }
        if (SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ) {
            ERR_clear_error();
            return 0;
        }
        return fail_ssl(c, r, "TLS read failed");
    }
}

int srv_tls_feed(srv_tls_conn *c, const uint8_t *cipher, size_t n,
                 int (*on_plain)(void *arg, const uint8_t *p, size_t n),
                 void *arg)
{
    if (!c || (!cipher && n > 0))
        return CAIRN_EINVAL;
    if (c->rc)
        return c->rc;
    do {
        size_t k = n < FEED_SLICE ? n : FEED_SLICE;
        if (k > 0 && push_input(c, cipher, k) < 0)
            return c->rc;
        cipher += k;
        n -= k;
        if (!c->done) {
            ERR_clear_error();
            int r = SSL_do_handshake(c->ssl);
            if (r != 1) {
                if (SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ) {
                    ERR_clear_error();
                    continue;
                }
                return fail_ssl(c, r, "TLS handshake failed");
            }
            c->done = true;
            if (c->early_len > 0) {
                int rc = ssl_write_all(c, c->early, c->early_len);
                free(c->early);
                c->early = NULL;
                c->early_len = c->early_cap = 0;
                if (rc < 0)
                    return rc;
            }
        }
        int rc = drain(c, on_plain, arg);
        if (rc < 0) {
            /* on_plain stopped us: keep the rest for the next call; the
             * caller counts all of its input as consumed. */
            if (!c->rc && n > 0 && push_input(c, cipher, n) < 0)
                return c->rc;
            return rc;
        }
    } while (n > 0);
    shrink_bio(c, true);
    return 0;
}

int srv_tls_write(srv_tls_conn *c, const uint8_t *plain, size_t n)
{
    if (!c || (!plain && n > 0))
        return CAIRN_EINVAL;
    if (c->rc)
        return c->rc;
    if (c->shut_sent) {
        snprintf(c->err, sizeof c->err, "write after the TLS shutdown");
        return CAIRN_ECLOSED;
    }
    if (n == 0)
        return 0;
    if (c->done)
        return ssl_write_all(c, plain, n);
    if (n > c->early_cap - c->early_len) {
        if (n > SIZE_MAX / 2 - c->early_len)
            return fail_msg(c, CAIRN_ENOMEM,
                            "out of memory buffering plaintext");
        size_t cap = c->early_cap ? c->early_cap : 4096;
        while (cap < c->early_len + n)
            cap *= 2;
        uint8_t *p = realloc(c->early, cap);
        if (!p)
            return fail_msg(c, CAIRN_ENOMEM,
                            "out of memory buffering plaintext");
        c->early = p;
        c->early_cap = cap;
    }
    memcpy(c->early + c->early_len, plain, n);
    c->early_len += n;
    return 0;
}

size_t srv_tls_pending(const srv_tls_conn *c)
{
    return c ? BIO_ctrl_pending(c->wbio) : 0;
}

int srv_tls_take(srv_tls_conn *c, uint8_t **data, size_t *len)
{
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    if (!c || !data || !len)
        return CAIRN_EINVAL;
    size_t n = BIO_ctrl_pending(c->wbio);
    if (n == 0)
        return 0;
    uint8_t *p = malloc(n);
    if (!p)
        return CAIRN_ENOMEM;
    size_t got = 0;
    ERR_clear_error();
    if (BIO_read_ex(c->wbio, p, n, &got) != 1 || got != n) {
        /* Cannot happen with a memory BIO holding n bytes; if it did, the
         * stream would be damaged, so the connection is done. */
        ERR_clear_error();
        free(p);
        fail_msg(c, CAIRN_EINVAL, "TLS output buffer read failed");
        return CAIRN_EINVAL;
    }
    shrink_bio(c, false);
    *data = p;
    *len = n;
    return 0;
}

bool srv_tls_handshake_done(const srv_tls_conn *c)
{
    return c && c->done;
}

const char *srv_tls_version(const srv_tls_conn *c)
{
    return c && c->done ? SSL_get_version(c->ssl) : "";
}

void srv_tls_shutdown(srv_tls_conn *c)
{
    if (!c || c->shut_sent)
        return;
    c->shut_sent = true;
    free(c->early);
    c->early = NULL;
    c->early_len = c->early_cap = 0;
    if (!c->done || c->failed)
        return;
    ERR_clear_error();
    (void)SSL_shutdown(c->ssl); /* 0: sent ours, peer's not seen yet */
    ERR_clear_error();
}

const char *srv_tls_error(const srv_tls_conn *c)
{
    return c ? c->err : "no TLS connection";
}
