/*
 * test_acl.c — the ACL user store of cairn-server (src/server/acl.c).
 *
 *  - Defaults: only "default" (on, nopass, ~*, &*, +@all), any password
 *    authenticates it; requirepass sets / clears its password.
 *  - SETUSER: every rule alone and in combinations (passwords by text and by
 *    hash, nopass, resetpass, key and channel patterns, allkeys, commands by
 *    name and category, allcommands, nocommands, reset), case-insensitivity,
 *    rule normalization as ACL GETUSER / LIST show it; a bad rule anywhere
 *    in a SETUSER changes nothing (and creates no user), with Redis's error
 *    texts.
 *  - AUTH: good, bad, unknown user, off, nopass, binary and empty passwords.
 *  - Command checks over a small fake command table, by name and category,
 *    and rebuilt when the table is given again; key checks; the glob matcher
 *    on its edge cases (sets, ranges, escapes, unterminated sets, stars,
 *    empty strings, a pathological pattern).
 *  - Reply bytes of GETUSER (RESP2 and RESP3), LIST, USERS, DELUSER, WHOAMI,
 *    CAT, HELP, and the subcommand / arity errors.
 *  - Users held by clients across SETUSER, DELUSER and freeing the store.
 *  - 1,000 users created, authenticated and deleted (run under ASan for
 *    leaks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn.h"
#include "server/acl.h"
#include "server/resp.h"

/* SHA-256 of "secret", "p1", "p2", "p3", "" and "a\0b". */
#define H_SECRET "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
#define H_P1 "f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a"
#define H_P2 "3946ca64ff78d93ca61090a437cbb6b3d2ca0d488f5f9ccf3059608368b27693"
#define H_P3 "43bb00d0ce7790a53b91256b370c887b24791a5539a6fbfb70c5870e8c91ae5d"
#define H_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define H_ANULB "59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138"

/* ------------------------------------------------------------ fixtures */

enum {
    C_GET,
    C_SET,
    C_DEL,
    C_KEYS,
    C_FLUSHALL,
    C_PING,
    C_MULTI,
    C_EXEC,
    C_CONFIG,
    C_MGET,
    NCMD
};

static const char *const CMD_NAMES[NCMD] = {
    "get",  "set",   "del",  "keys",   "flushall",
    "ping", "multi", "exec", "config", "mget",
};

static const unsigned CMD_CATS[NCMD] = {
    SRV_ACL_CAT_READ | SRV_ACL_CAT_STRING | SRV_ACL_CAT_FAST,
    SRV_ACL_CAT_WRITE | SRV_ACL_CAT_STRING | SRV_ACL_CAT_SLOW,
    SRV_ACL_CAT_KEYSPACE | SRV_ACL_CAT_WRITE | SRV_ACL_CAT_SLOW,
    SRV_ACL_CAT_KEYSPACE | SRV_ACL_CAT_READ | SRV_ACL_CAT_SLOW |
        SRV_ACL_CAT_DANGEROUS,
    SRV_ACL_CAT_KEYSPACE | SRV_ACL_CAT_WRITE | SRV_ACL_CAT_SLOW |
        SRV_ACL_CAT_DANGEROUS,
    SRV_ACL_CAT_CONNECTION | SRV_ACL_CAT_FAST,
    SRV_ACL_CAT_TRANSACTION | SRV_ACL_CAT_FAST,
    SRV_ACL_CAT_TRANSACTION | SRV_ACL_CAT_SLOW,
    SRV_ACL_CAT_ADMIN | SRV_ACL_CAT_SLOW | SRV_ACL_CAT_DANGEROUS,
    SRV_ACL_CAT_READ | SRV_ACL_CAT_STRING | SRV_ACL_CAT_FAST,
};

static int setup(void **state)
{
    srv_acl *acl = srv_acl_new();
    if (!acl)
        return -1;
    if (srv_acl_set_commands(acl, CMD_NAMES, CMD_CATS, NCMD)) {
        srv_acl_free(acl);
        return -1;
    }
    *state = acl;
    return 0;
}

static char *g_last; /* the last reply, freed by the next run / teardown */

static int teardown(void **state)
{
    srv_acl_free(*state);
    free(g_last);
    g_last = NULL;
    return 0;
}

/* Run "ACL <args...>" with binary arguments; the reply, NUL-terminated. */
static const char *run_bin(srv_acl *acl, const char *who, int proto,
                           size_t n, const uint8_t *const *args,
                           const size_t *lens)
{
    const uint8_t *argv[64];
    size_t argl[64];
    assert_true(n < 64);
    argv[0] = (const uint8_t *)"ACL";
    argl[0] = 3;
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = args[i];
        argl[i + 1] = lens[i];
    }
    cairn_resp_buf out;
    cairn_resp_init(&out, proto);
    srv_acl_command(acl, who, n + 1, argv, argl, &out);
    assert_false(out.oom);
    free(g_last);
    g_last = malloc(out.len + 1);
    assert_non_null(g_last);
    if (out.len)
        memcpy(g_last, out.p, out.len);
    g_last[out.len] = '\0';
    cairn_resp_free(&out);
    return g_last;
}

static const char *run_v(srv_acl *acl, const char *who, int proto,
                         const char *const *args)
{
    const uint8_t *a[64];
    size_t l[64];
    size_t n = 0;
    while (args[n]) {
        assert_true(n < 63);
        a[n] = (const uint8_t *)args[n];
        l[n] = strlen(args[n]);
        n++;
    }
    return run_bin(acl, who, proto, n, a, l);
}

#define RUN(acl, ...) run_v((acl), NULL, 2, (const char *[]){__VA_ARGS__, NULL})
#define RUN3(acl, ...)                                                        \
    run_v((acl), NULL, 3, (const char *[]){__VA_ARGS__, NULL})
#define RUN_OK(acl, ...) assert_string_equal(RUN(acl, __VA_ARGS__), "+OK\r\n")

/* An array of bulk strings (RESP2) parsed into NUL-terminated copies. */
static char **bulks(const char *r, size_t *n)
{
    char *end;
    assert_int_equal(r[0], '*');
    long cnt = strtol(r + 1, &end, 10);
    assert_true(cnt >= 0 && end[0] == '\r' && end[1] == '\n');
    r = end + 2;
    char **v = calloc((size_t)cnt + 1, sizeof *v);
    assert_non_null(v);
    for (long i = 0; i < cnt; i++) {
        assert_int_equal(r[0], '$');
        long len = strtol(r + 1, &end, 10);
        assert_true(len >= 0 && end[0] == '\r' && end[1] == '\n');
        r = end + 2;
        v[i] = malloc((size_t)len + 1);
        assert_non_null(v[i]);
        memcpy(v[i], r, (size_t)len);
        v[i][len] = '\0';
        r += len;
        assert_true(r[0] == '\r' && r[1] == '\n');
        r += 2;
    }
    assert_int_equal(r[0], '\0'); /* nothing after the array */
    *n = (size_t)cnt;
    return v;
}

static void bulks_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* The ACL LIST line of user name (in a static buffer), or "" if absent. */
static const char *line_of(srv_acl *acl, const char *name)
{
    static char buf[4096];
    size_t n;
    char **v = bulks(RUN(acl, "LIST"), &n);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "user %s ", name);
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        if (!strncmp(v[i], prefix, strlen(prefix)))
            snprintf(buf, sizeof buf, "%s", v[i]);
    bulks_free(v, n);
    return buf;
}

