/* Unit tests for certificate extraction (src/probe/x509.c), checked against the test PKI and
 * against values computed independently by openssl(1). */
#include "cmtest.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "certmon/base/error.h"
#include "certmon/probe/x509.h"

#define DAY 86400

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
    if (nd == 0 || nd >= sizeof(digits) - 1) {
        CU_FAIL_FATAL("openssl printed no serial, or one too long");
        return;
    }
    /* Left-pad to whole bytes. A copy, not snprintf: gcc -Os cannot see the bound above
     * through CU_ASSERT_FATAL's longjmp and warns of truncation (-Wformat-truncation). */
    digits[0] = '0';
    memcpy(digits + nd % 2, p, nd + 1);
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
        {"root.pem", -10 * DAY, 3650LL * DAY},   {"inter.pem", -10 * DAY, 1825LL * DAY},
        {"valid.pem", -1 * DAY, 90 * DAY},       {"expired.pem", -60 * DAY, -2 * DAY},
        {"notyet.pem", 10 * DAY, 100 * DAY},     {"expiring5.pem", -90 * DAY, 5 * DAY},
        {"expiring20.pem", -90 * DAY, 20 * DAY}, {"wrongname.pem", -1 * DAY, 90 * DAY},
        {"self.pem", -1 * DAY, 90 * DAY},
    };
    int64_t now = pki_now();

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cm_chain ch;
        const char *path = cm_th_pki(cases[i].file);

        load(&ch, cases[i].file, 1);
        cm_expect_int(ch.certs[0].not_before, now + cases[i].from, cases[i].file, __FILE__,
                      __LINE__);
        expect_int(ch.certs[0].not_after, now + cases[i].to, cases[i].file, __LINE__);
        expect_int(ch.certs[0].not_before, openssl_date(path, "startdate"), cases[i].file,
                   __LINE__);
        cm_expect_int(ch.certs[0].not_after, openssl_date(path, "enddate"), cases[i].file, __FILE__,
                      __LINE__);
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

/* ---- DER lists as a peer sends them, the certificate cache, deep copies ---------------- */

/* A private directory for what these tests make: DER conversions, hostile certificates. */
static char work_dir[512];

static int suite_init(void)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(work_dir, sizeof(work_dir), "%s/certmon-x509-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(work_dir) ? 0 : -1;
}

static int suite_cleanup(void)
{
    char out[64];

    return run_line(out, sizeof(out), "rm -rf '%s'", work_dir);
}

static void work_path(char *buf, size_t len, const char *name)
{
    CU_ASSERT_FATAL((size_t)snprintf(buf, len, "%s/%s", work_dir, name) < len);
}

static void expect_true(bool cond, const char *what, unsigned line)
{
    CU_assertImplementation(cond, line, what, __FILE__, "", CU_FALSE);
}

/* Converts a PEM certificate file to DER with openssl (into the work directory, as tag.der)
 * and reads it back; the caller frees out->data. openssl refuses certificates whose
 * UTF8String is not UTF-8; certtool converts those. */
static void to_der_with(bool certtool, const char *pem_path, const char *tag, struct cm_der *out)
{
    char der_path[1024], name[256], msg[256];
    size_t len;
    char *buf;
    int rc;

    snprintf(name, sizeof(name), "%s.der", tag);
    work_path(der_path, sizeof(der_path), name);
    if (certtool)
        rc = run_line(msg, sizeof(msg),
                      "certtool --certificate-info --infile '%s' --outder --outfile '%s' 2>&1",
                      pem_path, der_path);
    else
        rc = run_line(msg, sizeof(msg), "openssl x509 -in '%s' -outform DER -out '%s' 2>&1",
                      pem_path, der_path);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    buf = slurp(der_path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    CU_ASSERT_FATAL(len > 100 && (unsigned char)buf[0] == 0x30);
    out->data = (const unsigned char *)buf;
    out->len = len;
}

static void to_der(const char *pem_path, const char *tag, struct cm_der *out)
{
    to_der_with(false, pem_path, tag, out);
}

/* Certificates of the test PKI twice over: as cm_chain_append_data reads the PEM file (the
 * reference) and as DER (what a peer sends). Plus bytes that are no certificate at all. */
enum { F_VALID, F_INTER, F_WRONG, F_COUNT };

struct fixture {
    struct cm_chain ref[F_COUNT];
    const struct cm_cert *want[F_COUNT];
    struct cm_der der[F_COUNT];
    unsigned char junk_bytes[300];
    struct cm_der junk;
};

static void fixture_load(struct fixture *f)
{
    static const char *const files[F_COUNT] = {"valid.pem", "inter.pem", "wrongname.pem"};
    uint32_t x = 2463534242u;

    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < F_COUNT; i++) {
        load(&f->ref[i], files[i], 1);
        f->want[i] = &f->ref[i].certs[0];
        to_der(cm_th_pki(files[i]), files[i], &f->der[i]);
    }
    /* Random bytes from a fixed xorshift sequence, so that a failure reproduces; the first
     * one is not even a SEQUENCE tag. */
    for (size_t i = 0; i < sizeof(f->junk_bytes); i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f->junk_bytes[i] = (unsigned char)(x >> 24);
    }
    f->junk_bytes[0] = 0x04;
    f->junk.data = f->junk_bytes;
    f->junk.len = sizeof(f->junk_bytes);
}

