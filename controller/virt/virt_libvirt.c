/* The libvirt driver: the only controller file that includes libvirt.
 *
 * Event loop: libvirt's default poll() loop is registered once per process and run by one
 * thread; a disabled timer is armed with a zero period to wake it for shutdown.
 * Connections: opened lazily by the first call that needs one, with keep-alive and a close
 * callback that only marks the connection broken (it runs on the event-loop thread; the
 * worker that owns the connection reopens it on its next call). A failed open arms an
 * exponential backoff (1 s .. 60 s); calls made before it elapses fail at once with
 * MU_EUNAVAIL instead of sleeping, so the caller's retry policy stays in charge.
 * Errors: libvirt's thread-local last error becomes MU_EUNAVAIL when the node cannot be
 * reached (transport, RPC, dead connection), MU_EBUSY for a timeout waiting on a busy domain,
 * MU_EIO otherwise; the libvirt message is kept in the detail. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>

#include "virt/virt_int.h"

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define STOP_POLL_MS   200
#define SHA256_HEX_LEN 64

/* An image volume whose content this connection has verified (cleared on reconnect). */
struct verified {
    char vol[256];
    char sha[SHA256_HEX_LEN + 1];
};

struct mu_virt_conn {
    char *uri;
    char *pool;
    char *pool_path; /* NULL: the pool must exist already */
    bool validate;   /* have libvirt check domain XML against its schema */
    virConnectPtr conn;
    atomic_bool broken;   /* set by the close callback (event-loop thread) */
    atomic_bool alive;    /* the last call reached the node */
    int64_t backoff_ms;   /* delay armed by the next failed open */
    int64_t next_open_ms; /* monotonic: no open attempt before this */
    char last_error[400];
    struct verified *verified;
    size_t n_verified;
    /* nwfilters this connection defined, with the SHA-256 of the XML it sent (cleared on
     * reconnect): an unchanged filter is not redefined on every VM create. */
    struct verified *filters;
    size_t n_filters;
};

/* ---- process-wide: error handler and event loop ------------------------------------- */

static pthread_once_t virt_once = PTHREAD_ONCE_INIT;
static bool virt_once_ok;
static int loop_timer = -1;
static pthread_mutex_t loop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t loop_thread;
static bool loop_running;
static atomic_bool loop_stop;

/* libvirt prints every error on stderr unless a handler is set; we read them instead. */
static void error_ignore(void *opaque, virErrorPtr e)
{
    (void)opaque;
    (void)e;
}

static void loop_wake(int timer, void *opaque)
{
    (void)opaque;
    virEventUpdateTimeout(timer, -1);
}

static void virt_once_init(void)
{
    xmlInitParser();
    virSetErrorFunc(NULL, error_ignore);
    if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0)
        return;
    loop_timer = virEventAddTimeout(-1, loop_wake, NULL, NULL);
    virt_once_ok = loop_timer >= 0;
}

