/* Small helpers every program uses: allocation that aborts on failure, automatic
 * cleanup, bounded string building and checked number parsing. */
#ifndef MU_UTIL_H
#define MU_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MU_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MU_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Allocation failure aborts with a message: callers never test for NULL. */
void *mu_xmalloc(size_t n);
void *mu_xcalloc(size_t nmemb, size_t size);
void *mu_xrealloc(void *p, size_t n);
char *mu_xstrdup(const char *s); /* NULL in, NULL out */
char *mu_xstrndup(const char *s, size_t n);
char *mu_xasprintf(const char *fmt, ...) MU_PRINTF(1, 2);

/* __attribute__((cleanup)) helpers: MU_AUTOFREE char *p = ...; return MU_STEAL(p); */
void mu_freep(void *pp);
#define MU_AUTOFREE __attribute__((cleanup(mu_freep)))
#define MU_STEAL(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) mu_steal_tmp_ = (p);                                                         \
        (p) = NULL;                                                                                \
        mu_steal_tmp_;                                                                             \
    })

/* Growable byte buffer, always NUL-terminated. */
struct mu_buf {
    char *data;
    size_t len;
    size_t cap;
};
void mu_buf_init(struct mu_buf *b);
void mu_buf_append(struct mu_buf *b, const void *data, size_t len);
void mu_buf_puts(struct mu_buf *b, const char *s);
void mu_buf_printf(struct mu_buf *b, const char *fmt, ...) MU_PRINTF(2, 3);
char *mu_buf_steal(struct mu_buf *b); /* hands out data, resets b */
void mu_buf_free(struct mu_buf *b);

/* Checked parsing: the whole string must be a base-10 integer in [min, max].
 * Returns 0 and writes *ret, or -1 without touching *ret. */
int mu_parse_i64(const char *s, int64_t min, int64_t max, int64_t *ret);

/* Fills buf with n cryptographically random bytes (GnuTLS nonce/key RNG). Aborts on failure. */
void mu_random_bytes(void *buf, size_t n);
/* Lower-case hex of data into out (2*n+1 bytes). */
void mu_hex_encode(const void *data, size_t n, char *out);

/* Current time: wall clock in ms since the epoch, and monotonic ms. */
int64_t mu_now_ms(void);
int64_t mu_mono_ms(void);
/* RFC 3339 UTC with milliseconds ("2026-11-28T20:33:03.123Z") into out (>= 25 bytes). */
void mu_format_time(int64_t ms, char *out, size_t outlen);
/* Parses RFC 3339 UTC ("...Z" or "+00:00", optional fraction). 0 or -1. */
int mu_parse_time(const char *s, int64_t *ret_ms);

/* Reads a whole file (cap in bytes); NULL and errno set on failure or if larger. */
char *mu_read_file(const char *path, size_t cap, size_t *ret_len);
/* Writes a file atomically (tmp + fsync + rename + fsync dir) with the given mode. 0 or -errno. */
int mu_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);
/* mkdir -p with mode. 0 or -errno. */
int mu_mkdir_p(const char *path, unsigned mode);

#endif
