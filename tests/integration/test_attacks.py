"""Attacks on the runtime: each one is performed for real, then the host is checked to be untouched.

(a) fds leaked by the caller into the container (CVE-2024-21626's first half); (b) process.cwd through
/proc/self/fd (its second half); (c) symlinks in the image that point at host paths (CVE-2021-30465 family);
(d) overwriting the runtime binary through /proc/<pid>/exe (CVE-2019-5736); (e) reading the runtime's process
from inside a user namespace while it is still setting the container up (CVE-2016-9962).
"""

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from ..conftest import require

MARKER = "host-secret-marker"


def run_with_fds(pyrunc, b, cid, fds, *extra):
    """`pyrunc run` with extra fds open in the caller: `fds` maps fd number -> host path (opened by a shell)."""
    redirs = " ".join(f"{n}<'{path}'" for n, path in fds.items())
    argv = ["sh", "-c", f'exec {redirs} "$@"', "sh"] + pyrunc.cmd("run", *extra, "--bundle", b, cid)
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    p.out, p.err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    return p


# --- (a) fd leaks ------------------------------------------------------------------------------------

def test_caller_fds_do_not_reach_the_container(pyrunc, bundle, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(MARKER + "\n")
    hostdir = tmp_path  # a directory fd: with it a container could walk the host's tree (fchdir/openat "..")
    # `ls /proc/self/fd` lists ls's own fds: 0 1 2 and the directory it is reading (the lowest free number)
    b = bundle(["sh", "-c", "ls /proc/self/fd | tr '\\n' ' '; echo; cat <&3 2>/dev/null; ls /proc/self/fd/4/ 2>/dev/null; "
                            "true"])
    p = run_with_fds(pyrunc, b, pyrunc.new_id("fd"), {3: secret, 4: hostdir, 9: secret})
    assert p.returncode == 0, p.err
    lines = p.out.splitlines()
    assert lines[0].split() == ["0", "1", "2", "3"], p.out  # 3 is ls's directory
    assert MARKER not in p.out and "bundle1" not in p.out

    # --preserve-fds 1: exactly fd 3 gets through, and it is the caller's file
    p = run_with_fds(pyrunc, b, pyrunc.new_id("fd"), {3: secret, 4: hostdir, 9: secret}, "--preserve-fds", "1")
    assert p.returncode == 0, p.err
    lines = p.out.splitlines()
    assert lines[0].split() == ["0", "1", "2", "3", "4"], p.out  # 4 is ls's directory now
    assert lines[1] == MARKER
    assert "bundle1" not in p.out


def test_pyrunc_own_fds_do_not_reach_the_container(pyrunc, bundle):
    """No fd of pyrunc's (sync socket, exec fifo, seccomp program, stub memfd, cgroup dirs) survives exec."""
    b = bundle(["sh", "-c", "ls /proc/self/fd | tr '\\n' ' '"])
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("ownfd"), stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.err
    assert p.out.split() == ["0", "1", "2", "3"]


# --- (b) cwd through /proc/self/fd ---------------------------------------------------------------------

@pytest.mark.parametrize("n", [3, 4, 5, 7, 8])
def test_cwd_through_proc_self_fd(pyrunc, bundle, tmp_path, n):
    (tmp_path / MARKER).write_text("x")
    b = bundle(["sh", "-c", "pwd; ls; ls ..; ls ../../../.."],
               edit=lambda c: c["process"].__setitem__("cwd", f"/proc/self/fd/{n}"))
    # the caller also leaks host directory fds, as a careless caller would
    p = run_with_fds(pyrunc, b, pyrunc.new_id("cwd"), {3: tmp_path, 4: tmp_path, 5: "/", 7: tmp_path, 8: "/"})
    assert MARKER not in p.out, f"cwd landed on a host directory: {p.out}"
    assert "pytest-of-root" not in p.out and "bundle1" not in p.out
    if p.returncode != 0:  # refused: it must say why, naming the path as runc does
        assert f'chdir to cwd (\\"/proc/self/fd/{n}\\") set in config.json failed' in p.err, p.err
    else:  # or it resolved inside the container's root
        assert p.out.splitlines()[0].startswith("/"), p.out


# --- (c) symlinks in the image to host paths ------------------------------------------------------------

def test_dev_symlink_to_host_dir(pyrunc, bundle, tmp_path):
    host = tmp_path / "host-dev"
    host.mkdir()
    b = bundle(["sh", "-c", "stat -c %t:%T /dev/null; readlink /dev/stdout"])
    os.rmdir(b / "rootfs" / "dev")
    os.symlink(str(host), b / "rootfs" / "dev")
    cid = pyrunc.new_id("devlink")
    out = b / "out"
    with open(out, "wb") as f:
        p = subprocess.run(pyrunc.cmd("create", "--bundle", b, cid), stdin=subprocess.DEVNULL, stdout=f,
                           stderr=subprocess.STDOUT, timeout=60)
    if p.returncode == 0:
        pyrunc("start", cid, check=True)
        deadline = time.monotonic() + 10
        while pyrunc.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.05)
        pyrunc("delete", cid, check=True)
        assert out.read_text() == "1:3\n/proc/self/fd/1\n"
    assert os.listdir(host) == [], f"created on the host through the image's /dev symlink: {os.listdir(host)}"
    # what the container got was made inside its own rootfs
    inside = b / "rootfs" / str(host).lstrip("/")
    assert p.returncode != 0 or inside.is_dir()


