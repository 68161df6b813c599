/* Durability: every mutating store call returns only after the WAL was synced. A kill -9
 * test cannot tell synchronous=FULL from OFF in WAL mode (env-notes.md), so a thin VFS
 * wrapper counts xSync calls on WAL files instead, and a control experiment shows the
 * count does not move under synchronous=NORMAL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "store_test.h"

/* ---- the counting VFS ------------------------------------------------------------ */

static sqlite3_vfs *real_vfs;
static sqlite3_vfs counting_vfs;
static atomic_long wal_syncs, db_syncs;

struct cfile {
    sqlite3_file base;
    sqlite3_file *real; /* lives right after this struct */
    bool wal;
};

static int c_close(sqlite3_file *f)
{
    struct cfile *p = (struct cfile *)f;
    return p->real->pMethods->xClose(p->real);
}
static int c_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    struct cfile *p = (struct cfile *)f;
    return p->real->pMethods->xRead(p->real, buf, n, off);
}
static int c_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    struct cfile *p = (struct cfile *)f;
    return p->real->pMethods->xWrite(p->real, buf, n, off);
}
static int c_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    struct cfile *p = (struct cfile *)f;
    return p->real->pMethods->xTruncate(p->real, size);
}
static int c_sync(sqlite3_file *f, int flags)
{
    struct cfile *p = (struct cfile *)f;
    atomic_fetch_add(p->wal ? &wal_syncs : &db_syncs, 1);
    return p->real->pMethods->xSync(p->real, flags);
}
static int c_size(sqlite3_file *f, sqlite3_int64 *size)
{
    struct cfile *p = (struct cfile *)f;
    return p->real->pMethods->xFileSize(p->real, size);
}
static int c_lock(sqlite3_file *f, int l)
{
    struct cfile *p = (struct cfile *)f;
    return p->real->pMethods->xLock(p->real, l);
}
static int c_unlock(sqlite3_file *f, int l)
{
    struct cfile *p = (struct cfile *)f;
    return p->real->pMethods->xUnlock(p->real, l);
}
static int c_check(sqlite3_file *f, int *out)
{
    struct cfile *p = (struct cfile *)f;
    return p->real->pMethods->xCheckReservedLock(p->real, out);
}
static int c_fcntl(sqlite3_file *f, int op, void *arg)
{
    struct cfile *p = (struct cfile *)f;
    return p->real->pMethods->xFileControl(p->real, op, arg);
}
static int c_sector(sqlite3_file *f)
{
    struct cfile *p = (struct cfile *)f;
    return p->real->pMethods->xSectorSize(p->real);
}
static int c_devchar(sqlite3_file *f)
{
    struct cfile *p = (struct cfile *)f;
    return p->real->pMethods->xDeviceCharacteristics(p->real);
}
static int c_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    struct cfile *p = (struct cfile *)f;
    return p->real->pMethods->xShmMap(p->real, pg, pgsz, extend, pp);
}
static int c_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    struct cfile *p = (struct cfile *)f;
    return p->real->pMethods->xShmLock(p->real, off, n, flags);
}
static void c_shm_barrier(sqlite3_file *f)
{
    struct cfile *p = (struct cfile *)f;
    p->real->pMethods->xShmBarrier(p->real);
}
static int c_shm_unmap(sqlite3_file *f, int del)
{
    struct cfile *p = (struct cfile *)f;
    return p->real->pMethods->xShmUnmap(p->real, del);
}
static int c_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    struct cfile *p = (struct cfile *)f;
    return p->real->pMethods->xFetch(p->real, off, n, pp);
}
static int c_unfetch(sqlite3_file *f, sqlite3_int64 off, void *pg)
{
    struct cfile *p = (struct cfile *)f;
    return p->real->pMethods->xUnfetch(p->real, off, pg);
}

static const sqlite3_io_methods c_methods = {
    3,          c_close,       c_read,      c_write, c_truncate, c_sync,    c_size,
    c_lock,     c_unlock,      c_check,     c_fcntl, c_sector,   c_devchar, c_shm_map,
    c_shm_lock, c_shm_barrier, c_shm_unmap, c_fetch, c_unfetch,
};

static int c_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    struct cfile *p = (struct cfile *)f;
    int rc;

    p->real = (sqlite3_file *)&p[1];
    p->wal = (flags & SQLITE_OPEN_WAL) != 0;
    rc = real_vfs->xOpen(real_vfs, name, p->real, flags, out_flags);
    /* Only a file that opened gets methods: SQLite calls xClose only when they are set. */
    p->base.pMethods = rc == SQLITE_OK && p->real->pMethods ? &c_methods : NULL;
    return rc;
}

static void counting_register(void)
{
    if (real_vfs)
        return;
    real_vfs = sqlite3_vfs_find(NULL);
    assert_non_null(real_vfs);
    assert_true(real_vfs->iVersion >= 2);
    counting_vfs = *real_vfs;
    counting_vfs.zName = "mu-counting";
    counting_vfs.szOsFile = (int)sizeof(struct cfile) + real_vfs->szOsFile;
    counting_vfs.xOpen = c_open;
    counting_vfs.pNext = NULL;
    assert_int_equal(sqlite3_vfs_register(&counting_vfs, 0), SQLITE_OK);
}

/* ---- tests ------------------------------------------------------------------------ */

static int setup(void **state)
{
    struct mu_test_db *db = mu_xcalloc(1, sizeof *db);

    counting_register();
    mu_test_db_init(db, "mu-counting");
    *state = db;
    return 0;
}

static int teardown(void **state)
{
    struct mu_test_db *db = *state;

    mu_test_db_fini(db);
    free(db);
    return 0;
}

