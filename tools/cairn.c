/*
 * cairn.c — the Cairn admin command-line tool (`cairn`).
 *
 * What it is for: looking at and checking a Cairn data directory from the
 * outside, without a running server. Today it knows the write-ahead log:
 *   cairn wal dump    print the records of a log
 *   cairn wal verify  check a log, exit 0 (sound) / 1 (corrupt) / 2 (error)
 *   cairn wal fill    test helper: append generated records to a log
 * Commands live in one table (`commands` below); a new command is one
 * function plus one table row, and the usage text is built from the table.
 *
 * Invariants:
 *   - dump and verify never change a file: they open the log with
 *     read_only=true (which takes no lock, creates nothing, cuts no torn tail
 *     and, with --salvage, truncates and renames nothing). They check that
 *     DIR exists first, so a mistyped path is reported, never created.
 *   - fill is the only command that writes; it is a test and demo helper.
 *   - Exit status: 0 success (log sound); 1 the log is corrupt (or, with
 *     verify --salvage, salvage would drop data); 2 anything else: bad usage,
 *     unknown command, missing directory, I/O error, newer format.
 *   - Bad input never aborts: every error is a message on stderr (library
 *     errors through cairn_strerror()) and an exit status.
 *   - Record output goes to stdout; notes, progress and errors to stderr.
 *
 * Locking: single-threaded. The tool itself starts no threads and takes no
 * locks; the WAL library runs replay and progress callbacks on this thread
 * inside cairn_wal_open(). Only fill opens the log for writing, and the
 * library then holds the log's LOCK file (and runs its own background
 * thread) until cairn_wal_close(). dump and verify take no lock, so they can
 * read a log that a live process is writing; what they report then is a
 * snapshot that may end in a torn tail (and a segment the writer deletes
 * meanwhile makes them fail with exit 2).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "wal/wal.h"

enum {
    EXIT_SOUND = 0,   /* success */
    EXIT_CORRUPT = 1, /* the log is corrupt / salvage would drop data */
    EXIT_TROUBLE = 2, /* usage error, missing directory, I/O error, ... */
};

#define PREVIEW_BYTES 32u
#define MIB (1024.0 * 1024.0)

static const char *progname = "cairn";

/* ---------- the command table ---------- */

typedef int (*cmd_fn)(const char *path, int argc, char **argv);

typedef struct command {
    const char *path;     /* words that select it, e.g. "wal dump" */
    const char *args;     /* synopsis of its arguments */
    const char *summary;  /* one line */
    const char *details;  /* extra usage lines (may be NULL) */
    cmd_fn run;           /* argv[0] is the last word of path */
    bool test_helper;     /* listed apart, under "Test helpers" */
} command;

static int cmd_wal_dump(const char *path, int argc, char **argv);
/* What salvage would keep and drop, after a read-only salvage open that
 * met corruption. */
static void print_salvage_summary(FILE *out, const cairn_wal_recovery *info)
{
    fprintf(out, "corrupt: salvage would keep %" PRIu64 " records (%" PRIu64
                 " bytes",
            info->records, info->bytes);
    if (info->records)
        fprintf(out, ", LSN %" PRIu64 "..%" PRIu64, info->first_lsn,
                info->last_lsn);
    fprintf(out, ") and drop %" PRIu64 " bytes\n", info->dropped_bytes);
}

static int cmd_wal_verify(const char *path, int argc, char **argv);
static int cmd_wal_fill(const char *path, int argc, char **argv);