def test_mount_destination_through_symlink(pyrunc, bundle, tmp_path):
    host = tmp_path / "host-target"
    host.mkdir()

    def edit(c):
        c["mounts"].append({"destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]})
        c["mounts"].append({"destination": "/dots/../../../../evil2", "type": "tmpfs", "source": "tmpfs"})

    b = bundle(["sh", "-c", "echo in > /evil/sub/f && cat /evil/sub/f; grep -c tmpfs /proc/mounts"], edit=edit)
    os.symlink(str(host), b / "rootfs" / "evil")
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("mntlink"))
    assert p.returncode == 0, p.err
    assert p.out.splitlines()[0] == "in"
    assert os.listdir(host) == [], "a mount point was created on the host through the symlink"
    assert (b / "rootfs" / str(host).lstrip("/") / "sub").is_dir()
    assert (b / "rootfs" / "evil2").is_dir()
    assert not (tmp_path / "evil2").exists() and not os.path.exists("/evil2")


# --- (d) the runtime binary through /proc/<pid>/exe ------------------------------------------------------

def test_init_exe_is_a_sealed_memfd(pyrunc, bundle):
    from pyrunc.process.stub import stub_path

    with open(stub_path(), "rb") as f:
        stub_before = f.read()
    b = bundle(["true"])
    cid = pyrunc.new_id("exe")
    assert subprocess.run(pyrunc.cmd("create", "--bundle", b, cid), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60).returncode == 0
    pid = pyrunc.state(cid)["pid"]
    exe = f"/proc/{pid}/exe"
    assert os.readlink(exe).startswith("/memfd:pyrunc-init")
    with pytest.raises(OSError):  # ETXTBSY while it runs, EPERM from the write seal
        fd = os.open(exe, os.O_WRONLY)
        os.close(fd)
    fd = os.open(exe, os.O_RDONLY)
    try:
        seals = fcntl.fcntl(fd, 1034)  # F_GET_SEALS
        assert seals & 0xF == 0xF, f"seals {seals:#x}: want SEAL|SHRINK|GROW|WRITE"
        with pytest.raises(OSError):
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)
    pyrunc("delete", cid, check=True)
    with open(stub_path(), "rb") as f:
        assert f.read() == stub_before


# --- (e) the init is non-dumpable while pyrunc sets it up -------------------------------------------------

_PROBE = r"""
PATH=/usr/sbin:/usr/bin:/sbin:/bin
pid=$(sed 's/.*"pid":\([0-9]*\).*/\1/')
/usr/bin/readlink /proc/$pid/exe > "$1.exe"
if /usr/bin/nsenter --user=/proc/$pid/ns/user -- /bin/cat /proc/$pid/environ > /dev/null 2>"$1.err"; then
  echo readable > "$1"
else
  echo denied > "$1"
fi
"""


