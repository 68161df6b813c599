/* fleet/enroll: node enrolment over SSH (see enroll.h for the steps and the files on the
 * node). The only controller file that includes libssh.
 *
 * Remote commands are fixed scripts fed to "sh -s" on the node's standard input (so the
 * user's login shell does not matter): nothing from a request or from the node is ever
 * pasted into them; they find their paths through "$HOME" and `id -u`. Values that reach
 * files on the node (the node name in the certtool template, the paths and URL of the
 * agent configuration) are validated with allow-lists first and written by SFTP.
 *
 * Everything that comes back from the node (probe output, command errors) is bounded and
 * sanitised before it reaches an answer or the audit trail. */
#include "fleet/enroll.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <inttypes.h>
#include <libssh/libssh.h>
#include <libssh/sftp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fleet/pki.h"
#include "mutualis/json.h"
#include "mutualis/validate.h"
#include "store/enrolment.h"
#include "store/provision.h"
#include "store/telemetry.h"

#define CONNECT_TIMEOUT_S  10L
#define SESSION_TIMEOUT_S  30L
#define COMMAND_TIMEOUT_MS 120000
#define REPORT_TIMEOUT_MS  60000
#define REPORT_POLL_MS     250
#define OUT_CAP            65536
#define ERR_TAIL           400
#define SFTP_CHUNK         16384
#define AGENT_MAX          ((size_t)256 << 20)
#define CA_MAX             ((size_t)64 << 10)
#define INFLIGHT_MAX       64
#define ROOT_AGENT_PATH    "/usr/local/lib/mutualis/mutualis-agent"
#define SYSTEMD_UNIT_PATH  "/etc/systemd/system/mutualis-agent.service"
#define DEFAULT_INTERVAL_S 10
/* A fixed preference, so that the key pinned (and the one an operator is asked to give:
 * ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) does not change with libssh's default. */
#define HOSTKEY_ORDER                                                                              \
    "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,"        \
    "rsa-sha2-256"
#define FP_B64_LEN 43 /* base64 of 32 bytes, unpadded */

/* ---- the fixed remote scripts ------------------------------------------------------ */

/* Facts about the node, one "key=value" per line (parsed by mu_enroll_probe_parse). */
static const char probe_script[] =
    "exec 2>/dev/null\n"
    "echo \"uid=$(id -u)\"\n"
    "echo \"home=$HOME\"\n"
    "if [ -r /etc/os-release ]; then (. /etc/os-release; echo \"os=${PRETTY_NAME:-$NAME}\"); fi\n"
    "echo \"cpus=$(nproc)\"\n"
    "echo \"mem_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)\"\n"
    "echo \"virt_flags=$(grep -c -E 'vmx|svm' /proc/cpuinfo)\"\n"
    "if [ -e /dev/kvm ]; then echo kvm_dev=1; else echo kvm_dev=0; fi\n"
    "v=$(virsh --version || libvirtd --version | awk '{print $NF}')\n"
    "echo \"libvirt=$v\"\n"
    "for t in certtool sha256sum setsid; do\n"
    "  if command -v $t >/dev/null; then echo $t=1; else echo $t=0; fi\n"
    "done\n"
    "if [ -d /run/systemd/system ]; then echo systemd=1; else echo systemd=0; fi\n"
    "if [ \"$(id -u)\" = 0 ]; then a=" ROOT_AGENT_PATH "; else a=\"$HOME/.mutualis/bin/"
    "mutualis-agent\"; fi\n"
    "if [ -f \"$a\" ]; then echo \"agent_sha256=$(sha256sum \"$a\" | cut -d' ' -f1)\"; fi\n";

/* Stops what a previous enrolment started: the systemd unit, then the supervisor and the
 * agent by their pid files (only processes whose command line is ours). */
static const char stop_script[] =
    "D=\"$HOME/.mutualis\"\n"
    "if [ \"$(id -u)\" = 0 ] && [ -d /run/systemd/system ] && [ -f " SYSTEMD_UNIT_PATH " ]; "
    "then\n"
    "  systemctl stop mutualis-agent.service >/dev/null 2>&1 && echo stopped=systemd\n"
    "fi\n"
    "for f in supervise agent; do\n"
    "  p=$(cat \"$D/$f.pid\" 2>/dev/null)\n"
    "  case \"$p\" in ''|*[!0-9]*) rm -f \"$D/$f.pid\"; continue;; esac\n"
    "  if [ -r \"/proc/$p/cmdline\" ] && tr '\\000' ' ' <\"/proc/$p/cmdline\" | "
    "grep -q -e supervise.sh -e mutualis-agent; then\n"
    "    kill \"$p\" 2>/dev/null\n"
    "    i=0\n"
    "    while kill -0 \"$p\" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done\n"
    "    kill -9 \"$p\" 2>/dev/null\n"
    "    echo \"stopped=$f\"\n"
    "  fi\n"
    "  rm -f \"$D/$f.pid\"\n"
    "done\n"
    "echo done=1\n";

/* Directories of the installation. */
static const char prepare_script[] =
    "umask 077\n"
    "mkdir -p \"$HOME/.mutualis/bin\" \"$HOME/.mutualis/spool\" || exit 1\n"
    "chmod 700 \"$HOME/.mutualis\" || exit 1\n"
    "if [ \"$(id -u)\" = 0 ]; then\n"
    "  mkdir -p /usr/local/lib/mutualis && chmod 755 /usr/local/lib/mutualis || exit 1\n"
    "fi\n"
    "echo ok=1\n";

#define AGENT_PATH_SH                                                                              \
    "if [ \"$(id -u)\" = 0 ]; then a=" ROOT_AGENT_PATH "; else a=\"$HOME/.mutualis/bin/"           \
    "mutualis-agent\"; fi\n"

/* The checksum of the uploaded copy, before it replaces the installed one. */
static const char verify_script[] =
    AGENT_PATH_SH "s=$(sha256sum \"$a.new\" | cut -d' ' -f1) || exit 1\n"
                  "echo \"sha256=$s\"\n";
static const char commit_script[] =
    AGENT_PATH_SH "chmod 755 \"$a.new\" && mv -f \"$a.new\" \"$a\" && echo ok=1\n";
static const char abort_script[] = AGENT_PATH_SH "rm -f \"$a.new\"\n";

/* The node's own key and its certificate request: the key is made here and stays here. */
static const char keys_script[] =
    "umask 077\n"
    "cd \"$HOME/.mutualis\" || exit 1\n"
    "rm -f agent.csr\n"
    "certtool --generate-privkey --key-type ecdsa --curve secp256r1 --no-text "
    "--outfile agent.key >/dev/null || exit 1\n"
    "certtool --generate-request --load-privkey agent.key --template agent.tmpl --no-text "
    "--outfile agent.csr >/dev/null || exit 1\n"
    "chmod 600 agent.key agent.csr\n"
    "cat agent.csr\n";

/* The supervisor (uploaded to ~/.mutualis/supervise.sh where systemd does not run): runs
 * the agent, restarts it with a growing delay, stops it on TERM. */
static const char supervise_sh[] =
    "#!/bin/sh\n"
    "# Mutualis agent supervisor, installed by the controller at enrolment: runs the agent,\n"
    "# restarts it when it exits (1 s, doubling up to 60 s; back to 1 s after a minute of\n"
    "# running) and stops it on TERM. Started with setsid, detached from any session.\n"
    "D=\"$HOME/.mutualis\"\n"
    "if [ \"$(id -u)\" = 0 ]; then A=" ROOT_AGENT_PATH "; else A=\"$D/bin/mutualis-agent\"; fi\n"
    "child=\n"
    "stop() {\n"
    "  if [ -n \"$child\" ]; then kill -TERM \"$child\" 2>/dev/null; wait \"$child\"; fi\n"
    "  rm -f \"$D/supervise.pid\" \"$D/agent.pid\"\n"
    "  exit 0\n"
    "}\n"
    "trap stop TERM INT HUP\n"
    "cd \"$D\" || exit 1\n"
    "echo $$ >\"$D/supervise.pid\"\n"
    "delay=1\n"
    "while :; do\n"
    "  if [ -f \"$D/agent.log\" ] && [ \"$(wc -c <\"$D/agent.log\")\" -gt 1048576 ]; then\n"
    "    mv -f \"$D/agent.log\" \"$D/agent.log.1\"\n"
    "  fi\n"
    "  started=$(date +%s)\n"
    "  \"$A\" --config \"$D/agent.json\" >>\"$D/agent.log\" 2>&1 </dev/null &\n"
    "  child=$!\n"
    "  echo \"$child\" >\"$D/agent.pid\"\n"
    "  wait \"$child\"\n"
    "  status=$?\n"
    "  child=\n"
    "  echo \"supervise: the agent exited with status $status at $(date -u +%FT%TZ)\" "
    ">>\"$D/agent.log\"\n"
    "  if [ $(($(date +%s) - started)) -ge 60 ]; then delay=1; fi\n"
    "  sleep \"$delay\" &\n"
    "  wait $!\n"
    "  delay=$((delay * 2))\n"
    "  if [ $delay -gt 60 ]; then delay=60; fi\n"
    "done\n";