static void fixture_free(struct fixture *f)
{
    for (size_t i = 0; i < F_COUNT; i++) {
        cm_chain_clear(&f->ref[i]);
        free((void *)f->der[i].data);
    }
    memset(f, 0, sizeof(*f));
}

static void expect_placeholder(const struct cm_cert *c, unsigned line)
{
    expect_str(c->subject, "(unparseable certificate)", "placeholder subject", line);
    /* Whatever a report prints must still be there. */
    expect_true(c->issuer && c->serial && c->signature && c->sha256 && c->key_type,
                "placeholder strings are not NULL", line);
    expect_int((long long)c->san_count, 0, "placeholder san_count", line);
}

/* Extracts list through cache (NULL: none) and checks every position against want (a NULL
 * entry: the placeholder of an unparseable certificate) and the host-name verdict. match
 * starts out as the opposite of the expected verdict, so that leaving it alone shows. */
static void expect_list(struct cm_cert_cache *cache, const struct cm_der *list, size_t n,
                        const char *name, const struct cm_cert *const *want, bool want_match,
                        unsigned line)
{
    struct cm_chain ch;
    bool match = !want_match;
    char what[128];
    int rc = cm_chain_from_der_list(cache, list, n, name, &ch, &match);

    snprintf(what, sizeof(what), "match for %s (cache %s)", name ? name : "no name",
             cache ? "on" : "off");
    expect_int(rc, 0, "cm_chain_from_der_list", line);
    expect_int((long long)ch.count, (long long)n, "count", line);
    expect_int(match, want_match, what, line);
    for (size_t i = 0; i < n && i < ch.count; i++) {
        if (want[i])
            expect_same_cert(&ch.certs[i], want[i], line);
        else
            expect_placeholder(&ch.certs[i], line);
    }
    cm_chain_clear(&ch);
}

static void expect_stats(struct cm_cert_cache *cache, size_t hits, size_t misses, unsigned line)
{
    size_t h = 99, m = 99;

    cm_cert_cache_stats(cache, &h, &m);
    expect_int((long long)h, (long long)hits, "cache hits", line);
    expect_int((long long)m, (long long)misses, "cache misses", line);
}

/* Whether a and b evict each other from a cache of that many slots: asked a, b, then a again
 * on a fresh cache, the last one misses. Found by experiment, since which slot a certificate
 * takes is the module's business; with some bad luck two certificates of a run share one. */
static bool evict_each_other(size_t slots, const struct cm_der *a, const struct cm_der *b)
{
    const struct cm_der *seq[] = {a, b, a};
    struct cm_cert_cache *cache;
    size_t hits, misses;

    CU_ASSERT_EQUAL_FATAL(cm_cert_cache_new(slots, &cache), 0);
    for (size_t i = 0; i < 3; i++) {
        struct cm_chain ch;
        bool match;
        EXPECT_INT(cm_chain_from_der_list(cache, seq[i], 1, NULL, &ch, &match), 0);
        cm_chain_clear(&ch);
    }
    cm_cert_cache_stats(cache, &hits, &misses);
    cm_cert_cache_free(cache);
    return hits == 0;
}

static void test_der_list_fields(void)
{
    struct fixture f;
    struct cm_cert_cache *cache;

    fixture_load(&f);
    const struct cm_der list[] = {f.der[F_VALID], f.der[F_INTER]};

    /* Without a cache, and through one: field by field what the PEM path gives. */
    expect_list(NULL, list, 2, "localhost", f.want, true, __LINE__);
    expect_list(NULL, list, 2, "localhost", f.want, true, __LINE__);
    expect_stats(NULL, 0, 0, __LINE__);
    CU_ASSERT_EQUAL_FATAL(cm_cert_cache_new(16, &cache), 0);
    expect_list(cache, list, 2, "localhost", f.want, true, __LINE__);
    expect_stats(cache, 0, 2, __LINE__);
    cm_cert_cache_free(cache);

    /* Single certificates, each through its own cache. */
    for (size_t i = 0; i < F_COUNT; i++) {
        CU_ASSERT_EQUAL_FATAL(cm_cert_cache_new(16, &cache), 0);
        expect_list(NULL, &f.der[i], 1, NULL, &f.want[i], false, __LINE__);
        expect_list(cache, &f.der[i], 1, NULL, &f.want[i], false, __LINE__);
        expect_list(cache, &f.der[i], 1, NULL, &f.want[i], false, __LINE__);
        expect_stats(cache, 1, 1, __LINE__);
        cm_cert_cache_free(cache);
    }
    fixture_free(&f);
}

