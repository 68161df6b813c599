/* Load generator for bench_ingest.py: N simulated node agents, one thread and one keep-alive
 * mutual-TLS connection each, sending reports as fast as they are acknowledged (each agent
 * waits for its ack before the next report, as a real agent does).
 *
 *   mu_ingest_load report --port P --pki DIR --agents N --domains D --seconds S
 *                         --prefix NAME- --vms FILE --out FILE
 *       certificates: a key and CSR per agent, signed by the controller's CA in DIR
 *       (mu_pki_sign_client, as enrolment does); node names PREFIX0..PREFIX(N-1); the
 *       domains of agent i are the VMs listed for it in FILE ("agent vm_id uuid" lines; any
 *       missing are unknown domains); writes "node epoch last_acked_seq" per agent to FILE.
 *   mu_ingest_load get --port P --pki DIR --agents N --seconds S --path /x
 *       the same client (same certificates, connections and TLS) GETting a static file,
 *       for the nginx baseline.
 *
 * Prints one JSON line of results. Not a CTest test. */
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fleet/pki.h"
#include "mutualis/util.h"

#define RESP_MAX  (64 * 1024)
#define LAT_SLOTS 100000 /* latency histogram, 0.1 ms steps up to 10 s */

struct opts {
    bool get;
    unsigned port;
    const char *pki, *prefix, *vms, *out, *path;
    int agents, domains, seconds;
};

struct agent {
    int index;
    char name[64];
    char epoch[33];
    gnutls_certificate_credentials_t cred;
    char *domains_json; /* the "domains" array, fixed */
    int64_t acked;
    int64_t errors, retries;
};

static struct opts o = {
    .prefix = "bench-", .agents = 500, .domains = 20, .seconds = 20, .path = "/report.json"};
static struct agent *agents;
static atomic_llong total_ok, total_err;
static atomic_llong lat_hist[LAT_SLOTS];
static atomic_bool go, stop;
static int64_t t_end;

static void die(const char *what, int rc)
{
    fprintf(stderr, "ingest_load: %s: %s\n", what, rc < 0 ? gnutls_strerror(rc) : strerror(errno));
    exit(1);
}

/* ---- certificates ------------------------------------------------------------------------- */

static void make_cred(struct agent *a)
{
    gnutls_x509_privkey_t key;
    gnutls_x509_crq_t crq;
    gnutls_datum_t csr = {0}, keypem = {0};
    int rc;

    if ((rc = gnutls_x509_privkey_init(&key)) < 0 ||
        (rc = gnutls_x509_privkey_generate(
             key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0 ||
        (rc = gnutls_x509_crq_init(&crq)) < 0 ||
        (rc = gnutls_x509_crq_set_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, a->name,
                                            strlen(a->name))) < 0 ||
        (rc = gnutls_x509_crq_set_key(crq, key)) < 0 ||
        (rc = gnutls_x509_crq_sign2(crq, key, GNUTLS_DIG_SHA256, 0)) < 0 ||
        (rc = gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_PEM, &csr)) < 0 ||
        (rc = gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &keypem)) < 0)
        die("certificate request", rc);
    char *pem = NULL, serial[41];
    struct mu_err err = {0};
    char *csr_text = mu_xstrndup((const char *)csr.data, csr.size);
    if (mu_pki_sign_client(o.pki, csr_text, a->name, 30, &pem, serial, &err) < 0) {
        fprintf(stderr, "ingest_load: sign: %s\n", err.detail);
        exit(1);
    }
    MU_AUTOFREE char *ca_path = mu_xasprintf("%s/ca.pem", o.pki);
    gnutls_datum_t c = {(unsigned char *)pem, (unsigned)strlen(pem)};
    if ((rc = gnutls_certificate_allocate_credentials(&a->cred)) < 0 ||
        (rc = gnutls_certificate_set_x509_trust_file(a->cred, ca_path, GNUTLS_X509_FMT_PEM)) < 0 ||
        (rc = gnutls_certificate_set_x509_key_mem(a->cred, &c, &keypem, GNUTLS_X509_FMT_PEM)) < 0)
        die("credentials", rc);
    free(csr_text);
    free(pem);
    gnutls_free(csr.data);
    gnutls_free(keypem.data);
    gnutls_x509_crq_deinit(crq);
    gnutls_x509_privkey_deinit(key);
}

