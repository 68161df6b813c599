/* Admission and VM-list benchmarks on the store (run by hand from a Release build, never in
 * CTest).
 *
 *   setup:  1 syndicat, 100 EPCI, 3,000 communes (mu_store_tenant_upsert_many), then
 *           2,000 nodes, one anti-affinity group per EPCI and 200,000 VMs spread at random
 *           over communes and nodes. Nodes, groups and VMs are written by this program
 *           straight into the database file through its own SQLite connection, in one
 *           transaction with synchronous=OFF (a bench-only shortcut: 200,000 admissions one
 *           fsync each would take minutes); the usage counters are left at zero and
 *           mu_store_usage_recount then computes them (its time at this size is printed).
 *   admit:  5,000 mu_store_vm_admit calls (random commune, node and size; one in five in
 *           its EPCI's anti-affinity group, placed again on another node on MU_ERETRY as
 *           the caller does). Quotas: explicit on the syndicat and every EPCI, the policy's
 *           defaults (a callback) for communes. Target p99 <= 2 ms.
 *           SQLite checkpoints the WAL inside the commit that crosses 1,000 pages: about
 *           one admission in 40 pays for it, which is what p99 shows.
 *   list:   one page (limit 100) of mu_store_vm_list scoped to a commune (~66 VMs), an EPCI
 *           (~2,000) and the syndicat (all), first pages and pages after a random id; and
 *           the VMs of one node. Target p99 <= 20 ms.
 *
 * Figures are given as wall-clock time and as CPU time of the thread. Every admission
 * commits with synchronous=FULL, so its wall-clock time includes the fsync of the WAL:
 * the CPU time is the work done under the writer lock (with the kernel's share of the
 * sync). For scale, the same is timed for a one-row durable commit (the floor of any
 * acknowledged write on that disk). Give a tmpfs directory (/dev/shm) to take the disk
 * out of the wall-clock figures.
 *
 * Usage: bench_admission [dir] [seed]   (dir default /tmp; the seed is printed) */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mutualis/util.h"
#include "store/provision.h"
#include "store/store.h"

enum {
    N_EPCI = 100,
    N_COMMUNES = 3000,
    N_NODES = 2000,
    N_VMS = 200000,
    N_ADMIT = 5000,
    N_PAGES = 1000,
};

static uint64_t rng;

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static int64_t rnd_in(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

static int64_t cpu_ns(void)
{
    return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void print_dist(const char *what, int64_t *ns, size_t n)
{
    qsort(ns, n, sizeof *ns, cmp_i64);
    printf("  %-5s p50=%.3f ms p99=%.3f ms max=%.3f ms\n", what, (double)ns[n / 2] / 1e6,
           (double)ns[n * 99 / 100] / 1e6, (double)ns[n - 1] / 1e6);
}

static void die(const char *what, const struct mu_err *err)
{
    fprintf(stderr, "bench_admission: %s: %s\n", what, err ? err->detail : "");
    exit(1);
}

static void sql_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "bench_admission: %s: %s\n", sql, msg);
        exit(1);
    }
}

static sqlite3_stmt *sql_prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;

    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_admission: %s: %s\n", sql, sqlite3_errmsg(db));
        exit(1);
    }
    return s;
}

static void sql_step_done(sqlite3 *db, sqlite3_stmt *s)
{
    if (sqlite3_step(s) != SQLITE_DONE) {
        fprintf(stderr, "bench_admission: insert: %s\n", sqlite3_errmsg(db));
        exit(1);
    }
    sqlite3_reset(s);
}