static const command commands[] = {
    {"wal dump", "DIR [--from LSN] [--limit N] [--hex N]",
     "print the records of the write-ahead log in DIR (read-only)",
     "    One line per record: LSN, type, length, segment file, offset and\n"
     "    the first 32 bytes as escaped text; --hex N shows a hex dump of the\n"
     "    first N bytes instead (indented lines under the record's line).\n"
     "    --from LSN starts at that LSN; --limit N stops after N records.\n"
     "    Ends with: records N, bytes B, segments S, LSN first..last\n",
     cmd_wal_dump, false},
    {"wal verify", "DIR [--salvage]",
     "check the write-ahead log in DIR (read-only)",
     "    Exit 0: sound (a torn tail of the newest segment is normal and only\n"
     "    noted); 1: corrupt (the message names the file and offset);\n"
     "    2: other errors. --salvage: report how many bytes salvage would\n"
     "    drop (exit 1 if any); nothing is changed either way.\n",
     cmd_wal_verify, false},
    {"wal fill", "DIR --records N [--size B] [--segment-size S]",
     "append N generated records of B bytes (default 100) to the log in DIR",
     "    Creates the log if needed; type 1, deterministic printable content,\n"
     "    sync mode none, synced at close. Sizes take K/M/G suffixes.\n"
     "    For tests and demos.\n",
     cmd_wal_fill, true},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: %s COMMAND [ARGS]\n"
            "\n"
            "Cairn admin tool.\n"
            "\n"
            "Commands:\n",
            progname);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            fprintf(out, "\nTest helpers:\n");
        for (size_t i = 0; i < NCOMMANDS; i++) {
            const command *c = &commands[i];
            if (c->test_helper != (pass == 1))
                continue;
            fprintf(out, "  %s %s %s\n      %s\n", progname, c->path, c->args,
                    c->summary);
        }
    }
    fprintf(out,
            "\n"
            "  %s help | --help    this text (COMMAND --help: one command)\n"
            "  %s --version        print the version\n"
            "\n"
            "Exit status: 0 success, 1 the log is corrupt, 2 any other error.\n",
            progname, progname);
}

static void print_command_usage(FILE *out, const command *c)
{
    fprintf(out, "usage: %s %s %s\n  %s\n", progname, c->path, c->args,
            c->summary);
    if (c->details)
        fputs(c->details, out);
}

static const command *find_command(const char *path)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].path, path) == 0)
            return &commands[i];
    return NULL;
}

/* How many leading words of argv select commands[i] (0 if it does not
 * match). */
static int match_words(const char *path, int argc, char **argv)
{
    int k = 0;
    const char *p = path;
    while (*p) {
        size_t len = strcspn(p, " ");
        if (k >= argc || strlen(argv[k]) != len ||
            strncmp(argv[k], p, len) != 0)
            return 0;
        k++;
        p += len;
        while (*p == ' ')
            p++;
    }
    return k;
}

/* ---------- messages ---------- */

