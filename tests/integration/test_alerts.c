/* Alerts from a running daemon to a real HTTP receiver on 127.0.0.1 (a test helper that
 * records what it gets and answers as told): a problem fires once, grouped, signed; a
 * receiver failing once gets it exactly once; a renewed certificate resolves it; a message
 * undelivered when the daemon stops is delivered after the restart. The alert tables and
 * queues are rows of the state database (tables alerts and outbox), looked at with sqlite3:
 * they follow fire, resend and resolve, an outage of the receiver and its recovery, survive a
 * kill -9 without a re-sent notification, and a notify.json of earlier versions is imported;
 * `certmon state export` shows them beside the daemon. */
#include "cmtest.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

static char dir[256];
static int port_tls, port_rx;
static pid_t pid_tls, pid_rx;

#define requests cm_th_rx_requests

static size_t wait_requests(const char *log, size_t want, double timeout_s)
{
    return cm_th_rx_wait(log, want, timeout_s * CERTMON_SLOWDOWN);
}

static pid_t start_rx(int port, const char *log, const char *responses)
{
    return cm_th_rx_start(port, log, "--responses", responses, NULL);
}

static pid_t start_daemon(const char *conf, const char *log)
{
    char *argv[] = {(char *)cm_th_certmon(), "run", "-c", (char *)conf, NULL};

    return cm_th_spawn(argv, log);
}

static int suite_init(void)
{
    snprintf(dir, sizeof(dir), "/tmp/certmon-alerts-XXXXXX");
    if (!mkdtemp(dir) || !cm_th_pki_dir())
        return -1;
    cm_th_no_proxy();
    port_tls = cm_th_free_port();
    port_rx = cm_th_free_port();
    return 0;
}

static int suite_cleanup(void)
{
    char *out = NULL, cmd[300];
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};

    cm_th_stop(pid_tls);
    cm_th_stop(pid_rx);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cm_th_run(argv, &out, 30, NULL);
    free(out);
    return 0;
}