static void *loop_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&loop_stop)) {
        if (virEventRunDefaultImpl() < 0) {
            /* Only on a broken poll(): do not spin. */
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static const char *last_message(void)
{
    virErrorPtr e = virGetLastError();
    return e && e->message ? e->message : "unknown libvirt error";
}

int mu_virt_init(struct mu_err *err)
{
    pthread_once(&virt_once, virt_once_init);
    if (!virt_once_ok)
        return mu_err_set(err, MU_EINTERNAL, "cannot register the libvirt event loop: %s",
                          last_message());
    pthread_mutex_lock(&loop_lock);
    int r = 0;
    if (!loop_running) {
        atomic_store(&loop_stop, false);
        virEventUpdateTimeout(loop_timer, -1);
        int e = pthread_create(&loop_thread, NULL, loop_main, NULL);
        if (e != 0)
            r = mu_err_set(err, MU_EINTERNAL, "cannot start the libvirt event thread: %s",
                           strerror(e));
        else
            loop_running = true;
    }
    pthread_mutex_unlock(&loop_lock);
    return r;
}

void mu_virt_shutdown(void)
{
    pthread_mutex_lock(&loop_lock);
    if (loop_running) {
        atomic_store(&loop_stop, true);
        virEventUpdateTimeout(loop_timer, 0); /* wakes poll(); the loop then sees the flag */
        pthread_join(loop_thread, NULL);
        loop_running = false;
    }
    pthread_mutex_unlock(&loop_lock);
}

/* ---- URIs and connections ------------------------------------------------------------ */

bool mu_virt_uri_valid(const char *uri)
{
    static const char *const schemes[] = {"qemu://",     "qemu+ssh://", "qemu+libssh://",
                                          "qemu+tls://", "qemu+tcp://", "test://"};
    if (!uri)
        return false;
    size_t n = strlen(uri);
    if (n == 0 || n > 1024)
        return false;
    size_t rest = 0;
    for (size_t i = 0; i < MU_ARRAY_LEN(schemes); i++) {
        size_t k = strlen(schemes[i]);
        if (strncmp(uri, schemes[i], k) == 0) {
            rest = k;
            break;
        }
    }
    if (rest == 0 || uri[rest] == '\0')
        return false;
    for (size_t i = rest; i < n; i++) {
        char c = uri[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  strchr("._~-/:@?&=%,+[]", c) != NULL;
        if (!ok)
            return false;
    }
    return true;
}

struct mu_virt_conn *mu_virt_conn_new(const char *uri, const char *pool, const char *pool_path)
{
    if (!mu_virt_uri_valid(uri) || !mu_virt_vol_name_valid(pool) ||
        (pool_path && !mu_virt_path_valid(pool_path)))
        return NULL;
    struct mu_virt_conn *c = mu_xcalloc(1, sizeof *c);
    c->uri = mu_xstrdup(uri);
    c->pool = mu_xstrdup(pool);
    c->pool_path = mu_xstrdup(pool_path);
    /* Schema validation costs the daemon a parse of the RNG schema (~30 ms) per define:
     * worth it on real nodes, not on the in-memory test driver used for benchmarks. */
    c->validate = strncmp(uri, "test:", 5) != 0;
    c->backoff_ms = BACKOFF_MIN_MS;
    snprintf(c->last_error, sizeof c->last_error, "not connected yet");
    return c;
}

static void conn_closed(virConnectPtr vc, int reason, void *opaque)
{
    (void)vc;
    (void)reason;
    struct mu_virt_conn *c = opaque;
    atomic_store(&c->broken, true);
    atomic_store(&c->alive, false);
}

static void conn_drop(struct mu_virt_conn *c)
{
    if (!c->conn)
        return;
    /* After unregistering, libvirt calls conn_closed no more (it holds the same lock). */
    virConnectUnregisterCloseCallback(c->conn, conn_closed);
    virConnectClose(c->conn);
    c->conn = NULL;
    free(c->verified);
    c->verified = NULL;
    c->n_verified = 0;
    free(c->filters);
    c->filters = NULL;
    c->n_filters = 0;
}

void mu_virt_conn_free(struct mu_virt_conn *c)
{
    if (!c)
        return;
    conn_drop(c);
    free(c->uri);
    free(c->pool);
    free(c->pool_path);
    free(c);
}

bool mu_virt_conn_alive(struct mu_virt_conn *c)
{
    return c && atomic_load(&c->alive);
}

/* No credential is ever asked interactively: keys and certificates only. */
static int auth_refuse(virConnectCredentialPtr cred, unsigned int ncred, void *opaque)
{
    (void)cred;
    (void)ncred;
    (void)opaque;
    return -1;
}

static int unreachable(struct mu_virt_conn *c, struct mu_err *err)
{
    atomic_store(&c->alive, false);
    int64_t wait = c->next_open_ms - mu_mono_ms();
    if (wait < 0)
        wait = 0;
    return mu_err_set(err, MU_EUNAVAIL, "node unreachable: %s, next attempt in %" PRId64 " s",
                      c->last_error, (wait + 999) / 1000);
}

/* Makes c->conn usable: reopens a broken connection, honouring the backoff. */
static int conn_ensure(struct mu_virt_conn *c, struct mu_err *err)
{
    if (c->conn && !atomic_load(&c->broken))
        return 0;
    conn_drop(c);
    if (mu_mono_ms() < c->next_open_ms)
        return unreachable(c, err);

    pthread_once(&virt_once, virt_once_init); /* the event impl precedes every open */
    static int no_creds[] = {0};
    virConnectAuth auth = {no_creds, 0, auth_refuse, NULL};
    virConnectPtr vc = virConnectOpenAuth(c->uri, &auth, 0);
    if (!vc) {
        snprintf(c->last_error, sizeof c->last_error, "%s", last_message());
        c->next_open_ms = mu_mono_ms() + c->backoff_ms;
        c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
        return unreachable(c, err);
    }
    /* Local and test drivers have no keep-alive and may refuse it: harmless. */
    virConnectSetKeepAlive(vc, 5, 3);
    atomic_store(&c->broken, false);
    virConnectRegisterCloseCallback(vc, conn_closed, c, NULL);
    virResetLastError();
    c->conn = vc;
    c->backoff_ms = BACKOFF_MIN_MS;
    c->next_open_ms = 0;
    atomic_store(&c->alive, true);
    return 0;
}

/* libvirt's last error, copied: any further libvirt call (even virConnectIsAlive) resets
 * the thread's last error. */
struct lv_err {
    int code;
    int domain;
    char msg[400];
};

static void lv_err_save(struct lv_err *s)
{
    virErrorPtr e = virGetLastError();
    s->code = e ? e->code : VIR_ERR_OK;
    s->domain = e ? e->domain : VIR_FROM_NONE;
    snprintf(s->msg, sizeof s->msg, "%s", e && e->message ? e->message : "unknown libvirt error");
}

/* Whether the error means the node or the transport failed, not the request. */
static bool error_is_transport(struct mu_virt_conn *c, const struct lv_err *e)
{
    if (c->conn && virConnectIsAlive(c->conn) == 0)
        return true;
    switch (e->code) {
    case VIR_ERR_RPC:
    case VIR_ERR_NO_CONNECT:
    case VIR_ERR_INVALID_CONN:
    case VIR_ERR_AUTH_FAILED:
    case VIR_ERR_AUTH_UNAVAILABLE:
        return true;
    case VIR_ERR_SYSTEM_ERROR:
    case VIR_ERR_INTERNAL_ERROR:
        /* "End of file while reading data", "connection closed": a system error of the
         * transport, not of the node's storage or QEMU. */
        return e->domain == VIR_FROM_RPC || e->domain == VIR_FROM_REMOTE ||
               e->domain == VIR_FROM_SSH || e->domain == VIR_FROM_LIBSSH;
    default:
        return false;
    }
}

/* Fills err from a saved libvirt error: "<what>: <libvirt message>". */
MU_PRINTF(4, 0)
static int vfail(struct mu_virt_conn *c, struct mu_err *err, const struct lv_err *e,
                 const char *fmt, va_list ap)
{
    char what[256];
    vsnprintf(what, sizeof what, fmt, ap);
    if (error_is_transport(c, e)) {
        atomic_store(&c->alive, false);
        if (c->conn && virConnectIsAlive(c->conn) == 0)
            atomic_store(&c->broken, true); /* reopen on the next call */
        snprintf(c->last_error, sizeof c->last_error, "%s", e->msg);
        return mu_err_set(err, MU_EUNAVAIL, "node unreachable: %s: %s", what, e->msg);
    }
    int code = e->code == VIR_ERR_OPERATION_TIMEOUT ? MU_EBUSY : MU_EIO;
    return mu_err_set(err, code, "%s: %s", what, e->msg);
}

MU_PRINTF(4, 5)
static int fail_saved(struct mu_virt_conn *c, struct mu_err *err, const struct lv_err *e,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vfail(c, err, e, fmt, ap);
    va_end(ap);
    return r;
}

/* Same, from the last error of this thread (call it right after the failing call). */
MU_PRINTF(3, 4)
static int fail(struct mu_virt_conn *c, struct mu_err *err, const char *fmt, ...)
{
    struct lv_err e;
    lv_err_save(&e);
    va_list ap;
    va_start(ap, fmt);
    int r = vfail(c, err, &e, fmt, ap);
    va_end(ap);
    return r;
}

static int last_code(void)
{
    virErrorPtr e = virGetLastError();
    return e ? e->code : VIR_ERR_OK;
}

/* The flag variant is not implemented by this driver (the test driver, old daemons). */
static bool flags_unsupported(void)
{
    int code = last_code();
    return code == VIR_ERR_NO_SUPPORT || code == VIR_ERR_INVALID_ARG ||
           code == VIR_ERR_ARGUMENT_UNSUPPORTED;
}

static int ok(struct mu_virt_conn *c, int r)
{
    if (r >= 0)
        atomic_store(&c->alive, true);
    return r;
}

/* ---- storage ------------------------------------------------------------------------ */

/* Looks the pool up (defining, building and starting a dir pool at pool_path when it is
 * absent), makes sure it runs and refreshes it so that volumes made by others show. */
static int pool_open(struct mu_virt_conn *c, virStoragePoolPtr *ret, struct mu_err *err)
{
    int r = conn_ensure(c, err);
    if (r < 0)
        return r;
    virStoragePoolPtr p = virStoragePoolLookupByName(c->conn, c->pool);
    if (!p && last_code() != VIR_ERR_NO_STORAGE_POOL)
        return fail(c, err, "cannot look up storage pool %s", c->pool);
    if (!p) {
        if (!c->pool_path)
            return mu_err_set(err, MU_EIO,
                              "storage pool %s does not exist on the node and no pool path is "
                              "configured to create it",
                              c->pool);
        MU_AUTOFREE char *xml = mu_virt_pool_xml(c->pool, c->pool_path);
        p = virStoragePoolDefineXML(c->conn, xml, 0);
        if (!p) {
            /* Another client may have defined it just now. */
            struct lv_err e;
            lv_err_save(&e);
            p = virStoragePoolLookupByName(c->conn, c->pool);
            if (!p)
                return fail_saved(c, err, &e, "cannot define storage pool %s at %s", c->pool,
                                  c->pool_path);
        } else {
            if (virStoragePoolBuild(p, 0) < 0) {
                r = fail(c, err, "cannot build storage pool %s at %s", c->pool, c->pool_path);
                virStoragePoolFree(p);
                return r;
            }
            virStoragePoolSetAutostart(p, 1);
        }
    }
    int active = virStoragePoolIsActive(p);
    if (active < 0) {
        r = fail(c, err, "cannot read the state of storage pool %s", c->pool);
        virStoragePoolFree(p);
        return r;
    }
    if (active == 0 && virStoragePoolCreate(p, 0) < 0) {
        struct lv_err e;
        lv_err_save(&e);
        if (virStoragePoolIsActive(p) != 1) { /* unless someone else started it */
            r = fail_saved(c, err, &e, "cannot start storage pool %s", c->pool);
            virStoragePoolFree(p);
            return r;
        }
    }
    /* Refused while another client's upload runs: the look-ups below still work. */
    virStoragePoolRefresh(p, 0);
    *ret = p;
    return 0;
}

/* 1 and *ret when the volume exists, 0 when absent, < 0 on error. */
static int vol_lookup(struct mu_virt_conn *c, virStoragePoolPtr p, const char *name,
                      virStorageVolPtr *ret, struct mu_err *err)
{
    virStorageVolPtr v = virStorageVolLookupByName(p, name);
    if (v) {
        *ret = v;
        return 1;
    }
    if (last_code() == VIR_ERR_NO_STORAGE_VOL)
        return 0;
    return fail(c, err, "cannot look up volume %s", name);
}

static int check_vol_name(const char *name, const char *field, struct mu_err *err)
{
    if (mu_virt_vol_name_valid(name))
        return 0;
    return mu_err_setf(err, MU_EINVAL, field,
                       "%s must be 1..255 letters, digits and . _ - (not starting with . or -, "
                       "no \"..\")",
                       field);
}

static bool sha_hex_valid(const char *s)
{
    if (!s || strlen(s) != SHA256_HEX_LEN)
        return false;
    for (size_t i = 0; i < SHA256_HEX_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool verified_has(struct mu_virt_conn *c, const char *vol, const char *sha)
{
    for (size_t i = 0; i < c->n_verified; i++)
        if (strcmp(c->verified[i].vol, vol) == 0 && strcmp(c->verified[i].sha, sha) == 0)
            return true;
    return false;
}

static void verified_set(struct mu_virt_conn *c, const char *vol, const char *sha)
{
    for (size_t i = 0; i < c->n_verified; i++) {
        if (strcmp(c->verified[i].vol, vol) == 0) {
            snprintf(c->verified[i].sha, sizeof c->verified[i].sha, "%s", sha);
            return;
        }
    }
    c->verified = mu_xrealloc(c->verified, (c->n_verified + 1) * sizeof *c->verified);
    struct verified *v = &c->verified[c->n_verified++];
    snprintf(v->vol, sizeof v->vol, "%s", vol);
    snprintf(v->sha, sizeof v->sha, "%s", sha);
}

static void verified_forget(struct mu_virt_conn *c, const char *vol)
{
    for (size_t i = 0; i < c->n_verified; i++) {
        if (strcmp(c->verified[i].vol, vol) == 0) {
            c->verified[i] = c->verified[--c->n_verified];
            return;
        }
    }
}

struct hash_io {
    int fd;
    gnutls_hash_hd_t h;
    uint64_t left; /* bytes still to send (upload) */
    uint64_t done;
    int err_no;
};

static int upload_source(virStreamPtr st, char *data, size_t nbytes, void *opaque)
{
    (void)st;
    struct hash_io *io = opaque;
    if (io->left == 0)
        return 0;
    size_t want = nbytes < io->left ? nbytes : (size_t)io->left;
    ssize_t n;
    do {
        n = read(io->fd, data, want);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        io->err_no = n < 0 ? errno : EPIPE; /* shorter than when we measured it */
        errno = io->err_no;
        return -1;
    }
    gnutls_hash(io->h, data, (size_t)n);
    io->left -= (uint64_t)n;
    io->done += (uint64_t)n;
    return (int)n;
}

static int download_sink(virStreamPtr st, const char *data, size_t nbytes, void *opaque)
{
    (void)st;
    struct hash_io *io = opaque;
    gnutls_hash(io->h, data, nbytes);
    io->done += nbytes;
    return (int)nbytes;
}

static void hash_hex(gnutls_hash_hd_t h, char out[SHA256_HEX_LEN + 1])
{
    unsigned char d[32];
    gnutls_hash_deinit(h, d);
    mu_hex_encode(d, sizeof d, out);
}

/* SHA-256 of the whole volume, read back through virStorageVolDownload. */
static int vol_sha256(struct mu_virt_conn *c, virStorageVolPtr v, const char *name,
                      char out[SHA256_HEX_LEN + 1], uint64_t *ret_bytes, struct mu_err *err)
{
    struct hash_io io = {.fd = -1};
    if (gnutls_hash_init(&io.h, GNUTLS_DIG_SHA256) < 0)
        return mu_err_set(err, MU_EINTERNAL, "cannot initialise SHA-256");
    virStreamPtr st = virStreamNew(c->conn, 0);
    int r = 0;
    if (!st || virStorageVolDownload(v, st, 0, 0, 0) < 0 ||
        virStreamRecvAll(st, download_sink, &io) < 0 || virStreamFinish(st) < 0)
        r = fail(c, err, "cannot read back volume %s", name);
    if (st)
        virStreamFree(st);
    hash_hex(io.h, out);
    if (r == 0)
        *ret_bytes = io.done;
    return r;
}

static int local_sha256(int fd, char out[SHA256_HEX_LEN + 1])
{
    gnutls_hash_hd_t h;
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
        return -1;
    char buf[65536];
    ssize_t n;
    off_t off = 0;
    while ((n = pread(fd, buf, sizeof buf, off)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            hash_hex(h, out);
            return -1;
        }
        gnutls_hash(h, buf, (size_t)n);
        off += n;
    }
    hash_hex(h, out);
    return 0;
}

static uint64_t be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* A qcow2 base image must be self-contained: no backing file, no external data file (both
 * would make QEMU open a path chosen by whoever made the image). The format is the one the
 * operator declared: we only check that a "qcow2" really is one. */
static int check_image_header(int fd, const char *format, const char *path, struct mu_err *err)
{
    if (strcmp(format, "qcow2") != 0)
        return 0;
    unsigned char h[104] = {0};
    ssize_t n = pread(fd, h, sizeof h, 0);
    if (n < 72 || memcmp(h, "QFI\xfb", 4) != 0)
        return mu_err_setf(err, MU_EINVAL, "format", "%s is not a qcow2 image", path);
    uint32_t version = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];
    if (be64(h + 8) != 0)
        return mu_err_setf(err, MU_EINVAL, "image", "%s names a backing file: refused", path);
    if (version >= 3 && n >= 80 && (be64(h + 72) & (UINT64_C(1) << 2)))
        return mu_err_setf(err, MU_EINVAL, "image", "%s uses an external data file: refused", path);
    return 0;
}

/* Creates vol_name, uploads the file into it while hashing what is sent, reads it back and
 * compares both hashes with want. On any failure the new volume is deleted. */
static int image_upload(struct mu_virt_conn *c, virStoragePoolPtr p, const char *vol_name, int fd,
                        uint64_t size, const char *format, const char *want, struct mu_err *err)
{
    MU_AUTOFREE char *xml = mu_virt_volume_xml(vol_name, format, size, NULL, NULL);
    virStorageVolPtr v = virStorageVolCreateXML(p, xml, 0);
    if (!v)
        return fail(c, err, "cannot create volume %s", vol_name);
    int r = 0;
    struct hash_io io = {.fd = fd, .left = size};
    virStreamPtr st = NULL;
    char sent[SHA256_HEX_LEN + 1], got[SHA256_HEX_LEN + 1];
    uint64_t got_bytes = 0;
    if (lseek(fd, 0, SEEK_SET) < 0 || gnutls_hash_init(&io.h, GNUTLS_DIG_SHA256) < 0) {
        r = mu_err_set(err, MU_EIO, "cannot read image file: %s", strerror(errno));
        goto out;
    }
    st = virStreamNew(c->conn, 0);
    if (!st || virStorageVolUpload(v, st, 0, size, 0) < 0) {
        r = fail(c, err, "cannot upload to volume %s", vol_name);
        hash_hex(io.h, sent);
        goto out;
    }
    if (virStreamSendAll(st, upload_source, &io) < 0) {
        if (io.err_no)
            r = mu_err_set(err, MU_EIO, "cannot read image file while uploading %s: %s", vol_name,
                           strerror(io.err_no));
        else
            r = fail(c, err, "cannot upload to volume %s", vol_name);
        hash_hex(io.h, sent);
        goto out;
    }
    hash_hex(io.h, sent);
    if (virStreamFinish(st) < 0) {
        r = fail(c, err, "cannot finish the upload to volume %s", vol_name);
        goto out;
    }
    if (strcmp(sent, want) != 0) {
        r = mu_err_setf(err, MU_EINVAL, "sha256",
                        "the image file's SHA-256 is %s, not the expected %s", sent, want);
        goto out;
    }
    r = vol_sha256(c, v, vol_name, got, &got_bytes, err);
    if (r < 0)
        goto out;
    if (got_bytes != size || strcmp(got, want) != 0)
        r = mu_err_set(err, MU_EIO,
                       "volume %s read back as %" PRIu64 " bytes with SHA-256 %s, expected %" PRIu64
                       " bytes with %s",
                       vol_name, got_bytes, got, size, want);
out:
    if (st)
        virStreamFree(st);
    if (r < 0)
        virStorageVolDelete(v, 0);
    virStorageVolFree(v);
    return r;
}

int mu_virt_image_ensure(struct mu_virt_conn *c, const char *vol_name, const char *local_path,
                         const char *format, const char *sha256_hex, struct mu_err *err)
{
    int r = check_vol_name(vol_name, "vol_name", err);
    if (r < 0)
        return r;
    if (!mu_virt_format_valid(format))
        return mu_err_setf(err, MU_EINVAL, "format", "format must be qcow2 or raw");
    if (!sha_hex_valid(sha256_hex))
        return mu_err_setf(err, MU_EINVAL, "sha256", "sha256 must be 64 lower-case hex digits");
    if (!local_path || local_path[0] != '/')
        return mu_err_setf(err, MU_EINVAL, "local_path", "local_path must be absolute");

    int fd = open(local_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return mu_err_set(err, MU_EIO, "cannot open image file %s: %s", local_path,
                          strerror(errno));
    virStoragePoolPtr p = NULL;
    virStorageVolPtr v = NULL;
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0) {
        r = mu_err_set(err, MU_EIO, "image file %s is not a non-empty regular file", local_path);
        goto out;
    }
    uint64_t size = (uint64_t)sb.st_size;
    r = check_image_header(fd, format, local_path, err);
    if (r < 0)
        goto out;
    r = pool_open(c, &p, err);
    if (r < 0)
        goto out;
    r = vol_lookup(c, p, vol_name, &v, err);
    if (r < 0)
        goto out;
    if (!c->validate) {
        /* libvirt's test driver has no volume streams: it stands in for a node in unit tests
         * and benchmarks, so the volume is created with the image's size and no bytes. */
        if (r == 0) {
            MU_AUTOFREE char *xml = mu_virt_volume_xml(vol_name, format, size, NULL, NULL);
            virStorageVolPtr created = virStorageVolCreateXML(p, xml, 0);
            if (!created) {
                r = fail(c, err, "cannot create volume %s", vol_name);
                goto out;
            }
            virStorageVolFree(created);
        }
        r = 0;
        goto out;
    }
    if (r == 1) {
        if (verified_has(c, vol_name, sha256_hex)) {
            r = 0;
            goto out;
        }
        char have[SHA256_HEX_LEN + 1], local[SHA256_HEX_LEN + 1];
        uint64_t have_bytes = 0;
        r = vol_sha256(c, v, vol_name, have, &have_bytes, err);
        if (r < 0)
            goto out;
        if (have_bytes == size && strcmp(have, sha256_hex) == 0) {
            verified_set(c, vol_name, sha256_hex);
            r = 0;
            goto out;
        }
        /* Before deleting what is there, make sure the fault is not the caller's. */
        if (local_sha256(fd, local) < 0) {
            r = mu_err_set(err, MU_EIO, "cannot read image file %s: %s", local_path,
                           strerror(errno));
            goto out;
        }
        if (strcmp(local, sha256_hex) != 0) {
            r = mu_err_setf(err, MU_EINVAL, "sha256",
                            "the image file's SHA-256 is %s, not the expected %s", local,
                            sha256_hex);
            goto out;
        }
        verified_forget(c, vol_name);
        if (virStorageVolDelete(v, 0) < 0) {
            r = fail(c, err, "cannot delete the damaged volume %s", vol_name);
            goto out;
        }
    }
    r = image_upload(c, p, vol_name, fd, size, format, sha256_hex, err);
    if (r == 0)
        verified_set(c, vol_name, sha256_hex);
out:
    if (v)
        virStorageVolFree(v);
    if (p)
        virStoragePoolFree(p);
    close(fd);
    return ok(c, r);
}

static int vol_path(struct mu_virt_conn *c, virStorageVolPtr v, const char *name, char *out,
                    size_t outlen, struct mu_err *err)
{
    char *path = virStorageVolGetPath(v);
    if (!path)
        return fail(c, err, "cannot get the path of volume %s", name);
    int r = 0;
    if (strlen(path) >= outlen)
        r = mu_err_set(err, MU_EIO, "path of volume %s is too long", name);
    else
        snprintf(out, outlen, "%s", path);
    free(path);
    return r;
}

int mu_virt_overlay_ensure(struct mu_virt_conn *c, const char *vol_name, const char *base_vol,
                           const char *base_format, int64_t capacity_gib, char *ret_path,
                           struct mu_err *err)
{
    int r = check_vol_name(vol_name, "vol_name", err);
    if (r == 0)
        r = check_vol_name(base_vol, "base_vol", err);
    if (r < 0)
        return r;
    if (!mu_virt_format_valid(base_format))
        return mu_err_setf(err, MU_EINVAL, "base_format", "base_format must be qcow2 or raw");
    if (capacity_gib < 1 || capacity_gib > MU_VIRT_DISK_MAX_GIB)
        return mu_err_setf(err, MU_EINVAL, "capacity_gib",
                           "capacity_gib must be between 1 and %" PRId64, MU_VIRT_DISK_MAX_GIB);

    virStoragePoolPtr p = NULL;
    virStorageVolPtr base = NULL, v = NULL;
    char base_path[MU_VIRT_PATH_MAX], path[MU_VIRT_PATH_MAX]; /* as ret_path */
    r = pool_open(c, &p, err);
    if (r < 0)
        return r;
    r = vol_lookup(c, p, base_vol, &base, err);
    if (r == 0)
        r = mu_err_set(err, MU_ENOTFOUND, "base image volume %s is not in pool %s on the node",
                       base_vol, c->pool);
    if (r < 0)
        goto out;
    r = vol_path(c, base, base_vol, base_path, sizeof base_path, err);
    if (r < 0)
        goto out;
    r = vol_lookup(c, p, vol_name, &v, err);
    if (r < 0)
        goto out;
    if (r == 1) {
        /* Idempotent only if it is the overlay we would have made. */
        char *xml = virStorageVolGetXMLDesc(v, 0);
        if (!xml) {
            r = fail(c, err, "cannot read volume %s", vol_name);
            goto out;
        }
        char backing[MU_VIRT_PATH_MAX] = "";
        int b = mu_virt_vol_backing_path(xml, backing, sizeof backing);
        free(xml);
        if (b == 1 && strcmp(backing, base_path) != 0) {
            r = mu_err_set(err, MU_ECONFLICT, "volume %s exists with another backing file (%s)",
                           vol_name, backing);
            goto out;
        }
        r = 0;
    } else {
        MU_AUTOFREE char *xml = mu_virt_volume_xml(vol_name, "qcow2", (uint64_t)capacity_gib << 30,
                                                   base_path, base_format);
        v = virStorageVolCreateXML(p, xml, 0);
        if (!v) {
            r = fail(c, err, "cannot create overlay volume %s on %s", vol_name, base_vol);
            goto out;
        }
        r = 0;
    }
    r = vol_path(c, v, vol_name, path, sizeof path, err);
    if (r == 0 && ret_path)
        memcpy(ret_path, path, strlen(path) + 1);
out:
    if (v)
        virStorageVolFree(v);
    if (base)
        virStorageVolFree(base);
    virStoragePoolFree(p);
    return ok(c, r);
}

int mu_virt_volume_resize(struct mu_virt_conn *c, const char *vol_name, int64_t capacity_gib,
                          struct mu_err *err)
{
    int r = check_vol_name(vol_name, "vol_name", err);
    if (r < 0)
        return r;
    if (capacity_gib < 1 || capacity_gib > MU_VIRT_DISK_MAX_GIB)
        return mu_err_setf(err, MU_EINVAL, "capacity_gib",
                           "capacity_gib must be between 1 and %" PRId64, MU_VIRT_DISK_MAX_GIB);
    virStoragePoolPtr p = NULL;
    virStorageVolPtr v = NULL;
    r = pool_open(c, &p, err);
    if (r < 0)
        return r;
    r = vol_lookup(c, p, vol_name, &v, err);
    if (r == 0)
        r = mu_err_set(err, MU_ENOTFOUND, "volume %s is not in pool %s", vol_name, c->pool);
    if (r < 0)
        goto out;
    virStorageVolInfo info;
    uint64_t want = (uint64_t)capacity_gib << 30;
    if (virStorageVolGetInfo(v, &info) < 0) {
        r = fail(c, err, "cannot read volume %s", vol_name);
    } else if (info.capacity > want) {
        r = mu_err_setf(err, MU_EINVAL, "capacity_gib",
                        "volume %s is %llu bytes: disks grow, they never shrink", vol_name,
                        info.capacity);
    } else if (info.capacity < want && virStorageVolResize(v, want, 0) < 0) {
        r = fail(c, err, "cannot resize volume %s to %" PRId64 " GiB", vol_name, capacity_gib);
    } else {
        r = 0;
    }
out:
    if (v)
        virStorageVolFree(v);
    virStoragePoolFree(p);
    return ok(c, r);
}

int mu_virt_volume_delete(struct mu_virt_conn *c, const char *vol_name, struct mu_err *err)
{
    int r = check_vol_name(vol_name, "vol_name", err);
    if (r < 0)
        return r;
    virStoragePoolPtr p = NULL;
    virStorageVolPtr v = NULL;
    r = pool_open(c, &p, err);
    if (r < 0)
        return r;
    r = vol_lookup(c, p, vol_name, &v, err);
    if (r == 1) {
        r = 0;
        verified_forget(c, vol_name);
        if (virStorageVolDelete(v, 0) < 0 && last_code() != VIR_ERR_NO_STORAGE_VOL)
            r = fail(c, err, "cannot delete volume %s", vol_name);
        virStorageVolFree(v);
    }
    virStoragePoolFree(p);
    return ok(c, r);
}

int mu_virt_volume_exists(struct mu_virt_conn *c, const char *vol_name, struct mu_err *err)
{
    int r = check_vol_name(vol_name, "vol_name", err);
    if (r < 0)
        return r;
    virStoragePoolPtr p = NULL;
    virStorageVolPtr v = NULL;
    r = pool_open(c, &p, err);
    if (r < 0)
        return r;
    r = vol_lookup(c, p, vol_name, &v, err);
    if (v)
        virStorageVolFree(v);
    virStoragePoolFree(p);
    return ok(c, r);
}

/* ---- node ------------------------------------------------------------------------- */

int mu_virt_node_info(struct mu_virt_conn *c, struct mu_virt_node_info *ret, struct mu_err *err)
{
    virStoragePoolPtr p = NULL;
    int r = pool_open(c, &p, err);
    if (r < 0)
        return r;
    struct mu_virt_node_info ni = {0};
    virNodeInfo node;
    virStoragePoolInfo pi;
    unsigned long version = 0;
    char *caps = NULL, *host = NULL;
    if (virNodeGetInfo(c->conn, &node) < 0) {
        r = fail(c, err, "cannot read node information");
        goto out;
    }
    ni.cpus = node.cpus;
    ni.mem_mib = (int64_t)(node.memory / 1024);
    caps = virConnectGetCapabilities(c->conn);
    if (!caps) {
        r = fail(c, err, "cannot read node capabilities");
        goto out;
    }
    int kvm = mu_virt_caps_kvm(caps);
    if (kvm < 0) {
        r = mu_err_set(err, MU_EIO, "cannot parse the node's capabilities XML");
        goto out;
    }
    ni.kvm = kvm == 1;
    host = virConnectGetHostname(c->conn);
    if (!host) {
        r = fail(c, err, "cannot read node host name");
        goto out;
    }
    snprintf(ni.hostname, sizeof ni.hostname, "%s", host);
    if (virConnectGetLibVersion(c->conn, &version) < 0) {
        r = fail(c, err, "cannot read node libvirt version");
        goto out;
    }
    snprintf(ni.libvirt_version, sizeof ni.libvirt_version, "%lu.%lu.%lu", version / 1000000,
             version / 1000 % 1000, version % 1000);
    if (virStoragePoolGetInfo(p, &pi) < 0) {
        r = fail(c, err, "cannot read storage pool %s", c->pool);
        goto out;
    }
    ni.pool_capacity_gib = (int64_t)(pi.capacity >> 30);
    ni.pool_available_gib = (int64_t)(pi.available >> 30);
    *ret = ni;
out:
    free(caps);
    free(host);
    virStoragePoolFree(p);
    return ok(c, r);
}

/* ---- domains ---------------------------------------------------------------------- */

const char *mu_virt_state_name(enum mu_virt_state s)
{
    switch (s) {
    case MU_VIRT_ABSENT:
        return "absent";
    case MU_VIRT_RUNNING:
        return "running";
    case MU_VIRT_SHUTOFF:
        return "shutoff";
    case MU_VIRT_PAUSED:
        return "paused";
    case MU_VIRT_SHUTDOWN:
        return "shutdown";
    case MU_VIRT_CRASHED:
        return "crashed";
    case MU_VIRT_OTHER:
        break;
    }
    return "other";
}

static enum mu_virt_state map_state(int s)
{
    switch (s) {
    case VIR_DOMAIN_RUNNING:
    case VIR_DOMAIN_BLOCKED: /* running, waiting on a resource */
        return MU_VIRT_RUNNING;
    case VIR_DOMAIN_PAUSED:
        return MU_VIRT_PAUSED;
    case VIR_DOMAIN_SHUTDOWN:
        return MU_VIRT_SHUTDOWN;
    case VIR_DOMAIN_SHUTOFF:
        return MU_VIRT_SHUTOFF;
    case VIR_DOMAIN_CRASHED:
        return MU_VIRT_CRASHED;
    default:
        return MU_VIRT_OTHER;
    }
}

static int check_uuid(const char *uuid, struct mu_err *err)
{
    if (mu_uuid_valid(uuid))
        return 0;
    return mu_err_setf(err, MU_EINVAL, "uuid", "uuid must be a lower-case RFC 4122 UUID");
}

/* 1 and *ret when the domain exists, 0 when absent, < 0 on error. Ensures the connection. */
static int dom_lookup(struct mu_virt_conn *c, const char *uuid, virDomainPtr *ret,
                      struct mu_err *err)
{
    int r = check_uuid(uuid, err);
    if (r == 0)
        r = conn_ensure(c, err);
    if (r < 0)
        return r;
    virDomainPtr d = virDomainLookupByUUIDString(c->conn, uuid);
    if (d) {
        *ret = d;
        return 1;
    }
    if (last_code() == VIR_ERR_NO_DOMAIN)
        return 0;
    return fail(c, err, "cannot look up domain mu-%s", uuid);
}

static int dom_state(struct mu_virt_conn *c, virDomainPtr d, const char *uuid,
                     enum mu_virt_state *ret, struct mu_err *err)
{
    int state = 0, reason = 0;
    if (virDomainGetState(d, &state, &reason, 0) < 0) {
        if (last_code() == VIR_ERR_NO_DOMAIN) {
            *ret = MU_VIRT_ABSENT;
            return 0;
        }
        return fail(c, err, "cannot read the state of domain mu-%s", uuid);
    }
    *ret = map_state(state);
    return 0;
}

static int absent(const char *uuid, struct mu_err *err)
{
    return mu_err_set(err, MU_ENOTFOUND, "domain mu-%s is not defined on the node", uuid);
}

int mu_virt_domain_define(struct mu_virt_conn *c, const struct mu_virt_domain_spec *spec,
                          bool redefine, struct mu_err *err)
{
    MU_AUTOFREE char *xml = NULL;
    int r = mu_virt_domain_xml_build(spec, &xml, err);
    if (r < 0)
        return r;
    virDomainPtr d = NULL;
    r = dom_lookup(c, spec->uuid, &d, err);
    if (r < 0)
        return r;
    if (r == 1) {
        virDomainFree(d);
        if (!redefine)
            return ok(c, 0);
    }
    /* Validation against libvirt's schema is a second line behind our own builder: without
     * it libvirt silently drops what it does not know (a misspelt <readonly/>, say). */
    d = virDomainDefineXMLFlags(c->conn, xml, c->validate ? VIR_DOMAIN_DEFINE_VALIDATE : 0);
    if (!d && c->validate && flags_unsupported())
        d = virDomainDefineXML(c->conn, xml);
    if (!d)
        return fail(c, err, "cannot define domain mu-%s", spec->uuid);
    virDomainFree(d);
    return ok(c, 0);
}

int mu_virt_domain_state(struct mu_virt_conn *c, const char *uuid, enum mu_virt_state *ret,
                         struct mu_err *err)
{
    virDomainPtr d = NULL;
    int r = dom_lookup(c, uuid, &d, err);
    if (r < 0)
        return r;
    enum mu_virt_state s = MU_VIRT_ABSENT;
    if (r == 1) {
        r = dom_state(c, d, uuid, &s, err);
        virDomainFree(d);
        if (r < 0)
            return r;
    }
    *ret = s;
    return ok(c, 0);
}

int mu_virt_domain_start(struct mu_virt_conn *c, const char *uuid, struct mu_err *err)
{
    virDomainPtr d = NULL;
    int r = dom_lookup(c, uuid, &d, err);
    if (r <= 0)
        return r < 0 ? r : absent(uuid, err);
    enum mu_virt_state s = MU_VIRT_OTHER;
    r = dom_state(c, d, uuid, &s, err);
    if (r < 0)
        goto out;
    switch (s) {
    case MU_VIRT_RUNNING:
        break;
    case MU_VIRT_PAUSED:
        if (virDomainResume(d) < 0)
            r = fail(c, err, "cannot resume domain mu-%s", uuid);
        break;
    case MU_VIRT_SHUTDOWN:
        r = mu_err_set(err, MU_EBUSY, "domain mu-%s is shutting down: start it once it is off",
                       uuid);
        break;
    default:
        if (virDomainCreate(d) < 0) {
            /* Started by someone else meanwhile? Then the goal is reached. */
            struct lv_err e;
            lv_err_save(&e);
            enum mu_virt_state now = MU_VIRT_OTHER;
            if (e.code == VIR_ERR_OPERATION_INVALID && dom_state(c, d, uuid, &now, NULL) == 0 &&
                now == MU_VIRT_RUNNING)
                break;
            r = fail_saved(c, err, &e, "cannot start domain mu-%s", uuid);
        }
        break;
    }
out:
    virDomainFree(d);
    return ok(c, r);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Destroys d; a domain that is already off (or gone) counts as destroyed. */
static int dom_destroy(struct mu_virt_conn *c, virDomainPtr d, const char *uuid, struct mu_err *err)
{
    if (virDomainDestroy(d) == 0)
        return 0;
    struct lv_err e;
    lv_err_save(&e);
    if (e.code == VIR_ERR_NO_DOMAIN)
        return 0;
    enum mu_virt_state s = MU_VIRT_OTHER;
    if (e.code == VIR_ERR_OPERATION_INVALID && dom_state(c, d, uuid, &s, NULL) == 0 &&
        (s == MU_VIRT_SHUTOFF || s == MU_VIRT_ABSENT))
        return 0;
    return fail_saved(c, err, &e, "cannot destroy domain mu-%s", uuid);
}

int mu_virt_domain_stop(struct mu_virt_conn *c, const char *uuid, int64_t timeout_ms,
                        bool *ret_forced, struct mu_err *err)
{
    virDomainPtr d = NULL;
    int r = dom_lookup(c, uuid, &d, err);
    if (r <= 0)
        return r < 0 ? r : absent(uuid, err);
    bool forced = false;
    enum mu_virt_state s = MU_VIRT_OTHER;
    r = dom_state(c, d, uuid, &s, err);
    if (r < 0 || s == MU_VIRT_SHUTOFF || s == MU_VIRT_ABSENT)
        goto out;
    if (s == MU_VIRT_RUNNING || s == MU_VIRT_SHUTDOWN) {
        int sr = virDomainShutdownFlags(d, VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN);
        if (sr < 0 && flags_unsupported())
            sr = virDomainShutdown(d);
        if (sr < 0) {
            /* Already going down or off: keep waiting. Transport errors end here. */
            struct lv_err e;
            lv_err_save(&e);
            if (error_is_transport(c, &e)) {
                r = fail_saved(c, err, &e, "cannot shut down domain mu-%s", uuid);
                goto out;
            }
        }
        int64_t deadline = mu_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
        for (;;) {
            r = dom_state(c, d, uuid, &s, err);
            if (r < 0 || s == MU_VIRT_SHUTOFF || s == MU_VIRT_ABSENT)
                goto out;
            int64_t left = deadline - mu_mono_ms();
            if (left <= 0)
                break;
            sleep_ms(left < STOP_POLL_MS ? left : STOP_POLL_MS);
        }
    }
    /* Paused, crashed, or deaf to the power button. */
    r = dom_destroy(c, d, uuid, err);
    forced = r == 0;
out:
    virDomainFree(d);
    if (r == 0 && ret_forced)
        *ret_forced = forced;
    return ok(c, r);
}

int mu_virt_domain_destroy(struct mu_virt_conn *c, const char *uuid, struct mu_err *err)
{
    virDomainPtr d = NULL;
    int r = dom_lookup(c, uuid, &d, err);
    if (r <= 0)
        return r < 0 ? r : ok(c, 0);
    enum mu_virt_state s = MU_VIRT_OTHER;
    r = dom_state(c, d, uuid, &s, err);
    if (r == 0 && s != MU_VIRT_SHUTOFF && s != MU_VIRT_ABSENT)
        r = dom_destroy(c, d, uuid, err);
    virDomainFree(d);
    return ok(c, r);
}

int mu_virt_domain_reboot(struct mu_virt_conn *c, const char *uuid, struct mu_err *err)
{
    virDomainPtr d = NULL;
    int r = dom_lookup(c, uuid, &d, err);
    if (r <= 0)
        return r < 0 ? r : absent(uuid, err);
    enum mu_virt_state s = MU_VIRT_OTHER;
    r = dom_state(c, d, uuid, &s, err);
    if (r == 0 && s != MU_VIRT_RUNNING)
        r = mu_err_set(err, MU_ECONFLICT, "domain mu-%s is %s, not running: cannot reboot it", uuid,
                       mu_virt_state_name(s));
    if (r == 0) {
        int rr = virDomainReboot(d, VIR_DOMAIN_REBOOT_ACPI_POWER_BTN);
        if (rr < 0 && flags_unsupported())
            rr = virDomainReboot(d, 0);
        if (rr < 0)
            r = fail(c, err, "cannot reboot domain mu-%s", uuid);
    }
    virDomainFree(d);
    return ok(c, r);
}

int mu_virt_domain_undefine(struct mu_virt_conn *c, const char *uuid, struct mu_err *err)
{
    virDomainPtr d = NULL;
    int r = dom_lookup(c, uuid, &d, err);
    if (r <= 0)
        return r < 0 ? r : ok(c, 0);
    enum mu_virt_state s = MU_VIRT_OTHER;
    r = dom_state(c, d, uuid, &s, err);
    if (r == 0 && s != MU_VIRT_SHUTOFF && s != MU_VIRT_ABSENT)
        r = mu_err_set(err, MU_ECONFLICT, "domain mu-%s is %s: stop it before undefining it", uuid,
                       mu_virt_state_name(s));
    if (r == 0 && s != MU_VIRT_ABSENT) {
        int ur =
            virDomainUndefineFlags(d, VIR_DOMAIN_UNDEFINE_NVRAM | VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                                          VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA);
        if (ur < 0 && flags_unsupported())
            ur = virDomainUndefine(d);
        if (ur < 0 && last_code() != VIR_ERR_NO_DOMAIN)
            r = fail(c, err, "cannot undefine domain mu-%s", uuid);
    }
    virDomainFree(d);
    return ok(c, r);
}

int mu_virt_domain_list(struct mu_virt_conn *c, struct mu_virt_domain_info **ret, size_t *ret_n,
                        struct mu_err *err)
{
    int r = conn_ensure(c, err);
    if (r < 0)
        return r;
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(c->conn, &doms, 0);
    if (n < 0)
        return fail(c, err, "cannot list domains");
    struct mu_virt_domain_info *out = mu_xcalloc((size_t)n + 1, sizeof *out);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        virDomainPtr d = doms[i];
        char *md =
            r == 0 ? virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, MU_VIRT_NS, 0) : NULL;
        if (!md && r == 0) {
            int code = last_code();
            /* Not ours, or gone since the listing. */
            if (code != VIR_ERR_NO_DOMAIN_METADATA && code != VIR_ERR_NO_DOMAIN)
                r = fail(c, err, "cannot read the metadata of a domain");
        }
        struct mu_virt_domain_info *di = &out[k];
        if (md && mu_virt_metadata_parse(md, &di->vm_id, &di->tenant_id) == 0 &&
            virDomainGetUUIDString(d, di->uuid) == 0) {
            if (dom_state(c, d, di->uuid, &di->state, NULL) < 0)
                di->state = MU_VIRT_OTHER;
            k++;
        }
        free(md);
        virDomainFree(d);
    }
    free(doms);
    if (r < 0) {
        free(out);
        return r;
    }
    *ret = out;
    *ret_n = k;
    return ok(c, 0);
}

/* ---- networks: seed volumes and nwfilters ------------------------------------------- */

static void sha256_hex_of(const void *data, size_t len, char out[SHA256_HEX_LEN + 1])
{
    unsigned char d[32];
    gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, d);
    mu_hex_encode(d, sizeof d, out);
}

int mu_virt_seed_ensure(struct mu_virt_conn *c, const char *vol_name, const unsigned char *buf,
                        size_t len, char *ret_path, struct mu_err *err)
{
    int r = check_vol_name(vol_name, "vol_name", err);
    if (r < 0)
        return r;
    if (!buf || len == 0 || len > (size_t)64 << 20)
        return mu_err_setf(err, MU_EINVAL, "seed", "seed image must be 1 byte .. 64 MiB");
    char sha[SHA256_HEX_LEN + 1], path[MU_VIRT_PATH_MAX];
    sha256_hex_of(buf, len, sha);
    virStoragePoolPtr p = NULL;
    virStorageVolPtr v = NULL;
    int fd = -1;
    r = pool_open(c, &p, err);
    if (r < 0)
        return r;
    r = vol_lookup(c, p, vol_name, &v, err);
    if (r < 0)
        goto out;
    if (r == 1 && !c->validate) {
        r = 0; /* test driver: no streams, the volume stands for the seed */
    } else if (r == 1) {
        char have[SHA256_HEX_LEN + 1];
        uint64_t have_bytes = 0;
        if (verified_has(c, vol_name, sha)) {
            r = 0;
        } else {
            r = vol_sha256(c, v, vol_name, have, &have_bytes, err);
            if (r < 0)
                goto out;
            if (have_bytes == len && strcmp(have, sha) == 0) {
                verified_set(c, vol_name, sha);
            } else {
                /* Another NIC layout or user-data: replace it. */
                verified_forget(c, vol_name);
                if (virStorageVolDelete(v, 0) < 0) {
                    r = fail(c, err, "cannot delete the outdated seed volume %s", vol_name);
                    goto out;
                }
                virStorageVolFree(v);
                v = NULL;
                r = 0;
            }
        }
    } else {
        r = 0;
    }
    if (!v && !c->validate) {
        MU_AUTOFREE char *xml = mu_virt_volume_xml(vol_name, "raw", len, NULL, NULL);
        v = virStorageVolCreateXML(p, xml, 0);
        if (!v) {
            r = fail(c, err, "cannot create volume %s", vol_name);
            goto out;
        }
    } else if (!v) {
        /* image_upload reads from a file descriptor: an anonymous memory file holds it. */
        fd = memfd_create("mu-seed", MFD_CLOEXEC);
        size_t off = 0;
        while (fd >= 0 && off < len) {
            ssize_t n = write(fd, buf + off, len - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        if (fd < 0 || off != len) {
            r = mu_err_set(err, MU_EIO, "cannot stage the seed image: %s", strerror(errno));
            goto out;
        }
        r = image_upload(c, p, vol_name, fd, len, "raw", sha, err);
        if (r < 0)
            goto out;
        verified_set(c, vol_name, sha);
        r = vol_lookup(c, p, vol_name, &v, err);
        if (r == 0)
            r = mu_err_set(err, MU_EIO, "seed volume %s vanished after its upload", vol_name);
        if (r < 0)
            goto out;
        r = 0;
    }
    r = vol_path(c, v, vol_name, path, sizeof path, err);
    if (r == 0 && ret_path)
        memcpy(ret_path, path, strlen(path) + 1);
out:
    if (fd >= 0)
        close(fd);
    if (v)
        virStorageVolFree(v);
    virStoragePoolFree(p);
    return ok(c, r);
}

static struct verified *filter_cached(struct mu_virt_conn *c, const char *name)
{
    for (size_t i = 0; i < c->n_filters; i++)
        if (strcmp(c->filters[i].vol, name) == 0)
            return &c->filters[i];
    return NULL;
}

int mu_virt_nwfilter_define(struct mu_virt_conn *c, int64_t network_id, const char *cidr,
                            const struct mu_sec_rule *rules, size_t n_rules, struct mu_err *err)
{
    MU_AUTOFREE char *xml = NULL;
    int r = mu_virt_nwfilter_xml_build(network_id, cidr, rules, n_rules, &xml, err);
    if (r == 0)
        r = conn_ensure(c, err);
    if (r < 0)
        return r;
    if (!c->validate)
        return ok(c, 0); /* the test driver has no nwfilter driver: nothing to filter */
    char name[48], sha[SHA256_HEX_LEN + 1];
    mu_virt_nwfilter_name(network_id, name, sizeof name);
    sha256_hex_of(xml, strlen(xml), sha);
    struct verified *f = filter_cached(c, name);
    if (f && strcmp(f->sha, sha) == 0) {
        /* Still there? A node restart or a hand-made undefine would have dropped it. */
        virNWFilterPtr have = virNWFilterLookupByName(c->conn, name);
        if (have) {
            virNWFilterFree(have);
            return ok(c, 0);
        }
    }
    /* Defining an existing filter (same name and UUID) replaces it, and libvirt rebuilds the
     * rules of every running interface that references it. */
    virNWFilterPtr nf = virNWFilterDefineXML(c->conn, xml);
    if (!nf) {
        if (last_code() == VIR_ERR_NO_SUPPORT)
            return mu_err_set(err, MU_EIO,
                              "the node's libvirtd has no nwfilter driver: tenant networks need a "
                              "privileged libvirtd with libvirt-daemon-config-nwfilter");
        return fail(c, err, "cannot define nwfilter %s", name);
    }
    virNWFilterFree(nf);
    if (!f) {
        c->filters = mu_xrealloc(c->filters, (c->n_filters + 1) * sizeof *c->filters);
        f = &c->filters[c->n_filters++];
        snprintf(f->vol, sizeof f->vol, "%s", name);
    }
    snprintf(f->sha, sizeof f->sha, "%s", sha);
    return ok(c, 0);
}

int mu_virt_nwfilter_undefine(struct mu_virt_conn *c, int64_t network_id, struct mu_err *err)
{
    if (network_id <= 0)
        return mu_err_setf(err, MU_EINVAL, "network_id", "network_id must be positive");
    int r = conn_ensure(c, err);
    if (r < 0)
        return r;
    if (!c->validate)
        return ok(c, 0);
    char name[48];
    mu_virt_nwfilter_name(network_id, name, sizeof name);
    for (size_t i = 0; i < c->n_filters; i++) {
        if (strcmp(c->filters[i].vol, name) == 0) {
            c->filters[i] = c->filters[--c->n_filters];
            break;
        }
    }
    virNWFilterPtr nf = virNWFilterLookupByName(c->conn, name);
    if (!nf) {
        int code = last_code();
        if (code == VIR_ERR_NO_NWFILTER || code == VIR_ERR_NO_SUPPORT)
            return ok(c, 0);
        return fail(c, err, "cannot look up nwfilter %s", name);
    }
    r = 0;
    if (virNWFilterUndefine(nf) < 0) {
        if (last_code() == VIR_ERR_OPERATION_INVALID)
            r = mu_err_set(err, MU_ECONFLICT, "nwfilter %s is still used by an interface", name);
        else if (last_code() != VIR_ERR_NO_NWFILTER)
            r = fail(c, err, "cannot undefine nwfilter %s", name);
    }
    virNWFilterFree(nf);
    return ok(c, r);
}
