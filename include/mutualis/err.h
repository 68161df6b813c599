/* Error codes and the error record filled once, where a failure happens, at a module
 * boundary. Callers pass it up without re-reporting; api/ maps codes to HTTP. */
#ifndef MU_ERR_H
#define MU_ERR_H

#include "mutualis/util.h"

enum mu_errc {
    MU_OK = 0,
    MU_EINVAL = -1,        /* bad input: 400 (422 for well-formed but invalid values) */
    MU_ENOTFOUND = -2,     /* 404 (also cross-tenant access) */
    MU_ECONFLICT = -3,     /* 409: uniqueness, state, cycle */
    MU_EFORBIDDEN = -4,    /* 403: authenticated but not allowed */
    MU_EUNAUTH = -5,       /* 401: no or bad credentials */
    MU_ETOOBIG = -6,       /* 413 */
    MU_EIO = -7,           /* 500: storage or system failure */
    MU_EINTERNAL = -8,     /* 500: a bug */
    MU_EBUSY = -9,         /* 503: try again */
    MU_EQUOTA = -10,       /* 409 quota or capacity refused */
    MU_EUNSUPPORTED = -11, /* 415 / 405 */
    MU_ERETRY = -12,       /* the chosen node no longer fits: place again without it */
    MU_EUNAVAIL = -13      /* a node or its hypervisor cannot be reached now: 503 */
};

struct mu_err {
    int code;         /* 0 while unset */
    char field[64];   /* the input field at fault ("siren", "parent"), or "" */
    char detail[512]; /* a sentence a person can act on */
};

/* Fills err (if non-NULL and not yet set) and returns code, so that
 * `return mu_err_set(err, MU_EINVAL, "...")` reads naturally. */
int mu_err_set(struct mu_err *err, int code, const char *fmt, ...) MU_PRINTF(3, 4);
/* Same, naming the field at fault. */
int mu_err_setf(struct mu_err *err, int code, const char *field, const char *fmt, ...)
    MU_PRINTF(4, 5);
void mu_err_clear(struct mu_err *err);
/* A short stable name for a code ("invalid", "not-found"); used in problem types. */
const char *mu_err_name(int code);

#endif
