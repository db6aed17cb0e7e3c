"""Harness for the spec checks: drive a runtime binary, build bundles, run the probe.

Everything here talks to a runtime only through its CLI (runc-compatible verbs and
flags), with a private ``--root`` so that nothing touches the host's containers.

The runner makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), as
containerd's shim does: after ``create`` returns, the container's init is
reparented to us, so we can wait for it and read its exit status instead of
polling ``state``.
"""

import copy
import ctypes
import json
import os
import select
import shutil
import stat
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE_SRC = os.path.join(os.path.dirname(HERE), "probe.c")
BUSYBOX = "/bin/busybox"
CMD_TIMEOUT = 30

# Capability names in bit order (linux/capability.h).
CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]


class CheckFail(Exception):
    """A requirement is not met; the message says what was seen."""


class Skip(Exception):
    """The check cannot run on this host; the message says why."""


def expect(cond, msg):
    if not cond:
        raise CheckFail(msg)


def caps_mask(names):
    mask = 0
    for n in names:
        mask |= 1 << CAPS.index(n)
    return mask


def set_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap_all():
    """Reap every exited child (orphaned container inits reparented to us)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def wait_exit(pid, timeout=20):
    """Wait for pid to exit; return its exit status (or None if not our child)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            wpid, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            # Not our child (the runtime double-forked past us): poll /proc.
            if not os.path.exists(f"/proc/{pid}"):
                return None
            time.sleep(0.02)
            continue
        if wpid == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    raise CheckFail(f"pid {pid} did not exit within {timeout}s")


class Result:
    def __init__(self, argv, rc, out, err):
        self.argv, self.rc, self.out, self.err = argv, rc, out, err

    def __repr__(self):
        return f"{' '.join(self.argv[3:])!r} -> rc={self.rc} out={self.out[:200]!r} err={self.err[:300]!r}"


class Runtime:
    def __init__(self, path, root):
        self.path, self.root = path, root

    def cmd(self, *args, stdin=subprocess.DEVNULL, stdout=None, stderr=None, timeout=CMD_TIMEOUT):
        argv = [self.path, "--root", self.root, *args]
        if stdout is None:
            p = subprocess.run(argv, stdin=stdin, capture_output=True, timeout=timeout)
            return Result(argv, p.returncode, p.stdout.decode(errors="replace"),
                          p.stderr.decode(errors="replace"))
        p = subprocess.run(argv, stdin=stdin, stdout=stdout, stderr=stderr, timeout=timeout)
        return Result(argv, p.returncode, "", "")

    def ok(self, *args, **kw):
        r = self.cmd(*args, **kw)
        expect(r.rc == 0, f"{r!r}")
        return r

    def state(self, cid):
        r = self.ok("state", cid)
        try:
            return json.loads(r.out)
        except ValueError:
            raise CheckFail(f"state output is not JSON: {r.out[:300]!r}")

    def force_delete(self, cid):
        try:
            self.cmd("delete", "--force", cid)
        except subprocess.TimeoutExpired:
            pass


