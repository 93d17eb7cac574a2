/* Notification payloads: exact structure of every format, escaping, signatures, email
 * framing and header injection, Alertmanager's endsAt rules, the notice JSON round trip. */
#include "cmtest.h"

#include "certmon/base/error.h"
#include "certmon/base/text.h"
#include "certmon/notify/payload.h"
#include "certmon/probe/x509.h"

#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 2023-11-18T09:33:20Z: the sending time of every test. */
#define NOW 1700300000
#define DAY 86400

/* ---- Fixtures ---- */

static char *lk[] = {"env", "team"};
static char *lv[] = {"prod", "web"};
static const struct cm_labels labels2 = {lk, lv, 2};

static struct cm_notice *mk(enum cm_alert_kind kind, const char *target, const char *id,
                            int position, enum cm_severity sev, enum cm_severity prev,
                            const char *message, const struct cm_labels *labels)
{
    struct cm_alert_event ev = {
        .kind = kind,
        .target = target,
        .id = id,
        .position = position,
        .severity = sev,
        .previous = prev,
        .message = message,
        .started_at = NOW - 3 * DAY,
        .fired_at = NOW - 2 * DAY,
        .at = kind == CM_ALERT_FIRING ? NOW - 2 * DAY : NOW - 60,
    };
    struct cm_notice *n = cm_notice_new(&ev, labels);

    CU_ASSERT_FATAL(n != NULL);
    return n;
}

static struct cm_notice *expired(enum cm_alert_kind kind)
{
    return mk(kind, "www.example.com:443", "cert.expired", 0, CM_SEV_CRITICAL,
              kind == CM_ALERT_CHANGED ? CM_SEV_WARNING : CM_SEV_CRITICAL,
              "certificate expired 3 days ago", &labels2);
}

/* Three notices with mixed severities on two targets. */
static void group3(struct cm_notice *g[3])
{
    g[0] = expired(CM_ALERT_FIRING);
    g[1] = mk(CM_ALERT_FIRING, "mail.example.org:465", "cert.expiring", 0, CM_SEV_WARNING,
              CM_SEV_WARNING, "certificate expires in 12 days", NULL);
    g[2] = mk(CM_ALERT_FIRING, "mail.example.org:465", "protocol.legacy", -1, CM_SEV_WARNING,
              CM_SEV_WARNING, "the server accepts TLS1.0", NULL);
}

static void free_all(struct cm_notice **g, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cm_notice_free(g[i]);
}

static json_t *parse(char *text)
{
    json_error_t err;
    json_t *j;

    CU_ASSERT_FATAL(text != NULL);
    j = json_loads(text, 0, &err);
    if (!j)
        fprintf(stderr, "not JSON (%s): %s\n", err.text, text);
    free(text);
    CU_ASSERT_FATAL(j != NULL);
    return j;
}

static size_t count_str(const char *hay, const char *needle)
{
    size_t k = 0;

    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        k++;
    return k;
}

/* The keys of object o, comma-separated, in order. */
static const char *keys_of(json_t *o)
{
    static char buf[512];
    const char *k;
    json_t *v;

    buf[0] = '\0';
    json_object_foreach(o, k, v)
    {
        if (buf[0])
            strncat(buf, ",", sizeof(buf) - strlen(buf) - 1);
        strncat(buf, k, sizeof(buf) - strlen(buf) - 1);
    }
    return buf;
}

/* ---- Notices ---- */

static void test_notice_new_copies(void)
{
    char target[] = "www.example.com:443", msg[] = "expired", id[] = "cert.expired";
    char *k[] = {"env"}, *v[] = {"prod"};
    struct cm_labels l = {k, v, 1};
    struct cm_alert_event ev = {CM_ALERT_FIRING, target, id, 2,  CM_SEV_CRITICAL,
                                CM_SEV_CRITICAL, msg,    10, 20, 30};
    struct cm_notice *n = cm_notice_new(&ev, &l);

    CU_ASSERT_FATAL(n != NULL);
    /* Owned copies: the event's strings may die after the emit callback. */
    target[0] = 'X';
    msg[0] = 'X';
    EXPECT_STR(n->target, "www.example.com:443");
    EXPECT_STR(n->message, "expired");
    CU_ASSERT(n->id == cm_finding_lookup("cert.expired")->id);
    EXPECT_INT(n->position, 2);
    EXPECT_INT(n->started_at, 10);
    EXPECT_INT(n->fired_at, 20);
    EXPECT_INT(n->at, 30);
    EXPECT_INT(n->labels.count, 1);
    CU_ASSERT(n->labels.keys[0] != k[0]);
    EXPECT_STR(n->labels.values[0], "prod");
    cm_notice_free(n);

    ev.target = NULL;
    ev.message = NULL;
    n = cm_notice_new(&ev, NULL);
    CU_ASSERT_FATAL(n != NULL);
    EXPECT_STR(n->target, "");
    EXPECT_STR(n->message, "");
    EXPECT_INT(n->labels.count, 0);
    cm_notice_free(n);

    CU_ASSERT(cm_notice_new(NULL, NULL) == NULL);
    cm_notice_free(NULL);
}

static void test_notice_round_trip(void)
{
    struct cm_notice *a = expired(CM_ALERT_CHANGED), *b;
    json_t *j = cm_notice_to_json(a), *again;
    char *text;

    CU_ASSERT_FATAL(j != NULL);
    EXPECT_STR(keys_of(j),
               "kind,target,id,position,severity,previous,message,started_at,fired_at,at,labels");
    EXPECT_STR(cm_json_str(j, "kind"), "changed");
    EXPECT_STR(cm_json_str(j, "previous"), "warning");
    EXPECT_INT(json_integer_value(cm_json_get(j, "started_at")), NOW - 3 * DAY);
    /* Through text, as the queue file holds it. */
    text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    again = parse(text);
    b = cm_notice_from_json(again);
    json_decref(again);
    CU_ASSERT_FATAL(b != NULL);
    EXPECT_INT(b->kind, CM_ALERT_CHANGED);
    EXPECT_STR(b->target, a->target);
    CU_ASSERT(b->id == a->id);
    EXPECT_INT(b->position, 0);
    EXPECT_INT(b->severity, CM_SEV_CRITICAL);
    EXPECT_INT(b->previous, CM_SEV_WARNING);
    EXPECT_STR(b->message, a->message);
    EXPECT_INT(b->started_at, a->started_at);
    EXPECT_INT(b->fired_at, a->fired_at);
    EXPECT_INT(b->at, a->at);
    EXPECT_INT(b->labels.count, 2);
    EXPECT_STR(b->labels.keys[0], "env");
    EXPECT_STR(b->labels.values[1], "web");
    cm_notice_free(a);
    cm_notice_free(b);

    /* Every kind and severity comes back; labels come back sorted, unknown members pass. */
    for (int k = CM_ALERT_FIRING; k <= CM_ALERT_RESOLVED; k++) {
        for (int s = CM_SEV_OK; s <= CM_SEV_CRITICAL; s++) {
            a = mk((enum cm_alert_kind)k, "t", "chain.order", -1, (enum cm_severity)s,
                   (enum cm_severity)s, "m", NULL);
            j = cm_notice_to_json(a);
            b = cm_notice_from_json(j);
            CU_ASSERT_FATAL(b != NULL);
            EXPECT_INT(b->kind, k);
            EXPECT_INT(b->severity, s);
            EXPECT_INT(b->position, -1);
            json_decref(j);
            cm_notice_free(a);
            cm_notice_free(b);
        }
    }
    j = parse(
        strdup("{\"kind\":\"firing\",\"target\":\"t\",\"id\":\"host.mismatch\",\"position\":-1,"
               "\"severity\":\"critical\",\"previous\":\"critical\",\"message\":\"m\","
               "\"started_at\":1,\"fired_at\":2,\"at\":3,\"future\":true,"
               "\"labels\":{\"zone\":\"b\",\"app\":\"a\",\"env\":\"c\"}}"));
    b = cm_notice_from_json(j);
    json_decref(j);
    CU_ASSERT_FATAL(b != NULL);
    EXPECT_INT(b->labels.count, 3);
    EXPECT_STR(b->labels.keys[0], "app");
    EXPECT_STR(b->labels.values[0], "a");
    EXPECT_STR(b->labels.keys[2], "zone");
    EXPECT_STR(b->labels.values[2], "b");
    cm_notice_free(b);
    /* No labels member at all: none. */
    j = parse(strdup("{\"kind\":\"resolved\",\"target\":\"t\",\"id\":\"host.mismatch\","
                     "\"position\":0,\"severity\":\"info\",\"previous\":\"info\",\"message\":\"\","
                     "\"started_at\":0,\"fired_at\":0,\"at\":0}"));
    b = cm_notice_from_json(j);
    json_decref(j);
    CU_ASSERT_FATAL(b != NULL);
    EXPECT_INT(b->labels.count, 0);
    cm_notice_free(b);
}

