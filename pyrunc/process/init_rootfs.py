"""The init's filesystem, in stage B: mounts under the rootfs by fd, devices and /dev symlinks, masked and
read-only paths (all before pivot_root, through the host's trusted /proc), then pivot_root (or chroot) and the
read-only root.  Imported by child.py before fork, like everything stage B uses.
"""

import _stat as stat  # compiled in: `stat` is a file to load

from .. import osx as os
from .. import read_bytes  # by fd (used after forbid_imports too)
from ..errors import PyruncError, SysError
from ..linux import MNT_DETACH, MS, O_PATH, flag_names
from ..mountinfo import unescape
from . import rootfs
from .cgroupfs import mount_cgroup
from .idmap import IN_USER_NAMESPACE
from .plan import DEV_SYMLINKS


def _parent_mount(path):
    best = "/"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
                best = mp
    return best


def prepare_rootfs(plan, ctx, lx):
    """Mount everything under the rootfs; returns an O_PATH fd of the rootfs (the bind mount of itself)."""
    if plan.mountns:  # never change the propagation of the caller's own mount namespace
        prop = plan.propagation if plan.propagation is not None else MS["MS_SLAVE"] | MS["MS_REC"]
        lx.mount(None, "/", None, prop, None)
        # The rootfs's parent mount must not be shared: pivot_root refuses a shared parent, and the bind mount
        # below would propagate to the host's namespace (rootfsPropagation "private" or "unbindable" alone only
        # changes the namespace's / , not a parent mounted below it; the default rslave covers it already).
        # A slave stays a slave, so that "slave" gives the new root a master; the propagation asked for goes on
        # the new root after pivot_root (enter_rootfs).
        if plan.propagation is not None:
            parent = MS["MS_SLAVE"] if prop & MS["MS_SLAVE"] else MS["MS_PRIVATE"]
            lx.mount(None, _parent_mount(plan.rootfs), None, parent, None)
    lx.mount(plan.rootfs, plan.rootfs, "bind", MS["MS_BIND"] | MS["MS_REC"], None)
    rootfd = os.open(plan.rootfs, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    for op in plan.mounts:
        rootfs.apply_mount(lx, rootfd, op, lambda lx_, fd, op_: mount_cgroup(lx_, fd, op_, plan, ctx.cgroup_hier),
                           source_fd=(ctx.mount_fds or {}).get(op.index))
    if plan.dev_setup:
        make_devices(plan, rootfd, lx)
    # Masked and read-only paths, before pivot_root: resolved inside the root by fd, mounted through the host's
    # /proc/self/fd (trusted), never through the container's /proc.
    for p in plan.readonly_paths:
        _readonly(lx, rootfd, p)
    null = []  # the rootfs's /dev/null, opened and checked at the first masked file (see _mask)
    try:
        for p in plan.masked:
            _mask(lx, rootfd, p, null)
    finally:
        for fd in null:
            os.close(fd)
    return rootfd


def make_devices(plan, rootfd, lx):
    dirs = {}  # parent directory -> its O_PATH fd, each resolved once ("/dev" for every default node)
    try:
        for d in plan.devices:
            parent, name = os.path.split(d["path"])
            pfd = dirs.get(parent)
            if pfd is None:
                pfd = dirs[parent] = rootfs.mkdir_all_in_root(lx, rootfd, parent)
            if plan.userns or IN_USER_NAMESPACE:  # no mknod in a user namespace: bind the host's node instead
                os.close(rootfs.make_file_in_root(lx, rootfd, d["path"]))
                fd = rootfs.open_in_root(lx, rootfd, d["path"])
                try:
                    lx.mount(d["path"], rootfs.fdpath(fd), "bind", MS["MS_BIND"], None)
                finally:
                    os.close(fd)
                continue
            kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[d["type"]]
            mode = d.get("fileMode")
            mode = 0o666 if mode is None else mode
            try:
                os.mknod(name, kind | (mode & 0o7777), os.makedev(d.get("major", 0), d.get("minor", 0)), dir_fd=pfd)
            except FileExistsError:
                continue
            except OSError as e:
                raise SysError("mknod", d["path"], e.errno) from None
            os.chown(name, d.get("uid", 0) or 0, d.get("gid", 0) or 0, dir_fd=pfd, follow_symlinks=False)
        devfd = dirs.get("/dev")
        if devfd is None:
            devfd = dirs["/dev"] = rootfs.mkdir_all_in_root(lx, rootfd, "/dev")
        links = list(DEV_SYMLINKS)
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "core"))
        for target, name in links:
            try:
                os.symlink(target, name, dir_fd=devfd)
            except FileExistsError:
                pass
        try:
            os.unlink("ptmx", dir_fd=devfd)
        except FileNotFoundError:
            pass
        os.symlink("pts/ptmx", "ptmx", dir_fd=devfd)
    finally:
        for fd in dirs.values():
            os.close(fd)