/* The "commands" field of ACL GETUSER (RESP2 reply), static buffer. */
static const char *cmds_of(srv_acl *acl, const char *name)
{
    static char buf[1024];
    const char *r = RUN(acl, "GETUSER", name);
    const char *p = strstr(r, "$8\r\ncommands\r\n$");
    assert_non_null(p);
    p += strlen("$8\r\ncommands\r\n$");
    char *end;
    long len = strtol(p, &end, 10);
    assert_true(len >= 0 && (size_t)len < sizeof buf);
    memcpy(buf, end + 2, (size_t)len);
    buf[len] = '\0';
    return buf;
}

static bool auth(srv_acl *acl, const char *user, const char *pass)
{
    return srv_acl_auth(acl, user, (const uint8_t *)pass, strlen(pass)) !=
           NULL;
}

static int key_ok(const srv_acl_user *u, const char *k)
{
    return srv_acl_check_key(u, (const uint8_t *)k, strlen(k));
}

/* ------------------------------------------------------------ defaults */

static void test_defaults(void **state)
{
    srv_acl *acl = *state;
    const srv_acl_user *d = srv_acl_default(acl);
    assert_non_null(d);
    assert_string_equal(srv_acl_user_name(d), "default");
    assert_true(srv_acl_user_enabled(d));
    assert_false(srv_acl_user_deleted(d));
    assert_true(srv_acl_default_nopass(acl));
    assert_ptr_equal(srv_acl_find(acl, "default"), d);
    assert_null(srv_acl_find(acl, "nobody"));
    /* nopass: any password, even none. */
    assert_ptr_equal(srv_acl_auth(acl, "default", (const uint8_t *)"x", 1), d);
    assert_ptr_equal(srv_acl_auth(acl, "default", NULL, 0), d);
    assert_null(srv_acl_auth(acl, "nobody", NULL, 0));
    for (size_t i = 0; i < NCMD; i++)
        assert_int_equal(srv_acl_check_cmd(d, i), 0);
    assert_int_equal(srv_acl_check_cmd(d, NCMD), -1);
    assert_int_equal(srv_acl_check_cmd(d, SIZE_MAX), -1);
    assert_int_equal(key_ok(d, "anything"), 0);
    assert_int_equal(key_ok(d, ""), 0);
    assert_int_equal(srv_acl_check_key(d, (const uint8_t *)"a\0b", 3), 0);
    assert_string_equal(RUN(acl, "USERS"), "*1\r\n$7\r\ndefault\r\n");
    assert_string_equal(RUN(acl, "LIST"),
                        "*1\r\n$34\r\nuser default on nopass ~* &* +@all\r\n");
    assert_string_equal(RUN(acl, "GETUSER", "default"),
                        "*12\r\n"
                        "$5\r\nflags\r\n*2\r\n$2\r\non\r\n$6\r\nnopass\r\n"
                        "$9\r\npasswords\r\n*0\r\n"
                        "$8\r\ncommands\r\n$5\r\n+@all\r\n"
                        "$4\r\nkeys\r\n$2\r\n~*\r\n"
                        "$8\r\nchannels\r\n$2\r\n&*\r\n"
                        "$9\r\nselectors\r\n*0\r\n");
    assert_int_equal(srv_acl_generation(acl), 0);
}

static void test_no_table_yet(void **state)
{
    (void)state;
    srv_acl *acl = srv_acl_new();
    assert_non_null(acl);
    const srv_acl_user *d = srv_acl_default(acl);
    /* No table: no command index exists, so none is allowed. */
    assert_int_equal(srv_acl_check_cmd(d, 0), -1);
    /* Unknown command names fail; categories are known without a table. */
    assert_string_equal(RUN(acl, "SETUSER", "u", "+get"),
                        "-ERR Error in ACL SETUSER modifier '+get': Unknown "
                        "command or category name in ACL\r\n");
    RUN_OK(acl, "SETUSER", "u", "on", "nopass", "+@read", "-@dangerous");
    /* The table arrives: every user's rules are replayed against it. */
    assert_int_equal(srv_acl_set_commands(acl, CMD_NAMES, CMD_CATS, NCMD), 0);
    const srv_acl_user *u = srv_acl_find(acl, "u");
    assert_int_equal(srv_acl_check_cmd(d, C_CONFIG), 0);
    assert_int_equal(srv_acl_check_cmd(u, C_GET), 0);
    assert_int_equal(srv_acl_check_cmd(u, C_MGET), 0);
    assert_int_equal(srv_acl_check_cmd(u, C_KEYS), -1);
    assert_int_equal(srv_acl_check_cmd(u, C_SET), -1);
    assert_int_equal(srv_acl_set_commands(acl, NULL, NULL, 1), CAIRN_EINVAL);
    const char *bad[] = {"get", ""};
    unsigned bc[] = {0, 0};
    assert_int_equal(srv_acl_set_commands(acl, bad, bc, 2), CAIRN_EINVAL);
    assert_int_equal(srv_acl_check_cmd(u, C_GET), 0); /* unchanged */
    srv_acl_free(acl);
    free(g_last);
    g_last = NULL;
}

static void test_requirepass(void **state)
{
    srv_acl *acl = *state;
    assert_int_equal(srv_acl_set_requirepass(acl, "secret"), 0);
    assert_false(srv_acl_default_nopass(acl));
    assert_true(auth(acl, "default", "secret"));
    assert_false(auth(acl, "default", "Secret"));
    assert_false(auth(acl, "default", ""));
    assert_string_equal(line_of(acl, "default"),
                        "user default on #" H_SECRET " ~* &* +@all");
    /* Replaces, not adds. */
    assert_int_equal(srv_acl_set_requirepass(acl, "p1"), 0);
    assert_false(auth(acl, "default", "secret"));
    assert_true(auth(acl, "default", "p1"));
    /* The on/off state is kept. */
    RUN_OK(acl, "SETUSER", "default", "off");
    assert_int_equal(srv_acl_set_requirepass(acl, "p2"), 0);
    assert_false(auth(acl, "default", "p2"));
    assert_false(srv_acl_default_nopass(acl));
    RUN_OK(acl, "SETUSER", "default", "on");
    assert_true(auth(acl, "default", "p2"));
    /* NULL: nopass again. */
    assert_int_equal(srv_acl_set_requirepass(acl, NULL), 0);
    assert_true(srv_acl_default_nopass(acl));
    assert_true(auth(acl, "default", "whatever"));
    assert_string_equal(line_of(acl, "default"),
                        "user default on nopass ~* &* +@all");
    /* off + nopass: connections do not start authenticated. */
    RUN_OK(acl, "SETUSER", "default", "off");
    assert_false(srv_acl_default_nopass(acl));
    assert_false(auth(acl, "default", "x"));
}

/* ------------------------------------------------------------ SETUSER */

static void test_setuser_new_user(void **state)
{
    srv_acl *acl = *state;
    RUN_OK(acl, "SETUSER", "alice");
    assert_string_equal(line_of(acl, "alice"),
                        "user alice off resetchannels -@all");
    const srv_acl_user *a = srv_acl_find(acl, "alice");
    assert_non_null(a);
    assert_false(srv_acl_user_enabled(a));
    for (size_t i = 0; i < NCMD; i++)
        assert_int_equal(srv_acl_check_cmd(a, i), -1);
    assert_int_equal(key_ok(a, "k"), -1);
    assert_false(auth(acl, "alice", ""));
    /* SETUSER on an existing user adds to it; the object stays the same. */
    RUN_OK(acl, "SETUSER", "alice", "on", "nopass");
    assert_ptr_equal(srv_acl_find(acl, "alice"), a);
    assert_true(auth(acl, "alice", "anything"));
    /* Empty rules do nothing. */
    RUN_OK(acl, "SETUSER", "alice", "", "");
    assert_string_equal(line_of(acl, "alice"),
                        "user alice on nopass resetchannels -@all");
}