static void test_fire_retry_resolve_restart(void)
{
    const char *conf = cm_th_path(dir, "d.conf"), *log = cm_th_path(dir, "d.log"),
               *rx = cm_th_path(dir, "rx.jsonl");
    char target[64];
    json_t *r, *body;
    pid_t pid;
    size_t n;

    snprintf(target, sizeof(target), "localhost:%d", port_tls);
    /* A self-signed server: chain.self_signed, critical. */
    pid_tls = cm_th_s_server(port_tls, "self.pem", "self.key", false);
    CU_ASSERT_FATAL(pid_tls > 0);
    /* The receiver refuses the first message (500) and takes the retry. */
    pid_rx = start_rx(port_rx, rx, "500,200");
    CU_ASSERT_FATAL(pid_rx > 0);
    cm_th_write_config(conf,
               "global = { interval = \"2s\"; timeout = \"5s\"; startup_spread = \"0s\";\n"
               "           posture_interval = \"off\"; state_file = \"state.json\";\n"
               /* The swaps between a self-signed and a CA-issued certificate are material
                * changes (cert.changed, integration.history tests them): this test follows
                * chain.self_signed's alerts alone. */
               "           ignore = [ \"cert.changed\" ]; };\n"
               "targets = ( { host = \"localhost\"; port = %d; ca_file = \"%s\";\n"
               "              labels = { team = \"web\"; }; } );\n"
               /* The server is swapped by a stop and a start: a probe between them is refused
                * (probe.failed), which leaves chain.self_signed as it is and which this
                * notifier does not follow, so that its messages are exactly the ones counted
                * here. */
               "notifiers = ( { name = \"hook\"; type = \"webhook\";\n"
               "                url = \"http://127.0.0.1:%d/hook\"; secret = \"s3cret\";\n"
               "                group_wait = \"1s\"; min_severity = \"warning\";\n"
               "                findings = [ \"chain.self_signed\" ]; } );\n",
               port_tls, cm_th_pki("root.pem"), port_rx);
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);

    /* Fired once, refused once, retried once: two requests, the same message. */
    n = wait_requests(rx, 2, 15);
    EXPECT_INT(n, 2);
    usleep((useconds_t)(3000000 * CERTMON_SLOWDOWN)); /* and nothing more while it lasts */
    r = cm_th_rx_requests(rx);
    EXPECT_INT(json_array_size(r), 2);
    EXPECT_STR(cm_json_str(r, "0.answer"), "500");
    EXPECT_STR(cm_json_str(r, "1.answer"), "200");
    body = json_loads(cm_json_str(r, "1.body") ? cm_json_str(r, "1.body") : "", 0, NULL);
    {
        /* The retry carries the same alerts (only sent_at, the sending time, differs). */
        json_t *first = json_loads(cm_json_str(r, "0.body") ? cm_json_str(r, "0.body") : "", 0,
                                   NULL);
        CU_ASSERT(json_equal(json_object_get(first, "alerts"), json_object_get(body, "alerts")));
        json_decref(first);
    }
    EXPECT_STR(cm_json_str(body, "version"), "1");
    EXPECT_STR(cm_json_str(body, "alerts.0.status"), "firing");
    EXPECT_STR(cm_json_str(body, "alerts.0.target"), target);
    EXPECT_STR(cm_json_str(body, "alerts.0.finding"), "chain.self_signed");
    EXPECT_STR(cm_json_str(body, "alerts.0.severity"), "critical");
    EXPECT_STR(cm_json_str(body, "alerts.0.labels.team"), "web");
    /* The signature verifies with the shared secret (openssl computes it independently). */
    {
        char cmd[4096], *out = NULL, want[128];
        const char *b = cm_json_str(r, "1.body");
        const char *sig = cm_json_str(r, "1.headers.x-certmon-signature");
        cm_th_write_config(cm_th_path(dir, "body.json"), "%s", b ? b : "");
        snprintf(cmd, sizeof(cmd),
                 "printf 'sha256=%%s' $(openssl dgst -sha256 -hmac s3cret -r '%s' | cut -d' ' -f1)",
                 cm_th_path(dir, "body.json"));
        char *argv[] = {"/bin/sh", "-c", cmd, NULL};
        EXPECT_INT(cm_th_run(argv, &out, 30, NULL), 0);
        snprintf(want, sizeof(want), "%s", out ? out : "");
        EXPECT_STR(sig, want);
        free(out);
    }
    json_decref(body);
    json_decref(r);

    /* Renewal: the server now presents a valid certificate; the next probe resolves. */
    cm_th_stop(pid_tls);
    pid_tls = cm_th_s_server(port_tls, "valid.pem", "leaf.key", true);
    CU_ASSERT_FATAL(pid_tls > 0);
    n = wait_requests(rx, 3, 15);
    EXPECT_INT(n, 3);
    r = cm_th_rx_requests(rx);
    body = json_loads(cm_json_str(r, "2.body") ? cm_json_str(r, "2.body") : "", 0, NULL);
    EXPECT_STR(cm_json_str(body, "alerts.0.status"), "resolved");
    EXPECT_STR(cm_json_str(body, "alerts.0.finding"), "chain.self_signed");
    json_decref(body);
    json_decref(r);

    /* The receiver goes down; the problem comes back; the daemon stops with the message
     * undelivered, and delivers it after its restart, once. */
    cm_th_stop(pid_rx);
    pid_rx = -1;
    cm_th_stop(pid_tls);
    pid_tls = cm_th_s_server(port_tls, "self.pem", "self.key", false);
    CU_ASSERT_FATAL(pid_tls > 0);
    /* Wait until the daemon has seen the problem again and tried to deliver it (group_wait
     * is 1 s), against the closed port. */
    CU_ASSERT(cm_th_wait_text(log, "status=critical was=ok", 20 * CERTMON_SLOWDOWN));
    usleep((useconds_t)(2500000 * CERTMON_SLOWDOWN));
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
    pid_rx = start_rx(port_rx, rx, "200");
    CU_ASSERT_FATAL(pid_rx > 0);
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    n = wait_requests(rx, 4, 20);
    EXPECT_INT(n, 4);
    usleep((useconds_t)(3000000 * CERTMON_SLOWDOWN));
    r = cm_th_rx_requests(rx);
    EXPECT_INT(json_array_size(r), 4); /* once: the restart re-sends nothing else */
    body = json_loads(cm_json_str(r, "3.body") ? cm_json_str(r, "3.body") : "", 0, NULL);
    EXPECT_STR(cm_json_str(body, "alerts.0.status"), "firing");
    EXPECT_STR(cm_json_str(body, "alerts.0.finding"), "chain.self_signed");
    json_decref(body);
    json_decref(r);
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
}

