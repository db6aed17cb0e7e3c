"""pyrunc-init loads what pyrunc.security compiles: seccomp programs and capability masks, for real (root).

Each test builds csrc/pyrunc_init.c statically into a temp dir (once per module), writes the compiled program to
a memfd that the stub inherits, and execs busybox (or python3) under it.  No container is created: these check
the kernel-facing half of pyrunc.security without the rest of the runtime.
"""

import os
import platform
import re
import shutil
import signal
import subprocess
import sys

import pytest

from pyrunc.security import caps
from pyrunc.security import seccomp as sc

from ..conftest import require

HERE = os.path.dirname(os.path.abspath(__file__))
STUB_SRC = os.path.join(HERE, "..", "..", "csrc", "pyrunc_init.c")
BUSYBOX = "/bin/busybox"


@pytest.fixture(autouse=True)
def _prerequisites():
    require(os.geteuid() == 0, "needs root (setresuid, capability changes)")
    require(os.path.exists(BUSYBOX), f"{BUSYBOX} (busybox-static) is not installed")
    require(shutil.which("gcc"), "gcc is needed to build pyrunc-init")


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("init") / "pyrunc-init")
    sys.path.insert(0, os.path.dirname(STUB_SRC))
    try:
        from build_stub import stub_compiler  # csrc/build_stub.py: as setup.py builds it
    finally:
        sys.path.pop(0)
    r = subprocess.run([*stub_compiler(), "-static", "-Os", "-o", out, STUB_SRC], capture_output=True, text=True)
    require(r.returncode == 0, f"cannot build a static pyrunc-init here: {r.stderr.strip()[-300:]}")
    return out


def run_under(stub, control, argv, program=None, **kw):
    """Exec argv under pyrunc-init with `control`; `program` goes in a memfd passed as seccomp=FD."""
    fds = ()
    if program is not None:
        fd = os.memfd_create("seccomp-test", 0)
        os.write(fd, program.bpf)
        os.lseek(fd, 0, os.SEEK_SET)
        fds = (fd,)
        control = f"seccomp={fd},sflags={program.flags},{control}"
    if "uid=" not in control:  # the stub requires both ids: these tests run as root unless they say otherwise
        control += ",uid=0,gid=0"
    # the stub's protocol: "pyrunc init" on the command line, its arguments in a memfd named by _PYRUNC_INIT
    args = os.memfd_create("init-args", 0)
    os.write(args, b"".join(a.encode() + b"\0" for a in [control, *argv]))
    env = dict(kw.pop("env", None) or os.environ, _PYRUNC_INIT=str(args))
    try:
        return subprocess.run([stub, "init"], capture_output=True, text=True, pass_fds=fds + (args,), env=env,
                              timeout=30, **kw)
    finally:
        for fd in fds + (args,):
            os.close(fd)


DENY = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["getpid"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["no_such_syscall"], "action": "SCMP_ACT_KILL_PROCESS"},
    ],
}


def test_denied_syscall_fails_with_configured_errno(stub, tmp_path):
    target = tmp_path / "made"
    r = run_under(stub, "nnp=1,keep=2", [BUSYBOX, "busybox", "mkdir", str(target)], sc.compile(DENY))
    assert r.returncode == 1, r.stderr
    assert "Operation not permitted" in r.stderr
    assert not target.exists()


def test_allowed_syscalls_work_and_status_shows_the_filter(stub, tmp_path):
    r = run_under(stub, "nnp=1,keep=2", [BUSYBOX, "busybox", "cat", "/proc/self/status"], sc.compile(DENY))
    assert r.returncode == 0, r.stderr
    assert re.search(r"^Seccomp:\s+2$", r.stdout, re.M)  # SECCOMP_MODE_FILTER
    assert re.search(r"^NoNewPrivs:\s+1$", r.stdout, re.M)
    r = run_under(stub, "nnp=1,keep=2", [BUSYBOX, "busybox", "touch", str(tmp_path / "f")], sc.compile(DENY))
    assert r.returncode == 0 and (tmp_path / "f").exists()


def test_kill_process_kills_with_sigsys(stub):
    # ash reads its own pid at start-up ($$)
    r = run_under(stub, "nnp=1,keep=2", [BUSYBOX, "busybox", "sh", "-c", "echo $$"], sc.compile(DENY))
    assert r.returncode == -signal.SIGSYS, (r.returncode, r.stderr)