static void test_setuser_passwords(void **state)
{
    srv_acl *acl = *state;
    RUN_OK(acl, "SETUSER", "bob", "on", ">p1", ">p2", ">p1");
    assert_string_equal(line_of(acl, "bob"),
                        "user bob on #" H_P1 " #" H_P2
                        " resetchannels -@all");
    assert_true(auth(acl, "bob", "p1"));
    assert_true(auth(acl, "bob", "p2"));
    assert_false(auth(acl, "bob", "p3"));
    assert_false(auth(acl, "bob", ""));
    /* <pass removes one; removing it again is an error. */
    RUN_OK(acl, "SETUSER", "bob", "<p1");
    assert_false(auth(acl, "bob", "p1"));
    assert_true(auth(acl, "bob", "p2"));
    assert_string_equal(RUN(acl, "SETUSER", "bob", "<p1"),
                        "-ERR Error in ACL SETUSER modifier '<p1': The "
                        "password you are trying to remove from the user "
                        "does not exist\r\n");
    /* #hash adds, !hash removes, both validated. */
    RUN_OK(acl, "SETUSER", "bob", "#" H_P3);
    assert_true(auth(acl, "bob", "p3"));
    RUN_OK(acl, "SETUSER", "bob", "!" H_P3);
    assert_false(auth(acl, "bob", "p3"));
    assert_string_equal(RUN(acl, "SETUSER", "bob", "!" H_P3),
                        "-ERR Error in ACL SETUSER modifier '!" H_P3
                        "': The password you are trying to remove from the "
                        "user does not exist\r\n");
    static const char *const bad_hashes[] = {
        "#" "2BB80D537B1DA3E38BD30361AA855686BDE0EACD7162FEF6A25FE97BF527A25B",
        "#" "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25",
        "#" "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25bb",
        "#" "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25g",
        "#",
        "!xyz",
    };
    for (size_t i = 0; i < sizeof bad_hashes / sizeof *bad_hashes; i++) {
        char want[256];
        snprintf(want, sizeof want,
                 "-ERR Error in ACL SETUSER modifier '%s': The password hash "
                 "must be exactly 64 characters and contain only lowercase "
                 "hexadecimal characters\r\n",
                 bad_hashes[i]);
        assert_string_equal(RUN(acl, "SETUSER", "bob", bad_hashes[i]), want);
    }
    assert_string_equal(line_of(acl, "bob"),
                        "user bob on #" H_P2 " resetchannels -@all");
    /* nopass drops the passwords; a new password drops nopass. */
    RUN_OK(acl, "SETUSER", "bob", "nopass");
    assert_string_equal(line_of(acl, "bob"),
                        "user bob on nopass resetchannels -@all");
    assert_true(auth(acl, "bob", "p1"));
    RUN_OK(acl, "SETUSER", "bob", ">secret");
    assert_false(auth(acl, "bob", "p1"));
    assert_true(auth(acl, "bob", "secret"));
    RUN_OK(acl, "SETUSER", "bob", "nopass", "#" H_P1);
    assert_string_equal(line_of(acl, "bob"),
                        "user bob on #" H_P1 " resetchannels -@all");
    /* resetpass: neither passwords nor nopass, so no AUTH works. */
    RUN_OK(acl, "SETUSER", "bob", "resetpass");
    assert_string_equal(line_of(acl, "bob"),
                        "user bob on resetchannels -@all");
    assert_false(auth(acl, "bob", "p1"));
    assert_false(auth(acl, "bob", ""));
    RUN_OK(acl, "SETUSER", "bob", "nopass", "resetpass");
    assert_false(auth(acl, "bob", ""));
    /* An empty password and a binary one. */
    const uint8_t *args[] = {(const uint8_t *)"SETUSER", (const uint8_t *)"bob",
                             (const uint8_t *)">", (const uint8_t *)">a\0b"};
    const size_t lens[] = {7, 3, 1, 4};
    assert_string_equal(run_bin(acl, NULL, 2, 4, args, lens), "+OK\r\n");
    assert_string_equal(line_of(acl, "bob"),
                        "user bob on #" H_EMPTY " #" H_ANULB
                        " resetchannels -@all");
    assert_true(auth(acl, "bob", ""));
    assert_non_null(srv_acl_auth(acl, "bob", (const uint8_t *)"a\0b", 3));
    assert_null(srv_acl_auth(acl, "bob", (const uint8_t *)"a\0c", 3));
    assert_false(auth(acl, "bob", "a"));
}

static void test_setuser_keys_channels(void **state)
{
    srv_acl *acl = *state;
    RUN_OK(acl, "SETUSER", "k", "~foo:*", "~bar", "~foo:*", "&news.*");
    assert_string_equal(line_of(acl, "k"),
                        "user k off ~foo:* ~bar resetchannels &news.* -@all");
    const srv_acl_user *u = srv_acl_find(acl, "k");
    assert_int_equal(key_ok(u, "foo:1"), 0);
    assert_int_equal(key_ok(u, "foo:"), 0);
    assert_int_equal(key_ok(u, "bar"), 0);
    assert_int_equal(key_ok(u, "bar2"), -1);
    assert_int_equal(key_ok(u, "fo"), -1);
    assert_int_equal(key_ok(u, ""), -1);
    /* allkeys replaces the patterns; adding one after it is an error. */
    RUN_OK(acl, "SETUSER", "k", "allkeys");
    assert_string_equal(line_of(acl, "k"),
                        "user k off ~* resetchannels &news.* -@all");
    assert_int_equal(key_ok(u, "anything"), 0);
    assert_int_equal(key_ok(u, ""), 0);
    assert_string_equal(
        RUN(acl, "SETUSER", "k", "~x"),
        "-ERR Error in ACL SETUSER modifier '~x': Adding a pattern after the "
        "* pattern (or the 'allkeys' flag) is not valid and does not have any "
        "effect. Try 'resetkeys' to start with an empty list of patterns\r\n");
    RUN_OK(acl, "SETUSER", "k", "~*"); /* "~*" is allkeys itself */
    RUN_OK(acl, "SETUSER", "k", "resetkeys", "~x");
    assert_string_equal(line_of(acl, "k"),
                        "user k off ~x resetchannels &news.* -@all");
    assert_int_equal(key_ok(u, "x"), 0);
    assert_int_equal(key_ok(u, "anything"), -1);
    RUN_OK(acl, "SETUSER", "k", "resetkeys");
    assert_int_equal(key_ok(u, "x"), -1);
    RUN_OK(acl, "SETUSER", "k", "~x", "~*");
    assert_int_equal(key_ok(u, "anything"), 0);
    /* Channels. */
    RUN_OK(acl, "SETUSER", "k", "allchannels");
    assert_string_equal(line_of(acl, "k"), "user k off ~* &* -@all");
    assert_string_equal(
        RUN(acl, "SETUSER", "k", "&y"),
        "-ERR Error in ACL SETUSER modifier '&y': Adding a pattern after the "
        "* pattern (or the 'allchannels' flag) is not valid and does not have "
        "any effect. Try 'resetchannels' to start with an empty list of "
        "channels\r\n");
    RUN_OK(acl, "SETUSER", "k", "resetchannels", "&a", "&b");
    assert_string_equal(line_of(acl, "k"),
                        "user k off ~* resetchannels &a &b -@all");
    RUN_OK(acl, "SETUSER", "k", "&*");
    assert_string_equal(line_of(acl, "k"), "user k off ~* &* -@all");
    /* Patterns with blanks cannot be printed on one line: syntax errors. */
    assert_string_equal(RUN(acl, "SETUSER", "k", "resetkeys", "~a b"),
                        "-ERR Error in ACL SETUSER modifier '~a b': Syntax "
                        "error\r\n");
    assert_string_equal(RUN(acl, "SETUSER", "k", "resetchannels", "&a\tb"),
                        "-ERR Error in ACL SETUSER modifier '&a\tb': Syntax "
                        "error\r\n");
    assert_int_equal(key_ok(u, "anything"), 0); /* unchanged */
    /* A key with a NUL byte against a pattern. */
    RUN_OK(acl, "SETUSER", "k", "resetkeys", "~a?b");
    assert_int_equal(srv_acl_check_key(u, (const uint8_t *)"a\0b", 3), 0);
    assert_int_equal(srv_acl_check_key(u, (const uint8_t *)"a\0c", 3), -1);
}