static void test_notify_test_command(void)
{
    const char *conf = cm_th_path(dir, "nt.conf"), *rx = cm_th_path(dir, "nt-rx.jsonl");
    int port = cm_th_free_port(), dead = cm_th_free_port();
    pid_t pid = start_rx(port, rx, "200");
    char *out = NULL;

    CU_ASSERT_FATAL(pid > 0);
    cm_th_write_config(conf,
               "targets = ( { host = \"localhost\"; port = 443; } );\n"
               "notifiers = (\n"
               "  { name = \"ok\"; type = \"webhook\"; url = \"http://127.0.0.1:%d/hook\"; },\n"
               "  { name = \"down\"; type = \"slack\"; url = \"http://127.0.0.1:%d/services/T/B/X\";\n"
               "    timeout = \"2s\"; } );\n",
               port, dead);
    char *all[] = {(char *)cm_th_certmon(), "notify-test", "-c", (char *)conf, NULL};
    char *one[] = {(char *)cm_th_certmon(), "notify-test", "-c", (char *)conf, "--notifier", "ok",
                   NULL};
    char *none[] = {(char *)cm_th_certmon(), "notify-test", "-c", (char *)conf, "--notifier",
                    "nope", NULL};
    /* One receiver up, one down: both reported, exit 1. */
    EXPECT_INT(cm_th_run(all, &out, 30, NULL), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "ok (webhook): OK: the receiver answered 200"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "down (slack): FAILED"));
    CU_ASSERT_PTR_NULL(strstr(out, "/services/T/B/X")); /* the Slack token is not printed */
    free(out);
    EXPECT_INT(cm_th_run(one, &out, 30, NULL), 0);
    free(out);
    EXPECT_INT(cm_th_run(none, &out, 30, NULL), 1);
    free(out);
    json_t *r = cm_th_rx_requests(rx);
    EXPECT_INT(json_array_size(r), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(cm_json_str(r, "0.body") ? cm_json_str(r, "0.body") : "",
                                  "certmon notify-test"));
    json_decref(r);
    cm_th_stop(pid);
}

/* amtool alert query output (active alerts) for the Alertmanager on port. */
static char *amtool_query(int port)
{
    char url[64], *out = NULL;
    char *argv[] = {"amtool", "alert", "query", "--alertmanager.url", url, "-o", "extended", NULL};

    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    cm_th_run(argv, &out, 30, NULL);
    return out ? out : strdup("");
}

/* Debian's Alertmanager receives certmon's alert, amtool lists it, and it ends when the
 * certificate is renewed. */
