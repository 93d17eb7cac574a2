/* Revocation without staples against real servers: a PKI made by mkrevoke.sh at test time
 * whose certificates name CRL distribution points and OCSP responders on 127.0.0.1, the CRLs
 * served by crl_server.py, the responders, a port where nothing listens and a tarpit that
 * accepts and never answers (all set up by tests/support/cmrevoke.h), and one openssl s_server
 * per case. Assertions are on what `certmon check --json` shows a
 * user: finding ids, severities, positions, sources, reasons, and the exit code. */
#include "cmrevoke.h"
#include "cmtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CERTMON_SLOWDOWN
#define CERTMON_SLOWDOWN 1.0
#endif

enum srv {
    S_GOOD,
    S_REVOKED,
    S_UNDER2,
    S_STALE,
    S_FORGED,
    S_DOWN,
    S_TARPIT,
    S_NOTHING,
    S_OCSP_GOOD,
    S_OCSP_REVOKED,
    S_OCSP_DOWN,
    S_OCSP_FORGED,
    S_COUNT
};

static const struct server {
    const char *cert, *chain;
} servers[S_COUNT] = {
    [S_GOOD] = {"good.pem", "inter.pem"},
    [S_REVOKED] = {"revoked.pem", "inter.pem"},
    [S_UNDER2] = {"under2.pem", "inter2.pem"},
    [S_STALE] = {"stale.pem", "inter.pem"},
    [S_FORGED] = {"forged.pem", "inter.pem"},
    [S_DOWN] = {"down.pem", "inter.pem"},
    [S_TARPIT] = {"tarpit.pem", "inter.pem"},
    [S_NOTHING] = {"nothing.pem", "inter.pem"},
    [S_OCSP_GOOD] = {"ocspgood.pem", "inter.pem"},
    [S_OCSP_REVOKED] = {"ocsprevoked.pem", "inter.pem"},
    [S_OCSP_DOWN] = {"ocspdown.pem", "inter.pem"},
    [S_OCSP_FORGED] = {"ocspforged.pem", "inter.pem"},
};

static struct cm_th_revpki pki;
static char root[300];
static int port[S_COUNT];
static pid_t pid[S_COUNT];
static char target[S_COUNT][64];

static int suite_cleanup(void);

/* The PKI and its servers (the impostor OCSP responder too), then one s_server per case. */
static int suite_init(void)
{
    if (cm_th_revpki_start(&pki, "certmon-rev", true) < 0)
        return -1;
    snprintf(root, sizeof(root), "%s", cm_th_path(pki.dir, "root.pem"));
    for (int s = 0; s < S_COUNT; s++) {
        if ((pid[s] = cm_th_revpki_s_server(&pki, servers[s].cert, servers[s].chain, &port[s])) <
            0) {
            suite_cleanup();
            return -1;
        }
        snprintf(target[s], sizeof(target[s]), "127.0.0.1:%d", port[s]);
    }
    return 0;
}

static int suite_cleanup(void)
{
    for (int s = 0; s < S_COUNT; s++)
        if (pid[s] > 0)
            cm_th_stop(pid[s]);
    cm_th_revpki_stop(&pki);
    return 0;
}

