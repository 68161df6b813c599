/* Request authentication with bearer tokens. Runs on every request: one indexed read of the
 * token by hash and one of its user, no write. Last-use times go to a small in-memory map
 * (token id -> ms) that mu_authn_flush writes in one batch at most once per interval.
 * User rows are not cached: a disabled or deleted user is refused on the next request. */
#include "auth/auth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BEARER_SCHEME     "Bearer "
#define MAP_MIN_CAP       64
#define AUTHN_CACHE_SLOTS 1024

struct mu_authn {
    struct mu_store *st;
    pthread_mutex_t lock;       /* guards the map and last_flush */
    pthread_mutex_t flush_lock; /* one flush at a time, so writes never go back in time */
    /* Open addressing, linear probing; id 0 marks an empty slot (row ids start at 1). */
    int64_t *ids;
    int64_t *ms;
    size_t cap; /* power of two */
    size_t n;
    int64_t last_flush; /* monotonic ms of the last write, INT64_MIN: never */
    /* Successful lookups, valid while the store's auth generation has not moved (any change
     * to a user or token moves it) and the token has not expired. Direct-mapped by hash. */
    pthread_mutex_t cache_lock;
    struct cache_entry {
        char hash[65];
        uint64_t gen;
        int64_t expires_ms;
        struct mu_principal p;
    } cache[AUTHN_CACHE_SLOTS];
};

static size_t cache_slot(const char *hash)
{
    size_t h = 0;
    for (int i = 0; i < 8; i++)
        h = h * 16 + (size_t)(hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
    return h % AUTHN_CACHE_SLOTS;
}

static bool cache_get(struct mu_authn *a, const char *hash, uint64_t gen, int64_t now,
                      struct mu_principal *ret)
{
    struct cache_entry *e = &a->cache[cache_slot(hash)];
    pthread_mutex_lock(&a->cache_lock);
    bool hit =
        e->gen == gen && strcmp(e->hash, hash) == 0 && (e->expires_ms == 0 || now < e->expires_ms);
    if (hit)
        *ret = e->p;
    pthread_mutex_unlock(&a->cache_lock);
    return hit;
}

static void cache_put(struct mu_authn *a, const char *hash, uint64_t gen, int64_t expires_ms,
                      const struct mu_principal *p)
{
    struct cache_entry *e = &a->cache[cache_slot(hash)];
    pthread_mutex_lock(&a->cache_lock);
    memcpy(e->hash, hash, sizeof e->hash);
    e->gen = gen;
    e->expires_ms = expires_ms;
    e->p = *p;
    pthread_mutex_unlock(&a->cache_lock);
}

struct mu_authn *mu_authn_new(struct mu_store *st)
{
    struct mu_authn *a = mu_xcalloc(1, sizeof *a);
    a->st = st;
    pthread_mutex_init(&a->lock, NULL);
    pthread_mutex_init(&a->flush_lock, NULL);
    pthread_mutex_init(&a->cache_lock, NULL);
    a->cap = MAP_MIN_CAP;
    a->ids = mu_xcalloc(a->cap, sizeof *a->ids);
    a->ms = mu_xcalloc(a->cap, sizeof *a->ms);
    a->last_flush = INT64_MIN;
    return a;
}

/* Pending last-use times are lost: call mu_authn_flush(a, 0) first on an orderly stop. */
void mu_authn_free(struct mu_authn *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->lock);
    pthread_mutex_destroy(&a->flush_lock);
    pthread_mutex_destroy(&a->cache_lock);
    free(a->ids);
    free(a->ms);
    free(a);
}

static size_t map_slot(int64_t id, size_t cap)
{
    uint64_t h = (uint64_t)id * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h >> 32) & (cap - 1);
}

/* Keeps the latest time for id. Called with a->lock held. */
static void map_put(struct mu_authn *a, int64_t id, int64_t ms)
{
    if ((a->n + 1) * 2 > a->cap) {
        size_t cap = a->cap * 2;
        int64_t *ids = mu_xcalloc(cap, sizeof *ids);
        int64_t *mss = mu_xcalloc(cap, sizeof *mss);
        for (size_t i = 0; i < a->cap; i++) {
            if (!a->ids[i])
                continue;
            size_t s = map_slot(a->ids[i], cap);
            while (ids[s])
                s = (s + 1) & (cap - 1);
            ids[s] = a->ids[i];
            mss[s] = a->ms[i];
        }
        free(a->ids);
        free(a->ms);
        a->ids = ids;
        a->ms = mss;
        a->cap = cap;
    }
    size_t s = map_slot(id, a->cap);
    while (a->ids[s] && a->ids[s] != id)
        s = (s + 1) & (a->cap - 1);
    if (!a->ids[s]) {
        a->ids[s] = id;
        a->ms[s] = ms;
        a->n++;
    } else if (ms > a->ms[s]) {
        a->ms[s] = ms;
    }
}

static int unauth(struct mu_err *err, const char *detail)
{
    return mu_err_set(err, MU_EUNAUTH, "%s", detail);
}

