/* virt/domxml: the domain XML holds exactly the devices we meant, whatever the names;
 * hostile paths and command lines are refused; pool/volume builders; the parsers of what
 * libvirt returns; UUIDs. The XML is parsed back with libxml2, never string-matched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/util.h"
#include "virt/virt.h"
#include "virt/virt_int.h"

#define UUID "0b7c1f4e-8a4a-4b6b-9d3e-0a1b2c3d4e5f"

static struct mu_virt_domain_spec base_spec(void)
{
    struct mu_virt_domain_spec s = {
        .vm_id = 42,
        .tenant_id = 7,
        .vm_name = "web-1",
        .tenant_name = "Commune de Test",
        .vcpus = 2,
        .ram_mib = 512,
        .kvm = false,
        .disk_path = "/var/lib/mutualis/pool/mu-" UUID ".qcow2",
    };
    snprintf(s.uuid, sizeof s.uuid, "%s", UUID);
    return s;
}

/* ---- helpers over the parsed document ------------------------------------------------ */

static xmlDocPtr parse_ok(const char *xml)
{
    assert_non_null(xml);
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "dom.xml", NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    assert_non_null(doc);
    return doc;
}

static xmlNodePtr elem(xmlNodePtr parent, const char *name)
{
    for (xmlNodePtr n = parent->children; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0)
            return n;
    return NULL;
}

static size_t count_children(xmlNodePtr parent, const char *name)
{
    size_t k = 0;
    for (xmlNodePtr n = parent->children; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE && (!name || strcmp((const char *)n->name, name) == 0))
            k++;
    return k;
}

static size_t count_all(xmlNodePtr n)
{
    size_t k = 0;
    for (; n; n = n->next)
        if (n->type == XML_ELEMENT_NODE)
            k += 1 + count_all(n->children);
    return k;
}

static char *text(xmlNodePtr n)
{
    assert_non_null(n);
    xmlChar *t = xmlNodeGetContent(n);
    char *s = mu_xstrdup((const char *)t);
    xmlFree(t);
    return s;
}

static void assert_text(xmlNodePtr n, const char *want)
{
    char *t = text(n);
    assert_string_equal(t, want);
    free(t);
}

static void assert_attr(xmlNodePtr n, const char *name, const char *want)
{
    assert_non_null(n);
    xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *)name);
    assert_non_null(v);
    assert_string_equal((const char *)v, want);
    xmlFree(v);
}

static char *build(const struct mu_virt_domain_spec *s)
{
    struct mu_err err = {0};
    char *xml = mu_virt_domain_xml(s, &err);
    if (!xml)
        fail_msg("refused: %s (%s)", err.detail, err.field);
    assert_int_equal(err.code, 0);
    return xml;
}

static void assert_refused(const struct mu_virt_domain_spec *s, const char *field)
{
    struct mu_err err = {0};
    char *xml = mu_virt_domain_xml(s, &err);
    if (xml)
        fail_msg("accepted, expected a refusal naming %s:\n%s", field, xml);
    assert_int_equal(err.code, MU_EINVAL);
    assert_string_equal(err.field, field);
    assert_true(err.detail[0] != '\0');
}

