/*
 * cairn_server.c — the cairn-server program: parse the command line (an
 * optional config file, then --name value settings that override it), and
 * run the server in the foreground until SHUTDOWN, SIGTERM or SIGINT.
 * Locking: single-threaded until srv_run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cairn-server [CONFIG-FILE] [--config FILE] [--NAME VALUE]...\n"
            "  --port N              TCP port (default 6380)\n"
            "  --bind ADDR           address to listen on (default 127.0.0.1)\n"
            "  --dir PATH            data directory (default ./cairn-data)\n"
            "  --requirepass P       password clients must AUTH with\n"
            "  --sync MODE           always (default) | interval | none\n"
            "                        (also --appendfsync always|everysec|no)\n"
            "  --sync-interval-ms N  fsync period in interval mode (1000)\n"
            "  --history-ms N        how far back time travel reaches (600000)\n"
            "  --maxclients N        (10000)   --timeout SECONDS (0: never)\n"
            "  --proto-max-bulk-len SIZE (512mb)  --max-args N (1048576)\n"
            "  --client-query-buffer-limit SIZE (1gb)\n"
            "  --client-output-buffer-limit SIZE (1gb)\n"
            "  --commit-threads N    concurrent commits (64)\n"
            "  --memtable-size SIZE (64mb)  --block-cache-size SIZE (512mb)\n"
            "  --row-cache-size SIZE (512mb; 0: off) recently read values\n"
            "  --background-nice N (20) flushes and compactions: 1..19 nice\n"
            "                        steps below requests, 20 SCHED_IDLE\n"
            "  --archive-dir DIR     archive tier: sorted files move there,\n"
            "    recompressed (--archive-zstd-level N, 19), by the rules\n"
            "    --archive-min-level N (0: off), --archive-min-age SECONDS (0: off)\n"
            "  --tls-port N          also serve TLS on port N, with\n"
            "    --tls-cert-file PEM --tls-key-file PEM [--tls-ca-cert-file PEM\n"
            "    --tls-auth-clients yes|no]\n"
            "  --metrics-port N      Prometheus metrics on http://BIND:N/metrics\n"
            "  --slowlog-log-slower-than MICROS (10000)  --slowlog-max-len N (128)\n"
            "Config files hold the same settings as 'name value' lines, and\n"
            "'user NAME RULES...' lines for ACL users (ACL SETUSER rules).\n");
}

int main(int argc, char **argv)
{
    srv_config cfg;
    srv_config_init(&cfg);
    char err[1024];
    int i = 1;
    if (i < argc && strncmp(argv[i], "--", 2) != 0) {
        if (srv_config_load(&cfg, argv[i], err, sizeof err) != 0) {
            fprintf(stderr, "cairn-server: %s\n", err);
            return 2;
        }
        i++;
    }
    /* Each setting is a pair: --name value. */
    for (; i < argc; i += 2) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            srv_config_free(&cfg);
            return 0;
        }
        if (!strcmp(a, "--version") || !strcmp(a, "-v")) {
            printf("cairn-server %s\n", CAIRN_VERSION_STRING);
            srv_config_free(&cfg);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0 || i + 1 >= argc) {
            fprintf(stderr, "cairn-server: unexpected argument '%s'\n", a);
            usage(stderr);
            srv_config_free(&cfg);
            return 2;
        }
        int rc = !strcmp(a, "--config")
                     ? srv_config_load(&cfg, argv[i + 1], err, sizeof err)
                     : srv_config_set(&cfg, a + 2, argv[i + 1], err,
                                      sizeof err);
        if (rc != 0) {
            fprintf(stderr, "cairn-server: %s\n", err);
            srv_config_free(&cfg);
            return 2;
        }
    }
    int rc = srv_run(&cfg);
    srv_config_free(&cfg);
    return rc;
}
