"""Integration fixtures: real containers on a busybox bundle, a private --root, and a leak check after each test.

`pyrunc` runs the CLI under test and returns a CompletedProcess; `bundle(args, **changes)` makes a fresh bundle
whose config is `pyrunc spec` with a non-terminal process and the given args.  At teardown every container left
in the private root is force-deleted, then the test FAILS if anything leaked: a state dir, a cgroup directory
named after a container of the test, or a mount under the test's temp dir.
"""

import json
import os
import subprocess
import uuid

import pytest

from ..conftest import is_root, pyrunc_argv, pyrunc_built, require


@pytest.fixture(autouse=True)
def _prerequisites():
    """Every integration test runs real containers: root and a built pyrunc (skips locally, fails in CI)."""
    require(is_root(), "needs root: real namespaces, mounts and cgroups")
    missing = pyrunc_built()
    require(missing is None, missing)


class Pyrunc:
    def __init__(self, root):
        self.root = root
        self.argv = pyrunc_argv()
        self.ids = set()

    def cmd(self, *args, root=True):
        return self.argv + (["--root", self.root] if root else []) + [str(a) for a in args]

    def __call__(self, *args, check=False, timeout=60, input=None, root=True, **kw):
        p = subprocess.run(self.cmd(*args, root=root), capture_output=True, timeout=timeout, input=input, **kw)
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        if check and p.returncode != 0:
            raise AssertionError(f"pyrunc {' '.join(map(str, args))} exited {p.returncode}: {p.err}")
        return p

    def new_id(self, prefix="t"):
        cid = f"pyrunc-it-{prefix}-{uuid.uuid4().hex[:8]}"
        self.ids.add(cid)
        return cid

    def state(self, cid):
        p = self(["state", cid][0], cid, check=True)
        return json.loads(p.out)


def _mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


def _cgroup_dirs(names):
    found = []
    for base in ("/sys/fs/cgroup",):
        for dirpath, dirnames, _ in os.walk(base):
            for d in dirnames:
                if d in names:
                    found.append(os.path.join(dirpath, d))
            if dirpath.count("/") > 6:
                dirnames[:] = []
    return found


@pytest.fixture
def pyrunc(tmp_path):
    p = Pyrunc(str(tmp_path / "state"))
    yield p
    leftovers = []
    if os.path.isdir(p.root):
        for cid in os.listdir(p.root):
            p("delete", "--force", cid)
            leftovers.append(cid)
    still = os.listdir(p.root) if os.path.isdir(p.root) else []
    cgroups = _cgroup_dirs(p.ids)
    mounts = _mounts_under(str(tmp_path))
    assert not still, f"state dirs left after delete --force: {still}"
    assert not cgroups, f"cgroups left behind: {cgroups}"
    assert not mounts, f"mounts left behind: {mounts}"


@pytest.fixture
def bundle(tmp_path, busybox):
    from pyrunc.demo import make_bundle

    count = [0]

    def make(args=("true",), edit=None):
        count[0] += 1
        path = tmp_path / f"bundle{count[0]}"
        path.mkdir()
        cfg = make_bundle(str(path), list(args), busybox=busybox)
        if edit:
            edit(cfg)
            with open(path / "config.json", "w") as f:
                json.dump(cfg, f)
        return path

    return make
