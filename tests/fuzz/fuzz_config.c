/* libFuzzer harness: the configuration loader (src/config/config.c) on an arbitrary file.
 *
 * The input is written as certmon.conf in a private directory that also holds a small file
 * to @include and credential files for the settings that name one, so that relative paths
 * resolve and the checks behind them run. Every problem found must come back as a message;
 * a config that loads is also looked up by each of its target names. */
#include "fuzz_util.h"

#include "certmon/config/config.h"

static char conf_path[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char p[4200];
    static const char inc[] = "global = { interval = \"5m\"; };\n";

    (void)argc;
    (void)argv;
    fz_init("config");
    fz_write(fz_path(p, sizeof(p), "inc.conf"), inc, sizeof(inc) - 1);
    fz_write(fz_path(p, sizeof(p), "ca.pem"), "", 0);
    fz_write(fz_path(p, sizeof(p), "client.pem"), "", 0);
    fz_write(fz_path(p, sizeof(p), "client.key"), "", 0);
    fz_path(conf_path, sizeof(conf_path), "certmon.conf");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cm_config_errors errs = {0};
    struct cm_config *cfg = NULL;
    int rc;

    fz_write(conf_path, data, size);
    rc = cm_config_load(conf_path, &cfg, &errs);
    if (rc == 0) {
        FZ_CHECK(cfg && errs.count == 0);
        for (size_t i = 0; i < cfg->target_count; i++)
            FZ_CHECK(cm_config_find(cfg, cfg->targets[i].name) == &cfg->targets[i]);
        cm_config_free(cfg);
    } else {
        /* A failure other than out of memory always says why. */
        FZ_CHECK(!cfg && (rc == -ENOMEM || errs.count > 0));
        for (size_t i = 0; i < errs.count; i++)
            FZ_CHECK(errs.msgs[i] && errs.msgs[i][0]);
    }
    cm_config_errors_clear(&errs);
    return 0;
}