static void test_alertmanager(void)
{
    const char *conf = cm_th_path(dir, "am.conf"), *log = cm_th_path(dir, "am-daemon.log");
    const char *amconf = cm_th_path(dir, "alertmanager.yml");
    int port_am = cm_th_free_port(), port_srv = cm_th_free_port();
    char listen[64], storage[600], *out = NULL;
    pid_t am, srv, pid;
    double end;
    bool listed = false, gone = false;

    cm_th_write_config(amconf, "route: { receiver: blackhole }\nreceivers: [ { name: blackhole } ]\n");
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port_am);
    snprintf(storage, sizeof(storage), "%s", cm_th_path(dir, "am-data"));
    char *argv[] = {"prometheus-alertmanager", "--config.file", (char *)amconf,
                    "--storage.path", storage, "--web.listen-address", listen,
                    "--cluster.listen-address=", NULL};
    am = cm_th_spawn(argv, cm_th_path(dir, "alertmanager.log"));
    CU_ASSERT_FATAL(am > 0 && cm_th_wait_port(port_am, 20000));
    srv = cm_th_s_server(port_srv, "self.pem", "self.key", false);
    CU_ASSERT_FATAL(srv > 0);
    cm_th_write_config(conf,
               "global = { interval = \"2s\"; timeout = \"5s\"; startup_spread = \"0s\";\n"
               "           posture_interval = \"off\"; };\n"
               "targets = ( { host = \"localhost\"; port = %d; ca_file = \"%s\";\n"
               "              labels = { team = \"web\"; }; } );\n"
               "notifiers = ( { name = \"am\"; type = \"alertmanager\";\n"
               "                urls = [ \"http://127.0.0.1:%d\" ]; group_wait = \"0s\";\n"
               "                resend_interval = \"10s\"; } );\n",
               port_srv, cm_th_pki("root.pem"), port_am);
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    end = cm_th_now() + 20 * CERTMON_SLOWDOWN;
    while (!listed && cm_th_now() < end) {
        free(out);
        out = amtool_query(port_am);
        listed = strstr(out, "CertmonFinding") && strstr(out, "chain.self_signed") &&
                 strstr(out, "team=\"web\"");
        if (!listed)
            usleep(300000);
    }
    CU_ASSERT(listed);
    if (!listed)
        fprintf(stderr, "\n  amtool: %s\n", out);
    /* Renewal: the alert ends (amtool lists active alerts only). */
    cm_th_stop(srv);
    srv = cm_th_s_server(port_srv, "valid.pem", "leaf.key", true);
    CU_ASSERT_FATAL(srv > 0);
    end = cm_th_now() + 20 * CERTMON_SLOWDOWN;
    while (!gone && cm_th_now() < end) {
        free(out);
        out = amtool_query(port_am);
        gone = !strstr(out, "chain.self_signed");
        if (!gone)
            usleep(300000);
    }
    CU_ASSERT(gone);
    free(out);
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
    cm_th_stop(srv);
    cm_th_stop(am);
}

/* ---- The alert tables and queues in the state database ---- */

/* (Re)starts the TLS server with the self-signed certificate: chain.self_signed, critical. */
static void serve_self_signed(void)
{
    cm_th_stop(pid_tls);
    pid_tls = cm_th_s_server(port_tls, "self.pem", "self.key", false);
    CU_ASSERT_FATAL(pid_tls > 0);
}

/* A daemon configuration probing the TLS server every 2 s, its state in db (a name in dir),
 * with the notifiers given (libconfig text of the list's items). */
static void rows_config(const char *conf, const char *db, const char *notifiers)
{
    cm_th_write_config(conf,
                       "global = { interval = \"2s\"; timeout = \"5s\"; startup_spread = \"0s\";\n"
                       "           posture_interval = \"off\"; state_file = \"%s\";\n"
                       "           ignore = [ \"cert.changed\" ]; };\n"
                       "targets = ( { host = \"localhost\"; port = %d; ca_file = \"%s\"; } );\n"
                       "notifiers = ( %s );\n",
                       db, port_tls, cm_th_pki("root.pem"), notifiers);
}

