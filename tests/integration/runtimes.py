"""The same scenario against pyrunc and runc: `rt` is parametrized over both (runc skips when not installed).

Each runtime gets its own private --root; container ids come from pyrunc.new_id(), so the pyrunc fixture's leak
check (state dirs, cgroups named after the test's containers, mounts) covers what runc left behind too.
"""

import os
import shutil
import subprocess
import time

import pytest

RUNC = shutil.which("runc")


class Runtime:
    def __init__(self, name, argv, root, ids):
        self.name, self.argv, self.root, self.ids = name, argv, root, ids

    def cmd(self, *args):
        return self.argv + ["--root", self.root] + [str(a) for a in args]

    def __call__(self, *args, timeout=60, input=None, **kw):
        if input is None and "stdin" not in kw:
            kw["stdin"] = subprocess.DEVNULL
        p = subprocess.run(self.cmd(*args), capture_output=True, timeout=timeout, input=input, **kw)
        p.out, p.err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
        return p

    def new_id(self, prefix):
        return self.ids(prefix)

    def detached(self, bundle, cid, *extra):
        """`run -d`: the container keeps the stdio it is given, so nothing here is a pipe we would wait on."""
        err = os.path.join(str(bundle), f"{self.name}-{cid}.err")
        with open(os.devnull, "wb") as null, open(err, "wb") as fe:
            p = subprocess.run(self.cmd("run", "-d", *extra, "--bundle", bundle, cid), stdin=subprocess.DEVNULL,
                               stdout=null, stderr=fe, timeout=60)
        with open(err) as f:
            assert p.returncode == 0, f"{self.name} run -d {cid}: {f.read()}"
        return self.state(cid)

    def state(self, cid):
        import json

        p = self("state", cid)
        assert p.returncode == 0, p.err
        return json.loads(p.out)

    def wait_status(self, cid, want, timeout=10):
        return wait_status(self, cid, want, timeout)

    def cleanup(self):
        if os.path.isdir(self.root):
            for cid in os.listdir(self.root):
                self("delete", "--force", cid)


@pytest.fixture(params=["pyrunc", "runc"])
def rt(request, pyrunc, tmp_path):
    if request.param == "runc":
        if not RUNC:
            pytest.skip("runc is not installed: nothing to compare with")
        r = Runtime("runc", [RUNC], str(tmp_path / "runc-state"), pyrunc.new_id)
    else:
        r = Runtime("pyrunc", list(pyrunc.argv), pyrunc.root, pyrunc.new_id)
    yield r
    r.cleanup()


@pytest.fixture
def pyrunc_rt(pyrunc):
    """pyrunc alone (for what runc 1.1.5 does not do), with the same helpers as `rt`."""
    r = Runtime("pyrunc", list(pyrunc.argv), pyrunc.root, pyrunc.new_id)
    yield r
    r.cleanup()


def wait_status(rt, cid, want, timeout=10):
    """rt.state(cid) until its status is `want` (bounded); returns the last state."""
    deadline = time.monotonic() + timeout
    while True:
        s = rt.state(cid)
        if s["status"] == want or time.monotonic() > deadline:
            return s
        time.sleep(0.02)
