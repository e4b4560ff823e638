/*
 * test_tls.c — the TLS layer of cairn-server (src/server/tls.c), driven by
 * an in-memory OpenSSL client (its own SSL over memory BIOs) with bytes
 * pumped both ways by the test.
 *
 * Certificates are made at test time with the OpenSSL API in a temporary
 * directory: a CA (EC P-256), a server certificate for "localhost" (RSA
 * 2048) signed by it (alone and as a chain file), a client certificate
 * signed by it, a second "rogue" CA with a client certificate of its own, an
 * unrelated RSA key and EC key, an encrypted key, and a file that is not PEM.
 *
 *  - Handshake with TLS 1.3 and with a TLS 1.2-only client; the client
 *    verifies the server's chain and host name; a TLS 1.1-only client is
 *    refused; client certificates are not requested by default.
 *  - Request / reply round trips with the client's ciphertext delivered
 *    whole, byte by byte and in random pieces (each piece a fresh heap copy,
 *    so ASan sees any read past it); replies written from inside on_plain.
 *  - 10 MiB client -> server fed in 16 KiB pieces, and 10 MiB server ->
 *    client from one srv_tls_write(), taken as one buffer.
 *  - Writes before / during the handshake come out first, in order.
 *  - on_plain stopping the feed: its code is returned, the rest comes out on
 *    the next feed, nothing is lost (also across a 64 KiB input slice).
 *  - Not TLS (HTTP, RESP, random noise, mutated ClientHellos, a corrupted
 *    record after the handshake): an error with a message, never a crash;
 *    errors are sticky.
 *  - Context errors: missing / bad files, key not matching the certificate
 *    (same and different key types), encrypted key (refused, no prompt),
 *    client verification without a CA; messages name the file.
 *  - Client verification: a CA-signed client certificate passes; no
 *    certificate, or one from another CA, fails.
 *  - close_notify both ways; writes after shutdown fail; shutdown before
 *    the handshake queues nothing; the context may be freed before its
 *    connections.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp() in test_util.h */
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cairn.h"
#include "server/tls.h"
#include "test_util.h"

/* ------------------------------------------------------ certificate setup */

static struct {
    char *dir;
    char ca[512], ca_key[512];
    char srv[512], srv_key[512], chain[512];
    char cli[512], cli_key[512];
    char rogue_ca[512], rogue_cli[512], rogue_cli_key[512];
    char other_rsa_key[512], other_ec_key[512];
    char enc_key[512], not_pem[512], missing[512];
} F;

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    assert_non_null(e);
    assert_int_equal(X509_add_ext(x, e, -1), 1);
    X509_EXTENSION_free(e);
}

enum { CERT_CA, CERT_SERVER, CERT_CLIENT };

/* A certificate for key named cn, signed by (issuer, issuer_key), or
 * self-signed when issuer is NULL. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer,
                       EVP_PKEY *issuer_key, int kind)
{
    static long serial = 1;
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    X509_NAME *name = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                (const unsigned char *)cn,
                                                -1, -1, 0),
                     1);
    assert_int_equal(
        X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name),
        1);
    add_ext(x, issuer, NID_subject_key_identifier, "hash");
    if (issuer)
        add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
    switch (kind) {
    case CERT_CA:
        add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
        break;
    case CERT_SERVER:
        add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(x, issuer, NID_ext_key_usage, "serverAuth");
        add_ext(x, issuer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
        break;
    default:
        add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(x, issuer, NID_ext_key_usage, "clientAuth");
        break;
    }
    assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static void path_in_dir(char *out, const char *name)
{
    snprintf(out, 512, "%s/%s", F.dir, name);
}

static void write_cert(const char *path, X509 *a, X509 *b)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, a), 1);
    if (b)
        assert_int_equal(PEM_write_X509(f, b), 1);
    assert_int_equal(fclose(f), 0);
}

static void write_key(const char *path, EVP_PKEY *k, const char *pass)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    if (pass)
        assert_int_equal(PEM_write_PrivateKey(f, k, EVP_aes_256_cbc(),
                                              (const unsigned char *)pass,
                                              (int)strlen(pass), NULL, NULL),
                         1);
    else
        assert_int_equal(
            PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(f), 0);
}

static int setup_certs(void **state)
{
    (void)state;
    F.dir = tu_mkdtemp("tls");
    assert_non_null(F.dir);
    path_in_dir(F.ca, "ca.pem");
    path_in_dir(F.ca_key, "ca.key");
    path_in_dir(F.srv, "server.pem");
    path_in_dir(F.srv_key, "server.key");
    path_in_dir(F.chain, "chain.pem");
    path_in_dir(F.cli, "client.pem");
    path_in_dir(F.cli_key, "client.key");
    path_in_dir(F.rogue_ca, "rogue-ca.pem");
    path_in_dir(F.rogue_cli, "rogue-client.pem");
    path_in_dir(F.rogue_cli_key, "rogue-client.key");
    path_in_dir(F.other_rsa_key, "other-rsa.key");
    path_in_dir(F.other_ec_key, "other-ec.key");
    path_in_dir(F.enc_key, "encrypted.key");
    path_in_dir(F.not_pem, "not-pem.pem");
    path_in_dir(F.missing, "no-such-file.pem");

    EVP_PKEY *ca_k = EVP_EC_gen("P-256");
    EVP_PKEY *srv_k = EVP_RSA_gen(2048);
    EVP_PKEY *cli_k = EVP_EC_gen("P-256");
    EVP_PKEY *rca_k = EVP_EC_gen("P-256");
    EVP_PKEY *rcli_k = EVP_EC_gen("P-256");
    EVP_PKEY *orsa_k = EVP_RSA_gen(2048);
    EVP_PKEY *oec_k = EVP_EC_gen("P-256");
    assert_non_null(ca_k);
    assert_non_null(srv_k);
    assert_non_null(cli_k);
    assert_non_null(rca_k);
    assert_non_null(rcli_k);
    assert_non_null(orsa_k);
    assert_non_null(oec_k);

    X509 *ca = make_cert(ca_k, "Cairn Test CA", NULL, NULL, CERT_CA);
    X509 *srv = make_cert(srv_k, "localhost", ca, ca_k, CERT_SERVER);
    X509 *cli = make_cert(cli_k, "cairn-client", ca, ca_k, CERT_CLIENT);
    X509 *rca = make_cert(rca_k, "Rogue CA", NULL, NULL, CERT_CA);
    X509 *rcli = make_cert(rcli_k, "rogue-client", rca, rca_k, CERT_CLIENT);

    write_cert(F.ca, ca, NULL);
    write_key(F.ca_key, ca_k, NULL);
    write_cert(F.srv, srv, NULL);
    write_cert(F.chain, srv, ca);
    write_key(F.srv_key, srv_k, NULL);
    write_cert(F.cli, cli, NULL);
    write_key(F.cli_key, cli_k, NULL);
    write_cert(F.rogue_ca, rca, NULL);
    write_cert(F.rogue_cli, rcli, NULL);
    write_key(F.rogue_cli_key, rcli_k, NULL);
    write_key(F.other_rsa_key, orsa_k, NULL);
    write_key(F.other_ec_key, oec_k, NULL);
    write_key(F.enc_key, srv_k, "secret-passphrase");
    FILE *f = fopen(F.not_pem, "w");
    assert_non_null(f);
    fputs("this is not a certificate\n", f);
    assert_int_equal(fclose(f), 0);

    X509_free(ca);
    X509_free(srv);
    X509_free(cli);
    X509_free(rca);
    X509_free(rcli);
    EVP_PKEY_free(ca_k);
    EVP_PKEY_free(srv_k);
    EVP_PKEY_free(cli_k);
    EVP_PKEY_free(rca_k);
    EVP_PKEY_free(rcli_k);
    EVP_PKEY_free(orsa_k);
    EVP_PKEY_free(oec_k);
    return 0;
}

static int teardown_certs(void **state)
{
    (void)state;
    if (F.dir) {
        tu_rmrf(F.dir);
        free(F.dir);
        F.dir = NULL;
    }
    return 0;
}

/* ----------------------------------------------------------- byte buffer */