static void errorf(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void errorf(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    if (cmd)
        fprintf(stderr, "%s %s: ", progname, cmd);
    else
        fprintf(stderr, "%s: ", progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s %s: ", progname, cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s %s --help'.\n", progname, cmd);
    return EXIT_TROUBLE;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---------- option parsing ---------- */

typedef enum { OPT_FLAG, OPT_U64, OPT_SIZE } opt_kind;

typedef struct opt_def {
    const char *name; /* "--limit" */
    opt_kind kind;
    void *dst;        /* bool * for OPT_FLAG, uint64_t * otherwise */
    bool seen;
} opt_def;

/* Parse a decimal unsigned number; with allow_suffix, K/M/G (KiB, MiB, GiB)
 * may follow. Returns false on anything else (sign, space, garbage,
 * overflow). */
static bool parse_u64(const char *s, bool allow_suffix, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return false;
    uint64_t mult = 1;
    if (allow_suffix && *end) {
        switch (*end) {
        case 'k': case 'K': mult = 1ull << 10; break;
        case 'm': case 'M': mult = 1ull << 20; break;
        case 'g': case 'G': mult = 1ull << 30; break;
        default: return false;
        }
        end++;
        if (*end == 'i' && end[1] == 'B')
            end += 2;
        else if (*end == 'B')
            end++;
    }
    if (*end)
        return false;
    if (v > UINT64_MAX / mult)
        return false;
    *out = (uint64_t)v * mult;
    return true;
}

/* Parse argv[1..argc-1] (argv[0] is the command word): options from defs,
 * and exactly npos positional arguments into pos[]. "--opt VALUE" and
 * "--opt=VALUE" both work; "--" ends the options. Returns -1 to go on,
 * EXIT_SOUND after printing the command's help, or EXIT_TROUBLE after a
 * usage message. */
static int parse_args(const command *c, int argc, char **argv, opt_def *defs,
                      size_t ndefs, const char **pos, size_t npos)
{
    size_t got = 0;
    bool opts_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!opts_done && strcmp(a, "--") == 0) {
            opts_done = true;
            continue;
        }
        if (!opts_done && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            print_command_usage(stdout, c);
            return EXIT_SOUND;
        }
        if (!opts_done && a[0] == '-' && a[1] != '\0') {
            const char *eq = strchr(a, '=');
            size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
            opt_def *d = NULL;
            for (size_t k = 0; k < ndefs; k++)
                if (strlen(defs[k].name) == nlen &&
                    strncmp(defs[k].name, a, nlen) == 0)
                    d = &defs[k];
            if (!d)
                return usage_error(c->path, "unknown option '%.*s'",
                                   (int)nlen, a);
            if (d->seen)
                return usage_error(c->path, "option %s given twice", d->name);
            d->seen = true;
            if (d->kind == OPT_FLAG) {
                if (eq)
                    return usage_error(c->path, "option %s takes no value",
                                       d->name);
                *(bool *)d->dst = true;
                continue;
            }
            const char *val = eq ? eq + 1 : NULL;
            if (!val) {
                if (i + 1 >= argc)
                    return usage_error(c->path, "option %s needs a value",
                                       d->name);
                val = argv[++i];
            }
            if (!parse_u64(val, d->kind == OPT_SIZE, (uint64_t *)d->dst))
                return usage_error(c->path,
                                   "option %s: '%s' is not a valid %s",
                                   d->name, val,
                                   d->kind == OPT_SIZE
                                       ? "size (a number, K/M/G suffix allowed)"
                                       : "number");
            continue;
        }
        if (got == npos)
            return usage_error(c->path, "unexpected argument '%s'", a);
        pos[got++] = a;
    }
    if (got < npos)
        return usage_error(c->path, "missing argument; usage: %s %s %s",
                           progname, c->path, c->args);
    return -1;
}

/* 0 if dir is an existing directory; else a message and EXIT_TROUBLE. */
static int check_dir(const char *cmd, const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        errorf(cmd, "%s: %s", dir, strerror(errno));
        return EXIT_TROUBLE;
    }
    if (!S_ISDIR(st.st_mode)) {
        errorf(cmd, "%s: not a directory", dir);
        return EXIT_TROUBLE;
    }
    return 0;
}

/* A failed open: exit status and message for rc. */
static int report_open_error(const char *cmd, const char *dir, int rc,
                             const cairn_wal_recovery *info)
{
    if (rc == CAIRN_ECORRUPT) {
        if (info->message[0])
            errorf(cmd, "%s", info->message);
        else
            errorf(cmd, "corrupt WAL segment %s at offset %" PRIu64,
                   info->error_segment[0] ? info->error_segment : dir,
                   info->error_offset);
        return EXIT_CORRUPT;
    }
    if (info->message[0])
        errorf(cmd, "%s", info->message);
    else
        errorf(cmd, "cannot read the WAL in %s: %s", dir, cairn_strerror(rc));
    return EXIT_TROUBLE;
}