static void test_setuser_commands(void **state)
{
    srv_acl *acl = *state;
    RUN_OK(acl, "SETUSER", "c", "+get", "+SET");
    assert_string_equal(cmds_of(acl, "c"), "-@all +get +set");
    const srv_acl_user *u = srv_acl_find(acl, "c");
    assert_int_equal(srv_acl_check_cmd(u, C_GET), 0);
    assert_int_equal(srv_acl_check_cmd(u, C_SET), 0);
    assert_int_equal(srv_acl_check_cmd(u, C_DEL), -1);
    assert_int_equal(srv_acl_check_cmd(u, C_MGET), -1);
    /* A later rule for the same name replaces the earlier one. */
    RUN_OK(acl, "SETUSER", "c", "-get");
    assert_string_equal(cmds_of(acl, "c"), "-@all +set -get");
    assert_int_equal(srv_acl_check_cmd(u, C_GET), -1);
    /* Categories (case-insensitive, shown lowercase). */
    RUN_OK(acl, "SETUSER", "c", "nocommands", "+@READ");
    assert_string_equal(cmds_of(acl, "c"), "-@all +@read");
    assert_int_equal(srv_acl_check_cmd(u, C_GET), 0);
    assert_int_equal(srv_acl_check_cmd(u, C_MGET), 0);
    assert_int_equal(srv_acl_check_cmd(u, C_KEYS), 0);
    assert_int_equal(srv_acl_check_cmd(u, C_SET), -1);
    assert_int_equal(srv_acl_check_cmd(u, C_PING), -1);
    RUN_OK(acl, "SETUSER", "c", "-@dangerous", "-mget", "+ping");
    assert_string_equal(cmds_of(acl, "c"),
                        "-@all +@read -@dangerous -mget +ping");
    assert_int_equal(srv_acl_check_cmd(u, C_KEYS), -1);
    assert_int_equal(srv_acl_check_cmd(u, C_MGET), -1);
    assert_int_equal(srv_acl_check_cmd(u, C_GET), 0);
    assert_int_equal(srv_acl_check_cmd(u, C_PING), 0);
    /* Re-adding a category re-grants its commands, whatever came between. */
    RUN_OK(acl, "SETUSER", "c", "+@read");
    assert_string_equal(cmds_of(acl, "c"),
                        "-@all -@dangerous -mget +ping +@read");
    assert_int_equal(srv_acl_check_cmd(u, C_KEYS), 0);
    assert_int_equal(srv_acl_check_cmd(u, C_MGET), 0);
    assert_int_equal(srv_acl_check_cmd(u, C_FLUSHALL), -1);
    /* allcommands / +@all: everything, rules cleared; then subtract. */
    RUN_OK(acl, "SETUSER", "c", "allcommands");
    assert_string_equal(cmds_of(acl, "c"), "+@all");
    for (size_t i = 0; i < NCMD; i++)
        assert_int_equal(srv_acl_check_cmd(u, i), 0);
    RUN_OK(acl, "SETUSER", "c", "-@dangerous", "-set", "+keys");
    assert_string_equal(cmds_of(acl, "c"), "+@all -@dangerous -set +keys");
    assert_int_equal(srv_acl_check_cmd(u, C_CONFIG), -1);
    assert_int_equal(srv_acl_check_cmd(u, C_FLUSHALL), -1);
    assert_int_equal(srv_acl_check_cmd(u, C_KEYS), 0);
    assert_int_equal(srv_acl_check_cmd(u, C_SET), -1);
    assert_int_equal(srv_acl_check_cmd(u, C_GET), 0);
    RUN_OK(acl, "SETUSER", "c", "+@ALL");
    assert_string_equal(cmds_of(acl, "c"), "+@all");
    RUN_OK(acl, "SETUSER", "c", "-@all");
    assert_string_equal(cmds_of(acl, "c"), "-@all");
    for (size_t i = 0; i < NCMD; i++)
        assert_int_equal(srv_acl_check_cmd(u, i), -1);
    /* A command in two categories: the last rule touching it wins. */
    RUN_OK(acl, "SETUSER", "c", "+@string", "-@write");
    assert_int_equal(srv_acl_check_cmd(u, C_GET), 0);
    assert_int_equal(srv_acl_check_cmd(u, C_MGET), 0);
    assert_int_equal(srv_acl_check_cmd(u, C_SET), -1);
    RUN_OK(acl, "SETUSER", "c", "+@string");
    assert_string_equal(cmds_of(acl, "c"), "-@all -@write +@string");
    assert_int_equal(srv_acl_check_cmd(u, C_SET), 0);
    assert_int_equal(srv_acl_check_cmd(u, C_DEL), -1);
    /* Unknown names and categories. */
    assert_string_equal(RUN(acl, "SETUSER", "c", "+nosuch"),
                        "-ERR Error in ACL SETUSER modifier '+nosuch': "
                        "Unknown command or category name in ACL\r\n");
    assert_string_equal(RUN(acl, "SETUSER", "c", "-@nosuch"),
                        "-ERR Error in ACL SETUSER modifier '-@nosuch': "
                        "Unknown command or category name in ACL\r\n");
    assert_string_equal(RUN(acl, "SETUSER", "c", "+"),
                        "-ERR Error in ACL SETUSER modifier '+': "
                        "Unknown command or category name in ACL\r\n");
    assert_string_equal(RUN(acl, "SETUSER", "c", "+@"),
                        "-ERR Error in ACL SETUSER modifier '+@': "
                        "Unknown command or category name in ACL\r\n");
    assert_string_equal(cmds_of(acl, "c"), "-@all -@write +@string");
}

static void test_setuser_reset_and_keywords(void **state)
{
    srv_acl *acl = *state;
    RUN_OK(acl, "SETUSER", "r", "ON", ">p1", "~k*", "&ch", "+@all",
           "AllKeys");
    assert_string_equal(line_of(acl, "r"),
                        "user r on #" H_P1 " ~* resetchannels &ch +@all");
    RUN_OK(acl, "SETUSER", "r", "reset");
    /* As Redis 7.0: reset implies sanitize-payload. */
    assert_string_equal(line_of(acl, "r"),
                        "user r off sanitize-payload resetchannels -@all");
    const srv_acl_user *u = srv_acl_find(acl, "r");
    assert_int_equal(srv_acl_check_cmd(u, C_GET), -1);
    assert_int_equal(key_ok(u, "k1"), -1);
    assert_false(auth(acl, "r", "p1"));
    /* reset in the middle: the rules before it are wiped. */
    RUN_OK(acl, "SETUSER", "r", "on", "nopass", "+get", "reset", "on", "+set",
           "~a");
    assert_string_equal(line_of(acl, "r"),
                        "user r on sanitize-payload ~a resetchannels -@all "
                        "+set");
    /* The two sanitize keywords replace each other. */
    RUN_OK(acl, "SETUSER", "s", "skip-sanitize-payload", "on");
    assert_string_equal(line_of(acl, "s"),
                        "user s on skip-sanitize-payload resetchannels -@all");
    RUN_OK(acl, "SETUSER", "s", "sanitize-payload", "off");
    assert_string_equal(line_of(acl, "s"),
                        "user s off sanitize-payload resetchannels -@all");
    assert_false(auth(acl, "r", ""));
    assert_int_equal(srv_acl_check_cmd(u, C_GET), -1);
    assert_int_equal(srv_acl_check_cmd(u, C_SET), 0);
    /* off keeps everything else. */
    RUN_OK(acl, "SETUSER", "r", ">p2", "off");
    assert_false(auth(acl, "r", "p2"));
    assert_int_equal(srv_acl_check_cmd(u, C_SET), 0); /* held clients go on */
    RUN_OK(acl, "SETUSER", "r", "on");
    assert_true(auth(acl, "r", "p2"));
    /* Anything else is a syntax error. */
    static const char *const bad[] = {"onn",       "of",    "nopas",
                                      "sanitize",  "@read", "(+get ~x)",
                                      "%R~x",      "all",   "on off"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char want[256];
        snprintf(want, sizeof want,
                 "-ERR Error in ACL SETUSER modifier '%s': Syntax error\r\n",
                 bad[i]);
        assert_string_equal(RUN(acl, "SETUSER", "r", bad[i]), want);
    }
}

