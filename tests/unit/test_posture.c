/* Unit tests for the pure parts of the posture pass (src/probe/posture.c): the hand-built SSL 3.0
 * and export ClientHellos, byte for byte, and the parser of the server's first answer, fed whole,
 * in pieces and broken. */
#include "cmtest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certmon/probe/posture.h"

static const uint8_t RANDOM[32] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                                   16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};

static unsigned get16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* Checks the framing of a built hello and returns the offset of its cipher suite list. */
static size_t check_frame(const uint8_t *b, size_t n, uint8_t minor, unsigned line)
{
    expect_int(b[0], 0x16, "record type", line);
    expect_int(b[1], 3, "record major", line);
    expect_int(b[2], minor, "record minor", line);
    expect_int(get16(b + 3), n - 5, "record length", line);
    expect_int(b[5], 1, "handshake type", line);
    expect_int((unsigned)b[6] << 16 | get16(b + 7), n - 9, "handshake length", line);
    expect_int(b[9], 3, "client_version major", line);
    expect_int(b[10], minor, "client_version minor", line);
    expect_int(memcmp(b + 11, RANDOM, 32), 0, "random", line);
    expect_int(b[43], 0, "session id length", line);
    return 44;
}

static void test_ssl3_hello_bytes(void)
{
    uint8_t b[512];
    size_t n = cm_hello_build(CM_HELLO_SSL3, NULL, RANDOM, b, sizeof(b));
    size_t off, nsuites;
    bool export = false, rc4 = false, tdes = false;

    /* 5 record + 4 handshake + 2 version + 32 random + 1 session id + 2 + 2 * 25 suites + 2
     * compression, and no extensions. */
    EXPECT_INT(n, 98);
    off = check_frame(b, n, 0x00, __LINE__);
    nsuites = get16(b + off) / 2;
    EXPECT_INT(nsuites, 25);
    for (size_t i = 0; i < nsuites; i++) {
        unsigned s = get16(b + off + 2 + 2 * i);
        int cls = cm_suite_weak_class((uint16_t)s);
        CU_ASSERT(cm_hello_offers(CM_HELLO_SSL3, (uint16_t)s));
        export |= cls == CM_WEAK_EXPORT;
        rc4 |= cls == CM_WEAK_RC4;
        tdes |= cls == CM_WEAK_3DES;
        CU_ASSERT(s < 0x0100); /* SSL 3.0 suites only: no TLS-era numbers */
    }
    CU_ASSERT(export && rc4 && tdes);
    EXPECT_INT(get16(b + off), 50);
    off += 2 + 50;
    EXPECT_INT(b[off], 1); /* one compression method: null */
    EXPECT_INT(b[off + 1], 0);
    EXPECT_INT(off + 2, n);
    /* The first suites are the strong ones, in this order. */
    EXPECT_INT(get16(b + 46), 0x0039);
    EXPECT_INT(get16(b + 56), 0x002f);
}

static void test_export_hello_bytes(void)
{
    uint8_t b[512];
    size_t n = cm_hello_build(CM_HELLO_EXPORT, NULL, RANDOM, b, sizeof(b));
    size_t off = check_frame(b, n, 0x01, __LINE__);
    size_t nsuites = get16(b + off) / 2;

    EXPECT_INT(nsuites, 15);
    for (size_t i = 0; i < nsuites; i++) {
        unsigned s = get16(b + off + 2 + 2 * i);
        EXPECT_INT(cm_suite_weak_class((uint16_t)s), CM_WEAK_EXPORT);
        CU_ASSERT(cm_hello_offers(CM_HELLO_EXPORT, (uint16_t)s));
    }
    EXPECT_INT(off + 2 + 2 * nsuites + 2, n);
    /* The export hello offers nothing strong; the SSL 3.0 one nothing above SSL 3.0. */
    CU_ASSERT(!cm_hello_offers(CM_HELLO_EXPORT, 0x002f));
    CU_ASSERT(!cm_hello_offers(CM_HELLO_SSL3, 0xc02f));
    CU_ASSERT(!cm_hello_offers(CM_HELLO_SSL3, 0x0062)); /* EXPORT1024 is TLS 1.0 only */
}

