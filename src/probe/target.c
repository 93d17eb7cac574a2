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
    size_t nlen = strlen(host) + 10;
    out->name = malloc(nlen);
    out->host = strdup(host);
    out->port = port;
    const char *vname = sni && *sni ? sni : host;
    size_t vlen = strlen(vname);
    /* The verified name is what the user gave; the name sent drops a trailing root dot and
     * is never an address literal (RFC 6066 section 3). */
    out->verify_name = strdup(vname);
    if (!cm_host_is_ip(vname))
        out->sni = strndup(vname, vlen > 1 && vname[vlen - 1] == '.' ? vlen - 1 : vlen);
    if (!out->name || !out->host || !out->verify_name || (!out->sni && !cm_host_is_ip(vname))) {
        cm_target_clear(out);
        return fail(err, errlen, -ENOMEM, "out of memory");
    }
    snprintf(out->name, nlen, v6 ? "[%s]:%u" : "%s:%u", host, (unsigned)port);
    return 0;
}

int cm_target_copy(struct cm_target *dst, const struct cm_target *src)
{
    *dst = *src;
    dst->name = strdup(src->name);
    dst->host = strdup(src->host);
    dst->sni = src->sni ? strdup(src->sni) : NULL;
    dst->verify_name = strdup(src->verify_name);
    if (!dst->name || !dst->host || !dst->verify_name || (src->sni && !dst->sni)) {
        cm_target_clear(dst);
        return -ENOMEM;
    }
    return 0;
}

void cm_target_clear(struct cm_target *t)
{
    if (!t)
        return;
    free(t->name);
    free(t->host);
    free(t->sni);
    free(t->verify_name);
    memset(t, 0, sizeof(*t));
}
