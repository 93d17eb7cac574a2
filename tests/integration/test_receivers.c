/* The receivers of services, from a running daemon to the scripted receiver on 127.0.0.1
 * standing in for each service: PagerDuty (trigger and resolve with one dedup_key, 202 taken,
 * a 429 retried, a 400 dropped with PagerDuty's error text in the log), a Teams card, a
 * Telegram sendMessage (the bot token in the request path and nowhere in the log) and an ntfy
 * publish (headers). The JSON bodies are checked against JSON Schemas written from the
 * services' published references (tests/schemas). */
#include "cmtest.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

/* 32 characters, as PagerDuty's integration keys are. */
#define ROUTING_KEY "R0utingKey0123456789abcdefABCDEF"
#define BOT_TOKEN "4242424242:AAHsecretBotToken_fromBotFather-xyz"
#define NTFY_TOKEN "tk_ntfysecret0123456789"
#define PD_OK "{\"status\":\"success\",\"message\":\"Event processed\",\"dedup_key\":\"x\"}"
#define PD_BAD                                                                                     \
    "{\"status\":\"invalid event\",\"message\":\"Event object is invalid\",\"errors\":[\"Length "  \
    "of 'routing_key' is incorrect (should be 32 characters)\"]}"

static char dir[256];
static int port_tls;
static pid_t pid_tls;

static int suite_init(void)
{
    snprintf(dir, sizeof(dir), "/tmp/certmon-receivers-XXXXXX");
    if (!mkdtemp(dir) || !cm_th_pki_dir())
        return -1;
    cm_th_no_proxy();
    port_tls = cm_th_free_port();
    /* A self-signed server: chain.self_signed, critical. */
    pid_tls = cm_th_s_server(port_tls, "self.pem", "self.key", false);
    return pid_tls > 0 ? 0 : -1;
}

static int suite_cleanup(void)
{
    char *out = NULL, cmd[300];
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};

    cm_th_stop(pid_tls);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cm_th_run(argv, &out, 30, NULL);
    free(out);
    return 0;
}

static pid_t start_daemon(const char *conf, const char *log)
{
    char *argv[] = {(char *)cm_th_certmon(), "run", "-c", (char *)conf, NULL};

    return cm_th_spawn(argv, log);
}

/* Validates body (JSON text) against tests/schemas/SCHEMA with validate_json.py; the output
 * goes to stderr when it fails. Returns the validator's exit status. */
static int validate(const char *schema, const char *body, const char *name)
{
    char sp[600], *out = NULL;
    const char *file = cm_th_path(dir, name);
    char *argv[] = {"/usr/bin/python3", (char *)cm_th_script("validate_json.py"), sp, (char *)file,
                    NULL};
    int rc;

    snprintf(sp, sizeof(sp), "%s", cm_th_script("../schemas/"));
    strncat(sp, schema, sizeof(sp) - strlen(sp) - 1);
    cm_th_write_config(file, "%s", body ? body : "");
    rc = cm_th_run(argv, &out, 30, NULL);
    if (rc != 0)
        fprintf(stderr, "\n  %s", out ? out : "");
    free(out);
    return rc;
}

/* The schemas themselves: a document from the services' examples passes, a wrong one fails
 * (so that a pass of the daemon's payloads means something). */
