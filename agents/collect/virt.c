/* Pools and domains from the local libvirt, over one read-only connection kept open
 * between cycles and opened again after it is lost. Per cycle: one listing of active
 * pools, one virConnectGetAllDomainStats, one metadata lookup per domain; everything is
 * freed before returning. */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collect/collect_int.h"
#include "mutualis/log.h"
#include "mutualis/util.h"
#include "mutualis/validate.h"

/* The wire format's bounds (mutualis/report.h, common/report.c). */
#define COUNTER_MAX  4611686018427387904ULL
#define MEM_KIB_MAX  (1ULL << 50)
#define VCPUS_MAX    16384
#define POOL_GIB_MAX (1ULL << 40)
#define VM_ID_MAX    9007199254740991LL

struct mu_collect_virt {
    char *uri;
    virConnectPtr conn;
    bool nowait_refused; /* the driver refused VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT */
};

/* libvirt prints every error to stderr unless told otherwise; ours go to mu_err. */
static void quiet_errors(void *data, virErrorPtr e)
{
    (void)data;
    (void)e;
}

struct mu_collect_virt *mu_collect_virt_new(const char *uri)
{
    virInitialize();
    virSetErrorFunc(NULL, quiet_errors);
    struct mu_collect_virt *v = mu_xcalloc(1, sizeof *v);
    v->uri = mu_xstrdup(uri);
    return v;
}

static void disconnect(struct mu_collect_virt *v)
{
    if (v->conn)
        virConnectClose(v->conn);
    v->conn = NULL;
}

void mu_collect_virt_free(struct mu_collect_virt *v)
{
    if (!v)
        return;
    disconnect(v);
    free(v->uri);
    free(v);
}

static int fail(struct mu_collect_virt *v, struct mu_err *err, const char *what)
{
    const char *msg = virGetLastErrorMessage();
    int code = virGetLastErrorCode();
    /* Whatever went wrong, the next cycle starts from a fresh connection. */
    if (code == VIR_ERR_SYSTEM_ERROR || code == VIR_ERR_RPC || code == VIR_ERR_NO_CONNECT ||
        code == VIR_ERR_INTERNAL_ERROR || code == VIR_ERR_AUTH_FAILED ||
        code == VIR_ERR_OPERATION_FAILED || (v->conn && virConnectIsAlive(v->conn) != 1))
        disconnect(v);
    return mu_err_set(err, MU_EUNAVAIL, "libvirt %s: %s: %s", v->uri, what,
                      msg ? msg : "unknown error");
}

static int ensure(struct mu_collect_virt *v, struct mu_err *err)
{
    if (v->conn && virConnectIsAlive(v->conn) == 1)
        return 0;
    disconnect(v);
    v->conn = virConnectOpenReadOnly(v->uri);
    if (!v->conn)
        return fail(v, err, "cannot connect");
    return 0;
}

const char *mu_collect_state_name(int state)
{
    switch (state) {
    case VIR_DOMAIN_RUNNING:
    case VIR_DOMAIN_BLOCKED: /* running, waiting on a resource */
        return "running";
    case VIR_DOMAIN_PAUSED:
        return "paused";
    case VIR_DOMAIN_SHUTDOWN:
        return "shutdown";
    case VIR_DOMAIN_SHUTOFF:
        return "shutoff";
    case VIR_DOMAIN_CRASHED:
        return "crashed";
    default: /* no state, suspended by guest power management */
        return "other";
    }
}

static uint64_t param_u64(const virTypedParameter *p)
{
    switch (p->type) {
    case VIR_TYPED_PARAM_INT:
        return p->value.i < 0 ? 0 : (uint64_t)p->value.i;
    case VIR_TYPED_PARAM_UINT:
        return p->value.ui;
    case VIR_TYPED_PARAM_LLONG:
        return p->value.l < 0 ? 0 : (uint64_t)p->value.l;
    case VIR_TYPED_PARAM_ULLONG:
        return p->value.ul;
    default:
        return 0;
    }
}

static int64_t cap(uint64_t v, uint64_t max)
{
    return (int64_t)(v > max ? max : v);
}