static void test_bad_rule_changes_nothing(void **state)
{
    srv_acl *acl = *state;
    RUN_OK(acl, "SETUSER", "alice", "on", ">p1", "~a:*", "+get");
    char before[4096];
    snprintf(before, sizeof before, "%s", RUN(acl, "LIST"));
    /* Good rules before the bad one are not applied either. */
    assert_string_equal(RUN(acl, "SETUSER", "alice", "off", "nopass", "reset",
                            "+set", "allkeys", "bogus", "+del"),
                        "-ERR Error in ACL SETUSER modifier 'bogus': Syntax "
                        "error\r\n");
    assert_string_equal(RUN(acl, "LIST"), before);
    assert_string_equal(RUN(acl, "SETUSER", "alice", "resetpass", "+nosuch"),
                        "-ERR Error in ACL SETUSER modifier '+nosuch': "
                        "Unknown command or category name in ACL\r\n");
    assert_string_equal(RUN(acl, "SETUSER", "alice", ">p2", "<p3"),
                        "-ERR Error in ACL SETUSER modifier '<p3': The "
                        "password you are trying to remove from the user "
                        "does not exist\r\n");
    assert_string_equal(RUN(acl, "LIST"), before);
    const srv_acl_user *a = srv_acl_find(acl, "alice");
    assert_true(auth(acl, "alice", "p1"));
    assert_false(auth(acl, "alice", "p2"));
    assert_int_equal(srv_acl_check_cmd(a, C_GET), 0);
    assert_int_equal(srv_acl_check_cmd(a, C_SET), -1);
    assert_int_equal(key_ok(a, "a:1"), 0);
    assert_int_equal(key_ok(a, "b"), -1);
    /* A bad rule on a new user: the user is not created. */
    assert_string_equal(RUN(acl, "SETUSER", "newbie", "on", "+@nope"),
                        "-ERR Error in ACL SETUSER modifier '+@nope': "
                        "Unknown command or category name in ACL\r\n");
    assert_null(srv_acl_find(acl, "newbie"));
    assert_string_equal(RUN(acl, "LIST"), before);
    /* Bad user names. */
    static const char *const names[] = {"a b", "a\tb", "a\nb", " ", "x\r"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        assert_string_equal(RUN(acl, "SETUSER", names[i], "on"),
                            "-ERR Usernames can't contain spaces or null "
                            "characters\r\n");
    const uint8_t *args[] = {(const uint8_t *)"SETUSER",
                             (const uint8_t *)"a\0b"};
    const size_t lens[] = {7, 3};
    assert_string_equal(run_bin(acl, NULL, 2, 2, args, lens),
                        "-ERR Usernames can't contain spaces or null "
                        "characters\r\n");
    assert_string_equal(RUN(acl, "LIST"), before);
    /* The error text stops at a NUL and has no CR/LF of the rule. */
    const uint8_t *args2[] = {(const uint8_t *)"SETUSER",
                              (const uint8_t *)"alice",
                              (const uint8_t *)"x\r\ny\0z"};
    const size_t lens2[] = {7, 5, 6};
    assert_string_equal(run_bin(acl, NULL, 2, 3, args2, lens2),
                        "-ERR Error in ACL SETUSER modifier 'x  y': Syntax "
                        "error\r\n");
}

/* ------------------------------------------------------------ AUTH */

static void test_auth(void **state)
{
    srv_acl *acl = *state;
    RUN_OK(acl, "SETUSER", "on1", "on", ">p1");
    RUN_OK(acl, "SETUSER", "off1", "off", ">p1");
    RUN_OK(acl, "SETUSER", "np", "on", "nopass");
    RUN_OK(acl, "SETUSER", "nopw", "on");
    const srv_acl_user *u = srv_acl_auth(acl, "on1", (const uint8_t *)"p1", 2);
    assert_non_null(u);
    assert_ptr_equal(u, srv_acl_find(acl, "on1"));
    assert_string_equal(srv_acl_user_name(u), "on1");
    assert_false(auth(acl, "on1", "p2"));
    assert_false(auth(acl, "on1", "p"));
    assert_false(auth(acl, "on1", "p1 "));
    assert_false(auth(acl, "on1", ""));
    assert_false(auth(acl, "ON1", "p1")); /* names are case-sensitive */
    assert_false(auth(acl, "off1", "p1"));
    assert_true(auth(acl, "np", "x"));
    assert_true(auth(acl, "np", ""));
    assert_false(auth(acl, "nopw", ""));
    assert_false(auth(acl, "nopw", "x"));
    assert_false(auth(acl, "ghost", "p1"));
    assert_null(srv_acl_auth(acl, NULL, NULL, 0));
    /* The server's WRONGPASS text is Redis's. */
    assert_string_equal(SRV_ACL_ERR_WRONGPASS,
                        "WRONGPASS invalid username-password pair or user is "
                        "disabled.");
    /* A long password. */
    char *big = malloc(100000);
    assert_non_null(big);
    memset(big, 'z', 99999);
    big[99999] = '\0';
    size_t bl = strlen(big) + 2;
    char *rule = malloc(bl);
    assert_non_null(rule);
    snprintf(rule, bl, ">%s", big);
    RUN_OK(acl, "SETUSER", "on1", rule);
    assert_true(auth(acl, "on1", big));
    big[5] = 'y';
    assert_false(auth(acl, "on1", big));
    free(rule);
    free(big);
}

/* ------------------------------------------------------------ checks */

static void test_set_commands_again(void **state)
{
    srv_acl *acl = *state;
    RUN_OK(acl, "SETUSER", "u", "+@read", "+config", "-get");
    const srv_acl_user *u = srv_acl_find(acl, "u");
    assert_int_equal(srv_acl_check_cmd(u, C_CONFIG), 0);
    /* A new table: "config" left, "get" moved, "strlen" joined @read. */
    static const char *const names[] = {"strlen", "get", "keys"};
    static const unsigned cats[] = {SRV_ACL_CAT_READ | SRV_ACL_CAT_STRING,
                                    SRV_ACL_CAT_READ | SRV_ACL_CAT_STRING,
                                    SRV_ACL_CAT_READ | SRV_ACL_CAT_KEYSPACE};
    assert_int_equal(srv_acl_set_commands(acl, names, cats, 3), 0);
    assert_string_equal(cmds_of(acl, "u"), "-@all +@read -get");
    assert_int_equal(srv_acl_check_cmd(u, 0), 0);  /* strlen */
    assert_int_equal(srv_acl_check_cmd(u, 1), -1); /* get */
    assert_int_equal(srv_acl_check_cmd(u, 2), 0);  /* keys */
    assert_int_equal(srv_acl_check_cmd(u, 3), -1); /* past the table */
    assert_int_equal(srv_acl_check_cmd(srv_acl_default(acl), 2), 0);
    assert_string_equal(RUN(acl, "SETUSER", "u", "+config"),
                        "-ERR Error in ACL SETUSER modifier '+config': "
                        "Unknown command or category name in ACL\r\n");
    assert_string_equal(RUN(acl, "CAT", "read"),
                        "*3\r\n$6\r\nstrlen\r\n$3\r\nget\r\n$4\r\nkeys\r\n");
    /* An empty table. */
    assert_int_equal(srv_acl_set_commands(acl, NULL, NULL, 0), 0);
    assert_int_equal(srv_acl_check_cmd(u, 0), -1);
    assert_int_equal(srv_acl_check_cmd(srv_acl_default(acl), 0), -1);
    assert_string_equal(cmds_of(acl, "u"), "-@all +@read");
}

typedef struct glob_case {
    const char *pat;
    const char *s;
    bool want;
} glob_case;

static void test_glob(void **state)
{
    (void)state;
    static const glob_case cases[] = {
        {"", "", true},
        {"", "a", false},
        {"*", "", false}, /* Redis: an empty subject matches only "" */
        {"*", "abc", true},
        {"**", "abc", true},
        {"a", "a", true},
        {"a", "A", false},
        {"a", "ab", false},
        {"ab", "a", false},
        {"a*", "a", true},
        {"a*", "abc", true},
        {"a*", "ba", false},
        {"*a", "bba", true},
        {"*a", "ab", false},
        {"a*b", "ab", true},
        {"a*b", "axxb", true},
        {"a*b", "axxbc", false},
        {"a*b*c", "abbbcbc", true},
        {"a*b*c", "abbbcb", false},
        {"*a*b*c*", "xxaxxbxxcxx", true},
        {"h?llo", "hello", true},
        {"h?llo", "hallo", true},
        {"h?llo", "hllo", false},
        {"?", "", false},
        {"?*", "a", true},
        {"??", "a", false},
        {"h[ae]llo", "hello", true},
        {"h[ae]llo", "hallo", true},
        {"h[ae]llo", "hillo", false},
        {"h[^e]llo", "hallo", true},
        {"h[^e]llo", "hello", false},
        {"h[a-b]llo", "hbllo", true},
        {"h[a-b]llo", "hcllo", false},
        {"h[b-a]llo", "hallo", true}, /* a reversed range is swapped */
        {"[0-9][0-9]", "42", true},
        {"[0-9][0-9]", "4x", false},
        {"[^0-9]", "x", true},
        {"[^0-9]", "5", false},
        {"[a-]", "_", true}, /* "a-]" is the range ']'..'a', unterminated */
        {"[a-]", "-", false},
        {"[]", "]", false}, /* an empty set matches nothing */
        {"[^]", "x", true}, /* ... negated, anything */
        {"[abc", "b", true}, /* unterminated: runs to the end */
        {"[abc", "bx", false},
        {"x[a", "xa", true},
        {"*[ab", "xxb", true},
        {"[", "a", false},
        {"[\\]]", "]", true},
        {"[\\]]", "\\", false},
        {"[\\-a]", "-", true},
        {"[\\-a]", "b", false},
        {"\\*", "*", true},
        {"\\*", "a", false},
        {"a\\?", "a?", true},
        {"a\\?", "ab", false},
        {"\\[a]", "[a]", true},
        {"\\[a]", "a", false},
        {"a\\", "a\\", true}, /* a trailing backslash is itself */
        {"a\\", "a", false},
        {"\\\\", "\\", true},
        {"\xc3*", "\xc3\xa9", true},
        {"[\x80-\xff]", "\xe9", true},
        {"[\x80-\xff]", "e", false},
        {"user:*:name", "user:42:name", true},
        {"user:*:name", "user:42:names", false},
        {"*:*", "a:b:c", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const glob_case *c = &cases[i];
        bool got = srv_acl_glob_match((const uint8_t *)c->pat, strlen(c->pat),
                                      (const uint8_t *)c->s, strlen(c->s));
        if (got != c->want)
            fail_msg("pattern \"%s\" vs \"%s\": got %d", c->pat, c->s, got);
    }
    /* Binary: NUL bytes in both. */
    assert_true(srv_acl_glob_match((const uint8_t *)"a\0*", 3,
                                   (const uint8_t *)"a\0bc", 4));
    assert_false(srv_acl_glob_match((const uint8_t *)"a\0*", 3,
                                    (const uint8_t *)"a\1bc", 4));
    /* A pathological pattern stays fast (no exponential backtracking). */
    char pat[201], s[20001];
    for (int i = 0; i < 100; i++) {
        pat[2 * i] = 'a';
        pat[2 * i + 1] = '*';
    }
    pat[199] = 'b';
    pat[200] = '\0';
    memset(s, 'a', 20000);
    s[20000] = '\0';
    clock_t t0 = clock();
    assert_false(srv_acl_glob_match((const uint8_t *)pat, 200,
                                    (const uint8_t *)s, 20000));
    s[19999] = 'b';
    assert_true(srv_acl_glob_match((const uint8_t *)pat, 200,
                                   (const uint8_t *)s, 20000));
    assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 5.0);
}

/* ------------------------------------------------------------ replies */

static void test_getuser_replies(void **state)
{
    srv_acl *acl = *state;
    RUN_OK(acl, "SETUSER", "g", "on", ">p1", "~a:*", "~b", "&c", "+@read",
           "-keys");
    assert_string_equal(RUN(acl, "GETUSER", "g"),
                        "*12\r\n"
                        "$5\r\nflags\r\n*1\r\n$2\r\non\r\n"
                        "$9\r\npasswords\r\n*1\r\n$64\r\n" H_P1 "\r\n"
                        "$8\r\ncommands\r\n$18\r\n-@all +@read -keys\r\n"
                        "$4\r\nkeys\r\n$7\r\n~a:* ~b\r\n"
                        "$8\r\nchannels\r\n$2\r\n&c\r\n"
                        "$9\r\nselectors\r\n*0\r\n");
    assert_string_equal(RUN3(acl, "GETUSER", "g"),
                        "%6\r\n"
                        "$5\r\nflags\r\n~1\r\n$2\r\non\r\n"
                        "$9\r\npasswords\r\n*1\r\n$64\r\n" H_P1 "\r\n"
                        "$8\r\ncommands\r\n$18\r\n-@all +@read -keys\r\n"
                        "$4\r\nkeys\r\n$7\r\n~a:* ~b\r\n"
                        "$8\r\nchannels\r\n$2\r\n&c\r\n"
                        "$9\r\nselectors\r\n*0\r\n");
    RUN_OK(acl, "SETUSER", "e");
    assert_string_equal(RUN(acl, "GETUSER", "e"),
                        "*12\r\n"
                        "$5\r\nflags\r\n*1\r\n$3\r\noff\r\n"
                        "$9\r\npasswords\r\n*0\r\n"
                        "$8\r\ncommands\r\n$5\r\n-@all\r\n"
                        "$4\r\nkeys\r\n$0\r\n\r\n"
                        "$8\r\nchannels\r\n$0\r\n\r\n"
                        "$9\r\nselectors\r\n*0\r\n");
    assert_string_equal(RUN(acl, "GETUSER", "nobody"), "$-1\r\n");
    assert_string_equal(RUN3(acl, "GETUSER", "nobody"), "_\r\n");
    assert_string_equal(RUN(acl, "GETUSER", "G"), "$-1\r\n");
}

static void test_list_users_deluser_whoami(void **state)
{
    srv_acl *acl = *state;
    RUN_OK(acl, "SETUSER", "zed", "on", "nopass", "allkeys", "+get");
    RUN_OK(acl, "SETUSER", "alice", "on", "#" H_P1, "~x", "allchannels");
    RUN_OK(acl, "SETUSER", "Bob");
    assert_string_equal(RUN(acl, "USERS"),
                        "*4\r\n$3\r\nBob\r\n$5\r\nalice\r\n$7\r\ndefault\r\n"
                        "$3\r\nzed\r\n");
    size_t n;
    char **v = bulks(RUN(acl, "LIST"), &n);
    assert_int_equal(n, 4);
    assert_string_equal(v[0], "user Bob off resetchannels -@all");
    assert_string_equal(v[1], "user alice on #" H_P1 " ~x &* -@all");
    assert_string_equal(v[2], "user default on nopass ~* &* +@all");
    assert_string_equal(v[3], "user zed on nopass ~* resetchannels -@all +get");
    bulks_free(v, n);
    assert_string_equal(RUN3(acl, "USERS"),
                        "*4\r\n$3\r\nBob\r\n$5\r\nalice\r\n$7\r\ndefault\r\n"
                        "$3\r\nzed\r\n");
    /* DELUSER: "default" refused before anything is deleted. */
    assert_string_equal(RUN(acl, "DELUSER", "zed", "default"),
                        "-ERR The 'default' user cannot be removed\r\n");
    assert_non_null(srv_acl_find(acl, "zed"));
    assert_int_equal(srv_acl_generation(acl), 0);
    assert_string_equal(RUN(acl, "DELUSER", "nobody"), ":0\r\n");
    assert_int_equal(srv_acl_generation(acl), 0);
    assert_string_equal(RUN(acl, "DELUSER", "zed", "nobody", "zed", "Bob"),
                        ":2\r\n");
    assert_int_equal(srv_acl_generation(acl), 1);
    assert_null(srv_acl_find(acl, "zed"));
    assert_null(srv_acl_find(acl, "Bob"));
    assert_string_equal(RUN(acl, "USERS"),
                        "*2\r\n$5\r\nalice\r\n$7\r\ndefault\r\n");
    assert_false(auth(acl, "zed", ""));
    /* "Default" is just another name. */
    RUN_OK(acl, "SETUSER", "Default");
    assert_string_equal(RUN(acl, "DELUSER", "Default"), ":1\r\n");
    assert_int_equal(srv_acl_generation(acl), 2);
    /* WHOAMI. */
    assert_string_equal(
        run_v(acl, "alice", 2, (const char *[]){"WHOAMI", NULL}),
        "$5\r\nalice\r\n");
    assert_string_equal(RUN(acl, "whoami"), "$-1\r\n");
    assert_string_equal(RUN3(acl, "WhoAmI"), "_\r\n");
}

static void test_cat_help_errors(void **state)
{
    srv_acl *acl = *state;
    size_t n;
    char **v = bulks(RUN(acl, "CAT"), &n);
    assert_int_equal(n, SRV_ACL_CAT_COUNT);
    static const char *const want[] = {
        "keyspace", "read",        "write",     "set",        "sortedset",
        "list",     "hash",        "string",    "bitmap",     "hyperloglog",
        "geo",      "stream",      "pubsub",    "admin",      "fast",
        "slow",     "blocking",    "dangerous", "connection", "transaction",
        "scripting", "timeseries"};
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(v[i], want[i]);
        assert_string_equal(srv_acl_category_name(i), want[i]);
        assert_int_equal(srv_acl_category_flag(want[i], strlen(want[i])),
                         1u << i);
    }
    bulks_free(v, n);
    assert_null(srv_acl_category_name(SRV_ACL_CAT_COUNT));
    assert_int_equal(srv_acl_category_flag("READ", 4), SRV_ACL_CAT_READ);
    assert_int_equal(srv_acl_category_flag("all", 3), 0);
    assert_int_equal(srv_acl_category_flag("rea", 3), 0);
    assert_string_equal(RUN(acl, "CAT", "READ"),
                        "*3\r\n$3\r\nget\r\n$4\r\nkeys\r\n$4\r\nmget\r\n");
    assert_string_equal(RUN(acl, "CAT", "dangerous"),
                        "*3\r\n$4\r\nkeys\r\n$8\r\nflushall\r\n"
                        "$6\r\nconfig\r\n");
    assert_string_equal(RUN(acl, "CAT", "geo"), "*0\r\n");
    assert_string_equal(RUN(acl, "CAT", "nope"),
                        "-ERR Unknown category 'nope'\r\n");
    assert_string_equal(RUN(acl, "CAT", "all"),
                        "-ERR Unknown category 'all'\r\n");
    assert_string_equal(RUN(acl, "CAT", "a", "b"),
                        "-ERR unknown subcommand or wrong number of arguments "
                        "for 'CAT'. Try ACL HELP.\r\n");
    /* HELP: an array of simple strings. */
    const char *h = RUN(acl, "HELP");
    assert_true(!strncmp(h, "*17\r\n+ACL <subcommand> [<arg> [value] [opt] "
                            "...]. Subcommands are:\r\n",
                         strlen("*17\r\n+ACL <subcommand> [<arg> [value] [opt] "
                                "...]. Subcommands are:\r\n")));
    assert_non_null(
        strstr(h, "\r\n+SETUSER <username> <rule> [<rule> ...]\r\n"));
    size_t lines = 0;
    for (const char *p = h; (p = strstr(p, "\r\n+")); p += 3)
        lines++;
    assert_int_equal(lines, 17);
    /* Errors. */
    assert_string_equal(RUN(acl, "nosuch"),
                        "-ERR unknown subcommand 'nosuch'. Try ACL HELP.\r\n");
    assert_string_equal(RUN(acl, "LOAD"),
                        "-ERR unknown subcommand 'LOAD'. Try ACL HELP.\r\n");
    assert_string_equal(RUN(acl, "SETUSER"),
                        "-ERR wrong number of arguments for 'acl|setuser' "
                        "command\r\n");
    assert_string_equal(RUN(acl, "getuser"),
                        "-ERR wrong number of arguments for 'acl|getuser' "
                        "command\r\n");
    assert_string_equal(RUN(acl, "GETUSER", "a", "b"),
                        "-ERR wrong number of arguments for 'acl|getuser' "
                        "command\r\n");
    assert_string_equal(RUN(acl, "DELUSER"),
                        "-ERR wrong number of arguments for 'acl|deluser' "
                        "command\r\n");
    assert_string_equal(RUN(acl, "USERS", "x"),
                        "-ERR wrong number of arguments for 'acl|users' "
                        "command\r\n");
    assert_string_equal(RUN(acl, "LIST", "x"),
                        "-ERR wrong number of arguments for 'acl|list' "
                        "command\r\n");
    assert_string_equal(RUN(acl, "WHOAMI", "x"),
                        "-ERR wrong number of arguments for 'acl|whoami' "
                        "command\r\n");
    assert_string_equal(RUN(acl, "HELP", "x"),
                        "-ERR wrong number of arguments for 'acl|help' "
                        "command\r\n");
    cairn_resp_buf out;
    cairn_resp_init(&out, 2);
    const uint8_t *argv[] = {(const uint8_t *)"ACL"};
    const size_t argl[] = {3};
    srv_acl_command(acl, NULL, 1, argv, argl, &out);
    assert_int_equal(out.len,
                     strlen("-ERR wrong number of arguments for 'acl' "
                            "command\r\n"));
    assert_memory_equal(out.p,
                        "-ERR wrong number of arguments for 'acl' command\r\n",
                        out.len);
    cairn_resp_free(&out);
}

