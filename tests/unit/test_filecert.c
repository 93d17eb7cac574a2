/* Unit tests for file targets (src/probe/filecert.c): certificates made at test time with certtool
 * and openssl in a temporary directory, scanned as files, bundles, directories and globs, then
 * judged by cm_analyze and rendered by cm_report_json as file results. */
#include "cmtest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "certmon/analysis/analyze.h"
#include "certmon/probe/filecert.h"
#include "certmon/analysis/report.h"

#define DAY 86400

/* Makes the test files in the directory $1. Dates are relative to the moment it runs, which
 * it writes to "now", so that the tests can compute every expected date exactly. */
static const char gen_script[] =
    "set -eu\n"
    "cd \"$1\"\n"
    "chmod 755 .\n" /* so that a user other than us meets the file's own mode, not ours */
    "export TZ=UTC\n"
    "now=$(date -u +%s)\n"
    "day=86400\n"
    "when() { date -u -d \"@$((now + $1))\" '+%Y-%m-%d %H:%M:%S'; }\n"
    "serial=0\n"
    /* tmpl NAME CN FROM TO ca|leaf: no subjectAltName, on purpose (no cert.no_san for files). */
    "tmpl() {\n"
    "    serial=$((serial + 1))\n"
    "    { echo \"cn = \\\"$2\\\"\"; echo \"serial = $serial\";\n"
    "      echo \"activation_date = \\\"$(when \"$3\")\\\"\";\n"
    "      echo \"expiration_date = \\\"$(when \"$4\")\\\"\";\n"
    "      if [ \"$5\" = ca ]; then echo ca; echo cert_signing_key; else echo signing_key; fi\n"
    "    } >\"$1.tmpl\"\n"
    "}\n"
    "key() { certtool --generate-privkey --key-type=rsa --bits=\"$2\" --outfile \"$1.key\" "
    "2>/dev/null; }\n"
    /* self NAME KEY [OPTION...]; issue NAME KEY CA [OPTION...] */
    "self() { n=$1 k=$2; shift 2; certtool --generate-self-signed --load-privkey \"$k.key\" "
    "--template \"$n.tmpl\" --outfile \"$n.pem\" \"$@\" 2>/dev/null; }\n"
    "issue() { n=$1 k=$2 ca=$3; shift 3; certtool --generate-certificate --load-privkey "
    "\"$k.key\" --load-ca-certificate \"$ca.pem\" --load-ca-privkey \"$ca.key\" --template "
    "\"$n.tmpl\" --outfile \"$n.pem\" \"$@\" 2>/dev/null; }\n"
    "key root 2048; key inter 2048; key leaf 2048; key sroot 2048; key weak 1024\n"
    "tmpl root 'certmon File Root' $((-10 * day)) $((3650 * day)) ca; self root root\n"
    "tmpl inter 'certmon File Intermediate' $((-10 * day)) $((1825 * day)) ca\n"
    "issue inter inter root\n"
    "tmpl leaf 'certmon file leaf' $((-1 * day)) $((90 * day)) leaf; issue leaf leaf inter\n"
    "tmpl long 'certmon long leaf' $((-1 * day)) $((800 * day)) leaf; issue long leaf inter\n"
    "tmpl expired 'certmon expired leaf' $((-60 * day)) $((-2 * day)) leaf\n"
    "issue expired leaf inter\n"
    "tmpl rsa1024 'certmon weak key leaf' $((-1 * day)) $((90 * day)) leaf\n"
    "issue rsa1024 weak inter\n"
    "tmpl sha1 'certmon sha1 leaf' $((-1 * day)) $((90 * day)) leaf\n"
    "issue sha1 leaf inter --hash SHA1\n"
    "tmpl sha1root 'certmon sha1 root' $((-10 * day)) $((3650 * day)) ca\n"
    "self sha1root sroot --hash SHA1\n"
    "tmpl sha1self 'certmon sha1 self' $((-1 * day)) $((90 * day)) leaf\n"
    "self sha1self leaf --hash SHA1\n"
    "tmpl weakroot 'certmon weak root' $((-10 * day)) $((3650 * day)) ca\n"
    "self weakroot weak --hash SHA1\n"
    "openssl x509 -in leaf.pem -outform DER -out leaf.der\n"
    "cat leaf.pem inter.pem root.pem >bundle.pem\n"
    "cat sha1.pem sha1root.pem >sha1bundle.pem\n"
    "cat leaf.key leaf.pem >combined.pem\n"
    "openssl req -new -key leaf.key -subj '/CN=certmon request' -out leaf.csr 2>/dev/null\n"
    "cat leaf.pem leaf.csr >withcsr.pem\n"
    "{ cat leaf.pem; sed '3s/^..../!!!!/' inter.pem; cat root.pem; } >badb64.pem\n"
    "{ cat leaf.pem; head -n 5 inter.pem; } >truncated.pem\n"
    "{ echo '-----BEGIN CERTIFICATE-----'; printf 'hello, world' | base64;\n"
    "  echo '-----END CERTIFICATE-----'; } >notcert.pem\n"
    "echo 'not a certificate' >garbage.txt\n"
    "echo '0123456789, text' >digits.txt\n"
    "openssl pkey -in leaf.key -outform DER -out key.der\n"
    ": >empty.pem\n"
    "truncate -s 5M big.pem\n"
    "cp leaf.pem unreadable.pem; chmod 000 unreadable.pem\n"
    "mkfifo fifo.pem\n"
    "mkdir dir dir/sub emptydir keydir\n"
    "cp leaf.pem dir/a.pem; cp long.pem dir/b.pem; cp leaf.key dir/key.pem\n"
    "cp garbage.txt dir/garbage.txt; cp garbage.txt dir/.hidden.pem\n"
    "cp expired.pem dir/0badcafe.0\n"
    "ln dir/a.pem dir/hard.pem\n"
    "ln -s b.pem dir/alias.pem\n"
    "ln -s a.pem \"dir/$(openssl x509 -hash -noout -in leaf.pem).0\"\n"
    "ln -s missing.crl dir/deadbeef.r0\n"
    "cp leaf.pem dir/sub/c.pem\n"
    "mkfifo dir/fifo\n"
    "cp leaf.key keydir/key.pem; cp leaf.csr keydir/req.csr\n"
    "echo \"$now\" >now\n";

/* Makes the keystore and key-pair files in $1/ks, after gen_script (it uses its PKI). Keys of
 * each type with certificates of the same stem, PKCS#12 files from openssl (current,
 * -legacy RC2-40, -nomac, empty password, no key) and from keytool (its default store type,
 * PKCS#12), Java KeyStores with several entries, and ACME/certbot-style directories. */
