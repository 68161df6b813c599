/* Sync-logging VFS for durability tests (see test_vfs.h). Only used when mutualisd runs
 * with MU_TEST_SYNC_LOG set. */
#include "store/test_vfs.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mutualis/util.h"

struct sync_file {
    sqlite3_file base;  /* must be first: our methods */
    sqlite3_file *real; /* the wrapped file, allocated after us */
    char name[256];
};

static sqlite3_vfs sync_vfs;
static sqlite3_vfs *real_vfs;
static int log_fd = -1;
static sqlite3_io_methods sync_methods;

static int x_close(sqlite3_file *f)
{
    struct sync_file *s = (struct sync_file *)f;
    int r = s->real->pMethods ? s->real->pMethods->xClose(s->real) : SQLITE_OK;
    return r;
}
static int x_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
    struct sync_file *s = (struct sync_file *)f;
    return s->real->pMethods->xRead(s->real, b, n, o);
}
static int x_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
    struct sync_file *s = (struct sync_file *)f;
    return s->real->pMethods->xWrite(s->real, b, n, o);
}
static int x_truncate(sqlite3_file *f, sqlite3_int64 n)
{
    struct sync_file *s = (struct sync_file *)f;
    return s->real->pMethods->xTruncate(s->real, n);
}
static int x_sync(sqlite3_file *f, int flags)
{
    struct sync_file *s = (struct sync_file *)f;
    int r = s->real->pMethods->xSync(s->real, flags);
    if (r == SQLITE_OK && log_fd >= 0) {
        char line[300];
        int n = snprintf(line, sizeof line, "sync %s\n", s->name);
        ssize_t w = write(log_fd, line, (size_t)n);
        (void)w;
    }
    return r;
}
static int x_size(sqlite3_file *f, sqlite3_int64 *p)
{
    struct sync_file *s = (struct sync_file *)f;
    return s->real->pMethods->xFileSize(s->real, p);
}
static int x_lock(sqlite3_file *f, int l)
{
    struct sync_file *s = (struct sync_file *)f;
    return s->real->pMethods->xLock(s->real, l);
}
static int x_unlock(sqlite3_file *f, int l)
{
    struct sync_file *s = (struct sync_file *)f;
    return s->real->pMethods->xUnlock(s->real, l);
}
static int x_check(sqlite3_file *f, int *p)
{
    struct sync_file *s = (struct sync_file *)f;
    return s->real->pMethods->xCheckReservedLock(s->real, p);
}
static int x_fctl(sqlite3_file *f, int op, void *a)
{
    struct sync_file *s = (struct sync_file *)f;
    return s->real->pMethods->xFileControl(s->real, op, a);
}
static int x_sector(sqlite3_file *f)
{
    struct sync_file *s = (struct sync_file *)f;
    return s->real->pMethods->xSectorSize(s->real);
}
static int x_dev(sqlite3_file *f)
{
    struct sync_file *s = (struct sync_file *)f;
    return s->real->pMethods->xDeviceCharacteristics(s->real);
}
static int x_shmmap(sqlite3_file *f, int i, int sz, int ext, void volatile **pp)
{
    struct sync_file *s = (struct sync_file *)f;
    return s->real->pMethods->xShmMap(s->real, i, sz, ext, pp);
}
static int x_shmlock(sqlite3_file *f, int o, int n, int fl)
{
    struct sync_file *s = (struct sync_file *)f;
    return s->real->pMethods->xShmLock(s->real, o, n, fl);
}
static void x_shmbarrier(sqlite3_file *f)
{
    struct sync_file *s = (struct sync_file *)f;
    s->real->pMethods->xShmBarrier(s->real);
}
static int x_shmunmap(sqlite3_file *f, int d)
{
    struct sync_file *s = (struct sync_file *)f;
    return s->real->pMethods->xShmUnmap(s->real, d);
}
static int x_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **pp)
{
    struct sync_file *s = (struct sync_file *)f;
    return s->real->pMethods->xFetch(s->real, o, n, pp);
}
static int x_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p)
{
    struct sync_file *s = (struct sync_file *)f;
    return s->real->pMethods->xUnfetch(s->real, o, p);
}

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    struct sync_file *s = (struct sync_file *)f;
    s->real = (sqlite3_file *)(s + 1);
    const char *base = name ? strrchr(name, '/') : NULL;
    snprintf(s->name, sizeof s->name, "%s", base ? base + 1 : (name ? name : "temp"));
    int r = real_vfs->xOpen(real_vfs, name, s->real, flags, out);
    s->base.pMethods = s->real->pMethods ? &sync_methods : NULL;
    return r;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *pending_log;

static void do_register(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    sync_methods = (sqlite3_io_methods){
        3,         x_close,      x_read,     x_write, x_truncate, x_sync, x_size,
        x_lock,    x_unlock,     x_check,    x_fctl,  x_sector,   x_dev,  x_shmmap,
        x_shmlock, x_shmbarrier, x_shmunmap, x_fetch, x_unfetch};
    sync_vfs = *real_vfs;
    sync_vfs.zName = "mu-sync-log";
    sync_vfs.szOsFile = (int)sizeof(struct sync_file) + real_vfs->szOsFile;
    sync_vfs.xOpen = v_open;
    sync_vfs.pNext = NULL;
    log_fd = open(pending_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    sqlite3_vfs_register(&sync_vfs, 0);
}

const char *mu_store_test_sync_vfs(const char *log_path)
{
    pending_log = log_path;
    pthread_once(&once, do_register);
    return "mu-sync-log";
}