/* The tenant tree through the store's bulk upsert. */
static void build_tenants(struct mu_store *st)
{
    size_t n = 1 + N_EPCI + N_COMMUNES, k = 0;
    struct mu_tenant_upsert *e = mu_xcalloc(n, sizeof *e);
    char(*names)[48] = mu_xcalloc(n, sizeof *names);
    char(*codes)[16] = mu_xcalloc(n, sizeof *codes);
    struct mu_audit_rec rec = {.actor = "bench", .role = "operator", .action = "tenant.import"};
    struct mu_import_counts counts;
    struct mu_err err = {0};

    snprintf(names[k], sizeof names[k], "Syndicat du Numérique");
    snprintf(codes[k], sizeof codes[k], "200000001");
    e[k] = (struct mu_tenant_upsert){
        .t = {.name = names[k], .kind = (char *)"syndicat", .siren = codes[k], .population = -1},
        .parent_index = -1};
    k++;
    for (int i = 0; i < N_EPCI; i++, k++) {
        snprintf(names[k], sizeof names[k], "CC du Pays %d", i);
        snprintf(codes[k], sizeof codes[k], "2100%05d", i);
        e[k] = (struct mu_tenant_upsert){
            .t = {.name = names[k], .kind = (char *)"epci", .siren = codes[k], .population = 30000},
            .parent_index = 0};
    }
    for (int i = 0; i < N_COMMUNES; i++, k++) {
        snprintf(names[k], sizeof names[k], "Commune %d", i);
        snprintf(codes[k], sizeof codes[k], "%05d", 1001 + i);
        e[k] = (struct mu_tenant_upsert){.t = {.name = names[k],
                                               .kind = (char *)"commune",
                                               .insee = codes[k],
                                               .population = rnd_in(50, 5000)},
                                         .parent_index = 1 + i % N_EPCI};
    }
    if (mu_store_tenant_upsert_many(st, e, n, &rec, &counts, &err) < 0)
        die("tenant import", &err);
    free(e);
    free(names);
    free(codes);
}

struct tree {
    int64_t synd;
    int64_t epci[N_EPCI], epci_group[N_EPCI];
    int64_t commune[N_COMMUNES];
    char *commune_path[N_COMMUNES];
    int commune_epci[N_COMMUNES]; /* index into epci */
    int64_t node[N_NODES];
    int64_t image, flavor;
};