static const char ks_script[] =
    "set -eu\n"
    "cd \"$1\"; mkdir ks; cd ks\n"
    "P12PW='s3cret pass'; KSPW='st0re pass'; KEYPW='k3y pass'\n"
    "mk() { openssl req -x509 -new -key \"$1.key\" -subj \"/CN=certmon $1\" -days 60 "
    "-out \"$1.pem\" 2>/dev/null; }\n"
    "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null\n"
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.key\n"
    "openssl genpkey -algorithm ED25519 -out ed.key\n"
    "mk rsa; mk ec; mk ed\n"
    "cp rsa.pem mis.crt; cp ec.key mis.key\n"
    "openssl pkcs8 -topk8 -in rsa.key -v2 aes-256-cbc -passout \"pass:$KEYPW\" -out enc.key\n"
    "cp rsa.pem enc.pem\n"
    "openssl pkey -in ec.key -outform DER -out der.key; cp ec.pem der.pem\n"
    "echo 'not a key' >junk.key; cp ec.pem junk.pem\n"
    "cat ec.key rsa.pem >combmis.pem\n"
    "cp ../leaf.key ../leaf.pem ../inter.pem ../root.pem .\n"
    "x() { openssl pkcs12 -export -in leaf.pem -inkey leaf.key -certfile inter.pem -name leaf "
    "\"$@\"; }\n"
    "x -out chain.p12 -passout \"pass:$P12PW\"\n"
    "x -legacy -out legacy.p12 -passout \"pass:$P12PW\"\n"
    "x -nomac -out nomac.p12 -passout \"pass:$P12PW\"\n"
    "x -out empty.p12 -passout pass:\n"
    "cat root.pem inter.pem >cas.pem\n"
    "openssl pkcs12 -export -nokeys -in cas.pem -out certonly.p12 -passout \"pass:$P12PW\"\n"
    "cp chain.p12 store.bin\n"
    /* A JVM starts per keytool run (about a second, more on a busy machine): quick-start
     * flags, and the three stores made side by side. */
    "kt() { keytool -J-XX:TieredStopAtLevel=1 -J-XX:+UseSerialGC \"$@\" -storepass \"$KSPW\" "
    ">/dev/null 2>&1; }\n"
    /* keytool's default store type: PKCS#12 since Java 9. */
    "( kt -genkeypair -alias server -keyalg RSA -keysize 2048 -dname CN=certmon-kt-p12 "
    "-validity 60 -keystore kt.p12 -keypass \"$KSPW\"\n"
    "  kt -importcert -noprompt -alias root -file root.pem -keystore kt.p12 ) & p12=$!\n"
    "( kt -genkeypair -alias server -keyalg RSA -keysize 2048 -dname CN=certmon-kt-rsa "
    "-validity 60 -storetype JKS -keystore kt.jks -keypass \"$KSPW\"\n"
    "  kt -genkeypair -alias ec -keyalg EC -groupname secp256r1 -dname CN=certmon-kt-ec "
    "-validity 60 -storetype JKS -keystore kt.jks -keypass \"$KSPW\"\n"
    "  kt -importcert -noprompt -alias root -file root.pem -storetype JKS -keystore kt.jks\n"
    "  kt -importcert -noprompt -alias inter -file inter.pem -storetype JKS -keystore kt.jks "
    ") & jks=$!\n"
    "kt -genseckey -alias aes -keyalg AES -keysize 128 -storetype JCEKS -keystore sec.jceks "
    "-keypass \"$KSPW\"\n"
    "kt -importcert -noprompt -alias root -file root.pem -storetype JCEKS -keystore trust.jceks\n"
    "wait $p12; wait $jks\n"
    "head -c 200 kt.jks >cut.jks\n"
    /* The last byte is the digest's: flipped, the store reads but does not verify. */
    "cp kt.jks altered.jks\n"
    "/usr/bin/python3 -c 'import sys; p = sys.argv[1]; b = bytearray(open(p, \"rb\").read()); "
    "b[-1] ^= 1; open(p, \"wb\").write(b)' altered.jks\n"
    /* certbot's live/ directory, and the same with a key of another certificate. */
    "mkdir live livemis livedangling acme twokeys\n"
    "for d in live livemis livedangling; do cp leaf.pem $d/cert.pem; cp inter.pem $d/chain.pem;\n"
    "  cat leaf.pem inter.pem >$d/fullchain.pem; echo 'certbot README' >$d/README; done\n"
    "cp leaf.key live/privkey.pem; cp ec.key livemis/privkey.pem\n"
    "ln -s ../archive/privkey1.pem livedangling/privkey.pem\n"
    "cp leaf.pem acme/cert.pem; cp leaf.key acme/key.pem\n"
    "cp ec.pem twokeys/cert.pem; cp ec.key twokeys/key1.pem; cp rsa.key twokeys/key2.pem\n";

static char dir[64];
static time_t gen_now; /* when the files were made: the certificates' dates count from it */

static int suite_init(void)
{
    char *argv[] = {"sh", "-c", (char *)gen_script, "sh", dir, NULL};
    char *out = NULL, path[128];
    long long t = 0;
    FILE *fp;
    int rc;

    snprintf(dir, sizeof(dir), "%s", "/tmp/certmon-filecert-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return -1;
    }
    rc = cm_th_run(argv, &out, 120, NULL);
    free(out);
    if (rc != 0) {
        fprintf(stderr, "making the test certificates failed (exit %d)\n", rc);
        return -1;
    }
    argv[2] = (char *)ks_script;
    rc = cm_th_run(argv, &out, 180, NULL);
    if (rc != 0) {
        fprintf(stderr, "making the test keystores failed (exit %d): %s\n", rc, out ? out : "");
        free(out);
        return -1;
    }
    free(out);
    snprintf(path, sizeof(path), "%s/now", dir);
    if (!(fp = fopen(path, "r")) || fscanf(fp, "%lld", &t) != 1) {
        if (fp)
            fclose(fp);
        return -1;
    }
    fclose(fp);
    gen_now = (time_t)t;
    return 0;
}

static int suite_cleanup(void)
{
    cm_th_remove_tree(dir);
    return 0;
}

/* DIR/name, in a static rotating buffer. */
static const char *at(const char *name)
{
    static char bufs[8][256];
    static unsigned next;
    char *b = bufs[next++ % 8];

    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
    return b;
}

/* "file:DIR/name", in a static rotating buffer. */
static const char *target(const char *name)
{
    static char bufs[8][256];
    static unsigned next;
    char *b = bufs[next++ % 8];

    snprintf(b, sizeof(bufs[0]), "file:%s/%s", dir, name);
    return b;
}

/* A formatted string in a static rotating buffer. */
static const char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static const char *fmt(const char *f, ...)
{
    static char bufs[8][512];
    static unsigned next;
    char *b = bufs[next++ % 8];
    va_list ap;

    va_start(ap, f);
    vsnprintf(b, sizeof(bufs[0]), f, ap);
    va_end(ap);
    return b;
}

/* Scans DIR/name (a pattern) with password pw (NULL: none) stamped at gen_now; asserts
 * success and n results. */
static void scan_pw(const char *name, const char *pw, struct cm_file_scan_result *r, size_t n,
                    unsigned line)
{
    int rc = cm_file_scan(at(name), &(struct cm_file_opts){pw}, (int64_t)gen_now, r);

    expect_int(rc, 0, "cm_file_scan", line);
    expect_int(r->count, n, "result count", line);
    CU_ASSERT_FATAL(rc == 0 && r->count == n);
}

static void scan_n(const char *name, struct cm_file_scan_result *r, size_t n, unsigned line)
{
    scan_pw(name, NULL, r, n, line);
}

#define SCAN(name, r, n) scan_n((name), (r), (n), __LINE__)
#define SCAN_PW(name, pw, r, n) scan_pw((name), (pw), (r), (n), __LINE__)

/* What every file result has: its names, no endpoint, times -1 but total, stamped now. */
static void expect_file_result(const struct cm_probe_result *res, const char *path, unsigned line)
{
    char tgt[300];

    snprintf(tgt, sizeof(tgt), "file:%s", path);
    expect_str(res->target, tgt, "target", line);
    expect_str(res->path, path, "path", line);
    CU_ASSERT_PTR_NULL(res->host);
    CU_ASSERT_PTR_NULL(res->sni);
    CU_ASSERT_PTR_NULL(res->verify_name);
    expect_int(res->port, 0, "port", line);
    expect_str(res->address, "", "address", line);
    expect_int(res->dns_ms < 0 && res->connect_ms < 0 && res->starttls_ms < 0 &&
                   res->handshake_ms < 0,
               1, "only total_ms is set", line);
    expect_int(res->finished_at, gen_now, "finished_at", line);
    CU_ASSERT_PTR_NULL(res->tls.version);
    CU_ASSERT_FALSE(res->tls.verify.done);
    CU_ASSERT_PTR_NULL(res->posture);
}