static void test_notice_from_json_rejects(void)
{
    static const char *const bad[] = {
        "[]",
        "\"x\"",
        "{}",
        /* each one breaks one member of the good object below */
        "{\"kind\":\"pending\",\"target\":\"t\",\"id\":\"cert.expired\",\"position\":0,"
        "\"severity\":\"critical\",\"previous\":\"critical\",\"message\":\"m\","
        "\"started_at\":1,\"fired_at\":2,\"at\":3}",
        "{\"kind\":\"firing\",\"id\":\"cert.expired\",\"position\":0,"
        "\"severity\":\"critical\",\"previous\":\"critical\",\"message\":\"m\","
        "\"started_at\":1,\"fired_at\":2,\"at\":3}",
        "{\"kind\":\"firing\",\"target\":\"t\",\"id\":\"cert.exploded\",\"position\":0,"
        "\"severity\":\"critical\",\"previous\":\"critical\",\"message\":\"m\","
        "\"started_at\":1,\"fired_at\":2,\"at\":3}",
        "{\"kind\":\"firing\",\"target\":\"t\",\"id\":\"cert.expired\",\"position\":\"0\","
        "\"severity\":\"critical\",\"previous\":\"critical\",\"message\":\"m\","
        "\"started_at\":1,\"fired_at\":2,\"at\":3}",
        "{\"kind\":\"firing\",\"target\":\"t\",\"id\":\"cert.expired\",\"position\":-2,"
        "\"severity\":\"critical\",\"previous\":\"critical\",\"message\":\"m\","
        "\"started_at\":1,\"fired_at\":2,\"at\":3}",
        "{\"kind\":\"firing\",\"target\":\"t\",\"id\":\"cert.expired\",\"position\":0,"
        "\"severity\":\"severe\",\"previous\":\"critical\",\"message\":\"m\","
        "\"started_at\":1,\"fired_at\":2,\"at\":3}",
        "{\"kind\":\"firing\",\"target\":\"t\",\"id\":\"cert.expired\",\"position\":0,"
        "\"severity\":\"critical\",\"message\":\"m\",\"started_at\":1,\"fired_at\":2,\"at\":3}",
        "{\"kind\":\"firing\",\"target\":\"t\",\"id\":\"cert.expired\",\"position\":0,"
        "\"severity\":\"critical\",\"previous\":\"critical\",\"message\":7,"
        "\"started_at\":1,\"fired_at\":2,\"at\":3}",
        "{\"kind\":\"firing\",\"target\":\"t\",\"id\":\"cert.expired\",\"position\":0,"
        "\"severity\":\"critical\",\"previous\":\"critical\",\"message\":\"m\","
        "\"started_at\":\"2023-11-18T09:33:20Z\",\"fired_at\":2,\"at\":3}",
        "{\"kind\":\"firing\",\"target\":\"t\",\"id\":\"cert.expired\",\"position\":0,"
        "\"severity\":\"critical\",\"previous\":\"critical\",\"message\":\"m\","
        "\"started_at\":-5,\"fired_at\":2,\"at\":3}",
        "{\"kind\":\"firing\",\"target\":\"t\",\"id\":\"cert.expired\",\"position\":0,"
        "\"severity\":\"critical\",\"previous\":\"critical\",\"message\":\"m\","
        "\"started_at\":1,\"fired_at\":2}",
        "{\"kind\":\"firing\",\"target\":\"t\",\"id\":\"cert.expired\",\"position\":0,"
        "\"severity\":\"critical\",\"previous\":\"critical\",\"message\":\"m\","
        "\"started_at\":1,\"fired_at\":2,\"at\":3,\"labels\":[]}",
        "{\"kind\":\"firing\",\"target\":\"t\",\"id\":\"cert.expired\",\"position\":0,"
        "\"severity\":\"critical\",\"previous\":\"critical\",\"message\":\"m\","
        "\"started_at\":1,\"fired_at\":2,\"at\":3,\"labels\":{\"env\":1}}",
    };
    const char *good =
        "{\"kind\":\"firing\",\"target\":\"t\",\"id\":\"cert.expired\",\"position\":0,"
        "\"severity\":\"critical\",\"previous\":\"critical\",\"message\":\"m\","
        "\"started_at\":1,\"fired_at\":2,\"at\":3,\"labels\":{\"env\":\"x\"}}";
    json_t *j;
    struct cm_notice *n;

    j = parse(strdup(good));
    n = cm_notice_from_json(j);
    CU_ASSERT(n != NULL);
    cm_notice_free(n);
    json_decref(j);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_error_t err;
        j = json_loads(bad[i], JSON_DECODE_ANY, &err);
        CU_ASSERT_FATAL(j != NULL);
        n = cm_notice_from_json(j);
        if (n)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CU_ASSERT(n == NULL);
        cm_notice_free(n);
        json_decref(j);
    }
    CU_ASSERT(cm_notice_from_json(NULL) == NULL);
    CU_ASSERT(cm_notice_to_json(NULL) == NULL);
}

/* ---- Slack ---- */

static void test_slack_single_firing(void)
{
    struct cm_notice *n = expired(CM_ALERT_FIRING);
    const struct cm_notice *items[] = {n};
    json_t *j = parse(cm_payload_slack(items, 1, NOW));

    EXPECT_STR(keys_of(j), "text,blocks");
    EXPECT_STR(cm_json_str(j, "text"),
               ":red_circle: CRITICAL: cert.expired on www.example.com:443: certificate expired "
               "3 days ago (since 2023-11-15T09:33:20Z, 3 days ago)");
    EXPECT_INT(json_array_size(cm_json_get(j, "blocks")), 3);
    EXPECT_STR(cm_json_str(j, "blocks.0.type"), "header");
    EXPECT_STR(cm_json_str(j, "blocks.0.text.type"), "plain_text");
    CU_ASSERT(json_is_true(cm_json_get(j, "blocks.0.text.emoji")));
    EXPECT_STR(cm_json_str(j, "blocks.0.text.text"),
               ":red_circle: CRITICAL: a certificate of the chain has expired on "
               "www.example.com:443");
    EXPECT_STR(cm_json_str(j, "blocks.1.type"), "section");
    EXPECT_STR(cm_json_str(j, "blocks.1.text.type"), "mrkdwn");
    EXPECT_STR(cm_json_str(j, "blocks.1.text.text"),
               ":red_circle: *CRITICAL* `cert.expired` on *www.example.com:443*\n"
               "_a certificate of the chain has expired_\n"
               "certificate expired 3 days ago\n"
               "*Severity:* critical \xc2\xb7 *Since:* 2023-11-15T09:33:20Z (3 days ago) "
               "\xc2\xb7 *Position:* 0\n"
               "*Labels:* env=prod, team=web");
    EXPECT_STR(cm_json_str(j, "blocks.2.type"), "context");
    EXPECT_STR(cm_json_str(j, "blocks.2.elements.0.type"), "mrkdwn");
    EXPECT_STR(cm_json_str(j, "blocks.2.elements.0.text"),
               "certmon " CERTMON_VERSION " \xc2\xb7 sent 2023-11-18T09:33:20Z");
    json_decref(j);
    cm_notice_free(n);
}

static void test_slack_resolved_changed_repeat(void)
{
    struct cm_notice *r = expired(CM_ALERT_RESOLVED), *c = expired(CM_ALERT_CHANGED),
                     *p = expired(CM_ALERT_REPEAT);
    const struct cm_notice *items[] = {r};
    json_t *j = parse(cm_payload_slack(items, 1, NOW));

    EXPECT_STR(cm_json_str(j, "blocks.0.text.text"),
               ":large_green_circle: RESOLVED: a certificate of the chain has expired on "
               "www.example.com:443");
    EXPECT_STR(cm_json_str(j, "blocks.1.text.text"),
               ":large_green_circle: *RESOLVED* `cert.expired` on *www.example.com:443*\n"
               "_a certificate of the chain has expired_\n"
               "certificate expired 3 days ago\n"
               "*Severity:* critical (resolved) \xc2\xb7 *Since:* 2023-11-15T09:33:20Z "
               "(3 days ago) \xc2\xb7 *Resolved:* 2023-11-18T09:32:20Z (1 minute ago) \xc2\xb7 "
               "*Position:* 0\n"
               "*Labels:* env=prod, team=web");
    EXPECT_STR(cm_json_str(j, "text"),
               ":large_green_circle: RESOLVED: cert.expired on www.example.com:443: certificate "
               "expired 3 days ago (since 2023-11-15T09:33:20Z, 3 days ago)");
    json_decref(j);

    items[0] = c;
    j = parse(cm_payload_slack(items, 1, NOW));
    EXPECT_STR(cm_json_str(j, "blocks.0.text.text"),
               ":red_circle: CRITICAL (was warning): a certificate of the chain has expired on "
               "www.example.com:443");
    CU_ASSERT(strstr(cm_json_str(j, "blocks.1.text.text"),
                     "*Severity:* critical (was warning) \xc2\xb7") != NULL);
    json_decref(j);

    items[0] = p;
    j = parse(cm_payload_slack(items, 1, NOW));
    EXPECT_STR(cm_json_str(j, "blocks.0.text.text"),
               ":red_circle: CRITICAL (still firing): a certificate of the chain has expired on "
               "www.example.com:443");
    json_decref(j);
    cm_notice_free(r);
    cm_notice_free(c);
    cm_notice_free(p);
}

static void test_slack_group(void)
{
    struct cm_notice *g[3];
    json_t *j;

    group3(g);
    j = parse(cm_payload_slack((const struct cm_notice *const *)g, 3, NOW));
    EXPECT_INT(json_array_size(cm_json_get(j, "blocks")), 5);
    EXPECT_STR(cm_json_str(j, "blocks.0.text.text"),
               ":red_circle: 3 alerts (1 critical, 2 warning) on 2 targets");
    EXPECT_STR(cm_json_str(j, "text"),
               ":red_circle: 3 alerts (1 critical, 2 warning) on 2 targets\n"
               "CRITICAL: cert.expired on www.example.com:443; WARNING: cert.expiring on "
               "mail.example.org:465; WARNING: protocol.legacy on mail.example.org:465");
    EXPECT_STR(cm_json_str(j, "blocks.1.type"), "section");
    EXPECT_STR(cm_json_str(j, "blocks.3.text.text"),
               ":large_orange_circle: *WARNING* `protocol.legacy` on *mail.example.org:465*\n"
               "_the server accepts TLS 1.1, TLS 1.0 or SSL 3.0_\n"
               "the server accepts TLS1.0\n"
               "*Severity:* warning \xc2\xb7 *Since:* 2023-11-15T09:33:20Z (3 days ago)");
    EXPECT_STR(cm_json_str(j, "blocks.4.type"), "context");
    json_decref(j);

    /* All resolved: green, and said so. */
    for (int i = 0; i < 3; i++)
        g[i]->kind = CM_ALERT_RESOLVED;
    j = parse(cm_payload_slack((const struct cm_notice *const *)g, 3, NOW));
    EXPECT_STR(cm_json_str(j, "blocks.0.text.text"),
               ":large_green_circle: RESOLVED: 3 alerts on 2 targets");
    json_decref(j);
    /* Mixed: resolved ones are counted apart, the worst firing one sets the colour. */
    g[1]->kind = CM_ALERT_FIRING;
    j = parse(cm_payload_slack((const struct cm_notice *const *)g, 3, NOW));
    EXPECT_STR(cm_json_str(j, "blocks.0.text.text"),
               ":large_orange_circle: 3 alerts (1 warning, 2 resolved) on 2 targets");
    json_decref(j);
    free_all(g, 3);
}

