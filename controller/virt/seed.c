/* cloud-init NoCloud seeds, built in memory with libisofs: an ISO 9660 volume labelled
 * "cidata" (Rock Ridge and Joliet names, so "meta-data" and "network-config" keep their
 * names) holding meta-data, network-config (version 2) and, when the VM has one, user-data.
 *
 * The YAML is generated, never pasted: every value is checked against an allow-list first
 * (UUID, host name, MAC, dotted IPv4, integers) and written as a double-quoted scalar, so
 * no value can open a new key. The user-data is the tenant's own file, copied verbatim
 * into its own ISO entry (cloud-init reads it as a whole); it is only size- and NUL-checked.
 * Same inputs give byte-identical images (fixed timestamps, fixed volume UUID). */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* struct burn_source comes from libburn unless libisofs is told to declare it. */
#define LIBISOFS_WITHOUT_LIBBURN 1
#include <libisofs/libisofs.h>

#include "virt/virt_int.h"

/* 2023-11-14 22:13:20 UTC: every timestamp in the image (reproducible output). */
#define SEED_EPOCH ((time_t)1700000000)

static pthread_once_t iso_once = PTHREAD_ONCE_INIT;
static int iso_once_rc;

static void iso_once_init(void)
{
    iso_once_rc = iso_init();
    if (iso_once_rc >= 0) {
        /* libisofs prints to stderr by default; we report through struct mu_err. */
        char never[] = "NEVER", fatal[] = "FATAL", id[] = "mutualis";
        iso_set_msgs_severities(never, fatal, id);
    }
}

/* Host name as the store allows VM names: [a-z0-9][a-z0-9-]{0,62}. */
static bool hostname_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63 || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

static int nic_check(const struct mu_nic *n, size_t i, struct mu_err *err)
{
    uint32_t ip, net, gw;
    int prefix;
    if (!mu_virt_mac_valid(n->mac))
        return mu_err_setf(err, MU_EINVAL, "mac", "NIC %zu: mac must be six lower-case hex pairs",
                           i);
    if (mu_virt_ipv4_parse(n->ip, &ip) < 0)
        return mu_err_setf(err, MU_EINVAL, "ip", "NIC %zu: ip must be a dotted IPv4 address", i);
    if (n->prefix < 8 || n->prefix > 30)
        return mu_err_setf(err, MU_EINVAL, "prefix", "NIC %zu: prefix must be 8..30", i);
    if (n->mtu < MU_VIRT_MTU_MIN || n->mtu > MU_VIRT_MTU_MAX)
        return mu_err_setf(err, MU_EINVAL, "mtu", "NIC %zu: mtu must be %d..%d", i, MU_VIRT_MTU_MIN,
                           MU_VIRT_MTU_MAX);
    if (n->gateway[0] && mu_virt_ipv4_parse(n->gateway, &gw) < 0)
        return mu_err_setf(err, MU_EINVAL, "gateway",
                           "NIC %zu: gateway must be empty or a dotted IPv4 address", i);
    if (n->network_cidr[0] && mu_virt_cidr_parse(n->network_cidr, &net, &prefix) < 0)
        return mu_err_setf(err, MU_EINVAL, "network_cidr",
                           "NIC %zu: network_cidr must be a.b.c.d/p with host bits zero", i);
    if (n->idx < 0 || n->idx > 63)
        return mu_err_setf(err, MU_EINVAL, "idx", "NIC %zu: idx must be 0..63", i);
    return 0;
}

int mu_virt_seed_texts(const struct mu_virt_seed *s, struct mu_virt_seed_texts *ret,
                       struct mu_err *err)
{
    if (!s || !mu_uuid_valid(s->instance_id))
        return mu_err_setf(err, MU_EINVAL, "instance_id",
                           "instance_id must be the VM's lower-case UUID");
    if (!hostname_valid(s->hostname))
        return mu_err_setf(err, MU_EINVAL, "hostname",
                           "hostname must be 1..63 of a-z 0-9 and -, not starting with -");
    if (s->n_nics > 64)
        return mu_err_setf(err, MU_EINVAL, "nics", "at most 64 NICs");
    for (size_t i = 0; i < s->n_nics; i++) {
        int r = nic_check(&s->nics[i], i, err);
        if (r < 0)
            return r;
    }
    if (s->user_data && strlen(s->user_data) > MU_VIRT_USER_DATA_MAX)
        return mu_err_setf(err, MU_EINVAL, "user_data", "user_data is larger than %d bytes",
                           MU_VIRT_USER_DATA_MAX);

    struct mu_buf meta, net;
    mu_buf_init(&meta);
    mu_buf_printf(&meta, "instance-id: \"%s\"\nlocal-hostname: \"%s\"\n", s->instance_id,
                  s->hostname);
    mu_buf_init(&net);
    mu_buf_puts(&net, "version: 2\n");
    if (s->n_nics > 0)
        mu_buf_puts(&net, "ethernets:\n");
    for (size_t i = 0; i < s->n_nics; i++) {
        const struct mu_nic *n = &s->nics[i];
        mu_buf_printf(&net,
                      "  eth%d:\n"
                      "    match:\n"
                      "      macaddress: \"%s\"\n"
                      "    set-name: \"eth%d\"\n"
                      "    mtu: %d\n"
                      "    addresses: [\"%s/%d\"]\n",
                      n->idx, n->mac, n->idx, n->mtu, n->ip, n->prefix);
        if (n->gateway[0])
            mu_buf_printf(&net, "    gateway4: \"%s\"\n", n->gateway);
    }
    ret->meta_data = mu_buf_steal(&meta);
    ret->network_config = mu_buf_steal(&net);
    ret->user_data = mu_xstrdup(s->user_data);
    return 0;
}

