/* Key/value settings (bootstrap done, instance id, ...). */
#include "store/store_int.h"

int mu_store_setting_get(struct mu_store *st, const char *key, char **ret_value, struct mu_err *err)
{
    struct st_conn *c = st_reader(st, err);
    sqlite3_stmt *s;
    int rc;

    if (!c)
        return MU_EIO;
    s = st_stmt(c, "SELECT value FROM settings WHERE key = ?1", err);
    if (!s)
        return MU_EIO;
    st_bind_str(s, 1, key);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ret_value = st_col_str(s, 0);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = mu_err_set(err, MU_ENOTFOUND, "setting %s is not set", key);
    } else {
        rc = st_sql_err(c, rc, "reading a setting", err);
    }
    st_stmt_done(c, s);
    return rc;
}

int mu_store_setting_set(struct mu_store *st, const char *key, const char *value,
                         struct mu_err *err)
{
    struct st_conn *c;
    sqlite3_stmt *s;
    int rc;

    if (!key || !value)
        return mu_err_set(err, MU_EINVAL, "a setting needs a key and a value");
    c = st_tx_begin(st, err);
    if (!c)
        return MU_EIO;
    s = st_stmt(c,
                "INSERT INTO settings (key, value) VALUES (?1, ?2) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                err);
    if (!s)
        return st_tx_end(st, MU_EIO, err);
    st_bind_str(s, 1, key);
    st_bind_str(s, 2, value);
    rc = st_run(c, s, "writing a setting", err);
    st_stmt_done(c, s);
    return st_tx_end(st, rc, err);
}
