/* /v1/flavors, /v1/images, /v1/groups: VM sizes, base images, anti-affinity groups.
 * Images are declared (name, explicit format, SHA-256) and then their bytes are streamed
 * to the controller once (PUT /v1/images/{id}/data); ops/ copies them to each node's pool
 * when first needed there. The format is never guessed: the bytes must match the declared
 * format, and a qcow2 image that names a backing file is refused. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/handlers.h"
#include "mutualis/json.h"
#include "mutualis/validate.h"
#include "store/provision.h"

/* ---- flavors ---------------------------------------------------------------------- */

static cJSON *flavor_json(const struct mu_flavor *f)
{
    cJSON *o = mu_json_obj();
    mu_json_add_i64(o, "id", f->id);
    mu_json_add_str(o, "name", f->name);
    mu_json_add_i64(o, "vcpus", f->vcpus);
    mu_json_add_i64(o, "ram_mib", f->ram_mib);
    mu_json_add_i64(o, "disk_gib", f->disk_gib);
    mu_json_add_time(o, "created_at", f->created_ms);
    return o;
}

int mu_h_flavor_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_flavor *fs = NULL;
    size_t n = 0;
    int r = mu_store_flavor_list(req->app->store, &fs, &n, err);
    if (r < 0)
        return r;
    cJSON *items = mu_json_arr();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(items, flavor_json(&fs[i]));
    resp->json = mu_h_list_answer(items, n, 0, 0);
    mu_flavors_free(fs, n);
    return MU_OK;
}

int mu_h_flavor_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const allowed[] = {"name", "vcpus", "ram_mib", "disk_gib", NULL};
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return err->code;
    struct mu_flavor f = {0};
    const char *name = NULL;
    int r = mu_json_expect_object(body, allowed, "flavor", err);
    if (r >= 0)
        r = mu_json_get_str(body, "name", true, 63, &name, err);
    if (r >= 0 && !mu_ident_valid(name))
        r = mu_err_setf(err, MU_EINVAL, "name",
                        "name must be 1-63 characters of a-z, 0-9, '.', '_' or '-'");
    if (r >= 0)
        r = mu_json_get_i64(body, "vcpus", true, 1, 256, &f.vcpus, err);
    if (r >= 0)
        r = mu_json_get_i64(body, "ram_mib", true, 64, 4 << 20, &f.ram_mib, err);
    if (r >= 0)
        r = mu_json_get_i64(body, "disk_gib", true, 1, 65536, &f.disk_gib, err);
    if (r >= 0)
        f.name = mu_xstrdup(name);
    cJSON_Delete(body);
    if (r < 0)
        return r;
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("flavor:%s", f.name);
    mu_req_audit(req, &rec, 0, target);
    int64_t id = 0;
    r = mu_store_flavor_insert(req->app->store, &f, &rec, &id, err);
    mu_flavor_clear(&f);
    if (r < 0)
        return r;
    struct mu_flavor got = {0};
    if ((r = mu_store_flavor_get(req->app->store, id, &got, err)) < 0)
        return r;
    resp->json = flavor_json(&got);
    resp->status = 201;
    resp->location = mu_xasprintf("/v1/flavors/%lld", (long long)id);
    mu_flavor_clear(&got);
    return MU_OK;
}

int mu_h_flavor_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "flavor", &id, err);
    struct mu_flavor f = {0};
    if (r < 0 || (r = mu_store_flavor_get(req->app->store, id, &f, err)) < 0)
        return r;
    resp->json = flavor_json(&f);
    mu_flavor_clear(&f);
    return MU_OK;
}

int mu_h_flavor_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "flavor", &id, err);
    if (r < 0)
        return r;
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("flavor/%lld", (long long)id);
    mu_req_audit(req, &rec, 0, target);
    if ((r = mu_store_flavor_delete(req->app->store, id, &rec, err)) < 0)
        return r;
    resp->status = 204;
    return MU_OK;
}

/* ---- images ----------------------------------------------------------------------- */