/* Bench-only bulk load, straight into the file (see the header comment). */
static void bulk_load(const char *path, struct tree *t)
{
    static const int64_t sizes[][3] = {{1, 1024, 10}, {1, 2048, 20}, {2, 2048, 20},
                                       {2, 4096, 40}, {4, 4096, 40}, {4, 8192, 80}};
    int64_t now = mu_now_ms();
    sqlite3 *db = NULL;
    sqlite3_stmt *s;
    int ci = 0, ei = 0;

    if (sqlite3_open(path, &db) != SQLITE_OK)
        die("opening the database for the bulk load", NULL);
    sqlite3_busy_timeout(db, 10000);
    sql_exec(db, "PRAGMA synchronous=OFF");
    sql_exec(db, "BEGIN IMMEDIATE");

    s = sql_prepare(db, "SELECT id, kind, path FROM tenants ORDER BY id");
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *kind = (const char *)sqlite3_column_text(s, 1);

        if (strcmp(kind, "syndicat") == 0)
            t->synd = sqlite3_column_int64(s, 0);
        else if (strcmp(kind, "epci") == 0)
            t->epci[ei++] = sqlite3_column_int64(s, 0);
        else {
            t->commune[ci] = sqlite3_column_int64(s, 0);
            t->commune_path[ci] = mu_xstrdup((const char *)sqlite3_column_text(s, 2));
            t->commune_epci[ci] = ci % N_EPCI;
            ci++;
        }
    }
    sqlite3_finalize(s);
    if (ci != N_COMMUNES || ei != N_EPCI)
        die("unexpected tenant tree", NULL);

    s = sql_prepare(db, "INSERT INTO nodes (name, uri, health, cpus, mem_mib, disk_gib, kvm, "
                        "labels_json, created_ms, updated_ms) VALUES (?1, 'test:///default', "
                        "'up', 128, 1048576, 20000, 1, ?2, ?3, ?3)");
    for (int i = 0; i < N_NODES; i++) {
        char name[32], labels[48];

        snprintf(name, sizeof name, "node-%d", i + 1);
        snprintf(labels, sizeof labels, "{\"site\":\"%c\"}", 'a' + i % 3);
        sqlite3_bind_text(s, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 2, labels, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 3, now);
        sql_step_done(db, s);
        t->node[i] = sqlite3_last_insert_rowid(db);
    }
    sqlite3_finalize(s);

    sql_exec(db, "INSERT INTO images (name, format, size_bytes, sha256, path, status, created_ms) "
                 "VALUES ('debian-12', 'qcow2', 1073741824, "
                 "'0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef', "
                 "'/var/lib/mutualis/images/1.qcow2', 'ready', 0)");
    t->image = sqlite3_last_insert_rowid(db);
    sql_exec(db, "INSERT INTO flavors (name, vcpus, ram_mib, disk_gib, created_ms) "
                 "VALUES ('m1.small', 2, 2048, 20, 0)");
    t->flavor = sqlite3_last_insert_rowid(db);

    s = sql_prepare(db, "INSERT INTO groups (tenant_id, name, created_ms) VALUES (?1, 'ha', 0)");
    for (int i = 0; i < N_EPCI; i++) {
        sqlite3_bind_int64(s, 1, t->epci[i]);
        sql_step_done(db, s);
        t->epci_group[i] = sqlite3_last_insert_rowid(db);
    }
    sqlite3_finalize(s);

    /* Explicit quotas on the syndicat and the EPCI; communes use the policy default. */
    s = sql_prepare(db, "INSERT INTO quotas (tenant_id, vcpus, ram_mib, disk_gib, vms, "
                        "updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, 0)");
    sqlite3_bind_int64(s, 1, t->synd);
    sqlite3_bind_int64(s, 2, 4000000);
    sqlite3_bind_int64(s, 3, 4000000000LL);
    sqlite3_bind_int64(s, 4, MU_UNLIMITED);
    sqlite3_bind_int64(s, 5, 1000000);
    sql_step_done(db, s);
    for (int i = 0; i < N_EPCI; i++) {
        sqlite3_bind_int64(s, 1, t->epci[i]);
        sqlite3_bind_int64(s, 2, 40000);
        sqlite3_bind_int64(s, 3, 40000000);
        sqlite3_bind_int64(s, 4, 400000);
        sqlite3_bind_int64(s, 5, 10000);
        sql_step_done(db, s);
    }
    sqlite3_finalize(s);

    s = sql_prepare(db, "INSERT INTO vms (uuid, tenant_id, tenant_path, name, flavor_id, vcpus, "
                        "ram_mib, disk_gib, image_id, node_id, group_id, desired_state, "
                        "observed_state, created_ms, updated_ms, desired_ms, observed_ms) "
                        "VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
                        "?13, ?13, ?13)");
    for (int i = 0; i < N_VMS; i++) {
        int c = (int)rnd_in(0, N_COMMUNES - 1);
        const int64_t *sz = sizes[rnd_in(0, 5)];
        bool running = rnd_in(0, 9) != 0;
        char uuid[40], name[32];

        snprintf(uuid, sizeof uuid, "00000000-0000-4000-8000-%012d", i);
        snprintf(name, sizeof name, "b%d", i);
        sqlite3_bind_text(s, 1, uuid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 2, t->commune[c]);
        sqlite3_bind_text(s, 3, t->commune_path[c], -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 4, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 5, sz[0]);
        sqlite3_bind_int64(s, 6, sz[1]);
        sqlite3_bind_int64(s, 7, sz[2]);
        sqlite3_bind_int64(s, 8, t->image);
        sqlite3_bind_int64(s, 9, t->node[rnd_in(0, N_NODES - 1)]);
        if (rnd_in(0, 9) == 0)
            sqlite3_bind_int64(s, 10, t->epci_group[t->commune_epci[c]]);
        else
            sqlite3_bind_null(s, 10);
        sqlite3_bind_text(s, 11, running ? "running" : "stopped", -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 12, running ? "running" : "shutoff", -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 13, now);
        sql_step_done(db, s);
    }
    sqlite3_finalize(s);
    sql_exec(db, "COMMIT");
    sqlite3_close(db);
}

/* The policy's defaults for communes: generous, by population. */
static void defaults_fn(void *ctx, const char *kind, int64_t population, struct mu_limits *ret)
{
    (void)ctx;
    if (strcmp(kind, "commune") == 0)
        *ret = (struct mu_limits){
            population < 1000 ? 2000 : 4000, 4000000, 100000, 1000, MU_UNLIMITED, MU_UNLIMITED};
    else
        *ret = (struct mu_limits){MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED,
                                  MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED};
}

