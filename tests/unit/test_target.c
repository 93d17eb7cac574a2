/* Unit tests for target parsing (src/probe/target.c). */
#include "cmtest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "certmon/base/error.h"
#include "certmon/probe/target.h"

/* String comparison that reports both values on failure and copes with NULL. */
static char dummy[] = "not-a-heap-pointer";

/* Fills t with non-NULL garbage so that tests can see the parser empties it. */
static void poison(struct cm_target *t)
{
    t->name = dummy;
    t->host = dummy;
    t->sni = dummy;
    t->verify_name = dummy;
    t->port = 7;
    t->ca_file = dummy;
}

static void expect_ok(const char *spec, uint16_t defport, const char *sni, const char *name,
                      const char *host, unsigned port, const char *want_sni,
                      const char *verify_name, unsigned line)
{
    struct cm_target t;
    char err[256] = "";
    char what[300];
    int rc;

    poison(&t);
    rc = cm_target_parse(spec, defport, sni, &t, err, sizeof(err));
    snprintf(what, sizeof(what), "parse(\"%s\") rc", spec);
    expect_int(rc, 0, what, line);
    if (rc != 0)
        return;
    snprintf(what, sizeof(what), "parse(\"%s\").name", spec);
    expect_str(t.name, name, what, line);
    snprintf(what, sizeof(what), "parse(\"%s\").host", spec);
    expect_str(t.host, host, what, line);
    snprintf(what, sizeof(what), "parse(\"%s\").port", spec);
    expect_int(t.port, port, what, line);
    snprintf(what, sizeof(what), "parse(\"%s\").sni", spec);
    expect_str(t.sni, want_sni, what, line);
    snprintf(what, sizeof(what), "parse(\"%s\").verify_name", spec);
    expect_str(t.verify_name, verify_name, what, line);
    snprintf(what, sizeof(what), "parse(\"%s\").ca_file", spec);
    CU_assertImplementation(t.ca_file == NULL, line, what, __FILE__, "", CU_FALSE);
    /* A copy has the same texts (the parse shares equal ones; the copy must too, or it reads
     * past its block). */
    struct cm_target c;
    snprintf(what, sizeof(what), "copy(\"%s\")", spec);
    expect_int(cm_target_copy(&c, &t), 0, what, line);
    expect_str(c.name, name, what, line);
    expect_str(c.host, host, what, line);
    expect_str(c.sni, want_sni, what, line);
    expect_str(c.verify_name, verify_name, what, line);
    CU_assertImplementation(c.name != t.name && c.port == t.port, line, what, __FILE__, "",
                            CU_FALSE);
    cm_target_clear(&c);
    cm_target_clear(&t);
    CU_ASSERT_PTR_NULL(t.name);
    CU_ASSERT_PTR_NULL(t.host);
    CU_ASSERT_PTR_NULL(t.sni);
    CU_ASSERT_PTR_NULL(t.verify_name);
    CU_ASSERT_EQUAL(t.port, 0);
}

#define OK(spec, sni, name, host, port, want_sni, vname)                                           \
    expect_ok((spec), CM_DEFAULT_PORT, (sni), (name), (host), (port), (want_sni), (vname), __LINE__)

/* Parses spec, expecting code want; checks the message names the input and *out is empty. */
static void expect_err(const char *spec, const char *sni, int want, unsigned line)
{
    struct cm_target t;
    char err[1024];
    char what[600];
    int rc;

    poison(&t);
    memset(err, 0, sizeof(err));
    rc = cm_target_parse(spec, CM_DEFAULT_PORT, sni, &t, err, sizeof(err));
    snprintf(what, sizeof(what), "parse(\"%.400s\") rc (err: %.150s)", spec, err);
    expect_int(rc, want, what, line);
    snprintf(what, sizeof(what), "parse(\"%.400s\"): error message is empty", spec);
    CU_assertImplementation(err[0] != '\0', line, what, __FILE__, "", CU_FALSE);
    /* The message names what was wrong: the input itself (or the bad SNI). */
    if (sni || spec[0]) {
        snprintf(what, sizeof(what), "message \"%.300s\" names \"%.200s\"", err, sni ? sni : spec);
        CU_assertImplementation(strstr(err, sni ? sni : spec) != NULL, line, what, __FILE__, "",
                                CU_FALSE);
    }
    snprintf(what, sizeof(what), "parse(\"%.400s\") left the target non-empty", spec);
    CU_assertImplementation(t.name == NULL && t.host == NULL && t.sni == NULL &&
                                t.verify_name == NULL && t.ca_file == NULL && t.port == 0,
                            line, what, __FILE__, "", CU_FALSE);
    cm_target_clear(&t); /* no-op on an empty target */
}

