/* Private to store/: the store handle, connections with their statement caches, the
 * transaction helpers and the pieces the table files share. Nothing outside store/
 * includes this file (it pulls in sqlite3.h). */
#ifndef MU_STORE_INT_H
#define MU_STORE_INT_H

#include <pthread.h>
#include <sqlite3.h>

#include "store/provision.h"
#include "store/store.h"

#define ST_CACHE_MAX 256
#define ST_BUSY_MS   10000
#define ST_MAC_ZERO  "0000000000000000000000000000000000000000000000000000000000000000"

/* One SQLite connection and its prepared statements, reused by SQL text. A connection is
 * used by one thread at a time: the writer under st->wmu, a reader by its own thread. */
struct st_conn {
    sqlite3 *db;
    struct mu_store *st;
    struct st_conn *next; /* readers registry */
    size_t ncache;
    struct {
        const char *literal; /* the string literal it was first asked with, or NULL */
        uint64_t hash;       /* of sql, to skip most string compares */
        char *sql;
        sqlite3_stmt *stmt;
    } cache[ST_CACHE_MAX];
};

struct mu_store {
    char *path;
    char *vfs;
    unsigned char *audit_key;
    size_t audit_key_len;
    int schema_version;

    pthread_mutex_t wmu; /* the writer connection and the audit head */
    struct st_conn w;
    int64_t head_id; /* committed audit head */
    char head_mac[65];
    int64_t tx_head_id; /* audit head inside the open transaction */
    char tx_head_mac[65];

    pthread_key_t rkey; /* this thread's reader */
    pthread_mutex_t rmu;
    struct st_conn *readers;

    /* The checkpointer (store.c): the writer runs with wal_autocheckpoint=0, so that no
     * commit pays for copying the WAL back; a thread of the store does it on its own
     * connection, every ST_CKPT_PERIOD_MS or sooner when the writer's WAL hook sees the
     * WAL pass ST_CKPT_WAL_PAGES. Its failures are kept here (debug log only): the next
     * round tries again. */
    sqlite3 *ckpt_db;
    pthread_t ckpt_thread;
    bool ckpt_started;
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_cond;
    bool ckpt_stop, ckpt_due;
    int ckpt_wal_pages; /* the WAL's size in pages after the writer's last commit */
    int ckpt_last_rc;   /* SQLite code of the last failed checkpoint, 0 if none */
    int64_t ckpt_runs;  /* checkpoints run, and how many failed */
    int64_t ckpt_errors;
};

#define ST_CKPT_PERIOD_MS      250
#define ST_CKPT_GAP_MS         20    /* at least this between two checkpoints */
#define ST_CKPT_WAL_PAGES      1000  /* about 4 MB of 4 KiB pages */
#define ST_CKPT_TRUNCATE_PAGES 16000 /* about 64 MB: truncate the WAL, don't just reuse it */
#define ST_CKPT_BUSY_MS        20

/* Statement from c's cache (prepared on first use), reset. NULL with err set (MU_EIO) on
 * failure. Give it back with st_stmt_done (which also unbinds). st_stmt takes a string
 * LITERAL (it is then found again by address); SQL built at run time goes through
 * st_stmt_dyn. */
sqlite3_stmt *st_stmt(struct st_conn *c, const char *sql, struct mu_err *err);
sqlite3_stmt *st_stmt_dyn(struct st_conn *c, const char *sql, struct mu_err *err);
void st_stmt_done(struct st_conn *c, sqlite3_stmt *s);

/* Maps a SQLite failure to an error: constraint failures become MU_ECONFLICT, the rest
 * MU_EIO, with "what" and the SQLite message. Returns the code. */
int st_sql_err(struct st_conn *c, int rc, const char *what, struct mu_err *err);
/* Steps s until SQLITE_DONE (a write). 0 or the code from st_sql_err. */
int st_run(struct st_conn *c, sqlite3_stmt *s, const char *what, struct mu_err *err);
/* Prepares, steps and releases sql with no parameters. */
int st_exec(struct st_conn *c, const char *sql, const char *what, struct mu_err *err);

/* This thread's read connection, opened on first use. NULL with err set. */
struct st_conn *st_reader(struct mu_store *st, struct mu_err *err);

/* Locks the writer and runs BEGIN IMMEDIATE. Returns the writer connection, or NULL with
 * err set (and the lock released). */
