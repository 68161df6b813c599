/* Allocation history (store/history.h): daily peaks replayed from vm_events. Each event
 * carries the VM's allocation after it, so the change it made is that minus the VM's
 * previous event's (LAG over the VM's events); the changes are then replayed in time order
 * over a running total. */
#include <stdlib.h>
#include <string.h>

#include "mutualis/util.h"
#include "store/history.h"
#include "store/store_int.h"

static int64_t day_of(int64_t ms)
{
    return ms >= 0 ? ms / MU_DAY_MS * MU_DAY_MS : -((-ms + MU_DAY_MS - 1) / MU_DAY_MS) * MU_DAY_MS;
}

int64_t mu_store_vm_events_max_id(struct mu_store *st)
{
    struct st_conn *c = st_reader(st, NULL);
    sqlite3_stmt *s;
    int64_t id = 0;

    if (!c)
        return 0;
    s = st_stmt(c, "SELECT COALESCE(max(id), 0) FROM vm_events", NULL);
    if (!s)
        return 0;
    if (sqlite3_step(s) == SQLITE_ROW)
        id = sqlite3_column_int64(s, 0);
    st_stmt_done(c, s);
    return id;
}

static void bump(struct mu_alloc_day *d, const int64_t tot[3])
{
    if (tot[0] > d->peak_vcpus)
        d->peak_vcpus = tot[0];
    if (tot[1] > d->peak_ram_mib)
        d->peak_ram_mib = tot[1];
    if (tot[2] > d->peak_disk_gib)
        d->peak_disk_gib = tot[2];
}

int mu_store_alloc_history(struct mu_store *st, int64_t now_ms, int days, struct mu_alloc_day **ret,
                           size_t *ret_n, struct mu_err *err)
{
    struct st_conn *c;
    sqlite3_stmt *s;
    struct mu_alloc_day *out = NULL;
    int64_t first = 0, tot[3] = {0, 0, 0};
    size_t n = 0;
    int rc;

    if (days < 1 || days > 3650)
        return mu_err_set(err, MU_EINVAL, "history days must be between 1 and 3650");
    c = st_reader(st, err);
    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT min(ts_ms) FROM vm_events WHERE ts_ms <= ?1", err);
    if (!s)
        return MU_EIO;
    sqlite3_bind_int64(s, 1, now_ms);
    rc = sqlite3_step(s);
    bool any = rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL;
    if (any)
        first = sqlite3_column_int64(s, 0);
    rc = rc == SQLITE_ROW ? 0 : st_sql_err(c, rc, "reading the VM history", err);
    st_stmt_done(c, s);
    if (rc < 0)
        return rc;
    if (!any) {
        *ret = NULL;
        *ret_n = 0;
        return 0;
    }

    int64_t today = day_of(now_ms);
    int64_t start = today - (int64_t)(days - 1) * MU_DAY_MS;
    if (day_of(first) > start)
        start = day_of(first);
    n = (size_t)((today - start) / MU_DAY_MS) + 1;
    out = mu_xcalloc(n, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i].day_ms = start + (int64_t)i * MU_DAY_MS;

    s = st_stmt(c,
                "SELECT ts_ms, dv, dr, dd FROM (SELECT id, ts_ms,"
                " vcpus - LAG(vcpus, 1, 0) OVER w AS dv,"
                " ram_mib - LAG(ram_mib, 1, 0) OVER w AS dr,"
                " disk_gib - LAG(disk_gib, 1, 0) OVER w AS dd"
                " FROM vm_events WHERE ts_ms <= ?1"
                " WINDOW w AS (PARTITION BY vm_id ORDER BY ts_ms, id))"
                " WHERE dv != 0 OR dr != 0 OR dd != 0 ORDER BY ts_ms, id",
                err);
    if (!s) {
        free(out);
        return MU_EIO;
    }
    sqlite3_bind_int64(s, 1, now_ms);
    size_t cur = 0;
    bool started = false; /* the first day's opening total is counted */
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t ts = sqlite3_column_int64(s, 0);
        if (ts >= start) {
            /* Days between the last change and this one hold the running total all day. */
            size_t idx = (size_t)((day_of(ts) - start) / MU_DAY_MS);
            if (!started) {
                bump(&out[0], tot);
                started = true;
            }
            for (; cur < idx; cur++)
                bump(&out[cur + 1], tot);
        }
        tot[0] += sqlite3_column_int64(s, 1);
        tot[1] += sqlite3_column_int64(s, 2);
        tot[2] += sqlite3_column_int64(s, 3);
        if (ts >= start)
            bump(&out[cur], tot);
    }
    rc = rc == SQLITE_DONE ? 0 : st_sql_err(c, rc, "replaying the VM history", err);
    st_stmt_done(c, s);
    if (rc < 0) {
        free(out);
        return rc;
    }
    if (!started)
        bump(&out[0], tot);
    for (; cur + 1 < n; cur++)
        bump(&out[cur + 1], tot);
    *ret = out;
    *ret_n = n;
    return 0;
}
