/* Domain, pool and volume XML, built with libxml2's tree API only: every value is a text
 * node or an attribute that libxml2 escapes when it serialises, so no name can add an
 * element. Values that libvirt interprets (paths, command line, numbers) are allow-listed
 * first; free text (the VM's and the tenant's names) is only checked to be valid XML text.
 * Also the few parsers of XML that libvirt hands back (metadata, capabilities, volumes). */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "mutualis/validate.h"
#include "virt/virt_int.h"

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init_once(void)
{
    xmlInitParser();
}

static void xml_init(void)
{
    pthread_once(&xml_once, xml_init_once);
}

static const xmlChar *X(const char *s)
{
    return (const xmlChar *)s;
}

bool mu_virt_path_valid(const char *p)
{
    if (!p || p[0] != '/')
        return false;
    size_t n = strlen(p);
    if (n < 2 || n > MU_VIRT_PATH_MAX || strstr(p, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '/' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool mu_virt_vol_name_valid(const char *s)
{
    if (!s || !s[0] || s[0] == '.' || s[0] == '-')
        return false;
    size_t n = strlen(s);
    if (n > 255 || strstr(s, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool mu_virt_cmdline_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    if (n > MU_VIRT_CMDLINE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  strchr(" =._/:,-", c) != NULL;
        if (!ok)
            return false;
    }
    return true;
}

bool mu_virt_format_valid(const char *f)
{
    return f && (strcmp(f, "qcow2") == 0 || strcmp(f, "raw") == 0);
}

/* Free text that goes into a text node: a valid display name (UTF-8, no control or
 * invisible formatting characters) without the two non-characters XML 1.0 forbids. */
static bool text_valid(const char *s)
{
    return mu_name_valid(s, MU_VIRT_TEXT_MAX) && !strstr(s, "\xEF\xBF\xBE") &&
           !strstr(s, "\xEF\xBF\xBF");
}

static bool opt_path_ok(const char *p)
{
    return !p || mu_virt_path_valid(p);
}

/* Node-side bridge name: [a-z0-9-]{1,15} (IFNAMSIZ), not starting with '-'. */
static bool bridge_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 15 || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

static int nic_check(const struct mu_nic *n, size_t i, struct mu_err *err)
{
    uint32_t ip;
    if (!mu_virt_mac_valid(n->mac))
        return mu_err_setf(err, MU_EINVAL, "mac", "NIC %zu: mac must be six lower-case hex pairs",
                           i);
    if (mu_virt_ipv4_parse(n->ip, &ip) < 0)
        return mu_err_setf(err, MU_EINVAL, "ip", "NIC %zu: ip must be a dotted IPv4 address", i);
    if (!bridge_valid(n->bridge))
        return mu_err_setf(err, MU_EINVAL, "bridge", "NIC %zu: bridge must be 1..15 of a-z 0-9 -",
                           i);
    if (n->mtu < MU_VIRT_MTU_MIN || n->mtu > MU_VIRT_MTU_MAX)
        return mu_err_setf(err, MU_EINVAL, "mtu", "NIC %zu: mtu must be %d..%d", i, MU_VIRT_MTU_MIN,
                           MU_VIRT_MTU_MAX);
    if (n->network_id <= 0)
        return mu_err_setf(err, MU_EINVAL, "network_id", "NIC %zu: network_id must be positive", i);
    return 0;
}

static int spec_check(const struct mu_virt_domain_spec *s, struct mu_err *err)
{
    if (!mu_uuid_valid(s->uuid))
        return mu_err_setf(err, MU_EINVAL, "uuid", "uuid must be a lower-case RFC 4122 UUID");
    if (s->vm_id <= 0)
        return mu_err_setf(err, MU_EINVAL, "vm_id", "vm_id must be positive");
    if (s->tenant_id <= 0)
        return mu_err_setf(err, MU_EINVAL, "tenant_id", "tenant_id must be positive");
    if (!text_valid(s->vm_name))
        return mu_err_setf(err, MU_EINVAL, "vm_name",
                           "vm_name must be 1..%d bytes of UTF-8 text without control "
                           "characters or leading/trailing spaces",
                           MU_VIRT_TEXT_MAX);
    if (s->tenant_name && !text_valid(s->tenant_name))
        return mu_err_setf(err, MU_EINVAL, "tenant_name",
                           "tenant_name must be 1..%d bytes of UTF-8 text without control "
                           "characters or leading/trailing spaces",
                           MU_VIRT_TEXT_MAX);
    if (s->vcpus < 1 || s->vcpus > MU_VIRT_VCPUS_MAX)
        return mu_err_setf(err, MU_EINVAL, "vcpus", "vcpus must be between 1 and %d",
                           MU_VIRT_VCPUS_MAX);
    if (s->ram_mib < MU_VIRT_RAM_MIN_MIB || s->ram_mib > MU_VIRT_RAM_MAX_MIB)
        return mu_err_setf(err, MU_EINVAL, "ram_mib",
                           "ram_mib must be between %d and %" PRId64 " (4 TiB)",
                           MU_VIRT_RAM_MIN_MIB, MU_VIRT_RAM_MAX_MIB);
    static const char path_rule[] =
        "must be an absolute path of letters, digits and . _ / - without \"..\"";
    if (!s->disk_path || !mu_virt_path_valid(s->disk_path))
        return mu_err_setf(err, MU_EINVAL, "disk_path", "disk_path %s", path_rule);
    if (!opt_path_ok(s->kernel))
        return mu_err_setf(err, MU_EINVAL, "kernel", "kernel %s", path_rule);
    if (!opt_path_ok(s->initrd))
        return mu_err_setf(err, MU_EINVAL, "initrd", "initrd %s", path_rule);
    if (s->initrd && !s->kernel)
        return mu_err_setf(err, MU_EINVAL, "initrd", "initrd needs a kernel");
    if (s->cmdline && !mu_virt_cmdline_valid(s->cmdline))
        return mu_err_setf(err, MU_EINVAL, "cmdline",
                           "cmdline may hold only letters, digits, spaces and = . _ / : , - "
                           "(at most %d bytes)",
                           MU_VIRT_CMDLINE_MAX);
    if (s->cmdline && s->cmdline[0] && !s->kernel)
        return mu_err_setf(err, MU_EINVAL, "cmdline", "cmdline needs a kernel");
    if (!opt_path_ok(s->serial_log))
        return mu_err_setf(err, MU_EINVAL, "serial_log", "serial_log %s", path_rule);
    if (!opt_path_ok(s->seed_iso))
        return mu_err_setf(err, MU_EINVAL, "seed_iso", "seed_iso %s", path_rule);
    if (s->n_nics > 0 && !s->nics)
        return mu_err_setf(err, MU_EINVAL, "nics", "nics missing");
    for (size_t i = 0; i < s->n_nics; i++) {
        int r = nic_check(&s->nics[i], i, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static xmlNodePtr child(xmlNodePtr parent, const char *name, const char *text)
{
    return xmlNewTextChild(parent, NULL, X(name), text ? X(text) : NULL);
}

static void prop(xmlNodePtr node, const char *name, const char *value)
{
    xmlNewProp(node, X(name), X(value));
}

static xmlNodePtr child_i64(xmlNodePtr parent, const char *name, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return child(parent, name, buf);
}

/* Serialises doc (UTF-8, indented) into a string from mu_xmalloc, and frees doc. */
static char *doc_string(xmlDocPtr doc)
{
    xmlChar *mem = NULL;
    int len = 0;
    xmlDocDumpFormatMemoryEnc(doc, &mem, &len, "UTF-8", 1);
    xmlFreeDoc(doc);
    if (!mem) {
        /* libxml2 fails here only when out of memory: abort like mu_xmalloc. */
        fputs("mutualis: out of memory serialising XML\n", stderr);
        abort();
    }
    char *s = mu_xstrndup((const char *)mem, (size_t)len);
    xmlFree(mem);
    return s;
}

static xmlDocPtr doc_new(const char *root_name, xmlNodePtr *ret_root)
{
    xml_init();
    xmlDocPtr doc = xmlNewDoc(X("1.0"));
    xmlNodePtr root = xmlNewNode(NULL, X(root_name));
    xmlDocSetRootElement(doc, root);
    *ret_root = root;
    return doc;
}

static void add_metadata(xmlNodePtr root, const struct mu_virt_domain_spec *s)
{
    char buf[32];
    xmlNodePtr md = child(root, "metadata", NULL);
    xmlNodePtr vm = xmlNewChild(md, NULL, X("vm"), NULL);
    xmlNsPtr ns = xmlNewNs(vm, X(MU_VIRT_NS), X("mu"));
    xmlSetNs(vm, ns);
    snprintf(buf, sizeof buf, "%" PRId64, s->vm_id);
    prop(vm, "vm-id", buf);
    snprintf(buf, sizeof buf, "%" PRId64, s->tenant_id);
    prop(vm, "tenant-id", buf);
    xmlNewTextChild(vm, ns, X("name"), X(s->vm_name));
    if (s->tenant_name)
        xmlNewTextChild(vm, ns, X("tenant"), X(s->tenant_name));
}

static void add_os(xmlNodePtr root, const struct mu_virt_domain_spec *s)
{
    xmlNodePtr os = child(root, "os", NULL);
    xmlNodePtr type = child(os, "type", "hvm");
    prop(type, "arch", "x86_64");
    /* i440fx: the seed CD goes on IDE, which every guest kernel can read (the test guest's
     * kernel has no AHCI driver, so q35's SATA would hide it). */
    prop(type, "machine", "pc");
    if (s->kernel) {
        child(os, "kernel", s->kernel);
        if (s->initrd)
            child(os, "initrd", s->initrd);
        if (s->cmdline && s->cmdline[0])
            child(os, "cmdline", s->cmdline);
    } else {
        prop(child(os, "boot", NULL), "dev", "hd");
    }
}

static void add_disk(xmlNodePtr devs, const char *device, const char *format, const char *path,
                     const char *dev, const char *bus, bool readonly)
{
    xmlNodePtr d = child(devs, "disk", NULL);
    prop(d, "type", "file");
    prop(d, "device", device);
    xmlNodePtr drv = child(d, "driver", NULL);
    prop(drv, "name", "qemu");
    prop(drv, "type", format);
    prop(child(d, "source", NULL), "file", path);
    xmlNodePtr t = child(d, "target", NULL);
    prop(t, "dev", dev);
    prop(t, "bus", bus);
    if (readonly)
        child(d, "readonly", NULL);
}

static void add_param(xmlNodePtr fref, const char *name, const char *value)
{
    xmlNodePtr p = child(fref, "parameter", NULL);
    prop(p, "name", name);
    prop(p, "value", value);
}

/* One bridged virtio NIC per entry, filtered by its network's nwfilter. */
static void add_interfaces(xmlNodePtr devs, const struct mu_virt_domain_spec *s)
{
    for (size_t i = 0; i < s->n_nics; i++) {
        const struct mu_nic *n = &s->nics[i];
        char buf[48];
        xmlNodePtr itf = child(devs, "interface", NULL);
        prop(itf, "type", "bridge");
        prop(child(itf, "mac", NULL), "address", n->mac);
        prop(child(itf, "source", NULL), "bridge", n->bridge);
        prop(child(itf, "model", NULL), "type", "virtio");
        snprintf(buf, sizeof buf, "%d", n->mtu);
        prop(child(itf, "mtu", NULL), "size", buf);
        xmlNodePtr fref = child(itf, "filterref", NULL);
        mu_virt_nwfilter_name(n->network_id, buf, sizeof buf);
        prop(fref, "filter", buf);
        add_param(fref, "IP", n->ip);
        add_param(fref, "MAC", n->mac);
    }
}

/* Serial port 0 and the console on it: to a file (appended, so that a reboot keeps the
 * first boot's output) or to a pty when no log is wanted. */
static void add_console(xmlNodePtr devs, const char *log)
{
    const char *kinds[] = {"serial", "console"};
    for (size_t i = 0; i < MU_ARRAY_LEN(kinds); i++) {
        xmlNodePtr n = child(devs, kinds[i], NULL);
        prop(n, "type", log ? "file" : "pty");
        if (log) {
            xmlNodePtr src = child(n, "source", NULL);
            prop(src, "path", log);
            prop(src, "append", "on");
        }
        xmlNodePtr t = child(n, "target", NULL);
        if (i == 1)
            prop(t, "type", "serial");
        prop(t, "port", "0");
    }
}

int mu_virt_domain_xml_build(const struct mu_virt_domain_spec *spec, char **ret, struct mu_err *err)
{
    if (!spec)
        return mu_err_set(err, MU_EINVAL, "no domain specification");
    int r = spec_check(spec, err);
    if (r < 0)
        return r;

    xmlNodePtr root;
    xmlDocPtr doc = doc_new("domain", &root);
    prop(root, "type", spec->kvm ? "kvm" : "qemu");
    char name[sizeof "mu-" + MU_UUID_LEN];
    snprintf(name, sizeof name, "mu-%s", spec->uuid);
    child(root, "name", name);
    child(root, "uuid", spec->uuid);
    child(root, "title", spec->vm_name);
    add_metadata(root, spec);
    prop(child_i64(root, "memory", spec->ram_mib), "unit", "MiB");
    child_i64(root, "vcpu", spec->vcpus);
    add_os(root, spec);
    child(child(root, "features", NULL), "acpi", NULL);
    child(root, "on_poweroff", "destroy");
    child(root, "on_reboot", "restart");
    child(root, "on_crash", "destroy");

    xmlNodePtr devs = child(root, "devices", NULL);
    add_disk(devs, "disk", "qcow2", spec->disk_path, "vda", "virtio", false);
    if (spec->seed_iso)
        add_disk(devs, "cdrom", "raw", spec->seed_iso, "hdc", "ide", true);
    add_interfaces(devs, spec);
    add_console(devs, spec->serial_log);
    /* No implicit USB controller or balloon: the guest gets only what is listed here. */
    xmlNodePtr usb = child(devs, "controller", NULL);
    prop(usb, "type", "usb");
    prop(usb, "model", "none");
    prop(child(devs, "memballoon", NULL), "model", "none");

    *ret = doc_string(doc);
    return 0;
}

char *mu_virt_domain_xml(const struct mu_virt_domain_spec *spec, struct mu_err *err)
{
    char *xml = NULL;
    if (mu_virt_domain_xml_build(spec, &xml, err) < 0)
        return NULL;
    return xml;
}

char *mu_virt_pool_xml(const char *name, const char *path)
{
    xmlNodePtr root;
    xmlDocPtr doc = doc_new("pool", &root);
    prop(root, "type", "dir");
    child(root, "name", name);
    child(child(root, "target", NULL), "path", path);
    return doc_string(doc);
}

char *mu_virt_volume_xml(const char *name, const char *format, uint64_t capacity,
                         const char *backing_path, const char *backing_format)
{
    char buf[32];
    xmlNodePtr root;
    xmlDocPtr doc = doc_new("volume", &root);
    child(root, "name", name);
    snprintf(buf, sizeof buf, "%" PRIu64, capacity);
    prop(child(root, "capacity", buf), "unit", "bytes");
    /* Sparse: a raw upload target must not be written full of zeros first. */
    prop(child(root, "allocation", "0"), "unit", "bytes");
    prop(child(child(root, "target", NULL), "format", NULL), "type", format);
    if (backing_path) {
        xmlNodePtr bs = child(root, "backingStore", NULL);
        child(bs, "path", backing_path);
        prop(child(bs, "format", NULL), "type", backing_format);
    }
    return doc_string(doc);
}

/* ---- parsers of what libvirt returns ------------------------------------------------ */

static xmlDocPtr parse(const char *xml)
{
    xml_init();
    if (!xml)
        return NULL;
    size_t n = strlen(xml);
    if (n > INT32_MAX)
        return NULL;
    /* No network, no entity substitution, no DTD loading, no messages on stderr. */
    return xmlReadMemory(xml, (int)n, "libvirt.xml", NULL,
                         XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static bool is_elem(xmlNodePtr n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, X(name)) == 0;
}

static xmlNodePtr first_elem(xmlNodePtr parent, const char *name)
{
    for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
        if (is_elem(n, name))
            return n;
    return NULL;
}

static int attr_i64(xmlNodePtr n, const char *name, int64_t *ret)
{
    xmlChar *v = xmlGetNoNsProp(n, X(name));
    if (!v)
        return -1;
    int r = mu_parse_i64((const char *)v, 1, INT64_MAX, ret);
    xmlFree(v);
    return r;
}

int mu_virt_metadata_parse(const char *xml, int64_t *ret_vm_id, int64_t *ret_tenant_id)
{
    xmlDocPtr doc = parse(xml);
    if (!doc)
        return -1;
    int r = -1;
    int64_t vm = 0, tenant = 0;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    /* libvirt selects the element by our namespace and may hand it back without it. */
    if (is_elem(root, "vm") && (!root->ns || xmlStrcmp(root->ns->href, X(MU_VIRT_NS)) == 0) &&
        attr_i64(root, "vm-id", &vm) == 0 && attr_i64(root, "tenant-id", &tenant) == 0) {
        *ret_vm_id = vm;
        *ret_tenant_id = tenant;
        r = 0;
    }
    xmlFreeDoc(doc);
    return r;
}

static bool text_is(xmlNodePtr n, const char *want)
{
    xmlChar *t = n ? xmlNodeGetContent(n) : NULL;
    bool eq = t && xmlStrcmp(t, X(want)) == 0;
    xmlFree(t);
    return eq;
}

static bool attr_is(xmlNodePtr n, const char *name, const char *want)
{
    xmlChar *v = xmlGetNoNsProp(n, X(name));
    bool eq = v && xmlStrcmp(v, X(want)) == 0;
    xmlFree(v);
    return eq;
}

int mu_virt_caps_kvm(const char *caps_xml)
{
    xmlDocPtr doc = parse(caps_xml);
    if (!doc)
        return -1;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    if (!is_elem(root, "capabilities")) {
        xmlFreeDoc(doc);
        return -1;
    }
    /* /dev/kvm can exist without usable hardware virtualisation (nested setups that hide
     * it): a KVM guest then never runs its first instruction. Require the host CPU to
     * offer vmx or svm as well as libvirt offering the kvm domain type. */
    bool hw = false;
    xmlNodePtr cpu = first_elem(first_elem(root, "host"), "cpu");
    for (xmlNodePtr f = cpu ? cpu->children : NULL; f; f = f->next)
        if (is_elem(f, "feature") && (attr_is(f, "name", "vmx") || attr_is(f, "name", "svm")))
            hw = true;
    int kvm = 0;
    for (xmlNodePtr g = root->children; g && !kvm && hw; g = g->next) {
        if (!is_elem(g, "guest") || !text_is(first_elem(g, "os_type"), "hvm"))
            continue;
        for (xmlNodePtr a = g->children; a && !kvm; a = a->next) {
            if (!is_elem(a, "arch") || !attr_is(a, "name", "x86_64"))
                continue;
            for (xmlNodePtr d = a->children; d && !kvm; d = d->next)
                if (is_elem(d, "domain") && attr_is(d, "type", "kvm"))
                    kvm = 1;
        }
    }
    xmlFreeDoc(doc);
    return kvm;
}

int mu_virt_vol_backing_path(const char *vol_xml, char *out, size_t outlen)
{
    xmlDocPtr doc = parse(vol_xml);
    if (!doc)
        return -1;
    int r = 0;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    if (!is_elem(root, "volume")) {
        r = -1;
    } else {
        xmlNodePtr p = first_elem(first_elem(root, "backingStore"), "path");
        xmlChar *t = p ? xmlNodeGetContent(p) : NULL;
        if (t && t[0]) {
            snprintf(out, outlen, "%s", (const char *)t);
            r = 1;
        }
        xmlFree(t);
    }
    xmlFreeDoc(doc);
    return r;
}
