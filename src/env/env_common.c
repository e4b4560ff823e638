/*
 * env_common.c — helpers shared by every env implementation: op names,
 * errno translation, directory-list freeing, mkdir -p.
 *
 * Locking: none; these functions keep no state.
 */
#include "env/env.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"

const char *cairn_env_op_name(cairn_env_op op)
{
    static const char *const names[CAIRN_OP__COUNT] = {
        [CAIRN_OP_OPEN] = "open",         [CAIRN_OP_CLOSE] = "close",
        [CAIRN_OP_READ] = "read",         [CAIRN_OP_WRITE] = "write",
        [CAIRN_OP_SYNC] = "sync",         [CAIRN_OP_TRUNCATE] = "truncate",
        [CAIRN_OP_ALLOCATE] = "allocate", [CAIRN_OP_SIZE] = "size",
        [CAIRN_OP_SYNC_DIR] = "sync_dir", [CAIRN_OP_RENAME] = "rename",
        [CAIRN_OP_UNLINK] = "unlink",     [CAIRN_OP_LIST_DIR] = "list_dir",
        [CAIRN_OP_MKDIR] = "mkdir",       [CAIRN_OP_LOCK] = "lock",
        [CAIRN_OP_EXISTS] = "exists",
    };
    if ((unsigned)op >= CAIRN_OP__COUNT)
        return "?";
    return names[op];
}

int cairn_errno_to_err(int e)
{
    switch (e) {
    case 0: return CAIRN_OK;
    case ENOSPC:
    case EDQUOT:
    case EFBIG: return CAIRN_ENOSPC;
    case ENOENT:
    case ENOTDIR: return CAIRN_ENOTFOUND;
    case EEXIST:
    case ENOTEMPTY: return CAIRN_EEXIST;
    case ENOMEM: return CAIRN_ENOMEM;
    case EROFS: return CAIRN_EREADONLY;
    case EWOULDBLOCK: return CAIRN_EBUSY;
    case EINVAL:
    case EISDIR:
    case EBADF:
    case ENAMETOOLONG: return CAIRN_EINVAL;
    case EOPNOTSUPP: return CAIRN_ENOTSUP;
    default: return CAIRN_EIO;
    }
}

void cairn_env_free_list(char **names, size_t count)
{
    if (!names)
        return;
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

int cairn_env_mkdir_p(cairn_env *env, const char *path)
{
    size_t n = strlen(path);
    if (n == 0)
        return CAIRN_EINVAL;
    char *p = malloc(n + 1);
    if (!p)
        return CAIRN_ENOMEM;
    memcpy(p, path, n + 1);
    int rc = 0;
    for (size_t i = 1; i <= n && rc == 0; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char saved = p[i];
        p[i] = '\0';
        rc = cairn_env_mkdir(env, p);
        if (rc == CAIRN_EEXIST)
            rc = 0;
        p[i] = saved;
    }
    free(p);
    return rc;
}