static void test_der_list_cache_hits(void)
{
    struct fixture f;
    struct cm_cert_cache *cache;
    struct cm_chain ch;
    bool match, evict;

    fixture_load(&f);
    const struct cm_der list[] = {f.der[F_VALID], f.der[F_INTER]};

    CU_ASSERT_EQUAL_FATAL(cm_cert_cache_new(16, &cache), 0);
    expect_stats(cache, 0, 0, __LINE__);
    expect_list(cache, list, 2, "localhost", f.want, true, __LINE__);
    expect_stats(cache, 0, 2, __LINE__);

    /* The same list again is served from the cache: n more hits, no more misses. Unless the
     * two certificates of this run landed in one slot (1 in 16 runs): then each evicts the
     * other and both miss every time, with the same results. */
    evict = evict_each_other(16, &list[0], &list[1]);
    expect_list(cache, list, 2, "localhost", f.want, true, __LINE__);
    if (!evict)
        expect_stats(cache, 2, 2, __LINE__);
    else
        expect_stats(cache, 0, 4, __LINE__);

    /* What the cache hands out is a copy: scribbling over it and freeing it leaves the cached
     * certificate intact. */
    EXPECT_INT(cm_chain_from_der_list(cache, list, 2, "localhost", &ch, &match), 0);
    CU_ASSERT_TRUE(match);
    CU_ASSERT_FATAL(ch.count == 2 && ch.certs[0].san_count > 0);
    for (size_t i = 0; i < ch.count; i++) {
        struct cm_cert *c = &ch.certs[i];
        memset(c->subject, '#', strlen(c->subject));
        memset(c->sha256, '#', strlen(c->sha256));
        for (size_t k = 0; k < c->san_count; k++)
            memset(c->sans[k], '#', strlen(c->sans[k]));
    }
    cm_chain_clear(&ch);
    expect_list(cache, list, 2, "localhost", f.want, true, __LINE__);
    if (!evict)
        expect_stats(cache, 6, 2, __LINE__);
    else
        expect_stats(cache, 0, 8, __LINE__);

    /* One certificate asked twice in a row cannot be evicted in between (and without a name
     * to check, the verdict kept for "localhost" is no obstacle). */
    expect_list(cache, &list[0], 1, NULL, &f.want[F_VALID], false, __LINE__);
    expect_list(cache, &list[0], 1, NULL, &f.want[F_VALID], false, __LINE__);
    if (!evict)
        expect_stats(cache, 8, 2, __LINE__);
    else
        expect_stats(cache, 1, 9, __LINE__);
    cm_cert_cache_free(cache);
    cm_cert_cache_free(NULL);
    fixture_free(&f);
}

/* evict_each_other() must be able to answer no, or the tests above that trust it would prove
 * little: some pair of the PKI's nine certificates takes different slots of 16 (all nine in
 * one slot: odds of 16^-8). */
static void test_cache_slots_differ(void)
{
    struct cm_der der[N_PEMS];
    bool some_apart = false;

    for (size_t i = 0; i < N_PEMS; i++)
        to_der(cm_th_pki(all_pems[i]), all_pems[i], &der[i]);
    for (size_t i = 1; i < N_PEMS && !some_apart; i++)
        some_apart = !evict_each_other(16, &der[0], &der[i]);
    CU_ASSERT_TRUE(some_apart);
    /* A single slot holds one certificate: any two evict each other. */
    CU_ASSERT_TRUE(evict_each_other(1, &der[0], &der[1]));
    for (size_t i = 0; i < N_PEMS; i++)
        free((void *)der[i].data);
}

static void test_der_list_names(void)
{
    static const struct {
        const char *name;
        bool match;
    } names[] = {
        {"localhost", true},
        {"127.0.0.1", true},
        {"::1", true},
        {"other.example", false},
        {"localhost", true},
        {"other.example", false},
        {"other.example", false},
        {"localhost", true},
        {"localhost", true},
        {"127.0.0.2", false},
        {"::2", false},
        {"::1", true},
        {"127.0.0.1", true},
        {NULL, false},
        {"localhost", true},
        {NULL, false},
        {NULL, false},
        {"other.example", false},
    };
    struct cm_cert_cache *caches[3] = {NULL, NULL, NULL};
    struct fixture f;

    fixture_load(&f);
    const struct cm_der list[] = {f.der[F_VALID], f.der[F_INTER]};

    CU_ASSERT_EQUAL_FATAL(cm_cert_cache_new(16, &caches[1]), 0);
    CU_ASSERT_EQUAL_FATAL(cm_cert_cache_new(1, &caches[2]), 0);
    for (size_t c = 0; c < 3; c++) {
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            expect_list(caches[c], list, 2, names[i].name, f.want, names[i].match, __LINE__);
        /* The verdict belongs to the certificate: another leaf, the same name. */
        expect_list(caches[c], &f.der[F_WRONG], 1, "localhost", &f.want[F_WRONG], false, __LINE__);
        expect_list(caches[c], &f.der[F_WRONG], 1, "wrong.example", &f.want[F_WRONG], true,
                    __LINE__);
        expect_list(caches[c], list, 2, "wrong.example", f.want, false, __LINE__);
        expect_list(caches[c], list, 2, "localhost", f.want, true, __LINE__);
    }
    /* Only the leaf is held to the name: the intermediate first is a leaf of its own. */
    {
        const struct cm_der rev[] = {f.der[F_INTER], f.der[F_VALID]};
        const struct cm_cert *want[] = {f.want[F_INTER], f.want[F_VALID]};
        expect_list(caches[1], rev, 2, "localhost", want, false, __LINE__);
    }
    cm_cert_cache_free(caches[1]);
    cm_cert_cache_free(caches[2]);
    fixture_free(&f);
}

