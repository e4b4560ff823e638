/*
 * acl.c — the ACL user store of cairn-server (see acl.h).
 *
 * Invariants:
 *   - acl->users is sorted by name (byte-wise, as Redis's user tree), holds
 *     no duplicates, always holds "default" (acl->def), and the store owns one
 *     reference of each user in it. A user taken out by DELUSER is marked
 *     deleted and freed when its last reference goes.
 *   - A user's body (flags, password hashes, patterns, command rules, command
 *     bitmap) is only ever replaced whole: SETUSER / requirepass build a new
 *     body on a copy and swap it in once every rule applied, so a failed
 *     SETUSER (bad rule or out of memory) changes nothing.
 *   - body.nbits is the size of the command table the bitmap was built for;
 *     a command index at or past it is denied. With "+@all" every word of
 *     the bitmap is all ones.
 *   - body.rules holds the command rules after the "+@all" / "-@all" base,
 *     lowercase, at most one per name ("+get" replaces an earlier "-get"),
 *     so replaying base + rules on the same table gives the same bitmap.
 *   - Password hashes are 64 lowercase hex characters, without duplicates;
 *     patterns contain no spaces or NULs (they are printed space-separated).
 *
 * Locking: none; loop thread only (see acl.h).
 */
#include "server/acl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cairn.h"

/* ============================================================ categories */

static const char *const CAT_NAMES[SRV_ACL_CAT_COUNT] = {
    "keyspace", "read",        "write",     "set",        "sortedset",
    "list",     "hash",        "string",    "bitmap",     "hyperloglog",
    "geo",      "stream",      "pubsub",    "admin",      "fast",
    "slow",     "blocking",    "dangerous", "connection", "transaction",
    "scripting", "timeseries",
};

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* a[0..n) equals the C string b, ignoring ASCII case. */
static bool ci_eq(const uint8_t *a, size_t n, const char *b)
{
    size_t bl = strlen(b);
    if (n != bl)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

const char *srv_acl_category_name(size_t i)
{
    return i < SRV_ACL_CAT_COUNT ? CAT_NAMES[i] : NULL;
}

unsigned srv_acl_category_flag(const char *name, size_t len)
{
    if (!name)
        return 0;
    for (size_t i = 0; i < SRV_ACL_CAT_COUNT; i++)
        if (ci_eq((const uint8_t *)name, len, CAT_NAMES[i]))
            return 1u << i;
    return 0;
}

/* ============================================================ glob */

/* Match byte c against the set starting at p[i] (just after its '['). *next
 * receives the index after the set: after its ']', or pn when it is
 * unterminated (then it runs to the end of the pattern, as in Redis). */
static bool set_match(const uint8_t *p, size_t pn, size_t i, uint8_t c,
                      size_t *next)
{
    bool neg = false, hit = false;
    if (i < pn && p[i] == '^') {
        neg = true;
        i++;
    }
    while (i < pn && p[i] != ']') {
        if (p[i] == '\\' && i + 1 < pn) { /* escaped member */
            hit |= p[i + 1] == c;
            i += 2;
        } else if (i + 2 < pn && p[i + 1] == '-') { /* range */
            uint8_t lo = p[i], hi = p[i + 2];
            if (lo > hi) {
                uint8_t t = lo;
                lo = hi;
                hi = t;
            }
            hit |= c >= lo && c <= hi;
            i += 3;
        } else {
            hit |= p[i] == c;
            i++;
        }
    }
    if (i < pn)
        i++; /* the ']' */
    *next = i;
    return hit != neg;
}

/* Every pattern element but '*' consumes exactly one byte, so remembering
 * only the last '*' and retrying from one byte further on a mismatch finds
 * a match whenever there is one, in O(patlen * slen) with no recursion. */
bool srv_acl_glob_match(const uint8_t *p, size_t pn, const uint8_t *s,
                        size_t sn)
{
    if (sn == 0) /* Redis's stringmatchlen: only "" matches "" */
        return pn == 0;
    size_t pi = 0, si = 0;
    size_t star_p = SIZE_MAX, star_s = 0;
    while (si < sn) {
        if (pi < pn) {
            uint8_t pc = p[pi];
            if (pc == '*') {
                while (pi < pn && p[pi] == '*')
                    pi++;
                if (pi == pn)
                    return true; /* a trailing '*' takes the rest */
                star_p = pi;
                star_s = si;
                continue;
            }
            bool ok;
            size_t next;
            if (pc == '?') {
                ok = true;
                next = pi + 1;
            } else if (pc == '[') {
                ok = set_match(p, pn, pi + 1, s[si], &next);
            } else if (pc == '\\' && pi + 1 < pn) {
                ok = p[pi + 1] == s[si];
                next = pi + 2;
            } else {
                ok = pc == s[si];
                next = pi + 1;
            }
            if (ok) {
                pi = next;
                si++;
                continue;
            }
        }
        if (star_p == SIZE_MAX)
            return false;
        pi = star_p; /* let the last '*' take one more byte */
        si = ++star_s;
    }
    while (pi < pn && p[pi] == '*')
        pi++;
    return pi == pn;
}

/* ============================================================ helpers */

/* A vector of owned NUL-terminated strings with their lengths. */
typedef struct strvec {
    char **v;
    size_t *l;
    size_t n, cap;
} strvec;

static int sv_reserve(strvec *v, size_t want)
{
    if (want <= v->cap)
        return 0;
    size_t cap = v->cap ? v->cap * 2 : 4;
    while (cap < want)
        cap *= 2;
    char **nv = realloc(v->v, cap * sizeof *nv);
    if (!nv)
        return CAIRN_ENOMEM;
    v->v = nv;
    size_t *nl = realloc(v->l, cap * sizeof *nl);
    if (!nl)
        return CAIRN_ENOMEM;
    v->l = nl;
    v->cap = cap;
    return 0;
}

/* Append a copy of pre (may be 0: none) followed by s[0..n). */
static int sv_push2(strvec *v, char pre, const void *s, size_t n)
{
    size_t extra = pre ? 1 : 0;
    if (n > SIZE_MAX - 2 || sv_reserve(v, v->n + 1))
        return CAIRN_ENOMEM;
    char *c = malloc(n + extra + 1);
    if (!c)
        return CAIRN_ENOMEM;
    if (pre)
        c[0] = pre;
    if (n)
        memcpy(c + extra, s, n);
    c[n + extra] = '\0';
    v->v[v->n] = c;
    v->l[v->n] = n + extra;
    v->n++;
    return 0;
}

static int sv_push(strvec *v, const void *s, size_t n)
{
    return sv_push2(v, 0, s, n);
}

static size_t sv_find(const strvec *v, const void *s, size_t n)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->l[i] == n && (n == 0 || !memcmp(v->v[i], s, n)))
            return i;
    return SIZE_MAX;
}

