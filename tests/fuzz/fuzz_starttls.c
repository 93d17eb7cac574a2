/* libFuzzer harness: the STARTTLS state machines (src/probe/starttls.c) against a hostile server.
 *
 * Input: byte 0 picks the protocol (modulo the eight), byte 1 the way the server's bytes are
 * cut into reads (low 7 bits: read size, 0 = one read; high bit: the client's pending output
 * is not marked sent before a read, which a well-behaved caller never does, to check that the
 * machine refuses instead of misbehaving), and the rest is everything the server sends. The
 * machine is driven as the probe drives it: send what it queued, feed one read, repeat, and
 * report end of file at the end. Whatever the bytes, every call must return one of the
 * documented codes, a failure must carry a printable message, and output is bounded. */
#include "fuzz_util.h"

#include "certmon/base/error.h"
#include "certmon/probe/starttls.h"

#include <ctype.h>

static const enum cm_starttls_proto protos[] = {
    CM_STARTTLS_SMTP, CM_STARTTLS_IMAP,     CM_STARTTLS_POP3,  CM_STARTTLS_FTP,
    CM_STARTTLS_LDAP, CM_STARTTLS_POSTGRES, CM_STARTTLS_MYSQL, CM_STARTTLS_XMPP,
};

FZ_QUIET_INIT

static void check_state(struct cm_starttls *st, int rc)
{
    const char *msg = cm_starttls_error(st);

    FZ_CHECK(rc == CM_STARTTLS_MORE || rc == CM_STARTTLS_DONE || rc == CM_ESTARTTLS_REFUSED ||
             rc == CM_ESTARTTLS_PROTO || rc == CM_ESTARTTLS || rc == -ENOMEM);
    FZ_CHECK((rc < 0) == (msg != NULL));
    FZ_CHECK((rc == CM_STARTTLS_DONE) == cm_starttls_done(st));
    if (msg) {
        /* Server text is quoted sanitised: printable ASCII only. */
        for (const char *p = msg; *p; p++)
            FZ_CHECK(isprint((unsigned char)*p));
        FZ_CHECK(strlen(msg) < 1024);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cm_starttls *st;
    enum cm_starttls_proto p;
    size_t chunk, off = 0, out_len;
    bool keep_output;
    int rc = CM_STARTTLS_MORE;

    if (size < 2)
        return 0;
    p = protos[data[0] % (sizeof(protos) / sizeof(protos[0]))];
    chunk = data[1] & 0x7f;
    keep_output = data[1] & 0x80;
    data += 2;
    size -= 2;
    if (cm_starttls_new(p, "xmpp.example.org", &st) < 0)
        return 0;
    while (off < size) {
        size_t n = chunk == 0 || chunk > size - off ? size - off : chunk;
        const unsigned char *out = cm_starttls_output(st, &out_len);
        FZ_CHECK((out == NULL) == (out_len == 0));
        FZ_CHECK(out_len <= 4096);
        if (!keep_output)
            cm_starttls_sent(st, out_len);
        rc = cm_starttls_input(st, data + off, n);
        check_state(st, rc);
        off += n;
        if (rc < 0) {
            /* A failure is final and quiet. */
            FZ_CHECK(cm_starttls_input(st, data, size) == rc);
            FZ_CHECK(cm_starttls_output(st, &out_len) == NULL && out_len == 0);
            break;
        }
    }
    if (rc >= 0) {
        cm_starttls_output(st, &out_len);
        cm_starttls_sent(st, out_len);
        rc = cm_starttls_eof(st);
        FZ_CHECK(rc < 0 && cm_starttls_error(st) != NULL);
    }
    cm_starttls_free(st);
    return 0;
}
