/*
 * env_fault.c — an env that wraps another env and injects failures.
 *
 * Every op is forwarded to the base env; the fault env's file and lock
 * handles wrap the base's. A rule (cairn_env_fault_set) selects calls by an
 * op mask and a path substring and makes chosen ones fail:
 *   - a call "matches" when its op is in op_mask (0 = every op) and, if
 *     path_substr is set, one of its paths contains it: the path given to
 *     open, rename (from or to), unlink, list_dir, mkdir, lock, exists and
 *     sync_dir; for file ops, the path the file was opened with;
 *   - matching calls are numbered from 1; call N fails with rule.error
 *     (CAIRN_EIO when rule.error is not negative) when
 *     fail_at <= N < fail_at + max(fail_count, 1); fail_count UINT64_MAX
 *     means forever. A failing write_at with short_write first forwards a
 *     random strict prefix (possibly empty) of its buffer;
 *   - at matching call N == power_cut_at, cairn_env_mem_power_loss(base,
 *     torn, seed) runs before the call would, and from then on every call
 *     (matching or not) fails with CAIRN_EIO until cairn_env_fault_reset();
 *   - with sync_delay_us, a file sync that goes through returns that long
 *     after the base's sync ran: a slow disk, whose sync does not cover
 *     what is written while it is in flight.
 * close and unlock are never counted and never fail: they always forward
 * and free the wrapper. With no rule installed (after creation or reset)
 * nothing fails, and every call is counted, so a test can measure how many
 * calls a scenario makes and then fail each one in turn.
 *
 * Invariants: the base env outlives the fault env and all its handles; the
 * counters and the power-cut flag change only under the mutex.
 *
 * Locking: one mutex per fault env guards the rule, the counters, the PRNG
 * and the power-cut flag. It is held while deciding a call's fate and while
 * cutting power (which takes the memory env's mutex inside it), but not
 * while a call is forwarded, so forwarded calls run concurrently.
 */
#include "env/env.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn.h"

typedef struct fenv {
    cairn_env base;
    cairn_env *inner;
    pthread_mutex_t mu;
    bool has_rule;
    cairn_fault_rule rule; /* rule.path_substr points to path_substr */
    char *path_substr;
    bool match_nothing;    /* the rule's pattern could not be copied */
    uint64_t calls, injected;
    bool power_cut;
    uint64_t rng;
} fenv;

typedef struct ffile {
    cairn_file base;
    cairn_file *inner;
    char *path;
} ffile;

typedef struct flock_ {
    cairn_filelock base;
    cairn_filelock *inner;
} flock_;

static const cairn_env_ops fault_ops;

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static bool path_has(const char *path, const char *sub)
{
    return path && strstr(path, sub) != NULL;
}

/* Decide the fate of one call. Returns 0 to forward it, or the error to
 * return instead. For a write that should be short, *short_len receives the
 * number of bytes to forward before failing (otherwise SIZE_MAX). */
static int decide(fenv *fe, cairn_env_op op, const char *p1, const char *p2,
                  size_t wlen, size_t *short_len)
{
    int rc = 0;
    if (short_len)
        *short_len = SIZE_MAX;
    pthread_mutex_lock(&fe->mu);
    const cairn_fault_rule *r = &fe->rule;
    bool match;
    if (!fe->has_rule)
        match = true;
    else if (fe->match_nothing)
        match = false;
    else
        match = (r->op_mask == 0 || (r->op_mask & CAIRN_OPMASK(op))) &&
                (!r->path_substr || path_has(p1, r->path_substr) ||
                 path_has(p2, r->path_substr));
    uint64_t n = 0;
    if (match)
        n = ++fe->calls;
    if (fe->power_cut) {
        rc = CAIRN_EIO;
    } else if (match && fe->has_rule) {
        if (r->power_cut_at != 0 && n == r->power_cut_at) {
            /* Fails with CAIRN_EINVAL if the base is not a memory env; the
             * fault env still behaves as if power were cut. */
            (void)cairn_env_mem_power_loss(fe->inner, r->torn, r->seed);
            fe->power_cut = true;
            rc = CAIRN_EIO;
        } else if (r->fail_at != 0 && n >= r->fail_at) {
            uint64_t cnt = r->fail_count ? r->fail_count : 1;
            if (cnt == UINT64_MAX || n - r->fail_at < cnt) {
                rc = r->error < 0 ? r->error : CAIRN_EIO;
                if (op == CAIRN_OP_WRITE && r->short_write && short_len)
                    *short_len =
                        wlen ? (size_t)(splitmix64(&fe->rng) % wlen) : 0;
            }
        }
    }
    if (rc)
        fe->injected++;
    pthread_mutex_unlock(&fe->mu);
    return rc;
}

/* ---- file ops ---- */