#define ERR(spec, want) expect_err((spec), NULL, (want), __LINE__)

static void test_host_default_port(void)
{
    OK("example.com", NULL, "example.com:443", "example.com", 443, "example.com", "example.com");
    OK("localhost", NULL, "localhost:443", "localhost", 443, "localhost", "localhost");
    /* Case and underscores are kept as written. */
    OK("My_Host.Example.COM", NULL, "My_Host.Example.COM:443", "My_Host.Example.COM", 443,
       "My_Host.Example.COM", "My_Host.Example.COM");
    /* A single label that starts with a digit is a name, not an address. */
    OK("1host", NULL, "1host:443", "1host", 443, "1host", "1host");
}

static void test_custom_default_port(void)
{
    expect_ok("mail.example.org", 993, NULL, "mail.example.org:993", "mail.example.org", 993,
              "mail.example.org", "mail.example.org", __LINE__);
    expect_ok("[::1]", 636, NULL, "[::1]:636", "::1", 636, NULL, "::1", __LINE__);
    /* An explicit port wins over the default. */
    expect_ok("mail.example.org:465", 993, NULL, "mail.example.org:465", "mail.example.org", 465,
              "mail.example.org", "mail.example.org", __LINE__);
}

static void test_host_port(void)
{
    OK("example.com:8443", NULL, "example.com:8443", "example.com", 8443, "example.com",
       "example.com");
    OK("example.com:1", NULL, "example.com:1", "example.com", 1, "example.com", "example.com");
    OK("example.com:65535", NULL, "example.com:65535", "example.com", 65535, "example.com",
       "example.com");
    /* Leading zeros are accepted and the display name is canonical. */
    OK("example.com:0443", NULL, "example.com:443", "example.com", 443, "example.com",
       "example.com");
    /* The root label (trailing dot) is allowed; SNI carries the name without it
     * (RFC 6066), verification uses the name as given. */
    OK("example.com.:443", NULL, "example.com.:443", "example.com.", 443, "example.com",
       "example.com.");
}

static void test_ipv4(void)
{
    OK("127.0.0.1:25", NULL, "127.0.0.1:25", "127.0.0.1", 25, NULL, "127.0.0.1");
    OK("192.0.2.10", NULL, "192.0.2.10:443", "192.0.2.10", 443, NULL, "192.0.2.10");
}

static void test_ipv6(void)
{
    OK("[::1]:8443", NULL, "[::1]:8443", "::1", 8443, NULL, "::1");
    OK("[2001:db8::1]", NULL, "[2001:db8::1]:443", "2001:db8::1", 443, NULL, "2001:db8::1");
    /* A bare literal gets the default port and the canonical bracketed name. */
    OK("::1", NULL, "[::1]:443", "::1", 443, NULL, "::1");
    OK("2001:db8::1", NULL, "[2001:db8::1]:443", "2001:db8::1", 443, NULL, "2001:db8::1");
    OK("[::ffff:192.0.2.1]:993", NULL, "[::ffff:192.0.2.1]:993", "::ffff:192.0.2.1", 993, NULL,
       "::ffff:192.0.2.1");
    /* "::1:443" is itself a valid IPv6 literal (0:0:0:0:0:0:1:443), not ::1 port 443: bare
     * literals never carry a port. */
    OK("::1:443", NULL, "[::1:443]:443", "::1:443", 443, NULL, "::1:443");
}

static void test_sni_override(void)
{
    OK("10.0.0.5:8443", "api.internal", "10.0.0.5:8443", "10.0.0.5", 8443, "api.internal",
       "api.internal");
    OK("[::1]:8443", "localhost", "[::1]:8443", "::1", 8443, "localhost", "localhost");
    OK("lb.example.com", "www.example.com", "lb.example.com:443", "lb.example.com", 443,
       "www.example.com", "www.example.com");
    /* An empty override is no override. */
    OK("example.com", "", "example.com:443", "example.com", 443, "example.com", "example.com");
    OK("127.0.0.1", "", "127.0.0.1:443", "127.0.0.1", 443, NULL, "127.0.0.1");
    /* An address given as --sni is verified against but never sent as a server name. */
    OK("lb.example.com", "192.0.2.1", "lb.example.com:443", "lb.example.com", 443, NULL,
       "192.0.2.1");
    OK("lb.example.com", "www.example.com.", "lb.example.com:443", "lb.example.com", 443,
       "www.example.com", "www.example.com.");
}