/* The recovery note of a read-only open (torn tail), if any. */
static void print_recovery_note(const char *cmd, const cairn_wal_recovery *info)
{
    if (info->torn_segment[0]) {
        if (info->torn_offset == 0)
            fprintf(stderr,
                    "%s %s: note: torn tail: the newest segment %s was torn "
                    "while being created (%" PRIu64
                    " bytes, no records); a normal open discards it "
                    "(read-only: nothing changed)\n",
                    progname, cmd, info->torn_segment, info->torn_bytes);
        else
            fprintf(stderr,
                    "%s %s: note: torn tail: %" PRIu64
                    " bytes at offset %" PRIu64
                    " of %s were never acknowledged; a normal open cuts them "
                    "(read-only: nothing changed)\n",
                    progname, cmd, info->torn_bytes, info->torn_offset,
                    info->torn_segment);
    } else if (info->message[0]) {
        fprintf(stderr, "%s %s: note: %s\n", progname, cmd, info->message);
    }
}

static void print_log_summary(FILE *out, const cairn_wal_recovery *info)
{
    fprintf(out, "records %" PRIu64 ", bytes %" PRIu64 ", segments %" PRIu64,
            info->records, info->bytes, info->segments);
    if (info->records)
        fprintf(out, ", LSN %" PRIu64 "..%" PRIu64 "", info->first_lsn,
                info->last_lsn);
    else
        fprintf(out, ", LSN none");
}

/* Flush stdout; a failed write there is an error too (e.g. disk full). */
static int finish_stdout(const char *cmd, int status)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        errorf(cmd, "error writing to standard output: %s", strerror(errno));
        return EXIT_TROUBLE;
    }
    return status;
}

/* ---------- wal dump ---------- */

typedef struct dump_ctx {
    uint64_t limit;     /* 0: no limit */
    uint64_t hex;       /* bytes of hex dump per record */
    bool use_hex;
    uint64_t shown;
    uint64_t shown_bytes;
    uint64_t first_shown, last_shown;
    bool stopped;       /* the callback stopped the open at the limit */
} dump_ctx;

/* Returned by the dump callback to stop at --limit; recognised by the
 * stopped flag, never by the code alone. */
#define DUMP_STOP CAIRN_ECLOSED

static void print_preview(FILE *out, const uint8_t *p, size_t len)
{
    size_t n = len < PREVIEW_BYTES ? len : PREVIEW_BYTES;
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        uint8_t b = p[i];
        switch (b) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (b >= 0x20 && b < 0x7f)
                fputc(b, out);
            else
                fprintf(out, "\\x%02x", b);
        }
    }
    fputc('"', out);
    if (len > n)
        fputs("...", out);
}

static void print_hex(FILE *out, const uint8_t *p, size_t len, uint64_t max)
{
    size_t n = (uint64_t)len < max ? len : (size_t)max;
    for (size_t row = 0; row < n; row += 16) {
        fprintf(out, "    %08zx ", row);
        for (size_t i = row; i < row + 16; i++) {
            if (i < n)
                fprintf(out, " %02x", p[i]);
            else
                fputs("   ", out);
        }
        fputs("  |", out);
        for (size_t i = row; i < row + 16 && i < n; i++)
            fputc(p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '.', out);
        fputs("|\n", out);
    }
}

static int dump_record(void *arg, const cairn_wal_record *rec)
{
    dump_ctx *d = arg;
    if (d->limit && d->shown >= d->limit) {
        d->stopped = true; /* a record past the limit exists: stop here */
        return DUMP_STOP;
    }
    printf("lsn=%" PRIu64 " type=%u len=%zu segment=%s offset=%" PRIu64,
           rec->lsn, (unsigned)rec->type, rec->len, base_name(rec->segment),
           rec->offset);
    if (d->use_hex) {
        if (d->hex && rec->len)
            fputs(" hex:\n", stdout);
        else
            fputc('\n', stdout);
        print_hex(stdout, rec->data, rec->len, d->hex);
    } else {
        fputs(" data=", stdout);
        print_preview(stdout, rec->data, rec->len);
        fputc('\n', stdout);
    }
    if (d->shown++ == 0)
        d->first_shown = rec->lsn;
    d->last_shown = rec->lsn;
    d->shown_bytes += CAIRN_WAL_RECORD_HEADER_SIZE + (uint64_t)rec->len;
    return 0;
}