/* "prefix.N.suffix" with N a device index. */
static bool device_param(const char *name, const char *prefix, const char *suffix)
{
    size_t lp = strlen(prefix), ls = strlen(suffix), n = strlen(name);
    if (n <= lp + ls || strncmp(name, prefix, lp) != 0 || strcmp(name + n - ls, suffix) != 0)
        return false;
    for (size_t i = lp; i < n - ls; i++)
        if (name[i] < '0' || name[i] > '9')
            return false;
    return true;
}

/* Saturating sum. */
static void add_to(uint64_t *sum, uint64_t v)
{
    *sum = v > UINT64_MAX - *sum ? UINT64_MAX : *sum + v;
}

unsigned mu_collect_domain_from_params(const virTypedParameter *params, int n,
                                       struct mu_report_domain *d)
{
    unsigned found = 0;
    uint64_t rx = 0, tx = 0, alloc = 0, capacity = 0, physical = 0;
    bool have_physical = false;
    for (int i = 0; i < n; i++) {
        const virTypedParameter *p = &params[i];
        const char *f = p->field;
        uint64_t v = param_u64(p);
        if (strcmp(f, "state.state") == 0) {
            snprintf(d->state, sizeof d->state, "%s", mu_collect_state_name((int)v));
            found |= MU_STAT_STATE;
        } else if (strcmp(f, "cpu.time") == 0) {
            d->cpu_time_ns = cap(v, COUNTER_MAX);
            found |= MU_STAT_CPU;
        } else if (strcmp(f, "balloon.current") == 0) {
            d->mem_balloon_kib = cap(v, MEM_KIB_MAX);
            found |= MU_STAT_BALLOON;
        } else if (strcmp(f, "balloon.rss") == 0) {
            d->mem_rss_kib = cap(v, MEM_KIB_MAX);
            found |= MU_STAT_RSS;
        } else if (strcmp(f, "vcpu.current") == 0) {
            d->vcpus = cap(v, VCPUS_MAX);
            found |= MU_STAT_VCPUS;
        } else if (device_param(f, "net.", ".rx.bytes")) {
            add_to(&rx, v);
            found |= MU_STAT_NET;
        } else if (device_param(f, "net.", ".tx.bytes")) {
            add_to(&tx, v);
            found |= MU_STAT_NET;
        } else if (device_param(f, "block.", ".allocation")) {
            add_to(&alloc, v);
            found |= MU_STAT_BLOCK;
        } else if (device_param(f, "block.", ".physical")) {
            add_to(&physical, v);
            have_physical = true;
            found |= MU_STAT_BLOCK;
        } else if (device_param(f, "block.", ".capacity")) {
            add_to(&capacity, v);
            found |= MU_STAT_BLOCK;
        }
    }
    if (found & MU_STAT_NET) {
        d->net_rx_bytes = cap(rx, COUNTER_MAX);
        d->net_tx_bytes = cap(tx, COUNTER_MAX);
    }
    if (found & MU_STAT_BLOCK) {
        /* What the images take on the host: "physical" is the size of the image file (a
         * qcow2 file grows as the guest writes). "allocation" is QEMU's highest written
         * offset since it started (0 for a fresh start, whatever the file holds): only a
         * stand-in when physical is missing. */
        d->disk_allocation_bytes = cap(have_physical ? physical : alloc, COUNTER_MAX);
        d->disk_capacity_bytes = cap(capacity, COUNTER_MAX);
    }
    return found;
}

