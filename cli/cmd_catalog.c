/* flavor list | show | create | delete; image list | show | create | upload | delete;
 * group list | create | delete. An image is declared (name, format, SHA-256 computed here),
 * then its file is streamed to the controller; this file is the CLI's only GnuTLS user. */
#include "cli.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mutualis/json.h"

#define HASH_CHUNK    ((size_t)1 << 20)
#define PATH_CHARS    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-"
#define CMDLINE_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 =._/:,-"

/* ---- flavors ------------------------------------------------------------------------------ */

static const struct mu_cli_col flavor_list_cols[] = {
    {"ID", "id", 0},           {"NAME", "name", 32},        {"VCPUS", "vcpus", 0},
    {"RAM MIB", "ram_mib", 0}, {"DISK GIB", "disk_gib", 0}, {"CREATED", "created_at", 0},
};

static const struct mu_cli_col flavor_show_cols[] = {
    {"id", "id", 0},
    {"name", "name", 0},
    {"vcpus", "vcpus", 0},
    {"ram (MiB)", "ram_mib", 0},
    {"disk (GiB)", "disk_gib", 0},
    {"created", "created_at", 0},
};

static int run_flavor_list(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return mu_cli_list_whole(cli, "/v1/flavors", "flavors", flavor_list_cols,
                             MU_ARRAY_LEN(flavor_list_cols), NULL);
}

static int run_flavor_show(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the flavor ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = mu_xasprintf("/v1/flavors/%" PRId64, id);
    return mu_cli_object(cli, "GET", path, NULL, flavor_show_cols, MU_ARRAY_LEN(flavor_show_cols));
}

static const struct mu_cli_opt flavor_create_opts[] = {
    {"--name", MU_CLI_OPT_IDENT, "NAME", "flavor name ([a-z0-9._-]), e.g. small", true, NULL, 0, 0},
    {"--vcpus", MU_CLI_OPT_INT, "N", "virtual CPUs", true, NULL, 1, 256},
    {"--ram", MU_CLI_OPT_INT, "MIB", "memory in MiB", true, NULL, 64, 4 << 20},
    {"--disk", MU_CLI_OPT_INT, "GIB", "disk in GiB", true, NULL, 1, 65536},
};

static int run_flavor_create(struct mu_cli *cli, const struct mu_cli_args *a)
{
    cJSON *body = mu_json_obj();
    mu_json_add_str(body, "name", mu_cli_arg_str(a, "--name"));
    mu_json_add_i64(body, "vcpus", mu_cli_arg(a, "--vcpus")->num);
    mu_json_add_i64(body, "ram_mib", mu_cli_arg(a, "--ram")->num);
    mu_json_add_i64(body, "disk_gib", mu_cli_arg(a, "--disk")->num);
    int r = mu_cli_object(cli, "POST", "/v1/flavors", body, flavor_show_cols,
                          MU_ARRAY_LEN(flavor_show_cols));
    cJSON_Delete(body);
    return r;
}

static int run_flavor_delete(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the flavor ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = mu_xasprintf("/v1/flavors/%" PRId64, id);
    MU_AUTOFREE char *done = mu_xasprintf("deleted flavor %" PRId64, id);
    return mu_cli_delete(cli, path, done);
}

static const struct mu_cli_cmd flavor_cmds[] = {
    {"list", NULL, "List VM sizes", 0, NULL, 0, run_flavor_list},
    {"show", "ID", "Show a VM size", 1, NULL, 0, run_flavor_show},
    {"create", NULL, "Create a VM size", 0, flavor_create_opts, MU_ARRAY_LEN(flavor_create_opts),
     run_flavor_create},
    {"delete", "ID", "Delete a VM size no VM uses", 1, NULL, 0, run_flavor_delete},
};

const struct mu_cli_group mu_cli_group_flavor = {
    "flavor",
    "Manage flavors: the sizes of VMs (vCPU, RAM, disk)",
    flavor_cmds,
    MU_ARRAY_LEN(flavor_cmds),
};

/* ---- images: local checks ------------------------------------------------------------------ */

static const char *const formats[] = {"qcow2", "raw", NULL};

