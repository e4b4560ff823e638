/*
 * cairn.c — the Cairn admin command-line tool (`cairn`).
 *
 * What it is for: looking at and checking a Cairn database directory from
 * the outside, without a running server:
 *   cairn wal dump    print the records of a log
 *   cairn wal verify  check a log, exit 0 (sound) / 1 (corrupt) / 2 (error)
 *   cairn wal fill    test helper: append generated records to a log
 *   cairn sst dump    print the properties and entries of one sorted file
 *   cairn check       check a whole database directory: FORMAT, manifest,
 *                     every sorted file of the current version (checksums,
 *                     key order, properties against the manifest), leftover
 *                     files, the WAL
 *   cairn stats       per-level file counts, sizes, entries, compression,
 *                     space amplification, WAL size (text or --json)
 *   cairn compact     open the database and merge every sorted file down
 *                     into its deepest level (cairn_compact)
 *   cairn debug mkseries   hidden test helper: create a time series
 *   cairn debug mkfixture  hidden test helper: write a small database
 *                     directory (sorted files in L0 and L1, a manifest, a
 *                     WAL) for the integration tests
 * Commands live in one table (`commands` below); a new command is one
 * function plus one table row, and the usage text is built from the table.
 *
 * Invariants:
 *   - dump, verify, check and stats never change a file: logs are opened
 *     with read_only=true (which takes no lock, creates nothing, cuts no torn
 *     tail and, with --salvage, truncates and renames nothing), the manifest
 *     with read_only=true (cuts no torn tail, deletes no leftover), sorted
 *     files through readers. They check that DIR exists first, so a
 *     mistyped path is reported, never created.
 *   - compact opens the database through cairn_open (its LOCK file: it
 *     refuses a database a server holds) and changes it only through the
 *     engine's crash-safe compaction. wal fill and debug mkfixture are the
 *     other commands that write; they are test and demo helpers.
 *   - Exit status: 0 success (everything sound); 1 damage found (a corrupt
 *     log, manifest or sorted file, a missing file, properties that disagree
 *     with the manifest; or, with verify --salvage, salvage would drop
 *     data); 2 anything else: bad usage, unknown command or option, missing
 *     directory, I/O error, newer format. check lists every problem it finds
 *     and exits 1 if there was any, else 2 if something could not be
 *     checked, else 0.
 *   - Bad input never aborts: every error is a message and an exit status
 *     (library errors through cairn_strerror()).
 *   - Output (records, entries, reports, stats) goes to stdout; notes,
 *     progress and errors to stderr. check's report, problems included, is
 *     on stdout, with a one-line verdict on stderr when it is not sound.
 *   - All file I/O of the new commands goes through cairn_env (the POSIX
 *     env); only the up-front "is DIR a directory" test uses stat().
 *
 * Locking: single-threaded. The tool itself starts no threads and takes no
 * locks; the WAL library runs replay and progress callbacks on this thread
 * inside cairn_wal_open(), the sorted-file verifier its progress callback
 * inside cairn_sst_verify(); compact's progress callback runs on this
 * thread inside cairn_compact() (the engine's own threads run beside it).
 * Only fill, mkfixture and compact open a log for writing,
 * and the library then holds the log's LOCK file (and runs its own
 * background thread) until cairn_wal_close(). The read-only commands take
 * no lock, so they can read a database that a live process is writing;
 * what they report then is a snapshot that may end in a torn tail, show a
 * file being written as a leftover, or fail (exit 2, or 1 for a file the
 * writer deleted meanwhile).
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
#include "env/env.h"
#include "lsm/manifest.h"
#include "lsm/version.h"
#include "sst/sst.h"
#include "util/coding.h"
#include "wal/wal.h"

enum {
    EXIT_SOUND = 0,   /* success */
    EXIT_CORRUPT = 1, /* damage found / salvage would drop data */
    EXIT_TROUBLE = 2, /* usage error, missing directory, I/O error, ... */
};

/* The database directory format this tool reads and writes
 * (docs/format/database.md): FORMAT holds "cairn-db 1"; WAL records of
 * type 1 are commit records. A FORMAT with a higher number is reported as
 * a newer format (exit 2), never guessed at. */
#define DB_FORMAT_VERSION 1
#define WAL_TYPE_COMMIT 1

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
    bool hidden;          /* not listed at all (COMMAND --help still works) */
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
static int cmd_sst_dump(const char *path, int argc, char **argv);
static int cmd_check(const char *path, int argc, char **argv);
static int cmd_stats(const char *path, int argc, char **argv);
static int cmd_compact(const char *path, int argc, char **argv);
static int cmd_archive(const char *path, int argc, char **argv);
static int cmd_recall(const char *path, int argc, char **argv);
static int cmd_debug_mkfixture(const char *path, int argc, char **argv);
static int cmd_debug_mkseries(const char *path, int argc, char **argv);