/* The devices of the baseline spec: one virtio disk, serial + console, no USB, no balloon. */
static void assert_devices(xmlNodePtr dom, const char *disk_path, const char *seed, const char *log)
{
    xmlNodePtr devs = elem(dom, "devices");
    assert_non_null(devs);
    size_t want_disks = seed ? 2 : 1;
    assert_int_equal(count_children(devs, "disk"), want_disks);
    assert_int_equal(count_children(devs, "serial"), 1);
    assert_int_equal(count_children(devs, "console"), 1);
    assert_int_equal(count_children(devs, "controller"), 1);
    assert_int_equal(count_children(devs, "memballoon"), 1);
    assert_int_equal(count_children(devs, NULL), want_disks + 4);
    for (xmlNodePtr d = devs->children; d; d = d->next) {
        if (d->type != XML_ELEMENT_NODE || strcmp((const char *)d->name, "disk") != 0)
            continue;
        assert_attr(d, "type", "file");
        xmlChar *dev = xmlGetNoNsProp(d, (const xmlChar *)"device");
        if (strcmp((const char *)dev, "disk") == 0) {
            assert_attr(elem(d, "driver"), "type", "qcow2");
            assert_attr(elem(d, "source"), "file", disk_path);
            assert_attr(elem(d, "target"), "dev", "vda");
            assert_attr(elem(d, "target"), "bus", "virtio");
            assert_null(elem(d, "readonly"));
        } else {
            assert_string_equal((const char *)dev, "cdrom");
            assert_non_null(seed);
            assert_attr(elem(d, "driver"), "type", "raw");
            assert_attr(elem(d, "source"), "file", seed);
            assert_attr(elem(d, "target"), "bus", "ide");
            assert_non_null(elem(d, "readonly"));
        }
        xmlFree(dev);
    }
    xmlNodePtr serial = elem(devs, "serial");
    assert_attr(serial, "type", log ? "file" : "pty");
    if (log) {
        assert_attr(elem(serial, "source"), "path", log);
        assert_attr(elem(elem(devs, "console"), "source"), "path", log);
    } else {
        assert_null(elem(serial, "source"));
    }
    assert_attr(elem(devs, "controller"), "model", "none");
    assert_null(elem(dom, "graphics"));
    assert_null(elem(devs, "graphics"));
    assert_null(elem(devs, "interface"));
}

static void test_baseline(void **state)
{
    (void)state;
    struct mu_virt_domain_spec s = base_spec();
    char *xml = build(&s);
    xmlDocPtr doc = parse_ok(xml);
    xmlNodePtr dom = xmlDocGetRootElement(doc);
    assert_string_equal((const char *)dom->name, "domain");
    assert_attr(dom, "type", "qemu");
    assert_text(elem(dom, "name"), "mu-" UUID);
    assert_text(elem(dom, "uuid"), UUID);
    assert_text(elem(dom, "title"), "web-1");
    assert_text(elem(dom, "memory"), "512");
    assert_attr(elem(dom, "memory"), "unit", "MiB");
    assert_text(elem(dom, "vcpu"), "2");
    assert_non_null(elem(elem(dom, "features"), "acpi"));
    assert_text(elem(dom, "on_poweroff"), "destroy");
    assert_text(elem(dom, "on_reboot"), "restart");
    assert_text(elem(dom, "on_crash"), "destroy");
    xmlNodePtr os = elem(dom, "os");
    assert_attr(elem(os, "type"), "arch", "x86_64");
    assert_text(elem(os, "type"), "hvm");
    assert_null(elem(os, "kernel"));
    assert_null(elem(os, "initrd"));
    assert_null(elem(os, "cmdline"));

    xmlNodePtr md = elem(dom, "metadata");
    assert_int_equal(count_children(md, NULL), 1);
    xmlNodePtr vm = elem(md, "vm");
    assert_non_null(vm->ns);
    assert_string_equal((const char *)vm->ns->href, MU_VIRT_NS);
    assert_attr(vm, "vm-id", "42");
    assert_attr(vm, "tenant-id", "7");
    assert_text(elem(vm, "name"), "web-1");
    assert_text(elem(vm, "tenant"), "Commune de Test");
    assert_devices(dom, s.disk_path, NULL, NULL);
    xmlFreeDoc(doc);
    free(xml);

    s.kvm = true;
    xml = build(&s);
    doc = parse_ok(xml);
    assert_attr(xmlDocGetRootElement(doc), "type", "kvm");
    xmlFreeDoc(doc);
    free(xml);

    /* tenant_name is optional */
    s.tenant_name = NULL;
    xml = build(&s);
    doc = parse_ok(xml);
    assert_null(elem(elem(elem(xmlDocGetRootElement(doc), "metadata"), "vm"), "tenant"));
    xmlFreeDoc(doc);
    free(xml);
}