/* Starts the supervisor detached, then checks that the agent runs and keeps running. */
static const char start_setsid_script[] =
    "cd \"$HOME/.mutualis\" || exit 1\n"
    "rm -f agent.pid supervise.pid\n"
    "setsid -f sh \"$HOME/.mutualis/supervise.sh\" >/dev/null 2>&1 </dev/null || exit 1\n"
    "i=0\n"
    "while [ $i -lt 50 ]; do\n"
    "  p=$(cat agent.pid 2>/dev/null)\n"
    "  if [ -n \"$p\" ] && kill -0 \"$p\" 2>/dev/null; then break; fi\n"
    "  sleep 0.1; i=$((i+1))\n"
    "done\n"
    "sleep 2\n"
    "p=$(cat agent.pid 2>/dev/null)\n"
    "if [ -n \"$p\" ] && kill -0 \"$p\" 2>/dev/null; then\n"
    "  echo \"agent_pid=$p\"; echo \"supervisor_pid=$(cat supervise.pid)\"; exit 0\n"
    "fi\n"
    "echo 'the agent does not stay up; last lines of ~/.mutualis/agent.log:' >&2\n"
    "tail -n 4 agent.log >&2\n"
    "exit 1\n";

static const char start_systemd_script[] =
    "systemctl daemon-reload || exit 1\n"
    "systemctl enable mutualis-agent.service >/dev/null 2>&1 || exit 1\n"
    "systemctl restart mutualis-agent.service || exit 1\n"
    "sleep 2\n"
    "if systemctl is-active --quiet mutualis-agent.service; then\n"
    "  echo \"agent_pid=$(systemctl show -p MainPID --value mutualis-agent.service)\"; exit 0\n"
    "fi\n"
    "echo 'the agent does not stay up; journalctl -u mutualis-agent says:' >&2\n"
    "journalctl -u mutualis-agent.service -n 4 --no-pager >&2\n"
    "exit 1\n";

static const char log_tail_script[] = "tail -n 4 \"$HOME/.mutualis/agent.log\" 2>/dev/null\n";

/* ---- pure helpers --------------------------------------------------------------------- */

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool dns_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!is_alnum(c) && !(c == '-' && label > 0))
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0 && s[len - 1] != '-';
}

bool mu_enroll_host_valid(const char *host)
{
    unsigned char ip[16];
    if (!host || !host[0] || strlen(host) > 253)
        return false;
    if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1)
        return true;
    return dns_name_valid(host, strlen(host));
}

bool mu_enroll_user_valid(const char *user)
{
    size_t n = user ? strlen(user) : 0;
    if (n == 0 || n > 32)
        return false;
    if (!((user[0] >= 'a' && user[0] <= 'z') || user[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = user[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
            return false;
    }
    return user[n - 1] != '.';
}

static bool b64_char(char c)
{
    return is_alnum(c) || c == '+' || c == '/';
}

bool mu_enroll_fingerprint_valid(const char *fp)
{
    if (!fp || strncmp(fp, "SHA256:", 7) != 0)
        return false;
    const char *b = fp + 7;
    for (size_t i = 0; i < FP_B64_LEN; i++)
        if (!b64_char(b[i]))
            return false;
    return b[FP_B64_LEN] == '\0' || (b[FP_B64_LEN] == '=' && b[FP_B64_LEN + 1] == '\0');
}

bool mu_enroll_fingerprint_equal(const char *a, const char *b)
{
    if (!mu_enroll_fingerprint_valid(a) || !mu_enroll_fingerprint_valid(b))
        return false;
    return strncmp(a, b, 7 + FP_B64_LEN) == 0;
}

/* The fingerprint without padding, into out[MU_ENROLL_FP_MAX]. */
static void fingerprint_norm(const char *fp, char *out)
{
    snprintf(out, MU_ENROLL_FP_MAX, "%.*s", 7 + FP_B64_LEN, fp);
}

bool mu_enroll_controller_url_valid(const char *url)
{
    static const char scheme[] = "https://";
    if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0 || strlen(url) > 300)
        return false;
    const char *h = url + sizeof scheme - 1, *port = NULL;
    char host[256];
    size_t hl;
    if (*h == '[') {
        const char *close = strchr(h, ']');
        if (!close || (size_t)(close - h - 1) >= sizeof host)
            return false;
        hl = (size_t)(close - h - 1);
        memcpy(host, h + 1, hl);
        host[hl] = '\0';
        unsigned char ip[16];
        if (inet_pton(AF_INET6, host, ip) != 1)
            return false;
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            return false;
    } else {
        const char *colon = strchr(h, ':');
        hl = colon ? (size_t)(colon - h) : strlen(h);
        if (hl == 0 || hl >= sizeof host)
            return false;
        memcpy(host, h, hl);
        host[hl] = '\0';
        unsigned char ip[4];
        if (inet_pton(AF_INET, host, ip) != 1 && !dns_name_valid(host, hl))
            return false;
        port = colon ? colon + 1 : NULL;
    }
    int64_t p;
    return !port || mu_parse_i64(port, 1, 65535, &p) == 0;
}

char *mu_enroll_template(const char *node_name)
{
    if (!node_name || !mu_ident_valid(node_name))
        return NULL;
    /* The name is an identifier ([a-z0-9._-]): nothing in it can close the quotes. */
    return mu_xasprintf("# certtool template of the Mutualis agent's certificate request\n"
                        "cn = \"%s\"\n"
                        "organization = \"Mutualis\"\n"
                        "tls_www_client\n"
                        "signing_key\n",
                        node_name);
}

/* An absolute path of [A-Za-z0-9._/-] without "..", at most 200 bytes. */
static bool home_valid(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n < 1 || n > 200 || p[0] != '/' || strstr(p, ".."))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(p[i]) && !strchr("._/-", p[i]))
            return false;
    return true;
}

char *mu_enroll_agent_config(const struct mu_enroll_agent_cfg *c, struct mu_err *err)
{
    if (!mu_enroll_controller_url_valid(c->controller_url)) {
        mu_err_setf(err, MU_EINVAL, "controller_url",
                    "the controller URL for the agent must be https://host[:port]");
        return NULL;
    }
    if (!c->node_name || !mu_ident_valid(c->node_name)) {
        mu_err_setf(err, MU_EINVAL, "name", "the node name is not a valid identifier");
        return NULL;
    }
    if (!home_valid(c->home)) {
        mu_err_setf(err, MU_EINVAL, "home",
                    "the node user's home directory must be an absolute path of letters, "
                    "digits, '.', '_', '-' and '/'");
        return NULL;
    }
    if (!c->libvirt_uri || (strcmp(c->libvirt_uri, "qemu:///system") != 0 &&
                            strcmp(c->libvirt_uri, "qemu:///session") != 0)) {
        mu_err_setf(err, MU_EINVAL, "libvirt_uri",
                    "the agent reads the node's own libvirt: qemu:///system or qemu:///session");
        return NULL;
    }
    if (c->interval_s < 1 || c->interval_s > 3600) {
        mu_err_setf(err, MU_EINVAL, "interval_s", "the report interval must be 1 to 3600 s");
        return NULL;
    }
    MU_AUTOFREE char *dir =
        mu_xasprintf("%s%s.mutualis", c->home, c->home[strlen(c->home) - 1] == '/' ? "" : "/");
    MU_AUTOFREE char *cert = mu_xasprintf("%s/agent.pem", dir);
    MU_AUTOFREE char *key = mu_xasprintf("%s/agent.key", dir);
    MU_AUTOFREE char *ca = mu_xasprintf("%s/ca.pem", dir);
    MU_AUTOFREE char *spool = mu_xasprintf("%s/spool", dir);
    cJSON *o = mu_json_obj();
    mu_json_add_str(o, "controller_url", c->controller_url);
    mu_json_add_str(o, "node_name", c->node_name);
    mu_json_add_str(o, "cert", cert);
    mu_json_add_str(o, "key", key);
    mu_json_add_str(o, "ca", ca);
    mu_json_add_str(o, "libvirt_uri", c->libvirt_uri);
    mu_json_add_i64(o, "interval_s", c->interval_s);
    mu_json_add_str(o, "spool_dir", spool);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text)
        abort(); /* cJSON only fails on allocation */
    char *out = mu_xasprintf("%s\n", text);
    cJSON_free(text);
    return out;
}

