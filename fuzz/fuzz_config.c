/*
 * fuzz_config.c — fuzz target for the server's config file reader: the
 * input is a config file ("name value" lines, # comments, quotes). It
 * either loads or fails with a message naming the line; never crashes.
 *
 * Checks: a failure always comes with a message; after a load, CONFIG GET
 * answers for every setting, and a deep copy of the config loads the same
 * answers.
 * Locking: single-threaded.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "server/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("cairn-fuzz-config", 0);
    if (fd < 0)
        return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0) {
            close(fd);
            return 0;
        }
        off += (size_t)n;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    srv_config c, d;
    srv_config_init(&c);
    char err[512];
    err[0] = 0;
    if (srv_config_load(&c, path, err, sizeof err) != 0) {
        FUZZ_CHECK(err[0] != 0);
    } else if (srv_config_copy(&d, &c) == 0) {
        for (size_t i = 0; srv_config_name(i); i++) {
            char a[4096], b[4096];
            FUZZ_CHECK(srv_config_get(&c, srv_config_name(i), a, sizeof a) ==
                       0);
            FUZZ_CHECK(srv_config_get(&d, srv_config_name(i), b, sizeof b) ==
                       0);
            FUZZ_CHECK(strcmp(a, b) == 0);
        }
        srv_config_free(&d);
    }
    srv_config_free(&c);
    close(fd);
    return 0;
}
