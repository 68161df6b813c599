/* The evaluator (alerts.h): a pure step from (conditions now, previous states, now_ms) to
 * (next states, transitions). Both sides are sorted by (rule, subject) and merged. */
#include "alerts/alerts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutualis/util.h"

static int key_cmp(int ra, const char *sa, int rb, const char *sb)
{
    if (ra != rb)
        return ra < rb ? -1 : 1;
    return strcmp(sa, sb);
}

static int cond_cmp(const void *a, const void *b)
{
    const struct mu_alert_cond *x = a, *y = b;
    return key_cmp(x->rule, x->subject, y->rule, y->subject);
}

static int track_cmp(const void *a, const void *b)
{
    const struct mu_alert_track *x = a, *y = b;
    return key_cmp(x->rule, x->subject, y->rule, y->subject);
}

struct out {
    struct mu_alert_track *next;
    size_t nnext;
    struct mu_alert_transition *tr;
    size_t ntr;
};

static struct mu_alert_track *push_next(struct out *o, const struct mu_alert_track *t)
{
    o->next[o->nnext] = *t;
    return &o->next[o->nnext++];
}

static void push_tr(struct out *o, enum mu_alert_change change, const struct mu_alert_track *t,
                    size_t next_index)
{
    o->tr[o->ntr++] =
        (struct mu_alert_transition){.change = change, .track = *t, .next_index = next_index};
}

static void fire(struct out *o, struct mu_alert_track *t, int64_t now_ms)
{
    t->phase = MU_ALERT_FIRING;
    t->since_ms = now_ms;
    t->clear_ms = 0;
    struct mu_alert_track *n = push_next(o, t);
    push_tr(o, MU_ALERT_FIRE, n, o->nnext - 1);
}

static void resolve(struct out *o, struct mu_alert_track *t, const char *why)
{
    if (why)
        snprintf(t->detail, sizeof t->detail, "%s", why);
    push_tr(o, MU_ALERT_RESOLVE, t, 0);
}

/* One key: cond (NULL: clear now) against prev (NULL: nothing remembered). */
static void step_one(const struct mu_alert_policy *policy, const struct mu_alert_cond *cond,
                     const struct mu_alert_track *prev, bool known, int64_t now_ms, struct out *o)
{
    int rule = cond ? cond->rule : prev->rule;
    const struct mu_alert_rule *r = &policy->rules[rule];
    struct mu_alert_track t;

    if (prev) {
        t = *prev;
    } else {
        memset(&t, 0, sizeof t);
        t.rule = rule;
        snprintf(t.subject, sizeof t.subject, "%s", cond->subject);
    }
    if (!known) { /* could not look: nothing changes */
        if (prev)
            push_next(o, &t);
        return;
    }
    if (!r->enabled) {
        if (prev && t.phase != MU_ALERT_PENDING)
            resolve(o, &t, "the rule was disabled in the alert policy");
        return;
    }
    if (cond) {
        snprintf(t.detail, sizeof t.detail, "%s", cond->detail);
        if (!prev) {
            t.phase = MU_ALERT_PENDING;
            t.pending_ms = now_ms;
        }
        if (t.phase == MU_ALERT_PENDING) {
            if (now_ms - t.pending_ms >= r->for_ms)
                fire(o, &t, now_ms);
            else
                push_next(o, &t);
            return;
        }
        t.phase = MU_ALERT_FIRING; /* back from clearing, or still firing */
        t.clear_ms = 0;
        push_next(o, &t);
        return;
    }
    /* Clear now. A pending hold is forgotten: the next time starts from zero. */
    if (t.phase == MU_ALERT_PENDING)
        return;
    if (t.phase == MU_ALERT_FIRING) {
        t.phase = MU_ALERT_CLEARING;
        t.clear_ms = now_ms;
    }
    if (now_ms - t.clear_ms >= r->resolve_after_ms) {
        resolve(o, &t, NULL);
        return;
    }
    push_next(o, &t);
}

void mu_alert_step(const struct mu_alert_policy *policy, const struct mu_alert_cond *conds,
                   size_t nconds, const bool *known, const struct mu_alert_track *prev,
                   size_t nprev, int64_t now_ms, struct mu_alert_track **ret_next,
                   size_t *ret_nnext, struct mu_alert_transition **ret_tr, size_t *ret_ntr)
{
    struct mu_alert_cond *c = mu_xcalloc(nconds + 1, sizeof *c);
    struct mu_alert_track *p = mu_xcalloc(nprev + 1, sizeof *p);
    struct out o = {.next = mu_xcalloc(nconds + nprev + 1, sizeof *o.next),
                    .tr = mu_xcalloc(nconds + nprev + 1, sizeof *o.tr)};
    size_t nc = 0;

    /* Conditions of unknown rules (out of range) are dropped; duplicates count once. */
    for (size_t i = 0; i < nconds; i++)
        if (conds[i].rule >= 0 && conds[i].rule < MU_ALERT_RULES)
            c[nc++] = conds[i];
    if (nprev)
        memcpy(p, prev, nprev * sizeof *p);
    qsort(c, nc, sizeof *c, cond_cmp);
    qsort(p, nprev, sizeof *p, track_cmp);

    size_t i = 0, j = 0;
    while (i < nc || j < nprev) {
        int cmp;
        if (i < nc && j < nprev)
            cmp = key_cmp(c[i].rule, c[i].subject, p[j].rule, p[j].subject);
        else
            cmp = i < nc ? -1 : 1;
        const struct mu_alert_cond *cond = cmp <= 0 ? &c[i] : NULL;
        const struct mu_alert_track *tr = cmp >= 0 ? &p[j] : NULL;
        int rule = cond ? cond->rule : tr->rule;
        bool k = rule >= 0 && rule < MU_ALERT_RULES && (!known || known[rule]);
        if (rule < 0 || rule >= MU_ALERT_RULES) {
            j++; /* a track of no rule: forgotten */
            continue;
        }
        step_one(policy, cond, tr, k, now_ms, &o);
        if (cmp <= 0) {
            const struct mu_alert_cond *cur = &c[i];
            while (i < nc && cond_cmp(&c[i], cur) == 0)
                i++;
        }
        if (cmp >= 0)
            j++;
    }
    free(c);
    free(p);
    *ret_next = o.next;
    *ret_nnext = o.nnext;
    *ret_tr = o.tr;
    *ret_ntr = o.ntr;
}
