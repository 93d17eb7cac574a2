#include "certmon/base/error.h"

#include <string.h>
#include <uv.h>

const char *cm_strerror(int err)
{
    switch (err) {
#define XX(name, value, msg)                                                                       \
    case value:                                                                                    \
        return msg;
        CM_ERRNO_MAP(XX)
#undef XX
    default:
        break;
    }
    if (err == 0)
        return "success";
    /* Everything else is a negated errno value; libuv's table knows them all. */
    return uv_strerror(err);
}

const char *cm_err_name(int err)
{
    switch (err) {
#define XX(name, value, msg)                                                                       \
    case value:                                                                                    \
        return #name;
        CM_ERRNO_MAP(XX)
#undef XX
    default:
        break;
    }
    return uv_err_name(err);
}
