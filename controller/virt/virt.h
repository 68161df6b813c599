/* virt/: everything the controller does to a hypervisor, behind one driver table.
 * virt_libvirt.c is the only controller file that includes libvirt; domxml.c builds
 * domain and volume XML with libxml2's tree API (no string pasting, everything escaped).
 *
 * Connections: one struct mu_virt_conn per node. libvirt's default event loop is
 * registered (virEventRegisterDefaultImpl) before the first open and runs on its own
 * thread; keep-alive is on (virConnectSetKeepAlive(5, 3)); a close callback marks the
 * connection broken and the next call reopens it with exponential backoff (1 s .. 60 s).
 * A conn is used by one worker thread at a time (ops/ has one worker per node), so a dead
 * or hanging node never blocks the others.
 *
 * Naming: the libvirt domain of a VM is named "mu-<uuid>" and its disk volume
 * "mu-<uuid>.qcow2"; base images are "mu-image-<id>.<format>". A tenant's chosen VM name
 * never reaches libvirt except inside the escaped <metadata> and <title> elements.
 * Every function is idempotent where the issue asks for it: it looks things up by UUID or
 * volume name before creating, and deleting what is absent succeeds. */
#ifndef MU_VIRT_H
#define MU_VIRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"

#define MU_VIRT_NS  "https://mutualis.example/xmlns/libvirt/1"
#define MU_UUID_LEN 36

struct mu_virt_conn;

/* Once per process, before any open: registers and starts the event loop thread. */
int mu_virt_init(struct mu_err *err);
void mu_virt_shutdown(void);

/* Validates a libvirt URI by allow-list (schemes qemu, qemu+ssh, qemu+libssh, qemu+tls,
 * qemu+tcp, test; no shell metacharacters, spaces or quotes) without connecting. */
bool mu_virt_uri_valid(const char *uri);

/* Opens (lazily: the first call that needs it connects). pool: the storage pool name on the
 * node, created as a "dir" pool at pool_path if absent and pool_path is set. */
struct mu_virt_conn *mu_virt_conn_new(const char *uri, const char *pool, const char *pool_path);
void mu_virt_conn_free(struct mu_virt_conn *c);
/* True when the last call could reach the node. */
bool mu_virt_conn_alive(struct mu_virt_conn *c);

struct mu_virt_node_info {
    int64_t cpus;
    int64_t mem_mib;
    int64_t pool_capacity_gib;
    int64_t pool_available_gib;
    bool kvm; /* the node's capabilities offer domain type kvm */
    char hostname[256];
    char libvirt_version[32]; /* "9.0.0" */
};
/* Reads capacity and capabilities (ensures the pool exists and is active). MU_EUNAVAIL
 * when the node cannot be reached. */
int mu_virt_node_info(struct mu_virt_conn *c, struct mu_virt_node_info *ret, struct mu_err *err);

/* ---- storage ------------------------------------------------------------------------ */
/* Copies a base image file to the node's pool as volume vol_name (format "qcow2" or "raw",
 * never guessed) through virStorageVolUpload, then downloads it back and checks its
 * SHA-256 against sha256_hex. Idempotent: an existing volume with the right size and
 * checksum is kept; a wrong one is deleted and uploaded again. */
int mu_virt_image_ensure(struct mu_virt_conn *c, const char *vol_name, const char *local_path,
                         const char *format, const char *sha256_hex, struct mu_err *err);
/* Creates the VM's qcow2 overlay vol_name of capacity_gib on base volume base_vol.
 * Idempotent. ret_path (optional, >= 4096 bytes) receives the volume's path. */
int mu_virt_overlay_ensure(struct mu_virt_conn *c, const char *vol_name, const char *base_vol,
                           const char *base_format, int64_t capacity_gib, char *ret_path,
                           struct mu_err *err);
/* Grows a volume (never shrinks). */
int mu_virt_volume_resize(struct mu_virt_conn *c, const char *vol_name, int64_t capacity_gib,
                          struct mu_err *err);
/* Deletes a volume; absent is success. */
int mu_virt_volume_delete(struct mu_virt_conn *c, const char *vol_name, struct mu_err *err);
/* Whether a volume exists (0 no, 1 yes, < 0 error). */
int mu_virt_volume_exists(struct mu_virt_conn *c, const char *vol_name, struct mu_err *err);

/* ---- domains ------------------------------------------------------------------------ */
struct mu_virt_domain_spec {
    char uuid[MU_UUID_LEN + 1];
    int64_t vm_id;
    int64_t tenant_id;
    const char *vm_name;     /* tenant's name for the VM: only in <title>/<metadata> */
    const char *tenant_name; /* only in <metadata> */
    int64_t vcpus;
    int64_t ram_mib;
    bool kvm;              /* type='kvm' where the node supports it, else 'qemu' */
    const char *disk_path; /* the overlay volume's path (from overlay_ensure) */
    /* Optional direct kernel boot (images that carry a kernel, like the test guest). */
    const char *kernel, *initrd, *cmdline;
    const char *serial_log; /* optional: serial console to this file */
    const char *seed_iso;   /* optional: cloud-init seed as a read-only CD (networks issue) */
    /* NICs (store/network.h), in idx order: one <interface type='bridge'> each, on the
     * NIC's bridge with its MAC, MTU, a virtio model and <filterref filter='mu-net-<network>'>
     * with parameters IP and MAC (see mu_virt_nwfilter_define). Validated by allow-list. */
    const struct mu_nic *nics;
    size_t n_nics;
};
/* Builds the domain XML (libxml2 tree API). Validates every value that becomes an
 * attribute or a path (allow-list: absolute paths of [A-Za-z0-9._/-], no ".."); the free
 * text (vm_name, tenant_name) is escaped by libxml2. Returns a string the caller frees. */
