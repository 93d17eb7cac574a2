/* unit.metrics: views built from hand-written reports, the exact lines they render, the
 * exposition's structure (checked here and by `promtool check metrics`), the process
 * metrics, and the Prometheus files in contrib/prometheus (promtool check and test). Also
 * prints (never asserts) how long rendering 10,000 targets takes. */
#include "certmon/analysis/metrics.h"
#include "certmon/daemon/process.h"
#include "cmtest.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROMTOOL "/usr/bin/promtool"

/* ---- Helpers ---- */

/* Parses JSON written with single quotes for double quotes (none of the texts below has a
 * single quote of its own). */
static json_t *jq(const char *text)
{
    char *s = strdup(text);
    json_error_t err;
    json_t *j;

    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    j = json_loads(s, 0, &err);
    if (!j)
        fprintf(stderr, "bad test JSON at %d: %s\n", err.position, err.text);
    free(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    return j;
}

/* The view of report r, which it takes. */
static struct cm_metrics_view *view_of_json(json_t *r)
{
    struct cm_metrics_view *v = cm_metrics_view_new(r);

    json_decref(r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    return v;
}

static struct cm_metrics_view *view_of(const char *text)
{
    return view_of_json(jq(text));
}

/* Renders views (and self, proc) into a malloc'd NUL-terminated string. */
static char *render(struct cm_metrics_view **views, size_t n, const struct cm_metrics_self *self,
                    const struct cm_metrics_process *proc)
{
    struct cm_metrics_buf b = {0};

    EXPECT_INT(cm_metrics_render((const struct cm_metrics_view *const *)views, n, self, proc, &b),
               0);
    CU_ASSERT_FALSE(b.failed);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.data);
    CU_ASSERT_EQUAL(strlen(b.data), b.len);
    return b.data;
}

/* The value of the sample whose name and labels are key (`name{...}` exactly), in a static
 * buffer; NULL when there is no such line. */
static const char *sample(const char *text, const char *key)
{
    static char val[64];
    size_t klen = strlen(key);

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, key, klen) && p[klen] == ' ') {
            size_t n = strcspn(p + klen + 1, "\n");
            snprintf(val, sizeof(val), "%.*s", (int)n, p + klen + 1);
            return val;
        }
    return NULL;
}

/* Lines that start with prefix. */
static int count_lines(const char *text, const char *prefix)
{
    int n = 0;

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        n += !strncmp(p, prefix, strlen(prefix));
    return n;
}

#define EXPECT_SAMPLE(text, key, want) expect_str(sample((text), (key)), (want), (key), __LINE__)
#define EXPECT_NO_SAMPLE(text, key) expect_str(sample((text), (key)), NULL, (key), __LINE__)
#define EXPECT_LINES(text, prefix, want)                                                           \
    expect_int(count_lines((text), (prefix)), (want), (prefix), __LINE__)

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The rules of the text format that promtool does not all check: one HELP and one TYPE per
 * family, in that order, before its samples; each family's samples together; no series
 * twice. Also: every target's certmon_status is one-hot over the four statuses. */
static int structure_problems(const char *text, int line)
{
    char *copy = strdup(text), *save = NULL, *l;
    char **families = NULL, **series = NULL;
    size_t nfam = 0, nser = 0;
    char current[128] = "", helped[128] = "";
    int bad = 0;
#define say(...) (line > 0 ? fprintf(stderr, __VA_ARGS__) : 0)

    CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
    for (l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char name[128];
        if (!strncmp(l, "# HELP ", 7)) {
            sscanf(l + 7, "%127s", helped);
            for (size_t i = 0; i < nfam; i++)
                if (!strcmp(families[i], helped)) {
                    say("line %d: family %s twice\n", line, helped);
                    bad++;
                }
            families = realloc(families, (nfam + 1) * sizeof(*families));
            families[nfam++] = strdup(helped);
            current[0] = '\0';
        } else if (!strncmp(l, "# TYPE ", 7)) {
            sscanf(l + 7, "%127s", name);
            if (strcmp(name, helped)) {
                say("line %d: TYPE %s not right after its HELP\n", line, name);
                bad++;
            }
            snprintf(current, sizeof(current), "%s", name);
        } else if (l[0] == '#') {
            say("line %d: unexpected comment: %s\n", line, l);
            bad++;
        } else {
            size_t n = strcspn(l, "{ ");
            char *sp = strrchr(l, ' ');
            snprintf(name, sizeof(name), "%.*s", (int)n, l);
            if (strcmp(name, current)) {
                say("line %d: sample outside its family block: %s\n", line, l);
                bad++;
            }
            if (!sp) {
                bad++;
                continue;
            }
            series = realloc(series, (nser + 1) * sizeof(*series));
            series[nser++] = strndup(l, (size_t)(sp - l));
        }
    }
    qsort(series, nser, sizeof(*series), cmp_str);
    for (size_t i = 1; i < nser; i++)
        if (!strcmp(series[i - 1], series[i])) {
            say("line %d: duplicate series %s\n", line, series[i]);
            bad++;
        }
    /* One-hot: per target, four status series summing to 1. */
    for (const char *p = text; (p = strstr(p, "\ncertmon_status{target=\"")); p++) {
        const char *t = p + 24, *end = strstr(t, ",status=\"");
        char prefix[512];
        int count = 0, ones = 0;
        if (!end || strncmp(end, ",status=\"ok\"", 12))
            continue; /* each target once: at its "ok" line */
        snprintf(prefix, sizeof(prefix), "certmon_status{target=\"%.*s,status=\"", (int)(end - t),
                 t);
        for (const char *q = text; (q = strstr(q, prefix)); q++) {
            count++;
            ones += !strncmp(strchr(q, '}'), "} 1\n", 4);
        }
        if (count != 4 || ones != 1) {
            say("line %d: status of %.*s: %d series, %d set\n", line, (int)(end - t), t, count,
                ones);
            bad++;
        }
    }
    for (size_t i = 0; i < nfam; i++)
        free(families[i]);
    for (size_t i = 0; i < nser; i++)
        free(series[i]);
    free(families);
    free(series);
    free(copy);
    return bad;
#undef say
}

#define check_structure(text, line)                                                                \
    expect_int(structure_problems((text), (line)), 0, "structure problems", (line))

/* The checker above finds what it is meant to find (quietly: line 0). */
static void test_structure_checker(void)
{
    EXPECT_INT(structure_problems("# HELP a x\n# TYPE a gauge\na 1\n"
                                  "# HELP b x\n# TYPE b gauge\nb{l=\"1\"} 1\n",
                                  0),
               0);
    /* A family in two blocks, and so its series twice. */
    EXPECT_INT(structure_problems("# HELP a x\n# TYPE a gauge\na 1\n# HELP b x\n# TYPE b gauge\n"
                                  "b 1\n# HELP a x\n# TYPE a gauge\na 2\n",
                                  0),
               2);
    /* A sample under another family's header; TYPE without its HELP; an EOF marker. */
    EXPECT_INT(structure_problems("# HELP a x\n# TYPE a gauge\nb 1\n", 0), 1);
    EXPECT_INT(structure_problems("# HELP a x\n# TYPE b gauge\nb 1\n", 0), 1);
    EXPECT_INT(structure_problems("# HELP a x\n# TYPE a gauge\na 1\n# EOF\n", 0), 1);
    /* Status not one-hot. */
    EXPECT_INT(structure_problems("# HELP certmon_status x\n# TYPE certmon_status gauge\n"
                                  "certmon_status{target=\"t\",status=\"ok\"} 1\n"
                                  "certmon_status{target=\"t\",status=\"warning\"} 1\n"
                                  "certmon_status{target=\"t\",status=\"critical\"} 0\n"
                                  "certmon_status{target=\"t\",status=\"unknown\"} 0\n",
                                  0),
               1);
}

static bool have_promtool(void)
{
    if (access(PROMTOOL, X_OK) == 0)
        return true;
    printf("\n  SKIPPED: %s is missing (Debian package prometheus); promtool checks not run\n",
           PROMTOOL);
    return false;
}

/* Runs a shell command, capturing stdout and stderr; returns its exit status (-1 if it did
 * not exit). */
static int run_shell(const char *cmd, char **out)
{
    FILE *fp = popen(cmd, "r");
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    int st;

    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    for (size_t n; (n = fread(buf + len, 1, cap - len - 1, fp)) > 0;) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        }
    }
    buf[len] = '\0';
    st = pclose(fp);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Feeds text to `promtool check metrics`; it must say nothing and exit 0. */
static void promtool_check_metrics(const char *text, int line)
{
    char path[] = "/tmp/certmon-metrics-XXXXXX", cmd[256], *out;
    int fd, rc;
    FILE *fp;

    if (!have_promtool())
        return;
    CU_ASSERT_FATAL((fd = mkstemp(path)) >= 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp = fdopen(fd, "w"));
    fputs(text, fp);
    fclose(fp);
    snprintf(cmd, sizeof(cmd), PROMTOOL " check metrics < %s 2>&1", path);
    rc = run_shell(cmd, &out);
    expect_int(rc, 0, "promtool check metrics exit status", line);
    expect_str(out, "", "promtool check metrics output", line);
    free(out);
    unlink(path);
}

/* A path in the source tree (tests are compiled with absolute source paths), static. */
static const char *source_path(const char *rel)
{
    static char buf[4096];
    const char *here = __FILE__, *cut = strstr(here, "tests/unit/test_metrics.c");

    snprintf(buf, sizeof(buf), "%.*s%s", cut ? (int)(cut - here) : 0, here, rel);
    return buf;
}

/* ---- Reports ---- */

/* An endpoint that answered: two certificates, a posture pass, findings (cert.expiring at two
 * positions, signature.weak at two severities, one never timed). */