static void test_bad_sni(void)
{
    expect_err("example.com", "bad name!", CM_EBADARG, __LINE__);
    expect_err("10.0.0.5", "-api.internal", CM_EBADARG, __LINE__);
}

static void test_errors_target(void)
{
    ERR("", CM_EBADTARGET);
    ERR(":443", CM_EBADTARGET);
    ERR("[::1", CM_EBADTARGET);
    ERR("[::1]x", CM_EBADTARGET);
    ERR("[::1]443", CM_EBADTARGET);
    ERR("[]", CM_EBADTARGET);
    ERR("[]:443", CM_EBADTARGET);
    ERR("[example.com]:443", CM_EBADTARGET);
    ERR("[127.0.0.1]:443", CM_EBADTARGET);
    ERR("a b", CM_EBADTARGET);
    ERR("a b:443", CM_EBADTARGET);
    ERR("bad_char!", CM_EBADTARGET);
    ERR("host:1:2", CM_EBADTARGET);
    ERR("fe80::zz:443", CM_EBADTARGET);
    ERR("fe80::1%eth0", CM_EBADTARGET);
    ERR("-leading.example", CM_EBADTARGET);
    ERR("trailing-.example", CM_EBADTARGET);
    ERR("example-", CM_EBADTARGET);
    ERR("a..example", CM_EBADTARGET);
    ERR(".example", CM_EBADTARGET);
    ERR(".", CM_EBADTARGET);
    ERR("example.com..", CM_EBADTARGET);
}

static void test_errors_port(void)
{
    ERR("host:", CM_EBADPORT);
    ERR("host:0", CM_EBADPORT);
    ERR("host:65536", CM_EBADPORT);
    ERR("host:99999999999999999999999", CM_EBADPORT);
    ERR("host:abc", CM_EBADPORT);
    ERR("host:-1", CM_EBADPORT);
    ERR("host:+1", CM_EBADPORT);
    ERR("host: 1", CM_EBADPORT);
    ERR("host:1 ", CM_EBADPORT);
    ERR("host:44x", CM_EBADPORT);
    ERR("[::1]:", CM_EBADPORT);
    ERR("[::1]:0", CM_EBADPORT);
    ERR("[::1]:70000", CM_EBADPORT);
    ERR("127.0.0.1:0", CM_EBADPORT);
}

/* Builds a name of nlabels labels of len characters each ("aaa.bbb...."). */
static void make_name(char *buf, size_t nlabels, size_t len)
{
    size_t p = 0;

    for (size_t i = 0; i < nlabels; i++) {
        if (i)
            buf[p++] = '.';
        memset(buf + p, 'a' + (int)(i % 26), len);
        p += len;
    }
    buf[p] = '\0';
}

