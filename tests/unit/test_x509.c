/* Unit tests for certificate extraction (src/x509.c), checked against the test PKI and
 * against values computed independently by openssl(1). */
#include "cmtest.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "certmon/error.h"
#include "certmon/x509.h"

#define DAY 86400

#define EXPECT_STR(got, want) expect_str((got), (want), #got, __LINE__)

static void expect_str(const char *got, const char *want, const char *expr, unsigned line)
{
    char msg[768];
    CU_BOOL ok = (got && want) ? strcmp(got, want) == 0 : got == want;

    snprintf(msg, sizeof(msg), "%s: want \"%s\", got \"%s\"", expr, want ? want : "(null)",
             got ? got : "(null)");
    CU_assertImplementation(ok, line, msg, __FILE__, "", CU_FALSE);
}

#define EXPECT_INT(got, want) expect_int((long long)(got), (long long)(want), #got, __LINE__)

static void expect_int(long long got, long long want, const char *expr, unsigned line)
{
    char msg[256];

    snprintf(msg, sizeof(msg), "%s: want %lld, got %lld", expr, want, got);
    CU_assertImplementation(got == want, line, msg, __FILE__, "", CU_FALSE);
}

/* Reads a whole file; NULL when it cannot. */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;

    *len = 0;
    if (!fp)
        return NULL;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            char *nb = realloc(buf, cap = (n + 4096 + 1) * 2);
            if (!nb) {
                free(buf);
                fclose(fp);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, fp);
        n += r;
        if (r == 0)
            break;
    }
    fclose(fp);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void spew(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");

    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    CU_ASSERT_EQUAL(fwrite(data, 1, len, fp), len);
    fclose(fp);
}

/* Runs a shell command and returns the first line of its output (without the newline) in
 * out. Returns 0 when the command succeeded. */