static const char *const report_a =
    "{'target':'a:443','host':'a','port':443,'sni':'a','address':'192.0.2.1','starttls':null,"
    "'status':'warning','error':null,"
    "'timing_ms':{'dns':1.5,'connect':0.25,'starttls':null,'handshake':12.345,'total':14.1},"
    "'tls':{'version':'TLS1.3','cipher':'TLS_AES_128_GCM_SHA256','group':'X25519'},"
    "'verification':{'trusted':true,'hostname_match':true,'errors':[]},"
    "'ocsp':{'stapled':false,'status':null,'verified':false,'this_update':null,"
    "'next_update':null},"
    "'mtls':{'client_cert_requested':false,'client_cert_sent':false,'client_cert':null},"
    "'chain':["
    "{'position':0,'subject':'CN=a','issuer':'CN=Example CA,O=Example','serial':'0a1b2c',"
    "'not_before':'2025-11-27T07:51:30Z','not_after':'2026-11-27T07:51:29Z','days_left':20,"
    "'key':{'type':'RSA','bits':2048},'signature':'RSA-SHA256','sha256':'aa11',"
    "'sans':['a'],'is_ca':false,'self_signed':false,'must_staple':false},"
    "{'position':1,'subject':'CN=Example CA,O=Example','issuer':'CN=Example Root',"
    "'serial':'01','not_before':'2020-01-01T00:00:00Z','not_after':'2030-01-01T00:00:00Z',"
    "'days_left':1200,'key':{'type':'EC','bits':256},'signature':'ECDSA-SHA384',"
    "'sha256':'bb22','sans':[],'is_ca':true,'self_signed':false,'must_staple':false}],"
    "'findings':["
    "{'id':'cert.expiring','severity':'warning','message':'m','position':0,'days_left':20,"
    "'first_seen':'2026-11-20T00:00:00Z'},"
    "{'id':'cert.expiring','severity':'warning','message':'m','position':1,'days_left':20,"
    "'first_seen':'2026-11-10T00:00:00Z'},"
    "{'id':'signature.weak','severity':'warning','message':'m','position':0,"
    "'first_seen':'2026-11-27T08:00:00Z'},"
    "{'id':'signature.weak','severity':'info','message':'m','position':1,"
    "'first_seen':'2026-11-01T00:00:00Z'},"
    "{'id':'ocsp.not_stapled','severity':'info','message':'m','position':0,"
    "'first_seen':null}],"
    "'posture':{'versions_accepted':['TLS1.3','TLS1.2','TLS1.0'],'weak_ciphers_accepted':[],"
    "'forward_secrecy':true,'dh_bits':0,'secure_renegotiation':true,'not_tested':['SSL3.0'],"
    "'handshakes':11,'elapsed_ms':10.5},"
    "'labels':{'team':'web'},'last_probe':'2026-11-27T08:00:00Z',"
    "'last_success':'2026-11-27T08:00:00Z','failures':0,'status_since':'2026-11-20T00:00:00Z'}";

/* A refused connection, with labels that need escaping: say "hi" C:\dir<newline>next. */
static const char *const report_b =
    "{'target':'b.example:8443','host':'b.example','port':8443,'sni':'b.example',"
    "'address':'192.0.2.2','starttls':null,'status':'critical',"
    "'error':{'kind':'connect','message':'cannot connect: Connection refused'},"
    "'timing_ms':{'dns':0.5,'connect':1,'starttls':null,'handshake':null,'total':1.5},"
    "'tls':{'version':null,'cipher':null,'group':null},"
    "'verification':{'trusted':false,'hostname_match':false,'errors':[]},"
    "'ocsp':{'stapled':false,'status':null,'verified':false,'this_update':null,"
    "'next_update':null},"
    "'mtls':{'client_cert_requested':false,'client_cert_sent':false,'client_cert':null},"
    "'chain':[],"
    "'findings':[{'id':'probe.failed','severity':'critical','message':'m','position':null,"
    "'first_seen':'2026-11-26T23:00:00Z'}],"
    "'posture':null,"
    "'labels':{'team':'ops','note':'say \\\"hi\\\" C:\\\\dir\\nnext'},"
    "'last_probe':'2026-11-27T08:00:05Z','last_success':null,'failures':3,"
    "'status_since':'2026-11-26T23:00:00Z'}";

/* A certificate file, whose subject needs escaping: CN=evil"quote\back. */
static const char *const report_c =
    "{'target':'file:/etc/ssl/x.pem','path':'/etc/ssl/x.pem','host':null,'port':null,"
    "'sni':null,'address':null,'starttls':null,'status':'critical','error':null,"
    "'timing_ms':{'dns':null,'connect':null,'starttls':null,'handshake':null,'total':0.25},"
    "'tls':null,'verification':null,'ocsp':null,'mtls':null,"
    "'chain':[{'position':0,'subject':'CN=evil\\\"quote\\\\back','issuer':'CN="
    "evil\\\"quote\\\\back',"
    "'serial':'ff','not_before':'2025-06-01T12:00:00Z','not_after':'2026-06-01T12:00:00Z',"
    "'days_left':-179,'key':{'type':'EC','bits':256},'signature':'ECDSA-SHA256',"
    "'sha256':'cc33','sans':[],'is_ca':false,'self_signed':true,'must_staple':false}],"
    "'findings':[{'id':'cert.expired','severity':'critical','message':'m','position':0,"
    "'first_seen':'2026-06-01T12:00:00Z'}],"
    "'posture':null,'labels':{},'last_probe':'2026-11-27T08:00:00Z',"
    "'last_success':'2026-11-27T08:00:00Z','failures':0,'status_since':'2026-06-01T12:00:00Z'}";

/* Labels certmon cannot use as they are. */
static const char *const report_d =
    "{'target':'d:443','status':'ok','error':null,"
    "'labels':{'bad-name':'x','__meta':'y','position':'p','key':'k','9lives':'z',"
    "'ok_name':'v','num':5,'Zed':'z','_under':'u'}}";

/* ---- Tests ---- */

static void test_endpoint(void)
{
    struct cm_metrics_view *v = view_of(report_a);
    char *t = render(&v, 1, NULL, NULL);
#define A "{target=\"a:443\",team=\"web\""

    EXPECT_SAMPLE(t, "certmon_probe_success" A "}", "1");
    EXPECT_SAMPLE(t, "certmon_probe_duration_seconds" A ",phase=\"dns\"}", "0.0015");
    EXPECT_SAMPLE(t, "certmon_probe_duration_seconds" A ",phase=\"connect\"}", "0.00025");
    EXPECT_SAMPLE(t, "certmon_probe_duration_seconds" A ",phase=\"handshake\"}", "0.012345");
    EXPECT_SAMPLE(t, "certmon_probe_duration_seconds" A ",phase=\"total\"}", "0.0141");
    EXPECT_NO_SAMPLE(t, "certmon_probe_duration_seconds" A ",phase=\"starttls\"}");
    EXPECT_SAMPLE(t, "certmon_last_probe_timestamp_seconds" A "}", "1795766400");
    EXPECT_SAMPLE(t, "certmon_last_success_timestamp_seconds" A "}", "1795766400");
    EXPECT_SAMPLE(t, "certmon_status" A ",status=\"ok\"}", "0");
    EXPECT_SAMPLE(t, "certmon_status" A ",status=\"warning\"}", "1");
    EXPECT_SAMPLE(t, "certmon_status" A ",status=\"critical\"}", "0");
    EXPECT_SAMPLE(t, "certmon_status" A ",status=\"unknown\"}", "0");
    /* To the second, as the certificate says. */
    EXPECT_SAMPLE(t, "certmon_cert_not_after_timestamp_seconds" A ",position=\"0\"}", "1795765889");
    EXPECT_SAMPLE(t, "certmon_cert_not_after_timestamp_seconds" A ",position=\"1\"}", "1893456000");
    EXPECT_SAMPLE(t, "certmon_cert_not_before_timestamp_seconds" A ",position=\"0\"}",
                  "1764229890");
    EXPECT_SAMPLE(t, "certmon_cert_not_before_timestamp_seconds" A ",position=\"1\"}",
                  "1577836800");
    EXPECT_SAMPLE(t,
                  "certmon_cert_info" A ",position=\"0\",subject=\"CN=a\",issuer=\"CN=Example "
                  "CA,O=Example\",serial=\"0a1b2c\",sha256=\"aa11\",key=\"RSA 2048\","
                  "signature=\"RSA-SHA256\"}",
                  "1");
    EXPECT_SAMPLE(t,
                  "certmon_cert_info" A ",position=\"1\",subject=\"CN=Example CA,O=Example\","
                  "issuer=\"CN=Example Root\",serial=\"01\",sha256=\"bb22\",key=\"EC 256\","
                  "signature=\"ECDSA-SHA384\"}",
                  "1");
    EXPECT_LINES(t, "certmon_cert_info{", 2);
    EXPECT_SAMPLE(t, "certmon_chain_expiry_timestamp_seconds" A "}", "1795765889");
    EXPECT_SAMPLE(t, "certmon_verify_ok" A "}", "1");
    EXPECT_SAMPLE(t, "certmon_tls_version_info" A ",version=\"TLS1.3\"}", "1");
    EXPECT_SAMPLE(t, "certmon_tls_cipher_info" A ",cipher=\"TLS_AES_128_GCM_SHA256\"}", "1");
    EXPECT_SAMPLE(t, "certmon_protocol_accepted" A ",version=\"TLS1.3\"}", "1");
    EXPECT_SAMPLE(t, "certmon_protocol_accepted" A ",version=\"TLS1.2\"}", "1");
    EXPECT_SAMPLE(t, "certmon_protocol_accepted" A ",version=\"TLS1.1\"}", "0");
    EXPECT_SAMPLE(t, "certmon_protocol_accepted" A ",version=\"TLS1.0\"}", "1");
    EXPECT_LINES(t, "certmon_protocol_accepted{", 4); /* SSL3.0 was not tested */
    /* The same id at two positions is one series; two severities are two. */
    EXPECT_SAMPLE(t, "certmon_finding" A ",id=\"cert.expiring\",severity=\"warning\"}", "1");
    EXPECT_SAMPLE(t, "certmon_finding" A ",id=\"signature.weak\",severity=\"warning\"}", "1");
    EXPECT_SAMPLE(t, "certmon_finding" A ",id=\"signature.weak\",severity=\"info\"}", "1");
    EXPECT_SAMPLE(t, "certmon_finding" A ",id=\"ocsp.not_stapled\",severity=\"info\"}", "1");
    EXPECT_LINES(t, "certmon_finding{", 4);
    /* The earliest first_seen per id; none for a finding without one. */
    EXPECT_SAMPLE(t, "certmon_finding_first_seen_timestamp_seconds" A ",id=\"cert.expiring\"}",
                  "1794268800");
    EXPECT_SAMPLE(t, "certmon_finding_first_seen_timestamp_seconds" A ",id=\"signature.weak\"}",
                  "1793491200");
    EXPECT_LINES(t, "certmon_finding_first_seen_timestamp_seconds{", 2);
    /* One HELP and one TYPE per family, and no self or process families without those. */
    EXPECT_LINES(t, "# HELP certmon_cert_info ", 1);
    EXPECT_LINES(t, "# TYPE certmon_cert_info gauge\n", 1);
    EXPECT_LINES(t, "# TYPE ", 15);
    EXPECT_LINES(t, "# HELP certmon_probes_total", 0);
    EXPECT_LINES(t, "process_", 0);
    CU_ASSERT_PTR_NULL(strstr(t, "# EOF"));
    check_structure(t, __LINE__);
    promtool_check_metrics(t, __LINE__);
#undef A
    free(t);
    cm_metrics_view_free(v);
}

