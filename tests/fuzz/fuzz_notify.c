/* libFuzzer harness: the notifiers' persisted state (cm_notify_load_json in src/notify/notify.c, with
 * the alert tables of src/notify/alert.c and the notices of src/notify/payload.c), as the daemon imports it from
 * a STATE_FILE.notify.json of earlier versions, or makes it of its database's alerts and outbox rows, at start.
 *
 * One notifier of each type is configured (receivers on a closed loopback port: a delivery
 * that loading or observing starts is refused or cancelled at once; the loop runs only to
 * close handles). For each input a fresh cm_notify loads the
 * document; what loads must survive being observed (a finding fires, another target is
 * forgotten) and written out, and what is written must load again unchanged. */
#include "fuzz_util.h"

#include "certmon/config/config.h"
#include "certmon/base/error.h"
#include "certmon/http/httpc.h"
#include "certmon/notify/notify.h"

#include <jansson.h>
#include <time.h>
#include <uv.h>

static uv_loop_t loop;
static struct cm_httpc *http;
static struct cm_config *cfg;

static const char conf[] =
    "targets = ( { host = \"127.0.0.1\"; port = 9; } );\n"
    "notifiers = (\n"
    "  { name = \"slack\"; type = \"slack\"; url = \"http://127.0.0.1:9/slack\";\n"
    "    group_wait = \"0s\"; },\n"
    "  { name = \"hook\"; type = \"webhook\"; url = \"http://127.0.0.1:9/hook\";\n"
    "    secret = \"s\"; for = \"1m\"; },\n"
    "  { name = \"mail\"; type = \"email\"; url = \"smtp://127.0.0.1:9\";\n"
    "    from = \"certmon@example.org\"; to = [ \"ops@example.org\" ]; },\n"
    "  { name = \"am\"; type = \"alertmanager\";\n"
    "    urls = [ \"http://127.0.0.1:9\", \"http://127.0.0.1:10\" ]; }\n"
    ");\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct cm_config_errors errs = {0};
    char path[4200], err[256];

    (void)argc;
    (void)argv;
    fz_init("notify");
    fz_write(fz_path(path, sizeof(path), "certmon.conf"), conf, sizeof(conf) - 1);
    if (cm_config_load(path, &cfg, &errs) < 0 || uv_loop_init(&loop) < 0 ||
        cm_httpc_new(&loop, &http, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_notify: setup failed (%s)\n",
                errs.count ? errs.msgs[0] : "loop or httpc");
        exit(1);
    }
    return 0;
}

/* Closes n and runs the loop for its close callbacks, which free it (a leak otherwise), and
 * until the deliveries it had started (to the closed port) are cancelled and gone. */
static void close_notify(struct cm_notify *n)
{
    cm_notify_close(n);
    for (int i = 0; i < 1000 && (i < 4 || cm_httpc_active(http) > 0); i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    FZ_CHECK(cm_httpc_active(http) == 0);
}

/* A fresh notifier set loaded with j. Returns the load's code; *out set when 0. */
static int load(json_t *j, struct cm_notify **out)
{
    struct cm_notify *n;
    int rc;

    *out = NULL;
    if (cm_notify_new(&loop, http, cfg, &n) < 0)
        return -ENOMEM;
    rc = cm_notify_load_json(n, j);
    FZ_CHECK(rc == 0 || rc == CM_ESTATE || rc == -ENOMEM);
    if (rc < 0) {
        close_notify(n);
        return rc;
    }
    *out = n;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cm_notify *n, *n2;
    json_error_t je;
    json_t *j, *out, *out2;
    char msg[] = "certificate expired";
    struct cm_finding item = {
        .id = "cert.expired", .severity = CM_SEV_CRITICAL, .message = msg, .position = 0};
    struct cm_findings f = {&item, 1};
    int64_t now = 1796083200;

    if (!(j = json_loadb((const char *)data, size, 0, &je)))
        return 0;
    if (load(j, &n) < 0) {
        json_decref(j);
        return 0;
    }
    json_decref(j);

    /* What was written loads again, unchanged. */
    out = cm_notify_to_json(n);
    if (out && load(out, &n2) == 0) {
        out2 = cm_notify_to_json(n2);
        FZ_CHECK(!out2 || json_equal(out, out2));
        json_decref(out2);
        close_notify(n2);
    }
    json_decref(out);

    /* The loaded tables go on working. */
    cm_notify_observe(n, "127.0.0.1:9", NULL, &f, NULL, now);
    cm_notify_forget(n, "gone.example.org:443", now);
    out = cm_notify_to_json(n);
    json_decref(out);
    close_notify(n);
    return 0;
}
