/* Address management benchmark (run by hand or by scripts/bench.sh, never in CTest).
 *
 *   setup:  one tenant, one node, one private /16 (65,534 usable addresses) created through
 *           the store; then 99 % of its addresses handed out to 64,880 VMs with one NIC each,
 *           the 1 % left free scattered at random (so the free-range table holds several
 *           hundred ranges, the worst layout for it). VM and NIC rows are written straight
 *           into the file through the program's own SQLite connection in one transaction
 *           (a bench-only shortcut: 65,000 admissions one fsync each would take minutes),
 *           and the network's free ranges are rebuilt from what is left.
 *   first:  mu_store_vm_admit with one NIC and no address asked: the first free address.
 *           Rounds of 300 admissions (the network stays between 98.5 % and 99 % full),
 *           each round then purged in random order (mu_store_vm_purge: the addresses go
 *           back and their ranges merge), 4 rounds.
 *   given:  the same with a random free address asked for.
 *   no-nic: the same admission without a NIC: what the address management adds is the
 *           difference. Target: address management p99 <= 1 ms at 99 % full.
 *
 * Every admission commits with synchronous=FULL, so wall-clock times include the fsync of
 * the WAL; give a tmpfs directory (the default, /dev/shm) to take the disk out. CPU time of
 * the thread is printed as well.
 *
 * Usage: bench_ipam [dir] [seed] */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mutualis/util.h"
#include "store/network.h"
#include "store/provision.h"
#include "store/store.h"

enum {
    ROUND = 300,
    ROUNDS = 4,
};

static const uint32_t NET = 0x0a800000u; /* 10.128.0.0/16 */
static const uint32_t FIRST = 0x0a800001u, LAST = 0x0a80fffeu;

static uint64_t rng;

static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void print_dist(const char *what, int64_t *ns, size_t n)
{
    qsort(ns, n, sizeof *ns, cmp_i64);
    printf("  %-28s p50=%.3f ms p99=%.3f ms max=%.3f ms (n=%zu)\n", what, (double)ns[n / 2] / 1e6,
           (double)ns[n * 99 / 100] / 1e6, (double)ns[n - 1] / 1e6, n);
}

static void die(const char *what, const struct mu_err *err)
{
    fprintf(stderr, "bench_ipam: %s: %s\n", what, err ? err->detail : "");
    exit(1);
}

static void sql_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "bench_ipam: %s: %s\n", sql, msg);
        exit(1);
    }
}

static sqlite3_stmt *sql_prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;

    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_ipam: %s: %s\n", sql, sqlite3_errmsg(db));
        exit(1);
    }
    return s;
}

static void sql_step_done(sqlite3 *db, sqlite3_stmt *s)
{
    if (sqlite3_step(s) != SQLITE_DONE) {
        fprintf(stderr, "bench_ipam: insert: %s\n", sqlite3_errmsg(db));
        exit(1);
    }
    sqlite3_reset(s);
}

struct setup {
    int64_t tenant, node, image, net;
    char *path;
    bool *used; /* by host part 0..65535 */
};