static void test_full(void **state)
{
    (void)state;
    struct mu_virt_domain_spec s = base_spec();
    s.kernel = "/var/cache/mutualis-guest/vmlinuz";
    s.initrd = "/var/cache/mutualis-guest/initrd.gz";
    s.cmdline = "console=ttyS0 quiet root=/dev/vda1 ip=10.0.2.15::10.0.2.2:255.255.255.0";
    s.serial_log = "/var/lib/mutualis/console/" UUID ".log";
    s.seed_iso = "/var/lib/mutualis/pool/mu-" UUID "-seed.iso";
    char *xml = build(&s);
    xmlDocPtr doc = parse_ok(xml);
    xmlNodePtr dom = xmlDocGetRootElement(doc);
    xmlNodePtr os = elem(dom, "os");
    assert_text(elem(os, "kernel"), s.kernel);
    assert_text(elem(os, "initrd"), s.initrd);
    assert_text(elem(os, "cmdline"), s.cmdline);
    assert_devices(dom, s.disk_path, s.seed_iso, s.serial_log);
    xmlFreeDoc(doc);
    free(xml);

    /* Kernel alone, and an empty command line, are fine. */
    s.initrd = NULL;
    s.cmdline = "";
    xml = build(&s);
    doc = parse_ok(xml);
    assert_null(elem(elem(xmlDocGetRootElement(doc), "os"), "cmdline"));
    assert_null(elem(elem(xmlDocGetRootElement(doc), "os"), "initrd"));
    xmlFreeDoc(doc);
    free(xml);
}

static const char *const hostile_names[] = {
    "<",
    "&",
    "\"'",
    "a & b < c > d",
    ("</title><devices><disk type='file' device='disk'><source file='/etc/shadow'/>"
     "<target dev='vdb' bus='virtio'/></disk></devices><title>"),
    "</mu:name></mu:vm><mu:vm vm-id='1' tenant-id='1'><mu:name>x",
    "]]><!-- --><![CDATA[<disk/>]]>",
    "&amp;&#x3c;disk&#x3e; &lt;disk/&gt; &shadow;",
    "<!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>&x;",
    "../../etc/passwd",
    "/etc/shadow",
    "%s%n%x%p",
    "$(reboot) `id` ; rm -rf /",
    "Mairie de Saint-Étienne-du-Rouvray — L'Haÿ-les-Roses 🏛 日本語 עברית",
    "x\xC2\xA0y", /* no-break space inside */
};

static void check_hostile(const char *name, const char *tenant, size_t want_elems)
{
    struct mu_virt_domain_spec s = base_spec();
    s.vm_name = name;
    s.tenant_name = tenant;
    char *xml = build(&s);
    xmlDocPtr doc = parse_ok(xml);
    xmlNodePtr dom = xmlDocGetRootElement(doc);
    /* Same structure as the baseline: the name added no element anywhere. */
    assert_int_equal(count_all(dom), want_elems);
    assert_text(elem(dom, "title"), name);
    assert_text(elem(dom, "name"), "mu-" UUID);
    xmlNodePtr vm = elem(elem(dom, "metadata"), "vm");
    assert_text(elem(vm, "name"), name);
    assert_text(elem(vm, "tenant"), tenant);
    assert_attr(vm, "vm-id", "42");
    assert_devices(dom, s.disk_path, NULL, NULL);
    xmlFreeDoc(doc);
    free(xml);
}

static void test_hostile_names_are_text(void **state)
{
    (void)state;
    struct mu_virt_domain_spec s = base_spec();
    char *xml = build(&s);
    xmlDocPtr doc = parse_ok(xml);
    size_t want = count_all(xmlDocGetRootElement(doc));
    xmlFreeDoc(doc);
    free(xml);

    for (size_t i = 0; i < MU_ARRAY_LEN(hostile_names); i++) {
        check_hostile(hostile_names[i], "Commune", want);
        check_hostile("vm", hostile_names[i], want);
    }
    /* Very long (up to the limit) is still only text. */
    char *long_name = mu_xmalloc(MU_VIRT_TEXT_MAX + 2);
    for (size_t i = 0; i < MU_VIRT_TEXT_MAX; i++)
        long_name[i] = "<&>'\"x"[i % 6];
    long_name[MU_VIRT_TEXT_MAX] = '\0';
    check_hostile(long_name, long_name, want);

    /* One byte more, control characters, broken UTF-8, XML non-characters: refused. */
    long_name[MU_VIRT_TEXT_MAX] = 'x';
    long_name[MU_VIRT_TEXT_MAX + 1] = '\0';
    const char *bad[] = {long_name,        "",
                         " lead",          "trail ",
                         "a\nb",           "a\rb",
                         "a\tb",           "a\x01z",
                         "a\x7f",          "\xff\xfe",
                         "\xC0\xBC",       "a\xEF\xBF\xBE",
                         "a\xEF\xBF\xBFz", "\xED\xA0\x80",
                         "a\xE2\x80\xAE"};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++) {
        s = base_spec();
        s.vm_name = bad[i];
        assert_refused(&s, "vm_name");
        s = base_spec();
        s.tenant_name = bad[i];
        assert_refused(&s, "tenant_name");
    }
    s = base_spec();
    s.vm_name = NULL;
    assert_refused(&s, "vm_name");
    free(long_name);
}