struct st_conn *st_tx_begin(struct mu_store *st, struct mu_err *err);
/* COMMIT if rc == 0 (a failed COMMIT becomes MU_EIO), ROLLBACK otherwise; unlocks.
 * Returns the final code. */
int st_tx_end(struct mu_store *st, int rc, struct mu_err *err);

/* Binding and column helpers: NULL strings bind and read as SQL NULL; 0 ids as NULL. */
int st_bind_str(sqlite3_stmt *s, int i, const char *v);
int st_bind_id(sqlite3_stmt *s, int i, int64_t id);
char *st_col_str(sqlite3_stmt *s, int i);

/* "/1/5/" -> "/1/50": the exclusive upper bound of the subtree range. Caller frees. */
char *st_path_upper(const char *path);

/* audit.c: appends an entry inside the open transaction (writer held). tenant_id and
 * target, when given (> 0 / non-NULL), fill in what rec leaves empty (an id known only
 * after the insert); detail likewise. rec NULL: nothing to do. */
int st_audit_append_tx(struct mu_store *st, const struct mu_audit_rec *rec, int64_t tenant_id,
                       const char *target, const char *detail, struct mu_err *err);
/* Loads the head (last id and mac) at open. */
int st_audit_load_head(struct mu_store *st, struct mu_err *err);

/* migrations.c */
extern const char *const st_migrations[];
extern const size_t st_migrations_n;

/* tenants.c, shared with the import. All run inside a transaction on the writer. */
struct st_tenant_loc {
    int64_t id;
    char *path;
    int depth;
    char *name;
};
void st_tenant_loc_clear(struct st_tenant_loc *l);
/* Path, depth and name of tenant id. MU_ENOTFOUND when absent, without touching err (the
 * caller knows whether that is a 404 or a bad parent). */
int st_tenant_locate(struct st_conn *c, int64_t id, struct st_tenant_loc *ret, struct mu_err *err);
/* SIREN and commune INSEE uniqueness against every tenant but self_id. */
int st_tenant_check_unique(struct st_conn *c, const struct mu_tenant *t, int64_t self_id,
                           struct mu_err *err);
int st_tenant_insert_tx(struct st_conn *c, const struct mu_tenant *t, int64_t now, int64_t *ret_id,
                        char **ret_path, struct mu_err *err);
int st_tenant_move_tx(struct st_conn *c, int64_t id, int64_t new_parent_id, int64_t now,
                      struct mu_err *err);
/* Writes every field but id, parent, path, depth and created (update and import). */
int st_tenant_write_fields(struct st_conn *c, const struct mu_tenant *t, int64_t now,
                           struct mu_err *err);
void st_tenant_from_row(sqlite3_stmt *s, struct mu_tenant *t);
#define ST_TENANT_COLS                                                                             \
    "id, parent_id, name, kind, epci_form, siren, insee, dept, region, population, "               \
    "contact_name, contact_email, contact_phone, status, depth, created_ms, updated_ms"

/* ---- provisioning (provision.h), shared by its files. All *_tx run on the writer inside
 * an open transaction. ---------------------------------------------------------------- */

/* A deadline given to every operation at insertion. */
#define ST_OP_DEADLINE_MS (15 * 60 * 1000)

/* Tenant ids of a materialized path, root first ("/1/5/77/" -> 1, 5, 77). Caller frees
 * *ret_ids. MU_EIO with err set for a corrupt path. */
int st_path_ids(const char *path, int64_t **ret_ids, size_t *ret_n, struct mu_err *err);

/* quotas.c: one level of the quota tree (name, effective limits, subtree usage). Fills
 * ret (ret->tenant_name owned by it); MU_ENOTFOUND without touching err when absent. */
int st_level_read(struct st_conn *c, int64_t tenant_id, const struct mu_quota_defaults *defaults,
                  struct mu_quota_level *ret, struct mu_err *err);
/* Adds d (each member may be negative) to tenant_id's subtree usage counters. */
int st_usage_add(struct st_conn *c, int64_t tenant_id, const struct mu_usage *d,
                 struct mu_err *err);
/* Adds d to the counters of every tenant on path (a VM's tenant and its ancestors). */
int st_usage_add_path(struct st_conn *c, const char *path, const struct mu_usage *d,
                      struct mu_err *err);
