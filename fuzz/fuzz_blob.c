/*
 * fuzz_blob.c — fuzz target for the blob store's readers: the input is
 * taken both as the bytes of a blob file (docs/format/blob.md) and as an
 * encoded reference record.
 *
 * As a file (as it is, and again with its checksums and record offsets
 * recomputed, so that mutations reach past them): scanned plainly, with content verification, in salvage mode
 * and requiring a seal; every record a verifying scan hands out must read
 * back through the reader at its location with the same hash and length;
 * the reader is also tried at locations taken from the input; a recovered
 * copy must then scan sealed with the same records; a sealed file is
 * garbage-collected (everything live) and every reported copy must read
 * back. As a reference: a decoded reference must encode, and decode again
 * to the same thing.
 *
 * Checks: the FUZZ_CHECKs below; any crash or sanitizer report.
 * Locking: single-threaded.
 */
#include <string.h>
#include <xxhash.h>

#include "blob/blob_file.h"
#include "blob/blob_ref.h"
#include "blob/blob_store.h"
#include "cairn.h"
#include "fuzz_common.h"
#include "util/coding.h"

#define PATH "/b/000001.blob"

typedef struct fstate {
    cairn_env *env;
    size_t n;
} fstate;

static int check_record(void *arg, const cairn_blob_record *r)
{
    fstate *s = arg;
    s->n++;
    FUZZ_CHECK(r->content != NULL);
    void *out = NULL;
    size_t len = 0;
    int rc = cairn_blob_read(s->env, "/b", &r->loc, r->hash, &out, &len);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(len == r->raw_len);
    FUZZ_CHECK(len == 0 || memcmp(out, r->content, len) == 0);
    free(out);
    return 0;
}

static bool all_live(void *arg, const uint8_t *hash, const cairn_blob_loc *loc)
{
    (void)arg;
    (void)hash;
    (void)loc;
    return true;
}

static int check_moved(void *arg, const uint8_t *hash,
                       const cairn_blob_loc *from, const cairn_blob_loc *to)
{
    fstate *s = arg;
    (void)from;
    void *out = NULL;
    size_t len = 0;
    FUZZ_CHECK(cairn_blob_read(s->env, "/b", to, hash, &out, &len) == 0);
    free(out);
    s->n++;
    return 0;
}

static void fuzz_file(const uint8_t *data, size_t size)
{
    cairn_env *env = cairn_env_mem_new();
    if (!env)
        return;
    if (cairn_env_mkdir(env, "/b") != 0 ||
        fuzz_put_file(env, PATH, data, size) != 0) {
        cairn_env_destroy(env);
        return;
    }
    fstate s = {env, 0};
    cairn_blob_scan_info info, vinfo;
    cairn_blob_scan_options plain = {0};
    int prc = cairn_blob_scan(env, PATH, 1, &plain, NULL, NULL, &info);
    cairn_blob_scan_options verify = {.verify_content = true};
    int vrc = cairn_blob_scan(env, PATH, 1, &verify, check_record, &s, &vinfo);
    /* content checks only ever find more damage */
    FUZZ_CHECK(!(prc != 0 && vrc == 0));
    if (vrc == 0)
        FUZZ_CHECK(vinfo.records == info.records && s.n == info.records);
    cairn_blob_scan_options salvage = {.verify_content = true,
                                       .salvage = true};
    s.n = 0;
    int src = cairn_blob_scan(env, PATH, 1, &salvage, check_record, &s, NULL);
    FUZZ_CHECK(src == 0 || src == CAIRN_ECORRUPT || src == CAIRN_EVERSION);
    cairn_blob_scan_options sealed = {.require_sealed = true};
    int rrc = cairn_blob_scan(env, PATH, 1, &sealed, NULL, NULL, NULL);
    FUZZ_CHECK(rrc != 0 || (prc == 0 && info.sealed));

    /* The reader at locations the input names. */
    for (size_t i = 0; i + 12 <= size && i < 96; i += 12) {
        cairn_blob_loc loc = {1, cairn_get_u64(data + i) % (size + 64),
                              cairn_get_u32(data + i + 8) % (size + 64)};
        void *out = NULL;
        size_t len = 0;
        int rc = cairn_blob_read(env, "/b", &loc, NULL, &out, &len);
        FUZZ_CHECK(rc != 0 || out != NULL);
        free(out);
    }

    /* Recovery, then a sealed scan with the same records. */
    if (prc == 0 && !info.sealed) {
        cairn_blob_scan_info rinfo;
        int rc = cairn_blob_file_recover(env, PATH, 1, false, &rinfo);
        FUZZ_CHECK(rc == 0);
        s.n = 0;
        cairn_blob_scan_options both = {.require_sealed = true};
        rc = cairn_blob_scan(env, PATH, 1, &both, NULL, NULL, &rinfo);
        FUZZ_CHECK(rc == 0 && rinfo.records == info.records);
        info.sealed = true;
    }

    /* GC of a sealed file that verifies: every copy reads back. */
    if (vrc == 0 && info.sealed) {
        cairn_blob_appender_options o;
        cairn_blob_appender_options_init(&o);
        o.env = env;
        o.dir = "/b";
        o.first_number = 2;
        o.file_size = 1 << 16;
        cairn_blob_appender *a = NULL;
        if (cairn_blob_appender_open(&o, &a) == 0) {
            s.n = 0;
            cairn_blob_gc_stats st;
            int rc = cairn_blob_gc_rewrite(a, PATH, 1, all_live, check_moved,
                                           &s, &st);
            FUZZ_CHECK(rc == 0 || rc == CAIRN_ENOMEM);
            if (rc == 0)
                FUZZ_CHECK(s.n == info.records && st.records_kept == s.n);
            cairn_blob_appender_close(a);
        }
    }
    cairn_env_destroy(env);
}

