/* VM counts by observed state, for /metrics (store/provision.h). */
#include <string.h>

#include "store/store_int.h"

int mu_store_vm_state_counts(struct mu_store *st, const char *const *states, size_t n,
                             int64_t *counts, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    memset(counts, 0, (n + 1) * sizeof(*counts));
    s = st_stmt(c, "SELECT observed_state, COUNT(*) FROM vms GROUP BY observed_state", err);
    if (!s)
        return MU_EIO;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(s, 0);
        size_t k = 0;
        while (k < n && (!state || strcmp(state, states[k]) != 0))
            k++;
        counts[k] += sqlite3_column_int64(s, 1);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "counting VMs by state", err);
    st_stmt_done(c, s);
    return rc;
}