/* A notify.json of the version before the database (STATE_FILE.notify.json) is imported once:
 * the firing alert it holds is not sent again, its queued message is delivered once, the
 * rows are in the database, and the file is kept as *.imported (not imported again). */
static void test_import_notify_json(void)
{
    const char *conf = cm_th_path(dir, "imp.conf"), *log = cm_th_path(dir, "imp.log"),
               *rx = cm_th_path(dir, "imp-rx.jsonl");
    char db[512], nj[600], kept[620], notifiers[300], want[200];
    int port = cm_th_free_port();
    long long now = (long long)time(NULL);
    pid_t rxp, pid;
    char *out;
    json_t *r, *body;

    snprintf(db, sizeof(db), "%s", cm_th_path(dir, "imp.db"));
    snprintf(nj, sizeof(nj), "%s.notify.json", db);
    snprintf(kept, sizeof(kept), "%s.imported", nj);
    serve_self_signed();
    cm_th_write_config(
        nj,
        "{\"hook\": {\"alerts\": [{\"target\": \"localhost:%d\", \"id\": \"chain.self_signed\","
        " \"position\": 0, \"severity\": \"critical\", \"message\": \"self-signed\","
        " \"started_at\": %lld, \"fired_at\": %lld, \"notified_at\": %lld}],"
        " \"queue\": [{\"url\": \"http://127.0.0.1:%d/hook\", \"created_at\": %lld,"
        " \"attempts\": 2, \"notices\": [{\"kind\": \"firing\", \"target\":"
        " \"imported.example:443\", \"id\": \"cert.expired\", \"position\": 0, \"severity\":"
        " \"critical\", \"previous\": \"critical\", \"message\": \"expired\", \"started_at\": %lld,"
        " \"fired_at\": %lld, \"at\": %lld, \"labels\": {}}]}]},"
        " \"gone\": {\"alerts\": [], \"queue\": []}}\n",
        port_tls, now - 100, now - 90, now - 90, port, now - 50, now - 60, now - 60, now - 60);
    rxp = start_rx(port, rx, "200");
    CU_ASSERT_FATAL(rxp > 0);
    snprintf(notifiers, sizeof(notifiers),
             "{ name = \"hook\"; type = \"webhook\"; url = \"http://127.0.0.1:%d/hook\";"
             " group_wait = \"1s\"; }",
             port);
    rows_config(conf, "imp.db", notifiers);
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    EXPECT_INT(wait_requests(rx, 1, 15), 1);
    CU_ASSERT(cm_th_wait_text(log, "status=critical", 15 * CERTMON_SLOWDOWN));
    usleep((useconds_t)(3000000 * CERTMON_SLOWDOWN)); /* probed again and again: nothing new */
    r = cm_th_rx_requests(rx);
    EXPECT_INT(json_array_size(r), 1);
    body = cm_th_rx_body(r, 0);
    EXPECT_STR(cm_json_str(body, "alerts.0.target"), "imported.example:443");
    EXPECT_STR(cm_json_str(body, "alerts.0.message"), "expired");
    json_decref(body);
    json_decref(r);
    CU_ASSERT(access(nj, F_OK) < 0);
    CU_ASSERT(access(kept, F_OK) == 0);
    snprintf(want, sizeof(want), "localhost:%d chain.self_signed 0 critical %lld", port_tls,
             now - 90);
    CU_ASSERT(cm_th_wait_sqlite3(db,
                                 "SELECT target || ' ' || finding || ' ' || position || ' ' ||"
                                 " severity || ' ' || fired_at FROM current_alerts",
                                 want, 5));
    CU_ASSERT(cm_th_wait_sqlite3(db, "SELECT count(*) FROM outbox", "0", 5));
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
    /* A restart reads the rows: still nothing sent again. */
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    usleep((useconds_t)(5000000 * CERTMON_SLOWDOWN));
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
    r = cm_th_rx_requests(rx);
    EXPECT_INT(json_array_size(r), 1);
    json_decref(r);
    out = cm_th_sqlite3(db, "SELECT count(*) FROM current_alerts WHERE notifier = 'gone'");
    EXPECT_STR(out ? out : "(null)", "0");
    free(out);
    cm_th_stop(rxp);
}

