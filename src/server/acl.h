/*
 * acl.h — the ACL user store of cairn-server (Redis 7 ACL basics): users with
 * an on/off switch, SHA-256 password hashes or nopass, key and channel glob
 * patterns, and allowed commands (by name and by category); AUTH checks, the
 * per-command and per-key checks, and the ACL command (SETUSER, GETUSER,
 * DELUSER, USERS, LIST, WHOAMI, CAT, HELP) replying through resp.h. No
 * sockets, no event loop: the server calls in.
 *
 * Commands. The server hands the store its command table once with
 * srv_acl_set_commands() (lowercase names, a category bitmask each); a
 * command is then named by its index in that table. A user's permissions are
 * a bitmap over those indexes: "+@cat" / "-@cat" set / clear the bits of the
 * commands in the category at the time the rule is applied, as Redis does.
 * The store also keeps each user's command rules in their normalized Redis
 * form ("+@all" or "-@all", then the later "+x" / "-@y" rules, a rule for the
 * same name replacing an earlier one), which ACL GETUSER / LIST show and which
 * is replayed if the table is set again.
 *
 * Which commands are checked is the server's business: Redis skips the ACL
 * check for commands allowed before AUTH (AUTH, HELLO, ...), and checks keys
 * only for commands that take keys.
 *
 * Users held by clients (the rule). srv_acl_auth() and srv_acl_default()
 * return a borrowed pointer, valid until the next call that can delete users
 * (srv_acl_command(), srv_acl_free()). A client that keeps its user calls
 * srv_acl_user_retain() and, when it is done with it (re-AUTH, disconnect),
 * srv_acl_user_release(). A user object is never reused for another user:
 *   - ACL SETUSER on an existing user changes it in place, so clients
 *     authenticated as it see the new permissions at their next command
 *     (Redis does the same).
 *   - ACL DELUSER takes the user out of the store and marks it deleted; it
 *     stays readable until its last holder releases it, and every check on a
 *     deleted user denies. Redis disconnects the clients of a deleted user:
 *     after srv_acl_command() the server compares srv_acl_generation() with
 *     the value it saw before, and when it changed, closes the clients whose
 *     user srv_acl_user_deleted(). A new user of the same name is a new
 *     object: its permissions never reach the old clients.
 *   - The "default" user cannot be deleted; srv_acl_default() is stable for
 *     the store's life.
 *   - srv_acl_free() releases the store's references only; users still
 *     retained stay valid (and deleted) until released, so the store and
 *     the clients may be freed in either order.
 *
 * Passwords are kept only as SHA-256 hashes (64 lowercase hex characters),
 * compared in constant time.
 *
 * Key patterns use Redis's glob (stringmatchlen): '*' any run of bytes, '?'
 * one byte, "[abc]" / "[a-z]" / "[^x]" sets (a reversed range is swapped; an
 * unterminated set runs to the end of the pattern), '\' escapes the next
 * byte, inside a set too. Case-sensitive, byte-wise; like Redis an empty
 * subject matches only an empty pattern ("~*", i.e. allkeys, still allows the
 * empty key name).
 *
 * Locking: none. The store and its users are used only from the server's
 * loop thread (AUTH, the ACL checks and the ACL command all run there).
 */
#ifndef CAIRN_SERVER_ACL_H
#define CAIRN_SERVER_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/resp.h"

/* Command categories, as in Redis 7 (ACL CAT lists them in this order),
 * then the one the RedisTimeSeries module adds. */
#define SRV_ACL_CAT_KEYSPACE (1u << 0)
#define SRV_ACL_CAT_READ (1u << 1)
#define SRV_ACL_CAT_WRITE (1u << 2)
#define SRV_ACL_CAT_SET (1u << 3)
#define SRV_ACL_CAT_SORTEDSET (1u << 4)
#define SRV_ACL_CAT_LIST (1u << 5)
#define SRV_ACL_CAT_HASH (1u << 6)
#define SRV_ACL_CAT_STRING (1u << 7)
#define SRV_ACL_CAT_BITMAP (1u << 8)
#define SRV_ACL_CAT_HYPERLOGLOG (1u << 9)
#define SRV_ACL_CAT_GEO (1u << 10)
#define SRV_ACL_CAT_STREAM (1u << 11)
#define SRV_ACL_CAT_PUBSUB (1u << 12)
#define SRV_ACL_CAT_ADMIN (1u << 13)
#define SRV_ACL_CAT_FAST (1u << 14)
#define SRV_ACL_CAT_SLOW (1u << 15)
#define SRV_ACL_CAT_BLOCKING (1u << 16)
#define SRV_ACL_CAT_DANGEROUS (1u << 17)
#define SRV_ACL_CAT_CONNECTION (1u << 18)
#define SRV_ACL_CAT_TRANSACTION (1u << 19)
#define SRV_ACL_CAT_SCRIPTING (1u << 20)
#define SRV_ACL_CAT_TIMESERIES (1u << 21) /* as RedisTimeSeries adds it */
#define SRV_ACL_CAT_COUNT 22

/* The name of category bit i ("keyspace", "read", ...); NULL when
 * i >= SRV_ACL_CAT_COUNT. "all" is not a category of its own: "+@all" and
 * "-@all" are rules meaning every command. */
