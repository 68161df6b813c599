/* Races: 64 threads admit VMs at once against a three-level tree of limits (syndicat >
 * EPCI > two communes) on a real SQLite file, 100 rounds, each on a fresh tree and a fresh
 * node. The rounds rotate which constraint binds: the communes' VM counts, the EPCI's
 * vCPU, the syndicat's memory, the node's memory (the "last node with room"), and the
 * EPCI's disk with some usage already there. Every round, the number admitted must be
 * exactly what the tightest constraint allows, the refusals must carry the right code,
 * the counters must equal the admitted total, and a recount must find nothing to correct. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "provision_test.h"

#define NTHREADS 64
#define OPS      2 /* attempts per thread and round */
#define ROUNDS   100
#define INF      INT64_MAX

struct race {
    struct mu_store *st;
    pthread_barrier_t start;
    struct pt_vm target[2]; /* one per commune; threads alternate */
    int round;
    atomic_int ok, quota, retry, other;
    pthread_mutex_t mu;
    char first_other[600];
};

struct worker {
    struct race *r;
    int n;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct race *r = w->r;

    pthread_barrier_wait(&r->start);
    for (int k = 0; k < OPS; k++) {
        struct mu_err err = {0};
        char name[32];
        int rc;

        snprintf(name, sizeof name, "r%d-t%d-%d", r->round, w->n, k);
        rc = pt_admit(r->st, &r->target[w->n % 2], name, NULL, NULL, &err);
        if (rc == 0) {
            atomic_fetch_add(&r->ok, 1);
        } else if (rc == MU_EQUOTA) {
            atomic_fetch_add(&r->quota, 1);
        } else if (rc == MU_ERETRY) {
            atomic_fetch_add(&r->retry, 1);
        } else {
            pthread_mutex_lock(&r->mu);
            if (atomic_fetch_add(&r->other, 1) == 0)
                snprintf(r->first_other, sizeof r->first_other, "rc=%d %s", rc, err.detail);
            pthread_mutex_unlock(&r->mu);
        }
    }
    return NULL;
}