/* A failure of the store that is not "absent" (I/O, busy) keeps its code and detail. */
static int pass_up(struct mu_err *err, const struct mu_err *e, int rc)
{
    if (err && !err->code)
        *err = *e;
    return rc;
}

int mu_authn_bearer(struct mu_authn *a, const char *header, struct mu_principal *ret,
                    struct mu_err *err)
{
    if (!header || !*header)
        return unauth(err, "authentication required: send the header "
                           "'Authorization: Bearer <token>'");
    if (strncasecmp(header, BEARER_SCHEME, sizeof BEARER_SCHEME - 1) != 0 ||
        header[sizeof BEARER_SCHEME - 1] == ' ' || header[sizeof BEARER_SCHEME - 1] == '\0')
        return unauth(err, "the Authorization header must be 'Bearer <token>'");
    const char *secret = header + sizeof BEARER_SCHEME - 1;
    if (!mu_auth_token_well_formed(secret))
        return unauth(err, "malformed token: a Mutualis token is 'mut_' followed by 43 letters, "
                           "digits, '-' or '_'; check that it was copied in full");

    char hash[65];
    mu_auth_token_hash(secret, hash);
    int64_t now = mu_now_ms();
    /* Read the generation before the rows: an entry is never newer than its generation. */
    uint64_t gen = mu_store_auth_generation(a->st);
    if (cache_get(a, hash, gen, now, ret)) {
        pthread_mutex_lock(&a->lock);
        map_put(a, ret->token_id, now);
        pthread_mutex_unlock(&a->lock);
        return 0;
    }
    struct mu_token t = {0};
    struct mu_user u = {0};
    struct mu_err e = {0};
    int rc = mu_store_token_get_by_hash(a->st, hash, &t, &e);
    if (rc == MU_ENOTFOUND)
        return unauth(err, "no such token");
    if (rc < 0)
        return pass_up(err, &e, rc);
    if (t.revoked_ms) {
        rc = unauth(err, "token revoked");
        goto out;
    }
    if (t.expires_ms && now >= t.expires_ms) {
        char when[32];
        mu_format_time(t.expires_ms, when, sizeof when);
        rc = mu_err_set(err, MU_EUNAUTH, "token expired at %s", when);
        goto out;
    }
    rc = mu_store_user_get(a->st, t.user_id, &u, &e);
    if (rc == MU_ENOTFOUND) {
        /* Deleting a user revokes its tokens; a token without a user is as good as none. */
        rc = unauth(err, "no such token");
        goto out;
    }
    if (rc < 0) {
        rc = pass_up(err, &e, rc);
        goto out;
    }
    if (u.disabled) {
        rc = mu_err_set(err, MU_EUNAUTH,
                        "user \"%s\" is disabled; ask an operator to enable the account", u.name);
        goto out;
    }

    memset(ret, 0, sizeof *ret);
    ret->user_id = u.id;
    snprintf(ret->user_name, sizeof ret->user_name, "%s", u.name ? u.name : "");
    snprintf(ret->role, sizeof ret->role, "%s", u.role ? u.role : "");
    ret->tenant_id = u.tenant_id;
    ret->token_id = t.id;
    cache_put(a, hash, gen, t.expires_ms, ret);

    pthread_mutex_lock(&a->lock);
    map_put(a, t.id, now);
    pthread_mutex_unlock(&a->lock);
    rc = 0;
out:
    mu_token_clear(&t);
    mu_user_clear(&u);
    return rc;
}

int mu_authn_flush(struct mu_authn *a, int64_t min_interval_ms)
{
    pthread_mutex_lock(&a->flush_lock);
    pthread_mutex_lock(&a->lock);
    int64_t mono = mu_mono_ms();
    if (a->n == 0 || (min_interval_ms > 0 && a->last_flush != INT64_MIN &&
                      mono - a->last_flush < min_interval_ms)) {
        pthread_mutex_unlock(&a->lock);
        pthread_mutex_unlock(&a->flush_lock);
        return 0;
    }
    /* Take the pending times and release the map at once: requests keep recording while
     * the batch is written. */
    size_t n = 0;
    int64_t *ids = mu_xmalloc(a->n * sizeof *ids);
    int64_t *ms = mu_xmalloc(a->n * sizeof *ms);
    for (size_t i = 0; i < a->cap; i++) {
        if (!a->ids[i])
            continue;
        ids[n] = a->ids[i];
        ms[n] = a->ms[i];
        n++;
    }
    memset(a->ids, 0, a->cap * sizeof *a->ids);
    a->n = 0;
    a->last_flush = mono;
    pthread_mutex_unlock(&a->lock);

    struct mu_err e = {0};
    int rc = mu_store_token_touch_many(a->st, ids, ms, n, &e);
    if (rc < 0) {
        /* Keep them for the next attempt (a newer time recorded meanwhile wins). */
        pthread_mutex_lock(&a->lock);
        for (size_t i = 0; i < n; i++)
            map_put(a, ids[i], ms[i]);
        pthread_mutex_unlock(&a->lock);
    }
    free(ids);
    free(ms);
    pthread_mutex_unlock(&a->flush_lock);
    return rc < 0 ? rc : (int)n;
}
