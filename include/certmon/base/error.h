/* certmon error codes.
 *
 * Every fallible function returns 0 or a negative code: a negated errno value (as libuv does)
 * or a project code from the list below, which counts down from -5000. */
#ifndef CERTMON_ERROR_H
#define CERTMON_ERROR_H

#define CM_ERRNO_MAP(XX)                                                                           \
    XX(EBADTARGET, -5000, "invalid target")                                                        \
    XX(EBADPORT, -5001, "invalid port")                                                            \
    XX(EBADARG, -5002, "invalid argument")                                                         \
    XX(ENOCERT, -5003, "no certificate found")                                                     \
    XX(EBADCERT, -5004, "certificate cannot be parsed")                                            \
    XX(ECAFILE, -5005, "CA file cannot be loaded")                                                 \
    XX(ETLS, -5006, "TLS library error")                                                           \
    XX(EJSON, -5007, "JSON rendering failed")                                                      \
    XX(EDNS_NXDOMAIN, -5100, "no such DNS name")                                                   \
    XX(EDNS_NODATA, -5101, "no DNS record of that type")                                           \
    XX(EDNS_SERVFAIL, -5102, "DNS server failure")                                                 \
    XX(EDNS_REFUSED, -5103, "DNS query refused")                                                   \
    XX(EDNS_TIMEOUT, -5104, "DNS server did not answer")                                           \
    XX(EDNS_BADANSWER, -5105, "malformed DNS answer")                                              \
    XX(ECLIENTCERT, -5011, "client certificate cannot be loaded")                                  \
    XX(ESTARTTLS, -5008, "STARTTLS negotiation failed")                                            \
    XX(ESTARTTLS_REFUSED, -5009, "server refused STARTTLS")                                        \
    XX(ESTARTTLS_PROTO, -5010, "server answered something unexpected")                             \
    XX(ECONFIG, -5012, "invalid configuration")                                                    \
    XX(ESTATE, -5013, "state file cannot be used")

enum {
#define XX(name, value, msg) CM_##name = (value),
    CM_ERRNO_MAP(XX)
#undef XX
};

/* Returns a static, human-readable text for any code this project returns. */
const char *cm_strerror(int err);

/* Returns the symbolic name of a code ("EBADTARGET", "ECONNREFUSED", ...). */
const char *cm_err_name(int err);

#endif