/* The alert rows follow the alert: fired (fired_at = notified_at), re-sent to Alertmanager
 * (notified_at moves on), resolved (the row goes). */
static void test_alert_rows_follow(void)
{
    const char *conf = cm_th_path(dir, "rows.conf"), *log = cm_th_path(dir, "rows.log"),
               *rx = cm_th_path(dir, "rows-rx.jsonl");
    char db[512], notifiers[300];
    int port = cm_th_free_port();
    pid_t rxp, pid;
    static const char ROW[] = "SELECT severity || ' ' || (fired_at IS NOT NULL) || ' ' ||"
                              " (notified_at > fired_at) FROM current_alerts WHERE"
                              " notifier = 'am' AND finding = 'chain.self_signed'";

    snprintf(db, sizeof(db), "%s", cm_th_path(dir, "rows.db"));
    serve_self_signed();
    rxp = start_rx(port, rx, "200");
    CU_ASSERT_FATAL(rxp > 0);
    snprintf(notifiers, sizeof(notifiers),
             "{ name = \"am\"; type = \"alertmanager\"; url = \"http://127.0.0.1:%d\";"
             " resend_interval = \"10s\"; group_wait = \"1s\"; }",
             port);
    rows_config(conf, "rows.db", notifiers);
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    EXPECT_INT(wait_requests(rx, 1, 15), 1);
    CU_ASSERT(cm_th_wait_sqlite3(db, ROW, "critical 1 0", 5));
    /* Re-sent after resend_interval: the same row, notified_at later. */
    CU_ASSERT(wait_requests(rx, 2, 20) >= 2);
    CU_ASSERT(cm_th_wait_sqlite3(db, ROW, "critical 1 1", 5));
    CU_ASSERT(cm_th_wait_sqlite3(db, "SELECT count(*) FROM outbox", "0", 5));
    /* Renewed: resolved, the row goes. */
    cm_th_stop(pid_tls);
    pid_tls = cm_th_s_server(port_tls, "valid.pem", "leaf.key", true);
    CU_ASSERT_FATAL(pid_tls > 0);
    CU_ASSERT(
        cm_th_wait_sqlite3(db, "SELECT count(*) FROM current_alerts", "0", 20 * CERTMON_SLOWDOWN));
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
    cm_th_stop(rxp);
}

/* The outbox follows an outage of the receiver: the message's row with its failed attempts
 * while it is down, gone once it is delivered. A kill -9 more than a second after that
 * re-sends nothing after the restart, and leaves a sound database. */
