/*
 * wal_recover.c — cairn_wal_open: find the segments, validate the chain,
 * replay records, cut a torn tail, report corruption with file and offset.
 *
 * The rules are those of docs/format/wal.md ("How a log is read"):
 *   - every segment but the newest is read exactly up to the LSN that the
 *     next segment's header names as its predecessor; falling short is
 *     corruption, anything after it is ignored (failed, unacknowledged
 *     writes);
 *   - the newest segment is read while records are valid; a damaged record
 *     with a valid, later record somewhere after it is corruption, without
 *     one it is a torn tail and is cut off.
 * Recovery never returns data from a record whose checksum does not match.
 *
 * Locking: runs single-threaded inside cairn_wal_open, before the handle is
 * shared and before the background thread starts.
 */
#include "wal/wal_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cairn.h"
#include "util/coding.h"

#define READ_WINDOW (1u << 20)
#define PROGRESS_EVERY (16ull << 20)

/* ---------- buffered segment reader ---------- */

typedef struct seg_reader {
    cairn_file *f;
    const char *path;
    uint64_t size;
    uint8_t *buf;
    size_t cap;
    uint64_t boff;
    size_t blen;
} seg_reader;

/* Make [off, off+n) readable at *p. 0 ok, 1 past end of file, <0 error. */
static int rd_get(seg_reader *r, uint64_t off, size_t n, const uint8_t **p)
{
    if (off > r->size || n > r->size - off)
        return 1;
    if (off >= r->boff && off + n <= r->boff + r->blen) {
        *p = r->buf + (off - r->boff);
        return 0;
    }
    size_t want = n > READ_WINDOW ? n : READ_WINDOW;
    if (want > r->size - off)
        want = (size_t)(r->size - off);
    if (want > r->cap) {
        uint8_t *nb = realloc(r->buf, want);
        if (!nb)
            return CAIRN_ENOMEM;
        r->buf = nb;
        r->cap = want;
    }
    size_t got = 0;
    int rc = cairn_file_read_at(r->f, off, r->buf, want, &got);
    if (rc != 0) {
        r->blen = 0;
        return rc;
    }
    r->boff = off;
    r->blen = got;
    if (got < n)
        return 1; /* file shrank under us: treat as end */
    *p = r->buf;
    return 0;
}

typedef struct rec_view {
    uint64_t lsn;
    uint32_t len;
    uint8_t type;
    const uint8_t *payload;
} rec_view;

/* Is there a valid record at off with LSN in [lo, hi]? 0 yes, 1 no, <0 err. */
static int rd_record(seg_reader *r, uint64_t off, uint64_t lo, uint64_t hi,
                     rec_view *out)
{
    const uint8_t *h;
    int rc = rd_get(r, off, CAIRN_WAL_RECORD_HEADER_SIZE, &h);
    if (rc != 0)
        return rc;
    uint64_t lsn = cairn_get_u64(h + 8);
    uint32_t len = cairn_get_u32(h + 16);
    uint8_t type = h[20];
    if (type == 0 || h[21] || h[22] || h[23] || lsn < lo || lsn > hi)
        return 1;
    if ((uint64_t)len > r->size - off - CAIRN_WAL_RECORD_HEADER_SIZE)
        return 1;
    rc = rd_get(r, off, CAIRN_WAL_RECORD_HEADER_SIZE + (size_t)len, &h);
    if (rc != 0)
        return rc;
    const uint8_t *payload = h + CAIRN_WAL_RECORD_HEADER_SIZE;
    uint64_t sum = cairn_wal_record_checksum(h, XXH3_64bits(payload, len));
    if (sum != cairn_get_u64(h))
        return 1;
    out->lsn = lsn;
    out->len = len;
    out->type = type;
    out->payload = payload;
    return 0;
}

/* Scan [from, size) for any valid record with LSN >= lo. 1 found (offset in
 * *found), 0 none, <0 error. */