/* ---- reports ----------------------------------------------------------------------------- */

static void load_domains(void)
{
    char **lists = mu_xcalloc((size_t)o.agents, sizeof *lists);
    int *counts = mu_xcalloc((size_t)o.agents, sizeof *counts);
    FILE *f = o.vms ? fopen(o.vms, "r") : NULL;
    char line[256];
    struct mu_buf *b = mu_xcalloc((size_t)o.agents, sizeof *b);

    for (int i = 0; i < o.agents; i++)
        mu_buf_init(&b[i]);
    while (f && fgets(line, sizeof line, f)) {
        int ag;
        long long vm;
        char uuid[40];
        if (sscanf(line, "%d %lld %39s", &ag, &vm, uuid) != 3 || ag < 0 || ag >= o.agents ||
            counts[ag] >= o.domains)
            continue;
        mu_buf_printf(&b[ag],
                      "%s{\"uuid\":\"%s\",\"vm_id\":%lld,\"state\":\"running\","
                      "\"cpu_time_ns\":%lld,\"vcpus\":1,\"mem_balloon_kib\":1048576,"
                      "\"mem_rss_kib\":%d,\"disk_allocation_bytes\":%lld,"
                      "\"disk_capacity_bytes\":10737418240,\"net_rx_bytes\":123456789,"
                      "\"net_tx_bytes\":98765432}",
                      counts[ag] ? "," : "", uuid, vm, 1000000000LL * (vm % 1000 + 1),
                      500000 + (int)(vm % 1000), (long long)(1 << 30) + vm);
        counts[ag]++;
    }
    if (f)
        fclose(f);
    for (int i = 0; i < o.agents; i++) {
        /* Domains of no VM stand in for what the file did not list. */
        for (; counts[i] < o.domains; counts[i]++)
            mu_buf_printf(&b[i],
                          "%s{\"uuid\":\"00000000-0000-4000-8000-%04x%08x\",\"state\":\"running\","
                          "\"cpu_time_ns\":1000,\"vcpus\":1,\"mem_balloon_kib\":1024,"
                          "\"mem_rss_kib\":512,\"disk_allocation_bytes\":1,"
                          "\"disk_capacity_bytes\":2,\"net_rx_bytes\":3,\"net_tx_bytes\":4}",
                          counts[i] ? "," : "", (unsigned)i, (unsigned)counts[i]);
        agents[i].domains_json = mu_buf_steal(&b[i]);
    }
    free(b);
    free(lists);
    free(counts);
}

static size_t build_report(const struct agent *a, int64_t seq, char *out, size_t cap)
{
    int64_t now = mu_now_ms();
    char ts[40];
    mu_format_time(now, ts, sizeof ts);
    int n = snprintf(out, cap,
                     "{\"version\":1,\"node\":\"%s\",\"epoch\":\"%s\",\"seq\":%lld,"
                     "\"time\":\"%s\",\"kind\":\"report\",\"host\":{\"cpus\":32,"
                     "\"cpu_percent\":%d.5,\"load1\":1.5,\"load5\":1.2,\"load15\":1.0,"
                     "\"mem_total_mib\":262144,\"mem_available_mib\":131072,"
                     "\"uptime_s\":86400},\"pools\":[{\"name\":\"default\","
                     "\"capacity_gib\":4000,\"allocation_gib\":1000,\"available_gib\":3000}],"
                     "\"domains\":[%s]}",
                     a->name, a->epoch, (long long)seq, ts, (int)(seq % 90), a->domains_json);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* ---- HTTP over TLS ------------------------------------------------------------------------ */

static gnutls_session_t dial(struct agent *a)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0)
        die("connect", 0);
    gnutls_session_t s;
    gnutls_init(&s, GNUTLS_CLIENT);
    gnutls_set_default_priority(s);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, a->cred);
    gnutls_server_name_set(s, GNUTLS_NAME_DNS, "localhost", 9);
    gnutls_transport_set_int(s, fd);
    int rc;
    do {
        rc = gnutls_handshake(s);
    } while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc < 0)
        die("handshake", rc);
    return s;
}

