/* Allocation, buffers, number parsing, time and file helpers shared by every program. */
#include "mutualis/util.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void oom(size_t n)
{
    fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

void *mu_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *mu_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        oom(nmemb * size);
    return p;
}

void *mu_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *mu_xstrdup(const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        oom(strlen(s) + 1);
    return d;
}

char *mu_xstrndup(const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *d = strndup(s, n);
    if (!d)
        oom(n + 1);
    return d;
}

char *mu_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *out = NULL;
    va_start(ap, fmt);
    int r = vasprintf(&out, fmt, ap);
    va_end(ap);
    if (r < 0)
        oom(strlen(fmt));
    return out;
}

void mu_freep(void *pp)
{
    free(*(void **)pp);
}

void mu_buf_init(struct mu_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

static void buf_reserve(struct mu_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->data = mu_xrealloc(b->data, cap);
    b->cap = cap;
}

void mu_buf_append(struct mu_buf *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void mu_buf_puts(struct mu_buf *b, const char *s)
{
    mu_buf_append(b, s, strlen(s));
}

void mu_buf_printf(struct mu_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *mu_buf_steal(struct mu_buf *b)
{
    char *d = b->data ? b->data : mu_xstrdup("");
    mu_buf_init(b);
    return d;
}

void mu_buf_free(struct mu_buf *b)
{
    free(b->data);
    mu_buf_init(b);
}

int mu_parse_i64(const char *s, int64_t min, int64_t max, int64_t *ret)
{
    if (!s || !*s)
        return -1;
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *ret = v;
    return 0;
}

void mu_random_bytes(void *buf, size_t n)
{
    if (gnutls_rnd(GNUTLS_RND_KEY, buf, n) != 0) {
        fprintf(stderr, "fatal: random number generator failed\n");
        abort();
    }
}

void mu_hex_encode(const void *data, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *d = data;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

int64_t mu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mu_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mu_format_time(int64_t ms, char *out, size_t outlen)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

int mu_parse_time(const char *s, int64_t *ret_ms)
{
    int y, mo, d, h, mi, sec, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
        n != 19)
        return -1;
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        sec > 60 || h < 0 || mi < 0 || sec < 0)
        return -1;
    const char *p = s + 19;
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3)
                frac = frac * 10 + (*p - '0');
            digits++;
            p++;
        }
        if (digits == 0 || digits > 9)
            return -1;
        while (digits < 3) {
            frac *= 10;
            digits++;
        }
    }
    if (!(strcmp(p, "Z") == 0 || strcmp(p, "+00:00") == 0))
        return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    struct tm check;
    gmtime_r(&t, &check);
    if (check.tm_mday != d) /* 31 February and the like */
        return -1;
    *ret_ms = (int64_t)t * 1000 + frac;
    return 0;
}

char *mu_read_file(const char *path, size_t cap, size_t *ret_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct mu_buf b;
    mu_buf_init(&b);
    char chunk[65536];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            mu_buf_free(&b);
            errno = e;
            return NULL;
        }
        if (r == 0)
            break;
        if (b.len + (size_t)r > cap) {
            close(fd);
            mu_buf_free(&b);
            errno = EFBIG;
            return NULL;
        }
        mu_buf_append(&b, chunk, (size_t)r);
    }
    close(fd);
    if (ret_len)
        *ret_len = b.len;
    return mu_buf_steal(&b);
}

/* fsyncs the directory holding path, so that a rename in it is durable. */
static void sync_parent_dir(const char *path)
{
    MU_AUTOFREE char *dir = mu_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

int mu_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
    MU_AUTOFREE char *tmp = mu_xasprintf("%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    if (fchmod(fd, mode) != 0)
        goto fail;
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto fail;
    sync_parent_dir(path);
    return 0;
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return -e;
}

int mu_mkdir_p(const char *path, unsigned mode)
{
    MU_AUTOFREE char *p = mu_xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(p, mode) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}
