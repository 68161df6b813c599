/* fleet/enroll: enrolment of a hypervisor node over SSH (libssh; fleet/ is the only
 * controller code that sees it). One enrolment runs these steps, in order, each recorded
 * in the audit trail (action "node.enroll", target "node/N", detail "step <name> ok: …" or
 * outcome "failed" with the reason):
 *
 *   connect  TCP + SSH key exchange with host:port (10 s)
 *   hostkey  the server's key (SHA-256 fingerprint) must equal the one the operator gave,
 *            or, without one, the one pinned at the first enrolment (pinned now if none):
 *            no credential is sent before this check
 *   auth     public key (OpenSSH or PEM text) or a one-time password; never stored, logged
 *            or kept past the enrolment
 *   probe    one fixed command: OS, CPUs, memory, virtualization (vmx/svm, /dev/kvm),
 *            libvirt version, certtool, sha256sum, setsid, systemd, installed agent
 *   stop     stops an agent a previous enrolment started (systemd unit or supervisor)
 *   install  uploads the controller's own mutualis-agent by SFTP unless the installed one
 *            has the same SHA-256; verified on the node with sha256sum, mode 0755
 *   keys     the node generates its ECDSA P-256 key and a certificate request (certtool,
 *            template built from the node name): the private key never leaves the node
 *   sign     the controller's CA signs the request (90 days)
 *   upload   certificate, CA and agent configuration by SFTP, mode 0600
 *   start    a systemd unit (root, where systemd runs) or a respawning supervisor started
 *            with setsid, detached from the SSH session
 *   report   waits for the agent's first report (skipped, "not verified", when the caller
 *            cannot tell)
 *   uri      sets the node's libvirt URI when the operator asked for one; otherwise keeps
 *            the registered one and records the qemu+ssh URI an operator would use
 *
 * Files on the node (HOME of the SSH user; commands use "$HOME", never a path from input):
 *   ~/.mutualis/agent.key agent.csr agent.pem ca.pem agent.json agent.tmpl supervise.sh
 *   ~/.mutualis/spool/ agent.log supervise.pid agent.pid
 *   ~/.mutualis/bin/mutualis-agent, or /usr/local/lib/mutualis/mutualis-agent for root
 *
 * Nothing here logs above debug: the outcome goes back in struct mu_enroll_result and
 * struct mu_err. */
#ifndef MU_FLEET_ENROLL_H
#define MU_FLEET_ENROLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mutualis/err.h"
#include "store/store.h"

#define MU_ENROLL_KEY_MAX      16384 /* bytes of private key text accepted */
#define MU_ENROLL_PASSWORD_MAX 1024
#define MU_ENROLL_CERT_DAYS    90
#define MU_ENROLL_FP_MAX       128 /* "SHA256:" + 43 base64 characters, with room */

/* Whether the caller can tell that a report came from node_id at or after since_ms:
 * 1 yes, 0 not yet, or MU_EUNSUPPORTED when this controller cannot tell (the step is then
 * skipped and reported "not verified"). */
typedef int (*mu_enroll_report_fn)(void *ctx, int64_t node_id, int64_t since_ms);

/* A mu_enroll_report_fn over the store (ctx: the struct mu_store): the node's last report
 * was received at or after since_ms. */
int mu_enroll_report_seen_store(void *ctx, int64_t node_id, int64_t since_ms);

/* What the operator asked for. Strings are borrowed; the caller validates nothing: every
 * field is checked here (allow-lists) before any connection. */
struct mu_enroll_req {
    int64_t node_id;
    const char *host;            /* host name or IP literal */
    unsigned port;               /* 1..65535 */
    const char *user;            /* [a-z_][a-z0-9._-]{0,31} */
    const char *private_key;     /* OpenSSH or PEM private key text, or NULL */
    const char *password;        /* one-time password, or NULL (exactly one of the two) */
    const char *host_key_sha256; /* "SHA256:<base64>", or NULL: pin on first use */
    const char *controller_url;  /* what the agent reports to: https://host[:port] */
    const char *libvirt_uri;     /* set on the node at step uri, or NULL: keep */
    unsigned interval_s;         /* the agent's report interval, 1..3600 (0: 10) */
};

/* The controller's side. */
struct mu_enroll_env {
    struct mu_store *store;
    const char *pki_dir;    /* the CA (fleet/pki.h) */
    const char *agent_path; /* the agent binary to install */
    /* Audit fields of every step's entry (action, target and outcome are set here). */
    const char *actor, *role, *request_id;
    mu_enroll_report_fn report_seen; /* NULL: the report step is "not verified" */
    void *report_ctx;
    int64_t report_timeout_ms;  /* how long to wait for the first report (0: 60 s) */
    int64_t command_timeout_ms; /* per remote command (0: 120 s) */
};

struct mu_enroll_step {
    char name[16];    /* connect, hostkey, auth, probe, ... */
    char outcome[16]; /* ok, skipped, failed */
    char *detail;
};