int mu_cli_sha256_file(FILE *f, char ret_hex[65], int64_t *ret_size)
{
    gnutls_hash_hd_t h;
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0) {
        errno = ENOSYS;
        return -1;
    }
    unsigned char *buf = mu_xmalloc(HASH_CHUNK);
    int64_t total = 0;
    size_t n;
    while ((n = fread(buf, 1, HASH_CHUNK, f)) > 0) {
        gnutls_hash(h, buf, n);
        total += (int64_t)n;
    }
    int saved = ferror(f) ? (errno ? errno : EIO) : 0;
    unsigned char digest[32];
    gnutls_hash_deinit(h, digest);
    free(buf);
    if (saved) {
        errno = saved;
        return -1;
    }
    mu_hex_encode(digest, sizeof(digest), ret_hex);
    *ret_size = total;
    return 0;
}

const char *mu_cli_image_header_problem(const unsigned char *hdr, size_t n, const char *format)
{
    bool qcow2 = n >= 4 && memcmp(hdr, "QFI\xfb", 4) == 0;
    if (strcmp(format, "qcow2") != 0)
        return qcow2 ? "the file is a qcow2 image: declare it with --format qcow2" : NULL;
    if (!qcow2)
        return "the file is not a qcow2 image (no QFI\\xfb magic); declare a raw image with "
               "--format raw";
    if (n < 16)
        return "the file is too short to be a qcow2 image";
    for (size_t i = 8; i < 16; i++) {
        if (hdr[i] != 0)
            return "this qcow2 image names a backing file; make it self-contained first "
                   "(qemu-img convert -O qcow2 in.qcow2 out.qcow2)";
    }
    return NULL;
}

/* An image file opened, checked against its format and hashed, ready to be sent. */
struct image_file {
    const char *name;
    FILE *f;
    int64_t size;
    char sha256[65];
};

static void image_file_close(struct image_file *img)
{
    if (img->f)
        fclose(img->f);
    img->f = NULL;
}