static void test_schemas(void)
{
    EXPECT_INT(validate("pagerduty-events-v2.schema.json",
                        "{\"routing_key\":\"k\",\"event_action\":\"trigger\",\"payload\":"
                        "{\"summary\":\"Example alert on host1.example.com\",\"timestamp\":"
                        "\"2015-07-17T08:42:58.315+00:00\",\"source\":\"host1\",\"severity\":"
                        "\"info\",\"component\":\"postgres\",\"group\":\"prod-datapipe\","
                        "\"class\":\"deploy\",\"custom_details\":{\"load avg\":0.75}},"
                        "\"dedup_key\":\"k\",\"client\":\"Sample\",\"client_url\":"
                        "\"https://monitoring.example.com\"}",
                        "pd-example.json"),
               0);
    EXPECT_INT(validate("pagerduty-events-v2.schema.json",
                        "{\"routing_key\":\"k\",\"event_action\":\"resolve\"}", "pd-bad1.json"),
               1);
    EXPECT_INT(validate("pagerduty-events-v2.schema.json",
                        "{\"routing_key\":\"k\",\"event_action\":\"trigger\",\"payload\":"
                        "{\"summary\":\"s\",\"source\":\"h\",\"severity\":\"fatal\"}}",
                        "pd-bad2.json"),
               1);
    EXPECT_INT(validate("teams-adaptive-card-message.schema.json",
                        "{\"type\":\"message\",\"attachments\":[{\"contentType\":"
                        "\"application/vnd.microsoft.card.adaptive\",\"contentUrl\":null,"
                        "\"content\":{\"$schema\":\"http://adaptivecards.io/schemas/"
                        "adaptive-card.json\",\"type\":\"AdaptiveCard\",\"version\":\"1.2\","
                        "\"body\":[{\"type\":\"TextBlock\",\"text\":\"For Samples and "
                        "Templates, see https://adaptivecards.io/samples\"}]}}]}",
                        "teams-example.json"),
               0);
    EXPECT_INT(validate("teams-adaptive-card-message.schema.json",
                        "{\"type\":\"message\",\"attachments\":[{\"contentType\":"
                        "\"application/vnd.microsoft.card.adaptive\",\"content\":{\"type\":"
                        "\"AdaptiveCard\",\"version\":\"1.4\",\"body\":[]}}]}",
                        "teams-bad.json"),
               1);
}

/* PagerDuty: one daemon, two PagerDuty notifiers. The first receiver answers 429 (Retry-After
 * 1), then 202: the trigger arrives twice, identical; the renewal sends a resolve with the
 * same dedup_key. The second answers 400 with PagerDuty's error: one attempt, no retry, the
 * error in the log. The routing key is never in the log. */
