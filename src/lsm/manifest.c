/*
 * manifest.c — the manifest log: encoding of version edits, replay on open,
 * durable appends, rollover into a new manifest, the CURRENT pointer.
 *
 * Byte layout and recovery rules: docs/format/manifest.md.
 *
 * Invariants:
 *   - m->current is the version built by replaying (or writing) every
 *     record of the live manifest m->file, whose valid length is m->size;
 *     nothing is installed in m->current before its record is durable.
 *   - the counter m->next_file is >= every file number in m->current + 1,
 *     >= the live manifest's number + 1 and >= the next file number recorded
 *     on disk; it only grows.
 *   - once m->error is set (an I/O failure while logging), no byte is ever
 *     written again through this handle.
 *
 * Locking: write_mu serializes cairn_manifest_log_and_apply() (and covers
 *   m->file, m->size, m->number, m->snap_size, m->name, m->errmsg); the I/O
 *   of an edit runs under it. mu guards the m->current pointer only, held
 *   for a pointer swap or a reference, never across I/O, so readers taking
 *   the current version never wait for an fsync. next_file and error are
 *   atomics.
 */
#include "lsm/manifest.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cairn.h"
#include "util/coding.h"

static const char MAGIC[8] = {'C', 'A', 'I', 'R', 'N', 'M', 'F', 'T'};

/* Tags of the edit encoding. */
enum {
    TAG_NEXT_FILE = 1,
    TAG_LOG_LSN = 2,
    TAG_LAST_VERSION = 3,
    TAG_COMPACT_POINTER = 4,
    TAG_DELETE_FILE = 5,
    TAG_ADD_FILE = 6,
    TAG_SET_TIER = 7,
    TAG_HORIZON = 8,
    TAG_IO = 9,
    TAG_MAX = 9,
};

#define MAX_CURRENT 64 /* "MANIFEST-" + 20 digits + "\n" fits easily */

struct cairn_manifest {
    cairn_env *env;
    char *dir;
    char *current_path; /* dir/CURRENT */
    char *tmp_path;     /* dir/CURRENT.tmp */
    char *path_buf;     /* scratch for dir/MANIFEST-N, dir/N.sst */
    size_t path_cap;
    cairn_manifest_options opts;

    pthread_mutex_t write_mu;
    cairn_file *file;   /* live manifest (NULL when read-only) */
    uint64_t number;    /* live manifest's number */
    uint64_t size;      /* valid bytes of the live manifest */
    uint64_t snap_size; /* header + snapshot record of the live manifest */
    char name[64];
    char errmsg[768];

    pthread_mutex_t mu;
    cairn_version *current;

    atomic_uint_fast64_t next_file;
    atomic_int error;
};

/* ---- small helpers ---- */