static int find_later_record(seg_reader *r, uint64_t from, uint64_t lo,
                             uint64_t *found)
{
    uint64_t o = from;
    while (o + CAIRN_WAL_RECORD_HEADER_SIZE <= r->size) {
        size_t avail = READ_WINDOW;
        if (avail > r->size - o)
            avail = (size_t)(r->size - o);
        const uint8_t *p;
        int rc = rd_get(r, o, avail, &p);
        if (rc < 0)
            return rc;
        if (rc == 1)
            return 0;
        for (size_t i = 0; i + CAIRN_WAL_RECORD_HEADER_SIZE <= avail; i++) {
            const uint8_t *h = p + i;
            if (h[20] == 0 || h[21] || h[22] || h[23])
                continue;
            uint64_t lsn = cairn_get_u64(h + 8);
            if (lsn < lo || lsn - lo > UINT32_MAX)
                continue;
            rec_view v;
            rc = rd_record(r, o + i, lo, lo + UINT32_MAX, &v);
            if (rc < 0)
                return rc;
            if (rc == 0) {
                *found = o + i;
                return 1;
            }
            rc = rd_get(r, o, avail, &p); /* rd_record may move the window */
            if (rc != 0)
                return rc < 0 ? rc : 0;
        }
        o += avail - CAIRN_WAL_RECORD_HEADER_SIZE + 1;
    }
    return 0;
}

/* 0 if [from, size) is all zero bytes, 1 if not, <0 error. */
static int rest_is_nonzero(seg_reader *r, uint64_t from)
{
    for (uint64_t o = from; o < r->size;) {
        size_t avail = READ_WINDOW;
        if (avail > r->size - o)
            avail = (size_t)(r->size - o);
        const uint8_t *p;
        int rc = rd_get(r, o, avail, &p);
        if (rc != 0)
            return rc < 0 ? rc : 0;
        for (size_t i = 0; i < avail; i++)
            if (p[i])
                return 1;
        o += avail;
    }
    return 0;
}

/* ---------- segment headers ---------- */

typedef struct seg_entry {
    uint64_t name_lsn;
    char *path;
    uint64_t size;
    bool hdr_ok;
    uint64_t first_lsn, prev_lsn;
} seg_entry;

static int cmp_seg(const void *a, const void *b)
{
    const seg_entry *x = a, *y = b;
    return x->name_lsn < y->name_lsn ? -1 : x->name_lsn > y->name_lsn;
}

