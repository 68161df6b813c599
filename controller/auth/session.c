/* Portal sessions: cookie secrets and CSRF tokens, cookie parsing, session authentication,
 * the login's password check (the same argon2id work whether the user exists or not) and
 * the failure counters that rate-limit logins. */
#include "auth/auth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/util.h"
#include "store/sessions.h"

#define RL_KEY_MAX   96
#define RL_SLOTS_MAX 4096
#define RL_OTHER     "\x01other"

/* ---- secrets ---------------------------------------------------------------------- */

void mu_session_secret_generate(char secret[MU_SESSION_SECRET_LEN + 1], char hash[65])
{
    unsigned char raw[MU_SESSION_SECRET_LEN / 2];
    mu_random_bytes(raw, sizeof raw);
    mu_hex_encode(raw, sizeof raw, secret);
    secret[MU_SESSION_SECRET_LEN] = '\0';
    mu_auth_token_hash(secret, hash);
}

void mu_session_csrf_generate(char csrf[65])
{
    unsigned char raw[32];
    mu_random_bytes(raw, sizeof raw);
    mu_hex_encode(raw, sizeof raw, csrf);
    csrf[64] = '\0';
}

static bool hex_lower(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

int mu_session_cookie_get(const char *cookie_header, char out[MU_SESSION_SECRET_LEN + 1])
{
    static const char name[] = MU_SESSION_COOKIE "=";
    const char *p = cookie_header;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        size_t len = strcspn(p, ";");
        if (len > sizeof name - 1 && memcmp(p, name, sizeof name - 1) == 0) {
            const char *v = p + sizeof name - 1;
            size_t vlen = len - (sizeof name - 1);
            while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                vlen--;
            if (vlen != MU_SESSION_SECRET_LEN || !hex_lower(v, vlen))
                return 0;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return 1;
        }
        p += len;
    }
    return 0;
}

bool mu_session_csrf_equal(const char *presented, const char *expected)
{
    if (!presented || !expected)
        return false;
    size_t n = strlen(expected);
    if (n == 0 || strlen(presented) != n)
        return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(presented[i] ^ expected[i]);
    return diff == 0;
}

/* ---- authentication --------------------------------------------------------------- */

int mu_authn_session(struct mu_store *st, const char *secret, int64_t now_ms, int64_t idle_ms,
                     struct mu_principal *ret, char ret_csrf[65], struct mu_err *err)
{
    char hash[65];
    struct mu_session s;
    struct mu_user u = {0};
    struct mu_err e = {0};
    int rc;

    mu_auth_token_hash(secret, hash);
    rc = mu_store_session_get_by_hash(st, hash, &s, &e);
    if (rc == MU_ENOTFOUND)
        return mu_err_set(err, MU_EUNAUTH, "your session is unknown or has ended: log in again");
    if (rc < 0) {
        *err = e;
        return rc;
    }
    if (s.revoked_ms)
        return mu_err_set(err, MU_EUNAUTH, "you logged out of this session: log in again");
    if (now_ms >= s.expires_ms)
        return mu_err_set(err, MU_EUNAUTH,
                          "your session expired (a session lasts at most %lld hours): log in "
                          "again",
                          (long long)(MU_SESSION_MAX_MS / 3600000));
    if (now_ms - s.last_seen_ms >= idle_ms)
        return mu_err_set(err, MU_EUNAUTH,
                          "your session expired after %lld minutes without activity: log in "
                          "again",
                          (long long)(idle_ms / 60000));
    rc = mu_store_user_get(st, s.user_id, &u, &e);
    if (rc == MU_ENOTFOUND)
        return mu_err_set(err, MU_EUNAUTH, "your session is unknown or has ended: log in again");
    if (rc < 0) {
        *err = e;
        return rc;
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
    ret->token_id = 0;
    ret->session_id = s.id;
    memcpy(ret_csrf, s.csrf, 65);
    /* Activity keeps the session alive; it is written at most once a minute, so an idle
     * timeout of 30 minutes is exact to a minute and a busy portal adds few writes. A
     * failed write only shortens the session: the request itself goes on. */
    if (now_ms - s.last_seen_ms >= MU_SESSION_TOUCH_MS)
        (void)mu_store_session_touch(st, s.id, now_ms, &e);
    rc = 0;
out:
    mu_user_clear(&u);
    return rc;
}

/* An argon2id hash of a random password, made once: unknown users are checked against it
 * so that a login takes as long whether the user exists or not. */
static char *dummy_hash;
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_init(void)
{
    char pw[33];
    unsigned char raw[16];
    mu_random_bytes(raw, sizeof raw);
    mu_hex_encode(raw, sizeof raw, pw);
    pw[32] = '\0';
    dummy_hash = mu_auth_password_hash(pw);
}

int mu_session_check_password(struct mu_store *st, const char *name, const char *password,
                              struct mu_user *ret_user, struct mu_err *err)
{
    struct mu_user u = {0};
    struct mu_err e = {0};
    int rc = mu_store_user_get_by_name(st, name, &u, &e);
    if (rc < 0 && rc != MU_ENOTFOUND) {
        *err = e;
        return rc;
    }
    pthread_once(&dummy_once, dummy_init);
    bool known = rc == 0 && u.password_hash;
    bool ok = mu_auth_password_verify(known ? u.password_hash : dummy_hash, password) && known;
    if (!ok) {
        mu_user_clear(&u);
        return mu_err_set(err, MU_EUNAUTH, "wrong user name or password (both are case-sensitive)");
    }
    if (u.disabled) {
        rc = mu_err_set(err, MU_EUNAUTH,
                        "user \"%s\" is disabled; ask an operator to enable the account", u.name);
        mu_user_clear(&u);
        return rc;
    }
    *ret_user = u;
    return 0;
}

/* ---- failure counters ------------------------------------------------------------- */

struct rl_slot {
    char key[RL_KEY_MAX];
    int64_t window_start;
    unsigned count;
};

struct mu_ratelimit {
    pthread_mutex_t lock;
    unsigned max;
    int64_t window_ms;
    struct rl_slot *slots;
    size_t n, cap;
};

struct mu_ratelimit *mu_ratelimit_new(unsigned max, int64_t window_ms)
{
    struct mu_ratelimit *rl = mu_xcalloc(1, sizeof *rl);
    pthread_mutex_init(&rl->lock, NULL);
    rl->max = max;
    rl->window_ms = window_ms;
    return rl;
}

void mu_ratelimit_free(struct mu_ratelimit *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->lock);
    free(rl->slots);
    free(rl);
}

