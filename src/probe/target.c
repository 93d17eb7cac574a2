#include "certmon/probe/target.h"
#include "certmon/base/error.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cm_host_is_ip(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

bool cm_host_is_valid_name(const char *s)
{
    size_t len = strlen(s);
    size_t label = 0;

    if (len == 0 || len > 254 || (len == 254 && s[253] != '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            /* Empty labels are only allowed as the root label at the very end. */
            if (label == 0 || (s[i - 1] == '-'))
                return false;
            label = 0;
            continue;
        }
        if (!isalnum(c) && c != '-' && c != '_')
            return false;
        if (label == 0 && c == '-')
            return false;
        if (++label > 63)
            return false;
    }
    return label == 0 || s[len - 1] != '-';
}

static int parse_port(const char *s, uint16_t *out)
{
    char *end;
    long v;

    if (*s == '\0' || !isdigit((unsigned char)*s))
        return CM_EBADPORT;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end != '\0' || v < 1 || v > 65535)
        return CM_EBADPORT;
    *out = (uint16_t)v;
    return 0;
}

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int cm_target_parse(const char *spec, uint16_t default_port, const char *sni, struct cm_target *out,
                    char *err, size_t errlen)
{
    char host[256];
    const char *port_str = NULL;
    uint16_t port = default_port;
    size_t hlen;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!spec || *spec == '\0')
        return fail(err, errlen, CM_EBADTARGET, "empty target");

    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close)
            return fail(err, errlen, CM_EBADTARGET, "'%s': missing ']' after IPv6 address", spec);
        hlen = (size_t)(close - spec - 1);
        if (hlen == 0 || hlen >= sizeof(host))
            return fail(err, errlen, CM_EBADTARGET, "'%s': bad IPv6 address", spec);
        memcpy(host, spec + 1, hlen);
        host[hlen] = '\0';
        if (close[1] == ':')
            port_str = close + 2;
        else if (close[1] != '\0')
            return fail(err, errlen, CM_EBADTARGET, "'%s': unexpected text after ']'", spec);
        if (!cm_host_is_ip(host) || !strchr(host, ':'))
            return fail(err, errlen, CM_EBADTARGET, "'%s': not an IPv6 address in brackets", spec);
    } else {
        const char *colon = strchr(spec, ':');
        if (colon && strchr(colon + 1, ':')) {
            /* Several colons and no brackets: only a bare IPv6 literal makes sense. */
            if (strlen(spec) >= sizeof(host) || !cm_host_is_ip(spec))
                return fail(err, errlen, CM_EBADTARGET,
                            "'%s': IPv6 addresses with a port must be written [addr]:port", spec);
            hlen = strlen(spec);
        } else {
            hlen = colon ? (size_t)(colon - spec) : strlen(spec);
            if (colon)
                port_str = colon + 1;
        }
        if (hlen == 0)
            return fail(err, errlen, CM_EBADTARGET, "'%s': missing host", spec);
        if (hlen >= sizeof(host))
            return fail(err, errlen, CM_EBADTARGET, "'%s': host name too long", spec);
        memcpy(host, spec, hlen);
        host[hlen] = '\0';
        if (!cm_host_is_ip(host) && !cm_host_is_valid_name(host))
            return fail(err, errlen, CM_EBADTARGET, "'%s': not a valid host name or address", spec);
    }
    if (port_str && (rc = parse_port(port_str, &port)) < 0)
        return fail(err, errlen, rc, "'%s': port must be a number from 1 to 65535", spec);
    if (sni && *sni && !cm_host_is_valid_name(sni) && !cm_host_is_ip(sni))
        return fail(err, errlen, CM_EBADARG, "'%s': not a valid server name", sni);

    bool v6 = strchr(host, ':') != NULL;
    const char *vname = sni && *sni ? sni : host;
    char portbuf[8];
    size_t plen = (size_t)snprintf(portbuf, sizeof(portbuf), "%u", (unsigned)port);
    size_t vlen = strlen(vname), hlen0 = strlen(host), nlen = hlen0 + (v6 ? 2 : 0) + 1 + plen + 1;
    /* The verified name is what the user gave; the name sent drops a trailing root dot and
     * is never an address literal (RFC 6066 section 3). */
    size_t slen = cm_host_is_ip(vname) ? 0 : vlen > 1 && vname[vlen - 1] == '.' ? vlen - 1 : vlen;
    /* One block for the texts (a hundred thousand targets make 300,000 fewer small
     * allocations), name first: it owns the block. A text equal to the one before it is not
     * stored twice (the verified name is mostly the host, the name sent the verified one). */
    bool vshared = strcmp(vname, host) == 0, sshared = slen == vlen;
    char *b = malloc(nlen + hlen0 + 1 + (vshared ? 0 : vlen + 1) +
                     (slen && !sshared ? slen + 1 : 0));

    if (!b)
        return fail(err, errlen, -ENOMEM, "out of memory");
    out->port = port;
    out->name = b;
    snprintf(out->name, nlen, v6 ? "[%s]:%s" : "%s:%s", host, portbuf);
    out->host = b + nlen;
    memcpy(out->host, host, hlen0 + 1);
    out->verify_name = out->host;
    if (!vshared) {
        out->verify_name = out->host + hlen0 + 1;
        memcpy(out->verify_name, vname, vlen + 1);
    }
    out->sni = NULL;
    if (slen && sshared) {
        out->sni = out->verify_name;
    } else if (slen) {
        out->sni = out->verify_name + vlen + 1;
        memcpy(out->sni, vname, slen);
        out->sni[slen] = '\0';
    }
    return 0;
}

int cm_target_copy(struct cm_target *dst, const struct cm_target *src)
{
    bool vshared = src->verify_name == src->host, sshared = src->sni == src->verify_name;
    size_t n = strlen(src->name) + 1, h = strlen(src->host) + 1,
           v = vshared ? 0 : strlen(src->verify_name) + 1,
           sn = src->sni && !sshared ? strlen(src->sni) + 1 : 0;
    char *b = malloc(n + h + v + sn);

    *dst = *src;
    if (!b) {
        memset(dst, 0, sizeof(*dst));
        return -ENOMEM;
    }
    /* The same texts shared as in src. */
    dst->name = memcpy(b, src->name, n);
    dst->host = memcpy(b + n, src->host, h);
    dst->verify_name = vshared ? dst->host : memcpy(b + n + h, src->verify_name, v);
    dst->sni = !src->sni ? NULL : sshared ? dst->verify_name : memcpy(b + n + h + v, src->sni, sn);
    return 0;
}

void cm_target_clear(struct cm_target *t)
{
    if (!t)
        return;
    free(t->name); /* the block of all four */
    memset(t, 0, sizeof(*t));
}