static void bench_admit(struct mu_store *st, const struct tree *t)
{
    static const int64_t sizes[][3] = {{1, 1024, 10}, {2, 2048, 20}, {2, 4096, 40}, {4, 8192, 80}};
    struct mu_quota_defaults defaults = {.fn = defaults_fn};
    int64_t *ns = mu_xcalloc(N_ADMIT, sizeof *ns), *cpu = mu_xcalloc(N_ADMIT, sizeof *cpu);
    size_t retries = 0, admitted = 0;

    for (int k = 0; k < N_ADMIT; k++) {
        int c = (int)rnd_in(0, N_COMMUNES - 1);
        const int64_t *sz = sizes[rnd_in(0, 3)];
        char name[32];
        struct mu_admit_req req = {
            .vm = {.tenant_id = t->commune[c],
                   .name = name,
                   .flavor_id = 0,
                   .vcpus = sz[0],
                   .ram_mib = sz[1],
                   .disk_gib = sz[2],
                   .image_id = t->image,
                   .group_id = rnd_in(0, 4) == 0 ? t->epci_group[t->commune_epci[c]] : 0},
            .node_cap_vcpus = 512,
            .node_cap_ram_mib = 1048576,
            .node_cap_disk_gib = 20000,
            .defaults = &defaults,
            .op_params_json = "{\"image\":\"debian-12\"}",
        };
        struct mu_audit_rec rec = {.actor = "bench",
                                   .role = "operator",
                                   .tenant_id = t->commune[c],
                                   .action = "vm.create",
                                   .request_id = "bench"};
        struct mu_err err = {0};
        int64_t vm, op, a, cc;
        int rc;

        snprintf(name, sizeof name, "a%d", k);
        a = now_ns();
        cc = cpu_ns();
        for (int attempt = 0; attempt < 5; attempt++) {
            req.node_id = t->node[rnd_in(0, N_NODES - 1)];
            mu_err_clear(&err);
            rc = mu_store_vm_admit(st, &req, &rec, &vm, &op, &err);
            if (rc != MU_ERETRY)
                break;
            retries++;
        }
        cpu[k] = cpu_ns() - cc;
        ns[k] = now_ns() - a;
        if (rc < 0)
            die("admission", &err);
        admitted++;
    }
    printf("admit: %zu admitted over %d VMs, %zu anti-affinity retries (target p99 <= 2 ms)\n",
           admitted, N_VMS, retries);
    print_dist("wall", ns, N_ADMIT);
    print_dist("cpu", cpu, N_ADMIT);
    free(ns);
    free(cpu);
}

/* The floor under any acknowledged write on this disk: one tiny durable commit
 * (mu_store_setting_set), timed like an admission. */
static void bench_commit_floor(struct mu_store *st)
{
    enum { N = 1000 };
    int64_t *ns = mu_xcalloc(N, sizeof *ns), *cpu = mu_xcalloc(N, sizeof *cpu);

    for (int k = 0; k < N; k++) {
        struct mu_err err = {0};
        char value[32];
        int64_t a, c;

        snprintf(value, sizeof value, "%d", k);
        a = now_ns();
        c = cpu_ns();
        if (mu_store_setting_set(st, "bench.floor", value, &err) < 0)
            die("setting", &err);
        cpu[k] = cpu_ns() - c;
        ns[k] = now_ns() - a;
    }
    printf("commit floor: %d one-row durable commits (mu_store_setting_set)\n", N);
    print_dist("wall", ns, N);
    print_dist("cpu", cpu, N);
    free(ns);
    free(cpu);
}