static void test_hello_sni(void)
{
    static const uint8_t ext[] = {
        0x00, 0x14, /* extensions: 20 bytes */
        0x00, 0x00, /* server_name */
        0x00, 0x10, /* extension_data: 16 bytes */
        0x00, 0x0e, /* server_name_list: 14 bytes */
        0x00,       /* host_name */
        0x00, 0x0b, /* 11 bytes */
        'e',  'x',  'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm',
    };
    uint8_t b[512];
    size_t n = cm_hello_build(CM_HELLO_EXPORT, "example.com", RANDOM, b, sizeof(b));
    size_t plain = cm_hello_build(CM_HELLO_EXPORT, NULL, RANDOM, b + 256, 256);

    EXPECT_INT(n, plain + sizeof(ext));
    check_frame(b, n, 0x01, __LINE__);
    EXPECT_INT(memcmp(b + plain, ext, sizeof(ext)), 0);
    /* The same bytes before the extensions, apart from the lengths. */
    EXPECT_INT(memcmp(b + 9, b + 256 + 9, plain - 9), 0);
}

static void test_hello_limits(void)
{
    uint8_t b[512];
    char name[300];
    size_t n = cm_hello_build(CM_HELLO_SSL3, NULL, RANDOM, b, sizeof(b));

    EXPECT_INT(cm_hello_build(CM_HELLO_SSL3, NULL, RANDOM, b, n), n); /* exactly fits */
    EXPECT_INT(cm_hello_build(CM_HELLO_SSL3, NULL, RANDOM, b, n - 1), 0);
    EXPECT_INT(cm_hello_build(CM_HELLO_SSL3, "", RANDOM, b, sizeof(b)), 0);
    memset(name, 'a', sizeof(name));
    name[255] = '\0';
    EXPECT_INT(cm_hello_build(CM_HELLO_SSL3, name, RANDOM, b, sizeof(b)), n + 11 + 255);
    name[255] = 'a';
    name[256] = '\0';
    EXPECT_INT(cm_hello_build(CM_HELLO_SSL3, name, RANDOM, b, sizeof(b)), 0);
}

/* A ServerHello record: version, random, a session id of sid bytes, suite, compression. */
static size_t server_hello(uint8_t *b, unsigned version, unsigned suite, size_t sid)
{
    size_t body = 2 + 32 + 1 + sid + 2 + 1;
    size_t i = 0;

    b[i++] = 0x16;
    b[i++] = (uint8_t)(version >> 8);
    b[i++] = (uint8_t)version;
    b[i++] = (uint8_t)((body + 4) >> 8);
    b[i++] = (uint8_t)(body + 4);
    b[i++] = 0x02;
    b[i++] = 0;
    b[i++] = (uint8_t)(body >> 8);
    b[i++] = (uint8_t)body;
    b[i++] = (uint8_t)(version >> 8);
    b[i++] = (uint8_t)version;
    memset(b + i, 0xab, 32);
    i += 32;
    b[i++] = (uint8_t)sid;
    memset(b + i, 0xcd, sid);
    i += sid;
    b[i++] = (uint8_t)(suite >> 8);
    b[i++] = (uint8_t)suite;
    b[i++] = 0;
    return i;
}

static void test_parse_server_hello(void)
{
    static const size_t sids[] = {0, 1, 32};
    uint8_t b[256];
    struct cm_server_reply r;

    for (size_t k = 0; k < 3; k++) {
        size_t n = server_hello(b, 0x0300, 0x002f, sids[k]);

        EXPECT_INT(cm_server_reply_parse(b, n, &r), CM_REPLY_DONE);
        CU_ASSERT(!r.alert);
        EXPECT_INT(r.version, 0x0300);
        EXPECT_INT(r.suite, 0x002f);
        /* Every prefix short of the suite asks for more; the compression byte is not needed. */
        for (size_t cut = 0; cut < n - 1; cut++) {
            int rc = cm_server_reply_parse(b, cut, &r);
            if (rc != CM_REPLY_MORE) {
                char msg[96];
                snprintf(msg, sizeof(msg), "prefix of %zu bytes (sid %zu) asks for more", cut,
                         sids[k]);
                CU_assertImplementation(CU_FALSE, __LINE__, msg, __FILE__, "", CU_FALSE);
                break;
            }
        }
        EXPECT_INT(cm_server_reply_parse(b, n - 1, &r), CM_REPLY_DONE);
    }
}

