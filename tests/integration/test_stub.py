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
    groups = list(range(2000, 2400))
    r = _run(stub, "keep=2,uid=1000,gid=1001,groups=" + ":".join(map(str, groups)), ID)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("uid=1000") and " gid=1001 groups=" in r.stdout, r.stdout
    assert r.stdout.count(",") + 1 == len(groups), r.stdout


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