static void sv_del(strvec *v, size_t i)
{
    free(v->v[i]);
    memmove(v->v + i, v->v + i + 1, (v->n - i - 1) * sizeof *v->v);
    memmove(v->l + i, v->l + i + 1, (v->n - i - 1) * sizeof *v->l);
    v->n--;
}

static void sv_clear(strvec *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    v->n = 0;
}

static void sv_free(strvec *v)
{
    sv_clear(v);
    free(v->v);
    free(v->l);
    memset(v, 0, sizeof *v);
}

static int sv_copy(strvec *dst, const strvec *src)
{
    memset(dst, 0, sizeof *dst);
    for (size_t i = 0; i < src->n; i++) {
        if (sv_push(dst, src->v[i], src->l[i])) {
            sv_free(dst);
            return CAIRN_ENOMEM;
        }
    }
    return 0;
}

/* A growable C string; on ENOMEM it sets oom and drops later appends. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* Spaces (as isspace in the C locale) or NULs: not allowed in user names
 * and patterns, which ACL LIST prints space-separated. */
static bool has_space(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == 0 || c == ' ' || (c >= '\t' && c <= '\r'))
            return true;
    }
    return false;
}

/* SHA-256 of p[0..n) as 64 lowercase hex characters and a NUL. */
static int hash_hex(const uint8_t *p, size_t n, char out[65])
{
    static const char HEX[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(n ? (const void *)p : (const void *)"", n, md, &mdlen,
                    EVP_sha256(), NULL) ||
        mdlen != 32)
        return CAIRN_ENOMEM;
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = HEX[md[i] >> 4];
        out[2 * i + 1] = HEX[md[i] & 15];
    }
    out[64] = '\0';
    OPENSSL_cleanse(md, sizeof md);
    return 0;
}

