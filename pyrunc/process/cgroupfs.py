"""The `cgroup` mount inside the container (/sys/fs/cgroup), per hierarchy, for v1, v2 and hybrid hosts.

With a new cgroup namespace the container mounts the cgroup filesystems themselves (each shows the container's
own subtree as its root).  Without one, each hierarchy's directory of the container's cgroup is bind-mounted, so
the host's tree stays out of sight, as runc does.  Either way the requested flags (normally ro, nosuid, nodev,
noexec) apply to every hierarchy mount: a container cannot write its limits away.
"""

import os

from ..linux import CLONE_NEWCGROUP, MS
from . import rootfs


def host_hierarchies():
    """[(mountpoint, fstype, subsystems-option)] of the cgroup mounts under /sys/fs/cgroup, as seen now."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            rfields = right.split()
            if len(rfields) < 3 or rfields[0] not in ("cgroup", "cgroup2"):
                continue
            mp = fields[4]
            if not mp.startswith("/sys/fs/cgroup"):
                continue
            opts = [o for o in rfields[2].split(",") if o not in ("rw", "ro")]
            subs = [o for o in opts if o.startswith("name=") or o in _V1]
            out.append((mp, rfields[0], ",".join(subs), fields[3]))
    return out


_V1 = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb", "net_cls",
       "net_prio", "perf_event", "rdma", "misc"}


def own_cgroups():
    """{subsystems-key or '' (v2): path} from /proc/self/cgroup."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, subs, path = line.rstrip("\n").split(":", 2)
            out[subs] = path
    return out


def mount_cgroup(lx, rootfd, op, plan):
    flags = op.flags & ~MS["MS_BIND"] & ~MS["MS_REC"]
    hier = host_hierarchies()
    new_ns = bool(plan.ns_new & CLONE_NEWCGROUP)
    if len(hier) == 1 and hier[0][1] == "cgroup2" and hier[0][0] == "/sys/fs/cgroup":  # pure v2
        fd = rootfs.mkdir_all_in_root(lx, rootfd, op.dest)
        try:
            if new_ns:
                lx.mount("cgroup2", rootfs.fdpath(fd), "cgroup2", flags, None)
            else:
                src = "/sys/fs/cgroup" + own_cgroups().get("", "/")
                lx.mount(src, rootfs.fdpath(fd), None, MS["MS_BIND"] | MS["MS_REC"], None)
                _remount(lx, rootfd, op.dest, flags)
        finally:
            os.close(fd)
        return
    # v1 or hybrid: a tmpfs holding one mount per hierarchy
    fd = rootfs.mkdir_all_in_root(lx, rootfd, op.dest)
    try:
        lx.mount("tmpfs", rootfs.fdpath(fd), "tmpfs", flags & ~MS["MS_RDONLY"], "mode=755")
    finally:
        os.close(fd)
    mine = own_cgroups()
    for mp, fstype, subs, root in hier:
        if mp == "/sys/fs/cgroup":
            continue
        name = os.path.basename(mp)
        dest = os.path.join(op.dest, name)
        sfd = rootfs.mkdir_all_in_root(lx, rootfd, dest)
        try:
            if new_ns:
                lx.mount("cgroup", rootfs.fdpath(sfd), fstype, flags, subs if fstype == "cgroup" else None)
            else:
                key = subs if fstype == "cgroup" else ""
                src = mp + mine.get(key, "/")
                if not os.path.isdir(src):
                    src = mp
                lx.mount(src, rootfs.fdpath(sfd), None, MS["MS_BIND"] | MS["MS_REC"], None)
        finally:
            os.close(sfd)
        if not new_ns:
            _remount(lx, rootfd, dest, flags)
        if "," in name:  # cpu,cpuacct -> symlinks cpu and cpuacct, as on the host
            pfd = rootfs.open_in_root(lx, rootfd, op.dest, os.O_DIRECTORY)
            try:
                for part in name.split(","):
                    try:
                        os.symlink(name, part, dir_fd=pfd)
                    except FileExistsError:
                        pass
            finally:
                os.close(pfd)
    if flags & MS["MS_RDONLY"]:
        _remount(lx, rootfd, op.dest, flags)


def _remount(lx, rootfd, dest, flags):
    fd = rootfs.open_in_root(lx, rootfd, dest)
    try:
        lx.mount(None, rootfs.fdpath(fd), None, flags | MS["MS_REMOUNT"] | MS["MS_BIND"], None)
    finally:
        os.close(fd)
