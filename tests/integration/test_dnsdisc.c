/* integration.dnsdisc: DNS discovery in a running daemon, as an operator sees it. A real DNS
 * server (Debian's dnsmasq, cm_th_dnsmasq) on 127.0.0.1 serves SRV and MX records whose targets
 * resolve to 127.0.0.1, where `openssl s_server` endpoints and a scripted SMTP STARTTLS server
 * (starttls_peer.py) listen; `certmon run` looks the names up through CERTMON_DNS_SERVERS every
 * second. The SRV name expands to its targets and the MX name to its exchange, probed with
 * SMTP STARTTLS; dnsmasq restarted on the same port with other records adds and removes
 * targets within seconds while an unchanged one keeps its last probe; a name or a DNS server
 * that is gone keeps the targets (through a SIGHUP too) and shows in /metrics and the log; "."
 * empties the list. */
#include "cmtest.h"

#include "certmon/probe/starttls.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

static char dir[256], conf[300], logpath[300], peerlog[300];
static int port_a, port_b, port_c, port_smtp, port_dns, mport;
static pid_t pid_a, pid_b, pid_c, pid_smtp, pid_dns = -1, pid_d;

#define SRV_NAME "_https._tcp.example.test"
#define SRV_FILE "file=\"srv:" SRV_NAME "\""

static double metric_now(const char *name, const char *m1, const char *m2)
{
    char *body = cm_th_http_get_ok(mport, "/metrics");
    double v = body ? cm_th_metric(body, name, m1, m2) : -2;

    free(body);
    return v;
}

/* cm_th_wait_metric on the daemon, the time scaled. */
static double wait_metric(const char *name, const char *m1, const char *m2, double want,
                          double timeout_s)
{
    return cm_th_wait_metric(mport, name, m1, m2, want, timeout_s * CERTMON_SLOWDOWN);
}

/* The DNS server with the zone of this moment: the SRV records given (dnsmasq srv-host
 * values after the name), the MX record, and every host on 127.0.0.1. TTL 1: the daemon's
 * 1 s refresh is not held back by it. */
static bool dns_serve(const char *srv_records)
{
    char records[2048];

    cm_th_stop(pid_dns);
    snprintf(records, sizeof(records),
             "local=/example.test/\n"
             "%s"
             "mx-host=example.test,mx1.example.test,10\n"
             "host-record=a.example.test,127.0.0.1\n"
             "host-record=b.example.test,127.0.0.1\n"
             "host-record=c.example.test,127.0.0.1\n"
             "host-record=mx1.example.test,127.0.0.1\n",
             srv_records);
    pid_dns = cm_th_dnsmasq(dir, port_dns, 1, records);
    return pid_dns > 0;
}

static int suite_init(void)
{
    char port_s[16], servers[64];

    snprintf(dir, sizeof(dir), "/tmp/certmon-dnsdisc-XXXXXX");
    if (!mkdtemp(dir) || !cm_th_pki_dir())
        return -1;
    snprintf(conf, sizeof(conf), "%s/certmon.conf", dir);
    snprintf(logpath, sizeof(logpath), "%s/daemon.log", dir);
    snprintf(peerlog, sizeof(peerlog), "%s/smtp.log", dir);
    port_a = cm_th_free_port();
    port_b = cm_th_free_port();
    port_c = cm_th_free_port();
    port_smtp = cm_th_free_port();
    port_dns = cm_th_free_dns_port();
    mport = cm_th_free_port();
    pid_a = cm_th_s_server(port_a, "valid.pem", "leaf.key", true);
    pid_b = cm_th_s_server(port_b, "valid.pem", "leaf.key", true);
    pid_c = cm_th_s_server(port_c, "valid.pem", "leaf.key", true);
    snprintf(port_s, sizeof(port_s), "%d", port_smtp);
    char *argv[] = {"/usr/bin/python3",
                    (char *)cm_th_script("starttls_peer.py"),
                    "--proto",
                    "smtp",
                    "--port",
                    port_s,
                    "--cert",
                    (char *)cm_th_pki("valid.chain.pem"),
                    "--key",
                    (char *)cm_th_pki("leaf.key"),
                    "--max-conns",
                    "50",
                    "--lifetime",
                    "200",
                    "--ehlo-name",
                    CM_STARTTLS_CLIENT_NAME,
                    NULL};
    pid_smtp = cm_th_spawn(argv, peerlog);
    if (pid_a <= 0 || pid_b <= 0 || pid_c <= 0 || pid_smtp <= 0 ||
        !cm_th_wait_text(peerlog, "ready", 10 * CERTMON_SLOWDOWN))
        return -1;
    /* The daemon (spawned with this environment) asks dnsmasq alone. */
    snprintf(servers, sizeof(servers), "127.0.0.1:%d", port_dns);
    setenv("CERTMON_DNS_SERVERS", servers, 1);
    return 0;
}

static int suite_cleanup(void)
{
    if (pid_d > 0)
        cm_th_signal_wait(pid_d, SIGTERM, 10, NULL);
    cm_th_stop(pid_a);
    cm_th_stop(pid_b);
    cm_th_stop(pid_c);
    cm_th_stop(pid_smtp);
    cm_th_stop(pid_dns);
    if (!getenv("CERTMON_KEEP"))
        cm_th_remove_tree(dir);
    return 0;
}