static void test_der_list_unparseable(void)
{
    struct cm_cert_cache *caches[2] = {NULL, NULL};
    struct fixture f;

    fixture_load(&f);
    const struct cm_der list[] = {f.der[F_VALID], f.junk, f.der[F_INTER]};
    const struct cm_cert *want[] = {f.want[F_VALID], NULL, f.want[F_INTER]};
    const struct cm_der junk_leaf[] = {f.junk, f.der[F_INTER]};
    const struct cm_cert *junk_leaf_want[] = {NULL, f.want[F_INTER]};
    /* A certificate cut short is as good as junk. */
    const struct cm_der cut[] = {
        f.der[F_VALID], {f.der[F_INTER].data, f.der[F_INTER].len / 2}, f.der[F_INTER]};

    CU_ASSERT_EQUAL_FATAL(cm_cert_cache_new(16, &caches[1]), 0);
    for (size_t c = 0; c < 2; c++) {
        struct cm_chain ch;
        bool match = true;

        /* Twice: through the cache the second time comes from it. */
        for (int round = 0; round < 2; round++) {
            expect_list(caches[c], list, 3, "localhost", want, true, __LINE__);
            expect_list(caches[c], junk_leaf, 2, "localhost", junk_leaf_want, false, __LINE__);
            expect_list(caches[c], cut, 3, "localhost", want, true, __LINE__);
            expect_list(caches[c], &f.junk, 1, NULL, junk_leaf_want, false, __LINE__);
        }

        /* No certificates at all. */
        memset(&ch, 0x5a, sizeof(ch));
        EXPECT_INT(cm_chain_from_der_list(caches[c], list, 0, "localhost", &ch, &match), 0);
        EXPECT_INT(ch.count, 0);
        CU_ASSERT_PTR_NULL(ch.certs);
        CU_ASSERT_FALSE(match);
        cm_chain_clear(&ch);
    }
    cm_cert_cache_free(caches[1]);
    fixture_free(&f);
}

static void test_der_list_one_slot(void)
{
    struct cm_cert_cache *cache;
    struct fixture f;

    fixture_load(&f);
    const struct cm_der list[] = {f.der[F_VALID], f.der[F_INTER]};

    /* One slot: two certificates asked in turn replace each other every time. */
    CU_ASSERT_EQUAL_FATAL(cm_cert_cache_new(1, &cache), 0);
    for (int round = 0; round < 3; round++) {
        expect_list(cache, &f.der[F_VALID], 1, "localhost", &f.want[F_VALID], true, __LINE__);
        expect_list(cache, &f.der[F_WRONG], 1, "localhost", &f.want[F_WRONG], false, __LINE__);
    }
    expect_stats(cache, 0, 6, __LINE__);
    /* Another name is another question; the same one again is a hit. */
    expect_list(cache, &f.der[F_WRONG], 1, "wrong.example", &f.want[F_WRONG], true, __LINE__);
    expect_stats(cache, 0, 7, __LINE__);
    expect_list(cache, &f.der[F_WRONG], 1, "wrong.example", &f.want[F_WRONG], true, __LINE__);
    expect_stats(cache, 1, 7, __LINE__);
    /* Within one chain too: the intermediate evicts the leaf and the other way round. */
    for (int round = 0; round < 2; round++)
        expect_list(cache, list, 2, "localhost", f.want, true, __LINE__);
    expect_stats(cache, 1, 11, __LINE__);
    cm_cert_cache_free(cache);
    fixture_free(&f);
}

static void scribble(struct cm_cert *c)
{
    char *fields[] = {c->subject, c->issuer, c->serial, c->signature, c->sha256};

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        memset(fields[i], '#', strlen(fields[i]));
    for (size_t i = 0; i < c->san_count; i++)
        memset(c->sans[i], '#', strlen(c->sans[i]));
    c->not_after = 0;
}

