/* The schema, as numbered migrations. Each entry is applied once, in its own transaction,
 * and its number recorded in schema_version. Never edit a released entry: append one. */
#include "store/store_int.h"

const char *const st_migrations[] = {
    /* 1: tenants, users, tokens, audit, settings. */
    "CREATE TABLE tenants ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " parent_id INTEGER REFERENCES tenants(id),"
    " name TEXT NOT NULL,"
    " name_fold TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " epci_form TEXT,"
    " siren TEXT,"
    " insee TEXT,"
    " dept TEXT,"
    " region TEXT,"
    " population INTEGER NOT NULL DEFAULT -1,"
    " contact_name TEXT,"
    " contact_email TEXT,"
    " contact_phone TEXT,"
    " status TEXT NOT NULL DEFAULT 'active',"
    /* Materialized path "/1/5/77/": the subtree of P is path >= P AND path < P-with-its-
     * last-'/'-replaced-by-'0', one index range. */
    " path TEXT NOT NULL,"
    " depth INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX tenants_path ON tenants(path);"
    "CREATE UNIQUE INDEX tenants_siren ON tenants(siren) WHERE siren IS NOT NULL;"
    "CREATE UNIQUE INDEX tenants_commune_insee ON tenants(insee)"
    " WHERE kind = 'commune' AND insee IS NOT NULL;"
    "CREATE INDEX tenants_insee ON tenants(insee) WHERE insee IS NOT NULL;"
    "CREATE INDEX tenants_parent ON tenants(parent_id, id);"
    "CREATE INDEX tenants_kind ON tenants(kind, id);"

    "CREATE TABLE users ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL UNIQUE,"
    " display_name TEXT,"
    " email TEXT,"
    " role TEXT NOT NULL,"
    " tenant_id INTEGER REFERENCES tenants(id),"
    " password_hash TEXT,"
    " disabled INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL);"
    "CREATE INDEX users_tenant ON users(tenant_id, id);"

    "CREATE TABLE tokens ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " user_id INTEGER NOT NULL REFERENCES users(id),"
    " name TEXT NOT NULL,"
    " hash TEXT NOT NULL UNIQUE,"
    " created_ms INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL DEFAULT 0,"
    " revoked_ms INTEGER NOT NULL DEFAULT 0,"
    " last_used_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX tokens_user ON tokens(user_id, id);"

    /* tenant_path is the concerned tenant's path (kept up to date by moves) so that the
     * subtree filter is the same index range as for tenants. It is derived, not chained. */
    "CREATE TABLE audit ("
    " id INTEGER PRIMARY KEY,"
    " ts_ms INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " role TEXT NOT NULL,"
    " tenant_id INTEGER NOT NULL DEFAULT 0,"
    " tenant_path TEXT,"
    " action TEXT NOT NULL,"
    " target TEXT NOT NULL,"
    " outcome TEXT NOT NULL,"
    " request_id TEXT,"
    " detail TEXT,"
    " mac TEXT NOT NULL);"
    "CREATE INDEX audit_tenant_path ON audit(tenant_path, id) WHERE tenant_path IS NOT NULL;"
    "CREATE INDEX audit_actor ON audit(actor, id);"
    "CREATE INDEX audit_ts ON audit(ts_ms);"

    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;",
};

const size_t st_migrations_n = MU_ARRAY_LEN(st_migrations);