static void test_pagerduty(void)
{
    const char *conf = cm_th_path(dir, "pd.conf"), *log = cm_th_path(dir, "pd.log");
    const char *rx = cm_th_path(dir, "pd-rx.jsonl"), *rx_bad = cm_th_path(dir, "pd-bad.jsonl");
    int port = cm_th_free_port(), port_bad = cm_th_free_port();
    pid_t r1 =
        cm_th_rx_start(port, rx, "--responses", "429,202", "--retry-after", "1", "--answer-body",
                       "202=" PD_OK, "--content-type", "application/json", NULL);
    pid_t r2 = cm_th_rx_start(port_bad, rx_bad, "--responses", "400", "--answer-body",
                              "400=" PD_BAD, "--content-type", "application/json", NULL);
    char target[64], *text;
    json_t *r, *b0, *b1, *b2;
    pid_t pid;

    CU_ASSERT_FATAL(r1 > 0 && r2 > 0);
    snprintf(target, sizeof(target), "localhost:%d", port_tls);
    cm_th_write_config(cm_th_path(dir, "pd.key"), ROUTING_KEY "\n");
    cm_th_write_config(conf,
                       "global = { interval = \"2s\"; timeout = \"5s\"; startup_spread = \"0s\";\n"
                       "           posture_interval = \"off\"; state_file = \"pd-state.json\";\n"
                       "           ignore = [ \"cert.changed\" ]; };\n"
                       "log = { level = \"debug\"; };\n"
                       "targets = ( { host = \"localhost\"; port = %d; ca_file = \"%s\"; } );\n"
                       "notifiers = (\n"
                       "  { name = \"pd\"; type = \"pagerduty\"; routing_key_file = \"pd.key\";\n"
                       "    url = \"http://127.0.0.1:%d/v2/enqueue\"; group_wait = \"1s\";\n"
                       "    client_url = \"http://certmon.example/\"; },\n"
                       "  { name = \"pdbad\"; type = \"pagerduty\"; routing_key = \"short\";\n"
                       "    url = \"http://127.0.0.1:%d/v2/enqueue\"; group_wait = \"1s\"; } );\n",
                       port_tls, cm_th_pki("root.pem"), port, port_bad);
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);

    /* 429, then the retry after Retry-After: the same event. */
    EXPECT_INT(cm_th_rx_wait(rx, 2, 20 * CERTMON_SLOWDOWN), 2);
    EXPECT_INT(cm_th_rx_wait(rx_bad, 1, 10 * CERTMON_SLOWDOWN), 1);
    r = cm_th_rx_requests(rx);
    EXPECT_STR(cm_json_str(r, "0.answer"), "429");
    EXPECT_STR(cm_json_str(r, "1.answer"), "202");
    EXPECT_STR(cm_json_str(r, "1.path"), "/v2/enqueue");
    EXPECT_STR(cm_json_str(r, "1.headers.content-type"), "application/json");
    CU_ASSERT(cm_json_get(r, "1.time") && cm_json_get(r, "0.time") &&
              json_real_value(cm_json_get(r, "1.time")) -
                      json_real_value(cm_json_get(r, "0.time")) >=
                  0.9);
    b0 = cm_th_rx_body(r, 0);
    b1 = cm_th_rx_body(r, 1);
    CU_ASSERT_FATAL(b0 && b1);
    CU_ASSERT(json_equal(b0, b1));
    EXPECT_STR(cm_json_str(b1, "routing_key"), ROUTING_KEY);
    EXPECT_STR(cm_json_str(b1, "event_action"), "trigger");
    CU_ASSERT(cm_json_str(b1, "dedup_key") &&
              strncmp(cm_json_str(b1, "dedup_key"), "certmon-", 8) == 0);
    EXPECT_STR(cm_json_str(b1, "payload.source"), target);
    EXPECT_STR(cm_json_str(b1, "payload.severity"), "critical");
    EXPECT_STR(cm_json_str(b1, "payload.class"), "chain.self_signed");
    EXPECT_STR(cm_json_str(b1, "payload.custom_details.finding"), "chain.self_signed");
    EXPECT_STR(cm_json_str(b1, "client"), "certmon");
    EXPECT_STR(cm_json_str(b1, "client_url"), "http://certmon.example/");
    EXPECT_INT(
        validate("pagerduty-events-v2.schema.json", cm_json_str(r, "1.body"), "pd-trigger.json"),
        0);
    json_decref(r);

    /* Renewal: a resolve with the same dedup_key. */
    cm_th_stop(pid_tls);
    pid_tls = cm_th_s_server(port_tls, "valid.pem", "leaf.key", true);
    CU_ASSERT_FATAL(pid_tls > 0);
    EXPECT_INT(cm_th_rx_wait(rx, 3, 20 * CERTMON_SLOWDOWN), 3);
    r = cm_th_rx_requests(rx);
    b2 = cm_th_rx_body(r, 2);
    CU_ASSERT_FATAL(b2 != NULL);
    EXPECT_STR(cm_json_str(b2, "event_action"), "resolve");
    EXPECT_STR(cm_json_str(b2, "dedup_key"), cm_json_str(b1, "dedup_key"));
    EXPECT_STR(cm_json_str(b2, "routing_key"), ROUTING_KEY);
    EXPECT_STR(cm_json_str(r, "2.answer"), "202");
    EXPECT_INT(
        validate("pagerduty-events-v2.schema.json", cm_json_str(r, "2.body"), "pd-resolve.json"),
        0);
    json_decref(r);

    /* The 400 was not retried (the resolve of that alert is its second request, if any:
     * only triggers are counted), and its error is in the log, escaped, on one line. */
    r = cm_th_rx_requests(rx_bad);
    {
        size_t triggers = 0, i;
        json_t *e;
        json_array_foreach(r, i, e)
        {
            json_t *b = cm_th_rx_body(r, i);
            triggers += cm_json_str(b, "event_action") &&
                        !strcmp(cm_json_str(b, "event_action"), "trigger");
            json_decref(b);
        }
        EXPECT_INT(triggers, 1);
    }
    json_decref(r);
    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
    text = cm_th_read_text(log);
    CU_ASSERT_FATAL(text != NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "notifier=pdbad url=http://127.0.0.1:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "message refused, dropped: status=400 notices=1 "
                                        "answer=\"Event object is invalid: Length of "
                                        "'routing_key' is incorrect (should be 32 characters)\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "notifier=pd url="));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "attempt failed: status=429"));
    CU_ASSERT_PTR_NULL(strstr(text, ROUTING_KEY));
    CU_ASSERT_PTR_NULL(strstr(text, "routing_key\":\"short"));
    free(text);
    json_decref(b0);
    json_decref(b1);
    json_decref(b2);
    cm_th_stop(r1);
    cm_th_stop(r2);
    /* Back to the self-signed server for the next test. */
    cm_th_stop(pid_tls);
    pid_tls = cm_th_s_server(port_tls, "self.pem", "self.key", false);
    CU_ASSERT_FATAL(pid_tls > 0);
}

