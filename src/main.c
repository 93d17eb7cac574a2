/* certmon command line: dispatches to the commands; nothing else lives here. */
#include "certmon/check.h"
#include "certmon/daemon/daemon.h"
#include "certmon/base/log.h"
#include "certmon/statecmd.h"

#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static void usage(FILE *fp)
{
    fputs("usage: certmon COMMAND [options]\n"
          "commands:\n"
          "  check TARGET...   probe TLS endpoints once and report (see certmon check --help)\n"
          "  run -c FILE       run the monitoring daemon in the foreground\n"
          "  config-check -c FILE  validate a configuration file and list every problem\n"
          "  notify-test -c FILE [--notifier NAME]  send a test message through the notifiers\n"
          "  state export [-c FILE] [--json]  print the daemon's state database\n"
          "  history [-c FILE] [--json] TARGET  the certificates a target has served\n"
          "  version           print version information\n"
          "  help              show this help\n",
          fp);
}

int main(int argc, char **argv)
{
    const char *level = getenv("CERTMON_LOG_LEVEL");

    if (level && cm_log_set_level(level) < 0)
        fprintf(stderr, "certmon: ignoring CERTMON_LOG_LEVEL=%s (error|warning|info|debug)\n",
                level);
    if (argc < 2) {
        usage(stderr);
        return 3;
    }
    if (!strcmp(argv[1], "check"))
        return cm_check_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "run"))
        return cm_run_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "config-check"))
        return cm_config_check_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "state"))
        return cm_state_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "history"))
        return cm_history_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "notify-test"))
        return cm_notify_test_main(argc - 1, argv + 1);
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("certmon %s (gnutls %s, libuv %s, libcurl %s)\n", CERTMON_VERSION,
               gnutls_check_version(NULL), uv_version_string(),
               curl_version_info(CURLVERSION_NOW)->version);
        return 0;
    }
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "certmon: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 3;
}
