/*
 * test_util.h — helpers shared by the unit tests: a deterministic PRNG,
 * temporary directories (removed afterwards), and a payload generator whose
 * bytes can be recomputed from (seed, length) so tests can verify records
 * without keeping copies; a growable byte buffer. Header-only; each test is
 * one program.
 */
#ifndef CAIRN_TEST_UTIL_H
#define CAIRN_TEST_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline uint64_t tu_splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t tu_rand(uint64_t *s, uint64_t n)
{
    return n ? tu_splitmix(s) % n : 0;
}

/* Fill buf with bytes determined by (seed, len). */
static inline void tu_fill(void *buf, size_t len, uint64_t seed)
{
    uint8_t *p = buf;
    uint64_t s = seed * 0x2545F4914F6CDD1Dull + len;
    size_t i = 0;
    while (i + 8 <= len) {
        uint64_t v = tu_splitmix(&s);
        memcpy(p + i, &v, 8);
        i += 8;
    }
    if (i < len) {
        uint64_t v = tu_splitmix(&s);
        memcpy(p + i, &v, len - i);
    }
}

static inline int tu_check(const void *buf, size_t len, uint64_t seed)
{
    uint8_t *tmp = malloc(len ? len : 1);
    if (!tmp)
        return 0;
    tu_fill(tmp, len, seed);
    int ok = memcmp(tmp, buf, len) == 0;
    free(tmp);
    return ok;
}

/* A fresh directory under $TMPDIR (or /tmp); caller frees the string. */
static inline char *tu_mkdtemp(const char *tag)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    char *p = malloc(strlen(base) + strlen(tag) + 32);
    if (!p)
        return NULL;
    sprintf(p, "%s/cairn-%s-XXXXXX", base, tag);
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

static inline void tu_rmrf(const char *path)
{
    char *cmd = malloc(strlen(path) + 16);
    if (!cmd)
        return;
    sprintf(cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", path);
    free(cmd);
}

/* A growable byte buffer (out of memory ends the test program). */
typedef struct tbuf {
    uint8_t *p;
    size_t len, cap;
} tbuf;

static inline void tb_put(tbuf *t, const void *p, size_t n)
{
    if (t->len + n > t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 256;
        while (nc < t->len + n)
            nc *= 2;
        uint8_t *np = realloc(t->p, nc);
        if (!np) {
            fprintf(stderr, "test: out of memory\n");
            exit(1);
        }
        t->p = np;
        t->cap = nc;
    }
    if (n)
        memcpy(t->p + t->len, p, n);
    t->len += n;
}

static inline void tb_free(tbuf *t)
{
    free(t->p);
    memset(t, 0, sizeof *t);
}

/* Number of iterations: the env variable if set, else the default. */
static inline uint64_t tu_env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : dflt;
}

#endif /* CAIRN_TEST_UTIL_H */
