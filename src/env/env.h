/*
 * env.h — every byte of Cairn's file I/O goes through a cairn_env.
 *
 * Why: so that any test can swap the real POSIX env for one that injects
 * faults (I/O errors, no space, short writes) or simulates power loss. No
 * module above env/ calls open/pread/pwrite/fsync directly.
 *
 * Shape: an env is a vtable (cairn_env_ops) plus the implementation's state.
 * Files are handles opened through an env; each implementation embeds
 * cairn_file as the first member of its own file struct. The inline wrappers
 * below (cairn_env_*, cairn_file_*) are what callers use.
 *
 * Implementations here:
 *   - POSIX env (env_posix.c): the real thing, the default. It alone
 *     implements map_writes (writes into a reserved range through a shared
 *     mapping: no system call per write; the WAL uses it when it does not
 *     sync every write).
 *   - memory env (env_mem.c): an in-memory file system that remembers, per
 *     file and per directory, what was last synced, so a test can cut power:
 *     unsynced bytes vanish (the last unsynced block optionally torn) and
 *     unsynced directory entries vanish.
 *   - fault env (env_fault.c): wraps any env and fails chosen calls (the N-th
 *     call, or calls matching an operation mask and a path pattern) with EIO
 *     or ENOSPC, makes short writes, and can "cut power" at the N-th call
 *     (forwarded to a memory env underneath).
 *
 * Semantics every env follows:
 *   - Errors are negative CAIRN_E* codes (CAIRN_EIO, CAIRN_ENOSPC,
 *     CAIRN_ENOTFOUND, CAIRN_EEXIST, CAIRN_EBUSY, CAIRN_EINVAL, ...).
 *   - write_at writes all len bytes or returns an error; on error an unknown
 *     prefix of the bytes may have been written (a short write).
 *   - read_at reads up to len bytes; *nread < len only at end of file.
 *   - sync makes the file's data (and with CAIRN_SYNC_FULL its metadata)
 *     durable; sync_dir makes a directory's entries (creates, renames,
 *     unlinks) durable. Creating a file is not durable until its directory
 *     is synced.
 *   - Paths are plain strings; directories are separated by '/'.
 *
 * Threading: an env may be used by many threads at once. A single cairn_file
 * may be used by many threads at once for read_at; writes to one file must
 * be serialized by the caller (the WAL has one writer at a time).
 */
#ifndef CAIRN_ENV_H
#define CAIRN_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn.h"

typedef struct cairn_env cairn_env;
typedef struct cairn_file cairn_file;
typedef struct cairn_filelock cairn_filelock;

/* open flags */
enum {
    CAIRN_OPEN_READ = 0,       /* read only */
    CAIRN_OPEN_WRITE = 1 << 0, /* read and write */
    CAIRN_OPEN_CREATE = 1 << 1, /* create if missing */
    CAIRN_OPEN_EXCL = 1 << 2,  /* with CREATE: fail with CAIRN_EEXIST if present */
    CAIRN_OPEN_TRUNC = 1 << 3, /* truncate to 0 on open */
};

/* sync kinds */
enum {
    CAIRN_SYNC_DATA = 0, /* fdatasync: data plus the metadata needed to read it */
    CAIRN_SYNC_FULL = 1, /* fsync */
};

/* Operation identifiers, used by the fault env's masks and call counters. */
typedef enum {
    CAIRN_OP_OPEN = 0,
    CAIRN_OP_CLOSE,
    CAIRN_OP_READ,
    CAIRN_OP_WRITE,
    CAIRN_OP_SYNC,
    CAIRN_OP_TRUNCATE,
    CAIRN_OP_ALLOCATE,
    CAIRN_OP_SIZE,
    CAIRN_OP_SYNC_DIR,
    CAIRN_OP_RENAME,
    CAIRN_OP_UNLINK,
    CAIRN_OP_LIST_DIR,
    CAIRN_OP_MKDIR,
    CAIRN_OP_LOCK,
    CAIRN_OP_EXISTS,
    CAIRN_OP__COUNT
} cairn_env_op;

#define CAIRN_OPMASK(op) (1u << (op))
#define CAIRN_OPMASK_ALL ((1u << CAIRN_OP__COUNT) - 1u)

const char *cairn_env_op_name(cairn_env_op op);