static char *name_of(char *buf, size_t len, const char *host, int port)
{
    snprintf(buf, len, "target=\"%s:%d\"", host, port);
    return buf;
}

/* The daemon: no configured target; a SRV source and a MX source (its exchange probed on the
 * peer's port instead of 25), both looked up every second, probes once an hour: every probe
 * after the first comes from a change. */
static void test_start(void)
{
    char *argv[] = {(char *)cm_th_certmon(), "run", "-c", conf, NULL};
    char ta[64], tb[64], tm[64], srv[256];

    snprintf(srv, sizeof(srv),
             "srv-host=" SRV_NAME ",a.example.test,%d,10,5\n"
             "srv-host=" SRV_NAME ",b.example.test,%d,20,1\n",
             port_a, port_b);
    CU_ASSERT_FATAL(dns_serve(srv));
    cm_th_write_config(
        conf,
        "global = { interval = \"1h\"; startup_spread = \"1s\"; state_file = "
        "\"%s/state.db\"; };\n"
        "log = { level = \"debug\"; };\n"
        "metrics = { listen = \"127.0.0.1:%d\"; };\n"
        "discovery = ( { name = \"web\"; srv = \"" SRV_NAME "\"; refresh = \"1s\";\n"
        "                timeout = \"2s\"; ca_file = \"%s\"; posture = false;\n"
        "                labels = { team = \"web\"; }; },\n"
        "              { name = \"mail\"; mx = \"example.test\"; port = %d;\n"
        "                refresh = \"1s\"; ca_file = \"%s\"; posture = false; } );\n",
        dir, mport, cm_th_pki("root.pem"), port_smtp, cm_th_pki("root.pem"));
    pid_d = cm_th_spawn(argv, logpath);
    CU_ASSERT_FATAL(pid_d > 0);
    CU_ASSERT_FATAL(cm_th_wait_port(mport, (int)(10000 * CERTMON_SLOWDOWN)));
    name_of(ta, sizeof(ta), "a.example.test", port_a);
    name_of(tb, sizeof(tb), "b.example.test", port_b);
    name_of(tm, sizeof(tm), "mx1.example.test", port_smtp);
    /* Probed (so in /metrics) within seconds of the start. */
    CU_ASSERT(wait_metric("certmon_probe_success", ta, "team=\"web\"", 1, 10) >= 0);
    CU_ASSERT(wait_metric("certmon_probe_success", tb, NULL, 1, 10) >= 0);
    /* The peer speaks TLS only after EHLO and STARTTLS: a success is a STARTTLS probe. */
    CU_ASSERT(wait_metric("certmon_probe_success", tm, NULL, 1, 10) >= 0);

    char *m = cm_th_http_get_ok(mport, "/metrics");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    EXPECT_INT(cm_th_metric(m, "certmon_targets", NULL, NULL), 3);
    EXPECT_INT(cm_th_metric(m, "certmon_discovery_targets", "source=\"web\"", NULL), 2);
    EXPECT_INT(cm_th_metric(m, "certmon_discovery_targets", "source=\"mail\"", NULL), 1);
    EXPECT_INT(cm_th_metric(m, "certmon_discovery_file_valid", SRV_FILE, NULL), 1);
    EXPECT_INT(cm_th_metric(m, "certmon_discovery_file_valid", "file=\"mx:example.test\"", NULL),
               1);
    EXPECT_INT(cm_th_metric(m, "certmon_discovery_errors_total", SRV_FILE, NULL), 0);
    CU_ASSERT(cm_th_metric(m, "certmon_discovery_last_success_timestamp_seconds", SRV_FILE, NULL) >
              1.7e9);
    free(m);
    char *peer = cm_th_read_text(peerlog);
    CU_ASSERT(peer && !strstr(peer, "ERROR"));
    free(peer);
}

/* Other records on the same port: b leaves, c comes, within seconds; a, unchanged, keeps its
 * state (no new probe in a 1 h interval). */
static void test_records_change(void)
{
    char ta[64], tb[64], tc[64], srv[256];
    double a_at, took;

    name_of(ta, sizeof(ta), "a.example.test", port_a);
    name_of(tb, sizeof(tb), "b.example.test", port_b);
    name_of(tc, sizeof(tc), "c.example.test", port_c);
    a_at = metric_now("certmon_last_probe_timestamp_seconds", ta, NULL);
    CU_ASSERT(a_at > 0);
    sleep(1); /* a new probe of a would show a later second */
    snprintf(srv, sizeof(srv),
             "srv-host=" SRV_NAME ",a.example.test,%d,10,5\n"
             "srv-host=" SRV_NAME ",c.example.test,%d,30,0\n",
             port_a, port_c);
    CU_ASSERT_FATAL(dns_serve(srv));
    took = wait_metric("certmon_probe_success", tc, NULL, 1, 10);
    fprintf(stderr, "(c probed %.2f s after the new records) ", took);
    CU_ASSERT(took >= 0 && took < 5 * CERTMON_SLOWDOWN);
    CU_ASSERT(wait_metric("certmon_probe_success", tb, NULL, -1, 5) >= 0);
    EXPECT_INT(metric_now("certmon_last_probe_timestamp_seconds", ta, NULL), a_at);
    EXPECT_INT(metric_now("certmon_discovery_targets", "source=\"web\"", NULL), 2);
    EXPECT_INT(metric_now("certmon_targets", NULL, NULL), 3);
}