static void fuzz_ref(const uint8_t *data, size_t size)
{
    cairn_blob_ref r;
    if (cairn_blob_ref_decode(data, size, &r) != 0) {
        FUZZ_CHECK(r.chunks == NULL);
        return;
    }
    size_t n = cairn_blob_ref_size(&r);
    FUZZ_CHECK(n > 0 && n <= size); /* canonical is never longer */
    uint8_t *buf = malloc(n);
    if (buf) {
        size_t got = 0;
        FUZZ_CHECK(cairn_blob_ref_encode(&r, buf, n, &got) == 0 && got == n);
        cairn_blob_ref d;
        FUZZ_CHECK(cairn_blob_ref_decode(buf, n, &d) == 0);
        FUZZ_CHECK(d.type == r.type && d.raw_len == r.raw_len &&
                   d.nchunks == r.nchunks);
        for (size_t i = 0; i < d.nchunks; i++)
            FUZZ_CHECK(memcmp(&d.chunks[i].hash, &r.chunks[i].hash, 32) ==
                           0 &&
                       d.chunks[i].raw_len == r.chunks[i].raw_len &&
                       d.chunks[i].loc.file == r.chunks[i].loc.file &&
                       d.chunks[i].loc.offset == r.chunks[i].loc.offset &&
                       d.chunks[i].loc.stored_len ==
                           r.chunks[i].loc.stored_len);
        cairn_blob_ref_clear(&d);
        free(buf);
    }
    cairn_blob_ref_clear(&r);
}

/* The input with its checksums (and record offsets) made right, record
 * after record, so that the code behind them sees the fuzzer's bytes: the
 * seal's counts, zstd frames, lengths, the SHA-256 check. */
static uint8_t *resum(const uint8_t *data, size_t size)
{
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return NULL;
    memcpy(p, data, size);
    if (size < CAIRN_BLOB_FILE_HEADER_SIZE)
        return p;
    cairn_put_u64(p + 24, XXH3_64bits(p, 24));
    size_t pos = CAIRN_BLOB_FILE_HEADER_SIZE;
    while (size - pos >= CAIRN_BLOB_RECORD_HEADER_SIZE) {
        uint8_t *h = p + pos;
        size_t room = size - pos - CAIRN_BLOB_RECORD_HEADER_SIZE;
        uint32_t stored = cairn_get_u32(h + 52);
        if (stored > room)
            break;
        cairn_put_u64(h + 8, pos);
        cairn_put_u64(h + 56,
                      XXH3_64bits_withSeed(
                          h, 56,
                          XXH3_64bits(h + CAIRN_BLOB_RECORD_HEADER_SIZE,
                                      stored)));
        pos += CAIRN_BLOB_RECORD_HEADER_SIZE + (size_t)stored;
    }
    return p;
}

/* The engine's read path for a reference record (what cairn_get does with
 * a kind-3 entry): a store holding two blobs (one chunked value's chunks
 * too), the input as the record. An error or, when the record names stored
 * blobs with their right lengths, their bytes: never a crash. */
static uint64_t store_num(void *arg)
{
    return ++*(uint64_t *)arg;
}

static void fuzz_store_read(const uint8_t *data, size_t size)
{
    static cairn_env *env;
    static cairn_blob_store *s;
    static uint64_t num;
    if (!s) {
        env = cairn_env_mem_new();
        cairn_blob_store_options o = {.env = env,
                                      .dir = "/blob",
                                      .chunk_threshold = 1 << 17,
                                      .next_number = store_num,
                                      .next_number_arg = &num};
        if (!env || cairn_blob_store_open(&o, &s, NULL, 0) != 0)
            abort();
        static uint8_t v[300000];
        for (size_t i = 0; i < sizeof v; i++)
            v[i] = (uint8_t)(i * 31 + (i >> 9));
        uint8_t *ref = NULL;
        size_t rl = 0;
        uint64_t seq = 0;
        if (cairn_blob_store_put(s, v, 5000, &ref, &rl, &seq) != 0)
            abort();
        free(ref);
        if (cairn_blob_store_put(s, v, sizeof v, &ref, &rl, &seq) != 0)
            abort();
        free(ref);
        if (cairn_blob_store_sync(s, seq) != 0)
            abort();
    }
    void *out = NULL;
    size_t ol = 0;
    char msg[256];
    int rc = cairn_blob_store_get(s, data, size, &out, &ol, msg, sizeof msg);
    if (rc == 0) {
        cairn_blob_ref r;
        if (cairn_blob_ref_decode(data, size, &r) != 0 || r.raw_len != ol)
            abort(); /* only a valid record reads, at its length */
        cairn_blob_ref_clear(&r);
    } else if (rc != CAIRN_ECORRUPT && rc != CAIRN_ENOMEM) {
        abort();
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_store_read(data, size);
    fuzz_file(data, size);
    uint8_t *fixed = resum(data, size);
    if (fixed) {
        fuzz_file(fixed, size);
        free(fixed);
    }
    fuzz_ref(data, size);
    return 0;
}