static const char *const bad_paths[] = {
    "relative/disk.qcow2",
    "",
    "/",
    "/var/lib/../../etc/shadow",
    "/var/lib/x/..",
    "/a..b",
    "/tmp/x' /><disk type='file'><source file='/etc/shadow'/></disk><x a='",
    "/tmp/x\"y",
    "/tmp/x<y",
    "/tmp/x>y",
    "/tmp/x&y",
    "/tmp/x y",
    "/tmp/x;reboot",
    "/tmp/$(id)",
    "/tmp/`id`",
    "/tmp/x\ny",
    "/tmp/x\\y",
    "/tmp/x:y",
    "/tmp/x,y",
    "/tmp/é",
    "/tmp/x*",
    "~/x",
    "nbd://host/x",
};

static void test_hostile_paths_refused(void **state)
{
    (void)state;
    const char *fields[] = {"disk_path", "kernel", "initrd", "serial_log", "seed_iso"};
    char *too_long = mu_xmalloc(MU_VIRT_PATH_MAX + 2);
    too_long[0] = '/';
    memset(too_long + 1, 'a', MU_VIRT_PATH_MAX);
    too_long[MU_VIRT_PATH_MAX + 1] = '\0';
    for (size_t f = 0; f < MU_ARRAY_LEN(fields); f++) {
        for (size_t i = 0; i <= MU_ARRAY_LEN(bad_paths); i++) {
            const char *p = i < MU_ARRAY_LEN(bad_paths) ? bad_paths[i] : too_long;
            struct mu_virt_domain_spec s = base_spec();
            s.kernel = "/boot/vmlinuz"; /* so that initrd is checked as a path */
            switch (f) {
            case 0:
                s.disk_path = p;
                break;
            case 1:
                s.kernel = p;
                break;
            case 2:
                s.initrd = p;
                break;
            case 3:
                s.serial_log = p;
                break;
            default:
                s.seed_iso = p;
                break;
            }
            assert_refused(&s, fields[f]);
        }
    }
    struct mu_virt_domain_spec s = base_spec();
    s.disk_path = NULL;
    assert_refused(&s, "disk_path");
    /* The longest allowed path is fine. */
    too_long[MU_VIRT_PATH_MAX] = '\0';
    s = base_spec();
    s.disk_path = too_long;
    free(build(&s));
    free(too_long);

    assert_true(mu_virt_path_valid("/var/lib/mutualis/pool/mu-image-3.qcow2"));
    assert_true(mu_virt_path_valid("/home/mu_node1/.local/x-y.Z"));
    assert_false(mu_virt_path_valid(NULL));
}

static void test_cmdline(void **state)
{
    (void)state;
    struct mu_virt_domain_spec s = base_spec();
    s.kernel = "/boot/vmlinuz";
    const char *good[] = {"console=ttyS0 quiet", "root=/dev/vda1 rw", "a=b,c:d.e_f/g-h", ""};
    for (size_t i = 0; i < MU_ARRAY_LEN(good); i++) {
        s.cmdline = good[i];
        free(build(&s));
    }
    const char *bad[] = {"a;b", "a'b",  "a\"b", "$(id)", "`id`",          "a\nb",      "a|b", "a&b",
                         "a<b", "a>b",  "a\\b", "a\tb",  "init=/bin/sh*", "x\xC3\xA9", "a#b", "a%b",
                         "a!b", "a(b)", "a{b}", "a~b"};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++) {
        s.cmdline = bad[i];
        assert_refused(&s, "cmdline");
    }
    char *long_cmd = mu_xmalloc(MU_VIRT_CMDLINE_MAX + 2);
    memset(long_cmd, 'a', MU_VIRT_CMDLINE_MAX + 1);
    long_cmd[MU_VIRT_CMDLINE_MAX + 1] = '\0';
    s.cmdline = long_cmd;
    assert_refused(&s, "cmdline");
    long_cmd[MU_VIRT_CMDLINE_MAX] = '\0';
    free(build(&s));
    free(long_cmd);

    /* A command line or an initrd needs a kernel. */
    s = base_spec();
    s.cmdline = "quiet";
    assert_refused(&s, "cmdline");
    s = base_spec();
    s.initrd = "/boot/initrd.gz";
    assert_refused(&s, "initrd");
}

