/* Nodes, flavors, images (and their copies on nodes) and anti-affinity groups in a real
 * SQLite file: create, read, list, change, delete, and the refusals with their texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "provision_test.h"

static int setup(void **state)
{
    struct mu_test_db *db = mu_xcalloc(1, sizeof *db);

    mu_test_db_init(db, NULL);
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

static int64_t audit_count(struct mu_store *st, const char *action)
{
    struct mu_audit_filter f = {.limit = 1000};
    struct mu_audit_entry *e = NULL;
    struct mu_err err = {0};
    size_t n = 0;
    int64_t count = 0;

    pt_check(mu_store_audit_list(st, &f, &e, &n, &err), &err, "audit list");
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].action, action) == 0)
            count++;
    mu_audit_entries_free(e, n);
    return count;
}

static void test_schema_version(void **state)
{
    struct mu_test_db *db = *state;

    assert_true(mu_store_schema_version(db->st) >= 2);
}

static void test_node_crud(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_audit_rec rec = mu_test_rec("node.update", 0);
    struct mu_err err = {0};
    struct mu_node n = {0}, *list = NULL;
    size_t count = 0;
    int64_t id, id2;

    id = pt_node(db->st, "node-a");
    id2 = pt_node(db->st, "node-b");
    assert_int_equal(mu_store_node_get(db->st, id, &n, &err), 0);
    assert_string_equal(n.name, "node-a");
    assert_string_equal(n.uri, "test:///default");
    assert_string_equal(n.pool, "mutualis");
    assert_string_equal(n.op_state, "active");
    assert_string_equal(n.health, "up");
    assert_string_equal(n.enrolment, "none");
    assert_string_equal(n.labels_json, "{}");
    assert_int_equal(n.cpus, 64);
    assert_int_equal(n.reserved_mem_mib, -1);
    assert_true(n.kvm);
    assert_int_equal(n.vm_count, 0);
    assert_null(n.last_error);
    mu_node_clear(&n);

    /* Duplicate and invalid names, bad states and labels. */
    struct mu_node dup = {.name = (char *)"node-a", .uri = (char *)"test:///default"};
    assert_int_equal(mu_store_node_insert(db->st, &dup, &rec, &id, &err), MU_ECONFLICT);
    assert_non_null(strstr(err.detail, "node-a is already taken"));
    mu_err_clear(&err);
    struct mu_node bad = {.name = (char *)"Node A", .uri = (char *)"test:///default"};
    assert_int_equal(mu_store_node_insert(db->st, &bad, &rec, &id, &err), MU_EINVAL);
    assert_string_equal(err.field, "name");
    mu_err_clear(&err);
    struct mu_node nouri = {.name = (char *)"node-c"};
    assert_int_equal(mu_store_node_insert(db->st, &nouri, &rec, &id, &err), MU_EINVAL);
    mu_err_clear(&err);
    struct mu_node badlab = {.name = (char *)"node-c",
                             .uri = (char *)"test:///default",
                             .labels_json = (char *)"[\"site=a\"]"};
    assert_int_equal(mu_store_node_insert(db->st, &badlab, &rec, &id, &err), MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_store_node_set_state(db->st, id, "broken", &rec, &err), MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_store_node_set_state(db->st, 9999, "active", &rec, &err), MU_ENOTFOUND);
    mu_err_clear(&err);

    /* State, labels, capacity, health. */
    assert_int_equal(mu_store_node_set_state(db->st, id, "maintenance", &rec, &err), 0);
    assert_int_equal(
        mu_store_node_set_labels(db->st, id, "{\"site\":\"a\",\"zone\":\"1\"}", &rec, &err), 0);
    assert_int_equal(mu_store_node_set_labels(db->st, id, "{\"site\":3}", &rec, &err), MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_store_node_set_info(db->st, id, 16, 65536, 500, false, NULL, &err), 0);
    /* A failed read keeps the capacity and records the error. */
    assert_int_equal(mu_store_node_set_info(db->st, id, 0, 0, 0, true, "connection refused", &err),
                     0);
    assert_int_equal(mu_store_node_set_health(db->st, id, "down", &err), 0);
    assert_int_equal(mu_store_node_set_health(db->st, id, "sick", &err), MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_store_node_get(db->st, id, &n, &err), 0);
    assert_string_equal(n.op_state, "maintenance");
    assert_string_equal(n.health, "down");
    assert_string_equal(n.labels_json, "{\"site\":\"a\",\"zone\":\"1\"}");
    assert_int_equal(n.cpus, 16);
    assert_int_equal(n.mem_mib, 65536);
    assert_int_equal(n.disk_gib, 500);
    assert_false(n.kvm);
    assert_true(n.info_ms > 0);
    assert_string_equal(n.last_error, "connection refused");
    mu_node_clear(&n);
    assert_int_equal(audit_count(db->st, "node.update"), 2);

    assert_int_equal(mu_store_node_list(db->st, &list, &count, &err), 0);
    assert_int_equal(count, 2);
    assert_int_equal(list[0].id, id);
    assert_int_equal(list[1].id, id2);
    mu_nodes_free(list, count);

    assert_int_equal(mu_store_node_delete(db->st, id2, &rec, &err), 0);
    assert_int_equal(mu_store_node_get(db->st, id2, &n, &err), MU_ENOTFOUND);
    mu_err_clear(&err);
    assert_int_equal(mu_store_node_delete(db->st, id2, &rec, &err), MU_ENOTFOUND);
}

