/*
 * errors.c — cairn_strerror() and the library version string.
 *
 * Invariant: every CAIRN_E* code in include/cairn.h has a message here.
 * Locking: none; the strings are static and immutable.
 */
#include "cairn.h"

const char *cairn_strerror(int err)
{
    switch (err) {
    case CAIRN_OK: return "success";
    case CAIRN_EINVAL: return "invalid argument";
    case CAIRN_ENOMEM: return "out of memory";
    case CAIRN_EIO: return "I/O error";
    case CAIRN_ENOSPC: return "no space left on device";
    case CAIRN_ECORRUPT: return "data corruption detected";
    case CAIRN_ENOTFOUND: return "not found";
    case CAIRN_ECONFLICT: return "transaction conflict (retry)";
    case CAIRN_EREADONLY: return "read-only";
    case CAIRN_ETOOLARGE: return "too large";
    case CAIRN_EBUSY: return "resource busy (locked by another user)";
    case CAIRN_EEXIST: return "already exists";
    case CAIRN_ENOTSUP: return "operation not supported";
    case CAIRN_ECLOSED: return "handle is closed or shutting down";
    case CAIRN_EHISTORY: return "version is older than the history window";
    case CAIRN_EVERSION: return "unsupported format version";
    case CAIRN_EUNAVAILABLE: return "archive tier unavailable";
    default: return "unknown error";
    }
}

const char *cairn_version_string(void)
{
    return CAIRN_VERSION_STRING;
}