/* The first request of rx whose path starts with prefix, or NULL. */
static json_t *by_path(json_t *r, const char *prefix)
{
    size_t i;
    json_t *e;

    json_array_foreach(r, i, e)
    {
        const char *p = cm_json_str(e, "path");
        if (p && strncmp(p, prefix, strlen(prefix)) == 0)
            return e;
    }
    return NULL;
}

/* Teams, Telegram and ntfy from one daemon to one receiver (a path each). The receiver fails
 * the first request (500, its answer quoting the bot token) so that a retry is logged. */
static void test_teams_telegram_ntfy(void)
{
    const char *conf = cm_th_path(dir, "chat.conf"), *log = cm_th_path(dir, "chat.log");
    const char *rx = cm_th_path(dir, "chat-rx.jsonl"), *rxt = cm_th_path(dir, "tg-rx.jsonl");
    int port = cm_th_free_port(), port_tg = cm_th_free_port();
    pid_t r1 = cm_th_rx_start(port, rx, "--responses", "200", NULL);
    pid_t r2 = cm_th_rx_start(port_tg, rxt, "--responses", "500,200", "--answer-body",
                              "500={\"ok\":false,\"error_code\":500,\"description\":\"Internal: "
                              "bot" BOT_TOKEN " broke\"}",
                              "--answer-body", "200={\"ok\":true,\"result\":{}}", NULL);
    char target[64], want[128], *text;
    json_t *r, *t, *body;
    pid_t pid;

    CU_ASSERT_FATAL(r1 > 0 && r2 > 0);
    snprintf(target, sizeof(target), "localhost:%d", port_tls);
    cm_th_write_config(cm_th_path(dir, "ntfy.token"), NTFY_TOKEN "\n");
    cm_th_write_config(
        conf,
        "global = { interval = \"2s\"; timeout = \"5s\"; startup_spread = \"0s\";\n"
        "           posture_interval = \"off\"; ignore = [ \"cert.changed\" ]; };\n"
        "log = { level = \"debug\"; };\n"
        "targets = ( { host = \"localhost\"; port = %d; ca_file = \"%s\"; } );\n"
        "notifiers = (\n"
        "  { name = \"teams\"; type = \"teams\"; group_wait = \"1s\";\n"
        "    url = \"http://127.0.0.1:%d/teams/workflows/abc\"; },\n"
        "  { name = \"tg\"; type = \"telegram\"; bot_token = \"" BOT_TOKEN "\";\n"
        "    chat_id = \"-1001234567890\"; url = \"http://127.0.0.1:%d/\";\n"
        "    group_wait = \"1s\"; },\n"
        "  { name = \"ntfy\"; type = \"ntfy\"; token_file = \"ntfy.token\";\n"
        "    url = \"http://127.0.0.1:%d/ntfy/certmon-alerts\"; group_wait = \"1s\"; } );\n",
        port_tls, cm_th_pki("root.pem"), port, port_tg, port);
    pid = start_daemon(conf, log);
    CU_ASSERT_FATAL(pid > 0);
    EXPECT_INT(cm_th_rx_wait(rx, 2, 20 * CERTMON_SLOWDOWN), 2);
    EXPECT_INT(cm_th_rx_wait(rxt, 2, 20 * CERTMON_SLOWDOWN), 2);
    r = cm_th_rx_requests(rx);

    /* Teams: the card, valid against the schema, naming the finding and the target. */
    t = by_path(r, "/teams/workflows/abc");
    CU_ASSERT_FATAL(t != NULL);
    EXPECT_STR(cm_json_str(t, "headers.content-type"), "application/json");
    EXPECT_INT(
        validate("teams-adaptive-card-message.schema.json", cm_json_str(t, "body"), "teams.json"),
        0);
    body = json_loads(cm_json_str(t, "body"), 0, NULL);
    EXPECT_STR(cm_json_str(body, "attachments.0.contentType"),
               "application/vnd.microsoft.card.adaptive");
    /* Card text is Markdown: the '_' of the id is escaped. */
    snprintf(want, sizeof(want), "CRITICAL: chain.self\\_signed on %s", target);
    CU_ASSERT(cm_json_str(body, "attachments.0.content.body.1.text") &&
              strstr(cm_json_str(body, "attachments.0.content.body.1.text"), want));
    snprintf(want, sizeof(want), "CRITICAL: chain.self_signed on %s", target);
    EXPECT_STR(cm_json_str(body, "attachments.0.content.body.3.facts.0.value"), target);
    json_decref(body);

    /* ntfy: the text, and what it says in headers. */
    t = by_path(r, "/ntfy/certmon-alerts");
    CU_ASSERT_FATAL(t != NULL);
    EXPECT_STR(cm_json_str(t, "headers.title"), want);
    EXPECT_STR(cm_json_str(t, "headers.priority"), "5");
    EXPECT_STR(cm_json_str(t, "headers.tags"), "rotating_light,certmon,chain.self_signed");
    EXPECT_STR(cm_json_str(t, "headers.authorization"), "Bearer " NTFY_TOKEN);
    EXPECT_STR(cm_json_str(t, "headers.content-type"), "text/plain; charset=utf-8");
    CU_ASSERT(cm_json_str(t, "body") && strncmp(cm_json_str(t, "body"), want, strlen(want)) == 0);
    json_decref(r);

    /* Telegram: sendMessage under /bot<token>/, retried after the 500. */
    r = cm_th_rx_requests(rxt);
    EXPECT_STR(cm_json_str(r, "0.answer"), "500");
    EXPECT_STR(cm_json_str(r, "1.answer"), "200");
    EXPECT_STR(cm_json_str(r, "1.path"), "/bot" BOT_TOKEN "/sendMessage");
    body = cm_th_rx_body(r, 1);
    EXPECT_STR(cm_json_str(body, "chat_id"), "-1001234567890");
    EXPECT_STR(cm_json_str(body, "parse_mode"), "HTML");
    snprintf(want, sizeof(want), "<code>chain.self_signed</code> on <b>%s</b>", target);
    CU_ASSERT(cm_json_str(body, "text") && strstr(cm_json_str(body, "text"), want));
    json_decref(body);
    json_decref(r);

    EXPECT_INT(cm_th_signal_wait(pid, SIGTERM, 10, NULL), 0);
    text = cm_th_read_text(log);
    CU_ASSERT_FATAL(text != NULL);
    /* The failure is logged, with the receiver's answer, without the token anywhere (the
     * answer quoted it; libcurl's debug line names the URL). */
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "notifier=tg url=http://127.0.0.1:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "attempt failed: status=500"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "answer=\"Internal: bot*** broke\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "/***/sendMessage"));
    CU_ASSERT_PTR_NULL(strstr(text, "AAHsecretBotToken"));
    CU_ASSERT_PTR_NULL(strstr(text, NTFY_TOKEN));
    if (strstr(text, "AAHsecretBotToken") || strstr(text, NTFY_TOKEN))
        fprintf(stderr, "\n  daemon log:\n%s\n", text);
    free(text);
    cm_th_stop(r1);
    cm_th_stop(r2);
}

