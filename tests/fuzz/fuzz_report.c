/* libFuzzer target for the agent report parser (it faces the network on the controller and
 * the spool files on the agent): whatever mu_report_parse accepts must print and parse again
 * to the same report, and print the same text twice; a refusal must come with MU_EINVAL (or
 * MU_ETOOBIG) and a detail in valid UTF-8. The acknowledgement parser rides along. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/report.h"
#include "mutualis/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_report: %s\n", what);
        abort();
    }
}

static void check_refusal(const struct mu_err *err)
{
    check(err->code == MU_EINVAL || err->code == MU_ETOOBIG, "refusal without MU_EINVAL");
    check(err->detail[0] != '\0', "refusal without a detail");
    check(mu_utf8_valid(err->detail, strlen(err->detail)), "detail is not valid UTF-8");
    check(mu_utf8_valid(err->field, strlen(err->field)), "field is not valid UTF-8");
}

static int same(const struct mu_report *a, const struct mu_report *b)
{
    if (strcmp(a->node, b->node) || strcmp(a->epoch, b->epoch) || a->seq != b->seq ||
        a->time_ms != b->time_ms || a->gap != b->gap || a->gap_from != b->gap_from ||
        a->gap_to != b->gap_to || memcmp(&a->host, &b->host, sizeof a->host) != 0 ||
        a->npools != b->npools || a->ndomains != b->ndomains)
        return 0;
    for (size_t i = 0; i < a->npools; i++)
        if (memcmp(&a->pools[i], &b->pools[i], sizeof a->pools[i]) != 0)
            return 0;
    for (size_t i = 0; i < a->ndomains; i++)
        if (memcmp(&a->domains[i], &b->domains[i], sizeof a->domains[i]) != 0)
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mu_err err = {0};
    char epoch[MU_EPOCH_HEX_LEN + 1];
    int64_t acked = -1;
    if (mu_report_ack_parse((const char *)data, size, epoch, &acked, &err) == 0) {
        check(mu_report_epoch_valid(epoch) && acked >= 0, "accepted a bad acknowledgement");
    } else {
        check_refusal(&err);
    }

    struct mu_report r;
    memset(&r, 0, sizeof r); /* padding too: the hosts and elements are compared bytewise */
    mu_err_clear(&err);
    if (mu_report_parse((const char *)data, size, &r, &err) != 0) {
        check_refusal(&err);
        return 0;
    }
    check(err.code == 0, "error set on success");
    char *text = mu_report_print(&r);
    check(text != NULL && mu_utf8_valid(text, strlen(text)), "printed text is not valid UTF-8");
    struct mu_report again;
    memset(&again, 0, sizeof again);
    struct mu_err err2 = {0};
    if (mu_report_parse(text, strlen(text), &again, &err2) != 0)
        fprintf(stderr, "fuzz_report: reprint refused: %s\n%s\n", err2.detail, text);
    check(err2.code == 0, "reprinted report refused");
    check(same(&r, &again), "reprinted report differs");
    char *text2 = mu_report_print(&again);
    check(strcmp(text, text2) == 0, "printing is not stable");
    free(text2);
    free(text);
    mu_report_clear(&again);
    mu_report_clear(&r);
    return 0;
}
