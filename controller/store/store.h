/* The store: the only code that includes sqlite3.h. One SQLite file in WAL mode with
 * synchronous=FULL; numbered migrations applied in one transaction each, the schema
 * version recorded in `schema_version`.
 *
 * Connections: one writer connection behind a mutex (every mutation runs in
 * BEGIN IMMEDIATE ... COMMIT under it), and one read-only connection per calling
 * thread, opened lazily. All functions are thread-safe.
 *
 * Every mutating function takes a `const struct mu_audit_rec *audit` (may be NULL only in
 * tests and bootstrap) and appends the audit entry in the same transaction as the change,
 * with outcome "ok": a change and its audit entry commit together or not at all.
 * Nothing returns before its COMMIT has been synced.
 *
 * Strings in returned structs are owned by the struct; free with the matching _free. */
#ifndef MU_STORE_H
#define MU_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "mutualis/err.h"

struct mu_store;

struct mu_store_opts {
    const char *path;      /* database file */
    const char *vfs;       /* SQLite VFS name, NULL for the default (tests wrap it) */
    const char *audit_key; /* HMAC key for the audit chain (32 bytes) */
    size_t audit_key_len;
};

/* Opens (creating if needed) and migrates. NULL with err set on failure. */
struct mu_store *mu_store_open(const struct mu_store_opts *opts, struct mu_err *err);
void mu_store_close(struct mu_store *st);
/* Highest migration applied. */
int mu_store_schema_version(struct mu_store *st);

/* ---- audit ---------------------------------------------------------------------- */

struct mu_audit_rec {
    const char *actor;   /* user name, "bootstrap", "anonymous" */
    const char *role;    /* operator, observer, tenant-admin, tenant-reader, "" */
    int64_t tenant_id;   /* tenant the action concerns (0: none / global) */
    const char *action;  /* the RBAC action name, e.g. "tenant.create" */
    const char *target;  /* "tenant/42", "user/alice" */
    const char *outcome; /* "ok", or "denied", "invalid", "not-found", "conflict" */
    const char *request_id;
    const char *detail; /* optional: short text (refusal reason, "moved from 3 to 7") */
};

/* Appends one entry on its own (refused attempts). */
int mu_store_audit_append(struct mu_store *st, const struct mu_audit_rec *rec, struct mu_err *err);

struct mu_audit_entry {
    int64_t id;
    int64_t ts_ms;
    char *actor, *role, *action, *target, *outcome, *request_id, *detail;
    int64_t tenant_id;
    char mac[65]; /* hex HMAC-SHA256 chained over the previous entry's mac */
};

struct mu_audit_filter {
    int64_t scope_tenant_id;    /* 0: all; else only entries whose tenant is in this subtree */
    int64_t tenant_id;          /* 0: any; else this tenant's subtree */
    const char *actor;          /* NULL: any */
    int64_t since_ms, until_ms; /* 0: open */
    int64_t after_id;           /* pagination: entries with id > after_id */
    int limit;                  /* 1..1000 */
};

/* Lists entries by ascending id. *ret_entries is an array of *ret_n entries. */
int mu_store_audit_list(struct mu_store *st, const struct mu_audit_filter *f,
                        struct mu_audit_entry **ret_entries, size_t *ret_n, struct mu_err *err);
void mu_audit_entries_free(struct mu_audit_entry *e, size_t n);

struct mu_audit_verdict {
    bool ok;
    int64_t checked;      /* entries checked */
    int64_t first_bad_id; /* 0 if none */
    char reason[256];     /* "entry 17: mac does not match (edited or removed before it)" */
    int64_t head_id;      /* last entry id and its mac */
    char head_mac[65];
};

/* Recomputes the chain from the first entry. If expect_head_id > 0, also checks that the
 * entry with that id exists and carries expect_head_mac (a head written earlier to the
 * log), which detects truncation of the tail. */
int mu_store_audit_verify(struct mu_store *st, int64_t expect_head_id, const char *expect_head_mac,
                          struct mu_audit_verdict *ret, struct mu_err *err);