static bool tb_eq(const tbuf *t, const char *s)
{
    return t->len == strlen(s) && memcmp(t->p, s, t->len) == 0;
}

/* ------------------------------------------------------------ the client */

static int cert_requests; /* times a server asked a cert-less client */

static int count_cert_request(SSL *ssl, X509 **x, EVP_PKEY **k)
{
    (void)ssl;
    (void)x;
    (void)k;
    cert_requests++;
    return 0; /* no certificate */
}

/* A client context trusting ca; with cert/key when given. max_ver 0 = any. */
static SSL_CTX *client_ctx(const char *ca, const char *cert, const char *key,
                           int min_ver, int max_ver)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
    if (cert) {
        assert_int_equal(
            SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM),
                         1);
    } else {
        SSL_CTX_set_client_cert_cb(ctx, count_cert_request);
    }
    if (min_ver) {
        SSL_CTX_set_security_level(ctx, 0);
        assert_int_equal(SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0"),
                         1);
        assert_int_equal(SSL_CTX_set_min_proto_version(ctx, min_ver), 1);
    }
    if (max_ver)
        assert_int_equal(SSL_CTX_set_max_proto_version(ctx, max_ver), 1);
    return ctx;
}

enum { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM, SPLIT_16K };

typedef struct pair {
    srv_tls_conn *s;
    SSL *cl;
    BIO *crb, *cwb; /* client's read / write BIOs (owned by cl) */
    int split;
    uint64_t rng;
    tbuf srv_plain; /* what the server handed to on_plain */
    tbuf cli_plain; /* what the client read */
    int srv_rc;     /* first negative srv_tls_feed() result */
    int stop_code;  /* on_plain returns this once (then 0) when set */
    bool echo;      /* on_plain writes what it gets back */
    bool cli_closed;
    bool cli_failed;
    size_t feeds;
} pair;

static int on_plain(void *arg, const uint8_t *p, size_t n)
{
    pair *pp = arg;
    assert_true(n > 0);
    tb_put(&pp->srv_plain, p, n);
    if (pp->echo)
        assert_int_equal(srv_tls_write(pp->s, p, n), 0);
    if (pp->stop_code) {
        int rc = pp->stop_code;
        pp->stop_code = 0;
        return rc;
    }
    return 0;
}

static void pair_init(pair *pp, srv_tls_ctx *sctx, SSL_CTX *cctx, int split,
                      uint64_t seed)
{
    memset(pp, 0, sizeof *pp);
    pp->s = srv_tls_conn_new(sctx);
    assert_non_null(pp->s);
    assert_false(srv_tls_handshake_done(pp->s));
    assert_string_equal(srv_tls_version(pp->s), "");
    assert_int_equal(srv_tls_pending(pp->s), 0);
    pp->cl = SSL_new(cctx);
    assert_non_null(pp->cl);
    pp->crb = BIO_new(BIO_s_mem());
    pp->cwb = BIO_new(BIO_s_mem());
    assert_non_null(pp->crb);
    assert_non_null(pp->cwb);
    BIO_set_mem_eof_return(pp->crb, -1);
    SSL_set_bio(pp->cl, pp->crb, pp->cwb);
    SSL_set_connect_state(pp->cl);
    assert_int_equal(SSL_set_tlsext_host_name(pp->cl, "localhost"), 1);
    assert_int_equal(SSL_set1_host(pp->cl, "localhost"), 1);
    pp->split = split;
    pp->rng = seed;
}

static void pair_free(pair *pp)
{
    srv_tls_conn_free(pp->s);
    SSL_free(pp->cl);
    tb_free(&pp->srv_plain);
    tb_free(&pp->cli_plain);
}

/* Feed n bytes to the server in pieces by the split mode, each piece a
 * fresh heap copy. Stops at the first negative result. */
