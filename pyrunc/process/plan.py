"""From a validated config.json to the plan of one container process: pure data, computed before any side effect.

Everything that can be rejected is rejected here, in the caller's process, before the first fork: a bad config
leaves nothing behind.
"""

import os

from ..errors import ConfigError
from ..linux import NAMESPACES
from . import rootfs, sched

DEFAULT_DEVICES = (  # runc's specconv.AllowedDevices that are created as nodes
    ("/dev/null", "c", 1, 3), ("/dev/zero", "c", 1, 5), ("/dev/full", "c", 1, 7),
    ("/dev/tty", "c", 5, 0), ("/dev/urandom", "c", 1, 9), ("/dev/random", "c", 1, 8),
)
DEV_SYMLINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
                ("/proc/self/fd/2", "stderr"))
JOIN_ORDER = ("user", "pid", "network", "ipc", "uts", "cgroup", "time", "mount")  # user first, mount last


class Plan:
    """Attributes only; see build()."""

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


def build(config, bundle, *, no_pivot=False, no_new_keyring=False, preserve_fds=0):
    p = Plan()
    p.bundle = bundle
    root = config.get("root") or {}
    path = root.get("path", "rootfs")
    p.rootfs = os.path.realpath(os.path.join(bundle, path))
    if not os.path.isdir(p.rootfs):
        raise ConfigError(f"root.path: rootfs {p.rootfs} is not a directory")
    p.readonly = bool(root.get("readonly"))
    linux = config.get("linux") or {}
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
    if linux.get("mountLabel") and not os.path.isdir("/sys/fs/selinux"):
        raise ConfigError("linux.mountLabel: selinux is not enabled on this host")
    p.no_pivot = no_pivot
    p.no_new_keyring = no_new_keyring
    p.preserve_fds = preserve_fds
    proc = config.get("process")
    if not proc:
        raise ConfigError("process: required to create a container")
    p.process = process_plan(proc)
    p.process.cpu_initial = p.process.cpu_final = None  # execCPUAffinity is for exec processes only (runc)
    p.process.personality, p.personality_flags = sched.personality(linux.get("personality"))
    p.new_netns = bool(p.ns_new & NAMESPACES["network"][0])
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
    user = proc.get("user") or {}
    q.uid = int(user.get("uid", 0))
    q.gid = int(user.get("gid", 0))
    q.groups = [int(g) for g in user.get("additionalGids") or ()]
    q.umask = user.get("umask")
    q.terminal = bool(proc.get("terminal"))
    q.console_size = proc.get("consoleSize")
    q.nnp = bool(proc.get("noNewPrivileges"))
    q.oom_score_adj = proc.get("oomScoreAdj")
    q.rlimits = proc.get("rlimits") or []
    q.capabilities = proc.get("capabilities")
    q.apparmor = proc.get("apparmorProfile")
    q.selinux = proc.get("selinuxLabel")
    if q.apparmor and not os.path.isdir("/sys/kernel/security/apparmor"):
        raise ConfigError(f"{where}.apparmorProfile: apparmor is not enabled on this host")
    if q.selinux and not os.path.isdir("/sys/fs/selinux"):
        raise ConfigError(f"{where}.selinuxLabel: selinux is not enabled on this host")
    q.scheduler = sched.scheduler(proc.get("scheduler"), f"{where}.scheduler")
    q.ioprio = sched.ioprio(proc.get("ioPriority"), f"{where}.ioPriority")
    q.personality = None  # linux.personality: set by build() (and by exec from the container's config)
    q.cpu_initial, q.cpu_final = sched.affinity(proc.get("execCPUAffinity"), f"{where}.execCPUAffinity")
    return q


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