/* certmon notify-test through a Telegram notifier whose Bot API is down: the error printed
 * names no token. */
static void test_notify_test_redacts(void)
{
    const char *conf = cm_th_path(dir, "nt.conf");
    int dead = cm_th_free_port();
    char *out = NULL;
    char *argv[] = {(char *)cm_th_certmon(), "notify-test", "-c", (char *)conf, NULL};

    cm_th_write_config(
        conf,
        "targets = ( { host = \"localhost\"; port = 443; } );\n"
        "notifiers = ( { name = \"tg\"; type = \"telegram\"; bot_token = \"" BOT_TOKEN "\";\n"
        "    chat_id = \"@ops\"; url = \"http://127.0.0.1:%d\"; timeout = \"2s\"; } );\n",
        dead);
    EXPECT_INT(cm_th_run(argv, &out, 30, NULL), 1);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "tg (telegram): FAILED"));
    CU_ASSERT_PTR_NULL(out && strstr(out, "AAHsecretBotToken"));
    free(out);
}

static CU_TestInfo tests[] = {
    {"the schemas take the services' examples and refuse wrong ones", test_schemas},
    {"PagerDuty: trigger, 429 retried, resolve with the same dedup_key, 400 dropped",
     test_pagerduty},
    {"Teams card, Telegram sendMessage (token redacted), ntfy headers", test_teams_telegram_ntfy},
    {"notify-test prints no bot token", test_notify_test_redacts},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("receivers", tests, suite_init, suite_cleanup);
}