static int feed_split(pair *pp, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        size_t k;
        switch (pp->split) {
        case SPLIT_BYTES: k = 1; break;
        case SPLIT_RANDOM: k = 1 + tu_rand(&pp->rng, 3000); break;
        case SPLIT_16K: k = 16384; break;
        default: k = n; break;
        }
        if (k > n - off)
            k = n - off;
        uint8_t *copy = malloc(k);
        assert_non_null(copy);
        memcpy(copy, p + off, k);
        int rc = srv_tls_feed(pp->s, copy, k, on_plain, pp);
        free(copy);
        pp->feeds++;
        off += k;
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Drive the client: its handshake, then read everything it can. */
static void client_step(pair *pp)
{
    if (pp->cli_failed || pp->cli_closed)
        return;
    if (!SSL_is_init_finished(pp->cl)) {
        ERR_clear_error();
        int r = SSL_do_handshake(pp->cl);
        if (r != 1) {
            int e = SSL_get_error(pp->cl, r);
            if (e != SSL_ERROR_WANT_READ)
                pp->cli_failed = true;
            ERR_clear_error();
            return;
        }
    }
    uint8_t buf[16384];
    for (;;) {
        size_t got = 0;
        ERR_clear_error();
        int r = SSL_read_ex(pp->cl, buf, sizeof buf, &got);
        if (r == 1) {
            tb_put(&pp->cli_plain, buf, got);
            continue;
        }
        int e = SSL_get_error(pp->cl, r);
        if (e == SSL_ERROR_ZERO_RETURN)
            pp->cli_closed = true;
        else if (e != SSL_ERROR_WANT_READ)
            pp->cli_failed = true;
        ERR_clear_error();
        return;
    }
}

/* Move the server's waiting ciphertext to the client. */
static size_t srv_to_cli(pair *pp)
{
    uint8_t *d = (uint8_t *)"x";
    size_t n = 99;
    assert_int_equal(srv_tls_take(pp->s, &d, &n), 0);
    if (n == 0) {
        assert_null(d);
        return 0;
    }
    assert_non_null(d);
    assert_int_equal(srv_tls_pending(pp->s), 0);
    size_t w = 0;
    assert_int_equal(BIO_write_ex(pp->crb, d, n, &w), 1);
    assert_int_equal(w, n);
    free(d);
    return n;
}

/* Move the client's ciphertext to the server. */
static size_t cli_to_srv(pair *pp)
{
    size_t n = BIO_ctrl_pending(pp->cwb);
    if (n == 0)
        return 0;
    uint8_t *d = malloc(n);
    assert_non_null(d);
    size_t got = 0;
    assert_int_equal(BIO_read_ex(pp->cwb, d, n, &got), 1);
    assert_int_equal(got, n);
    int rc = feed_split(pp, d, n);
    free(d);
    if (rc < 0 && pp->srv_rc == 0)
        pp->srv_rc = rc;
    return n;
}

/* Pump both ways until nothing moves or the server fails. */
static void pump(pair *pp)
{
    for (int i = 0; i < 10000; i++) {
        client_step(pp);
        size_t moved = cli_to_srv(pp);
        moved += srv_to_cli(pp); /* after a failure: an alert, maybe */
        client_step(pp);
        if (pp->srv_rc || moved == 0)
            return;
    }
    fail_msg("pump did not settle");
}

/* TLS_TEST_VERBOSE=1 prints the error messages the tests provoke. */
static void show(const char *what, const srv_tls_conn *s)
{
    if (getenv("TLS_TEST_VERBOSE"))
        fprintf(stderr, "  %s: %s\n", what, srv_tls_error(s));
}

static void handshake_ok(pair *pp)
{
    pump(pp);
    assert_int_equal(pp->srv_rc, 0);
    assert_false(pp->cli_failed);
    assert_true(SSL_is_init_finished(pp->cl));
    assert_true(srv_tls_handshake_done(pp->s));
    assert_string_equal(srv_tls_error(pp->s), "");
    assert_int_equal(SSL_get_verify_result(pp->cl), X509_V_OK);
}

static void cli_write(pair *pp, const void *p, size_t n)
{
    size_t w = 0;
    assert_int_equal(SSL_write_ex(pp->cl, p, n, &w), 1);
    assert_int_equal(w, n);
}

static srv_tls_ctx *server_ctx(const char *ca, bool verify)
{
    char err[256];
    srv_tls_ctx *c = srv_tls_ctx_new(F.chain, F.srv_key, ca, verify, err,
                                     sizeof err);
    if (!c)
        fail_msg("srv_tls_ctx_new: %s", err);
    return c;
}

/* ----------------------------------------------------------------- tests */

static void test_handshake_tls13(void **state)
{
    (void)state;
    srv_tls_ctx *sctx = server_ctx(NULL, false);
    SSL_CTX *cctx = client_ctx(F.ca, NULL, NULL, 0, 0);
    pair pp;
    pair_init(&pp, sctx, cctx, SPLIT_WHOLE, 1);
    cert_requests = 0;
    /* Nothing is sent before the ClientHello. */
    assert_int_equal(srv_tls_feed(pp.s, NULL, 0, on_plain, &pp), 0);
    assert_int_equal(srv_tls_pending(pp.s), 0);
    handshake_ok(&pp);
    assert_string_equal(srv_tls_version(pp.s), "TLSv1.3");
    assert_string_equal(SSL_get_version(pp.cl), "TLSv1.3");
    assert_int_equal(cert_requests, 0); /* not requested by default */
    assert_int_equal(pp.srv_plain.len, 0);
    pair_free(&pp);
    SSL_CTX_free(cctx);
    srv_tls_ctx_free(sctx);
}

static void test_handshake_tls12(void **state)
{
    (void)state;
    srv_tls_ctx *sctx = server_ctx(NULL, false);
    SSL_CTX *cctx = client_ctx(F.ca, NULL, NULL, 0, TLS1_2_VERSION);
    for (int split = SPLIT_WHOLE; split <= SPLIT_RANDOM; split++) {
        pair pp;
        pair_init(&pp, sctx, cctx, split, 7);
        cert_requests = 0;
        handshake_ok(&pp);
        assert_string_equal(srv_tls_version(pp.s), "TLSv1.2");
        assert_int_equal(cert_requests, 0);
        cli_write(&pp, "PING\r\n", 6);
        pump(&pp);
        assert_true(tb_eq(&pp.srv_plain, "PING\r\n"));
        assert_int_equal(srv_tls_write(pp.s, (const uint8_t *)"+PONG\r\n", 7),
                         0);
        pump(&pp);
        assert_true(tb_eq(&pp.cli_plain, "+PONG\r\n"));
        pair_free(&pp);
    }
    SSL_CTX_free(cctx);
    srv_tls_ctx_free(sctx);
}

static void test_old_protocol_refused(void **state)
{
    (void)state;
    srv_tls_ctx *sctx = server_ctx(NULL, false);
    SSL_CTX *cctx = client_ctx(F.ca, NULL, NULL, TLS1_1_VERSION, TLS1_1_VERSION);
    pair pp;
    pair_init(&pp, sctx, cctx, SPLIT_WHOLE, 1);
    pump(&pp);
    assert_int_equal(pp.srv_rc, CAIRN_EINVAL);
    assert_false(srv_tls_handshake_done(pp.s));
    assert_non_null(strstr(srv_tls_error(pp.s), "handshake"));
    assert_non_null(strstr(srv_tls_error(pp.s), "protocol"));
    show("TLS 1.1 client", pp.s);
    assert_true(pp.cli_failed); /* the alert reached the client */
    pair_free(&pp);
    SSL_CTX_free(cctx);
    srv_tls_ctx_free(sctx);
}

/* Request / reply rounds; the ciphertext split per mode. */
static void round_trips(int split, uint64_t seed, int max_ver)
{
    srv_tls_ctx *sctx = server_ctx(NULL, false);
    SSL_CTX *cctx = client_ctx(F.ca, NULL, NULL, 0, max_ver);
    pair pp;
    pair_init(&pp, sctx, cctx, split, seed);
    handshake_ok(&pp);
    if (split == SPLIT_BYTES)
        assert_true(pp.feeds > 100); /* really was split */
    for (int i = 0; i < 40; i++) {
        char req[64], rep[64];
        int rn = snprintf(req, sizeof req, "*2\r\n$4\r\nECHO\r\n$%d\r\n%d\r\n",
                          i < 10 ? 1 : 2, i);
        int pn = snprintf(rep, sizeof rep, "$%d\r\n%d\r\n", i < 10 ? 1 : 2, i);
        pp.srv_plain.len = 0;
        pp.cli_plain.len = 0;
        if (i == 20 && max_ver == 0) /* TLS 1.3: new keys both ways */
            assert_int_equal(
                SSL_key_update(pp.cl, SSL_KEY_UPDATE_REQUESTED), 1);
        cli_write(&pp, req, (size_t)rn);
        if (i % 5 == 4)
            cli_write(&pp, req, (size_t)rn); /* two records in one flight */
        pump(&pp);
        assert_int_equal(pp.srv_rc, 0);
        size_t want = (size_t)rn * (i % 5 == 4 ? 2 : 1);
        assert_int_equal(pp.srv_plain.len, want);
        assert_memory_equal(pp.srv_plain.p, req, (size_t)rn);
        assert_int_equal(srv_tls_write(pp.s, (const uint8_t *)rep, (size_t)pn),
                         0);
        assert_true(srv_tls_pending(pp.s) > (size_t)pn);
        pump(&pp);
        assert_int_equal(pp.cli_plain.len, (size_t)pn);
        assert_memory_equal(pp.cli_plain.p, rep, (size_t)pn);
    }
    pair_free(&pp);
    SSL_CTX_free(cctx);
    srv_tls_ctx_free(sctx);
}

static void test_round_trips_whole(void **state)
{
    (void)state;
    round_trips(SPLIT_WHOLE, 1, 0);
}

static void test_round_trips_bytes(void **state)
{
    (void)state;
    round_trips(SPLIT_BYTES, 1, 0);
    round_trips(SPLIT_BYTES, 1, TLS1_2_VERSION);
}

static void test_round_trips_random(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 6; seed++)
        round_trips(SPLIT_RANDOM, seed, seed % 2 ? 0 : TLS1_2_VERSION);
}