typedef struct cairn_env_ops {
    const char *name;
    int (*open)(cairn_env *env, const char *path, int flags, cairn_file **out);
    int (*close)(cairn_file *f);
    int (*read_at)(cairn_file *f, uint64_t off, void *buf, size_t len,
                   size_t *nread);
    int (*write_at)(cairn_file *f, uint64_t off, const void *buf, size_t len);
    int (*sync)(cairn_file *f, int kind);
    int (*truncate)(cairn_file *f, uint64_t size);
    /* Reserve space for [off, off+len): the file's size grows to at least
     * off+len, the new bytes read as zeros. */
    int (*allocate)(cairn_file *f, uint64_t off, uint64_t len);
    /* Optional (NULL: CAIRN_ENOTSUP). From now on, write_at may put bytes
     * that fall inside [0, len) into a shared memory mapping of the file
     * instead of making a write call: the same page cache, so reads,
     * syncs and a crash of the process see them as written ones. Only for
     * a file whose [0, len) allocate reserved (a write through the mapping
     * cannot meet a full disk); CAIRN_ENOTSUP otherwise. Truncate and
     * close end the mapping. The caller makes write_at, truncate, close
     * and this call one thread at a time. */
    int (*map_writes)(cairn_file *f, uint64_t len);
    int (*size)(cairn_file *f, uint64_t *out);
    int (*sync_dir)(cairn_env *env, const char *dir);
    int (*rename)(cairn_env *env, const char *from, const char *to);
    int (*unlink)(cairn_env *env, const char *path);
    /* Names (not paths) of the entries in dir, excluding "." and "..",
     * in no particular order. Free with cairn_env_free_list(). */
    int (*list_dir)(cairn_env *env, const char *dir, char ***names,
                    size_t *count);
    /* Create a directory; CAIRN_EEXIST if it exists. */
    int (*mkdir)(cairn_env *env, const char *path);
    /* Take an exclusive advisory lock on path (created if missing);
     * CAIRN_EBUSY if someone holds it. */
    int (*lock)(cairn_env *env, const char *path, cairn_filelock **out);
    int (*unlock)(cairn_filelock *l);
    /* 0 if path exists, CAIRN_ENOTFOUND if not, another error otherwise. */
    int (*exists)(cairn_env *env, const char *path);
    void (*destroy)(cairn_env *env);
} cairn_env_ops;

struct cairn_env {
    const cairn_env_ops *ops;
};

struct cairn_file {
    cairn_env *env; /* the env that opened it */
};

struct cairn_filelock {
    cairn_env *env;
};

/* ---- constructors ---- */

/* The process-wide POSIX env. Stateless, never destroyed; destroy is a no-op. */
cairn_env *cairn_env_posix(void);

/* A new, empty in-memory file system (see env_mem.c). */
cairn_env *cairn_env_mem_new(void);

/* Power loss on a memory env: every file's content reverts to what was last
 * synced, and every directory's entries revert to what was last synced.
 * With torn=true, for each file that had unsynced bytes, a random prefix of
 * the first unsynced 4 KiB block survives and the rest of that block is
 * garbage (and the file keeps that block's length). seed drives the
 * randomness. Open handles become stale: every call on them fails with
 * CAIRN_EIO. Returns CAIRN_EINVAL if env is not a memory env. */
int cairn_env_mem_power_loss(cairn_env *env, bool torn, uint64_t seed);

/* Bytes written since the last sync, summed over all files (for tests). */
uint64_t cairn_env_mem_unsynced_bytes(cairn_env *env);

/* ---- fault env ---- */

/* Wraps base (not owned: destroy base yourself, after the fault env). */
cairn_env *cairn_env_fault_new(cairn_env *base);

