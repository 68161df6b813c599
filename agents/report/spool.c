/* The on-disk spool (spool.h): one file per record, head..tail contiguous, gap records
 * where telemetry had to go. Crash safety rests on two facts: every file is replaced
 * atomically (tmp, fsync, rename, fsync of the directory), and a record's own file is
 * written before anything that points past it (state.json, the unlink of the record a
 * gap replaces), so that a restart finds either the old or the new state, and open()
 * finishes a fold that a crash interrupted. */
#include "report/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "mutualis/json.h"
#include "mutualis/util.h"
#include "mutualis/validate.h"

#define SEQ_MAX    9007199254740991LL
#define STATE_FILE "state.json"
#define NAME_LEN   27 /* "r-" + 20 digits + ".json" */

struct mu_spool {
    char *dir;
    int lock_fd; /* flock'ed: one agent per spool */
    char node[64];
    char epoch[MU_EPOCH_HEX_LEN + 1];
    int64_t max;
    int64_t head;       /* oldest record; == next_seq when empty */
    int64_t next_seq;   /* tail + 1 */
    int64_t last_saved; /* last_seq in state.json */
    struct mu_spool_stats stats;
};

static char *record_path(const struct mu_spool *s, int64_t seq)
{
    return mu_xasprintf("%s/r-%020" PRId64 ".json", s->dir, seq);
}

static int io_fail(struct mu_err *err, int e, const char *what, const char *path)
{
    return mu_err_set(err, MU_EIO, "spool: cannot %s %s: %s", what, path, strerror(e));
}

static int save_state(struct mu_spool *s, int64_t last_seq, struct mu_err *err)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "{\"epoch\":\"%s\",\"last_seq\":%" PRId64 "}\n", s->epoch,
                     last_seq);
    MU_AUTOFREE char *path = mu_xasprintf("%s/" STATE_FILE, s->dir);
    int rc = mu_write_file_atomic(path, buf, (size_t)n, 0600);
    if (rc != 0)
        return io_fail(err, -rc, "write", path);
    s->last_saved = last_seq;
    return 0;
}

/* Reads state.json: 0 with epoch and last_seq, -1 if absent or unreadable. */
static int load_state(struct mu_spool *s, int64_t *ret_last)
{
    MU_AUTOFREE char *path = mu_xasprintf("%s/" STATE_FILE, s->dir);
    size_t len = 0;
    MU_AUTOFREE char *buf = mu_read_file(path, 4096, &len);
    if (!buf)
        return -1;
    static const char *const keys[] = {"epoch", "last_seq", NULL};
    struct mu_err err = {0};
    cJSON *root = mu_json_parse(buf, len, path, &err);
    const char *epoch = NULL;
    int64_t last = 0;
    int rc = -1;
    if (root && mu_json_expect_object(root, keys, path, &err) == 0 &&
        mu_json_get_str(root, "epoch", true, MU_EPOCH_HEX_LEN, &epoch, &err) == 0 &&
        mu_report_epoch_valid(epoch) &&
        mu_json_get_i64(root, "last_seq", true, 0, SEQ_MAX, &last, &err) == 0) {
        snprintf(s->epoch, sizeof s->epoch, "%s", epoch);
        *ret_last = last;
        rc = 0;
    }
    cJSON_Delete(root);
    return rc;
}

/* Reads and checks record seq. 0 with *ret (and the text if ret_text), or -1. */
static int read_record(const struct mu_spool *s, int64_t seq, struct mu_report *ret,
                       char **ret_text, size_t *ret_len, bool any_epoch)
{
    MU_AUTOFREE char *path = record_path(s, seq);
    size_t len = 0;
    char *buf = mu_read_file(path, MU_REPORT_MAX_BYTES, &len);
    if (!buf)
        return -1;
    struct mu_report r = {0};
    struct mu_err err = {0};
    if (mu_report_parse(buf, len, &r, &err) != 0 || r.seq != seq ||
        (!any_epoch && strcmp(r.epoch, s->epoch) != 0)) {
        mu_report_clear(&r);
        free(buf);
        return -1;
    }
    *ret = r;
    if (ret_text) {
        *ret_text = buf;
        *ret_len = len;
    } else {
        free(buf);
    }
    return 0;
}

