"""pyrunc-init's own rules on ids, run directly (root): it never skips setresuid/setresgid, never takes -1 for an
id, and sets every additional gid (it used to cut the list at 256 without a word)."""

import os
import subprocess

from .test_seccomp_load import BUSYBOX, stub  # noqa: F401 (stub is a fixture)


def _run(stub, control, argv):
    """The stub with exactly this control (run_under adds root's ids when none are given)."""
    args = os.memfd_create("init-args", 0)
    os.write(args, b"".join(a.encode() + b"\0" for a in [control, *argv]))
    try:
        return subprocess.run([stub, "init"], capture_output=True, text=True, pass_fds=(args,), timeout=30,
                              env={"PATH": "/bin", "_PYRUNC_INIT": str(args)})
    finally:
        os.close(args)


ID = [BUSYBOX, "busybox", "id"]


def test_ids_are_required(stub):
    for control in ("keep=2", "keep=2,uid=1000", "keep=2,gid=1000"):
        r = _run(stub, control, ID)
        assert r.returncode != 0, f"{control}: ran as {r.stdout!r}"
        assert "uid= and gid= are required" in r.stderr, r.stderr


def test_minus_one_is_refused(stub):
    for control in ("keep=2,uid=4294967295,gid=0", "keep=2,uid=-1,gid=0", "keep=2,uid=0,gid=4294967295",
                    "keep=2,uid=1x,gid=0", "keep=2,uid=,gid=0", "keep=2,uid=0,gid=0,groups=1:-1"):
        r = _run(stub, control, ID)
        assert r.returncode != 0, f"{control}: ran as {r.stdout!r}"
        assert "control: invalid" in r.stderr, r.stderr


def test_ids_and_every_group_are_set(stub):
    """Read back from the kernel (/proc/self/status), not through `id`: names in the host's /etc/group would
    change its output."""
    groups = list(range(2000, 2400))
    r = _run(stub, "keep=2,uid=1000,gid=1001,groups=" + ":".join(map(str, groups)),
             [BUSYBOX, "busybox", "grep", "-E", "^(Uid|Gid|Groups):", "/proc/self/status"])
    assert r.returncode == 0, r.stderr
    status = {line.split(":")[0]: line.split()[1:] for line in r.stdout.splitlines()}
    assert status["Uid"] == ["1000"] * 4 and status["Gid"] == ["1001"] * 4, r.stdout
    assert sorted(map(int, status["Groups"])) == groups, r.stdout


def test_empty_groups_clears_them(stub):
    r = _run(stub, "keep=2,uid=1000,gid=1001,groups=", [BUSYBOX, "busybox", "grep", "^Groups:", "/proc/self/status"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["Groups:"], r.stdout


def test_protocol_is_not_on_the_command_line(stub):
    r = _run(stub, "keep=2,uid=0,gid=0", [BUSYBOX, "busybox", "cat", "/proc/self/cmdline"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "busybox\0cat\0/proc/self/cmdline\0"
    r = _run(stub, "keep=2,uid=0,gid=0", [BUSYBOX, "busybox", "env"])
    assert "_PYRUNC_INIT" not in r.stdout and "PATH=/bin" in r.stdout


def test_installed_stub_is_built_with_musl():
    """setup.py builds the stub with musl-gcc where it is installed (CI installs musl-tools): a static glibc
    program spends ~0.2-0.6 ms of every create, run and exec before main() (its CPU-cache detection through CPUID
    traps in a VM), and its ~700 KB are copied into a memfd on every create (musl's: ~55 KB)."""
    import shutil

    from pyrunc.process.stub import stub_path

    from ..conftest import require

    require(shutil.which("musl-gcc") is not None, "musl-gcc (Debian's musl-tools) is not installed")
    with open(stub_path(), "rb") as f:
        data = f.read()
    assert b"GNU C Library" not in data and b"glibc" not in data.lower(), "the stub was linked with glibc"
    assert len(data) < 200_000, f"{len(data)} bytes: not the musl stub"