static const command commands[] = {
    {"wal dump", "DIR [--from LSN] [--limit N] [--hex N]",
     "print the records of the write-ahead log in DIR (read-only)",
     "    One line per record: LSN, type, length, segment file, offset and\n"
     "    the first 32 bytes as escaped text; --hex N shows a hex dump of the\n"
     "    first N bytes instead (indented lines under the record's line).\n"
     "    --from LSN starts at that LSN; --limit N stops after N records.\n"
     "    Ends with: records N, bytes B, segments S, LSN first..last\n",
     cmd_wal_dump, false, false},
    {"wal verify", "DIR [--salvage]",
     "check the write-ahead log in DIR (read-only)",
     "    Exit 0: sound (a torn tail of the newest segment is normal and only\n"
     "    noted); 1: corrupt (the message names the file and offset);\n"
     "    2: other errors. --salvage: report how many bytes salvage would\n"
     "    drop (exit 1 if any); nothing is changed either way.\n",
     cmd_wal_verify, false, false},
    {"wal fill", "DIR --records N [--size B] [--segment-size S]",
     "append N generated records of B bytes (default 100) to the log in DIR",
     "    Creates the log if needed; type 1, deterministic printable content,\n"
     "    sync mode none, synced at close. Sizes take K/M/G suffixes.\n"
     "    For tests and demos.\n",
     cmd_wal_fill, true, false},
    {"sst dump", "FILE [--limit N] [--props-only]",
     "print the properties and entries of a sorted file (read-only)",
     "    Properties: sizes, entry and tombstone counts, raw and stored data\n"
     "    bytes with their ratio, codec, block and filter settings, version\n"
     "    and timestamp ranges (timestamps also as ISO-8601 UTC), creation\n"
     "    time, smallest and largest key. Then one line per entry, in order:\n"
     "      key=\"...\" version=V ts=T (ISO-8601) PUT vlen=N value=\"...\"\n"
     "      key=\"...\" version=V ts=T (ISO-8601) DEL\n"
     "    Keys and values: printable ASCII as is, other bytes (and \" and \\)\n"
     "    as \\xNN; keys cut after 256 bytes, values after 32 (then ...).\n"
     "    --limit N: at most N entries (default 100; 0 = all).\n"
     "    --props-only: the properties only.\n"
     "    Exit 1 if the file is damaged (the message names file and offset).\n",
     cmd_sst_dump, false, false},
    {"check", "DIR [--progress] [--archive-dir ADIR]",
     "check everything in the database directory DIR (read-only)",
     "    Checks: the FORMAT file; the manifest (CURRENT and the live\n"
     "    MANIFEST: a torn tail is only noted); every sorted file of the\n"
     "    current version exists, passes a full verification (every block\n"
     "    checksum, key order, properties against the blocks) and agrees with\n"
     "    the manifest (size, smallest and largest key, entries, tombstones,\n"
     "    version range); files no version references (reported as\n"
     "    leftovers, not errors); the WAL in DIR/wal (as `wal verify`);\n"
     "    the blob store in DIR/blob, through a read-only open: references\n"
     "    to blobs recounted from every sorted file and the log and compared\n"
     "    with the engine's counts, every referenced blob read and verified\n"
     "    (missing or damaged: DAMAGED; stored but unreferenced: garbage,\n"
     "    not an error).\n"
     "    Files in the archive tier are checked in ADIR (--archive-dir);\n"
     "    without it they are only noted.\n"
     "    One report line per item on stdout (ok / note / leftover / DAMAGED /\n"
     "    ERROR), then a verdict. Every problem is listed, not only the first.\n"
     "    --progress: show bytes checked / total on stderr (default: only\n"
     "    when stderr is a terminal).\n"
     "    Exit 0: sound; 1: damage found; 2: usage or I/O errors, newer\n"
     "    format, not a database directory.\n",
     cmd_check, false, false},
    {"stats", "DIR [--json] [--archive-dir ADIR]",
     "space and entry statistics of the database in DIR (read-only)",
     "    From the manifest and each sorted file's properties: per level and\n"
     "    in total the files, bytes, entries, tombstones, raw key+value bytes\n"
     "    and compression ratio (raw data bytes / stored data bytes); the\n"
     "    space amplification estimate, defined here as file bytes / raw\n"
     "    key+value bytes of ALL entries (every version and tombstone counted:\n"
     "    the size of the newest version of each key is not known offline);\n"
     "    WAL segment count and bytes; per tier (local disk, archive) the\n"
     "    files, bytes, raw key+value bytes and their ratio. Archived files\n"
     "    are read from ADIR (--archive-dir); without it they are counted\n"
     "    from the manifest. The blob store (DIR/blob), through a read-only\n"
     "    open: files, stored bytes, bytes of the values referenced, their\n"
     "    ratio (dedup and compression), distinct blobs, dead bytes.\n"
     "    --json: one JSON object instead.\n"
     "    Exit 1 if the manifest or a file could not be read as damaged.\n",
     cmd_stats, false, false},
    {"archive", "DIR --archive-dir ADIR [--min-level N] [--min-age S] "
                "[--file N] [--zstd-level L]",
     "move sorted files of DIR to the archive directory ADIR, recompressed",
     "    Opens the database (stop the server first), then archives the\n"
     "    local files at level N or deeper and at least S seconds old (with\n"
     "    neither: every local file), or just file N (--file), one at a time:\n"
     "    each is copied into ADIR with its blocks recompressed (zstd at\n"
     "    level L, default 19), the move recorded, then the local copy\n"
     "    deleted. One line per file: its number, level, size before and\n"
     "    after. Then the files and bytes per tier.\n"
     "    Exit 0: done; 2: not a database, busy, archive unreachable, I/O\n"
     "    error (files not moved stay where they were; nothing is lost).\n",
     cmd_archive, false, false},
    {"recall", "DIR FILE --archive-dir ADIR",
     "bring archived sorted file FILE (a number or NNNNNN.sst) back to DIR",
     "    Opens the database (stop the server first) and moves the file back\n"
     "    to local disk, its blocks compressed as its level's are.\n"
     "    Exit 0: done (also when the file is local already); 2: no such\n"
     "    file, archive unreachable, I/O error (nothing is lost).\n",
     cmd_recall, false, false},
    {"compact", "DIR [--progress]",
     "merge every sorted file of DIR down into its deepest level",
     "    Opens the database (it must not be open elsewhere: stop the server\n"
     "    first), writes the memtables out, then merges each level into the\n"
     "    next down to the deepest one holding data (at least level 2), as\n"
     "    cairn_compact() does: afterwards the data sits in one level,\n"
     "    rewritten with that level's codec (zstd by default), and\n"
     "    versions older than the history window (10 min) are gone. It\n"
     "    rewrites the whole database: it needs free space for a copy of the\n"
     "    largest level and takes about as long as writing it. Prints the\n"
     "    files and bytes per level before and after.\n"
     "    --progress: one line per merge on stderr (default: only when stderr\n"
     "    is a terminal, drawn in place).\n"
     "    Exit 0: done; 2: not a database, busy, I/O error or no space (the\n"
     "    files stay as they were; nothing is lost).\n",
     cmd_compact, false, false},
    {"debug mkfixture", "DIR [--entries N] [--wal-records N] [--wrong-meta]",
     "write a small test database into DIR (new or empty)",
     "    FORMAT; four sorted files (two in L0: lz4 and uncompressed; two in\n"
     "    L1: zstd) of N entries each (default 400) with several versions,\n"
     "    tombstones and one binary key; a manifest naming them; a WAL of\n"
     "    commit records (default 20). Prints one line per file.\n"
     "    --wrong-meta: record a wrong entry count for the first L1 file.\n"
     "    For tests.\n",
     cmd_debug_mkfixture, true, true},
    {"debug mkseries", "DIR NAME [--points N]",
     "create time series NAME in the database in DIR, with N points",
     "    Opens (or creates) the database, creates the series (1-second\n"
     "    points from 0 ms, values 0, 1, 2, ...; default 100) and closes.\n"
     "    For tests, until the server has TS.CREATE.\n",
     cmd_debug_mkseries, true, true},
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
            if (c->test_helper != (pass == 1) || c->hidden)
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
            "Exit status: 0 success (sound), 1 damage found (a corrupt log,\n"
            "manifest or sorted file, a missing file), 2 any other error (usage,\n"
            "unknown option, I/O error, newer format).\n",
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

typedef enum { OPT_FLAG, OPT_U64, OPT_SIZE, OPT_STR } opt_kind;

typedef struct opt_def {
    const char *name; /* "--limit" */
    opt_kind kind;
    void *dst;        /* bool * for OPT_FLAG, const char ** for OPT_STR,
                         uint64_t * otherwise */
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
            if (d->kind == OPT_STR) {
                *(const char **)d->dst = val;
                continue;
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

/* One read-only pass over the log (with or without salvage). progress
 * (with progress_arg) gets the log's progress callbacks; NULL: the wal
 * verify progress line (verify_progress, with v). */
static int verify_open(const char *dir, bool salvage, verify_ctx *v,
                       cairn_wal_progress_fn progress, void *progress_arg,
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
    o.progress = progress ? progress : verify_progress;
    o.progress_arg = progress ? progress_arg : v;
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
    int rc = verify_open(dir, false, &v, NULL, NULL, &info);
    if (rc == CAIRN_ECORRUPT && salvage) {
        report_open_error(path, dir, rc, &info);
        rc = verify_open(dir, true, &v, NULL, NULL, &info);
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

/* ---------- shared helpers for sorted files and database directories ---------- */

#define PATH_CAP 4096
#define DIR_MAX_LEN 3000 /* longest DIR accepted: every joined path fits */
#define KEY_SHOWN 256u   /* key bytes shown before "..." */
#define ESC_CAP (4u * KEY_SHOWN + 8u)

/* Bytes between double quotes into dst: printable ASCII as is, everything
 * else (and the quote and the backslash, so the text is unambiguous) as
 * \xNN; at most max bytes (max <= KEY_SHOWN), then "...". dst has room for
 * ESC_CAP bytes. */
static const char *escape_bytes(char *dst, const uint8_t *p, size_t len,
                                size_t max)
{
    size_t n = len < max ? len : max, o = 0;
    dst[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        uint8_t b = p[i];
        if (b >= 0x20 && b < 0x7f && b != '"' && b != '\\') {
            dst[o++] = (char)b;
        } else {
            static const char hex[] = "0123456789abcdef";
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[b >> 4];
            dst[o++] = hex[b & 15];
        }
    }
    dst[o++] = '"';
    if (len > n) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
    return dst;
}

static void put_escaped(FILE *out, const uint8_t *p, size_t len, size_t max)
{
    char buf[ESC_CAP];
    fputs(escape_bytes(buf, p, len, max), out);
}

#define ISO_CAP 96

/* Microseconds since the Unix epoch as ISO-8601 UTC with microseconds,
 * e.g. "2023-11-14T22:13:20.000017Z". */
static const char *iso_time(char *buf, uint64_t us)
{
    uint64_t secs = us / 1000000u;
    time_t t = (time_t)secs;
    struct tm tm;
    if (secs > 253402300799ull /* 9999-12-31T23:59:59Z */ ||
        !gmtime_r(&t, &tm)) {
        snprintf(buf, ISO_CAP, "beyond year 9999");
        return buf;
    }
    snprintf(buf, ISO_CAP, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (unsigned)(us % 1000000u));
    return buf;
}

/* "1234 bytes (1.2 KiB)". */
static const char *human_bytes(char *buf, size_t n, uint64_t b)
{
    static const char *unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (b < 1024) {
        snprintf(buf, n, "%" PRIu64 " bytes", b);
        return buf;
    }
    double v = (double)b / 1024.0;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, n, "%" PRIu64 " bytes (%.1f %s)", b, v, unit[u]);
    return buf;
}

static const char *codec_name(cairn_sst_codec c)
{
    switch (c) {
    case CAIRN_SST_CODEC_NONE: return "none";
    case CAIRN_SST_CODEC_LZ4: return "lz4";
    case CAIRN_SST_CODEC_ZSTD: return "zstd";
    }
    return "unknown";
}

/* Size of the file at path, through the env. */
static int env_file_size(cairn_env *env, const char *path, uint64_t *size)
{
    cairn_file *f = NULL;
    int rc = cairn_env_open(env, path, CAIRN_OPEN_READ, &f);
    if (rc != 0)
        return rc;
    rc = cairn_file_size(f, size);
    int crc = cairn_file_close(f);
    return rc ? rc : crc;
}

/* "DIR/NAME" into buf (PATH_CAP bytes); DIR was length-checked. */
static const char *join_path(char *buf, const char *dir, const char *name)
{
    snprintf(buf, PATH_CAP, "%s/%s", dir, name);
    return buf;
}

/* check_dir plus a length limit (so every joined path fits). */
static int check_db_dir(const char *cmd, const char *dir)
{
    if (strlen(dir) > DIR_MAX_LEN) {
        errorf(cmd, "%s: path too long", dir);
        return EXIT_TROUBLE;
    }
    return check_dir(cmd, dir);
}

/* A directory listing, names sorted. */
typedef struct dir_list {
    char **names;
    size_t n;
} dir_list;

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int dir_list_read(cairn_env *env, const char *dir, dir_list *d)
{
    d->names = NULL;
    d->n = 0;
    int rc = cairn_env_list_dir(env, dir, &d->names, &d->n);
    if (rc == 0 && d->n > 1)
        qsort(d->names, d->n, sizeof *d->names, cmp_names);
    return rc;
}

static void dir_list_free(dir_list *d)
{
    if (d->names)
        cairn_env_free_list(d->names, d->n);
    d->names = NULL;
    d->n = 0;
}

static bool dir_list_has(const dir_list *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->names[i], name) == 0)
            return true;
    return false;
}

/* True if name is a WAL segment: "wal-" + 20 digits + ".log". */
static bool is_wal_segment(const char *name)
{
    if (strncmp(name, "wal-", 4) != 0 || strlen(name) != 4 + 20 + 4 ||
        strcmp(name + 24, ".log") != 0)
        return false;
    for (int i = 4; i < 24; i++)
        if (name[i] < '0' || name[i] > '9')
            return false;
    return true;
}

/* Segment files and their bytes in a WAL directory. */
static int wal_usage(cairn_env *env, const char *wal_dir, uint64_t *segments,
                     uint64_t *bytes)
{
    *segments = *bytes = 0;
    dir_list d;
    int rc = dir_list_read(env, wal_dir, &d);
    if (rc != 0)
        return rc;
    char p[PATH_CAP];
    for (size_t i = 0; i < d.n && rc == 0; i++) {
        if (!is_wal_segment(d.names[i]))
            continue;
        uint64_t sz = 0;
        rc = env_file_size(env, join_path(p, wal_dir, d.names[i]), &sz);
        if (rc == CAIRN_ENOTFOUND) { /* removed meanwhile */
            rc = 0;
            continue;
        }
        (*segments)++;
        *bytes += sz;
    }
    dir_list_free(&d);
    return rc;
}

/* The FORMAT file: 0 and *ver, CAIRN_ENOTFOUND, CAIRN_ECORRUPT (not
 * "cairn-db N"; the same reading as the database's own open), or an I/O
 * error. */
static int read_format(cairn_env *env, const char *dir, int *ver)
{
    char p[PATH_CAP];
    cairn_file *f = NULL;
    int rc = cairn_env_open(env, join_path(p, dir, "FORMAT"), CAIRN_OPEN_READ,
                            &f);
    if (rc != 0)
        return rc;
    char buf[64] = {0};
    size_t got = 0;
    rc = cairn_file_read_at(f, 0, buf, sizeof buf - 1, &got);
    cairn_file_close(f);
    if (rc != 0)
        return rc;
    buf[got] = '\0';
    *ver = 0;
    if (sscanf(buf, "cairn-db %d", ver) != 1 || *ver < 1)
        return CAIRN_ECORRUPT;
    return 0;
}

/* The exit status for a library error: damage is 1, the rest 2. */
static int status_of(int rc)
{
    return rc == CAIRN_ECORRUPT ? EXIT_CORRUPT : EXIT_TROUBLE;
}

/* ---------- sst dump ---------- */

static void print_ratio(FILE *out, uint64_t raw, uint64_t stored)
{
    if (stored)
        fprintf(out, "%.2f", (double)raw / (double)stored);
    else
        fputs("-", out);
}

static void print_sst_props(FILE *out, const char *file,
                            const cairn_sst_props *p)
{
    char h[64], iso1[ISO_CAP], iso2[ISO_CAP];
    fprintf(out, "file: %s\n", file);
    fprintf(out, "format version: %d\n", CAIRN_SST_FORMAT_VERSION);
    fprintf(out, "file size: %s\n", human_bytes(h, sizeof h, p->file_size));
    fprintf(out, "entries: %" PRIu64 " (puts %" PRIu64 ", deletes %" PRIu64
                 "), distinct keys %" PRIu64 "\n",
            p->entries, p->entries - p->deletes, p->deletes,
            p->distinct_keys);
    if (p->entries) {
        fprintf(out, "versions: %" PRIu64 "..%" PRIu64 "\n", p->min_version,
                p->max_version);
        fprintf(out, "timestamps: %" PRIu64 "..%" PRIu64 " (%s .. %s)\n",
                p->min_ts, p->max_ts, iso_time(iso1, p->min_ts),
                iso_time(iso2, p->max_ts));
    } else {
        fputs("versions: none\ntimestamps: none\n", out);
    }
    fprintf(out, "raw key bytes: %" PRIu64 ", raw value bytes: %" PRIu64
                 ", raw key+value bytes: %" PRIu64 "\n",
            p->raw_key_bytes, p->raw_value_bytes,
            p->raw_key_bytes + p->raw_value_bytes);
    fprintf(out, "data blocks: %" PRIu64 ", raw %" PRIu64 " bytes, stored %"
                 PRIu64 " bytes (block trailers included), ratio raw/stored ",
            p->data_blocks, p->raw_data_size, p->stored_data_size);
    print_ratio(out, p->raw_data_size, p->stored_data_size);
    fputc('\n', out);
    fprintf(out, "codec: %s", codec_name(p->codec));
    if (p->codec == CAIRN_SST_CODEC_ZSTD)
        fprintf(out, " (level %d)", p->zstd_level);
    fputc('\n', out);
    fprintf(out, "block size: %" PRIu64 " (target), restart interval: %u\n",
            p->block_size, p->restart_interval);
    if (p->filter_size)
        fprintf(out, "filter: bloom, %u bits per key, %" PRIu64 " bytes\n",
                p->bloom_bits_per_key, p->filter_size);
    else
        fputs("filter: none\n", out);
    fprintf(out, "index: %" PRIu64 " bytes\n", p->index_size);
    fprintf(out, "created: %" PRIu64 " (%s)\n", p->creation_ts_us,
            iso_time(iso1, p->creation_ts_us));
    if (p->entries) {
        fputs("smallest: ", out);
        put_escaped(out, p->smallest_key, p->smallest_klen, KEY_SHOWN);
        fprintf(out, " version %" PRIu64 "\nlargest: ", p->smallest_version);
        put_escaped(out, p->largest_key, p->largest_klen, KEY_SHOWN);
        fprintf(out, " version %" PRIu64 "\n", p->largest_version);
    } else {
        fputs("smallest: none\nlargest: none\n", out);
    }
}

static void print_sst_entry(FILE *out, const cairn_sst_entry *e)
{
    char iso[ISO_CAP];
    fputs("key=", out);
    put_escaped(out, e->key, e->klen, KEY_SHOWN);
    fprintf(out, " version=%" PRIu64 " ts=%" PRIu64 " (%s)", e->version,
            e->ts_us, iso_time(iso, e->ts_us));
    if (e->kind == CAIRN_SST_DELETE) {
        fputs(" DEL\n", out);
        return;
    }
    fprintf(out, " PUT vlen=%zu value=", e->vlen);
    put_escaped(out, e->value, e->vlen, PREVIEW_BYTES);
    fputc('\n', out);
}

/* A failed cairn_sst_open / verify / iteration: message and status. */
static int report_sst_error(const char *cmd, const char *file, int rc,
                            const char *errmsg)
{
    if (errmsg && errmsg[0])
        errorf(cmd, "%s", errmsg);
    else
        errorf(cmd, "%s: %s", file, cairn_strerror(rc));
    return status_of(rc);
}

static int cmd_sst_dump(const char *path, int argc, char **argv)
{
    const command *c = find_command(path);
    uint64_t limit = 100;
    bool props_only = false;
    opt_def defs[] = {
        {"--limit", OPT_U64, &limit, false},
        {"--props-only", OPT_FLAG, &props_only, false},
    };
    const char *file = NULL;
    int st = parse_args(c, argc, argv, defs, 2, &file, 1);
    if (st >= 0)
        return st;
    struct stat sb;
    if (stat(file, &sb) != 0) {
        errorf(path, "%s: %s", file, strerror(errno));
        return EXIT_TROUBLE;
    }
    if (!S_ISREG(sb.st_mode)) {
        errorf(path, "%s: not a regular file", file);
        return EXIT_TROUBLE;
    }

    char errmsg[CAIRN_SST_ERRMSG_LEN] = "";
    cairn_sst_reader *r = NULL;
    int rc = cairn_sst_open(cairn_env_posix(), file, 1, NULL, &r, errmsg);
    if (rc != 0)
        return report_sst_error(path, file, rc, errmsg);
    const cairn_sst_props *p = cairn_sst_props_get(r);
    print_sst_props(stdout, file, p);
    if (props_only) {
        cairn_sst_close(r);
        return finish_stdout(path, EXIT_SOUND);
    }

    if (limit && limit < p->entries)
        printf("--- entries (first %" PRIu64 " of %" PRIu64 ")\n", limit,
               p->entries);
    else
        printf("--- entries (all %" PRIu64 ")\n", p->entries);
    cairn_sst_iter *it = NULL;
    rc = cairn_sst_iter_new(r, &it);
    if (rc != 0) {
        cairn_sst_close(r);
        errorf(path, "%s", cairn_strerror(rc));
        return EXIT_TROUBLE;
    }
    uint64_t shown = 0;
    bool more = false;
    for (cairn_sst_iter_seek_first(it); cairn_sst_iter_valid(it);
         cairn_sst_iter_next(it)) {
        if (limit && shown == limit) {
            more = true;
            break;
        }
        cairn_sst_entry e;
        cairn_sst_iter_entry(it, &e);
        print_sst_entry(stdout, &e);
        shown++;
    }
    rc = cairn_sst_iter_status(it);
    if (rc != 0) {
        snprintf(errmsg, sizeof errmsg, "%s", cairn_sst_iter_errmsg(it));
        cairn_sst_iter_free(it);
        cairn_sst_close(r);
        fflush(stdout); /* the entries before the damage first */
        return finish_stdout(path, report_sst_error(path, file, rc, errmsg));
    }
    cairn_sst_iter_free(it);
    int status = EXIT_SOUND;
    if (more) {
        printf("shown %" PRIu64 " of %" PRIu64
               " entries (stopped at --limit %" PRIu64 ")\n",
               shown, p->entries, limit);
    } else {
        printf("shown %" PRIu64 " of %" PRIu64 " entries\n", shown,
               p->entries);
        if (shown != p->entries) {
            fflush(stdout);
            errorf(path,
                   "%s: the file holds %" PRIu64
                   " entries but its properties say %" PRIu64,
                   file, shown, p->entries);
            status = EXIT_CORRUPT;
        }
    }
    cairn_sst_close(r);
    return finish_stdout(path, status);
}

/* ---------- check ---------- */

/* Bytes done / total on stderr ("LABEL: 1.0/2.0 MiB (50%)"), at most ~10
 * times a second. On a terminal one line is rewritten in place (and erased
 * before each report line, so the two never mix); otherwise, with
 * --progress, one line per update. check and compact use it. */
typedef struct progress_bar {
    char label[64]; /* what is being done */
    bool on;        /* --progress given, or stderr is a terminal */
    bool tty;       /* stderr is a terminal */
    uint64_t total; /* bytes to check in all (an estimate: files may grow) */
    uint64_t base;  /* bytes of the items already checked */
    double last;    /* when it was last drawn (0: never) */
    int width;      /* characters of the line on the terminal now */
} progress_bar;

static void pb_draw(progress_bar *pb, uint64_t done, bool force)
{
    if (!pb->on)
        return;
    if (done > pb->total)
        pb->total = done;
    double now = now_seconds();
    if (!force && pb->last != 0 && now - pb->last < 0.1)
        return;
    pb->last = now;
    char line[128];
    int pct = pb->total ? (int)((double)done * 100.0 / (double)pb->total)
                        : 100;
    int n = snprintf(line, sizeof line, "%s: %.1f/%.1f MiB (%d%%)", pb->label,
                     (double)done / MIB, (double)pb->total / MIB, pct);
    if (pb->tty) {
        fprintf(stderr, "\r%s%*s", line, pb->width > n ? pb->width - n : 0,
                "");
        pb->width = n;
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

/* Erase the in-place line (terminal only). */
static void pb_clear(progress_bar *pb)
{
    if (pb->on && pb->tty && pb->width > 0) {
        fprintf(stderr, "\r%*s\r", pb->width, "");
        fflush(stderr);
        pb->width = 0;
    }
}

typedef struct check_state {
    const char *cmd;
    const char *dir;
    cairn_env *env;
    uint64_t problems;  /* damage found */
    uint64_t errors;    /* things that could not be checked */
    uint64_t files_ok;  /* sorted files that passed */
    uint64_t bytes_ok;  /* their bytes */
    progress_bar pb;
} check_state;

/* One report line on stdout: TAG, then the text. */
static void ck_vline(check_state *s, const char *tag, const char *fmt,
                     va_list ap)
{
    pb_clear(&s->pb);
    printf("%-8s ", tag);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
}

static void ck_line(check_state *s, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ck_line(check_state *s, const char *tag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ck_vline(s, tag, fmt, ap);
    va_end(ap);
}

/* Damage: counted, listed, and the check goes on. */
static void ck_problem(check_state *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ck_problem(check_state *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ck_vline(s, "DAMAGED", fmt, ap);
    va_end(ap);
    s->problems++;
}

/* Something that could not be checked (I/O error, newer format). */
static void ck_error(check_state *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ck_error(check_state *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ck_vline(s, "ERROR", fmt, ap);
    va_end(ap);
    s->errors++;
}

/* A library error about an item: damage for CAIRN_ECORRUPT, else an
 * error. msg (may be NULL or empty) is the library's message. */
static void ck_failed(check_state *s, const char *what, int rc,
                      const char *msg)
{
    bool m = msg && msg[0];
    if (rc == CAIRN_ECORRUPT)
        ck_problem(s, "%s: %s", what, m ? msg : cairn_strerror(rc));
    else if (rc == CAIRN_EVERSION)
        ck_error(s, "%s: written by a newer format, not checked: %s", what,
                 m ? msg : cairn_strerror(rc));
    else
        ck_error(s, "%s: %s%s%s", what, cairn_strerror(rc), m ? ": " : "",
                 m ? msg : "");
}

static void check_format_file(check_state *s)
{
    int ver = 0;
    int rc = read_format(s->env, s->dir, &ver);
    if (rc == CAIRN_ENOTFOUND)
        ck_problem(s, "FORMAT: missing (every database has one)");
    else if (rc == CAIRN_ECORRUPT)
        ck_problem(s, "FORMAT: does not read \"cairn-db N\"");
    else if (rc != 0)
        ck_failed(s, "FORMAT", rc, NULL);
    else if (ver > DB_FORMAT_VERSION)
        ck_error(s, "FORMAT: cairn-db %d, a newer format than this tool "
                    "knows (%d)",
                 ver, DB_FORMAT_VERSION);
    else
        ck_line(s, "ok", "FORMAT: cairn-db %d", ver);
}

/* Report on the manifest; the current version (referenced) or NULL when
 * there is none or it could not be read (*readable false then, except
 * when the directory simply has no manifest yet). */
static cairn_version *check_manifest(check_state *s, const dir_list *ls,
                                     bool *readable, char *live_name,
                                     size_t live_cap)
{
    *readable = false;
    live_name[0] = '\0';
    if (!dir_list_has(ls, "CURRENT")) {
        size_t ssts = 0, manifests = 0;
        uint64_t num;
        for (size_t i = 0; i < ls->n; i++) {
            ssts += cairn_lsm_parse_sst_name(ls->names[i], &num);
            manifests += cairn_lsm_parse_manifest_name(ls->names[i], &num);
        }
        if (ssts)
            ck_problem(s, "CURRENT: missing, but the directory holds %zu "
                          "sorted files: no manifest names them",
                       ssts);
        else if (manifests)
            ck_line(s, "note", "CURRENT: missing; %zu MANIFEST files are "
                               "left from an interrupted creation (no "
                               "sorted files yet)",
                    manifests);
        else
            ck_line(s, "note", "manifest: none yet (no CURRENT): the "
                               "database has no sorted files");
        *readable = !ssts;
        return NULL;
    }
    cairn_manifest_options o;
    cairn_manifest_options_init(&o);
    o.read_only = true;
    o.create_if_missing = false;
    cairn_manifest *m = NULL;
    cairn_version *v = NULL;
    cairn_manifest_info info;
    memset(&info, 0, sizeof info);
    int rc = cairn_manifest_open_ex(s->env, s->dir, &o, &m, &v, &info);
    if (rc != 0) {
        ck_failed(s, "manifest", rc, info.message);
        return NULL;
    }
    char h[64];
    ck_line(s, "ok",
            "manifest %s: %" PRIu64 " records, %s; %zu sorted files; next "
            "file %" PRIu64 ", log LSN %" PRIu64 ", last version %" PRIu64,
            info.manifest, info.records, human_bytes(h, sizeof h, info.bytes),
            cairn_version_total_files(v), cairn_version_next_file(v),
            cairn_version_log_lsn(v), cairn_version_last_version(v));
    if (info.torn_bytes)
        ck_line(s, "note",
                "manifest %s: torn tail: %" PRIu64 " bytes at offset %" PRIu64
                " were never acknowledged; a normal open cuts them "
                "(read-only: nothing changed)",
                info.manifest, info.torn_bytes, info.torn_offset);
    else if (info.message[0])
        ck_line(s, "note", "manifest: %s", info.message);
    snprintf(live_name, live_cap, "%s", info.manifest);
    cairn_manifest_close(m);
    *readable = true;
    return v;
}

/* Where a file's properties disagree with the manifest's metadata: one
 * problem each. */
static void compare_meta(check_state *s, const char *what,
                         const cairn_file_meta *m, const cairn_sst_props *p)
{
    if (p->file_size != m->file_size)
        ck_problem(s, "%s: %" PRIu64 " bytes, the manifest says %" PRIu64,
                   what, p->file_size, m->file_size);
    if (p->entries != m->entries)
        ck_problem(s, "%s: %" PRIu64 " entries, the manifest says %" PRIu64,
                   what, p->entries, m->entries);
    if (p->deletes != m->tombstones)
        ck_problem(s, "%s: %" PRIu64 " tombstones, the manifest says %" PRIu64,
                   what, p->deletes, m->tombstones);
    if (p->entries && (p->min_version != m->min_version ||
                       p->max_version != m->max_version))
        ck_problem(s, "%s: versions %" PRIu64 "..%" PRIu64
                      ", the manifest says %" PRIu64 "..%" PRIu64,
                   what, p->min_version, p->max_version, m->min_version,
                   m->max_version);
    char a[ESC_CAP], b[ESC_CAP];
    if (p->smallest_klen != m->smallest.ulen ||
        (p->smallest_klen &&
         memcmp(p->smallest_key, m->smallest.ukey, p->smallest_klen) != 0) ||
        p->smallest_version != m->smallest.version)
        ck_problem(s, "%s: smallest key %s version %" PRIu64
                      ", the manifest says %s version %" PRIu64,
                   what,
                   escape_bytes(a, p->smallest_key, p->smallest_klen, 64),
                   p->smallest_version,
                   escape_bytes(b, m->smallest.ukey, m->smallest.ulen, 64),
                   m->smallest.version);
    if (p->largest_klen != m->largest.ulen ||
        (p->largest_klen &&
         memcmp(p->largest_key, m->largest.ukey, p->largest_klen) != 0) ||
        p->largest_version != m->largest.version)
        ck_problem(s, "%s: largest key %s version %" PRIu64
                      ", the manifest says %s version %" PRIu64,
                   what, escape_bytes(a, p->largest_key, p->largest_klen, 64),
                   p->largest_version,
                   escape_bytes(b, m->largest.ukey, m->largest.ulen, 64),
                   m->largest.version);
}

/* Progress of the item being checked (a sorted file's data blocks, or the
 * WAL): done counts from the start of that item. */
static void check_progress(void *arg, uint64_t done, uint64_t total)
{
    check_state *s = arg;
    pb_draw(&s->pb, s->pb.base + done, false);
}

/* One sorted file in full: open (footer, index, filter, properties), the
 * manifest's metadata when meta is non-NULL, then every block. */
static void check_sst(check_state *s, const char *what, const char *path,
                      const cairn_file_meta *meta, uint64_t size)
{
    char errmsg[CAIRN_SST_ERRMSG_LEN] = "";
    cairn_sst_reader *r = NULL;
    int rc = cairn_sst_open(s->env, path, meta ? meta->number : 1, NULL, &r,
                            errmsg);
    if (rc != 0) {
        ck_failed(s, what, rc, errmsg);
        s->pb.base += size;
        return;
    }
    const cairn_sst_props *p = cairn_sst_props_get(r);
    uint64_t before = s->problems;
    uint64_t entries = p->entries;
    if (meta)
        compare_meta(s, what, meta, p);
    cairn_sst_close(r);
    errmsg[0] = '\0';
    rc = cairn_sst_verify(s->env, path, check_progress, s, errmsg);
    s->pb.base += size;
    pb_draw(&s->pb, s->pb.base, false);
    if (rc != 0) {
        ck_failed(s, what, rc, errmsg);
        return;
    }
    if (s->problems != before)
        return; /* blocks sound, metadata not: already listed */
    s->files_ok++;
    s->bytes_ok += size;
    char h[64];
    ck_line(s, "ok", "%s: %s, %" PRIu64 " entries%s", what,
            human_bytes(h, sizeof h, size), entries,
            meta ? "" : " (not checked against a manifest)");
}

/* A sorted file to check: from the current version, or (when the manifest
 * could not be read) every one in the directory. */
typedef struct check_item {
    const cairn_file_meta *meta; /* NULL: not checked against a manifest */
    uint64_t number;
    int level;
    uint64_t size;
    int size_rc; /* 0, or why the size could not be read */
} check_item;

/* The arguments "DIR [--progress]" of check and compact, and the progress
 * bar they select (on with --progress or on a terminal). -1 to go on, else
 * the exit status. */
/* adir NULL: the command takes no --archive-dir. */
static int parse_dir_progress(const char *path, int argc, char **argv,
                              const char **dir, progress_bar *pb,
                              const char **adir)
{
    bool progress = false;
    opt_def defs[] = {{"--progress", OPT_FLAG, &progress, false},
                      {"--archive-dir", OPT_STR, adir, false}};
    int st = parse_args(find_command(path), argc, argv, defs, adir ? 2 : 1,
                        dir, 1);
    if (st >= 0)
        return st;
    st = check_db_dir(path, *dir);
    if (st)
        return st;
    memset(pb, 0, sizeof *pb);
    pb->tty = isatty(STDERR_FILENO) == 1;
    pb->on = progress || pb->tty;
    return -1;
}

static int cmd_check(const char *path, int argc, char **argv)
{
    const char *dir = NULL, *adir = NULL;
    progress_bar pb;
    int st = parse_dir_progress(path, argc, argv, &dir, &pb, &adir);
    if (st >= 0)
        return st;

    check_state s;
    memset(&s, 0, sizeof s);
    s.cmd = path;
    s.dir = dir;
    s.env = cairn_env_posix();
    s.pb = pb;
    snprintf(s.pb.label, sizeof s.pb.label, "check");

    dir_list ls;
    int rc = dir_list_read(s.env, dir, &ls);
    if (rc != 0) {
        errorf(path, "%s: cannot list the directory: %s", dir,
               cairn_strerror(rc));
        return EXIT_TROUBLE;
    }
    bool has_wal = dir_list_has(&ls, "wal");
    if (!dir_list_has(&ls, "FORMAT") && !dir_list_has(&ls, "CURRENT") &&
        !has_wal) {
        dir_list_free(&ls);
        errorf(path, "%s: not a Cairn database directory (no FORMAT, "
                     "CURRENT or wal/)",
               dir);
        return EXIT_TROUBLE;
    }
    printf("checking %s\n", dir);

    check_format_file(&s);
    bool manifest_ok = false;
    char live_manifest[64];
    cairn_version *v = check_manifest(&s, &ls, &manifest_ok, live_manifest,
                                      sizeof live_manifest);

    /* What to check, and how many bytes that is. */
    char p[PATH_CAP], what[64];
    check_item *items =
        calloc(ls.n + (v ? cairn_version_total_files(v) : 0) + 1,
               sizeof *items);
    if (!items) {
        cairn_version_unref(v);
        dir_list_free(&ls);
        errorf(path, "%s", cairn_strerror(CAIRN_ENOMEM));
        return EXIT_TROUBLE;
    }
    size_t nitems = 0;
    if (v) {
        for (int l = 0; l < CAIRN_LSM_MAX_LEVELS; l++)
            for (size_t i = 0; i < cairn_version_num_files(v, l); i++) {
                const cairn_file_meta *m = cairn_version_file(v, l, i);
                check_item *it = &items[nitems++];
                it->meta = m;
                it->number = m->number;
                it->level = l;
            }
    } else if (!manifest_ok) {
        for (size_t i = 0; i < ls.n; i++) {
            uint64_t num;
            if (cairn_lsm_parse_sst_name(ls.names[i], &num)) {
                check_item *it = &items[nitems++];
                it->number = num;
                it->level = -1;
            }
        }
    }
    uint64_t wal_segments = 0, wal_bytes = 0;
    char wal_dir[PATH_CAP];
    join_path(wal_dir, dir, "wal");
    int wal_rc = has_wal ? wal_usage(s.env, wal_dir, &wal_segments, &wal_bytes)
                         : CAIRN_ENOTFOUND;
    uint64_t total = wal_rc == 0 ? wal_bytes : 0;
    for (size_t i = 0; i < nitems; i++) {
        check_item *it = &items[i];
        bool archived = it->meta && it->meta->tier > 0 && adir;
        cairn_lsm_sst_path(p, sizeof p, archived ? adir : dir, it->number);
        it->size_rc = env_file_size(s.env, p, &it->size);
        if (it->size_rc == 0)
            total += it->size;
    }
    s.pb.total = total;
    pb_draw(&s.pb, 0, true);

    /* The sorted files. */
    for (size_t i = 0; i < nitems; i++) {
        check_item *it = &items[i];
        bool archived = it->meta && it->meta->tier > 0 && adir;
        cairn_lsm_sst_path(p, sizeof p, archived ? adir : dir, it->number);
        if (it->level >= 0)
            snprintf(what, sizeof what, "L%d %06" PRIu64 ".sst", it->level,
                     it->number);
        else
            snprintf(what, sizeof what, "%06" PRIu64 ".sst", it->number);
        if (it->size_rc == CAIRN_ENOTFOUND && it->meta && it->meta->tier > 0 &&
            !adir)
            ck_line(&s, "note", "%s: in archive tier %u, not on local disk: "
                                "not checked (give --archive-dir)",
                    what, (unsigned)it->meta->tier);
        else if (it->size_rc == CAIRN_ENOTFOUND)
            ck_problem(&s, "%s: missing (the manifest references it)", what);
        else if (it->size_rc != 0)
            ck_failed(&s, what, it->size_rc, NULL);
        else
            check_sst(&s, what, p, it->meta, it->size);
    }

    /* Files no version references, and names the format does not know. */
    for (size_t i = 0; i < ls.n; i++) {
        const char *name = ls.names[i];
        uint64_t num, sz = 0;
        if (strcmp(name, "FORMAT") == 0 || strcmp(name, "CURRENT") == 0 ||
            strcmp(name, "wal") == 0 || strcmp(name, "blob") == 0)
            continue;
        if (cairn_lsm_parse_sst_name(name, &num)) {
            if (!v || cairn_version_lookup(v, num, NULL))
                continue; /* checked above (or no manifest to judge by) */
            env_file_size(s.env, join_path(p, dir, name), &sz);
            ck_line(&s, "leftover",
                    "%s: %" PRIu64 " bytes, referenced by no version "
                    "(garbage of an interrupted flush or compaction, or a "
                    "file a running process is writing)",
                    name, sz);
        } else if (cairn_lsm_parse_manifest_name(name, &num)) {
            if (strcmp(name, live_manifest) == 0)
                continue;
            if (v)
                ck_line(&s, "leftover",
                        "%s: not the live manifest (left by an "
                        "interrupted switch; a normal open deletes it)",
                        name);
        } else if (strcmp(name, "CURRENT.tmp") == 0) {
            ck_line(&s, "leftover", "%s: left by an interrupted switch of "
                                    "CURRENT (a normal open deletes it)",
                    name);
        } else {
            ck_line(&s, "note", "%s: not a file of the database format "
                                "(ignored)",
                    name);
        }
    }

    /* The WAL. */
    if (!has_wal) {
        ck_problem(&s, "wal/: missing (every database has one)");
    } else if (wal_rc != 0) {
        ck_failed(&s, "wal/", wal_rc, NULL);
    } else {
        verify_ctx vc;
        memset(&vc, 0, sizeof vc);
        cairn_wal_recovery info;
        memset(&info, 0, sizeof info);
        rc = verify_open(wal_dir, false, &vc, check_progress, &s, &info);
        s.pb.base += wal_bytes;
        if (rc == 0) {
            pb_clear(&s.pb);
            printf("%-8s wal: ", "ok");
            print_log_summary(stdout, &info);
            fputc('\n', stdout);
            fflush(stdout);
            if (info.torn_segment[0])
                ck_line(&s, "note",
                        "wal: torn tail: %" PRIu64 " bytes at offset %" PRIu64
                        " of %s were never acknowledged; a normal open cuts "
                        "them (read-only: nothing changed)",
                        info.torn_bytes, info.torn_offset,
                        base_name(info.torn_segment));
            else if (info.message[0])
                ck_line(&s, "note", "wal: %s", info.message);
            if (info.segments == 0)
                ck_line(&s, "note", "wal: no segment files");
            /* The log must reach back to what the sorted files hold
             * (segments go only below a recorded flush); cairn_open
             * refuses it otherwise. */
            uint64_t covered = v ? cairn_version_log_lsn(v) : 0;
            if (info.segments > 0 && info.chain_start > covered && v)
                ck_problem(&s, "wal: the log starts after LSN %" PRIu64
                               ", but the sorted files of manifest %s hold "
                               "only up to LSN %" PRIu64 ": the records "
                               "between are in neither (the manifest lost "
                               "edits, or segments are missing)",
                           info.chain_start, live_manifest, covered);
            else if (info.segments > 0 && info.chain_start > covered &&
                     manifest_ok)
                ck_problem(&s, "wal: the log starts after LSN %" PRIu64
                               ", but there are no sorted files: the "
                               "records before are gone (a missing CURRENT, "
                               "or missing segments)",
                           info.chain_start);
        } else if (rc == CAIRN_ECORRUPT && !info.message[0]) {
            ck_problem(&s, "wal: corrupt segment %s at offset %" PRIu64,
                       info.error_segment[0] ? info.error_segment : wal_dir,
                       info.error_offset);
        } else {
            ck_failed(&s, "wal", rc, info.message);
        }
    }

    /* The blob store: recount the references from the tree (through a
     * read-only open, which replays the log into memory) and read every
     * referenced blob. */
    if (dir_list_has(&ls, "blob") && s.problems == 0) {
        cairn_options bo;
        cairn_options_init(&bo);
        bo.read_only = true;
        bo.row_cache_size = 0;
        bo.archive_dir = adir;
        cairn_db *bdb = NULL;
        rc = cairn_open(dir, &bo, &bdb);
        if (rc != 0) {
            ck_failed(&s, "blob/", rc, "the database does not open read-only");
        } else {
            cairn_blob_check_report br;
            rc = cairn_blob_check(bdb, true, &br);
            cairn_stats bst;
            cairn_get_stats(bdb, &bst);
            if (rc == 0) {
                pb_clear(&s.pb);
                printf("%-8s blob/: %" PRIu64 " files, %" PRIu64
                       " blobs referenced %" PRIu64 " times, counts exact, "
                       "all read back\n",
                       "ok", bst.blob_files, br.referenced, br.references);
            } else if (rc == CAIRN_ECORRUPT) {
                if (br.missing)
                    ck_problem(&s, "blob/: %" PRIu64 " referenced blob%s "
                                   "missing or damaged (%s)",
                               br.missing, br.missing == 1 ? "" : "s",
                               br.first_error);
                if (br.mismatched)
                    ck_problem(&s, "blob/: %" PRIu64 " reference count%s "
                                   "differ from the tree (%s)",
                               br.mismatched, br.mismatched == 1 ? "" : "s",
                               br.first_error);
            } else if (rc == CAIRN_EUNAVAILABLE && !adir) {
                ck_line(&s, "note", "blob/: references not recounted: some "
                                    "sorted files are in the archive tier "
                                    "(give --archive-dir)");
            } else {
                ck_failed(&s, "blob/", rc, br.first_error);
            }
            if (br.unreferenced)
                ck_line(&s, "garbage",
                        "blob/: %" PRIu64 " stored blob%s (%" PRIu64
                        " bytes) referenced by nothing: reclaimed by the "
                        "next blob GC",
                        br.unreferenced, br.unreferenced == 1 ? "" : "s",
                        br.unreferenced_bytes);
            cairn_close(bdb);
        }
    }

    if (s.pb.on) {
        pb_draw(&s.pb, s.pb.total, true);
        pb_clear(&s.pb);
    }
    char h[64];
    int status;
    if (s.problems) {
        printf("damaged: %" PRIu64 " problem%s found in %s\n", s.problems,
               s.problems == 1 ? "" : "s", dir);
        status = EXIT_CORRUPT;
    } else if (s.errors) {
        printf("incomplete: %" PRIu64 " item%s of %s could not be checked\n",
               s.errors, s.errors == 1 ? "" : "s", dir);
        status = EXIT_TROUBLE;
    } else {
        printf("sound: %s: %" PRIu64 " sorted files, %s, and the WAL "
               "(segments %" PRIu64 ") checked\n",
               dir, s.files_ok, human_bytes(h, sizeof h, s.bytes_ok),
               wal_segments);
        status = EXIT_SOUND;
    }
    status = finish_stdout(path, status);
    if (status == EXIT_CORRUPT)
        errorf(path, "%s is damaged: %" PRIu64 " problem%s (listed in the "
                     "report)",
               dir, s.problems, s.problems == 1 ? "" : "s");
    else if (s.errors && status == EXIT_TROUBLE)
        errorf(path, "%s could not be checked completely: %" PRIu64
                     " error%s (listed in the report)",
               dir, s.errors, s.errors == 1 ? "" : "s");
    free(items);
    cairn_version_unref(v);
    dir_list_free(&ls);
    return status;
}

/* ---------- stats ---------- */

typedef struct level_stats {
    uint64_t files, bytes, entries, tombstones;
    uint64_t raw_key, raw_value;      /* user key / value bytes of entries */
    uint64_t raw_data, stored_data;   /* data block bytes: raw / stored */
    uint64_t unreadable;              /* files whose properties failed */
    uint64_t readable_bytes;          /* bytes of the other files */
} level_stats;

static void stats_add(level_stats *t, const level_stats *l)
{
    t->files += l->files;
    t->bytes += l->bytes;
    t->entries += l->entries;
    t->tombstones += l->tombstones;
    t->raw_key += l->raw_key;
    t->raw_value += l->raw_value;
    t->raw_data += l->raw_data;
    t->stored_data += l->stored_data;
    t->unreadable += l->unreadable;
    t->readable_bytes += l->readable_bytes;
}

/* A JSON string: quotes, backslashes and control bytes escaped; other
 * bytes as they are. */
static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

/* a / b with 4 decimals, or null when b is 0. */
static void json_ratio(FILE *out, uint64_t a, uint64_t b)
{
    if (b)
        fprintf(out, "%.4f", (double)a / (double)b);
    else
        fputs("null", out);
}

static void json_level_fields(FILE *out, const level_stats *l)
{
    fprintf(out,
            "\"files\": %" PRIu64 ", \"bytes\": %" PRIu64
            ", \"entries\": %" PRIu64 ", \"tombstones\": %" PRIu64
            ", \"raw_key_bytes\": %" PRIu64 ", \"raw_value_bytes\": %" PRIu64
            ", \"raw_bytes\": %" PRIu64 ", \"raw_data_bytes\": %" PRIu64
            ", \"stored_data_bytes\": %" PRIu64 ", \"compression_ratio\": ",
            l->files, l->bytes, l->entries, l->tombstones, l->raw_key,
            l->raw_value, l->raw_key + l->raw_value, l->raw_data,
            l->stored_data);
    json_ratio(out, l->raw_data, l->stored_data);
    fprintf(out, ", \"unreadable_files\": %" PRIu64, l->unreadable);
}

static void text_level(FILE *out, const char *label, const level_stats *l)
{
    char r[32] = "-";
    if (l->stored_data)
        snprintf(r, sizeof r, "%.2f",
                 (double)l->raw_data / (double)l->stored_data);
    fprintf(out, "%-6s %6" PRIu64 " %14" PRIu64 " %12" PRIu64 " %12" PRIu64
                 " %16" PRIu64 " %7s",
            label, l->files, l->bytes, l->entries, l->tombstones,
            l->raw_key + l->raw_value, r);
    if (l->unreadable)
        fprintf(out, "  (%" PRIu64 " unreadable)", l->unreadable);
    fputc('\n', out);
}

#define SPACE_AMP_DEF                                                          \
    "file bytes / raw key+value bytes of all entries, every version and "    \
    "tombstone counted (the size of the newest version of each key is not "  \
    "known offline)"

/* The blob store's figures, through a read-only open (it replays the log
 * and counts references): false when there is no blob store or the open
 * fails (*why says why). */
static bool stats_blobs(const char *dir, const char *adir, cairn_stats *st,
                        const char **why)
{
    char p[4096];
    struct stat sb;
    *why = NULL;
    if (snprintf(p, sizeof p, "%s/blob", dir) >= (int)sizeof p ||
        stat(p, &sb) != 0)
        return false;
    cairn_options o;
    cairn_options_init(&o);
    o.read_only = true;
    o.row_cache_size = 0;
    o.archive_dir = adir;
    cairn_db *db = NULL;
    int rc = cairn_open(dir, &o, &db);
    if (rc != 0) {
        *why = rc == CAIRN_EBUSY ? "the database is open elsewhere: see INFO "
                                   "tiers"
                                 : cairn_strerror(rc);
        return false;
    }
    cairn_get_stats(db, st);
    cairn_close(db);
    return true;
}

static int cmd_stats(const char *path, int argc, char **argv)
{
    const command *c = find_command(path);
    bool json = false;
    const char *adir = NULL;
    opt_def defs[] = {{"--json", OPT_FLAG, &json, false},
                      {"--archive-dir", OPT_STR, &adir, false}};
    const char *dir = NULL;
    int st = parse_args(c, argc, argv, defs, 2, &dir, 1);
    if (st >= 0)
        return st;
    st = check_db_dir(path, dir);
    if (st)
        return st;

    cairn_env *env = cairn_env_posix();
    dir_list ls;
    int rc = dir_list_read(env, dir, &ls);
    if (rc != 0) {
        errorf(path, "%s: cannot list the directory: %s", dir,
               cairn_strerror(rc));
        return EXIT_TROUBLE;
    }
    bool has_wal = dir_list_has(&ls, "wal");
    bool has_current = dir_list_has(&ls, "CURRENT");
    if (!dir_list_has(&ls, "FORMAT") && !has_current && !has_wal) {
        dir_list_free(&ls);
        errorf(path, "%s: not a Cairn database directory (no FORMAT, "
                     "CURRENT or wal/)",
               dir);
        return EXIT_TROUBLE;
    }
    bool damaged = false, trouble = false;

    /* The manifest. */
    cairn_version *v = NULL;
    cairn_manifest_info info;
    memset(&info, 0, sizeof info);
    if (has_current) {
        cairn_manifest_options o;
        cairn_manifest_options_init(&o);
        o.read_only = true;
        cairn_manifest *m = NULL;
        rc = cairn_manifest_open_ex(env, dir, &o, &m, &v, &info);
        if (rc != 0) {
            dir_list_free(&ls);
            if (info.message[0])
                errorf(path, "%s", info.message);
            else
                errorf(path, "%s: cannot read the manifest: %s", dir,
                       cairn_strerror(rc));
            return status_of(rc);
        }
        cairn_manifest_close(m);
        if (info.torn_bytes)
            fprintf(stderr, "%s %s: note: the manifest %s has a torn tail of "
                            "%" PRIu64 " bytes (never acknowledged)\n",
                    progname, path, info.manifest, info.torn_bytes);
    } else {
        uint64_t num;
        size_t ssts = 0;
        for (size_t i = 0; i < ls.n; i++)
            ssts += cairn_lsm_parse_sst_name(ls.names[i], &num);
        if (ssts) {
            errorf(path, "%s: CURRENT is missing, but the directory holds "
                         "%zu sorted files",
                   dir, ssts);
            damaged = true;
        } else {
            fprintf(stderr, "%s %s: note: no manifest yet (no CURRENT): the "
                            "database has no sorted files\n",
                    progname, path);
        }
    }
    dir_list_free(&ls);

    /* Each file's properties. */
    level_stats lv[CAIRN_LSM_MAX_LEVELS], total, tiers[2];
    memset(lv, 0, sizeof lv);
    memset(&total, 0, sizeof total);
    memset(tiers, 0, sizeof tiers);
    int deepest = 0;
    uint64_t archived_unread = 0;
    char p[PATH_CAP];
    for (int l = 0; v && l < CAIRN_LSM_MAX_LEVELS; l++) {
        for (size_t i = 0; i < cairn_version_num_files(v, l); i++) {
            const cairn_file_meta *m = cairn_version_file(v, l, i);
            level_stats *s = &lv[l];
            deepest = l;
            s->files++;
            level_stats *ts = &tiers[m->tier ? 1 : 0];
            ts->files++;
            if (m->tier && !adir) {
                /* Archived, and no archive to read: the manifest's word. */
                archived_unread++;
                s->bytes += m->file_size;
                s->entries += m->entries;
                s->tombstones += m->tombstones;
                ts->bytes += m->file_size;
                ts->entries += m->entries;
                ts->tombstones += m->tombstones;
                continue;
            }
            cairn_lsm_sst_path(p, sizeof p, m->tier ? adir : dir, m->number);
            char errmsg[CAIRN_SST_ERRMSG_LEN] = "";
            cairn_sst_reader *r = NULL;
            rc = cairn_sst_open(env, p, m->number, NULL, &r, errmsg);
            if (rc != 0) {
                /* Counted from the manifest's metadata instead. */
                for (int k = 0; k < 2; k++) {
                    level_stats *x = k ? ts : s;
                    x->unreadable++;
                    x->bytes += m->file_size;
                    x->entries += m->entries;
                    x->tombstones += m->tombstones;
                }
                if (rc == CAIRN_ENOTFOUND)
                    errorf(path, "L%d %06" PRIu64 ".sst: missing", l,
                           m->number);
                else
                    report_sst_error(path, p, rc, errmsg);
                if (rc == CAIRN_ECORRUPT || rc == CAIRN_ENOTFOUND)
                    damaged = true;
                else
                    trouble = true;
                continue;
            }
            const cairn_sst_props *pr = cairn_sst_props_get(r);
            for (int k = 0; k < 2; k++) {
                level_stats *x = k ? ts : s;
                x->bytes += pr->file_size;
                x->readable_bytes += pr->file_size;
                x->entries += pr->entries;
                x->tombstones += pr->deletes;
                x->raw_key += pr->raw_key_bytes;
                x->raw_value += pr->raw_value_bytes;
                x->raw_data += pr->raw_data_size;
                x->stored_data += pr->stored_data_size;
            }
            cairn_sst_close(r);
        }
    }
    for (int l = 0; l <= deepest; l++)
        stats_add(&total, &lv[l]);

    /* The WAL. */
    uint64_t wal_segments = 0, wal_bytes = 0;
    if (has_wal) {
        char wal_dir[PATH_CAP];
        rc = wal_usage(env, join_path(wal_dir, dir, "wal"), &wal_segments,
                       &wal_bytes);
        if (rc != 0) {
            errorf(path, "%s: %s", wal_dir, cairn_strerror(rc));
            trouble = true;
        }
    } else {
        fprintf(stderr, "%s %s: note: %s has no wal/ directory\n", progname,
                path, dir);
    }

    uint64_t raw = total.raw_key + total.raw_value;
    uint64_t io_user = 0, io_written = 0;
    if (v)
        cairn_version_io(v, &io_user, &io_written);
    cairn_stats bst;
    const char *blob_why = NULL;
    bool have_blobs = !damaged && stats_blobs(dir, adir, &bst, &blob_why);
    if (json) {
        printf("{\"dir\": ");
        json_string(stdout, dir);
        printf(", \"manifest\": ");
        if (v) {
            printf("{\"name\": ");
            json_string(stdout, info.manifest);
            printf(", \"bytes\": %" PRIu64 ", \"next_file\": %" PRIu64
                   ", \"log_lsn\": %" PRIu64 ", \"last_version\": %" PRIu64
                   "}",
                   info.bytes, cairn_version_next_file(v),
                   cairn_version_log_lsn(v), cairn_version_last_version(v));
        } else {
            printf("null");
        }
        printf(", \"levels\": [");
        for (int l = 0; l <= deepest; l++) {
            printf("%s{\"level\": %d, ", l ? ", " : "", l);
            json_level_fields(stdout, &lv[l]);
            printf("}");
        }
        printf("], \"tiers\": [");
        for (int k = 0; k < 2; k++) {
            printf("%s{\"tier\": \"%s\", ", k ? ", " : "",
                   k ? "archive" : "local");
            json_level_fields(stdout, &tiers[k]);
            printf("}");
        }
        printf("], \"archived_files_not_read\": %" PRIu64, archived_unread);
        printf(", \"total\": {");
        json_level_fields(stdout, &total);
        printf("}, \"space_amplification\": ");
        json_ratio(stdout, total.readable_bytes, raw);
        printf(", \"space_amplification_definition\": ");
        json_string(stdout, SPACE_AMP_DEF);
        printf(", \"flushed_user_bytes\": %" PRIu64
               ", \"sorted_file_bytes_written\": %" PRIu64
               ", \"write_amplification\": ",
               io_user, io_written);
        json_ratio(stdout, io_written, io_user);
        printf(", \"wal\": {\"segments\": %" PRIu64 ", \"bytes\": %" PRIu64
               "}", wal_segments, wal_bytes);
        if (have_blobs)
            printf(", \"blob\": {\"files\": %" PRIu64 ", \"bytes\": %" PRIu64
                   ", \"logical_bytes\": %" PRIu64 ", \"distinct\": %" PRIu64
                   ", \"dead_bytes\": %" PRIu64 ", \"dedup_ratio\": ",
                   bst.blob_files, bst.blob_stored_bytes,
                   bst.blob_logical_bytes, bst.blob_distinct,
                   bst.blob_dead_bytes);
        if (have_blobs) {
            json_ratio(stdout, bst.blob_logical_bytes, bst.blob_stored_bytes);
            printf("}");
        }
        printf(", \"damaged\": %s, \"complete\": %s}\n",
               damaged ? "true" : "false",
               damaged || trouble ? "false" : "true");
    } else {
        char h[64];
        printf("database: %s\n", dir);
        if (v)
            printf("manifest: %s, %s; next file %" PRIu64 ", log LSN %" PRIu64
                   ", last version %" PRIu64 "\n",
                   info.manifest, human_bytes(h, sizeof h, info.bytes),
                   cairn_version_next_file(v), cairn_version_log_lsn(v),
                   cairn_version_last_version(v));
        else
            printf("manifest: none\n");
        printf("%-6s %6s %14s %12s %12s %16s %7s\n", "level", "files",
               "bytes", "entries", "tombstones", "raw key+value", "ratio");
        for (int l = 0; l <= deepest; l++) {
            char label[16];
            snprintf(label, sizeof label, "L%d", l);
            text_level(stdout, label, &lv[l]);
        }
        text_level(stdout, "total", &total);
        text_level(stdout, "local", &tiers[0]);
        text_level(stdout, "archive", &tiers[1]);
        printf("ratio: compression, raw data block bytes / stored data block "
               "bytes\n");
        if (archived_unread)
            printf("note: %" PRIu64 " archived files were not read (no "
                   "--archive-dir): their bytes, entries and tombstones are "
                   "the manifest's\n",
                   archived_unread);
        printf("sorted files: %" PRIu64 ", %s\n", total.files,
               human_bytes(h, sizeof h, total.bytes));
        printf("space amplification: ");
        if (raw)
            printf("%.2f", (double)total.readable_bytes / (double)raw);
        else
            printf("-");
        printf(" = " SPACE_AMP_DEF "\n");
        printf("write amplification: ");
        if (io_user)
            printf("%.2f", (double)io_written / (double)io_user);
        else
            printf("-");
        printf(" = sorted-file bytes written by flushes and compactions (%s)"
               " / raw key+value bytes flushed",
               human_bytes(h, sizeof h, io_written));
        printf(" (%s), since the database was created; the log adds about "
               "1x more\n", human_bytes(h, sizeof h, io_user));
        if (total.unreadable)
            printf("note: %" PRIu64 " files could not be read: their bytes, "
                   "entries and tombstones are the manifest's; raw bytes, "
                   "ratios and space amplification leave them out\n",
                   total.unreadable);
        printf("wal: segments %" PRIu64 ", %s\n", wal_segments,
               human_bytes(h, sizeof h, wal_bytes));
        if (have_blobs) {
            char h2[64], h3[64];
            printf("blob: files %" PRIu64 ", %s stored for %s of values "
                   "referenced (dedup + compression %.2fx), %" PRIu64
                   " distinct, %s dead (GC reclaims it)\n",
                   bst.blob_files,
                   human_bytes(h, sizeof h, bst.blob_stored_bytes),
                   human_bytes(h2, sizeof h2, bst.blob_logical_bytes),
                   bst.blob_stored_bytes
                       ? (double)bst.blob_logical_bytes /
                             (double)bst.blob_stored_bytes
                       : 0.0,
                   bst.blob_distinct,
                   human_bytes(h3, sizeof h3, bst.blob_dead_bytes));
        } else if (blob_why) {
            printf("blob: not counted (%s)\n", blob_why);
        }
    }
    cairn_version_unref(v);
    return finish_stdout(path, damaged  ? EXIT_CORRUPT
                               : trouble ? EXIT_TROUBLE
                                         : EXIT_SOUND);
}

/* ---------- debug mkfixture (test helper) ---------- */

/* Commit timestamps of the fixture: version v commits at FIXTURE_TS0 plus
 * v milliseconds. */
#define FIXTURE_TS0 1700000000000000ull /* 2023-11-14T22:13:20Z */

static size_t fx_key(char *buf, size_t n, uint64_t i)
{
    return (size_t)snprintf(buf, n, "key-%06" PRIu64, i);
}

/* A printable value of 16..165 bytes that names its version. */
static size_t fx_value(uint8_t *buf, uint64_t version)
{
    size_t len = 16 + (size_t)(version * 37 % 150);
    char head[32];
    int h = snprintf(head, sizeof head, "v%" PRIu64 ":", version);
    for (size_t i = 0; i < len; i++)
        buf[i] = i < (size_t)h ? (uint8_t)head[i]
                               : (uint8_t)('a' + (version + i) % 26);
    return len;
}

static int fx_add(cairn_sst_builder *b, const void *key, size_t klen,
                  uint64_t version, bool del)
{
    uint8_t val[192];
    size_t vlen = del ? 0 : fx_value(val, version);
    return cairn_sst_builder_add(b, key, klen, version,
                                 FIXTURE_TS0 + version * 1000,
                                 del ? CAIRN_SST_DELETE : CAIRN_SST_PUT,
                                 del ? NULL : val, vlen);
}

/* The entries of fixture file `which` (E = entries per file):
 *   0, 1: L1, keys [0, E/2) and [E/2, E), two versions each (2i+2 over
 *         2i+1), the newer one a delete for every 7th key;
 *   2:    L0 (older), keys 0, 2, 4, ... (E of them), versions 2E+1...,
 *         every 5th a delete;
 *   3:    L0 (newer), one binary key (bytes 00 ff " \) with a binary value,
 *         then keys 0, 3, 6, ... (E-1 of them), versions 3E+1..., every
 *         6th a delete. */
static int fx_fill(cairn_sst_builder *b, int which, uint64_t E)
{
    char k[32];
    int rc = 0;
    if (which <= 1) {
        uint64_t lo = which == 0 ? 0 : E / 2, hi = which == 0 ? E / 2 : E;
        for (uint64_t i = lo; i < hi && rc == 0; i++) {
            size_t kl = fx_key(k, sizeof k, i);
            rc = fx_add(b, k, kl, 2 * i + 2, i % 7 == 3);
            if (rc == 0)
                rc = fx_add(b, k, kl, 2 * i + 1, false);
        }
    } else if (which == 2) {
        for (uint64_t j = 0; j < E && rc == 0; j++) {
            size_t kl = fx_key(k, sizeof k, 2 * j);
            rc = fx_add(b, k, kl, 2 * E + 1 + j, j % 5 == 4);
        }
    } else {
        static const uint8_t bin_key[] = {'k', 'e', 'y', '-', 0x00, 0xff,
                                          '"', '\\'};
        uint8_t bin_val[40];
        for (size_t i = 0; i < sizeof bin_val; i++)
            bin_val[i] = (uint8_t)(i * 7);
        uint64_t ver = 3 * E + 1;
        rc = cairn_sst_builder_add(b, bin_key, sizeof bin_key, ver,
                                   FIXTURE_TS0 + ver * 1000, CAIRN_SST_PUT,
                                   bin_val, sizeof bin_val);
        for (uint64_t j = 0; j + 1 < E && rc == 0; j++) {
            size_t kl = fx_key(k, sizeof k, 3 * j);
            rc = fx_add(b, k, kl, 3 * E + 2 + j, j % 6 == 5);
        }
    }
    return rc;
}

/* Append n commit records (docs/format/database.md) to the WAL in wal_dir,
 * versions from first_version on. */
static int fx_wal(const char *wal_dir, uint64_t n, uint64_t first_version,
                  uint64_t *first_lsn, uint64_t *last_lsn)
{
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.sync_mode = CAIRN_WAL_SYNC_NONE;
    o.segment_size = 1u << 20;
    cairn_wal *w = NULL;
    int rc = cairn_wal_open(wal_dir, &o, &w, NULL);
    if (rc != 0)
        return rc;
    *first_lsn = *last_lsn = 0;
    uint8_t rec[1024];
    for (uint64_t r = 0; r < n && rc == 0; r++) {
        uint64_t version = first_version + r;
        uint32_t writes = 1 + (uint32_t)(r % 3);
        cairn_put_u64(rec, version);
        cairn_put_u64(rec + 8, FIXTURE_TS0 + version * 1000);
        cairn_put_u32(rec + 16, writes);
        size_t off = 20;
        for (uint32_t wi = 0; wi < writes; wi++) {
            char k[32];
            size_t kl = fx_key(k, sizeof k, r * 3 + wi);
            bool del = wi == 2;
            uint8_t val[192];
            size_t vl = del ? 0 : fx_value(val, version);
            rec[off] = del ? 2 : 1;
            cairn_put_u32(rec + off + 1, (uint32_t)kl);
            cairn_put_u32(rec + off + 5, (uint32_t)vl);
            memcpy(rec + off + 9, k, kl);
            memcpy(rec + off + 9 + kl, val, vl);
            off += 9 + kl + vl;
        }
        uint64_t lsn = 0;
        rc = cairn_wal_append(w, WAL_TYPE_COMMIT, rec, off, &lsn);
        if (rc == 0) {
            if (r == 0)
                *first_lsn = lsn;
            *last_lsn = lsn;
        }
    }
    int crc = cairn_wal_close(w); /* syncs and seals */
    return rc ? rc : crc;
}

static int cmd_debug_mkfixture(const char *path, int argc, char **argv)
{
    const command *c = find_command(path);
    uint64_t E = 400, wal_records = 20;
    bool wrong_meta = false;
    opt_def defs[] = {
        {"--entries", OPT_U64, &E, false},
        {"--wal-records", OPT_U64, &wal_records, false},
        {"--wrong-meta", OPT_FLAG, &wrong_meta, false},
    };
    const char *dir = NULL;
    int st = parse_args(c, argc, argv, defs, 3, &dir, 1);
    if (st >= 0)
        return st;
    if (E < 4 || E > 1000000)
        return usage_error(path, "--entries: 4 .. 1000000");
    if (wal_records > 1000000)
        return usage_error(path, "--wal-records: at most 1000000");
    if (strlen(dir) > DIR_MAX_LEN) {
        errorf(path, "%s: path too long", dir);
        return EXIT_TROUBLE;
    }

    cairn_env *env = cairn_env_posix();
    int rc = cairn_env_mkdir_p(env, dir);
    dir_list ls = {NULL, 0};
    if (rc == 0)
        rc = dir_list_read(env, dir, &ls);
    if (rc != 0) {
        errorf(path, "%s: %s", dir, cairn_strerror(rc));
        return EXIT_TROUBLE;
    }
    size_t present = ls.n;
    dir_list_free(&ls);
    if (present) {
        errorf(path, "%s: not empty (the fixture goes into a new or empty "
                     "directory)",
               dir);
        return EXIT_TROUBLE;
    }

    char p[PATH_CAP], name[64];
    const char *step = "FORMAT";
    cairn_file *f = NULL;
    char line[32];
    int n = snprintf(line, sizeof line, "cairn-db %d\n",
                     DB_FORMAT_VERSION);
    rc = cairn_env_open(env, join_path(p, dir, "FORMAT"),
                        CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE | CAIRN_OPEN_EXCL,
                        &f);
    if (rc == 0) {
        rc = cairn_file_write_at(f, 0, line, (size_t)n);
        if (rc == 0)
            rc = cairn_file_sync(f, CAIRN_SYNC_FULL);
        int crc = cairn_file_close(f);
        if (rc == 0)
            rc = crc;
    }
    if (rc == 0)
        rc = cairn_env_sync_dir(env, dir);

    cairn_manifest *m = NULL;
    if (rc == 0) {
        step = "manifest";
        cairn_manifest_options o;
        cairn_manifest_options_init(&o);
        o.create_if_missing = true;
        rc = cairn_manifest_open_ex(env, dir, &o, &m, NULL, NULL);
    }

    /* L1 first (as a compaction would have left them), then L0 oldest to
     * newest, one manifest edit per file. */
    static const struct {
        int level;
        cairn_sst_codec codec;
    } plan[4] = {{1, CAIRN_SST_CODEC_ZSTD},
                 {1, CAIRN_SST_CODEC_ZSTD},
                 {0, CAIRN_SST_CODEC_LZ4},
                 {0, CAIRN_SST_CODEC_NONE}};
    uint64_t max_version = 0, all_entries = 0;
    for (int w = 0; w < 4 && rc == 0; w++) {
        uint64_t number = cairn_manifest_new_file_number(m);
        cairn_lsm_sst_name(name, sizeof name, number);
        step = name;
        cairn_sst_options so;
        cairn_sst_options_init(&so);
        so.codec = plan[w].codec;
        cairn_sst_builder *b = NULL;
        rc = cairn_sst_builder_new(env, join_path(p, dir, name), &so, &b);
        if (rc != 0)
            break;
        rc = fx_fill(b, w, E);
        if (rc != 0) {
            cairn_sst_builder_abandon(b);
            break;
        }
        cairn_sst_props props;
        rc = cairn_sst_builder_finish(b, &props);
        if (rc == 0)
            rc = cairn_env_sync_dir(env, dir);
        if (rc != 0) {
            cairn_sst_props_clear(&props);
            break;
        }
        cairn_file_meta t;
        memset(&t, 0, sizeof t);
        t.number = number;
        t.level = (uint32_t)plan[w].level;
        t.file_size = props.file_size;
        t.smallest.ukey = props.smallest_key;
        t.smallest.ulen = props.smallest_klen;
        t.smallest.version = props.smallest_version;
        t.largest.ukey = props.largest_key;
        t.largest.ulen = props.largest_klen;
        t.largest.version = props.largest_version;
        t.min_version = props.min_version;
        t.max_version = props.max_version;
        t.entries = props.entries + (wrong_meta && w == 0);
        t.tombstones = props.deletes;
        t.created_us = props.creation_ts_us;
        if (props.max_version > max_version)
            max_version = props.max_version;
        all_entries += props.entries;
        cairn_version_edit e;
        cairn_version_edit_init(&e);
        rc = cairn_version_edit_add_file(&e, plan[w].level, &t);
        /* The log LSN stays 0: no WAL record is in the sorted files. */
        if (rc == 0 && w == 3)
            cairn_version_edit_set_last_version(&e, max_version);
        if (rc == 0)
            rc = cairn_manifest_log_and_apply(m, &e, NULL);
        if (rc != 0)
            fprintf(stderr, "%s %s: %s\n", progname, path,
                    cairn_manifest_errmsg(m));
        cairn_version_edit_clear(&e);
        if (rc == 0)
            printf("file %s level %d entries %" PRIu64 " deletes %" PRIu64
                   " bytes %" PRIu64 " codec %s\n",
                   name, plan[w].level, props.entries, props.deletes,
                   props.file_size, codec_name(props.codec));
        cairn_sst_props_clear(&props);
    }
    cairn_manifest_close(m);

    uint64_t first_lsn = 0, last_lsn = 0;
    if (rc == 0) {
        step = "wal";
        rc = fx_wal(join_path(p, dir, "wal"), wal_records, max_version + 1,
                    &first_lsn, &last_lsn);
    }
    if (rc != 0) {
        errorf(path, "%s: writing %s failed: %s", dir, step,
               cairn_strerror(rc));
        return EXIT_TROUBLE;
    }
    printf("wal records %" PRIu64 " lsn %" PRIu64 "..%" PRIu64 "\n",
           wal_records, first_lsn, last_lsn);
    printf("fixture %s: 4 sorted files, %" PRIu64 " entries, versions 1..%"
           PRIu64 "%s\n",
           dir, all_entries, max_version,
           wrong_meta ? " (wrong entry count recorded for the first L1 file)"
                      : "");
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
        if (!commands[i].hidden &&
            strncmp(commands[i].path, a, strlen(a)) == 0 &&
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

/* ---------- compact ---------- */

static void compact_progress(void *arg, int level, int target, uint64_t done,
                             uint64_t total)
{
    progress_bar *pb = arg;
    snprintf(pb->label, sizeof pb->label, "compact: level %d -> %d", level,
             target);
    pb->total = total;
    pb_draw(pb, done, done >= total);
}

static void print_levels(const char *what, const cairn_stats *st)
{
    uint64_t files = 0, bytes = 0;
    printf("%s:", what);
    for (int l = 0; l < 8; l++) {
        files += st->level_files[l];
        bytes += st->level_bytes[l];
        if (st->level_files[l])
            printf(" L%d %" PRIu64 " files %.1f MiB;", l, st->level_files[l],
                   (double)st->level_bytes[l] / MIB);
    }
    printf(" total %" PRIu64 " files %.1f MiB\n", files, (double)bytes / MIB);
}

static int cmd_compact(const char *path, int argc, char **argv)
{
    const char *dir = NULL;
    progress_bar pb;
    int st = parse_dir_progress(path, argc, argv, &dir, &pb, NULL);
    if (st >= 0)
        return st;
    cairn_options o;
    cairn_options_init(&o);
    o.create_if_missing = false;
    cairn_db *db = NULL;
    int rc = cairn_open(dir, &o, &db);
    if (rc != 0) {
        errorf(path, "%s: cannot open the database: %s%s", dir,
               rc == CAIRN_EBUSY ? cairn_strerror(rc) : cairn_open_error(),
               rc == CAIRN_EBUSY ? " (is a server using it? stop it first)"
                                 : "");
        return EXIT_TROUBLE;
    }
    cairn_stats before, after;
    cairn_get_stats(db, &before);
    print_levels("before", &before);
    fflush(stdout);
    double t0 = now_seconds();
    rc = cairn_compact(db, compact_progress, &pb);
    pb_clear(&pb);
    cairn_get_stats(db, &after);
    int crc = cairn_close(db);
    if (rc != 0 || crc != 0) {
        errorf(path, "%s: compaction failed: %s (the files stay as they "
                     "were; nothing is lost)",
               dir, cairn_strerror(rc != 0 ? rc : crc));
        return EXIT_TROUBLE;
    }
    print_levels("after", &after);
    printf("compacted %s in %.1f s\n", dir, now_seconds() - t0);
    return EXIT_SOUND;
}

static int cmd_debug_mkseries(const char *path, int argc, char **argv)
{
    const command *c = find_command(path);
    uint64_t points = 100;
    opt_def defs[] = {{"--points", OPT_U64, &points, false}};
    const char *args[2] = {NULL, NULL};
    int st = parse_args(c, argc, argv, defs, 1, args, 2);
    if (st >= 0)
        return st;
    if (points > 10000000)
        return usage_error(path, "--points: at most 10000000");
    cairn_db *db = NULL;
    int rc = cairn_open(args[0], NULL, &db);
    if (rc == 0)
        rc = cairn_ts_create(db, args[1], strlen(args[1]), NULL);
    for (uint64_t i = 0; rc == 0 && i < points; i++)
        rc = cairn_ts_add(db, args[1], strlen(args[1]), (int64_t)i * 1000,
                          (double)i);
    if (db) {
        int crc = cairn_close(db);
        if (rc == 0)
            rc = crc;
    }
    if (rc != 0) {
        errorf(path, "%s: %s", args[0], cairn_strerror(rc));
        return EXIT_TROUBLE;
    }
    printf("series %s: %" PRIu64 " points\n", args[1], points);
    return finish_stdout(path, EXIT_SOUND);
}

/* ---------- archive / recall ---------- */

static void archive_line(void *arg, uint64_t number, int level,
                         uint64_t before, uint64_t after, int status)
{
    (void)arg;
    char a[64], b[64];
    if (status == 0)
        printf("archived %06" PRIu64 ".sst (L%d): %s -> %s (%.1f%%)\n", number,
               level, human_bytes(a, sizeof a, before),
               human_bytes(b, sizeof b, after),
               before ? 100.0 * (double)after / (double)before : 0.0);
    else if (status == CAIRN_ENOTFOUND)
        printf("skipped %06" PRIu64 ".sst: compacted away meanwhile\n", number);
    else
        printf("failed %06" PRIu64 ".sst (L%d): %s\n", number, level,
               cairn_strerror(status));
    fflush(stdout);
}

static void print_tiers(const cairn_stats *st)
{
    char a[64];
    for (int k = 0; k < 2; k++) {
        double ratio = st->tier_bytes[k]
                           ? (double)st->tier_logical_bytes[k] /
                                 (double)st->tier_bytes[k]
                           : 0.0;
        printf("%-8s files %" PRIu64 ", %s, raw key+value / stored %.2f\n",
               k ? "archive" : "local", st->tier_files[k],
               human_bytes(a, sizeof a, st->tier_bytes[k]), ratio);
    }
    if (st->archive_configured && !st->archive_available)
        printf("archive: unavailable (its last I/O failed)\n");
}

static int open_with_archive(const char *path, const char *dir,
                             const char *adir, int min_level,
                             uint64_t min_age, int zl, cairn_db **db)
{
    cairn_options o;
    cairn_options_init(&o);
    o.create_if_missing = false;
    o.archive_dir = adir;
    o.archive_min_level = min_level;
    o.archive_min_age_s = min_age;
    o.archive_zstd_level = zl;
    int rc = cairn_open(dir, &o, db);
    if (rc != 0)
        errorf(path, "%s: cannot open the database: %s%s", dir,
               rc == CAIRN_EBUSY ? cairn_strerror(rc) : cairn_open_error(),
               rc == CAIRN_EBUSY ? " (is a server using it? stop it first)"
                                 : "");
    return rc;
}

/* After an archive or recall: the tiers, then close db; rc is the move's
 * outcome. The exit status. */
static int tiers_close(const char *path, cairn_db *db, int rc)
{
    cairn_stats stt;
    cairn_get_stats(db, &stt);
    print_tiers(&stt);
    int crc = cairn_close(db);
    if (rc == 0 && crc != 0) {
        errorf(path, "close: %s", cairn_strerror(crc));
        rc = crc;
    }
    return finish_stdout(path, rc ? EXIT_TROUBLE : EXIT_SOUND);
}

static int cmd_archive(const char *path, int argc, char **argv)
{
    const command *c = find_command(path);
    const char *adir = NULL;
    uint64_t min_level = 0, min_age = 0, file = 0, zl = 0;
    opt_def defs[] = {{"--archive-dir", OPT_STR, &adir, false},
                      {"--min-level", OPT_U64, &min_level, false},
                      {"--min-age", OPT_U64, &min_age, false},
                      {"--file", OPT_U64, &file, false},
                      {"--zstd-level", OPT_U64, &zl, false}};
    const char *dir = NULL;
    int st = parse_args(c, argc, argv, defs, 5, &dir, 1);
    if (st >= 0)
        return st;
    if (!adir || !adir[0])
        return usage_error(path, "--archive-dir ADIR is required");
    if (min_level > 7)
        return usage_error(path, "--min-level: 0 .. 7");
    if (zl > 22)
        return usage_error(path, "--zstd-level: 1 .. 22");
    st = check_db_dir(path, dir);
    if (st)
        return st;
    cairn_db *db = NULL;
    if (open_with_archive(path, dir, adir, 0, 0, (int)zl, &db) != 0)
        return EXIT_TROUBLE;
    int rc;
    if (file) {
        cairn_file_info *fi = NULL;
        size_t n = 0;
        rc = cairn_list_files(db, &fi, &n);
        int level = -1;
        uint64_t before = 0;
        for (size_t i = 0; i < n; i++)
            if (fi[i].number == file) {
                level = fi[i].level;
                before = fi[i].bytes;
            }
        cairn_free(fi);
        if (rc == 0)
            rc = cairn_archive_file(db, file);
        if (rc == 0) {
            uint64_t after = 0;
            if (cairn_list_files(db, &fi, &n) == 0) {
                for (size_t i = 0; i < n; i++)
                    if (fi[i].number == file)
                        after = fi[i].bytes;
                cairn_free(fi);
            }
            archive_line(NULL, file, level, before, after, 0);
        } else {
            errorf(path, "%06" PRIu64 ".sst: %s", file, cairn_strerror(rc));
        }
    } else {
        rc = cairn_archive_run(db, (int)min_level, min_age, archive_line,
                               NULL);
        if (rc != 0)
            errorf(path, "%s", cairn_strerror(rc));
    }
    return tiers_close(path, db, rc);
}

static int cmd_recall(const char *path, int argc, char **argv)
{
    const command *c = find_command(path);
    const char *adir = NULL;
    opt_def defs[] = {{"--archive-dir", OPT_STR, &adir, false}};
    const char *pos[2] = {NULL, NULL};
    int st = parse_args(c, argc, argv, defs, 1, pos, 2);
    if (st >= 0)
        return st;
    if (!adir || !adir[0])
        return usage_error(path, "--archive-dir ADIR is required");
    uint64_t number = 0;
    if (!cairn_lsm_parse_sst_name(pos[1], &number) &&
        !parse_u64(pos[1], false, &number))
        return usage_error(path, "'%s' is not a file number or NNNNNN.sst",
                           pos[1]);
    st = check_db_dir(path, pos[0]);
    if (st)
        return st;
    cairn_db *db = NULL;
    if (open_with_archive(path, pos[0], adir, 0, 0, 0, &db) != 0)
        return EXIT_TROUBLE;
    int rc = cairn_recall_file(db, number);
    if (rc == 0)
        printf("recalled %06" PRIu64 ".sst\n", number);
    else
        errorf(path, "%06" PRIu64 ".sst: %s", number, cairn_strerror(rc));
    return tiers_close(path, db, rc);
}