def test_filter_loaded_after_the_fifo_without_nnp(stub, tmp_path):
    # nnp=0: the stub loads the filter late (it is root, so no_new_privs is not needed)
    r = run_under(stub, "keep=2", [BUSYBOX, "busybox", "mkdir", str(tmp_path / "d")], sc.compile(DENY))
    assert r.returncode == 1 and "Operation not permitted" in r.stderr


def test_log_flag_is_accepted_by_the_kernel(stub, tmp_path):
    prog = sc.compile(dict(DENY, flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]))
    assert prog.flags == sc.SECCOMP_FILTER_FLAG_LOG | sc.SECCOMP_FILTER_FLAG_SPEC_ALLOW
    r = run_under(stub, "nnp=1,keep=2", [BUSYBOX, "busybox", "mkdir", str(tmp_path / "d")], prog)
    assert r.returncode == 1 and "Operation not permitted" in r.stderr, r.stderr


@pytest.mark.skipif(platform.machine() != "x86_64", reason="uses the x86_64 syscall table header")
def test_enosys_stub_in_the_kernel(stub):
    # An allow-list profile (default EPERM) naming every x86_64 syscall up to rseq (334) but getppid: python3
    # runs under it, getppid gets EPERM, and numbers above 334 get ENOSYS from the prepended stub.
    header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
    require(os.path.exists(header), f"{header} missing (linux-libc-dev)")
    names = []
    with open(header) as f:
        for m in re.finditer(r"^#define __NR_(\w+)\s+(\d+)$", f.read(), re.M):
            if int(m.group(2)) <= 334 and m.group(1) != "getppid":
                names.append(m.group(1))
    prog = sc.compile({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                       "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]})
    code = ("import ctypes, os; libc = ctypes.CDLL(None, use_errno=True)\n"
            "for nr in (110, 1000, 39):\n"
            "    r = libc.syscall(nr); print(nr, r, ctypes.get_errno() if r < 0 else 0)\n")
    r = run_under(stub, "nnp=1,keep=2", [sys.executable, "python3", "-S", "-c", code], prog)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == "110 -1 1"  # getppid: not listed, below the highest listed -> default EPERM
    assert lines[1] == "1000 -1 38"  # unknown to the profile -> ENOSYS
    assert lines[2].startswith("39 ") and not lines[2].startswith("39 -1")  # getpid allowed


def status(text):
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_caps_and_ids(stub):
    m, warnings = caps.masks({"bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                              "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]})
    assert warnings == []
    r = run_under(stub, f"{caps.control(m)},uid=1000,gid=1000,keep=2", [BUSYBOX, "busybox", "cat", "/proc/self/status"])
    assert r.returncode == 0, r.stderr
    st = status(r.stdout)
    assert st["CapBnd"].strip() == "0000000020000420"
    # uid 1000 execs a file without file capabilities and without ambient ones: nothing survives exec
    assert st["CapEff"].strip() == "0000000000000000"
    assert st["CapPrm"].strip() == "0000000000000000"
    assert st["Uid"].split() == ["1000"] * 4
    assert st["Gid"].split() == ["1000"] * 4


def test_ambient_caps_survive_exec(stub):
    s = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    m, _ = caps.masks({"bounding": s, "effective": s, "permitted": s, "inheritable": s, "ambient": s})
    r = run_under(stub, f"{caps.control(m)},uid=1000,gid=1000,keep=2", [BUSYBOX, "busybox", "cat", "/proc/self/status"])
    assert r.returncode == 0, r.stderr
    st = status(r.stdout)
    want = "%016x" % ((1 << 5) | (1 << 10))
    assert (st["CapBnd"].strip(), st["CapAmb"].strip(), st["CapEff"].strip(), st["CapPrm"].strip()) == (want,) * 4


def test_runc_spec_caps_run_as_root(stub):
    # `runc spec`'s sets, ambient without inheritable: runc runs it with CapAmb 0, and so must the stub
    s = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    m, _ = caps.masks({"bounding": s, "effective": s, "permitted": s, "ambient": s})
    r = run_under(stub, f"{caps.control(m)},uid=0,gid=0,keep=2", [BUSYBOX, "busybox", "cat", "/proc/self/status"])
    assert r.returncode == 0, r.stderr
    st = status(r.stdout)
    assert (st["CapBnd"].strip(), st["CapEff"].strip(), st["CapAmb"].strip()) == (
        "0000000020000420", "0000000020000420", "0000000000000000")
