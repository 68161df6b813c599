/* catalog/prober.c: the TCP probe against real listeners on loopback addresses, and passes
 * of the prober over a real store: a provisioning request whose VM's first NIC has a
 * 127.78.0.x address becomes ready only once something listens there on the request's port;
 * one whose operation failed becomes failed with the operation's error; one past its
 * deadline (injected clock) becomes failed naming the port. Each change is audited and
 * appended to the event feed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../store/provision_test.h"
#include "catalog/catalog.h"
#include "store/events.h"
#include "store/network.h"
#include "store/requests.h"

/* A listening TCP socket on ip, port 0: the kernel picks; *ret_port says which. */
static int listen_on(const char *ip, int *ret_port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4) < 0)
        fail_msg("cannot listen on %s", ip);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *ret_port = ntohs(sa.sin_port);
    return fd;
}

static void test_probe_tcp(void **state)
{
    (void)state;
    struct mu_err err = {0};
    int port;
    int fd = listen_on("127.0.0.5", &port);
    assert_int_equal(mu_catalog_probe_tcp("127.0.0.5", port, 500, &err), 0);
    /* the listener is on that address only */
    assert_int_equal(mu_catalog_probe_tcp("127.0.0.6", port, 500, &err), MU_EUNAVAIL);
    assert_non_null(strstr(err.detail, "127.0.0.6"));
    close(fd);
    mu_err_clear(&err);
    assert_int_equal(mu_catalog_probe_tcp("127.0.0.5", port, 500, &err), MU_EUNAVAIL);
    mu_err_clear(&err);
    assert_int_equal(mu_catalog_probe_tcp("127.0.0.256", 80, 500, &err), MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_catalog_probe_tcp("127.0.0.5", 0, 500, &err), MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_catalog_probe_tcp(NULL, 80, 500, &err), MU_EINVAL);
}

static int64_t fake_now;
static int64_t now_fn(void)
{
    return fake_now;
}

struct fixture {
    struct mu_test_db db;
    int64_t tenant, node, flavor, image, net;
};

/* A request in provisioning with a VM (NIC on net), its create operation and a deadline. */
static int64_t provisioning_request(struct fixture *f, const char *name, int port,
                                    int64_t deadline_ms, int64_t *ret_op)
{
    struct mu_store *st = f->db.st;
    struct mu_err err = {0};
    struct mu_nic_req nic = {.network_id = f->net};
    struct mu_admit_req ar = {.vm = {.tenant_id = f->tenant,
                                     .name = (char *)name,
                                     .flavor_id = f->flavor,
                                     .vcpus = 1,
                                     .ram_mib = 64,
                                     .disk_gib = 1,
                                     .image_id = f->image},
                              .node_id = f->node,
                              .node_cap_vcpus = PT_BIG,
                              .node_cap_ram_mib = PT_BIG,
                              .node_cap_disk_gib = PT_BIG,
                              .nics = &nic,
                              .n_nics = 1};
    struct mu_audit_rec rec = mu_test_rec("request.approve", f->tenant);
    struct mu_request r = {.tenant_id = f->tenant,
                           .item = (char *)"site",
                           .flavor = (char *)"tiny",
                           .parameters = (char *)"{}",
                           .requested_by = (char *)"alice"};
    int64_t id = 0, vm = 0, op = 0;
    pt_check(mu_store_request_insert(st, &r, &rec, &id, &err), &err, "request insert");
    struct mu_request_change ch = {.from = "pending", .to = "approved", .decided_by = "bob"};
    pt_check(mu_store_request_change(st, id, &ch, &rec, &err), &err, "approve");
    pt_check(mu_store_vm_admit(st, &ar, &rec, &vm, &op, &err), &err, "admit");
    ch = (struct mu_request_change){.from = "approved",
                                    .to = "provisioning",
                                    .vm_id = vm,
                                    .op_id = op,
                                    .probe_port = port,
                                    .ready_deadline_ms = deadline_ms};
    pt_check(mu_store_request_change(st, id, &ch, &rec, &err), &err, "provisioning");
    *ret_op = op;
    return id;
}