static void test_failed_probe(void)
{
    struct cm_metrics_view *v = view_of(report_b);
    char *t = render(&v, 1, NULL, NULL);
    /* Configured labels sorted by name, after target; values escaped. */
#define B "{target=\"b.example:8443\",note=\"say \\\"hi\\\" C:\\\\dir\\nnext\",team=\"ops\""

    EXPECT_SAMPLE(t, "certmon_probe_success" B "}", "0");
    EXPECT_SAMPLE(t, "certmon_probe_duration_seconds" B ",phase=\"dns\"}", "0.0005");
    EXPECT_SAMPLE(t, "certmon_probe_duration_seconds" B ",phase=\"connect\"}", "0.001");
    EXPECT_SAMPLE(t, "certmon_probe_duration_seconds" B ",phase=\"total\"}", "0.0015");
    EXPECT_LINES(t, "certmon_probe_duration_seconds{", 3);
    EXPECT_SAMPLE(t, "certmon_last_probe_timestamp_seconds" B "}", "1795766405");
    EXPECT_LINES(t, "certmon_last_success_timestamp_seconds", 0); /* never */
    EXPECT_SAMPLE(t, "certmon_status" B ",status=\"critical\"}", "1");
    EXPECT_SAMPLE(t, "certmon_status" B ",status=\"ok\"}", "0");
    EXPECT_SAMPLE(t, "certmon_finding" B ",id=\"probe.failed\",severity=\"critical\"}", "1");
    EXPECT_SAMPLE(t, "certmon_finding_first_seen_timestamp_seconds" B ",id=\"probe.failed\"}",
                  "1795734000");
    /* Nothing about certificates, TLS or posture: none came. A verification object without
     * a certificate verified nothing. */
    EXPECT_LINES(t, "certmon_cert_", 0);
    EXPECT_LINES(t, "certmon_chain_expiry", 0);
    EXPECT_LINES(t, "certmon_verify_ok", 0);
    EXPECT_LINES(t, "certmon_tls_", 0);
    EXPECT_LINES(t, "certmon_protocol_accepted", 0);
    EXPECT_LINES(t, "# HELP certmon_cert_", 0);
    check_structure(t, __LINE__);
    promtool_check_metrics(t, __LINE__);
#undef B
    free(t);
    cm_metrics_view_free(v);
}

static void test_file_target(void)
{
    struct cm_metrics_view *v = view_of(report_c);
    char *t = render(&v, 1, NULL, NULL);
#define C "{target=\"file:/etc/ssl/x.pem\""

    EXPECT_SAMPLE(t, "certmon_probe_success" C "}", "1");
    EXPECT_SAMPLE(t, "certmon_probe_duration_seconds" C ",phase=\"total\"}", "0.00025");
    EXPECT_LINES(t, "certmon_probe_duration_seconds{", 1);
    EXPECT_SAMPLE(t, "certmon_cert_not_after_timestamp_seconds" C ",position=\"0\"}", "1780315200");
    EXPECT_SAMPLE(t, "certmon_cert_not_before_timestamp_seconds" C ",position=\"0\"}",
                  "1748779200");
    EXPECT_SAMPLE(t,
                  "certmon_cert_info" C ",position=\"0\",subject=\"CN=evil\\\"quote\\\\back\","
                  "issuer=\"CN=evil\\\"quote\\\\back\",serial=\"ff\",sha256=\"cc33\","
                  "key=\"EC 256\",signature=\"ECDSA-SHA256\"}",
                  "1");
    EXPECT_SAMPLE(t, "certmon_chain_expiry_timestamp_seconds" C "}", "1780315200");
    EXPECT_SAMPLE(t, "certmon_status" C ",status=\"critical\"}", "1");
    EXPECT_SAMPLE(t, "certmon_finding" C ",id=\"cert.expired\",severity=\"critical\"}", "1");
    /* No connection: no verification, TLS or posture series. */
    EXPECT_LINES(t, "certmon_verify_ok", 0);
    EXPECT_LINES(t, "certmon_tls_", 0);
    EXPECT_LINES(t, "certmon_protocol_accepted", 0);
    check_structure(t, __LINE__);
    promtool_check_metrics(t, __LINE__);
#undef C
    free(t);
    cm_metrics_view_free(v);
}

/* ---- Certificate texts shared between views ---- */

/* report_a for target name with a leaf of its own kind: subject CN=leaf-SEED, serial and
 * sha256 from seed; the intermediate (position 1) is report_a's for every seed. */
static json_t *report_with_leaf(const char *name, unsigned seed)
{
    json_t *r = jq(report_a), *leaf = json_array_get(json_object_get(r, "chain"), 0);
    char text[80];

    CU_ASSERT_PTR_NOT_NULL_FATAL(leaf);
    json_object_set_new(r, "target", json_string(name));
    snprintf(text, sizeof(text), "CN=leaf-%u", seed);
    json_object_set_new(leaf, "subject", json_string(text));
    snprintf(text, sizeof(text), "%08x", seed);
    json_object_set_new(leaf, "serial", json_string(text));
    snprintf(text, sizeof(text), "%064x", seed);
    json_object_set_new(leaf, "sha256", json_string(text));
    return r;
}

#define INTERMEDIATE                                                                               \
    "subject=\"CN=Example CA,O=Example\",issuer=\"CN=Example Root\",serial=\"01\","                \
    "sha256=\"bb22\",key=\"EC 256\",signature=\"ECDSA-SHA384\"}"

/* Two targets whose leaves differ and whose intermediate is the same: each renders the lines
 * it rendered alone, the intermediate is one text for both, and the revocation status stays
 * each report's own. Freeing the views frees the texts. */
static void test_shared_certs(void)
{
    json_t *rb = report_with_leaf("b1:443", 2);
    struct cm_metrics_view *va, *vb, *vc, *both[3];
    char *a_alone, *b_alone, *t;

    /* Every view of the tests before was freed. */
    EXPECT_INT(cm_metrics_shared_certs(), 0);
    json_object_set_new(json_array_get(json_object_get(rb, "chain"), 1), "revocation",
                        json_pack("{s:s}", "status", "revoked"));
    va = view_of_json(report_with_leaf("a1:443", 1));
    EXPECT_INT(cm_metrics_shared_certs(), 2);
    a_alone = render(&va, 1, NULL, NULL);
    vb = view_of_json(rb);
    EXPECT_INT(cm_metrics_shared_certs(), 3); /* leaf-1, leaf-2, one intermediate */
    b_alone = render(&vb, 1, NULL, NULL);

    both[0] = va;
    both[1] = vb;
    t = render(both, 2, NULL, NULL);
    EXPECT_SAMPLE(t,
                  "certmon_cert_info{target=\"a1:443\",team=\"web\",position=\"0\","
                  "subject=\"CN=leaf-1\",issuer=\"CN=Example CA,O=Example\",serial=\"00000001\","
                  "sha256=\"0000000000000000000000000000000000000000000000000000000000000001\","
                  "key=\"RSA 2048\",signature=\"RSA-SHA256\"}",
                  "1");
    EXPECT_SAMPLE(t,
                  "certmon_cert_info{target=\"b1:443\",team=\"web\",position=\"0\","
                  "subject=\"CN=leaf-2\",issuer=\"CN=Example CA,O=Example\",serial=\"00000002\","
                  "sha256=\"0000000000000000000000000000000000000000000000000000000000000002\","
                  "key=\"RSA 2048\",signature=\"RSA-SHA256\"}",
                  "1");
    EXPECT_SAMPLE(
        t, "certmon_cert_info{target=\"a1:443\",team=\"web\",position=\"1\"," INTERMEDIATE, "1");
    EXPECT_SAMPLE(
        t, "certmon_cert_info{target=\"b1:443\",team=\"web\",position=\"1\"," INTERMEDIATE, "1");
    EXPECT_LINES(t, "certmon_cert_info{", 4);
    EXPECT_SAMPLE(t,
                  "certmon_cert_not_after_timestamp_seconds{target=\"b1:443\",team=\"web\","
                  "position=\"1\"}",
                  "1893456000");
    /* Revocation was checked for b's intermediate only. */
    EXPECT_SAMPLE(t,
                  "certmon_cert_revocation_status{target=\"b1:443\",team=\"web\",position=\"1\","
                  "status=\"revoked\"}",
                  "1");
    EXPECT_LINES(t, "certmon_cert_revocation_status{target=\"b1:443\"", 4);
    EXPECT_LINES(t, "certmon_cert_revocation_status{target=\"a1:443\"", 0);
    check_structure(t, __LINE__);
    free(t);

    /* The same text with another expiry (a state edited by hand) is a text of its own; the
     * leaf is a's. */
    {
        json_t *rc = report_with_leaf("c1:443", 1);
        json_object_set_new(json_array_get(json_object_get(rc, "chain"), 1), "not_after",
                            json_string("2031-01-01T00:00:00Z"));
        vc = view_of_json(rc);
    }
    EXPECT_INT(cm_metrics_shared_certs(), 4);
    both[2] = vc;
    t = render(both, 3, NULL, NULL);
    EXPECT_SAMPLE(t,
                  "certmon_cert_not_after_timestamp_seconds{target=\"a1:443\",team=\"web\","
                  "position=\"1\"}",
                  "1893456000");
    EXPECT_SAMPLE(t,
                  "certmon_cert_not_after_timestamp_seconds{target=\"c1:443\",team=\"web\","
                  "position=\"1\"}",
                  "1924992000");
    EXPECT_SAMPLE(t, "certmon_chain_expiry_timestamp_seconds{target=\"c1:443\",team=\"web\"}",
                  "1795765889");
    EXPECT_SAMPLE(
        t, "certmon_cert_info{target=\"c1:443\",team=\"web\",position=\"1\"," INTERMEDIATE, "1");
    free(t);
    cm_metrics_view_free(vc);
    EXPECT_INT(cm_metrics_shared_certs(), 3);

    /* Each view still renders what it rendered alone, with or without the other. */
    t = render(&va, 1, NULL, NULL);
    EXPECT_STR(t, a_alone);
    free(t);
    cm_metrics_view_free(va);
    EXPECT_INT(cm_metrics_shared_certs(), 2); /* leaf-2 and the intermediate, b's */
    t = render(&vb, 1, NULL, NULL);
    EXPECT_STR(t, b_alone);
    free(t);
    /* A streamed render holds a reference: the texts stay until it lets go. */
    cm_metrics_view_ref(vb);
    cm_metrics_view_free(vb);
    EXPECT_INT(cm_metrics_shared_certs(), 2);
    cm_metrics_view_free(vb);
    EXPECT_INT(cm_metrics_shared_certs(), 0);
    free(a_alone);
    free(b_alone);
}

/* A certificate whose names try to end the label value and start a line of their own: shared
 * between two targets, escaped for both. */
static void test_shared_hostile_certs(void)
{
    static const char *const subject = "CN=x\",position=\"9\"} 1\ninjected{a=\"\\";
    struct cm_metrics_view *v[2];
    char *t;

    for (int i = 0; i < 2; i++) {
        json_t *r = jq(report_c), *c = json_array_get(json_object_get(r, "chain"), 0);
        json_object_set_new(r, "target", json_string(i ? "file:/two.pem" : "file:/one.pem"));
        json_object_set_new(c, "subject", json_string(subject));
        json_object_set_new(c, "issuer", json_string(subject));
        json_object_set_new(json_object_get(c, "key"), "type", json_string("EC\"\n"));
        v[i] = view_of_json(r);
    }
    EXPECT_INT(cm_metrics_shared_certs(), 1);
    t = render(v, 2, NULL, NULL);
#define EVIL "CN=x\\\",position=\\\"9\\\"} 1\\ninjected{a=\\\"\\\\"
    for (int i = 0; i < 2; i++) {
        char key[512];
        snprintf(key, sizeof(key),
                 "certmon_cert_info{target=\"%s\",position=\"0\",subject=\"" EVIL
                 "\",issuer=\"" EVIL "\",serial=\"ff\",sha256=\"cc33\",key=\"EC\\\"\\n 256\","
                 "signature=\"ECDSA-SHA256\"}",
                 i ? "file:/two.pem" : "file:/one.pem");
        expect_str(sample(t, key), "1", key, __LINE__);
    }
#undef EVIL
    EXPECT_LINES(t, "injected", 0);
    EXPECT_LINES(t, "certmon_cert_info{", 2);
    check_structure(t, __LINE__);
    promtool_check_metrics(t, __LINE__);
    free(t);
    cm_metrics_view_free(v[0]);
    cm_metrics_view_free(v[1]);
    EXPECT_INT(cm_metrics_shared_certs(), 0);
}