/* Replies written from inside on_plain (an echo server). */
static void test_echo_from_callback(void **state)
{
    (void)state;
    srv_tls_ctx *sctx = server_ctx(NULL, false);
    SSL_CTX *cctx = client_ctx(F.ca, NULL, NULL, 0, 0);
    pair pp;
    pair_init(&pp, sctx, cctx, SPLIT_RANDOM, 3);
    handshake_ok(&pp);
    pp.echo = true;
    uint8_t msg[100000];
    tu_fill(msg, sizeof msg, 5);
    cli_write(&pp, msg, sizeof msg);
    pump(&pp);
    assert_int_equal(pp.srv_rc, 0);
    assert_int_equal(pp.cli_plain.len, sizeof msg);
    assert_memory_equal(pp.cli_plain.p, msg, sizeof msg);
    pair_free(&pp);
    SSL_CTX_free(cctx);
    srv_tls_ctx_free(sctx);
}

#define BIG ((size_t)10 << 20)

static void test_large_both_ways(void **state)
{
    (void)state;
    srv_tls_ctx *sctx = server_ctx(NULL, false);
    SSL_CTX *cctx = client_ctx(F.ca, NULL, NULL, 0, 0);
    pair pp;
    pair_init(&pp, sctx, cctx, SPLIT_16K, 1);
    handshake_ok(&pp);
    uint8_t *big = malloc(BIG);
    assert_non_null(big);

    /* client -> server, fed in 16 KiB pieces */
    tu_fill(big, BIG, 11);
    cli_write(&pp, big, BIG);
    size_t feeds0 = pp.feeds;
    pump(&pp);
    assert_int_equal(pp.srv_rc, 0);
    assert_true(pp.feeds - feeds0 > BIG / 16384);
    assert_int_equal(pp.srv_plain.len, BIG);
    assert_true(tu_check(pp.srv_plain.p, BIG, 11));

    /* server -> client: one write, one buffer, read in 16 KiB pieces */
    tu_fill(big, BIG, 12);
    assert_int_equal(srv_tls_write(pp.s, big, BIG), 0);
    size_t pend = srv_tls_pending(pp.s);
    assert_true(pend > BIG);
    uint8_t *d = NULL;
    size_t n = 0;
    assert_int_equal(srv_tls_take(pp.s, &d, &n), 0);
    assert_int_equal(n, pend);
    assert_int_equal(srv_tls_pending(pp.s), 0);
    for (size_t off = 0; off < n; off += 16384) {
        size_t k = n - off < 16384 ? n - off : 16384;
        size_t w = 0;
        assert_int_equal(BIO_write_ex(pp.crb, d + off, k, &w), 1);
        client_step(&pp);
    }
    free(d);
    assert_false(pp.cli_failed);
    assert_int_equal(pp.cli_plain.len, BIG);
    assert_true(tu_check(pp.cli_plain.p, BIG, 12));
    assert_int_equal(srv_tls_take(pp.s, &d, &n), 0); /* nothing left */
    assert_null(d);
    assert_int_equal(n, 0);

    /* still usable afterwards (the grown buffers were replaced) */
    pp.srv_plain.len = pp.cli_plain.len = 0;
    cli_write(&pp, "PING\r\n", 6);
    pump(&pp);
    assert_true(tb_eq(&pp.srv_plain, "PING\r\n"));
    assert_int_equal(srv_tls_write(pp.s, (const uint8_t *)"+PONG\r\n", 7), 0);
    pump(&pp);
    assert_true(tb_eq(&pp.cli_plain, "+PONG\r\n"));

    free(big);
    pair_free(&pp);
    SSL_CTX_free(cctx);
    srv_tls_ctx_free(sctx);
}

