"""The systemd cgroup driver against a real systemd, booted as PID 1 of a container.

This host's PID 1 is not systemd, so the module boots one: a Debian bookworm rootfs made by debootstrap (cached
under ROOTFS_CACHE, keyed by ROOTFS_KEY; made again when missing, never committed), seen through an overlay so
the cache stays clean, runs /lib/systemd/systemd under pyrunc itself (the outer runtime, cgroupfs driver) with
new pid/mount/ipc/uts/net/cgroup namespaces, read-write /sys and /sys/fs/cgroup (a cgroup mount: with the cgroup
namespace each hierarchy shows the outer container's cgroup as its root), tmpfs on /run and /tmp, and
container=pyrunc in its environment.  The repository (its venv included), the interpreter's prefix and the inner
bundles are bind-mounted read-only at the same paths, so the venv's absolute paths work inside.

The tests then run pyrunc (and runc, the reference, where it is installed) inside with `--systemd-cgroup`, through
the outer runtime's exec, and look at the result with systemctl and in the cgroupfs.  Teardown removes the outer
container, its overlay and its cgroups, and fails if any is left.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from ..conftest import REPO, pyrunc_argv, require

pytestmark = pytest.mark.systemd  # root and a built pyrunc: required by the integration conftest

ROOTFS_CACHE = "/var/cache/pyrunc-test"
ROOTFS_KEY = "bookworm-minbase-systemd-dbus-python3-procps-1"
PACKAGES = "systemd,dbus,systemd-sysv,python3,procps"  # python3: the libraries the venv's extensions link to
INNER_ROOT = "/run/pyrunc-inner"
BOOT_TIMEOUT = 60


def _rootfs():
    """The cached bookworm rootfs, made with debootstrap when missing (about 1.5 min on the development VM)."""
    path = os.path.join(ROOTFS_CACHE, "systemd-rootfs-" + ROOTFS_KEY)
    if os.path.exists(os.path.join(path, "lib", "systemd", "systemd")):
        return path
    require(shutil.which("debootstrap"), "debootstrap is not installed (apt-get install debootstrap): no systemd "
            "rootfs to boot")
    tmp = f"{path}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(ROOTFS_CACHE, exist_ok=True)
    p = subprocess.run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm", tmp,
                        "http://deb.debian.org/debian"], capture_output=True, timeout=1200)
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.fail(f"debootstrap failed ({p.returncode}): {p.stderr.decode(errors='replace')[-2000:]}")
    try:
        os.rename(tmp, path)
    except OSError:  # another run made it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.exists(os.path.join(path, "lib", "systemd", "systemd")):
            raise
    return path


def _caps():
    """Every capability this host's bounding set has (no CAP_SYS_RESOURCE on the development VM)."""
    from pyrunc.security.caps import CAPABILITIES

    with open("/proc/self/status") as f:
        bnd = int(next(line.split()[1] for line in f if line.startswith("CapBnd:")), 16)
    return sorted(name for name, bit in CAPABILITIES.items() if bnd >> bit & 1)


def _shared_paths():
    """What must be visible inside at the same path: the repo, the venv, the interpreter's installation."""
    out = []
    for p in sorted({REPO, sys.prefix, sys.base_prefix}, key=len):
        p = os.path.realpath(p)
        if p in ("/", "/usr") or any(p == q or p.startswith(q + "/") for q in out):
            continue  # /usr: the rootfs has its own python3 of the same release (bookworm = this host)
        out.append(p)
    return out


def _runc():
    return shutil.which("runc")


# host binaries made visible inside as /usr/local/bin/<name> (same libc: bookworm = this host): the reference
# runtime, and containerd with its shim and ctr for the shim pass-through test
HOST_BINARIES = ("runc", "containerd", "containerd-shim-runc-v2", "ctr")


def _host_binaries():
    return {name: shutil.which(name) for name in HOST_BINARIES if shutil.which(name)}