static void test_node_delete_with_vms(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_audit_rec rec = mu_test_rec("node.delete", 0);
    struct mu_err err = {0};
    int64_t t = pt_tenant(db->st, "Commune", "commune", 0);
    int64_t node = pt_node(db->st, "n1");
    int64_t img = pt_image(db->st, "debian");
    struct pt_vm v = {.tenant = t, .node = node, .vcpus = 1, .ram_mib = 512, .image = img};
    int64_t vm = 0;

    assert_int_equal(pt_admit(db->st, &v, "web", &vm, NULL, &err), 0);
    assert_int_equal(mu_store_node_delete(db->st, node, &rec, &err), MU_ECONFLICT);
    assert_string_equal(err.detail, "node n1 still hosts 1 VM(s): drain it (the VMs left are "
                                    "listed) and delete them first");
    mu_err_clear(&err);
    /* The same for the image and the tenant. */
    assert_int_equal(mu_store_image_delete(db->st, img, &rec, &err), MU_ECONFLICT);
    assert_non_null(strstr(err.detail, "image debian is still used by 1 VM(s)"));
    mu_err_clear(&err);
    assert_int_equal(mu_store_tenant_delete(db->st, t, &rec, &err), MU_ECONFLICT);
    assert_non_null(strstr(err.detail, "still has 1 VM(s)"));
    mu_err_clear(&err);
    assert_int_equal(mu_store_vm_purge(db->st, vm, &err), 0);
    assert_int_equal(mu_store_node_delete(db->st, node, &rec, &err), 0);
    assert_int_equal(mu_store_image_delete(db->st, img, &rec, &err), 0);
    assert_int_equal(mu_store_tenant_delete(db->st, t, &rec, &err), 0);
}

