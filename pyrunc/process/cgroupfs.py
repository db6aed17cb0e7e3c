"""The `cgroup` mount inside the container (/sys/fs/cgroup), per hierarchy, for v1, v2 and hybrid hosts.

With a new cgroup namespace the container mounts the cgroup filesystems themselves (each shows the container's
own subtree as its root).  Without one, each hierarchy's directory of the container's cgroup is bind-mounted, so
the host's tree stays out of sight, as runc does.  Either way the requested flags (normally ro, nosuid, nodev,
noexec) apply to every hierarchy mount: a container cannot write its limits away.
"""

import errno

from .. import osx as os
from .. import read_bytes  # by fd (used after forbid_imports too)
from ..errors import SysError
from ..linux import CLONE_NEWCGROUP, MS, O_PATH
from . import rootfs


def host_hierarchies():
    """[(mountpoint, fstype, subsystems-option, root)] of the cgroup mounts under /sys/fs/cgroup, as seen now."""
    out = []
    for line in read_bytes("/proc/self/mountinfo").decode().splitlines():
        left, _, right = line.partition(" - ")
        rfields = right.split()
        if len(rfields) < 3 or rfields[0] not in ("cgroup", "cgroup2"):
            continue
        fields = left.split()
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
    for line in read_bytes("/proc/self/cgroup").decode().splitlines():
        _, subs, path = line.split(":", 2)
        out[subs] = path
    return out


def mount_cgroup(lx, rootfd, op, plan, hier=None):
    """hier: host_hierarchies() as the parent read them before the fork (see Spawn.run), else read now."""
    flags = op.flags & ~MS["MS_BIND"] & ~MS["MS_REC"]
    if hier is None:
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
    # The tmpfs was mounted just now and no container process runs yet: its root is empty and stays ours, so each
    # hierarchy's directory is made and opened in it directly (one component, no symlink followed), not walked
    # from the rootfs (three opens more each).
    tfd = rootfs.open_in_root(lx, rootfd, op.dest, O_PATH | os.O_DIRECTORY)
    try:
        mine = own_cgroups() if not new_ns else {}
        for mp, fstype, subs, root in hier:
            if mp == "/sys/fs/cgroup":
                continue
            name = os.path.basename(mp)
            try:
                os.mkdir(name, 0o755, dir_fd=tfd)
            except FileExistsError:  # a symlink made for an earlier combined hierarchy (cpu -> cpu,cpuacct)
                pass
            sfd = rootfs.open_in_root(lx, tfd, name, O_PATH | os.O_DIRECTORY)
            try:
                if new_ns:
                    lx.mount("cgroup", rootfs.fdpath(sfd), fstype, flags, subs if fstype == "cgroup" else None)
                else:
                    src = mp + mine.get(subs if fstype == "cgroup" else "", "/")
                    try:
                        lx.mount(src, rootfs.fdpath(sfd), None, MS["MS_BIND"] | MS["MS_REC"], None)
                    except SysError as e:
                        if e.errno != errno.ENOENT or src == mp:
                            raise
                        # our cgroup's directory is not in this hierarchy (a named one pyrunc does not manage):
                        # its root, as runc
                        lx.mount(mp, rootfs.fdpath(sfd), None, MS["MS_BIND"] | MS["MS_REC"], None)
            finally:
                os.close(sfd)
            if "," in name:  # cpu,cpuacct -> symlinks cpu and cpuacct, as on the host
                for part in name.split(","):
                    try:
                        os.symlink(name, part, dir_fd=tfd)
                    except FileExistsError:
                        pass
        _seal(lx, tfd, flags, [os.path.basename(mp) for mp, *_ in hier if mp != "/sys/fs/cgroup"])
    finally:
        os.close(tfd)


# mount(2) per-mount flags -> mount_setattr(2) attributes (MOUNT_ATTR_*), for _seal
_ATTRS = (("MS_RDONLY", 0x1), ("MS_NOSUID", 0x2), ("MS_NODEV", 0x4), ("MS_NOEXEC", 0x8), ("MS_NODIRATIME", 0x80),
          ("MS_NOSYMFOLLOW", 0x200000))
_ATIME_ATTR, AT_EMPTY_PATH, AT_RECURSIVE = 0x70, 0x1000, 0x8000


def remount_attrs(flags):
    """(attr_set, attr_clr) for mount_setattr that give a mount exactly the per-mount flags a bind remount
    (MS_BIND|MS_REMOUNT|flags) would: each of ro, nosuid, nodev, noexec, nodiratime, nosymfollow set or cleared,
    and the atime mode the flags name (noatime, strictatime, else relatime), or kept when they name none."""
    aset = aclr = 0
    for name, attr in _ATTRS:
        if flags & MS[name]:
            aset |= attr
        else:
            aclr |= attr
    if flags & (MS["MS_NOATIME"] | MS["MS_NODIRATIME"] | MS["MS_RELATIME"] | MS["MS_STRICTATIME"]):
        aclr |= _ATIME_ATTR  # the kernel's rule: any of them chooses the atime mode, relatime unless another
        if flags & MS["MS_NOATIME"]:
            aset |= 0x10
        elif flags & MS["MS_STRICTATIME"]:
            aset |= 0x20
    return aset, aclr


def _seal(lx, tfd, flags, names):
    """The requested flags (normally ro, nosuid, nodev, noexec) on the tmpfs and every hierarchy mount in it: one
    recursive mount_setattr instead of a remount of each (runc remounts each).  Without mount_setattr (Linux
    < 5.12) each is remounted, the tmpfs last."""
    aset, aclr = remount_attrs(flags)
    try:
        lx.mount_setattr(tfd, "", AT_EMPTY_PATH | AT_RECURSIVE, aset, aclr)
        return
    except SysError as e:
        if e.errno != errno.ENOSYS:
            raise
    for name in names:
        _remount(lx, tfd, name, flags)
    if flags & MS["MS_RDONLY"]:
        lx.mount(None, rootfs.fdpath(tfd), None, flags | MS["MS_REMOUNT"] | MS["MS_BIND"], None)


def _remount(lx, rootfd, dest, flags):
    fd = rootfs.open_in_root(lx, rootfd, dest)
    try:
        lx.mount(None, rootfs.fdpath(fd), None, flags | MS["MS_REMOUNT"] | MS["MS_BIND"], None)
    finally:
        os.close(fd)