/* Runs certmon check --json --quick --ca root.pem on one target; returns its object. */
static json_t *check1(json_t **arr, int *code, double *elapsed, enum srv s, const char *extra1,
                      const char *extra2)
{
    *arr =
        cm_th_check_json(code, elapsed, "--quick", "--ca", root, target[s], extra1, extra2, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(*arr);
    json_t *t = cm_json_only(*arr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    return t;
}

static const char *str(json_t *o, const char *p)
{
    const char *s = cm_json_str(o, p);
    return s ? s : "(null)";
}

/* The one finding with this id; NULL (and a failure) when there is not exactly one. */
static json_t *only_finding(json_t *t, const char *id)
{
    json_t *fs = cm_json_get(t, "findings"), *f, *hit = NULL;
    size_t i, n = 0;

    json_array_foreach(fs, i, f) if (!strcmp(json_string_value(json_object_get(f, "id")), id))
    {
        hit = f;
        n++;
    }
    if (n != 1)
        fprintf(stderr, "\n%zu findings %s in %s\n", n, id, json_dumps(fs, 0));
    CU_ASSERT_EQUAL(n, 1);
    return n == 1 ? hit : NULL;
}

static bool no_finding_starting(json_t *t, const char *prefix)
{
    json_t *fs = cm_json_get(t, "findings"), *f;
    size_t i;

    json_array_foreach(fs, i, f)
    {
        if (!strncmp(json_string_value(json_object_get(f, "id")), prefix, strlen(prefix)))
            return false;
    }
    return true;
}

static void test_revoked_leaf(void)
{
    json_t *arr, *t, *f;
    int code;

    t = check1(&arr, &code, NULL, S_REVOKED, NULL, NULL);
    CU_ASSERT_EQUAL(code, 2);
    CU_ASSERT_STRING_EQUAL(str(t, "status"), "critical");
    f = only_finding(t, "cert.revoked");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_STRING_EQUAL(str(f, "severity"), "critical");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(f, "position")), 0);
    CU_ASSERT_STRING_EQUAL(str(f, "source"), "crl");
    CU_ASSERT_STRING_EQUAL(str(f, "reason"), "keyCompromise");
    CU_ASSERT(json_is_string(json_object_get(f, "revoked_at")));
    CU_ASSERT_PTR_NOT_NULL(strstr(str(f, "message"), "leaf certificate 0 (CN=revoked.localhost)"));
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.revocation.status"), "revoked");
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.revocation.source"), "crl");
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.revocation.reason"), "keyCompromise");
    /* The intermediate, by the root's CRL, is good. */
    CU_ASSERT_STRING_EQUAL(str(t, "chain.1.revocation.status"), "good");
    CU_ASSERT(json_is_string(cm_json_get(t, "chain.1.revocation.next_update")));
    json_decref(arr);

    /* Settings written for the old id still apply to it. */
    t = check1(&arr, &code, NULL, S_REVOKED, "--ignore", "ocsp.revoked");
    CU_ASSERT_EQUAL(code, 0);
    CU_ASSERT_TRUE(no_finding_starting(t, "cert.revoked"));
    json_decref(arr);
    t = check1(&arr, &code, NULL, S_REVOKED, "--severity", "ocsp.revoked=warning");
    CU_ASSERT_EQUAL(code, 1);
    f = only_finding(t, "cert.revoked");
    CU_ASSERT(f && !strcmp(str(f, "severity"), "warning"));
    json_decref(arr);

    /* --no-revocation: nothing fetched, nothing said. */
    t = check1(&arr, &code, NULL, S_REVOKED, "--no-revocation", NULL);
    CU_ASSERT_EQUAL(code, 0);
    CU_ASSERT(json_is_null(cm_json_get(t, "chain.0.revocation")));
    CU_ASSERT_TRUE(no_finding_starting(t, "cert.revoked"));
    CU_ASSERT_TRUE(no_finding_starting(t, "revocation."));
    json_decref(arr);
}

static void test_good_leaf(void)
{
    json_t *arr, *t;
    int code;

    t = check1(&arr, &code, NULL, S_GOOD, NULL, NULL);
    CU_ASSERT_EQUAL(code, 0);
    CU_ASSERT_STRING_EQUAL(str(t, "status"), "ok");
    CU_ASSERT_TRUE(no_finding_starting(t, "cert.revoked"));
    CU_ASSERT_TRUE(no_finding_starting(t, "revocation."));
    for (int i = 0; i < 2; i++) {
        char p[64];
        snprintf(p, sizeof(p), "chain.%d.revocation.status", i);
        CU_ASSERT_STRING_EQUAL(str(t, p), "good");
        snprintf(p, sizeof(p), "chain.%d.revocation.source", i);
        CU_ASSERT_STRING_EQUAL(str(t, p), "crl");
    }
    CU_ASSERT(json_is_null(cm_json_get(t, "chain.0.revocation.revoked_at")));
    CU_ASSERT_EQUAL(json_array_size(cm_json_get(t, "chain.0.revocation.errors")), 0);
    CU_ASSERT_EQUAL(json_array_size(cm_json_get(t, "chain.0.revocation_urls.crl")), 1);
    json_decref(arr);
}