/* ------------------------------------------------------------ held users */

static void test_held_user(void **state)
{
    srv_acl *acl = *state;
    RUN_OK(acl, "SETUSER", "h", "on", ">p1", "~k", "+get");
    const srv_acl_user *u = srv_acl_auth(acl, "h", (const uint8_t *)"p1", 2);
    assert_non_null(u);
    srv_acl_user_retain(u); /* a client keeps it */
    /* Changes reach the held object. */
    RUN_OK(acl, "SETUSER", "h", "+set", "-get", "~j");
    assert_int_equal(srv_acl_check_cmd(u, C_SET), 0);
    assert_int_equal(srv_acl_check_cmd(u, C_GET), -1);
    assert_int_equal(key_ok(u, "j"), 0);
    /* A failed SETUSER does not. */
    assert_string_equal(RUN(acl, "SETUSER", "h", "-set", "oops"),
                        "-ERR Error in ACL SETUSER modifier 'oops': Syntax "
                        "error\r\n");
    assert_int_equal(srv_acl_check_cmd(u, C_SET), 0);
    /* Deleted: still readable, everything denied, generation moved. */
    uint64_t g = srv_acl_generation(acl);
    assert_string_equal(RUN(acl, "DELUSER", "h"), ":1\r\n");
    assert_int_equal(srv_acl_generation(acl), g + 1);
    assert_true(srv_acl_user_deleted(u));
    assert_string_equal(srv_acl_user_name(u), "h");
    assert_int_equal(srv_acl_check_cmd(u, C_SET), -1);
    assert_int_equal(key_ok(u, "j"), -1);
    /* A new user of the same name is another object. */
    RUN_OK(acl, "SETUSER", "h", "on", "nopass", "allcommands", "allkeys");
    const srv_acl_user *u2 = srv_acl_find(acl, "h");
    assert_non_null(u2);
    assert_ptr_not_equal(u2, u);
    assert_false(srv_acl_user_deleted(u2));
    assert_int_equal(srv_acl_check_cmd(u, C_SET), -1);
    assert_int_equal(srv_acl_check_cmd(u2, C_SET), 0);
    srv_acl_user_release(u); /* frees it (ASan checks) */
    /* Null users are denied, and retain / release ignore NULL. */
    assert_int_equal(srv_acl_check_cmd(NULL, 0), -1);
    assert_int_equal(srv_acl_check_key(NULL, (const uint8_t *)"k", 1), -1);
    srv_acl_user_retain(NULL);
    srv_acl_user_release(NULL);
}

