/* Certificates on the controller's side of renewal: the CSR check of POST /v1/agent/renew
 * (its own node: 0, another node: MU_EFORBIDDEN, malformed: MU_EINVAL), the expiry maths of
 * the alert (14 days, whole days left), the alert pass of fleet/health (a node's current
 * certificate within 14 days fires once, across restarts; a renewed node's superseded
 * certificate, a revoked one or a 20-day one does not), and the store's side of issuing (a
 * deleted node gets no certificate; deleting a node revokes the renewed one too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdlib.h>
#include <string.h>

#include "../store/store_test.h"
#include "fleet/health.h"
#include "fleet/pki.h"
#include "store/provision.h"
#include "store/telemetry.h"

#define DAY ((int64_t)86400 * 1000)

/* A PEM CSR for a new ECDSA key, subject CN = cn (caller frees). */
static char *csr_for(const char *cn)
{
    gnutls_x509_privkey_t key;
    gnutls_x509_crq_t crq;
    gnutls_datum_t out = {NULL, 0};
    assert_int_equal(gnutls_x509_privkey_init(&key), 0);
    assert_int_equal(gnutls_x509_privkey_generate2(key, GNUTLS_PK_ECDSA,
                                                   GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1),
                                                   0, NULL, 0),
                     0);
    assert_int_equal(gnutls_x509_crq_init(&crq), 0);
    assert_int_equal(gnutls_x509_crq_set_version(crq, 1), 0);
    assert_int_equal(
        gnutls_x509_crq_set_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn)), 0);
    assert_int_equal(gnutls_x509_crq_set_key(crq, key), 0);
    assert_int_equal(gnutls_x509_crq_sign2(crq, key, GNUTLS_DIG_SHA256, 0), 0);
    assert_int_equal(gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_PEM, &out), 0);
    char *pem = mu_xasprintf("%.*s", (int)out.size, (const char *)out.data);
    gnutls_free(out.data);
    gnutls_x509_crq_deinit(crq);
    gnutls_x509_privkey_deinit(key);
    return pem;
}

static void test_csr_check(void **state)
{
    (void)state;
    struct mu_err err = {0};
    char *csr = csr_for("node-a");
    assert_int_equal(mu_pki_csr_check(csr, "node-a", &err), 0);
    assert_int_equal(mu_pki_csr_check(csr, "node-b", &err), MU_EFORBIDDEN);
    assert_non_null(strstr(err.detail, "node-a"));
    assert_non_null(strstr(err.detail, "node-b"));
    mu_err_clear(&err);
    /* A prefix of the name is another name. */
    assert_int_equal(mu_pki_csr_check(csr, "node-", &err), MU_EFORBIDDEN);
    mu_err_clear(&err);
    assert_int_equal(mu_pki_csr_check("not a request", "node-a", &err), MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_pki_csr_check("", "node-a", &err), MU_EINVAL);
    mu_err_clear(&err);
    assert_int_equal(mu_pki_csr_check(NULL, "node-a", &err), MU_EINVAL);
    mu_err_clear(&err);
    /* Truncated: the PEM armour without the end of its body. */
    char *cut = mu_xstrdup(csr);
    cut[strlen(cut) / 2] = '\0';
    assert_int_equal(mu_pki_csr_check(cut, "node-a", &err), MU_EINVAL);
    mu_err_clear(&err);
    free(cut);
    free(csr);
}

