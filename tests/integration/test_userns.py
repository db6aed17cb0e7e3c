"""Containers with a new user namespace (uid/gid 0 -> host 100000, 65536 ids), as containerd sends them for
Kubernetes userns pods: the process fields that need the host's privileges (oomScoreAdj, rlimits), bind sources
only host root can reach, read-only binds of locked mounts, exec with a reduced capability set, joining a network
namespace owned by the host, and --no-pivot.  Where runc 1.1.5 behaves the same here, the same bundle runs under
runc too.

This host has no CAP_SYS_RESOURCE: nobody (not runc either) may lower oom_score_adj below the caller's or raise a
hard rlimit above the caller's, so the tests use values that runc accepts here.
"""

import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from pyrunc.demo import make_bundle

RUNC = shutil.which("runc")
HOST_ID = 100000
MAPS = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]


@pytest.fixture
def top():
    """A 0755 directory under /tmp: the bundle must be reachable by the mapped root (not pytest's 0700 tmp dir)."""
    d = tempfile.mkdtemp(prefix="pyrunc-it-userns-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    with open("/proc/self/mountinfo") as f:
        left = [line.split()[4] for line in f if line.split()[4].startswith(d)]
    for m in reversed(left):
        subprocess.run(["umount", "-l", m], check=False)
    shutil.rmtree(d, ignore_errors=True)
    assert not left, f"mounts left behind: {left}"


@pytest.fixture
def ubundle(top, busybox):
    count = [0]

    def make(args, edit=None):
        count[0] += 1
        b = os.path.join(top, f"bundle{count[0]}")
        os.mkdir(b)
        cfg = make_bundle(b, list(args), busybox=busybox)
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [dict(m) for m in MAPS]
        cfg["linux"]["gidMappings"] = [dict(m) for m in MAPS]
        if edit:
            edit(cfg)
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(cfg, f)
        return b

    return make


def run(pyrunc, b, *extra, rc=0):
    p = pyrunc("run", *extra, "--bundle", b, pyrunc.new_id("u"))
    assert p.returncode == rc, (p.returncode, p.out, p.err)
    return p


def runc_run(b, tmp_path, rc=0):
    if not RUNC:
        pytest.skip("runc is not installed: nothing to compare with")
    cid = f"pyrunc-it-runc-{uuid.uuid4().hex[:8]}"
    p = subprocess.run([RUNC, "--root", str(tmp_path / "runc-state"), "run", "--bundle", str(b), cid],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    subprocess.run([RUNC, "--root", str(tmp_path / "runc-state"), "delete", "-f", cid], capture_output=True,
                   timeout=60)
    assert p.returncode == rc, p.stderr
    return p.stdout.decode(), p.stderr.decode()


# --- H3: oomScoreAdj and rlimits ------------------------------------------------------------------------------

def test_oom_score_adj_in_userns(pyrunc, ubundle, tmp_path):
    """The init is non-dumpable and in the new user namespace when it would write /proc/self/oom_score_adj: the
    file belongs to the host's root (mm->user_ns is the host's), which is unmapped in the container, so the write
    must come from the parent (runc: nsexec writes it before the user namespace)."""
    want = min(1000, int(open("/proc/self/oom_score_adj").read()) + 500)  # raising needs no CAP_SYS_RESOURCE
    b = ubundle(["cat", "/proc/self/oom_score_adj"], edit=lambda c: c["process"].__setitem__("oomScoreAdj", want))
    assert run(pyrunc, b).out == f"{want}\n"
    assert runc_run(b, tmp_path)[0] == f"{want}\n"


def test_rlimits_in_userns(pyrunc, ubundle, tmp_path):
    """rlimits up to the caller's hard limit (set from the parent with prlimit, as runc does)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def edit(c):
        c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": hard, "hard": hard},
                                   {"type": "RLIMIT_NPROC", "soft": 1000, "hard": 2000}]

    b = ubundle(["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u; ulimit -Hu"], edit=edit)
    want = f"{hard}\n{hard}\n1000\n2000\n"
    assert run(pyrunc, b).out == want
    assert runc_run(b, tmp_path)[0] == want


def test_rlimit_above_the_callers_hard_limit_is_refused(pyrunc, ubundle, tmp_path):
    """Without CAP_SYS_RESOURCE on this host, raising a hard limit fails for runc as well: a clear error, not a
    silently lower limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    caps = [line for line in open("/proc/self/status") if line.startswith("CapEff")][0]
    if int(caps.split()[1], 16) & (1 << 24):
        pytest.skip("this host has CAP_SYS_RESOURCE: raising a hard limit is allowed")

    def edit(c):
        c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": hard, "hard": hard + 1}]

    b = ubundle(["true"], edit=edit)
    p = run(pyrunc, b, rc=1)
    assert "rlimit" in p.err.lower() and "operation not permitted" in p.err, p.err
    runc_run(b, tmp_path, rc=1)