static int cmd_wal_dump(const char *path, int argc, char **argv)
{
    const command *c = find_command(path);
    uint64_t from = 0, limit = 0, hex = 0;
    opt_def defs[] = {
        {"--from", OPT_U64, &from, false},
        {"--limit", OPT_U64, &limit, false},
        {"--hex", OPT_U64, &hex, false},
    };
    const char *dir = NULL;
    int st = parse_args(c, argc, argv, defs, 3, &dir, 1);
    if (st >= 0)
        return st;
    if (defs[1].seen && limit == 0)
        return usage_error(path, "--limit must be at least 1");
    st = check_dir(path, dir);
    if (st)
        return st;

    dump_ctx d = {.limit = limit, .hex = hex, .use_hex = defs[2].seen};
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.read_only = true;
    o.replay = dump_record;
    o.replay_arg = &d;
    o.replay_from = from;
    cairn_wal *w = NULL;
    cairn_wal_recovery info;
    int rc = cairn_wal_open(dir, &o, &w, &info);
    if (rc == DUMP_STOP && d.stopped) {
        /* Stopped at --limit: the rest of the log was not read, so there
         * is no whole-log summary to give. */
        printf("records %" PRIu64 " shown, bytes %" PRIu64 ", LSN %" PRIu64
               "..%" PRIu64 " (stopped at --limit %" PRIu64
               "; the rest of the log was not read)\n",
               d.shown, d.shown_bytes, d.first_shown, d.last_shown, limit);
        return finish_stdout(path, EXIT_SOUND);
    }
    if (rc != 0) {
        fflush(stdout); /* records before the damage first, then the error */
        return finish_stdout(path, report_open_error(path, dir, rc, &info));
    }
    cairn_wal_close(w); /* read-only: frees the handle, touches nothing */
    print_log_summary(stdout, &info);
    if (from > 1 || limit)
        printf("; shown %" PRIu64, d.shown);
    fputc('\n', stdout);
    fflush(stdout);
    print_recovery_note(path, &info);
    return finish_stdout(path, EXIT_SOUND);
}

/* ---------- wal verify ---------- */

typedef struct verify_ctx {
    uint64_t records, bytes;
    /* progress */
    bool show_progress_tty; /* stderr is a terminal */
    bool printed;           /* at least one progress line is out */
    double last_time;
    uint64_t last_done;
} verify_ctx;