/* Prints, checks and writes r as record r->seq. */
static int write_record(struct mu_spool *s, const struct mu_report *r, struct mu_err *err)
{
    MU_AUTOFREE char *text = mu_report_print(r);
    struct mu_report check = {0};
    struct mu_err perr = {0};
    if (mu_report_parse(text, strlen(text), &check, &perr) != 0)
        return mu_err_set(err, MU_EINTERNAL, "spool: the report would be refused: %s", perr.detail);
    mu_report_clear(&check);
    MU_AUTOFREE char *path = record_path(s, r->seq);
    int rc = mu_write_file_atomic(path, text, strlen(text), 0600);
    if (rc != 0)
        return io_fail(err, -rc, "write", path);
    return 0;
}

static void remove_record(const struct mu_spool *s, int64_t seq)
{
    MU_AUTOFREE char *path = record_path(s, seq);
    unlink(path);
}

static void gap_init(const struct mu_spool *s, struct mu_report *g, int64_t seq, int64_t from)
{
    memset(g, 0, sizeof *g);
    snprintf(g->node, sizeof g->node, "%s", s->node);
    snprintf(g->epoch, sizeof g->epoch, "%s", s->epoch);
    g->seq = seq;
    g->time_ms = mu_now_ms();
    g->gap = true;
    g->gap_from = from;
    g->gap_to = seq - 1;
}

/* Writes record seq's number into state.json if it is beyond what was saved. */
static int claim(struct mu_spool *s, int64_t seq, struct mu_err *err)
{
    if (seq >= s->next_seq)
        s->next_seq = seq + 1;
    return seq > s->last_saved ? save_state(s, seq, err) : 0;
}

/* Replaces the head record and the one after it by one gap record (seq head + 1) standing
 * for everything the head stood for. The record after the head may not exist yet: then the
 * gap takes the next sequence number. corrupt: the head could not be read. */
static int fold_head(struct mu_spool *s, struct mu_err *err)
{
    int64_t h = s->head;
    struct mu_report head = {0};
    int64_t from = h;
    bool readable = read_record(s, h, &head, NULL, NULL, false) == 0;
    if (readable && head.gap)
        from = head.gap_from;
    if (!readable)
        s->stats.corrupt++;
    else if (!head.gap)
        s->stats.dropped++;
    mu_report_clear(&head);
    if (h + 1 < s->next_seq)
        s->stats.dropped++; /* the record the gap replaces */
    struct mu_report g;
    gap_init(s, &g, h + 1, from);
    int rc = write_record(s, &g, err);
    if (rc == 0)
        rc = claim(s, h + 1, err);
    if (rc != 0)
        return rc;
    remove_record(s, h);
    s->head = h + 1;
    return 0;
}

static bool record_name(const char *name, int64_t *ret_seq)
{
    if (strlen(name) != NAME_LEN || strncmp(name, "r-", 2) != 0 ||
        strcmp(name + NAME_LEN - 5, ".json") != 0)
        return false;
    char digits[21];
    memcpy(digits, name + 2, 20);
    digits[20] = '\0';
    for (int i = 0; i < 20; i++)
        if (digits[i] < '0' || digits[i] > '9')
            return false;
    return mu_parse_i64(digits, 1, SEQ_MAX, ret_seq) == 0;
}