class Outer:
    """The container running systemd; run() executes a command in it through the outer runtime's exec."""

    def __init__(self, base, unified=False):
        self.base = base
        self.unified = unified  # systemd sees only cgroup2 (the outer's cgroup2 dir, bound at /sys/fs/cgroup)
        self.root = os.path.join(base, "state")
        self.id = f"pyrunc-sd-{uuid.uuid4().hex[:8]}"
        self.cgroup = "/" + self.id
        self.rootfs = os.path.join(base, "rootfs")
        self.inner = os.path.join(base, "inner")  # the inner bundles, bind-mounted at the same path
        self.log = os.path.join(base, "systemd.log")
        self.argv = pyrunc_argv() + ["--root", self.root]
        self.mounted = False

    def config(self):
        from pyrunc.spec.default import default_config

        cfg = default_config()
        cfg["root"] = {"path": self.rootfs, "readonly": False}
        p = cfg["process"]
        p.update(terminal=False, args=["/lib/systemd/systemd"], noNewPrivileges=False,
                 env=["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "container=pyrunc"])
        p["capabilities"] = {k: _caps() for k in ("bounding", "effective", "permitted")}
        p.pop("rlimits", None)
        lx = cfg["linux"]
        lx["namespaces"] = [{"type": t} for t in ("pid", "mount", "ipc", "uts", "network", "cgroup")]
        lx["cgroupsPath"] = self.cgroup
        lx["resources"] = {"devices": [{"allow": True, "access": "rwm"}]}
        for k in ("maskedPaths", "readonlyPaths", "seccomp"):
            lx.pop(k, None)
        mounts = [m for m in cfg["mounts"] if m["destination"] not in ("/sys", "/sys/fs/cgroup", "/run", "/tmp")]
        mounts += [
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys/fs/cgroup", "type": "bind", "source": self.unified, "options": ["rbind"]}
            if self.unified else
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime"]},
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=755"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]},
        ]
        for path in _shared_paths() + [self.inner]:
            mounts.append({"destination": path, "type": "bind", "source": path, "options": ["rbind", "ro"]})
        for name, path in _host_binaries().items():
            mounts.append({"destination": f"/usr/local/bin/{name}", "type": "bind", "source": path,
                           "options": ["bind", "ro"]})
        cfg["mounts"] = mounts
        with open(os.path.join(self.base, "config.json"), "w") as f:
            json.dump(cfg, f)

    def boot(self, lower):
        os.makedirs(self.inner)
        for d in ("upper", "work"):
            os.makedirs(os.path.join(self.base, d))
        os.makedirs(self.rootfs, exist_ok=True)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={lower},upperdir={self.base}/upper,workdir={self.base}/work", self.rootfs],
                       check=True, timeout=30)
        self.mounted = True
        for name in _host_binaries():
            open(os.path.join(self.rootfs, "usr/local/bin", name), "w").close()
        self.config()
        with open(self.log, "wb") as log:
            subprocess.run(self.argv + ["create", "--bundle", self.base, self.id], stdin=subprocess.DEVNULL,
                           stdout=log, stderr=log, check=True, timeout=60)
        subprocess.run(self.argv + ["start", self.id], check=True, timeout=30)
        deadline = time.monotonic() + BOOT_TIMEOUT
        state = ""
        while time.monotonic() < deadline:
            state = self.run("systemctl", "is-system-running").stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.2)
        raise AssertionError(f"systemd did not come up in {BOOT_TIMEOUT} s (is-system-running: {state!r}); "
                             f"log: {open(self.log, errors='replace').read()[-2000:]}")

    def run(self, *args, check=False, timeout=60):
        p = subprocess.run(self.argv + ["exec", self.id] + [str(a) for a in args], capture_output=True,
                           timeout=timeout, text=True, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"{' '.join(map(str, args))} exited {p.returncode}: {p.stderr}{p.stdout}")
        return p

    def sh(self, script, **kw):
        return self.run("sh", "-c", script, **kw)

    def teardown(self):
        problems = []
        if os.path.isdir(os.path.join(self.root, self.id)):
            p = subprocess.run(self.argv + ["delete", "--force", self.id], capture_output=True, text=True,
                               timeout=60)
            if p.returncode != 0:
                problems.append(f"delete of the systemd container: {p.stderr}")
        if self.mounted:
            subprocess.run(["umount", "-l", self.rootfs], timeout=30)
        with open("/proc/self/mountinfo") as f:
            mounts = [line.split()[4] for line in f if line.split()[4].startswith(self.base)]
        left = [os.path.join(r, d) for r, ds, _ in os.walk("/sys/fs/cgroup") for d in ds if d == self.id]
        shutil.rmtree(self.base, ignore_errors=True)
        assert not (problems or mounts or left), f"left behind: {problems} mounts {mounts} cgroups {left}"


@pytest.fixture(scope="module")
def outer(tmp_path_factory):
    lower = _rootfs()
    o = Outer(str(tmp_path_factory.mktemp("systemd")))
    try:
        o.boot(lower)
        yield o
    finally:
        o.teardown()