/* Each CALL must sync the WAL at least once before it returns. */
#define SYNCED(call)                                                                               \
    do {                                                                                           \
        long before_ = atomic_load(&wal_syncs);                                                    \
        struct mu_err e_ = {0};                                                                    \
        struct mu_err *err = &e_;                                                                  \
        if ((call) != 0)                                                                           \
            fail_msg("%s: %s", #call, e_.detail);                                                  \
        if (atomic_load(&wal_syncs) <= before_)                                                    \
            fail_msg("%s returned without syncing the WAL", #call);                                \
    } while (0)

static void test_every_mutation_syncs(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_store *st = db->st;
    struct mu_audit_rec rec = mu_test_rec("x", 0);
    struct mu_tenant t = mu_test_tenant("Ain", "departement", 0, NULL, NULL);
    struct mu_tenant t2 = mu_test_tenant("Bresse", "epci", 0, "200071751", NULL);
    struct mu_user u = {.name = (char *)"ops", .role = (char *)"operator"};
    struct mu_token tok = {.name = (char *)"ci"};
    int64_t tid = 0, tid2 = 0, uid = 0, kid = 0;

    SYNCED(mu_store_tenant_insert(st, &t, &rec, &tid, err));
    SYNCED(mu_store_tenant_insert(st, &t2, &rec, &tid2, err));
    t.id = tid;
    t.population = 650000;
    SYNCED(mu_store_tenant_update(st, &t, &rec, err));
    SYNCED(mu_store_tenant_move(st, tid2, tid, &rec, err));
    struct mu_tenant_upsert up[1] = {{.t = t2, .parent_index = -1}};
    SYNCED(mu_store_tenant_upsert_many(st, up, 1, &rec, NULL, err));
    SYNCED(mu_store_tenant_delete(st, tid2, &rec, err));
    u.tenant_id = 0;
    SYNCED(mu_store_user_insert(st, &u, &rec, &uid, err));
    u.id = uid;
    u.display_name = (char *)"Ops";
    SYNCED(mu_store_user_update(st, &u, &rec, err));
    tok.user_id = uid;
    mu_hex_encode(mu_test_key, sizeof mu_test_key, tok.hash);
    SYNCED(mu_store_token_insert(st, &tok, &rec, &kid, err));
    int64_t ms = 5;
    SYNCED(mu_store_token_touch_many(st, &kid, &ms, 1, err));
    SYNCED(mu_store_token_revoke(st, kid, &rec, err));
    SYNCED(mu_store_user_delete(st, uid, &rec, err));
    SYNCED(mu_store_audit_append(st, &rec, err));
    SYNCED(mu_store_setting_set(st, "k", "v", err));

    /* Reads sync nothing. */
    long before = atomic_load(&wal_syncs);
    struct mu_tenant got = {0};
    struct mu_err err = {0};
    assert_int_equal(mu_store_tenant_get(st, tid, &got, &err), 0);
    mu_tenant_clear(&got);
    assert_int_equal(atomic_load(&wal_syncs), before);
}

static long insert_syncs(sqlite3 *db)
{
    long before = atomic_load(&wal_syncs);

    assert_int_equal(sqlite3_exec(db, "INSERT INTO t VALUES (1)", NULL, NULL, NULL), SQLITE_OK);
    return atomic_load(&wal_syncs) - before;
}

/* The control experiment: the counter really tells FULL from NORMAL, so the test above
 * would fail if the store ran with synchronous=NORMAL. */
static void test_counter_tells_full_from_normal(void **state)
{
    struct mu_test_db *tdb = *state;
    char path[200];
    sqlite3 *db = NULL;

    snprintf(path, sizeof path, "%s/control.db", tdb->dir);
    assert_int_equal(
        sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "mu-counting"),
        SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                  "CREATE TABLE t (x)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    insert_syncs(db);
    assert_int_equal(insert_syncs(db), 0);
    assert_int_equal(insert_syncs(db), 0);
    assert_int_equal(sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL), SQLITE_OK);
    assert_true(insert_syncs(db) >= 1);
    assert_true(insert_syncs(db) >= 1);
    sqlite3_close(db);
}

static long file_size(const char *path)
{
    struct stat sb;

    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* Commits never checkpoint (wal_autocheckpoint=0): the store's thread copies the WAL into
 * the database file in the background, and the WAL is started over rather than growing. */
static void test_background_checkpoint(void **state)
{
    struct mu_test_db *db = *state;
    char *big = mu_xmalloc(16384 + 1);
    char wal[160];
    long before = file_size(db->path), peak = 0;
    int64_t deadline;

    memset(big, 'x', 16384);
    big[16384] = '\0';
    snprintf(wal, sizeof wal, "%s-wal", db->path);
    /* About 20 MB through the WAL, several times its checkpoint threshold. */
    for (int i = 0; i < 1200; i++) {
        char key[32];
        struct mu_err err = {0};
        long w;

        snprintf(key, sizeof key, "k%d", i % 300);
        big[0] = (char)('a' + i % 26);
        assert_int_equal(mu_store_setting_set(db->st, key, big, &err), 0);
        w = file_size(wal);
        peak = w > peak ? w : peak;
    }
    deadline = mu_mono_ms() + 5000;
    while (file_size(db->path) < before + (4L << 20) && mu_mono_ms() < deadline)
        usleep(20000);
    assert_true(file_size(db->path) >= before + (4L << 20));
    /* Started over well before 20 MB of it accumulated. */
    assert_true(peak < (16L << 20));
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_mutation_syncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counter_tells_full_from_normal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_background_checkpoint, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