/* Writes before and during the handshake come out first, in order. */
static void early_writes(int max_ver, int split)
{
    srv_tls_ctx *sctx = server_ctx(NULL, false);
    SSL_CTX *cctx = client_ctx(F.ca, NULL, NULL, 0, max_ver);
    pair pp;
    pair_init(&pp, sctx, cctx, split, 9);
    assert_int_equal(srv_tls_write(pp.s, (const uint8_t *)"one ", 4), 0);
    assert_int_equal(srv_tls_write(pp.s, NULL, 0), 0);
    assert_int_equal(srv_tls_pending(pp.s), 0); /* nothing encrypted yet */
    /* ClientHello in, server's first flight out: not done yet */
    client_step(&pp);
    cli_to_srv(&pp);
    assert_int_equal(pp.srv_rc, 0);
    assert_false(srv_tls_handshake_done(pp.s));
    assert_int_equal(srv_tls_write(pp.s, (const uint8_t *)"two ", 4), 0);
    srv_to_cli(&pp);
    handshake_ok(&pp);
    assert_int_equal(srv_tls_write(pp.s, (const uint8_t *)"three", 5), 0);
    pump(&pp);
    assert_true(tb_eq(&pp.cli_plain, "one two three"));
    pair_free(&pp);
    SSL_CTX_free(cctx);
    srv_tls_ctx_free(sctx);
}

static void test_early_writes(void **state)
{
    (void)state;
    early_writes(0, SPLIT_WHOLE);
    early_writes(TLS1_2_VERSION, SPLIT_WHOLE);
    early_writes(0, SPLIT_BYTES);
    early_writes(TLS1_2_VERSION, SPLIT_BYTES);
}

/* on_plain returning < 0 stops the feed; nothing is lost. */
static void test_on_plain_stop(void **state)
{
    (void)state;
    srv_tls_ctx *sctx = server_ctx(NULL, false);
    SSL_CTX *cctx = client_ctx(F.ca, NULL, NULL, 0, 0);
    pair pp;
    pair_init(&pp, sctx, cctx, SPLIT_WHOLE, 1);
    handshake_ok(&pp);
    cli_write(&pp, "a", 1);
    cli_write(&pp, "b", 1);
    cli_write(&pp, "c", 1);
    pp.stop_code = -42;
    pump(&pp);
    assert_int_equal(pp.srv_rc, -42);
    assert_true(tb_eq(&pp.srv_plain, "a"));
    assert_string_equal(srv_tls_error(pp.s), ""); /* not a TLS error */
    assert_int_equal(srv_tls_feed(pp.s, NULL, 0, on_plain, &pp), 0);
    assert_true(tb_eq(&pp.srv_plain, "abc"));
    /* still usable */
    assert_int_equal(srv_tls_write(pp.s, (const uint8_t *)"ok", 2), 0);
    pp.srv_rc = 0;
    pump(&pp);
    assert_true(tb_eq(&pp.cli_plain, "ok"));

    /* a stop in the first 64 KiB slice of a 1 MiB feed */
    size_t big = (size_t)1 << 20;
    uint8_t *m = malloc(big);
    assert_non_null(m);
    tu_fill(m, big, 3);
    cli_write(&pp, m, big);
    pp.srv_plain.len = 0;
    pp.stop_code = -7;
    pp.srv_rc = 0;
    cli_to_srv(&pp);
    assert_int_equal(pp.srv_rc, -7);
    assert_true(pp.srv_plain.len < big);
    assert_int_equal(srv_tls_feed(pp.s, NULL, 0, on_plain, &pp), 0);
    assert_int_equal(pp.srv_plain.len, big);
    assert_true(tu_check(pp.srv_plain.p, big, 3));
    free(m);
    pair_free(&pp);
    SSL_CTX_free(cctx);
    srv_tls_ctx_free(sctx);
}

/* A TLS 1.2 client asking to renegotiate is refused; the session goes on
 * or ends with an error, never a crash. */
static void test_renegotiation_refused(void **state)
{
    (void)state;
    srv_tls_ctx *sctx = server_ctx(NULL, false);
    SSL_CTX *cctx = client_ctx(F.ca, NULL, NULL, 0, TLS1_2_VERSION);
    pair pp;
    pair_init(&pp, sctx, cctx, SPLIT_BYTES, 1);
    handshake_ok(&pp);
    assert_int_equal(SSL_renegotiate(pp.cl), 1);
    ERR_clear_error();
    (void)SSL_do_handshake(pp.cl);
    ERR_clear_error();
    pump(&pp);
    if (getenv("TLS_TEST_VERBOSE"))
        fprintf(stderr, "  renegotiation: server rc %d (%s), client %s\n",
                pp.srv_rc, srv_tls_error(pp.s),
                pp.cli_failed ? "failed" : "fine");
    assert_true(pp.srv_rc == 0 || pp.srv_rc == CAIRN_EINVAL);
    assert_int_equal(SSL_renegotiate_pending(pp.cl), 1); /* never done */
    pair_free(&pp);
    SSL_CTX_free(cctx);
    srv_tls_ctx_free(sctx);
}