static cJSON *image_json(const struct mu_image *i)
{
    cJSON *o = mu_json_obj();
    mu_json_add_i64(o, "id", i->id);
    mu_json_add_str(o, "name", i->name);
    mu_json_add_str(o, "format", i->format);
    mu_json_add_str(o, "sha256", i->sha256);
    mu_json_add_i64(o, "size_bytes", i->size_bytes);
    mu_json_add_str(o, "status", i->status);
    if (i->kernel) {
        cJSON *b = mu_json_obj();
        mu_json_add_str(b, "kernel", i->kernel);
        mu_json_add_str(b, "initrd", i->initrd);
        mu_json_add_str(b, "cmdline", i->cmdline);
        cJSON_AddItemToObject(o, "boot", b);
    } else {
        mu_json_add_null(o, "boot");
    }
    mu_json_add_time(o, "created_at", i->created_ms);
    return o;
}

static bool path_ok(const char *p)
{
    return p[0] == '/' && !strstr(p, "..") && strlen(p) < 4096 &&
           strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-") ==
               strlen(p);
}

static bool cmdline_ok(const char *p)
{
    return strlen(p) < 1024 &&
           strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 =._/:,-") ==
               strlen(p);
}

static bool hex64(const char *s)
{
    return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

int mu_h_image_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    struct mu_image *is = NULL;
    size_t n = 0;
    int r = mu_store_image_list(req->app->store, &is, &n, err);
    if (r < 0)
        return r;
    cJSON *items = mu_json_arr();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(items, image_json(&is[i]));
    resp->json = mu_h_list_answer(items, n, 0, 0);
    mu_images_free(is, n);
    return MU_OK;
}

int mu_h_image_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const allowed[] = {"name", "format", "sha256", "boot", NULL};
    static const char *const boot_allowed[] = {"kernel", "initrd", "cmdline", NULL};
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return err->code;
    struct mu_image im = {0};
    const char *name = NULL, *format = NULL, *sha = NULL;
    const char *kernel = NULL, *initrd = NULL, *cmdline = NULL;
    const cJSON *boot = NULL;
    int r = mu_json_expect_object(body, allowed, "image", err);
    if (r >= 0)
        r = mu_json_get_str(body, "name", true, 63, &name, err);
    if (r >= 0 && !mu_ident_valid(name))
        r = mu_err_setf(err, MU_EINVAL, "name",
                        "name must be 1-63 characters of a-z, 0-9, '.', '_' or '-'");
    if (r >= 0)
        r = mu_json_get_str(body, "format", true, 8, &format, err);
    if (r >= 0 && strcmp(format, "qcow2") != 0 && strcmp(format, "raw") != 0)
        r = mu_err_setf(err, MU_EINVAL, "format",
                        "format must be qcow2 or raw (it is never guessed from the content)");
    if (r >= 0)
        r = mu_json_get_str(body, "sha256", true, 64, &sha, err);
    if (r >= 0 && !hex64(sha))
        r = mu_err_setf(err, MU_EINVAL, "sha256",
                        "sha256 must be the image's SHA-256 as 64 lower-case hex characters");
    if (r >= 0 && (r = mu_json_get_object(body, "boot", false, &boot, err)) == 0) {
        r = mu_json_expect_object(boot, boot_allowed, "boot", err);
        if (r >= 0)
            r = mu_json_get_str(boot, "kernel", true, 4095, &kernel, err);
        if (r >= 0)
            r = mu_json_get_str(boot, "initrd", false, 4095, &initrd, err);
        if (r >= 0)
            r = mu_json_get_str(boot, "cmdline", false, 1023, &cmdline, err);
        if (r >= 0 && (!path_ok(kernel) || (initrd && !path_ok(initrd))))
            r = mu_err_setf(err, MU_EINVAL, "boot",
                            "boot kernel and initrd must be absolute paths of letters, digits, "
                            "'.', '_', '-' and '/'");
        if (r >= 0 && cmdline && !cmdline_ok(cmdline))
            r = mu_err_setf(err, MU_EINVAL, "boot",
                            "boot cmdline may hold letters, digits, spaces and = . _ / : , -");
    }
    if (r >= 0) {
        im.name = mu_xstrdup(name);
        im.format = mu_xstrdup(format);
        memcpy(im.sha256, sha, 65);
        im.status = mu_xstrdup("uploading");
        im.kernel = mu_xstrdup(kernel);
        im.initrd = mu_xstrdup(initrd);
        im.cmdline = mu_xstrdup(cmdline);
    }
    cJSON_Delete(body);
    if (r < 0) {
        mu_image_clear(&im);
        return r;
    }
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("image:%s", im.name);
    mu_req_audit(req, &rec, 0, target);
    int64_t id = 0;
    r = mu_store_image_insert(req->app->store, &im, &rec, &id, err);
    mu_image_clear(&im);
    if (r < 0)
        return r;
    struct mu_image got = {0};
    if ((r = mu_store_image_get(req->app->store, id, &got, err)) < 0)
        return r;
    resp->json = image_json(&got);
    mu_json_add_str(resp->json, "upload", "PUT the image bytes to /v1/images/{id}/data");
    resp->status = 201;
    resp->location = mu_xasprintf("/v1/images/%lld", (long long)id);
    mu_image_clear(&got);
    return MU_OK;
}

