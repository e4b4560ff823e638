/*
 * blob_file.c — blob files (docs/format/blob.md): the appender, the
 * reader, the scanner, recovery of an unsealed file and the GC rewriter.
 *
 * Record checks come in two steps, shared by the reader and the scanner:
 * parse_hdr() checks what the 64 header bytes say on their own (magic,
 * type, codec, reserved bytes, the offset field against the position,
 * lengths in range, the seal's fixed fields), then the checksum covers the
 * header and the stored bytes. Only then is anything decompressed: the
 * zstd frame must be exactly one frame stating the raw length, and the
 * content's SHA-256 must equal the header's. Every read is bounded by the
 * file size or by the location, so damaged lengths can never make a read
 * or an allocation go past the file.
 *
 * Appender invariants (under mu): `end` is the end of the last whole
 * record of the current file `f`; `dirty_tail` says a write failed, so
 * bytes past `end` may be garbage and the next write must first truncate
 * to `end`; `failed` (a sync's error) is sticky. Compression contexts come
 * from a small pool under cmu, so hashing and compressing run in parallel
 * in the callers' threads; only the write itself is under mu.
 *
 * Locking: see blob_file.h.
 */
#include "blob/blob_file.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#include "cairn.h"
#include "util/coding.h"

#define FILE_MAGIC "CAIRNBLB"
#define REC_MAGIC "BREC"
#define HDR CAIRN_BLOB_FILE_HEADER_SIZE
#define RHDR CAIRN_BLOB_RECORD_HEADER_SIZE
/* Largest raw or stored length a record may have (the format's limit). */
#define REC_MAX ((uint32_t)1 << 30)
#define SCAN_WINDOW ((size_t)1 << 20)
/* Records up to this many stored bytes are read with one read. */
#define READ_IN_ONE ((uint32_t)1 << 20)
#define CCTX_POOL_MAX 8

/* ---- helpers ---- */

int cairn_blob_hash(const void *data, size_t len,
                    uint8_t out[CAIRN_BLOB_HASH_SIZE])
{
    static const uint8_t empty = 0;
    unsigned int n = 0;
    if (!EVP_Digest(len ? data : &empty, len, out, &n, EVP_sha256(), NULL) ||
        n != CAIRN_BLOB_HASH_SIZE)
        return CAIRN_ENOMEM;
    return 0;
}

int cairn_blob_file_name(char *buf, size_t cap, const char *dir,
                         uint64_t number)
{
    int n = snprintf(buf, cap, "%s/%06" PRIu64 ".blob", dir, number);
    return (n < 0 || (size_t)n >= cap) ? CAIRN_EINVAL : 0;
}