static void expect_garbage_error(srv_tls_ctx *sctx, const uint8_t *g, size_t n,
                                 bool bytewise)
{
    srv_tls_conn *s = srv_tls_conn_new(sctx);
    assert_non_null(s);
    int rc = 0;
    if (bytewise) {
        for (size_t i = 0; i < n && rc == 0; i++) {
            uint8_t *b = malloc(1);
            assert_non_null(b);
            *b = g[i];
            rc = srv_tls_feed(s, b, 1, on_plain, NULL);
            free(b);
        }
    } else {
        rc = srv_tls_feed(s, g, n, on_plain, NULL);
    }
    assert_int_equal(rc, CAIRN_EINVAL);
    assert_non_null(strstr(srv_tls_error(s), "TLS handshake failed: "));
    show(bytewise ? "garbage, byte by byte" : "garbage", s);
    assert_false(srv_tls_handshake_done(s));
    /* sticky */
    assert_int_equal(srv_tls_feed(s, g, n, on_plain, NULL), CAIRN_EINVAL);
    assert_int_equal(srv_tls_write(s, (const uint8_t *)"x", 1), CAIRN_EINVAL);
    srv_tls_shutdown(s);
    uint8_t *d = NULL;
    size_t len = 0;
    assert_int_equal(srv_tls_take(s, &d, &len), 0);
    free(d);
    srv_tls_conn_free(s);
}

static void test_garbage(void **state)
{
    (void)state;
    srv_tls_ctx *sctx = server_ctx(NULL, false);
    static const char http[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    static const char resp[] = "*1\r\n$4\r\nPING\r\n";
    static const char inl[] = "PING\r\n";
    for (int bw = 0; bw < 2; bw++) {
        expect_garbage_error(sctx, (const uint8_t *)http, sizeof http - 1, bw);
        expect_garbage_error(sctx, (const uint8_t *)resp, sizeof resp - 1, bw);
        expect_garbage_error(sctx, (const uint8_t *)inl, sizeof inl - 1, bw);
    }
    /* the message carries OpenSSL's reason */
    srv_tls_conn *s = srv_tls_conn_new(sctx);
    assert_non_null(s);
    assert_int_equal(srv_tls_feed(s, (const uint8_t *)http, sizeof http - 1,
                                  NULL, NULL),
                     CAIRN_EINVAL);
    assert_true(strlen(srv_tls_error(s)) > strlen("TLS handshake failed: "));
    srv_tls_conn_free(s);

    /* random noise, and records that look like a handshake */
    uint64_t rng = 77;
    for (int i = 0; i < 3000; i++) {
        size_t n = (size_t)tu_rand(&rng, 700);
        uint8_t *g = malloc(n + 5);
        assert_non_null(g);
        tu_fill(g, n + 5, (uint64_t)i);
        if (i % 2) {
            g[0] = 0x16;
            g[1] = 3;
            g[2] = (uint8_t)tu_rand(&rng, 5);
            g[3] = (uint8_t)(n >> 8);
            g[4] = (uint8_t)n;
            if (i % 4 == 1 && n > 0)
                g[5] = 1; /* ClientHello */
        }
        s = srv_tls_conn_new(sctx);
        assert_non_null(s);
        int rc = 0;
        if (i % 10 == 0) {
            for (size_t k = 0; k < n + 5 && rc == 0; k++)
                rc = srv_tls_feed(s, g + k, 1, NULL, NULL);
        } else {
            rc = srv_tls_feed(s, g, n + 5, NULL, NULL);
        }
        assert_true(rc == 0 || rc == CAIRN_EINVAL);
        if (rc < 0)
            assert_true(strlen(srv_tls_error(s)) > 0);
        assert_false(srv_tls_handshake_done(s));
        uint8_t *d = NULL;
        size_t len = 0;
        assert_int_equal(srv_tls_take(s, &d, &len), 0);
        free(d);
        srv_tls_conn_free(s);
        free(g);
    }
    srv_tls_ctx_free(sctx);
}

/* A real ClientHello with bytes flipped: error or waiting, never a crash. */
static void test_mutated_client_hello(void **state)
{
    (void)state;
    srv_tls_ctx *sctx = server_ctx(NULL, false);
    SSL_CTX *cctx = client_ctx(F.ca, NULL, NULL, 0, 0);
    pair pp;
    pair_init(&pp, sctx, cctx, SPLIT_WHOLE, 1);
    client_step(&pp);
    size_t n = BIO_ctrl_pending(pp.cwb);
    assert_true(n > 100);
    uint8_t *hello = malloc(n);
    assert_non_null(hello);
    size_t got = 0;
    assert_int_equal(BIO_read_ex(pp.cwb, hello, n, &got), 1);
    assert_int_equal(got, n);
    /* unmutated, it is answered */
    srv_tls_conn *s = srv_tls_conn_new(sctx);
    assert_non_null(s);
    assert_int_equal(srv_tls_feed(s, hello, n, NULL, NULL), 0);
    assert_true(srv_tls_pending(s) > 0);
    srv_tls_conn_free(s);
    uint64_t rng = 5;
    int errors = 0;
    uint8_t *m = malloc(n);
    assert_non_null(m);
    for (int i = 0; i < 2000; i++) {
        memcpy(m, hello, n);
        int flips = 1 + (int)tu_rand(&rng, 4);
        for (int f = 0; f < flips; f++)
            m[tu_rand(&rng, n)] ^= (uint8_t)(1 + tu_rand(&rng, 255));
        size_t len = i % 3 == 0 ? (size_t)tu_rand(&rng, n + 1) : n;
        s = srv_tls_conn_new(sctx);
        assert_non_null(s);
        int rc = srv_tls_feed(s, m, len, NULL, NULL);
        assert_true(rc == 0 || rc == CAIRN_EINVAL);
        if (rc < 0) {
            errors++;
            assert_true(strlen(srv_tls_error(s)) > 0);
        }
        srv_tls_conn_free(s);
    }
    assert_true(errors > 100);
    free(m);
    free(hello);
    pair_free(&pp);
    SSL_CTX_free(cctx);
    srv_tls_ctx_free(sctx);
}

/* A record damaged in transit after the handshake. */
static void test_corrupt_record(void **state)
{
    (void)state;
    srv_tls_ctx *sctx = server_ctx(NULL, false);
    SSL_CTX *cctx = client_ctx(F.ca, NULL, NULL, 0, 0);
    pair pp;
    pair_init(&pp, sctx, cctx, SPLIT_WHOLE, 1);
    handshake_ok(&pp);
    cli_write(&pp, "hello world", 11);
    size_t n = BIO_ctrl_pending(pp.cwb);
    uint8_t *d = malloc(n);
    assert_non_null(d);
    size_t got = 0;
    assert_int_equal(BIO_read_ex(pp.cwb, d, n, &got), 1);
    d[n - 3] ^= 0x40;
    assert_int_equal(srv_tls_feed(pp.s, d, n, on_plain, &pp), CAIRN_EINVAL);
    assert_int_equal(pp.srv_plain.len, 0);
    assert_non_null(strstr(srv_tls_error(pp.s), "TLS read failed: "));
    show("corrupt record", pp.s);
    assert_true(srv_tls_handshake_done(pp.s));
    assert_int_equal(srv_tls_write(pp.s, (const uint8_t *)"x", 1),
                     CAIRN_EINVAL);
    srv_tls_shutdown(pp.s); /* nothing queued after a fatal error but alert */
    free(d);
    pair_free(&pp);
    SSL_CTX_free(cctx);
    srv_tls_ctx_free(sctx);
}

static void expect_ctx_error(const char *cert, const char *key, const char *ca,
                             bool verify, const char *want1,
                             const char *want2)
{
    char err[512];
    memset(err, 'z', sizeof err);
    srv_tls_ctx *c = srv_tls_ctx_new(cert, key, ca, verify, err, sizeof err);
    assert_null(c);
    assert_true(strlen(err) > 0 && strlen(err) < sizeof err);
    if (getenv("TLS_TEST_VERBOSE"))
        fprintf(stderr, "  ctx error: %s\n", err);
    if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", err, want1,
                 want2 ? want2 : "");
}