static int run_line(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int run_line(char *out, size_t outlen, const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    FILE *p;
    int st;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    out[0] = '\0';
    p = popen(cmd, "r");
    if (!p)
        return -1;
    if (!fgets(out, (int)outlen, p))
        out[0] = '\0';
    /* Drain the rest so the child never blocks on a full pipe. */
    for (char tmp[256]; fgets(tmp, sizeof(tmp), p);)
        ;
    st = pclose(p);
    out[strcspn(out, "\r\n")] = '\0';
    return st == 0 ? 0 : -1;
}

/* Loads a PKI file into a fresh chain, asserting that exactly want certificates came out. */
static void load(struct cm_chain *chain, const char *name, int want)
{
    size_t len;
    char *buf = slurp(cm_th_pki(name), &len);
    int rc;

    memset(chain, 0, sizeof(*chain));
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    rc = cm_chain_append_data(chain, buf, len);
    free(buf);
    EXPECT_INT(rc, want);
    EXPECT_INT(chain->count, want);
    CU_ASSERT_FATAL(rc == want && chain->count == (size_t)want);
}

static int64_t pki_now(void)
{
    size_t len;
    char *buf = slurp(cm_th_pki("now"), &len);
    long long v;

    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    v = strtoll(buf, NULL, 10);
    free(buf);
    CU_ASSERT_FATAL(v > 1000000000LL);
    return (int64_t)v;
}

/* openssl's SHA-256 fingerprint of a PEM file: lowercase hex without colons. */
static void openssl_sha256(const char *pem, char *out, size_t outlen)
{
    char line[256];
    const char *eq;
    size_t n = 0;

    CU_ASSERT_EQUAL_FATAL(
        run_line(line, sizeof(line), "openssl x509 -in '%s' -noout -fingerprint -sha256", pem), 0);
    eq = strchr(line, '=');
    CU_ASSERT_PTR_NOT_NULL_FATAL(eq);
    for (const char *p = eq + 1; *p && n + 1 < outlen; p++)
        if (*p != ':')
            out[n++] = (char)tolower((unsigned char)*p);
    out[n] = '\0';
    CU_ASSERT_EQUAL(strlen(out), 64);
}

/* openssl prints the serial as a signed value ("serial=C8", "serial=-2907C0E9FCC0A532"). The
 * certificate stores it as a DER INTEGER: minimal two's complement, so a positive value with
 * its top bit set gets a 00 byte in front and a negative one is complemented. certmon reports
 * the INTEGER content octets, as certtool does; compute them from openssl's value. */
static void openssl_serial_der(const char *pem, char *out, size_t outlen)
{
    char line[256], digits[130];
    unsigned char mag[64], v[65];
    const char *p;
    size_t nd, nb, off = 0;
    bool neg;

    CU_ASSERT_EQUAL_FATAL(run_line(line, sizeof(line), "openssl x509 -in '%s' -noout -serial", pem),
                          0);
    CU_ASSERT_FATAL(strncmp(line, "serial=", 7) == 0);
    p = line + 7;
    neg = *p == '-';
    if (neg)
        p++;
    nd = strlen(p);
    CU_ASSERT_FATAL(nd > 0 && nd < sizeof(digits) - 1);
    /* Left-pad to whole bytes. */
    snprintf(digits, sizeof(digits), "%s%s", nd % 2 ? "0" : "", p);
    nb = strlen(digits) / 2;
    for (size_t i = 0; i < nb; i++) {
        unsigned b;
        CU_ASSERT_FATAL(sscanf(digits + 2 * i, "%2x", &b) == 1);
        mag[i] = (unsigned char)b;
    }
    if (!neg) {
        if (mag[0] & 0x80)
            v[off++] = 0;
        memcpy(v + off, mag, nb);
    } else {
        /* 2^(8 nb) - mag, then an ff byte when the result does not read as negative. */
        unsigned borrow = 0;
        unsigned char t[64];
        for (size_t i = nb; i-- > 0;) {
            int d = 0 - mag[i] - (int)borrow;
            borrow = d < 0;
            t[i] = (unsigned char)(d + (borrow ? 256 : 0));
        }
        if (!(t[0] & 0x80))
            v[off++] = 0xff;
        memcpy(v + off, t, nb);
    }
    nb += off;
    CU_ASSERT_FATAL(nb * 2 + 1 <= outlen);
    for (size_t i = 0; i < nb; i++)
        snprintf(out + 2 * i, 3, "%02x", v[i]);
}

/* openssl's notBefore/notAfter as Unix seconds. */
static int64_t openssl_date(const char *pem, const char *which)
{
    char line[256];
    struct tm tm;
    const char *eq, *end;

    CU_ASSERT_EQUAL_FATAL(
        run_line(line, sizeof(line), "openssl x509 -in '%s' -noout -%s", pem, which), 0);
    eq = strchr(line, '=');
    CU_ASSERT_PTR_NOT_NULL_FATAL(eq);
    memset(&tm, 0, sizeof(tm));
    end = strptime(eq + 1, "%b %d %H:%M:%S %Y GMT", &tm);
    CU_ASSERT_FATAL(end != NULL && *end == '\0');
    return (int64_t)timegm(&tm);
}

static void expect_sans(const struct cm_cert *c, const char *const *want, size_t n, unsigned line)
{
    expect_int((long long)c->san_count, (long long)n, "san_count", line);
    for (size_t i = 0; i < n && i < c->san_count; i++)
        expect_str(c->sans[i], want[i], "sans[i]", line);
}

static void test_valid_chain(void)
{
    struct cm_chain ch;
    static const char *const sans[] = {"localhost", "127.0.0.1", "::1"};

    load(&ch, "valid.chain.pem", 2);
    const struct cm_cert *leaf = &ch.certs[0], *inter = &ch.certs[1];

    EXPECT_STR(leaf->subject, "CN=localhost");
    EXPECT_STR(leaf->issuer, "CN=certmon Test Intermediate CA");
    EXPECT_STR(inter->subject, "CN=certmon Test Intermediate CA");
    EXPECT_STR(inter->issuer, "CN=certmon Test Root CA");
    EXPECT_STR(inter->subject, leaf->issuer);
    EXPECT_STR(leaf->key_type, "RSA");
    EXPECT_INT(leaf->key_bits, 2048);
    EXPECT_STR(leaf->signature, "RSA-SHA256");
    EXPECT_STR(inter->key_type, "RSA");
    EXPECT_INT(inter->key_bits, 2048);
    EXPECT_STR(inter->signature, "RSA-SHA256");
    expect_sans(leaf, sans, 3, __LINE__);
    expect_sans(inter, NULL, 0, __LINE__);
    CU_ASSERT_PTR_NULL(inter->sans);
    CU_ASSERT_FALSE(leaf->is_ca);
    CU_ASSERT_TRUE(inter->is_ca);
    CU_ASSERT_FALSE(leaf->self_signed);
    CU_ASSERT_FALSE(inter->self_signed);
    EXPECT_INT(strlen(leaf->sha256), 64);
    EXPECT_INT(strspn(leaf->sha256, "0123456789abcdef"), 64);
    CU_ASSERT_STRING_NOT_EQUAL(leaf->sha256, inter->sha256);
    EXPECT_INT(strspn(leaf->serial, "0123456789abcdef"), strlen(leaf->serial));
    CU_ASSERT(strlen(leaf->serial) > 0 && strlen(leaf->serial) % 2 == 0);
    cm_chain_clear(&ch);
    CU_ASSERT_PTR_NULL(ch.certs);
    EXPECT_INT(ch.count, 0);
}

static void test_other_leaves(void)
{
    struct cm_chain ch;
    static const char *const two[] = {"localhost", "127.0.0.1"};
    static const char *const wrong[] = {"wrong.example"};

    load(&ch, "wrongname.pem", 1);
    EXPECT_STR(ch.certs[0].subject, "CN=wrong.example");
    expect_sans(&ch.certs[0], wrong, 1, __LINE__);
    cm_chain_clear(&ch);

    load(&ch, "expired.chain.pem", 2);
    expect_sans(&ch.certs[0], two, 2, __LINE__);
    EXPECT_STR(ch.certs[1].subject, "CN=certmon Test Intermediate CA");
    cm_chain_clear(&ch);
}

static void test_self_signed(void)
{
    struct cm_chain ch;

    load(&ch, "self.pem", 1);
    EXPECT_STR(ch.certs[0].subject, "CN=localhost");
    EXPECT_STR(ch.certs[0].issuer, "CN=localhost");
    CU_ASSERT_TRUE(ch.certs[0].self_signed);
    CU_ASSERT_FALSE(ch.certs[0].is_ca);
    cm_chain_clear(&ch);

    load(&ch, "root.pem", 1);
    EXPECT_STR(ch.certs[0].subject, "CN=certmon Test Root CA");
    EXPECT_STR(ch.certs[0].issuer, "CN=certmon Test Root CA");
    CU_ASSERT_TRUE(ch.certs[0].self_signed);
    CU_ASSERT_TRUE(ch.certs[0].is_ca);
    cm_chain_clear(&ch);

    load(&ch, "inter.pem", 1);
    CU_ASSERT_FALSE(ch.certs[0].self_signed);
    CU_ASSERT_TRUE(ch.certs[0].is_ca);
    cm_chain_clear(&ch);
}

static const char *const all_pems[] = {"root.pem",       "inter.pem",     "valid.pem",
                                       "expired.pem",    "notyet.pem",    "expiring5.pem",
                                       "expiring20.pem", "wrongname.pem", "self.pem"};
#define N_PEMS (sizeof(all_pems) / sizeof(all_pems[0]))

static void test_sha256_matches_openssl(void)
{
    for (size_t i = 0; i < N_PEMS; i++) {
        struct cm_chain ch;
        char want[80];

        load(&ch, all_pems[i], 1);
        openssl_sha256(cm_th_pki(all_pems[i]), want, sizeof(want));
        expect_str(ch.certs[0].sha256, want, all_pems[i], __LINE__);
        cm_chain_clear(&ch);
    }
}

static void test_serial_matches_openssl(void)
{
    for (size_t i = 0; i < N_PEMS; i++) {
        struct cm_chain ch;
        char want[140];

        load(&ch, all_pems[i], 1);
        openssl_serial_der(cm_th_pki(all_pems[i]), want, sizeof(want));
        expect_str(ch.certs[0].serial, want, all_pems[i], __LINE__);
        cm_chain_clear(&ch);
    }
}

/* Makes a self-signed certificate with the given serial (certtool syntax) and returns the
 * serial certmon reads from it. */
static void serial_of(const char *serial, const char *want, unsigned line)
{
    char tmpl[512], pem[512], out[64];
    char tmpl_text[256];
    struct cm_chain ch = {0};
    size_t len;
    char *buf;

    snprintf(tmpl, sizeof(tmpl), "%s/serial-%s.tmpl", cm_th_pki_dir(), serial);
    snprintf(pem, sizeof(pem), "%s/serial-%s.pem", cm_th_pki_dir(), serial);
    snprintf(tmpl_text, sizeof(tmpl_text),
             "cn = \"serial test\"\nserial = %s\n"
             "expiration_days = 2\n",
             serial);
    spew(tmpl, tmpl_text, strlen(tmpl_text));
    CU_ASSERT_EQUAL_FATAL(run_line(out, sizeof(out),
                                   "certtool --generate-self-signed --load-privkey '%s' "
                                   "--template '%s' --outfile '%s' >/dev/null 2>&1",
                                   cm_th_pki("self.key"), tmpl, pem),
                          0);
    buf = slurp(pem, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    expect_int(cm_chain_append_data(&ch, buf, len), 1, "append", line);
    free(buf);
    if (ch.count == 1)
        expect_str(ch.certs[0].serial, want, serial, line);
    cm_chain_clear(&ch);
}

static void test_serial_forms(void)
{
    /* Lowercase hex of the DER INTEGER content: a positive serial whose top bit is set keeps
     * its 00 sign byte, as certtool -i prints it. */
    serial_of("127", "7f", __LINE__);
    serial_of("200", "00c8", __LINE__);
    serial_of("0x0102030405060708090a", "0102030405060708090a", __LINE__);
    /* certtool takes hex serials as raw content octets: 0xABCDEF is the (negative) INTEGER
     * ab cd ef, and it is reported byte for byte. */
    serial_of("0xABCDEF", "abcdef", __LINE__);
    serial_of("0x7fffffffffffffff", "7fffffffffffffff", __LINE__);
}

static void test_dates(void)
{
    static const struct {
        const char *file;
        int64_t from, to; /* offsets from now, as mkpki.sh sets them */
    } cases[] = {
        {"root.pem", -10 * DAY, 3650LL * DAY},  {"inter.pem", -10 * DAY, 1825LL * DAY},
        {"valid.pem", -1 * DAY, 90 * DAY},      {"expired.pem", -60 * DAY, -2 * DAY},
        {"notyet.pem", 10 * DAY, 100 * DAY},    {"expiring5.pem", -1 * DAY, 5 * DAY},
        {"expiring20.pem", -1 * DAY, 20 * DAY}, {"wrongname.pem", -1 * DAY, 90 * DAY},
        {"self.pem", -1 * DAY, 90 * DAY},
    };
    int64_t now = pki_now();

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cm_chain ch;
        const char *path = cm_th_pki(cases[i].file);

        load(&ch, cases[i].file, 1);
        expect_int(ch.certs[0].not_before, now + cases[i].from, cases[i].file, __LINE__);
        expect_int(ch.certs[0].not_after, now + cases[i].to, cases[i].file, __LINE__);
        expect_int(ch.certs[0].not_before, openssl_date(path, "startdate"), cases[i].file,
                   __LINE__);
        expect_int(ch.certs[0].not_after, openssl_date(path, "enddate"), cases[i].file, __LINE__);
        cm_chain_clear(&ch);
    }
}

static void expect_same_cert(const struct cm_cert *a, const struct cm_cert *b, unsigned line)
{
    expect_str(a->subject, b->subject, "subject", line);
    expect_str(a->issuer, b->issuer, "issuer", line);
    expect_str(a->serial, b->serial, "serial", line);
    expect_str(a->signature, b->signature, "signature", line);
    expect_str(a->sha256, b->sha256, "sha256", line);
    expect_str(a->key_type, b->key_type, "key_type", line);
    expect_int(a->key_bits, b->key_bits, "key_bits", line);
    expect_int(a->not_before, b->not_before, "not_before", line);
    expect_int(a->not_after, b->not_after, "not_after", line);
    expect_int(a->is_ca, b->is_ca, "is_ca", line);
    expect_int(a->self_signed, b->self_signed, "self_signed", line);
    expect_int((long long)a->san_count, (long long)b->san_count, "san_count", line);
    for (size_t i = 0; i < a->san_count && i < b->san_count; i++)
        expect_str(a->sans[i], b->sans[i], "sans[i]", line);
}

static void test_der_input(void)
{
    static const char *const files[] = {"valid.pem", "root.pem", "self.pem"};

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char der_path[600], out[64], sha[80];
        struct cm_chain pem, der = {0};
        struct cm_cert one;
        size_t len;
        char *buf;

        snprintf(der_path, sizeof(der_path), "%s/%s.der", cm_th_pki_dir(), files[i]);
        CU_ASSERT_EQUAL_FATAL(run_line(out, sizeof(out),
                                       "openssl x509 -in '%s' -outform DER -out '%s'",
                                       cm_th_pki(files[i]), der_path),
                              0);
        load(&pem, files[i], 1);
        buf = slurp(der_path, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        CU_ASSERT(len > 100 && (unsigned char)buf[0] == 0x30);
        EXPECT_INT(cm_chain_append_data(&der, buf, len), 1);
        EXPECT_INT(der.count, 1);
        if (der.count == 1)
            expect_same_cert(&der.certs[0], &pem.certs[0], __LINE__);
        openssl_sha256(cm_th_pki(files[i]), sha, sizeof(sha));
        if (der.count == 1)
            EXPECT_STR(der.certs[0].sha256, sha);

        EXPECT_INT(cm_cert_from_der(buf, len, &one), 0);
        expect_same_cert(&one, &pem.certs[0], __LINE__);
        cm_cert_clear(&one);
        CU_ASSERT_PTR_NULL(one.subject);
        CU_ASSERT_PTR_NULL(one.sans);
        EXPECT_INT(one.san_count, 0);

        /* Truncated DER is not a certificate. */
        EXPECT_INT(cm_cert_from_der(buf, len - 1, &one), CM_EBADCERT);
        CU_ASSERT_PTR_NULL(one.subject);
        CU_ASSERT_PTR_NULL(one.sha256);
        EXPECT_INT(cm_chain_append_data(&der, buf, len / 2), CM_EBADCERT);
        EXPECT_INT(der.count, 1);
        free(buf);
        cm_chain_clear(&pem);
        cm_chain_clear(&der);
    }
}

static void test_append_accumulates(void)
{
    struct cm_chain ch = {0};
    size_t len;
    char *leaf = slurp(cm_th_pki("expiring20.pem"), &len);
    char *chain;
    size_t clen;

    CU_ASSERT_PTR_NOT_NULL_FATAL(leaf);
    chain = slurp(cm_th_pki("valid.chain.pem"), &clen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(chain);
    EXPECT_INT(cm_chain_append_data(&ch, leaf, len), 1);
    EXPECT_INT(cm_chain_append_data(&ch, chain, clen), 2);
    EXPECT_INT(ch.count, 3);
    if (ch.count == 3) {
        EXPECT_STR(ch.certs[0].subject, "CN=localhost");
        EXPECT_STR(ch.certs[1].subject, "CN=localhost");
        EXPECT_STR(ch.certs[2].subject, "CN=certmon Test Intermediate CA");
        CU_ASSERT_STRING_NOT_EQUAL(ch.certs[0].sha256, ch.certs[1].sha256);
    }
    /* A failed append leaves what was there. */
    EXPECT_INT(cm_chain_append_data(&ch, "", 0), CM_ENOCERT);
    EXPECT_INT(cm_chain_append_data(&ch, "junk", 4), CM_EBADCERT);
    EXPECT_INT(ch.count, 3);
    cm_chain_clear(&ch);
    cm_chain_clear(&ch); /* twice is harmless */
    cm_chain_clear(NULL);
    free(leaf);
    free(chain);
}

static void test_pem_variants(void)
{
    struct cm_chain ch = {0}, ref;
    size_t len, klen;
    char *pem = slurp(cm_th_pki("valid.pem"), &len);
    char *key = slurp(cm_th_pki("leaf.key"), &klen);
    char *buf;
    size_t n = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(pem);
    CU_ASSERT_PTR_NOT_NULL_FATAL(key);
    load(&ref, "valid.pem", 1);

    /* Text before the block (as openssl -text or PKCS#12 exports leave it). */
    buf = malloc(len * 2 + klen + 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    n = (size_t)sprintf(buf, "subject=CN = localhost\nissuer=whatever\n");
    memcpy(buf + n, pem, len);
    n += len;
    EXPECT_INT(cm_chain_append_data(&ch, buf, n), 1);
    if (ch.count == 1)
        EXPECT_STR(ch.certs[0].sha256, ref.certs[0].sha256);
    cm_chain_clear(&ch);

    /* CRLF line ends. */
    n = 0;
    for (size_t i = 0; i < len; i++) {
        if (pem[i] == '\n')
            buf[n++] = '\r';
        buf[n++] = pem[i];
    }
    EXPECT_INT(cm_chain_append_data(&ch, buf, n), 1);
    if (ch.count == 1)
        EXPECT_STR(ch.certs[0].sha256, ref.certs[0].sha256);
    cm_chain_clear(&ch);

    /* A key in front of the certificate is skipped. */
    memcpy(buf, key, klen);
    memcpy(buf + klen, pem, len);
    EXPECT_INT(cm_chain_append_data(&ch, buf, klen + len), 1);
    if (ch.count == 1)
        EXPECT_STR(ch.certs[0].sha256, ref.certs[0].sha256);
    cm_chain_clear(&ch);

    /* No terminating NUL is needed: the length is what counts. */
    memcpy(buf, pem, len);
    memset(buf + len, 'A', 16);
    EXPECT_INT(cm_chain_append_data(&ch, buf, len), 1);
    cm_chain_clear(&ch);

    /* A key alone holds no certificate. */
    EXPECT_INT(cm_chain_append_data(&ch, key, klen), CM_ENOCERT);
    EXPECT_INT(ch.count, 0);
    CU_ASSERT_PTR_NULL(ch.certs);

    free(buf);
    free(pem);
    free(key);
    cm_chain_clear(&ref);
}

static void test_bad_input(void)
{
    struct cm_chain ch = {0};
    static const char garbage_pem[] =
        "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n";
    static const char text[] = "this is not a certificate at all\n";
    struct cm_cert c;
    int rc;

    EXPECT_INT(cm_chain_append_data(&ch, "", 0), CM_ENOCERT);
    EXPECT_INT(cm_chain_append_data(&ch, text, strlen(text)), CM_EBADCERT);
    rc = cm_chain_append_data(&ch, garbage_pem, strlen(garbage_pem));
    CU_ASSERT(rc < 0);
    EXPECT_INT(rc, CM_EBADCERT);
    EXPECT_INT(ch.count, 0);
    CU_ASSERT_PTR_NULL(ch.certs);

    memset(&c, 0x5a, sizeof(c));
    EXPECT_INT(cm_cert_from_der(text, strlen(text), &c), CM_EBADCERT);
    CU_ASSERT_PTR_NULL(c.subject);
    CU_ASSERT_PTR_NULL(c.sans);
    EXPECT_INT(c.san_count, 0);
    cm_cert_clear(&c);
    cm_cert_clear(NULL);

    EXPECT_STR(cm_strerror(CM_ENOCERT), "no certificate found");
    EXPECT_STR(cm_err_name(CM_EBADCERT), "EBADCERT");
}

static void test_days_left(void)
{
    const time_t now = 1800000000;
    struct cm_cert c;
    static const struct {
        int64_t offset;
        int64_t days;
    } cases[] = {
        {86400 * 5, 5},
        {86400 * 5 - 1, 4},
        {86400 * 5 + 1, 5},
        {86400, 1},
        {86399, 0},
        {1, 0},
        {0, 0},
        {-1, -1},
        {-86399, -1},
        {-86400, -1},
        {-86401, -2},
        {-172800, -2},
        {-172801, -3},
        {86400LL * 3650, 3650},
    };

    memset(&c, 0, sizeof(c));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char what[64];
        c.not_after = (int64_t)now + cases[i].offset;
        snprintf(what, sizeof(what), "days_left(now%+lld)", (long long)cases[i].offset);
        expect_int(cm_cert_days_left(&c, now), cases[i].days, what, __LINE__);
    }
}

static void test_days_left_pki(void)
{
    static const struct {
        const char *file;
        int64_t days;
    } cases[] = {
        {"valid.pem", 90},   {"expiring5.pem", 5}, {"expiring20.pem", 20},
        {"expired.pem", -2}, {"notyet.pem", 100},  {"root.pem", 3650},
    };
    int64_t now = pki_now();

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cm_chain ch;
        load(&ch, cases[i].file, 1);
        expect_int(cm_cert_days_left(&ch.certs[0], (time_t)now), cases[i].days, cases[i].file,
                   __LINE__);
        /* One second later a whole day is gone. */
        expect_int(cm_cert_days_left(&ch.certs[0], (time_t)now + 1), cases[i].days - 1,
                   cases[i].file, __LINE__);
        cm_chain_clear(&ch);
    }
}

static void test_rfc3339(void)
{
    char buf[32];

    cm_time_rfc3339(0, buf, sizeof(buf));
    EXPECT_STR(buf, "1970-01-01T00:00:00Z");
    cm_time_rfc3339(1798761600, buf, sizeof(buf));
    EXPECT_STR(buf, "2027-01-01T00:00:00Z");
    cm_time_rfc3339(1800000000, buf, sizeof(buf));
    EXPECT_STR(buf, "2027-01-15T08:00:00Z");
    cm_time_rfc3339(951782400, buf, sizeof(buf));
    EXPECT_STR(buf, "2000-02-29T00:00:00Z");
    cm_time_rfc3339(4102444799LL, buf, sizeof(buf));
    EXPECT_STR(buf, "2099-12-31T23:59:59Z");
    cm_time_rfc3339(-1, buf, sizeof(buf));
    EXPECT_STR(buf, "1969-12-31T23:59:59Z");
    /* The documented minimum buffer is enough. */
    char small[21];
    cm_time_rfc3339(1798761600, small, sizeof(small));
    EXPECT_STR(small, "2027-01-01T00:00:00Z");
}

static void test_earliest_expiry(void)
{
    struct cm_chain ch = {0};
    struct cm_cert certs[4];

    EXPECT_INT(cm_chain_earliest_expiry(&ch), -1);

    memset(certs, 0, sizeof(certs));
    certs[0].not_after = 2000000000;
    certs[1].not_after = 1900000000;
    certs[2].not_after = 1950000000;
    certs[3].not_after = 1900000000; /* ties: the first one wins */
    ch.certs = certs;
    ch.count = 1;
    EXPECT_INT(cm_chain_earliest_expiry(&ch), 0);
    ch.count = 3;
    EXPECT_INT(cm_chain_earliest_expiry(&ch), 1);
    ch.count = 4;
    EXPECT_INT(cm_chain_earliest_expiry(&ch), 1);
    certs[3].not_after = 1899999999;
    EXPECT_INT(cm_chain_earliest_expiry(&ch), 3);
    certs[0].not_after = -5;
    EXPECT_INT(cm_chain_earliest_expiry(&ch), 0);

    /* From files: expiring20 leaf, then the valid chain, then expiring5 leaf. */
    {
        struct cm_chain real = {0};
        static const char *const files[] = {"expiring20.pem", "valid.chain.pem", "expiring5.pem"};
        for (size_t i = 0; i < 3; i++) {
            size_t len;
            char *buf = slurp(cm_th_pki(files[i]), &len);
            CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
            CU_ASSERT(cm_chain_append_data(&real, buf, len) > 0);
            free(buf);
        }
        EXPECT_INT(real.count, 4);
        EXPECT_INT(cm_chain_earliest_expiry(&real), 3);
        cm_chain_clear(&real);
        load(&real, "valid.chain.pem", 2);
        EXPECT_INT(cm_chain_earliest_expiry(&real), 0);
        cm_chain_clear(&real);
    }
}

static CU_TestInfo tests[] = {
    {"valid chain fields", test_valid_chain},
    {"other leaves", test_other_leaves},
    {"self-signed and CA flags", test_self_signed},
    {"sha256 matches openssl", test_sha256_matches_openssl},
    {"serial matches openssl", test_serial_matches_openssl},
    {"serial forms", test_serial_forms},
    {"validity dates", test_dates},
    {"DER input", test_der_input},
    {"appending accumulates", test_append_accumulates},
    {"PEM variants", test_pem_variants},
    {"bad input", test_bad_input},
    {"days left boundaries", test_days_left},
    {"days left on the PKI", test_days_left_pki},
    {"RFC 3339", test_rfc3339},
    {"earliest expiry", test_earliest_expiry},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("x509", tests, NULL, NULL);
}
