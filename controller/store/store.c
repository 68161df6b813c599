/* Opening, migrating and closing the store; connections, the statement cache and the
 * transaction helpers the table files build on. */
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* ---- the checkpointer ---------------------------------------------------------------
 * SQLite's automatic checkpoint runs inside the commit that takes the WAL past 1,000 pages:
 * that commit copies the WAL into the database file and syncs both, which is most of the
 * p99 of a write on disk. The writer runs with wal_autocheckpoint=0 and this thread does it
 * instead, on its own connection, concurrently with commits (a PASSIVE checkpoint takes no
 * lock a writer or reader waits for). Durability is unchanged: each commit still syncs the
 * WAL (synchronous=FULL), and a checkpoint syncs the WAL before copying it and the database
 * file before letting the WAL be reused.
 *
 * The connection uses SQLite's default VFS, not opts->vfs: the only VFSs given there are
 * the tests' sync-counting wrappers of that same default (store.h), which prove that each
 * acknowledged change synced the WAL before returning. Background checkpoint syncs, at
 * moments of their own, would be counted among them. */

/* Writer's WAL hook, after each commit (writer lock held): wakes the checkpointer when the
 * WAL grows large. */
static int ckpt_wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct mu_store *st = arg;

    (void)db;
    (void)name;
    pthread_mutex_lock(&st->ckpt_mu);
    st->ckpt_wal_pages = pages;
    if (pages >= ST_CKPT_WAL_PAGES && !st->ckpt_due) {
        st->ckpt_due = true;
        pthread_cond_signal(&st->ckpt_cond);
    }
    pthread_mutex_unlock(&st->ckpt_mu);
    return SQLITE_OK;
}

/* One checkpoint; with the writer's mutex held when asked (no commit then runs in this
 * process). Records the outcome. */
static int ckpt_run(struct mu_store *st, int mode, bool hold_writer, int *ret_nlog)
{
    int nlog = -1, nckpt = -1, rc;

    if (hold_writer)
        pthread_mutex_lock(&st->wmu);
    rc = sqlite3_wal_checkpoint_v2(st->ckpt_db, NULL, mode, &nlog, &nckpt);
    if (hold_writer)
        pthread_mutex_unlock(&st->wmu);
    pthread_mutex_lock(&st->ckpt_mu);
    st->ckpt_runs++;
    if (rc != SQLITE_OK) {
        st->ckpt_errors++;
        st->ckpt_last_rc = rc;
    }
    pthread_mutex_unlock(&st->ckpt_mu);
    if (rc != SQLITE_OK)
        mu_log_debug("store checkpoint failed mode=%d rc=%d", mode, rc);
    *ret_nlog = rc == SQLITE_OK ? nlog : -1;
    return rc;
}

/* Each round: a PASSIVE checkpoint, which copies the WAL into the database file while
 * commits go on. SQLite starts the WAL over (from its beginning, cut back to
 * journal_size_limit) only at a write transaction that begins with the WAL fully copied:
 * under a steady stream of commits that never happens, the copy always lagging one commit
 * behind. So when the WAL is still past ST_CKPT_WAL_PAGES after a round, a second PASSIVE
 * checkpoint runs with the writer's mutex held: it only copies what was committed since
 * (a commit's pages), then the next transaction starts the WAL over. Past
 * ST_CKPT_TRUNCATE_PAGES (a reader kept the WAL from being reused) the second one is a
 * TRUNCATE, which also waits (ST_CKPT_BUSY_MS at most) for readers; on SQLITE_BUSY the
 * next round tries again. */