static void fmt_msg(char *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt_msg(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

static const char *manifest_path(cairn_manifest *m, uint64_t number)
{
    snprintf(m->path_buf, m->path_cap, "%s/MANIFEST-%06" PRIu64, m->dir,
             number);
    return m->path_buf;
}

static void bump_next(cairn_manifest *m, uint64_t v)
{
    uint64_t cur = atomic_load(&m->next_file);
    while (cur < v && !atomic_compare_exchange_weak(&m->next_file, &cur, v))
        ;
}

/* ---- names ---- */

int cairn_lsm_sst_name(char *buf, size_t n, uint64_t number)
{
    int w = snprintf(buf, n, "%06" PRIu64 ".sst", number);
    return w < 0 || (size_t)w >= n ? CAIRN_EINVAL : 0;
}

int cairn_lsm_sst_path(char *buf, size_t n, const char *dir, uint64_t number)
{
    int w = snprintf(buf, n, "%s/%06" PRIu64 ".sst", dir, number);
    return w < 0 || (size_t)w >= n ? CAIRN_EINVAL : 0;
}

/* Parse a canonical "%06llu" number from s[0..len): digits only, value >= 1,
 * and printing it back gives the same text (so "0000012" is refused). */
static bool parse_number(const char *s, size_t len, uint64_t *out)
{
    if (len < 6 || len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    char tmp[32];
    int w = snprintf(tmp, sizeof tmp, "%06" PRIu64, v);
    if (v == 0 || w < 0 || (size_t)w != len || memcmp(tmp, s, len) != 0)
        return false;
    *out = v;
    return true;
}

bool cairn_lsm_parse_sst_name(const char *name, uint64_t *number)
{
    size_t n = name ? strlen(name) : 0;
    uint64_t v;
    if (n < 4 || memcmp(name + n - 4, ".sst", 4) != 0 ||
        !parse_number(name, n - 4, &v))
        return false;
    if (number)
        *number = v;
    return true;
}

bool cairn_lsm_parse_manifest_name(const char *name, uint64_t *number)
{
    size_t n = name ? strlen(name) : 0;
    uint64_t v;
    if (n < 9 || memcmp(name, "MANIFEST-", 9) != 0 ||
        !parse_number(name + 9, n - 9, &v))
        return false;
    if (number)
        *number = v;
    return true;
}

/* ---- growable byte buffer ---- */

typedef struct bbuf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} bbuf;

static bool bb_reserve(bbuf *b, size_t more)
{
    if (b->oom)
        return false;
    if (more <= b->cap - b->n)
        return true;
    if (more > SIZE_MAX / 2 - b->n) {
        b->oom = true;
        return false;
    }
    size_t nc = b->cap ? b->cap : 256;
    while (nc - b->n < more)
        nc *= 2;
    uint8_t *p = realloc(b->p, nc);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = nc;
    return true;
}

static void bb_bytes(bbuf *b, const void *src, size_t len)
{
    if (len && bb_reserve(b, len)) {
        memcpy(b->p + b->n, src, len);
        b->n += len;
    }
}

static void bb_u8(bbuf *b, uint8_t v) { bb_bytes(b, &v, 1); }

static void bb_varint(bbuf *b, uint64_t v)
{
    uint8_t tmp[CAIRN_VARINT64_MAX];
    bb_bytes(b, tmp, cairn_put_varint64(tmp, v));
}

/* ---- edit encoding ---- */

static void enc_pointer(bbuf *b, uint32_t level, const uint8_t *k, size_t len)
{
    bb_varint(b, TAG_COMPACT_POINTER);
    bb_varint(b, level);
    bb_varint(b, len);
    bb_bytes(b, k, len);
}

static void enc_add(bbuf *b, const cairn_file_meta *f)
{
    bb_varint(b, TAG_ADD_FILE);
    bb_varint(b, f->level);
    bb_varint(b, f->number);
    bb_varint(b, f->file_size);
    bb_varint(b, f->smallest.ulen);
    bb_bytes(b, f->smallest.ukey, f->smallest.ulen);
    bb_varint(b, f->smallest.version);
    bb_varint(b, f->largest.ulen);
    bb_bytes(b, f->largest.ukey, f->largest.ulen);
    bb_varint(b, f->largest.version);
    bb_varint(b, f->min_version);
    bb_varint(b, f->max_version);
    bb_varint(b, f->entries);
    bb_varint(b, f->tombstones);
    bb_u8(b, f->tier);
    bb_varint(b, f->created_us);
}

static void enc_edit(bbuf *b, const cairn_version_edit *e)
{
    if (e->has_next_file) {
        bb_varint(b, TAG_NEXT_FILE);
        bb_varint(b, e->next_file);
    }
    if (e->has_log_lsn) {
        bb_varint(b, TAG_LOG_LSN);
        bb_varint(b, e->log_lsn);
    }
    if (e->has_last_version) {
        bb_varint(b, TAG_LAST_VERSION);
        bb_varint(b, e->last_version);
    }
    if (e->has_horizon) {
        bb_varint(b, TAG_HORIZON);
        bb_varint(b, e->horizon);
        bb_varint(b, e->horizon_ts);
    }
    if (e->has_io) {
        bb_varint(b, TAG_IO);
        bb_varint(b, e->io_user_bytes);
        bb_varint(b, e->io_written_bytes);
    }
    for (size_t i = 0; i < e->npointers; i++)
        enc_pointer(b, e->pointers[i].level, e->pointers[i].key,
                    e->pointers[i].len);
    for (size_t i = 0; i < e->ndeleted; i++) {
        bb_varint(b, TAG_DELETE_FILE);
        bb_varint(b, e->deleted[i].level);
        bb_varint(b, e->deleted[i].number);
    }
    for (size_t i = 0; i < e->nadded; i++)
        enc_add(b, e->added[i]);
    for (size_t i = 0; i < e->ntiers; i++) {
        bb_varint(b, TAG_SET_TIER);
        bb_varint(b, e->tiers[i].level);
        bb_varint(b, e->tiers[i].number);
        bb_u8(b, e->tiers[i].tier);
    }
}

static void enc_snapshot(bbuf *b, const cairn_version *v)
{
    bb_varint(b, TAG_NEXT_FILE);
    bb_varint(b, cairn_version_next_file(v));
    bb_varint(b, TAG_LOG_LSN);
    bb_varint(b, cairn_version_log_lsn(v));
    bb_varint(b, TAG_LAST_VERSION);
    bb_varint(b, cairn_version_last_version(v));
    bb_varint(b, TAG_HORIZON);
    bb_varint(b, cairn_version_horizon(v));
    bb_varint(b, cairn_version_horizon_ts(v));
    uint64_t iou, iow;
    cairn_version_io(v, &iou, &iow);
    bb_varint(b, TAG_IO);
    bb_varint(b, iou);
    bb_varint(b, iow);
    for (int l = 0; l < CAIRN_LSM_MAX_LEVELS; l++) {
        const uint8_t *k = NULL;
        size_t len;
        if (cairn_version_compact_pointer(v, l, &k, &len))
            enc_pointer(b, (uint32_t)l, k, len);
    }
    for (int l = 0; l < CAIRN_LSM_MAX_LEVELS; l++)
        for (size_t i = 0; i < cairn_version_num_files(v, l); i++)
            enc_add(b, cairn_version_file(v, l, i));
}

static int bb_finish(bbuf *b, uint8_t **buf, size_t *len)
{
    if (b->oom) {
        free(b->p);
        return CAIRN_ENOMEM;
    }
    *buf = b->p;
    *len = b->n;
    return 0;
}

int cairn_version_edit_encode(const cairn_version_edit *e, uint8_t **buf,
                              size_t *len)
{
    if (!e || !buf || !len)
        return CAIRN_EINVAL;
    bbuf b = {0};
    enc_edit(&b, e);
    return bb_finish(&b, buf, len);
}

int cairn_version_encode_snapshot(const cairn_version *v, uint8_t **buf,
                                  size_t *len)
{
    if (!v || !buf || !len)
        return CAIRN_EINVAL;
    bbuf b = {0};
    enc_snapshot(&b, v);
    return bb_finish(&b, buf, len);
}

/* ---- edit decoding ---- */

typedef struct rd {
    const uint8_t *p, *start, *end;
    char *err;
    size_t errlen;
} rd;

static int rd_fail(rd *r, const char *what)
{
    if (r->err && r->errlen)
        fmt_msg(r->err, r->errlen, "%s at payload byte %zu", what,
                (size_t)(r->p - r->start));
    return CAIRN_ECORRUPT;
}

static int rd_varint(rd *r, uint64_t *v)
{
    const uint8_t *q = cairn_get_varint64(r->p, r->end, v);
    if (!q)
        return rd_fail(r, "bad varint (truncated, or over 64 bits)");
    r->p = q;
    return 0;
}

static int rd_level(rd *r, uint32_t *level)
{
    uint64_t v;
    int rc = rd_varint(r, &v);
    if (rc)
        return rc;
    if (v >= CAIRN_LSM_MAX_LEVELS)
        return rd_fail(r, "level above 7");
    *level = (uint32_t)v;
    return 0;
}

static int rd_u8(rd *r, uint8_t *v)
{
    if (r->p >= r->end)
        return rd_fail(r, "truncated field");
    *v = *r->p++;
    return 0;
}

/* A length-prefixed key; *k points into the payload. */
static int rd_key(rd *r, const uint8_t **k, size_t *len)
{
    uint64_t n;
    int rc = rd_varint(r, &n);
    if (rc)
        return rc;
    if (n > 0xFFFFFFFFull)
        return rd_fail(r, "key longer than 2^32-1 bytes");
    if (n > (uint64_t)(r->end - r->p))
        return rd_fail(r, "key runs past the end of the record");
    *k = r->p;
    *len = (size_t)n;
    r->p += n;
    return 0;
}

static int rd_add(rd *r, cairn_version_edit *e)
{
    cairn_file_meta t;
    memset(&t, 0, sizeof t);
    int rc;
    if ((rc = rd_level(r, &t.level)) || (rc = rd_varint(r, &t.number)) ||
        (rc = rd_varint(r, &t.file_size)) ||
        (rc = rd_key(r, &t.smallest.ukey, &t.smallest.ulen)) ||
        (rc = rd_varint(r, &t.smallest.version)) ||
        (rc = rd_key(r, &t.largest.ukey, &t.largest.ulen)) ||
        (rc = rd_varint(r, &t.largest.version)) ||
        (rc = rd_varint(r, &t.min_version)) ||
        (rc = rd_varint(r, &t.max_version)) ||
        (rc = rd_varint(r, &t.entries)) ||
        (rc = rd_varint(r, &t.tombstones)) || (rc = rd_u8(r, &t.tier)) ||
        (rc = rd_varint(r, &t.created_us)))
        return rc;
    cairn_file_meta *m = cairn_file_meta_new(&t);
    if (!m)
        return CAIRN_ENOMEM;
    rc = cairn_version_edit_add_meta(e, m);
    cairn_file_meta_unref(m);
    return rc;
}

int cairn_version_edit_decode(const uint8_t *buf, size_t len,
                              cairn_version_edit *e, char *err, size_t errlen)
{
    if (!e || (!buf && len))
        return CAIRN_EINVAL;
    cairn_version_edit_init(e);
    if (err && errlen)
        err[0] = '\0';
    rd r = {buf, buf, buf + len, err, errlen};
    while (r.p < r.end) {
        uint64_t tag = 0, v = 0, num = 0;
        uint32_t level = 0;
        uint8_t tier = 0;
        const uint8_t *k = NULL;
        size_t klen = 0;
        int rc = rd_varint(&r, &tag);
        if (rc)
            return rc;
        switch (tag) {
        case TAG_NEXT_FILE:
            if ((rc = rd_varint(&r, &v)) == 0)
                cairn_version_edit_set_next_file(e, v);
            break;
        case TAG_LOG_LSN:
            if ((rc = rd_varint(&r, &v)) == 0)
                cairn_version_edit_set_log_lsn(e, v);
            break;
        case TAG_LAST_VERSION:
            if ((rc = rd_varint(&r, &v)) == 0)
                cairn_version_edit_set_last_version(e, v);
            break;
        case TAG_HORIZON:
            if ((rc = rd_varint(&r, &v)) == 0 &&
                (rc = rd_varint(&r, &num)) == 0)
                cairn_version_edit_set_horizon(e, v, num);
            break;
        case TAG_IO:
            if ((rc = rd_varint(&r, &v)) == 0 &&
                (rc = rd_varint(&r, &num)) == 0)
                cairn_version_edit_set_io(e, v, num);
            break;
        case TAG_COMPACT_POINTER:
            if ((rc = rd_level(&r, &level)) == 0 &&
                (rc = rd_key(&r, &k, &klen)) == 0)
                rc = cairn_version_edit_set_compact_pointer(e, (int)level, k,
                                                            klen);
            break;
        case TAG_DELETE_FILE:
            if ((rc = rd_level(&r, &level)) == 0 &&
                (rc = rd_varint(&r, &num)) == 0)
                rc = cairn_version_edit_delete_file(e, (int)level, num);
            break;
        case TAG_ADD_FILE:
            rc = rd_add(&r, e);
            break;
        case TAG_SET_TIER:
            if ((rc = rd_level(&r, &level)) == 0 &&
                (rc = rd_varint(&r, &num)) == 0 &&
                (rc = rd_u8(&r, &tier)) == 0)
                rc = cairn_version_edit_set_tier(e, (int)level, num, tier);
            break;
        case 0:
            return rd_fail(&r, "tag 0");
        default:
            if (err && errlen)
                fmt_msg(err, errlen, "unknown tag %" PRIu64
                        " (written by a newer format) at payload byte %zu",
                        tag, (size_t)(r.p - r.start));
            return CAIRN_EVERSION;
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- record framing ---- */

static uint64_t record_checksum(const uint8_t *hdr, const uint8_t *payload,
                                size_t len)
{
    return XXH3_64bits_withSeed(hdr + 8, 8, XXH3_64bits(payload, len));
}

/* Append a framed record (header + payload) to b. */
static void bb_record(bbuf *b, uint8_t kind, const uint8_t *payload,
                      size_t len)
{
    uint8_t hdr[CAIRN_MANIFEST_RECORD_HEADER_SIZE] = {0};
    cairn_put_u32(hdr + 8, (uint32_t)len);
    hdr[12] = kind;
    cairn_put_u64(hdr, record_checksum(hdr, payload, len));
    bb_bytes(b, hdr, sizeof hdr);
    bb_bytes(b, payload, len);
}

static void bb_file_header(bbuf *b, uint64_t number)
{
    uint8_t h[CAIRN_MANIFEST_HEADER_SIZE];
    memcpy(h, MAGIC, 8);
    cairn_put_u32(h + 8, CAIRN_MANIFEST_FORMAT_VERSION);
    cairn_put_u32(h + 12, CAIRN_MANIFEST_HEADER_SIZE);
    cairn_put_u64(h + 16, number);
    cairn_put_u64(h + 24, XXH3_64bits(h, 24));
    bb_bytes(b, h, sizeof h);
}

/* Is there a record at off whose framing and checksum are valid? Sets *len
 * and *kind when so. */
static bool record_at(const uint8_t *buf, size_t size, size_t off,
                      uint32_t *len, uint8_t *kind)
{
    if (off > size || size - off < CAIRN_MANIFEST_RECORD_HEADER_SIZE)
        return false;
    const uint8_t *h = buf + off;
    uint32_t n = cairn_get_u32(h + 8);
    if (n == 0 || n > size - off - CAIRN_MANIFEST_RECORD_HEADER_SIZE)
        return false;
    if (record_checksum(h, h + CAIRN_MANIFEST_RECORD_HEADER_SIZE, n) !=
        cairn_get_u64(h))
        return false;
    *len = n;
    *kind = h[12];
    return true;
}

/* After a bad record at off: the offset of a valid record further on, or 0
 * if there is none (then the bad bytes are a torn tail). */
static size_t valid_record_after(const uint8_t *buf, size_t size, size_t off)
{
    uint32_t len;
    uint8_t kind;
    /* Where the bad record's own length says the next one starts. */
    if (size - off >= CAIRN_MANIFEST_RECORD_HEADER_SIZE) {
        uint64_t next = (uint64_t)off + CAIRN_MANIFEST_RECORD_HEADER_SIZE +
                        cairn_get_u32(buf + off + 8);
        if (next < size && record_at(buf, size, (size_t)next, &len, &kind))
            return (size_t)next;
    }
    for (size_t p = off + 1;
         p + CAIRN_MANIFEST_RECORD_HEADER_SIZE <= size; p++) {
        const uint8_t *h = buf + p;
        /* cheap filter before hashing: kind set, reserved bytes zero */
        if (h[12] == 0 || h[13] || h[14] || h[15])
            continue;
        if (record_at(buf, size, p, &len, &kind))
            return p;
    }
    return 0;
}

/* ---- file I/O helpers ---- */

static int read_all(cairn_file *f, uint8_t **out, size_t *outlen)
{
    uint64_t size;
    int rc = cairn_file_size(f, &size);
    if (rc)
        return rc;
    if (size > SIZE_MAX - 1)
        return CAIRN_ENOMEM;
    uint8_t *buf = malloc(size ? (size_t)size : 1);
    if (!buf)
        return CAIRN_ENOMEM;
    size_t got = 0;
    while (got < size) {
        size_t n = 0;
        rc = cairn_file_read_at(f, got, buf + got, (size_t)size - got, &n);
        if (rc) {
            free(buf);
            return rc;
        }
        if (n == 0)
            break; /* shrank meanwhile: take what is there */
        got += n;
    }
    *out = buf;
    *outlen = got;
    return 0;
}

/* Read CURRENT: the live manifest's number. CAIRN_ENOTFOUND if missing. */
static int read_current(cairn_manifest *m, uint64_t *number, char *msg,
                        size_t msglen)
{
    cairn_file *f;
    int rc = cairn_env_open(m->env, m->current_path, CAIRN_OPEN_READ, &f);
    if (rc) {
        if (rc == CAIRN_ENOTFOUND)
            fmt_msg(msg, msglen, "%s: no CURRENT file", m->dir);
        return rc;
    }
    char buf[MAX_CURRENT + 1];
    size_t got = 0;
    while (got < sizeof buf) {
        size_t n = 0;
        rc = cairn_file_read_at(f, got, buf + got, sizeof buf - got, &n);
        if (rc || n == 0)
            break;
        got += n;
    }
    cairn_file_close(f);
    if (rc)
        return rc;
    if (got == 0 || got > MAX_CURRENT || buf[got - 1] != '\n') {
        fmt_msg(msg, msglen, "%s: CURRENT does not hold a manifest name "
                "followed by a newline (%zu bytes)", m->current_path, got);
        return CAIRN_ECORRUPT;
    }
    buf[got - 1] = '\0';
    if (memchr(buf, '\0', got - 1) ||
        !cairn_lsm_parse_manifest_name(buf, number)) {
        fmt_msg(msg, msglen, "%s: CURRENT does not hold a manifest name",
                m->current_path);
        return CAIRN_ECORRUPT;
    }
    return 0;
}

/* Point CURRENT at MANIFEST-number, atomically and durably. */
static int set_current(cairn_manifest *m, uint64_t number)
{
    char text[MAX_CURRENT];
    int w = snprintf(text, sizeof text, "MANIFEST-%06" PRIu64 "\n", number);
    int rc = cairn_env_unlink(m->env, m->tmp_path);
    if (rc && rc != CAIRN_ENOTFOUND)
        return rc;
    cairn_file *f;
    rc = cairn_env_open(m->env, m->tmp_path,
                        CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE | CAIRN_OPEN_EXCL,
                        &f);
    if (rc)
        return rc;
    rc = cairn_file_write_at(f, 0, text, (size_t)w);
    if (rc == 0)
        rc = cairn_file_sync(f, CAIRN_SYNC_DATA);
    cairn_file_close(f);
    if (rc == 0)
        rc = cairn_env_rename(m->env, m->tmp_path, m->current_path);
    if (rc == 0)
        rc = cairn_env_sync_dir(m->env, m->dir);
    return rc;
}

/* Write a new manifest holding the snapshot image (file header + snapshot
 * record), make it durable, switch CURRENT to it, then retire the old one.
 * On failure nothing of m changes (the caller makes the error sticky). */
static int switch_manifest(cairn_manifest *m, uint64_t number,
                           const uint8_t *image, size_t len)
{
    const char *path = manifest_path(m, number);
    cairn_file *f;
    int rc = cairn_env_open(m->env, path,
                            CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE |
                                CAIRN_OPEN_EXCL,
                            &f);
    if (rc) {
        fmt_msg(m->errmsg, sizeof m->errmsg, "creating %s failed: %s", path,
                cairn_strerror(rc));
        return rc;
    }
    rc = cairn_file_write_at(f, 0, image, len);
    if (rc == 0)
        rc = cairn_file_sync(f, CAIRN_SYNC_DATA);
    if (rc == 0)
        rc = cairn_env_sync_dir(m->env, m->dir);
    if (rc) {
        fmt_msg(m->errmsg, sizeof m->errmsg, "writing %s failed: %s", path,
                cairn_strerror(rc));
        cairn_file_close(f);
        return rc;
    }
    rc = set_current(m, number);
    if (rc) {
        fmt_msg(m->errmsg, sizeof m->errmsg,
                "switching CURRENT to MANIFEST-%06" PRIu64 " failed: %s",
                number, cairn_strerror(rc));
        cairn_file_close(f);
        return rc;
    }
    if (m->file) {
        cairn_file_close(m->file);
        /* Best effort: a leftover is deleted by the next open. */
        (void)cairn_env_unlink(m->env, manifest_path(m, m->number));
    }
    m->file = f;
    m->number = number;
    m->size = len;
    m->snap_size = len;
    snprintf(m->name, sizeof m->name, "MANIFEST-%06" PRIu64, number);
    return 0;
}

/* ---- replay ---- */

/* Read the live manifest, building m->current. */
static int replay(cairn_manifest *m, uint64_t number, cairn_manifest_info *info)
{
    char *msg = info->message;
    size_t ml = sizeof info->message;
    snprintf(m->name, sizeof m->name, "MANIFEST-%06" PRIu64, number);
    snprintf(info->manifest, sizeof info->manifest, "%s", m->name);
    const char *path = manifest_path(m, number);
    cairn_file *f;
    int rc = cairn_env_open(m->env, path,
                            m->opts.read_only ? CAIRN_OPEN_READ
                                              : CAIRN_OPEN_WRITE,
                            &f);
    if (rc == CAIRN_ENOTFOUND) {
        fmt_msg(msg, ml, "CURRENT names %s, which does not exist", m->name);
        return CAIRN_ECORRUPT;
    }
    if (rc)
        return rc;
    uint8_t *buf = NULL;
    size_t size = 0;
    cairn_version *v = NULL;
    cairn_version_edit e;
    cairn_version_edit_init(&e);
    if ((rc = read_all(f, &buf, &size)) != 0)
        goto out;

    /* header */
    if (size < CAIRN_MANIFEST_HEADER_SIZE || memcmp(buf, MAGIC, 8) != 0 ||
        XXH3_64bits(buf, 24) != cairn_get_u64(buf + 24)) {
        fmt_msg(msg, ml, "%s: bad header (offset 0)", m->name);
        rc = CAIRN_ECORRUPT;
        goto out;
    }
    if (cairn_get_u32(buf + 8) > CAIRN_MANIFEST_FORMAT_VERSION) {
        fmt_msg(msg, ml, "%s: format version %" PRIu32 " is newer than %u "
                "(offset 8)", m->name, cairn_get_u32(buf + 8),
                CAIRN_MANIFEST_FORMAT_VERSION);
        rc = CAIRN_EVERSION;
        goto out;
    }
    if (cairn_get_u32(buf + 8) == 0 ||
        cairn_get_u32(buf + 12) != CAIRN_MANIFEST_HEADER_SIZE ||
        cairn_get_u64(buf + 16) != number) {
        fmt_msg(msg, ml, "%s: bad header fields (offset 0)", m->name);
        rc = CAIRN_ECORRUPT;
        goto out;
    }

    if (!(v = cairn_version_new_empty())) {
        rc = CAIRN_ENOMEM;
        goto out;
    }
    size_t off = CAIRN_MANIFEST_HEADER_SIZE;
    uint64_t nrec = 0;
    while (off < size) {
        uint32_t len;
        uint8_t kind;
        if (!record_at(buf, size, off, &len, &kind)) {
            size_t after = nrec == 0 ? 0 : valid_record_after(buf, size, off);
            if (nrec == 0) {
                fmt_msg(msg, ml, "%s: the snapshot record at offset %zu is "
                        "damaged", m->name, off);
                rc = CAIRN_ECORRUPT;
            } else if (after) {
                fmt_msg(msg, ml, "%s: record at offset %zu is damaged, and "
                        "a valid record follows at offset %zu", m->name, off,
                        after);
                rc = CAIRN_ECORRUPT;
            } else {
                info->torn_offset = off;
                info->torn_bytes = size - off;
                fmt_msg(msg, ml, "%s: torn tail of %zu bytes at offset %zu "
                        "(an unacknowledged edit) %s", m->name, size - off,
                        off, m->opts.read_only ? "ignored" : "cut off");
                break;
            }
            info->error_offset = off;
            goto out;
        }
        const uint8_t *h = buf + off;
        if (kind != CAIRN_MANIFEST_SNAPSHOT && kind != CAIRN_MANIFEST_EDIT) {
            fmt_msg(msg, ml, "%s: record at offset %zu has unknown kind %u "
                    "(written by a newer format)", m->name, off, kind);
            rc = CAIRN_EVERSION;
        } else if (h[13] || h[14] || h[15]) {
            fmt_msg(msg, ml, "%s: record at offset %zu has non-zero reserved "
                    "bytes", m->name, off);
            rc = CAIRN_ECORRUPT;
        } else if ((nrec == 0) != (kind == CAIRN_MANIFEST_SNAPSHOT)) {
            fmt_msg(msg, ml, nrec == 0
                    ? "%s: first record (offset %zu) is not a snapshot"
                    : "%s: snapshot record at offset %zu is not the first",
                    m->name, off);
            rc = CAIRN_ECORRUPT;
        }
        if (rc) {
            info->error_offset = off;
            goto out;
        }
        char why[512];
        cairn_version_edit_clear(&e);
        rc = cairn_version_edit_decode(h + CAIRN_MANIFEST_RECORD_HEADER_SIZE,
                                       len, &e, why, sizeof why);
        cairn_version *nv = NULL;
        if (rc == 0)
            rc = cairn_version_apply(v, &e, CAIRN_LSM_MAX_LEVELS, &nv, why,
                                     sizeof why);
        if (rc) {
            if (rc == CAIRN_EINVAL)
                rc = CAIRN_ECORRUPT;
            if (rc != CAIRN_ENOMEM) {
                fmt_msg(msg, ml, "%s: record at offset %zu: %s", m->name, off,
                        why);
                info->error_offset = off;
            }
            goto out;
        }
        cairn_version_unref(v);
        v = nv;
        if (kind == CAIRN_MANIFEST_SNAPSHOT)
            m->snap_size =
                (uint64_t)off + CAIRN_MANIFEST_RECORD_HEADER_SIZE + len;
        off += CAIRN_MANIFEST_RECORD_HEADER_SIZE + (size_t)len;
        nrec++;
    }
    if (nrec == 0) {
        fmt_msg(msg, ml, "%s: holds no snapshot record (offset %zu)",
                m->name, off);
        info->error_offset = off;
        rc = CAIRN_ECORRUPT;
        goto out;
    }
    info->records = nrec;
    info->bytes = off;
    if (!m->opts.read_only) {
        /* Cut a torn tail; and sync in any case: what this open read (a
         * record whose own sync failed, say) must not vanish in a later
         * crash once the caller has acted on it. */
        rc = off < size ? cairn_file_truncate(f, off) : 0;
        if (rc == 0)
            rc = cairn_file_sync(f, CAIRN_SYNC_DATA);
        if (rc) {
            fmt_msg(msg, ml, "%s: %s failed: %s", m->name,
                    off < size ? "cutting the torn tail" : "syncing",
                    cairn_strerror(rc));
            goto out;
        }
    }
    m->number = number;
    m->size = off;
    m->current = v;
    v = NULL;
    if (m->opts.read_only) {
        cairn_file_close(f);
        f = NULL;
    }
    m->file = f;
    f = NULL;
out:
    cairn_version_edit_clear(&e);
    cairn_version_unref(v);
    free(buf);
    if (f)
        cairn_file_close(f);
    return rc;
}

/* List dir: raise the counter above every file number named there; with
 * cleanup, sync the directory, then delete every manifest but the live one
 * and CURRENT.tmp. */
static int scan_dir(cairn_manifest *m, bool cleanup)
{
    char **names = NULL;
    size_t n = 0;
    int rc = cairn_env_list_dir(m->env, m->dir, &names, &n);
    if (rc)
        return rc;
    bool stale = false;
    for (size_t i = 0; i < n; i++) {
        uint64_t num;
        if (cairn_lsm_parse_sst_name(names[i], &num)) {
            bump_next(m, num + 1);
        } else if (cairn_lsm_parse_manifest_name(names[i], &num)) {
            bump_next(m, num + 1);
            if (num != m->number)
                stale = true;
        } else if (strcmp(names[i], "CURRENT.tmp") == 0) {
            stale = true;
        }
    }
    if (cleanup) {
        /* Make CURRENT's present entry durable (the state just read must
         * survive a crash), and do so before removing what an older
         * CURRENT might still name. */
        rc = cairn_env_sync_dir(m->env, m->dir);
        for (size_t i = 0; rc == 0 && stale && i < n; i++) {
            uint64_t num;
            bool del = strcmp(names[i], "CURRENT.tmp") == 0 ||
                       (cairn_lsm_parse_manifest_name(names[i], &num) &&
                        num != m->number);
            if (!del)
                continue;
            char *p = join(m->dir, names[i]);
            if (p)
                (void)cairn_env_unlink(m->env, p); /* best effort */
            free(p);
        }
    }
    cairn_env_free_list(names, n);
    return rc;
}

/* Encode the new manifest's image: file header + snapshot of v. */
static int snapshot_image(uint64_t number, const cairn_version *v,
                          uint8_t **img, size_t *len)
{
    uint8_t *payload;
    size_t plen;
    int rc = cairn_version_encode_snapshot(v, &payload, &plen);
    if (rc)
        return rc;
    if (plen > 0xFFFFFFFFull) {
        free(payload);
        return CAIRN_ETOOLARGE;
    }
    bbuf b = {0};
    bb_file_header(&b, number);
    bb_record(&b, CAIRN_MANIFEST_SNAPSHOT, payload, plen);
    free(payload);
    return bb_finish(&b, img, len);
}

/* ---- open / close ---- */

void cairn_manifest_options_init(cairn_manifest_options *o)
{
    memset(o, 0, sizeof *o);
    o->max_size = CAIRN_MANIFEST_DEFAULT_MAX_SIZE;
    o->num_levels = CAIRN_LSM_DEFAULT_LEVELS;
}

static void manifest_free(cairn_manifest *m)
{
    if (!m)
        return;
    if (m->file)
        cairn_file_close(m->file);
    cairn_version_unref(m->current);
    pthread_mutex_destroy(&m->write_mu);
    pthread_mutex_destroy(&m->mu);
    free(m->dir);
    free(m->current_path);
    free(m->tmp_path);
    free(m->path_buf);
    free(m);
}

/* Create the first manifest of a new tree. */
static int create_new(cairn_manifest *m, cairn_manifest_info *info)
{
    int rc = cairn_env_mkdir_p(m->env, m->dir);
    if (rc == 0)
        rc = scan_dir(m, false); /* number above any leftover */
    if (rc)
        return rc;
    bump_next(m, 1);
    cairn_version *empty = cairn_version_new_empty();
    if (!empty)
        return CAIRN_ENOMEM;
    uint64_t number = atomic_fetch_add(&m->next_file, 1);
    cairn_version_edit e;
    cairn_version_edit_init(&e);
    cairn_version_edit_set_next_file(&e, atomic_load(&m->next_file));
    cairn_version *v = NULL;
    rc = cairn_version_apply(empty, &e, CAIRN_LSM_MAX_LEVELS, &v, NULL, 0);
    cairn_version_unref(empty);
    if (rc)
        return rc;
    uint8_t *img = NULL;
    size_t len = 0;
    rc = snapshot_image(number, v, &img, &len);
    if (rc == 0)
        rc = switch_manifest(m, number, img, len);
    free(img);
    if (rc) {
        cairn_version_unref(v);
        fmt_msg(info->message, sizeof info->message, "%s", m->errmsg);
        return rc;
    }
    m->current = v;
    snprintf(info->manifest, sizeof info->manifest, "%s", m->name);
    info->records = 1;
    info->bytes = len;
    return 0;
}

int cairn_manifest_open_ex(cairn_env *env, const char *dir,
                           const cairn_manifest_options *opts,
                           cairn_manifest **out, cairn_version **current_out,
                           cairn_manifest_info *info)
{
    cairn_manifest_info local;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    if (out)
        *out = NULL;
    if (current_out)
        *current_out = NULL;
    if (!env || !dir || !*dir || !out)
        return CAIRN_EINVAL;
    cairn_manifest_options o;
    if (opts)
        o = *opts;
    else
        cairn_manifest_options_init(&o);
    if (o.num_levels == 0)
        o.num_levels = CAIRN_LSM_DEFAULT_LEVELS;
    if (o.num_levels < 1 || o.num_levels > CAIRN_LSM_MAX_LEVELS)
        return CAIRN_EINVAL;
    if (o.max_size == 0)
        o.max_size = CAIRN_MANIFEST_DEFAULT_MAX_SIZE;

    cairn_manifest *m = calloc(1, sizeof *m);
    if (!m)
        return CAIRN_ENOMEM;
    if (pthread_mutex_init(&m->write_mu, NULL) != 0) {
        free(m);
        return CAIRN_ENOMEM;
    }
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        pthread_mutex_destroy(&m->write_mu);
        free(m);
        return CAIRN_ENOMEM;
    }
    m->env = env;
    m->opts = o;
    atomic_init(&m->next_file, 0);
    atomic_init(&m->error, 0);
    size_t dl = strlen(dir);
    m->path_cap = dl + 48;
    m->dir = malloc(dl + 1);
    m->path_buf = malloc(m->path_cap);
    m->current_path = join(dir, "CURRENT");
    m->tmp_path = join(dir, "CURRENT.tmp");
    if (!m->dir || !m->path_buf || !m->current_path || !m->tmp_path) {
        manifest_free(m);
        return CAIRN_ENOMEM;
    }
    memcpy(m->dir, dir, dl + 1);

    uint64_t number = 0;
    int rc = read_current(m, &number, info->message, sizeof info->message);
    if (rc == CAIRN_ENOTFOUND && o.create_if_missing && !o.read_only) {
        info->message[0] = '\0';
        rc = create_new(m, info);
    } else if (rc == 0) {
        rc = replay(m, number, info);
        if (rc == 0) {
            bump_next(m, cairn_version_next_file(m->current));
            bump_next(m, m->number + 1);
            for (int l = 0; l < CAIRN_LSM_MAX_LEVELS; l++)
                for (size_t i = 0; i < cairn_version_num_files(m->current, l);
                     i++)
                    bump_next(m,
                              cairn_version_file(m->current, l, i)->number + 1);
            rc = scan_dir(m, !o.read_only);
            if (rc)
                fmt_msg(info->message, sizeof info->message,
                        "%s: listing or cleaning the directory failed: %s",
                        m->dir, cairn_strerror(rc));
        }
    }
    if (rc) {
        if (info->message[0] == '\0')
            fmt_msg(info->message, sizeof info->message, "%s: %s", m->dir,
                    cairn_strerror(rc));
        manifest_free(m);
        return rc;
    }
    snprintf(m->errmsg, sizeof m->errmsg, "%s", "");
    *out = m;
    if (current_out) {
        cairn_version_ref(m->current);
        *current_out = m->current;
    }
    return 0;
}

int cairn_manifest_open(cairn_env *env, const char *dir,
                        bool create_if_missing, cairn_manifest **out,
                        cairn_version **current_out)
{
    cairn_manifest_options o;
    cairn_manifest_options_init(&o);
    o.create_if_missing = create_if_missing;
    return cairn_manifest_open_ex(env, dir, &o, out, current_out, NULL);
}

void cairn_manifest_close(cairn_manifest *m)
{
    manifest_free(m);
}

/* ---- logging edits ---- */

int cairn_manifest_log_and_apply(cairn_manifest *m,
                                 const cairn_version_edit *edit,
                                 cairn_version **new_version_out)
{
    if (new_version_out)
        *new_version_out = NULL;
    if (!m || !edit)
        return CAIRN_EINVAL;
    pthread_mutex_lock(&m->write_mu);
    int rc;
    if (m->opts.read_only) {
        rc = CAIRN_EREADONLY;
        fmt_msg(m->errmsg, sizeof m->errmsg, "manifest opened read-only");
        goto out;
    }
    if ((rc = atomic_load(&m->error)) != 0)
        goto out; /* errmsg still names the original failure */
    m->errmsg[0] = '\0';

    uint64_t limit = m->opts.max_size;
    if (m->snap_size > limit / 2)
        limit = m->snap_size > UINT64_MAX / 2 ? UINT64_MAX : 2 * m->snap_size;
    bool roll = m->size >= limit;
    uint64_t new_number = roll ? atomic_fetch_add(&m->next_file, 1) : 0;

    /* The record carries the counter, raised above anything the edit
     * names, so a number recorded on disk is never handed out again. */
    if (edit->has_next_file)
        bump_next(m, edit->next_file);
    for (size_t i = 0; i < edit->nadded; i++)
        if (edit->added[i]->number != UINT64_MAX)
            bump_next(m, edit->added[i]->number + 1);
    cairn_version_edit rec = *edit; /* shallow: shares the arrays */
    rec.has_next_file = true;
    rec.next_file = atomic_load(&m->next_file);

    /* m->current only changes under write_mu, which we hold. */
    cairn_version *nv = NULL;
    rc = cairn_version_apply(m->current, &rec, m->opts.num_levels, &nv,
                             m->errmsg, sizeof m->errmsg);
    if (rc)
        goto out;

    uint8_t *img = NULL;
    size_t len = 0;
    if (roll) {
        rc = snapshot_image(new_number, nv, &img, &len);
    } else {
        uint8_t *payload;
        size_t plen;
        rc = cairn_version_edit_encode(&rec, &payload, &plen);
        if (rc == 0 && plen > 0xFFFFFFFFull) {
            free(payload);
            rc = CAIRN_ETOOLARGE;
        } else if (rc == 0) {
            bbuf b = {0};
            bb_record(&b, CAIRN_MANIFEST_EDIT, payload, plen);
            free(payload);
            rc = bb_finish(&b, &img, &len);
        }
    }
    if (rc) {
        fmt_msg(m->errmsg, sizeof m->errmsg, "encoding the edit failed: %s",
                cairn_strerror(rc));
        cairn_version_unref(nv);
        goto out;
    }

    /* I/O: from here on, any failure is sticky. */
    if (roll) {
        rc = switch_manifest(m, new_number, img, len);
    } else {
        rc = cairn_file_write_at(m->file, m->size, img, len);
        if (rc == 0)
            rc = cairn_file_sync(m->file, CAIRN_SYNC_DATA);
        if (rc)
            fmt_msg(m->errmsg, sizeof m->errmsg,
                    "appending to %s at offset %" PRIu64 " failed: %s",
                    m->name, m->size, cairn_strerror(rc));
        else
            m->size += len;
    }
    free(img);
    if (rc) {
        atomic_store(&m->error, rc);
        cairn_version_unref(nv);
        goto out;
    }

    pthread_mutex_lock(&m->mu);
    cairn_version *old = m->current;
    m->current = nv;
    pthread_mutex_unlock(&m->mu);
    cairn_version_unref(old);
    if (new_version_out) {
        cairn_version_ref(nv);
        *new_version_out = nv;
    }
out:
    pthread_mutex_unlock(&m->write_mu);
    return rc;
}

/* ---- accessors ---- */

cairn_version *cairn_manifest_current(cairn_manifest *m)
{
    pthread_mutex_lock(&m->mu);
    cairn_version *v = m->current;
    cairn_version_ref(v);
    pthread_mutex_unlock(&m->mu);
    return v;
}

uint64_t cairn_manifest_new_file_number(cairn_manifest *m)
{
    return atomic_fetch_add(&m->next_file, 1);
}

void cairn_manifest_bump_file_number(cairn_manifest *m, uint64_t next)
{
    bump_next(m, next);
}

uint64_t cairn_manifest_next_file_number(cairn_manifest *m)
{
    return atomic_load(&m->next_file);
}

uint64_t cairn_manifest_log_lsn(cairn_manifest *m)
{
    cairn_version *v = cairn_manifest_current(m);
    uint64_t x = cairn_version_log_lsn(v);
    cairn_version_unref(v);
    return x;
}

uint64_t cairn_manifest_last_version(cairn_manifest *m)
{
    cairn_version *v = cairn_manifest_current(m);
    uint64_t x = cairn_version_last_version(v);
    cairn_version_unref(v);
    return x;
}

int cairn_manifest_error(cairn_manifest *m) { return atomic_load(&m->error); }

const char *cairn_manifest_errmsg(cairn_manifest *m) { return m->errmsg; }

const char *cairn_manifest_file_name(cairn_manifest *m) { return m->name; }

uint64_t cairn_manifest_file_size(cairn_manifest *m) { return m->size; }

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

int cairn_manifest_obsolete_files(cairn_manifest *m, char *const *names,
                                  size_t count, uint64_t pending_floor,
                                  uint64_t **out, size_t *n)
{
    if (out)
        *out = NULL;
    if (n)
        *n = 0;
    if (!m || (!names && count) || !out || !n)
        return CAIRN_EINVAL;
    uint64_t floor = cairn_manifest_next_file_number(m);
    if (pending_floor < floor)
        floor = pending_floor;
    cairn_version *v = cairn_manifest_current(m);
    uint64_t *live = NULL;
    size_t nlive = 0;
    int rc = cairn_version_live_files(v, &live, &nlive);
    cairn_version_unref(v);
    if (rc)
        return rc;
    uint64_t *res = NULL;
    size_t k = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t num;
        if (!cairn_lsm_parse_sst_name(names[i], &num) || num >= floor)
            continue;
        size_t lo = 0, hi = nlive;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (live[mid] < num)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < nlive && live[lo] == num)
            continue;
        if (!res && !(res = malloc(count * sizeof *res))) {
            free(live);
            return CAIRN_ENOMEM;
        }
        res[k++] = num;
    }
    free(live);
    if (k == 0) {
        free(res);
        return 0;
    }
    qsort(res, k, sizeof *res, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || res[u - 1] != res[i])
            res[u++] = res[i];
    *out = res;
    *n = u;
    return 0;
}