void mu_virt_seed_texts_clear(struct mu_virt_seed_texts *t)
{
    if (!t)
        return;
    free(t->meta_data);
    free(t->network_config);
    free(t->user_data);
    memset(t, 0, sizeof *t);
}

static int iso_fail(int rc, const char *what, struct mu_err *err)
{
    return mu_err_set(err, MU_EINTERNAL, "cannot build the seed ISO: %s (libisofs error %d)", what,
                      rc);
}

/* Adds name with a copy of text (the stream owns the copy). */
static int add_file(IsoImage *img, const char *name, const char *text, struct mu_err *err)
{
    size_t len = strlen(text);
    unsigned char *copy = mu_xmalloc(len ? len : 1);
    memcpy(copy, text, len);
    IsoStream *st = NULL;
    int rc = iso_memory_stream_new(copy, len, &st);
    if (rc < 0) {
        free(copy);
        return iso_fail(rc, "memory stream", err);
    }
    IsoFile *f = NULL;
    rc = iso_image_add_new_file(img, iso_image_get_root(img), name, st, &f);
    if (rc < 0) {
        iso_stream_unref(st); /* taken by the file node only on success */
        return iso_fail(rc, name, err);
    }
    IsoNode *node = (IsoNode *)f;
    iso_node_set_permissions(node, 0444);
    iso_node_set_uid(node, 0);
    iso_node_set_gid(node, 0);
    iso_node_set_mtime(node, SEED_EPOCH);
    iso_node_set_atime(node, SEED_EPOCH);
    iso_node_set_ctime(node, SEED_EPOCH);
    return 0;
}

int mu_virt_seed_build(const struct mu_virt_seed *s, unsigned char **ret_buf, size_t *ret_len,
                       struct mu_err *err)
{
    struct mu_virt_seed_texts t = {0};
    IsoImage *img = NULL;
    IsoWriteOpts *opts = NULL;
    struct burn_source *bs = NULL;
    struct mu_buf out;
    int r = mu_virt_seed_texts(s, &t, err);
    if (r < 0)
        return r;
    mu_buf_init(&out);
    pthread_once(&iso_once, iso_once_init);
    if (iso_once_rc < 0) {
        r = iso_fail(iso_once_rc, "library initialisation", err);
        goto out;
    }
    int rc = iso_image_new("cidata", &img);
    if (rc < 0) {
        r = iso_fail(rc, "new image", err);
        goto out;
    }
    iso_image_set_volume_id(img, "cidata");
    IsoNode *root = (IsoNode *)iso_image_get_root(img);
    iso_node_set_mtime(root, SEED_EPOCH);
    iso_node_set_atime(root, SEED_EPOCH);
    iso_node_set_ctime(root, SEED_EPOCH);
    r = add_file(img, "meta-data", t.meta_data, err);
    if (r == 0)
        r = add_file(img, "network-config", t.network_config, err);
    if (r == 0 && t.user_data)
        r = add_file(img, "user-data", t.user_data, err);
    if (r < 0)
        goto out;

    rc = iso_write_opts_new(&opts, 0);
    if (rc < 0) {
        r = iso_fail(rc, "write options", err);
        goto out;
    }
    iso_write_opts_set_rockridge(opts, 1);
    iso_write_opts_set_joliet(opts, 1);
    /* "cidata" in lower case, as genisoimage writes it and as the guest looks it up. */
    iso_write_opts_set_relaxed_vol_atts(opts, 1);
    /* Joliet names as genisoimage writes them: "meta-data", not "meta-data.;1". */
    iso_write_opts_set_omit_version_numbers(opts, 2);
    iso_write_opts_set_no_force_dots(opts, 2);
    iso_write_opts_set_always_gmt(opts, 1);
    iso_write_opts_set_replace_timestamps(opts, 1);
    iso_write_opts_set_default_timestamp(opts, SEED_EPOCH);
    char vol_uuid[] = "2023111422132000";
    iso_write_opts_set_pvd_times(opts, SEED_EPOCH, SEED_EPOCH, 0, SEED_EPOCH, vol_uuid);
    rc = iso_image_create_burn_source(img, opts, &bs);
    if (rc < 0) {
        r = iso_fail(rc, "writer", err);
        goto out;
    }
    unsigned char block[2048];
    for (;;) {
        int n = bs->read_xt(bs, block, (int)sizeof block);
        if (n < 0) {
            r = iso_fail(n, "writing", err);
            goto out;
        }
        if (n == 0)
            break;
        mu_buf_append(&out, block, (size_t)n);
    }
    if (out.len < 16 * 2048) {
        r = mu_err_set(err, MU_EINTERNAL, "cannot build the seed ISO: %zu bytes is too short",
                       out.len);
        goto out;
    }
    *ret_len = out.len;
    *ret_buf = (unsigned char *)mu_buf_steal(&out);
    r = 0;
out:
    if (bs) {
        bs->free_data(bs);
        free(bs);
    }
    if (opts)
        iso_write_opts_free(opts);
    if (img)
        iso_image_unref(img);
    mu_buf_free(&out);
    mu_virt_seed_texts_clear(&t);
    return r;
}
