"""From a validated config.json to the plan of one container process: pure data, computed before any side effect.

Everything that can be rejected is rejected here, in the caller's process, before the first fork: a bad config
leaves nothing behind.
"""

from .. import osx as os
from ..errors import ConfigError, SysError
from ..linux import NAMESPACES, O_PATH, real
from . import rootfs, sched

DEFAULT_DEVICES = (  # runc's specconv.AllowedDevices that are created as nodes
    ("/dev/null", "c", 1, 3), ("/dev/zero", "c", 1, 5), ("/dev/full", "c", 1, 7),
    ("/dev/tty", "c", 5, 0), ("/dev/urandom", "c", 1, 9), ("/dev/random", "c", 1, 8),
)
DEV_SYMLINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
                ("/proc/self/fd/2", "stderr"))
JOIN_ORDER = ("user", "pid", "network", "ipc", "uts", "cgroup", "time", "mount")  # user first, mount last

# Fields the schema accepts that pyrunc does not apply (yet).  Each is refused, on every host, rather than dropped:
# a profile or label that is silently ignored runs the container unconfined (docker sends apparmorProfile
# "docker-default" on every AppArmor host).  An empty value asks for nothing.  (timeOffsets, intelRdt, netDevices
# and memoryPolicy, once refused here too, are applied: timens.py, intelrdt.py, netdev.py, mempolicy.py.)
UNAPPLIED_LINUX = {
    "mountLabel": "selinux mount labels are not supported by pyrunc yet",
}
UNAPPLIED_PROCESS = {
    "apparmorProfile": "apparmor profiles are not supported by pyrunc yet",
    "selinuxLabel": "selinux process labels are not supported by pyrunc yet",
}
NGROUPS_MAX = 65536
MAX_ID = 4294967294  # (uid_t)-1 = 4294967295 means "unchanged" to setresuid(2): never a valid id
# Files runc lets a mount cover inside /proc (checkProcMount: lxcfs and CRIU); anything else there is refused.
PROC_FILE_MOUNTS = ("/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
                    "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
                    "/proc/sys/kernel/ns_last_pid")


class Plan:
    """Attributes only; see build()."""

    net_devices = ()  # what exec's plan (container/execute.py) leaves at the defaults: nothing to move or offset
    time_offsets = None
    intel_rdt = None

    def __repr__(self):
        return f"Plan({self.__dict__!r})"


def _namespaces(linux, i_am="linux.namespaces"):
    new, join, seen = 0, [], set()
    for i, ns in enumerate(linux.get("namespaces") or ()):
        t = ns.get("type")
        if t not in NAMESPACES:
            raise ConfigError(f"{i_am}.{i}.type: unknown namespace type {t!r}")
        if t in seen:
            raise ConfigError(f"{i_am}.{i}.type: duplicate namespace {t!r}")
        seen.add(t)
        path = ns.get("path")
        if path:
            join.append((t, path))
        else:
            new |= NAMESPACES[t][0]
    join.sort(key=lambda tp: JOIN_ORDER.index(tp[0]))
    return new, join, seen


