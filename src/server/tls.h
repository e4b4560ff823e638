/*
 * tls.h — the TLS layer of cairn-server: OpenSSL over memory BIOs. No
 * sockets, no event loop: the server reads ciphertext from a socket and
 * hands it to srv_tls_feed(), which gives back plaintext through a callback;
 * plaintext replies go in through srv_tls_write(), and the ciphertext to send
 * (handshake records, encrypted data, alerts) comes out of srv_tls_take().
 *
 * A typical connection:
 *     on read(buf, n):  rc = srv_tls_feed(c, buf, n, on_plain, client);
 *                       send whatever srv_tls_take() hands out (even when rc
 *                       < 0: it may hold an alert telling the peer why);
 *                       rc < 0: close the socket after that.
 *     on reply:         srv_tls_write(c, reply, len); send srv_tls_take().
 *     on quit:          srv_tls_shutdown(c); send srv_tls_take(); close.
 *
 * Invariants:
 *   - The outcome never depends on how the ciphertext is split: any piece
 *     sizes, down to single bytes, give the same plaintext and errors.
 *   - Every byte passed to srv_tls_write() is sent, in order, exactly once:
 *     bytes written before the handshake completes are kept here and
 *     encrypted as soon as it does (before any later write).
 *   - Plaintext is handed to on_plain in order, each byte exactly once. If
 *     on_plain stops the feed (returns < 0), the bytes it was given count
 *     as handed out; the rest (all of the input is taken in either way)
 *     stays here and comes out on the next srv_tls_feed() (n may be 0).
 *   - Errors are sticky: once a call failed with a TLS error, the peer's
 *     close_notify or a lack of memory, srv_tls_feed() and srv_tls_write()
 *     return that error again and do nothing else. srv_tls_take() keeps
 *     working (it may hold an alert), and srv_tls_shutdown() after the
 *     peer's close_notify still answers it with ours.
 *   - Return values: 0 is success; CAIRN_EINVAL a TLS failure (not TLS at
 *     all, bad record, handshake failure, client certificate rejected, ...);
 *     CAIRN_ECLOSED the peer sent close_notify, or a write after
 *     srv_tls_shutdown(); CAIRN_ENOMEM out of memory. srv_tls_error() then
 *     says what happened, with OpenSSL's reason. A negative value returned by
 *     on_plain is passed through unchanged and is not a TLS error (the
 *     connection stays usable).
 *
 * Locking: none inside. A srv_tls_ctx is immutable once made and may be
 * shared by all connections and threads. A srv_tls_conn belongs to one
 * thread at a time; on_plain must not free its connection (it may call
 * srv_tls_write() and srv_tls_shutdown() on it). Calls clear the calling
 * thread's OpenSSL error queue.
 */
#ifndef CAIRN_SERVER_TLS_H
#define CAIRN_SERVER_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct srv_tls_ctx srv_tls_ctx;
typedef struct srv_tls_conn srv_tls_conn;

/* A server context: TLS 1.2 and later, no renegotiation, no compression.
 * cert_file is a PEM file with the server certificate followed by any
 * intermediate certificates; key_file the PEM private key (unencrypted: a
 * key with a passphrase is an error, never a prompt). The key must match the
 * certificate.
 * ca_file (may be NULL): PEM CA certificates trusted for client
 * certificates. With verify_clients, every client must present a certificate
 * that verifies against ca_file, or its handshake fails (verify_clients
 * without ca_file is an error). Without verify_clients, client certificates
 * are not requested.
 * On failure: NULL, and err (may be NULL) receives a NUL-terminated message
 * of at most errlen bytes naming the file and OpenSSL's reason. */
srv_tls_ctx *srv_tls_ctx_new(const char *cert_file, const char *key_file,
                             const char *ca_file, bool verify_clients,
                             char *err, size_t errlen);

/* Free a context (NULL is fine). Connections made from it hold their own
 * reference to what they need and may outlive it. */
void srv_tls_ctx_free(srv_tls_ctx *ctx);

/* A new server-side connection waiting for a ClientHello. NULL when out of
 * memory. */
srv_tls_conn *srv_tls_conn_new(srv_tls_ctx *ctx);
void srv_tls_conn_free(srv_tls_conn *c); /* NULL is fine */

/* Push n bytes of ciphertext received from the peer (cipher may be NULL when
 * n is 0), drive the handshake, and hand every plaintext byte that becomes
 * available to on_plain(arg, p, n), in order; p is valid only during the
 * call. 0 when all input was processed (more may be needed), else see the
 * return values above. on_plain may be NULL when no plaintext is expected
 * (plaintext is then dropped). */
int srv_tls_feed(srv_tls_conn *c, const uint8_t *cipher, size_t n,
                 int (*on_plain)(void *arg, const uint8_t *p, size_t n),
                 void *arg);

/* Encrypt n bytes of application data into the outgoing ciphertext (kept
 * here, unencrypted, until the handshake is done). 0, or an error (above). */
int srv_tls_write(srv_tls_conn *c, const uint8_t *plain, size_t n);

/* Bytes of ciphertext waiting to be sent to the peer. */
size_t srv_tls_pending(const srv_tls_conn *c);

/* Hand all waiting ciphertext to the caller: *data is a malloc'd buffer the
 * caller frees, *len its size; NULL / 0 when nothing waits. 0, or
 * CAIRN_ENOMEM (nothing is lost: the bytes stay here). */
int srv_tls_take(srv_tls_conn *c, uint8_t **data, size_t *len);

/* True once the handshake has completed (and stays true, even after an
 * error). */
bool srv_tls_handshake_done(const srv_tls_conn *c);

/* The negotiated protocol ("TLSv1.3", ...), or "" before the handshake. */
const char *srv_tls_version(const srv_tls_conn *c);

/* Queue a close_notify alert (once; later srv_tls_write() calls fail with
 * CAIRN_ECLOSED). Before the handshake is done, or after a TLS error,
 * nothing is queued: there is no session to close, the caller just closes
 * the socket. Bytes still waiting for the handshake are dropped. */
void srv_tls_shutdown(srv_tls_conn *c);

/* The message of the last failure ("" when none): what failed and why. */
const char *srv_tls_error(const srv_tls_conn *c);

#endif /* CAIRN_SERVER_TLS_H */