char *mu_enroll_ssh_uri(const char *user, const char *host, unsigned port, bool root)
{
    unsigned char ip[16];
    if (!mu_enroll_user_valid(user) || !mu_enroll_host_valid(host) || port < 1 || port > 65535)
        return NULL;
    bool v6 = inet_pton(AF_INET6, host, ip) == 1;
    return mu_xasprintf("qemu+ssh://%s@%s%s%s:%u/%s", user, v6 ? "[" : "", host, v6 ? "]" : "",
                        port, root ? "system" : "session");
}

/* Copies value into out (outlen) keeping printable ASCII and well-formed UTF-8 sequences;
 * anything else becomes '?'. Cuts at a character boundary. */
static void sanitize(const char *value, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; value[i] && o + 1 < outlen;) {
        unsigned char c = (unsigned char)value[i];
        size_t n = c < 0x80             ? 1
                   : (c & 0xE0) == 0xC0 ? 2
                   : (c & 0xF0) == 0xE0 ? 3
                   : (c & 0xF8) == 0xF0 ? 4
                                        : 0;
        if (n == 1 && c >= 0x20 && c != 0x7F) {
            out[o++] = (char)c;
            i++;
            continue;
        }
        if (n > 1 && strnlen(value + i, n) == n && mu_utf8_valid(value + i, n)) {
            if (o + n >= outlen)
                break;
            memcpy(out + o, value + i, n);
            o += n;
            i += n;
            continue;
        }
        out[o++] = '?';
        i++;
    }
    out[o] = '\0';
}

static bool lower_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool version_valid(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < 32 && strspn(s, "0123456789.") == n && s[0] != '.';
}

int mu_enroll_probe_parse(const char *out, struct mu_enroll_probe *ret, struct mu_err *err)
{
    struct mu_enroll_probe p = {.uid = -1};
    bool have_home = false;
    const char *line = out ? out : "";

    while (*line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[512];
        if (len < sizeof buf) {
            memcpy(buf, line, len);
            buf[len] = '\0';
            char *eq = strchr(buf, '=');
            if (eq) {
                *eq = '\0';
                const char *k = buf, *v = eq + 1;
                int64_t n;
                if (strcmp(k, "uid") == 0 && mu_parse_i64(v, 0, INT32_MAX, &n) == 0) {
                    p.uid = n;
                } else if (strcmp(k, "home") == 0 && home_valid(v)) {
                    snprintf(p.home, sizeof p.home, "%s", v);
                    have_home = true;
                } else if (strcmp(k, "os") == 0) {
                    sanitize(v, p.os, sizeof p.os);
                } else if (strcmp(k, "cpus") == 0 && mu_parse_i64(v, 1, 1 << 20, &n) == 0) {
                    p.cpus = n;
                } else if (strcmp(k, "mem_kib") == 0 &&
                           mu_parse_i64(v, 1, INT64_MAX / 1024, &n) == 0) {
                    p.mem_kib = n;
                } else if (strcmp(k, "virt_flags") == 0 && mu_parse_i64(v, 0, 1 << 20, &n) == 0) {
                    p.virt_flags = n;
                } else if (strcmp(k, "kvm_dev") == 0) {
                    p.kvm_dev = strcmp(v, "1") == 0;
                } else if (strcmp(k, "libvirt") == 0 && version_valid(v)) {
                    snprintf(p.libvirt, sizeof p.libvirt, "%s", v);
                } else if (strcmp(k, "certtool") == 0) {
                    p.certtool = strcmp(v, "1") == 0;
                } else if (strcmp(k, "sha256sum") == 0) {
                    p.sha256sum = strcmp(v, "1") == 0;
                } else if (strcmp(k, "setsid") == 0) {
                    p.setsid = strcmp(v, "1") == 0;
                } else if (strcmp(k, "systemd") == 0) {
                    p.systemd = strcmp(v, "1") == 0;
                } else if (strcmp(k, "agent_sha256") == 0 && lower_hex(v, 64)) {
                    snprintf(p.agent_sha256, sizeof p.agent_sha256, "%s", v);
                }
            }
        }
        line += len;
        if (*line == '\n')
            line++;
    }
    if (p.uid < 0)
        return mu_err_set(err, MU_EINVAL, "the node did not tell its user id (id -u)");
    if (!have_home)
        return mu_err_set(err, MU_EINVAL,
                          "the node user's home directory is missing or not a plain absolute "
                          "path (letters, digits, '.', '_', '-', '/')");
    *ret = p;
    return MU_OK;
}

char *mu_enroll_probe_summary(const struct mu_enroll_probe *p)
{
    struct mu_buf b;
    mu_buf_init(&b);
    mu_buf_puts(&b, p->os[0] ? p->os : "unknown OS");
    if (p->cpus > 0)
        mu_buf_printf(&b, ", %" PRId64 " CPU%s", p->cpus, p->cpus == 1 ? "" : "s");
    if (p->mem_kib > 0)
        mu_buf_printf(&b, ", %.1f GiB memory", (double)p->mem_kib / (1024.0 * 1024.0));
    if (p->virt_flags > 0 && p->kvm_dev)
        mu_buf_puts(&b, ", KVM");
    else if (p->virt_flags > 0)
        mu_buf_puts(&b, ", vmx/svm but no /dev/kvm (kvm module not loaded?)");
    else
        mu_buf_puts(&b, ", no hardware virtualization (software emulation only)");
    if (p->libvirt[0])
        mu_buf_printf(&b, ", libvirt %s", p->libvirt);
    else
        mu_buf_puts(&b, ", no libvirt");
    mu_buf_printf(&b, ", uid %" PRId64 "%s", p->uid, p->systemd ? ", systemd" : ", no systemd");
    return mu_buf_steal(&b);
}

void mu_enroll_result_clear(struct mu_enroll_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nsteps; i++)
        free(r->steps[i].detail);
    free(r->steps);
    free(r->libvirt_uri);
    free(r->libvirt_uri_ssh);
    memset(r, 0, sizeof *r);
}