static void test_numbers_and_ids(void **state)
{
    (void)state;
    struct mu_virt_domain_spec s = base_spec();
    int64_t vcpus_bad[] = {0, -1, 257, INT64_MAX};
    for (size_t i = 0; i < MU_ARRAY_LEN(vcpus_bad); i++) {
        s = base_spec();
        s.vcpus = vcpus_bad[i];
        assert_refused(&s, "vcpus");
    }
    int64_t ram_bad[] = {0, 15, -16, INT64_C(4) * 1024 * 1024 + 1, INT64_MAX};
    for (size_t i = 0; i < MU_ARRAY_LEN(ram_bad); i++) {
        s = base_spec();
        s.ram_mib = ram_bad[i];
        assert_refused(&s, "ram_mib");
    }
    s = base_spec();
    s.vcpus = 256;
    s.ram_mib = INT64_C(4) * 1024 * 1024;
    free(build(&s));
    s.vcpus = 1;
    s.ram_mib = 16;
    free(build(&s));

    const char *bad_uuids[] = {"",
                               "0B7C1F4E-8A4A-4B6B-9D3E-0A1B2C3D4E5F",
                               "0b7c1f4e8a4a4b6b9d3e0a1b2c3d4e5f",
                               "0b7c1f4e-8a4a-4b6b-9d3e-0a1b2c3d4e5",
                               "0b7c1f4e-8a4a-4b6b-9d3e-0a1b2c3d4e5g",
                               "0b7c1f4e-8a4a-4b6b-9d3e_0a1b2c3d4e5f",
                               "../../../../../etc/passwd/aaaaaaaaaa"};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad_uuids); i++) {
        s = base_spec();
        snprintf(s.uuid, sizeof s.uuid, "%s", bad_uuids[i]);
        assert_refused(&s, "uuid");
    }
    s = base_spec();
    s.vm_id = 0;
    assert_refused(&s, "vm_id");
    s = base_spec();
    s.tenant_id = -3;
    assert_refused(&s, "tenant_id");

    struct mu_err err = {0};
    assert_null(mu_virt_domain_xml(NULL, &err));
    assert_int_equal(err.code, MU_EINVAL);
    /* err is optional */
    s = base_spec();
    s.vcpus = 0;
    assert_null(mu_virt_domain_xml(&s, NULL));
}

static void test_pool_and_volume_xml(void **state)
{
    (void)state;
    char *xml = mu_virt_pool_xml("mutualis", "/var/lib/mutualis/pool");
    xmlDocPtr doc = parse_ok(xml);
    xmlNodePtr pool = xmlDocGetRootElement(doc);
    assert_string_equal((const char *)pool->name, "pool");
    assert_attr(pool, "type", "dir");
    assert_text(elem(pool, "name"), "mutualis");
    assert_text(elem(elem(pool, "target"), "path"), "/var/lib/mutualis/pool");
    xmlFreeDoc(doc);
    free(xml);

    xml = mu_virt_volume_xml("mu-image-1.qcow2", "qcow2", 196616, NULL, NULL);
    doc = parse_ok(xml);
    xmlNodePtr vol = xmlDocGetRootElement(doc);
    assert_text(elem(vol, "name"), "mu-image-1.qcow2");
    assert_text(elem(vol, "capacity"), "196616");
    assert_attr(elem(vol, "capacity"), "unit", "bytes");
    assert_text(elem(vol, "allocation"), "0");
    assert_attr(elem(elem(vol, "target"), "format"), "type", "qcow2");
    assert_null(elem(vol, "backingStore"));
    xmlFreeDoc(doc);
    free(xml);

    xml = mu_virt_volume_xml("mu-" UUID ".qcow2", "qcow2", UINT64_C(10) << 30, "/p/mu-image-1.raw",
                             "raw");
    doc = parse_ok(xml);
    vol = xmlDocGetRootElement(doc);
    assert_text(elem(vol, "capacity"), "10737418240");
    xmlNodePtr bs = elem(vol, "backingStore");
    assert_text(elem(bs, "path"), "/p/mu-image-1.raw");
    assert_attr(elem(bs, "format"), "type", "raw");
    xmlFreeDoc(doc);

    char path[64];
    assert_int_equal(mu_virt_vol_backing_path(xml, path, sizeof path), 1);
    assert_string_equal(path, "/p/mu-image-1.raw");
    free(xml);
    assert_int_equal(mu_virt_vol_backing_path("<volume><name>x</name></volume>", path, 64), 0);
    assert_int_equal(mu_virt_vol_backing_path("<volume><backingStore/></volume>", path, 64), 0);
    assert_int_equal(mu_virt_vol_backing_path("<pool/>", path, 64), -1);
    assert_int_equal(mu_virt_vol_backing_path("<volume", path, 64), -1);

    assert_true(mu_virt_vol_name_valid("mu-image-12.qcow2"));
    assert_true(mu_virt_vol_name_valid("mu-" UUID ".qcow2"));
    const char *bad[] = {"", ".hidden", "-x", "a..b", "a/b", "a b", "a'b", "a<b", "é", "a\n"};
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++)
        assert_false(mu_virt_vol_name_valid(bad[i]));
    char big[300];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_false(mu_virt_vol_name_valid(big));
    assert_true(mu_virt_format_valid("qcow2"));
    assert_true(mu_virt_format_valid("raw"));
    assert_false(mu_virt_format_valid("vmdk"));
    assert_false(mu_virt_format_valid("QCOW2"));
    assert_false(mu_virt_format_valid(NULL));
}