static const char *status_of(struct fixture *f, int64_t id, char *buf, size_t len)
{
    struct mu_request r = {0};
    struct mu_err err = {0};
    pt_check(mu_store_request_get(f->db.st, id, &r, &err), &err, "get");
    snprintf(buf, len, "%s|%s", r.status, r.reason ? r.reason : "");
    mu_request_clear(&r);
    return buf;
}

static void test_prober_passes(void **state)
{
    (void)state;
    struct fixture f = {0};
    struct mu_err err = {0};
    char buf[700];
    mu_test_db_init(&f.db, NULL);
    struct mu_store *st = f.db.st;
    int64_t root = pt_tenant(st, "Syndicat", "syndicat", 0);
    f.tenant = pt_tenant(st, "Amont", "commune", root);
    pt_quota(st, root, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED);
    pt_quota(st, f.tenant, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED);
    f.node = pt_node(st, "node-1");
    f.image = pt_image(st, "img");
    struct mu_flavor fl = {.name = (char *)"tiny", .vcpus = 1, .ram_mib = 64, .disk_gib = 1};
    struct mu_audit_rec rec = mu_test_rec("flavor.create", 0);
    pt_check(mu_store_flavor_insert(st, &fl, &rec, &f.flavor, &err), &err, "flavor");
    rec = mu_test_rec("network.create", f.tenant);
    pt_check(mu_store_network_default_private(st, f.tenant, "127.78.0.0/24", &rec, &f.net, &err),
             &err, "default network");

    fake_now = 1000000;
    int port;
    int lfd = listen_on("127.0.0.1", &port); /* reserve a port; nothing on 127.78.0.x yet */
    close(lfd);
    int64_t op_ready = 0, op_fail = 0, op_slow = 0;
    int64_t ready = provisioning_request(&f, "vm-ready", port, fake_now + 60000, &op_ready);
    int64_t broken = provisioning_request(&f, "vm-broken", port, fake_now + 60000, &op_fail);
    int64_t slow = provisioning_request(&f, "vm-slow", port, fake_now + 5000, &op_slow);

    struct mu_prober_opts o = {.store = st,
                               .interval_ms = 1,
                               .backoff_max_ms = 1,
                               .probe_timeout_ms = 300,
                               .now_ms = now_fn};
    struct mu_prober *p = mu_prober_new(&o);

    /* operations still pending: nothing to probe yet */
    assert_int_equal(mu_prober_pass(p, &err), 0);
    assert_string_equal(status_of(&f, ready, buf, sizeof buf), "provisioning|");

    pt_check(mu_store_op_finish(st, op_ready, true, NULL, &err), &err, "op ok");
    pt_check(mu_store_op_finish(st, op_slow, true, NULL, &err), &err, "op ok");
    pt_check(mu_store_op_finish(st, op_fail, false, "define: no such pool", &err), &err, "op ko");

    /* backoff: not probed again before its time */
    assert_int_equal(mu_prober_pass(p, &err), 0);
    assert_string_equal(status_of(&f, broken, buf, sizeof buf), "provisioning|");

    /* the failed operation fails its request; the others are probed: nobody listens */
    fake_now += 10;
    assert_int_equal(mu_prober_pass(p, &err), 1);
    assert_string_equal(status_of(&f, broken, buf, sizeof buf),
                        "failed|provisioning failed: define: no such pool");
    assert_string_equal(status_of(&f, ready, buf, sizeof buf), "provisioning|");

    /* where is vm-ready? its first NIC's address, on the 127.78.0.0/24 network */
    struct mu_request rr = {0};
    struct mu_nic *nics = NULL;
    size_t n = 0;
    pt_check(mu_store_request_get(st, ready, &rr, &err), &err, "get");
    pt_check(mu_store_vm_nics(st, rr.vm_id, &nics, &n, &err), &err, "nics");
    assert_int_equal(n, 1);
    assert_memory_equal(nics[0].ip, "127.78.0.", 9);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, nics[0].ip, &sa.sin_addr);
    int one = 1;
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 4), 0);
    if (mu_catalog_probe_tcp(nics[0].ip, port, 300, &err) != 0)
        fail_msg("direct probe of %s:%d: %s", nics[0].ip, port, err.detail);
    free(nics);
    mu_request_clear(&rr);

    /* a listener on vm-ready's address: ready; vm-slow (another address) stays */
    fake_now += 10;
    assert_int_equal(mu_prober_pass(p, &err), 1);
    assert_string_equal(status_of(&f, ready, buf, sizeof buf), "ready|");
    assert_string_equal(status_of(&f, slow, buf, sizeof buf), "provisioning|");
    close(lfd);

    /* past vm-slow's deadline: failed, naming the port */
    fake_now += 5000;
    assert_int_equal(mu_prober_pass(p, &err), 1);
    status_of(&f, slow, buf, sizeof buf);
    MU_AUTOFREE char *want =
        mu_xasprintf("failed|the app did not answer on port %d before the deadline", port);
    if (strncmp(buf, want, strlen(want)) != 0)
        fail_msg("got \"%s\"", buf);
    assert_int_equal(mu_prober_pass(p, &err), 0); /* nothing left */

    /* every change is in the feed: created, approved, provisioning, then the outcome */
    struct mu_event_filter ef = {.tenant_id = f.tenant, .type_prefix = "request."};
    struct mu_event *ev = NULL;
    size_t nev = 0;
    pt_check(mu_store_event_list(st, &ef, &ev, &nev, &err), &err, "events");
    int ready_ev = 0, failed_ev = 0;
    for (size_t i = 0; i < nev; i++) {
        ready_ev += strcmp(ev[i].type, "request.ready") == 0;
        failed_ev += strcmp(ev[i].type, "request.failed") == 0;
    }
    assert_int_equal(nev, 3 * 3 + 3);
    assert_int_equal(ready_ev, 1);
    assert_int_equal(failed_ev, 2);
    mu_events_free(ev, nev);

    /* a change from a status the request no longer has changes nothing */
    struct mu_request_change ch = {.from = "pending", .to = "cancelled"};
    rec = mu_test_rec("request.cancel", f.tenant);
    assert_int_equal(mu_store_request_change(st, ready, &ch, &rec, &err), MU_ECONFLICT);
    assert_non_null(strstr(err.detail, "is ready"));
    assert_string_equal(status_of(&f, ready, buf, sizeof buf), "ready|");

    mu_prober_stop(p);
    mu_test_db_fini(&f.db);
}