/* The ServerHello split over two records, then followed by a Certificate in the same record
 * that has not fully arrived: only the first fields matter. */
static void test_parse_fragmented(void)
{
    uint8_t one[128], b[256];
    size_t n = server_hello(one, 0x0301, 0x0003, 0);
    size_t body = n - 5, first = 20;
    struct cm_server_reply r;

    /* Record 1: the first 20 bytes of the handshake message; record 2: the rest. */
    memcpy(b, one, 5);
    b[3] = 0;
    b[4] = (uint8_t)first;
    memcpy(b + 5, one + 5, first);
    memcpy(b + 5 + first, one, 5);
    b[5 + first + 3] = 0;
    b[5 + first + 4] = (uint8_t)(body - first);
    memcpy(b + 10 + first, one + 5 + first, body - first);
    EXPECT_INT(cm_server_reply_parse(b, 5 + first, &r), CM_REPLY_MORE);
    EXPECT_INT(cm_server_reply_parse(b, 10 + first, &r), CM_REPLY_MORE);
    EXPECT_INT(cm_server_reply_parse(b, n + 5, &r), CM_REPLY_DONE);
    EXPECT_INT(r.version, 0x0301);
    EXPECT_INT(r.suite, 0x0003);

    /* One record announcing 3000 bytes (ServerHello, Certificate, ...), 60 of them here. */
    n = server_hello(b, 0x0300, 0x000a, 0);
    b[3] = 3000 >> 8;
    b[4] = 3000 & 0xff;
    EXPECT_INT(cm_server_reply_parse(b, n, &r), CM_REPLY_DONE);
    EXPECT_INT(r.suite, 0x000a);
}

static void test_parse_alert(void)
{
    static const uint8_t alert[] = {0x15, 0x03, 0x00, 0x00, 0x02, 0x02, 0x28};
    struct cm_server_reply r;

    EXPECT_INT(cm_server_reply_parse(alert, sizeof(alert), &r), CM_REPLY_DONE);
    CU_ASSERT(r.alert);
    EXPECT_INT(r.level, 2);
    EXPECT_INT(r.desc, 40);
    EXPECT_INT(cm_server_reply_parse(alert, 6, &r), CM_REPLY_MORE);
    EXPECT_INT(cm_server_reply_parse(alert, 5, &r), CM_REPLY_MORE);
    EXPECT_INT(cm_server_reply_parse(alert, 0, &r), CM_REPLY_MORE);
}

static void test_parse_bad(void)
{
    /* An SSLv2 ServerHello, plain text, a Certificate first, application data first, a
     * record of another major version, an empty record. */
    static const struct {
        const char *what;
        uint8_t bytes[16];
        size_t len;
    } cases[] = {
        {"SSLv2", {0x80, 0x2e, 0x04, 0x00, 0x01, 0x00, 0x02}, 7},
        {"HTTP", {'H', 'T', 'T', 'P', '/', '1', '.', '1', ' ', '4', '0', '0'}, 12},
        {"Certificate first", {0x16, 0x03, 0x01, 0x00, 0x04, 0x0b, 0x00, 0x00, 0x00}, 9},
        {"application data", {0x17, 0x03, 0x03, 0x00, 0x02, 0x00, 0x00}, 7},
        {"major 2", {0x16, 0x02, 0x00, 0x00, 0x02, 0x02, 0x00}, 7},
        {"empty record", {0x16, 0x03, 0x00, 0x00, 0x00}, 5},
        {"alert after handshake bytes",
         {0x16, 0x03, 0x00, 0x00, 0x01, 0x02, 0x15, 0x03, 0x00, 0x00, 0x02, 0x02, 0x28},
         13},
    };
    uint8_t b[256];
    struct cm_server_reply r;
    size_t n;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = cm_server_reply_parse(cases[i].bytes, cases[i].len, &r);
        char msg[96];
        snprintf(msg, sizeof(msg), "%s is not an answer (got %d)", cases[i].what, rc);
        CU_assertImplementation(rc == CM_REPLY_BAD, __LINE__, msg, __FILE__, "", CU_FALSE);
    }
    /* A session id longer than 32 bytes, and a message too short for its session id. */
    n = server_hello(b, 0x0300, 0x002f, 0);
    b[5 + 4 + 34] = 33;
    EXPECT_INT(cm_server_reply_parse(b, n + 33, &r), CM_REPLY_BAD);
    n = server_hello(b, 0x0300, 0x002f, 8);
    b[8] = 2 + 32 + 1 + 2; /* handshake length without room for the session id */
    EXPECT_INT(cm_server_reply_parse(b, n, &r), CM_REPLY_BAD);
}