/* A result that read fine: n certificates, total_ms measured. */
static void expect_ok(const struct cm_probe_result *res, const char *name, size_t n, unsigned line)
{
    expect_file_result(res, at(name), line);
    expect_int(res->error_kind, CM_ERRK_NONE, "error_kind", line);
    expect_str(res->error_message, NULL, "error_message", line);
    expect_int(res->tls.chain.count, n, "certificates", line);
    expect_int(res->total_ms >= 0, 1, "total_ms measured", line);
}

#define EXPECT_OK(res, name, n) expect_ok((res), (name), (n), __LINE__)

/* A failed result for path with that message and no certificate. */
static void expect_failed(const struct cm_probe_result *res, const char *path, const char *msg,
                          unsigned line)
{
    expect_file_result(res, path, line);
    expect_int(res->error_kind, CM_ERRK_FILE, "error_kind", line);
    expect_str(res->error_message, msg, "error_message", line);
    expect_int(res->tls.chain.count, 0, "certificates", line);
}

#define EXPECT_FAILED(res, path, msg) expect_failed((res), (path), (msg), __LINE__)

/* Scans one file expected to fail with msg. */
static void expect_file_fails(const char *name, const char *msg, unsigned line)
{
    struct cm_file_scan_result r;

    scan_n(name, &r, 1, line);
    expect_failed(r.items[0], at(name), msg, line);
    cm_file_scan_result_clear(&r);
}

#define EXPECT_FILE_FAILS(name, msg) expect_file_fails((name), (msg), __LINE__)

static void expect_cert(const struct cm_cert *c, const char *subject, int64_t not_after,
                        unsigned line)
{
    expect_str(c->subject, subject, "subject", line);
    expect_int(c->not_after, not_after, "not_after", line);
}

#define EXPECT_CERT(c, subject, not_after) expect_cert((c), (subject), (not_after), __LINE__)

/* ---- Reading files ---- */

static void test_pem(void)
{
    struct cm_file_scan_result r;
    const struct cm_cert *c;

    SCAN("leaf.pem", &r, 1);
    EXPECT_OK(r.items[0], "leaf.pem", 1);
    c = &r.items[0]->tls.chain.certs[0];
    EXPECT_CERT(c, "CN=certmon file leaf", gen_now + 90 * DAY);
    EXPECT_INT(c->not_before, gen_now - DAY);
    EXPECT_STR(c->issuer, "CN=certmon File Intermediate");
    EXPECT_STR(c->key_type, "RSA");
    EXPECT_INT(c->key_bits, 2048);
    CU_ASSERT_FALSE(c->self_signed);
    cm_file_scan_result_clear(&r);
    EXPECT_INT(r.count, 0);
    CU_ASSERT_PTR_NULL(r.items);

    /* A key before the certificate (a server's combined file) changes nothing. */
    SCAN("combined.pem", &r, 1);
    EXPECT_OK(r.items[0], "combined.pem", 1);
    EXPECT_CERT(&r.items[0]->tls.chain.certs[0], "CN=certmon file leaf", gen_now + 90 * DAY);
    cm_file_scan_result_clear(&r);

    /* Nor does an OpenSSL CSR after it, whose "CERTIFICATE REQUEST" GnuTLS chokes on. */
    SCAN("withcsr.pem", &r, 1);
    EXPECT_OK(r.items[0], "withcsr.pem", 1);
    EXPECT_CERT(&r.items[0]->tls.chain.certs[0], "CN=certmon file leaf", gen_now + 90 * DAY);
    cm_file_scan_result_clear(&r);
}

static void test_der(void)
{
    struct cm_file_scan_result pem, der;

    SCAN("leaf.pem", &pem, 1);
    SCAN("leaf.der", &der, 1);
    EXPECT_OK(der.items[0], "leaf.der", 1);
    EXPECT_CERT(&der.items[0]->tls.chain.certs[0], "CN=certmon file leaf", gen_now + 90 * DAY);
    EXPECT_STR(der.items[0]->tls.chain.certs[0].sha256, pem.items[0]->tls.chain.certs[0].sha256);
    cm_file_scan_result_clear(&pem);
    cm_file_scan_result_clear(&der);
}

static void test_bundle(void)
{
    struct cm_file_scan_result r;
    const struct cm_chain *ch;

    SCAN("bundle.pem", &r, 1);
    EXPECT_OK(r.items[0], "bundle.pem", 3);
    ch = &r.items[0]->tls.chain;
    EXPECT_CERT(&ch->certs[0], "CN=certmon file leaf", gen_now + 90 * DAY);
    EXPECT_CERT(&ch->certs[1], "CN=certmon File Intermediate", gen_now + 1825LL * DAY);
    EXPECT_CERT(&ch->certs[2], "CN=certmon File Root", gen_now + 3650LL * DAY);
    CU_ASSERT_TRUE(ch->certs[2].self_signed);
    CU_ASSERT_TRUE(ch->certs[2].is_ca);
    cm_file_scan_result_clear(&r);
}

/* The line the second PEM block of a file starting with leaf.pem begins on. */
static unsigned second_block_line(void)
{
    FILE *fp = fopen(at("leaf.pem"), "r");
    unsigned lines = 0;
    int ch;

    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    while ((ch = fgetc(fp)) != EOF)
        lines += ch == '\n';
    fclose(fp);
    return lines + 1;
}

static void test_unusable_files(void)
{
    unsigned line2 = second_block_line();

    EXPECT_FILE_FAILS("missing.pem",
                      fmt("cannot read %s: No such file or directory", at("missing.pem")));
    EXPECT_FILE_FAILS("empty.pem",
                      fmt("no certificate found in %s (the file is empty)", at("empty.pem")));
    EXPECT_FILE_FAILS("big.pem",
                      fmt("%s: file is 5242880 bytes; at most 4 MiB is read", at("big.pem")));
    EXPECT_FILE_FAILS("garbage.txt",
                      fmt("no certificate found in %s (not PEM or DER)", at("garbage.txt")));
    /* Text that starts like an ASN.1 SEQUENCE (0x30 is "0") is still not DER. */
    EXPECT_FILE_FAILS("digits.txt",
                      fmt("no certificate found in %s (not PEM or DER)", at("digits.txt")));
    EXPECT_FILE_FAILS(
        "key.der",
        fmt("no certificate found in %s (DER data, but not an X.509 certificate)", at("key.der")));
    /* Named on its own, a key file is a mistake worth reporting. */
    EXPECT_FILE_FAILS("leaf.key",
                      fmt("no certificate found in %s (it holds only other PEM blocks: RSA "
                          "PRIVATE KEY)",
                          at("leaf.key")));
    EXPECT_FILE_FAILS("leaf.csr", fmt("no certificate found in %s (it holds only other PEM blocks: "
                                      "CERTIFICATE REQUEST)",
                                      at("leaf.csr")));
    /* One bad block fails the whole bundle, and the message says which and where. */
    EXPECT_FILE_FAILS("badb64.pem",
                      fmt("cannot parse %s: CERTIFICATE block 2 of 3 (line %u) is unusable: its "
                          "base64 text is damaged",
                          at("badb64.pem"), line2));
    EXPECT_FILE_FAILS("truncated.pem",
                      fmt("cannot parse %s: CERTIFICATE block 2 of 2 (line %u) is unusable: it "
                          "has no END line (is the file cut short?)",
                          at("truncated.pem"), line2));
    EXPECT_FILE_FAILS("notcert.pem",
                      fmt("cannot parse %s: its CERTIFICATE block (line 1) is unusable: it "
                          "decodes, but not to an X.509 certificate",
                          at("notcert.pem")));
    /* A FIFO is refused without blocking the scan. */
    EXPECT_FILE_FAILS("fifo.pem", fmt("cannot read %s: it is not a regular file", at("fifo.pem")));
}

/* Scans path as user nobody in a child process (root reads every file); returns the message
 * of its only result, malloc'd, or NULL. */
