/* Host health from /proc: CPU use between two samples of /proc/stat, load averages,
 * memory and uptime. Small fixed buffers only: /proc/stat's long lines (intr) come after
 * the cpu lines, which are all we read. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collect/collect.h"
#include "mutualis/util.h"

#define LOAD_MAX 1e6

void mu_collect_host_init(struct mu_collect_host *h, const char *proc_root)
{
    memset(h, 0, sizeof *h);
    snprintf(h->proc_root, sizeof h->proc_root, "%s", proc_root ? proc_root : "/proc");
}

static FILE *open_proc(const struct mu_collect_host *h, const char *name, struct mu_err *err)
{
    char path[320];
    snprintf(path, sizeof path, "%s/%s", h->proc_root, name);
    FILE *f = fopen(path, "re");
    if (!f)
        mu_err_set(err, MU_EIO, "cannot read %s: %s", path, strerror(errno));
    return f;
}

/* Reads up to max unsigned numbers separated by spaces from p. Returns how many. */
static int read_u64s(const char *p, uint64_t *out, int max)
{
    int n = 0;
    while (n < max) {
        while (*p == ' ')
            p++;
        if (*p < '0' || *p > '9')
            break;
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno != 0 || end == p)
            break;
        out[n++] = v;
        p = end;
    }
    return n;
}

/* Busy and total jiffies from the "cpu " line, and the number of "cpuN" lines. */
static int read_stat(const struct mu_collect_host *h, uint64_t *busy, uint64_t *total,
                     int64_t *cpus, struct mu_err *err)
{
    FILE *f = open_proc(h, "stat", err);
    if (!f)
        return MU_EIO;
    char line[512];
    int rc = MU_EIO;
    int64_t n = 0;
    bool have_total = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "cpu", 3) != 0)
            break; /* the cpu lines come first */
        if (line[3] == ' ') {
            /* user nice system idle iowait irq softirq steal (guest is inside user) */
            uint64_t v[8] = {0};
            int k = read_u64s(line + 3, v, 8);
            if (k < 4)
                break;
            *busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
            *total = *busy + v[3] + v[4];
            have_total = true;
        } else if (line[3] >= '0' && line[3] <= '9') {
            n++;
        }
        if (!strchr(line, '\n'))
            break; /* a cpu line longer than the buffer: not /proc/stat as we know it */
    }
    fclose(f);
    if (have_total && n > 0) {
        *cpus = n;
        rc = 0;
    } else {
        mu_err_set(err, MU_EIO, "%s/stat: no cpu lines", h->proc_root);
    }
    return rc;
}

static int read_loadavg(const struct mu_collect_host *h, struct mu_report_host *ret,
                        struct mu_err *err)
{
    FILE *f = open_proc(h, "loadavg", err);
    if (!f)
        return MU_EIO;
    char line[256];
    int rc = MU_EIO;
    if (fgets(line, sizeof line, f)) {
        double v[3];
        char *p = line;
        int k = 0;
        for (; k < 3; k++) {
            char *end = NULL;
            v[k] = strtod(p, &end);
            if (end == p || !isfinite(v[k]))
                break;
            p = end;
        }
        if (k == 3) {
            ret->load1 = fmin(fmax(v[0], 0), LOAD_MAX);
            ret->load5 = fmin(fmax(v[1], 0), LOAD_MAX);
            ret->load15 = fmin(fmax(v[2], 0), LOAD_MAX);
            rc = 0;
        }
    }
    fclose(f);
    if (rc != 0)
        mu_err_set(err, MU_EIO, "%s/loadavg: unexpected contents", h->proc_root);
    return rc;
}

static int read_meminfo(const struct mu_collect_host *h, struct mu_report_host *ret,
                        struct mu_err *err)
{
    FILE *f = open_proc(h, "meminfo", err);
    if (!f)
        return MU_EIO;
    char line[256];
    uint64_t total = 0, avail = 0;
    bool have_total = false, have_avail = false;
    while (fgets(line, sizeof line, f) && !(have_total && have_avail)) {
        uint64_t v;
        if (strncmp(line, "MemTotal:", 9) == 0 && read_u64s(line + 9, &v, 1) == 1) {
            total = v;
            have_total = true;
        } else if (strncmp(line, "MemAvailable:", 13) == 0 && read_u64s(line + 13, &v, 1) == 1) {
            avail = v;
            have_avail = true;
        }
    }
    fclose(f);
    if (!have_total || !have_avail)
        return mu_err_set(err, MU_EIO, "%s/meminfo: no MemTotal or MemAvailable", h->proc_root);
    /* kB to MiB; MemAvailable is an estimate that never reports more than MemTotal. */
    ret->mem_total_mib = (int64_t)(total / 1024);
    ret->mem_available_mib = (int64_t)((avail > total ? total : avail) / 1024);
    return 0;
}

static int read_uptime(const struct mu_collect_host *h, struct mu_report_host *ret,
                       struct mu_err *err)
{
    FILE *f = open_proc(h, "uptime", err);
    if (!f)
        return MU_EIO;
    char line[128];
    int rc = MU_EIO;
    if (fgets(line, sizeof line, f)) {
        char *end = NULL;
        double up = strtod(line, &end);
        if (end != line && isfinite(up) && up >= 0 && up < 1e10) {
            ret->uptime_s = (int64_t)up;
            rc = 0;
        }
    }
    fclose(f);
    if (rc != 0)
        mu_err_set(err, MU_EIO, "%s/uptime: unexpected contents", h->proc_root);
    return rc;
}

int mu_collect_host_sample(struct mu_collect_host *h, struct mu_report_host *ret,
                           struct mu_err *err)
{
    struct mu_report_host out = {0};
    uint64_t busy = 0, total = 0;
    int rc = read_stat(h, &busy, &total, &out.cpus, err);
    if (rc == 0 && !h->have_prev) {
        /* No earlier sample: measure over a short while rather than since boot. */
        h->prev_busy = busy;
        h->prev_total = total;
        h->have_prev = true;
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        rc = read_stat(h, &busy, &total, &out.cpus, err);
    }
    if (rc != 0)
        return rc;
    uint64_t db = busy - h->prev_busy, dt = total - h->prev_total;
    if (busy < h->prev_busy || total < h->prev_total || dt == 0 || db > dt)
        out.cpu_percent = 0; /* no time passed, or counters went back (CPU hot-unplug) */
    else
        out.cpu_percent = round(10000.0 * (double)db / (double)dt) / 100; /* 0.01 % steps */
    h->prev_busy = busy;
    h->prev_total = total;
    if ((rc = read_loadavg(h, &out, err)) != 0 || (rc = read_meminfo(h, &out, err)) != 0 ||
        (rc = read_uptime(h, &out, err)) != 0)
        return rc;
    *ret = out;
    return 0;
}