/* 99 % of the network to bulk VMs, straight into the file. */
static size_t bulk_fill(const char *dbpath, struct setup *su)
{
    int64_t now = mu_now_ms();
    size_t n_used = 0, n_free = 0;
    sqlite3_stmt *vm, *nic, *fr;
    sqlite3 *db = NULL;
    int64_t lo = -1;

    su->used = mu_xcalloc(65536, sizeof *su->used);
    for (uint32_t a = FIRST; a <= LAST; a++)
        su->used[a - NET] = rnd() % 100 != 0;
    if (sqlite3_open(dbpath, &db) != SQLITE_OK)
        die("opening the database for the bulk load", NULL);
    sqlite3_busy_timeout(db, 10000);
    sql_exec(db, "PRAGMA synchronous=OFF");
    sql_exec(db, "BEGIN IMMEDIATE");
    vm = sql_prepare(db, "INSERT INTO vms (uuid, tenant_id, tenant_path, name, vcpus, ram_mib, "
                         "disk_gib, image_id, node_id, desired_state, observed_state, "
                         "created_ms, updated_ms, desired_ms, observed_ms) VALUES (?1, ?2, ?3, "
                         "?4, 1, 64, 1, ?5, ?6, 'running', 'running', ?7, ?7, ?7, ?7)");
    nic = sql_prepare(db, "INSERT INTO nics (vm_id, network_id, idx, mac, ip, public, "
                          "created_ms) VALUES (?1, ?2, 0, ?3, ?4, 0, ?5)");
    for (uint32_t a = FIRST; a <= LAST; a++) {
        char uuid[40], name[32], mac[24];

        if (!su->used[a - NET])
            continue;
        snprintf(uuid, sizeof uuid, "00000000-0000-4000-8000-%012u", a);
        snprintf(name, sizeof name, "bulk-%u", a - NET);
        snprintf(mac, sizeof mac, "52:54:00:%02x:%02x:%02x", 0x80 | ((a >> 16) & 0x7f),
                 (a >> 8) & 255, a & 255);
        sqlite3_bind_text(vm, 1, uuid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(vm, 2, su->tenant);
        sqlite3_bind_text(vm, 3, su->path, -1, SQLITE_STATIC);
        sqlite3_bind_text(vm, 4, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(vm, 5, su->image);
        sqlite3_bind_int64(vm, 6, su->node);
        sqlite3_bind_int64(vm, 7, now);
        sql_step_done(db, vm);
        sqlite3_bind_int64(nic, 1, sqlite3_last_insert_rowid(db));
        sqlite3_bind_int64(nic, 2, su->net);
        sqlite3_bind_text(nic, 3, mac, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(nic, 4, a);
        sqlite3_bind_int64(nic, 5, now);
        sql_step_done(db, nic);
        n_used++;
    }
    sqlite3_finalize(vm);
    sqlite3_finalize(nic);

    /* The free ranges: what is left. */
    fr = sql_prepare(db, "DELETE FROM ip_free WHERE network_id = ?1");
    sqlite3_bind_int64(fr, 1, su->net);
    sql_step_done(db, fr);
    sqlite3_finalize(fr);
    fr = sql_prepare(db, "INSERT INTO ip_free (network_id, lo, hi) VALUES (?1, ?2, ?3)");
    for (uint32_t a = FIRST; a <= LAST + 1; a++) {
        bool is_free = a <= LAST && !su->used[a - NET];

        if (is_free && lo < 0)
            lo = a;
        if (!is_free && lo >= 0) {
            sqlite3_bind_int64(fr, 1, su->net);
            sqlite3_bind_int64(fr, 2, lo);
            sqlite3_bind_int64(fr, 3, (int64_t)a - 1);
            sql_step_done(db, fr);
            n_free++;
            lo = -1;
        }
    }
    sqlite3_finalize(fr);
    sql_exec(db, "COMMIT");
    sqlite3_close(db);
    printf("  bulk: %zu addresses in use (%.2f %%), %zu free ranges\n", n_used,
           100.0 * (double)n_used / (double)(LAST - FIRST + 1), n_free);
    return n_used;
}

struct sample {
    int64_t wall, cpu;
};

/* Admits one VM (with a NIC on net unless net is 0; ip may be NULL). */
static int64_t admit(struct mu_store *st, const struct setup *su, const char *name, int64_t net,
                     const char *ip, struct sample *ret)
{
    const struct mu_nic_req nic = {.network_id = net, .ip = ip};
    struct mu_admit_req req = {
        .vm = {.tenant_id = su->tenant,
               .name = (char *)name,
               .vcpus = 1,
               .ram_mib = 64,
               .disk_gib = 1,
               .image_id = su->image},
        .node_id = su->node,
        .node_cap_vcpus = -1,
        .node_cap_ram_mib = -1,
        .node_cap_disk_gib = -1,
        .nics = net ? &nic : NULL,
        .n_nics = net ? 1 : 0,
    };
    struct mu_audit_rec rec = {.actor = "bench", .role = "operator", .action = "vm.create"};
    struct mu_err err = {0};
    int64_t vm = 0, op = 0, w0, c0;

    w0 = clock_ns(CLOCK_MONOTONIC);
    c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    if (mu_store_vm_admit(st, &req, &rec, &vm, &op, &err) < 0)
        die("admit", &err);
    ret->wall = clock_ns(CLOCK_MONOTONIC) - w0;
    ret->cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
    return vm;
}

static void purge(struct mu_store *st, int64_t vm, struct sample *ret)
{
    struct mu_err err = {0};
    int64_t w0 = clock_ns(CLOCK_MONOTONIC), c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);

    if (mu_store_vm_purge(st, vm, &err) < 0)
        die("purge", &err);
    ret->wall = clock_ns(CLOCK_MONOTONIC) - w0;
    ret->cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
}

/* mode 0: first free, 1: a random free address asked for, 2: no NIC. */
static void run(struct mu_store *st, struct setup *su, int mode, const char *what)
{
    size_t n = (size_t)ROUND * ROUNDS, k = 0, kp = 0;
    int64_t *aw = mu_xcalloc(n, sizeof *aw), *ac = mu_xcalloc(n, sizeof *ac);
    int64_t *pw = mu_xcalloc(n, sizeof *pw), *pc = mu_xcalloc(n, sizeof *pc);
    int64_t vms[ROUND];
    char label[64];

    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < ROUND; i++) {
            char name[32], ip[MU_IPV4_TEXT_MAX];
            const char *want = NULL;
            struct sample s;

            snprintf(name, sizeof name, "m%d-r%d-%d", mode, r, i);
            if (mode == 1) {
                uint32_t a;

                do
                    a = FIRST + (uint32_t)(rnd() % (LAST - FIRST + 1));
                while (su->used[a - NET]);
                su->used[a - NET] = true;
                mu_ipv4_format(a, ip);
                want = ip;
            }
            vms[i] = admit(st, su, name, mode == 2 ? 0 : su->net, want, &s);
            aw[k] = s.wall;
            ac[k++] = s.cpu;
        }
        /* Purge in random order: releases land between used neighbours and merge. */
        for (int i = ROUND - 1; i > 0; i--) {
            int j = (int)(rnd() % (uint64_t)(i + 1));
            int64_t t = vms[i];

            vms[i] = vms[j];
            vms[j] = t;
        }
        for (int i = 0; i < ROUND; i++) {
            struct sample s;
            struct mu_nic *nics = NULL;
            struct mu_err err = {0};
            size_t nn = 0;

            if (mode == 1 && mu_store_vm_nics(st, vms[i], &nics, &nn, &err) == 0 && nn == 1) {
                uint32_t a;

                if (mu_ipv4_parse(nics[0].ip, &a) == 0)
                    su->used[a - NET] = false;
            }
            free(nics);
            purge(st, vms[i], &s);
            pw[kp] = s.wall;
            pc[kp++] = s.cpu;
        }
    }
    printf("%s\n", what);
    print_dist("admit wall", aw, k);
    print_dist("admit cpu", ac, k);
    snprintf(label, sizeof label, "purge wall");
    print_dist(label, pw, kp);
    print_dist("purge cpu", pc, kp);
    free(aw);
    free(ac);
    free(pw);
    free(pc);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/dev/shm";
    char tmpl[512], dbpath[600];
    struct mu_err err = {0};
    struct setup su = {0};
    struct mu_store *st;
    static const char key[32] = "bench-ipam-audit-key-0123456789";

    rng = argc > 2 ? strtoull(argv[2], NULL, 10) : (uint64_t)time(NULL);
    if (!rng)
        rng = 1;
    printf("bench_ipam: seed %" PRIu64 "\n", rng);
    snprintf(tmpl, sizeof tmpl, "%s/mu-bench-ipam-XXXXXX", dir);
    if (!mkdtemp(tmpl))
        die("mkdtemp", NULL);
    snprintf(dbpath, sizeof dbpath, "%s/mutualis.db", tmpl);
    struct mu_store_opts opts = {.path = dbpath, .audit_key = key, .audit_key_len = sizeof key};
    st = mu_store_open(&opts, &err);
    if (!st)
        die("open", &err);

    struct mu_audit_rec rec = {.actor = "bench", .role = "operator", .action = "setup"};
    struct mu_tenant t = {.name = (char *)"Syndicat",
                          .kind = (char *)"syndicat",
                          .population = -1,
                          .status = (char *)"active"};
    if (mu_store_tenant_insert(st, &t, &rec, &su.tenant, &err) < 0)
        die("tenant", &err);
    struct mu_tenant got = {0};
    if (mu_store_tenant_get(st, su.tenant, &got, &err) < 0)
        die("tenant get", &err);
    su.path = mu_xasprintf("/%" PRId64 "/", su.tenant);
    mu_tenant_clear(&got);
    struct mu_node n = {.name = (char *)"n1",
                        .uri = (char *)"test:///default",
                        .health = (char *)"up",
                        .reserved_mem_mib = -1};
    if (mu_store_node_insert(st, &n, &rec, &su.node, &err) < 0)
        die("node", &err);
    struct mu_image im = {.name = (char *)"img", .format = (char *)"raw"};
    if (mu_store_image_insert(st, &im, &rec, &su.image, &err) < 0 ||
        mu_store_image_set_ready(st, su.image, 1,
                                 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                                 "/tmp/img", &err) < 0)
        die("image", &err);
    const struct mu_network_spec sp = {
        .tenant_id = su.tenant, .name = "big", .kind = "private", .cidr = "10.128.0.0/16"};
    if (mu_store_network_create(st, &sp, NULL, &rec, &su.net, &err) < 0)
        die("network", &err);
    bulk_fill(dbpath, &su);

    run(st, &su, 0, "first free address (99 % full /16):");
    run(st, &su, 1, "a given free address (99 % full /16):");
    run(st, &su, 2, "no NIC (baseline: the rest of the admission):");

    int64_t nics = 0, fr = 0;
    if (mu_store_network_counts(st, su.net, &nics, &fr, &err) < 0)
        die("counts", &err);
    printf("  after: %" PRId64 " NICs, %" PRId64 " free addresses (expected %d)\n", nics, fr,
           (int)(LAST - FIRST + 1) - (int)nics);
    mu_store_close(st);
    free(su.used);
    free(su.path);
    static const char *const files[] = {"mutualis.db", "mutualis.db-wal", "mutualis.db-shm"};
    for (size_t i = 0; i < MU_ARRAY_LEN(files); i++) {
        snprintf(dbpath, sizeof dbpath, "%s/%s", tmpl, files[i]);
        unlink(dbpath);
    }
    rmdir(tmpl);
    return fr + nics == (int64_t)(LAST - FIRST + 1) ? 0 : 1;
}