/* Node facts found by the probe (strings sanitised, bounded). */
struct mu_enroll_probe {
    int64_t uid;        /* -1 unknown */
    char home[256];     /* absolute, [A-Za-z0-9._/-] */
    char os[96];        /* PRETTY_NAME, printable */
    int64_t cpus;       /* 0 unknown */
    int64_t mem_kib;    /* 0 unknown */
    int64_t virt_flags; /* CPUs with vmx/svm */
    bool kvm_dev;       /* /dev/kvm exists */
    char libvirt[32];   /* "9.0.0", "" when absent */
    bool certtool, sha256sum, setsid, systemd;
    char agent_sha256[65]; /* installed agent, "" when none */
};

struct mu_enroll_result {
    char node_name[64];
    char host_key[MU_ENROLL_FP_MAX]; /* the server's fingerprint */
    char host_key_status[16];        /* "given", "pinned" (first use), "known" */
    struct mu_enroll_probe probe;
    bool agent_uploaded; /* false: the installed one had the same SHA-256 */
    char agent_sha256[65];
    char cert_serial[41];
    int64_t cert_not_after_ms;
    char supervisor[16]; /* systemd, setsid */
    bool report_verified;
    char *libvirt_uri; /* the node's URI after the enrolment */
    bool libvirt_uri_changed;
    char *libvirt_uri_ssh; /* the qemu+ssh URI an operator would use */
    char failed_step[16];  /* "" on success */
    struct mu_enroll_step *steps;
    size_t nsteps;
};
void mu_enroll_result_clear(struct mu_enroll_result *r);

/* Runs the enrolment of req->node_id. MU_OK with ret filled; on failure a negative code
 * with err->detail "enrolment of node-1 failed at step <name>: <reason>" and ret still
 * filled with the steps done and ret->failed_step set (empty when the request was refused
 * before any step: invalid input MU_EINVAL, unknown node MU_ENOTFOUND, an enrolment of
 * that node already running MU_ECONFLICT). A changed host key is MU_ECONFLICT at step
 * hostkey; other step failures are MU_EUNAVAIL (the node) or MU_EIO/MU_EINTERNAL (the
 * controller). One node is enrolled by one request at a time. */
int mu_fleet_enroll(const struct mu_enroll_env *env, const struct mu_enroll_req *req,
                    struct mu_enroll_result *ret, struct mu_err *err);

/* ---- pure helpers (exposed for tests) ----------------------------------------------- */

/* A host name (dot-separated labels of letters, digits and inner hyphens, <= 253) or an
 * IPv4/IPv6 literal. */
bool mu_enroll_host_valid(const char *host);
/* A Unix login name: [a-z_][a-z0-9._-]{0,31}, not ending with '.'. */
bool mu_enroll_user_valid(const char *user);
/* "SHA256:" then 43 base64 characters, optionally followed by one '='. */
bool mu_enroll_fingerprint_valid(const char *fp);
/* Whether two fingerprints name the same key (trailing '=' padding ignored; the base64
 * part is case-sensitive). False if either is not valid. */
bool mu_enroll_fingerprint_equal(const char *a, const char *b);
/* "https://host" or "https://host:port" (host as mu_enroll_host_valid, IPv6 in [ ]). */
bool mu_enroll_controller_url_valid(const char *url);
/* The certtool template of a node's certificate request (CN = node name). NULL if the
 * name is not a valid node name (mu_ident_valid). Caller frees. */
char *mu_enroll_template(const char *node_name);

struct mu_enroll_agent_cfg {
    const char *controller_url;
    const char *node_name;
    const char *home;        /* the SSH user's home, absolute */
    const char *libvirt_uri; /* the node-local URI the agent reads (qemu:///session…) */
    unsigned interval_s;
};
/* The agent's configuration file (JSON text, caller frees), paths under home/.mutualis.
 * NULL with err set if a value is not acceptable. */
char *mu_enroll_agent_config(const struct mu_enroll_agent_cfg *c, struct mu_err *err);
/* The qemu+ssh URI reaching libvirt on the node as user: /system for root, /session
 * otherwise; IPv6 hosts in brackets. NULL if an input is not valid. Caller frees. */
char *mu_enroll_ssh_uri(const char *user, const char *host, unsigned port, bool root);
/* Parses the probe command's output ("key=value" lines; unknown keys ignored, values
 * bounded and sanitised). MU_EINVAL with err set if a required fact is missing or
 * malformed (uid, home). */
int mu_enroll_probe_parse(const char *out, struct mu_enroll_probe *ret, struct mu_err *err);
/* One line for people: "Debian GNU/Linux 12 (bookworm), 2 CPUs, 7.8 GiB, no hardware
 * virtualization (software emulation), libvirt 9.0.0, uid 1001". Caller frees. */
char *mu_enroll_probe_summary(const struct mu_enroll_probe *p);

#endif