typedef struct cairn_fault_rule {
    uint32_t op_mask;     /* which ops count (CAIRN_OPMASK(...)); 0 = all */
    const char *path_substr; /* only calls whose path contains this; NULL = any
                                (copied by the env) */
    uint64_t fail_at;     /* fail the N-th matching call (1-based); 0 = none */
    uint64_t fail_count;  /* how many consecutive matching calls fail from
                             fail_at on; 0 means 1; UINT64_MAX = forever */
    int error;            /* CAIRN_EIO or CAIRN_ENOSPC */
    bool short_write;     /* a failing write first writes a random prefix */
    uint64_t power_cut_at; /* at the N-th matching call, cut power on the base
                              (must be a memory env) before the call runs;
                              that call and every later one fail with
                              CAIRN_EIO until cairn_env_fault_reset(). 0 = none */
    bool torn;            /* with power_cut_at: tear the last unsynced block */
    uint64_t seed;        /* randomness for short writes and torn blocks */
    uint32_t sync_delay_us; /* a slow disk: a file sync that goes through
                               returns this long after it ran (so writes
                               made meanwhile are not covered by it) */
} cairn_fault_rule;

/* Install a rule (replacing any previous one) and zero the counters. */
void cairn_env_fault_set(cairn_env *env, const cairn_fault_rule *rule);
/* Remove the rule, clear the "power is cut" state, zero the counters. */
void cairn_env_fault_reset(cairn_env *env);
/* Calls that matched the rule's mask/pattern since set/reset. */
uint64_t cairn_env_fault_calls(cairn_env *env);
/* Errors injected since set/reset (power-cut failures included). */
uint64_t cairn_env_fault_injected(cairn_env *env);
/* True once the power cut has happened. */
bool cairn_env_fault_power_is_cut(cairn_env *env);

/* ---- convenience wrappers ---- */

static inline int cairn_env_open(cairn_env *env, const char *path, int flags,
                                 cairn_file **out)
{
    return env->ops->open(env, path, flags, out);
}
static inline int cairn_file_close(cairn_file *f)
{
    return f ? f->env->ops->close(f) : 0;
}
static inline int cairn_file_read_at(cairn_file *f, uint64_t off, void *buf,
                                     size_t len, size_t *nread)
{
    return f->env->ops->read_at(f, off, buf, len, nread);
}
static inline int cairn_file_write_at(cairn_file *f, uint64_t off,
                                      const void *buf, size_t len)
{
    return f->env->ops->write_at(f, off, buf, len);
}
static inline int cairn_file_sync(cairn_file *f, int kind)
{
    return f->env->ops->sync(f, kind);
}
static inline int cairn_file_truncate(cairn_file *f, uint64_t size)
{
    return f->env->ops->truncate(f, size);
}
static inline int cairn_file_allocate(cairn_file *f, uint64_t off, uint64_t len)
{
    return f->env->ops->allocate(f, off, len);
}
static inline int cairn_file_map_writes(cairn_file *f, uint64_t len)
{
    return f->env->ops->map_writes ? f->env->ops->map_writes(f, len)
                                   : CAIRN_ENOTSUP;
}
static inline int cairn_file_size(cairn_file *f, uint64_t *out)
{
    return f->env->ops->size(f, out);
}
static inline int cairn_env_sync_dir(cairn_env *env, const char *dir)
{
    return env->ops->sync_dir(env, dir);
}
static inline int cairn_env_rename(cairn_env *env, const char *from,
                                   const char *to)
{
    return env->ops->rename(env, from, to);
}
static inline int cairn_env_unlink(cairn_env *env, const char *path)
{
    return env->ops->unlink(env, path);
}
static inline int cairn_env_list_dir(cairn_env *env, const char *dir,
                                     char ***names, size_t *count)
{
    return env->ops->list_dir(env, dir, names, count);
}
static inline int cairn_env_mkdir(cairn_env *env, const char *path)
{
    return env->ops->mkdir(env, path);
}
static inline int cairn_env_lock(cairn_env *env, const char *path,
                                 cairn_filelock **out)
{
    return env->ops->lock(env, path, out);
}
static inline int cairn_env_unlock(cairn_filelock *l)
{
    return l ? l->env->ops->unlock(l) : 0;
}
static inline int cairn_env_exists(cairn_env *env, const char *path)
{
    return env->ops->exists(env, path);
}
static inline void cairn_env_destroy(cairn_env *env)
{
    if (env)
        env->ops->destroy(env);
}

/* Free a list returned by list_dir. */
void cairn_env_free_list(char **names, size_t count);

/* mkdir that succeeds when the directory already exists. */
int cairn_env_mkdir_p(cairn_env *env, const char *path);

/* Translate an errno value into a CAIRN_E* code. */
int cairn_errno_to_err(int e);

#endif /* CAIRN_ENV_H */