/* Finds the range of record files and removes temporary files a crash left behind. */
static int scan_dir(struct mu_spool *s, int64_t *ret_min, int64_t *ret_max, struct mu_err *err)
{
    DIR *d = opendir(s->dir);
    if (!d)
        return io_fail(err, errno, "open", s->dir);
    int64_t min = 0, max = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t seq;
        if (record_name(e->d_name, &seq)) {
            if (min == 0 || seq < min)
                min = seq;
            if (seq > max)
                max = seq;
        } else if (strstr(e->d_name, ".tmp.")) {
            MU_AUTOFREE char *path = mu_xasprintf("%s/%s", s->dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
    *ret_min = min;
    *ret_max = max;
    return 0;
}

struct mu_spool *mu_spool_open(const char *dir, const char *node, int64_t max_records,
                               struct mu_err *err)
{
    if (max_records < 4) {
        mu_err_set(err, MU_EINVAL, "spool: at least 4 records are needed");
        return NULL;
    }
    int rc = mu_mkdir_p(dir, 0700);
    if (rc != 0) {
        io_fail(err, -rc, "create", dir);
        return NULL;
    }
    struct mu_spool *s = mu_xcalloc(1, sizeof *s);
    s->dir = mu_xstrdup(dir);
    snprintf(s->node, sizeof s->node, "%s", node);
    s->max = max_records;
    /* Two agents on one spool would number reports twice. */
    MU_AUTOFREE char *lock = mu_xasprintf("%s/lock", dir);
    s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0) {
        io_fail(err, errno, "create", lock);
        goto fail;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            mu_err_set(err, MU_EBUSY, "spool: %s is in use by another agent", dir);
        else
            io_fail(err, errno, "lock", lock);
        goto fail;
    }
    int64_t min = 0, max = 0, last = 0;
    if (scan_dir(s, &min, &max, err) != 0)
        goto fail;
    bool have_state = load_state(s, &last) == 0;
    if (!have_state) {
        /* state.json lost: the newest readable record knows the epoch and the sequence. */
        for (int64_t seq = max; seq >= min && min > 0 && !have_state; seq--) {
            struct mu_report r = {0};
            if (read_record(s, seq, &r, NULL, NULL, true) == 0) {
                snprintf(s->epoch, sizeof s->epoch, "%s", r.epoch);
                last = seq;
                have_state = true;
            }
            mu_report_clear(&r);
        }
        if (!have_state) {
            /* A new spool (or one with nothing readable: records of an unknown epoch
             * cannot be sent). */
            unsigned char rnd[MU_EPOCH_HEX_LEN / 2];
            mu_random_bytes(rnd, sizeof rnd);
            mu_hex_encode(rnd, sizeof rnd, s->epoch);
            for (int64_t seq = min; min > 0 && seq <= max; seq++)
                remove_record(s, seq);
            min = max = last = 0;
        }
        s->last_saved = -1;
    } else {
        s->last_saved = last;
    }
    s->next_seq = (max > last ? max : last) + 1;
    s->head = min > 0 ? min : s->next_seq;
    if (s->last_saved != s->next_seq - 1 && save_state(s, s->next_seq - 1, err) != 0)
        goto fail;
    /* A fold interrupted after its gap was written: the gap already stands for the head. */
    while (s->head + 1 < s->next_seq) {
        struct mu_report next = {0};
        bool covers = read_record(s, s->head + 1, &next, NULL, NULL, false) == 0 && next.gap &&
                      next.gap_from <= s->head;
        mu_report_clear(&next);
        if (!covers)
            break;
        remove_record(s, s->head);
        s->head++;
    }
    return s;
fail:
    mu_spool_free(s);
    return NULL;
}

void mu_spool_free(struct mu_spool *s)
{
    if (!s)
        return;
    if (s->lock_fd > 0)
        close(s->lock_fd); /* and the lock goes with it */
    free(s->dir);
    free(s);
}

const char *mu_spool_epoch(const struct mu_spool *s)
{
    return s->epoch;
}

int64_t mu_spool_count(const struct mu_spool *s)
{
    return s->next_seq - s->head;
}

int64_t mu_spool_head(const struct mu_spool *s)
{
    return s->head;
}

int64_t mu_spool_tail(const struct mu_spool *s)
{
    return s->next_seq - 1;
}

int64_t mu_spool_next_seq(const struct mu_spool *s)
{
    return s->next_seq;
}

void mu_spool_get_stats(const struct mu_spool *s, struct mu_spool_stats *ret)
{
    *ret = s->stats;
}

int mu_spool_append(struct mu_spool *s, struct mu_report *r, struct mu_err *err)
{
    if (s->next_seq >= SEQ_MAX)
        return mu_err_set(err, MU_EINTERNAL, "spool: sequence numbers exhausted");
    while (mu_spool_count(s) >= s->max) {
        int rc = fold_head(s, err);
        if (rc != 0)
            return rc;
    }
    snprintf(r->node, sizeof r->node, "%s", s->node);
    snprintf(r->epoch, sizeof r->epoch, "%s", s->epoch);
    r->seq = s->next_seq;
    int rc = write_record(s, r, err);
    if (rc == 0)
        rc = claim(s, r->seq, err);
    return rc;
}

int mu_spool_peek(struct mu_spool *s, char **ret_text, size_t *ret_len, int64_t *ret_seq,
                  struct mu_err *err)
{
    while (s->head < s->next_seq) {
        struct mu_report r = {0};
        char *text = NULL;
        size_t len = 0;
        if (read_record(s, s->head, &r, &text, &len, false) == 0) {
            mu_report_clear(&r);
            *ret_text = text;
            *ret_len = len;
            *ret_seq = s->head;
            return 0;
        }
        int rc = fold_head(s, err);
        if (rc != 0)
            return rc;
    }
    return 1;
}

int mu_spool_drop_head(struct mu_spool *s, struct mu_err *err)
{
    if (s->head >= s->next_seq)
        return 0;
    struct mu_report head = {0};
    bool gap = read_record(s, s->head, &head, NULL, NULL, false) == 0 && head.gap;
    mu_report_clear(&head);
    /* A gap folded into a new gap would be refused again, without end. */
    if (gap)
        return mu_err_set(err, MU_ECONFLICT,
                          "spool: record %" PRId64 " is a gap record, which is never dropped",
                          s->head);
    return fold_head(s, err);
}

int mu_spool_ack(struct mu_spool *s, const char *epoch, int64_t acked_seq, struct mu_err *err)
{
    if (!epoch || strcmp(epoch, s->epoch) != 0)
        return mu_err_set(err, MU_ECONFLICT, "spool: acknowledgement for epoch %s, not %s",
                          epoch ? epoch : "(none)", s->epoch);
    if (acked_seq < 0 || acked_seq >= SEQ_MAX)
        return mu_err_set(err, MU_EINVAL, "spool: acknowledged sequence %" PRId64 " out of range",
                          acked_seq);
    if (acked_seq >= s->head) {
        int64_t upto = acked_seq < s->next_seq ? acked_seq : s->next_seq - 1;
        for (int64_t seq = s->head; seq <= upto; seq++)
            remove_record(s, seq);
        s->head = upto + 1;
        /* The controller holds numbers this spool never gave (it was restored from an
         * older copy): carry on after them, or new records would look like replays. */
        if (acked_seq >= s->next_seq) {
            s->next_seq = acked_seq + 1;
            s->head = s->next_seq;
            return save_state(s, acked_seq, err);
        }
        return 0;
    }
    if (acked_seq >= s->head - 1)
        return 0;
    /* The controller is behind what this spool dropped (it lost data, or a gap record was
     * lost with a corrupt file): a gap from acked_seq + 1 makes the stream whole again.
     * It replaces the head record, or takes a new number when the spool is empty. */
    s->stats.rewinds++;
    struct mu_report head = {0};
    int64_t seq = s->head;
    if (seq < s->next_seq) {
        if (read_record(s, seq, &head, NULL, NULL, false) != 0)
            s->stats.corrupt++;
        else if (!head.gap)
            s->stats.dropped++;
        mu_report_clear(&head);
    }
    struct mu_report g;
    gap_init(s, &g, seq, acked_seq + 1);
    int rc = write_record(s, &g, err);
    if (rc == 0)
        rc = claim(s, seq, err);
    return rc;
}