/* Current head (id, mac) for periodic logging. */
int mu_store_audit_head(struct mu_store *st, int64_t *ret_id, char ret_mac[65]);

/* ---- tenants ---------------------------------------------------------------------- */

struct mu_tenant {
    int64_t id;
    int64_t parent_id; /* 0: root */
    char *name;
    char *kind;         /* syndicat, epci, commune, departement, other */
    char *epci_form;    /* CC, CA, CU, METRO, MET69 for epci; NULL otherwise */
    char *siren;        /* NULL when none */
    char *insee;        /* communes only; NULL otherwise */
    char *dept;         /* département code or NULL */
    char *region;       /* région code or NULL */
    int64_t population; /* -1: unknown */
    char *contact_name, *contact_email, *contact_phone; /* each may be NULL */
    char *status;                                       /* active, suspended, archived */
    int depth;                                          /* 0 for a root */
    int64_t created_ms, updated_ms;
};
void mu_tenant_clear(struct mu_tenant *t); /* frees the strings */
void mu_tenants_free(struct mu_tenant *t, size_t n);

/* Inserts t (id ignored, filled in *ret_id). Checks: parent exists (if set), siren unique,
 * (kind, insee) unique for communes. MU_ECONFLICT / MU_EINVAL with detail. Values are
 * assumed validated by the caller (tenancy/). */
int mu_store_tenant_insert(struct mu_store *st, const struct mu_tenant *t,
                           const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err);
/* Replaces every field but id, parent, created. */
int mu_store_tenant_update(struct mu_store *st, const struct mu_tenant *t,
                           const struct mu_audit_rec *audit, struct mu_err *err);
/* Moves a subtree under new_parent_id (0: make it a root). Refuses cycles (MU_ECONFLICT). */
int mu_store_tenant_move(struct mu_store *st, int64_t id, int64_t new_parent_id,
                         const struct mu_audit_rec *audit, struct mu_err *err);
/* Deletes a tenant without children or users (MU_ECONFLICT otherwise). */
int mu_store_tenant_delete(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                           struct mu_err *err);
/* MU_ENOTFOUND if absent. */
int mu_store_tenant_get(struct mu_store *st, int64_t id, struct mu_tenant *ret, struct mu_err *err);
/* True if tenant_id is ancestor_id or lies in its subtree (cheap: indexed path compare). */
bool mu_store_tenant_in_subtree(struct mu_store *st, int64_t ancestor_id, int64_t tenant_id);
/* Ancestors from the root down to (and including) id. */
int mu_store_tenant_ancestors(struct mu_store *st, int64_t id, int64_t **ret_ids, size_t *ret_n,
                              struct mu_err *err);

struct mu_tenant_filter {
    int64_t scope_id;   /* 0: everything; else only this tenant's subtree (RBAC scope) */
    int64_t parent_id;  /* -1: any; 0: roots; else direct children of this tenant */
    int64_t subtree_of; /* 0: any; else this tenant's whole subtree (itself included) */
    const char *kind;   /* NULL: any */
    const char *q;      /* NULL: any; else folded and matched as a substring of the
                           folded name, or exactly against siren / insee */
    const char *status; /* NULL: any */
    int64_t after_id;   /* pagination by ascending id */
    int limit;          /* 1..1000 */
};
int mu_store_tenant_list(struct mu_store *st, const struct mu_tenant_filter *f,
                         struct mu_tenant **ret, size_t *ret_n, struct mu_err *err);

/* Bulk upsert for the COG import, all or nothing in one short transaction.
 * Entries are matched by siren, or by (kind=commune, insee) when siren is NULL.
 * parent of each entry: parent_id if > 0, else the tenant created/matched for
 * entries[parent_index] (which must come earlier in the array). */