static void test_expiry_maths(void **state)
{
    (void)state;
    int64_t now = 1700000000000;
    assert_int_equal(mu_health_cert_days_left(now + 20 * DAY, now), 20);
    assert_int_equal(mu_health_cert_days_left(now + 20 * DAY - 1, now), 19);
    assert_int_equal(mu_health_cert_days_left(now, now), 0);
    assert_int_equal(mu_health_cert_days_left(now - 1, now), -1);
    assert_int_equal(mu_health_cert_days_left(now - DAY, now), -1);
    assert_int_equal(mu_health_cert_days_left(now - DAY - 1, now), -2);
    assert_true(mu_health_cert_expiring(now + 14 * DAY, now));
    assert_false(mu_health_cert_expiring(now + 14 * DAY + 1, now));
    assert_false(mu_health_cert_expiring(now + 20 * DAY, now));
    assert_true(mu_health_cert_expiring(now + 10 * DAY, now));
    assert_true(mu_health_cert_expiring(now - DAY, now)); /* expired: still alerted */
}

static int64_t node(struct mu_store *st, const char *name)
{
    struct mu_node n = {.name = (char *)name, .uri = (char *)"test:///default"};
    struct mu_audit_rec rec = {
        .actor = "t", .role = "", .action = "node.create", .outcome = "ok", .request_id = ""};
    struct mu_err err = {0};
    int64_t id = 0;
    if (mu_store_node_insert(st, &n, &rec, &id, &err) < 0)
        fail_msg("node: %s", err.detail);
    return id;
}

static void record(struct mu_store *st, int64_t node_id, const char *serial, int64_t not_after)
{
    struct mu_err err = {0};
    if (mu_store_node_cert_record(st, node_id, serial, not_after, &err) < 0)
        fail_msg("cert: %s", err.detail);
}

static size_t alerts_about(struct mu_store *st, const char *serial)
{
    struct mu_audit_filter f = {.actor = "alerts", .limit = 1000};
    struct mu_audit_entry *e = NULL;
    size_t n = 0, hits = 0;
    struct mu_err err = {0};
    assert_int_equal(mu_store_audit_list(st, &f, &e, &n, &err), 0);
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].action, "alert.fire") == 0 && e[i].detail && strstr(e[i].detail, serial))
            hits++;
    mu_audit_entries_free(e, n);
    return hits;
}

static struct mu_health *health(struct mu_store *st)
{
    /* A long interval: the thread's own certificate pass never runs during the test. */
    struct mu_health_opts o = {.store = st, .interval_ms = 3600 * 1000, .prune_every_ms = -1};
    struct mu_err err = {0};
    struct mu_health *h = mu_health_start(&o, &err);
    if (!h)
        fail_msg("health: %s", err.detail);
    return h;
}

static void test_alert_pass(void **state)
{
    (void)state;
    struct mu_test_db db;
    struct mu_err err = {0};
    mu_test_db_init(&db, NULL);
    int64_t now = mu_now_ms();
    int64_t a = node(db.st, "node-a"), b = node(db.st, "node-b"), c = node(db.st, "node-c");
    int64_t d = node(db.st, "node-d");
    record(db.st, a, "aa01", now + 10 * DAY); /* within 14 days: alert */
    record(db.st, b, "bb01", now + 20 * DAY); /* 20 days: none */
    record(db.st, c, "cc01", now + 10 * DAY); /* renewed: superseded by cc02 */
    record(db.st, c, "cc02", now + 90 * DAY);
    record(db.st, d, "dd01", now + 5 * DAY); /* revoked: none */
    assert_int_equal(mu_store_node_certs_revoke(db.st, d, NULL, NULL, &err), 0);

    struct mu_node_cert_current cur;
    assert_int_equal(mu_store_node_cert_current(db.st, c, &cur, &err), 0);
    assert_string_equal(cur.cert.serial, "cc02");
    assert_string_equal(cur.node, "node-c");
    assert_int_equal(mu_store_node_cert_current(db.st, d, &cur, &err), MU_ENOTFOUND);
    mu_err_clear(&err);

    struct mu_health *h = health(db.st);
    assert_int_equal(mu_health_check_certs(h, now, &err), 1);
    assert_int_equal(alerts_about(db.st, "aa01"), 1);
    assert_int_equal(alerts_about(db.st, "bb01") + alerts_about(db.st, "cc01") +
                         alerts_about(db.st, "cc02") + alerts_about(db.st, "dd01"),
                     0);
    /* Once per certificate: not at the next pass, nor after a restart. */
    assert_int_equal(mu_health_check_certs(h, now + 1000, &err), 0);
    mu_health_stop(h);
    h = health(db.st);
    assert_int_equal(mu_health_check_certs(h, now + 2000, &err), 0);
    assert_int_equal(alerts_about(db.st, "aa01"), 1);
    /* Six days on, node-b's certificate is within 14 days in turn. */
    assert_int_equal(mu_health_check_certs(h, now + 7 * DAY, &err), 1);
    assert_int_equal(alerts_about(db.st, "bb01"), 1);
    mu_health_stop(h);

    struct mu_audit_filter f = {.actor = "alerts", .limit = 10};
    struct mu_audit_entry *e = NULL;
    size_t n = 0;
    assert_int_equal(mu_store_audit_list(db.st, &f, &e, &n, &err), 0);
    assert_int_equal(n, 2);
    char target[32];
    snprintf(target, sizeof target, "node/%lld", (long long)a);
    assert_string_equal(e[0].target, target);
    assert_non_null(strstr(e[0].detail, "certificate aa01 expires in 10 days"));
    mu_audit_entries_free(e, n);
    mu_test_db_fini(&db);
}

