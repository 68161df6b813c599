/* The error record: filled once where a failure happens. */
#include "mutualis/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

MU_PRINTF(4, 0)
static int err_vset(struct mu_err *err, int code, const char *field, const char *fmt, va_list ap)
{
    if (!err || err->code != 0)
        return code;
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    return code;
}

int mu_err_set(struct mu_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, code, NULL, fmt, ap);
    va_end(ap);
    return code;
}

int mu_err_setf(struct mu_err *err, int code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, code, field, fmt, ap);
    va_end(ap);
    return code;
}

void mu_err_clear(struct mu_err *err)
{
    if (err)
        memset(err, 0, sizeof *err);
}

const char *mu_err_name(int code)
{
    switch (code) {
    case MU_OK:
        return "ok";
    case MU_EINVAL:
        return "invalid";
    case MU_ENOTFOUND:
        return "not-found";
    case MU_ECONFLICT:
        return "conflict";
    case MU_EFORBIDDEN:
        return "forbidden";
    case MU_EUNAUTH:
        return "unauthenticated";
    case MU_ETOOBIG:
        return "too-large";
    case MU_EIO:
        return "storage-error";
    case MU_EBUSY:
        return "busy";
    case MU_EQUOTA:
        return "quota-exceeded";
    case MU_EUNSUPPORTED:
        return "unsupported";
    default:
        return "internal-error";
    }
}