static void hang_up(gnutls_session_t s)
{
    int fd = gnutls_transport_get_int(s);
    gnutls_bye(s, GNUTLS_SHUT_WR);
    gnutls_deinit(s);
    close(fd);
}

static int send_all(gnutls_session_t s, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = gnutls_record_send(s, p, n);
        if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads one response: status, body (NUL-terminated in buf). -1 on a broken connection. */
static int read_response(gnutls_session_t s, char *buf, size_t cap, const char **ret_body)
{
    size_t len = 0;
    char *hend = NULL;
    while (!hend) {
        if (len + 1 >= cap)
            return -1;
        ssize_t r = gnutls_record_recv(s, buf + len, cap - 1 - len);
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
            continue;
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        hend = strstr(buf, "\r\n\r\n");
    }
    int status = 0;
    if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
        return -1;
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    long want = cl ? strtol(cl + 17, NULL, 10) : 0;
    size_t body_at = (size_t)(hend + 4 - buf);
    while (len < body_at + (size_t)want) {
        if (len + 1 >= cap)
            return -1;
        ssize_t r = gnutls_record_recv(s, buf + len, cap - 1 - len);
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
            continue;
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
    }
    *ret_body = buf + body_at;
    return status;
}

static void record_latency(int64_t us)
{
    int64_t slot = us / 100;
    if (slot >= LAT_SLOTS)
        slot = LAT_SLOTS - 1;
    atomic_fetch_add(&lat_hist[slot], 1);
}

static void *agent_main(void *arg)
{
    struct agent *a = arg;
    size_t cap = 4096 + strlen(a->domains_json);
    char *body = mu_xmalloc(cap), *req = mu_xmalloc(cap + 512), *resp = mu_xmalloc(RESP_MAX);
    gnutls_session_t s = dial(a);
    int64_t seq = a->acked + 1;

    while (!atomic_load(&go))
        usleep(1000);
    while (!atomic_load(&stop) && mu_mono_ms() < t_end) {
        size_t n;
        if (o.get) {
            n = (size_t)snprintf(req, cap + 512, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n",
                                 o.path);
        } else {
            size_t bl = build_report(a, seq, body, cap);
            n = (size_t)snprintf(req, cap + 512,
                                 "POST /v1/agent/reports HTTP/1.1\r\nHost: localhost\r\n"
                                 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                                 bl);
            memcpy(req + n, body, bl);
            n += bl;
        }
        struct timespec ts0, ts1;
        clock_gettime(CLOCK_MONOTONIC, &ts0);
        const char *rbody = NULL;
        int status = send_all(s, req, n) < 0 ? -1 : read_response(s, resp, RESP_MAX, &rbody);
        clock_gettime(CLOCK_MONOTONIC, &ts1);
        if (status < 0) {
            hang_up(s);
            s = dial(a);
            a->retries++;
            continue;
        }
        if (status == 200) {
            record_latency((ts1.tv_sec - ts0.tv_sec) * 1000000 +
                           (ts1.tv_nsec - ts0.tv_nsec) / 1000);
            if (!o.get) {
                const char *p = strstr(rbody, "\"acked_seq\":");
                long long acked = p ? strtoll(p + 12, NULL, 10) : -1;
                if (acked != seq) {
                    a->errors++;
                    atomic_fetch_add(&total_err, 1);
                    continue;
                }
                a->acked = seq++;
            }
            atomic_fetch_add(&total_ok, 1);
        } else {
            /* 503: resend the same report; anything else is an error. */
            if (status != 503) {
                a->errors++;
                atomic_fetch_add(&total_err, 1);
                if (a->errors < 3)
                    fprintf(stderr, "agent %s: status %d: %.300s\n", a->name, status,
                            rbody ? rbody : "");
            }
            a->retries++;
        }
    }
    hang_up(s);
    free(body);
    free(req);
    free(resp);
    return NULL;
}

static double percentile(double q)
{
    long long total = 0, seen = 0;
    for (int i = 0; i < LAT_SLOTS; i++)
        total += atomic_load(&lat_hist[i]);
    for (int i = 0; i < LAT_SLOTS; i++) {
        seen += atomic_load(&lat_hist[i]);
        if (total && seen >= (long long)(q * (double)total))
            return (i + 1) / 10.0;
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: mu_ingest_load report|get --port P --pki DIR [--agents N] "
                    "[--domains D] [--seconds S] [--prefix P] [--vms FILE] [--out FILE] "
                    "[--path /x]\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 0;
    }
    o.get = strcmp(argv[1], "get") == 0;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        int64_t n = 0;
        if (strcmp(k, "--pki") == 0)
            o.pki = v;
        else if (strcmp(k, "--prefix") == 0)
            o.prefix = v;
        else if (strcmp(k, "--vms") == 0)
            o.vms = v;
        else if (strcmp(k, "--out") == 0)
            o.out = v;
        else if (strcmp(k, "--path") == 0)
            o.path = v;
        else if (mu_parse_i64(v, 0, 1000000, &n) != 0) {
            usage();
            return 2;
        } else if (strcmp(k, "--port") == 0)
            o.port = (unsigned)n;
        else if (strcmp(k, "--agents") == 0)
            o.agents = (int)n;
        else if (strcmp(k, "--domains") == 0)
            o.domains = (int)n;
        else if (strcmp(k, "--seconds") == 0)
            o.seconds = (int)n;
    }
    if (!o.port || !o.pki || o.agents < 1) {
        usage();
        return 2;
    }
    gnutls_global_init();
    agents = mu_xcalloc((size_t)o.agents, sizeof *agents);
    int64_t t0 = mu_mono_ms();
    for (int i = 0; i < o.agents; i++) {
        struct agent *a = &agents[i];
        a->index = i;
        snprintf(a->name, sizeof a->name, "%s%d", o.prefix, i);
        unsigned char raw[16];
        mu_random_bytes(raw, sizeof raw);
        mu_hex_encode(raw, sizeof raw, a->epoch);
        make_cred(a);
    }
    load_domains();
    fprintf(stderr, "ingest_load: %d certificates in %lld ms\n", o.agents,
            (long long)(mu_mono_ms() - t0));

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_t *th = mu_xcalloc((size_t)o.agents, sizeof *th);
    t_end = mu_mono_ms() + 3600 * 1000;
    for (int i = 0; i < o.agents; i++)
        if (pthread_create(&th[i], &attr, agent_main, &agents[i]) != 0)
            die("thread", 0);
    usleep(300 * 1000); /* connections up (handshakes are not what we measure) */
    int64_t start = mu_mono_ms();
    t_end = start + (int64_t)o.seconds * 1000;
    atomic_store(&go, true);
    for (int i = 0; i < o.agents; i++)
        pthread_join(th[i], NULL);
    double secs = (double)(mu_mono_ms() - start) / 1000.0;
    long long ok = atomic_load(&total_ok), errs = atomic_load(&total_err), retries = 0;
    for (int i = 0; i < o.agents; i++)
        retries += agents[i].retries;
    printf("{\"mode\":\"%s\",\"agents\":%d,\"domains\":%d,\"seconds\":%.2f,\"ok\":%lld,"
           "\"per_s\":%.0f,\"errors\":%lld,\"retries\":%lld,\"p50_ms\":%.1f,\"p99_ms\":%.1f}\n",
           o.get ? "get" : "report", o.agents, o.domains, secs, ok, (double)ok / secs, errs,
           retries, percentile(0.5), percentile(0.99));
    if (o.out) {
        FILE *f = fopen(o.out, "w");
        for (int i = 0; f && i < o.agents; i++)
            fprintf(f, "%s %s %lld\n", agents[i].name, agents[i].epoch, (long long)agents[i].acked);
        if (f)
            fclose(f);
    }
    return errs ? 1 : 0;
}