bool cairn_blob_parse_name(const char *name, uint64_t *number)
{
    size_t len = strlen(name);
    if (len < 6 + 5 || strcmp(name + len - 5, ".blob") != 0)
        return false;
    size_t digits = len - 5;
    if (digits > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < digits; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (v == 0)
        return false;
    /* canonical: exactly what %06llu prints */
    char canon[32];
    snprintf(canon, sizeof canon, "%06" PRIu64 ".blob", v);
    if (strcmp(canon, name) != 0)
        return false;
    *number = v;
    return true;
}

static void put_file_header(uint8_t h[HDR], uint64_t number)
{
    memcpy(h, FILE_MAGIC, 8);
    cairn_put_u32(h + 8, CAIRN_BLOB_FORMAT_VERSION);
    cairn_put_u32(h + 12, HDR);
    cairn_put_u64(h + 16, number);
    cairn_put_u64(h + 24, XXH3_64bits(h, 24));
}

/* 0, CAIRN_ECORRUPT or CAIRN_EVERSION. */
static int check_file_header(const uint8_t *h, size_t n, uint64_t number)
{
    if (n < HDR || memcmp(h, FILE_MAGIC, 8) != 0 ||
        XXH3_64bits(h, 24) != cairn_get_u64(h + 24))
        return CAIRN_ECORRUPT;
    uint32_t v = cairn_get_u32(h + 8);
    if (v == 0)
        return CAIRN_ECORRUPT;
    if (v > CAIRN_BLOB_FORMAT_VERSION)
        return CAIRN_EVERSION;
    if (cairn_get_u32(h + 12) != HDR || cairn_get_u64(h + 16) != number)
        return CAIRN_ECORRUPT;
    return 0;
}

typedef struct rec_hdr {
    uint8_t type, codec;
    uint64_t offset;
    uint8_t hash[CAIRN_BLOB_HASH_SIZE];
    uint32_t raw_len, stored_len;
    uint64_t checksum;
} rec_hdr;

/* Fill the 64 header bytes at p; the checksum from stored_xxh (the XXH3 of
 * the stored bytes). */
static void put_rec_hdr(uint8_t *p, const rec_hdr *h, uint64_t stored_xxh)
{
    memcpy(p, REC_MAGIC, 4);
    p[4] = h->type;
    p[5] = h->codec;
    p[6] = p[7] = 0;
    cairn_put_u64(p + 8, h->offset);
    memcpy(p + 16, h->hash, CAIRN_BLOB_HASH_SIZE);
    cairn_put_u32(p + 48, h->raw_len);
    cairn_put_u32(p + 52, h->stored_len);
    cairn_put_u64(p + 56, XXH3_64bits_withSeed(p, 56, stored_xxh));
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* What the 64 bytes at position pos say on their own: true if they can be
 * a record header there (the checksum is checked separately). */
static bool parse_hdr(const uint8_t *p, uint64_t pos, rec_hdr *h)
{
    if (memcmp(p, REC_MAGIC, 4) != 0 || p[6] || p[7])
        return false;
    h->type = p[4];
    h->codec = p[5];
    h->offset = cairn_get_u64(p + 8);
    memcpy(h->hash, p + 16, CAIRN_BLOB_HASH_SIZE);
    h->raw_len = cairn_get_u32(p + 48);
    h->stored_len = cairn_get_u32(p + 52);
    h->checksum = cairn_get_u64(p + 56);
    if (h->offset != pos || h->raw_len > REC_MAX || h->stored_len > REC_MAX)
        return false;
    if (h->type == CAIRN_BLOB_REC_BLOB) {
        if (h->codec == CAIRN_BLOB_CODEC_RAW)
            return h->raw_len == h->stored_len;
        return h->codec == CAIRN_BLOB_CODEC_ZSTD && h->stored_len > 0;
    }
    if (h->type == CAIRN_BLOB_REC_SEAL)
        return h->codec == CAIRN_BLOB_CODEC_RAW &&
               h->raw_len == CAIRN_BLOB_SEAL_PAYLOAD &&
               h->stored_len == CAIRN_BLOB_SEAL_PAYLOAD &&
               all_zero(h->hash, CAIRN_BLOB_HASH_SIZE);
    return false;
}

static bool checksum_ok(const uint8_t *rec, const rec_hdr *h)
{
    uint64_t sx = XXH3_64bits(rec + RHDR, h->stored_len);
    return XXH3_64bits_withSeed(rec, 56, sx) == h->checksum;
}

/* The content of a blob record whose header and checksum passed: for raw,
 * the stored bytes themselves (*owned NULL); for zstd, a malloc'ed buffer
 * (*owned = it). The SHA-256 is checked. CAIRN_ECORRUPT or CAIRN_ENOMEM. */
static int decode_content(const rec_hdr *h, const uint8_t *stored,
                          const uint8_t **content, uint8_t **owned)
{
    *owned = NULL;
    *content = stored;
    if (h->codec == CAIRN_BLOB_CODEC_ZSTD) {
        size_t fsz = ZSTD_findFrameCompressedSize(stored, h->stored_len);
        if (ZSTD_isError(fsz) || fsz != h->stored_len)
            return CAIRN_ECORRUPT;
        unsigned long long csz =
            ZSTD_getFrameContentSize(stored, h->stored_len);
        if (csz == ZSTD_CONTENTSIZE_UNKNOWN ||
            csz == ZSTD_CONTENTSIZE_ERROR || csz != h->raw_len)
            return CAIRN_ECORRUPT;
        /* Every zstd block (3-byte header) yields at most 128 KiB: a frame
         * claiming more than its blocks can hold is damaged, and is refused
         * before its claimed size is allocated. */
        if ((uint64_t)h->raw_len >
            ((uint64_t)h->stored_len / 3 + 1) * ((uint64_t)128 << 10))
            return CAIRN_ECORRUPT;
        uint8_t *out = malloc(h->raw_len ? h->raw_len : 1);
        if (!out)
            return CAIRN_ENOMEM;
        size_t n = ZSTD_decompress(out, h->raw_len, stored, h->stored_len);
        if (ZSTD_isError(n) || n != h->raw_len) {
            free(out);
            return CAIRN_ECORRUPT;
        }
        *owned = out;
        *content = out;
    }
    uint8_t sha[CAIRN_BLOB_HASH_SIZE];
    int rc = cairn_blob_hash(*content, h->raw_len, sha);
    if (rc == 0 && memcmp(sha, h->hash, CAIRN_BLOB_HASH_SIZE) != 0)
        rc = CAIRN_ECORRUPT;
    if (rc) {
        free(*owned);
        *owned = NULL;
        *content = NULL;
    }
    return rc;
}

/* The 88 bytes of a seal at offset pos with these counts. */
static void make_seal(uint8_t out[CAIRN_BLOB_SEAL_SIZE], uint64_t pos,
                      uint64_t records, uint64_t raw, uint64_t stored)
{
    uint8_t *pl = out + RHDR;
    cairn_put_u64(pl, records);
    cairn_put_u64(pl + 8, raw);
    cairn_put_u64(pl + 16, stored);
    rec_hdr h;
    memset(&h, 0, sizeof h);
    h.type = CAIRN_BLOB_REC_SEAL;
    h.codec = CAIRN_BLOB_CODEC_RAW;
    h.offset = pos;
    h.raw_len = h.stored_len = CAIRN_BLOB_SEAL_PAYLOAD;
    put_rec_hdr(out, &h, XXH3_64bits(pl, CAIRN_BLOB_SEAL_PAYLOAD));
}

/* ---- appender ---- */

struct cairn_blob_appender {
    cairn_env *env;
    char *dir;
    uint64_t file_size;
    int level;
    bool compress;
    cairn_blob_number_fn next_number;
    void *next_number_arg;
    cairn_blob_sealed_fn sealed;
    void *sealed_arg;

    pthread_mutex_t mu;
    uint64_t counter;   /* next number when next_number is NULL */
    cairn_file *f;      /* current file, NULL if none */
    uint64_t number;    /* its number, 0 if none */
    uint64_t end;       /* end of its last whole record */
    uint64_t records, raw_bytes, stored_bytes;
    bool dirty_tail;    /* a write failed: bytes past end may be garbage */
    bool unsynced;      /* records written since the last sync */
    int failed;         /* a sync failed: refuse everything */

    pthread_mutex_t cmu;
    ZSTD_CCtx *pool[CCTX_POOL_MAX];
    int npool;
};

void cairn_blob_appender_options_init(cairn_blob_appender_options *o)
{
    memset(o, 0, sizeof *o);
    o->file_size = CAIRN_BLOB_DEFAULT_FILE_SIZE;
    o->zstd_level = CAIRN_BLOB_DEFAULT_ZSTD_LEVEL;
    o->compress = true;
    o->first_number = 1;
}

int cairn_blob_appender_open(const cairn_blob_appender_options *o,
                             cairn_blob_appender **out)
{
    if (!o || !o->dir || !out)
        return CAIRN_EINVAL;
    if (!o->next_number && o->first_number == 0)
        return CAIRN_EINVAL;
    cairn_blob_appender *a = calloc(1, sizeof *a);
    if (!a)
        return CAIRN_ENOMEM;
    a->dir = strdup(o->dir);
    if (!a->dir) {
        free(a);
        return CAIRN_ENOMEM;
    }
    a->env = o->env ? o->env : cairn_env_posix();
    a->file_size = o->file_size ? o->file_size : CAIRN_BLOB_DEFAULT_FILE_SIZE;
    a->level = o->zstd_level;
    a->compress = o->compress;
    a->next_number = o->next_number;
    a->next_number_arg = o->next_number_arg;
    a->counter = o->first_number;
    a->sealed = o->sealed;
    a->sealed_arg = o->sealed_arg;
    pthread_mutex_init(&a->mu, NULL);
    pthread_mutex_init(&a->cmu, NULL);
    *out = a;
    return 0;
}

static ZSTD_CCtx *cctx_get(cairn_blob_appender *a)
{
    ZSTD_CCtx *c = NULL;
    pthread_mutex_lock(&a->cmu);
    if (a->npool > 0)
        c = a->pool[--a->npool];
    pthread_mutex_unlock(&a->cmu);
    return c ? c : ZSTD_createCCtx();
}

static void cctx_put(cairn_blob_appender *a, ZSTD_CCtx *c)
{
    pthread_mutex_lock(&a->cmu);
    if (a->npool < CCTX_POOL_MAX) {
        a->pool[a->npool++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&a->cmu);
    ZSTD_freeCCtx(c);
}

/* Create the next file: header, fdatasync, directory sync. Under mu. */
static int create_locked(cairn_blob_appender *a)
{
    uint64_t n = a->next_number ? a->next_number(a->next_number_arg)
                                : a->counter++;
    if (n == 0)
        return CAIRN_EINVAL;
    size_t cap = strlen(a->dir) + 32;
    char *path = malloc(cap);
    if (!path)
        return CAIRN_ENOMEM;
    int rc = cairn_blob_file_name(path, cap, a->dir, n);
    cairn_file *f = NULL;
    if (rc == 0)
        rc = cairn_env_open(a->env, path,
                            CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE |
                                CAIRN_OPEN_EXCL,
                            &f);
    if (rc) {
        free(path);
        return rc;
    }
    uint8_t h[HDR];
    put_file_header(h, n);
    rc = cairn_file_write_at(f, 0, h, HDR);
    if (rc) {
        /* Nothing in it: remove it (best effort; a leftover holds no
         * record and recovery seals it empty). */
        cairn_file_close(f);
        (void)cairn_env_unlink(a->env, path);
        free(path);
        return rc;
    }
    free(path);
    rc = cairn_file_sync(f, CAIRN_SYNC_DATA);
    if (rc == 0)
        rc = cairn_env_sync_dir(a->env, a->dir);
    if (rc) {
        cairn_file_close(f);
        a->failed = rc;
        return rc;
    }
    a->f = f;
    a->number = n;
    a->end = HDR;
    a->records = a->raw_bytes = a->stored_bytes = 0;
    a->dirty_tail = false;
    a->unsynced = false;
    return 0;
}

/* Cut whatever a failed write left past end. Under mu. */
static int clean_tail_locked(cairn_blob_appender *a)
{
    if (!a->dirty_tail)
        return 0;
    int rc = cairn_file_truncate(a->f, a->end);
    if (rc == 0)
        a->dirty_tail = false;
    return rc;
}

/* Seal the current file: seal record, fdatasync, close. Under mu. */
static int seal_locked(cairn_blob_appender *a)
{
    int rc = clean_tail_locked(a);
    if (rc)
        return rc;
    uint8_t seal[CAIRN_BLOB_SEAL_SIZE];
    make_seal(seal, a->end, a->records, a->raw_bytes, a->stored_bytes);
    rc = cairn_file_write_at(a->f, a->end, seal, sizeof seal);
    if (rc) {
        a->dirty_tail = true;
        return rc;
    }
    rc = cairn_file_sync(a->f, CAIRN_SYNC_DATA);
    if (rc) {
        a->failed = rc;
        return rc;
    }
    cairn_blob_file_stats st = {
        .number = a->number,
        .records = a->records,
        .raw_bytes = a->raw_bytes,
        .stored_bytes = a->stored_bytes,
        .size = a->end + CAIRN_BLOB_SEAL_SIZE,
    };
    /* The data is durable; a close error cannot undo that. */
    (void)cairn_file_close(a->f);
    a->f = NULL;
    a->number = 0;
    a->unsynced = false;
    if (a->sealed)
        a->sealed(a->sealed_arg, &st);
    return 0;
}

/* Write a record whose stored bytes are at rec + 64 (the header is filled
 * here, once its offset is known). */
static int write_record(cairn_blob_appender *a, rec_hdr *h, uint8_t *rec,
                        cairn_blob_loc *loc)
{
    uint64_t sx = XXH3_64bits(rec + RHDR, h->stored_len);
    uint64_t total = RHDR + (uint64_t)h->stored_len;
    pthread_mutex_lock(&a->mu);
    int rc = 0;
    if (a->failed) {
        rc = CAIRN_EREADONLY;
        goto out;
    }
    if (a->f && a->end > HDR &&
        a->end + total + CAIRN_BLOB_SEAL_SIZE > a->file_size) {
        rc = seal_locked(a);
        if (rc)
            goto out;
    }
    if (!a->f) {
        rc = create_locked(a);
        if (rc)
            goto out;
    }
    rc = clean_tail_locked(a);
    if (rc)
        goto out;
    h->offset = a->end;
    put_rec_hdr(rec, h, sx);
    rc = cairn_file_write_at(a->f, a->end, rec, (size_t)total);
    if (rc) {
        a->dirty_tail = true;
        goto out;
    }
    loc->file = a->number;
    loc->offset = a->end;
    loc->stored_len = h->stored_len;
    a->end += total;
    a->records++;
    a->raw_bytes += h->raw_len;
    a->stored_bytes += h->stored_len;
    a->unsynced = true;
out:
    pthread_mutex_unlock(&a->mu);
    return rc;
}

int cairn_blob_append(cairn_blob_appender *a, const void *data, size_t len,
                      const uint8_t *hash, cairn_blob_loc *loc)
{
    if (!a || (!data && len) || !loc)
        return CAIRN_EINVAL;
    if (len > REC_MAX)
        return CAIRN_ETOOLARGE;
    rec_hdr h;
    memset(&h, 0, sizeof h);
    h.type = CAIRN_BLOB_REC_BLOB;
    h.codec = CAIRN_BLOB_CODEC_RAW;
    h.raw_len = h.stored_len = (uint32_t)len;
    if (hash) {
        memcpy(h.hash, hash, CAIRN_BLOB_HASH_SIZE);
    } else {
        int rc = cairn_blob_hash(data, len, h.hash);
        if (rc)
            return rc;
    }
    bool try_zstd = a->compress && len > 0;
    size_t bound = try_zstd ? ZSTD_compressBound(len) : 0;
    uint8_t *rec = malloc(RHDR + (bound > len ? bound : len));
    if (!rec)
        return CAIRN_ENOMEM;
    if (try_zstd) {
        ZSTD_CCtx *cc = cctx_get(a);
        if (!cc) {
            free(rec);
            return CAIRN_ENOMEM;
        }
        size_t n = ZSTD_compressCCtx(cc, rec + RHDR, bound, data, len,
                                     a->level);
        cctx_put(a, cc);
        /* kept only when it shrinks the content */
        if (!ZSTD_isError(n) && n < len) {
            h.codec = CAIRN_BLOB_CODEC_ZSTD;
            h.stored_len = (uint32_t)n;
        }
    }
    if (h.codec == CAIRN_BLOB_CODEC_RAW && len)
        memcpy(rec + RHDR, data, len);
    int rc = write_record(a, &h, rec, loc);
    free(rec);
    return rc;
}

int cairn_blob_appender_sync(cairn_blob_appender *a)
{
    if (!a)
        return CAIRN_EINVAL;
    pthread_mutex_lock(&a->mu);
    int rc = 0;
    if (a->failed) {
        rc = CAIRN_EREADONLY;
    } else if (a->f && a->unsynced) {
        rc = cairn_file_sync(a->f, CAIRN_SYNC_DATA);
        if (rc)
            a->failed = rc;
        else
            a->unsynced = false;
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

int cairn_blob_appender_rotate(cairn_blob_appender *a)
{
    if (!a)
        return CAIRN_EINVAL;
    pthread_mutex_lock(&a->mu);
    int rc = a->failed ? CAIRN_EREADONLY : (a->f ? seal_locked(a) : 0);
    pthread_mutex_unlock(&a->mu);
    return rc;
}

uint64_t cairn_blob_appender_current(cairn_blob_appender *a)
{
    pthread_mutex_lock(&a->mu);
    uint64_t n = a->number;
    pthread_mutex_unlock(&a->mu);
    return n;
}

int cairn_blob_appender_close(cairn_blob_appender *a)
{
    if (!a)
        return 0;
    pthread_mutex_lock(&a->mu);
    int rc = a->failed ? CAIRN_EREADONLY : 0;
    if (a->f && !a->failed)
        rc = seal_locked(a);
    if (a->f)
        (void)cairn_file_close(a->f);
    a->f = NULL;
    pthread_mutex_unlock(&a->mu);
    for (int i = 0; i < a->npool; i++)
        ZSTD_freeCCtx(a->pool[i]);
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->cmu);
    free(a->dir);
    free(a);
    return rc;
}

/* ---- reader ---- */

struct cairn_blob_reader {
    cairn_file *f;
    uint64_t number;
};

int cairn_blob_reader_open(cairn_env *env, const char *path, uint64_t number,
                           cairn_blob_reader **out)
{
    if (!path || !out)
        return CAIRN_EINVAL;
    if (!env)
        env = cairn_env_posix();
    cairn_file *f = NULL;
    int rc = cairn_env_open(env, path, CAIRN_OPEN_READ, &f);
    if (rc)
        return rc;
    uint8_t h[HDR];
    size_t n = 0;
    rc = cairn_file_read_at(f, 0, h, HDR, &n);
    if (rc == 0)
        rc = check_file_header(h, n, number);
    cairn_blob_reader *r = rc ? NULL : malloc(sizeof *r);
    if (rc == 0 && !r)
        rc = CAIRN_ENOMEM;
    if (rc) {
        cairn_file_close(f);
        return rc;
    }
    r->f = f;
    r->number = number;
    *out = r;
    return 0;
}

int cairn_blob_reader_read(cairn_blob_reader *r, uint64_t offset,
                           uint32_t stored_len, const uint8_t *expect_hash,
                           void **out, size_t *out_len)
{
    if (!r || !out || !out_len)
        return CAIRN_EINVAL;
    *out = NULL;
    *out_len = 0;
    /* A location no valid reference can hold. */
    if (offset < HDR || stored_len > REC_MAX || offset > UINT64_MAX / 2)
        return CAIRN_ECORRUPT;
    size_t total = RHDR + (size_t)stored_len;
    rec_hdr h;
    size_t n = 0;
    int rc;
    if (stored_len > READ_IN_ONE) {
        /* A large record: its header first, so that a damaged location
         * does not allocate what no record there holds. */
        uint8_t hb[RHDR];
        rc = cairn_file_read_at(r->f, offset, hb, RHDR, &n);
        if (rc)
            return rc;
        if (n < RHDR || !parse_hdr(hb, offset, &h) ||
            h.stored_len != stored_len)
            return CAIRN_ECORRUPT;
    }
    uint8_t *buf = malloc(total);
    if (!buf)
        return CAIRN_ENOMEM;
    rc = cairn_file_read_at(r->f, offset, buf, total, &n);
    if (rc)
        goto fail;
    if (n < total || !parse_hdr(buf, offset, &h) ||
        h.type != CAIRN_BLOB_REC_BLOB || h.stored_len != stored_len ||
        !checksum_ok(buf, &h) ||
        (expect_hash &&
         memcmp(expect_hash, h.hash, CAIRN_BLOB_HASH_SIZE) != 0)) {
        rc = CAIRN_ECORRUPT;
        goto fail;
    }
    const uint8_t *content;
    uint8_t *owned;
    rc = decode_content(&h, buf + RHDR, &content, &owned);
    if (rc)
        goto fail;
    if (owned) {
        free(buf);
        *out = owned;
    } else {
        /* raw: move the content to the front of the buffer */
        memmove(buf, buf + RHDR, h.raw_len);
        *out = buf;
    }
    *out_len = h.raw_len;
    return 0;
fail:
    free(buf);
    return rc;
}

void cairn_blob_reader_close(cairn_blob_reader *r)
{
    if (!r)
        return;
    cairn_file_close(r->f);
    free(r);
}

int cairn_blob_read(cairn_env *env, const char *dir, const cairn_blob_loc *loc,
                    const uint8_t *expect_hash, void **out, size_t *out_len)
{
    if (!dir || !loc)
        return CAIRN_EINVAL;
    size_t cap = strlen(dir) + 32;
    char *path = malloc(cap);
    if (!path)
        return CAIRN_ENOMEM;
    int rc = cairn_blob_file_name(path, cap, dir, loc->file);
    cairn_blob_reader *r = NULL;
    if (rc == 0)
        rc = cairn_blob_reader_open(env, path, loc->file, &r);
    free(path);
    if (rc)
        return rc;
    rc = cairn_blob_reader_read(r, loc->offset, loc->stored_len, expect_hash,
                                out, out_len);
    cairn_blob_reader_close(r);
    return rc;
}

/* ---- scanner ---- */

/* A read window over a file of known size. */
typedef struct sbuf {
    cairn_file *f;
    uint64_t size;
    uint8_t *buf;
    size_t cap;
    uint64_t base;
    size_t len;
} sbuf;

/* Point *p at the bytes [pos, pos + n), which lie inside the file. Valid
 * until the next call. */
static int sb_get(sbuf *b, uint64_t pos, size_t n, const uint8_t **p)
{
    if (pos >= b->base && pos - b->base <= b->len &&
        n <= b->len - (pos - b->base)) {
        *p = b->buf + (pos - b->base);
        return 0;
    }
    uint64_t want = n < SCAN_WINDOW ? SCAN_WINDOW : n;
    if (want > b->size - pos)
        want = b->size - pos;
    if (want > b->cap) {
        uint8_t *nb = realloc(b->buf, (size_t)want);
        if (!nb)
            return CAIRN_ENOMEM;
        b->buf = nb;
        b->cap = (size_t)want;
    }
    size_t got = 0;
    int rc = cairn_file_read_at(b->f, pos, b->buf, (size_t)want, &got);
    if (rc) {
        b->len = 0;
        return rc;
    }
    b->base = pos;
    b->len = got;
    if (got < n) /* the file shrank under the scan */
        return CAIRN_ECORRUPT;
    *p = b->buf;
    return 0;
}

/* 1 if a whole record starts at pos (*h filled, *rec points at its header,
 * valid until the next sb_get), 0 if not, < 0 on an I/O error. */
static int probe(sbuf *b, uint64_t pos, rec_hdr *h, const uint8_t **rec)
{
    if (pos > b->size || b->size - pos < RHDR)
        return 0;
    const uint8_t *p;
    int rc = sb_get(b, pos, RHDR, &p);
    if (rc)
        return rc;
    if (!parse_hdr(p, pos, h))
        return 0;
    if (h->stored_len > b->size - pos - RHDR)
        return 0;
    rc = sb_get(b, pos, RHDR + (size_t)h->stored_len, &p);
    if (rc)
        return rc;
    if (!checksum_ok(p, h))
        return 0;
    *rec = p;
    return 1;
}

/* The first whole record at or after from: *at, or UINT64_MAX if none. */
static int find_next(sbuf *b, uint64_t from, uint64_t *at)
{
    *at = UINT64_MAX;
    uint64_t q = from;
    while (q < b->size && b->size - q >= RHDR) {
        /* half a window: after a probe moved the window to a candidate,
         * the search from just past it still fits in that window */
        size_t n = b->size - q < SCAN_WINDOW / 2 ? (size_t)(b->size - q)
                                                 : SCAN_WINDOW / 2;
        const uint8_t *p;
        int rc = sb_get(b, q, n, &p);
        if (rc)
            return rc;
        const uint8_t *m = memmem(p, n, REC_MAGIC, 4);
        if (!m) {
            q += n - 3; /* a magic may straddle the window's end */
            continue;
        }
        uint64_t c = q + (uint64_t)(m - p);
        rec_hdr h;
        const uint8_t *rec;
        rc = probe(b, c, &h, &rec);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            *at = c;
            return 0;
        }
        q = c + 1;
    }
    return 0;
}

int cairn_blob_scan(cairn_env *env, const char *path, uint64_t number,
                    const cairn_blob_scan_options *opts, cairn_blob_scan_fn fn,
                    void *arg, cairn_blob_scan_info *info_out)
{
    cairn_blob_scan_options o = {0};
    if (opts)
        o = *opts;
    cairn_blob_scan_info info;
    memset(&info, 0, sizeof info);
    info.end = HDR;
    if (!path)
        return CAIRN_EINVAL;
    if (!env)
        env = cairn_env_posix();
    sbuf b;
    memset(&b, 0, sizeof b);
    int rc = cairn_env_open(env, path, CAIRN_OPEN_READ, &b.f);
    if (rc)
        goto out_noclose;
    rc = cairn_file_size(b.f, &b.size);
    if (rc)
        goto out;
    info.size = b.size;

    uint8_t fh[HDR];
    size_t n = 0;
    rc = cairn_file_read_at(b.f, 0, fh, HDR, &n);
    if (rc)
        goto out;
    rc = check_file_header(fh, n, number);
    if (rc == CAIRN_ECORRUPT && b.size <= HDR) {
        /* creation cut by a crash: holds nothing */
        info.header_torn = true;
        rc = o.require_sealed ? CAIRN_ECORRUPT : 0;
        goto out;
    }
    if (rc)
        goto out;

    uint64_t pos = HDR;
    while (pos < b.size) {
        rec_hdr h;
        const uint8_t *rec;
        rc = probe(&b, pos, &h, &rec);
        if (rc < 0)
            goto out;
        if (rc == 1 && h.type == CAIRN_BLOB_REC_SEAL) {
            const uint8_t *pl = rec + RHDR;
            bool counts = cairn_get_u64(pl) == info.records &&
                          cairn_get_u64(pl + 8) == info.raw_bytes &&
                          cairn_get_u64(pl + 16) == info.stored_bytes;
            uint64_t after = pos + CAIRN_BLOB_SEAL_SIZE;
            if (!o.salvage && (!counts || after != b.size)) {
                info.bad_offset = counts ? after : pos;
                rc = CAIRN_ECORRUPT;
                goto out;
            }
            info.skipped_bytes += b.size - after;
            info.sealed = true;
            rc = 0;
            break;
        }
        if (rc == 1) {
            cairn_blob_record r;
            memcpy(r.hash, h.hash, CAIRN_BLOB_HASH_SIZE);
            r.loc.file = number;
            r.loc.offset = pos;
            r.loc.stored_len = h.stored_len;
            r.raw_len = h.raw_len;
            r.codec = h.codec;
            r.stored = rec + RHDR;
            r.content = NULL;
            uint8_t *owned = NULL;
            uint64_t next = pos + RHDR + h.stored_len;
            if (o.verify_content) {
                rc = decode_content(&h, r.stored, &r.content, &owned);
                if (rc == CAIRN_ECORRUPT && o.salvage) {
                    info.skipped_bytes += next - pos;
                    pos = next;
                    continue;
                }
                if (rc) {
                    info.bad_offset = pos;
                    goto out;
                }
            }
            info.records++;
            info.raw_bytes += h.raw_len;
            info.stored_bytes += h.stored_len;
            info.end = next;
            rc = fn ? fn(arg, &r) : 0;
            free(owned);
            if (rc)
                goto out;
            pos = next;
            continue;
        }
        /* Not a whole record: a torn tail, unless one follows. */
        uint64_t at;
        rc = find_next(&b, pos + 1, &at);
        if (rc)
            goto out;
        if (at == UINT64_MAX) {
            info.torn_bytes = b.size - pos;
            break;
        }
        if (!o.salvage) {
            info.bad_offset = pos;
            rc = CAIRN_ECORRUPT;
            goto out;
        }
        info.skipped_bytes += at - pos;
        pos = at;
    }
    rc = 0;
    if (!info.sealed && o.require_sealed) {
        info.bad_offset = info.end;
        rc = CAIRN_ECORRUPT;
    }
out:
    cairn_file_close(b.f);
out_noclose:
    free(b.buf);
    if (info_out)
        *info_out = info;
    return rc;
}

int cairn_blob_file_recover(cairn_env *env, const char *path, uint64_t number,
                            bool read_only, cairn_blob_scan_info *info_out)
{
    if (!env)
        env = cairn_env_posix();
    cairn_blob_scan_info info;
    int rc = cairn_blob_scan(env, path, number, NULL, NULL, NULL, &info);
    if (rc || info.sealed || read_only)
        goto out;
    cairn_file *f = NULL;
    rc = cairn_env_open(env, path, CAIRN_OPEN_WRITE, &f);
    if (rc)
        goto out;
    if (info.header_torn) {
        uint8_t h[HDR];
        put_file_header(h, number);
        rc = cairn_file_truncate(f, 0);
        if (rc == 0)
            rc = cairn_file_write_at(f, 0, h, HDR);
        info.end = HDR;
    } else {
        rc = cairn_file_truncate(f, info.end);
    }
    if (rc == 0) {
        uint8_t seal[CAIRN_BLOB_SEAL_SIZE];
        make_seal(seal, info.end, info.records, info.raw_bytes,
                  info.stored_bytes);
        rc = cairn_file_write_at(f, info.end, seal, sizeof seal);
    }
    if (rc == 0)
        rc = cairn_file_sync(f, CAIRN_SYNC_DATA);
    int crc = cairn_file_close(f);
    if (rc == 0)
        rc = crc;
    if (rc == 0) {
        info.sealed = true;
        info.header_torn = false;
        info.size = info.end + CAIRN_BLOB_SEAL_SIZE;
    }
out:
    if (info_out)
        *info_out = info;
    return rc;
}

/* ---- garbage collection ---- */

typedef struct gc_move {
    uint8_t hash[CAIRN_BLOB_HASH_SIZE];
    cairn_blob_loc from, to;
} gc_move;

typedef struct gc_state {
    cairn_blob_appender *a;
    cairn_blob_live_fn live;
    void *arg;
    gc_move *moves;
    size_t n, cap;
    cairn_blob_gc_stats st;
} gc_state;

static int gc_one(void *arg, const cairn_blob_record *r)
{
    gc_state *g = arg;
    g->st.records_in++;
    g->st.bytes_in += r->loc.stored_len;
    if (!g->live(g->arg, r->hash, &r->loc))
        return 0;
    if (g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 64;
        gc_move *nm = realloc(g->moves, nc * sizeof *nm);
        if (!nm)
            return CAIRN_ENOMEM;
        g->moves = nm;
        g->cap = nc;
    }
    uint8_t *rec = malloc(RHDR + (size_t)r->loc.stored_len);
    if (!rec)
        return CAIRN_ENOMEM;
    if (r->loc.stored_len)
        memcpy(rec + RHDR, r->stored, r->loc.stored_len);
    rec_hdr h;
    memset(&h, 0, sizeof h);
    h.type = CAIRN_BLOB_REC_BLOB;
    h.codec = r->codec;
    memcpy(h.hash, r->hash, CAIRN_BLOB_HASH_SIZE);
    h.raw_len = r->raw_len;
    h.stored_len = r->loc.stored_len;
    gc_move *m = &g->moves[g->n];
    int rc = write_record(g->a, &h, rec, &m->to);
    free(rec);
    if (rc)
        return rc;
    memcpy(m->hash, r->hash, CAIRN_BLOB_HASH_SIZE);
    m->from = r->loc;
    g->n++;
    g->st.records_kept++;
    g->st.bytes_kept += r->loc.stored_len;
    return 0;
}

/* Does the file end with a whole seal? */
static int tail_sealed(cairn_env *env, const char *path, bool *sealed)
{
    *sealed = false;
    cairn_file *f = NULL;
    int rc = cairn_env_open(env, path, CAIRN_OPEN_READ, &f);
    if (rc)
        return rc;
    uint64_t size = 0;
    rc = cairn_file_size(f, &size);
    if (rc == 0 && size >= HDR + CAIRN_BLOB_SEAL_SIZE) {
        uint8_t s[CAIRN_BLOB_SEAL_SIZE];
        size_t n = 0;
        uint64_t pos = size - CAIRN_BLOB_SEAL_SIZE;
        rc = cairn_file_read_at(f, pos, s, sizeof s, &n);
        rec_hdr h;
        if (rc == 0 && n == sizeof s && parse_hdr(s, pos, &h) &&
            h.type == CAIRN_BLOB_REC_SEAL && checksum_ok(s, &h))
            *sealed = true;
    }
    cairn_file_close(f);
    return rc;
}

int cairn_blob_gc_rewrite(cairn_blob_appender *a, const char *path,
                          uint64_t number, cairn_blob_live_fn live,
                          cairn_blob_moved_fn moved, void *arg,
                          cairn_blob_gc_stats *stats)
{
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (!a || !path || !live || number == 0)
        return CAIRN_EINVAL;
    if (number == cairn_blob_appender_current(a))
        return CAIRN_EINVAL;
    bool sealed;
    int rc = tail_sealed(a->env, path, &sealed);
    if (rc)
        return rc;
    if (!sealed)
        return CAIRN_EBUSY;
    gc_state g;
    memset(&g, 0, sizeof g);
    g.a = a;
    g.live = live;
    g.arg = arg;
    cairn_blob_scan_options o = {.verify_content = true,
                                 .require_sealed = true};
    rc = cairn_blob_scan(a->env, path, number, &o, gc_one, &g, NULL);
    if (rc == 0 && g.n > 0)
        rc = cairn_blob_appender_sync(a);
    for (size_t i = 0; rc == 0 && i < g.n; i++)
        if (moved)
            rc = moved(arg, g.moves[i].hash, &g.moves[i].from,
                       &g.moves[i].to);
    if (stats)
        *stats = g.st;
    free(g.moves);
    return rc;
}