static void test_lengths(void)
{
    char name[400];
    char spec[420];

    /* Labels: 63 characters are fine, 64 are not. */
    memset(name, 'a', 63);
    strcpy(name + 63, ".example");
    CU_ASSERT_TRUE(cm_host_is_valid_name(name));
    OK(name, NULL, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example:443",
       name, 443, name, name);
    memset(name, 'a', 64);
    strcpy(name + 64, ".example");
    CU_ASSERT_FALSE(cm_host_is_valid_name(name));
    ERR(name, CM_EBADTARGET);
    memset(name, 'b', 64);
    name[64] = '\0';
    CU_ASSERT_FALSE(cm_host_is_valid_name(name));
    ERR(name, CM_EBADTARGET);

    /* Names: 4 labels of 63 plus 3 dots = 255 is too long; 253 is the maximum. */
    make_name(name, 4, 63);
    CU_ASSERT_EQUAL(strlen(name), 255);
    CU_ASSERT_FALSE(cm_host_is_valid_name(name));
    ERR(name, CM_EBADTARGET);

    make_name(name, 4, 62); /* 4 * 62 + 3 = 251 */
    strcat(name, "ab");     /* the last label is now 64 characters: invalid */
    CU_ASSERT_FALSE(cm_host_is_valid_name(name));

    make_name(name, 4, 62);
    strcat(name, "a"); /* 252 */
    CU_ASSERT_EQUAL(strlen(name), 252);
    CU_ASSERT_TRUE(cm_host_is_valid_name(name));
    make_name(name, 3, 63); /* 191 */
    strcat(name, ".");
    memset(name + 192, 'z', 61); /* 192 + 61 = 253 */
    name[253] = '\0';
    CU_ASSERT_EQUAL(strlen(name), 253);
    CU_ASSERT_TRUE(cm_host_is_valid_name(name));
    snprintf(spec, sizeof(spec), "%s:8443", name);
    {
        struct cm_target t;
        char err[64];
        CU_ASSERT_EQUAL_FATAL(cm_target_parse(spec, 443, NULL, &t, err, sizeof(err)), 0);
        EXPECT_STR(t.host, name);
        EXPECT_STR(t.name, spec);
        EXPECT_INT(t.port, 8443);
        cm_target_clear(&t);
    }
    /* 253 characters plus the root dot is still valid; 254 without it is not. */
    strcat(name, ".");
    CU_ASSERT_TRUE(cm_host_is_valid_name(name));
    name[253] = 'z';
    name[254] = '\0';
    CU_ASSERT_EQUAL(strlen(name), 254);
    CU_ASSERT_FALSE(cm_host_is_valid_name(name));
    ERR(name, CM_EBADTARGET);

    /* 300 characters: rejected before it could overflow anything. */
    make_name(name, 5, 59); /* 5 * 59 + 4 = 299 */
    strcat(name, "x");
    CU_ASSERT_EQUAL(strlen(name), 300);
    CU_ASSERT_FALSE(cm_host_is_valid_name(name));
    ERR(name, CM_EBADTARGET);
    snprintf(spec, sizeof(spec), "%s:443", name);
    ERR(spec, CM_EBADTARGET);
    snprintf(spec, sizeof(spec), "[%s]:443", name);
    ERR(spec, CM_EBADTARGET);
}

static void test_host_is_ip(void)
{
    CU_ASSERT_TRUE(cm_host_is_ip("127.0.0.1"));
    CU_ASSERT_TRUE(cm_host_is_ip("0.0.0.0"));
    CU_ASSERT_TRUE(cm_host_is_ip("255.255.255.255"));
    CU_ASSERT_TRUE(cm_host_is_ip("::"));
    CU_ASSERT_TRUE(cm_host_is_ip("::1"));
    CU_ASSERT_TRUE(cm_host_is_ip("2001:db8::1"));
    CU_ASSERT_TRUE(cm_host_is_ip("::ffff:10.0.0.1"));
    CU_ASSERT_TRUE(cm_host_is_ip("::1:443"));
    CU_ASSERT_FALSE(cm_host_is_ip(""));
    CU_ASSERT_FALSE(cm_host_is_ip("256.0.0.1"));
    CU_ASSERT_FALSE(cm_host_is_ip("1.2.3"));
    CU_ASSERT_FALSE(cm_host_is_ip("1.2.3.4.5"));
    CU_ASSERT_FALSE(cm_host_is_ip("[::1]"));
    CU_ASSERT_FALSE(cm_host_is_ip("fe80::zz"));
    CU_ASSERT_FALSE(cm_host_is_ip("example.com"));
    CU_ASSERT_FALSE(cm_host_is_ip("127.0.0.1:443"));
    CU_ASSERT_FALSE(cm_host_is_ip(" 127.0.0.1"));
}

