"""Nodes with their own network stacks for the tenant-network tests (../shared/env-notes.md,
"Several nodes with their own network stacks"). Each node is:

  - a network namespace, linked to the host by a veth whose host end sits on one underlay
    bridge (10.99.0.1/24 on the host, node i at 10.99.0.(10+i), MTU 1500);
  - a private mount namespace (unshare -m, entered through a holder process) in which
    <dir>/run, <dir>/lib, <dir>/log, <dir>/cache and a copy of /etc/libvirt (qemu.conf set to
    run QEMU as root without a security driver) are bind-mounted over /run,
    /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt and /etc/libvirt;
  - a PRIVILEGED virtlogd + libvirtd there (nwfilter works: ebtables/iptables/nft in that
    namespace), reached by the controller at qemu:///system?socket=<dir>/run/libvirt/
    libvirt-sock, with its storage pool at <dir>/pool (same path inside and outside);
  - optionally a mutualis-agent started in the node's namespaces, talking to the controller
    over the underlay (https://10.99.0.1:<port>, a client certificate signed by its CA).

Observers: a namespace with a veth plugged into a bridge inside a node (e.g. a tenant
segment's mubr<VNI>) and an address of the test's choice, to talk to guests from outside.

Everything is torn down by down() (also after a failure): agents, daemons and their QEMU,
holders, namespaces, veths, the underlay bridge, the directories, and the libvirt-qemu
user/group if this module created them. Root only. Standard library only.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

UNDERLAY_PREFIX = "10.99.0"
HOST_ADDR = f"{UNDERLAY_PREFIX}.1"


def run(*args, check=True, timeout=120, input_text=None):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                       input=input_text)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    return p.stdout


def wait_for(pred, timeout=60, step=0.2):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if pred():
                return True
        except (OSError, RuntimeError, subprocess.SubprocessError):
            pass
        time.sleep(step)
    return False


QEMU_CONF = """
user = "root"
group = "root"
swtpm_user = "root"
swtpm_group = "root"
dynamic_ownership = 0
security_driver = "none"
"""


class Node:
    def __init__(self, env, index):
        self.env = env
        self.index = index
        self.name = f"node-{index + 1}"
        self.ns = f"mu{env.tag}n{index + 1}"
        self.veth_host = f"muv{env.tag}n{index + 1}"
        self.addr = f"{UNDERLAY_PREFIX}.{10 + index}"
        self.dir = os.path.join(env.dir, self.name)
        self.pool = os.path.join(self.dir, "pool")
        self.sock = os.path.join(self.dir, "run", "libvirt", "libvirt-sock")
        self.uri = f"qemu:///system?socket={self.sock}"
        self.holder = None
        self.agent = None
        self.agent_log = None
        self.node_id = None

    # -- commands inside the node --------------------------------------------------------
    def nsenter(self):
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-n", "--"]

    def sh(self, *args, check=True, timeout=120, input_text=None):
        """Runs a command in the node's network and mount namespaces."""
        return run(*(self.nsenter() + list(args)), check=check, timeout=timeout,
                   input_text=input_text)

    def virsh(self, *args, check=True):
        return run("virsh", "-c", self.uri, *args, check=check)

    def links(self):
        out = self.sh("ip", "-j", "-d", "link", "show")
        return {l["ifname"]: l for l in json.loads(out)}

    def fdb_peers(self, dev):
        out = self.sh("bridge", "-j", "fdb", "show", "dev", dev, check=False)
        try:
            entries = json.loads(out) if out.strip() else []
        except ValueError:
            return None
        return sorted(e["dst"] for e in entries
                      if e.get("mac") == "00:00:00:00:00:00" and e.get("dst"))

    def nft_dropped(self):
        out = self.sh("nft", "-j", "list", "counter", "inet", "mutualis", "vxlan_dropped",
                      check=False)
        try:
            for item in json.loads(out)["nftables"]:
                if "counter" in item:
                    return item["counter"]["packets"]
        except (ValueError, KeyError):
            pass
        return None

    # -- life -------------------------------------------------------------------------------
    def up(self):
        env = self.env
        for sub in ("run", "lib", "log", "cache", "pool", "spool", "certs"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        etc = os.path.join(self.dir, "etc")
        shutil.copytree("/etc/libvirt", etc, symlinks=True)
        # Persistent definitions of the host's daemon (if any) are not this node's.
        for sub in ("qemu", "storage", "secrets"):
            shutil.rmtree(os.path.join(etc, sub), ignore_errors=True)
            os.makedirs(os.path.join(etc, sub), exist_ok=True)
        with open(os.path.join(etc, "qemu.conf"), "a") as f:
            f.write(QEMU_CONF)
        os.makedirs(os.path.join(self.dir, "lib", "qemu"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "log", "qemu"), exist_ok=True)
        os.chmod(self.dir, 0o755)
        os.chmod(self.pool, 0o755)

        run("ip", "netns", "add", self.ns)
        env.created_ns.append(self.ns)
        run("ip", "link", "add", self.veth_host, "mtu", "1500", "type", "veth", "peer", "name",
            "ul0", "netns", self.ns)
        env.created_links.append(self.veth_host)
        run("ip", "link", "set", self.veth_host, "master", env.bridge, "up")
        ns = ["ip", "netns", "exec", self.ns]
        run(*ns, "ip", "link", "set", "lo", "up")
        run(*ns, "ip", "addr", "add", f"{self.addr}/24", "dev", "ul0")
        run(*ns, "ip", "link", "set", "ul0", "mtu", "1500", "up")

        # The holder keeps the private mount namespace; everything else enters it.
        mounts = " && ".join(
            f"mount --bind {os.path.join(self.dir, src)} {dst}" for src, dst in
            (("run", "/run"), ("lib", "/var/lib/libvirt"), ("log", "/var/log/libvirt"),
             ("cache", "/var/cache/libvirt"), ("etc", "/etc/libvirt")))
        script = (f"{mounts} && mkdir -p /run/libvirt && echo ready && exec sleep 1000000")
        self.holder = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "unshare", "-m", "--propagation", "private",
             "sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.holder.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"{self.name}: mount namespace not ready: "
                               f"{self.holder.stderr.read()[-1000:]}")
        # "ip netns exec" ran unshare, which exec'd sh, which exec'd sleep: same pid.
        self.sh("virtlogd", "-d", "-p", "/run/virtlogd.pid")
        self.sh("libvirtd", "-d", "-p", "/run/libvirtd.pid")
        if not wait_for(lambda: os.path.exists(self.sock) and
                        self.virsh("version", check=False).strip() != "", 90):
            procs = run("pgrep", "-a", "libvirtd", check=False)
            raise RuntimeError(f"{self.name}: libvirtd did not answer on {self.sock} "
                               f"(socket exists: {os.path.exists(self.sock)}; {procs})")
        return self

    def start_agent(self, ctl, interval_s=2):
        from agentlib import controller_cert  # noqa: E402
        certs = os.path.join(self.dir, "certs")
        crt, key, _ = controller_cert(ctl, certs, self.name)
        cfg = os.path.join(self.dir, "agent.json")
        with open(cfg, "w") as f:
            json.dump({"controller_url": f"https://{HOST_ADDR}:{ctl.port}",
                       "node_name": self.name, "cert": crt, "key": key,
                       "ca": os.path.join(ctl.data_dir, "pki", "ca.pem"),
                       "libvirt_uri": "qemu:///system", "interval_s": interval_s,
                       "spool_dir": os.path.join(self.dir, "spool"), "log_level": "debug"}, f)
        self.agent_log = open(os.path.join(self.dir, "agent.log"), "ab")
        from harness import BIN  # noqa: E402
        self.agent = subprocess.Popen(self.nsenter() + [os.path.join(BIN, "mutualis-agent"),
                                                        "--config", cfg],
                                      stdout=self.agent_log, stderr=self.agent_log)
        return self.agent

    def agent_log_text(self):
        try:
            with open(os.path.join(self.dir, "agent.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop_agent(self):
        """SIGTERM; returns the agent's exit status (None if it was not running)."""
        rc = None
        if self.agent:
            if self.agent.poll() is None:
                self.agent.send_signal(signal.SIGTERM)
                try:
                    self.agent.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self.agent.kill()
                    self.agent.wait()
            rc = self.agent.returncode
        self.agent = None
        if self.agent_log:
            self.agent_log.close()
            self.agent_log = None
        return rc

    def down(self):
        self.stop_agent()
        if self.holder and self.holder.poll() is None:
            # Guests first (QEMU would outlive libvirtd), then the daemons.
            out = self.virsh("list", "--name", check=False) if os.path.exists(self.sock) else ""
            for d in out.split():
                self.virsh("destroy", d, check=False)
            for pidfile in ("libvirtd.pid", "virtlogd.pid"):
                p = os.path.join(self.dir, "run", pidfile)
                try:
                    pid = int(open(p).read().strip())
                except (OSError, ValueError):
                    continue
                _kill(pid)
            # QEMU processes of this node that survived (their pid files are in run/).
            qdir = os.path.join(self.dir, "run", "libvirt", "qemu")
            if os.path.isdir(qdir):
                for f in os.listdir(qdir):
                    if f.endswith(".pid"):
                        try:
                            _kill(int(open(os.path.join(qdir, f)).read().strip()))
                        except (OSError, ValueError):
                            pass
            self.holder.kill()
            self.holder.wait()
        self.holder = None


def _kill(pid, timeout=5):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.time() + timeout
    while time.time() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Observer:
    """A namespace with one interface plugged into bridge `bridge` of node `node`."""

    def __init__(self, env, node, bridge, addr_cidr, mtu, name):
        self.env = env
        self.ns = f"mu{env.tag}o{name}"
        self.veth = f"muo{env.tag}{name}"
        self.node = node
        self.addr = addr_cidr.split("/")[0]
        run("ip", "netns", "add", self.ns)
        env.created_ns.append(self.ns)
        run("ip", "link", "add", self.veth, "mtu", str(mtu), "type", "veth", "peer", "name",
            "eth0", "netns", self.ns)
        env.created_links.append(self.veth)
        # Move the outer end into the node and plug it into the bridge.
        run("ip", "link", "set", self.veth, "netns", node.ns)
        node.sh("ip", "link", "set", self.veth, "master", bridge, "mtu", str(mtu), "up")
        self.sh("ip", "link", "set", "lo", "up")
        self.sh("ip", "addr", "add", addr_cidr, "dev", "eth0")
        self.sh("ip", "link", "set", "eth0", "mtu", str(mtu), "up")

    def sh(self, *args, check=True, timeout=60):
        return run("ip", "netns", "exec", self.ns, *args, check=check, timeout=timeout)

    def http(self, url, timeout=8):
        """The body of GET url from inside the observer, or None if unreachable."""
        p = subprocess.run(["ip", "netns", "exec", self.ns, "curl", "-s", "-f", "-m",
                            str(timeout), url], capture_output=True, text=True,
                           timeout=timeout + 10)
        return p.stdout if p.returncode == 0 else None

    def remove(self):
        run("ip", "netns", "del", self.ns, check=False)
        if self.ns in self.env.created_ns:
            self.env.created_ns.remove(self.ns)


class NetNodes:
    """count nodes; the underlay bridge lives in the host namespace at 10.99.0.1/24."""

    def __init__(self, count):
        self.tag = f"{os.getpid() % 1000}"
        self.dir = tempfile.mkdtemp(prefix="mu-netnodes-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.bridge = f"muul{self.tag}"
        self.nodes = [Node(self, i) for i in range(count)]
        self.created_ns = []
        self.created_links = []
        self.created_ids = []  # ("group"|"user", name)
        self.observers = []
        self.created_dirs = []

    def up(self):
        for g in ("libvirt-qemu", "kvm"):
            if subprocess.run(["getent", "group", g], capture_output=True).returncode != 0:
                run("groupadd", "-r", g)
                self.created_ids.append(("group", g))
        if subprocess.run(["getent", "passwd", "libvirt-qemu"],
                          capture_output=True).returncode != 0:
            run("useradd", "-r", "-g", "libvirt-qemu", "-G", "kvm", "-d", "/var/lib/libvirt",
                "-s", "/usr/sbin/nologin", "libvirt-qemu")
            self.created_ids.append(("user", "libvirt-qemu"))
        # Mount points of the nodes' private directories (left as found at the end).
        for d in ("/var/lib/libvirt", "/var/log/libvirt", "/var/cache/libvirt", "/etc/libvirt"):
            if not os.path.isdir(d):
                os.makedirs(d)
                self.created_dirs.append(d)
        run("ip", "link", "add", self.bridge, "mtu", "1500", "type", "bridge")
        self.created_links.append(self.bridge)
        run("ip", "addr", "add", f"{HOST_ADDR}/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        for n in self.nodes:
            n.up()
        return self

    def add_node(self):
        n = Node(self, len(self.nodes))
        self.nodes.append(n)
        return n.up()

    def observer(self, node, bridge, addr_cidr, mtu):
        o = Observer(self, node, bridge, addr_cidr, mtu, str(len(self.observers)))
        self.observers.append(o)
        return o

    def down(self):
        for n in self.nodes:
            try:
                n.down()
            except Exception as e:  # keep tearing down the rest
                print(f"     teardown {n.name}: {e}", flush=True)
        for ns in reversed(self.created_ns):
            run("ip", "netns", "del", ns, check=False)
        for link in reversed(self.created_links):
            run("ip", "link", "del", link, check=False)
        for kind, name in reversed(self.created_ids):
            run("userdel" if kind == "user" else "groupdel", name, check=False)
        for d in reversed(self.created_dirs):
            try:
                os.rmdir(d)
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