static char *message_as_nobody(const char *path)
{
    int fds[2];
    pid_t pid;
    char buf[512];
    ssize_t n;
    size_t len = 0;
    int status;

    if (pipe(fds) < 0)
        return NULL;
    if ((pid = fork()) == 0) {
        struct cm_file_scan_result r;
        close(fds[0]);
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(2);
        if (cm_file_scan(path, NULL, 0, &r) == 0 && r.count == 1 && r.items[0]->error_message) {
            const char *m = r.items[0]->error_message;
            if (write(fds[1], m, strlen(m)) < 0)
                _exit(3);
        }
        _exit(0);
    }
    close(fds[1]);
    while (pid > 0 && len < sizeof(buf) - 1 &&
           (n = read(fds[0], buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)n;
    close(fds[0]);
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        return NULL;
    buf[len] = '\0';
    return strdup(buf);
}

static void test_unreadable(void)
{
    const char *want = fmt("cannot read %s: Permission denied", at("unreadable.pem"));
    char *got;

    if (geteuid() != 0) {
        EXPECT_FILE_FAILS("unreadable.pem", want);
        return;
    }
    /* Root reads it anyway; a child that gives up root does not. */
    got = message_as_nobody(at("unreadable.pem"));
    EXPECT_STR(got, want);
    free(got);
}

/* ---- Directories and globs ---- */

static void test_directory(void)
{
    struct cm_file_scan_result r;

    /* a.pem, b.pem, 0badcafe.0 (a regular file with a hash-like name) and garbage.txt are
     * read; key.pem holds only a key; hard.pem and alias.pem are second names of a.pem and
     * b.pem; the hash links, dot files, sub/ and the FIFO are no certificate files. */
    SCAN("dir", &r, 4);
    EXPECT_OK(r.items[0], "dir/0badcafe.0", 1);
    EXPECT_CERT(&r.items[0]->tls.chain.certs[0], "CN=certmon expired leaf", gen_now - 2 * DAY);
    EXPECT_OK(r.items[1], "dir/a.pem", 1);
    EXPECT_CERT(&r.items[1]->tls.chain.certs[0], "CN=certmon file leaf", gen_now + 90 * DAY);
    EXPECT_OK(r.items[2], "dir/b.pem", 1);
    EXPECT_CERT(&r.items[2]->tls.chain.certs[0], "CN=certmon long leaf", gen_now + 800LL * DAY);
    EXPECT_FAILED(r.items[3], at("dir/garbage.txt"),
                  fmt("no certificate found in %s (not PEM or DER)", at("dir/garbage.txt")));
    cm_file_scan_result_clear(&r);

    /* A trailing slash makes no double one. */
    SCAN("dir/", &r, 4);
    EXPECT_STR(r.items[1]->path, at("dir/a.pem"));
    cm_file_scan_result_clear(&r);
}

static void test_directory_nothing(void)
{
    struct cm_file_scan_result r;

    SCAN("emptydir", &r, 1);
    EXPECT_FAILED(r.items[0], at("emptydir"),
                  fmt("no certificate found: directory %s is empty", at("emptydir")));
    cm_file_scan_result_clear(&r);

    SCAN("keydir", &r, 1);
    EXPECT_FAILED(r.items[0], at("keydir"),
                  fmt("no certificate found in directory %s (skipped: 2 files with only keys, "
                      "CSRs or CRLs)",
                      at("keydir")));
    cm_file_scan_result_clear(&r);
}

static void test_glob(void)
{
    struct cm_file_scan_result r;

    SCAN("dir/[ab].pem", &r, 2);
    EXPECT_OK(r.items[0], "dir/a.pem", 1);
    EXPECT_OK(r.items[1], "dir/b.pem", 1);
    cm_file_scan_result_clear(&r);

    /* alias.pem (a link to b.pem) sorts before b.pem, but the file is reported under its own
     * name; hard.pem is a.pem again; key.pem is skipped. */
    SCAN("dir/*.pem", &r, 2);
    EXPECT_OK(r.items[0], "dir/a.pem", 1);
    EXPECT_OK(r.items[1], "dir/b.pem", 1);
    cm_file_scan_result_clear(&r);

    /* Hash links are skipped in globs too; the regular 0badcafe.0 is not. */
    SCAN("dir/*.*[0-9]", &r, 1);
    EXPECT_OK(r.items[0], "dir/0badcafe.0", 1);
    cm_file_scan_result_clear(&r);

    SCAN("dir/*.nothing", &r, 1);
    EXPECT_FAILED(r.items[0], at("dir/*.nothing"), fmt("no file matches %s", at("dir/*.nothing")));
    EXPECT_STR(r.items[0]->target, target("dir/*.nothing"));
    cm_file_scan_result_clear(&r);

    SCAN("keydir/*", &r, 1);
    EXPECT_FAILED(r.items[0], at("keydir/*"),
                  fmt("no certificate found in the files matching %s (skipped: 2 files with "
                      "only keys, CSRs or CRLs)",
                      at("keydir/*")));
    cm_file_scan_result_clear(&r);
}

static void test_file_cap(void)
{
    char sub[256];
    struct cm_file_scan_result r;
    int rc;

    snprintf(sub, sizeof(sub), "%s/many", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(sub, 0700), 0);
    for (int i = 0; i <= CM_FILECERT_MAX_FILES; i++) {
        char p[300];
        int fd;
        snprintf(p, sizeof(p), "%s/%05d.pem", sub, i);
        fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
        CU_ASSERT_FATAL(fd >= 0);
        close(fd);
    }
    rc = cm_file_scan(sub, NULL, (int64_t)gen_now, &r);
    EXPECT_INT(rc, 0);
    EXPECT_INT(r.count, CM_FILECERT_MAX_FILES + 1);
    if (rc == 0 && r.count == CM_FILECERT_MAX_FILES + 1) {
        EXPECT_STR(r.items[CM_FILECERT_MAX_FILES - 1]->path, fmt("%s/09999.pem", sub));
        EXPECT_FAILED(
            r.items[CM_FILECERT_MAX_FILES], sub,
            fmt("%s names 10001 files; only the first 10000 (in path order) were read", sub));
    }
    cm_file_scan_result_clear(&r);
}

/* ---- Analysis and report of file results ---- */

static const struct cm_policy def = CM_POLICY_DEFAULT;

/* The findings of result res at time now, as "id@position id@position". */
static void expect_result_findings(const struct cm_probe_result *res, time_t now, const char *want,
                                   const char *what, unsigned line)
{
    struct cm_findings f = {0};
    char got[512] = "";
    size_t used = 0;

    expect_int(cm_analyze(res, &def, now, &f), 0, "cm_analyze", line);
    for (size_t i = 0; i < f.count && used < sizeof(got); i++)
        used += (size_t)snprintf(got + used, sizeof(got) - used, "%s%s@%d", i ? " " : "",
                                 f.items[i].id, f.items[i].position);
    expect_str(got, want, what, line);
    cm_findings_clear(&f);
}

/* The findings of DIR/name's only result (read with password pw) at time now. */
static void expect_findings(const char *name, const char *pw, time_t now, const char *want,
                            unsigned line)
{
    struct cm_file_scan_result r;

    scan_pw(name, pw, &r, 1, line);
    expect_result_findings(r.items[0], now, want, name, line);
    cm_file_scan_result_clear(&r);
}

#define EXPECT_FINDINGS(name, now, want) expect_findings((name), NULL, (now), (want), __LINE__)
/* The keystore files are made after gen_now (keytool takes its time): judged a little later. */
#define KS_NOW (gen_now + 900)
#define EXPECT_FINDINGS_PW(name, pw, want) expect_findings((name), (pw), KS_NOW, (want), __LINE__)

/* The only finding of DIR/name at time now. */
static void expect_message(const char *name, time_t now, const char *id, int pos, const char *msg,
                           unsigned line)
{
    struct cm_file_scan_result r;
    struct cm_findings f = {0};

    scan_n(name, &r, 1, line);
    expect_int(cm_analyze(r.items[0], &def, now, &f), 0, "cm_analyze", line);
    expect_int(f.count, 1, "findings", line);
    if (f.count == 1) {
        expect_str(f.items[0].id, id, "id", line);
        expect_int(f.items[0].position, pos, "position", line);
        expect_str(f.items[0].message, msg, "message", line);
    }
    cm_findings_clear(&f);
    cm_file_scan_result_clear(&r);
}

#define EXPECT_MESSAGE(name, now, id, pos, msg)                                                    \
    expect_message((name), (now), (id), (pos), (msg), __LINE__)

static void test_analyze_validity(void)
{
    char when[32];

    /* Sound files: no trust, order, host, SAN or OCSP finding, although nothing here has a
     * SAN and the bundle ends with its root. The lifetime of a file's first certificate is
     * judged: long.pem lives 801 days, issued now (after 2026-03-15: 200 at most). */
    EXPECT_FINDINGS("leaf.pem", gen_now, "");
    EXPECT_FINDINGS("leaf.der", gen_now, "");
    EXPECT_FINDINGS("long.pem", gen_now, "cert.lifetime_long@0");
    EXPECT_FINDINGS("bundle.pem", gen_now, "");
    EXPECT_FINDINGS("root.pem", gen_now, "");

    cm_time_rfc3339(gen_now - 2 * DAY, when, sizeof(when));
    EXPECT_MESSAGE(
        "expired.pem", gen_now, "cert.expired", 0,
        fmt("the certificate (CN=certmon expired leaf) expired 2 days ago, on %s", when));
    cm_time_rfc3339(gen_now - DAY, when, sizeof(when));
    EXPECT_MESSAGE("long.pem", gen_now, "cert.lifetime_long", 0,
                   fmt("the certificate (CN=certmon long leaf) was issued %.10s, valid 801 days; "
                       "certificates issued from 2026-03-15 may be valid at most 200 days",
                       when));
    cm_time_rfc3339(gen_now + 90 * DAY, when, sizeof(when));
    /* 20 days left of 91: 33% of the lifetime is 30.03 days, so the day rule fires. */
    EXPECT_MESSAGE("leaf.pem", gen_now + 70 * DAY, "cert.expiring", 0,
                   fmt("the certificate (CN=certmon file leaf) expires in 20 days, on %s; under "
                       "the 30-day warning threshold",
                       when));
    EXPECT_MESSAGE(
        "bundle.pem", gen_now + 100 * DAY, "cert.expired", 0,
        fmt("bundle certificate 0 (CN=certmon file leaf) expired 10 days ago, on %s", when));
    /* Every certificate of a bundle counts, the root included. */
    EXPECT_FINDINGS("bundle.pem", gen_now + 1830LL * DAY, "cert.expired@0 cert.expired@1");
    EXPECT_FINDINGS("bundle.pem", gen_now + 3660LL * DAY,
                    "cert.expired@0 cert.expired@1 cert.expired@2");
    EXPECT_FINDINGS("bundle.pem", gen_now - 5 * DAY, "cert.not_yet_valid@0");
}

static void test_analyze_strength(void)
{
    EXPECT_MESSAGE("rsa1024.pem", gen_now, "key.weak", 0,
                   "the certificate (CN=certmon weak key leaf) has a 1024-bit RSA key; the "
                   "policy asks for at least 2048 bits");
    EXPECT_MESSAGE("sha1.pem", gen_now, "signature.weak", 0,
                   "the certificate (CN=certmon sha1 leaf) is signed with RSA-SHA1, which can "
                   "be forged; reissue it with SHA-256");
    /* A self-signed certificate's own signature is never checked: root or not, SHA-1 there
     * is no finding. */
    EXPECT_FINDINGS("sha1root.pem", gen_now, "");
    EXPECT_FINDINGS("sha1self.pem", gen_now, "");
    EXPECT_FINDINGS("sha1bundle.pem", gen_now, "signature.weak@0");
    /* Its key still matters: it is what the file's user trusts. */
    EXPECT_MESSAGE("weakroot.pem", gen_now, "key.weak", 0,
                   "the certificate (CN=certmon weak root) has a 1024-bit RSA key; the policy "
                   "asks for at least 2048 bits");
}

static void test_analyze_failed(void)
{
    const char *msg = fmt("no certificate found in %s (not PEM or DER)", at("garbage.txt"));
    struct cm_file_scan_result r;
    struct cm_findings f = {0};

    EXPECT_MESSAGE("garbage.txt", gen_now, "probe.failed", -1, msg);
    SCAN("garbage.txt", &r, 1);
    CU_ASSERT_EQUAL(cm_analyze(r.items[0], &def, gen_now, &f), 0);
    EXPECT_INT(cm_result_status(r.items[0], &f), CM_STATUS_CRITICAL);
    cm_findings_clear(&f);
    cm_file_scan_result_clear(&r);
    EXPECT_FINDINGS("dir/*.nothing", gen_now, "probe.failed@-1");
}

static void test_report(void)
{
    struct cm_file_scan_result r;
    struct cm_findings f = {0};
    json_t *j;
    char *dump, *want;

    SCAN("leaf.pem", &r, 1);
    CU_ASSERT_EQUAL(cm_analyze(r.items[0], &def, gen_now, &f), 0);
    j = cm_report_json(r.items[0], &f, gen_now);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    EXPECT_STR(cm_json_str(j, "path"), at("leaf.pem"));
    EXPECT_STR(cm_json_str(j, "status"), "ok");
    EXPECT_STR(cm_json_str(j, "chain.0.subject"), "CN=certmon file leaf");
    CU_ASSERT(json_is_real(cm_json_get(j, "timing_ms.total")));
    /* The same keys as an endpoint's, "path" after "target", connection facts null. */
    EXPECT_STR(cm_json_str(j, "key.status"), "match");
    EXPECT_STR(cm_json_str(j, "key.path"), at("leaf.key"));
    json_object_del(json_object_get(j, "timing_ms"), "total");
    json_object_del(j, "chain");
    json_object_del(j, "key");
    dump = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (asprintf(&want,
                 "{\"target\":\"file:%s\",\"path\":\"%s\",\"host\":null,\"port\":null,"
                 "\"sni\":null,\"address\":null,\"starttls\":null,\"status\":\"ok\","
                 "\"error\":null,\"timing_ms\":{\"dns\":null,\"connect\":null,\"starttls\":null,"
                 "\"handshake\":null},\"tls\":null,\"verification\":null,\"ocsp\":null,"
                 "\"mtls\":null,\"trust_anchor\":null,\"findings\":[],\"posture\":null,"
                 "\"ari\":null,\"keystore\":{\"format\":\"certificates\",\"integrity\":null}}",
                 at("leaf.pem"), at("leaf.pem")) < 0)
        want = NULL;
    EXPECT_STR(dump, want);
    free(want);
    free(dump);
    json_decref(j);
    cm_findings_clear(&f);
    cm_file_scan_result_clear(&r);

    SCAN("garbage.txt", &r, 1);
    CU_ASSERT_EQUAL(cm_analyze(r.items[0], &def, gen_now, &f), 0);
    j = cm_report_json(r.items[0], &f, gen_now);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    EXPECT_STR(cm_json_str(j, "status"), "critical");
    EXPECT_STR(cm_json_str(j, "error.kind"), "file");
    EXPECT_STR(cm_json_str(j, "error.message"),
               fmt("no certificate found in %s (not PEM or DER)", at("garbage.txt")));
    EXPECT_STR(cm_json_str(j, "findings.0.id"), "probe.failed");
    EXPECT_INT(json_array_size(cm_json_get(j, "chain")), 0);
    json_decref(j);
    cm_findings_clear(&f);
    cm_file_scan_result_clear(&r);
}

/* ---- Keystores and key pairs ---- */

#define P12PW "s3cret pass"
#define KSPW "st0re pass"
#define KEYPW "k3y pass"

/* The subjects of a result's certificates, ", "-separated, in chain order. */
static const char *subjects(const struct cm_probe_result *res)
{
    static char buf[1024];
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < res->tls.chain.count && used < sizeof(buf); i++)
        used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%s", i ? ", " : "",
                                 res->tls.chain.certs[i].subject);
    return buf;
}