static void test_host_is_valid_name(void)
{
    CU_ASSERT_TRUE(cm_host_is_valid_name("a"));
    CU_ASSERT_TRUE(cm_host_is_valid_name("example.com"));
    CU_ASSERT_TRUE(cm_host_is_valid_name("example.com."));
    CU_ASSERT_TRUE(cm_host_is_valid_name("xn--bcher-kva.example"));
    CU_ASSERT_TRUE(cm_host_is_valid_name("_dmarc.example.com"));
    CU_ASSERT_TRUE(cm_host_is_valid_name("a-b.c-d"));
    CU_ASSERT_TRUE(cm_host_is_valid_name("123.example"));
    CU_ASSERT_FALSE(cm_host_is_valid_name(""));
    CU_ASSERT_FALSE(cm_host_is_valid_name("."));
    CU_ASSERT_FALSE(cm_host_is_valid_name(".."));
    CU_ASSERT_FALSE(cm_host_is_valid_name(".example"));
    CU_ASSERT_FALSE(cm_host_is_valid_name("a..b"));
    CU_ASSERT_FALSE(cm_host_is_valid_name("-a"));
    CU_ASSERT_FALSE(cm_host_is_valid_name("a-"));
    CU_ASSERT_FALSE(cm_host_is_valid_name("a-.b"));
    CU_ASSERT_FALSE(cm_host_is_valid_name("a.-b"));
    CU_ASSERT_FALSE(cm_host_is_valid_name("a.b-"));
    CU_ASSERT_FALSE(cm_host_is_valid_name("a.b-."));
    CU_ASSERT_FALSE(cm_host_is_valid_name("a b"));
    CU_ASSERT_FALSE(cm_host_is_valid_name("a:b"));
    CU_ASSERT_FALSE(cm_host_is_valid_name("a/b"));
    CU_ASSERT_FALSE(cm_host_is_valid_name("b\xc3\xbc"
                                          "cher.example"));
    CU_ASSERT_FALSE(cm_host_is_valid_name("*.example.com"));
}

static void test_clear(void)
{
    struct cm_target t;

    memset(&t, 0, sizeof(t));
    cm_target_clear(&t);
    CU_ASSERT_PTR_NULL(t.name);
    CU_ASSERT_PTR_NULL(t.host);
    cm_target_clear(&t); /* twice */
    cm_target_clear(NULL);
    /* Clearing keeps nothing, including the borrowed CA file. */
    CU_ASSERT_EQUAL_FATAL(cm_target_parse("example.com", 443, NULL, &t, NULL, 0), 0);
    t.ca_file = "/etc/ssl/ca.pem";
    cm_target_clear(&t);
    CU_ASSERT_PTR_NULL(t.ca_file);
    CU_ASSERT_PTR_NULL(t.name);
    CU_ASSERT_EQUAL(t.port, 0);
}

static void test_err_buffer(void)
{
    struct cm_target t;
    char err[8];

    /* No buffer at all is fine. */
    CU_ASSERT_EQUAL(cm_target_parse("host:0", 443, NULL, &t, NULL, 0), CM_EBADPORT);
    CU_ASSERT_PTR_NULL(t.name);
    /* A short buffer is truncated and terminated. */
    memset(err, 'x', sizeof(err));
    CU_ASSERT_EQUAL(cm_target_parse("bad_char!", 443, NULL, &t, err, sizeof(err)), CM_EBADTARGET);
    CU_ASSERT_EQUAL(strlen(err), sizeof(err) - 1);
    CU_ASSERT_EQUAL(strncmp(err, "'bad_ch", 7), 0);
    /* NULL spec is an empty target. */
    CU_ASSERT_EQUAL(cm_target_parse(NULL, 443, NULL, &t, NULL, 0), CM_EBADTARGET);
}

static void test_error_texts(void)
{
    CU_ASSERT_STRING_EQUAL(cm_strerror(CM_EBADTARGET), "invalid target");
    CU_ASSERT_STRING_EQUAL(cm_strerror(CM_EBADPORT), "invalid port");
    CU_ASSERT_STRING_EQUAL(cm_err_name(CM_EBADTARGET), "EBADTARGET");
    CU_ASSERT_STRING_EQUAL(cm_err_name(CM_EBADPORT), "EBADPORT");
    CU_ASSERT_STRING_EQUAL(cm_err_name(-ENOMEM), "ENOMEM");
    CU_ASSERT_STRING_EQUAL(cm_strerror(0), "success");
}

static CU_TestInfo tests[] = {
    {"host with default port", test_host_default_port},
    {"caller's default port", test_custom_default_port},
    {"host:port", test_host_port},
    {"IPv4 literal", test_ipv4},
    {"IPv6 literal", test_ipv6},
    {"SNI override", test_sni_override},
    {"invalid SNI override", test_bad_sni},
    {"invalid targets", test_errors_target},
    {"invalid ports", test_errors_port},
    {"label and name lengths", test_lengths},
    {"cm_host_is_ip", test_host_is_ip},
    {"cm_host_is_valid_name", test_host_is_valid_name},
    {"cm_target_clear", test_clear},
    {"error buffer handling", test_err_buffer},
    {"error texts", test_error_texts},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return cm_test_main("target", tests, NULL, NULL);
}