/* Redis accepts only exactly 64 lowercase hex characters as a hash. */
static bool valid_hash(const uint8_t *p, size_t n)
{
    if (n != 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    return true;
}

/* ============================================================ users */

enum {
    UF_ON = 1,
    UF_NOPASS = 2,
    UF_ALLKEYS = 4,
    UF_ALLCHANNELS = 8,
    UF_ALLCMDS = 16, /* the command rules start from "+@all" */
    UF_SANITIZE = 32, /* "sanitize-payload": shown, as Redis does; Cairn
                       * has no RESTORE payloads to sanitize */
    UF_SKIPSANITIZE = 64,
};

typedef struct body {
    unsigned flags;
    strvec pass;  /* password hashes */
    strvec keys;  /* key patterns, without the '~' */
    strvec chans; /* channel patterns, without the '&' */
    strvec rules; /* command rules after the base, e.g. "+get", "-@write" */
    uint64_t *bits;
    size_t nbits; /* commands the bitmap covers */
} body;

struct srv_acl_user {
    char *name;
    size_t refs;
    bool deleted;
    body b;
};

struct srv_acl {
    srv_acl_user **users; /* sorted by name */
    size_t n, cap;
    srv_acl_user *def;
    char **cmds; /* the command table: lowercase names ... */
    unsigned *cats; /* ... and their categories */
    size_t ncmds;
    uint64_t gen;
};

static size_t words(size_t nbits)
{
    return (nbits + 63) / 64;
}

static void bits_fill(body *b, bool on)
{
    if (b->bits)
        memset(b->bits, on ? 0xff : 0, words(b->nbits) * sizeof *b->bits);
}

static void bit_set(body *b, size_t i, bool on)
{
    if (on)
        b->bits[i / 64] |= (uint64_t)1 << (i % 64);
    else
        b->bits[i / 64] &= ~((uint64_t)1 << (i % 64));
}

static void body_free(body *b)
{
    sv_free(&b->pass);
    sv_free(&b->keys);
    sv_free(&b->chans);
    sv_free(&b->rules);
    free(b->bits);
    memset(b, 0, sizeof *b);
}

/* A new user's body: off, no password, no keys or channels, -@all. */
static int body_init(body *b, size_t nbits)
{
    memset(b, 0, sizeof *b);
    b->nbits = nbits;
    if (nbits) {
        b->bits = calloc(words(nbits), sizeof *b->bits);
        if (!b->bits)
            return CAIRN_ENOMEM;
    }
    return 0;
}

static int body_copy(body *dst, const body *src)
{
    if (body_init(dst, src->nbits))
        return CAIRN_ENOMEM;
    dst->flags = src->flags;
    if (src->nbits)
        memcpy(dst->bits, src->bits, words(src->nbits) * sizeof *dst->bits);
    if (sv_copy(&dst->pass, &src->pass) || sv_copy(&dst->keys, &src->keys) ||
        sv_copy(&dst->chans, &src->chans) ||
        sv_copy(&dst->rules, &src->rules)) {
        body_free(dst);
        return CAIRN_ENOMEM;
    }
    return 0;
}

static void user_free(srv_acl_user *u)
{
    if (!u)
        return;
    body_free(&u->b);
    free(u->name);
    free(u);
}

static int name_cmp(const char *a, const uint8_t *b, size_t bl)
{
    size_t al = strlen(a);
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

/* Index of the user named b[0..bl) (*found), or where it would go. */
static size_t user_pos(const srv_acl *acl, const uint8_t *b, size_t bl,
                       bool *found)
{
    size_t lo = 0, hi = acl->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(acl->users[mid]->name, b, bl);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static srv_acl_user *user_get(const srv_acl *acl, const uint8_t *b, size_t bl)
{
    bool found;
    size_t i = user_pos(acl, b, bl, &found);
    return found ? acl->users[i] : NULL;
}

static size_t cmd_find(const srv_acl *acl, const uint8_t *name, size_t len)
{
    for (size_t i = 0; i < acl->ncmds; i++)
        if (ci_eq(name, len, acl->cmds[i]))
            return i;
    return SIZE_MAX;
}

static void apply_category(const srv_acl *acl, body *b, unsigned flag,
                           bool on)
{
    for (size_t i = 0; i < acl->ncmds && i < b->nbits; i++)
        if (acl->cats[i] & flag)
            bit_set(b, i, on);
}

/* Record "+name" / "-name" (name lowercased; "@cat" for a category),
 * replacing an earlier rule for the same name. */
static int rules_update(body *b, bool on, const uint8_t *name, size_t len)
{
    if (sv_push2(&b->rules, on ? '+' : '-', name, len))
        return CAIRN_ENOMEM;
    char *t = b->rules.v[b->rules.n - 1];
    for (size_t i = 1; i <= len; i++)
        t[i] = (char)lower((unsigned char)t[i]);
    for (size_t i = 0; i + 1 < b->rules.n;) {
        if (b->rules.l[i] == len + 1 && !memcmp(b->rules.v[i] + 1, t + 1, len))
            sv_del(&b->rules, i);
        else
            i++;
    }
    return 0;
}

/* ============================================================ rules */

/* Errors of one rule, with Redis's texts. */
static const char E_SYNTAX[] = "Syntax error";
static const char E_UNKNOWN[] = "Unknown command or category name in ACL";
static const char E_ALLKEYS[] =
    "Adding a pattern after the * pattern (or the 'allkeys' flag) is not "
    "valid and does not have any effect. Try 'resetkeys' to start with an "
    "empty list of patterns";
static const char E_ALLCHANNELS[] =
    "Adding a pattern after the * pattern (or the 'allchannels' flag) is not "
    "valid and does not have any effect. Try 'resetchannels' to start with "
    "an empty list of channels";
static const char E_NOPASS[] =
    "The password you are trying to remove from the user does not exist";
static const char E_HASH[] = "The password hash must be exactly 64 characters "
                             "and contain only lowercase hexadecimal "
                             "characters";

static void all_commands(body *b, bool on)
{
    if (on)
        b->flags |= UF_ALLCMDS;
    else
        b->flags &= ~(unsigned)UF_ALLCMDS;
    bits_fill(b, on);
    sv_clear(&b->rules);
}

/* Apply one rule to b. 0, CAIRN_EINVAL with *why set (a bad rule), or
 * CAIRN_ENOMEM. b may be half-changed on an error: callers work on a copy. */
static int apply_rule(const srv_acl *acl, body *b, const uint8_t *op,
                      size_t n, const char **why)
{
    if (n == 0)
        return 0; /* an empty rule does nothing, as in Redis */
    if (ci_eq(op, n, "on")) {
        b->flags |= UF_ON;
    } else if (ci_eq(op, n, "off")) {
        b->flags &= ~(unsigned)UF_ON;
    } else if (ci_eq(op, n, "nopass")) {
        b->flags |= UF_NOPASS;
        sv_clear(&b->pass);
    } else if (ci_eq(op, n, "resetpass")) {
        b->flags &= ~(unsigned)UF_NOPASS;
        sv_clear(&b->pass);
    } else if (ci_eq(op, n, "allkeys") || ci_eq(op, n, "~*")) {
        b->flags |= UF_ALLKEYS;
        sv_clear(&b->keys);
    } else if (ci_eq(op, n, "resetkeys")) {
        b->flags &= ~(unsigned)UF_ALLKEYS;
        sv_clear(&b->keys);
    } else if (ci_eq(op, n, "allchannels") || ci_eq(op, n, "&*")) {
        b->flags |= UF_ALLCHANNELS;
        sv_clear(&b->chans);
    } else if (ci_eq(op, n, "resetchannels")) {
        b->flags &= ~(unsigned)UF_ALLCHANNELS;
        sv_clear(&b->chans);
    } else if (ci_eq(op, n, "allcommands") || ci_eq(op, n, "+@all")) {
        all_commands(b, true);
    } else if (ci_eq(op, n, "nocommands") || ci_eq(op, n, "-@all")) {
        all_commands(b, false);
    } else if (ci_eq(op, n, "sanitize-payload")) {
        b->flags &= ~(unsigned)UF_SKIPSANITIZE;
        b->flags |= UF_SANITIZE;
    } else if (ci_eq(op, n, "skip-sanitize-payload")) {
        b->flags &= ~(unsigned)UF_SANITIZE;
        b->flags |= UF_SKIPSANITIZE;
    } else if (ci_eq(op, n, "reset")) {
        b->flags &= ~(unsigned)(UF_ON | UF_NOPASS | UF_ALLKEYS |
                                UF_ALLCHANNELS | UF_SKIPSANITIZE);
        b->flags |= UF_SANITIZE;
        sv_clear(&b->pass);
        sv_clear(&b->keys);
        sv_clear(&b->chans);
        all_commands(b, false);
    } else if (op[0] == '>' || op[0] == '#') {
        char h[65];
        if (op[0] == '>') {
            if (hash_hex(op + 1, n - 1, h))
                return CAIRN_ENOMEM;
        } else {
            if (!valid_hash(op + 1, n - 1)) {
                *why = E_HASH;
                return CAIRN_EINVAL;
            }
            memcpy(h, op + 1, 64);
            h[64] = '\0';
        }
        if (sv_find(&b->pass, h, 64) == SIZE_MAX && sv_push(&b->pass, h, 64))
            return CAIRN_ENOMEM;
        b->flags &= ~(unsigned)UF_NOPASS;
    } else if (op[0] == '<' || op[0] == '!') {
        char h[65];
        if (op[0] == '<') {
            if (hash_hex(op + 1, n - 1, h))
                return CAIRN_ENOMEM;
        } else {
            if (!valid_hash(op + 1, n - 1)) {
                *why = E_HASH;
                return CAIRN_EINVAL;
            }
            memcpy(h, op + 1, 64);
        }
        size_t i = sv_find(&b->pass, h, 64);
        if (i == SIZE_MAX) {
            *why = E_NOPASS;
            return CAIRN_EINVAL;
        }
        sv_del(&b->pass, i);
    } else if (op[0] == '~' || op[0] == '&') {
        bool key = op[0] == '~';
        if (b->flags & (key ? UF_ALLKEYS : UF_ALLCHANNELS)) {
            *why = key ? E_ALLKEYS : E_ALLCHANNELS;
            return CAIRN_EINVAL;
        }
        if (has_space(op + 1, n - 1)) {
            *why = E_SYNTAX;
            return CAIRN_EINVAL;
        }
        strvec *v = key ? &b->keys : &b->chans;
        if (sv_find(v, op + 1, n - 1) == SIZE_MAX && sv_push(v, op + 1, n - 1))
            return CAIRN_ENOMEM;
    } else if (op[0] == '+' || op[0] == '-') {
        bool on = op[0] == '+';
        if (n >= 2 && op[1] == '@') {
            unsigned flag =
                srv_acl_category_flag((const char *)op + 2, n - 2);
            if (!flag) {
                *why = E_UNKNOWN;
                return CAIRN_EINVAL;
            }
            if (rules_update(b, on, op + 1, n - 1))
                return CAIRN_ENOMEM;
            apply_category(acl, b, flag, on);
        } else {
            size_t i = cmd_find(acl, op + 1, n - 1);
            if (i == SIZE_MAX || i >= b->nbits) {
                *why = E_UNKNOWN;
                return CAIRN_EINVAL;
            }
            if (rules_update(b, on, op + 1, n - 1))
                return CAIRN_ENOMEM;
            bit_set(b, i, on);
        }
    } else {
        *why = E_SYNTAX;
        return CAIRN_EINVAL;
    }
    return 0;
}

/* Rebuild b's bitmap (already sized for the current table) from its base
 * and rules, dropping rules whose command left the table. */
static void replay(const srv_acl *acl, body *b)
{
    bits_fill(b, b->flags & UF_ALLCMDS);
    for (size_t i = 0; i < b->rules.n;) {
        const char *r = b->rules.v[i];
        size_t l = b->rules.l[i];
        bool on = r[0] == '+';
        if (r[1] == '@') {
            apply_category(acl, b, srv_acl_category_flag(r + 2, l - 2), on);
        } else {
            size_t c = cmd_find(acl, (const uint8_t *)r + 1, l - 1);
            if (c == SIZE_MAX) {
                sv_del(&b->rules, i);
                continue;
            }
            bit_set(b, c, on);
        }
        i++;
    }
}

/* "+@all" / "-@all" and the rules after it, space-separated. */
static void describe_commands(const body *b, sbuf *s)
{
    sb_str(s, b->flags & UF_ALLCMDS ? "+@all" : "-@all");
    for (size_t i = 0; i < b->rules.n; i++) {
        sb_add(s, " ", 1);
        sb_add(s, b->rules.v[i], b->rules.l[i]);
    }
}

/* Patterns as "~a ~b" (or "~*"); "" when there are none. */
static void describe_patterns(const strvec *v, bool all, char pre, sbuf *s)
{
    char star[3] = {pre, '*', '\0'};
    if (all) {
        sb_str(s, star);
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        if (i)
            sb_add(s, " ", 1);
        sb_add(s, &pre, 1);
        sb_add(s, v->v[i], v->l[i]);
    }
}

/* The ACL LIST line of u: "user <name> on|off [nopass]
 * [skip-sanitize-payload|sanitize-payload] [#hash]... [~pat]...
 * (&*|resetchannels [&pat]...) +@all|-@all [rules]". */
static void describe_user(const srv_acl_user *u, sbuf *s)
{
    const body *b = &u->b;
    sb_str(s, "user ");
    sb_str(s, u->name);
    sb_str(s, b->flags & UF_ON ? " on " : " off ");
    if (b->flags & UF_NOPASS)
        sb_str(s, "nopass ");
    if (b->flags & UF_SKIPSANITIZE)
        sb_str(s, "skip-sanitize-payload ");
    if (b->flags & UF_SANITIZE)
        sb_str(s, "sanitize-payload ");
    for (size_t i = 0; i < b->pass.n; i++) {
        sb_add(s, "#", 1);
        sb_add(s, b->pass.v[i], b->pass.l[i]);
        sb_add(s, " ", 1);
    }
    if (b->flags & UF_ALLKEYS || b->keys.n) {
        describe_patterns(&b->keys, b->flags & UF_ALLKEYS, '~', s);
        sb_add(s, " ", 1);
    }
    if (!(b->flags & UF_ALLCHANNELS))
        sb_str(s, "resetchannels ");
    if (b->flags & UF_ALLCHANNELS || b->chans.n) {
        describe_patterns(&b->chans, b->flags & UF_ALLCHANNELS, '&', s);
        sb_add(s, " ", 1);
    }
    describe_commands(b, s);
}

/* ============================================================ the store */

static int users_reserve(srv_acl *acl)
{
    if (acl->n < acl->cap)
        return 0;
    size_t cap = acl->cap ? acl->cap * 2 : 8;
    srv_acl_user **nu = realloc(acl->users, cap * sizeof *nu);
    if (!nu)
        return CAIRN_ENOMEM;
    acl->users = nu;
    acl->cap = cap;
    return 0;
}

/* A new user (one reference, the store's) owning body b. */
static srv_acl_user *user_new(const uint8_t *name, size_t len, body *b)
{
    srv_acl_user *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->name = malloc(len + 1);
    if (!u->name) {
        free(u);
        return NULL;
    }
    if (len)
        memcpy(u->name, name, len);
    u->name[len] = '\0';
    u->refs = 1;
    u->b = *b;
    return u;
}

srv_acl *srv_acl_new(void)
{
    srv_acl *acl = calloc(1, sizeof *acl);
    if (!acl)
        return NULL;
    body b;
    body_init(&b, 0); /* no bitmap yet: cannot fail */
    b.flags = UF_ON | UF_NOPASS | UF_ALLKEYS | UF_ALLCHANNELS | UF_ALLCMDS;
    if (users_reserve(acl) ||
        !(acl->def = user_new((const uint8_t *)"default", 7, &b))) {
        free(acl->users);
        free(acl);
        return NULL;
    }
    acl->users[acl->n++] = acl->def;
    return acl;
}

static void user_unlink(srv_acl_user *u)
{
    u->deleted = true;
    srv_acl_user_release(u);
}

void srv_acl_free(srv_acl *acl)
{
    if (!acl)
        return;
    for (size_t i = 0; i < acl->n; i++)
        user_unlink(acl->users[i]);
    free(acl->users);
    for (size_t i = 0; i < acl->ncmds; i++)
        free(acl->cmds[i]);
    free(acl->cmds);
    free(acl->cats);
    free(acl);
}

int srv_acl_set_commands(srv_acl *acl, const char *const *names,
                         const unsigned *cats, size_t n)
{
    if (!acl || (n && (!names || !cats)))
        return CAIRN_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!names[i] || !names[i][0])
            return CAIRN_EINVAL;
    if (n > SIZE_MAX / 2 / sizeof(char *))
        return CAIRN_ENOMEM;
    /* Allocate everything first, so a failure changes nothing. */
    char **nc = n ? calloc(n, sizeof *nc) : NULL;
    unsigned *ncat = n ? malloc(n * sizeof *ncat) : NULL;
    uint64_t **nb = calloc(acl->n, sizeof *nb);
    bool ok = nb && (!n || (nc && ncat));
    for (size_t i = 0; ok && i < n; i++) {
        size_t l = strlen(names[i]);
        if (!(nc[i] = malloc(l + 1))) {
            ok = false;
            break;
        }
        for (size_t j = 0; j <= l; j++)
            nc[i][j] = (char)lower((unsigned char)names[i][j]);
        ncat[i] = cats[i];
    }
    for (size_t i = 0; ok && n && i < acl->n; i++)
        ok = (nb[i] = calloc(words(n), sizeof **nb)) != NULL;
    if (!ok) {
        for (size_t i = 0; nc && i < n; i++)
            free(nc[i]);
        for (size_t i = 0; nb && i < acl->n; i++)
            free(nb[i]);
        free(nc);
        free(ncat);
        free(nb);
        return CAIRN_ENOMEM;
    }
    for (size_t i = 0; i < acl->ncmds; i++)
        free(acl->cmds[i]);
    free(acl->cmds);
    free(acl->cats);
    acl->cmds = nc;
    acl->cats = ncat;
    acl->ncmds = n;
    for (size_t i = 0; i < acl->n; i++) {
        body *b = &acl->users[i]->b;
        free(b->bits);
        b->bits = nb[i];
        b->nbits = n;
        replay(acl, b);
    }
    free(nb);
    return 0;
}

int srv_acl_set_requirepass(srv_acl *acl, const char *pass)
{
    body b;
    if (body_copy(&b, &acl->def->b))
        return CAIRN_ENOMEM;
    sv_clear(&b.pass);
    if (pass) {
        char h[65];
        if (hash_hex((const uint8_t *)pass, strlen(pass), h) ||
            sv_push(&b.pass, h, 64)) {
            body_free(&b);
            return CAIRN_ENOMEM;
        }
        b.flags &= ~(unsigned)UF_NOPASS;
    } else {
        b.flags |= UF_NOPASS;
    }
    body_free(&acl->def->b);
    acl->def->b = b;
    return 0;
}

const srv_acl_user *srv_acl_auth(srv_acl *acl, const char *user,
                                 const uint8_t *pass, size_t passlen)
{
    if (!acl || !user)
        return NULL;
    srv_acl_user *u = user_get(acl, (const uint8_t *)user, strlen(user));
    if (!u || !(u->b.flags & UF_ON))
        return NULL;
    if (u->b.flags & UF_NOPASS)
        return u;
    char h[65];
    if (hash_hex(pass, pass ? passlen : 0, h))
        return NULL;
    bool ok = false;
    for (size_t i = 0; i < u->b.pass.n; i++) /* no early exit */
        ok |= CRYPTO_memcmp(h, u->b.pass.v[i], 64) == 0;
    OPENSSL_cleanse(h, sizeof h);
    return ok ? u : NULL;
}

const srv_acl_user *srv_acl_default(srv_acl *acl)
{
    return acl->def;
}

bool srv_acl_default_nopass(srv_acl *acl)
{
    unsigned f = acl->def->b.flags;
    return (f & UF_ON) && (f & UF_NOPASS);
}

const srv_acl_user *srv_acl_find(srv_acl *acl, const char *name)
{
    return name ? user_get(acl, (const uint8_t *)name, strlen(name)) : NULL;
}

/* The reference count is bookkeeping, not part of what a const user
 * promises; the objects themselves are never const. */
void srv_acl_user_retain(const srv_acl_user *u)
{
    if (u)
        ((srv_acl_user *)u)->refs++;
}

void srv_acl_user_release(const srv_acl_user *cu)
{
    srv_acl_user *u = (srv_acl_user *)cu;
    if (u && u->refs && --u->refs == 0)
        user_free(u);
}

const char *srv_acl_user_name(const srv_acl_user *u)
{
    return u->name;
}

bool srv_acl_user_deleted(const srv_acl_user *u)
{
    return u->deleted;
}

bool srv_acl_user_enabled(const srv_acl_user *u)
{
    return (u->b.flags & UF_ON) != 0;
}

uint64_t srv_acl_generation(const srv_acl *acl)
{
    return acl->gen;
}

int srv_acl_check_cmd(const srv_acl_user *u, size_t cmd_index)
{
    if (!u || u->deleted || cmd_index >= u->b.nbits)
        return -1;
    return (u->b.bits[cmd_index / 64] >> (cmd_index % 64)) & 1 ? 0 : -1;
}

int srv_acl_check_key(const srv_acl_user *u, const uint8_t *key, size_t len)
{
    if (!u || u->deleted)
        return -1;
    if (u->b.flags & UF_ALLKEYS)
        return 0;
    for (size_t i = 0; i < u->b.keys.n; i++)
        if (srv_acl_glob_match((const uint8_t *)u->b.keys.v[i], u->b.keys.l[i],
                               key, len))
            return 0;
    return -1;
}

/* ============================================================ ACL command */

/* An argument for "%.*s" in error messages (printf stops at a NUL). */
static int pr_len(size_t n)
{
    return n > INT_MAX ? INT_MAX : (int)n;
}

static void acl_setuser(srv_acl *acl, size_t argc, const uint8_t *const *argv,
                        const size_t *argl, cairn_resp_buf *out)
{
    const uint8_t *name = argv[2];
    size_t nlen = argl[2];
    if (has_space(name, nlen)) {
        cairn_resp_error(out,
                         "ERR Usernames can't contain spaces or null "
                         "characters");
        return;
    }
    bool found;
    size_t pos = user_pos(acl, name, nlen, &found);
    body b;
    int rc = found ? body_copy(&b, &acl->users[pos]->b)
                   : body_init(&b, acl->ncmds);
    if (rc || (!found && users_reserve(acl))) {
        if (!rc)
            body_free(&b);
        cairn_resp_error(out, "ERR out of memory");
        return;
    }
    for (size_t j = 3; j < argc; j++) {
        const char *why = NULL;
        rc = apply_rule(acl, &b, argv[j], argl[j], &why);
        if (rc) {
            body_free(&b);
            if (rc == CAIRN_EINVAL)
                cairn_resp_errorf(out,
                                  "ERR Error in ACL SETUSER modifier '%.*s': "
                                  "%s",
                                  pr_len(argl[j]), (const char *)argv[j], why);
            else
                cairn_resp_error(out, "ERR out of memory");
            return;
        }
    }
    if (found) {
        body_free(&acl->users[pos]->b);
        acl->users[pos]->b = b;
    } else {
        srv_acl_user *u = user_new(name, nlen, &b);
        if (!u) {
            body_free(&b);
            cairn_resp_error(out, "ERR out of memory");
            return;
        }
        memmove(acl->users + pos + 1, acl->users + pos,
                (acl->n - pos) * sizeof *acl->users);
        acl->users[pos] = u;
        acl->n++;
    }
    cairn_resp_simple(out, "OK");
}

static void reply_sbuf(cairn_resp_buf *out, sbuf *s)
{
    if (s->oom)
        cairn_resp_error(out, "ERR out of memory");
    else
        cairn_resp_bulk(out, s->p ? s->p : "", s->len);
    free(s->p);
    memset(s, 0, sizeof *s);
}

static void acl_getuser(srv_acl *acl, const uint8_t *name, size_t nlen,
                        cairn_resp_buf *out)
{
    const srv_acl_user *u = user_get(acl, name, nlen);
    if (!u) {
        cairn_resp_null(out);
        return;
    }
    const body *b = &u->b;
    /* Build the three strings first so no error lands inside the map. */
    sbuf cmds = {0}, keys = {0}, chans = {0};
    describe_commands(b, &cmds);
    describe_patterns(&b->keys, b->flags & UF_ALLKEYS, '~', &keys);
    describe_patterns(&b->chans, b->flags & UF_ALLCHANNELS, '&', &chans);
    if (cmds.oom || keys.oom || chans.oom) {
        free(cmds.p);
        free(keys.p);
        free(chans.p);
        cairn_resp_error(out, "ERR out of memory");
        return;
    }
    cairn_resp_map(out, 6);
    cairn_resp_bulk_cstr(out, "flags");
    bool nopass = b->flags & UF_NOPASS;
    bool skip = b->flags & UF_SKIPSANITIZE, san = b->flags & UF_SANITIZE;
    cairn_resp_set(out, 1 + nopass + skip + san);
    cairn_resp_bulk_cstr(out, b->flags & UF_ON ? "on" : "off");
    if (nopass)
        cairn_resp_bulk_cstr(out, "nopass");
    if (skip)
        cairn_resp_bulk_cstr(out, "skip-sanitize-payload");
    if (san)
        cairn_resp_bulk_cstr(out, "sanitize-payload");
    cairn_resp_bulk_cstr(out, "passwords");
    cairn_resp_array(out, b->pass.n);
    for (size_t i = 0; i < b->pass.n; i++)
        cairn_resp_bulk(out, b->pass.v[i], b->pass.l[i]);
    cairn_resp_bulk_cstr(out, "commands");
    reply_sbuf(out, &cmds);
    cairn_resp_bulk_cstr(out, "keys");
    reply_sbuf(out, &keys);
    cairn_resp_bulk_cstr(out, "channels");
    reply_sbuf(out, &chans);
    cairn_resp_bulk_cstr(out, "selectors");
    cairn_resp_array(out, 0);
}

static void acl_deluser(srv_acl *acl, size_t argc, const uint8_t *const *argv,
                        const size_t *argl, cairn_resp_buf *out)
{
    for (size_t j = 2; j < argc; j++) {
        if (argl[j] == 7 && !memcmp(argv[j], "default", 7)) {
            cairn_resp_error(out, "ERR The 'default' user cannot be removed");
            return;
        }
    }
    int64_t deleted = 0;
    for (size_t j = 2; j < argc; j++) {
        bool found;
        size_t pos = user_pos(acl, argv[j], argl[j], &found);
        if (!found)
            continue;
        srv_acl_user *u = acl->users[pos];
        memmove(acl->users + pos, acl->users + pos + 1,
                (acl->n - pos - 1) * sizeof *acl->users);
        acl->n--;
        user_unlink(u);
        deleted++;
    }
    if (deleted)
        acl->gen++;
    cairn_resp_integer(out, deleted);
}

/* Every user's ACL LIST line (acl->n of them, in user order), or NULL when
 * out of memory. */
static sbuf *describe_all(const srv_acl *acl)
{
    sbuf *lines = calloc(acl->n ? acl->n : 1, sizeof *lines);
    bool oom = !lines;
    for (size_t i = 0; !oom && i < acl->n; i++) {
        describe_user(acl->users[i], &lines[i]);
        oom = lines[i].oom;
    }
    if (oom) {
        for (size_t i = 0; lines && i < acl->n; i++)
            free(lines[i].p);
        free(lines);
        return NULL;
    }
    return lines;
}

static void acl_list(srv_acl *acl, cairn_resp_buf *out)
{
    /* Describe every user first: an error cannot follow a partial array. */
    sbuf *lines = describe_all(acl);
    if (!lines) {
        cairn_resp_error(out, "ERR out of memory");
        return;
    }
    cairn_resp_array(out, acl->n);
    for (size_t i = 0; i < acl->n; i++)
        reply_sbuf(out, &lines[i]);
    free(lines);
}

char **srv_acl_list(const srv_acl *acl, size_t *n)
{
    sbuf *lines = describe_all(acl);
    char **out = lines ? calloc(acl->n ? acl->n : 1, sizeof *out) : NULL;
    if (!out) {
        for (size_t i = 0; lines && i < acl->n; i++)
            free(lines[i].p);
        free(lines);
        return NULL;
    }
    for (size_t i = 0; i < acl->n; i++)
        out[i] = lines[i].p ? lines[i].p : strdup("");
    free(lines);
    *n = acl->n;
    for (size_t i = 0; i < acl->n; i++)
        if (!out[i]) {
            srv_acl_list_free(out, acl->n);
            return NULL;
        }
    return out;
}

void srv_acl_list_free(char **lines, size_t n)
{
    for (size_t i = 0; lines && i < n; i++)
        free(lines[i]);
    free(lines);
}

static void acl_cat(srv_acl *acl, size_t argc, const uint8_t *const *argv,
                    const size_t *argl, cairn_resp_buf *out)
{
    if (argc == 2) {
        cairn_resp_array(out, SRV_ACL_CAT_COUNT);
        for (size_t i = 0; i < SRV_ACL_CAT_COUNT; i++)
            cairn_resp_bulk_cstr(out, CAT_NAMES[i]);
        return;
    }
    unsigned flag = srv_acl_category_flag((const char *)argv[2], argl[2]);
    if (!flag) {
        cairn_resp_errorf(out, "ERR Unknown category '%.*s'",
                          pr_len(argl[2] > 128 ? 128 : argl[2]),
                          (const char *)argv[2]);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < acl->ncmds; i++)
        k += (acl->cats[i] & flag) != 0;
    cairn_resp_array(out, k);
    for (size_t i = 0; i < acl->ncmds; i++)
        if (acl->cats[i] & flag)
            cairn_resp_bulk_cstr(out, acl->cmds[i]);
}

static const char *const HELP[] = {
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List the command categories, or the commands of <category>.",
    "DELUSER <username> [<username> ...]",
    "    Delete users; their connections are closed.",
    "GETUSER <username>",
    "    Show a user's flags, password hashes, commands and patterns.",
    "LIST",
    "    Show every user as its rules, one line per user.",
    "SETUSER <username> <rule> [<rule> ...]",
    "    Create a user or change it by applying the rules left to right.",
    "USERS",
    "    List the user names.",
    "WHOAMI",
    "    Show the user name of this connection.",
    "HELP",
    "    Print this help.",
};

static const cairn_resp_sub SUBS[] = {
    {"setuser", -3}, {"getuser", 3}, {"deluser", -3}, {"users", 2},
    {"list", 2},     {"whoami", 2},  {"cat", -2},     {"help", 2},
};

const cairn_resp_sub *srv_acl_subcommands(size_t *n)
{
    *n = sizeof SUBS / sizeof SUBS[0];
    return SUBS;
}

void srv_acl_command(srv_acl *acl, const char *whoami, size_t argc,
                     const uint8_t *const *argv, const size_t *argl,
                     cairn_resp_buf *out)
{
    if (argc < 2) {
        cairn_resp_error(out, "ERR wrong number of arguments for 'acl' "
                              "command");
        return;
    }
    const uint8_t *sub = argv[1];
    size_t sl = argl[1];
    int k = cairn_resp_sub_find(out, "ACL", SUBS, sizeof SUBS / sizeof SUBS[0],
                                argc, argv, argl);
    if (k < 0)
        return;
    const char *name = SUBS[k].name;
    if (!strcmp(name, "setuser")) {
        acl_setuser(acl, argc, argv, argl, out);
    } else if (!strcmp(name, "getuser")) {
        acl_getuser(acl, argv[2], argl[2], out);
    } else if (!strcmp(name, "deluser")) {
        acl_deluser(acl, argc, argv, argl, out);
    } else if (!strcmp(name, "users")) {
        cairn_resp_array(out, acl->n);
        for (size_t i = 0; i < acl->n; i++)
            cairn_resp_bulk_cstr(out, acl->users[i]->name);
    } else if (!strcmp(name, "list")) {
        acl_list(acl, out);
    } else if (!strcmp(name, "whoami")) {
        cairn_resp_bulk_cstr(out, whoami); /* NULL gives a null */
    } else if (!strcmp(name, "cat")) {
        if (argc > 3)
            cairn_resp_errorf(out,
                              "ERR unknown subcommand or wrong number of "
                              "arguments for '%.*s'. Try ACL HELP.",
                              pr_len(sl), (const char *)sub);
        else
            acl_cat(acl, argc, argv, argl, out);
    } else { /* help */
        size_t n = sizeof HELP / sizeof HELP[0];
        cairn_resp_array(out, n);
        for (size_t i = 0; i < n; i++)
            cairn_resp_simple(out, HELP[i]);
    }
}