int mu_enroll_report_seen_store(void *ctx, int64_t node_id, int64_t since_ms)
{
    struct mu_node_last last = {0};
    struct mu_err err = {0};
    int rc = mu_store_node_last(ctx, node_id, &last, &err);
    if (rc == MU_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    bool seen = last.received_ms >= since_ms;
    mu_node_last_clear(&last);
    return seen ? 1 : 0;
}

/* ---- one enrolment per node at a time ----------------------------------------------- */

static pthread_mutex_t inflight_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t inflight[INFLIGHT_MAX];

static int inflight_take(int64_t node_id)
{
    int rc = MU_EBUSY;
    pthread_mutex_lock(&inflight_mu);
    size_t free_slot = INFLIGHT_MAX;
    for (size_t i = 0; i < INFLIGHT_MAX; i++) {
        if (inflight[i] == node_id) {
            rc = MU_ECONFLICT;
            goto out;
        }
        if (inflight[i] == 0 && free_slot == INFLIGHT_MAX)
            free_slot = i;
    }
    if (free_slot < INFLIGHT_MAX) {
        inflight[free_slot] = node_id;
        rc = MU_OK;
    }
out:
    pthread_mutex_unlock(&inflight_mu);
    return rc;
}

static void inflight_release(int64_t node_id)
{
    pthread_mutex_lock(&inflight_mu);
    for (size_t i = 0; i < INFLIGHT_MAX; i++)
        if (inflight[i] == node_id)
            inflight[i] = 0;
    pthread_mutex_unlock(&inflight_mu);
}

/* ---- the run --------------------------------------------------------------------------- */

struct run {
    const struct mu_enroll_env *env;
    const struct mu_enroll_req *req;
    struct mu_enroll_result *res;
    char target[48]; /* "node/12" */
    ssh_session ssh;
    sftp_session sftp;
    int64_t cmd_timeout_ms;
    bool touched;   /* the node was changed (an agent stopped, files written) */
    bool audited;   /* the current step wrote its own audit entry */
    char csr[8192]; /* from step keys */
    char *cert_pem; /* from step sign */
    char agent_sha256[65];
    int64_t started_ms; /* when the agent was started */
};

/* Appends a step to the result and, unless the step already did, to the audit trail. */
static int step_record(struct run *r, const char *name, const char *outcome, const char *detail,
                       struct mu_err *err)
{
    struct mu_enroll_result *res = r->res;
    res->steps = mu_xrealloc(res->steps, (res->nsteps + 1) * sizeof *res->steps);
    struct mu_enroll_step *s = &res->steps[res->nsteps++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->outcome, sizeof s->outcome, "%s", outcome);
    s->detail = mu_xstrdup(detail ? detail : "");
    if (r->audited)
        return MU_OK;
    MU_AUTOFREE char *text = mu_xasprintf("step %s %s: %s", name, outcome, s->detail);
    struct mu_audit_rec rec = {
        .actor = r->env->actor,
        .role = r->env->role,
        .action = "node.enroll",
        .target = r->target,
        .outcome = strcmp(outcome, "failed") == 0 ? "failed" : "ok",
        .request_id = r->env->request_id,
        .detail = text,
    };
    return mu_store_audit_append(r->env->store, &rec, err);
}

/* An audit record for a step that writes its own entry with a store change. */
static void step_audit_rec(struct run *r, struct mu_audit_rec *rec, const char *text)
{
    *rec = (struct mu_audit_rec){
        .actor = r->env->actor,
        .role = r->env->role,
        .action = "node.enroll",
        .target = r->target,
        .outcome = "ok",
        .request_id = r->env->request_id,
        .detail = text,
    };
}

static const char *ssh_why(struct run *r)
{
    const char *e = r->ssh ? ssh_get_error(r->ssh) : NULL;
    return e && *e ? e : "unknown SSH error";
}

/* Remote command: the script goes to "sh -s" on the node. out is capped at OUT_CAP; the
 * last bytes of stderr are kept (sanitised) for messages. */
struct rcmd {
    char *out;
    size_t len;
    char errtail[ERR_TAIL + 1];
    int status; /* exit status, -1 unknown */
};

static void rcmd_clear(struct rcmd *c)
{
    free(c->out);
    memset(c, 0, sizeof *c);
}

static void tail_append(char *tail, const char *data, size_t n)
{
    size_t have = strlen(tail);
    if (n >= ERR_TAIL) {
        memcpy(tail, data + n - ERR_TAIL, ERR_TAIL);
        tail[ERR_TAIL] = '\0';
        return;
    }
    if (have + n > ERR_TAIL) {
        size_t drop = have + n - ERR_TAIL;
        memmove(tail, tail + drop, have - drop + 1);
        have -= drop;
    }
    memcpy(tail + have, data, n);
    tail[have + n] = '\0';
}

static int remote_run(struct run *r, const char *script, struct rcmd *ret, struct mu_err *why)
{
    struct mu_buf out;
    char buf[4096];
    int rc = MU_OK;
    int64_t deadline = mu_mono_ms() + r->cmd_timeout_ms;
    ssh_channel ch = ssh_channel_new(r->ssh);

    memset(ret, 0, sizeof *ret);
    ret->status = -1;
    mu_buf_init(&out);
    if (!ch || ssh_channel_open_session(ch) != SSH_OK ||
        ssh_channel_request_exec(ch, "sh -s") != SSH_OK) {
        rc = mu_err_set(why, MU_EUNAVAIL, "cannot run a command on the node: %s", ssh_why(r));
        goto out;
    }
    size_t len = strlen(script), done = 0;
    while (done < len) {
        int n = ssh_channel_write(ch, script + done, (uint32_t)(len - done));
        if (n <= 0) {
            rc = mu_err_set(why, MU_EUNAVAIL, "cannot send a command to the node: %s", ssh_why(r));
            goto out;
        }
        done += (size_t)n;
    }
    ssh_channel_send_eof(ch);
    for (;;) {
        int a = ssh_channel_poll_timeout(ch, 100, 0);
        if (a == SSH_ERROR) {
            rc = mu_err_set(why, MU_EUNAVAIL, "the connection to the node broke: %s", ssh_why(r));
            goto out;
        }
        if (a > 0) {
            int n = ssh_channel_read_nonblocking(ch, buf, sizeof buf, 0);
            if (n > 0) {
                if (out.len + (size_t)n > OUT_CAP) {
                    rc = mu_err_set(why, MU_EUNAVAIL,
                                    "a command on the node printed more than %d bytes", OUT_CAP);
                    goto out;
                }
                mu_buf_append(&out, buf, (size_t)n);
            }
        }
        int b = ssh_channel_poll(ch, 1);
        if (b > 0) {
            int n = ssh_channel_read_nonblocking(ch, buf, sizeof buf, 1);
            if (n > 0)
                tail_append(ret->errtail, buf, (size_t)n);
        }
        if (a == SSH_EOF && b <= 0)
            break;
        if (a == 0 && b <= 0 && ssh_channel_is_closed(ch))
            break;
        if (mu_mono_ms() > deadline) {
            rc =
                mu_err_set(why, MU_EUNAVAIL, "a command on the node took longer than %" PRId64 " s",
                           r->cmd_timeout_ms / 1000);
            goto out;
        }
    }
    ret->status = ssh_channel_get_exit_status(ch);
    char clean[ERR_TAIL + 1];
    sanitize(ret->errtail, clean, sizeof clean);
    memcpy(ret->errtail, clean, sizeof clean);
    ret->len = out.len;
    ret->out = mu_buf_steal(&out);
    if (!ret->out)
        ret->out = mu_xstrdup("");
out:
    mu_buf_free(&out);
    if (ch) {
        ssh_channel_close(ch);
        ssh_channel_free(ch);
    }
    return rc;
}

/* The last line of a command's error output (for messages), or fallback. */
static const char *err_line(struct rcmd *c, const char *fallback)
{
    size_t n = strlen(c->errtail);
    while (n > 0 &&
           (c->errtail[n - 1] == '\n' || c->errtail[n - 1] == '?' || c->errtail[n - 1] == ' '))
        c->errtail[--n] = '\0';
    return n ? c->errtail : fallback;
}

/* The value of "key=" in a command's output (bounded copy), or "". */
static void out_value(const char *out, const char *key, char *ret, size_t retlen)
{
    size_t kl = strlen(key);
    ret[0] = '\0';
    for (const char *l = out; l && *l;) {
        const char *end = strchr(l, '\n');
        size_t len = end ? (size_t)(end - l) : strlen(l);
        if (len > kl && strncmp(l, key, kl) == 0 && l[kl] == '=') {
            size_t vl = len - kl - 1;
            snprintf(ret, retlen, "%.*s", (int)(vl < retlen ? vl : retlen - 1), l + kl + 1);
            return;
        }
        l = end ? end + 1 : NULL;
    }
}

static int sftp_ensure(struct run *r, struct mu_err *why)
{
    if (r->sftp)
        return MU_OK;
    r->sftp = sftp_new(r->ssh);
    if (!r->sftp || sftp_init(r->sftp) != SSH_OK) {
        int rc = mu_err_set(why, MU_EUNAVAIL,
                            "the node does not offer SFTP (sshd's Subsystem sftp): %s", ssh_why(r));
        if (r->sftp)
            sftp_free(r->sftp);
        r->sftp = NULL;
        return rc;
    }
    return MU_OK;
}

static const char *sftp_why(struct run *r)
{
    switch (sftp_get_error(r->sftp)) {
    case SSH_FX_NO_SUCH_FILE:
    case SSH_FX_NO_SUCH_PATH:
        return "no such file or directory";
    case SSH_FX_PERMISSION_DENIED:
        return "permission denied";
    case SSH_FX_FILE_ALREADY_EXISTS:
        return "file exists";
    default:
        return ssh_why(r);
    }
}

/* Writes a file on the node by SFTP from memory or from a local file (fd >= 0), with mode
 * set before any byte is written. */
static int sftp_put(struct run *r, const char *path, const void *data, size_t len, int fd,
                    mode_t mode, struct mu_err *why)
{
    char buf[SFTP_CHUNK];
    int rc = sftp_ensure(r, why);
    if (rc < 0)
        return rc;
    sftp_file f = sftp_open(r->sftp, path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (!f)
        return mu_err_set(why, MU_EUNAVAIL, "cannot write %s on the node: %s", path, sftp_why(r));
    r->touched = true;
    if (sftp_chmod(r->sftp, path, mode) < 0) {
        rc = mu_err_set(why, MU_EUNAVAIL, "cannot set the mode of %s on the node: %s", path,
                        sftp_why(r));
        goto out;
    }
    size_t done = 0;
    for (;;) {
        const char *p;
        size_t n;
        if (fd >= 0) {
            ssize_t got = read(fd, buf, sizeof buf);
            if (got < 0) {
                rc = mu_err_set(why, MU_EIO, "cannot read the agent binary: %s", strerror(errno));
                goto out;
            }
            if (got == 0)
                break;
            p = buf;
            n = (size_t)got;
        } else {
            if (done >= len)
                break;
            p = (const char *)data + done;
            n = len - done < SFTP_CHUNK ? len - done : SFTP_CHUNK;
        }
        for (size_t w = 0; w < n;) {
            ssize_t k = sftp_write(f, p + w, n - w);
            if (k <= 0) {
                rc = mu_err_set(why, MU_EUNAVAIL, "writing %s on the node failed: %s", path,
                                sftp_why(r));
                goto out;
            }
            w += (size_t)k;
        }
        done += n;
    }
out:
    if (sftp_close(f) != SSH_NO_ERROR && rc == MU_OK)
        rc = mu_err_set(why, MU_EUNAVAIL, "closing %s on the node failed: %s", path, sftp_why(r));
    return rc;
}

static const char *mutualis_dir_sep(const char *home)
{
    return home[strlen(home) - 1] == '/' ? "" : "/";
}

/* home/.mutualis/<name> (caller frees). */
static char *node_file(struct run *r, const char *name)
{
    const char *h = r->res->probe.home;
    return mu_xasprintf("%s%s.mutualis/%s", h, mutualis_dir_sep(h), name);
}

/* ---- steps ------------------------------------------------------------------------------- */

static int step_connect(struct run *r, char **detail, struct mu_err *why)
{
    const struct mu_enroll_req *q = r->req;
    long timeout = CONNECT_TIMEOUT_S;
    int port = (int)q->port;
    bool no = false;

    r->ssh = ssh_new();
    if (!r->ssh)
        return mu_err_set(why, MU_EINTERNAL, "cannot create an SSH session");
    /* Nothing from the controller's own ~/.ssh (config, known_hosts, keys) takes part. */
    if (ssh_options_set(r->ssh, SSH_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
        ssh_options_set(r->ssh, SSH_OPTIONS_HOST, q->host) < 0 ||
        ssh_options_set(r->ssh, SSH_OPTIONS_PORT, &port) < 0 ||
        ssh_options_set(r->ssh, SSH_OPTIONS_USER, q->user) < 0 ||
        ssh_options_set(r->ssh, SSH_OPTIONS_TIMEOUT, &timeout) < 0 ||
        ssh_options_set(r->ssh, SSH_OPTIONS_KNOWNHOSTS, "/dev/null") < 0 ||
        ssh_options_set(r->ssh, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") < 0 ||
        ssh_options_set(r->ssh, SSH_OPTIONS_HOSTKEYS, HOSTKEY_ORDER) < 0)
        return mu_err_set(why, MU_EINVAL, "SSH options refused: %s", ssh_why(r));
    if (ssh_connect(r->ssh) != SSH_OK)
        return mu_err_set(why, MU_EUNAVAIL, "cannot reach %s port %u over SSH: %s", q->host,
                          q->port, ssh_why(r));
    timeout = SESSION_TIMEOUT_S;
    ssh_options_set(r->ssh, SSH_OPTIONS_TIMEOUT, &timeout);
    *detail = mu_xasprintf("%s port %u", q->host, q->port);
    return MU_OK;
}

/* The server's host key fingerprint into r->res->host_key ("SHA256:…", unpadded). */
static int host_fingerprint(struct run *r, struct mu_err *why)
{
    ssh_key key = NULL;
    unsigned char *hash = NULL;
    size_t hlen = 0;
    char *fp = NULL;
    int rc = MU_OK;

    if (ssh_get_server_publickey(r->ssh, &key) != SSH_OK ||
        ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) != 0 ||
        !(fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen)) ||
        !mu_enroll_fingerprint_valid(fp))
        rc = mu_err_set(why, MU_EUNAVAIL, "cannot read the node's SSH host key: %s", ssh_why(r));
    else
        fingerprint_norm(fp, r->res->host_key);
    if (fp)
        ssh_string_free_char(fp);
    ssh_clean_pubkey_hash(&hash);
    ssh_key_free(key);
    return rc;
}

static int step_hostkey(struct run *r, char **detail, struct mu_err *why)
{
    const struct mu_enroll_req *q = r->req;
    struct mu_enroll_result *res = r->res;
    bool given = q->host_key_sha256 != NULL, pinned = false;
    char old[128] = "";
    int rc = host_fingerprint(r, why);
    if (rc < 0)
        return rc;
    if (given && !mu_enroll_fingerprint_equal(res->host_key, q->host_key_sha256))
        return mu_err_setf(why, MU_ECONFLICT, "host_key_sha256",
                           "the host key of %s is %s, not the %s given: check that %s is the "
                           "right machine before enrolling it",
                           res->node_name, res->host_key, q->host_key_sha256, q->host);
    MU_AUTOFREE char *text =
        mu_xasprintf("step hostkey ok: %s %s", res->host_key,
                     given ? "matches the fingerprint given, pinned" : "pinned on first use");
    struct mu_audit_rec rec;
    step_audit_rec(r, &rec, text);
    /* Pinned with its audit entry in one transaction; no credential has been sent yet. */
    rc = mu_store_enrolment_pin(r->env->store, q->node_id, res->host_key, given, &rec, &pinned, old,
                                why);
    if (rc < 0)
        return rc;
    r->audited = pinned;
    snprintf(res->host_key_status, sizeof res->host_key_status, "%s",
             given    ? "given"
             : pinned ? "pinned"
                      : "known");
    *detail = mu_xasprintf("%s %s", res->host_key,
                           given    ? "matches the fingerprint given, pinned"
                           : pinned ? "pinned on first use"
                                    : "matches the pinned key");
    return MU_OK;
}

static int step_auth(struct run *r, char **detail, struct mu_err *why)
{
    const struct mu_enroll_req *q = r->req;
    int a;

    if (q->private_key) {
        ssh_key key = NULL;
        if (ssh_pki_import_privkey_base64(q->private_key, NULL, NULL, NULL, &key) != SSH_OK)
            return mu_err_setf(why, MU_EINVAL, "private_key",
                               "the private key could not be read: give an unencrypted "
                               "OpenSSH or PEM private key");
        a = ssh_userauth_publickey(r->ssh, NULL, key);
        ssh_key_free(key);
    } else {
        a = ssh_userauth_password(r->ssh, NULL, q->password);
    }
    if (a != SSH_AUTH_SUCCESS)
        return mu_err_set(why, MU_EUNAVAIL, "the node refused the %s for user %s%s%s",
                          q->private_key ? "key" : "password", q->user,
                          a == SSH_AUTH_ERROR ? ": " : "", a == SSH_AUTH_ERROR ? ssh_why(r) : "");
    *detail = mu_xasprintf("as %s with a %s", q->user,
                           q->private_key ? "private key" : "one-time password");
    return MU_OK;
}

static int step_probe(struct run *r, char **detail, struct mu_err *why)
{
    struct mu_enroll_probe *p = &r->res->probe;
    struct rcmd c;
    int rc = remote_run(r, probe_script, &c, why);
    if (rc < 0)
        return rc;
    rc = mu_enroll_probe_parse(c.out, p, why);
    rcmd_clear(&c);
    if (rc < 0)
        return rc;
    if (!p->libvirt[0])
        return mu_err_set(why, MU_EUNAVAIL,
                          "libvirt is not installed on the node (neither virsh nor libvirtd "
                          "answers --version): install libvirt-daemon and libvirt-clients");
    if (!p->certtool)
        return mu_err_set(why, MU_EUNAVAIL,
                          "certtool is missing on the node: install gnutls-bin (the node "
                          "makes its own key with it) and enrol again");
    if (!p->sha256sum)
        return mu_err_set(why, MU_EUNAVAIL, "sha256sum is missing on the node (coreutils)");
    if (!(p->systemd && p->uid == 0) && !p->setsid)
        return mu_err_set(why, MU_EUNAVAIL,
                          "setsid is missing on the node (util-linux): it starts the agent's "
                          "supervisor where systemd does not");
    *detail = mu_enroll_probe_summary(p);
    return MU_OK;
}

static int step_stop(struct run *r, char **detail, struct mu_err *why)
{
    struct rcmd c;
    int rc = remote_run(r, stop_script, &c, why);
    if (rc < 0)
        return rc;
    r->touched = true;
    if (!strstr(c.out, "done=1")) {
        rc = mu_err_set(why, MU_EUNAVAIL, "stopping the previous agent failed: %s",
                        err_line(&c, "no answer"));
        rcmd_clear(&c);
        return rc;
    }
    bool sd = strstr(c.out, "stopped=systemd") != NULL;
    bool sup = strstr(c.out, "stopped=supervise") != NULL;
    bool ag = strstr(c.out, "stopped=agent") != NULL;
    *detail = sd || sup || ag ? mu_xasprintf("stopped the previous agent (%s)", sd ? "systemd unit"
                                                                                : sup ? "supervisor"
                                                                                      : "process")
                              : mu_xstrdup("no agent was running");
    rcmd_clear(&c);
    return MU_OK;
}

/* SHA-256 of a local file as hex. */
static int file_sha256(const char *path, char hex[65], int64_t *ret_size, struct mu_err *why)
{
    unsigned char buf[65536], digest[32];
    gnutls_hash_hd_t h;
    int64_t size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mu_err_set(why, MU_EIO,
                          "the controller has no agent binary to install at %s: %s (build "
                          "mutualis-agent next to mutualisd)",
                          path, strerror(errno));
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0) {
        close(fd);
        return mu_err_set(why, MU_EINTERNAL, "cannot start a SHA-256");
    }
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            int e = errno;
            gnutls_hash_deinit(h, digest);
            close(fd);
            return mu_err_set(why, MU_EIO, "cannot read %s: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        gnutls_hash(h, buf, (size_t)n);
        size += n;
        if ((size_t)size > AGENT_MAX) {
            gnutls_hash_deinit(h, digest);
            close(fd);
            return mu_err_set(why, MU_EIO, "%s is larger than %zu MiB", path, AGENT_MAX >> 20);
        }
    }
    gnutls_hash_deinit(h, digest);
    close(fd);
    mu_hex_encode(digest, sizeof digest, hex);
    *ret_size = size;
    return MU_OK;
}

static int step_install(struct run *r, char **detail, struct mu_err *why)
{
    struct mu_enroll_result *res = r->res;
    const char *agent = r->env->agent_path;
    struct rcmd c;
    int64_t size = 0;
    int rc;

    if (!agent)
        return mu_err_set(why, MU_EINTERNAL, "the controller does not know its agent binary");
    rc = file_sha256(agent, r->agent_sha256, &size, why);
    if (rc < 0)
        return rc;
    snprintf(res->agent_sha256, sizeof res->agent_sha256, "%s", r->agent_sha256);
    rc = remote_run(r, prepare_script, &c, why);
    if (rc == 0 && !strstr(c.out, "ok=1"))
        rc = mu_err_set(why, MU_EUNAVAIL, "cannot create ~/.mutualis on the node: %s",
                        err_line(&c, "mkdir failed"));
    rcmd_clear(&c);
    if (rc < 0)
        return rc;
    r->touched = true;
    if (strcmp(res->probe.agent_sha256, r->agent_sha256) == 0) {
        *detail =
            mu_xasprintf("the installed agent already has SHA-256 %.16s…, kept", r->agent_sha256);
        return MU_OK;
    }
    MU_AUTOFREE char *dest =
        res->probe.uid == 0 ? mu_xstrdup(ROOT_AGENT_PATH) : node_file(r, "bin/mutualis-agent");
    MU_AUTOFREE char *tmp = mu_xasprintf("%s.new", dest);
    int fd = open(agent, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mu_err_set(why, MU_EIO, "cannot open %s: %s", agent, strerror(errno));
    rc = sftp_put(r, tmp, NULL, 0, fd, 0700, why);
    close(fd);
    if (rc < 0)
        return rc;
    char got[80];
    rc = remote_run(r, verify_script, &c, why);
    if (rc < 0)
        return rc;
    out_value(c.out, "sha256", got, sizeof got);
    rcmd_clear(&c);
    if (strcmp(got, r->agent_sha256) != 0) {
        struct rcmd a;
        struct mu_err scratch = {0};
        if (remote_run(r, abort_script, &a, &scratch) == 0)
            rcmd_clear(&a);
        return mu_err_set(why, MU_EUNAVAIL,
                          "the uploaded agent's SHA-256 on the node is %.64s, not %s: upload "
                          "damaged, removed",
                          got[0] ? got : "unknown", r->agent_sha256);
    }
    rc = remote_run(r, commit_script, &c, why);
    if (rc == 0 && !strstr(c.out, "ok=1"))
        rc = mu_err_set(why, MU_EUNAVAIL, "cannot put the agent in place: %s",
                        err_line(&c, "mv failed"));
    rcmd_clear(&c);
    if (rc < 0)
        return rc;
    res->agent_uploaded = true;
    *detail = mu_xasprintf("uploaded %s (%" PRId64 " bytes, SHA-256 %.16s… verified on the "
                           "node), mode 0755",
                           dest, size, r->agent_sha256);
    return MU_OK;
}

static int step_keys(struct run *r, char **detail, struct mu_err *why)
{
    MU_AUTOFREE char *tmpl = mu_enroll_template(r->res->node_name);
    MU_AUTOFREE char *tmpl_path = node_file(r, "agent.tmpl");
    struct rcmd c;
    int rc;

    if (!tmpl)
        return mu_err_set(why, MU_EINVAL, "node name %s cannot be a certificate name",
                          r->res->node_name);
    rc = sftp_put(r, tmpl_path, tmpl, strlen(tmpl), -1, 0600, why);
    if (rc < 0)
        return rc;
    rc = remote_run(r, keys_script, &c, why);
    if (rc < 0)
        return rc;
    const char *begin = strstr(c.out, "-----BEGIN NEW CERTIFICATE REQUEST-----");
    const char *end = begin ? strstr(begin, "-----END NEW CERTIFICATE REQUEST-----") : NULL;
    if (c.status != 0 || !begin || !end) {
        rc = mu_err_set(why, MU_EUNAVAIL, "certtool could not make the key and request: %s",
                        err_line(&c, "no certificate request"));
        rcmd_clear(&c);
        return rc;
    }
    end += strlen("-----END NEW CERTIFICATE REQUEST-----");
    if ((size_t)(end - begin) >= sizeof r->csr) {
        rcmd_clear(&c);
        return mu_err_set(why, MU_EUNAVAIL, "the certificate request is too large");
    }
    snprintf(r->csr, sizeof r->csr, "%.*s\n", (int)(end - begin), begin);
    rcmd_clear(&c);
    *detail = mu_xasprintf("the node made its ECDSA P-256 key (~/.mutualis/agent.key, mode "
                           "0600; it stays there) and a certificate request for CN %s",
                           r->res->node_name);
    return MU_OK;
}

static int step_sign(struct run *r, char **detail, struct mu_err *why)
{
    struct mu_enroll_result *res = r->res;
    char serial[41];
    int rc = mu_pki_sign_client(r->env->pki_dir, r->csr, res->node_name, MU_ENROLL_CERT_DAYS,
                                &r->cert_pem, serial, why);
    if (rc < 0)
        return rc;
    snprintf(res->cert_serial, sizeof res->cert_serial, "%s", serial);
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) >= 0) {
        gnutls_datum_t d = {(unsigned char *)r->cert_pem, (unsigned)strlen(r->cert_pem)};
        if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) >= 0)
            res->cert_not_after_ms = (int64_t)gnutls_x509_crt_get_expiration_time(crt) * 1000;
        gnutls_x509_crt_deinit(crt);
    }
    /* Known to the report endpoint from now on, even before the agent's first report. */
    rc = mu_store_node_cert_record(r->env->store, r->req->node_id, serial, res->cert_not_after_ms,
                                   why);
    if (rc < 0)
        return rc;
    char until[32];
    mu_format_time(res->cert_not_after_ms, until, sizeof until);
    *detail = mu_xasprintf("certificate serial %s for CN %s, valid %d days until %s", serial,
                           res->node_name, MU_ENROLL_CERT_DAYS, until);
    return MU_OK;
}