static void test_slack_escaping(void)
{
    struct cm_notice *n =
        mk(CM_ALERT_FIRING, "a<b>&c.example:443", "host.mismatch", 0, CM_SEV_CRITICAL,
           CM_SEV_CRITICAL, "<!channel> look & <http://evil.example|click>\nsecond line", NULL);
    const struct cm_notice *items[] = {n, n};
    json_t *j = parse(cm_payload_slack(items, 1, NOW));
    const char *sec = cm_json_str(j, "blocks.1.text.text"), *text = cm_json_str(j, "text");

    CU_ASSERT_FATAL(sec && text);
    CU_ASSERT(strstr(sec, "on *a&lt;b&gt;&amp;c.example:443*") != NULL);
    CU_ASSERT(strstr(sec, "\n&lt;!channel&gt; look &amp; &lt;http://evil.example|click&gt; second "
                          "line\n") != NULL);
    /* No raw angle bracket or ampersand survives in mrkdwn or the fallback. */
    CU_ASSERT(strchr(sec, '<') == NULL && strchr(sec, '>') == NULL);
    CU_ASSERT(strchr(text, '<') == NULL && strchr(text, '>') == NULL);
    EXPECT_INT(count_str(sec, "&"),
               count_str(sec, "&amp;") + count_str(sec, "&lt;") + count_str(sec, "&gt;"));
    CU_ASSERT(strstr(text, "a&lt;b&gt;&amp;c.example:443: &lt;!channel&gt; look &amp;") != NULL);
    CU_ASSERT(strchr(text, '\n') == NULL); /* one line for one notice */
    /* plain_text is shown as written: not escaped. */
    EXPECT_STR(cm_json_str(j, "blocks.0.text.text"),
               ":red_circle: CRITICAL: the leaf is not valid for the name checked on "
               "a<b>&c.example:443");
    json_decref(j);
    j = parse(cm_payload_slack(items, 2, NOW));
    text = cm_json_str(j, "text");
    CU_ASSERT(strchr(text, '<') == NULL);
    CU_ASSERT(strstr(text, "on a&lt;b&gt;&amp;c.example:443") != NULL);
    json_decref(j);
    cm_notice_free(n);
}

static void test_slack_limits(void)
{
    enum { N = 60 };
    const struct cm_notice *items[N];
    struct cm_notice *n, *longn;
    char target[400], *msg;
    json_t *j;
    const char *h;
    size_t chars = 0;

    n = expired(CM_ALERT_FIRING);
    for (int i = 0; i < N; i++)
        items[i] = n;
    j = parse(cm_payload_slack(items, N, NOW));
    /* Slack takes at most 50 blocks. */
    CU_ASSERT(json_array_size(cm_json_get(j, "blocks")) <= 50);
    EXPECT_INT(json_array_size(cm_json_get(j, "blocks")), CM_PAYLOAD_SLACK_SECTIONS + 3);
    EXPECT_STR(cm_json_str(j, "blocks.46.text.text"),
               "_\xe2\x80\xa6 and 15 more alerts not shown here_");
    CU_ASSERT(strstr(cm_json_str(j, "text"), "; and 55 more") != NULL);
    json_decref(j);
    cm_notice_free(n);

    /* Header within 150 characters, section within 3000, valid UTF-8 when cut. */
    memset(target, 0, sizeof(target));
    for (int i = 0; i < 130; i++)
        memcpy(target + 2 * i, "\xc3\xa9", 2); /* é */
    msg = malloc(10000);
    CU_ASSERT_FATAL(msg != NULL);
    memset(msg, '&', 9999);
    msg[9999] = '\0';
    longn = mk(CM_ALERT_FIRING, target, "cert.expired", 0, CM_SEV_CRITICAL, CM_SEV_CRITICAL, msg,
               &labels2);
    items[0] = longn;
    j = parse(cm_payload_slack(items, 1, NOW));
    h = cm_json_str(j, "blocks.0.text.text");
    for (const char *p = h; *p; p++)
        chars += ((unsigned char)*p & 0xc0) != 0x80;
    EXPECT_INT(chars, 150);
    CU_ASSERT(strstr(h, "\xe2\x80\xa6") != NULL);
    CU_ASSERT(strlen(cm_json_str(j, "blocks.1.text.text")) <= 3000);
    json_decref(j);
    cm_notice_free(longn);
    free(msg);
}

/* ---- Webhook ---- */

static void expect_alert(json_t *a, const char *status, const char *event, const char *target,
                         const char *finding, int position, const char *sev, const char *prev,
                         const char *message, unsigned line)
{
    char ts[32];

    expect_str(keys_of(a),
               "status,event,target,finding,summary,position,severity,previous_severity,message,"
               "started_at,fired_at,event_at,labels",
               "keys", line);
    expect_str(cm_json_str(a, "status"), status, "status", line);
    expect_str(cm_json_str(a, "event"), event, "event", line);
    expect_str(cm_json_str(a, "target"), target, "target", line);
    expect_str(cm_json_str(a, "finding"), finding, "finding", line);
    expect_str(cm_json_str(a, "summary"), cm_finding_lookup(finding)->summary, "summary", line);
    if (position < 0)
        expect_int(json_is_null(cm_json_get(a, "position")), 1, "position is null", line);
    else
        expect_int(json_integer_value(cm_json_get(a, "position")), position, "position", line);
    expect_int(json_is_integer(cm_json_get(a, "position")) || position < 0, 1, "position type",
               line);
    expect_str(cm_json_str(a, "severity"), sev, "severity", line);
    expect_str(cm_json_str(a, "previous_severity"), prev, "previous_severity", line);
    expect_str(cm_json_str(a, "message"), message, "message", line);
    expect_str(cm_json_str(a, "started_at"), "2023-11-15T09:33:20Z", "started_at", line);
    expect_str(cm_json_str(a, "fired_at"), "2023-11-16T09:33:20Z", "fired_at", line);
    cm_time_rfc3339(strcmp(event, "firing") == 0 ? NOW - 2 * DAY : NOW - 60, ts, sizeof(ts));
    expect_str(cm_json_str(a, "event_at"), ts, "event_at", line);
    expect_int(json_is_object(cm_json_get(a, "labels")), 1, "labels is an object", line);
}

#define EXPECT_ALERT(a, ...) expect_alert((a), __VA_ARGS__, __LINE__)

static void test_webhook_single(void)
{
    struct cm_notice *f = expired(CM_ALERT_FIRING), *r = expired(CM_ALERT_RESOLVED),
                     *c = expired(CM_ALERT_CHANGED);
    const struct cm_notice *items[] = {f};
    json_t *j = parse(cm_payload_webhook(items, 1, NOW));

    EXPECT_STR(keys_of(j), "version,sender,sent_at,alerts");
    EXPECT_STR(cm_json_str(j, "version"), "1");
    EXPECT_STR(cm_json_str(j, "sender"), "certmon");
    EXPECT_STR(cm_json_str(j, "sent_at"), "2023-11-18T09:33:20Z");
    EXPECT_INT(json_array_size(cm_json_get(j, "alerts")), 1);
    EXPECT_ALERT(cm_json_get(j, "alerts.0"), "firing", "firing", "www.example.com:443",
                 "cert.expired", 0, "critical", "critical", "certificate expired 3 days ago");
    EXPECT_STR(keys_of(cm_json_get(j, "alerts.0.labels")), "env,team");
    EXPECT_STR(cm_json_str(j, "alerts.0.labels.team"), "web");
    json_decref(j);

    items[0] = r;
    j = parse(cm_payload_webhook(items, 1, NOW));
    EXPECT_ALERT(cm_json_get(j, "alerts.0"), "resolved", "resolved", "www.example.com:443",
                 "cert.expired", 0, "critical", "critical", "certificate expired 3 days ago");
    json_decref(j);

    items[0] = c;
    j = parse(cm_payload_webhook(items, 1, NOW));
    EXPECT_ALERT(cm_json_get(j, "alerts.0"), "firing", "changed", "www.example.com:443",
                 "cert.expired", 0, "critical", "warning", "certificate expired 3 days ago");
    json_decref(j);
    cm_notice_free(f);
    cm_notice_free(r);
    cm_notice_free(c);
}

static void test_webhook_group(void)
{
    struct cm_notice *g[3];
    json_t *j;
    char *text;

    group3(g);
    text = cm_payload_webhook((const struct cm_notice *const *)g, 3, NOW);
    CU_ASSERT_FATAL(text != NULL);
    CU_ASSERT(strchr(text, '\n') == NULL); /* compact */
    j = parse(text);
    EXPECT_INT(json_array_size(cm_json_get(j, "alerts")), 3);
    EXPECT_ALERT(cm_json_get(j, "alerts.0"), "firing", "firing", "www.example.com:443",
                 "cert.expired", 0, "critical", "critical", "certificate expired 3 days ago");
    EXPECT_ALERT(cm_json_get(j, "alerts.1"), "firing", "firing", "mail.example.org:465",
                 "cert.expiring", 0, "warning", "warning", "certificate expires in 12 days");
    EXPECT_ALERT(cm_json_get(j, "alerts.2"), "firing", "firing", "mail.example.org:465",
                 "protocol.legacy", -1, "warning", "warning", "the server accepts TLS1.0");
    EXPECT_INT(json_object_size(cm_json_get(j, "alerts.2.labels")), 0);
    json_decref(j);
    free_all(g, 3);
}