/* A PKCS#12 file read fine: its certificates (leaf first) and integrity. */
static void expect_p12(const char *name, const char *pw, const char *subj,
                       enum cm_integrity integrity, unsigned line)
{
    struct cm_file_scan_result r;

    scan_pw(name, pw, &r, 1, line);
    expect_ok(r.items[0], name, r.items[0]->tls.chain.count, line);
    expect_str(subjects(r.items[0]), subj, "certificates", line);
    expect_int(r.items[0]->file.format, CM_FILE_PKCS12, "format", line);
    expect_int(r.items[0]->file.integrity, integrity, "integrity", line);
    expect_int(r.items[0]->file.key.status, CM_KEY_NONE, "no key kept", line);
    cm_file_scan_result_clear(&r);
}

#define EXPECT_P12(name, pw, subj, integrity)                                                      \
    expect_p12((name), (pw), (subj), (integrity), __LINE__)

/* A file that fails with "PATH: msg" when read with pw; the password is in no message. */
static void expect_fails_pw(const char *name, const char *pw, const char *msg, unsigned line)
{
    struct cm_file_scan_result r;

    scan_pw(name, pw, &r, 1, line);
    expect_failed(r.items[0], at(name), fmt("%s: %s", at(name), msg), line);
    expect_int(pw && strstr(r.items[0]->error_message, pw) != NULL, 0, "password not shown", line);
    cm_file_scan_result_clear(&r);
}