def enter_rootfs(plan, rootfd, lx):
    remount_readonly(plan, rootfd, lx)
    os.fchdir(rootfd)
    if not plan.mountns:  # the caller's mount namespace: neither pivot_root nor MS_MOVE may touch it
        os.chroot(".")
    elif plan.no_pivot:
        hide_full_proc_sys(plan.rootfs, lx)
        os.fchdir(rootfd)
        lx.mount(plan.rootfs, "/", None, MS["MS_MOVE"], None)
        os.chroot(".")
    else:
        oldroot = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        lx.pivot_root(".", ".")
        os.fchdir(oldroot)
        os.close(oldroot)
        # the old root is stacked under the new one: make it a slave (so the unmount does not propagate to the
        # host) and detach it
        lx.mount(None, ".", None, MS["MS_SLAVE"] | MS["MS_REC"], None)
        lx.umount2(".", MNT_DETACH)
    os.chdir("/")
    os.close(rootfd)
    # rootfsPropagation "shared" or "unbindable" (runc >= 1.2): on the new root, which the bind mount made from
    # a private parent (see prepare_rootfs); private and slave are already right.
    if plan.mountns and plan.propagation is not None and plan.propagation & (MS["MS_SHARED"] | MS["MS_UNBINDABLE"]):
        lx.mount(None, "/", None, plan.propagation, None)


def remount_readonly(plan, rootfd, lx):
    """The read-only tmpfs mounts and /dev, mounted read-write so far (rootfs.delays_readonly), made read-only
    after the hooks and the cwd, as runc's finalizeRootfs does; still before pivot_root, by fd through the host's
    /proc.  MS_BIND|MS_REMOUNT sets the mount's own flags only, which are the config's plus MS_RDONLY."""
    for op in plan.mounts:
        if not rootfs.delays_readonly(op):
            continue
        flags = (op.flags & ~MS["MS_REC"]) | MS["MS_BIND"] | MS["MS_REMOUNT"]
        fd = rootfs.open_in_root(lx, rootfd, op.dest)
        try:
            lx.mount(None, rootfs.fdpath(fd), None, flags, None)
        except SysError as e:
            raise SysError("remount", f"{op.dest} ({flag_names(flags)})", e.errno) from None
        finally:
            os.close(fd)


def full_proc_sys_mounts(rootfs_path, mountinfo):
    """The mount points of every whole procfs or sysfs (root "/") outside the rootfs, from mountinfo bytes."""
    out = []
    prefix = os.fsencode(rootfs_path.rstrip("/") + "/")
    for line in mountinfo.splitlines():
        fields, _, rest = line.partition(b" - ")
        fields, rest = fields.split(), rest.split()
        if len(fields) < 5 or not rest or rest[0] not in (b"proc", b"sysfs") or fields[3] != b"/":
            continue
        mp = unescape(fields[4])
        if mp + b"/" != prefix and not mp.startswith(prefix):
            out.append(os.fsdecode(mp))
    return out