static void test_metadata_parse(void **state)
{
    (void)state;
    int64_t vm = 0, tenant = 0;
    /* As virDomainGetMetadata hands it back (namespace dropped). */
    assert_int_equal(mu_virt_metadata_parse("<vm vm-id=\"12\" tenant-id=\"3\">\n"
                                            "  <name>x</name>\n</vm>\n",
                                            &vm, &tenant),
                     0);
    assert_int_equal(vm, 12);
    assert_int_equal(tenant, 3);
    assert_int_equal(mu_virt_metadata_parse("<mu:vm xmlns:mu=\"" MU_VIRT_NS "\" vm-id=\"5\" "
                                            "tenant-id=\"9\"/>",
                                            &vm, &tenant),
                     0);
    assert_int_equal(vm, 5);
    assert_int_equal(tenant, 9);
    const char *bad[] = {
        "<vm vm-id=\"x\" tenant-id=\"3\"/>",
        "<vm vm-id=\"-1\" tenant-id=\"3\"/>",
        "<vm vm-id=\"0\" tenant-id=\"3\"/>",
        "<vm vm-id=\"1\"/>",
        "<vm vm-id=\"99999999999999999999\" tenant-id=\"1\"/>",
        "<other vm-id=\"1\" tenant-id=\"1\"/>",
        "<o:vm xmlns:o=\"urn:other\" vm-id=\"1\" tenant-id=\"1\"/>",
        "<vm vm-id=\"1\" tenant-id=\"1\"",
        "",
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++) {
        vm = tenant = -7;
        assert_int_equal(mu_virt_metadata_parse(bad[i], &vm, &tenant), -1);
        assert_int_equal(vm, -7);
    }
    assert_int_equal(mu_virt_metadata_parse(NULL, &vm, &tenant), -1);
}