static void test_ctx_errors(void **state)
{
    (void)state;
    expect_ctx_error(F.missing, F.srv_key, NULL, false, F.missing,
                     "No such file");
    expect_ctx_error(F.chain, F.missing, NULL, false, F.missing,
                     "No such file");
    expect_ctx_error(F.not_pem, F.srv_key, NULL, false, F.not_pem,
                     "certificate chain");
    expect_ctx_error(F.chain, F.not_pem, NULL, false, F.not_pem,
                     "private key");
    expect_ctx_error(F.chain, F.other_rsa_key, NULL, false, "does not match",
                     F.other_rsa_key);
    expect_ctx_error(F.chain, F.other_ec_key, NULL, false, "does not match",
                     F.chain);
    expect_ctx_error(F.chain, F.enc_key, NULL, false, F.enc_key, "passphrase");
    expect_ctx_error(F.chain, F.srv_key, NULL, true, "CA", NULL);
    expect_ctx_error(F.chain, F.srv_key, F.missing, true, F.missing, NULL);
    expect_ctx_error(F.chain, F.srv_key, F.not_pem, false, F.not_pem, NULL);
    expect_ctx_error(NULL, F.srv_key, NULL, false, "certificate", NULL);
    expect_ctx_error(F.chain, "", NULL, false, "key", NULL);

    /* no message buffer, or a tiny one: still NULL, no overflow */
    assert_null(srv_tls_ctx_new(F.missing, F.srv_key, NULL, false, NULL, 0));
    char tiny[8];
    assert_null(srv_tls_ctx_new(F.missing, F.srv_key, NULL, false, tiny,
                                sizeof tiny));
    assert_int_equal(strlen(tiny), sizeof tiny - 1);

    /* the good ones: chain file, a lone certificate, a CA without
     * verification */
    char err[256];
    srv_tls_ctx *c = srv_tls_ctx_new(F.srv, F.srv_key, NULL, false, err,
                                     sizeof err);
    assert_non_null(c);
    srv_tls_ctx_free(c);
    c = srv_tls_ctx_new(F.chain, F.srv_key, F.ca, false, err, sizeof err);
    assert_non_null(c);
    srv_tls_ctx_free(c);
    srv_tls_ctx_free(NULL);
    srv_tls_conn_free(NULL);
    assert_null(srv_tls_conn_new(NULL));
    assert_int_equal(ERR_peek_error(), 0); /* the error queue is left clean */
}

static void test_verify_clients(void **state)
{
    (void)state;
    srv_tls_ctx *sctx = server_ctx(F.ca, true);

    /* a client certificate signed by the CA passes */
    SSL_CTX *good = client_ctx(F.ca, F.cli, F.cli_key, 0, 0);
    for (int split = SPLIT_WHOLE; split <= SPLIT_BYTES; split++) {
        pair pp;
        pair_init(&pp, sctx, good, split, 1);
        handshake_ok(&pp);
        cli_write(&pp, "PING\r\n", 6);
        pump(&pp);
        assert_int_equal(pp.srv_rc, 0);
        assert_true(tb_eq(&pp.srv_plain, "PING\r\n"));
        pair_free(&pp);
    }
    SSL_CTX_free(good);

    /* TLS 1.2 too */
    good = client_ctx(F.ca, F.cli, F.cli_key, 0, TLS1_2_VERSION);
    pair pp;
    pair_init(&pp, sctx, good, SPLIT_WHOLE, 1);
    handshake_ok(&pp);
    pair_free(&pp);
    SSL_CTX_free(good);

    /* no certificate: asked for one, then refused */
    for (int ver = 0; ver < 2; ver++) {
        SSL_CTX *none =
            client_ctx(F.ca, NULL, NULL, 0, ver ? TLS1_2_VERSION : 0);
        cert_requests = 0;
        pair_init(&pp, sctx, none, SPLIT_WHOLE, 1);
        pump(&pp);
        assert_int_equal(cert_requests, 1);
        assert_int_equal(pp.srv_rc, CAIRN_EINVAL);
        assert_non_null(strstr(srv_tls_error(pp.s), "certificate"));
        show("no client certificate", pp.s);
        assert_int_equal(pp.srv_plain.len, 0);
        assert_false(srv_tls_handshake_done(pp.s));
        pair_free(&pp);
        SSL_CTX_free(none);
    }

    /* a certificate from another CA */
    SSL_CTX *rogue = client_ctx(F.ca, F.rogue_cli, F.rogue_cli_key, 0, 0);
    pair_init(&pp, sctx, rogue, SPLIT_RANDOM, 3);
    pump(&pp);
    assert_int_equal(pp.srv_rc, CAIRN_EINVAL);
    assert_non_null(strstr(srv_tls_error(pp.s), "certificate verify failed"));
    assert_non_null(strstr(srv_tls_error(pp.s), "client certificate: "));
    show("rogue client certificate", pp.s);
    assert_int_equal(pp.srv_plain.len, 0);
    pair_free(&pp);
    SSL_CTX_free(rogue);

    srv_tls_ctx_free(sctx);
}