int mu_collect_metadata_vm_id(const char *xml, int64_t *ret)
{
    if (!xml)
        return -1;
    const char *p = strchr(xml, '<');
    while (p && (p[1] == '?' || p[1] == '!')) /* declaration or comment before the root */
        p = strchr(p + 1, '<');
    if (!p)
        return -1;
    p++;
    const char *name = p;
    while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '/' && *p != '>')
        p++;
    size_t nlen = (size_t)(p - name);
    const char *colon = memchr(name, ':', nlen);
    const char *local = colon ? colon + 1 : name;
    if ((size_t)(name + nlen - local) != 2 || strncmp(local, "vm", 2) != 0)
        return -1;
    /* The attributes of the root element only: the VM and tenant names are in children. */
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (*p == '\0' || *p == '>' || *p == '/')
            return -1;
        const char *an = p;
        while (*p && *p != '=' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' &&
               *p != '>' && *p != '/')
            p++;
        size_t alen = (size_t)(p - an);
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (*p != '=')
            return -1;
        p++;
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        char quote = *p;
        if (quote != '"' && quote != '\'')
            return -1;
        const char *val = ++p;
        const char *end = strchr(val, quote);
        if (!end)
            return -1;
        p = end + 1;
        if (alen == 5 && strncmp(an, "vm-id", 5) == 0) {
            char num[24];
            size_t vlen = (size_t)(end - val);
            if (vlen == 0 || vlen >= sizeof num)
                return -1;
            memcpy(num, val, vlen);
            num[vlen] = '\0';
            if (num[0] < '0' || num[0] > '9') /* no sign, no space */
                return -1;
            return mu_parse_i64(num, 1, VM_ID_MAX, ret);
        }
    }
}

static int collect_pools(struct mu_collect_virt *v, struct mu_report *r, struct mu_err *err)
{
    virStoragePoolPtr *pools = NULL;
    int n = virConnectListAllStoragePools(v->conn, &pools, VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE);
    if (n < 0) {
        /* A daemon without the storage driver has no pools to report. */
        if (virGetLastErrorCode() == VIR_ERR_NO_SUPPORT)
            return 0;
        return fail(v, err, "cannot list storage pools");
    }
    size_t max = n > MU_REPORT_MAX_POOLS ? MU_REPORT_MAX_POOLS : (size_t)n;
    r->pools = mu_xcalloc(max, sizeof *r->pools);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        virStoragePoolInfo info;
        const char *name = virStoragePoolGetName(pools[i]);
        if (rc == 0 && r->npools < max && name &&
            mu_name_valid(name, sizeof r->pools[0].name - 1)) {
            if (virStoragePoolGetInfo(pools[i], &info) == 0) {
                struct mu_report_pool *p = &r->pools[r->npools++];
                snprintf(p->name, sizeof p->name, "%s", name);
                p->capacity_gib = cap(info.capacity >> 30, POOL_GIB_MAX);
                p->allocation_gib = cap(info.allocation >> 30, POOL_GIB_MAX);
                p->available_gib = cap(info.available >> 30, POOL_GIB_MAX);
            } else if (virGetLastErrorCode() != VIR_ERR_NO_STORAGE_POOL) {
                rc = fail(v, err, "cannot read a storage pool");
            }
        } else if (name && !mu_name_valid(name, sizeof r->pools[0].name - 1)) {
            mu_log_debug("pool skipped: its name is not printable or too long");
        }
        virStoragePoolFree(pools[i]);
    }
    free(pools);
    return rc;
}

/* Figures the stats record did not carry (drivers differ: the test driver gives only the
 * state there), from the older per-domain calls. Failures leave zeros. */
static void fill_missing(virDomainPtr dom, unsigned found, struct mu_report_domain *d)
{
    unsigned want = MU_STAT_STATE | MU_STAT_CPU | MU_STAT_BALLOON | MU_STAT_VCPUS;
    if ((found & want) != want) {
        virDomainInfo info;
        if (virDomainGetInfo(dom, &info) == 0) {
            if (!(found & MU_STAT_STATE))
                snprintf(d->state, sizeof d->state, "%s", mu_collect_state_name(info.state));
            if (!(found & MU_STAT_CPU))
                d->cpu_time_ns = cap(info.cpuTime, COUNTER_MAX);
            if (!(found & MU_STAT_BALLOON))
                d->mem_balloon_kib = cap(info.memory, MEM_KIB_MAX);
            if (!(found & MU_STAT_VCPUS))
                d->vcpus = cap(info.nrVirtCpu, VCPUS_MAX);
        }
    }
    if (!(found & MU_STAT_RSS) && virDomainIsActive(dom) == 1) {
        virDomainMemoryStatStruct stats[VIR_DOMAIN_MEMORY_STAT_NR];
        int k = virDomainMemoryStats(dom, stats, VIR_DOMAIN_MEMORY_STAT_NR, 0);
        for (int i = 0; i < k; i++)
            if (stats[i].tag == VIR_DOMAIN_MEMORY_STAT_RSS)
                d->mem_rss_kib = cap(stats[i].val, MEM_KIB_MAX);
    }
}