static void test_queue_rows_outage(void)
{
    const char *conf = cm_th_path(dir, "q.conf"), *log = cm_th_path(dir, "q.log"),
               *rx = cm_th_path(dir, "q-rx.jsonl");
    char db[512], notifiers[300], *out;
    int port = cm_th_free_port();
    pid_t rxp, pid;
    json_t *r, *body;

    snprintf(db, sizeof(db), "%s", cm_th_path(dir, "q.db"));
    serve_self_signed();
    snprintf(notifiers, sizeof(notifiers),
             "{ name = \"hook\"; type = \"webhook\"; url = \"http://127.0.0.1:%d/hook\";"
             " group_wait = \"1s\"; }",
             port);
    rows_config(conf, "q.db", notifiers);
    pid = start_daemon(conf, log); /* the receiver is down */
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT(cm_th_wait_sqlite3(db,
                                 "SELECT count(*) || ' ' || (min(attempts) >= 2) || ' ' ||"
                                 " (notices LIKE '%chain.self_signed%') FROM outbox WHERE"
                                 " notifier = 'hook' AND url IS NOT NULL",
                                 "1 1 1", 20 * CERTMON_SLOWDOWN));
    rxp = start_rx(port, rx, "200");
    CU_ASSERT_FATAL(rxp > 0);
    EXPECT_INT(wait_requests(rx, 1, 20), 1);
    CU_ASSERT(cm_th_wait_sqlite3(db, "SELECT count(*) FROM outbox", "0", 5));
    usleep((useconds_t)(1500000 * CERTMON_SLOWDOWN));
    cm_th_signal_wait(pid, SIGKILL, 10, NULL);
    out = cm_th_sqlite3(db, "PRAGMA integrity_check");
    EXPECT_STR(out ? out : "(null)", "ok");
    free(out);
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    usleep((useconds_t)(5000000 * CERTMON_SLOWDOWN)); /* probed twice: nothing sent again */
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
    r = cm_th_rx_requests(rx);
    EXPECT_INT(json_array_size(r), 1);
    body = cm_th_rx_body(r, 0);
    EXPECT_STR(cm_json_str(body, "alerts.0.finding"), "chain.self_signed");
    EXPECT_STR(cm_json_str(body, "alerts.0.status"), "firing");
    json_decref(body);
    json_decref(r);
    cm_th_stop(rxp);
}

/* The notice of that kind and finding in the outbox of an exported state document, or NULL;
 * *msg gets the message that carries it. */
static json_t *queued_notice(json_t *doc, const char *kind, const char *finding, json_t **msg)
{
    size_t i, k;
    json_t *m, *n;

    json_array_foreach(json_object_get(doc, "outbox"), i, m)
    {
        json_array_foreach(json_object_get(m, "notices"), k, n)
        {
            const char *nk = json_string_value(json_object_get(n, "kind"));
            const char *nf = json_string_value(json_object_get(n, "finding"));
            if (nk && nf && !strcmp(nk, kind) && !strcmp(nf, finding)) {
                *msg = m;
                return n;
            }
        }
    }
    return NULL;
}

/* `certmon state export` beside a running daemon whose receiver is unreachable (nothing listens
 * on its port): the firing alert and its queued message with failed attempts; once the
 * certificate is renewed, no alert row and the RESOLVED notice queued, in the JSON document
 * and in the table. */