static int verify_record(void *arg, const cairn_wal_record *rec)
{
    verify_ctx *v = arg;
    v->records++;
    v->bytes += CAIRN_WAL_RECORD_HEADER_SIZE + (uint64_t)rec->len;
    return 0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Progress on stderr: only on a terminal or for big logs (>= 64 MiB), and
 * at most once a second or every 10% of the total. On a terminal the line
 * is rewritten in place. */
static void verify_progress(void *arg, uint64_t done, uint64_t total)
{
    verify_ctx *v = arg;
    if (!v->show_progress_tty && total < (64ull << 20))
        return;
    if (total == 0)
        return;
    if (done > total)
        done = total;
    double now = now_seconds();
    bool final = done == total;
    if (final && !v->printed)
        return; /* fast enough that nobody needed a progress line */
    if (!final && now - v->last_time < 1.0 &&
        done - v->last_done < total / 10)
        return;
    fprintf(stderr, "%sverify: %.1f/%.1f MiB (%d%%)%s",
            v->show_progress_tty ? "\r" : "", (double)done / MIB,
            (double)total / MIB, (int)(done * 100.0 / (double)total),
            v->show_progress_tty && !final ? "" : "\n");
    fflush(stderr);
    v->printed = true;
    v->last_time = now;
    v->last_done = done;
}

/* One read-only pass over the log (with or without salvage). */
static int verify_open(const char *dir, bool salvage, verify_ctx *v,
                       cairn_wal_recovery *info)
{
    v->records = v->bytes = 0;
    v->printed = false;
    v->last_done = 0;
    v->last_time = now_seconds();
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.read_only = true; /* with salvage too: report, never cut or rename */
    o.salvage = salvage;
    o.replay = verify_record;
    o.replay_arg = v;
    o.progress = verify_progress;
    o.progress_arg = v;
    cairn_wal *w = NULL;
    int rc = cairn_wal_open(dir, &o, &w, info);
    if (v->printed && v->show_progress_tty && rc != 0)
        fputc('\n', stderr); /* end the in-place progress line */
    if (rc == 0)
        cairn_wal_close(w); /* read-only: frees the handle, touches nothing */
    return rc;
}

static int cmd_wal_verify(const char *path, int argc, char **argv)
{
    const command *c = find_command(path);
    bool salvage = false;
    opt_def defs[] = {{"--salvage", OPT_FLAG, &salvage, false}};
    const char *dir = NULL;
    int st = parse_args(c, argc, argv, defs, 1, &dir, 1);
    if (st >= 0)
        return st;
    st = check_dir(path, dir);
    if (st)
        return st;

    verify_ctx v = {.show_progress_tty = isatty(STDERR_FILENO) == 1};
    cairn_wal_recovery info;
    /* First a plain pass: it says whether the log is sound and, if not,
     * where and why. Only when it is corrupt and --salvage was asked for
     * does a second, salvage pass find out what salvage would drop. */
    int rc = verify_open(dir, false, &v, &info);
    if (rc == CAIRN_ECORRUPT && salvage) {
        report_open_error(path, dir, rc, &info);
        rc = verify_open(dir, true, &v, &info);
        if (rc != 0)
            return report_open_error(path, dir, rc, &info);
        if (info.dropped_bytes > 0)
            errorf(path,
                   "salvage would drop %" PRIu64 " bytes: everything from "
                   "offset %" PRIu64 " of %s on (read-only: nothing changed)",
                   info.dropped_bytes, info.error_offset, info.error_segment);
        print_salvage_summary(stdout, &info);
        return finish_stdout(path, EXIT_CORRUPT);
    }
    if (rc != 0)
        return report_open_error(path, dir, rc, &info);

    print_recovery_note(path, &info);
    if (info.segments == 0)
        fprintf(stderr, "%s %s: note: no WAL segment files in %s\n", progname,
                path, dir);
    printf("sound: ");
    print_log_summary(stdout, &info);
    if (salvage)
        printf("; salvage would drop 0 bytes");
    fputc('\n', stdout);
    return finish_stdout(path, EXIT_SOUND);
}

/* ---------- wal fill (test helper) ---------- */

/* Deterministic, printable payload for the record that gets lsn. */
static void fill_payload(uint8_t *buf, size_t len, uint64_t lsn)
{
    char prefix[32];
    int plen = snprintf(prefix, sizeof prefix, "rec-%08" PRIu64 ":", lsn);
    for (size_t j = 0; j < len; j++)
        buf[j] = j < (size_t)plen ? (uint8_t)prefix[j]
                                  : (uint8_t)('a' + (lsn + j) % 26);
}

static int cmd_wal_fill(const char *path, int argc, char **argv)
{
    const command *c = find_command(path);
    uint64_t records = 0, size = 100, seg_size = CAIRN_WAL_DEFAULT_SEGMENT_SIZE;
    opt_def defs[] = {
        {"--records", OPT_U64, &records, false},
        {"--size", OPT_SIZE, &size, false},
        {"--segment-size", OPT_SIZE, &seg_size, false},
    };
    const char *dir = NULL;
    int st = parse_args(c, argc, argv, defs, 3, &dir, 1);
    if (st >= 0)
        return st;
    if (!defs[0].seen)
        return usage_error(path, "--records N is required");
    if (size > CAIRN_WAL_DEFAULT_MAX_RECORD)
        return usage_error(path, "--size: at most %llu bytes",
                           (unsigned long long)CAIRN_WAL_DEFAULT_MAX_RECORD);
    if (seg_size < 4096)
        return usage_error(path, "--segment-size: at least 4096 bytes");

    uint8_t *buf = malloc(size ? (size_t)size : 1);
    if (!buf) {
        errorf(path, "%s", cairn_strerror(CAIRN_ENOMEM));
        return EXIT_TROUBLE;
    }
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.sync_mode = CAIRN_WAL_SYNC_NONE;
    o.segment_size = seg_size;
    cairn_wal *w = NULL;
    cairn_wal_recovery info;
    int rc = cairn_wal_open(dir, &o, &w, &info);
    if (rc != 0) {
        free(buf);
        return report_open_error(path, dir, rc, &info);
    }
    if (info.message[0])
        fprintf(stderr, "%s %s: note: %s\n", progname, path, info.message);

    /* Hand batches to the log now and then (wait = written to the OS in
     * sync mode none) so the pending buffer stays small. */
    uint64_t first = 0, last = 0, pending = 0;
    for (uint64_t i = 0; i < records && rc == 0; i++) {
        fill_payload(buf, (size_t)size, cairn_wal_last_lsn(w) + 1);
        rc = cairn_wal_append(w, 1, buf, (size_t)size, &last);
        if (rc != 0)
            break;
        if (i == 0)
            first = last;
        pending += CAIRN_WAL_RECORD_HEADER_SIZE + size;
        if (pending >= (4u << 20)) {
            rc = cairn_wal_wait(w, last);
            pending = 0;
        }
    }
    if (rc != 0)
        errorf(path, "append to the WAL in %s failed: %s", dir,
               cairn_strerror(rc));
    int crc = cairn_wal_close(w); /* syncs and seals */
    free(buf);
    if (crc != 0) {
        errorf(path, "closing the WAL in %s failed: %s", dir,
               cairn_strerror(crc));
        return EXIT_TROUBLE;
    }
    if (rc != 0)
        return EXIT_TROUBLE;
    if (records)
        printf("appended %" PRIu64 " records of %" PRIu64
               " bytes, LSN %" PRIu64 "..%" PRIu64 "\n",
               records, size, first, last);
    else
        printf("appended 0 records\n");
    return finish_stdout(path, EXIT_SOUND);
}

/* ---------- main ---------- */

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_TROUBLE;
    }
    const char *a = argv[1];
    if (strcmp(a, "--version") == 0 || strcmp(a, "version") == 0) {
        printf("cairn %s\n", cairn_version_string());
        return finish_stdout(NULL, EXIT_SOUND);
    }
    if (strcmp(a, "help") == 0 || strcmp(a, "--help") == 0 ||
        strcmp(a, "-h") == 0) {
        print_usage(stdout);
        return finish_stdout(NULL, EXIT_SOUND);
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        int k = match_words(commands[i].path, argc - 1, argv + 1);
        if (k > 0)
            return commands[i].run(commands[i].path, argc - k, argv + k);
    }
    /* No command matched: say which words were not understood. */
    bool group = false;
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strncmp(commands[i].path, a, strlen(a)) == 0 &&
            commands[i].path[strlen(a)] == ' ')
            group = true;
    if (group && argc >= 3)
        errorf(NULL, "unknown command '%s %s'", a, argv[2]);
    else if (group)
        errorf(NULL, "'%s' needs a subcommand", a);
    else
        errorf(NULL, "unknown command '%s'", a);
    fprintf(stderr, "Try '%s --help'.\n", progname);
    return EXIT_TROUBLE;
}