static void test_revoked_intermediate(void)
{
    json_t *arr, *t, *f;
    int code;

    t = check1(&arr, &code, NULL, S_UNDER2, NULL, NULL);
    CU_ASSERT_EQUAL(code, 2);
    f = only_finding(t, "cert.revoked");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(f, "position")), 1);
    CU_ASSERT_STRING_EQUAL(str(f, "source"), "crl");
    CU_ASSERT_STRING_EQUAL(str(f, "reason"), "cACompromise");
    CU_ASSERT_PTR_NOT_NULL(strstr(str(f, "message"), "chain certificate 1"));
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.revocation.status"), "good");
    CU_ASSERT_STRING_EQUAL(str(t, "chain.1.revocation.status"), "revoked");
    json_decref(arr);
}

/* A CRL under the intermediate's name signed by another key is reported, never "good". */
static void test_forged_crl(void)
{
    json_t *arr, *t, *f;
    int code;

    t = check1(&arr, &code, NULL, S_FORGED, NULL, NULL);
    CU_ASSERT_EQUAL(code, 1);
    f = only_finding(t, "revocation.unavailable");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_STRING_EQUAL(str(f, "severity"), "warning");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(f, "position")), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(str(f, "message"), "signature does not verify"));
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.revocation.status"), "unavailable");
    CU_ASSERT(json_is_null(cm_json_get(t, "chain.0.revocation.source")));
    CU_ASSERT_PTR_NOT_NULL(strstr(str(t, "chain.0.revocation.errors.0"), "forged.crl"));
    json_decref(arr);
}

static void test_stale_crl(void)
{
    json_t *arr, *t, *f;
    int code;

    t = check1(&arr, &code, NULL, S_STALE, NULL, NULL);
    CU_ASSERT_EQUAL(code, 1);
    f = only_finding(t, "revocation.crl_stale");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_STRING_EQUAL(str(f, "severity"), "warning");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(f, "position")), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(str(f, "message"), "out of date"));
    CU_ASSERT_TRUE(no_finding_starting(t, "revocation.unavailable"));
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.revocation.status"), "unavailable");
    CU_ASSERT(json_is_true(cm_json_get(t, "chain.0.revocation.crl_stale")));
    CU_ASSERT(json_is_string(cm_json_get(t, "chain.0.revocation.next_update")));
    json_decref(arr);
}

static void test_down(void)
{
    json_t *arr, *t, *f;
    int code;

    t = check1(&arr, &code, NULL, S_DOWN, NULL, NULL);
    CU_ASSERT_EQUAL(code, 1);
    f = only_finding(t, "revocation.unavailable");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(f, "position")), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(str(f, "message"), "cannot fetch the CRL"));
    json_decref(arr);
}

/* A distribution point that accepts and never answers: the check still ends at its deadline,
 * and says why the status is unknown. */
static void test_tarpit(void)
{
    json_t *arr, *t, *f;
    double elapsed;
    int code;

    t = check1(&arr, &code, &elapsed, S_TARPIT, "--timeout", "2");
    CU_ASSERT_EQUAL(code, 1);
    CU_ASSERT(elapsed < 2.0 + 1.5 * CERTMON_SLOWDOWN);
    f = only_finding(t, "revocation.unavailable");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(str(f, "message"), "timed out"));
    /* The intermediate's CRL (another server) was still had in time. */
    CU_ASSERT_STRING_EQUAL(str(t, "chain.1.revocation.status"), "good");
    json_decref(arr);
}

static void test_none(void)
{
    json_t *arr, *t, *f;
    int code;

    t = check1(&arr, &code, NULL, S_NOTHING, NULL, NULL);
    CU_ASSERT_EQUAL(code, 0);
    f = only_finding(t, "revocation.none");
    CU_ASSERT(f && !strcmp(str(f, "severity"), "info"));
    CU_ASSERT(f && json_integer_value(json_object_get(f, "position")) == 0);
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.revocation.status"), "none");
    CU_ASSERT_STRING_EQUAL(str(t, "chain.1.revocation.status"), "good");
    json_decref(arr);
}