/* s escaped as a label value the plain way (the reference the renderer is held to). */
static void esc_ref(const char *s, char *out, size_t len)
{
    size_t o = 0;

    for (; s && *s && o + 3 < len; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n')
            out[o++] = '\\';
        out[o++] = *s == '\n' ? 'n' : *s;
    }
    out[o] = '\0';
}

/* A certificate's serial and fingerprint are kept as bytes when they are lowercase hex of even
 * length, as text otherwise: every form renders as the label the report's text makes, each
 * form of the same digits is a certificate of its own, and texts of any length next to each
 * other are read only where they are (ASan: copy16 reads whole blocks). */
static void test_cert_serial_forms(void)
{
    static const struct {
        const char *subject, *serial, *sha256; /* NULL: the key left out */
    } forms[] = {
        {"CN=a", "ab", "9e5167c53a9677b31bcc9d2d74ea3c046274eb127085e0cbf4b6a29d5c399086"},
        {"CN=a", "AB", "9E5167C53A9677B31BCC9D2D74EA3C046274EB127085E0CBF4B6A29D5C399086"},
        {"CN=a", "abc", "9e5"},
        {"CN=a", "", ""},
        {"CN=a", NULL, NULL},
        {"CN=a", "0g", "zz"},
        {"CN=a", "a\"b\\\n", "\"\n"},
        {"CN=a", "00", "00"},
        {"", "", ""},
        {"C", "", "ab"},
        {"C", "x", ""},
        {"CN=seventeen bytes", "x",
         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
        {"CN=a", "04a1f3c6d1e2b7a9f0c3d5e7f9a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9", "ff"},
        {"", "0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"},
    };
    enum { N = sizeof(forms) / sizeof(forms[0]) };
    struct cm_metrics_view *v[N];
    char *t;

    for (int i = 0; i < N; i++) {
        json_t *r = jq(report_c), *c = json_array_get(json_object_get(r, "chain"), 0);
        char target[32];
        snprintf(target, sizeof(target), "t%d", i);
        json_object_set_new(r, "target", json_string(target));
        json_object_set_new(c, "subject", json_string(forms[i].subject));
        json_object_del(c, "serial");
        json_object_del(c, "sha256");
        if (forms[i].serial)
            json_object_set_new(c, "serial", json_string(forms[i].serial));
        if (forms[i].sha256)
            json_object_set_new(c, "sha256", json_string(forms[i].sha256));
        v[i] = view_of_json(r);
    }
    /* Two forms are the same certificate only when they render alike: an empty serial and
     * fingerprint and missing ones do, no other two. */
    EXPECT_INT(cm_metrics_shared_certs(), N - 1);
    t = render(v, N, NULL, NULL);
    for (int i = 0; i < N; i++) {
        char key[1024], subject[128], serial[256], sha[256];
        esc_ref(forms[i].subject, subject, sizeof(subject));
        esc_ref(forms[i].serial, serial, sizeof(serial));
        esc_ref(forms[i].sha256, sha, sizeof(sha));
        snprintf(key, sizeof(key),
                 "certmon_cert_info{target=\"t%d\",position=\"0\",subject=\"%s\",issuer=\"CN=evil"
                 "\\\"quote\\\\back\",serial=\"%s\",sha256=\"%s\",key=\"EC 256\","
                 "signature=\"ECDSA-SHA256\"}",
                 i, subject, serial, sha);
        expect_str(sample(t, key), "1", key, __LINE__);
    }
    EXPECT_LINES(t, "certmon_cert_info{", N);
    check_structure(t, __LINE__);
    free(t);
    for (int i = 0; i < N; i++)
        cm_metrics_view_free(v[i]);
    EXPECT_INT(cm_metrics_shared_certs(), 0);
}

/* Views built, rendered and freed on several threads at once, all sharing the intermediate
 * (and a few leaves): the table's lock keeps the counts right. */
enum { THREADS = 4, THREAD_VIEWS = 300 };

struct thread_run {
    json_t *reports[5]; /* five leaves, one intermediate; read-only while threads run */
    int id, failures;
};

static void *thread_views(void *arg)
{
    struct thread_run *run = arg;
    struct cm_metrics_view *v[THREAD_VIEWS];

    for (int i = 0; i < THREAD_VIEWS; i++)
        if (!(v[i] = cm_metrics_view_new(run->reports[(i + run->id) % 5])))
            run->failures++;
    for (int i = 0; i < THREAD_VIEWS; i++) {
        struct cm_metrics_buf b = {0};
        if (v[i] && (cm_metrics_render((const struct cm_metrics_view *const *)&v[i], 1, NULL, NULL,
                                       &b) != 0 ||
                     !strstr(b.data, "position=\"1\"," INTERMEDIATE " 1\n")))
            run->failures++;
        cm_metrics_buf_free(&b);
        cm_metrics_view_free(v[i]);
    }
    return NULL;
}

/* Versions, ciphers and finding ids are one word each for the whole process, escaped once:
 * a repeated id (the same severity twice, or two severities) takes no word of its own, a
 * word lives while a view holds it, and what a view shows of it is its own report's. */
static void test_shared_words(void)
{
    static const char *const ra =
        "{'target':'a:443','tls':{'version':'TLS1.3','cipher':'C\\\\1'},"
        "'findings':[{'id':'x.\\\"q\\\"','severity':'info','first_seen':'2026-01-02T00:00:00Z'},"
        "{'id':'x.\\\"q\\\"','severity':'info','first_seen':'2026-01-01T00:00:00Z'},"
        "{'id':'x.\\\"q\\\"','severity':'critical'},{'id':'cert.expiring','severity':'warning'}]}";
    static const char *const rb =
        "{'target':'b:443','tls':{'version':'TLS1.3','cipher':'TLS_AES_128_GCM_SHA256'},"
        "'findings':[{'id':'cert.expiring','severity':'critical'},"
        "{'id':'new\\nline','severity':'info'}]}";
    struct cm_metrics_view *va, *vb, *both[2];
    char *t;

    EXPECT_INT(cm_metrics_shared_words(), 0);
    va = view_of(ra);
    /* TLS1.3, C\1, x."q", cert.expiring */
    EXPECT_INT(cm_metrics_shared_words(), 4);
    vb = view_of(rb);
    /* and TLS_AES_128_GCM_SHA256, new\nline */
    EXPECT_INT(cm_metrics_shared_words(), 6);
    both[0] = va;
    both[1] = vb;
    t = render(both, 2, NULL, NULL);
    EXPECT_SAMPLE(t, "certmon_tls_version_info{target=\"a:443\",version=\"TLS1.3\"}", "1");
    EXPECT_SAMPLE(t, "certmon_tls_version_info{target=\"b:443\",version=\"TLS1.3\"}", "1");
    EXPECT_SAMPLE(t, "certmon_tls_cipher_info{target=\"a:443\",cipher=\"C\\\\1\"}", "1");
    EXPECT_SAMPLE(t, "certmon_finding{target=\"a:443\",id=\"x.\\\"q\\\"\",severity=\"info\"}", "1");
    EXPECT_SAMPLE(t, "certmon_finding{target=\"a:443\",id=\"x.\\\"q\\\"\",severity=\"critical\"}",
                  "1");
    EXPECT_LINES(t, "certmon_finding{target=\"a:443\",id=\"x.", 2);
    EXPECT_SAMPLE(t,
                  "certmon_finding_first_seen_timestamp_seconds{target=\"a:443\","
                  "id=\"x.\\\"q\\\"\"}",
                  "1767225600");
    EXPECT_SAMPLE(t, "certmon_finding{target=\"a:443\",id=\"cert.expiring\",severity=\"warning\"}",
                  "1");
    EXPECT_SAMPLE(t, "certmon_finding{target=\"b:443\",id=\"cert.expiring\",severity=\"critical\"}",
                  "1");
    EXPECT_SAMPLE(t, "certmon_finding{target=\"b:443\",id=\"new\\nline\",severity=\"info\"}", "1");
    free(t);
    cm_metrics_view_free(va);
    /* C\1 and x."q" were a's alone. */
    EXPECT_INT(cm_metrics_shared_words(), 4);
    cm_metrics_view_free(vb);
    EXPECT_INT(cm_metrics_shared_words(), 0);
}

static void test_shared_certs_threads(void)
{
    struct thread_run runs[THREADS];
    pthread_t th[THREADS];
    json_t *reports[5];

    for (unsigned i = 0; i < 5; i++)
        reports[i] = report_with_leaf("t:443", i);
    for (int i = 0; i < THREADS; i++) {
        runs[i] = (struct thread_run){.id = i};
        memcpy(runs[i].reports, reports, sizeof(reports));
        EXPECT_INT(pthread_create(&th[i], NULL, thread_views, &runs[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        EXPECT_INT(pthread_join(th[i], NULL), 0);
        EXPECT_INT(runs[i].failures, 0);
    }
    EXPECT_INT(cm_metrics_shared_certs(), 0);
    for (int i = 0; i < 5; i++)
        json_decref(reports[i]);
}

static void test_label_names(void)
{
    struct cm_metrics_view *v = view_of(report_d);
    char *t = render(&v, 1, NULL, NULL);

    /* Invalid names, "__" names, names certmon sets and non-string values are left out;
     * the rest sorted bytewise (upper case first). */
    EXPECT_SAMPLE(t, "certmon_probe_success{target=\"d:443\",Zed=\"z\",_under=\"u\",ok_name=\"v\"}",
                  "1");
    EXPECT_SAMPLE(t,
                  "certmon_status{target=\"d:443\",Zed=\"z\",_under=\"u\",ok_name=\"v\","
                  "status=\"ok\"}",
                  "1");
    /* A minimal report: no timing, chain, findings or times. */
    EXPECT_LINES(t, "certmon_probe_duration_seconds", 0);
    EXPECT_LINES(t, "certmon_last_probe", 0);
    EXPECT_LINES(t, "certmon_finding", 0);
    check_structure(t, __LINE__);
    promtool_check_metrics(t, __LINE__);
    free(t);
    cm_metrics_view_free(v);
}

static void test_invalid_reports(void)
{
    json_t *j;
    struct cm_metrics_view *v;
    char *t;

    CU_ASSERT_PTR_NULL(cm_metrics_view_new(NULL));
    j = json_integer(5);
    CU_ASSERT_PTR_NULL(cm_metrics_view_new(j));
    json_decref(j);
    j = json_array();
    CU_ASSERT_PTR_NULL(cm_metrics_view_new(j));
    json_decref(j);
    j = jq("{'status':'ok'}");
    CU_ASSERT_PTR_NULL(cm_metrics_view_new(j));
    json_decref(j);
    j = jq("{'target':443}");
    CU_ASSERT_PTR_NULL(cm_metrics_view_new(j));
    json_decref(j);
    cm_metrics_view_free(NULL);

    /* Malformed fields leave their samples out; nothing else suffers. An unknown status is
     * "unknown"; an unparseable time is absent; a time with an offset or a fraction counts. */
    v = view_of("{'target':'m','status':'bogus','error':null,'labels':[1],"
                "'timing_ms':{'dns':'fast','connect':-1,'total':2},'failures':'x',"
                "'last_probe':'2027-13-01T00:00:00Z','last_success':'yesterday',"
                "'chain':[{'subject':5,'not_after':'2027-01-28T00:59:59.75+01:00',"
                "'not_before':'2027-01-27T23:59:59'},'junk',"
                "{'subject':'AB','issuer':'4142','serial':'4142','sha256':'0A1b'},"
                "{'serial':'abc','sha256':'a\\\"b'}],"
                "'findings':[{'id':'x.y'},{'severity':'info'},7,"
                "{'id':'a.b','severity':'warning','first_seen':'never'}],"
                "'posture':{'versions_accepted':'TLS1.3'},'tls':{'version':7}}");
    t = render(&v, 1, NULL, NULL);
    EXPECT_SAMPLE(t, "certmon_probe_success{target=\"m\"}", "1");
    EXPECT_SAMPLE(t, "certmon_status{target=\"m\",status=\"unknown\"}", "1");
    EXPECT_SAMPLE(t, "certmon_probe_duration_seconds{target=\"m\",phase=\"total\"}", "0.002");
    EXPECT_LINES(t, "certmon_probe_duration_seconds{", 1);
    EXPECT_LINES(t, "certmon_last_probe", 0);
    EXPECT_LINES(t, "certmon_last_success", 0);
    /* A fraction and an offset: 2027-01-28T00:59:59.75+01:00 is 2027-01-27T23:59:59Z. */
    EXPECT_SAMPLE(t, "certmon_cert_not_after_timestamp_seconds{target=\"m\",position=\"0\"}",
                  "1801094399");
    EXPECT_LINES(t, "certmon_cert_not_before", 0);
    EXPECT_LINES(t, "certmon_cert_not_after_timestamp_seconds{", 1);
    EXPECT_SAMPLE(t,
                  "certmon_cert_info{target=\"m\",position=\"0\",subject=\"\",issuer=\"\","
                  "serial=\"\",sha256=\"\",key=\"\",signature=\"\"}",
                  "1");
    /* The junk entry is skipped; positions stay those of the report. Hex is packed only when
     * it is lowercase and of even length, and packed bytes never pass for text. */
    EXPECT_SAMPLE(t,
                  "certmon_cert_info{target=\"m\",position=\"2\",subject=\"AB\",issuer=\"4142\","
                  "serial=\"4142\",sha256=\"0A1b\",key=\"\",signature=\"\"}",
                  "1");
    EXPECT_SAMPLE(t,
                  "certmon_cert_info{target=\"m\",position=\"3\",subject=\"\",issuer=\"\","
                  "serial=\"abc\",sha256=\"a\\\"b\",key=\"\",signature=\"\"}",
                  "1");
    EXPECT_LINES(t, "certmon_cert_info{", 3);
    EXPECT_SAMPLE(t, "certmon_chain_expiry_timestamp_seconds{target=\"m\"}", "1801094399");
    EXPECT_SAMPLE(t, "certmon_finding{target=\"m\",id=\"a.b\",severity=\"warning\"}", "1");
    EXPECT_LINES(t, "certmon_finding{", 1);
    EXPECT_LINES(t, "certmon_finding_first_seen", 0);
    EXPECT_LINES(t, "certmon_tls_version_info", 0);
    EXPECT_LINES(t, "certmon_verify_ok", 0);
    /* A posture object without lists: every version tested and refused. */
    EXPECT_LINES(t, "certmon_protocol_accepted{", 5);
    check_structure(t, __LINE__);
    promtool_check_metrics(t, __LINE__);
    free(t);
    cm_metrics_view_free(v);

    /* The view owns its data: the report may go first. */
    j = jq(report_a);
    v = cm_metrics_view_new(j);
    json_decref(j);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    t = render(&v, 1, NULL, NULL);
    EXPECT_SAMPLE(t, "certmon_tls_version_info{target=\"a:443\",team=\"web\",version=\"TLS1.3\"}",
                  "1");
    free(t);
    cm_metrics_view_free(v);
}

static void test_self_and_process(void)
{
    struct cm_metrics_self self = {
        .probes_success = 12345678901ull,
        .probes_failure = 7,
        .reload_success = false,
        .reload_time = 1795766400,
        .version = "0.1.0",
        .gnutls = "3.7.9",
        .libuv = "1.44.2",
        .libcurl = "7.88.1 \"x\"",
        .targets = 3,
    };
    struct cm_metrics_process proc = {1.25, 4096, 1e9, 1795766400.5, 9, 1024};
    char *t = render(NULL, 0, &self, &proc);

    EXPECT_SAMPLE(t, "certmon_probes_total{result=\"success\"}", "12345678901");
    EXPECT_SAMPLE(t, "certmon_probes_total{result=\"failure\"}", "7");
    EXPECT_LINES(t, "# TYPE certmon_probes_total counter\n", 1);
    EXPECT_SAMPLE(t, "certmon_config_last_reload_success", "0");
    EXPECT_SAMPLE(t, "certmon_config_last_reload_timestamp_seconds", "1795766400");
    EXPECT_SAMPLE(t,
                  "certmon_build_info{version=\"0.1.0\",gnutls=\"3.7.9\",libuv=\"1.44.2\","
                  "libcurl=\"7.88.1 \\\"x\\\"\"}",
                  "1");
    EXPECT_SAMPLE(t, "certmon_targets", "3");
    EXPECT_SAMPLE(t, "process_cpu_seconds_total", "1.25");
    EXPECT_LINES(t, "# TYPE process_cpu_seconds_total counter\n", 1);
    EXPECT_SAMPLE(t, "process_resident_memory_bytes", "4096");
    EXPECT_SAMPLE(t, "process_virtual_memory_bytes", "1000000000");
    EXPECT_SAMPLE(t, "process_start_time_seconds", "1795766400.5");
    EXPECT_SAMPLE(t, "process_open_fds", "9");
    EXPECT_SAMPLE(t, "process_max_fds", "1024");
    /* No per-target family without targets. */
    EXPECT_LINES(t, "# HELP certmon_probe_success", 0);
    check_structure(t, __LINE__);
    promtool_check_metrics(t, __LINE__);
    free(t);

    /* NULL strings in build_info are empty values. */
    self.gnutls = NULL;
    t = render(NULL, 0, &self, NULL);
    EXPECT_SAMPLE(t,
                  "certmon_build_info{version=\"0.1.0\",gnutls=\"\",libuv=\"1.44.2\","
                  "libcurl=\"7.88.1 \\\"x\\\"\"}",
                  "1");
    EXPECT_LINES(t, "process_", 0);
    /* Without a listener no http family; with one, every reason from 0 on. */
    EXPECT_LINES(t, "certmon_http_", 0);
    free(t);
    {
        struct cm_metrics_http http = {0};
        self.http = &http;
        t = render(NULL, 0, &self, NULL);
        EXPECT_SAMPLE(t, "certmon_http_connections_evicted_total{reason=\"head_timeout\"}", "0");
        EXPECT_SAMPLE(t, "certmon_http_connections_evicted_total{reason=\"per_client\"}", "0");
        EXPECT_SAMPLE(t, "certmon_http_connections_evicted_total{reason=\"full\"}", "0");
        EXPECT_SAMPLE(t, "certmon_http_connections_refused_total{reason=\"per_client\"}", "0");
        free(t);
        http = (struct cm_metrics_http){12, 3, 18446744073709551615ull, 5};
        t = render(NULL, 0, &self, NULL);
        EXPECT_SAMPLE(t, "certmon_http_connections_evicted_total{reason=\"head_timeout\"}", "12");
        EXPECT_SAMPLE(t, "certmon_http_connections_evicted_total{reason=\"per_client\"}", "3");
        EXPECT_SAMPLE(t, "certmon_http_connections_evicted_total{reason=\"full\"}",
                      "18446744073709551615");
        EXPECT_SAMPLE(t, "certmon_http_connections_refused_total{reason=\"per_client\"}", "5");
        EXPECT_LINES(t, "# TYPE certmon_http_connections_evicted_total counter\n", 1);
        EXPECT_LINES(t, "# TYPE certmon_http_connections_refused_total counter\n", 1);
        check_structure(t, __LINE__);
        promtool_check_metrics(t, __LINE__);
        self.http = NULL;
    }

    /* Nothing at all renders nothing. */
    free(t);
    t = render(NULL, 0, NULL, NULL);
    EXPECT_STR(t, "");
    free(t);
}

/* certmon_cert_revocation_status from chain[i].revocation (one-hot over four statuses, only at
 * checked positions), the ARI window from ari, and the revocation cache's self families. */
static void test_revocation_and_ari(void)
{
    static const char *const report =
        "{'target':'r:443','status':'critical','error':null,"
        "'chain':["
        "{'position':0,'subject':'CN=r','not_after':'2026-11-27T07:51:29Z',"
        "'revocation':{'status':'revoked','source':'crl','errors':[]}},"
        "{'position':1,'subject':'CN=CA','revocation':{'status':'unavailable','source':null,"
        "'errors':['http://x/ca.crl: timed out']}},"
        "{'position':2,'subject':'CN=Root','revocation':null},"
        "{'position':3,'subject':'CN=Odd','revocation':{'status':'maybe'}}],"
        "'ari':{'window_start':'2026-10-01T00:00:00Z','window_end':'2026-10-03T00:00:00Z'},"
        "'findings':[]}";
    static const char *const no_ari =
        "{'target':'s:443','status':'ok','chain':[{'position':0,'revocation':{'status':'good'}}],"
        "'ari':{'window_start':null,'window_end':null},'findings':[]}";
    struct cm_metrics_view *v[2] = {view_of(report), view_of(no_ari)};
    struct cm_metrics_revocation rev = {.crls = 2,
                                        .bytes = 4096,
                                        .entries = 100000,
                                        .oldest_age = 3600,
                                        .ocsp_answers = 3,
                                        .fetches = 7,
                                        .not_modified = 1};
    struct cm_metrics_self self = {.version = "v", .revocation = &rev};
    char *t = render(v, 2, &self, NULL);
#define R "certmon_cert_revocation_status{target=\"r:443\""

    EXPECT_SAMPLE(t, R ",position=\"0\",status=\"good\"}", "0");
    EXPECT_SAMPLE(t, R ",position=\"0\",status=\"revoked\"}", "1");
    EXPECT_SAMPLE(t, R ",position=\"0\",status=\"unavailable\"}", "0");
    EXPECT_SAMPLE(t, R ",position=\"0\",status=\"none\"}", "0");
    EXPECT_SAMPLE(t, R ",position=\"1\",status=\"unavailable\"}", "1");
    EXPECT_SAMPLE(t, R ",position=\"1\",status=\"revoked\"}", "0");
    EXPECT_LINES(t, R ",position=\"2\"", 0); /* a trust anchor: not checked */
    EXPECT_LINES(t, R ",position=\"3\"", 0); /* a status certmon does not know */
    EXPECT_SAMPLE(t,
                  "certmon_cert_revocation_status{target=\"s:443\",position=\"0\",status="
                  "\"good\"}",
                  "1");
    EXPECT_LINES(t, "certmon_cert_revocation_status{", 12);
    EXPECT_SAMPLE(t, "certmon_ari_window_start_timestamp_seconds{target=\"r:443\"}", "1790812800");
    EXPECT_SAMPLE(t, "certmon_ari_window_end_timestamp_seconds{target=\"r:443\"}", "1790985600");
    EXPECT_LINES(t, "certmon_ari_window_start_timestamp_seconds{", 1);
    EXPECT_SAMPLE(t, "certmon_crl_cache_crls", "2");
    EXPECT_SAMPLE(t, "certmon_crl_cache_bytes", "4096");
    EXPECT_SAMPLE(t, "certmon_crl_cache_entries", "100000");
    EXPECT_SAMPLE(t, "certmon_crl_cache_oldest_age_seconds", "3600");
    EXPECT_SAMPLE(t, "certmon_ocsp_cache_answers", "3");
    EXPECT_SAMPLE(t, "certmon_revocation_fetches_total", "7");
    EXPECT_SAMPLE(t, "certmon_revocation_not_modified_total", "1");
    EXPECT_LINES(t, "# TYPE certmon_revocation_fetches_total counter\n", 1);
    EXPECT_LINES(t, "# TYPE certmon_crl_cache_crls gauge\n", 1);
    check_structure(t, __LINE__);
    promtool_check_metrics(t, __LINE__);
    free(t);

    /* No CRL held: no age; no checker: no cache families. */
    rev = (struct cm_metrics_revocation){.ocsp_answers = 1};
    t = render(NULL, 0, &self, NULL);
    EXPECT_SAMPLE(t, "certmon_crl_cache_crls", "0");
    EXPECT_LINES(t, "certmon_crl_cache_oldest_age_seconds", 0);
    EXPECT_LINES(t, "# HELP certmon_crl_cache_oldest_age_seconds", 0);
    free(t);
    self.revocation = NULL;
    t = render(NULL, 0, &self, NULL);
    EXPECT_LINES(t, "certmon_crl_cache", 0);
    EXPECT_LINES(t, "certmon_revocation_", 0);
    EXPECT_LINES(t, "# HELP certmon_ocsp_cache_answers", 0);
    free(t);
#undef R
    cm_metrics_view_free(v[0]);
    cm_metrics_view_free(v[1]);
}

/* The integer formatter at every digit count and its edges, against printf. */
static void test_numbers(void)
{
    struct cm_metrics_self self = {0, 0, true, 0, "v", "g", "u", "c", 0, NULL, 0, NULL, NULL, NULL, 0, NULL, 0};
    uint64_t p10 = 1;
    char want[64];

    for (int d = 0; d <= 20; d++) {
        uint64_t cand[] = {p10 - 1, p10, p10 + 1, p10 * 3 + 7, UINT64_MAX - (uint64_t)d};
        for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
            char *t;
            self.probes_success = cand[i];
            self.reload_time = -(int64_t)(cand[i] >> 1);
            t = render(NULL, 0, &self, NULL);
            snprintf(want, sizeof(want), "%llu", (unsigned long long)cand[i]);
            EXPECT_SAMPLE(t, "certmon_probes_total{result=\"success\"}", want);
            snprintf(want, sizeof(want), "%lld", (long long)self.reload_time);
            EXPECT_SAMPLE(t, "certmon_config_last_reload_timestamp_seconds", want);
            free(t);
        }
        if (d < 19)
            p10 *= 10;
    }
    self.reload_time = INT64_MIN;
    {
        char *t = render(NULL, 0, &self, NULL);
        EXPECT_SAMPLE(t, "certmon_config_last_reload_timestamp_seconds", "-9223372036854775808");
        free(t);
    }
    /* Durations: milliseconds in, seconds out, to the microsecond, without trailing zeros. */
    {
        struct cm_metrics_view *v = view_of("{'target':'t','timing_ms':{'dns':1000,"
                                            "'connect':2500.5,'starttls':0.001,"
                                            "'handshake':0.0004,'total':123456.789}}");
        char *t = render(&v, 1, NULL, NULL);
        EXPECT_SAMPLE(t, "certmon_probe_duration_seconds{target=\"t\",phase=\"dns\"}", "1");
        EXPECT_SAMPLE(t, "certmon_probe_duration_seconds{target=\"t\",phase=\"connect\"}",
                      "2.5005");
        EXPECT_SAMPLE(t, "certmon_probe_duration_seconds{target=\"t\",phase=\"starttls\"}",
                      "0.000001");
        EXPECT_SAMPLE(t, "certmon_probe_duration_seconds{target=\"t\",phase=\"handshake\"}", "0");
        EXPECT_SAMPLE(t, "certmon_probe_duration_seconds{target=\"t\",phase=\"total\"}",
                      "123.456789");
        free(t);
        cm_metrics_view_free(v);
    }
}

/* A view keeps times and durations narrow (Unix seconds from 1970 to 2106, durations up to
 * 2147.483647 s) and moves to full width past either edge: the output is the same number
 * either way, and the chain, findings and labels after the wide part are still found. */
static void test_time_and_duration_edges(void)
{
    static const struct {
        const char *last_probe, *ari_start, *dns_ms;
        const char *want_probe, *want_ari, *want_dns;
    } cases[] = {
        /* Narrow: the edges themselves. */
        {"1970-01-01T00:00:00Z", "2106-02-07T06:28:14Z", "2147483.647", "0", "4294967294",
         "2147.483647"},
        /* Wide by a time past 2106, before 1970, or a duration past 35 minutes. */
        {"2106-02-07T06:28:15Z", "2026-01-01T00:00:00Z", "1", "4294967295", "1767225600",
         "0.001"},
        {"2026-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "1", "1767225600", "-1", "0.001"},
        {"2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "2147483.648", "1767225600",
         "1767225600", "2147.483648"},
        {"0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1e12", "-62135596800", "253402300799",
         "1000000000"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char json[1024], *t;
        struct cm_metrics_view *v;

        snprintf(json, sizeof(json),
                 "{'target':'edge:443','labels':{'team':'web'},'last_probe':'%s',"
                 "'ari':{'window_start':'%s'},'timing_ms':{'dns':%s,'total':2},"
                 "'tls':{'version':'TLS1.2'},"
                 "'chain':[{'subject':'CN=edge','not_after':'2027-01-01T00:00:00Z'}],"
                 "'findings':[{'id':'cert.expiring','severity':'warning',"
                 "'first_seen':'2026-01-01T00:00:00Z'}]}",
                 cases[i].last_probe, cases[i].ari_start, cases[i].dns_ms);
        v = view_of(json);
        t = render(&v, 1, NULL, NULL);
#define L "{target=\"edge:443\",team=\"web\""
        EXPECT_SAMPLE(t, "certmon_last_probe_timestamp_seconds" L "}", cases[i].want_probe);
        EXPECT_SAMPLE(t, "certmon_ari_window_start_timestamp_seconds" L "}", cases[i].want_ari);
        EXPECT_NO_SAMPLE(t, "certmon_last_success_timestamp_seconds" L "}");
        EXPECT_SAMPLE(t, "certmon_probe_duration_seconds" L ",phase=\"dns\"}", cases[i].want_dns);
        EXPECT_SAMPLE(t, "certmon_probe_duration_seconds" L ",phase=\"total\"}", "0.002");
        EXPECT_NO_SAMPLE(t, "certmon_probe_duration_seconds" L ",phase=\"connect\"}");
        EXPECT_SAMPLE(t, "certmon_cert_not_after_timestamp_seconds" L ",position=\"0\"}",
                      "1798761600");
        EXPECT_SAMPLE(t, "certmon_chain_expiry_timestamp_seconds" L "}", "1798761600");
        EXPECT_SAMPLE(t, "certmon_tls_version_info" L ",version=\"TLS1.2\"}", "1");
        EXPECT_SAMPLE(t, "certmon_finding" L ",id=\"cert.expiring\",severity=\"warning\"}", "1");
        EXPECT_SAMPLE(t, "certmon_finding_first_seen_timestamp_seconds" L ",id=\"cert.expiring\"}",
                      "1767225600");
#undef L
        free(t);
        cm_metrics_view_free(v);
    }
}

static void test_process_read(void)
{
    struct cm_metrics_process p;
    double now = (double)time(NULL);
    long max = sysconf(_SC_OPEN_MAX);

    EXPECT_INT(cm_process_read(&p), 0);
    CU_ASSERT(p.resident_bytes > 0);
    CU_ASSERT(p.virtual_bytes >= p.resident_bytes);
    CU_ASSERT(p.cpu_seconds >= 0 && p.cpu_seconds < 600);
    /* This process started a moment ago (allowing for clock-tick rounding and a slow run). */
    if (!(p.start_time >= now - 600 && p.start_time <= now + 5))
        fprintf(stderr, "start_time %.2f, now %.0f\n", p.start_time, now);
    CU_ASSERT(p.start_time >= now - 600 && p.start_time <= now + 5);
    CU_ASSERT(p.open_fds >= 3 && p.open_fds < 1000);
    CU_ASSERT(p.max_fds >= p.open_fds);
    if (max > 0)
        CU_ASSERT_DOUBLE_EQUAL(p.max_fds, (double)max, 0.5);
    {
        /* One more descriptor is counted as one more. */
        struct cm_metrics_process q;
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        CU_ASSERT(fd >= 0);
        EXPECT_INT(cm_process_read(&q), 0);
        CU_ASSERT_DOUBLE_EQUAL(q.open_fds, p.open_fds + 1, 0.5);
        close(fd);
    }
}

/* All reports together, with self and process metrics: the shape of a real scrape. */
static void test_whole_exposition(void)
{
    struct cm_metrics_view *v[5] = {view_of(report_a), NULL, view_of(report_b), view_of(report_c),
                                    view_of(report_d)};
    struct cm_metrics_notifier notifiers[1] = {{"hook \"one\"", 3, 1, 0, 2}};
    struct cm_metrics_self self = {10,       2, true,      1795766400, "0.1.0", "3.7.9", "1.44.2",
                                   "7.88.1", 4, notifiers, 1,          NULL,    NULL, NULL, 0, NULL, 0};
    struct cm_metrics_process proc;
    char *t;

    EXPECT_INT(cm_process_read(&proc), 0);
    t = render(v, 5, &self, &proc);
    /* The same family for every target in one block, in view order. */
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "certmon_probe_success{target=\"a:443\",team=\"web\"} 1\n"
                                     "certmon_probe_success{target=\"b.example:8443\""));
    EXPECT_LINES(t, "# HELP ", 28); /* 15 per-target families, 7 self, 6 process */
    EXPECT_LINES(t, "# TYPE ", 28);
    EXPECT_SAMPLE(t, "certmon_notifications_total{notifier=\"hook \\\"one\\\"\",result=\"sent\"}",
                  "3");
    EXPECT_SAMPLE(t, "certmon_notifications_total{notifier=\"hook \\\"one\\\"\",result=\"failed\"}",
                  "1");
    EXPECT_SAMPLE(t, "certmon_notification_queue_length{notifier=\"hook \\\"one\\\"\"}", "2");
    EXPECT_LINES(t, "certmon_status{", 16);
    CU_ASSERT_PTR_NULL(strstr(t, "# EOF"));
    CU_ASSERT_EQUAL(t[strlen(t) - 1], '\n');
    check_structure(t, __LINE__);
    promtool_check_metrics(t, __LINE__);
    free(t);
    for (int i = 0; i < 5; i++)
        cm_metrics_view_free(v[i]);
}

static void test_buffer(void)
{
    struct cm_metrics_view *v[4] = {view_of(report_a), view_of(report_b), view_of(report_c),
                                    view_of(report_d)};
    struct cm_metrics_self self = {1, 2, true, 3, "v", "g", "u", "c", 4, NULL, 0, NULL, NULL, NULL, 0, NULL, 0};
    struct cm_metrics_process proc = {1, 2, 3, 4, 5, 6};
    const struct cm_metrics_view *const *views = (const struct cm_metrics_view *const *)v;
    struct cm_metrics_buf whole = {0}, piece = {0}, joined = {0};
    struct cm_metrics_cursor cur = CM_METRICS_CURSOR_INIT;
    int rc, calls = 0;

    EXPECT_INT(cm_metrics_render(views, 4, &self, &proc, &whole), 0);
    /* In pieces of about 300 bytes, drained after each: the same text. */
    do {
        piece.len = 0;
        rc = cm_metrics_render_some(views, 4, &self, &proc, &cur, 300, &piece);
        CU_ASSERT(rc == 0 || rc == 1);
        CU_ASSERT(rc == 0 || piece.len >= 300);
        CU_ASSERT(piece.len == 0 || piece.data[piece.len - 1] == '\n');
        joined.data = realloc(joined.data, joined.len + piece.len + 1);
        memcpy(joined.data + joined.len, piece.data, piece.len);
        joined.len += piece.len;
        joined.data[joined.len] = '\0';
        calls++;
    } while (rc == 1 && calls < 10000);
    EXPECT_INT(rc, 0);
    CU_ASSERT(calls > 5);
    EXPECT_INT(joined.len, whole.len);
    EXPECT_STR(joined.data, whole.data);
    /* Rendering appends. */
    EXPECT_INT(cm_metrics_render(views, 4, &self, &proc, &whole), 0);
    EXPECT_INT(whole.len, 2 * joined.len);
    CU_ASSERT(!memcmp(whole.data + joined.len, joined.data, joined.len));
    /* A failed buffer stays failed. */
    piece.len = 0;
    piece.failed = true;
    EXPECT_INT(cm_metrics_render(views, 4, &self, &proc, &piece), -ENOMEM);
    cm_metrics_buf_free(&whole);
    cm_metrics_buf_free(&piece);
    cm_metrics_buf_free(&joined);
    CU_ASSERT_PTR_NULL(whole.data);
    EXPECT_INT(whole.len, 0);
    cm_metrics_buf_free(NULL);
    for (int i = 0; i < 4; i++)
        cm_metrics_view_free(v[i]);
}

/* ---- Allocation failures ---- */

/* Without the sanitizers (whose allocator this would fight), the test binary interposes the
 * allocator: armed, it fails the Nth allocation, and it counts allocations not yet freed. */
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
#define TORTURE 1
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

static long fail_countdown; /* 0: off */
static bool counting;
static long live;

static bool fail_now(void)
{
    return fail_countdown > 0 && --fail_countdown == 0;
}

void *malloc(size_t n)
{
    void *p = fail_now() ? NULL : __libc_malloc(n);

    live += p && counting;
    return p;
}

void *calloc(size_t n, size_t size)
{
    void *p = fail_now() ? NULL : __libc_calloc(n, size);

    live += p && counting;
    return p;
}

void *realloc(void *old, size_t n)
{
    void *p = fail_now() ? NULL : __libc_realloc(old, n);

    live += p && !old && counting;
    return p;
}

void free(void *p)
{
    live -= p && counting;
    __libc_free(p);
}
#endif

/* Every allocation of building a view and of rendering fails in turn: each call fails
 * cleanly (NULL, -ENOMEM) and leaves nothing allocated behind, until one succeeds. */
static void test_allocation_failures(void)
{
#ifdef TORTURE
    json_t *reports[3] = {jq(report_a), jq(report_b), jq(report_d)};
    struct cm_metrics_view *views[3];
    struct cm_metrics_self self = {1, 2, true, 3, "v", "g", "u", "c", 4, NULL, 0, NULL, NULL, NULL, 0, NULL, 0};
    struct cm_metrics_process proc = {1, 2, 3, 4, 5, 6};
    int steps = 0;

    for (int r = 0; r < 3; r++) {
        for (long n = 1;; n++) {
            struct cm_metrics_view *v;
            bool hit;
            live = 0;
            counting = true;
            fail_countdown = n;
            v = cm_metrics_view_new(reports[r]);
            hit = fail_countdown == 0;
            fail_countdown = 0;
            cm_metrics_view_free(v);
            counting = false;
            expect_int(live, 0, "allocations left by a failed cm_metrics_view_new", __LINE__);
            CU_ASSERT(hit ? v == NULL : v != NULL);
            steps++;
            if (!hit || n > 1000)
                break;
        }
        views[r] = cm_metrics_view_new(reports[r]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(views[r]);
    }
    for (long n = 1;; n++) {
        struct cm_metrics_buf b = {0};
        bool hit;
        int rc;
        live = 0;
        counting = true;
        fail_countdown = n;
        rc = cm_metrics_render((const struct cm_metrics_view *const *)views, 3, &self, &proc, &b);
        hit = fail_countdown == 0;
        fail_countdown = 0;
        cm_metrics_buf_free(&b);
        counting = false;
        expect_int(live, 0, "allocations left by a failed render", __LINE__);
        expect_int(rc, hit ? -ENOMEM : 0, "cm_metrics_render", __LINE__);
        steps++;
        if (!hit || n > 1000)
            break;
    }
    /* A render in small pieces grows the buffer many times: each growth may fail. */
    for (long n = 1;; n++) {
        struct cm_metrics_buf b = {0};
        struct cm_metrics_cursor cur = CM_METRICS_CURSOR_INIT;
        bool hit;
        int rc;
        live = 0;
        counting = true;
        fail_countdown = n;
        while ((rc = cm_metrics_render_some((const struct cm_metrics_view *const *)views, 3, &self,
                                            &proc, &cur, 100, &b)) == 1)
            ;
        hit = fail_countdown == 0;
        fail_countdown = 0;
        cm_metrics_buf_free(&b);
        counting = false;
        expect_int(live, 0, "allocations left by a failed render", __LINE__);
        expect_int(rc, hit ? -ENOMEM : 0, "cm_metrics_render_some", __LINE__);
        steps++;
        if (!hit || n > 1000)
            break;
    }
    CU_ASSERT(steps > 10);
    printf(" (%d allocation failures injected) ", steps);
    for (int r = 0; r < 3; r++) {
        cm_metrics_view_free(views[r]);
        json_decref(reports[r]);
    }
#else
    printf("\n  SKIPPED: allocation failures are tested without the sanitizers only\n");
#endif
}

/* ---- contrib/prometheus ---- */

static void expect_command(const char *cmd, const char *must_contain, int line)
{
    char *out;
    int rc = run_shell(cmd, &out);

    if (rc != 0)
        fprintf(stderr, "\n%s:\n%s\n", cmd, out);
    expect_int(rc, 0, cmd, line);
    if (must_contain && !strstr(out, must_contain)) {
        fprintf(stderr, "\n%s: no '%s' in:\n%s\n", cmd, must_contain, out);
        CU_FAIL("promtool output");
    }
    free(out);
}

static void test_prometheus_rules(void)
{
    char cmd[8192], dir[4096];

    if (!have_promtool())
        return;
    snprintf(dir, sizeof(dir), "%s", source_path("contrib/prometheus"));
    snprintf(cmd, sizeof(cmd), "cd '%s' && " PROMTOOL " check rules certmon-rules.yml 2>&1", dir);
    expect_command(cmd, "SUCCESS: 6 rules found", __LINE__);
    /* The alerts fire when and only when they should, with the labels and texts they should. */
    snprintf(cmd, sizeof(cmd), "cd '%s' && " PROMTOOL " test rules certmon-rules.test.yml 2>&1",
             dir);
    expect_command(cmd, "SUCCESS", __LINE__);
    /* The complete example, rules included. */
    snprintf(cmd, sizeof(cmd), "cd '%s' && " PROMTOOL " check config prometheus.yml 2>&1", dir);
    expect_command(cmd, "SUCCESS: 6 rules found", __LINE__);
}

/* The scrape snippet as it stands, and with its commented jobs uncommented (file paths
 * pointed at files that exist, as promtool requires). */
static void test_prometheus_scrape(void)
{
    char cmd[8192], tmpdir[] = "/tmp/certmon-prom-XXXXXX", path[4200], line[1024];
    const char *snippet = source_path("contrib/prometheus/certmon-scrape.yml");
    int jobs = 0;
    FILE *in, *out;

    if (!have_promtool())
        return;
    snprintf(cmd, sizeof(cmd), PROMTOOL " check config '%s' 2>&1", snippet);
    expect_command(cmd, "SUCCESS", __LINE__);

    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tmpdir));
    CU_ASSERT_PTR_NOT_NULL_FATAL(in = fopen(snippet, "r"));
    snprintf(path, sizeof(path), "%s/all.yml", tmpdir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out = fopen(path, "w"));
    while (fgets(line, sizeof(line), in)) {
        const char *p = line + strspn(line, " ");
        char *at;
        if (!strncmp(p, "## ", 3))
            continue;
        fwrite(line, 1, (size_t)(p - line), out);
        if (p != line && !strncmp(p, "# ", 2))
            p += 2;
        jobs += !!strstr(p, "- job_name:");
        if ((at = strstr(p, "/etc/prometheus/certmon/")))
            fprintf(out, "%.*s%s/%s", (int)(at - p), p, tmpdir, at + 24);
        else
            fputs(p, out);
    }
    fclose(in);
    fclose(out);
    EXPECT_INT(jobs, 3);
    for (int i = 0; i < 3; i++) {
        static const char *const files[] = {"ca.pem", "client.pem", "client.key"};
        FILE *fp;
        snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(fp = fopen(path, "w"));
        fclose(fp);
    }
    snprintf(cmd, sizeof(cmd), PROMTOOL " check config '%s/all.yml' 2>&1", tmpdir);
    expect_command(cmd, "SUCCESS", __LINE__);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

/* ---- Benchmark: printed, not asserted ---- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* A report as the daemon keeps it for a typical public endpoint: leaf, intermediate and
 * root sent, a posture pass, two findings, two labels. */
static const char *const bench_report =
    "{'target':'x','host':'x','port':443,'sni':'x','address':'203.0.113.7','starttls':null,"
    "'status':'warning','error':null,"
    "'timing_ms':{'dns':0.412,'connect':1.203,'starttls':null,'handshake':6.871,'total':8.512},"
    "'tls':{'version':'TLS1.3','cipher':'TLS_AES_256_GCM_SHA384','group':'X25519'},"
    "'verification':{'trusted':true,'hostname_match':true,'errors':[]},"
    "'ocsp':{'stapled':false,'status':null,'verified':false,'this_update':null,"
    "'next_update':null},"
    "'mtls':{'client_cert_requested':false,'client_cert_sent':false,'client_cert':null},"
    "'chain':["
    "{'position':0,'subject':'CN=www.example.com','issuer':'CN=R11,O=Let\\u0027s Encrypt,C=US',"
    "'serial':'04a1f3c6d1e2b7a9f0c3d5e7f9a1b3c5d7e9','not_before':'2026-10-01T06:12:44Z',"
    "'not_after':'2026-12-30T06:12:43Z','days_left':33,'key':{'type':'EC','bits':256},"
    "'signature':'RSA-SHA256',"
    "'sha256':'9e5167c53a9677b31bcc9d2d74ea3c046274eb127085e0cbf4b6a29d5c399086',"
    "'sans':['www.example.com','example.com'],'is_ca':false,'self_signed':false,"
    "'must_staple':false},"
    "{'position':1,'subject':'CN=R11,O=Let\\u0027s Encrypt,C=US',"
    "'issuer':'CN=ISRG Root X1,O=Internet Security Research Group,C=US',"
    "'serial':'8a7d3e13d62f30ef2386bd29076b34f8','not_before':'2024-03-13T00:00:00Z',"
    "'not_after':'2027-03-12T23:59:59Z','days_left':470,'key':{'type':'RSA','bits':2048},"
    "'signature':'RSA-SHA256',"
    "'sha256':'591e9ce6c863d3a079e9fabe1478c7339a26b21269dde795211361024ae31a44',"
    "'sans':[],'is_ca':true,'self_signed':false,'must_staple':false},"
    "{'position':2,'subject':'CN=ISRG Root X1,O=Internet Security Research Group,C=US',"
    "'issuer':'CN=DST Root CA X3,O=Digital Signature Trust Co.',"
    "'serial':'4001772137d4e942b8ee76aa3c640ab7','not_before':'2021-01-20T19:14:03Z',"
    "'not_after':'2024-09-30T18:14:03Z','days_left':-788,'key':{'type':'RSA','bits':4096},"
    "'signature':'RSA-SHA256',"
    "'sha256':'6d99fb265eb1c5b3744765fcbc648f3cd8e1bffafdc4c2f99b9d47cf7ff1c24f',"
    "'sans':[],'is_ca':true,'self_signed':false,'must_staple':false}],"
    "'findings':["
    "{'id':'ocsp.not_stapled','severity':'info','message':'no staple','position':0,"
    "'first_seen':'2026-10-01T07:00:00Z'},"
    "{'id':'cert.expiring','severity':'warning','message':'33 days','position':0,"
    "'days_left':33,'first_seen':'2026-11-27T07:00:00Z'}],"
    "'posture':{'versions_accepted':['TLS1.3','TLS1.2'],'weak_ciphers_accepted':[],"
    "'forward_secrecy':true,'dh_bits':0,'secure_renegotiation':true,'not_tested':[],"
    "'handshakes':11,'elapsed_ms':41.2},"
    "'labels':{'team':'web','env':'prod'},'last_probe':'2026-11-27T08:00:00Z',"
    "'last_success':'2026-11-27T08:00:00Z','failures':0,"
    "'status_since':'2026-11-27T07:00:00Z'}";

/* Builds 10,000 views of bench_report and renders them. unique_leaf: each target has a leaf
 * of its own (subject, serial, fingerprint), the intermediate and the root shared, as in a fleet
 * of distinct names under one CA; else every target presents the same chain. */
static void bench_run(bool unique_leaf)
{
    enum { N = 10000, RUNS = 7 };
    struct cm_metrics_view **v = calloc(N, sizeof(*v));
    struct cm_metrics_self self = {123456,   789, true, 1795766400, "0.1.0", "3.7.9", "1.44.2",
                                   "7.88.1", N,   NULL, 0,          NULL,    NULL, NULL, 0, NULL, 0};
    struct cm_metrics_process proc;
    struct cm_metrics_buf b = {0};
    struct mallinfo2 before, after;
    double t0, build, fresh[RUNS], reused[RUNS];
    json_t *r = jq(bench_report), *leaf = json_array_get(json_object_get(r, "chain"), 0);
    char name[80], heap[64];
    size_t shared;

    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_PTR_NOT_NULL_FATAL(leaf);
    /* The strings a unique leaf replaces are made before measuring, so that the heap
     * difference is the views' (and the certificate texts they share). */
    json_object_set_new(r, "target", json_string("host-00000.example.com:443"));
    json_object_set_new(leaf, "subject", json_string("CN=host-00000.example.com"));
    cm_process_read(&proc);
    before = mallinfo2();
    t0 = now_s();
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "host-%05d.example.com:443", i);
        json_string_set(json_object_get(r, "target"), name);
        if (unique_leaf) {
            snprintf(name, sizeof(name), "CN=host-%05d.example.com", i);
            json_string_set(json_object_get(leaf, "subject"), name);
            snprintf(name, sizeof(name), "04a1f3c6d1e2b7a9f0c3d5e7f9a1b3c5%04x", i);
            json_string_set(json_object_get(leaf, "serial"), name);
            snprintf(name, sizeof(name),
                     "9e5167c53a9677b31bcc9d2d74ea3c046274eb127085e0cbf4b6a29d5c39%04x", i);
            json_string_set(json_object_get(leaf, "sha256"), name);
        }
        v[i] = cm_metrics_view_new(r);
        CU_ASSERT_PTR_NOT_NULL_FATAL(v[i]);
    }
    build = now_s() - t0;
    after = mallinfo2();
    shared = cm_metrics_shared_certs();
    /* A fresh buffer each time, as when the listener takes the body (what a scrape costs);
     * then one buffer reused. */
    for (int i = 0; i < RUNS; i++) {
        cm_metrics_buf_free(&b);
        t0 = now_s();
        EXPECT_INT(cm_metrics_render((const struct cm_metrics_view *const *)v, N, &self, &proc, &b),
                   0);
        fresh[i] = now_s() - t0;
    }
    for (int i = 0; i < RUNS; i++) {
        b.len = 0;
        t0 = now_s();
        EXPECT_INT(cm_metrics_render((const struct cm_metrics_view *const *)v, N, &self, &proc, &b),
                   0);
        reused[i] = now_s() - t0;
    }
    qsort(fresh, RUNS, sizeof(double), cmp_double);
    qsort(reused, RUNS, sizeof(double), cmp_double);
    if (after.uordblks > before.uordblks)
        snprintf(heap, sizeof(heap), "%.0f heap bytes each",
                 (double)(after.uordblks - before.uordblks) / N);
    else /* an allocator other than glibc's (the sanitizers') */
        snprintf(heap, sizeof(heap), "heap use not measurable here");
    printf("\n  bench (%s): %d views built in %.1f ms, %s (malloc overhead and shared "
           "certificate texts included; %zu texts)\n"
           "  bench: render with a fresh buffer: median %.1f ms (best %.1f, worst %.1f); reusing "
           "one: median %.1f ms (best %.1f); %d runs each\n"
           "  bench: output %zu bytes, %.0f per target\n",
           unique_leaf ? "a leaf per target, CAs shared" : "one chain for all", N, build * 1e3,
           heap, shared, fresh[RUNS / 2] * 1e3, fresh[0] * 1e3, fresh[RUNS - 1] * 1e3,
           reused[RUNS / 2] * 1e3, reused[0] * 1e3, RUNS, b.len, (double)b.len / N);
    /* Three texts for one chain; a leaf per target and the two CAs otherwise. */
    EXPECT_INT(shared, unique_leaf ? N + 2 : 3);
    /* The bench output is a valid exposition too. */
    CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "certmon_cert_info{target=\"host-09999.example.com:443\","
                                          "env=\"prod\",team=\"web\",position=\"2\""));
    if (unique_leaf)
        CU_ASSERT_PTR_NOT_NULL(
            strstr(b.data, "certmon_cert_info{target=\"host-09999.example.com:443\",env=\"prod\","
                           "team=\"web\",position=\"0\",subject=\"CN=host-09999.example.com\","
                           "issuer=\"CN=R11,O=Let's Encrypt,C=US\","
                           "serial=\"04a1f3c6d1e2b7a9f0c3d5e7f9a1b3c5270f\""));
    cm_metrics_buf_free(&b);
    for (int i = 0; i < N; i++)
        cm_metrics_view_free(v[i]);
    EXPECT_INT(cm_metrics_shared_certs(), 0);
    EXPECT_INT(cm_metrics_shared_words(), 0);
    free(v);
    json_decref(r);
}