def test_init_not_dumpable_during_setup(pyrunc, busybox):
    """A prestart hook runs while the init (still pyrunc's Python, with every capability) waits at sync 5.  From
    inside the container's user namespace, where it is root with every capability, the hook reads the init's
    /proc/<pid>/environ: that must be denied (the init is non-dumpable: its memory is the host runtime's).  The
    control: the same probe on a dumpable process in that user namespace is allowed.

    Note what this does and does not pin down: the kernel also makes a process non-dumpable when its credentials
    change (stage A's setresuid into the new user namespace), so this test holds the property, not the
    prctl(PR_SET_DUMPABLE, 0) call itself; without a user namespace a fully privileged init cannot be told apart
    by any process lacking CAP_SYS_PTRACE (the capability-subset rule refuses it first)."""
    require(shutil.which("nsenter"), "nsenter (util-linux) is needed to probe from inside the user namespace")
    from pyrunc.demo import make_bundle

    top = tempfile.mkdtemp(prefix="pyrunc-it-dump-", dir="/tmp")
    cid = pyrunc.new_id("dump")
    try:
        os.chmod(top, 0o755)
        b = os.path.join(top, "bundle")
        os.mkdir(b)
        probe = os.path.join(top, "probe.sh")
        with open(probe, "w") as f:
            f.write(_PROBE)
        result = os.path.join(top, "result")
        cfg = make_bundle(b, ["true"], busybox=busybox)
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", probe, result]}]}
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(cfg, f)
        err = os.path.join(top, "err")
        with open(err, "wb") as ef:  # never a pipe: the container inherits it
            p = subprocess.run(pyrunc.cmd("create", "--bundle", b, cid), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=ef, timeout=60)
        with open(err) as f:
            assert p.returncode == 0, f.read()
        with open(result + ".exe") as f:
            assert "python" in f.read(), "the probe did not look at pyrunc's setup process"
        with open(result) as f:
            assert f.read() == "denied\n", "the init was dumpable while pyrunc set it up"
        # control: a dumpable process in the same user namespace (a busybox owned by the mapped root, exec'd
        # inside it) IS readable by the same probe, so "denied" above is the init's non-dumpable flag
        pid = pyrunc.state(cid)["pid"]
        own = os.path.join(top, "busybox")
        shutil.copy2(busybox, own)
        os.chown(own, 100000, 100000)
        ctl = subprocess.Popen(["nsenter", f"--user=/proc/{pid}/ns/user", "--", own, "sleep", "100"])
        try:
            deadline = time.monotonic() + 5
            while not os.readlink(f"/proc/{ctl.pid}/exe").endswith("busybox") and time.monotonic() < deadline:
                time.sleep(0.02)
            c = subprocess.run(["sh", probe, result + ".control"], input=json.dumps({"pid": ctl.pid}, separators=(",", ":")).encode(),
                               timeout=30)
            assert c.returncode == 0
            with open(result + ".control") as f:
                assert f.read() == "readable\n", open(result + ".control.err").read()
        finally:
            ctl.kill()
            ctl.wait()
    finally:
        pyrunc("delete", "--force", cid)
        shutil.rmtree(top, ignore_errors=True)


