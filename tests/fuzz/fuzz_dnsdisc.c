/* libFuzzer harness: the DNS discovery answer reader (cm_dnsdisc_parse, src/probe/dnsdisc.c),
 * whose input is a SRV or MX answer from a DNS server. The first byte picks the record type
 * (even: SRV, odd: MX); the rest is the message. What comes out must be what the contract
 * promises: valid lower-case host names, distinct endpoints, sorted, bounded. */
#include "fuzz_util.h"

#include "certmon/base/error.h"
#include "certmon/probe/dnsdisc.h"
#include "certmon/probe/target.h"

FZ_QUIET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cm_dnsdisc_list *l = NULL;
    enum cm_dnsdisc_kind kind;
    char err[256];
    int rc;

    if (size < 1)
        return 0;
    kind = data[0] & 1 ? CM_DNSDISC_MX : CM_DNSDISC_SRV;
    rc = cm_dnsdisc_parse(kind, data + 1, size - 1, &l, err, sizeof(err));
    FZ_CHECK(rc == 0 || rc == CM_EDNS_BADANSWER || rc == CM_EDNS_NODATA || rc == -ENOMEM);
    FZ_CHECK((rc == 0) == (l != NULL));
    for (const char *c = err; *c; c++)
        FZ_CHECK((unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f);
    if (!l)
        return 0;
    FZ_CHECK(l->count <= CM_DNSDISC_MAX_RECORDS);
    for (size_t i = 0; i < l->count; i++) {
        const struct cm_dnsdisc_target *t = &l->targets[i];
        FZ_CHECK(cm_host_is_valid_name(t->host) && !cm_host_is_ip(t->host));
        for (const char *c = t->host; *c; c++)
            FZ_CHECK(*c < 'A' || *c > 'Z');
        FZ_CHECK(kind == CM_DNSDISC_SRV || (t->port == 25 && t->weight == 0));
        if (i > 0) {
            const struct cm_dnsdisc_target *p = &l->targets[i - 1];
            FZ_CHECK(p->priority < t->priority ||
                     (p->priority == t->priority && p->weight >= t->weight));
        }
        for (size_t j = 0; j < i; j++)
            FZ_CHECK(strcmp(l->targets[j].host, t->host) || l->targets[j].port != t->port);
    }
    cm_dnsdisc_list_free(l);
    return 0;
}