static void test_cert_copy(void)
{
    struct fixture f;
    struct cm_chain ch;
    struct cm_cert copy[3];
    bool match;

    fixture_load(&f);
    const struct cm_der list[] = {f.der[F_VALID], f.junk, f.der[F_INTER]};

    EXPECT_INT(cm_chain_from_der_list(NULL, list, 3, NULL, &ch, &match), 0);
    CU_ASSERT_FATAL(ch.count == 3);
    for (size_t i = 0; i < 3; i++)
        EXPECT_INT(cm_cert_copy(&copy[i], &ch.certs[i]), 0);
    /* Nothing shared. */
    CU_ASSERT_PTR_NOT_EQUAL(copy[0].subject, ch.certs[0].subject);
    CU_ASSERT_PTR_NOT_EQUAL(copy[0].sha256, ch.certs[0].sha256);
    CU_ASSERT_PTR_NOT_EQUAL(copy[0].sans, ch.certs[0].sans);
    CU_ASSERT_FATAL(copy[0].san_count == 3 && ch.certs[0].san_count == 3);
    for (size_t k = 0; k < 3; k++)
        CU_ASSERT_PTR_NOT_EQUAL(copy[0].sans[k], ch.certs[0].sans[k]);
    /* Spoil the originals, then free them: the copies stand. */
    for (size_t i = 0; i < 3; i++)
        scribble(&ch.certs[i]);
    cm_chain_clear(&ch);
    expect_same_cert(&copy[0], f.want[F_VALID], __LINE__);
    expect_placeholder(&copy[1], __LINE__);
    expect_same_cert(&copy[2], f.want[F_INTER], __LINE__);
    CU_ASSERT_PTR_NULL(copy[2].sans);
    /* A copy of a copy. */
    {
        struct cm_cert again;
        EXPECT_INT(cm_cert_copy(&again, &copy[0]), 0);
        cm_cert_clear(&copy[0]);
        expect_same_cert(&again, f.want[F_VALID], __LINE__);
        cm_cert_clear(&again);
    }
    for (size_t i = 0; i < 3; i++)
        cm_cert_clear(&copy[i]);
    fixture_free(&f);
}

/* ---- Hostile certificate text ---------------------------------------------------------- */

/* Strict UTF-8 as RFC 3629 has it: shortest forms only, no surrogates, nothing above
 * U+10FFFF. Returns the offset of the first bad byte, or -1 when s is all valid. */
static long utf8_error(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, n = strlen(str);

    while (i < n) {
        unsigned c = s[i], len;
        uint32_t cp, min;

        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return (long)i;
        }
        if (i + len > n)
            return (long)i;
        for (unsigned k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return (long)i;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return (long)i;
        i += len;
    }
    return -1;
}

/* Text from a certificate must be safe to print on a terminal and to encode as JSON: no C0
 * or C1 control character, no DEL, nothing but valid UTF-8. */
static void expect_safe_text(const char *s, const char *what, unsigned line)
{
    char msg[512];
    long bad = -1;
    json_t *j;

    snprintf(msg, sizeof(msg), "%s is not NULL", what);
    expect_true(s != NULL, msg, line);
    if (!s)
        return;
    for (size_t i = 0; s[i] && bad < 0; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F ||
            (c == 0xC2 && (unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] < 0xA0))
            bad = (long)i;
    }
    snprintf(msg, sizeof(msg), "%s has a control character at offset %ld", what, bad);
    expect_true(bad < 0, msg, line);
    bad = utf8_error(s);
    snprintf(msg, sizeof(msg), "%s is not valid UTF-8 at offset %ld", what, bad);
    expect_true(bad < 0, msg, line);
    j = json_string(s);
    snprintf(msg, sizeof(msg), "json_string(%s) is not NULL", what);
    expect_true(j != NULL, msg, line);
    json_decref(j);
}

static void expect_safe_cert(const struct cm_cert *c, unsigned line)
{
    expect_safe_text(c->subject, "subject", line);
    expect_safe_text(c->issuer, "issuer", line);
    for (size_t i = 0; i < c->san_count; i++)
        expect_safe_text(c->sans[i], "sans[i]", line);
}

static void load_file(struct cm_chain *chain, const char *path)
{
    size_t len;
    char *buf = slurp(path, &len);

    memset(chain, 0, sizeof(*chain));
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    EXPECT_INT(cm_chain_append_data(chain, buf, len), 1);
    free(buf);
    CU_ASSERT_FATAL(chain->count == 1);
}

/* The same certificate as a peer would send it, through a cache and twice (parsed, then
 * from the cache): the same text as from the file, and a verdict for name. */
static void expect_der_path(bool certtool, const char *pem_path, const char *tag,
                            const struct cm_cert *want, const char *name, bool want_match,
                            unsigned line)
{
    struct cm_cert_cache *cache;
    struct cm_der der;

    to_der_with(certtool, pem_path, tag, &der);
    CU_ASSERT_EQUAL_FATAL(cm_cert_cache_new(4, &cache), 0);
    expect_list(cache, &der, 1, name, &want, want_match, line);
    expect_list(cache, &der, 1, name, &want, want_match, line);
    expect_stats(cache, 1, 1, line);
    cm_cert_cache_free(cache);
    free((void *)der.data);
}