static void test_flavors(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_audit_rec rec = mu_test_rec("flavor.create", 0);
    struct mu_err err = {0};
    struct mu_flavor f = {.name = (char *)"m1.small", .vcpus = 1, .ram_mib = 2048, .disk_gib = 20};
    struct mu_flavor got = {0}, *list = NULL;
    size_t n = 0;
    int64_t id = 0, id2 = 0;

    assert_int_equal(mu_store_flavor_insert(db->st, &f, &rec, &id, &err), 0);
    f.name = (char *)"m1.large";
    f.vcpus = 4;
    assert_int_equal(mu_store_flavor_insert(db->st, &f, &rec, &id2, &err), 0);
    assert_int_equal(mu_store_flavor_insert(db->st, &f, &rec, &id2, &err), MU_ECONFLICT);
    assert_string_equal(err.detail, "flavor name m1.large is already taken (flavor 2)");
    mu_err_clear(&err);
    f.vcpus = 0;
    f.name = (char *)"zero";
    assert_int_equal(mu_store_flavor_insert(db->st, &f, &rec, &id2, &err), MU_EINVAL);
    mu_err_clear(&err);

    assert_int_equal(mu_store_flavor_get(db->st, id, &got, &err), 0);
    assert_string_equal(got.name, "m1.small");
    assert_int_equal(got.ram_mib, 2048);
    assert_int_equal(got.disk_gib, 20);
    mu_flavor_clear(&got);
    assert_int_equal(mu_store_flavor_get_by_name(db->st, "m1.large", &got, &err), 0);
    assert_int_equal(got.vcpus, 4);
    mu_flavor_clear(&got);
    assert_int_equal(mu_store_flavor_get_by_name(db->st, "nope", &got, &err), MU_ENOTFOUND);
    mu_err_clear(&err);
    assert_int_equal(mu_store_flavor_list(db->st, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    mu_flavors_free(list, n);

    /* In use by a VM: refused, then allowed once the VM is purged. */
    int64_t t = pt_tenant(db->st, "Commune", "commune", 0);
    struct pt_vm v = {.tenant = t,
                      .node = pt_node(db->st, "n1"),
                      .vcpus = 1,
                      .ram_mib = 2048,
                      .disk_gib = 20,
                      .image = pt_image(db->st, "img"),
                      .flavor = id};
    int64_t vm = 0;
    assert_int_equal(pt_admit(db->st, &v, "web", &vm, NULL, &err), 0);
    assert_int_equal(mu_store_flavor_delete(db->st, id, &rec, &err), MU_ECONFLICT);
    assert_string_equal(err.detail, "flavor m1.small is still used by 1 VM(s): delete them first");
    mu_err_clear(&err);
    assert_int_equal(mu_store_vm_purge(db->st, vm, &err), 0);
    assert_int_equal(mu_store_flavor_delete(db->st, id, &rec, &err), 0);
    assert_int_equal(mu_store_flavor_get(db->st, id, &got, &err), MU_ENOTFOUND);
    /* A flavor that does not exist is refused at admission. */
    mu_err_clear(&err);
    assert_int_equal(pt_admit(db->st, &v, "web2", &vm, NULL, &err), MU_EINVAL);
    assert_string_equal(err.field, "flavor_id");
}

static void test_images(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_audit_rec rec = mu_test_rec("image.create", 0);
    struct mu_err err = {0};
    struct mu_image i = {.name = (char *)"guest",
                         .format = (char *)"raw",
                         .kernel = (char *)"/var/lib/mutualis/guest/vmlinuz",
                         .initrd = (char *)"/var/lib/mutualis/guest/initrd.img",
                         .cmdline = (char *)"console=ttyS0"};
    struct mu_image got = {0}, *list = NULL;
    size_t n = 0;
    int64_t id = 0, node, other;
    const char *sha = "ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";

    assert_int_equal(mu_store_image_insert(db->st, &i, &rec, &id, &err), 0);
    assert_int_equal(mu_store_image_insert(db->st, &i, &rec, &other, &err), MU_ECONFLICT);
    mu_err_clear(&err);
    struct mu_image guess = {.name = (char *)"guess", .format = (char *)"vmdk"};
    assert_int_equal(mu_store_image_insert(db->st, &guess, &rec, &other, &err), MU_EINVAL);
    assert_string_equal(err.field, "format");
    mu_err_clear(&err);
    guess.format = NULL;
    assert_int_equal(mu_store_image_insert(db->st, &guess, &rec, &other, &err), MU_EINVAL);
    mu_err_clear(&err);

    assert_int_equal(mu_store_image_get(db->st, id, &got, &err), 0);
    assert_string_equal(got.status, "uploading");
    assert_string_equal(got.format, "raw");
    assert_string_equal(got.sha256, "");
    assert_string_equal(got.cmdline, "console=ttyS0");
    mu_image_clear(&got);

    /* An image still uploading cannot back a VM. */
    int64_t t = pt_tenant(db->st, "Commune", "commune", 0);
    node = pt_node(db->st, "n1");
    struct pt_vm v = {.tenant = t, .node = node, .vcpus = 1, .ram_mib = 512, .image = id};
    assert_int_equal(pt_admit(db->st, &v, "web", NULL, NULL, &err), MU_ECONFLICT);
    assert_non_null(strstr(err.detail, "is not ready yet (uploading)"));
    mu_err_clear(&err);
    v.image = 0;
    assert_int_equal(pt_admit(db->st, &v, "web", NULL, NULL, &err), MU_EINVAL);
    mu_err_clear(&err);

    assert_int_equal(mu_store_image_set_ready(db->st, id, 1234, "XYZ", "/x", &err), MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_store_image_set_ready(db->st, 999, 1234, sha, "/x", &err), MU_ENOTFOUND);
    mu_err_clear(&err);
    assert_int_equal(mu_store_image_set_ready(db->st, id, 1234, sha, "/data/images/1.raw", &err),
                     0);
    assert_int_equal(mu_store_image_get(db->st, id, &got, &err), 0);
    assert_string_equal(got.status, "ready");
    assert_string_equal(got.sha256, sha);
    assert_string_equal(got.path, "/data/images/1.raw");
    assert_int_equal(got.size_bytes, 1234);
    mu_image_clear(&got);
    v.image = id;
    assert_int_equal(pt_admit(db->st, &v, "web", NULL, NULL, &err), 0);

    /* Copies on nodes. */
    assert_int_equal(mu_store_image_copy_has(db->st, id, node, &err), 0);
    assert_int_equal(mu_store_image_copy_set(db->st, id, node, &err), 0);
    assert_int_equal(mu_store_image_copy_set(db->st, id, node, &err), 0); /* idempotent */
    assert_int_equal(mu_store_image_copy_has(db->st, id, node, &err), 1);
    assert_int_equal(mu_store_image_copy_set(db->st, id, 999, &err), MU_ENOTFOUND);
    mu_err_clear(&err);

    other = pt_image(db->st, "other");
    assert_int_equal(mu_store_image_list(db->st, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[1].name, "other");
    mu_images_free(list, n);
    assert_int_equal(mu_store_image_copy_set(db->st, other, node, &err), 0);
    assert_int_equal(mu_store_image_delete(db->st, other, &rec, &err), 0);
    assert_int_equal(mu_store_image_copy_has(db->st, other, node, &err), 0);
}

static void test_groups(void **state)
{
    struct mu_test_db *db = *state;
    struct mu_audit_rec rec = mu_test_rec("group.create", 0);
    struct mu_err err = {0};
    int64_t root = pt_tenant(db->st, "Syndicat", "syndicat", 0);
    int64_t a = pt_tenant(db->st, "Commune A", "commune", root);
    int64_t b = pt_tenant(db->st, "Commune B", "commune", 0);
    struct mu_group g = {.tenant_id = a, .name = (char *)"web"}, got = {0}, *list = NULL;
    int64_t ga = 0, gb = 0, dummy = 0, *nodes = NULL;
    size_t n = 0;

    assert_int_equal(mu_store_group_insert(db->st, &g, &rec, &ga, &err), 0);
    assert_int_equal(mu_store_group_insert(db->st, &g, &rec, &gb, &err), MU_ECONFLICT);
    assert_string_equal(err.detail, "tenant Commune A already has a group named web (group 1)");
    mu_err_clear(&err);
    g.tenant_id = b;
    assert_int_equal(mu_store_group_insert(db->st, &g, &rec, &gb, &err), 0);
    g.tenant_id = 999;
    assert_int_equal(mu_store_group_insert(db->st, &g, &rec, &dummy, &err), MU_EINVAL);
    mu_err_clear(&err);
    g.tenant_id = a;
    g.name = (char *)"../x";
    assert_int_equal(mu_store_group_insert(db->st, &g, &rec, &dummy, &err), MU_EINVAL);
    mu_err_clear(&err);

    assert_int_equal(mu_store_group_get(db->st, ga, &got, &err), 0);
    assert_int_equal(got.tenant_id, a);
    assert_string_equal(got.name, "web");
    mu_group_clear(&got);
    assert_int_equal(mu_store_group_list(db->st, 0, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    mu_groups_free(list, n);
    assert_int_equal(mu_store_group_list(db->st, root, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].id, ga);
    mu_groups_free(list, n);
    assert_int_equal(mu_store_group_list(db->st, b, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].id, gb);
    mu_groups_free(list, n);

    /* Nodes of a group; deletion refused while VMs are in it. */
    int64_t n1 = pt_node(db->st, "n1"), n2 = pt_node(db->st, "n2");
    struct pt_vm v = {.tenant = a,
                      .node = n2,
                      .vcpus = 1,
                      .ram_mib = 512,
                      .image = pt_image(db->st, "img"),
                      .group = ga};
    int64_t vm1 = 0, vm2 = 0;
    assert_int_equal(pt_admit(db->st, &v, "web-1", &vm1, NULL, &err), 0);
    v.node = n1;
    assert_int_equal(pt_admit(db->st, &v, "web-2", &vm2, NULL, &err), 0);
    assert_int_equal(mu_store_group_nodes(db->st, ga, &nodes, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(nodes[0], n1);
    assert_int_equal(nodes[1], n2);
    free(nodes);
    assert_int_equal(mu_store_group_delete(db->st, ga, &rec, &err), MU_ECONFLICT);
    assert_string_equal(err.detail, "group web is still used by 2 VM(s): delete them first");
    mu_err_clear(&err);
    assert_int_equal(mu_store_vm_purge(db->st, vm1, &err), 0);
    assert_int_equal(mu_store_vm_purge(db->st, vm2, &err), 0);
    assert_int_equal(mu_store_group_delete(db->st, ga, &rec, &err), 0);
    assert_int_equal(mu_store_group_get(db->st, ga, &got, &err), MU_ENOTFOUND);
    mu_err_clear(&err);
    assert_int_equal(mu_store_group_delete(db->st, ga, &rec, &err), MU_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_schema_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_delete_with_vms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flavors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_images, setup, teardown),
        cmocka_unit_test_setup_teardown(test_groups, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
