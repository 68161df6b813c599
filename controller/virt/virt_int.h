/* virt/ internals shared by domxml.c (XML built and read with libxml2, no libvirt) and
 * virt_libvirt.c (the only file that includes libvirt). Not part of the contract: the
 * unit tests include it to check the builders and parsers directly. */
#ifndef MU_VIRT_INT_H
#define MU_VIRT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "store/provision.h" /* network.h uses its types */
#include "store/network.h"
#include "virt/virt.h"

#define MU_VIRT_PATH_MAX     4096
#define MU_VIRT_TEXT_MAX     4096 /* vm_name, tenant_name (bytes) */
#define MU_VIRT_CMDLINE_MAX  2048 /* the x86 kernel command line limit */
#define MU_VIRT_VCPUS_MAX    256
#define MU_VIRT_RAM_MIN_MIB  16
#define MU_VIRT_RAM_MAX_MIB  (INT64_C(4) * 1024 * 1024) /* 4 TiB */
#define MU_VIRT_DISK_MAX_GIB (INT64_C(64) * 1024)       /* 64 TiB */

/* Absolute path of [A-Za-z0-9._/-], no "..", 2..MU_VIRT_PATH_MAX bytes. */
bool mu_virt_path_valid(const char *p);
/* Pool or volume name: [A-Za-z0-9._-], 1..255 bytes, not starting with '.' or '-', no "..". */
bool mu_virt_vol_name_valid(const char *s);
/* Kernel command line: [A-Za-z0-9 =._/:,-], at most MU_VIRT_CMDLINE_MAX bytes. */
bool mu_virt_cmdline_valid(const char *s);
/* Image format we accept: "qcow2" or "raw". Never guessed. */
bool mu_virt_format_valid(const char *f);

/* Builds the domain XML after validating every field; on failure fills err (MU_EINVAL,
 * naming the field) and returns its code. *ret (caller frees) is written only on success. */
int mu_virt_domain_xml_build(const struct mu_virt_domain_spec *spec, char **ret,
                             struct mu_err *err);

/* <pool type='dir'> named name at path. Both must be valid (checked by the caller). */
char *mu_virt_pool_xml(const char *name, const char *path);
/* <volume> of capacity bytes (allocation 0) in format; with a <backingStore> when
 * backing_path is set. Inputs validated by the caller. */
char *mu_virt_volume_xml(const char *name, const char *format, uint64_t capacity,
                         const char *backing_path, const char *backing_format);

/* ---- networks (nwfilter.c, seed.c) ---- */
#define MU_VIRT_MTU_MIN 576
#define MU_VIRT_MTU_MAX 9000
/* Dotted IPv4 without leading zeros: 0 and *ret (host order), or -1. */
int mu_virt_ipv4_parse(const char *s, uint32_t *ret);
void mu_virt_ipv4_format(uint32_t v, char out[16]);
/* "a.b.c.d/p", p 0..32, host bits zero: 0 or -1. */
int mu_virt_cidr_parse(const char *s, uint32_t *ret_addr, int *ret_prefix);
/* "52:54:00:12:34:56": lower-case hex pairs, unicast. */
bool mu_virt_mac_valid(const char *s);
/* "mu-net-<id>". */
void mu_virt_nwfilter_name(int64_t network_id, char *out, size_t outlen);
/* The filter XML (see nwfilter.c); *ret written only on success. */
int mu_virt_nwfilter_xml_build(int64_t network_id, const char *cidr,
                               const struct mu_sec_rule *rules, size_t n_rules, char **ret,
                               struct mu_err *err);
/* The seed's three files as text (unit tests read them); *ret written only on success. */
struct mu_virt_seed_texts {
    char *meta_data, *network_config, *user_data; /* user_data NULL when none */
};
int mu_virt_seed_texts(const struct mu_virt_seed *s, struct mu_virt_seed_texts *ret,
                       struct mu_err *err);
void mu_virt_seed_texts_clear(struct mu_virt_seed_texts *t);

/* Parses our metadata element as virDomainGetMetadata returns it (<vm vm-id= tenant-id=>).
 * 0 and writes both ids, or -1 when it is not ours or malformed. */
int mu_virt_metadata_parse(const char *xml, int64_t *ret_vm_id, int64_t *ret_tenant_id);
/* 1 when the capabilities XML offers <domain type='kvm'> for x86_64 hvm guests, 0 when not,
 * -1 when it cannot be parsed. */
int mu_virt_caps_kvm(const char *caps_xml);
/* Copies the <backingStore><path> of a volume XML into out: 1 found, 0 none, -1 bad XML. */
int mu_virt_vol_backing_path(const char *vol_xml, char *out, size_t outlen);

#endif
