/* Shared by the store unit tests: a temporary directory holding a real SQLite file, a
 * fixed audit key, and a few builders. Header-only so each test stays one executable. */
#ifndef MU_STORE_TEST_H
#define MU_STORE_TEST_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mutualis/util.h"
#include "store/store.h"

static const char mu_test_key[32] = "0123456789abcdef0123456789abcdef";

struct mu_test_db {
    char dir[64];
    char path[128];
    struct mu_store *st;
};

static inline struct mu_store *mu_test_open_path(const char *path, const char *vfs)
{
    struct mu_store_opts opts = {
        .path = path, .vfs = vfs, .audit_key = mu_test_key, .audit_key_len = sizeof mu_test_key};
    struct mu_err err = {0};
    struct mu_store *st = mu_store_open(&opts, &err);

    if (!st)
        fprintf(stderr, "mu_store_open: %s\n", err.detail);
    return st;
}

static inline void mu_test_db_init(struct mu_test_db *db, const char *vfs)
{
    snprintf(db->dir, sizeof db->dir, "/tmp/mu-store-XXXXXX");
    if (!mkdtemp(db->dir))
        abort();
    snprintf(db->path, sizeof db->path, "%s/mutualis.db", db->dir);
    db->st = mu_test_open_path(db->path, vfs);
    if (!db->st)
        abort();
}

static inline void mu_test_db_fini(struct mu_test_db *db)
{
    DIR *d;
    struct dirent *e;

    mu_store_close(db->st);
    db->st = NULL;
    d = opendir(db->dir);
    while (d && (e = readdir(d))) {
        char p[400];

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", db->dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(db->dir);
}

static inline struct mu_audit_rec mu_test_rec(const char *action, int64_t tenant_id)
{
    return (struct mu_audit_rec){.actor = "alice",
                                 .role = "operator",
                                 .tenant_id = tenant_id,
                                 .action = action,
                                 .outcome = "ok",
                                 .request_id = "req-1"};
}

/* A tenant on the stack: strings borrowed from literals (never cleared). */
static inline struct mu_tenant mu_test_tenant(const char *name, const char *kind, int64_t parent,
                                              const char *siren, const char *insee)
{
    return (struct mu_tenant){.parent_id = parent,
                              .name = (char *)name,
                              .kind = (char *)kind,
                              .siren = (char *)siren,
                              .insee = (char *)insee,
                              .population = -1,
                              .status = (char *)"active"};
}

#endif