/* Makes a self-signed certificate file with certtool from a template that holds cn byte for
 * byte: certtool takes bytes that are not UTF-8, where openssl req refuses them. */
static void certtool_cert(const char *file, const char *cn)
{
    char tmpl[1024], pem[1024], name[256], text[512], msg[256];

    snprintf(name, sizeof(name), "%s.tmpl", file);
    work_path(tmpl, sizeof(tmpl), name);
    work_path(pem, sizeof(pem), file);
    snprintf(text, sizeof(text), "cn = \"%s\"\ndns_name = \"ok.example\"\nexpiration_days = 1\n",
             cn);
    spew(tmpl, text, strlen(text));
    CU_ASSERT_EQUAL_FATAL(run_line(msg, sizeof(msg),
                                   "certtool --generate-self-signed --load-privkey '%s' "
                                   "--template '%s' --outfile '%s' --no-text 2>&1",
                                   cm_th_pki("self.key"), tmpl, pem),
                          0);
}

/* Appends a DER TLV (short-form length) to buf. */
static void put_tlv(unsigned char *buf, size_t *n, size_t cap, unsigned tag, const void *v,
                    size_t len)
{
    CU_ASSERT_FATAL(len < 128 && *n + 2 + len <= cap);
    buf[(*n)++] = (unsigned char)tag;
    buf[(*n)++] = (unsigned char)len;
    memcpy(buf + *n, v, len);
    *n += len;
}

#define SAN_DNS 0x82 /* [2] IA5String */
#define SAN_IP 0x87  /* [7] OCTET STRING */
/* Appends a dNSName given as a string literal, every byte but the terminating NUL. */
#define PUT_DNS(buf, n, lit) put_tlv((buf), (n), sizeof(buf), SAN_DNS, (lit), sizeof(lit) - 1)

/* Makes a self-signed certificate file with openssl whose subject is subj (UTF-8, in
 * openssl's -subj syntax) and whose subjectAltName is exactly the GeneralNames content names
 * (DER), which can hold bytes that the DNS:... syntax cannot. */
static void openssl_raw_san_cert(const char *file, const char *subj, const unsigned char *names,
                                 size_t len)
{
    unsigned char seq[130];
    char hex[2 * sizeof(seq) + 1], msg[256];
    size_t n = 0;

    put_tlv(seq, &n, sizeof(seq), 0x30, names, len);
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02X", seq[i]);
    CU_ASSERT_EQUAL_FATAL(
        run_line(msg, sizeof(msg),
                 "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
                 "-nodes -keyout '%s.key' -out '%s' -days 1 -utf8 -subj '%s' "
                 "-addext 'subjectAltName=DER:%s' 2>&1",
                 work_dir, file, file, subj, hex),
        0);
}

static void test_hostile_controls(void)
{
    static const char *const sans[] = {"ok.example", "bad\\1B[2Jname.example",
                                       "del\\7F\\09x.example"};
    static const char subject[] = "CN=evil\\1B[31mred\\0Dxy\\0Az";
    char pem[1024], msg[256];
    struct cm_chain ch;

    /* ESC starting a colour sequence, CR and LF in the subject; ESC starting a clear-screen
     * sequence, DEL and TAB in dNSNames. The shell's printf makes the bytes. */
    work_path(pem, sizeof(pem), "controls.pem");
    CU_ASSERT_EQUAL_FATAL(
        run_line(msg, sizeof(msg),
                 "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
                 "-nodes -keyout controls.key -out controls.pem -days 1 "
                 "-subj \"/CN=evil$(printf '\\033')[31mred$(printf '\\r')x$(printf 'y\\nz')\" "
                 "-addext \"subjectAltName=DNS:ok.example,"
                 "DNS:bad$(printf '\\033')[2Jname.example,DNS:del$(printf '\\177\\t')x.example\" "
                 "2>&1",
                 work_dir),
        0);
    load_file(&ch, pem);
    expect_safe_cert(&ch.certs[0], __LINE__);
    CU_ASSERT_PTR_NOT_NULL(strstr(ch.certs[0].subject, "\\1B"));
    EXPECT_STR(ch.certs[0].subject, subject);
    EXPECT_STR(ch.certs[0].issuer, subject);
    expect_sans(&ch.certs[0], sans, 3, __LINE__);
    EXPECT_STR(ch.certs[0].key_type, "EC");
    EXPECT_INT(ch.certs[0].key_bits, 256);
    CU_ASSERT_TRUE(ch.certs[0].self_signed);
    expect_der_path(false, pem, "controls", &ch.certs[0], "ok.example", true, __LINE__);
    cm_chain_clear(&ch);
}