static void test_webhook_text_sanitized(void)
{
    struct cm_notice *n =
        mk(CM_ALERT_FIRING, "bad\xff\xfehost:443", "cert.expired", 0, CM_SEV_CRITICAL,
           CM_SEV_CRITICAL, "line 1\nline \"2\"\t\xc0\xaf", NULL);
    const struct cm_notice *items[] = {n};
    json_t *j = parse(cm_payload_webhook(items, 1, NOW));

    /* Invalid UTF-8 (including an overlong '/') becomes U+FFFD; the rest stays as it was. */
    EXPECT_STR(cm_json_str(j, "alerts.0.target"), "bad\xef\xbf\xbd\xef\xbf\xbdhost:443");
    EXPECT_STR(cm_json_str(j, "alerts.0.message"), "line 1\nline \"2\"\t\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(j);
    cm_notice_free(n);
}

/* ---- HMAC ---- */

static void test_hmac_rfc4231(void)
{
    char sig[CM_PAYLOAD_SIG_LEN];
    const char *data = "what do ya want for nothing?";

    /* RFC 4231, test case 2. */
    EXPECT_INT(cm_payload_hmac("Jefe", data, strlen(data), sig, sizeof(sig)), 0);
    EXPECT_STR(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    EXPECT_INT(strlen(sig), CM_PAYLOAD_SIG_LEN - 1);
    /* Only len bytes count. */
    EXPECT_INT(cm_payload_hmac("Jefe", "what do ya want for nothing?TRAILER", strlen(data), sig,
                               sizeof(sig)),
               0);
    EXPECT_STR(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    EXPECT_INT(cm_payload_hmac(NULL, data, 1, sig, sizeof(sig)), CM_EBADARG);
    EXPECT_INT(cm_payload_hmac("k", data, 1, NULL, sizeof(sig)), CM_EBADARG);
    EXPECT_INT(cm_payload_hmac("k", data, 1, sig, CM_PAYLOAD_SIG_LEN - 1), CM_EBADARG);
    EXPECT_INT(cm_payload_hmac("k", NULL, 1, sig, sizeof(sig)), CM_EBADARG);
    EXPECT_INT(cm_payload_hmac("k", NULL, 0, sig, sizeof(sig)), 0);
}

static void test_hmac_matches_openssl(void)
{
    struct cm_notice *g[3];
    char sig[CM_PAYLOAD_SIG_LEN], path[] = "/tmp/certmon-payload.XXXXXX", cmd[256], line[256];
    char *body;
    int fd;
    FILE *p;

    group3(g);
    body = cm_payload_webhook((const struct cm_notice *const *)g, 3, NOW);
    CU_ASSERT_FATAL(body != NULL);
    EXPECT_INT(cm_payload_hmac("s3cr3t key", body, strlen(body), sig, sizeof(sig)), 0);
    fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, body, strlen(body)) == (ssize_t)strlen(body));
    close(fd);
    snprintf(cmd, sizeof(cmd), "openssl dgst -sha256 -hmac 's3cr3t key' -r < %s", path);
    p = popen(cmd, "r");
    CU_ASSERT_FATAL(p != NULL);
    line[0] = '\0';
    CU_ASSERT(fgets(line, sizeof(line), p) != NULL);
    pclose(p);
    unlink(path);
    line[strcspn(line, " \n")] = '\0';
    EXPECT_INT(strlen(line), 64);
    EXPECT_STR(sig + 7, line);
    free(body);
    free_all(g, 3);
}

/* ---- Email ---- */

static const char *const to2[] = {"ops@example.com", "oncall@example.com", NULL};

/* The message with every CRLF checked: no bare CR, no bare LF. */
static void expect_crlf_only(const char *m, unsigned line)
{
    int bad = 0;

    for (const char *p = m; *p; p++) {
        if (*p == '\n' && (p == m || p[-1] != '\r'))
            bad++;
        if (*p == '\r' && p[1] != '\n')
            bad++;
    }
    expect_int(bad, 0, "bare CR or LF", line);
    expect_int(strlen(m) >= 2 && strcmp(m + strlen(m) - 2, "\r\n") == 0, 1, "ends with CRLF", line);
}

/* The header section (up to the first empty line), or "" when there is none. */
static char *header_part(const char *m)
{
    const char *end = strstr(m, "\r\n\r\n");

    return end ? strndup(m, (size_t)(end - m) + 2) : strdup("");
}

/* The value of header name (first line only), in a static buffer, or NULL. */
static const char *header(const char *m, const char *name)
{
    static char buf[1024];
    char *h = header_part(m), *p = h;
    size_t nl = strlen(name);
    const char *r = NULL;

    while (p && *p) {
        char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        if (strncmp(p, name, nl) == 0 && p[nl] == ':' && p[nl + 1] == ' ') {
            snprintf(buf, sizeof(buf), "%.*s", (int)(eol - p - nl - 2), p + nl + 2);
            r = buf;
            break;
        }
        p = eol + 2;
    }
    free(h);
    return r;
}

static void test_email_single(void)
{
    struct cm_notice *n = expired(CM_ALERT_FIRING);
    const struct cm_notice *items[] = {n};
    char *m = cm_payload_email(items, 1, "certmon@example.com", to2, NOW), *h;
    const char *body;

    CU_ASSERT_FATAL(m != NULL);
    expect_crlf_only(m, __LINE__);
    h = header_part(m);
    /* Exactly these headers, in this order. */
    {
        static const char *const names[] = {
            "From",          "To",           "Subject",      "Date",
            "Message-ID",    "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
            "Auto-Submitted"};
        char *p = h;
        size_t i = 0;
        for (; *p && i < sizeof(names) / sizeof(names[0]); i++) {
            size_t len = strlen(names[i]);
            if (strncmp(p, names[i], len) != 0 || p[len] != ':')
                fprintf(stderr, "header %zu: want %s, got %.30s\n", i, names[i], p);
            CU_ASSERT(strncmp(p, names[i], len) == 0 && p[len] == ':');
            p = strstr(p, "\r\n") + 2;
        }
        EXPECT_INT(i, 9);
        EXPECT_STR(p, "");
    }
    free(h);
    EXPECT_STR(header(m, "From"), "certmon@example.com");
    EXPECT_STR(header(m, "To"), "ops@example.com, oncall@example.com");
    EXPECT_STR(header(m, "Subject"), "[certmon] CRITICAL: cert.expired on www.example.com:443");
    EXPECT_STR(header(m, "Date"), "Sat, 18 Nov 2023 09:33:20 +0000");
    EXPECT_STR(header(m, "MIME-Version"), "1.0");
    EXPECT_STR(header(m, "Content-Type"), "text/plain; charset=utf-8");
    EXPECT_STR(header(m, "Content-Transfer-Encoding"), "8bit");
    EXPECT_STR(header(m, "Auto-Submitted"), "auto-generated");
    {
        const char *id = header(m, "Message-ID");
        CU_ASSERT_FATAL(id != NULL);
        CU_ASSERT(strncmp(id, "<1700300000.", 12) == 0);
        CU_ASSERT(strlen(id) > 20 && strcmp(id + strlen(id) - 9, "@certmon>") == 0);
    }
    body = strstr(m, "\r\n\r\n") + 4;
    EXPECT_STR(body, "CRITICAL: cert.expired on www.example.com:443\r\n"
                     "certificate expired 3 days ago\r\n"
                     "\r\n"
                     "  Target:   www.example.com:443\r\n"
                     "  Finding:  cert.expired (a certificate of the chain has expired)\r\n"
                     "  Severity: critical\r\n"
                     "  Position: 0\r\n"
                     "  Since:    2023-11-15T09:33:20Z (3 days ago)\r\n"
                     "  Labels:   env=prod, team=web\r\n"
                     "\r\n"
                     "-- \r\n"
                     "Sent by certmon " CERTMON_VERSION " at 2023-11-18T09:33:20Z\r\n");
    free(m);
    cm_notice_free(n);
}

static void test_email_group(void)
{
    struct cm_notice *g[3];
    char *m;
    const char *body;

    group3(g);
    g[1]->kind = CM_ALERT_RESOLVED;
    g[1]->at = NOW - 60;
    m = cm_payload_email((const struct cm_notice *const *)g, 3, "certmon@example.com", to2, NOW);
    CU_ASSERT_FATAL(m != NULL);
    expect_crlf_only(m, __LINE__);
    EXPECT_STR(header(m, "Subject"),
               "[certmon] 3 alerts (1 critical, 1 warning, 1 resolved) on 2 targets");
    body = strstr(m, "\r\n\r\n") + 4;
    {
        const char *start = "3 alerts (1 critical, 1 warning, 1 resolved) on 2 targets.\r\n\r\n"
                            "CRITICAL: cert.expired on www.example.com:443\r\n";
        CU_ASSERT(strncmp(body, start, strlen(start)) == 0);
    }
    CU_ASSERT(strstr(body, "\r\n\r\nRESOLVED: cert.expiring on mail.example.org:465\r\n"
                           "certificate expires in 12 days\r\n\r\n"
                           "  Target:   mail.example.org:465\r\n"
                           "  Finding:  cert.expiring (a certificate of the chain expires soon)\r\n"
                           "  Severity: warning (resolved)\r\n"
                           "  Position: 0\r\n"
                           "  Since:    2023-11-15T09:33:20Z (3 days ago)\r\n"
                           "  Resolved: 2023-11-18T09:32:20Z (1 minute ago)\r\n"
                           "  Labels:   (none)\r\n") != NULL);
    CU_ASSERT(strstr(body, "\r\n\r\nWARNING: protocol.legacy on mail.example.org:465\r\n") != NULL);
    /* No Position line for a finding without a chain position. */
    EXPECT_INT(count_str(body, "  Position: "), 2);
    EXPECT_INT(count_str(body, "Sent by certmon"), 1);
    free(m);
    free_all(g, 3);
}

static void test_email_subjects(void)
{
    struct cm_notice *g[3], *c = expired(CM_ALERT_CHANGED), *p = expired(CM_ALERT_REPEAT),
                            *r = expired(CM_ALERT_RESOLVED);
    const struct cm_notice *one[1];
    const char *const to1[] = {"ops@example.com", NULL};
    char *m;

    one[0] = c;
    m = cm_payload_email(one, 1, "a@b", to1, NOW);
    EXPECT_STR(header(m, "Subject"),
               "[certmon] CRITICAL (was warning): cert.expired on www.example.com:443");
    free(m);
    one[0] = p;
    m = cm_payload_email(one, 1, "a@b", to1, NOW);
    EXPECT_STR(header(m, "Subject"),
               "[certmon] CRITICAL (still firing): cert.expired on www.example.com:443");
    free(m);
    one[0] = r;
    m = cm_payload_email(one, 1, "a@b", to1, NOW);
    EXPECT_STR(header(m, "Subject"), "[certmon] RESOLVED: cert.expired on www.example.com:443");
    EXPECT_STR(header(m, "To"), "ops@example.com");
    free(m);

    group3(g);
    m = cm_payload_email((const struct cm_notice *const *)g, 3, "a@b", to1, NOW);
    EXPECT_STR(header(m, "Subject"), "[certmon] 3 alerts (1 critical, 2 warning) on 2 targets");
    free(m);
    for (int i = 0; i < 3; i++)
        g[i]->kind = CM_ALERT_RESOLVED;
    m = cm_payload_email((const struct cm_notice *const *)g, 3, "a@b", to1, NOW);
    EXPECT_STR(header(m, "Subject"), "[certmon] RESOLVED: 3 alerts on 2 targets");
    free(m);
    m = cm_payload_email((const struct cm_notice *const *)g, 2, "a@b", to1, NOW);
    EXPECT_STR(header(m, "Subject"), "[certmon] RESOLVED: 2 alerts on 2 targets");
    free(m);
    free_all(g, 3);
    cm_notice_free(c);
    cm_notice_free(p);
    cm_notice_free(r);
}

/* Decodes an RFC 2047 B-encoded subject (unfolded words) back to UTF-8. */
static char *decode_subject(const char *m)
{
    char *h = header_part(m), *p = strstr(h, "\r\nSubject: "), *out = calloc(1, 1024);
    size_t olen = 0;

    CU_ASSERT_FATAL(p && out);
    p += 11;
    for (;;) {
        char *end;
        gnutls_datum_t in, dec;
        CU_ASSERT_FATAL(strncmp(p, "=?UTF-8?B?", 10) == 0);
        p += 10;
        end = strstr(p, "?=");
        CU_ASSERT_FATAL(end != NULL);
        in.data = (unsigned char *)p;
        in.size = (unsigned)(end - p);
        CU_ASSERT_FATAL(gnutls_base64_decode2(&in, &dec) == 0);
        memcpy(out + olen, dec.data, dec.size);
        olen += dec.size;
        gnutls_free(dec.data);
        p = end + 2;
        if (strncmp(p, "\r\n =?", 5) != 0)
            break;
        p += 3; /* folded: the next word */
    }
    EXPECT_STR(strncmp(p, "\r\n", 2) == 0 ? "" : p, "");
    free(h);
    return out;
}

static void test_email_subject_non_ascii(void)
{
    const char *target = "b\xc3\xbc"
                         "cher.example.de:443"; /* bücher */
    char longt[200];
    struct cm_notice *n = mk(CM_ALERT_FIRING, target, "cert.expiring", 0, CM_SEV_WARNING,
                             CM_SEV_WARNING, "expires in 5 days", NULL);
    const struct cm_notice *items[] = {n};
    const char *const to1[] = {"ops@example.com", NULL};
    char *m = cm_payload_email(items, 1, "a@b", to1, NOW), *s, *h;

    CU_ASSERT_FATAL(m != NULL);
    CU_ASSERT(strncmp(header(m, "Subject"), "=?UTF-8?B?", 10) == 0);
    s = decode_subject(m);
    EXPECT_STR(s, "[certmon] WARNING: cert.expiring on b\xc3\xbc"
                  "cher.example.de:443");
    free(s);
    /* The header section itself is ASCII. */
    h = header_part(m);
    for (const char *p = h; *p; p++)
        CU_ASSERT((unsigned char)*p < 0x80);
    free(h);
    /* The body carries the UTF-8 as is (8bit). */
    CU_ASSERT(strstr(m, "\r\n  Target:   b\xc3\xbc"
                        "cher.example.de:443\r\n") != NULL);
    free(m);
    cm_notice_free(n);

    /* A long non-ASCII subject: several words, folded, each line at most 76 characters, no
     * character cut between two words. */
    longt[0] = '\0';
    for (int i = 0; i < 40; i++)
        strcat(longt, "\xe2\x82\xac"); /* € */
    strcat(longt, ":443");
    n = mk(CM_ALERT_FIRING, longt, "cert.expiring", 0, CM_SEV_WARNING, CM_SEV_WARNING, "x", NULL);
    items[0] = n;
    m = cm_payload_email(items, 1, "a@b", to1, NOW);
    CU_ASSERT_FATAL(m != NULL);
    h = header_part(m);
    CU_ASSERT(count_str(h, "=?UTF-8?B?") >= 3);
    for (char *p = h, *eol; (eol = strstr(p, "\r\n")); p = eol + 2)
        CU_ASSERT(eol - p <= 76);
    free(h);
    s = decode_subject(m);
    CU_ASSERT(strstr(s, longt) != NULL);
    free(s);
    free(m);
    cm_notice_free(n);
}

static void test_email_header_injection(void)
{
    struct cm_notice *n =
        mk(CM_ALERT_FIRING, "evil.example:443\r\nBcc: victim@example.com", "cert.expired", 0,
           CM_SEV_CRITICAL, CM_SEV_CRITICAL, "expired\r\nX-Injected: 1", NULL);
    const struct cm_notice *items[] = {n};
    const char *const to[] = {"ops@example.com\nX-Injected: 2", "b@example.com", NULL};
    char *m = cm_payload_email(items, 1, "certmon@example.com\r\nBcc: x@example.com", to, NOW);
    char *h;

    CU_ASSERT_FATAL(m != NULL);
    expect_crlf_only(m, __LINE__);
    h = header_part(m);
    /* Still nine header lines; none was added. */
    EXPECT_INT(count_str(h, "\r\n"), 9);
    CU_ASSERT(strstr(h, "\r\nBcc:") == NULL && strncmp(h, "Bcc:", 4) != 0);
    CU_ASSERT(strstr(h, "\r\nX-Injected") == NULL);
    EXPECT_STR(header(m, "Subject"),
               "[certmon] CRITICAL: cert.expired on evil.example:443  Bcc: victim@example.com");
    EXPECT_STR(header(m, "From"), "certmon@example.com  Bcc: x@example.com");
    EXPECT_STR(header(m, "To"), "ops@example.com X-Injected: 2, b@example.com");
    free(h);
    /* In the body the message keeps its line break, as body text. */
    CU_ASSERT(strstr(m, "\r\n\r\nCRITICAL: cert.expired on evil.example:443  Bcc: "
                        "victim@example.com\r\nexpired\r\nX-Injected: 1\r\n\r\n") != NULL);
    free(m);
    cm_notice_free(n);
}

static void test_email_dot_stuffing(void)
{
    struct cm_notice *n = mk(CM_ALERT_FIRING, "www.example.com:443", "cert.expired", 0,
                             CM_SEV_CRITICAL, CM_SEV_CRITICAL, "first\n.\n.hidden\r\nlast", NULL);
    const struct cm_notice *items[] = {n};
    const char *const to1[] = {"ops@example.com", NULL};
    char *m = cm_payload_email(items, 1, "a@b", to1, NOW);
    char *u = cm_payload_email_unstuffed(items, 1, "a@b", to1, NOW);

    CU_ASSERT_FATAL(m && u);
    expect_crlf_only(m, __LINE__);
    CU_ASSERT(strstr(m, "\r\nfirst\r\n..\r\n..hidden\r\nlast\r\n") != NULL);
    /* A lone dot would end the DATA phase: there is none. */
    CU_ASSERT(strstr(m, "\r\n.\r\n") == NULL);
    /* Every line that starts with a dot starts with two. */
    for (const char *p = strstr(m, "\r\n\r\n"); p && (p = strstr(p, "\r\n.")); p += 2)
        CU_ASSERT(p[3] == '.');
    /* For libcurl, which stuffs by itself: the same text with the dots as written. */
    expect_crlf_only(u, __LINE__);
    CU_ASSERT(strstr(u, "\r\nfirst\r\n.\r\n.hidden\r\nlast\r\n") != NULL);
    EXPECT_INT(strlen(m), strlen(u) + 2);
    free(m);
    free(u);
    cm_notice_free(n);
}

static void test_email_long_lines_and_ids(void)
{
    char *msg = malloc(5001);
    struct cm_notice *n;
    const struct cm_notice *items[1];
    const char *const to1[] = {"ops@example.com", NULL};
    char *m, *m2, id1[128];

    CU_ASSERT_FATAL(msg != NULL);
    for (int i = 0; i < 5000; i++)
        msg[i] = i % 997 == 0 ? '.' : 'x';
    msg[5000] = '\0';
    n = mk(CM_ALERT_FIRING, "t:1", "cert.expired", 0, CM_SEV_CRITICAL, CM_SEV_CRITICAL, msg, NULL);
    items[0] = n;
    m = cm_payload_email(items, 1, "a@b", to1, NOW);
    CU_ASSERT_FATAL(m != NULL);
    expect_crlf_only(m, __LINE__);
    for (char *p = m, *eol; (eol = strstr(p, "\r\n")); p = eol + 2)
        CU_ASSERT(eol - p <= 998);
    /* The message survives whole once line breaks and stuffed dots are taken out. */
    {
        char *flat = malloc(strlen(m) + 1), *q = flat;
        const char *b = strstr(m, "\r\n\r\n") + 4;
        b = strstr(b, "\r\n") + 2; /* past the headline */
        for (bool bol = true; *b && !(b[0] == '\r' && b[1] == '\n' && b[2] == '\r'); b++) {
            if (*b == '\r' || *b == '\n') {
                bol = true;
                continue;
            }
            if (bol && b[0] == '.' && b[1] == '.')
                b++;
            bol = false;
            *q++ = *b;
        }
        *q = '\0';
        EXPECT_STR(flat, msg);
        free(flat);
    }
    /* Message-IDs differ between calls, even within one second. */
    m2 = cm_payload_email(items, 1, "a@b", to1, NOW);
    CU_ASSERT_FATAL(m2 != NULL);
    snprintf(id1, sizeof(id1), "%s", header(m, "Message-ID"));
    CU_ASSERT(strcmp(id1, header(m2, "Message-ID")) != 0);
    free(m);
    free(m2);
    free(msg);
    cm_notice_free(n);
}

static void test_email_many_recipients(void)
{
    struct cm_notice *n = expired(CM_ALERT_FIRING);
    const struct cm_notice *items[] = {n};
    const char *to[] = {"first.person@example.com", "second.person@example.com",
                        "third.person@example.com", "fourth.person@example.com", NULL};
    char *m = cm_payload_email(items, 1, "a@b", to, NOW), *h;

    CU_ASSERT_FATAL(m != NULL);
    h = header_part(m);
    /* Folded between addresses: continuation lines start with white space. */
    CU_ASSERT(strstr(h, "To: first.person@example.com, second.person@example.com,\r\n "
                        "third.person@example.com, fourth.person@example.com\r\n") != NULL);
    for (char *p = h, *eol; (eol = strstr(p, "\r\n")); p = eol + 2)
        CU_ASSERT(eol - p <= 78);
    free(h);
    free(m);
    cm_notice_free(n);
}

/* ---- Alertmanager ---- */

static void test_alertmanager_labels(void)
{
    char *k[] = {"9bad", "__meta", "alertname", "empty", "env", "finding", "team-x", "zone"};
    char *v[] = {"a", "b", "Hijack", "", "prod", "x", "c", "eu"};
    struct cm_labels l = {k, v, 8};
    struct cm_notice *n =
        mk(CM_ALERT_FIRING, "www.example.com:443", "cert.expired", 0, CM_SEV_CRITICAL,
           CM_SEV_CRITICAL, "certificate expired 3 days ago", &l);
    const struct cm_notice *items[] = {n};
    json_t *j = parse(cm_payload_alertmanager(items, 1, NOW, "https://certmon.example/", 0));

    CU_ASSERT_FATAL(json_is_array(j));
    EXPECT_INT(json_array_size(j), 1);
    EXPECT_STR(keys_of(cm_json_get(j, "0")), "labels,annotations,startsAt,generatorURL");
    EXPECT_STR(keys_of(cm_json_get(j, "0.labels")),
               "alertname,finding,target,severity,position,env,zone");
    EXPECT_STR(cm_json_str(j, "0.labels.alertname"), "CertmonFinding");
    EXPECT_STR(cm_json_str(j, "0.labels.finding"), "cert.expired");
    EXPECT_STR(cm_json_str(j, "0.labels.target"), "www.example.com:443");
    EXPECT_STR(cm_json_str(j, "0.labels.severity"), "critical");
    EXPECT_STR(cm_json_str(j, "0.labels.position"), "0");
    EXPECT_STR(cm_json_str(j, "0.labels.env"), "prod");
    EXPECT_STR(keys_of(cm_json_get(j, "0.annotations")), "summary,description");
    EXPECT_STR(cm_json_str(j, "0.annotations.summary"),
               "a certificate of the chain has expired on www.example.com:443");
    EXPECT_STR(cm_json_str(j, "0.annotations.description"), "certificate expired 3 days ago");
    EXPECT_STR(cm_json_str(j, "0.startsAt"), "2023-11-15T09:33:20Z");
    EXPECT_STR(cm_json_str(j, "0.generatorURL"), "https://certmon.example/");
    json_decref(j);
    cm_notice_free(n);

    /* No position label without a position; no generatorURL when NULL or empty. */
    n = mk(CM_ALERT_FIRING, "t:1", "protocol.legacy", -1, CM_SEV_WARNING, CM_SEV_WARNING, "m",
           NULL);
    items[0] = n;
    j = parse(cm_payload_alertmanager(items, 1, NOW, NULL, 0));
    EXPECT_STR(keys_of(cm_json_get(j, "0")), "labels,annotations,startsAt");
    EXPECT_STR(keys_of(cm_json_get(j, "0.labels")), "alertname,finding,target,severity");
    json_decref(j);
    j = parse(cm_payload_alertmanager(items, 1, NOW, "", 0));
    CU_ASSERT(cm_json_get(j, "0.generatorURL") == NULL);
    json_decref(j);
    /* Unknown start: Alertmanager picks one. */
    n->started_at = 0;
    j = parse(cm_payload_alertmanager(items, 1, NOW, NULL, 0));
    CU_ASSERT(cm_json_get(j, "0.startsAt") == NULL);
    json_decref(j);
    cm_notice_free(n);
}

static void test_alertmanager_endsat(void)
{
    struct cm_notice *f = expired(CM_ALERT_FIRING), *r = expired(CM_ALERT_RESOLVED),
                     *c = expired(CM_ALERT_CHANGED), *p = expired(CM_ALERT_REPEAT);
    const struct cm_notice *items[] = {f, r, c, p};
    json_t *j;

    /* No horizon: active alerts carry no endsAt; a resolution ends at its event time. */
    j = parse(cm_payload_alertmanager(items, 4, NOW, NULL, 0));
    EXPECT_INT(json_array_size(j), 5);
    CU_ASSERT(cm_json_get(j, "0.endsAt") == NULL);
    EXPECT_STR(cm_json_str(j, "1.endsAt"), "2023-11-18T09:32:20Z");
    EXPECT_STR(cm_json_str(j, "1.labels.severity"), "critical");
    /* changed: the alert under the old severity ends now, the new one is active. */
    EXPECT_STR(cm_json_str(j, "2.labels.severity"), "warning");
    EXPECT_STR(cm_json_str(j, "2.endsAt"), "2023-11-18T09:32:20Z");
    EXPECT_STR(cm_json_str(j, "3.labels.severity"), "critical");
    CU_ASSERT(cm_json_get(j, "3.endsAt") == NULL);
    CU_ASSERT(cm_json_get(j, "4.endsAt") == NULL);
    json_decref(j);

    /* A horizon: active alerts end at now + horizon unless re-sent. */
    j = parse(cm_payload_alertmanager(items, 4, NOW, NULL, 300));
    EXPECT_STR(cm_json_str(j, "0.endsAt"), "2023-11-18T09:38:20Z");
    EXPECT_STR(cm_json_str(j, "1.endsAt"), "2023-11-18T09:32:20Z");
    EXPECT_STR(cm_json_str(j, "2.endsAt"), "2023-11-18T09:32:20Z");
    EXPECT_STR(cm_json_str(j, "3.endsAt"), "2023-11-18T09:38:20Z");
    EXPECT_STR(cm_json_str(j, "4.endsAt"), "2023-11-18T09:38:20Z");
    json_decref(j);
    j = parse(cm_payload_alertmanager(items, 1, NOW, NULL, -5));
    CU_ASSERT(cm_json_get(j, "0.endsAt") == NULL);
    json_decref(j);
    /* A huge horizon does not overflow. */
    j = parse(cm_payload_alertmanager(items, 1, NOW, NULL, INT64_MAX));
    EXPECT_STR(cm_json_str(j, "0.endsAt"), "9999-12-31T23:59:59Z");
    json_decref(j);

    /* endsAt never precedes startsAt (Alertmanager refuses that). */
    r->at = r->started_at - 100;
    items[0] = r;
    j = parse(cm_payload_alertmanager(items, 1, NOW, NULL, 0));
    EXPECT_STR(cm_json_str(j, "0.endsAt"), cm_json_str(j, "0.startsAt"));
    json_decref(j);
    cm_notice_free(f);
    cm_notice_free(r);
    cm_notice_free(c);
    cm_notice_free(p);
}

/* ---- Unusable arguments ---- */

static void test_null_inputs(void)
{
    struct cm_notice *n = expired(CM_ALERT_FIRING);
    const struct cm_notice *items[] = {n, NULL};
    const char *const none[] = {NULL};
    const char *const to1[] = {"ops@example.com", NULL};
    char *s;

    CU_ASSERT(cm_payload_slack(NULL, 1, NOW) == NULL);
    CU_ASSERT(cm_payload_slack(items, 0, NOW) == NULL);
    CU_ASSERT(cm_payload_slack(items, 2, NOW) == NULL);
    CU_ASSERT(cm_payload_webhook(NULL, 1, NOW) == NULL);
    CU_ASSERT(cm_payload_webhook(items, 0, NOW) == NULL);
    CU_ASSERT(cm_payload_webhook(items, 2, NOW) == NULL);
    CU_ASSERT(cm_payload_alertmanager(NULL, 1, NOW, NULL, 0) == NULL);
    CU_ASSERT(cm_payload_alertmanager(items, 0, NOW, NULL, 0) == NULL);
    CU_ASSERT(cm_payload_alertmanager(items, 2, NOW, NULL, 0) == NULL);
    CU_ASSERT(cm_payload_email(NULL, 1, "a@b", to1, NOW) == NULL);
    CU_ASSERT(cm_payload_email(items, 0, "a@b", to1, NOW) == NULL);
    CU_ASSERT(cm_payload_email(items, 2, "a@b", to1, NOW) == NULL);
    CU_ASSERT(cm_payload_email(items, 1, NULL, to1, NOW) == NULL);
    CU_ASSERT(cm_payload_email(items, 1, "a@b", NULL, NOW) == NULL);
    CU_ASSERT(cm_payload_email(items, 1, "a@b", none, NOW) == NULL);
    CU_ASSERT(cm_payload_email_unstuffed(items, 0, "a@b", to1, NOW) == NULL);

    /* Empty strings are fine everywhere. */
    free(n->message);
    n->message = strdup("");
    free(n->target);
    n->target = strdup("");
    CU_ASSERT_FATAL(n->message && n->target);
    s = cm_payload_slack(items, 1, NOW);
    CU_ASSERT(s != NULL && strstr(s, "(no message)") != NULL);
    free(s);
    s = cm_payload_webhook(items, 1, NOW);
    CU_ASSERT(s != NULL);
    free(s);
    s = cm_payload_alertmanager(items, 1, NOW, NULL, 0);
    CU_ASSERT(s != NULL);
    free(s);
    s = cm_payload_email(items, 1, "", to1, NOW);
    CU_ASSERT(s != NULL);
    free(s);
    cm_notice_free(n);
}

/* ---- PagerDuty, Teams, Telegram, ntfy ---- */

/* A notice whose every text field is hostile: markup, quotes, newlines, Markdown links. */
static struct cm_notice *hostile(void)
{
    return mk(CM_ALERT_FIRING, "<script>alert(\"t\")</script>\r\nX-Injected: 1 [x](http://evil)",
              "cert.expired", 0, CM_SEV_CRITICAL, CM_SEV_CRITICAL,
              "CN=\"<b>*bold*</b>\" _it_ `code` ~s~ \\\nsecond line & more", &labels2);
}

/* A string of count copies of unit. */
static char *repeat(const char *unit, size_t count)
{
    size_t ul = strlen(unit);
    char *s = malloc(ul * count + 1);

    CU_ASSERT_FATAL(s != NULL);
    for (size_t i = 0; i < count; i++)
        memcpy(s + i * ul, unit, ul);
    s[ul * count] = '\0';
    return s;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);

    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void test_pagerduty_trigger_resolve(void)
{
    struct cm_notice *fire = expired(CM_ALERT_FIRING), *res = expired(CM_ALERT_RESOLVED);
    struct cm_notice *other = mk(CM_ALERT_FIRING, "www.example.com:443", "cert.expired", 1,
                                 CM_SEV_WARNING, CM_SEV_WARNING, "m", NULL);
    char k1[CM_PAYLOAD_PD_DEDUP_LEN], k2[CM_PAYLOAD_PD_DEDUP_LEN], k3[CM_PAYLOAD_PD_DEDUP_LEN];
    json_t *t = parse(cm_payload_pagerduty(fire, "R0UTINGKEY", "https://certmon.example/", NOW));
    json_t *r = parse(cm_payload_pagerduty(res, "R0UTINGKEY", NULL, NOW));
    json_t *w = parse(cm_payload_pagerduty(other, "R0UTINGKEY", "", NOW));

    EXPECT_STR(keys_of(t), "routing_key,event_action,dedup_key,payload,client,client_url");
    EXPECT_STR(cm_json_str(t, "routing_key"), "R0UTINGKEY");
    EXPECT_STR(cm_json_str(t, "event_action"), "trigger");
    EXPECT_STR(cm_json_str(t, "client"), "certmon");
    EXPECT_STR(cm_json_str(t, "client_url"), "https://certmon.example/");
    EXPECT_STR(keys_of(json_object_get(t, "payload")),
               "summary,source,severity,timestamp,class,custom_details");
    EXPECT_STR(cm_json_str(t, "payload.summary"),
               "CRITICAL: cert.expired on www.example.com:443: certificate expired 3 days ago");
    EXPECT_STR(cm_json_str(t, "payload.source"), "www.example.com:443");
    EXPECT_STR(cm_json_str(t, "payload.severity"), "critical");
    EXPECT_STR(cm_json_str(t, "payload.timestamp"), "2023-11-16T09:33:20Z");
    EXPECT_STR(cm_json_str(t, "payload.class"), "cert.expired");
    EXPECT_STR(cm_json_str(t, "payload.custom_details.finding"), "cert.expired");
    EXPECT_STR(cm_json_str(t, "payload.custom_details.labels.team"), "web");
    EXPECT_INT(json_integer_value(cm_json_get(t, "payload.custom_details.position")), 0);
    EXPECT_STR(cm_json_str(t, "payload.custom_details.started_at"), "2023-11-15T09:33:20Z");
    /* Resolve: the same dedup_key, no payload. */
    EXPECT_STR(keys_of(r), "routing_key,event_action,dedup_key");
    EXPECT_STR(cm_json_str(r, "event_action"), "resolve");
    EXPECT_STR(cm_json_str(r, "dedup_key"), cm_json_str(t, "dedup_key"));
    /* The key: "certmon-" + 32 hex digits, stable, and another alert (position) another key. */
    EXPECT_INT(cm_payload_pagerduty_dedup_key(fire, k1, sizeof(k1)), 0);
    EXPECT_INT(cm_payload_pagerduty_dedup_key(res, k2, sizeof(k2)), 0);
    EXPECT_INT(cm_payload_pagerduty_dedup_key(other, k3, sizeof(k3)), 0);
    EXPECT_STR(k1, k2);
    CU_ASSERT(strcmp(k1, k3) != 0);
    EXPECT_INT(strlen(k1), 40);
    CU_ASSERT(strncmp(k1, "certmon-", 8) == 0 && strspn(k1 + 8, "0123456789abcdef") == 32);
    EXPECT_STR(cm_json_str(t, "dedup_key"), k1);
    EXPECT_INT(cm_payload_pagerduty_dedup_key(fire, k1, CM_PAYLOAD_PD_DEDUP_LEN - 1), CM_EBADARG);
    /* warning maps to warning; an empty client_url is left out. */
    EXPECT_STR(cm_json_str(w, "payload.severity"), "warning");
    CU_ASSERT_PTR_NULL(json_object_get(w, "client_url"));
    CU_ASSERT(json_is_null(cm_json_get(r, "payload")) || !cm_json_get(r, "payload"));
    /* An unknown time: no timestamp at all (PagerDuty wants a string when there is one). */
    fire->at = fire->started_at = 0;
    json_decref(w);
    w = parse(cm_payload_pagerduty(fire, "R0UTINGKEY", NULL, NOW));
    CU_ASSERT_PTR_NULL(cm_json_get(w, "payload.timestamp"));
    EXPECT_STR(keys_of(json_object_get(w, "payload")),
               "summary,source,severity,class,custom_details");
    CU_ASSERT_PTR_NULL(cm_payload_pagerduty(fire, NULL, NULL, NOW));
    CU_ASSERT_PTR_NULL(cm_payload_pagerduty(NULL, "k", NULL, NOW));
    json_decref(t);
    json_decref(r);
    json_decref(w);
    cm_notice_free(fire);
    cm_notice_free(res);
    cm_notice_free(other);
}

static void test_pagerduty_hostile_and_long(void)
{
    struct cm_notice *h = hostile();
    char *msg = repeat("\xc3\xa9", 3000); /* 3000 two-byte characters */
    struct cm_notice *l = mk(CM_ALERT_FIRING, "a.example:443", "cert.expiring", -1, CM_SEV_INFO,
                             CM_SEV_INFO, msg, NULL);
    json_t *j = parse(cm_payload_pagerduty(h, "k", NULL, NOW));
    json_t *k = parse(cm_payload_pagerduty(l, "k", NULL, NOW));
    const char *s = cm_json_str(j, "payload.summary"), *ls = cm_json_str(k, "payload.summary");

    CU_ASSERT_FATAL(s && ls);
    /* One line; the text itself is kept (JSON carries it safely). */
    CU_ASSERT_PTR_NULL(strpbrk(s, "\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "<script>alert(\"t\")</script>"));
    EXPECT_STR(cm_json_str(j, "payload.custom_details.message"),
               "CN=\"<b>*bold*</b>\" _it_ `code` ~s~ \\\nsecond line & more");
    CU_ASSERT_PTR_NULL(strpbrk(cm_json_str(j, "payload.source"), "\r\n"));
    /* Cut at 1024 characters, in valid UTF-8, with an ellipsis. */
    EXPECT_INT(utf8_chars(ls), CM_PAYLOAD_PD_SUMMARY_MAX);
    CU_ASSERT(cm_utf8_valid(ls, strlen(ls)));
    CU_ASSERT(ends_with(ls, "\xe2\x80\xa6"));
    EXPECT_STR(cm_json_str(k, "payload.severity"), "info");
    CU_ASSERT(json_is_null(cm_json_get(k, "payload.custom_details.position")));
    json_decref(j);
    json_decref(k);
    free(msg);
    cm_notice_free(h);
    cm_notice_free(l);
}

static void test_teams_card(void)
{
    struct cm_notice *g[3];
    json_t *one, *grp, *body, *e;
    struct cm_notice *x = expired(CM_ALERT_RESOLVED);
    size_t i;

    group3(g);
    one = parse(cm_payload_teams((const struct cm_notice *const *)&x, 1, NOW));
    EXPECT_STR(keys_of(one), "type,attachments");
    EXPECT_STR(cm_json_str(one, "type"), "message");
    EXPECT_INT(json_array_size(json_object_get(one, "attachments")), 1);
    EXPECT_STR(cm_json_str(one, "attachments.0.contentType"),
               "application/vnd.microsoft.card.adaptive");
    CU_ASSERT(json_is_null(cm_json_get(one, "attachments.0.contentUrl")));
    EXPECT_STR(cm_json_str(one, "attachments.0.content.type"), "AdaptiveCard");
    EXPECT_STR(cm_json_str(one, "attachments.0.content.version"), "1.4");
    EXPECT_STR(cm_json_str(one, "attachments.0.content.$schema"),
               "http://adaptivecards.io/schemas/adaptive-card.json");
    body = cm_json_get(one, "attachments.0.content.body");
    /* Header, headline, message, facts, footer. */
    EXPECT_INT(json_array_size(body), 5);
    EXPECT_STR(
        cm_json_str(body, "0.text"),
        "\xf0\x9f\x9f\xa2 RESOLVED: a certificate of the chain has expired on www.example.com:443");
    EXPECT_STR(cm_json_str(body, "0.weight"), "Bolder");
    EXPECT_STR(cm_json_str(body, "2.text"), "certificate expired 3 days ago");
    EXPECT_STR(cm_json_str(body, "3.type"), "FactSet");
    EXPECT_STR(cm_json_str(body, "3.facts.0.title"), "Target");
    EXPECT_STR(cm_json_str(body, "3.facts.0.value"), "www.example.com:443");
    EXPECT_STR(cm_json_str(body, "3.facts.2.value"), "RESOLVED");
    EXPECT_STR(cm_json_str(body, "3.facts.4.title"), "Resolved");
    EXPECT_STR(cm_json_str(body, "3.facts.6.value"), "env=prod, team=web");
    EXPECT_STR(cm_json_str(body, "4.isSubtle") ? "" : "subtle", "subtle");
    CU_ASSERT(json_is_true(cm_json_get(body, "4.isSubtle")));
    json_array_foreach(body, i, e)
    {
        const char *ty = cm_json_str(e, "type");
        CU_ASSERT(ty && (!strcmp(ty, "TextBlock") || !strcmp(ty, "FactSet")));
    }
    grp = parse(cm_payload_teams((const struct cm_notice *const *)g, 3, NOW));
    EXPECT_STR(cm_json_str(grp, "attachments.0.content.body.0.text"),
               "\xf0\x9f\x94\xb4 3 alerts (1 critical, 2 warning) on 2 targets");
    EXPECT_INT(json_array_size(cm_json_get(grp, "attachments.0.content.body")), 2 + 3 * 3);
    json_decref(one);
    json_decref(grp);
    cm_notice_free(x);
    free_all(g, 3);
}

static void test_teams_escaping_and_limits(void)
{
    struct cm_notice *h = hostile(), *many[CM_PAYLOAD_TEAMS_ITEMS + 5];
    json_t *j = parse(cm_payload_teams((const struct cm_notice *const *)&h, 1, NOW)), *m;
    const char *head = cm_json_str(j, "attachments.0.content.body.0.text");
    const char *msg = cm_json_str(j, "attachments.0.content.body.2.text");
    const char *tgt = cm_json_str(j, "attachments.0.content.body.3.facts.0.value");

    CU_ASSERT_FATAL(head && msg && tgt);
    /* Markdown cannot be forged: every marker is escaped; no line breaks. */
    EXPECT_STR(msg, "CN=\"<b>\\*bold\\*</b>\" \\_it\\_ \\`code\\` \\~s\\~ \\\\ second line & more");
    EXPECT_STR(tgt, "<script>alert(\"t\")</script>  X-Injected: 1 \\[x\\](http://evil)");
    CU_ASSERT_PTR_NULL(strpbrk(head, "\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(head, "\\[x\\](http://evil)"));
    for (size_t i = 0; i < CM_PAYLOAD_TEAMS_ITEMS + 5; i++)
        many[i] = expired(CM_ALERT_FIRING);
    m = parse(
        cm_payload_teams((const struct cm_notice *const *)many, CM_PAYLOAD_TEAMS_ITEMS + 5, NOW));
    /* Header, 10 notices of three elements, "5 more", footer. */
    EXPECT_INT(json_array_size(cm_json_get(m, "attachments.0.content.body")),
               1 + 3 * CM_PAYLOAD_TEAMS_ITEMS + 2);
    EXPECT_STR(cm_json_str(m, "attachments.0.content.body.31.text"),
               "\xe2\x80\xa6 and 5 more alerts not shown here");
    json_decref(j);
    json_decref(m);
    free_all(many, CM_PAYLOAD_TEAMS_ITEMS + 5);
    cm_notice_free(h);
}

static void test_telegram_html_and_plain(void)
{
    struct cm_notice *h = hostile(), *x = expired(CM_ALERT_FIRING);
    json_t *html =
        parse(cm_payload_telegram((const struct cm_notice *const *)&h, 1, "-1001234", 1, NOW));
    json_t *plain =
        parse(cm_payload_telegram((const struct cm_notice *const *)&h, 1, "@ops", 0, NOW));
    json_t *one = parse(cm_payload_telegram((const struct cm_notice *const *)&x, 1, "42", 1, NOW));
    const char *t = cm_json_str(html, "text"), *p = cm_json_str(plain, "text");

    CU_ASSERT_FATAL(t && p);
    EXPECT_STR(keys_of(html), "chat_id,text,parse_mode,link_preview_options");
    EXPECT_STR(cm_json_str(html, "chat_id"), "-1001234");
    EXPECT_STR(cm_json_str(html, "parse_mode"), "HTML");
    CU_ASSERT(json_is_true(cm_json_get(html, "link_preview_options.is_disabled")));
    /* Hostile text is entity-escaped; the only tags are certmon's own. */
    CU_ASSERT_PTR_NOT_NULL(strstr(
        t, "<b>&lt;script&gt;alert(\"t\")&lt;/script&gt;  X-Injected: 1 [x](http://evil)</b>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "CN=\"&lt;b&gt;*bold*&lt;/b&gt;\" _it_ `code` ~s~ \\\nsecond "
                                     "line &amp; more"));
    CU_ASSERT_PTR_NULL(strstr(t, "<script>"));
    EXPECT_INT(count_str(t, "<b>"), count_str(t, "</b>"));
    /* Plain text: no parse_mode, the text as it is (one line for the target). */
    EXPECT_STR(keys_of(plain), "chat_id,text,link_preview_options");
    CU_ASSERT_PTR_NOT_NULL(strstr(p, "on <script>alert(\"t\")</script>  X-Injected"));
    CU_ASSERT_PTR_NULL(strstr(p, "&lt;"));
    EXPECT_STR(cm_json_str(one, "text"),
               "\xf0\x9f\x94\xb4 <b>CRITICAL</b> <code>cert.expired</code> on "
               "<b>www.example.com:443</b>\n<i>a certificate of the chain has expired</i>\n"
               "certificate expired 3 days ago\nSince: 2023-11-15T09:33:20Z (3 days ago) "
               "\xc2\xb7 Position: 0\nLabels: env=prod, team=web\n<i>certmon " CERTMON_VERSION
               "</i>");
    CU_ASSERT_PTR_NULL(cm_payload_telegram((const struct cm_notice *const *)&x, 1, "", 1, NOW));
    CU_ASSERT_PTR_NULL(cm_payload_telegram((const struct cm_notice *const *)&x, 1, NULL, 1, NOW));
    json_decref(html);
    json_decref(plain);
    json_decref(one);
    cm_notice_free(h);
    cm_notice_free(x);
}

static void test_telegram_limit(void)
{
    enum { N = 60 };
    char *big = repeat("<\xf0\x9f\x94\x92", 2000); /* '<' and a lock: 3 units each in html */
    struct cm_notice *g[N];
    json_t *j, *k;
    const char *t, *u;

    EXPECT_INT(cm_payload_telegram_length("a&lt;b<b>c</b>\xf0\x9f\x94\x92\xc3\xa9", 1), 7);
    EXPECT_INT(cm_payload_telegram_length("a&lt;b<b>", 0), 9);
    for (size_t i = 0; i < N; i++)
        g[i] = mk(CM_ALERT_FIRING, big, "cert.expired", (int)i, CM_SEV_CRITICAL, CM_SEV_CRITICAL,
                  big, NULL);
    j = parse(cm_payload_telegram((const struct cm_notice *const *)g, N, "1", 1, NOW));
    k = parse(cm_payload_telegram((const struct cm_notice *const *)g, 1, "1", 0, NOW));
    t = cm_json_str(j, "text");
    u = cm_json_str(k, "text");
    CU_ASSERT_FATAL(t && u);
    CU_ASSERT(cm_payload_telegram_length(t, 1) <= CM_PAYLOAD_TELEGRAM_MAX);
    CU_ASSERT(cm_payload_telegram_length(t, 1) > CM_PAYLOAD_TELEGRAM_MAX / 2);
    CU_ASSERT(cm_utf8_valid(t, strlen(t)));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "more alerts not shown here"));
    EXPECT_INT(count_str(t, "<b>"), count_str(t, "</b>"));
    /* One notice alone: its long fields are cut with an ellipsis, between characters. */
    CU_ASSERT(cm_payload_telegram_length(u, 0) <= CM_PAYLOAD_TELEGRAM_MAX);
    CU_ASSERT(cm_utf8_valid(u, strlen(u)));
    EXPECT_INT(count_str(u, "\xe2\x80\xa6"), 2);
    json_decref(j);
    json_decref(k);
    free_all(g, N);
    free(big);
}

static void test_ntfy(void)
{
    struct cm_notice *g[3], *h = hostile(), *r = expired(CM_ALERT_RESOLVED);
    struct cm_notice *u = mk(CM_ALERT_FIRING,
                             "b\xc3\xbc"
                             "cher.example:443",
                             "cert.expiring", 0, CM_SEV_INFO, CM_SEV_INFO, "soon", NULL);
    char *big = repeat("\xc3\xa9", 3000);
    struct cm_notice *many[8];
    struct cm_payload_ntfy p;

    group3(g);
    EXPECT_INT(cm_payload_ntfy((const struct cm_notice *const *)g, 1, NOW, &p), 0);
    EXPECT_STR(p.title, "CRITICAL: cert.expired on www.example.com:443");
    EXPECT_INT(p.priority, 5);
    EXPECT_STR(p.tags, "rotating_light,certmon,cert.expired");
    EXPECT_STR(p.body, "CRITICAL: cert.expired on www.example.com:443\n"
                       "certificate expired 3 days ago\n"
                       "Since: 2023-11-15T09:33:20Z (3 days ago) \xc2\xb7 Position: 0");
    cm_payload_ntfy_clear(&p);
    EXPECT_INT(cm_payload_ntfy((const struct cm_notice *const *)g + 1, 2, NOW, &p), 0);
    EXPECT_STR(p.title, "2 alerts (2 warning) on 1 target");
    EXPECT_INT(p.priority, 4);
    EXPECT_STR(p.tags, "warning,certmon");
    cm_payload_ntfy_clear(&p);
    EXPECT_INT(cm_payload_ntfy((const struct cm_notice *const *)&r, 1, NOW, &p), 0);
    EXPECT_INT(p.priority, 2);
    EXPECT_STR(p.tags, "white_check_mark,certmon,cert.expired");
    cm_payload_ntfy_clear(&p);
    /* A header value: no CR or LF whatever the target says. */
    EXPECT_INT(cm_payload_ntfy((const struct cm_notice *const *)&h, 1, NOW, &p), 0);
    CU_ASSERT_PTR_NULL(strpbrk(p.title, "\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(p.body, "\\\nsecond line & more"));
    cm_payload_ntfy_clear(&p);
    /* Non-ASCII title: one RFC 2047 word ("INFO: cert.expiring on bücher..." in base64). */
    EXPECT_INT(cm_payload_ntfy((const struct cm_notice *const *)&u, 1, NOW, &p), 0);
    EXPECT_INT(p.priority, 3);
    EXPECT_STR(p.title, "=?UTF-8?B?SU5GTzogY2VydC5leHBpcmluZyBvbiBiw7xjaGVyLmV4YW1wbGU6NDQz?=");
    cm_payload_ntfy_clear(&p);
    /* The body stays within ntfy's 4096 bytes, cut between characters. */
    for (size_t i = 0; i < 8; i++)
        many[i] = mk(CM_ALERT_FIRING, "t:443", "cert.expired", 0, CM_SEV_CRITICAL, CM_SEV_CRITICAL,
                     big, NULL);
    EXPECT_INT(cm_payload_ntfy((const struct cm_notice *const *)many, 8, NOW, &p), 0);
    CU_ASSERT(strlen(p.body) <= CM_PAYLOAD_NTFY_BODY_MAX);
    CU_ASSERT(strlen(p.body) > CM_PAYLOAD_NTFY_BODY_MAX - 8);
    CU_ASSERT(cm_utf8_valid(p.body, strlen(p.body)));
    CU_ASSERT(ends_with(p.body, "\xe2\x80\xa6"));
    cm_payload_ntfy_clear(&p);
    EXPECT_INT(cm_payload_ntfy(NULL, 1, NOW, &p), CM_EBADARG);
    EXPECT_INT(cm_payload_ntfy((const struct cm_notice *const *)g, 0, NOW, &p), CM_EBADARG);
    cm_payload_ntfy_clear(NULL);
    free_all(many, 8);
    free(big);
    free_all(g, 3);
    cm_notice_free(h);
    cm_notice_free(r);
    cm_notice_free(u);
}

static void test_answers(void)
{
    static const char pd[] =
        "{\"status\":\"invalid event\",\"message\":\"Event object is invalid\","
        "\"errors\":[\"Length of 'routing_key' is incorrect\",\"x\\\"y\"]}";
    static const char tg[] = "{\"ok\":false,\"error_code\":429,\"description\":\"Too Many "
                             "Requests: retry after 7\",\"parameters\":{\"retry_after\":7}}";
    char out[512], small[12];

    EXPECT_INT(cm_payload_answer(pd, strlen(pd), out, sizeof(out)), -1);
    EXPECT_STR(out, "Event object is invalid: Length of 'routing_key' is incorrect; x\\x22y");
    EXPECT_INT(cm_payload_answer(tg, strlen(tg), out, sizeof(out)), 7);
    EXPECT_STR(out, "Too Many Requests: retry after 7");
    EXPECT_INT(cm_payload_answer("bad \"quote\"\nnext\x01", 18, out, sizeof(out)), -1);
    EXPECT_STR(out, "bad \\x22quote\\x22\\x0anext\\x01");
    cm_payload_answer("<html>\xc3\xa9</html>", 15, out, sizeof(out));
    EXPECT_STR(out, "<html>\\xc3\\xa9</html>");
    cm_payload_answer("0123456789abcdef", 16, small, sizeof(small));
    EXPECT_STR(small, "0123456789a");
    cm_payload_answer(NULL, 0, out, sizeof(out));
    EXPECT_STR(out, "");
}

static CU_TestInfo tests[] = {
    {"notice_new_copies", test_notice_new_copies},
    {"notice_round_trip", test_notice_round_trip},
    {"notice_from_json_rejects", test_notice_from_json_rejects},
    {"slack_single_firing", test_slack_single_firing},
    {"slack_resolved_changed_repeat", test_slack_resolved_changed_repeat},
    {"slack_group", test_slack_group},
    {"slack_escaping", test_slack_escaping},
    {"slack_limits", test_slack_limits},
    {"webhook_single", test_webhook_single},
    {"webhook_group", test_webhook_group},
    {"webhook_text_sanitized", test_webhook_text_sanitized},
    {"hmac_rfc4231", test_hmac_rfc4231},
    {"hmac_matches_openssl", test_hmac_matches_openssl},
    {"email_single", test_email_single},
    {"email_group", test_email_group},
    {"email_subjects", test_email_subjects},
    {"email_subject_non_ascii", test_email_subject_non_ascii},
    {"email_header_injection", test_email_header_injection},
    {"email_dot_stuffing", test_email_dot_stuffing},
    {"email_long_lines_and_ids", test_email_long_lines_and_ids},
    {"email_many_recipients", test_email_many_recipients},
    {"alertmanager_labels", test_alertmanager_labels},
    {"alertmanager_endsat", test_alertmanager_endsat},
    {"null_inputs", test_null_inputs},
    {"pagerduty_trigger_resolve", test_pagerduty_trigger_resolve},
    {"pagerduty_hostile_and_long", test_pagerduty_hostile_and_long},
    {"teams_card", test_teams_card},
    {"teams_escaping_and_limits", test_teams_escaping_and_limits},
    {"telegram_html_and_plain", test_telegram_html_and_plain},
    {"telegram_limit", test_telegram_limit},
    {"ntfy", test_ntfy},
    {"answers", test_answers},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("payload", tests, NULL, NULL);
}