struct mu_tenant_upsert {
    struct mu_tenant t; /* t.parent_id used when parent_index < 0 */
    int parent_index;   /* -1: use t.parent_id */
};
struct mu_import_counts {
    int64_t created, updated, unchanged;
};
int mu_store_tenant_upsert_many(struct mu_store *st, const struct mu_tenant_upsert *entries,
                                size_t n, const struct mu_audit_rec *audit,
                                struct mu_import_counts *ret, struct mu_err *err);

/* ---- users and tokens ------------------------------------------------------------- */

struct mu_user {
    int64_t id;
    char *name;          /* mu_ident_valid */
    char *display_name;  /* may be NULL */
    char *email;         /* may be NULL */
    char *role;          /* operator, observer, tenant-admin, tenant-reader */
    int64_t tenant_id;   /* 0 for operator/observer */
    char *password_hash; /* argon2id encoded, or NULL (token-only account) */
    bool disabled;
    int64_t created_ms;
};
void mu_user_clear(struct mu_user *u);
void mu_users_free(struct mu_user *u, size_t n);

int mu_store_user_insert(struct mu_store *st, const struct mu_user *u,
                         const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err);
int mu_store_user_get(struct mu_store *st, int64_t id, struct mu_user *ret, struct mu_err *err);
int mu_store_user_get_by_name(struct mu_store *st, const char *name, struct mu_user *ret,
                              struct mu_err *err);
/* Updates display_name, email, role, tenant_id, password_hash, disabled. */
int mu_store_user_update(struct mu_store *st, const struct mu_user *u,
                         const struct mu_audit_rec *audit, struct mu_err *err);
/* Deletes the user and revokes all their tokens. */
int mu_store_user_delete(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                         struct mu_err *err);
struct mu_user_filter {
    int64_t scope_id; /* 0: all; else users whose tenant lies in this subtree */
    int64_t after_id;
    int limit;
};
int mu_store_user_list(struct mu_store *st, const struct mu_user_filter *f, struct mu_user **ret,
                       size_t *ret_n, struct mu_err *err);
int64_t mu_store_user_count(struct mu_store *st);

struct mu_token {
    int64_t id;
    int64_t user_id;
    char *name;
    char hash[65]; /* hex SHA-256 of the secret */
    int64_t created_ms;
    int64_t expires_ms;   /* 0: never */
    int64_t revoked_ms;   /* 0: not revoked */
    int64_t last_used_ms; /* as last flushed */
};
void mu_token_clear(struct mu_token *t);
void mu_tokens_free(struct mu_token *t, size_t n);

int mu_store_token_insert(struct mu_store *st, const struct mu_token *t,
                          const struct mu_audit_rec *audit, int64_t *ret_id, struct mu_err *err);
/* Looks up by hash (used on every request; read connection, no write). */
int mu_store_token_get_by_hash(struct mu_store *st, const char *hash, struct mu_token *ret,
                               struct mu_err *err);
int mu_store_token_get(struct mu_store *st, int64_t id, struct mu_token *ret, struct mu_err *err);
int mu_store_token_revoke(struct mu_store *st, int64_t id, const struct mu_audit_rec *audit,
                          struct mu_err *err);
/* user_id 0: all tokens (operator view). */
int mu_store_token_list(struct mu_store *st, int64_t user_id, int64_t after_id, int limit,
                        struct mu_token **ret, size_t *ret_n, struct mu_err *err);
/* Batch flush of in-memory last-use times: n pairs (token id, ms). No audit. */
int mu_store_token_touch_many(struct mu_store *st, const int64_t *ids, const int64_t *ms, size_t n,
                              struct mu_err *err);

/* Moves after every commit that changed a user or a token (insert, update, delete,
 * revocation): caches of authentication results compare it to know they are still true. */
uint64_t mu_store_auth_generation(struct mu_store *st);

/* ---- key/value settings (e.g. bootstrap done) ----------------------------------- */
int mu_store_setting_get(struct mu_store *st, const char *key, char **ret_value,
                         struct mu_err *err); /* MU_ENOTFOUND if absent */
int mu_store_setting_set(struct mu_store *st, const char *key, const char *value,
                         struct mu_err *err);

#endif