static int fault_open(cairn_env *env, const char *path, int flags,
                      cairn_file **out)
{
    fenv *fe = (fenv *)env;
    if (!out)
        return CAIRN_EINVAL;
    *out = NULL;
    int rc = decide(fe, CAIRN_OP_OPEN, path, NULL, 0, NULL);
    if (rc)
        return rc;
    ffile *f = calloc(1, sizeof *f);
    if (!f)
        return CAIRN_ENOMEM;
    f->path = dupstr(path ? path : "");
    if (!f->path) {
        free(f);
        return CAIRN_ENOMEM;
    }
    rc = cairn_env_open(fe->inner, path, flags, &f->inner);
    if (rc) {
        free(f->path);
        free(f);
        return rc;
    }
    f->base.env = env;
    *out = &f->base;
    return 0;
}

static int fault_close(cairn_file *file)
{
    if (!file)
        return 0;
    ffile *f = (ffile *)file;
    int rc = cairn_file_close(f->inner);
    free(f->path);
    free(f);
    return rc;
}

static int fault_read_at(cairn_file *file, uint64_t off, void *buf,
                         size_t len, size_t *nread)
{
    ffile *f = (ffile *)file;
    if (nread)
        *nread = 0;
    int rc = decide((fenv *)file->env, CAIRN_OP_READ, f->path, NULL, 0, NULL);
    if (rc)
        return rc;
    return cairn_file_read_at(f->inner, off, buf, len, nread);
}

static int fault_write_at(cairn_file *file, uint64_t off, const void *buf,
                          size_t len)
{
    ffile *f = (ffile *)file;
    size_t short_len;
    int rc = decide((fenv *)file->env, CAIRN_OP_WRITE, f->path, NULL, len,
                    &short_len);
    if (rc) {
        if (short_len != SIZE_MAX && short_len > 0)
            (void)cairn_file_write_at(f->inner, off, buf, short_len);
        return rc;
    }
    return cairn_file_write_at(f->inner, off, buf, len);
}

static int fault_sync(cairn_file *file, int kind)
{
    ffile *f = (ffile *)file;
    fenv *fe = (fenv *)file->env;
    int rc = decide(fe, CAIRN_OP_SYNC, f->path, NULL, 0, NULL);
    if (rc)
        return rc;
    rc = cairn_file_sync(f->inner, kind);
    pthread_mutex_lock(&fe->mu);
    uint32_t delay = fe->has_rule ? fe->rule.sync_delay_us : 0;
    pthread_mutex_unlock(&fe->mu);
    if (delay)
        usleep(delay);
    return rc;
}

static int fault_truncate(cairn_file *file, uint64_t size)
{
    ffile *f = (ffile *)file;
    int rc =
        decide((fenv *)file->env, CAIRN_OP_TRUNCATE, f->path, NULL, 0, NULL);
    return rc ? rc : cairn_file_truncate(f->inner, size);
}

static int fault_allocate(cairn_file *file, uint64_t off, uint64_t len)
{
    ffile *f = (ffile *)file;
    int rc =
        decide((fenv *)file->env, CAIRN_OP_ALLOCATE, f->path, NULL, 0, NULL);
    return rc ? rc : cairn_file_allocate(f->inner, off, len);
}

static int fault_size(cairn_file *file, uint64_t *out)
{
    ffile *f = (ffile *)file;
    int rc = decide((fenv *)file->env, CAIRN_OP_SIZE, f->path, NULL, 0, NULL);
    return rc ? rc : cairn_file_size(f->inner, out);
}

/* ---- namespace ops ---- */

static int fault_sync_dir(cairn_env *env, const char *dir)
{
    fenv *fe = (fenv *)env;
    int rc = decide(fe, CAIRN_OP_SYNC_DIR, dir, NULL, 0, NULL);
    return rc ? rc : cairn_env_sync_dir(fe->inner, dir);
}

static int fault_rename(cairn_env *env, const char *from, const char *to)
{
    fenv *fe = (fenv *)env;
    int rc = decide(fe, CAIRN_OP_RENAME, from, to, 0, NULL);
    return rc ? rc : cairn_env_rename(fe->inner, from, to);
}

static int fault_unlink(cairn_env *env, const char *path)
{
    fenv *fe = (fenv *)env;
    int rc = decide(fe, CAIRN_OP_UNLINK, path, NULL, 0, NULL);
    return rc ? rc : cairn_env_unlink(fe->inner, path);
}

static int fault_list_dir(cairn_env *env, const char *dir, char ***names,
                          size_t *count)
{
    fenv *fe = (fenv *)env;
    if (names)
        *names = NULL;
    if (count)
        *count = 0;
    int rc = decide(fe, CAIRN_OP_LIST_DIR, dir, NULL, 0, NULL);
    return rc ? rc : cairn_env_list_dir(fe->inner, dir, names, count);
}

static int fault_mkdir(cairn_env *env, const char *path)
{
    fenv *fe = (fenv *)env;
    int rc = decide(fe, CAIRN_OP_MKDIR, path, NULL, 0, NULL);
    return rc ? rc : cairn_env_mkdir(fe->inner, path);
}