static int collect_domains(struct mu_collect_virt *v, struct mu_report *r, struct mu_err *err)
{
    unsigned stats = VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_CPU_TOTAL |
                     VIR_DOMAIN_STATS_BALLOON | VIR_DOMAIN_STATS_VCPU | VIR_DOMAIN_STATS_INTERFACE |
                     VIR_DOMAIN_STATS_BLOCK;
    virDomainStatsRecordPtr *recs = NULL;
    int n = -1;
    if (!v->nowait_refused) {
        /* Do not wait for a domain busy with a job (a migration, a snapshot). */
        n = virConnectGetAllDomainStats(v->conn, stats, &recs,
                                        VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT);
        if (n < 0 && virGetLastErrorCode() == VIR_ERR_INVALID_ARG)
            v->nowait_refused = true;
        else if (n < 0)
            return fail(v, err, "cannot read domain statistics");
    }
    if (n < 0) {
        n = virConnectGetAllDomainStats(v->conn, stats, &recs, 0);
        if (n < 0)
            return fail(v, err, "cannot read domain statistics");
    }
    size_t max = n > MU_REPORT_MAX_DOMAINS ? MU_REPORT_MAX_DOMAINS : (size_t)n;
    r->domains = mu_xcalloc(max, sizeof *r->domains);
    int rc = 0;
    for (int i = 0; i < n && r->ndomains < max && rc == 0; i++) {
        virDomainPtr dom = recs[i]->dom;
        struct mu_report_domain *d = &r->domains[r->ndomains];
        memset(d, 0, sizeof *d);
        if (virDomainGetUUIDString(dom, d->uuid) != 0)
            continue;
        snprintf(d->state, sizeof d->state, "other");
        unsigned found = mu_collect_domain_from_params(recs[i]->params, recs[i]->nparams, d);
        fill_missing(dom, found, d);
        char *md = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, MU_COLLECT_NS, 0);
        if (md) {
            if (mu_collect_metadata_vm_id(md, &d->vm_id) != 0)
                d->vm_id = 0;
            free(md);
        } else {
            int code = virGetLastErrorCode();
            /* Not one of ours, or gone since the listing. */
            if (code != VIR_ERR_NO_DOMAIN_METADATA && code != VIR_ERR_NO_DOMAIN)
                rc = fail(v, err, "cannot read the metadata of a domain");
        }
        r->ndomains++;
    }
    virDomainStatsRecordListFree(recs);
    return rc;
}

int mu_collect_virt_sample(struct mu_collect_virt *v, struct mu_report *r, struct mu_err *err)
{
    free(r->pools);
    free(r->domains);
    r->pools = NULL;
    r->domains = NULL;
    r->npools = r->ndomains = 0;
    int rc = ensure(v, err);
    if (rc == 0)
        rc = collect_pools(v, r, err);
    if (rc == 0)
        rc = collect_domains(v, r, err);
    if (rc != 0) {
        free(r->pools);
        free(r->domains);
        r->pools = NULL;
        r->domains = NULL;
        r->npools = r->ndomains = 0;
    }
    return rc;
}

int mu_collect_report(struct mu_collect_host *h, struct mu_collect_virt *v, struct mu_report *r,
                      struct mu_err *err)
{
    r->gap = false;
    r->gap_from = r->gap_to = 0;
    r->time_ms = mu_now_ms();
    int rc = mu_collect_host_sample(h, &r->host, err);
    if (rc == 0)
        rc = mu_collect_virt_sample(v, r, err);
    return rc;
}