static void test_state_export(void)
{
    const char *conf = cm_th_path(dir, "exp.conf"), *log = cm_th_path(dir, "exp.log");
    char db[512], notifiers[300], target[64], url[64], *out = NULL;
    int port = cm_th_free_port();
    json_t *j, *m, *n;
    pid_t pid;

    snprintf(db, sizeof(db), "%s", cm_th_path(dir, "exp.db"));
    snprintf(target, sizeof(target), "localhost:%d", port_tls);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", port);
    serve_self_signed();
    snprintf(notifiers, sizeof(notifiers),
             "{ name = \"hook\"; type = \"webhook\"; url = \"%s\"; group_wait = \"1s\"; }", url);
    rows_config(conf, "exp.db", notifiers);
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT(cm_th_wait_sqlite3(db,
                                 "SELECT count(*) || ' ' || (min(attempts) >= 1) FROM outbox"
                                 " WHERE url IS NOT NULL",
                                 "1 1", 20 * CERTMON_SLOWDOWN));

    j = cm_th_state_export_json(conf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    EXPECT_STR(cm_json_str(j, "targets.0.name"), target);
    EXPECT_INT(json_array_size(json_object_get(j, "alerts")), 1);
    EXPECT_JSON_STRS(j, {"alerts.0.notifier", "hook"}, {"alerts.0.target", target},
                     {"alerts.0.finding", "chain.self_signed"}, {"alerts.0.state", "firing"},
                     {"alerts.0.severity", "critical"});
    EXPECT_INT(json_integer_value(cm_json_get(j, "alerts.0.position")), 0);
    CU_ASSERT(json_integer_value(cm_json_get(j, "alerts.0.fired_at")) >=
              json_integer_value(cm_json_get(j, "alerts.0.started_at")));
    CU_ASSERT(json_is_integer(cm_json_get(j, "alerts.0.notified_at")));
    CU_ASSERT(strstr(cm_json_str(j, "alerts.0.message") ? cm_json_str(j, "alerts.0.message") : "",
                     "self-signed") != NULL);
    EXPECT_INT(json_array_size(json_object_get(j, "outbox")), 1);
    EXPECT_JSON_STRS(j, {"outbox.0.notifier", "hook"}, {"outbox.0.url", url},
                     {"outbox.0.notices.0.kind", "firing"}, {"outbox.0.notices.0.target", target},
                     {"outbox.0.notices.0.finding", "chain.self_signed"},
                     {"outbox.0.notices.0.severity", "critical"});
    CU_ASSERT(json_integer_value(cm_json_get(j, "outbox.0.attempts")) >= 1);
    /* max_age defaults to 24 hours. */
    EXPECT_INT(json_integer_value(cm_json_get(j, "outbox.0.expires_at")),
               json_integer_value(cm_json_get(j, "outbox.0.created_at")) + 86400);
    json_decref(j);
    EXPECT_INT(cm_th_state_export(conf, &out), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT(strstr(out, "\nALERTS (1)\n") != NULL);
    CU_ASSERT(strstr(out, "chain.self_signed           0 firing  critical ") != NULL);
    CU_ASSERT(strstr(out, "\nOUTBOX (1)\n") != NULL);
    CU_ASSERT(strstr(out, url) != NULL);
    free(out);

    /* Renewed while the receiver is still down: the alert resolves (its row goes) and the
     * RESOLVED notice waits in the outbox. */
    cm_th_stop(pid_tls);
    pid_tls = cm_th_s_server(port_tls, "valid.pem", "leaf.key", true);
    CU_ASSERT_FATAL(pid_tls > 0);
    CU_ASSERT(cm_th_wait_sqlite3(db,
                                 "SELECT (SELECT count(*) FROM current_alerts) || ' ' ||"
                                 " (SELECT count(*) > 0 FROM outbox WHERE url IS NOT NULL AND"
                                 " notices LIKE '%\"kind\":\"resolved\"%')",
                                 "0 1", 20 * CERTMON_SLOWDOWN));
    j = cm_th_state_export_json(conf);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    EXPECT_INT(json_array_size(json_object_get(j, "alerts")), 0);
    /* Both notices wait (a probe that failed while the server was swapped may have added
     * probe.failed's). */
    CU_ASSERT_PTR_NOT_NULL(queued_notice(j, "firing", "chain.self_signed", &m));
    n = queued_notice(j, "resolved", "chain.self_signed", &m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    EXPECT_STR(cm_json_str(m, "url"), url);
    EXPECT_STR(cm_json_str(n, "target"), target);
    EXPECT_STR(cm_json_str(n, "severity"), "critical");
    json_decref(j);
    EXPECT_INT(cm_th_state_export(conf, &out), 0);
    CU_ASSERT(out && strstr(out, "\nALERTS (0)\nnone\n") != NULL);
    CU_ASSERT(out && strstr(out, " resolved ") != NULL);
    free(out);
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
}

static CU_TestInfo tests[] = {
    {"fire, retry once, resolve, survive a restart", test_fire_retry_resolve_restart},
    {"a notify.json of earlier versions is imported once", test_import_notify_json},
    {"alert rows follow fire, resend and resolve", test_alert_rows_follow},
    {"queue rows follow an outage and its recovery; kill -9", test_queue_rows_outage},
    {"state export: firing, resolved and queued beside the daemon", test_state_export},
    {"certmon notify-test", test_notify_test_command},
    {"Alertmanager shows the alert and ends it", test_alertmanager},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("alerts", tests, suite_init, suite_cleanup);
}
