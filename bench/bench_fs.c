/*
 * bench_fs.c — file helpers shared by the cairn-bench subcommands: remove
 * a tree, make a path, du, drop a tree's pages from the OS page cache, and
 * this process's I/O counters (/proc/self/io); and the two JSON writers
 * the subcommands' --json output shares.
 *
 * Locking: none. The nftw callbacks keep their sums in file-level globals,
 * so these are for the main thread only (one walk at a time).
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static int rm_cb(const char *p, const struct stat *sb, int flag,
                 struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(p) != 0 && errno != ENOENT)
        fprintf(stderr, "remove %s: %s\n", p, strerror(errno));
    return 0;
}

void bench_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0)
        nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS);
}

int bench_mkdir_p(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -1;
            buf[i] = c;
        }
    }
    return 0;
}

/* du: allocated and apparent bytes of the regular files under a dir. */
static uint64_t g_du_alloc, g_du_size;

static int du_cb(const char *p, const struct stat *sb, int flag,
                 struct FTW *ftw)
{
    (void)p;
    (void)ftw;
    if (flag == FTW_F && S_ISREG(sb->st_mode)) {
        g_du_alloc += (uint64_t)sb->st_blocks * 512;
        g_du_size += (uint64_t)sb->st_size;
    }
    return 0;
}

void bench_du(const char *dir, uint64_t *alloc, uint64_t *size)
{
    g_du_alloc = g_du_size = 0;
    nftw(dir, du_cb, 32, FTW_PHYS);
    *alloc = g_du_alloc;
    *size = g_du_size;
}

/* Bytes of fd's first len bytes in the page cache (mincore), 0 if unknown. */
static uint64_t resident_bytes(int fd, off_t len)
{
    if (len <= 0)
        return 0;
    long pg = sysconf(_SC_PAGESIZE);
    void *m = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return 0;
    size_t pages = ((size_t)len + (size_t)pg - 1) / (size_t)pg;
    unsigned char *vec = malloc(pages);
    uint64_t r = 0;
    if (vec != NULL && mincore(m, (size_t)len, vec) == 0)
        for (size_t i = 0; i < pages; i++)
            r += (vec[i] & 1) ? (uint64_t)pg : 0;
    free(vec);
    munmap(m, (size_t)len);
    return r;
}

/* Drop the OS page cache for every file under a dir: fsync (only clean
 * pages can be dropped), POSIX_FADV_DONTNEED, then count what stayed. */
static uint64_t g_drop_resident;
static int g_drop_errors;

static int drop_cb(const char *p, const struct stat *sb, int flag,
                   struct FTW *ftw)
{
    (void)ftw;
    if (flag != FTW_F || !S_ISREG(sb->st_mode))
        return 0;
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "drop cache: open %s: %s\n", p, strerror(errno));
        g_drop_errors++;
        return 0;
    }
    int rc;
    if (fsync(fd) != 0) {
        fprintf(stderr, "drop cache: fsync %s: %s\n", p, strerror(errno));
        g_drop_errors++;
    }
    if ((rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)) != 0) {
        fprintf(stderr, "drop cache: fadvise %s: %s\n", p, strerror(rc));
        g_drop_errors++;
    }
    g_drop_resident += resident_bytes(fd, sb->st_size);
    close(fd);
    return 0;
}

/* Returns the bytes still resident after the drop, -1 on an error. */
int64_t bench_drop_cache(const char *dir)
{
    g_drop_resident = 0;
    g_drop_errors = 0;
    if (nftw(dir, drop_cb, 32, FTW_PHYS) != 0 || g_drop_errors)
        return -1;
    return (int64_t)g_drop_resident;
}

/* This process's I/O: /proc/self/io covers all its threads (the engines'
 * background threads too). write_bytes counts the page-cache pages dirtied
 * for files, i.e. what goes to storage (a page rewritten while still dirty
 * counts once, as it reaches the disk once); cancelled_write_bytes the
 * dirty pages of files truncated or deleted before writeback; wchar every
 * byte handed to write calls (the progress lines too: a few KiB). */
bool bench_proc_io(bench_io_counts *c)
{
    FILE *f = fopen("/proc/self/io", "r");
    if (f == NULL)
        return false;
    char line[128];
    int got = 0;
    unsigned long long v;
    memset(c, 0, sizeof *c);
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "wchar: %llu", &v) == 1) {
            c->wchar = v;
            got++;
        } else if (sscanf(line, "write_bytes: %llu", &v) == 1) {
            c->write_bytes = v;
            got++;
        } else if (sscanf(line, "cancelled_write_bytes: %llu", &v) == 1) {
            c->cancelled = v;
            got++;
        }
    }
    fclose(f);
    return got == 3;
}

/* ---- JSON ---- */

void bench_json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fputs("null", f);
}

void bench_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}