def _unified_dir(cgroup):
    """The cgroup2 dir of an absolute cgroupsPath on this host (hybrid: under the cgroup2 mount), or None."""
    from pyrunc.cgroups.detect import detect

    layout = detect()
    return os.path.join(layout.unified, cgroup.lstrip("/")) if layout.mode == "hybrid" and layout.unified else None


@pytest.fixture(scope="module")
def outer_v2(tmp_path_factory):
    """A second systemd that sees a pure cgroup2 hierarchy: the host's cgroup2 dir of the outer container, bound
    at /sys/fs/cgroup (on this hybrid host it holds only the hugetlb controller, so no limits are checked)."""
    lower = _rootfs()
    o = Outer(str(tmp_path_factory.mktemp("systemd-v2")))
    o.unified = _unified_dir(o.cgroup)  # None on a pure v2 host: the host's own layout is then unified already
    from pyrunc.cgroups.detect import detect

    if detect().unified is None:
        pytest.skip("no cgroup2 hierarchy mounted: systemd cannot run in unified mode on a pure v1 host")
    try:
        o.boot(lower)
        yield o
    finally:
        o.teardown()


@pytest.fixture
def inner(outer, busybox, request):
    """A runtime inside the systemd container: call(args) -> CompletedProcess; bundle(cgroups_path, ...)."""
    yield from _inner(outer, busybox, request)


@pytest.fixture
def inner_v2(outer_v2, busybox, request):
    yield from _inner(outer_v2, busybox, request)


def _inner(outer, busybox, request):
    from pyrunc.demo import make_bundle

    runtime = getattr(request, "param", "pyrunc")
    if runtime == "runc":
        require(_runc(), "runc is not installed: no reference to compare with")
    binary = pyrunc_argv()[0] if runtime == "pyrunc" else "/usr/local/bin/runc"

    class Inner:
        name = runtime
        ids = []

        def __call__(self, *args, check=False):
            # stdout to /dev/null and stderr to a file, not the exec's pipes: a created container's init inherits
            # them, and would hold the pipes (and this call) open until it exits
            script = 'e=$(mktemp); "$@" >/dev/null 2>"$e"; rc=$?; cat "$e" >&2; rm -f "$e"; exit $rc'
            if args[0] not in ("create", "run"):
                script = '"$@"'
            return outer.run("sh", "-c", script, "sh", binary, "--root", INNER_ROOT + "-" + runtime,
                             "--systemd-cgroup", *args, check=check)

        def bundle(self, cgroups_path, resources=None, args=("sleep", "1000"), annotations=None):
            path = os.path.join(outer.inner, uuid.uuid4().hex[:8])
            os.makedirs(path)
            cfg = make_bundle(path, list(args), busybox=busybox)
            cfg["linux"]["cgroupsPath"] = cgroups_path
            if resources:
                cfg["linux"]["resources"] = dict(cfg["linux"].get("resources") or {}, **resources)
            if annotations:
                cfg["annotations"] = annotations
            with open(os.path.join(path, "config.json"), "w") as f:
                json.dump(cfg, f)
            return path

    rt = Inner()
    yield rt
    for cid in rt.ids:
        rt("delete", "--force", cid)