static void test_held_user_outlives_store(void **state)
{
    (void)state;
    srv_acl *acl = srv_acl_new();
    assert_non_null(acl);
    assert_int_equal(srv_acl_set_commands(acl, CMD_NAMES, CMD_CATS, NCMD), 0);
    RUN_OK(acl, "SETUSER", "x", "on", "nopass", "+get");
    const srv_acl_user *u = srv_acl_auth(acl, "x", NULL, 0);
    const srv_acl_user *d = srv_acl_default(acl);
    assert_non_null(u);
    srv_acl_user_retain(u);
    srv_acl_user_retain(d);
    srv_acl_free(acl);
    /* The store is gone; the held users are deleted but valid. */
    assert_true(srv_acl_user_deleted(u));
    assert_true(srv_acl_user_deleted(d));
    assert_string_equal(srv_acl_user_name(u), "x");
    assert_int_equal(srv_acl_check_cmd(u, C_GET), -1);
    srv_acl_user_release(u);
    srv_acl_user_release(d);
    free(g_last);
    g_last = NULL;
}

/* ------------------------------------------------------------ many users */

static void test_many_users(void **state)
{
    srv_acl *acl = *state;
    enum { N = 1000 };
    char name[32], pw[40], pat[40];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "user%04d", (i * 7919) % N); /* shuffled */
        snprintf(pw, sizeof pw, ">pw%d", (i * 7919) % N);
        snprintf(pat, sizeof pat, "~k%d:*", (i * 7919) % N);
        RUN_OK(acl, "SETUSER", name, "on", pw, pat, "+@read", "-keys");
    }
    size_t n;
    char **v = bulks(RUN(acl, "USERS"), &n);
    assert_int_equal(n, N + 1);
    for (size_t i = 1; i < n; i++)
        assert_true(strcmp(v[i - 1], v[i]) < 0); /* sorted, no duplicates */
    bulks_free(v, n);
    v = bulks(RUN(acl, "LIST"), &n);
    assert_int_equal(n, N + 1);
    assert_string_equal(v[0], "user default on nopass ~* &* +@all");
    bulks_free(v, n);
    for (int i = 0; i < N; i += 97) {
        snprintf(name, sizeof name, "user%04d", i);
        snprintf(pw, sizeof pw, "pw%d", i);
        const srv_acl_user *u =
            srv_acl_auth(acl, name, (const uint8_t *)pw, strlen(pw));
        assert_non_null(u);
        snprintf(pw, sizeof pw, "pw%d", i + 1);
        assert_null(srv_acl_auth(acl, name, (const uint8_t *)pw, strlen(pw)));
        snprintf(pat, sizeof pat, "k%d:x", i);
        assert_int_equal(key_ok(u, pat), 0);
        snprintf(pat, sizeof pat, "k%d:x", i + 1);
        assert_int_equal(key_ok(u, pat), -1);
        assert_int_equal(srv_acl_check_cmd(u, C_GET), 0);
        assert_int_equal(srv_acl_check_cmd(u, C_KEYS), -1);
    }
    /* Hold a few across the deletion. */
    const srv_acl_user *held[4];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "user%04d", i * 250);
        held[i] = srv_acl_find(acl, name);
        assert_non_null(held[i]);
        srv_acl_user_retain(held[i]);
    }
    /* Delete in batches of up to 50 names per DELUSER. */
    uint64_t g = srv_acl_generation(acl);
    char names[50][32];
    const char *args[53];
    for (int i = 0; i < N; i += 50) {
        args[0] = "DELUSER";
        for (int j = 0; j < 50; j++) {
            snprintf(names[j], sizeof names[j], "user%04d", i + j);
            args[j + 1] = names[j];
        }
        args[51] = NULL;
        assert_string_equal(run_v(acl, NULL, 2, args), ":50\r\n");
    }
    assert_int_equal(srv_acl_generation(acl), g + N / 50);
    assert_string_equal(RUN(acl, "USERS"), "*1\r\n$7\r\ndefault\r\n");
    for (int i = 0; i < 4; i++) {
        assert_true(srv_acl_user_deleted(held[i]));
        assert_int_equal(srv_acl_check_cmd(held[i], C_GET), -1);
        srv_acl_user_release(held[i]);
    }
    /* And again, so freed slots are reused cleanly. */
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "again%d", i);
        RUN_OK(acl, "SETUSER", name, "on", "nopass");
    }
    v = bulks(RUN(acl, "USERS"), &n);
    assert_int_equal(n, N + 1);
    bulks_free(v, n);
    /* teardown frees the rest */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test(test_no_table_yet),
        cmocka_unit_test_setup_teardown(test_requirepass, setup, teardown),
        cmocka_unit_test_setup_teardown(test_setuser_new_user, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_setuser_passwords, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_setuser_keys_channels, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_setuser_commands, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_setuser_reset_and_keywords, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_rule_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_commands_again, setup,
                                        teardown),
        cmocka_unit_test(test_glob),
        cmocka_unit_test_setup_teardown(test_getuser_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_users_deluser_whoami, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cat_help_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_user, setup, teardown),
        cmocka_unit_test(test_held_user_outlives_store),
        cmocka_unit_test_setup_teardown(test_many_users, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