def build(config, bundle, *, no_pivot=False, no_new_keyring=False, preserve_fds=0, lx=real):
    p = Plan()
    p.bundle = bundle
    root = config.get("root")
    if not root or not root.get("path"):
        raise ConfigError("root must be specified")  # runc's wording (specconv): root is required on Linux
    path = root["path"]
    p.rootfs = os.path.realpath(os.path.join(bundle, path))
    if not os.path.isdir(p.rootfs):
        raise ConfigError(f"root.path: rootfs {p.rootfs} is not a directory")
    p.readonly = bool(root.get("readonly"))
    linux = config.get("linux") or {}
    for key, why in UNAPPLIED_LINUX.items():
        if linux.get(key):
            raise ConfigError(f"linux.{key}: {why}")
    p.ns_new, p.ns_join, types = _namespaces(linux)
    # Without a mount namespace the container shares the caller's: its rootfs mounts are made (and stay, until
    # delete detaches them) on the host, under the rootfs, and it is entered with chroot, as runc does.
    p.mountns = "mount" in types
    for key in ("uidMappings", "gidMappings"):
        if linux.get(key) and "user" not in types:
            raise ConfigError(f"linux.{key}: user namespace mappings given without a user namespace")
    p.uid_mappings = linux.get("uidMappings") or []
    p.gid_mappings = linux.get("gidMappings") or []
    p.userns = "user" in types
    prop = linux.get("rootfsPropagation")
    if prop and prop not in rootfs.PROPAGATION:
        raise ConfigError(f"linux.rootfsPropagation: unknown propagation {prop!r}")
    p.propagation = rootfs.PROPAGATION.get(prop) if prop else None
    p.mounts = rootfs.plan_mounts(config.get("mounts"), bundle, linux.get("uidMappings"), linux.get("gidMappings"))
    check_proc_mounts(p.mounts, p.rootfs, lx)
    p.dev_setup = rootfs.needs_dev_setup(p.mounts)
    p.devices = []
    for d in DEFAULT_DEVICES:
        p.devices.append({"path": d[0], "type": d[1], "major": d[2], "minor": d[3], "fileMode": 0o666, "uid": 0,
                          "gid": 0})
    for i, d in enumerate(linux.get("devices") or ()):
        if d.get("type") not in ("c", "b", "u", "p"):
            raise ConfigError(f"linux.devices.{i}.type: expected one of \"c\", \"b\", \"u\", \"p\", got {d.get('type')!r}")
        p.devices = [x for x in p.devices if x["path"] != d["path"]] + [d]
    p.hostname = config.get("hostname")
    p.domainname = config.get("domainname")
    if (p.hostname or p.domainname) and not p.ns_new & NAMESPACES["uts"][0] and not any(
            t == "uts" for t, _ in p.ns_join):
        raise ConfigError("hostname: unable to set hostname without a private uts namespace")
    p.masked = linux.get("maskedPaths") or []
    p.readonly_paths = linux.get("readonlyPaths") or []
    p.sysctl = check_sysctl(linux.get("sysctl") or {}, types, p.ns_join)
    p.no_pivot = no_pivot
    p.no_new_keyring = no_new_keyring
    p.preserve_fds = preserve_fds
    proc = config.get("process")
    if not proc:
        raise ConfigError("process: required to create a container")
    p.process = process_plan(proc)
    p.process.cpu_initial = p.process.cpu_final = None  # execCPUAffinity is for exec processes only (runc)
    p.process.personality, p.personality_flags = sched.personality(linux.get("personality"))
    p.process.mempolicy = None
    if linux.get("memoryPolicy"):  # mempolicy.py and timens.py only for the configs that use them (child.loaded)
        from . import mempolicy

        p.process.mempolicy = mempolicy.plan(linux["memoryPolicy"])
    p.new_netns = bool(p.ns_new & NAMESPACES["network"][0])
    p.net_devices, p.intel_rdt = [], None  # netdev.py and intelrdt.py only for the configs that use them
    if linux.get("netDevices"):
        from . import netdev

        p.net_devices = netdev.plan(linux["netDevices"], "network" in types)
    p.time_offsets = None
    if linux.get("timeOffsets"):
        from . import timens

        p.time_offsets = timens.plan(linux["timeOffsets"], types, {t for t, _ in p.ns_join})
    if linux.get("intelRdt"):
        from . import intelrdt

        p.intel_rdt = intelrdt.plan(linux["intelRdt"])  # applied by the caller to the init's pid (lifecycle.py)
    return p


def process_plan(proc, where="process"):
    """The process part of a plan (also used by exec)."""
    q = Plan()
    q.args = list(proc.get("args") or ())
    if not q.args:
        raise ConfigError(f"{where}.args: must not be empty")
    q.env = list(proc.get("env") or ())
    q.cwd = proc.get("cwd") or "/"
    if not q.cwd.startswith("/"):
        raise ConfigError(f"{where}.cwd: must be an absolute path, got {q.cwd!r}")
    for key, why in UNAPPLIED_PROCESS.items():
        if proc.get(key):
            raise ConfigError(f"{where}.{key}: {why}")
    user = proc.get("user") or {}
    q.uid = _id(user.get("uid", 0), f"{where}.user.uid")
    q.gid = _id(user.get("gid", 0), f"{where}.user.gid")
    q.groups = [_id(g, f"{where}.user.additionalGids.{i}") for i, g in enumerate(user.get("additionalGids") or ())]
    if len(q.groups) > NGROUPS_MAX:  # the stub sets them all; setgroups(2) takes at most this many
        raise ConfigError(f"{where}.user.additionalGids: {len(q.groups)} groups, more than NGROUPS_MAX "
                          f"({NGROUPS_MAX})")
    q.umask = user.get("umask")
    q.terminal = bool(proc.get("terminal"))
    q.console_size = proc.get("consoleSize")
    q.nnp = bool(proc.get("noNewPrivileges"))
    q.oom_score_adj = proc.get("oomScoreAdj")
    q.rlimits = proc.get("rlimits") or []
    if q.rlimits:  # refused here, before any side effect (they are applied by the parent at sync 6, init.py)
        from ..security.rlimits import parse

        parse(q.rlimits, f"{where}.rlimits")
    q.capabilities = proc.get("capabilities")
    q.scheduler = sched.scheduler(proc.get("scheduler"), f"{where}.scheduler")
    q.ioprio = sched.ioprio(proc.get("ioPriority"), f"{where}.ioPriority")
    q.personality = None  # linux.personality: set by build() (and by exec from the container's config)
    q.mempolicy = None  # linux.memoryPolicy: likewise
    q.cpu_initial, q.cpu_final = sched.affinity(proc.get("execCPUAffinity"), f"{where}.execCPUAffinity")
    return q