def show(outer, unit, *props):
    out = outer.run("systemctl", "show", *[f"-p{p}" for p in props], unit, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def units(outer, name):
    return [line for line in outer.run("systemctl", "list-units", "--all", "--no-legend", "--plain").stdout
            .splitlines() if name in line]


def read(outer, path):
    return outer.run("cat", path, check=True).stdout.strip()


def wait_stopped(inner, cid, timeout=10):
    deadline = time.monotonic() + timeout
    while json.loads(inner("state", cid, check=True).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline, f"{cid} did not stop in {timeout} s"
        time.sleep(0.05)


@pytest.mark.parametrize("inner", ["pyrunc", "runc"], indirect=True)
def test_cri_style_path_lifecycle(outer, inner):
    """create/start/update/pause/resume/ps/kill --all/delete of a kubelet-style pod container: the scope lands in
    the expanded pod slice with its limits in systemd and in the cgroupfs, and nothing is left after delete."""
    uid = uuid.uuid4().hex[:12]
    cid = f"sd-{inner.name}-{uuid.uuid4().hex[:6]}"
    inner.ids.append(cid)
    pod = f"kubepods-besteffort-pod{uid}.slice"
    unit = f"cri-containerd-{cid}.scope"
    bundle = inner.bundle(f"{pod}:cri-containerd:{cid}",
                          {"memory": {"limit": 64 << 20}, "pids": {"limit": 50}, "cpu": {"shares": 512}},
                          annotations={"org.systemd.property.TimeoutStopSec": "uint64 7"})
    inner("create", "--bundle", bundle, cid, check=True)
    inner("start", cid, check=True)
    pid = json.loads(inner("state", cid, check=True).stdout)["pid"]

    cg = f"/kubepods.slice/kubepods-besteffort.slice/{pod}/{unit}"
    s = show(outer, unit, "ActiveState", "Slice", "ControlGroup", "MemoryLimit", "TasksMax", "CPUShares", "Delegate",
             "TimeoutStopUSec")
    assert s == {"ActiveState": "active", "Slice": pod, "ControlGroup": cg, "MemoryLimit": str(64 << 20),
                 "TasksMax": "50", "CPUShares": "512", "Delegate": "yes", "TimeoutStopUSec": "7s"}
    assert outer.run("systemctl", "is-active", pod).stdout.strip() == "active"
    assert read(outer, f"/sys/fs/cgroup/memory{cg}/memory.limit_in_bytes") == str(64 << 20)
    assert read(outer, f"/sys/fs/cgroup/pids{cg}/pids.max") == "50"
    assert f"memory:{cg}" in read(outer, f"/proc/{pid}/cgroup")
    assert f"freezer:{cg}" in read(outer, f"/proc/{pid}/cgroup")  # a hierarchy systemd leaves to the runtime

    inner("update", "--memory", "128M", "--pids-limit", "77", cid, check=True)
    s = show(outer, unit, "MemoryLimit", "TasksMax")
    assert s == {"MemoryLimit": str(128 << 20), "TasksMax": "77"}
    assert read(outer, f"/sys/fs/cgroup/memory{cg}/memory.limit_in_bytes") == str(128 << 20)
    assert read(outer, f"/sys/fs/cgroup/pids{cg}/pids.max") == "77"
    # systemd realizes its cgroups again on a reload: the unit's own settings must keep the init where it is
    outer.run("systemctl", "daemon-reload", check=True)
    assert show(outer, unit, "MemoryLimit")["MemoryLimit"] == str(128 << 20)
    if inner.name == "pyrunc":
        assert f"devices:{cg}\n" in read(outer, f"/proc/{pid}/cgroup") + "\n"

    inner("pause", cid, check=True)
    assert json.loads(inner("state", cid, check=True).stdout)["status"] == "paused"
    assert read(outer, f"/sys/fs/cgroup/freezer{cg}/freezer.state") == "FROZEN"
    inner("resume", cid, check=True)
    assert json.loads(inner("state", cid, check=True).stdout)["status"] == "running"

    if inner.name == "pyrunc":
        # runc 1.1.5 is left out here: under this systemd (252) its init ends up in the pod slice's devices
        # cgroup rather than the scope's, so its `ps` lists nothing and `kill --all` kills nothing
        assert str(pid) in inner("ps", cid, check=True).stdout.split()
        stats = json.loads(inner("events", "--stats", cid, check=True).stdout)
        assert stats["data"]["memory"]["usage"]["limit"] == 128 << 20
        assert stats["data"]["pids"]["current"] >= 1
        inner("kill", "--all", cid, "KILL", check=True)
        wait_stopped(inner, cid)
    else:
        inner("kill", cid, "KILL", check=True)
        wait_stopped(inner, cid)
    inner("delete", cid, check=True)
    assert units(outer, unit) == []
    left = outer.sh(f"ls -d /sys/fs/cgroup/*{cg} 2>/dev/null").stdout.split()
    assert left == []


def test_delete_force_of_running_container_leaves_no_unit(outer, inner):
    cid = f"sd-force-{uuid.uuid4().hex[:6]}"
    inner.ids.append(cid)
    unit = f"pyrunc-{cid}.scope"
    inner("create", "--bundle", inner.bundle(f"system.slice:pyrunc:{cid}"), cid, check=True)
    inner("start", cid, check=True)
    assert show(outer, unit, "ActiveState", "ControlGroup") == {"ActiveState": "active",
                                                                "ControlGroup": f"/system.slice/{unit}"}
    # exec'd processes join the same unit
    assert f"/system.slice/{unit}" in inner("exec", cid, "cat", "/proc/self/cgroup", check=True).stdout
    inner("delete", "--force", cid, check=True)
    assert units(outer, unit) == []
    assert outer.sh(f"ls -d /sys/fs/cgroup/*/system.slice/{unit} 2>/dev/null").stdout.split() == []


def test_failed_create_leaves_no_unit(outer, inner):
    """The init cannot start (no such program): create fails, and neither the unit nor a state dir remains."""
    cid = f"sd-fail-{uuid.uuid4().hex[:6]}"
    inner.ids.append(cid)
    p = inner("create", "--bundle", inner.bundle(f"system.slice:pyrunc:{cid}", args=("/no/such/program",)), cid)
    assert p.returncode != 0 and "/no/such/program" in p.stderr
    assert units(outer, f"pyrunc-{cid}.scope") == []
    assert inner("state", cid).returncode != 0
    # systemd itself refuses the unit (a property of the wrong type): its error is reported, nothing is left
    bad = inner.bundle(f"system.slice:pyrunc:{cid}", annotations={"org.systemd.property.CPUWeight": "'heavy'"})
    p = inner("create", "--bundle", bad, cid)
    assert p.returncode != 0 and f"systemd cgroup driver: start unit pyrunc-{cid}.scope: " in p.stderr, p.stderr
    assert units(outer, f"pyrunc-{cid}.scope") == []
    assert inner("state", cid).returncode != 0


def test_malformed_path_is_refused(outer, inner):
    cid = f"sd-bad-{uuid.uuid4().hex[:6]}"
    for path, msg in (("system.slice:pyrunc", "expected cgroupsPath to be of format"),
                      ("a--b.slice:pyrunc:x", "invalid slice name: a--b.slice")):
        p = inner("create", "--bundle", inner.bundle(path), cid)
        assert p.returncode == 1 and msg in p.stderr, p.stderr
        assert inner("state", cid).returncode != 0


def test_host_without_systemd_refuses_clearly(pyrunc, bundle):
    """On a host whose PID 1 is not systemd (this one) the driver fails saying so, and never falls back to
    cgroupfs.  On a systemd host the same is seen from a mount namespace where /run/systemd is an empty tmpfs."""
    with open("/proc/1/comm") as f:
        comm = f.read().strip()
    cid = pyrunc.new_id("nosd")
    b = bundle(["true"], edit=lambda cfg: cfg["linux"].update(cgroupsPath=f"system.slice:pyrunc:{cid}"))
    argv = pyrunc.cmd("--systemd-cgroup", "create", "--bundle", b, cid)
    if os.path.isdir("/run/systemd/system"):
        argv = ["unshare", "--mount", "sh", "-c", 'mount -t tmpfs none /run/systemd && exec "$@"', "sh"] + argv
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    p.err = p.stderr
    assert p.returncode == 1
    assert f"systemd cgroup driver: systemd is not running (pid 1 is {comm})" in p.err
    assert pyrunc("state", cid).returncode == 1  # nothing left: the fixture also checks cgroups and mounts


CONTAINERD_TOML = """version = 2
root = "/var/lib/containerd-sd"
state = "/run/containerd-sd"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "/run/containerd-sd/containerd.sock"
"""


def test_containerd_shim_passes_the_systemd_driver(outer, busybox):
    """containerd + containerd-shim-runc-v2 inside the systemd container, running pyrunc as the runc binary with
    SystemdCgroup (ctr --runc-systemd-cgroup) and a kubelet-style cgroupsPath: the shim's pyrunc calls carry
    --systemd-cgroup, the scope gets the memory limit, and task/container removal leaves no unit."""
    require({"containerd", "containerd-shim-runc-v2", "ctr"} <= set(_host_binaries()),
            "containerd, its runc v2 shim and ctr are needed on the host")
    from tests.e2e.conftest import build_oci_archive

    archive = os.path.join(outer.inner, "busybox-oci.tar")
    build_oci_archive(busybox, archive)
    cfg = os.path.join(outer.inner, "containerd.toml")
    with open(cfg, "w") as f:
        f.write(CONTAINERD_TOML)
    pid = outer.sh(f"PATH=/usr/local/bin:$PATH containerd --config {cfg} </dev/null >/run/containerd-sd.log 2>&1 & "
                   "echo $!", check=True).stdout.strip()
    try:
        _containerd_scenario(outer, archive)
    finally:
        outer.run("kill", pid)  # its shims and containers went with `ctr task rm`; the rest dies with the outer


def _containerd_scenario(outer, archive):
    from tests.e2e.conftest import IMAGE

    sock = "/run/containerd-sd/containerd.sock"
    ctr = ["/usr/local/bin/ctr", "-a", sock, "-n", "sd"]
    deadline = time.monotonic() + 20
    while outer.run(*ctr, "version").returncode != 0:
        assert time.monotonic() < deadline, outer.run("cat", "/run/containerd-sd.log").stdout[-2000:]
        time.sleep(0.2)
    outer.run(*ctr, "images", "import", "--snapshotter", "native", archive, check=True, timeout=120)

    cid = f"sd-ctr-{uuid.uuid4().hex[:6]}"
    pod = f"kubepods-besteffort-pod{uuid.uuid4().hex[:12]}.slice"
    unit = f"cri-containerd-{cid}.scope"
    cg = f"/kubepods.slice/kubepods-besteffort.slice/{pod}/{unit}"
    outer.run(*ctr, "run", "-d", "--snapshotter", "native", "--runc-binary", pyrunc_argv()[0],
              "--runc-systemd-cgroup", "--cgroup", f"{pod}:cri-containerd:{cid}", "--memory-limit",
              str(64 << 20), IMAGE, cid, "sleep", "1000", check=True, timeout=60)
    try:
        s = show(outer, unit, "ActiveState", "Slice", "MemoryLimit")
        assert s == {"ActiveState": "active", "Slice": pod, "MemoryLimit": str(64 << 20)}
        assert read(outer, f"/sys/fs/cgroup/memory{cg}/memory.limit_in_bytes") == str(64 << 20)
    finally:
        outer.run(*ctr, "task", "kill", "-s", "KILL", cid)
        deadline = time.monotonic() + 15
        while "STOPPED" not in outer.run(*ctr, "task", "ls").stdout and time.monotonic() < deadline:
            time.sleep(0.1)
        outer.run(*ctr, "task", "rm", cid)
        outer.run(*ctr, "container", "rm", cid)
    assert units(outer, unit) == []
    assert outer.sh(f"ls -d /sys/fs/cgroup/*{cg} 2>/dev/null").stdout.split() == []


def test_unified_hierarchy_scope_freeze_kill_delete(outer_v2, inner_v2):
    """systemd in unified mode (cgroup2 only): the v2 side of the driver.  The scope is one cgroup2 dir; pause and
    resume use cgroup.freeze, kill --all cgroup.kill, and delete leaves no unit and no dir."""
    outer, inner = outer_v2, inner_v2
    assert outer.run("stat", "-f", "-c", "%T", "/sys/fs/cgroup", check=True).stdout.strip() == "cgroup2fs"
    cid = f"sd-v2-{uuid.uuid4().hex[:6]}"
    inner.ids.append(cid)
    pod = f"kubepods-burstable-pod{uuid.uuid4().hex[:12]}.slice"
    unit = f"cri-containerd-{cid}.scope"
    cg = f"/kubepods.slice/kubepods-burstable.slice/{pod}/{unit}"
    inner("create", "--bundle", inner.bundle(f"{pod}:cri-containerd:{cid}"), cid, check=True)
    inner("start", cid, check=True)
    pid = json.loads(inner("state", cid, check=True).stdout)["pid"]
    assert show(outer, unit, "ActiveState", "ControlGroup", "Delegate") == {
        "ActiveState": "active", "ControlGroup": cg, "Delegate": "yes"}
    assert f"0::{cg}" in read(outer, f"/proc/{pid}/cgroup").splitlines()  # (v1 lines too: the kernel has them)
    doc = json.loads(read(outer, f"{INNER_ROOT}-pyrunc/{cid}/state.json"))
    assert doc["cgroup_paths"] == {"": f"/sys/fs/cgroup{cg}"} and doc["cgroup_unit"] == unit  # the v2 layout
    assert str(pid) in read(outer, f"/sys/fs/cgroup{cg}/cgroup.procs").split()
    inner("pause", cid, check=True)
    assert json.loads(inner("state", cid, check=True).stdout)["status"] == "paused"
    assert "frozen 1" in read(outer, f"/sys/fs/cgroup{cg}/cgroup.events")
    inner("resume", cid, check=True)
    assert json.loads(inner("state", cid, check=True).stdout)["status"] == "running"
    assert str(pid) in inner("ps", cid, check=True).stdout.split()
    inner("kill", "--all", cid, "KILL", check=True)
    wait_stopped(inner, cid)
    inner("delete", cid, check=True)
    assert units(outer, unit) == []
    assert outer.run("test", "-e", f"/sys/fs/cgroup{cg}").returncode == 1
