/*
 * env_posix.c — the real env: POSIX file I/O (pread/pwrite/fdatasync...).
 *
 * Invariants: write_at loops over short writes until every byte is written
 * or an error occurs; read_at loops until len bytes or end of file; EINTR is
 * always retried. A failed fsync is reported, never retried here: the caller
 * (the WAL) decides that the data is not durable.
 *
 * Mapped writes (map_writes): a file may have one shared read-write
 * mapping of [0, map_len), made only when [0, map_len) was reserved by a
 * successful posix_fallocate on this handle (blocks allocated, size at
 * least map_len: a store into the mapping cannot meet a full disk or the
 * end of the file). write_at copies a range inside it with memcpy: the
 * same page cache as pwrite, so pread, fdatasync (which writes back dirty
 * mapped pages) and a crash of the process treat the bytes alike. Every
 * MAP_DROP_STEP bytes the pages behind the writes are dropped from the
 * process (MADV_DONTNEED: the dirty data stays in the page cache), so the
 * mapping adds at most about that much to the resident set. truncate and
 * close unmap first.
 *
 * Locking: the env is stateless; file handles hold an fd and, for mapped
 * writes, the mapping, and are safe for concurrent read_at. write_at,
 * truncate, close and map_writes on one handle are serialized by the
 * caller (env.h). Locks use flock(), which conflicts between two opens in
 * the same process too.
 */
#include "env/env.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"

typedef struct posix_file {
    cairn_file base;
    int fd;
    uint64_t reserved; /* [0, reserved) allocated by posix_fallocate */
    uint8_t *map;      /* shared mapping of [0, map_len), or NULL */
    uint64_t map_len;
    uint64_t dropped; /* [0, dropped) of the mapping was MADV_DONTNEEDed */
} posix_file;

/* Resident mapped pages are dropped this many bytes at a time. */
#define MAP_DROP_STEP ((uint64_t)1 << 20)

static void unmap(posix_file *f)
{
    if (f->map) {
        munmap(f->map, (size_t)f->map_len);
        f->map = NULL;
        f->map_len = f->dropped = 0;
    }
}

typedef struct posix_lock {
    cairn_filelock base;
    int fd;
} posix_lock;

static int err_from_errno(void) { return cairn_errno_to_err(errno); }

