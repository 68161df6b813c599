/* Opening, migrating and closing the store; connections, the statement cache and the
 * transaction helpers the table files build on. */
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/log.h"

int st_sql_err(struct st_conn *c, int rc, const char *what, struct mu_err *err)
{
    const char *msg = c && c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc);

    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return mu_err_set(err, MU_ECONFLICT, "%s conflicts with existing data (%s)", what, msg);
    return mu_err_set(err, MU_EIO, "storage error while %s: %s", what, msg);
}

static uint64_t sql_hash(const char *sql)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */

    for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static sqlite3_stmt *stmt_get(struct st_conn *c, const char *sql, bool literal, struct mu_err *err)
{
    sqlite3_stmt *s = NULL;
    uint64_t h;
    int rc;

    /* Hot path: a string literal is found by its address, without reading it. */
    for (size_t i = 0; literal && i < c->ncache; i++) {
        if (c->cache[i].literal == sql) {
            s = c->cache[i].stmt;
            sqlite3_reset(s);
            return s;
        }
    }
    h = sql_hash(sql);
    for (size_t i = 0; i < c->ncache; i++) {
        if (c->cache[i].hash == h && strcmp(c->cache[i].sql, sql) == 0) {
            s = c->cache[i].stmt;
            sqlite3_reset(s);
            sqlite3_clear_bindings(s);
            return s;
        }
    }
    rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
    if (rc != SQLITE_OK) {
        mu_err_set(err, MU_EIO, "storage error while preparing a query: %s", sqlite3_errmsg(c->db));
        sqlite3_finalize(s);
        return NULL;
    }
    /* Beyond the cache size (never reached by the fixed set of queries) statements are
     * finalized by st_stmt_done instead of kept. */
    if (c->ncache < ST_CACHE_MAX) {
        c->cache[c->ncache].hash = h;
        c->cache[c->ncache].literal = literal ? sql : NULL;
        c->cache[c->ncache].sql = mu_xstrdup(sql);
        c->cache[c->ncache].stmt = s;
        c->ncache++;
    }
    return s;
}

sqlite3_stmt *st_stmt(struct st_conn *c, const char *sql, struct mu_err *err)
{
    return stmt_get(c, sql, true, err);
}

sqlite3_stmt *st_stmt_dyn(struct st_conn *c, const char *sql, struct mu_err *err)
{
    return stmt_get(c, sql, false, err);
}

void st_stmt_done(struct st_conn *c, sqlite3_stmt *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < c->ncache; i++) {
        if (c->cache[i].stmt == s) {
            sqlite3_reset(s);
            sqlite3_clear_bindings(s);
            return;
        }
    }
    sqlite3_finalize(s);
}

int st_run(struct st_conn *c, sqlite3_stmt *s, const char *what, struct mu_err *err)
{
    int rc;

    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        ;
    if (rc != SQLITE_DONE)
        return st_sql_err(c, rc, what, err);
    return 0;
}

int st_exec(struct st_conn *c, const char *sql, const char *what, struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, sql, err);
    int rc;

    if (!s)
        return MU_EIO;
    rc = st_run(c, s, what, err);
    st_stmt_done(c, s);
    return rc;
}