def hide_full_proc_sys(rootfs_path, lx):
    """--no-pivot (runc's msMoveRoot): the host's mounts stay in our mount namespace under the chroot, and the
    kernel lets a user namespace mount a new procfs or sysfs (without our masks) as long as a fully visible one
    is anywhere in the namespace (mount_too_revealing).  So every whole procfs and sysfs outside the rootfs is
    detached, or, where it cannot be (locked in a user namespace: EINVAL/EPERM), covered with an empty tmpfs.
    Still the host's /proc here (before the move); read as bytes (no codec or module lookup: see forbid_imports)."""
    mounts = full_proc_sys_mounts(rootfs_path, read_bytes("/proc/self/mountinfo"))
    for mp in sorted(mounts, key=len, reverse=True):  # submounts first
        try:
            lx.mount(None, mp, None, MS["MS_SLAVE"] | MS["MS_REC"], None)  # no unmount event reaches the host
        except SysError as e:
            if e.errno == 2:  # ENOENT: a parent was already detached
                continue
            raise
        try:
            lx.umount2(mp, MNT_DETACH)
        except SysError as e:
            if e.errno not in (1, 22):  # EPERM, EINVAL
                raise
            lx.mount("tmpfs", mp, "tmpfs", MS["MS_NOSUID"] | MS["MS_NODEV"] | MS["MS_NOEXEC"], "size=0,mode=0")


def finish_rootfs(plan, lx):
    """After pivot_root: the read-only root."""
    if plan.readonly:
        st = os.statvfs("/")
        keep = st.f_flag & (MS["MS_NOSUID"] | MS["MS_NODEV"] | MS["MS_NOEXEC"] | MS["MS_NOATIME"] |
                            MS["MS_NODIRATIME"] | MS["MS_RELATIME"])
        lx.mount(None, "/", None, MS["MS_BIND"] | MS["MS_REMOUNT"] | MS["MS_RDONLY"] | keep, None)


def _resolve(lx, root, path):
    try:
        return rootfs.open_in_root(lx, root, path)
    except SysError as e:
        if e.errno == 2:
            return None
        raise


def _readonly(lx, root, path):
    fd = _resolve(lx, root, path)
    if fd is None:
        return
    try:
        lx.mount(rootfs.fdpath(fd), rootfs.fdpath(fd), None, MS["MS_BIND"] | MS["MS_REC"], None)
    finally:
        os.close(fd)
    # Reopened: the fd above is the directory under the new bind.  mount_setattr sets MOUNT_ATTR_RDONLY on the bind
    # alone and keeps its other flags (nosuid, nodev, noexec, atime, and those the kernel locks in a user
    # namespace), where a remount would have to be given them all again (a statfs first): runc's readonlyPath.
    fd = _resolve(lx, root, path)
    try:
        lx.mount_setattr(fd, "", rootfs.AT_EMPTY_PATH, rootfs.MOUNT_ATTR_RDONLY)
    except SysError as e:
        raise SysError("remount read-only", path, e.errno) from None
    finally:
        os.close(fd)


def _mask(lx, root, path, null):
    """Cover path: an empty read-only tmpfs over a directory, the null device over anything else.  null: a list
    holding the fd of the rootfs's /dev/null once a first file was masked (the caller closes it), so it is opened
    and checked once; the check is on the fd that every bind then uses."""
    fd = _resolve(lx, root, path)
    if fd is None:
        return
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            lx.mount("tmpfs", rootfs.fdpath(fd), "tmpfs", MS["MS_RDONLY"], None)
            return
        if not null:
            null.append(rootfs.open_in_root(lx, root, "/dev/null"))
            st = os.fstat(null[0])
            if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
                raise PyruncError(f"mask {path}: /dev/null is not the null device")  # CVE-2025-31133
        lx.mount(rootfs.fdpath(null[0]), rootfs.fdpath(fd), None, MS["MS_BIND"], None)
    finally:
        os.close(fd)