static int p_open(cairn_env *env, const char *path, int flags, cairn_file **out)
{
    int oflags = O_CLOEXEC;
    oflags |= (flags & CAIRN_OPEN_WRITE) ? O_RDWR : O_RDONLY;
    if (flags & CAIRN_OPEN_CREATE)
        oflags |= O_CREAT;
    if (flags & CAIRN_OPEN_EXCL)
        oflags |= O_EXCL;
    if (flags & CAIRN_OPEN_TRUNC)
        oflags |= O_TRUNC;
    posix_file *f = calloc(1, sizeof *f);
    if (!f)
        return CAIRN_ENOMEM;
    int fd;
    do {
        fd = open(path, oflags, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int rc = err_from_errno();
        free(f);
        return rc;
    }
    f->base.env = env;
    f->fd = fd;
    *out = &f->base;
    return 0;
}

static int p_close(cairn_file *file)
{
    posix_file *f = (posix_file *)file;
    int rc = 0;
    unmap(f);
    /* close() errors (EIO on NFS) are reported; the fd is gone either way. */
    if (close(f->fd) != 0 && errno != EINTR)
        rc = err_from_errno();
    free(f);
    return rc;
}

static int p_read_at(cairn_file *file, uint64_t off, void *buf, size_t len,
                     size_t *nread)
{
    posix_file *f = (posix_file *)file;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(f->fd, (char *)buf + done, len - done,
                          (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            *nread = done;
            return err_from_errno();
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    *nread = done;
    return 0;
}

static int p_write_at(cairn_file *file, uint64_t off, const void *buf,
                      size_t len)
{
    posix_file *f = (posix_file *)file;
    if (f->map && off <= f->map_len && len <= f->map_len - off) {
        memcpy(f->map + off, buf, len);
        /* Drop the whole steps behind this write from the resident set. */
        uint64_t below = off & ~(MAP_DROP_STEP - 1);
        if (below > f->dropped) {
            (void)madvise(f->map + f->dropped, (size_t)(below - f->dropped),
                          MADV_DONTNEED); /* advice: failure is harmless */
            f->dropped = below;
        }
        return 0;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(f->fd, (const char *)buf + done, len - done,
                           (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return err_from_errno();
        }
        if (n == 0)
            return CAIRN_EIO;
        done += (size_t)n;
    }
    return 0;
}

static int p_sync(cairn_file *file, int kind)
{
    posix_file *f = (posix_file *)file;
    int r = kind == CAIRN_SYNC_FULL ? fsync(f->fd) : fdatasync(f->fd);
    /* No EINTR retry: after a failed fsync the page cache state is unknown. */
    return r == 0 ? 0 : err_from_errno();
}

static int p_truncate(cairn_file *file, uint64_t size)
{
    posix_file *f = (posix_file *)file;
    unmap(f);
    if (size < f->reserved)
        f->reserved = size;
    int r;
    do {
        r = ftruncate(f->fd, (off_t)size);
    } while (r != 0 && errno == EINTR);
    return r == 0 ? 0 : err_from_errno();
}

static int p_allocate(cairn_file *file, uint64_t off, uint64_t len)
{
    posix_file *f = (posix_file *)file;
    int r = posix_fallocate(f->fd, (off_t)off, (off_t)len);
    if (r == EOPNOTSUPP || r == EINVAL) {
        /* File system without fallocate: extend the size instead, so the
         * contract (size >= off+len, new bytes read as zeros) holds. */
        struct stat st;
        if (fstat(f->fd, &st) != 0)
            return err_from_errno();
        if ((uint64_t)st.st_size >= off + len)
            return 0;
        return p_truncate(file, off + len);
    }
    if (r != 0)
        return cairn_errno_to_err(r);
    if (off <= f->reserved && off + len > f->reserved)
        f->reserved = off + len;
    return 0;
}

static int p_map_writes(cairn_file *file, uint64_t len)
{
    posix_file *f = (posix_file *)file;
    if (f->map)
        return f->map_len >= len ? 0 : CAIRN_EINVAL;
    if (len == 0 || len > f->reserved || len > SIZE_MAX)
        return CAIRN_ENOTSUP;
    void *p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED,
                   f->fd, 0);
    if (p == MAP_FAILED)
        return err_from_errno();
    f->map = p;
    f->map_len = len;
    f->dropped = 0;
    return 0;
}

static int p_size(cairn_file *file, uint64_t *out)
{
    posix_file *f = (posix_file *)file;
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return err_from_errno();
    *out = (uint64_t)st.st_size;
    return 0;
}

static int p_sync_dir(cairn_env *env, const char *dir)
{
    (void)env;
    int fd;
    do {
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return err_from_errno();
    int rc = fsync(fd) == 0 ? 0 : err_from_errno();
    close(fd);
    return rc;
}

static int p_rename(cairn_env *env, const char *from, const char *to)
{
    (void)env;
    return rename(from, to) == 0 ? 0 : err_from_errno();
}

static int p_unlink(cairn_env *env, const char *path)
{
    (void)env;
    return unlink(path) == 0 ? 0 : err_from_errno();
}

static int p_list_dir(cairn_env *env, const char *dir, char ***names,
                      size_t *count)
{
    (void)env;
    DIR *d = opendir(dir);
    if (!d)
        return err_from_errno();
    size_t n = 0, cap = 16;
    char **v = malloc(cap * sizeof *v);
    int rc = v ? 0 : CAIRN_ENOMEM;
    struct dirent *e;
    while (rc == 0) {
        errno = 0;
        e = readdir(d);
        if (!e) {
            if (errno != 0)
                rc = err_from_errno();
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == cap) {
            char **nv = realloc(v, 2 * cap * sizeof *v);
            if (!nv) {
                rc = CAIRN_ENOMEM;
                break;
            }
            v = nv;
            cap *= 2;
        }
        v[n] = strdup(e->d_name);
        if (!v[n]) {
            rc = CAIRN_ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc != 0) {
        cairn_env_free_list(v, n);
        return rc;
    }
    *names = v;
    *count = n;
    return 0;
}

static int p_mkdir(cairn_env *env, const char *path)
{
    (void)env;
    return mkdir(path, 0755) == 0 ? 0 : err_from_errno();
}

static int p_lock(cairn_env *env, const char *path, cairn_filelock **out)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return err_from_errno();
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int rc = errno == EWOULDBLOCK ? CAIRN_EBUSY : err_from_errno();
        close(fd);
        return rc;
    }
    posix_lock *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        return CAIRN_ENOMEM;
    }
    l->base.env = env;
    l->fd = fd;
    *out = &l->base;
    return 0;
}

static int p_unlock(cairn_filelock *lock)
{
    posix_lock *l = (posix_lock *)lock;
    flock(l->fd, LOCK_UN);
    close(l->fd);
    free(l);
    return 0;
}

static int p_exists(cairn_env *env, const char *path)
{
    (void)env;
    struct stat st;
    return stat(path, &st) == 0 ? 0 : err_from_errno();
}

static void p_destroy(cairn_env *env) { (void)env; }

static const cairn_env_ops posix_ops = {
    .name = "posix",
    .open = p_open,
    .close = p_close,
    .read_at = p_read_at,
    .write_at = p_write_at,
    .sync = p_sync,
    .truncate = p_truncate,
    .allocate = p_allocate,
    .map_writes = p_map_writes,
    .size = p_size,
    .sync_dir = p_sync_dir,
    .rename = p_rename,
    .unlink = p_unlink,
    .list_dir = p_list_dir,
    .mkdir = p_mkdir,
    .lock = p_lock,
    .unlock = p_unlock,
    .exists = p_exists,
    .destroy = p_destroy,
};

static cairn_env posix_env = {.ops = &posix_ops};

cairn_env *cairn_env_posix(void) { return &posix_env; }