static int step_upload(struct run *r, char **detail, struct mu_err *why)
{
    struct mu_enroll_result *res = r->res;
    MU_AUTOFREE char *ca_path = mu_xasprintf("%s/ca.pem", r->env->pki_dir);
    size_t ca_len = 0;
    MU_AUTOFREE char *ca = mu_read_file(ca_path, CA_MAX, &ca_len);
    if (!ca)
        return mu_err_set(why, MU_EIO, "cannot read the controller's CA %s: %s", ca_path,
                          strerror(errno));
    struct mu_enroll_agent_cfg cfg = {
        .controller_url = r->req->controller_url,
        .node_name = res->node_name,
        .home = res->probe.home,
        .libvirt_uri = res->probe.uid == 0 ? "qemu:///system" : "qemu:///session",
        .interval_s = r->req->interval_s ? r->req->interval_s : DEFAULT_INTERVAL_S,
    };
    MU_AUTOFREE char *config = mu_enroll_agent_config(&cfg, why);
    if (!config)
        return why->code;
    MU_AUTOFREE char *cert_path = node_file(r, "agent.pem");
    MU_AUTOFREE char *ca_node = node_file(r, "ca.pem");
    MU_AUTOFREE char *config_path = node_file(r, "agent.json");
    int rc = sftp_put(r, cert_path, r->cert_pem, strlen(r->cert_pem), -1, 0600, why);
    if (rc == 0)
        rc = sftp_put(r, ca_node, ca, ca_len, -1, 0600, why);
    if (rc == 0)
        rc = sftp_put(r, config_path, config, strlen(config), -1, 0600, why);
    if (rc < 0)
        return rc;
    *detail = mu_xasprintf("certificate, CA and configuration (report to %s every %u s) in "
                           "%s%s.mutualis, mode 0600",
                           cfg.controller_url, cfg.interval_s, res->probe.home,
                           mutualis_dir_sep(res->probe.home));
    return MU_OK;
}