static void test_close_notify(void **state)
{
    (void)state;
    srv_tls_ctx *sctx = server_ctx(NULL, false);
    SSL_CTX *cctx = client_ctx(F.ca, NULL, NULL, 0, 0);

    /* client closes: data before it arrives, then CAIRN_ECLOSED */
    for (int split = SPLIT_WHOLE; split <= SPLIT_BYTES; split++) {
        pair pp;
        pair_init(&pp, sctx, cctx, split, 1);
        handshake_ok(&pp);
        cli_write(&pp, "QUIT\r\n", 6);
        assert_int_equal(SSL_shutdown(pp.cl), 0);
        pump(&pp);
        assert_int_equal(pp.srv_rc, CAIRN_ECLOSED);
        assert_true(tb_eq(&pp.srv_plain, "QUIT\r\n"));
        assert_non_null(strstr(srv_tls_error(pp.s), "close_notify"));
        show("client closed", pp.s);
        /* sticky */
        assert_int_equal(srv_tls_feed(pp.s, NULL, 0, on_plain, &pp),
                         CAIRN_ECLOSED);
        assert_int_equal(srv_tls_write(pp.s, (const uint8_t *)"x", 1),
                         CAIRN_ECLOSED);
        /* our close_notify answers theirs */
        srv_tls_shutdown(pp.s);
        assert_true(srv_tls_pending(pp.s) > 0);
        srv_to_cli(&pp);
        assert_int_equal(SSL_shutdown(pp.cl), 1);
        pair_free(&pp);
    }

    /* server closes */
    pair pp;
    pair_init(&pp, sctx, cctx, SPLIT_WHOLE, 1);
    handshake_ok(&pp);
    assert_int_equal(srv_tls_write(pp.s, (const uint8_t *)"+OK\r\n", 5), 0);
    srv_tls_shutdown(pp.s);
    srv_tls_shutdown(pp.s); /* once */
    assert_int_equal(srv_tls_write(pp.s, (const uint8_t *)"x", 1),
                     CAIRN_ECLOSED);
    pump(&pp);
    assert_true(tb_eq(&pp.cli_plain, "+OK\r\n"));
    assert_true(pp.cli_closed);
    assert_int_equal(SSL_get_shutdown(pp.cl) & SSL_RECEIVED_SHUTDOWN,
                     SSL_RECEIVED_SHUTDOWN);
    /* the client answers; the server sees it */
    assert_int_equal(SSL_shutdown(pp.cl), 1);
    pump(&pp);
    assert_int_equal(pp.srv_rc, CAIRN_ECLOSED);
    pair_free(&pp);

    /* shutdown before the handshake: nothing to send, early bytes dropped */
    pair_init(&pp, sctx, cctx, SPLIT_WHOLE, 1);
    assert_int_equal(srv_tls_write(pp.s, (const uint8_t *)"early", 5), 0);
    srv_tls_shutdown(pp.s);
    assert_int_equal(srv_tls_pending(pp.s), 0);
    assert_int_equal(srv_tls_write(pp.s, (const uint8_t *)"x", 1),
                     CAIRN_ECLOSED);
    pair_free(&pp);

    SSL_CTX_free(cctx);
    srv_tls_ctx_free(sctx);
}

/* One context, many connections; the context freed before them. */
static void test_shared_ctx(void **state)
{
    (void)state;
    srv_tls_ctx *sctx = server_ctx(NULL, false);
    SSL_CTX *cctx = client_ctx(F.ca, NULL, NULL, 0, 0);
    enum { N = 16 };
    pair pp[N];
    for (int i = 0; i < N; i++)
        pair_init(&pp[i], sctx, cctx, SPLIT_RANDOM, (uint64_t)i + 1);
    srv_tls_ctx_free(sctx);
    for (int i = 0; i < N; i++) {
        handshake_ok(&pp[i]);
        char msg[32];
        int n = snprintf(msg, sizeof msg, "conn %d", i);
        assert_int_equal(srv_tls_write(pp[i].s, (const uint8_t *)msg,
                                       (size_t)n),
                         0);
        pump(&pp[i]);
        assert_true(tb_eq(&pp[i].cli_plain, msg));
    }
    for (int i = 0; i < N; i++)
        pair_free(&pp[i]);
    SSL_CTX_free(cctx);
}

static void test_bad_args(void **state)
{
    (void)state;
    srv_tls_ctx *sctx = server_ctx(NULL, false);
    srv_tls_conn *s = srv_tls_conn_new(sctx);
    assert_non_null(s);
    assert_int_equal(srv_tls_feed(NULL, NULL, 0, NULL, NULL), CAIRN_EINVAL);
    assert_int_equal(srv_tls_feed(s, NULL, 5, NULL, NULL), CAIRN_EINVAL);
    assert_int_equal(srv_tls_write(NULL, NULL, 0), CAIRN_EINVAL);
    assert_int_equal(srv_tls_write(s, NULL, 5), CAIRN_EINVAL);
    assert_int_equal(srv_tls_take(s, NULL, NULL), CAIRN_EINVAL);
    assert_int_equal(srv_tls_pending(NULL), 0);
    assert_false(srv_tls_handshake_done(NULL));
    assert_string_equal(srv_tls_version(NULL), "");
    srv_tls_shutdown(NULL);
    /* the connection is unharmed by the rejected calls */
    assert_int_equal(srv_tls_feed(s, NULL, 0, NULL, NULL), 0);
    assert_string_equal(srv_tls_error(s), "");
    srv_tls_conn_free(s);
    srv_tls_ctx_free(sctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_tls13),
        cmocka_unit_test(test_handshake_tls12),
        cmocka_unit_test(test_old_protocol_refused),
        cmocka_unit_test(test_round_trips_whole),
        cmocka_unit_test(test_round_trips_bytes),
        cmocka_unit_test(test_round_trips_random),
        cmocka_unit_test(test_echo_from_callback),
        cmocka_unit_test(test_large_both_ways),
        cmocka_unit_test(test_early_writes),
        cmocka_unit_test(test_on_plain_stop),
        cmocka_unit_test(test_renegotiation_refused),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_mutated_client_hello),
        cmocka_unit_test(test_corrupt_record),
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_verify_clients),
        cmocka_unit_test(test_close_notify),
        cmocka_unit_test(test_shared_ctx),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, setup_certs, teardown_certs);
}