static void test_issue_and_delete(void **state)
{
    (void)state;
    struct mu_test_db db;
    struct mu_err err = {0};
    mu_test_db_init(&db, NULL);
    int64_t now = mu_now_ms();
    int64_t a = node(db.st, "node-a");
    struct mu_audit_rec rec = {.actor = "node:node-a",
                               .role = "agent",
                               .action = "agent.renew",
                               .outcome = "ok",
                               .request_id = "",
                               .detail = "certificate ab02 issued"};
    record(db.st, a, "ab01", now + 10 * DAY);
    assert_int_equal(mu_store_node_cert_issue(db.st, a, "ab02", now + 90 * DAY, &rec, &err), 0);
    assert_int_equal(mu_store_node_cert_revoked(db.st, "ab01", &err), 0);
    assert_int_equal(mu_store_node_cert_revoked(db.st, "ab02", &err), 0);
    struct mu_audit_filter f = {.actor = "node:node-a", .limit = 10};
    struct mu_audit_entry *e = NULL;
    size_t n = 0;
    assert_int_equal(mu_store_audit_list(db.st, &f, &e, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(e[0].action, "agent.renew");
    mu_audit_entries_free(e, n);
    /* Refused: not lower-case hex. */
    assert_int_equal(mu_store_node_cert_issue(db.st, a, "AB03", now + DAY, &rec, &err), MU_EINVAL);
    mu_err_clear(&err);

    struct mu_audit_rec del = {
        .actor = "t", .role = "", .action = "node.delete", .outcome = "ok", .request_id = ""};
    assert_int_equal(mu_store_node_delete(db.st, a, &del, &err), 0);
    assert_int_equal(mu_store_node_cert_revoked(db.st, "ab01", &err), 1);
    assert_int_equal(mu_store_node_cert_revoked(db.st, "ab02", &err), 1);
    /* Signed while the node was being deleted: not recorded, so not handed out. */
    assert_int_equal(mu_store_node_cert_issue(db.st, a, "ab04", now + 90 * DAY, &rec, &err),
                     MU_ENOTFOUND);
    mu_err_clear(&err);
    struct mu_node_cert *certs = NULL;
    assert_int_equal(mu_store_node_cert_list(db.st, a, 10, &certs, &n, &err), 0);
    assert_int_equal(n, 2);
    free(certs);
    mu_test_db_fini(&db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csr_check),
        cmocka_unit_test(test_expiry_maths),
        cmocka_unit_test(test_alert_pass),
        cmocka_unit_test(test_issue_and_delete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