static void test_hostile_not_utf8(void)
{
    /* A lone Latin-1 e-acute, a C1 control (CSI, U+009B, validly encoded), then valid UTF-8
     * of two, three and four bytes that must come through as it is. */
    static const char cn[] = "caf\xE9 c1\xC2\x9B"
                             "x ok:\xC3\xA9\xE2\x82\xAC\xF0\x9F\x94\x92";
    static const char subject[] = "CN=caf\\E9 c1\\C2\\9B"
                                  "x ok:\xC3\xA9\xE2\x82\xAC\xF0\x9F\x94\x92";
    static const char *const ok[] = {"ok.example"};
    char pem[1024];
    struct cm_chain ch;

    certtool_cert("latin.pem", cn);
    work_path(pem, sizeof(pem), "latin.pem");
    load_file(&ch, pem);
    expect_safe_cert(&ch.certs[0], __LINE__);
    CU_ASSERT_PTR_NOT_NULL(strstr(ch.certs[0].subject, "\\E9"));
    EXPECT_STR(ch.certs[0].subject, subject);
    EXPECT_STR(ch.certs[0].issuer, subject);
    expect_sans(&ch.certs[0], ok, 1, __LINE__);
    expect_der_path(true, pem, "latin", &ch.certs[0], "ok.example", true, __LINE__);
    cm_chain_clear(&ch);
}

static void test_hostile_san_bytes(void)
{
    static const char *const want[] = {"lat\\E9n.example", "nul\\00x.example",
                                       "c1\\C2\\85y.example", "127.0.0.1", "ok.example"};
    static const unsigned char ip[] = {127, 0, 0, 1};
    unsigned char names[120];
    char pem[1024];
    size_t n = 0;
    struct cm_chain ch;

    /* Bytes the DNS:... syntax cannot carry: not UTF-8, NUL, a C1 control (NEL). */
    PUT_DNS(names, &n, "lat\xE9n.example");
    PUT_DNS(names, &n, "nul\0x.example");
    PUT_DNS(names, &n, "c1\xC2\x85y.example");
    put_tlv(names, &n, sizeof(names), SAN_IP, ip, sizeof(ip));
    PUT_DNS(names, &n, "ok.example");
    openssl_raw_san_cert("sanbytes.pem", "/CN=raw san", names, n);
    work_path(pem, sizeof(pem), "sanbytes.pem");
    load_file(&ch, pem);
    expect_safe_cert(&ch.certs[0], __LINE__);
    EXPECT_STR(ch.certs[0].subject, "CN=raw san");
    expect_sans(&ch.certs[0], want, 5, __LINE__);
    expect_der_path(false, pem, "sanbytes", &ch.certs[0], "127.0.0.1", true, __LINE__);
    cm_chain_clear(&ch);
}

/* Byte sequences whose lead byte announces the right length and whose continuation bytes are
 * all there, but that are still not UTF-8: a surrogate, overlong three- and four-byte forms,
 * a code point above U+10FFFF. JSON encoders refuse them just the same. */
static void test_hostile_bad_utf8_forms(void)
{
    static const char cn[] = "sur\xED\xA0\x80"
                             " ov3\xE0\x80\xAF"
                             " big\xF4\x90\x80\x80"
                             " ov4\xF0\x80\x80\xAF"
                             " end";
    unsigned char names[120];
    char pem[1024];
    size_t n = 0;
    struct cm_chain ch;

    certtool_cert("forms.pem", cn);
    work_path(pem, sizeof(pem), "forms.pem");
    load_file(&ch, pem);
    expect_safe_cert(&ch.certs[0], __LINE__);
    CU_ASSERT(strncmp(ch.certs[0].subject, "CN=sur", 6) == 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(ch.certs[0].subject, " end"));
    cm_chain_clear(&ch);

    PUT_DNS(names, &n, "sur\xED\xA0\x80.example");
    PUT_DNS(names, &n, "ov3\xE0\x80\xAF.example");
    PUT_DNS(names, &n, "ok.example");
    openssl_raw_san_cert("formsan.pem", "/CN=raw san", names, n);
    work_path(pem, sizeof(pem), "formsan.pem");
    load_file(&ch, pem);
    EXPECT_INT(ch.certs[0].san_count, 3);
    expect_safe_cert(&ch.certs[0], __LINE__);
    cm_chain_clear(&ch);
}

/* Text that would pass for something else: a literal backslash followed by hex digits must
 * not read as an escape, and bidirectional overrides and isolates must not reorder what a
 * terminal shows. */
