"""Real libvirt nodes for integration tests, through scripts/node-env.sh: each node is a
Unix user whose session libvirtd runs QEMU guests, reached over a loopback sshd with
qemu+ssh (or qemu+libssh), exactly as a remote node would be. Also builds the tiny test
guest (tests/guest/). Everything is removed by down()."""
import os
import shlex
import subprocess
import tempfile

from harness import SRC

NODE_ENV = os.path.join(SRC, "scripts", "node-env.sh")
GUEST_DIR = os.environ.get("MU_GUEST_DIR", "/var/cache/mutualis-guest")


def sh(script, check=True):
    p = subprocess.run(["bash", "-c", f". {shlex.quote(NODE_ENV)}\n{script}"],
                       capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise RuntimeError(f"node-env failed ({p.returncode}): {script}\n{p.stderr[-3000:]}")
    return p.stdout


def build_guest():
    """Builds (or reuses) the test guest; returns (kernel, initrd, cmdline)."""
    subprocess.run(["bash", os.path.join(SRC, "tests", "guest", "build-guest.sh"), GUEST_DIR],
                   check=True, capture_output=True, timeout=900)
    os.chmod(GUEST_DIR, 0o755)
    for f in ("vmlinuz", "initrd.gz"):
        os.chmod(os.path.join(GUEST_DIR, f), 0o644)
    with open(os.path.join(GUEST_DIR, "cmdline")) as f:
        cmdline = f.read().strip()
    return os.path.join(GUEST_DIR, "vmlinuz"), os.path.join(GUEST_DIR, "initrd.gz"), cmdline


class Nodes:
    def __init__(self, count, port=None, transport="ssh"):
        tag = f"{os.getpid() % 100000}"
        self.users = [f"mu-it{tag}-n{i + 1}" for i in range(count)]
        self.port = port or (22000 + os.getpid() % 1000)
        self.dir = tempfile.mkdtemp(prefix="mu-sshd-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.transport = transport
        self.uris = []

    def up(self):
        for u in self.users:
            sh(f"mu_node_user_create {u}")
        sh(f"mu_sshd_start {self.dir} {self.port} {' '.join(self.users)}")
        self.uris = [sh(f"mu_sshd_uri {self.dir} {u} {self.transport}").strip()
                     for u in self.users]
        return self

    def virsh(self, i, *args, check=True):
        out = sh(f"mu_node_virsh {self.users[i]} {' '.join(shlex.quote(a) for a in args)}",
                 check=check)
        return out

    def home(self, i):
        return os.path.expanduser(f"~{self.users[i]}")

    def down(self):
        sh(f"mu_sshd_stop {self.dir}", check=False)
        for u in self.users:
            sh(f"mu_node_user_delete {u}", check=False)
        subprocess.run(["rm", "-rf", self.dir])
