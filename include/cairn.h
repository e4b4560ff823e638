/*
 * cairn.h — the public API of libcairn.
 *
 * This is the only header an embedding program includes. It grows with each
 * layer: today it holds the version macros, the error codes and
 * cairn_strerror(). Everything under src/ is internal.
 *
 * Errors: every function that can fail returns an int; 0 (CAIRN_OK) is
 * success, a negative CAIRN_E* code is failure. No function aborts the process
 * on bad input or on an I/O failure.
 *
 * Threading: cairn_strerror() and cairn_version_string() are thread-safe and
 * return pointers to static, immutable strings.
 */
#ifndef CAIRN_H
#define CAIRN_H

#ifdef __cplusplus
extern "C" {
#endif

#define CAIRN_VERSION_MAJOR 0
#define CAIRN_VERSION_MINOR 1
#define CAIRN_VERSION_PATCH 0
#define CAIRN_VERSION_STRING "0.1.0"
/* One number that grows with each release: 0x00MMmmpp. */
#define CAIRN_VERSION_NUMBER                                                   \
    ((CAIRN_VERSION_MAJOR << 16) | (CAIRN_VERSION_MINOR << 8) |                \
     CAIRN_VERSION_PATCH)

/* Error codes. Stable: their numeric values never change once released. */
enum {
    CAIRN_OK = 0,
    CAIRN_EINVAL = -1,    /* invalid argument */
    CAIRN_ENOMEM = -2,    /* out of memory */
    CAIRN_EIO = -3,       /* I/O error reported by the operating system */
    CAIRN_ENOSPC = -4,    /* no space left on device */
    CAIRN_ECORRUPT = -5,  /* stored data failed a checksum or format check */
    CAIRN_ENOTFOUND = -6, /* no such key, file or record */
    CAIRN_ECONFLICT = -7, /* transaction conflict: retry */
    CAIRN_EREADONLY = -8, /* read-only (by choice, or after an fsync failure) */
    CAIRN_ETOOLARGE = -9, /* value or record larger than the configured limit */
    CAIRN_EBUSY = -10,    /* resource locked by another user (e.g. the data dir) */
    CAIRN_EEXIST = -11,   /* already exists */
    CAIRN_ENOTSUP = -12,  /* operation not supported here */
    CAIRN_ECLOSED = -13,  /* handle is shutting down or closed */
    CAIRN_EHISTORY = -14, /* requested version is older than the history window */
    CAIRN_EVERSION = -15, /* file written by an unknown (newer) format version */
};

/* A short, static, human-readable description of an error code. Unknown
 * codes get "unknown error". Never returns NULL. */
const char *cairn_strerror(int err);

/* The library's version string, e.g. "0.1.0" (may differ from the header's
 * CAIRN_VERSION_STRING when linked against another build). */
const char *cairn_version_string(void);

#ifdef __cplusplus
}
#endif

#endif /* CAIRN_H */