#define EXPECT_FAILS_PW(name, pw, msg) expect_fails_pw((name), (pw), (msg), __LINE__)

static void test_pkcs12(void)
{
    const char *leaf_inter = "CN=certmon file leaf, CN=certmon File Intermediate";

    EXPECT_P12("ks/chain.p12", P12PW, leaf_inter, CM_INTEGRITY_VERIFIED);
    /* RC2-40 and 3DES, as openssl pkcs12 -legacy writes them: GnuTLS 3.7 reads them. */
    EXPECT_P12("ks/legacy.p12", P12PW, leaf_inter, CM_INTEGRITY_VERIFIED);
    EXPECT_P12("ks/nomac.p12", P12PW, leaf_inter, CM_INTEGRITY_ABSENT);
    /* The empty password (-passout pass:) needs no configuration. */
    EXPECT_P12("ks/empty.p12", NULL, leaf_inter, CM_INTEGRITY_VERIFIED);
    EXPECT_P12("ks/certonly.p12", P12PW, "CN=certmon File Root, CN=certmon File Intermediate",
               CM_INTEGRITY_VERIFIED);
    /* Known by its content, whatever its name. */
    EXPECT_P12("ks/store.bin", P12PW, leaf_inter, CM_INTEGRITY_VERIFIED);
    /* keytool's default store type is PKCS#12 (Java 9 and later): its key entry first. */
    EXPECT_P12("ks/kt.p12", KSPW, "CN=certmon-kt-p12, CN=certmon File Root", CM_INTEGRITY_VERIFIED);

    EXPECT_FAILS_PW("ks/chain.p12", "n0t-it", "cannot decrypt P12: wrong password");
    EXPECT_FAILS_PW("ks/legacy.p12", "n0t-it", "cannot decrypt P12: wrong password");
    EXPECT_FAILS_PW("ks/chain.p12", NULL,
                    "cannot decrypt P12: it is protected by a password, and none is given (set "
                    "password or password_file)");
    EXPECT_FAILS_PW("ks/empty.p12", "n0t-it", "cannot decrypt P12: wrong password");

    EXPECT_FINDINGS_PW("ks/chain.p12", P12PW, "");
    EXPECT_FINDINGS_PW("ks/nomac.p12", P12PW, "keystore.unverified@-1");
    EXPECT_FINDINGS_PW("ks/chain.p12", "wrong", "probe.failed@-1");
}

/* A Java KeyStore's certificates, as a sorted list of subjects (the store is a hash table:
 * keytool writes the entries in no fixed order, but a key entry's chain stays together). */
static void test_jks(void)
{
    struct cm_file_scan_result r;
    struct cm_findings f = {0};
    char got[512] = "";
    const char *want = "CN=certmon File Intermediate|CN=certmon File Root|CN=certmon-kt-ec|"
                       "CN=certmon-kt-rsa|";
    const char *names[8];
    size_t n;

    SCAN("ks/kt.jks", &r, 1);
    EXPECT_OK(r.items[0], "ks/kt.jks", 4);
    EXPECT_INT(r.items[0]->file.format, CM_FILE_JKS);
    EXPECT_INT(r.items[0]->file.integrity, CM_INTEGRITY_UNVERIFIED);
    n = r.items[0]->tls.chain.count;
    for (size_t i = 0; i < n && i < 8; i++)
        names[i] = r.items[0]->tls.chain.certs[i].subject;
    for (size_t i = 1; i < n && i < 8; i++) /* insertion sort: four names */
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    for (size_t i = 0; i < n && i < 8; i++)
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s|", names[i]);
    EXPECT_STR(got, want);
    CU_ASSERT_EQUAL(cm_analyze(r.items[0], &def, KS_NOW, &f), 0);
    EXPECT_INT(f.count >= 1, 1);
    if (f.count >= 1) {
        EXPECT_STR(f.items[f.count - 1].id, "keystore.unverified");
        EXPECT_INT(f.items[f.count - 1].severity, CM_SEV_INFO);
        EXPECT_STR(f.items[f.count - 1].message,
                   "the Java KeyStore's integrity digest was not verified: it needs the store "
                   "password (set password or password_file)");
    }
    cm_findings_clear(&f);
    cm_file_scan_result_clear(&r);

    SCAN_PW("ks/kt.jks", KSPW, &r, 1);
    EXPECT_OK(r.items[0], "ks/kt.jks", 4);
    EXPECT_INT(r.items[0]->file.integrity, CM_INTEGRITY_VERIFIED);
    cm_file_scan_result_clear(&r);
    EXPECT_FINDINGS_PW("ks/kt.jks", KSPW, "");

    /* A wrong password and an altered file look the same: the certificates are still read. */
    SCAN_PW("ks/kt.jks", "wrong", &r, 1);
    EXPECT_OK(r.items[0], "ks/kt.jks", 4);
    EXPECT_INT(r.items[0]->file.integrity, CM_INTEGRITY_FAILED);
    cm_file_scan_result_clear(&r);
    SCAN_PW("ks/altered.jks", KSPW, &r, 1);
    EXPECT_INT(r.items[0]->file.integrity, CM_INTEGRITY_FAILED);
    CU_ASSERT_EQUAL(cm_analyze(r.items[0], &def, KS_NOW, &f), 0);
    EXPECT_INT(f.count >= 1, 1);
    if (f.count >= 1) {
        EXPECT_STR(f.items[0].id, "keystore.integrity_failed");
        EXPECT_INT(f.items[0].severity, CM_SEV_CRITICAL);
        EXPECT_INT(f.items[0].position, -1);
    }
    cm_findings_clear(&f);
    cm_file_scan_result_clear(&r);

    SCAN("ks/cut.jks", &r, 1);
    EXPECT_INT(r.items[0]->error_kind, CM_ERRK_FILE);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.items[0]->error_message, ": cannot read JKS: entry 1 is cut "
                                                             "short at byte "));
    cm_file_scan_result_clear(&r);
    /* JCEKS: the same layout, read as long as it holds no secret key. */
    SCAN_PW("ks/trust.jceks", KSPW, &r, 1);
    EXPECT_OK(r.items[0], "ks/trust.jceks", 1);
    EXPECT_STR(r.items[0]->tls.chain.certs[0].subject, "CN=certmon File Root");
    EXPECT_INT(r.items[0]->file.integrity, CM_INTEGRITY_VERIFIED);
    cm_file_scan_result_clear(&r);
    EXPECT_FAILS_PW("ks/sec.jceks", KSPW,
                    "cannot read JCEKS: entry 1 is a secret key, which certmon cannot skip "
                    "(convert the store to PKCS#12 with keytool -importkeystore)");
}