def base_config():
    """A config close to `runc spec`, but with writable root and the probe as args."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["/probe"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(caps) for k in ("bounding", "effective", "inheritable", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "conformance",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            # Paths missing on the host (/proc/kcore, /proc/sysrq-trigger on some kernels) must be
            # skipped silently, as runc does.
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/bus", "/proc/sysrq-trigger"],
        },
    }


class Context:
    """Shared state for one run: the runtime, temp dirs, the probe, cached probe runs."""

    def __init__(self, runtime_path, root, workdir, prefix):
        self.rt = Runtime(runtime_path, root)
        self.workdir = workdir
        self.prefix = prefix
        self._seq = 0
        self._cache = {}
        self.probe_bin = None
        self.template = None
        self.cgroup_names = set()

    # -- setup ---------------------------------------------------------------
    def setup(self):
        self.probe_bin = os.path.join(self.workdir, "probe")
        subprocess.run(["gcc", "-static", "-O2", "-o", self.probe_bin, PROBE_SRC], check=True)
        self.template = os.path.join(self.workdir, "rootfs-template")
        build_rootfs(self.template, self.probe_bin)

    def new_id(self, name):
        self._seq += 1
        return f"{self.prefix}-{self._seq}-{name}"[:60]

    def cgroup_path(self, name):
        """An absolute cgroupsPath under our unique prefix (cleaned up at the end)."""
        return f"/{self.prefix}/{name}"

    def config(self):
        return copy.deepcopy(base_config())

    def bundle(self, config):
        b = tempfile.mkdtemp(prefix="bundle-", dir=self.workdir)
        os.chmod(b, 0o755)
        shutil.copytree(self.template, os.path.join(b, "rootfs"), symlinks=True)
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        return b

    # -- running containers -------------------------------------------------
    def create(self, config, cid=None, name="c", stdio=None, cleanup_on_fail=True):
        """Create a container; return (cid, bundle, pid). Caller deletes it."""
        cid = cid or self.new_id(name)
        b = self.bundle(config)
        pidfile = os.path.join(b, "init.pid")
        if stdio is None:
            with open(os.devnull, "rb") as dn, tempfile.TemporaryFile() as err:
                r = self.rt.cmd("create", "--bundle", b, "--pid-file", pidfile, cid,
                                stdin=dn, stdout=err, stderr=err)
                err.seek(0)
                r.err = err.read().decode(errors="replace")
        else:
            r = self.rt.cmd("create", "--bundle", b, "--pid-file", pidfile, cid,
                            stdin=stdio[0], stdout=stdio[1], stderr=stdio[2])
        if r.rc != 0:
            if cleanup_on_fail:
                self.rt.force_delete(cid)
            raise CheckFail(f"create failed: {r!r}")
        with open(pidfile) as f:
            pid = int(f.read().strip())
        return cid, b, pid

    def run_probe(self, config, *probe_args, name="probe", keep=None):
        """create + start the probe; return (exit code, probe JSON, extras dict).

        keep(cid, bundle, pid) is called while the container still exists
        (after it exited), for host-side inspection before delete."""
        if probe_args:
            config["process"]["args"] = ["/probe", *probe_args]
        r_in, w_in = os.pipe()
        r_out, w_out = os.pipe()
        err = tempfile.TemporaryFile()
        extras = {"stdin": os.fstat(r_in), "stdout": os.fstat(w_out), "stderr": os.fstat(err.fileno())}
        cid = None
        try:
            try:
                cid, b, pid = self.create(config, name=name, stdio=(r_in, w_out, err))
            except CheckFail:
                err.seek(0)
                raise CheckFail(f"create failed: {err.read().decode(errors='replace')[:600]}")
            finally:
                os.close(r_in)
                os.close(w_out)
            extras.update(cid=cid, bundle=b, pid=pid)
            r = self.rt.cmd("start", cid)
            if r.rc != 0:
                err.seek(0)
                raise CheckFail(f"{r!r}; container stderr: {err.read().decode(errors='replace')[:600]!r}")
            out = read_until_eof(r_out, 20)
            code = wait_exit(pid)
            extras["exit"] = code
            if keep:
                keep(cid, b, pid)
            try:
                data = json.loads(out)
            except ValueError:
                err.seek(0)
                raise CheckFail(f"probe output is not JSON: out={out[:300]!r} "
                                f"err={err.read().decode(errors='replace')[:300]!r}")
            return code, data, extras
        finally:
            os.close(w_in)
            os.close(r_out)
            err.close()
            if cid:
                self.rt.force_delete(cid)

    def cached_probe(self, key, build):
        """Run one probe container per key and share its result across checks."""
        if key not in self._cache:
            try:
                self._cache[key] = ("ok", build())
            except Exception as e:  # noqa: BLE001 - every sharing check reports it
                self._cache[key] = ("err", e)
        kind, val = self._cache[key]
        if kind == "err":
            raise val
        return val


def read_until_eof(fd, timeout):
    chunks, deadline = [], time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise CheckFail("timed out reading the container's stdout")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            data = os.read(fd, 65536)
            if not data:
                return b"".join(chunks).decode(errors="replace")
            chunks.append(data)


def build_rootfs(root, probe_bin):
    """A busybox rootfs: /bin/busybox, one symlink per applet, passwd/group, /probe."""
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "var"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    shutil.copy2(BUSYBOX, os.path.join(root, "bin/busybox"))
    applets = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    for a in applets:
        p = os.path.join(root, a)
        if not os.path.lexists(p):
            os.makedirs(os.path.dirname(p), exist_ok=True)
            os.symlink("/bin/busybox", p)
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")
    shutil.copy2(probe_bin, os.path.join(root, "probe"))
    os.chmod(os.path.join(root, "probe"), 0o755)


def is_dir(path):
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False