/* A local file problem: one line, nothing sent, the usage status (like tenant import). */
static int file_error(const char *fmt, ...) MU_PRINTF(1, 2);
static int file_error(const char *fmt, ...)
{
    va_list ap;
    fputs("mutualis: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    return MU_CLI_EXIT_USAGE;
}

/* Opens path, checks that it is a non-empty regular file whose first bytes fit format, and
 * hashes it. Returns an exit status; on success img is open at offset 0. */
static int image_file_open(const struct mu_cli *cli, const char *path, const char *format,
                           struct image_file *img)
{
    struct stat st;
    unsigned char hdr[16];
    int r = MU_CLI_EXIT_USAGE;

    memset(img, 0, sizeof(*img));
    img->name = path;
    img->f = fopen(path, "rbe");
    if (!img->f)
        return file_error("cannot read %s: %s", path, strerror(errno));
    if (fstat(fileno(img->f), &st) != 0) {
        r = file_error("cannot read %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        r = file_error("%s is not a regular file", path);
        goto fail;
    }
    if (st.st_size == 0) {
        r = file_error("%s is empty", path);
        goto fail;
    }
    size_t n = fread(hdr, 1, sizeof(hdr), img->f);
    const char *problem = mu_cli_image_header_problem(hdr, n, format);
    if (problem) {
        r = file_error("%s: %s", path, problem);
        goto fail;
    }
    rewind(img->f);
    bool tty = !cli->json && isatty(STDERR_FILENO);
    if (tty && st.st_size >= ((off_t)64 << 20))
        fprintf(stderr, "computing the SHA-256 of %s (%" PRId64 " MiB)...\n", path,
                (int64_t)st.st_size >> 20);
    if (mu_cli_sha256_file(img->f, img->sha256, &img->size) < 0) {
        r = file_error("cannot read %s: %s", path, strerror(errno));
        goto fail;
    }
    if (img->size != (int64_t)st.st_size) {
        r = file_error("%s changed while it was being read; try again once it is complete", path);
        goto fail;
    }
    rewind(img->f);
    return MU_CLI_EXIT_OK;
fail:
    image_file_close(img);
    return r;
}

/* ---- images: commands ---------------------------------------------------------------------- */

static const struct mu_cli_col image_list_cols[] = {
    {"ID", "id", 0},         {"NAME", "name", 32},         {"FORMAT", "format", 0},
    {"STATUS", "status", 0}, {"SIZE", "_size", 0},         {"SHA256", "sha256", 16},
    {"BOOT", "_boot", 0},    {"CREATED", "created_at", 0},
};

static const struct mu_cli_col image_show_cols[] = {
    {"id", "id", 0},
    {"name", "name", 0},
    {"format", "format", 0},
    {"status", "status", 0},
    {"size", "_size", 0},
    {"sha256", "sha256", 0},
    {"kernel", "boot.kernel", 0},
    {"initrd", "boot.initrd", 0},
    {"cmdline", "boot.cmdline", 0},
    {"created", "created_at", 0},
};

/* Display members: "_size" ("12.5 MiB (13107200 bytes)" in fields, shorter in tables) and
 * "_boot" ("direct kernel" or "disk"). */
static void image_cells(cJSON *img, bool exact)
{
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(img, "size_bytes");
    int64_t bytes = 0;
    char text[96] = "-";
    if (size && mu_json_int_value(size, 0, INT64_MAX, &bytes) == 0 && bytes > 0) {
        if (bytes < ((int64_t)1 << 20))
            snprintf(text, sizeof(text), "%" PRId64 " bytes", bytes);
        else if (bytes < ((int64_t)1 << 30))
            snprintf(text, sizeof(text), "%.1f MiB", (double)bytes / (1 << 20));
        else
            snprintf(text, sizeof(text), "%.2f GiB", (double)bytes / (1 << 30));
        if (exact && bytes >= ((int64_t)1 << 20)) {
            size_t used = strlen(text);
            snprintf(text + used, sizeof(text) - used, " (%" PRId64 " bytes)", bytes);
        }
    }
    cJSON_DeleteItemFromObjectCaseSensitive(img, "_size");
    mu_json_add_str(img, "_size", text);
    const cJSON *boot = cJSON_GetObjectItemCaseSensitive(img, "boot");
    cJSON_DeleteItemFromObjectCaseSensitive(img, "_boot");
    mu_json_add_str(img, "_boot", cJSON_IsObject(boot) ? "kernel" : "disk");
}

static void image_row(cJSON *img)
{
    image_cells(img, false);
}

static int print_image(const struct mu_cli *cli, cJSON *img)
{
    if (cli->json) {
        mu_cli_print_json(img);
    } else {
        image_cells(img, true);
        mu_cli_print_fields(image_show_cols, MU_ARRAY_LEN(image_show_cols), img);
    }
    return MU_CLI_EXIT_OK;
}

static int run_image_list(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return mu_cli_list_whole(cli, "/v1/images", "images", image_list_cols,
                             MU_ARRAY_LEN(image_list_cols), image_row);
}

static int run_image_show(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the image ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = mu_xasprintf("/v1/images/%" PRId64, id);
    cJSON *img = NULL;
    r = mu_cli_fetch_object(cli, "GET", path, NULL, &img);
    if (r == MU_CLI_EXIT_OK)
        r = print_image(cli, img);
    cJSON_Delete(img);
    return r;
}

/* Streams the file to PUT /v1/images/{id}/data and prints the image the server answers. */
static int upload(const struct mu_cli *cli, int64_t id, struct image_file *img)
{
    struct mu_cli_http_file file = {
        .f = img->f,
        .size = img->size,
        .name = img->name,
        .progress = !cli->json && isatty(STDERR_FILENO),
    };
    MU_AUTOFREE char *path = mu_xasprintf("/v1/images/%" PRId64 "/data", id);
    cJSON *res = NULL;
    int r = mu_cli_api_send_file(cli, "PUT", path, &file, &res);
    if (r == MU_CLI_EXIT_OK && !cJSON_IsObject(res))
        r = mu_cli_fail("unexpected answer from PUT %s: not a JSON object", path);
    if (r == MU_CLI_EXIT_OK)
        r = print_image(cli, res);
    cJSON_Delete(res);
    return r;
}

static bool boot_path_ok(const char *p)
{
    return p[0] == '/' && !strstr(p, "..") && strlen(p) < 4096 &&
           strspn(p, PATH_CHARS) == strlen(p);
}

static const struct mu_cli_opt image_create_opts[] = {
    {"--name", MU_CLI_OPT_IDENT, "NAME", "image name ([a-z0-9._-]), e.g. debian-12", true, NULL, 0,
     0},
    {"--format", MU_CLI_OPT_CHOICE, "FORMAT", "format of the file (never guessed)", true, formats,
     0, 0},
    {"--file", MU_CLI_OPT_STR, "PATH", "the image file to upload", true, NULL, 0, 0},
    {"--kernel", MU_CLI_OPT_STR, "PATH", "direct kernel boot: kernel path on the nodes", false,
     NULL, 0, 0},
    {"--initrd", MU_CLI_OPT_STR, "PATH", "initramfs path on the nodes (with --kernel)", false, NULL,
     0, 0},
    {"--cmdline", MU_CLI_OPT_STR, "TEXT", "kernel command line (with --kernel)", false, NULL, 0, 0},
};

static int run_image_create(struct mu_cli *cli, const struct mu_cli_args *a)
{
    const char *format = mu_cli_arg_str(a, "--format");
    const char *kernel = mu_cli_arg_str(a, "--kernel");
    const char *initrd = mu_cli_arg_str(a, "--initrd");
    const char *cmdline = mu_cli_arg_str(a, "--cmdline");
    struct image_file img;

    if (!kernel && (initrd || cmdline))
        return mu_cli_usage_error(cli, "--initrd and --cmdline need --kernel");
    if ((kernel && !boot_path_ok(kernel)) || (initrd && !boot_path_ok(initrd)))
        return mu_cli_usage_error(cli, "--kernel and --initrd must be absolute paths of letters, "
                                       "digits, '.', '_', '-' and '/'");
    if (cmdline && (strlen(cmdline) >= 1024 || strspn(cmdline, CMDLINE_CHARS) != strlen(cmdline)))
        return mu_cli_usage_error(cli, "--cmdline may hold letters, digits, spaces and = . _ / : , "
                                       "- (at most 1023 characters)");
    int r = image_file_open(cli, mu_cli_arg_str(a, "--file"), format, &img);
    if (r != MU_CLI_EXIT_OK)
        return r;

    cJSON *body = mu_json_obj();
    mu_json_add_str(body, "name", mu_cli_arg_str(a, "--name"));
    mu_json_add_str(body, "format", format);
    mu_json_add_str(body, "sha256", img.sha256);
    if (kernel) {
        cJSON *boot = mu_json_obj();
        mu_json_add_str(boot, "kernel", kernel);
        if (initrd)
            mu_json_add_str(boot, "initrd", initrd);
        if (cmdline)
            mu_json_add_str(boot, "cmdline", cmdline);
        cJSON_AddItemToObject(body, "boot", boot);
    }
    cJSON *declared = NULL;
    r = mu_cli_fetch_object(cli, "POST", "/v1/images", body, &declared);
    cJSON_Delete(body);
    if (r != MU_CLI_EXIT_OK)
        goto out;
    int64_t id = 0;
    const cJSON *idv = cJSON_GetObjectItemCaseSensitive(declared, "id");
    if (!idv || mu_json_int_value(idv, 1, INT64_MAX, &id) < 0) {
        r = mu_cli_fail("unexpected answer from POST /v1/images: no image id");
        goto out;
    }
    r = upload(cli, id, &img);
    if (r != MU_CLI_EXIT_OK)
        fprintf(stderr,
                "mutualis: image %" PRId64 " is declared but has no data yet: retry with "
                "'mutualis image upload %" PRId64 " --file %s', or remove it with "
                "'mutualis image delete %" PRId64 "'\n",
                id, id, img.name, id);
out:
    cJSON_Delete(declared);
    image_file_close(&img);
    return r;
}

static const struct mu_cli_opt image_upload_opts[] = {
    {"--file", MU_CLI_OPT_STR, "PATH", "the image file declared with 'image create'", true, NULL, 0,
     0},
};

static int run_image_upload(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the image ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    const char *file = mu_cli_arg_str(a, "--file");
    struct image_file img = {.name = file};
    img.f = fopen(file, "rbe");
    if (!img.f)
        return file_error("cannot read %s: %s", file, strerror(errno));
    image_file_close(&img);

    /* The declared format decides the local checks; the declared checksum must be this
     * file's, or the server would refuse it after the whole transfer. */
    MU_AUTOFREE char *path = mu_xasprintf("/v1/images/%" PRId64, id);
    cJSON *declared = NULL;
    r = mu_cli_fetch_object(cli, "GET", path, NULL, &declared);
    if (r != MU_CLI_EXIT_OK)
        return r;
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(declared, "format");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(declared, "status");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(declared, "sha256");
    if (!cJSON_IsString(format) || !cJSON_IsString(status) || !cJSON_IsString(sha)) {
        r = mu_cli_fail("unexpected answer from GET %s: no format, status or sha256", path);
        goto out;
    }
    if (strcmp(status->valuestring, "uploading") != 0) {
        MU_AUTOFREE char *st = mu_cli_cell_text(status);
        r = mu_cli_fail("image %" PRId64 " is already uploaded (status %s)", id, st);
        goto out;
    }
    r = image_file_open(cli, file, format->valuestring, &img);
    if (r != MU_CLI_EXIT_OK)
        goto out;
    if (strcmp(img.sha256, sha->valuestring) != 0) {
        MU_AUTOFREE char *want = mu_cli_cell_text(sha);
        r = mu_cli_fail("%s has SHA-256 %s, but image %" PRId64 " was declared with %s: not the "
                        "same file",
                        file, img.sha256, id, want);
        goto out;
    }
    r = upload(cli, id, &img);
out:
    image_file_close(&img);
    cJSON_Delete(declared);
    return r;
}

static int run_image_delete(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the image ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = mu_xasprintf("/v1/images/%" PRId64, id);
    MU_AUTOFREE char *done = mu_xasprintf("deleted image %" PRId64, id);
    return mu_cli_delete(cli, path, done);
}

static const struct mu_cli_cmd image_cmds[] = {
    {"list", NULL, "List base images", 0, NULL, 0, run_image_list},
    {"show", "ID", "Show a base image", 1, NULL, 0, run_image_show},
    {"create", NULL, "Declare a base image and upload its file", 0, image_create_opts,
     MU_ARRAY_LEN(image_create_opts), run_image_create},
    {"upload", "ID", "Upload the file of a declared image again", 1, image_upload_opts,
     MU_ARRAY_LEN(image_upload_opts), run_image_upload},
    {"delete", "ID", "Delete a base image no VM uses", 1, NULL, 0, run_image_delete},
};

const struct mu_cli_group mu_cli_group_image = {
    "image",
    "Manage base images: declared with a format and SHA-256, uploaded once",
    image_cmds,
    MU_ARRAY_LEN(image_cmds),
};

/* ---- anti-affinity groups -------------------------------------------------------------------- */

static const struct mu_cli_col group_cols[] = {
    {"ID", "id", 0},
    {"TENANT", "tenant_id", 0},
    {"NAME", "name", 32},
    {"CREATED", "created_at", 0},
};

static const struct mu_cli_col group_show_cols[] = {
    {"id", "id", 0},
    {"tenant", "tenant_id", 0},
    {"name", "name", 0},
    {"created", "created_at", 0},
};

static int run_group_list(struct mu_cli *cli, const struct mu_cli_args *a)
{
    return mu_cli_list_whole(cli, "/v1/groups", "groups", group_cols, MU_ARRAY_LEN(group_cols),
                             NULL);
}

static const struct mu_cli_opt group_create_opts[] = {
    {"--name", MU_CLI_OPT_IDENT, "NAME", "group name ([a-z0-9._-])", true, NULL, 0, 0},
    {"--tenant", MU_CLI_OPT_ID, "ID", "tenant whose VMs the group spreads", true, NULL, 0, 0},
};

static int run_group_create(struct mu_cli *cli, const struct mu_cli_args *a)
{
    cJSON *body = mu_json_obj();
    mu_json_add_str(body, "name", mu_cli_arg_str(a, "--name"));
    mu_json_add_i64(body, "tenant_id", mu_cli_arg(a, "--tenant")->num);
    int r = mu_cli_object(cli, "POST", "/v1/groups", body, group_show_cols,
                          MU_ARRAY_LEN(group_show_cols));
    cJSON_Delete(body);
    return r;
}

static int run_group_delete(struct mu_cli *cli, const struct mu_cli_args *a)
{
    int64_t id;
    int r = mu_cli_pos_id(cli, a, "the group ID", &id);
    if (r != MU_CLI_EXIT_OK)
        return r;
    MU_AUTOFREE char *path = mu_xasprintf("/v1/groups/%" PRId64, id);
    MU_AUTOFREE char *done = mu_xasprintf("deleted group %" PRId64, id);
    return mu_cli_delete(cli, path, done);
}

static const struct mu_cli_cmd group_cmds[] = {
    {"list", NULL, "List anti-affinity groups", 0, NULL, 0, run_group_list},
    {"create", NULL, "Create an anti-affinity group: its VMs go to distinct nodes", 0,
     group_create_opts, MU_ARRAY_LEN(group_create_opts), run_group_create},
    {"delete", "ID", "Delete an anti-affinity group", 1, NULL, 0, run_group_delete},
};

const struct mu_cli_group mu_cli_group_affinity = {
    "group",
    "Manage anti-affinity groups: VMs of one group never share a node",
    group_cmds,
    MU_ARRAY_LEN(group_cmds),
};