static void test_bench(void)
{
    bench_run(false);
    bench_run(true);
}

static CU_TestInfo tests[] = {
    {"endpoint with two certificates, posture and findings", test_endpoint},
    {"failed probe, escaped labels", test_failed_probe},
    {"file target", test_file_target},
    {"certificate texts shared between views", test_shared_certs},
    {"shared certificate texts escaped", test_shared_hostile_certs},
    {"serials and fingerprints in every form render as their text", test_cert_serial_forms},
    {"shared certificate texts on several threads", test_shared_certs_threads},
    {"versions, ciphers and finding ids shared between views", test_shared_words},
    {"label names", test_label_names},
    {"NULL, invalid and malformed reports", test_invalid_reports},
    {"self and process families", test_self_and_process},
    {"revocation status per position, ARI window, revocation cache", test_revocation_and_ari},
    {"integers at every width", test_numbers},
    {"times and durations past the narrow range", test_time_and_duration_edges},
    {"process metrics from /proc", test_process_read},
    {"whole exposition: structure and promtool", test_whole_exposition},
    {"the structure checker itself", test_structure_checker},
    {"buffer: pieces, appending, failure", test_buffer},
    {"allocation failures", test_allocation_failures},
    {"contrib/prometheus rules: check and test", test_prometheus_rules},
    {"contrib/prometheus scrape config", test_prometheus_scrape},
    {"benchmark: 10,000 targets (printed)", test_bench},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("metrics", tests, NULL, NULL);
}
