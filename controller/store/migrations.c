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

    /* 2: provisioning (provision.h): nodes, flavors, images and their copies on nodes,
     * anti-affinity groups, VMs and their lifecycle events, quotas, usage counters,
     * operations. Every query of store/ has its index here. */
    "CREATE TABLE nodes ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL UNIQUE,"
    " uri TEXT NOT NULL,"
    " pool TEXT NOT NULL DEFAULT 'mutualis',"
    " pool_path TEXT,"
    " op_state TEXT NOT NULL DEFAULT 'active',"
    " health TEXT NOT NULL DEFAULT 'unknown',"
    " enrolment TEXT NOT NULL DEFAULT 'none',"
    " cpus INTEGER NOT NULL DEFAULT 0,"
    " mem_mib INTEGER NOT NULL DEFAULT 0,"
    " disk_gib INTEGER NOT NULL DEFAULT 0,"
    " reserved_mem_mib INTEGER NOT NULL DEFAULT -1,"
    " kvm INTEGER NOT NULL DEFAULT 0,"
    " labels_json TEXT NOT NULL DEFAULT '{}',"
    /* Sums over the node's VM rows, changed in the transactions that change those rows. */
    " alloc_vcpus INTEGER NOT NULL DEFAULT 0,"
    " alloc_ram_mib INTEGER NOT NULL DEFAULT 0,"
    " alloc_disk_gib INTEGER NOT NULL DEFAULT 0,"
    " vm_count INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " info_ms INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT);"

    "CREATE TABLE flavors ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL UNIQUE,"
    " vcpus INTEGER NOT NULL,"
    " ram_mib INTEGER NOT NULL,"
    " disk_gib INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL);"

    "CREATE TABLE images ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL UNIQUE,"
    " format TEXT NOT NULL,"
    " size_bytes INTEGER NOT NULL DEFAULT 0,"
    " sha256 TEXT,"
    " path TEXT,"
    " status TEXT NOT NULL DEFAULT 'uploading',"
    " kernel TEXT,"
    " initrd TEXT,"
    " cmdline TEXT,"
    " created_ms INTEGER NOT NULL);"

    "CREATE TABLE image_copies ("
    " image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
    " node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,"
    " copied_ms INTEGER NOT NULL,"
    " PRIMARY KEY (image_id, node_id)) WITHOUT ROWID;"
    "CREATE INDEX image_copies_node ON image_copies(node_id);"

    "CREATE TABLE groups ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"
    " name TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX groups_tenant_name ON groups(tenant_id, name);"

    /* tenant_path is the tenant's path (moves rewrite it, like audit.tenant_path) so that
     * a subtree's VMs are one index range. A VM row lives from admission to purge; its
     * allocation counts against its node and every level of its tenant's path. */
    "CREATE TABLE vms ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " uuid TEXT NOT NULL UNIQUE,"
    " tenant_id INTEGER NOT NULL REFERENCES tenants(id),"
    " tenant_path TEXT NOT NULL,"
    " name TEXT NOT NULL,"
    " flavor_id INTEGER REFERENCES flavors(id),"
    " vcpus INTEGER NOT NULL,"
    " ram_mib INTEGER NOT NULL,"
    " disk_gib INTEGER NOT NULL,"
    " image_id INTEGER REFERENCES images(id),"
    " node_id INTEGER REFERENCES nodes(id),"
    " group_id INTEGER REFERENCES groups(id),"
    " labels_json TEXT,"
    " desired_state TEXT NOT NULL,"
    " observed_state TEXT NOT NULL,"
    " last_error TEXT,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " desired_ms INTEGER NOT NULL,"
    " observed_ms INTEGER NOT NULL);"
    /* A name is free again once its VM is being deleted. */
    "CREATE UNIQUE INDEX vms_tenant_name ON vms(tenant_id, name)"
    " WHERE desired_state != 'deleted';"
    "CREATE INDEX vms_tenant ON vms(tenant_id);"
    "CREATE INDEX vms_tenant_path ON vms(tenant_path, id);"
    "CREATE INDEX vms_node ON vms(node_id, id);"
    "CREATE INDEX vms_group_node ON vms(group_id, node_id) WHERE group_id IS NOT NULL;"
    "CREATE INDEX vms_state ON vms(observed_state, id);"
    "CREATE INDEX vms_flavor ON vms(flavor_id);"
    "CREATE INDEX vms_image ON vms(image_id);"

    /* Kept after the VM row is purged: the capacity forecast reads the history. */
    "CREATE TABLE vm_events ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " vm_id INTEGER NOT NULL,"
    " tenant_id INTEGER NOT NULL,"
    " node_id INTEGER,"
    " ts_ms INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " vcpus INTEGER NOT NULL,"
    " ram_mib INTEGER NOT NULL,"
    " disk_gib INTEGER NOT NULL);"
    "CREATE INDEX vm_events_vm ON vm_events(vm_id, id);"
    "CREATE INDEX vm_events_ts ON vm_events(ts_ms);"

    /* Explicit limits (-1: unlimited); a tenant without a row gets the policy default. */
    "CREATE TABLE quotas ("
    " tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,"
    " vcpus INTEGER NOT NULL,"
    " ram_mib INTEGER NOT NULL,"
    " disk_gib INTEGER NOT NULL,"
    " vms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL);"

    /* The allocation of the tenant's whole subtree (no row: zero). */
    "CREATE TABLE tenant_usage ("
    " tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,"
    " vcpus INTEGER NOT NULL DEFAULT 0,"
    " ram_mib INTEGER NOT NULL DEFAULT 0,"
    " disk_gib INTEGER NOT NULL DEFAULT 0,"
    " vms INTEGER NOT NULL DEFAULT 0);"

    /* vm_id is not a foreign key: a vm.delete outlives the row it purges. */
    "CREATE TABLE operations ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " kind TEXT NOT NULL,"
    " vm_id INTEGER NOT NULL,"
    " node_id INTEGER,"
    " state TEXT NOT NULL DEFAULT 'pending',"
    " step TEXT NOT NULL DEFAULT '',"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_run_ms INTEGER NOT NULL,"
    " deadline_ms INTEGER NOT NULL,"
    " params_json TEXT,"
    " error TEXT,"
    " actor TEXT,"
    " request_id TEXT,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " finished_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX operations_due ON operations(state, next_run_ms);"
    /* One unfinished operation per VM, enforced as well as looked up here. */
    "CREATE UNIQUE INDEX operations_vm_unfinished ON operations(vm_id)"
    " WHERE state IN ('pending', 'running');",

    /* 3: enrolment over SSH (store/enrolment.h): the node's pinned SSH host key and what the
     * last successful enrolment installed. One row per node, gone with the node. */
    "CREATE TABLE node_enrolment ("
    " node_id INTEGER PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE,"
    " host_key TEXT,"
    " ssh_host TEXT,"
    " ssh_port INTEGER NOT NULL DEFAULT 0,"
    " ssh_user TEXT,"
    " agent_sha256 TEXT,"
    " cert_serial TEXT,"
    " cert_not_after_ms INTEGER NOT NULL DEFAULT 0,"
    " libvirt_uri TEXT,"
    " supervisor TEXT,"
    " enrolled_ms INTEGER NOT NULL DEFAULT 0,"
    " updated_ms INTEGER NOT NULL);",

    /* 4: agent reports (store/telemetry.h): node certificates, report sequencing per agent
     * epoch, gap records, the last report per node and per VM, node history in 10 s buckets
     * (24 h), hourly rollups per node and per tenant (30 days); node health with the time of
     * its last change, and the time of the node's last report. No foreign keys: a node's
     * certificates outlive it (revoked), and the rows of deleted nodes and purged VMs go
     * with the node's deletion and the periodic prune. */
    "ALTER TABLE nodes ADD COLUMN health_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE nodes ADD COLUMN last_report_ms INTEGER NOT NULL DEFAULT 0;"

    /* serial: lower-case hex, as mu_pki_sign_client writes it. Looked up at every agent
     * request. */
    "CREATE TABLE node_certs ("
    " serial TEXT PRIMARY KEY,"
    " node_id INTEGER NOT NULL,"
    " not_after_ms INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " revoked_ms INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE INDEX node_certs_node ON node_certs(node_id);"

    /* acked_seq: the highest contiguous sequence stored for the epoch. */
    "CREATE TABLE agent_epochs ("
    " node_id INTEGER NOT NULL,"
    " epoch TEXT NOT NULL,"
    " acked_seq INTEGER NOT NULL,"
    " first_ms INTEGER NOT NULL,"
    " last_ms INTEGER NOT NULL,"
    " PRIMARY KEY (node_id, epoch)) WITHOUT ROWID;"
    "CREATE INDEX agent_epochs_last ON agent_epochs(last_ms);"

    /* The sequences an agent had to drop (never silence), beyond what was stored. */
    "CREATE TABLE report_gaps ("
    " id INTEGER PRIMARY KEY,"
    " node_id INTEGER NOT NULL,"
    " epoch TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"
    " gap_from INTEGER NOT NULL,"
    " gap_to INTEGER NOT NULL,"
    " received_ms INTEGER NOT NULL);"
    "CREATE INDEX report_gaps_node ON report_gaps(node_id, epoch, gap_from);"
    "CREATE INDEX report_gaps_received ON report_gaps(received_ms);"

    /* time_ms: when the agent collected it (its clock); received_ms: when it was stored. */
    "CREATE TABLE node_last ("
    " node_id INTEGER PRIMARY KEY,"
    " epoch TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"
    " time_ms INTEGER NOT NULL,"
    " received_ms INTEGER NOT NULL,"
    " cpus INTEGER NOT NULL,"
    " cpu_percent REAL NOT NULL,"
    " load1 REAL NOT NULL,"
    " load5 REAL NOT NULL,"
    " load15 REAL NOT NULL,"
    " mem_total_mib INTEGER NOT NULL,"
    " mem_available_mib INTEGER NOT NULL,"
    " uptime_s INTEGER NOT NULL,"
    " pools_json TEXT NOT NULL,"
    " domains INTEGER NOT NULL);"

    /* One row per Mutualis VM seen in a report (domains of no VM are not kept). No index on
     * node_id: every report rewrites these rows, and only a node's deletion looks them up by
     * node. */
    "CREATE TABLE vm_last ("
    " vm_id INTEGER PRIMARY KEY,"
    " node_id INTEGER NOT NULL,"
    " uuid TEXT NOT NULL,"
    " state TEXT NOT NULL,"
    " time_ms INTEGER NOT NULL,"
    " received_ms INTEGER NOT NULL,"
    " cpu_time_ns INTEGER NOT NULL,"
    " vcpus INTEGER NOT NULL,"
    " mem_balloon_kib INTEGER NOT NULL,"
    " mem_rss_kib INTEGER NOT NULL,"
    " disk_allocation_bytes INTEGER NOT NULL,"
    " disk_capacity_bytes INTEGER NOT NULL,"
    " net_rx_bytes INTEGER NOT NULL,"
    " net_tx_bytes INTEGER NOT NULL);"

    /* bucket: time_ms / 10000; the first report of each bucket is kept. */
    "CREATE TABLE node_history ("
    " node_id INTEGER NOT NULL,"
    " bucket INTEGER NOT NULL,"
    " cpu_percent REAL NOT NULL,"
    " load1 REAL NOT NULL,"
    " mem_total_mib INTEGER NOT NULL,"
    " mem_available_mib INTEGER NOT NULL,"
    " domains INTEGER NOT NULL,"
    " PRIMARY KEY (node_id, bucket)) WITHOUT ROWID;"

    /* hour_ms: the start of the hour (agent clock); sums over that hour's reports. */
    "CREATE TABLE node_hourly ("
    " node_id INTEGER NOT NULL,"
    " hour_ms INTEGER NOT NULL,"
    " samples INTEGER NOT NULL,"
    " cpu_percent_sum REAL NOT NULL,"
    " cpu_percent_max REAL NOT NULL,"
    " load1_sum REAL NOT NULL,"
    " mem_used_mib_sum INTEGER NOT NULL,"
    " mem_total_mib INTEGER NOT NULL,"
    " PRIMARY KEY (node_id, hour_ms)) WITHOUT ROWID;"
    "CREATE INDEX node_hourly_hour ON node_hourly(hour_ms);"

    /* Per tenant (the VM's own tenant, not its ancestors): samples counts VM samples (the
     * sums divided by it give the mean per VM sample); cpu and network are the increments
     * between consecutive samples of each VM. */
    "CREATE TABLE tenant_hourly ("
    " tenant_id INTEGER NOT NULL,"
    " hour_ms INTEGER NOT NULL,"
    " samples INTEGER NOT NULL,"
    " cpu_time_ns INTEGER NOT NULL,"
    " mem_rss_kib_sum INTEGER NOT NULL,"
    " disk_allocation_bytes_sum INTEGER NOT NULL,"
    " net_rx_bytes INTEGER NOT NULL,"
    " net_tx_bytes INTEGER NOT NULL,"
    " PRIMARY KEY (tenant_id, hour_ms)) WITHOUT ROWID;"
    "CREATE INDEX tenant_hourly_hour ON tenant_hourly(hour_ms);",

    /* 5: tenant name search (mu_store_tenant_list with q). A trigram full-text index over
     * tenants.name_fold, external content (the text lives only in tenants), kept in step by
     * triggers: LIKE '%q%' on it uses the index for q of 3 characters or more instead of
     * scanning every name. Filled here for the tenants that already exist. */
    "CREATE VIRTUAL TABLE tenant_fts USING fts5(name_fold, content='tenants',"
    " content_rowid='id', tokenize='trigram');"
    "CREATE TRIGGER tenants_fts_insert AFTER INSERT ON tenants BEGIN"
    " INSERT INTO tenant_fts (rowid, name_fold) VALUES (new.id, new.name_fold);"
    " END;"
    "CREATE TRIGGER tenants_fts_delete AFTER DELETE ON tenants BEGIN"
    " INSERT INTO tenant_fts (tenant_fts, rowid, name_fold)"
    " VALUES ('delete', old.id, old.name_fold);"
    " END;"
    "CREATE TRIGGER tenants_fts_update AFTER UPDATE OF id, name_fold ON tenants"
    " WHEN old.id != new.id OR old.name_fold != new.name_fold BEGIN"
    " INSERT INTO tenant_fts (tenant_fts, rowid, name_fold)"
    " VALUES ('delete', old.id, old.name_fold);"
    " INSERT INTO tenant_fts (rowid, name_fold) VALUES (new.id, new.name_fold);"
    " END;"
    "INSERT INTO tenant_fts (tenant_fts) VALUES ('rebuild');",

    /* 6: the event feed (store/events.h): what happened to a tenant's requests, VMs and
     * alerts, read by the API's feed and by the webhook dispatcher (by id). tenant_path
     * is the concerned tenant's path, so a subtree reads one index range. */
    "CREATE TABLE events ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " at_ms INTEGER NOT NULL,"
    " tenant_id INTEGER NOT NULL,"
    " tenant_path TEXT NOT NULL,"
    " type TEXT NOT NULL,"
    " subject TEXT NOT NULL,"
    " data TEXT NOT NULL"
    ");"
    "CREATE INDEX events_tenant_path ON events(tenant_path, id);",

    /* 7..11 are reserved for the features being built side by side (networks, webhooks,
     * alerts, portal sessions, catalogue requests); each is replaced by its schema. */
    /* 7: networks (store/network.h): tenant private and operator provider networks, the
     * NICs of VMs with their addresses (UNIQUE(network_id, ip): no address is ever handed
     * out twice, whatever the code does), the free address ranges of each network (the
     * allocator reads one row: first free, or the range holding a requested address),
     * security rules, the node underlay address, the VM's cloud-init user-data, and the
     * network quotas and usage counters. Operations of the network kinds (net.filter) are
     * not tied to a VM (vm_id 0): the one-unfinished-operation-per-VM index skips them. */
    "CREATE TABLE networks ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " tenant_id INTEGER NOT NULL REFERENCES tenants(id),"
    " name TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " mode TEXT NOT NULL,"
    " net_addr INTEGER NOT NULL,"
    " prefix INTEGER NOT NULL,"
    " gateway TEXT NOT NULL DEFAULT '',"
    " segment INTEGER NOT NULL DEFAULT 0,"
    " bridge TEXT NOT NULL,"
    " mtu INTEGER NOT NULL,"
    " reserved_json TEXT NOT NULL DEFAULT '[]',"
    " pool_json TEXT,"
    " shared INTEGER NOT NULL DEFAULT 0,"
    " rules_gen INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX networks_tenant_name ON networks(tenant_id, name);"
    /* A segment id (VNI, VLAN id) is never used by two networks of one mode at once. */
    "CREATE UNIQUE INDEX networks_segment ON networks(mode, segment) WHERE segment > 0;"
    "CREATE INDEX networks_kind ON networks(kind, name);"

    "CREATE TABLE nics ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " vm_id INTEGER NOT NULL REFERENCES vms(id) ON DELETE CASCADE,"
    " network_id INTEGER NOT NULL REFERENCES networks(id),"
    " idx INTEGER NOT NULL,"
    " mac TEXT NOT NULL UNIQUE,"
    " ip INTEGER NOT NULL,"
    " public INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX nics_network_ip ON nics(network_id, ip);"
    "CREATE UNIQUE INDEX nics_vm_idx ON nics(vm_id, idx);"

    /* Free addresses of a network as disjoint ranges [lo, hi] (host order integers):
     * the usable addresses minus network, broadcast, gateway, reserved ranges (and, for a
     * provider network, outside its pools), minus the NICs' addresses. */
    "CREATE TABLE ip_free ("
    " network_id INTEGER NOT NULL REFERENCES networks(id) ON DELETE CASCADE,"
    " lo INTEGER NOT NULL,"
    " hi INTEGER NOT NULL,"
    " PRIMARY KEY (network_id, lo)) WITHOUT ROWID;"
    "CREATE UNIQUE INDEX ip_free_hi ON ip_free(network_id, hi);"

    "CREATE TABLE sec_rules ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " network_id INTEGER NOT NULL REFERENCES networks(id) ON DELETE CASCADE,"
    " operator_rule INTEGER NOT NULL DEFAULT 0,"
    " action TEXT NOT NULL,"
    " proto TEXT NOT NULL,"
    " port_min INTEGER NOT NULL DEFAULT 0,"
    " port_max INTEGER NOT NULL DEFAULT 0,"
    " source TEXT NOT NULL,"
    " description TEXT,"
    " created_ms INTEGER NOT NULL);"
    "CREATE INDEX sec_rules_network ON sec_rules(network_id, operator_rule DESC, id);"

    "ALTER TABLE nodes ADD COLUMN underlay_ip TEXT NOT NULL DEFAULT '';"
    "CREATE UNIQUE INDEX nodes_underlay ON nodes(underlay_ip) WHERE underlay_ip != '';"
    "ALTER TABLE vms ADD COLUMN user_data TEXT;"
    "ALTER TABLE quotas ADD COLUMN networks INTEGER NOT NULL DEFAULT -1;"
    "ALTER TABLE quotas ADD COLUMN public_ips INTEGER NOT NULL DEFAULT -1;"
    "ALTER TABLE tenant_usage ADD COLUMN networks INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE tenant_usage ADD COLUMN public_ips INTEGER NOT NULL DEFAULT 0;"

    "DROP INDEX operations_vm_unfinished;"
    "CREATE UNIQUE INDEX operations_vm_unfinished ON operations(vm_id)"
    " WHERE state IN ('pending', 'running') AND vm_id > 0;"
    "CREATE INDEX operations_unfinished_of ON operations(vm_id)"
    " WHERE state IN ('pending', 'running');",
    /* 8: webhooks (store/webhooks.h): one per tenant. cursor is the last event id queued
     * for it (events of its tenant's subtree, filtered by its type prefixes); each queued
     * event is a delivery, tried until delivered or given up (failed, never dropped); each
     * attempt is a row of webhook_attempts. The secret is kept as shown once: it signs. */
    "CREATE TABLE webhooks ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " tenant_id INTEGER NOT NULL UNIQUE REFERENCES tenants(id) ON DELETE CASCADE,"
    " url TEXT NOT NULL,"
    " enabled INTEGER NOT NULL,"
    " types_json TEXT NOT NULL DEFAULT '[]',"
    " secret TEXT NOT NULL,"
    " cursor INTEGER NOT NULL,"
    " consecutive_failures INTEGER NOT NULL DEFAULT 0,"
    " delivered INTEGER NOT NULL DEFAULT 0,"
    " failed INTEGER NOT NULL DEFAULT 0,"
    " last_event_id INTEGER NOT NULL DEFAULT 0,"
    " last_attempt_ms INTEGER NOT NULL DEFAULT 0,"
    " last_outcome TEXT,"
    " last_http_status INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT,"
    " secret_ms INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL);"
    "CREATE TABLE webhook_deliveries ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " webhook_id INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,"
    " event_id INTEGER NOT NULL,"
    " state TEXT NOT NULL DEFAULT 'pending',"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " next_ms INTEGER NOT NULL,"
    " deadline_ms INTEGER NOT NULL,"
    " last_http_status INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT,"
    " created_ms INTEGER NOT NULL,"
    " done_ms INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (webhook_id, event_id));"
    "CREATE INDEX webhook_deliveries_due ON webhook_deliveries(state, next_ms);"
    "CREATE INDEX webhook_deliveries_hook ON webhook_deliveries(webhook_id, state);"
    "CREATE TABLE webhook_attempts ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,"
    " at_ms INTEGER NOT NULL,"
    " duration_ms INTEGER NOT NULL,"
    " outcome TEXT NOT NULL,"
    " http_status INTEGER NOT NULL,"
    " error TEXT);"
    "CREATE INDEX webhook_attempts_delivery ON webhook_attempts(delivery_id, id);"
    "CREATE INDEX webhook_attempts_at ON webhook_attempts(at_ms);",
    /* 9: alerts (store/alerts.h): one row per firing of a rule on a subject, from firing to
     * resolved; at most one firing row per (rule, subject). */
    "CREATE TABLE alerts ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " rule TEXT NOT NULL,"
    " subject TEXT NOT NULL,"
    " severity TEXT NOT NULL,"
    " state TEXT NOT NULL,"
    " detail TEXT NOT NULL,"
    " pending_ms INTEGER NOT NULL,"
    " since_ms INTEGER NOT NULL,"
    " resolved_ms INTEGER NOT NULL DEFAULT 0,"
    " last_eval_ms INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX alerts_firing ON alerts(rule, subject) WHERE state = 'firing';"
    "CREATE INDEX alerts_state ON alerts(state, id);",
    /* 10: portal sessions (store/sessions.h): the cookie's secret as its SHA-256 only;
     * the rows go with their user. */
    "CREATE TABLE sessions ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " hash TEXT NOT NULL UNIQUE,"
    " csrf TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " last_seen_ms INTEGER NOT NULL,"
    " expires_ms INTEGER NOT NULL,"
    " revoked_ms INTEGER NOT NULL DEFAULT 0,"
    " source TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX sessions_user ON sessions(user_id);"
    "CREATE INDEX sessions_expires ON sessions(expires_ms);",
    /* 11: requests for catalogue items (store/requests.h). No foreign keys: a request
     * outlives its VM (purged after delete), and lists join the tenants for their names
     * and the subtree scope. */
    "CREATE TABLE requests ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " tenant_id INTEGER NOT NULL,"
    " item TEXT NOT NULL,"
    " flavor TEXT NOT NULL,"
    " parameters TEXT NOT NULL,"
    " justification TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " reason TEXT,"
    " vm_id INTEGER NOT NULL DEFAULT 0,"
    " op_id INTEGER NOT NULL DEFAULT 0,"
    " probe_port INTEGER NOT NULL DEFAULT 0,"
    " ready_deadline_ms INTEGER NOT NULL DEFAULT 0,"
    " requested_by TEXT NOT NULL,"
    " decided_by TEXT,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL);"
    "CREATE INDEX requests_tenant ON requests(tenant_id, id);"
    "CREATE INDEX requests_status ON requests(status, id);",
};

const size_t st_migrations_n = MU_ARRAY_LEN(st_migrations);