static void test_names(void)
{
    EXPECT_STR(cm_pv_name(CM_PV_TLS13), "TLS1.3");
    EXPECT_STR(cm_pv_name(CM_PV_TLS12), "TLS1.2");
    EXPECT_STR(cm_pv_name(CM_PV_TLS11), "TLS1.1");
    EXPECT_STR(cm_pv_name(CM_PV_TLS10), "TLS1.0");
    EXPECT_STR(cm_pv_name(CM_PV_SSL30), "SSL3.0");
    EXPECT_STR(cm_pv_name(CM_PV_COUNT), "unknown");
    EXPECT_STR(cm_weak_name(CM_WEAK_RC4), "RC4");
    EXPECT_STR(cm_weak_name(CM_WEAK_3DES), "3DES");
    EXPECT_STR(cm_weak_name(CM_WEAK_NULL), "NULL");
    EXPECT_STR(cm_weak_name(CM_WEAK_EXPORT), "EXPORT");
    EXPECT_STR(cm_weak_name(CM_WEAK_ANON), "ANON");
    EXPECT_STR(cm_weak_name(CM_WEAK_COUNT), "unknown");
}

static void test_suite_classes(void)
{
    static const struct {
        uint16_t suite;
        int cls;
    } cases[] = {
        {0x0004, CM_WEAK_RC4},
        {0x0005, CM_WEAK_RC4},
        {0x000a, CM_WEAK_3DES},
        {0x0016, CM_WEAK_3DES},
        {0x0001, CM_WEAK_NULL},
        {0x0002, CM_WEAK_NULL},
        {0x0003, CM_WEAK_EXPORT},
        {0x0064, CM_WEAK_EXPORT},
        {0x0018, CM_WEAK_ANON},
        {0x003a, CM_WEAK_ANON},
        {0x002f, -1},
        {0x0009, -1}, /* single DES */
        {0xc02f, -1},
        {0x1301, -1},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        EXPECT_INT(cm_suite_weak_class(cases[i].suite), cases[i].cls);
}

/* The main handshake's evidence folds into the pass's result. */
static void test_add_handshake(void)
{
    struct cm_posture p;
    struct cm_tls_info tls;

    memset(&p, 0, sizeof(p));
    memset(&tls, 0, sizeof(tls));
    cm_posture_add_handshake(&p, &tls); /* no handshake: nothing */
    EXPECT_INT(p.version[CM_PV_TLS12], CM_TRI_UNKNOWN);
    EXPECT_INT(p.secure_renegotiation, CM_TRI_UNKNOWN);

    /* TLS 1.2, static RSA, no RFC 5746. */
    tls.version = "TLS1.2";
    p.version[CM_PV_TLS12] = CM_TRI_NO; /* a refusal that the main handshake disproves */
    cm_posture_add_handshake(&p, &tls);
    EXPECT_INT(p.version[CM_PV_TLS12], CM_TRI_YES);
    EXPECT_INT(p.version[CM_PV_TLS13], CM_TRI_UNKNOWN);
    EXPECT_INT(p.forward_secrecy, CM_TRI_UNKNOWN);
    EXPECT_INT(p.secure_renegotiation, CM_TRI_NO);

    /* TLS 1.3: forward secrecy; a NO for renegotiation stays. */
    tls.version = "TLS1.3";
    tls.group = "X25519";
    cm_posture_add_handshake(&p, &tls);
    EXPECT_INT(p.version[CM_PV_TLS13], CM_TRI_YES);
    EXPECT_INT(p.forward_secrecy, CM_TRI_YES);
    EXPECT_INT(p.secure_renegotiation, CM_TRI_NO);
    p.secure_renegotiation = CM_TRI_UNKNOWN;
    cm_posture_add_handshake(&p, &tls);
    EXPECT_INT(p.secure_renegotiation, CM_TRI_YES);

    /* DHE: the smallest group seen wins. */
    tls.version = "TLS1.0";
    tls.group = "DH1024";
    tls.dh_bits = 1024;
    tls.safe_renegotiation = true;
    p.dh_bits = 2048;
    cm_posture_add_handshake(&p, &tls);
    EXPECT_INT(p.dh_bits, 1024);
    EXPECT_INT(p.version[CM_PV_TLS10], CM_TRI_YES);
    tls.dh_bits = 4096;
    cm_posture_add_handshake(&p, &tls);
    EXPECT_INT(p.dh_bits, 1024);
}

/* What a target's result carries: a copy of the pass with the main handshake folded in, the
 * pass itself untouched (the daemon keeps it for the next runs). */
static void test_fold(void)
{
    struct cm_posture pass, *p;
    struct cm_tls_info tls;

    memset(&pass, 0, sizeof(pass));
    memset(&tls, 0, sizeof(tls));
    pass.version[CM_PV_TLS12] = CM_TRI_NO;
    pass.weak[CM_WEAK_3DES] = CM_TRI_YES;
    pass.handshakes = 11;
    tls.version = "TLS1.2";
    tls.cipher = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256";
    tls.group = "SECP256R1";
    tls.safe_renegotiation = true;
    p = cm_posture_fold(&pass, &tls);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT(p != &pass);
    EXPECT_INT(p->version[CM_PV_TLS12], CM_TRI_YES);
    EXPECT_INT(p->weak[CM_WEAK_3DES], CM_TRI_YES);
    EXPECT_INT(p->aead, CM_TRI_YES);
    EXPECT_INT(p->forward_secrecy, CM_TRI_YES);
    EXPECT_INT(p->secure_renegotiation, CM_TRI_YES);
    EXPECT_INT(p->handshakes, 11);
    EXPECT_INT(pass.version[CM_PV_TLS12], CM_TRI_NO);
    EXPECT_INT(pass.aead, CM_TRI_UNKNOWN);
    cm_posture_free(p);
}

static void test_start_rejects_names(void)
{
    struct cm_posture_pass *pass = (struct cm_posture_pass *)1;
    struct cm_probe_env env = {0};
    struct cm_target t = {0};

    /* The address must be a literal; nothing is started, the callback never runs. */
    EXPECT_INT(cm_posture_start(&env, &t, "example.com", 1000, NULL, NULL, &pass), -EINVAL);
    CU_ASSERT_PTR_NULL(pass);
    EXPECT_INT(cm_posture_start(&env, &t, NULL, 1000, NULL, NULL, NULL), -EINVAL);
    cm_posture_free(NULL);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"SSL 3.0 hello bytes", test_ssl3_hello_bytes},
        {"export hello bytes", test_export_hello_bytes},
        {"hello with SNI", test_hello_sni},
        {"hello limits", test_hello_limits},
        {"parse ServerHello", test_parse_server_hello},
        {"parse fragmented ServerHello", test_parse_fragmented},
        {"parse alert", test_parse_alert},
        {"parse garbage", test_parse_bad},
        {"names", test_names},
        {"suite classes", test_suite_classes},
        {"main handshake folded in", test_add_handshake},
        {"fold: a copy with the main handshake", test_fold},
        {"start rejects names", test_start_rejects_names},
        CU_TEST_INFO_NULL,
    };

    return cm_test_main("posture", tests, NULL, NULL);
}