/* The key paired with DIR/name's only result. */
static void expect_key(const char *name, const char *pw, enum cm_key_status status, const char *key,
                       const char *type, const char *error, unsigned line)
{
    struct cm_file_scan_result r;
    const struct cm_key_check *k;

    scan_pw(name, pw, &r, 1, line);
    expect_int(r.items[0]->error_kind, CM_ERRK_NONE, "read", line);
    k = &r.items[0]->file.key;
    expect_int(k->status, status, "key status", line);
    expect_str(k->path, key ? at(key) : NULL, "key path", line);
    expect_str(k->type, type, "key type", line);
    expect_str(k->error, error, "key error", line);
    if (status == CM_KEY_MATCH)
        expect_str(k->spki_sha256, r.items[0]->tls.chain.certs[0].spki_sha256, "spki", line);
    cm_file_scan_result_clear(&r);
}

#define EXPECT_KEY(name, pw, status, key, type, error)                                             \
    expect_key((name), (pw), (status), (key), (type), (error), __LINE__)

static void test_key_pairs(void)
{
    /* The same stem, a key of each type. */
    EXPECT_KEY("ks/rsa.pem", NULL, CM_KEY_MATCH, "ks/rsa.key", "RSA", NULL);
    EXPECT_KEY("ks/ec.pem", NULL, CM_KEY_MATCH, "ks/ec.key", "EC", NULL);
    EXPECT_KEY("ks/ed.pem", NULL, CM_KEY_MATCH, "ks/ed.key", "Ed25519", NULL);
    EXPECT_KEY("ks/der.pem", NULL, CM_KEY_MATCH, "ks/der.key", "EC", NULL);
    EXPECT_KEY("ks/mis.crt", NULL, CM_KEY_MISMATCH, "ks/mis.key", "EC", NULL);
    /* An encrypted PKCS#8 key needs the password. */
    EXPECT_KEY("ks/enc.pem", KEYPW, CM_KEY_MATCH, "ks/enc.key", "RSA", NULL);
    EXPECT_KEY("ks/enc.pem", "wrong", CM_KEY_UNREADABLE, "ks/enc.key", NULL,
               "cannot decrypt the key: wrong password");
    EXPECT_KEY("ks/enc.pem", NULL, CM_KEY_UNREADABLE, "ks/enc.key", NULL,
               "the key is encrypted and no password is given (set password or password_file)");
    /* A key in the certificate's own file. */
    EXPECT_KEY("combined.pem", NULL, CM_KEY_MATCH, "combined.pem", "RSA", NULL);
    EXPECT_KEY("ks/combmis.pem", NULL, CM_KEY_MISMATCH, "ks/combmis.pem", "EC", NULL);
    /* No key of that stem: nothing to compare. */
    EXPECT_KEY("bundle.pem", NULL, CM_KEY_NONE, NULL, NULL, NULL);

    EXPECT_FINDINGS_PW("ks/rsa.pem", NULL, "");
    EXPECT_FINDINGS_PW("ks/mis.crt", NULL, "key.mismatch@0");
    EXPECT_FINDINGS_PW("ks/enc.pem", "wrong", "key.unreadable@0");
}

static void test_key_messages(void)
{
    struct cm_file_scan_result r, k;
    struct cm_findings f = {0};

    SCAN("ks/mis.crt", &r, 1);
    SCAN("ks/ec.pem", &k, 1);
    CU_ASSERT_EQUAL(cm_analyze(r.items[0], &def, KS_NOW, &f), 0);
    CU_ASSERT_EQUAL_FATAL(f.count, 1);
    EXPECT_STR(f.items[0].id, "key.mismatch");
    EXPECT_INT(f.items[0].severity, CM_SEV_CRITICAL);
    EXPECT_STR(f.items[0].message,
               fmt("the private key in %s (EC, public key sha256 %s) does not belong to the "
                   "certificate CN=certmon rsa (public key sha256 %s)",
                   at("ks/mis.key"), k.items[0]->tls.chain.certs[0].spki_sha256,
                   r.items[0]->tls.chain.certs[0].spki_sha256));
    cm_findings_clear(&f);
    cm_file_scan_result_clear(&r);
    cm_file_scan_result_clear(&k);

    SCAN("ks/junk.pem", &r, 1);
    CU_ASSERT_EQUAL(cm_analyze(r.items[0], &def, KS_NOW, &f), 0);
    CU_ASSERT_EQUAL_FATAL(f.count, 1);
    EXPECT_STR(f.items[0].id, "key.unreadable");
    EXPECT_INT(f.items[0].severity, CM_SEV_WARNING);
    /* Not PEM: read as DER, and GnuTLS's reason follows. */
    CU_ASSERT_PTR_NOT_NULL(
        strstr(f.items[0].message, fmt("the private key %s paired with the certificate cannot be "
                                       "used: not a private key GnuTLS can read (",
                                       at("ks/junk.key"))));
    cm_findings_clear(&f);
    cm_file_scan_result_clear(&r);

    SCAN("ks/livemis/cert.pem", &r, 1);
    EXPECT_INT(r.items[0]->file.key.status, CM_KEY_NONE); /* alone, no stem: not paired */
    cm_findings_clear(&f);
    cm_file_scan_result_clear(&r);
}

/* The key status and key file of each result of a directory or glob, "name:status:key ...". */
static void expect_dir_keys(const char *pattern, const char *want, unsigned line)
{
    struct cm_file_scan_result r;
    char got[1024] = "";

    expect_int(cm_file_scan(at(pattern), NULL, (int64_t)gen_now, &r), 0, "scan", line);
    for (size_t i = 0; i < r.count; i++) {
        const struct cm_probe_result *res = r.items[i];
        const char *name = strrchr(res->path, '/') + 1;
        const char *key = res->file.key.path ? strrchr(res->file.key.path, '/') + 1 : "-";
        const char *st = cm_key_status_name(res->file.key.status);
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s:%s:%s", i ? " " : "", name,
                 res->error_kind ? "failed"
                 : st            ? st
                                 : "none",
                 key);
    }
    expect_str(got, want, pattern, line);
    cm_file_scan_result_clear(&r);
}

#define EXPECT_DIR_KEYS(pattern, want) expect_dir_keys((pattern), (want), __LINE__)

