/* RFC 9457 problem documents (application/problem+json) and the error-code to HTTP
 * status mapping. The type URI names the error class so that clients can branch on it;
 * the detail is the sentence a person acts on. */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "mutualis/json.h"

#define MU_PROBLEM_BASE "https://mutualis.example/problems/"

int mu_problem_status(int code)
{
    switch (code) {
    case MU_EINVAL:
        return 400;
    case MU_ENOTFOUND:
        return 404;
    case MU_ECONFLICT:
        return 409;
    case MU_EFORBIDDEN:
        return 403;
    case MU_EUNAUTH:
        return 401;
    case MU_ETOOBIG:
        return 413;
    case MU_EQUOTA:
        return 409;
    case MU_EBUSY:
    case MU_EUNAVAIL:
        return 503;
    case MU_ERETRY:
        return 409;
    case MU_EUNSUPPORTED:
        return 415;
    default:
        return 500; /* MU_EIO, MU_EINTERNAL and anything unexpected */
    }
}

/* The error class for a status when no error code was given. */
static int status_code(int status)
{
    switch (status) {
    case 400:
        return MU_EINVAL;
    case 401:
        return MU_EUNAUTH;
    case 403:
        return MU_EFORBIDDEN;
    case 404:
        return MU_ENOTFOUND;
    case 405:
    case 415:
        return MU_EUNSUPPORTED;
    case 409:
        return MU_ECONFLICT;
    case 413:
        return MU_ETOOBIG;
    case 503:
        return MU_EBUSY;
    default:
        return MU_EINTERNAL;
    }
}

static const char *title_for(int status, int code)
{
    switch (status) {
    case 405:
        return "Method not allowed";
    case 415:
        return "Unsupported media type";
    default:
        break;
    }
    switch (code) {
    case MU_EINVAL:
        return "Invalid request";
    case MU_ENOTFOUND:
        return "Not found";
    case MU_ECONFLICT:
        return "Conflict";
    case MU_EFORBIDDEN:
        return "Forbidden";
    case MU_EUNAUTH:
        return "Authentication required";
    case MU_ETOOBIG:
        return "Request too large";
    case MU_EQUOTA:
        return "Quota exceeded";
    case MU_EBUSY:
        return "Service busy";
    case MU_EUNAVAIL:
        return "Unavailable";
    case MU_ERETRY:
        return "Conflict, try again";
    case MU_EUNSUPPORTED:
        return "Unsupported";
    default:
        return "Internal error";
    }
}

static const char *detail_for(int status)
{
    switch (status) {
    case 401:
        return "This request needs an API token: send \"Authorization: Bearer mut_...\".";
    case 403:
        return "Your role does not allow this action.";
    case 404:
        return "There is nothing at this address.";
    case 405:
        return "This address does not accept this method.";
    case 413:
        return "The request body is too large.";
    case 503:
        return "The service is busy; try again shortly.";
    default:
        return "The request could not be processed.";
    }
}

cJSON *mu_problem_new(int status, const struct mu_err *err, const char *request_id)
{
    int code = err && err->code < 0 ? err->code : 0;
    if (status <= 0)
        status = code ? mu_problem_status(code) : 500;
    if (!code)
        code = status_code(status);
    char type[128];
    snprintf(type, sizeof type, MU_PROBLEM_BASE "%s", mu_err_name(code));
    cJSON *o = mu_json_obj();
    mu_json_add_str(o, "type", type);
    mu_json_add_str(o, "title", title_for(status, code));
    mu_json_add_i64(o, "status", status);
    mu_json_add_str(o, "detail", err && err->detail[0] ? err->detail : detail_for(status));
    if (err && err->field[0])
        mu_json_add_str(o, "field", err->field);
    if (request_id && request_id[0])
        mu_json_add_str(o, "request_id", request_id);
    return o;
}