static int fault_lock(cairn_env *env, const char *path, cairn_filelock **out)
{
    fenv *fe = (fenv *)env;
    if (!out)
        return CAIRN_EINVAL;
    *out = NULL;
    int rc = decide(fe, CAIRN_OP_LOCK, path, NULL, 0, NULL);
    if (rc)
        return rc;
    flock_ *l = calloc(1, sizeof *l);
    if (!l)
        return CAIRN_ENOMEM;
    rc = cairn_env_lock(fe->inner, path, &l->inner);
    if (rc) {
        free(l);
        return rc;
    }
    l->base.env = env;
    *out = &l->base;
    return 0;
}

static int fault_unlock(cairn_filelock *lock)
{
    if (!lock)
        return 0;
    flock_ *l = (flock_ *)lock;
    int rc = cairn_env_unlock(l->inner);
    free(l);
    return rc;
}

static int fault_exists(cairn_env *env, const char *path)
{
    fenv *fe = (fenv *)env;
    int rc = decide(fe, CAIRN_OP_EXISTS, path, NULL, 0, NULL);
    return rc ? rc : cairn_env_exists(fe->inner, path);
}

static void fault_destroy(cairn_env *env)
{
    fenv *fe = (fenv *)env;
    if (!fe)
        return;
    pthread_mutex_destroy(&fe->mu);
    free(fe->path_substr);
    free(fe);
}

static const cairn_env_ops fault_ops = {
    .name = "fault",
    .open = fault_open,
    .close = fault_close,
    .read_at = fault_read_at,
    .write_at = fault_write_at,
    .sync = fault_sync,
    .truncate = fault_truncate,
    .allocate = fault_allocate,
    .size = fault_size,
    .sync_dir = fault_sync_dir,
    .rename = fault_rename,
    .unlink = fault_unlink,
    .list_dir = fault_list_dir,
    .mkdir = fault_mkdir,
    .lock = fault_lock,
    .unlock = fault_unlock,
    .exists = fault_exists,
    .destroy = fault_destroy,
};

/* ---- public ---- */

cairn_env *cairn_env_fault_new(cairn_env *base)
{
    if (!base)
        return NULL;
    fenv *fe = calloc(1, sizeof *fe);
    if (!fe)
        return NULL;
    if (pthread_mutex_init(&fe->mu, NULL) != 0) {
        free(fe);
        return NULL;
    }
    fe->base.ops = &fault_ops;
    fe->inner = base;
    return &fe->base;
}

static fenv *as_fault(cairn_env *env)
{
    return env && env->ops == &fault_ops ? (fenv *)env : NULL;
}

/* Install rule (NULL: remove it) and zero the counters; with restore, also
 * end the power cut. If the rule's path pattern cannot be copied for lack
 * of memory, the rule matches nothing. */
static void install(fenv *fe, const cairn_fault_rule *rule, bool restore)
{
    char *sub = NULL;
    bool oom = false;
    if (rule && rule->path_substr) {
        sub = dupstr(rule->path_substr);
        oom = sub == NULL;
    }
    pthread_mutex_lock(&fe->mu);
    free(fe->path_substr);
    fe->path_substr = sub;
    fe->has_rule = rule != NULL;
    if (rule) {
        fe->rule = *rule;
        fe->rule.path_substr = sub;
    } else {
        memset(&fe->rule, 0, sizeof fe->rule);
    }
    fe->match_nothing = oom;
    fe->rng = rule ? rule->seed : 0;
    fe->calls = 0;
    fe->injected = 0;
    if (restore)
        fe->power_cut = false;
    pthread_mutex_unlock(&fe->mu);
}

void cairn_env_fault_set(cairn_env *env, const cairn_fault_rule *rule)
{
    fenv *fe = as_fault(env);
    if (fe)
        install(fe, rule, false);
}

void cairn_env_fault_reset(cairn_env *env)
{
    fenv *fe = as_fault(env);
    if (fe)
        install(fe, NULL, true);
}

uint64_t cairn_env_fault_calls(cairn_env *env)
{
    fenv *fe = as_fault(env);
    if (!fe)
        return 0;
    pthread_mutex_lock(&fe->mu);
    uint64_t v = fe->calls;
    pthread_mutex_unlock(&fe->mu);
    return v;
}

uint64_t cairn_env_fault_injected(cairn_env *env)
{
    fenv *fe = as_fault(env);
    if (!fe)
        return 0;
    pthread_mutex_lock(&fe->mu);
    uint64_t v = fe->injected;
    pthread_mutex_unlock(&fe->mu);
    return v;
}

bool cairn_env_fault_power_is_cut(cairn_env *env)
{
    fenv *fe = as_fault(env);
    if (!fe)
        return false;
    pthread_mutex_lock(&fe->mu);
    bool v = fe->power_cut;
    pthread_mutex_unlock(&fe->mu);
    return v;
}