def _id(value, where):
    """A uid or gid for setres[ug]id/setgroups: 0..4294967294.  -1 (or 4294967295, the same uid_t) would make
    setresuid leave the process's ids unchanged, i.e. root; exec --user -1 and process.json reach here
    unchecked by the config schema."""
    if type(value) is not int or not 0 <= value <= MAX_ID:
        raise ConfigError(f"{where}: {value!r} is not a valid id (expected 0 to {MAX_ID})")
    return value


def _proc_fs(path):
    """True if path is on a procfs: its device, looked up in our mountinfo (only for the rare mount at /proc)."""
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return False
    want = f"{os.major(dev)}:{os.minor(dev)}"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[2] == want:
                return fields[fields.index("-") + 1] == "proc"
    return False


def _resolved_in_root(root, dest, lx):
    """dest as the mount will reach it: resolved inside the rootfs (symlinks of the image included, as the mount
    is applied), its longest existing prefix, as a path relative to the rootfs ("/proc", "/proc/sys", ...).
    root: (O_PATH fd of the rootfs, the path the kernel gives for it)."""
    rootfd, real = root
    parts = [p for p in dest.split("/") if p]
    for n in range(len(parts), 0, -1):
        try:
            fd = rootfs.open_in_root(lx, rootfd, "/".join(parts[:n]))
        except SysError:
            continue
        try:
            got = os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        rest = "/".join(parts[n:])
        inside = got[len(real):] if got.startswith(real.rstrip("/") + "/") else "/"
        return os.path.normpath(inside + ("/" + rest if rest else ""))
    return os.path.normpath("/" + "/".join(parts))


def check_proc_mounts(ops, rootdir=None, lx=None):
    """runc's checkProcMount (CVE-2019-16884): /proc itself may only be a procfs (a proc mount, or a bind whose
    source is one); inside /proc only the single files lxcfs and CRIU cover may be mounted.  A directory the
    caller controls over /proc would give the container (and the runtime, which writes /proc/self/attr/...) a
    fake procfs.  With rootfs, each destination is also resolved in the image as the mount will be (runc checks
    the securejoined path): a symlink /evil -> /proc in the image does not get a bind over procfs past the check."""
    root = []  # [(fd, path)]: the rootfs, opened once for all the mounts (on the first that needs it)
    try:
        for op in ops:
            _check_proc_mount(op, rootdir, root, lx)
    finally:
        for fd, _ in root:
            os.close(fd)


def _check_proc_mount(op, rootdir, root, lx):
    where = f"mounts.{op.index}.destination"
    dest = op.dest
    if rootdir is not None and (op.bind or op.fstype != "proc"):
        if not root:
            fd = os.open(rootdir, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                root.append((fd, os.readlink(f"/proc/self/fd/{fd}")))
            except BaseException:
                os.close(fd)
                raise
        dest = _resolved_in_root(root[0], op.dest, lx)
    if dest != op.dest and (dest == "/proc" or dest.startswith("/proc/")):
        where += f" ({op.dest} is {dest} in the rootfs)"
        op = op._replace(dest=dest)
    if op.dest == "/proc":
        if op.fstype == "proc" and not op.bind or op.bind and _proc_fs(op.source):
            return
        raise ConfigError(f'{where}: "{op.dest}" cannot be mounted because it is not of type proc')
    if op.dest.startswith("/proc/") and op.dest not in PROC_FILE_MOUNTS and (op.bind or op.fstype != "proc"):
        raise ConfigError(f'{where}: "{op.dest}" cannot be mounted because it is inside /proc')


_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
                "kernel.shmmni", "kernel.shm_rmid_forced"}


def check_sysctl(sysctl, types, joined):
    """runc's validateSysctl: only keys that the container's own namespaces own, so a sysctl can never change the
    host.  net.* needs a network namespace that is not the host's; kernel.hostname/domainname a uts namespace;
    the IPC keys and fs.mqueue.* an ipc namespace."""
    joined = dict(joined)
    for key, value in sysctl.items():
        where = f"linux.sysctl[{key!r}]"
        if not key or not all(c.isalnum() or c in "._-" for c in key) or ".." in key:
            raise ConfigError(f"{where}: invalid sysctl name")
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            need = "ipc"
        elif key.startswith("net."):
            need = "network"
        elif key in ("kernel.hostname", "kernel.domainname"):
            need = "uts"
        else:
            raise ConfigError(f"{where}: sysctl {key!r} is not in a separate kernel namespace")
        if need not in types:
            raise ConfigError(f"{where}: sysctl {key!r} is not allowed without a private {need} namespace")
        if need in joined and os.path.exists(joined[need]) and os.path.exists(f"/proc/self/ns/{NAMESPACES[need][1]}") \
                and os.stat(joined[need]).st_ino == os.stat(f"/proc/self/ns/{NAMESPACES[need][1]}").st_ino:
            raise ConfigError(f"{where}: sysctl {key!r} is not allowed in the host {need} namespace")
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string value")
    return sysctl