static void test_caps_parse(void **state)
{
    (void)state;
    const char *kvm = "<capabilities><host><cpu><arch>x86_64</arch><model>Skylake</model>"
                      "<feature name='ss'/><feature name='vmx'/></cpu></host>"
                      "<guest><os_type>hvm</os_type><arch name='i686'><domain type='qemu'/>"
                      "<domain type='kvm'/></arch></guest>"
                      "<guest><os_type>hvm</os_type><arch name='x86_64'><wordsize>64</wordsize>"
                      "<domain type='qemu'/><domain type='kvm'/></arch></guest>"
                      "</capabilities>";
    assert_int_equal(mu_virt_caps_kvm(kvm), 1);
    /* /dev/kvm present (libvirt offers kvm) but the CPU hides vmx/svm: a KVM guest would
     * never run, so the node counts as emulation only (seen on nested test machines). */
    const char *hidden = "<capabilities><host><cpu><arch>x86_64</arch><model>kvm64</model>"
                         "</cpu></host>"
                         "<guest><os_type>hvm</os_type><arch name='x86_64'>"
                         "<domain type='qemu'/><domain type='kvm'/></arch></guest>"
                         "</capabilities>";
    assert_int_equal(mu_virt_caps_kvm(hidden), 0);
    const char *tcg = "<capabilities><guest><os_type>hvm</os_type><arch name='x86_64'>"
                      "<domain type='qemu'/></arch></guest></capabilities>";
    assert_int_equal(mu_virt_caps_kvm(tcg), 0);
    const char *kvm_i686_only = "<capabilities><guest><os_type>hvm</os_type><arch name='i686'>"
                                "<domain type='kvm'/></arch></guest>"
                                "<guest><os_type>hvm</os_type><arch name='x86_64'>"
                                "<domain type='qemu'/></arch></guest></capabilities>";
    assert_int_equal(mu_virt_caps_kvm(kvm_i686_only), 0);
    const char *kvm_xen = "<capabilities><guest><os_type>xen</os_type><arch name='x86_64'>"
                          "<domain type='kvm'/></arch></guest></capabilities>";
    assert_int_equal(mu_virt_caps_kvm(kvm_xen), 0);
    assert_int_equal(mu_virt_caps_kvm("<capabilities/>"), 0);
    assert_int_equal(mu_virt_caps_kvm("<domain/>"), -1);
    assert_int_equal(mu_virt_caps_kvm("<capabilities>"), -1);
    assert_int_equal(mu_virt_caps_kvm(NULL), -1);
}

static void test_uuid(void **state)
{
    (void)state;
    enum { N = 2000 };
    char(*ids)[MU_UUID_LEN + 1] = mu_xcalloc(N, sizeof *ids);
    for (size_t i = 0; i < N; i++) {
        mu_uuid_generate(ids[i]);
        assert_int_equal(strlen(ids[i]), MU_UUID_LEN);
        assert_true(mu_uuid_valid(ids[i]));
        assert_int_equal(ids[i][14], '4');
        assert_non_null(strchr("89ab", ids[i][19]));
    }
    for (size_t i = 1; i < N; i++)
        assert_string_not_equal(ids[i], ids[0]);
    free(ids);
    assert_false(mu_uuid_valid(NULL));
    assert_true(mu_uuid_valid(UUID));
}

static void test_uri_valid(void **state)
{
    (void)state;
    const char *good[] = {
        "qemu:///system",
        "qemu:///session",
        "test:///default",
        "test:///var/lib/mutualis/node1.xml",
        "qemu+ssh://mu-node1@127.0.0.1:2222/session?keyfile=/run/k/client_key&no_verify=1",
        "qemu+libssh://root@node-2.example.org/system?known_hosts=/etc/k&sshauth=privkey",
        "qemu+tls://[fd00::1]:16514/system",
        "qemu+tcp://10.0.0.2/system",
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(good); i++)
        assert_true(mu_virt_uri_valid(good[i]));
    const char *bad[] = {
        NULL,
        "",
        "xen:///system",
        "qemu+ext:///system?command=/bin/sh",
        "qemu+unix:///system",
        "lxc:///",
        "qemu://",
        "qemu:///system; rm -rf /",
        "qemu+ssh://a@b/system?keyfile=$(id)",
        "qemu+ssh://a@b/system?keyfile=`id`",
        "qemu+ssh://a b@c/system",
        "qemu+ssh://a@b/system?x='y'",
        "qemu+ssh://a@b/system?x=\"y\"",
        "qemu+ssh://a@b/system|x",
        "qemu+ssh://a@b/system\n",
        "qemu+ssh://a@b/system#x",
        "QEMU:///system",
    };
    for (size_t i = 0; i < MU_ARRAY_LEN(bad); i++)
        assert_false(mu_virt_uri_valid(bad[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_baseline),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_hostile_names_are_text),
        cmocka_unit_test(test_hostile_paths_refused),
        cmocka_unit_test(test_cmdline),
        cmocka_unit_test(test_numbers_and_ids),
        cmocka_unit_test(test_pool_and_volume_xml),
        cmocka_unit_test(test_metadata_parse),
        cmocka_unit_test(test_caps_parse),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_uri_valid),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    xmlCleanupParser();
    return r;
}