static int step_start(struct run *r, char **detail, struct mu_err *why)
{
    struct mu_enroll_result *res = r->res;
    bool systemd = res->probe.systemd && res->probe.uid == 0;
    struct rcmd c;
    int rc;

    if (systemd) {
        MU_AUTOFREE char *config = node_file(r, "agent.json");
        MU_AUTOFREE char *unit =
            mu_xasprintf("# Installed by the Mutualis controller at enrolment.\n"
                         "[Unit]\n"
                         "Description=Mutualis node agent\n"
                         "After=network-online.target libvirtd.service\n"
                         "Wants=network-online.target\n\n"
                         "[Service]\n"
                         "ExecStart=" ROOT_AGENT_PATH " --config %s\n"
                         "Restart=always\n"
                         "RestartSec=5\n\n"
                         "[Install]\n"
                         "WantedBy=multi-user.target\n",
                         config);
        rc = sftp_put(r, SYSTEMD_UNIT_PATH, unit, strlen(unit), -1, 0644, why);
        if (rc < 0)
            return rc;
    } else {
        MU_AUTOFREE char *path = node_file(r, "supervise.sh");
        rc = sftp_put(r, path, supervise_sh, strlen(supervise_sh), -1, 0700, why);
        if (rc < 0)
            return rc;
    }
    snprintf(res->supervisor, sizeof res->supervisor, "%s", systemd ? "systemd" : "setsid");
    r->started_ms = mu_now_ms();
    rc = remote_run(r, systemd ? start_systemd_script : start_setsid_script, &c, why);
    if (rc < 0)
        return rc;
    char pid[24];
    out_value(c.out, "agent_pid", pid, sizeof pid);
    int64_t n;
    if (c.status != 0 || mu_parse_i64(pid, 1, INT32_MAX, &n) < 0) {
        rc =
            mu_err_set(why, MU_EUNAVAIL, "the agent did not start: %s", err_line(&c, "no process"));
        rcmd_clear(&c);
        return rc;
    }
    rcmd_clear(&c);
    *detail = mu_xasprintf("agent running (pid %" PRId64 ") under %s", n,
                           systemd ? "the systemd unit mutualis-agent.service"
                                   : "a respawning supervisor started with setsid");
    return MU_OK;
}