/* Requests left "approved" by a controller stopped mid-approval: after a minute, the one
 * whose VM was admitted is attached to it (then ready once running and answering), the
 * other fails saying so. Before that minute, nothing happens. */
static void test_recovery(void **state)
{
    (void)state;
    struct mu_test_db db;
    struct mu_err err = {0};
    char buf[700];
    mu_test_db_init(&db, NULL);
    struct mu_store *st = db.st;
    int64_t root = pt_tenant(st, "Syndicat", "syndicat", 0);
    int64_t t = pt_tenant(st, "Amont", "commune", root);
    pt_quota(st, root, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED);
    pt_quota(st, t, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED, MU_UNLIMITED);
    int64_t node = pt_node(st, "node-1"), image = pt_image(st, "img"), flavor = 0;
    struct mu_flavor fl = {.name = (char *)"tiny", .vcpus = 1, .ram_mib = 64, .disk_gib = 1};
    struct mu_audit_rec rec = mu_test_rec("flavor.create", 0);
    pt_check(mu_store_flavor_insert(st, &fl, &rec, &flavor, &err), &err, "flavor");

    int64_t ids[2];
    rec = mu_test_rec("request.approve", t);
    for (int i = 0; i < 2; i++) {
        struct mu_request r = {.tenant_id = t,
                               .item = (char *)"site",
                               .flavor = (char *)"tiny",
                               .parameters = (char *)"{}",
                               .requested_by = (char *)"alice"};
        struct mu_request_change ch = {.from = "pending", .to = "approved", .decided_by = "bob"};
        pt_check(mu_store_request_insert(st, &r, &rec, &ids[i], &err), &err, "insert");
        pt_check(mu_store_request_change(st, ids[i], &ch, &rec, &err), &err, "approve");
    }
    /* the first one's VM was admitted before the stop */
    char name[64];
    snprintf(name, sizeof name, "req-%lld-site", (long long)ids[0]);
    struct pt_vm v = {.tenant = t,
                      .node = node,
                      .vcpus = 1,
                      .ram_mib = 64,
                      .disk_gib = 1,
                      .image = image,
                      .flavor = flavor};
    int64_t vm = 0, op = 0;
    pt_check(pt_admit(st, &v, name, &vm, &op, &err), &err, "admit");

    static const char doc[] =
        "{\"version\": 1, \"readiness\": {\"deadline_s\": 30}, \"items\": [{\"id\": \"site\","
        " \"name\": {\"fr\": \"S\", \"en\": \"S\"}, \"description\": {\"fr\": \"D\", \"en\": "
        "\"D\"},"
        " \"flavors\": [\"tiny\"], \"image\": \"img\", \"networks\": {\"private\": true,"
        " \"public\": false}, \"ports\": [8080], \"approval\": \"always\"}]}";
    struct mu_catalog *cat = NULL;
    pt_check(mu_catalog_parse(doc, strlen(doc), "t.json", &cat, &err), &err, "catalog");
    pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
    struct mu_prober_opts o = {.store = st,
                               .interval_ms = 1,
                               .backoff_max_ms = 1,
                               .probe_timeout_ms = 100,
                               .now_ms = now_fn,
                               .catalog = &cat,
                               .lock = &lock};
    struct mu_prober *p = mu_prober_new(&o);

    fake_now = mu_now_ms() + 30 * 1000; /* within the minute: still an approval in flight */
    assert_int_equal(mu_prober_pass(p, &err), 0);
    assert_string_equal(status_of(&(struct fixture){.db = db}, ids[0], buf, sizeof buf),
                        "approved|");

    fake_now = mu_now_ms() + 61 * 1000;
    assert_int_equal(mu_prober_pass(p, &err), 2);
    struct mu_request r = {0};
    pt_check(mu_store_request_get(st, ids[0], &r, &err), &err, "get");
    assert_string_equal(r.status, "provisioning");
    assert_int_equal(r.vm_id, vm);
    assert_int_equal(r.probe_port, 8080);
    assert_int_equal(r.ready_deadline_ms, fake_now + 30000);
    mu_request_clear(&r);
    status_of(&(struct fixture){.db = db}, ids[1], buf, sizeof buf);
    assert_non_null(strstr(buf, "failed|the approval was interrupted"));

    /* attached: failed once the VM reports an error, like a failed operation */
    pt_check(mu_store_vm_set_observed(st, vm, "error", "qemu died", &err), &err, "observed");
    fake_now += 10;
    assert_int_equal(mu_prober_pass(p, &err), 1);
    assert_string_equal(status_of(&(struct fixture){.db = db}, ids[0], buf, sizeof buf),
                        "failed|provisioning failed: qemu died");

    mu_prober_stop(p);
    mu_catalog_free(cat);
    mu_test_db_fini(&db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_tcp),
        cmocka_unit_test(test_prober_passes),
        cmocka_unit_test(test_recovery),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