def test_created_init_holds_no_caller_fd(pyrunc, bundle, tmp_path):
    """Until `start`, the init (the sealed stub) must not hold a host fd the caller leaked (podman passes stray
    fds): /proc/1/fd/N of a directory fd is a way out of the rootfs for anything that may ptrace it."""
    b = bundle(["sleep", "30"])
    cid = pyrunc.new_id("strayfd")
    hostdir = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    err = tmp_path / "create.err"
    try:
        with open(err, "wb") as f:  # a file, not a pipe: the created container keeps its stderr open
            p = subprocess.run(pyrunc.cmd("create", "--bundle", b, cid), pass_fds=[hostdir],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f, timeout=60)
    finally:
        os.close(hostdir)
    assert p.returncode == 0, err.read_text()
    pid = pyrunc.state(cid)["pid"]
    fds = {int(n): os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd")}
    assert str(tmp_path) not in fds.values(), fds
    # besides the fifo, only the directory through which the stub reopens it: /proc/self/fd in the container's
    # own procfs (its /proc mount), never the host's
    own_proc = os.stat(f"/proc/{pid}/root/proc").st_dev
    extra = {n: t for n, t in fds.items() if n > 2 and not t.endswith("exec.fifo")
             and not (t == "/proc/1/fd" and os.stat(f"/proc/{pid}/fd/{n}").st_dev == own_proc)}
    assert not extra, f"the created init holds more than stdio and its exec fifo: {extra}"
    pyrunc("delete", "--force", cid, check=True)


def test_start_container_hook_runs_confined(pyrunc, bundle):
    """A startContainer hook's path resolves in the image, so the image chooses what runs: it must run as the
    container's processes do (their capabilities, no_new_privs, cgroup), never as host root in the container."""
    def edit(c):
        c["root"]["readonly"] = False
        c["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": [
            "sh", "-c", "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status > /hook.out; "
                        "grep -c ':/pyrunc-it-' /proc/self/cgroup >> /hook.out"]}]}

    b = bundle(["sh", "-c", "cat /hook.out; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status"], edit=edit)
    p = pyrunc("run", "--bundle", b, pyrunc.new_id("hookcaps"))
    assert p.returncode == 0, p.err
    lines = p.out.splitlines()
    hook, count, main = lines[:2], lines[2], lines[3:]
    assert hook == main, f"the hook ran with other privileges than the container: {hook} vs {main}"
    assert int(count) > 0, "the hook did not run in the container's cgroup"


# --- (f) the created init's command line --------------------------------------------------------------

def test_created_init_cmdline_shows_no_protocol(pyrunc, bundle, tmp_path):
    """`ps` shows every process's argv to every user of the host: the init waiting for `start` must not show
    pyrunc's protocol (ids, capability masks, fd numbers) nor the user's argv.  runc shows `runc init`."""
    def edit(c):
        c["process"]["user"] = {"uid": 1234, "gid": 1234, "additionalGids": [5678]}

    b = bundle(["echo", "user-argv-marker"], edit=edit)
    cid = pyrunc.new_id("cmdline")
    err = tmp_path / "create.err"
    with open(err, "wb") as f:
        p = subprocess.run(pyrunc.cmd("create", "--bundle", b, cid), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=f, timeout=60)
    assert p.returncode == 0, err.read_text()
    pid = pyrunc.state(cid)["pid"]
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmdline = f.read()
    pyrunc("delete", "--force", cid, check=True)
    assert cmdline == b"pyrunc\0init\0", cmdline
    ps = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, timeout=10)
    assert b"user-argv-marker" not in ps.stdout and b"uid=" not in ps.stdout


# --- (g) hosts with vm.memfd_noexec ---------------------------------------------------------------------

def test_runs_with_memfd_noexec(pyrunc, bundle):
    """vm.memfd_noexec=1 makes every memfd created without MFD_EXEC non-executable (MFD_NOEXEC_SEAL): the sealed
    stub must ask for MFD_EXEC.  The sysctl is per pid namespace and a child namespace can only raise it, so the
    test sets it in a throwaway pid namespace (unshare) instead of the host's, which it never changes."""
    if not os.path.exists("/proc/sys/vm/memfd_noexec"):
        pytest.skip("kernel without vm.memfd_noexec (before 6.3)")
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is needed for a private pid namespace")
    b = bundle(["echo", "ran"])
    script = 'echo 1 > /proc/sys/vm/memfd_noexec && cat /proc/sys/vm/memfd_noexec && exec "$@"'
    p = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script, "sh"]
                       + pyrunc.cmd("run", "--bundle", b, pyrunc.new_id("noexec")),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert out.startswith("1\n"), (out, err)  # the sysctl was really set where pyrunc ran
    assert p.returncode == 0 and out == "1\nran\n", err