/* Leaves that name only an OCSP responder (AIA), served without a staple: the responder
 * (openssl ocsp, signing through a delegated responder certificate) is queried. */
static void test_ocsp(void)
{
    json_t *arr, *t, *f;
    int code;

    t = check1(&arr, &code, NULL, S_OCSP_GOOD, NULL, NULL);
    CU_ASSERT_EQUAL(code, 0);
    CU_ASSERT_TRUE(no_finding_starting(t, "revocation."));
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.revocation.status"), "good");
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.revocation.source"), "ocsp");
    CU_ASSERT(json_is_string(cm_json_get(t, "chain.0.revocation.this_update")));
    CU_ASSERT(json_is_string(cm_json_get(t, "chain.0.revocation_urls.ocsp")));
    json_decref(arr);

    t = check1(&arr, &code, NULL, S_OCSP_REVOKED, NULL, NULL);
    CU_ASSERT_EQUAL(code, 2);
    f = only_finding(t, "cert.revoked");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(f, "position")), 0);
    CU_ASSERT_STRING_EQUAL(str(f, "source"), "ocsp");
    CU_ASSERT_STRING_EQUAL(str(f, "reason"), "superseded");
    CU_ASSERT(json_is_string(json_object_get(f, "revoked_at")));
    CU_ASSERT_PTR_NOT_NULL(strstr(str(f, "message"), "OCSP responder"));
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.revocation.source"), "ocsp");
    json_decref(arr);

    /* Signed by a key that is neither the issuer's nor delegated by it: never "good". */
    t = check1(&arr, &code, NULL, S_OCSP_FORGED, NULL, NULL);
    CU_ASSERT_EQUAL(code, 1);
    f = only_finding(t, "revocation.unavailable");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(str(f, "message"), "signature does not verify"));
    CU_ASSERT_STRING_EQUAL(str(t, "chain.0.revocation.status"), "unavailable");
    json_decref(arr);

    t = check1(&arr, &code, NULL, S_OCSP_DOWN, NULL, NULL);
    CU_ASSERT_EQUAL(code, 1);
    f = only_finding(t, "revocation.unavailable");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(str(f, "message"), "OCSP: cannot query the responder"));
    json_decref(arr);
}

/* Five targets behind one intermediate in one run: its CRL is fetched once. */
static void test_one_fetch_per_url(void)
{
    size_t before = cm_th_crl_gets(&pki, "/inter.crl"), root_before;
    json_t *arr;
    int code;

    root_before = cm_th_crl_gets(&pki, "/root.crl");
    arr = cm_th_check_json(&code, NULL, "--quick", "--ca", root, target[S_GOOD], target[S_REVOKED],
                           target[S_GOOD], target[S_NOTHING], target[S_REVOKED], NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(arr);
    CU_ASSERT_EQUAL(code, 2);
    CU_ASSERT_EQUAL(json_array_size(arr), 5);
    CU_ASSERT_STRING_EQUAL(str(json_array_get(arr, 0), "chain.0.revocation.status"), "good");
    CU_ASSERT_STRING_EQUAL(str(json_array_get(arr, 4), "chain.0.revocation.status"), "revoked");
    json_decref(arr);
    CU_ASSERT_EQUAL(cm_th_crl_gets(&pki, "/inter.crl") - before, 1);
    CU_ASSERT_EQUAL(cm_th_crl_gets(&pki, "/root.crl") - root_before, 1);
}

static CU_TestInfo tests[] = {
    {"revoked leaf via CRL; the ocsp.revoked alias; --no-revocation", test_revoked_leaf},
    {"good leaf via CRL", test_good_leaf},
    {"intermediate revoked by the root's CRL", test_revoked_intermediate},
    {"CRL signed by the wrong key", test_forged_crl},
    {"stale CRL", test_stale_crl},
    {"distribution point down", test_down},
    {"tarpit distribution point: the check ends within its deadline", test_tarpit},
    {"no CRL, no OCSP: revocation.none", test_none},
    {"one fetch per URL for many targets", test_one_fetch_per_url},
    {"OCSP responder without a staple: good, revoked, forged signer, down", test_ocsp},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("integration.revocation", tests, suite_init, suite_cleanup);
}