/* The bytes must be what the declared format says: a qcow2 file starts with "QFI\xfb" and,
 * for a base image, names no backing file (header bytes 8-15 are its offset). */
static int check_format(const char *path, const char *format, struct mu_err *err)
{
    if (strcmp(format, "qcow2") != 0)
        return MU_OK;
    unsigned char hdr[16];
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(hdr, 1, sizeof hdr, f) : 0;
    if (f)
        fclose(f);
    if (got != sizeof hdr || memcmp(hdr, "QFI\xfb", 4) != 0)
        return mu_err_setf(err, MU_EINVAL, "format",
                           "the uploaded bytes are not a qcow2 image, but the image was "
                           "declared as qcow2");
    uint64_t off = 0;
    for (int i = 8; i < 16; i++)
        off = (off << 8) | hdr[i];
    if (off != 0)
        return mu_err_setf(err, MU_EINVAL, "format",
                           "this qcow2 image names a backing file; upload a self-contained "
                           "image (qemu-img convert -O qcow2 in.qcow2 out.qcow2)");
    return MU_OK;
}

int mu_h_image_upload(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "image", &id, err);
    struct mu_image im = {0};
    if (r < 0 || (r = mu_store_image_get(req->app->store, id, &im, err)) < 0)
        return r;
    if (strcmp(im.status, "uploading") != 0)
        r = mu_err_set(err, MU_ECONFLICT, "image %lld is already uploaded", (long long)id);
    else if (!req->upload_path || req->upload_size == 0)
        r = mu_err_set(err, MU_EINVAL, "the upload is empty: send the image bytes as the body");
    else if (strcmp(req->upload_sha256, im.sha256) != 0)
        r = mu_err_setf(err, MU_EINVAL, "sha256",
                        "the uploaded bytes have SHA-256 %s, not the declared %s: the file was "
                        "damaged or is not the one declared",
                        req->upload_sha256, im.sha256);
    else
        r = check_format(req->upload_path, im.format, err);
    MU_AUTOFREE char *dir = mu_xasprintf("%s/images", req->app->data_dir);
    MU_AUTOFREE char *path = mu_xasprintf("%s/%lld.%s", dir, (long long)id, im.format);
    if (r >= 0) {
        mu_mkdir_p(dir, 0700);
        if (rename(req->upload_path, path) != 0)
            r = mu_err_set(err, MU_EIO, "cannot store the image: %s", strerror(errno));
    }
    if (r >= 0)
        r = mu_store_image_set_ready(req->app->store, id, req->upload_size, req->upload_sha256,
                                     path, err);
    mu_image_clear(&im);
    if (r < 0)
        return r;
    struct mu_image got = {0};
    if ((r = mu_store_image_get(req->app->store, id, &got, err)) < 0)
        return r;
    resp->json = image_json(&got);
    mu_image_clear(&got);
    return MU_OK;
}

int mu_h_image_get(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "image", &id, err);
    struct mu_image im = {0};
    if (r < 0 || (r = mu_store_image_get(req->app->store, id, &im, err)) < 0)
        return r;
    resp->json = image_json(&im);
    mu_image_clear(&im);
    return MU_OK;
}