/* The name gone (NXDOMAIN), then the DNS server gone: every lookup fails, the targets stay,
 * /metrics and the log say so; a SIGHUP meanwhile keeps them too (the last good answer under
 * the new configuration, not a lookup); the server back, the source is valid again. */
static void test_lookups_fail(void)
{
    char ta[64], tc[64], srv[256];
    double a_at;

    name_of(ta, sizeof(ta), "a.example.test", port_a);
    name_of(tc, sizeof(tc), "c.example.test", port_c);
    a_at = metric_now("certmon_last_probe_timestamp_seconds", ta, NULL);
    CU_ASSERT_FATAL(dns_serve(""));
    CU_ASSERT(cm_th_wait_text(logpath, "lookup failed: Domain name not found (EDNS_NXDOMAIN)",
                              5 * CERTMON_SLOWDOWN));
    EXPECT_INT(metric_now("certmon_discovery_file_valid", SRV_FILE, NULL), 0);
    EXPECT_INT(metric_now("certmon_probe_success", ta, NULL), 1);
    EXPECT_INT(metric_now("certmon_probe_success", tc, NULL), 1);

    cm_th_stop(pid_dns);
    pid_dns = -1;
    CU_ASSERT(cm_th_wait_text(logpath, "(EDNS_SERVFAIL); its 2 targets stay as they were",
                              5 * CERTMON_SLOWDOWN));
    CU_ASSERT(metric_now("certmon_discovery_errors_total", SRV_FILE, NULL) >= 2);
    EXPECT_INT(metric_now("certmon_probe_success", ta, NULL), 1);
    EXPECT_INT(metric_now("certmon_probe_success", tc, NULL), 1);
    EXPECT_INT(metric_now("certmon_discovery_targets", "source=\"web\"", NULL), 2);

    CU_ASSERT_EQUAL_FATAL(kill(pid_d, SIGHUP), 0);
    CU_ASSERT(cm_th_wait_text(logpath, "reloaded targets=3", 10 * CERTMON_SLOWDOWN));
    sleep(1);
    EXPECT_INT(metric_now("certmon_last_probe_timestamp_seconds", ta, NULL), a_at);
    EXPECT_INT(metric_now("certmon_probe_success", tc, NULL), 1);
    EXPECT_INT(metric_now("certmon_discovery_file_valid", SRV_FILE, NULL), 0);

    snprintf(srv, sizeof(srv),
             "srv-host=" SRV_NAME ",a.example.test,%d,10,5\n"
             "srv-host=" SRV_NAME ",c.example.test,%d,30,0\n",
             port_a, port_c);
    CU_ASSERT_FATAL(dns_serve(srv));
    CU_ASSERT(wait_metric("certmon_discovery_file_valid", SRV_FILE, NULL, 1, 10) >= 0);
    EXPECT_INT(metric_now("certmon_last_probe_timestamp_seconds", ta, NULL), a_at);
}

/* "." as the only target: the service is not offered; its targets leave, the MX one stays. */
static void test_not_offered(void)
{
    char ta[64], tc[64], tm[64];

    name_of(ta, sizeof(ta), "a.example.test", port_a);
    name_of(tc, sizeof(tc), "c.example.test", port_c);
    name_of(tm, sizeof(tm), "mx1.example.test", port_smtp);
    CU_ASSERT_FATAL(dns_serve("srv-host=" SRV_NAME "\n"));
    CU_ASSERT(wait_metric("certmon_probe_success", ta, NULL, -1, 10) >= 0);
    CU_ASSERT(wait_metric("certmon_probe_success", tc, NULL, -1, 5) >= 0);
    EXPECT_INT(metric_now("certmon_discovery_targets", "source=\"web\"", NULL), 0);
    EXPECT_INT(metric_now("certmon_discovery_file_valid", SRV_FILE, NULL), 1);
    EXPECT_INT(metric_now("certmon_probe_success", tm, NULL), 1);
    CU_ASSERT(cm_th_wait_text(logpath, "the records say the service is not offered",
                              5 * CERTMON_SLOWDOWN));
}

static void test_stop(void)
{
    EXPECT_INT(cm_th_signal_wait(pid_d, SIGTERM, 10, NULL), 0);
    pid_d = 0;
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"SRV and MX expand to probed targets", test_start},
        {"changed records add and remove targets", test_records_change},
        {"NXDOMAIN, a DNS server gone, a reload meanwhile: the targets stay", test_lookups_fail},
        {"'.' empties the list", test_not_offered},
        {"SIGTERM", test_stop},
        CU_TEST_INFO_NULL,
    };
    return cm_test_main("dnsdisc", tests, suite_init, suite_cleanup);
}