/* How many VMs of size fit under limits given what is used (INF if nothing binds). */
static int64_t fits(const struct mu_limits *l, const struct mu_usage *used,
                    const struct mu_usage *size)
{
    const int64_t lim[] = {l->vcpus, l->ram_mib, l->disk_gib, l->vms};
    const int64_t u[] = {used->vcpus, used->ram_mib, used->disk_gib, used->vms};
    const int64_t s[] = {size->vcpus, size->ram_mib, size->disk_gib, size->vms};
    int64_t best = INF;

    for (int i = 0; i < 4; i++) {
        int64_t k;

        if (lim[i] < 0 || s[i] <= 0)
            continue;
        k = lim[i] > u[i] ? (lim[i] - u[i]) / s[i] : 0;
        if (k < best)
            best = k;
    }
    return best;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static const struct mu_limits loose = {MU_UNLIMITED, 10000000,     MU_UNLIMITED,
                                       100000,       MU_UNLIMITED, MU_UNLIMITED};

struct round_plan {
    struct mu_limits s, e, c1, c2;
    struct mu_limits node; /* allocatable; vms unused */
    struct mu_usage size;
    struct mu_usage pre; /* one VM admitted in commune 2 before the race, or zeros */
    int refusal;         /* the code every refusal must carry */
    const char *what;
};

static struct round_plan plan_round(int r)
{
    struct round_plan p = {.s = loose,
                           .e = loose,
                           .c1 = loose,
                           .c2 = loose,
                           .node = {PT_BIG, PT_BIG, PT_BIG, MU_UNLIMITED},
                           .refusal = MU_EQUOTA};
    int64_t k = 5 + (r * 7) % 20; /* 5..24 admissions where one level binds */

    p.size = (struct mu_usage){1 + r % 3, 512 * (1 + r % 4), 5 + r % 5, 1, 0, 0};
    switch (r % 5) {
    case 0:
        p.what = "communes' VM counts";
        p.c1.vms = 3 + r % 11;
        p.c2.vms = 4 + r % 13;
        break;
    case 1:
        p.what = "EPCI vCPU";
        p.e.vcpus = p.size.vcpus * k + (p.size.vcpus - 1);
        break;
    case 2:
        p.what = "syndicat memory";
        p.s.ram_mib = p.size.ram_mib * k + p.size.ram_mib / 2;
        break;
    case 3:
        p.what = "node memory";
        p.node.ram_mib = p.size.ram_mib * k + 100;
        p.refusal = MU_ERETRY;
        break;
    default:
        p.what = "EPCI disk after earlier use";
        p.pre = (struct mu_usage){1, 64, 7, 1, 0, 0};
        p.e.disk_gib = 7 + p.size.disk_gib * k + 1;
        break;
    }
    return p;
}

static void set_quota(struct mu_store *st, int64_t tenant, const struct mu_limits *l)
{
    pt_quota(st, tenant, l->vcpus, l->ram_mib, l->disk_gib, l->vms);
}

static void run_round(struct mu_store *st, int64_t img, int r)
{
    struct round_plan p = plan_round(r);
    struct race race = {.st = st, .round = r};
    struct worker w[NTHREADS];
    pthread_t th[NTHREADS];
    char name[48], detail[512];
    int64_t s, e, c1, c2, node, expected, per_commune[2];
    struct mu_quota_level *lv = NULL;
    struct mu_err err = {0};
    size_t n = 0;

    snprintf(name, sizeof name, "Syndicat %d", r);
    s = pt_tenant(st, name, "syndicat", 0);
    snprintf(name, sizeof name, "EPCI %d", r);
    e = pt_tenant(st, name, "epci", s);
    snprintf(name, sizeof name, "Commune %d-1", r);
    c1 = pt_tenant(st, name, "commune", e);
    snprintf(name, sizeof name, "Commune %d-2", r);
    c2 = pt_tenant(st, name, "commune", e);
    snprintf(name, sizeof name, "node-%d", r);
    node = pt_node(st, name);
    set_quota(st, s, &p.s);
    set_quota(st, e, &p.e);
    set_quota(st, c1, &p.c1);
    set_quota(st, c2, &p.c2);
    for (int i = 0; i < 2; i++)
        race.target[i] = (struct pt_vm){.tenant = i == 0 ? c1 : c2,
                                        .node = node,
                                        .vcpus = p.size.vcpus,
                                        .ram_mib = p.size.ram_mib,
                                        .disk_gib = p.size.disk_gib,
                                        .image = img,
                                        .cap_vcpus = p.node.vcpus,
                                        .cap_ram_mib = p.node.ram_mib,
                                        .cap_disk_gib = p.node.disk_gib};
    if (p.pre.vms > 0) {
        struct pt_vm pre = race.target[1];

        pre.vcpus = p.pre.vcpus;
        pre.ram_mib = p.pre.ram_mib;
        pre.disk_gib = p.pre.disk_gib;
        pt_check(pt_admit(st, &pre, "pre", NULL, NULL, &err), &err, "pre-admission");
    }

    /* By hand: each commune takes what it and the race allow (NTHREADS / 2 * OPS tries);
     * the EPCI, the syndicat and the node cap the sum. */
    struct mu_usage zero = {0};
    per_commune[0] = min64(fits(&p.c1, &zero, &p.size), NTHREADS / 2 * OPS);
    per_commune[1] = min64(fits(&p.c2, &p.pre, &p.size), NTHREADS / 2 * OPS);
    expected = per_commune[0] + per_commune[1];
    expected = min64(expected, fits(&p.e, &p.pre, &p.size));
    expected = min64(expected, fits(&p.s, &p.pre, &p.size));
    expected = min64(expected, fits(&p.node, &p.pre, &p.size));
    assert_true(expected > 0 && expected < NTHREADS * OPS);

    pthread_mutex_init(&race.mu, NULL);
    pthread_barrier_init(&race.start, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct worker){.r = &race, .n = i};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&race.start);
    pthread_mutex_destroy(&race.mu);

    if (race.other > 0)
        fail_msg("round %d (%s): %d unexpected failures, first: %s", r, p.what, race.other,
                 race.first_other);
    if (race.ok != expected)
        fail_msg("round %d (%s): %d admitted, %" PRId64 " expected", r, p.what, race.ok, expected);
    if ((p.refusal == MU_EQUOTA ? race.quota : race.retry) != NTHREADS * OPS - expected)
        fail_msg("round %d (%s): %d quota and %d retry refusals for %" PRId64 " expected", r,
                 p.what, race.quota, race.retry, NTHREADS * OPS - expected);

    /* Counters equal the admitted total at every level and on the node... */
    PT_ASSERT_USAGE(pt_usage(st, s), p.pre.vcpus + expected * p.size.vcpus,
                    p.pre.ram_mib + expected * p.size.ram_mib,
                    p.pre.disk_gib + expected * p.size.disk_gib, p.pre.vms + expected);
    PT_ASSERT_USAGE(pt_node_alloc(st, node), p.pre.vcpus + expected * p.size.vcpus,
                    p.pre.ram_mib + expected * p.size.ram_mib,
                    p.pre.disk_gib + expected * p.size.disk_gib, p.pre.vms + expected);
    /* ...no level overshoots its limit... */
    for (int i = 0; i < 2; i++) {
        pt_check(mu_store_quota_levels(st, i == 0 ? c1 : c2, NULL, &lv, &n, &err), &err, "levels");
        for (size_t j = 0; j < n; j++) {
            assert_true(lv[j].limits.vcpus < 0 || lv[j].usage.vcpus <= lv[j].limits.vcpus);
            assert_true(lv[j].limits.ram_mib < 0 || lv[j].usage.ram_mib <= lv[j].limits.ram_mib);
            assert_true(lv[j].limits.disk_gib < 0 || lv[j].usage.disk_gib <= lv[j].limits.disk_gib);
            assert_true(lv[j].limits.vms < 0 || lv[j].usage.vms <= lv[j].limits.vms);
        }
        mu_quota_levels_free(lv, n);
    }
    /* ...and the recount agrees. */
    if (pt_recount(st, detail, sizeof detail) != 0)
        fail_msg("round %d (%s): recount corrected counters: %s", r, p.what, detail);
}

static void test_races(void **state)
{
    struct mu_test_db db;
    int64_t img;

    (void)state;
    mu_test_db_init(&db, NULL);
    img = pt_image(db.st, "debian");
    for (int r = 0; r < ROUNDS; r++)
        run_round(db.st, img, r);
    mu_test_db_fini(&db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_races),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