int mu_h_image_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "image", &id, err);
    struct mu_image im = {0};
    if (r < 0 || (r = mu_store_image_get(req->app->store, id, &im, err)) < 0)
        return r;
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("image/%lld", (long long)id);
    mu_req_audit(req, &rec, 0, target);
    r = mu_store_image_delete(req->app->store, id, &rec, err);
    if (r >= 0 && im.path)
        unlink(im.path);
    mu_image_clear(&im);
    if (r < 0)
        return r;
    resp->status = 204;
    return MU_OK;
}

/* ---- anti-affinity groups --------------------------------------------------------- */

static cJSON *group_json(const struct mu_group *g)
{
    cJSON *o = mu_json_obj();
    mu_json_add_i64(o, "id", g->id);
    mu_json_add_i64(o, "tenant_id", g->tenant_id);
    mu_json_add_str(o, "name", g->name);
    mu_json_add_time(o, "created_at", g->created_ms);
    return o;
}

int mu_h_group_list(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t scope = mu_principal_is_global(&req->principal) ? 0 : req->principal.tenant_id;
    struct mu_group *gs = NULL;
    size_t n = 0;
    int r = mu_store_group_list(req->app->store, scope, &gs, &n, err);
    if (r < 0)
        return r;
    cJSON *items = mu_json_arr();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(items, group_json(&gs[i]));
    resp->json = mu_h_list_answer(items, n, 0, 0);
    mu_groups_free(gs, n);
    return MU_OK;
}

int mu_h_group_create(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    static const char *const allowed[] = {"name", "tenant_id", NULL};
    cJSON *body = mu_req_json(req, err);
    if (!body)
        return err->code;
    struct mu_group g = {0};
    const char *name = NULL;
    int r = mu_json_expect_object(body, allowed, "group", err);
    if (r >= 0)
        r = mu_json_get_str(body, "name", true, 63, &name, err);
    if (r >= 0 && !mu_ident_valid(name))
        r = mu_err_setf(err, MU_EINVAL, "name",
                        "name must be 1-63 characters of a-z, 0-9, '.', '_' or '-'");
    if (r >= 0)
        r = mu_json_get_i64(body, "tenant_id", true, 1, INT64_MAX, &g.tenant_id, err);
    if (r >= 0)
        g.name = mu_xstrdup(name);
    cJSON_Delete(body);
    if (r >= 0)
        r = mu_req_check_tenant(req, g.tenant_id, err);
    int64_t id = 0;
    if (r >= 0) {
        struct mu_audit_rec rec;
        MU_AUTOFREE char *target = mu_xasprintf("group:%s", g.name);
        mu_req_audit(req, &rec, g.tenant_id, target);
        r = mu_store_group_insert(req->app->store, &g, &rec, &id, err);
    }
    mu_group_clear(&g);
    if (r < 0)
        return r;
    struct mu_group got = {0};
    if ((r = mu_store_group_get(req->app->store, id, &got, err)) < 0)
        return r;
    resp->json = group_json(&got);
    resp->status = 201;
    resp->location = mu_xasprintf("/v1/groups/%lld", (long long)id);
    mu_group_clear(&got);
    return MU_OK;
}

int mu_h_group_delete(struct mu_req *req, struct mu_resp *resp, struct mu_err *err)
{
    int64_t id;
    int r = mu_req_param_id(req, 0, "group", &id, err);
    struct mu_group g = {0};
    if (r < 0 || (r = mu_store_group_get(req->app->store, id, &g, err)) < 0)
        return r;
    r = mu_req_check_tenant(req, g.tenant_id, err);
    if (r < 0) {
        mu_group_clear(&g);
        mu_err_clear(err);
        return mu_err_set(err, MU_ENOTFOUND, "no group %lld", (long long)id);
    }
    struct mu_audit_rec rec;
    MU_AUTOFREE char *target = mu_xasprintf("group/%lld", (long long)id);
    mu_req_audit(req, &rec, g.tenant_id, target);
    mu_group_clear(&g);
    if ((r = mu_store_group_delete(req->app->store, id, &rec, err)) < 0)
        return r;
    resp->status = 204;
    return MU_OK;
}