char *mu_virt_domain_xml(const struct mu_virt_domain_spec *spec, struct mu_err *err);

/* Defines the domain if no domain with this UUID exists; if one exists, redefines it only
 * when redefine is true (resize). */
int mu_virt_domain_define(struct mu_virt_conn *c, const struct mu_virt_domain_spec *spec,
                          bool redefine, struct mu_err *err);

enum mu_virt_state {
    MU_VIRT_ABSENT = 0, /* no such domain */
    MU_VIRT_RUNNING,
    MU_VIRT_SHUTOFF,
    MU_VIRT_PAUSED,
    MU_VIRT_SHUTDOWN, /* shutting down */
    MU_VIRT_CRASHED,
    MU_VIRT_OTHER,
};
const char *mu_virt_state_name(enum mu_virt_state s); /* "running", "shutoff", … */
int mu_virt_domain_state(struct mu_virt_conn *c, const char *uuid, enum mu_virt_state *ret,
                         struct mu_err *err);
/* Start: no-op when running. */
int mu_virt_domain_start(struct mu_virt_conn *c, const char *uuid, struct mu_err *err);
/* Graceful stop: ACPI shutdown, wait up to timeout_ms for shutoff (polling state), then
 * destroy. *ret_forced tells whether destroy was needed. No-op when already off. */
int mu_virt_domain_stop(struct mu_virt_conn *c, const char *uuid, int64_t timeout_ms,
                        bool *ret_forced, struct mu_err *err);
/* Immediate power off; absent or off is success. */
int mu_virt_domain_destroy(struct mu_virt_conn *c, const char *uuid, struct mu_err *err);
/* Reboot through ACPI (the guest handles the power button). */
int mu_virt_domain_reboot(struct mu_virt_conn *c, const char *uuid, struct mu_err *err);
/* Undefine (with its NVRAM etc.); absent is success. The domain must be off. */
int mu_virt_domain_undefine(struct mu_virt_conn *c, const char *uuid, struct mu_err *err);

/* Domains on the node that carry Mutualis metadata (for the reconciler). */
struct mu_virt_domain_info {
    char uuid[MU_UUID_LEN + 1];
    int64_t vm_id;     /* from metadata */
    int64_t tenant_id; /* from metadata */
    enum mu_virt_state state;
};
int mu_virt_domain_list(struct mu_virt_conn *c, struct mu_virt_domain_info **ret, size_t *ret_n,
                        struct mu_err *err);

/* ---- networks: NoCloud seeds and nwfilters (seed.c, nwfilter.c) ----------------------- */
struct mu_nic;      /* store/network.h */
struct mu_sec_rule; /* store/network.h */

/* A cloud-init NoCloud seed: meta-data ("instance-id" = the VM's UUID, "local-hostname" =
 * the VM's name), network-config version 2 (one ethernet per NIC matched by MAC, with its
 * address/prefix, MTU and gateway4 only when the NIC has a gateway) and user-data (copied as
 * is; NULL: no user-data file). Every value is allow-listed and written quoted. */
struct mu_virt_seed {
    const char *instance_id; /* lower-case UUID */
    const char *hostname;    /* [a-z0-9][a-z0-9-]{0,62} (the store's VM names) */
    const struct mu_nic *nics;
    size_t n_nics;
    const char *user_data; /* at most MU_VIRT_USER_DATA_MAX bytes, or NULL */
};
#define MU_VIRT_USER_DATA_MAX (64 * 1024)
/* Builds the seed ISO 9660 image (volume id "cidata", Rock Ridge + Joliet) in memory with
 * libisofs. Same inputs give the same bytes. *ret_buf (caller frees) and *ret_len are written
 * only on success; MU_EINVAL names a bad field. */
int mu_virt_seed_build(const struct mu_virt_seed *s, unsigned char **ret_buf, size_t *ret_len,
                       struct mu_err *err);
/* Uploads a seed image as volume vol_name ("mu-<uuid>.seed.iso", raw) in the node's pool
 * through virStorageVolUpload, verified by reading it back. Idempotent: a volume with the
 * same content is kept, a different one replaced. ret_path (optional, >= 4096 bytes) gets
 * the volume's path on the node. */
int mu_virt_seed_ensure(struct mu_virt_conn *c, const char *vol_name, const unsigned char *buf,
                        size_t len, char *ret_path, struct mu_err *err);

/* nwfilter "mu-net-<network_id>" (the name every NIC of that network references): clean-
 * traffic (no MAC/IP/ARP spoofing), inbound from the network's CIDR and replies allowed,
 * operator rules (accept/drop) first, then tenant allow rules, then drop. Defines it on the
 * node, or redefines it when it differs (libvirt re-applies a redefined filter to running
 * interfaces). Rules validated by allow-list. */
int mu_virt_nwfilter_define(struct mu_virt_conn *c, int64_t network_id, const char *cidr,
                            const struct mu_sec_rule *rules, size_t n_rules, struct mu_err *err);
/* Removes the filter; absent is success; MU_ECONFLICT while an interface still uses it. */
int mu_virt_nwfilter_undefine(struct mu_virt_conn *c, int64_t network_id, struct mu_err *err);

/* Random RFC 4122 version 4 UUID, lower case. */
void mu_uuid_generate(char out[MU_UUID_LEN + 1]);
bool mu_uuid_valid(const char *s);

#endif