const char *srv_acl_category_name(size_t i);
/* The SRV_ACL_CAT_* flag of a category name (case-insensitive), 0 if
 * unknown. */
unsigned srv_acl_category_flag(const char *name, size_t len);

/* Replies the server sends on a failed AUTH / HELLO AUTH (Redis's wording). */
#define SRV_ACL_ERR_WRONGPASS                                                 \
    "WRONGPASS invalid username-password pair or user is disabled."

typedef struct srv_acl srv_acl;
typedef struct srv_acl_user srv_acl_user;

/* A new store holding only "default": on, nopass, ~* (all keys), &* (all
 * channels), +@all. NULL when out of memory. */
srv_acl *srv_acl_new(void);
/* Free the store (NULL is fine); see "Users held by clients" above. */
void srv_acl_free(srv_acl *acl);

/* The command table: n lowercase names (copied) and for each the
 * SRV_ACL_CAT_* bits. Command i of the table is cmd_index i of
 * srv_acl_check_cmd(). Meant to be called once at start-up; calling it again
 * rebuilds every user's bitmap by replaying its rules against the new table
 * (rules naming commands no longer there are dropped). 0, or CAIRN_EINVAL
 * (a NULL or empty name, or names == NULL with n > 0) / CAIRN_ENOMEM, in
 * which case nothing changed. */
int srv_acl_set_commands(srv_acl *acl, const char *const *names,
                         const unsigned *cats, size_t n);

/* requirepass: the default user's passwords become just pass ("resetpass"
 * then ">pass"), or with pass == NULL "nopass". Its on/off state is kept.
 * 0 or CAIRN_ENOMEM (nothing changed). */
int srv_acl_set_requirepass(srv_acl *acl, const char *pass);

/* AUTH: the user, if it exists, is on, and either is nopass (any password
 * is accepted) or one of its password hashes equals SHA-256(pass); else
 * NULL. The pointer is borrowed (see above). */
const srv_acl_user *srv_acl_auth(srv_acl *acl, const char *user,
                                 const uint8_t *pass, size_t passlen);

/* The "default" user (never NULL, never deleted). */
const srv_acl_user *srv_acl_default(srv_acl *acl);
/* Whether new connections start authenticated as "default": it is on and
 * nopass. */
bool srv_acl_default_nopass(srv_acl *acl);

/* A user by name (borrowed), NULL if there is none. */
const srv_acl_user *srv_acl_find(srv_acl *acl, const char *name);

/* Keep / drop a reference to a user (see above). Release of the last
 * reference of a deleted user frees it. NULL is ignored. */
void srv_acl_user_retain(const srv_acl_user *u);
void srv_acl_user_release(const srv_acl_user *u);
/* The user's name (NUL-terminated; a name never holds spaces or NULs). */
const char *srv_acl_user_name(const srv_acl_user *u);
/* Deleted by ACL DELUSER: the server disconnects its clients. */
bool srv_acl_user_deleted(const srv_acl_user *u);
/* "on" (an "off" user cannot AUTH; clients already authenticated as it go
 * on, as in Redis). */
bool srv_acl_user_enabled(const srv_acl_user *u);

/* Grows by one at every ACL DELUSER that deleted at least one user. */
uint64_t srv_acl_generation(const srv_acl *acl);

/* 0 if the user may run command cmd_index (its index in the table given to
 * srv_acl_set_commands()), else -1 (also for a deleted user, a NULL user or
 * an index out of the table). */
int srv_acl_check_cmd(const srv_acl_user *u, size_t cmd_index);
/* 0 if the user may access the key (allkeys, or one of its patterns
 * matches), else -1 (also for a deleted or NULL user). */
int srv_acl_check_key(const srv_acl_user *u, const uint8_t *key, size_t len);

/* Redis glob matching (see above); exposed for tests and reuse. */
bool srv_acl_glob_match(const uint8_t *pat, size_t patlen, const uint8_t *s,
                        size_t slen);

/* Every user's ACL LIST line ("user NAME RULES..."), in user order, as
 * malloc'd strings (*n of them; free with srv_acl_list_free), or NULL when
 * out of memory. For CONFIG REWRITE. */
char **srv_acl_list(const srv_acl *acl, size_t *n);
void srv_acl_list_free(char **lines, size_t n);

/* ACL's subcommands, their names and arities (COMMAND LIST). */
const cairn_resp_sub *srv_acl_subcommands(size_t *n);

/* The ACL command. argv[0] is "ACL" itself, argv[1] the subcommand
 * (case-insensitive): SETUSER, GETUSER, DELUSER, USERS, LIST, WHOAMI, CAT,
 * HELP. whoami is the calling client's user name (NULL: WHOAMI replies a
 * null). The reply (or a Redis-worded error) is appended to out in out's
 * protocol. A SETUSER applies all its rules or, at the first bad one, none.
 * After a DELUSER the server checks srv_acl_generation() (see above). */
void srv_acl_command(srv_acl *acl, const char *whoami, size_t argc,
                     const uint8_t *const *argv, const size_t *argl,
                     cairn_resp_buf *out);

#endif /* CAIRN_SERVER_ACL_H */