/* The slot of key whose window is still open at now (NULL if none). Lock held. */
static struct rl_slot *rl_find(struct mu_ratelimit *rl, const char *key, int64_t now)
{
    for (size_t i = 0; i < rl->n; i++)
        if (strncmp(rl->slots[i].key, key, RL_KEY_MAX - 1) == 0)
            return now - rl->slots[i].window_start < rl->window_ms ? &rl->slots[i] : NULL;
    return NULL;
}

bool mu_ratelimit_blocked(struct mu_ratelimit *rl, const char *key, int64_t now_ms,
                          int64_t *ret_retry_ms)
{
    pthread_mutex_lock(&rl->lock);
    struct rl_slot *s = rl_find(rl, key, now_ms);
    if (!s && rl->n >= RL_SLOTS_MAX)
        s = rl_find(rl, RL_OTHER, now_ms);
    bool blocked = s && s->count >= rl->max;
    if (blocked && ret_retry_ms)
        *ret_retry_ms = s->window_start + rl->window_ms - now_ms;
    pthread_mutex_unlock(&rl->lock);
    return blocked;
}

void mu_ratelimit_fail(struct mu_ratelimit *rl, const char *key, int64_t now_ms)
{
    pthread_mutex_lock(&rl->lock);
    struct rl_slot *s = NULL;
    for (size_t i = 0; i < rl->n && !s; i++)
        if (strncmp(rl->slots[i].key, key, RL_KEY_MAX - 1) == 0)
            s = &rl->slots[i];
    if (!s && rl->n >= RL_SLOTS_MAX) {
        /* Drop the slots whose window is over, then share one bucket if still full. */
        size_t keep = 0;
        for (size_t i = 0; i < rl->n; i++)
            if (now_ms - rl->slots[i].window_start < rl->window_ms)
                rl->slots[keep++] = rl->slots[i];
        rl->n = keep;
        if (rl->n >= RL_SLOTS_MAX) {
            key = RL_OTHER;
            for (size_t i = 0; i < rl->n && !s; i++)
                if (strcmp(rl->slots[i].key, key) == 0)
                    s = &rl->slots[i];
            if (!s)
                s = &rl->slots[rl->n - 1]; /* the newest slot makes room for the bucket */
            if (strcmp(s->key, key) != 0) {
                memset(s, 0, sizeof *s);
                snprintf(s->key, sizeof s->key, "%s", key);
                s->window_start = now_ms;
            }
        }
    }
    if (!s) {
        if (rl->n == rl->cap) {
            rl->cap = rl->cap ? rl->cap * 2 : 16;
            rl->slots = mu_xrealloc(rl->slots, rl->cap * sizeof *rl->slots);
        }
        s = &rl->slots[rl->n++];
        memset(s, 0, sizeof *s);
        snprintf(s->key, sizeof s->key, "%s", key);
        s->window_start = now_ms;
    }
    if (now_ms - s->window_start >= rl->window_ms) {
        s->window_start = now_ms;
        s->count = 0;
    }
    s->count++;
    pthread_mutex_unlock(&rl->lock);
}

void mu_ratelimit_reset(struct mu_ratelimit *rl, const char *key)
{
    pthread_mutex_lock(&rl->lock);
    for (size_t i = 0; i < rl->n; i++) {
        if (strncmp(rl->slots[i].key, key, RL_KEY_MAX - 1) == 0) {
            rl->slots[i] = rl->slots[rl->n - 1];
            rl->n--;
            break;
        }
    }
    pthread_mutex_unlock(&rl->lock);
}