static void test_key_dirs(void)
{
    struct cm_file_scan_result r;
    struct cm_findings f = {0};

    /* certbot: privkey.pem goes with cert.pem and fullchain.pem (the same leaf), not with
     * chain.pem (a CA certificate first). Its README is no certificate: use a *.pem glob. */
    EXPECT_DIR_KEYS("ks/live/*.pem", "cert.pem:match:privkey.pem chain.pem:none:- "
                                     "fullchain.pem:match:privkey.pem");
    EXPECT_DIR_KEYS("ks/live", "README:failed:- cert.pem:match:privkey.pem chain.pem:none:- "
                               "fullchain.pem:match:privkey.pem");
    EXPECT_DIR_KEYS("ks/livemis/*.pem", "cert.pem:mismatch:privkey.pem chain.pem:none:- "
                                        "fullchain.pem:mismatch:privkey.pem");
    /* A dangling privkey.pem link: the certificates still read, the key reported. */
    EXPECT_DIR_KEYS("ks/livedangling/*.pem", "cert.pem:unreadable:privkey.pem chain.pem:none:- "
                                             "fullchain.pem:unreadable:privkey.pem");
    /* An ACME client's cert.pem + key.pem. */
    EXPECT_DIR_KEYS("ks/acme", "cert.pem:match:key.pem");
    /* Two keys: which one is meant is not known; no pairing. */
    EXPECT_DIR_KEYS("ks/twokeys", "cert.pem:none:-");

    SCAN("ks/livedangling/*.pem", &r, 3);
    EXPECT_STR(r.items[0]->file.key.error, "cannot read it: No such file or directory");
    CU_ASSERT_EQUAL(cm_analyze(r.items[0], &def, KS_NOW, &f), 0);
    CU_ASSERT_EQUAL_FATAL(f.count, 1);
    EXPECT_STR(f.items[0].id, "key.unreadable");
    cm_findings_clear(&f);
    cm_file_scan_result_clear(&r);
}

static void test_keystore_report(void)
{
    struct cm_file_scan_result r;
    struct cm_findings f = {0};
    json_t *j;

    SCAN_PW("ks/chain.p12", P12PW, &r, 1);
    CU_ASSERT_EQUAL(cm_analyze(r.items[0], &def, KS_NOW, &f), 0);
    j = cm_report_json(r.items[0], &f, KS_NOW);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    EXPECT_STR(cm_json_str(j, "keystore.format"), "pkcs12");
    EXPECT_STR(cm_json_str(j, "keystore.integrity"), "verified");
    CU_ASSERT(json_is_null(cm_json_get(j, "key")));
    EXPECT_STR(cm_json_str(j, "chain.0.subject"), "CN=certmon file leaf");
    EXPECT_STR(cm_json_str(j, "chain.1.subject"), "CN=certmon File Intermediate");
    json_decref(j);
    cm_findings_clear(&f);
    cm_file_scan_result_clear(&r);

    SCAN("ks/mis.crt", &r, 1);
    CU_ASSERT_EQUAL(cm_analyze(r.items[0], &def, KS_NOW, &f), 0);
    j = cm_report_json(r.items[0], &f, KS_NOW);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    EXPECT_STR(cm_json_str(j, "keystore.format"), "certificates");
    CU_ASSERT(json_is_null(cm_json_get(j, "keystore.integrity")));
    EXPECT_STR(cm_json_str(j, "key.status"), "mismatch");
    EXPECT_STR(cm_json_str(j, "key.path"), at("ks/mis.key"));
    EXPECT_STR(cm_json_str(j, "key.type"), "EC");
    EXPECT_INT(strlen(cm_json_str(j, "key.spki_sha256")), 64);
    CU_ASSERT(json_is_null(cm_json_get(j, "key.error")));
    EXPECT_STR(cm_json_str(j, "status"), "critical");
    json_decref(j);
    cm_findings_clear(&f);
    cm_file_scan_result_clear(&r);
}

/* ---- On the loop ---- */

struct delivery {
    int calls, status;
    struct cm_file_scan_result r;
};

static void on_scan(int status, struct cm_file_scan_result *r, void *arg)
{
    struct delivery *d = arg;

    d->calls++;
    d->status = status;
    d->r = *r; /* the items are ours now */
}

static void test_async(void)
{
    uv_loop_t loop;
    struct delivery d = {0};
    struct cm_file_scan_job *job = NULL;
    time_t before = time(NULL), after;

    CU_ASSERT_EQUAL_FATAL(uv_loop_init(&loop), 0);
    EXPECT_INT(cm_file_scan_start(&loop, at("dir"), NULL, on_scan, &d, &job), 0);
    CU_ASSERT_PTR_NOT_NULL(job);
    EXPECT_INT(d.calls, 0); /* never from inside the start */
    EXPECT_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    after = time(NULL);
    EXPECT_INT(d.calls, 1);
    EXPECT_INT(d.status, 0);
    EXPECT_INT(d.r.count, 4);
    if (d.r.count == 4) {
        EXPECT_STR(d.r.items[1]->target, target("dir/a.pem"));
        CU_ASSERT(d.r.items[1]->finished_at >= before && d.r.items[1]->finished_at <= after);
    }
    cm_file_scan_result_clear(&d.r);
    EXPECT_INT(uv_loop_close(&loop), 0);

    /* Without *out, and cancelling NULL does nothing. */
    CU_ASSERT_EQUAL_FATAL(uv_loop_init(&loop), 0);
    memset(&d, 0, sizeof(d));
    EXPECT_INT(cm_file_scan_start(&loop, at("leaf.pem"), NULL, on_scan, &d, NULL), 0);
    cm_file_scan_cancel(NULL);
    EXPECT_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    EXPECT_INT(d.calls, 1);
    EXPECT_INT(d.r.count, 1);
    cm_file_scan_result_clear(&d.r);
    EXPECT_INT(uv_loop_close(&loop), 0);
}

#define BLOCKERS 8 /* at least the thread pool's size (main sets it to 2) */

static uv_sem_t gate;

static void block_work(uv_work_t *req)
{
    (void)req;
    uv_sem_wait(&gate);
}

static void block_done(uv_work_t *req, int status)
{
    (void)req;
    (void)status;
}

static void test_cancel(void)
{
    uv_loop_t loop;
    uv_work_t blockers[BLOCKERS];
    struct delivery d = {0};
    struct cm_file_scan_job *job = NULL;

    CU_ASSERT_EQUAL_FATAL(uv_loop_init(&loop), 0);
    CU_ASSERT_EQUAL_FATAL(uv_sem_init(&gate, 0), 0);
    /* Every pool thread waits at the gate, so the scan queued after them cannot begin. */
    for (int i = 0; i < BLOCKERS; i++)
        CU_ASSERT_EQUAL_FATAL(uv_queue_work(&loop, &blockers[i], block_work, block_done), 0);
    EXPECT_INT(cm_file_scan_start(&loop, at("dir"), NULL, on_scan, &d, &job), 0);
    cm_file_scan_cancel(job);
    for (int i = 0; i < BLOCKERS; i++)
        uv_sem_post(&gate);
    EXPECT_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    EXPECT_INT(d.calls, 1);
    EXPECT_INT(d.status, UV_ECANCELED);
    EXPECT_INT(d.r.count, 0);
    CU_ASSERT_PTR_NULL(d.r.items);
    EXPECT_INT(uv_loop_close(&loop), 0);
    uv_sem_destroy(&gate);
}

static CU_TestInfo tests[] = {
    {"PEM file", test_pem},
    {"DER file", test_der},
    {"PEM bundle", test_bundle},
    {"unusable files", test_unusable_files},
    {"unreadable file", test_unreadable},
    {"directory", test_directory},
    {"directory without certificates", test_directory_nothing},
    {"glob", test_glob},
    {"file cap", test_file_cap},
    {"analysis: validity", test_analyze_validity},
    {"analysis: key and signature", test_analyze_strength},
    {"analysis: failed file", test_analyze_failed},
    {"report", test_report},
    {"PKCS#12", test_pkcs12},
    {"Java KeyStore", test_jks},
    {"key pairs", test_key_pairs},
    {"key messages", test_key_messages},
    {"key pairs in directories", test_key_dirs},
    {"keystore report", test_keystore_report},
    {"scan on the loop", test_async},
    {"cancel", test_cancel},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    /* Read once, when the pool first starts: test_cancel relies on a small pool. */
    setenv("UV_THREADPOOL_SIZE", "2", 1);
    return cm_test_main("filecert", tests, suite_init, suite_cleanup);
}