/* Adds d to a node's counters. */
int st_node_alloc_add(struct st_conn *c, int64_t node_id, const struct mu_usage *d,
                      struct mu_err *err);
/* tenants.c, inside a move of the subtree at old_path to new_path (before or after the
 * tenants rows are rewritten): the VM rows follow (vms.tenant_path), and the subtree's
 * allocation, summed from its VM rows, leaves the ancestors found only in old_path and
 * joins those found only in new_path. */
int st_usage_move_subtree(struct st_conn *c, const char *old_path, const char *new_path,
                          struct mu_err *err);

/* operations.c: inserts a pending operation due now (deadline now + ST_OP_DEADLINE_MS);
 * actor and request id from audit when given. */
int st_op_insert_tx(struct st_conn *c, const char *kind, int64_t vm_id, int64_t node_id,
                    const char *params_json, const struct mu_audit_rec *audit, int64_t now,
                    int64_t *ret_id, struct mu_err *err);
/* The VM's unfinished (pending or running) operation: 1 with its id and kind (caller
 * frees *ret_kind), 0 when none, or < 0. */
int st_op_unfinished_of(struct st_conn *c, int64_t vm_id, int64_t *ret_id, char **ret_kind,
                        struct mu_err *err);

/* vms.c: appends a lifecycle event with the allocation after it. */
int st_vm_event_tx(struct st_conn *c, int64_t vm_id, int64_t tenant_id, int64_t node_id,
                   const char *kind, int64_t vcpus, int64_t ram_mib, int64_t disk_gib, int64_t now,
                   struct mu_err *err);

/* certs.c and reports.c (telemetry.h), inside a transaction on the writer. */
int st_node_cert_record_tx(struct st_conn *c, int64_t node_id, const char *serial,
                           int64_t not_after_ms, int64_t now, struct mu_err *err);
/* Revokes the node's recorded certificates and the one its last enrolment installed. */
int st_node_certs_revoke_tx(struct st_conn *c, int64_t node_id, int64_t now, int64_t *ret_n,
                            struct mu_err *err);
/* Removes a node's last report, VM samples, history and epochs. */
int st_node_telemetry_delete_tx(struct st_conn *c, int64_t node_id, struct mu_err *err);

/* networks.c: private networks of the tenants and public addresses (NICs on provider
 * networks) of the VMs whose path is in [path, upper): for tenant moves. */
int st_net_usage_subtree(struct st_conn *c, const char *path, const char *upper,
                         int64_t *ret_networks, int64_t *ret_public_ips, struct mu_err *err);
/* networks.c, inside the purge of vm_id (before its row goes): gives its NICs' addresses
 * back to their networks, deletes the NICs; *ret_public counts the public ones. */
int st_vm_nics_release_tx(struct st_conn *c, int64_t vm_id, int64_t *ret_public,
                          struct mu_err *err);
/* networks.c, inside admission: checks the requested NICs against the tenant (its own
 * networks, shared provider networks) before quotas; *ret_public counts public ones. */
int st_vm_nics_check_tx(struct st_conn *c, int64_t tenant_id, const struct mu_nic_req *nics,
                        size_t n, int64_t *ret_public, struct mu_err *err);
/* networks.c, inside admission after the VM row: allocates each NIC's address and MAC. */
int st_vm_nics_insert_tx(struct st_conn *c, int64_t vm_id, const struct mu_nic_req *nics, size_t n,
                         int64_t now, struct mu_err *err);

/* networks.c: user-data allowed with a VM (UTF-8, bounded). */
int st_vm_user_data_check(const char *user_data, struct mu_err *err);
/* admission.c: every level of the path ids (tenant last) must take need on top of its
 * subtree's usage; MU_EQUOTA names the first level that cannot. needs: "this VM needs". */
int st_quota_check_tx(struct st_conn *c, const int64_t *ids, size_t n, const struct mu_usage *need,
                      const struct mu_quota_defaults *defaults, const char *needs,
                      struct mu_err *err);

/* A user or token changed (users.c): moves mu_store_auth_generation. */
void st_auth_changed(void);

/* events.c: appends an event inside the open transaction (writer held); see
 * store/events.h. ret_id may be NULL. */
int st_event_append_tx(struct st_conn *c, int64_t tenant_id, const char *type, const char *subject,
                       const char *data_json, int64_t *ret_id, struct mu_err *err);

#endif