static void bench_list_one(struct mu_store *st, const char *what, const int64_t *scopes,
                           int n_scopes, bool random_after, int64_t node_id)
{
    int64_t *ns = mu_xcalloc(N_PAGES, sizeof *ns), *cpu = mu_xcalloc(N_PAGES, sizeof *cpu);
    size_t rows = 0;

    for (int k = 0; k < N_PAGES; k++) {
        struct mu_vm_filter f = {
            .scope_id = n_scopes ? scopes[rnd_in(0, n_scopes - 1)] : 0,
            .node_id = node_id,
            .after_id = random_after ? rnd_in(0, N_VMS) : 0,
            .limit = 100,
        };
        struct mu_vm *vms = NULL;
        struct mu_err err = {0};
        size_t n = 0;
        int64_t a = now_ns(), c = cpu_ns();

        if (mu_store_vm_list(st, &f, &vms, &n, &err) < 0)
            die("list", &err);
        cpu[k] = cpu_ns() - c;
        ns[k] = now_ns() - a;
        rows += n;
        mu_vms_free(vms, n);
    }
    printf("list: %s, limit 100, %.1f rows per page on average (target p99 <= 20 ms)\n", what,
           (double)rows / N_PAGES);
    print_dist("wall", ns, N_PAGES);
    print_dist("cpu", cpu, N_PAGES);
    free(ns);
    free(cpu);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    struct tree *t = mu_xcalloc(1, sizeof *t);
    char tmpl[256], path[300], detail[1024];
    struct mu_store_opts opts;
    struct mu_store *st;
    struct mu_err err = {0};
    int64_t mismatches = 0, a;

    rng = argc > 2 ? strtoull(argv[2], NULL, 10) : (uint64_t)time(NULL);
    if (rng == 0)
        rng = 1;
    printf("bench_admission: seed %" PRIu64 "\n", rng);
    snprintf(tmpl, sizeof tmpl, "%s/mu-bench-XXXXXX", dir);
    if (!mkdtemp(tmpl))
        die("mkdtemp", NULL);
    snprintf(path, sizeof path, "%s/mutualis.db", tmpl);
    opts = (struct mu_store_opts){
        .path = path, .audit_key = "0123456789abcdef0123456789abcdef", .audit_key_len = 32};

    a = now_ns();
    st = mu_store_open(&opts, &err);
    if (!st)
        die("open", &err);
    build_tenants(st);
    bulk_load(path, t);
    printf("setup: %d tenants, %d nodes, %d VMs loaded in %.1f s\n", 1 + N_EPCI + N_COMMUNES,
           N_NODES, N_VMS, (double)(now_ns() - a) / 1e9);
    a = now_ns();
    if (mu_store_usage_recount(st, &mismatches, detail, sizeof detail, &err) < 0)
        die("recount", &err);
    printf("recount: %" PRId64 " counters set from the VM rows in %.0f ms\n", mismatches,
           (double)(now_ns() - a) / 1e6);
    a = now_ns();
    if (mu_store_usage_recount(st, &mismatches, detail, sizeof detail, &err) < 0)
        die("recount", &err);
    printf("recount: a clean pass (%" PRId64 " mismatches, nothing locked) in %.0f ms\n",
           mismatches, (double)(now_ns() - a) / 1e6);

    bench_commit_floor(st);
    bench_admit(st, t);

    bench_list_one(st, "scope = a commune", t->commune, N_COMMUNES, false, 0);
    bench_list_one(st, "scope = an EPCI, first page", t->epci, N_EPCI, false, 0);
    bench_list_one(st, "scope = an EPCI, after a random id", t->epci, N_EPCI, true, 0);
    bench_list_one(st, "scope = the syndicat, first page", &t->synd, 1, false, 0);
    bench_list_one(st, "scope = the syndicat, after a random id", &t->synd, 1, true, 0);
    bench_list_one(st, "one node's VMs, scope = the syndicat", &t->synd, 1, false,
                   t->node[rnd_in(0, N_NODES - 1)]);

    a = now_ns();
    if (mu_store_usage_recount(st, &mismatches, detail, sizeof detail, &err) < 0)
        die("recount", &err);
    printf("recount after the run: %" PRId64 " mismatches (%s) in %.0f ms\n", mismatches, detail,
           (double)(now_ns() - a) / 1e6);

    mu_store_close(st);
    for (int i = 0; i < N_COMMUNES; i++)
        free(t->commune_path[i]);
    free(t);
    {
        const char *suffix[] = {"", "-wal", "-shm"};
        for (size_t i = 0; i < 3; i++) {
            char p[320];
            snprintf(p, sizeof p, "%s%s", path, suffix[i]);
            unlink(p);
        }
        rmdir(tmpl);
    }
    return mismatches == 0 ? 0 : 1;
}