/* Parse "wal-<20 digits>.log". */
static bool parse_segment_name(const char *name, uint64_t *lsn)
{
    if (strlen(name) != 28 || strncmp(name, "wal-", 4) != 0 ||
        strcmp(name + 24, ".log") != 0)
        return false;
    uint64_t v = 0;
    for (int i = 4; i < 24; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *lsn = v;
    return true;
}

/* 0 with hdr_ok set or clear; CAIRN_EVERSION for a newer format; <0 error. */
static int read_header(seg_reader *r, seg_entry *e)
{
    const uint8_t *h;
    e->hdr_ok = false;
    int rc = rd_get(r, 0, CAIRN_WAL_SEGMENT_HEADER_SIZE, &h);
    if (rc < 0)
        return rc;
    if (rc == 1)
        return 0;
    if (memcmp(h, CAIRN_WAL_MAGIC, 8) != 0 ||
        XXH3_64bits(h, 40) != cairn_get_u64(h + 40))
        return 0;
    if (cairn_get_u32(h + 8) > CAIRN_WAL_FORMAT_VERSION)
        return CAIRN_EVERSION;
    if (cairn_get_u32(h + 8) != CAIRN_WAL_FORMAT_VERSION ||
        cairn_get_u32(h + 12) != CAIRN_WAL_SEGMENT_HEADER_SIZE)
        return 0;
    e->first_lsn = cairn_get_u64(h + 16);
    e->prev_lsn = cairn_get_u64(h + 24);
    if (e->first_lsn != e->name_lsn || e->prev_lsn >= e->first_lsn)
        return 0;
    e->hdr_ok = true;
    return 0;
}

/* ---------- recovery ---------- */

typedef struct recover_ctx {
    cairn_wal *w;
    cairn_wal_recovery *info;
    uint64_t done_bytes, total_bytes, next_progress;
} recover_ctx;

static void progress(recover_ctx *c, uint64_t add)
{
    c->done_bytes += add;
    if (c->w->opts.progress && c->done_bytes >= c->next_progress) {
        c->w->opts.progress(c->w->opts.progress_arg, c->done_bytes,
                            c->total_bytes);
        c->next_progress = c->done_bytes + PROGRESS_EVERY;
    }
}

static void set_msg(cairn_wal_recovery *info, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_msg(cairn_wal_recovery *info, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(info->message, sizeof info->message, fmt, ap);
    va_end(ap);
}

static void copy_str(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src);
}

/* Read records of one segment from first_lsn up to stop_lsn (inclusive).
 * *end_off = offset after the last valid record, *last = its LSN (or
 * first_lsn-1 if none). Returns 0, or <0 (I/O error, replay error). */
static int scan_segment(recover_ctx *c, seg_reader *r, seg_entry *e,
                        uint64_t stop_lsn, uint64_t *end_off, uint64_t *last)
{
    cairn_wal *w = c->w;
    uint64_t off = CAIRN_WAL_SEGMENT_HEADER_SIZE, expect = e->first_lsn;
    while (expect <= stop_lsn) {
        rec_view v = {0}; /* filled by rd_record when it returns 0 */
        int rc = rd_record(r, off, expect, expect, &v);
        if (rc < 0)
            return rc;
        if (rc == 1)
            break;
        if (w->opts.replay && v.lsn >= w->opts.replay_from) {
            cairn_wal_record rec = {v.lsn, v.type, v.payload, v.len, e->path,
                                    off};
            rc = w->opts.replay(w->opts.replay_arg, &rec);
            if (rc != 0)
                return rc < 0 ? rc : CAIRN_EINVAL;
        }
        uint64_t sz = CAIRN_WAL_RECORD_HEADER_SIZE + (uint64_t)v.len;
        off += sz;
        c->info->records++;
        c->info->bytes += sz;
        if (c->info->first_lsn == 0)
            c->info->first_lsn = v.lsn;
        progress(c, sz);
        expect++;
    }
    *end_off = off;
    *last = expect - 1;
    return 0;
}

static int open_reader(cairn_wal *w, seg_entry *e, seg_reader *r)
{
    memset(r, 0, sizeof *r);
    r->path = e->path;
    int rc = cairn_env_open(w->env, e->path, CAIRN_OPEN_READ, &r->f);
    if (rc == 0)
        rc = cairn_file_size(r->f, &r->size);
    e->size = r->size;
    return rc;
}

static void close_reader(seg_reader *r)
{
    if (r->f)
        cairn_file_close(r->f);
    free(r->buf);
    r->f = NULL;
    r->buf = NULL;
}

/* Cut a segment at off (write mode): truncate and sync, or remove it if
 * nothing but (part of) a header would remain. */
static int cut_segment(cairn_wal *w, const char *path, uint64_t off)
{
    if (off <= CAIRN_WAL_SEGMENT_HEADER_SIZE) {
        int rc = cairn_env_unlink(w->env, path);
        return rc == 0 ? cairn_env_sync_dir(w->env, w->dir) : rc;
    }
    cairn_file *f;
    int rc = cairn_env_open(w->env, path, CAIRN_OPEN_WRITE, &f);
    if (rc != 0)
        return rc;
    uint64_t size = 0;
    rc = cairn_file_size(f, &size);
    if (rc == 0 && size != off) {
        rc = cairn_file_truncate(f, off);
        if (rc == 0)
            rc = cairn_file_sync(f, CAIRN_SYNC_DATA);
    }
    int crc = cairn_file_close(f);
    return rc ? rc : crc;
}

/* Corruption at segs[i], offset off. In salvage mode keep the good prefix
 * (returns 0 and sets *stop); otherwise CAIRN_ECORRUPT. */
static int corruption(recover_ctx *c, seg_entry *segs, size_t n, size_t i,
                      uint64_t off, const char *why, bool *stop)
{
    cairn_wal *w = c->w;
    cairn_wal_recovery *info = c->info;
    copy_str(info->error_segment, sizeof info->error_segment, segs[i].path);
    info->error_offset = off;
    if (!w->opts.salvage) {
        set_msg(info, "corrupt WAL segment %s at offset %" PRIu64 ": %s",
                segs[i].path, off, why);
        return CAIRN_ECORRUPT;
    }
    uint64_t dropped = segs[i].size > off ? segs[i].size - off : 0;
    for (size_t j = i + 1; j < n; j++)
        dropped += segs[j].size;
    info->dropped_bytes = dropped;
    set_msg(info,
            "salvage: corrupt WAL segment %s at offset %" PRIu64
            " (%s); %s the log up to there, %s %" PRIu64 " bytes",
            segs[i].path, off, why, w->read_only ? "would keep" : "kept",
            w->read_only ? "would drop" : "dropped", dropped);
    if (!w->read_only) {
        int rc = cut_segment(w, segs[i].path, off);
        for (size_t j = i + 1; rc == 0 && j < n; j++) {
            size_t len = strlen(segs[j].path) + 16;
            char *to = malloc(len);
            if (!to)
                return CAIRN_ENOMEM;
            snprintf(to, len, "%s.salvaged", segs[j].path);
            rc = cairn_env_rename(w->env, segs[j].path, to);
            free(to);
        }
        if (rc == 0)
            rc = cairn_env_sync_dir(w->env, w->dir);
        if (rc != 0)
            return rc;
    }
    *stop = true;
    return 0;
}

static int push_seg(cairn_wal *w, uint64_t first, uint64_t prev)
{
    if (w->nsegs == w->capsegs) {
        size_t nc = w->capsegs ? w->capsegs * 2 : 16;
        wal_seg_info *ns = realloc(w->segs, nc * sizeof *ns);
        if (!ns)
            return CAIRN_ENOMEM;
        w->segs = ns;
        w->capsegs = nc;
    }
    w->segs[w->nsegs++] = (wal_seg_info){first, prev};
    return 0;
}

static int recover(recover_ctx *c, seg_entry *segs, size_t n)
{
    cairn_wal *w = c->w;
    cairn_wal_recovery *info = c->info;
    int rc = 0;
    seg_reader r;

    /* Headers first: the chain rule needs the next segment's header. */
    for (size_t i = 0; i < n; i++) {
        rc = open_reader(w, &segs[i], &r);
        if (rc == 0)
            rc = read_header(&r, &segs[i]);
        c->total_bytes += segs[i].size;
        close_reader(&r);
        if (rc == CAIRN_EVERSION) {
            copy_str(info->error_segment, sizeof info->error_segment,
                     segs[i].path);
            set_msg(info, "WAL segment %s has a newer format version",
                    segs[i].path);
        }
        if (rc != 0)
            return rc;
    }
    info->segments = n;

    bool have_chain = false;
    uint64_t chain_end = 0;
    bool stop = false;
    for (size_t i = 0; i < n && !stop; i++) {
        seg_entry *e = &segs[i];
        bool newest = i + 1 == n;
        if (!have_chain) {
            chain_end = e->hdr_ok ? e->prev_lsn : e->name_lsn - 1;
            have_chain = true;
            info->chain_start = chain_end;
        }
        if (!newest) {
            /* This segment must reach the LSN the next valid header names. */
            size_t j = i + 1;
            while (j < n && !segs[j].hdr_ok && j + 1 < n)
                j++;
            if (!segs[j].hdr_ok) {
                /* Only the newest may have a bad header: handled below, so
                 * target is unknown; read this one as if it were complete. */
                j = n;
            }
            uint64_t target = j < n ? segs[j].prev_lsn : UINT64_MAX;
            if (target != UINT64_MAX && target < chain_end) {
                rc = corruption(c, segs, n, j, 24,
                                "previous-LSN field points before the end of "
                                "the preceding segments",
                                &stop);
                if (rc)
                    return rc;
                break;
            }
            if (target == chain_end) {
                progress(c, e->size); /* contributes nothing: skip it */
                continue;
            }
            if (!e->hdr_ok || e->prev_lsn != chain_end) {
                rc = corruption(c, segs, n, i, 0,
                                e->hdr_ok ? "segment does not follow the "
                                            "previous one (LSN chain broken)"
                                          : "bad segment header",
                                &stop);
                if (rc)
                    return rc;
                break;
            }
            rc = open_reader(w, e, &r);
            uint64_t end_off = 0, last = 0;
            if (rc == 0)
                rc = scan_segment(c, &r, e, target, &end_off, &last);
            close_reader(&r);
            if (rc != 0)
                return rc;
            if (target != UINT64_MAX && last < target && j > i + 1 &&
                last + 1 == segs[i + 1].name_lsn) {
                /* This segment is whole; the next one's header is what is
                 * damaged (its records are needed, but unreadable). */
                chain_end = last;
                rc = push_seg(w, e->first_lsn, e->prev_lsn);
                if (rc == 0)
                    rc = corruption(c, segs, n, i + 1, 0, "bad segment header",
                                    &stop);
                if (rc)
                    return rc;
                break;
            }
            if (target != UINT64_MAX && last < target) {
                char why[160];
                snprintf(why, sizeof why,
                         "damaged or missing record (expected LSN %" PRIu64
                         ", the segment must reach LSN %" PRIu64 ")",
                         last + 1, target);
                rc = corruption(c, segs, n, i, end_off, why, &stop);
                if (rc)
                    return rc;
                chain_end = last;
                if (last >= e->first_lsn) {
                    rc = push_seg(w, e->first_lsn, e->prev_lsn);
                    if (rc)
                        return rc;
                }
                break;
            }
            chain_end = last;
            rc = push_seg(w, e->first_lsn, e->prev_lsn);
            if (rc)
                return rc;
            continue;
        }

        /* The newest segment. */
        rc = open_reader(w, e, &r);
        if (rc != 0) {
            close_reader(&r);
            return rc;
        }
        if (!e->hdr_ok) {
            int nz = rest_is_nonzero(&r, CAIRN_WAL_SEGMENT_HEADER_SIZE);
            close_reader(&r);
            if (nz < 0)
                return nz;
            if (nz) {
                rc = corruption(c, segs, n, i, 0, "bad segment header", &stop);
                if (rc)
                    return rc;
                break;
            }
            /* Crash while creating it: it never held a record. */
            info->torn_bytes = e->size;
            info->torn_offset = 0;
            copy_str(info->torn_segment, sizeof info->torn_segment, e->path);
            set_msg(info,
                    "discarded WAL segment %s: torn while being created "
                    "(no records)",
                    e->path);
            progress(c, e->size);
            if (!w->read_only) {
                rc = cut_segment(w, e->path, 0);
                if (rc)
                    return rc;
            }
            break;
        }
        if (e->prev_lsn != chain_end) {
            close_reader(&r);
            rc = corruption(c, segs, n, i, 24,
                            "segment does not follow the previous one (LSN "
                            "chain broken)",
                            &stop);
            if (rc)
                return rc;
            break;
        }
        uint64_t end_off = 0, last = 0;
        rc = scan_segment(c, &r, e, UINT64_MAX, &end_off, &last);
        if (rc != 0) {
            close_reader(&r);
            return rc;
        }
        uint64_t later = 0;
        int found = find_later_record(&r, end_off + 1, last + 1, &later);
        int nz = found == 0 ? rest_is_nonzero(&r, end_off) : 0;
        close_reader(&r);
        if (found < 0)
            return found;
        if (nz < 0)
            return nz;
        if (found) {
            char why[200];
            snprintf(why, sizeof why,
                     "damaged record (expected LSN %" PRIu64
                     ") followed by a valid record at offset %" PRIu64,
                     last + 1, later);
            rc = corruption(c, segs, n, i, end_off, why, &stop);
            if (rc)
                return rc;
        } else if (nz) {
            info->torn_bytes = e->size - end_off;
            info->torn_offset = end_off;
            copy_str(info->torn_segment, sizeof info->torn_segment, e->path);
            set_msg(info,
                    "torn tail: %s %" PRIu64 " bytes at offset %" PRIu64
                    " of %s (never acknowledged)",
                    w->read_only ? "would cut" : "cut", info->torn_bytes,
                    end_off, e->path);
        }
        progress(c, e->size > end_off ? e->size - end_off : 0);
        chain_end = last;
        if (last >= e->first_lsn) {
            rc = push_seg(w, e->first_lsn, e->prev_lsn);
            if (rc)
                return rc;
            if (!w->read_only && !stop) {
                rc = cut_segment(w, e->path, end_off);
                if (rc)
                    return rc;
            }
        } else if (!w->read_only && !stop) {
            rc = cut_segment(w, e->path, 0); /* empty: a new one follows */
            if (rc)
                return rc;
        }
    }
    w->last_good_lsn = chain_end;
    info->last_lsn = chain_end;
    if (c->w->opts.progress)
        c->w->opts.progress(c->w->opts.progress_arg, c->total_bytes,
                            c->total_bytes);
    return 0;
}

static int list_segments(cairn_wal *w, seg_entry **out, size_t *count)
{
    char **names = NULL;
    size_t nn = 0;
    int rc = cairn_env_list_dir(w->env, w->dir, &names, &nn);
    if (rc != 0)
        return rc;
    seg_entry *segs = calloc(nn ? nn : 1, sizeof *segs);
    size_t n = 0;
    if (!segs)
        rc = CAIRN_ENOMEM;
    for (size_t i = 0; rc == 0 && i < nn; i++) {
        uint64_t lsn;
        if (!parse_segment_name(names[i], &lsn))
            continue;
        segs[n].name_lsn = lsn;
        segs[n].path = cairn_wal_segment_path(w->dir, lsn);
        if (!segs[n].path)
            rc = CAIRN_ENOMEM;
        n++;
    }
    cairn_env_free_list(names, nn);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            free(segs[i].path);
        free(segs);
        return rc;
    }
    qsort(segs, n, sizeof *segs, cmp_seg);
    *out = segs;
    *count = n;
    return 0;
}