static void *ckpt_main(void *arg)
{
    struct mu_store *st = arg;
    int64_t last = mu_mono_ms();

    pthread_mutex_lock(&st->ckpt_mu);
    while (!st->ckpt_stop) {
        int64_t at = last + (st->ckpt_due ? ST_CKPT_GAP_MS : ST_CKPT_PERIOD_MS);
        int nlog = -1;

        if (mu_mono_ms() < at) {
            struct timespec ts = {.tv_sec = at / 1000, .tv_nsec = at % 1000 * 1000000};

            pthread_cond_timedwait(&st->ckpt_cond, &st->ckpt_mu, &ts);
            continue;
        }
        st->ckpt_due = false;
        pthread_mutex_unlock(&st->ckpt_mu);
        /* The second unlocked round copies what was committed during the first, so that
         * the one under the mutex has little left to copy. */
        if (ckpt_run(st, SQLITE_CHECKPOINT_PASSIVE, false, &nlog) == SQLITE_OK &&
            nlog >= ST_CKPT_WAL_PAGES &&
            ckpt_run(st, SQLITE_CHECKPOINT_PASSIVE, false, &nlog) == SQLITE_OK &&
            nlog >= ST_CKPT_WAL_PAGES)
            ckpt_run(st,
                     nlog >= ST_CKPT_TRUNCATE_PAGES ? SQLITE_CHECKPOINT_TRUNCATE
                                                    : SQLITE_CHECKPOINT_PASSIVE,
                     true, &nlog);
        last = mu_mono_ms();
        pthread_mutex_lock(&st->ckpt_mu);
    }
    pthread_mutex_unlock(&st->ckpt_mu);
    return NULL;
}

static int ckpt_start(struct mu_store *st, struct mu_err *err)
{
    int rc =
        sqlite3_open_v2(st->path, &st->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    char *errmsg = NULL;

    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(st->ckpt_db, ST_CKPT_BUSY_MS);
    /* A first read opens the WAL on this connection (a checkpoint alone would not). */
    if (rc == SQLITE_OK)
        rc =
            sqlite3_exec(st->ckpt_db, "PRAGMA synchronous=FULL; SELECT count(*) FROM sqlite_schema",
                         NULL, NULL, &errmsg);
    if (rc != SQLITE_OK) {
        mu_err_set(err, MU_EIO, "cannot open database %s for checkpoints: %s", st->path,
                   errmsg        ? errmsg
                   : st->ckpt_db ? sqlite3_errmsg(st->ckpt_db)
                                 : sqlite3_errstr(rc));
        sqlite3_free(errmsg);
        return MU_EIO;
    }
    if (pthread_create(&st->ckpt_thread, NULL, ckpt_main, st) != 0)
        return mu_err_set(err, MU_EIO, "cannot start the checkpoint thread");
    st->ckpt_started = true;
    return 0;
}

static void ckpt_stop(struct mu_store *st)
{
    if (st->ckpt_started) {
        pthread_mutex_lock(&st->ckpt_mu);
        st->ckpt_stop = true;
        pthread_cond_signal(&st->ckpt_cond);
        pthread_mutex_unlock(&st->ckpt_mu);
        pthread_join(st->ckpt_thread, NULL);
        st->ckpt_started = false;
    }
    if (st->ckpt_db)
        sqlite3_close_v2(st->ckpt_db);
    st->ckpt_db = NULL;
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
    {
        pthread_condattr_t ca;

        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&st->ckpt_cond, &ca);
        pthread_condattr_destroy(&ca);
        pthread_mutex_init(&st->ckpt_mu, NULL);
    }

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
        st_exec(&st->w, "PRAGMA foreign_keys=ON", "enabling foreign keys", err) < 0 ||
        st_exec(&st->w, "PRAGMA wal_autocheckpoint=0", "turning off checkpoints in commits", err) <
            0 ||
        /* 64 MiB: what a reset WAL file is cut back to. */
        st_exec(&st->w, "PRAGMA journal_size_limit=67108864", "limiting the WAL size", err) < 0)
        goto fail;
    /* After the pragma, which would replace it. */
    sqlite3_wal_hook(st->w.db, ckpt_wal_hook, st);
    if (migrate(st, err) < 0 || st_audit_load_head(st, err) < 0 || ckpt_start(st, err) < 0)
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
    /* First: the writer, closed last, then checkpoints what is left and removes the WAL. */
    ckpt_stop(st);
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
    pthread_mutex_destroy(&st->ckpt_mu);
    pthread_cond_destroy(&st->ckpt_cond);
    free(st->audit_key);
    free(st->vfs);
    free(st->path);
    free(st);
}

int mu_store_schema_version(struct mu_store *st)
{
    return st->schema_version;
}