static void test_hostile_lookalikes(void)
{
    static const char subject[] = "CN=lit\\\\1B rlo\\E2\\80\\AEx lri\\E2\\81\\A6y";
    static const char *const want[] = {"a\\5C1Bb.example", "a\\1Bb.example",
                                       "rlo\\E2\\80\\AEelpmaxe.ok", "ok.example"};
    unsigned char names[120];
    char pem[1024];
    size_t n = 0;
    struct cm_chain ch;

    PUT_DNS(names, &n, "a\\1Bb.example");
    PUT_DNS(names, &n,
            "a\x1B"
            "b.example");
    PUT_DNS(names, &n,
            "rlo\xE2\x80\xAE"
            "elpmaxe.ok");
    PUT_DNS(names, &n, "ok.example");
    /* In openssl's -subj syntax two backslashes stand for one. */
    openssl_raw_san_cert("lookalike.pem",
                         "/CN=lit\\\\1B rlo\xE2\x80\xAE"
                         "x lri\xE2\x81\xA6"
                         "y",
                         names, n);
    work_path(pem, sizeof(pem), "lookalike.pem");
    load_file(&ch, pem);
    expect_safe_cert(&ch.certs[0], __LINE__);
    EXPECT_STR(ch.certs[0].subject, subject);
    expect_sans(&ch.certs[0], want, 4, __LINE__);
    if (ch.certs[0].san_count >= 2)
        CU_ASSERT_STRING_NOT_EQUAL(ch.certs[0].sans[0], ch.certs[0].sans[1]);
    expect_der_path(false, pem, "lookalike", &ch.certs[0], "ok.example", true, __LINE__);
    cm_chain_clear(&ch);
}

/* Key usage, extended key usage and the SPKI hash, as mkpki.sh's certtool templates made
 * them, the hash against openssl's. */
static void test_usage_and_spki(void)
{
    struct cm_chain ch;
    struct cm_cert copy;
    char line[256];

    load(&ch, "valid.chain.pem", 2);
    /* tls_www_server, signing_key, encryption_key. */
    CU_ASSERT_TRUE(ch.certs[0].has_key_usage);
    EXPECT_INT(ch.certs[0].key_usage, CM_KU_DIGITAL_SIGNATURE | CM_KU_KEY_ENCIPHERMENT);
    CU_ASSERT_TRUE(ch.certs[0].has_eku);
    CU_ASSERT_TRUE(ch.certs[0].eku_server);
    CU_ASSERT_FALSE(ch.certs[0].eku_any);
    EXPECT_STR(ch.certs[0].eku, "serverAuth");
    /* ca, cert_signing_key, crl_signing_key; no EKU. */
    CU_ASSERT_TRUE(ch.certs[1].has_key_usage);
    EXPECT_INT(ch.certs[1].key_usage, CM_KU_KEY_CERT_SIGN | CM_KU_CRL_SIGN);
    CU_ASSERT_FALSE(ch.certs[1].has_eku);
    EXPECT_STR(ch.certs[1].eku, "");
    /* The copy keeps them. */
    CU_ASSERT_EQUAL_FATAL(cm_cert_copy(&copy, &ch.certs[0]), 0);
    EXPECT_STR(copy.eku, "serverAuth");
    EXPECT_STR(copy.spki_sha256, ch.certs[0].spki_sha256);
    EXPECT_INT(copy.key_usage, ch.certs[0].key_usage);
    cm_cert_clear(&copy);
    cm_chain_clear(&ch);

    load(&ch, "client.pem", 1);
    CU_ASSERT_TRUE(ch.certs[0].has_eku);
    CU_ASSERT_FALSE(ch.certs[0].eku_server);
    EXPECT_STR(ch.certs[0].eku, "clientAuth");
    cm_chain_clear(&ch);

    for (size_t i = 0; i < N_PEMS; i++) {
        const char *pem = cm_th_pki(all_pems[i]);

        load(&ch, all_pems[i], 1);
        CU_ASSERT_EQUAL_FATAL(run_line(line, sizeof(line),
                                       "openssl x509 -in '%s' -noout -pubkey | openssl pkey "
                                       "-pubin -outform DER | sha256sum | cut -d' ' -f1",
                                       pem),
                              0);
        cm_expect_str(ch.certs[0].spki_sha256, line, all_pems[i], __FILE__, __LINE__);
        cm_chain_clear(&ch);
    }
}

static CU_TestInfo tests[] = {
    {"valid chain fields", test_valid_chain},
    {"other leaves", test_other_leaves},
    {"self-signed and CA flags", test_self_signed},
    {"sha256 matches openssl", test_sha256_matches_openssl},
    {"key usage, extended key usage, SPKI hash", test_usage_and_spki},
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
    {"DER list: fields as from PEM", test_der_list_fields},
    {"DER list: served from the cache", test_der_list_cache_hits},
    {"DER list: cache slots differ", test_cache_slots_differ},
    {"DER list: name verdicts", test_der_list_names},
    {"DER list: unparseable entries", test_der_list_unparseable},
    {"DER list: one-slot cache", test_der_list_one_slot},
    {"certificate deep copy", test_cert_copy},
    {"hostile text: control characters", test_hostile_controls},
    {"hostile text: not UTF-8", test_hostile_not_utf8},
    {"hostile text: SAN bytes", test_hostile_san_bytes},
    {"hostile text: invalid UTF-8 forms", test_hostile_bad_utf8_forms},
    {"hostile text: look-alikes", test_hostile_lookalikes},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("x509", tests, suite_init, suite_cleanup);
}