int st_bind_str(sqlite3_stmt *s, int i, const char *v)
{
    if (!v)
        return sqlite3_bind_null(s, i);
    return sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

int st_bind_id(sqlite3_stmt *s, int i, int64_t id)
{
    if (id <= 0)
        return sqlite3_bind_null(s, i);
    return sqlite3_bind_int64(s, i, id);
}

char *st_col_str(sqlite3_stmt *s, int i)
{
    const unsigned char *v = sqlite3_column_text(s, i);

    return v ? mu_xstrdup((const char *)v) : NULL;
}

char *st_path_upper(const char *path)
{
    char *up = mu_xstrdup(path);
    size_t n = strlen(up);

    /* '0' is the byte after '/': every path below "/1/5/" sorts before "/1/50". */
    if (n > 0)
        up[n - 1] = '0';
    return up;
}

static void conn_close(struct st_conn *c)
{
    for (size_t i = 0; i < c->ncache; i++) {
        sqlite3_finalize(c->cache[i].stmt);
        free(c->cache[i].sql);
    }
    c->ncache = 0;
    if (c->db)
        sqlite3_close_v2(c->db);
    c->db = NULL;
}

static int conn_open(struct mu_store *st, struct st_conn *c, bool writer, struct mu_err *err)
{
    int flags = SQLITE_OPEN_NOMUTEX |
                (writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY);
    int rc;

    c->st = st;
    rc = sqlite3_open_v2(st->path, &c->db, flags, st->vfs);
    if (rc != SQLITE_OK) {
        mu_err_set(err, MU_EIO, "cannot open database %s: %s", st->path,
                   c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        conn_close(c);
        return MU_EIO;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, ST_BUSY_MS);
    return 0;
}

static void reader_destroy(void *p)
{
    struct st_conn *c = p;
    struct mu_store *st = c->st;

    /* A thread ends: drop its reader from the registry and close it. */
    pthread_mutex_lock(&st->rmu);
    for (struct st_conn **pp = &st->readers; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    pthread_mutex_unlock(&st->rmu);
    conn_close(c);
    free(c);
}

struct st_conn *st_reader(struct mu_store *st, struct mu_err *err)
{
    struct st_conn *c = pthread_getspecific(st->rkey);

    if (c)
        return c;
    c = mu_xcalloc(1, sizeof *c);
    if (conn_open(st, c, false, err) < 0) {
        free(c);
        return NULL;
    }
    pthread_mutex_lock(&st->rmu);
    c->next = st->readers;
    st->readers = c;
    pthread_mutex_unlock(&st->rmu);
    pthread_setspecific(st->rkey, c);
    return c;
}

struct st_conn *st_tx_begin(struct mu_store *st, struct mu_err *err)
{
    pthread_mutex_lock(&st->wmu);
    if (st_exec(&st->w, "BEGIN IMMEDIATE", "starting a transaction", err) < 0) {
        pthread_mutex_unlock(&st->wmu);
        return NULL;
    }
    st->tx_head_id = st->head_id;
    memcpy(st->tx_head_mac, st->head_mac, sizeof st->head_mac);
    return &st->w;
}

int st_tx_end(struct mu_store *st, int rc, struct mu_err *err)
{
    if (rc == 0) {
        rc = st_exec(&st->w, "COMMIT", "committing", err);
        if (rc < 0)
            rc = MU_EIO;
    }
    if (rc == 0) {
        st->head_id = st->tx_head_id;
        memcpy(st->head_mac, st->tx_head_mac, sizeof st->head_mac);
    } else if (!sqlite3_get_autocommit(st->w.db)) {
        /* The failure is already reported; a failed rollback leaves nothing to add. */
        st_exec(&st->w, "ROLLBACK", "rolling back", NULL);
    }
    pthread_mutex_unlock(&st->wmu);
    return rc;
}

static int pragma_text(struct st_conn *c, const char *sql, char *out, size_t outlen,
                       struct mu_err *err)
{
    sqlite3_stmt *s = st_stmt(c, sql, err);
    int rc;

    if (!s)
        return MU_EIO;
    out[0] = '\0';
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW && sqlite3_column_text(s, 0))
        snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(s, 0));
    else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        rc = st_sql_err(c, rc, "setting up the database", err);
    st_stmt_done(c, s);
    return rc < 0 ? rc : 0;
}

static int migrate(struct mu_store *st, struct mu_err *err)
{
    struct st_conn *c = &st->w;
    sqlite3_stmt *s;
    int rc;

    rc = st_exec(c,
                 "CREATE TABLE IF NOT EXISTS schema_version ("
                 "version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)",
                 "creating schema_version", err);
    if (rc < 0)
        return rc;
    s = st_stmt(c, "SELECT COALESCE(MAX(version), 0) FROM schema_version", err);
    if (!s)
        return MU_EIO;
    rc = sqlite3_step(s);
    st->schema_version = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
    st_stmt_done(c, s);
    if (rc != SQLITE_ROW)
        return st_sql_err(c, rc, "reading the schema version", err);
    if ((size_t)st->schema_version > st_migrations_n)
        return mu_err_set(err, MU_EIO,
                          "database %s has schema version %d, newer than this program "
                          "knows (%zu): upgrade mutualisd",
                          st->path, st->schema_version, st_migrations_n);

    for (size_t v = (size_t)st->schema_version + 1; v <= st_migrations_n; v++) {
        char *errmsg = NULL;

        if (!st_tx_begin(st, err))
            return MU_EIO;
        rc = sqlite3_exec(c->db, st_migrations[v - 1], NULL, NULL, &errmsg);
        if (rc != SQLITE_OK) {
            mu_err_set(err, MU_EIO, "migration %zu failed: %s", v,
                       errmsg ? errmsg : sqlite3_errstr(rc));
            sqlite3_free(errmsg);
            return st_tx_end(st, MU_EIO, err);
        }
        s = st_stmt(c, "INSERT INTO schema_version (version, applied_ms) VALUES (?1, ?2)", err);
        rc = s ? 0 : MU_EIO;
        if (s) {
            sqlite3_bind_int64(s, 1, (int64_t)v);
            sqlite3_bind_int64(s, 2, mu_now_ms());
            rc = st_run(c, s, "recording the schema version", err);
            st_stmt_done(c, s);
        }
        rc = st_tx_end(st, rc, err);
        if (rc < 0)
            return rc;
        st->schema_version = (int)v;
        mu_log_debug("store migrated version=%zu", v);
    }
    return 0;
}

struct mu_store *mu_store_open(const struct mu_store_opts *opts, struct mu_err *err)
{
    struct mu_store *st;
    char mode[32];

    if (!opts || !opts->path || !opts->path[0]) {
        mu_err_set(err, MU_EINVAL, "no database path given");
        return NULL;
    }
    if (!opts->audit_key || opts->audit_key_len == 0) {
        mu_err_set(err, MU_EINVAL, "no audit key given: the audit chain needs one");
        return NULL;
    }
    st = mu_xcalloc(1, sizeof *st);
    st->path = mu_xstrdup(opts->path);
    st->vfs = mu_xstrdup(opts->vfs);
    st->audit_key = mu_xmalloc(opts->audit_key_len);
    memcpy(st->audit_key, opts->audit_key, opts->audit_key_len);
    st->audit_key_len = opts->audit_key_len;
    pthread_mutex_init(&st->wmu, NULL);
    pthread_mutex_init(&st->rmu, NULL);
    if (pthread_key_create(&st->rkey, reader_destroy) != 0) {
        mu_err_set(err, MU_EIO, "cannot create a thread key for read connections");
        pthread_mutex_destroy(&st->wmu);
        pthread_mutex_destroy(&st->rmu);
        free(st->audit_key);
        free(st->vfs);
        free(st->path);
        free(st);
        return NULL;
    }
    memcpy(st->head_mac, ST_MAC_ZERO, sizeof st->head_mac);

    if (conn_open(st, &st->w, true, err) < 0)
        goto fail;
    if (pragma_text(&st->w, "PRAGMA journal_mode=WAL", mode, sizeof mode, err) < 0)
        goto fail;
    if (strcmp(mode, "wal") != 0) {
        mu_err_set(err, MU_EIO, "database %s: cannot switch to WAL mode (journal mode is %s)",
                   st->path, mode);
        goto fail;
    }
    if (st_exec(&st->w, "PRAGMA synchronous=FULL", "setting synchronous=FULL", err) < 0 ||
        st_exec(&st->w, "PRAGMA foreign_keys=ON", "enabling foreign keys", err) < 0)
        goto fail;
    if (migrate(st, err) < 0 || st_audit_load_head(st, err) < 0)
        goto fail;
    return st;

fail:
    mu_store_close(st);
    return NULL;
}

void mu_store_close(struct mu_store *st)
{
    if (!st)
        return;
    /* After the key is deleted no thread exit runs reader_destroy: close them here. */
    pthread_key_delete(st->rkey);
    pthread_mutex_lock(&st->rmu);
    while (st->readers) {
        struct st_conn *c = st->readers;

        st->readers = c->next;
        conn_close(c);
        free(c);
    }
    pthread_mutex_unlock(&st->rmu);
    conn_close(&st->w);
    pthread_mutex_destroy(&st->wmu);
    pthread_mutex_destroy(&st->rmu);
    free(st->audit_key);
    free(st->vfs);
    free(st->path);
    free(st);
}

int mu_store_schema_version(struct mu_store *st)
{
    return st->schema_version;
}