int cairn_wal_open(const char *dir, const cairn_wal_options *opts_in,
                   cairn_wal **out, cairn_wal_recovery *info_out)
{
    cairn_wal_recovery scratch;
    cairn_wal_recovery *info = info_out ? info_out : &scratch;
    memset(info, 0, sizeof *info);
    if (!dir || !out)
        return CAIRN_EINVAL;
    *out = NULL;
    cairn_wal_options opts;
    if (opts_in)
        opts = *opts_in;
    else
        cairn_wal_options_init(&opts);
    if (opts.segment_size < 4096 || opts.max_record == 0 ||
        opts.max_record > CAIRN_WAL_HARD_MAX_RECORD ||
        (unsigned)opts.sync_mode > CAIRN_WAL_SYNC_NONE ||
        (opts.sync_mode == CAIRN_WAL_SYNC_INTERVAL &&
         opts.sync_interval_ms == 0)) {
        set_msg(info, "invalid WAL options");
        return CAIRN_EINVAL;
    }
    cairn_wal *w = calloc(1, sizeof *w);
    if (!w)
        return CAIRN_ENOMEM;
    w->env = opts.env ? opts.env : cairn_env_posix();
    w->opts = opts;
    w->opts.env = w->env;
    w->read_only = opts.read_only;
    w->dir = strdup(dir);
    w->archive_dir = opts.archive_dir ? strdup(opts.archive_dir) : NULL;
    w->opts.archive_dir = w->archive_dir;
    pthread_mutexattr_t spin; /* short sections, many threads: spin first */
    pthread_mutexattr_init(&spin);
    pthread_mutexattr_settype(&spin, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&w->mu, &spin);
    pthread_mutexattr_destroy(&spin);
    pthread_mutex_init(&w->trunc_mu, NULL);
    pthread_cond_init(&w->cv_ack, NULL);
    atomic_init(&w->round_word[0], 0);
    atomic_init(&w->round_word[1], 0);
    atomic_init(&w->round_sleepers[0], 0);
    atomic_init(&w->round_sleepers[1], 0);
    atomic_init(&w->fast_ack, 0);
    pthread_cond_init(&w->cv_bg, NULL);
    int rc = w->dir && (!opts.archive_dir || w->archive_dir) ? 0 : CAIRN_ENOMEM;

    if (rc == 0 && !w->read_only)
        rc = cairn_env_mkdir_p(w->env, dir);
    if (rc == 0 && !w->read_only) {
        size_t n = strlen(dir) + 8;
        char *lp = malloc(n);
        if (!lp) {
            rc = CAIRN_ENOMEM;
        } else {
            snprintf(lp, n, "%s/LOCK", dir);
            rc = cairn_env_lock(w->env, lp, &w->lock);
            free(lp);
            if (rc == CAIRN_EBUSY)
                set_msg(info, "WAL directory %s is in use by another process",
                        dir);
        }
    }
    seg_entry *segs = NULL;
    size_t n = 0;
    if (rc == 0)
        rc = list_segments(w, &segs, &n);
    if (rc == 0) {
        recover_ctx c = {.w = w, .info = info};
        rc = recover(&c, segs, n);
    }
    for (size_t i = 0; i < n; i++)
        free(segs[i].path);
    free(segs);
    if (rc == 0) {
        w->next_lsn = w->last_good_lsn + 1;
        w->written_lsn = w->durable_lsn = w->last_good_lsn;
        if (!w->read_only)
            rc = cairn_wal_start(w);
    }
    if (rc != 0) {
        if (info->message[0] == '\0')
            set_msg(info, "cannot open WAL in %s: %s", dir,
                    cairn_strerror(rc));
        cairn_wal_free(w);
        return rc;
    }
    *out = w;
    return 0;
}