static int step_report(struct run *r, char **detail, struct mu_err *why)
{
    const struct mu_enroll_env *env = r->env;
    if (!env->report_seen) {
        *detail = mu_xstrdup("not verified: this controller does not record agent reports yet");
        return 1;
    }
    int64_t timeout = env->report_timeout_ms > 0 ? env->report_timeout_ms : REPORT_TIMEOUT_MS;
    int64_t t0 = mu_mono_ms();
    for (;;) {
        int seen = env->report_seen(env->report_ctx, r->req->node_id, r->started_ms);
        if (seen == MU_EUNSUPPORTED) {
            *detail = mu_xstrdup("not verified: this controller cannot tell when a node "
                                 "reported");
            return 1;
        }
        if (seen == 1) {
            r->res->report_verified = true;
            *detail = mu_xasprintf("first report received %.1f s after the start",
                                   (double)(mu_now_ms() - r->started_ms) / 1000.0);
            return MU_OK;
        }
        if (mu_mono_ms() - t0 > timeout)
            break;
        struct timespec ts = {0, REPORT_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    struct rcmd c;
    char log[ERR_TAIL + 1] = "";
    struct mu_err scratch = {0};
    if (remote_run(r, log_tail_script, &c, &scratch) == 0) {
        sanitize(c.out, log, sizeof log);
        rcmd_clear(&c);
    }
    return mu_err_set(why, MU_EUNAVAIL,
                      "the agent runs but no report arrived within %" PRId64
                      " s; ~/.mutualis/agent.log on the node ends with: %s",
                      timeout / 1000, log[0] ? log : "(nothing)");
}

static int step_uri(struct run *r, char **detail, struct mu_err *why)
{
    struct mu_enroll_result *res = r->res;
    const struct mu_enroll_req *q = r->req;
    struct mu_node n = {0};
    int rc;

    res->libvirt_uri_ssh = mu_enroll_ssh_uri(q->user, q->host, q->port, res->probe.uid == 0);
    if (!res->libvirt_uri_ssh)
        return mu_err_set(why, MU_EINVAL, "cannot build the node's SSH URI");
    if (q->libvirt_uri) {
        MU_AUTOFREE char *text = mu_xasprintf(
            "step uri ok: libvirt URI set to %s (as the operator asked)", q->libvirt_uri);
        struct mu_audit_rec rec;
        step_audit_rec(r, &rec, text);
        rc = mu_store_node_set_uri(r->env->store, q->node_id, q->libvirt_uri, &rec, why);
        if (rc < 0)
            return rc;
        r->audited = true;
        res->libvirt_uri = mu_xstrdup(q->libvirt_uri);
        res->libvirt_uri_changed = true;
        *detail = mu_xasprintf("libvirt URI set to %s (as the operator asked)", q->libvirt_uri);
        return MU_OK;
    }
    rc = mu_store_node_get(r->env->store, q->node_id, &n, why);
    if (rc < 0)
        return rc;
    res->libvirt_uri = MU_STEAL(n.uri);
    mu_node_clear(&n);
    *detail = mu_xasprintf("kept the registered libvirt URI %s; over SSH this node's libvirt is "
                           "%s",
                           res->libvirt_uri, res->libvirt_uri_ssh);
    return MU_OK;
}

struct step_def {
    const char *name;
    int (*fn)(struct run *r, char **detail, struct mu_err *why);
};

static const struct step_def steps[] = {
    {"connect", step_connect}, {"hostkey", step_hostkey}, {"auth", step_auth},
    {"probe", step_probe},     {"stop", step_stop},       {"install", step_install},
    {"keys", step_keys},       {"sign", step_sign},       {"upload", step_upload},
    {"start", step_start},     {"report", step_report},   {"uri", step_uri},
};

/* ---- input checks --------------------------------------------------------------------- */

static int check_req(const struct mu_enroll_req *q, struct mu_err *err)
{
    if (q->node_id <= 0)
        return mu_err_set(err, MU_ENOTFOUND, "no such node");
    if (!mu_enroll_host_valid(q->host))
        return mu_err_setf(err, MU_EINVAL, "host",
                           "host must be a host name (letters, digits, '-' and '.') or an IP "
                           "address");
    if (q->port < 1 || q->port > 65535)
        return mu_err_setf(err, MU_EINVAL, "port", "port must be between 1 and 65535");
    if (!mu_enroll_user_valid(q->user))
        return mu_err_setf(err, MU_EINVAL, "user",
                           "user must be a login name: a-z or '_' first, then a-z, 0-9, '_', "
                           "'-' or '.', at most 32 characters");
    if (!q->private_key == !q->password)
        return mu_err_setf(err, MU_EINVAL, q->private_key ? "password" : "private_key",
                           "give either private_key or password, not both and not neither");
    if (q->private_key &&
        (strlen(q->private_key) > MU_ENROLL_KEY_MAX || !strstr(q->private_key, "-----BEGIN ")))
        return mu_err_setf(err, MU_EINVAL, "private_key",
                           "private_key must be the text of an OpenSSH or PEM private key "
                           "(-----BEGIN …), at most %d bytes",
                           MU_ENROLL_KEY_MAX);
    if (q->password && (!q->password[0] || strlen(q->password) > MU_ENROLL_PASSWORD_MAX))
        return mu_err_setf(err, MU_EINVAL, "password", "password must be 1 to %d bytes",
                           MU_ENROLL_PASSWORD_MAX);
    if (q->host_key_sha256 && !mu_enroll_fingerprint_valid(q->host_key_sha256))
        return mu_err_setf(err, MU_EINVAL, "host_key_sha256",
                           "host_key_sha256 must look like SHA256:<43 base64 characters>, as "
                           "printed by ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub");
    if (!mu_enroll_controller_url_valid(q->controller_url))
        return mu_err_setf(err, MU_EINVAL, "controller_url",
                           "controller_url must be https://host[:port], reachable from the node");
    if (q->interval_s != 0 && (q->interval_s < 1 || q->interval_s > 3600))
        return mu_err_setf(err, MU_EINVAL, "interval_s", "interval_s must be between 1 and 3600");
    if (q->libvirt_uri) {
        size_t n = strlen(q->libvirt_uri);
        if (n == 0 || n > 1024 ||
            strspn(q->libvirt_uri, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
                                   "opqrstuvwxyz0123456789._~-/:@?&=%,+[]") != n)
            return mu_err_setf(err, MU_EINVAL, "libvirt_uri", "libvirt_uri is not a libvirt URI");
    }
    return MU_OK;
}

/* ---- the whole enrolment ----------------------------------------------------------------- */

int mu_fleet_enroll(const struct mu_enroll_env *env, const struct mu_enroll_req *req,
                    struct mu_enroll_result *ret, struct mu_err *err)
{
    struct run r = {.env = env, .req = req, .res = ret};
    struct mu_node node = {0};
    MU_AUTOFREE char *prev_state = NULL;
    int rc;

    memset(ret, 0, sizeof *ret);
    rc = check_req(req, err);
    if (rc < 0)
        return rc;
    rc = mu_store_node_get(env->store, req->node_id, &node, err);
    if (rc < 0)
        return rc;
    snprintf(ret->node_name, sizeof ret->node_name, "%s", node.name);
    prev_state = MU_STEAL(node.enrolment);
    mu_node_clear(&node);
    if (!mu_ident_valid(ret->node_name))
        return mu_err_set(err, MU_EINVAL, "node %s has a name that cannot be a certificate name",
                          ret->node_name);
    rc = inflight_take(req->node_id);
    if (rc == MU_ECONFLICT)
        return mu_err_set(err, MU_ECONFLICT, "an enrolment of %s is already running",
                          ret->node_name);
    if (rc < 0)
        return mu_err_set(err, MU_EBUSY, "too many enrolments are running; try again shortly");
    snprintf(r.target, sizeof r.target, "node/%" PRId64, req->node_id);
    r.cmd_timeout_ms = env->command_timeout_ms > 0 ? env->command_timeout_ms : COMMAND_TIMEOUT_MS;

    rc = mu_store_node_set_enrolment(env->store, req->node_id, "pending", err);
    for (size_t i = 0; rc == MU_OK && i < MU_ARRAY_LEN(steps); i++) {
        struct mu_err why = {0};
        char *detail = NULL;
        r.audited = false;
        int s = steps[i].fn(&r, &detail, &why);
        if (s < 0) {
            if (why.code == 0)
                why.code = s;
            r.audited = false;
            snprintf(ret->failed_step, sizeof ret->failed_step, "%s", steps[i].name);
            struct mu_err aerr = {0};
            step_record(&r, steps[i].name, "failed", why.detail, &aerr);
            rc = mu_err_setf(err, why.code, why.field[0] ? why.field : NULL,
                             "enrolment of %s failed at step %s: %s", ret->node_name, steps[i].name,
                             why.detail);
            free(detail);
            break;
        }
        rc = step_record(&r, steps[i].name, s == 1 ? "skipped" : "ok", detail, err);
        free(detail);
    }
    if (rc == MU_OK) {
        struct mu_enrolment e = {
            .node_id = req->node_id,
            .ssh_host = (char *)req->host,
            .ssh_port = req->port,
            .ssh_user = (char *)req->user,
            .agent_sha256 = ret->agent_sha256,
            .cert_serial = ret->cert_serial,
            .cert_not_after_ms = ret->cert_not_after_ms,
            .libvirt_uri = ret->libvirt_uri_ssh,
            .supervisor = ret->supervisor,
        };
        MU_AUTOFREE char *text = mu_xasprintf(
            "enrolment of %s done: host key %s, agent %.16s…, certificate %s, %s supervisor, "
            "report %s",
            ret->node_name, ret->host_key, ret->agent_sha256, ret->cert_serial, ret->supervisor,
            ret->report_verified ? "verified" : "not verified");
        struct mu_audit_rec rec;
        r.audited = false;
        step_audit_rec(&r, &rec, text);
        rc = mu_store_enrolment_record(env->store, &e, &rec, err);
    } else {
        /* The node is left as it was when nothing there changed; otherwise it is not
         * enrolled any more (its previous agent was stopped). */
        struct mu_err serr = {0};
        mu_store_node_set_enrolment(env->store, req->node_id,
                                    r.touched || !prev_state ? "none" : prev_state, &serr);
    }

    free(r.cert_pem);
    explicit_bzero(r.csr, sizeof r.csr);
    if (r.sftp)
        sftp_free(r.sftp);
    if (r.ssh) {
        ssh_disconnect(r.ssh);
        ssh_free(r.ssh);
    }
    inflight_release(req->node_id);
    return rc;
}
