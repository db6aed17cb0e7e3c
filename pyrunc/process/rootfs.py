"""Rootfs: turn config mounts into a plan of mount operations, and apply it inside the rootfs by fd.

Planning is pure (unit-tested without root).  Applying resolves every destination inside the rootfs with
openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) and mounts onto the resulting O_PATH fd through
/proc/self/fd/N, never onto a string joined onto the rootfs: a symlink or `..` in the image (or one swapped in
by a racing container process, CVE-2021-30465) can only ever resolve to somewhere inside the rootfs.
Mount points that do not exist are created one component at a time with mkdirat under an fd that was itself
resolved in the root, and files with O_CREAT|O_EXCL|O_NOFOLLOW.
"""

import errno
import _stat as stat  # compiled in: `stat` is a file to load

from .. import osx as os
from ..errors import ConfigError, PyruncError, SysError
from ..linux import (MNT_DETACH, MS, O_PATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS,
                     flag_names)
from ..record import record
from .copyup import copy_tree

M = MS
# name -> (clear?, flag), as runc's parseMountOptions
_FLAGS = {
    "acl": (False, 1 << 16), "async": (True, M["MS_SYNCHRONOUS"]), "atime": (True, M["MS_NOATIME"]),
    "bind": (False, M["MS_BIND"]), "defaults": (False, 0), "dev": (True, M["MS_NODEV"]),
    "diratime": (True, M["MS_NODIRATIME"]), "dirsync": (False, M["MS_DIRSYNC"]), "exec": (True, M["MS_NOEXEC"]),
    "iversion": (False, 1 << 23), "lazytime": (False, M["MS_LAZYTIME"]), "loud": (True, M["MS_SILENT"]),
    "mand": (False, M["MS_MANDLOCK"]), "noacl": (True, 1 << 16), "noatime": (False, M["MS_NOATIME"]),
    "nodev": (False, M["MS_NODEV"]), "nodiratime": (False, M["MS_NODIRATIME"]), "noexec": (False, M["MS_NOEXEC"]),
    "noiversion": (True, 1 << 23), "nolazytime": (True, M["MS_LAZYTIME"]), "nomand": (True, M["MS_MANDLOCK"]),
    "norelatime": (True, M["MS_RELATIME"]), "nostrictatime": (True, M["MS_STRICTATIME"]),
    "nosuid": (False, M["MS_NOSUID"]), "nosymfollow": (False, M["MS_NOSYMFOLLOW"]),
    "symfollow": (True, M["MS_NOSYMFOLLOW"]),
    "rbind": (False, M["MS_BIND"] | M["MS_REC"]), "relatime": (False, M["MS_RELATIME"]),
    "remount": (False, M["MS_REMOUNT"]), "ro": (False, M["MS_RDONLY"]), "rw": (True, M["MS_RDONLY"]),
    "silent": (False, M["MS_SILENT"]), "strictatime": (False, M["MS_STRICTATIME"]), "suid": (True, M["MS_NOSUID"]),
    "sync": (False, M["MS_SYNCHRONOUS"]),
}
PROPAGATION = {
    "private": M["MS_PRIVATE"], "shared": M["MS_SHARED"], "slave": M["MS_SLAVE"], "unbindable": M["MS_UNBINDABLE"],
    "rprivate": M["MS_PRIVATE"] | M["MS_REC"], "rshared": M["MS_SHARED"] | M["MS_REC"],
    "rslave": M["MS_SLAVE"] | M["MS_REC"], "runbindable": M["MS_UNBINDABLE"] | M["MS_REC"],
}
# recursive mount attributes (mount_setattr AT_RECURSIVE), option -> (set, clear)
_MOUNT_ATTR = {"rro": (0x1, 0), "rrw": (0, 0x1), "rnosuid": (0x2, 0), "rsuid": (0, 0x2), "rnodev": (0x4, 0),
               "rdev": (0, 0x4), "rnoexec": (0x8, 0), "rexec": (0, 0x8), "rnosymfollow": (0x200000, 0),
               "rsymfollow": (0, 0x200000), "rnoatime": (0x10, 0x70), "ratime": (0, 0x70),
               "rrelatime": (0, 0x70), "rnorelatime": (0x10, 0x70), "rstrictatime": (0x20, 0x70),
               "rnostrictatime": (0, 0x70), "rnodiratime": (0x80, 0),
               "rdiratime": (0, 0x80)}

IDMAP_OPTIONS = ("idmap", "ridmap")  # id-mapped bind mount; the mappings come from the mount or the container
MountOp = record("MountOp", "source dest fstype flags data propagation attr_set attr_clr bind index idmap copyup",
                     defaults=(None, False))
MountOp.__doc__ = """One config mount, ready to apply: flags by number, data the unknown options joined by commas;
idmap is None or (uidMappings, gidMappings) for an id-mapped bind mount (mount_setattr MOUNT_ATTR_IDMAP);
copyup: tmpcopyup, the tmpfs starts with a copy of the image's directory (copyup.py)."""


def parse_options(options):
    """(flags, propagation flags list, data string, attr_set, attr_clr) from a mount's options, as runc parses them."""
    flags, prop, data, aset, aclr = 0, [], [], 0, 0
    for opt in options or ():
        if opt in _FLAGS:
            clear, f = _FLAGS[opt]
            flags = flags & ~f if clear else flags | f
        elif opt in PROPAGATION:
            prop.append(PROPAGATION[opt])
        elif opt in _MOUNT_ATTR:
            s, c = _MOUNT_ATTR[opt]
            # an option's own clear mask stays cleared: the atime modes set one value of the 3-bit field
            # MOUNT_ATTR__ATIME and the kernel wants that whole field in attr_clr (else EINVAL)
            aset, aclr = (aset & ~c) | s, (aclr | c) & ~(s & ~c)
        elif opt == "tmpcopyup":
            continue  # runc extension: copy the image's directory into the new tmpfs (MountOp.copyup)
        elif opt in IDMAP_OPTIONS:
            continue  # id mapping: see plan_mounts (the mappings come from the mount or the container)
        else:
            data.append(opt)
    return flags, prop, ",".join(data), aset, aclr


def plan_mounts(mounts, bundle, uid_mappings=None, gid_mappings=None):
    """Config mounts -> [MountOp], in config order.  Bind sources are host paths, relative to the bundle.

    A bind mount with uidMappings/gidMappings, or the option idmap/ridmap, is id-mapped: with the mount's own
    mappings, else the container's user namespace mappings (runc 1.2 semantics)."""
    ops = []
    for i, m in enumerate(mounts or ()):
        dest = m.get("destination", "")
        if not dest.startswith("/"):
            raise ConfigError(f"mounts.{i}.destination: must be an absolute path, got {dest!r}")
        flags, prop, data, aset, aclr = parse_options(m.get("options"))
        fstype = m.get("type") or ""
        bind = bool(flags & M["MS_BIND"]) or fstype == "bind"
        src = m.get("source") or ""
        if bind:
            flags |= M["MS_BIND"]
            if src and not src.startswith("/"):
                src = os.path.join(bundle, src)
        idmap = None
        opts = m.get("options") or ()
        if m.get("uidMappings") or m.get("gidMappings") or any(o in IDMAP_OPTIONS for o in opts):
            if not bind:
                raise ConfigError(f"mounts.{i}: id mappings are only supported on bind mounts")
            uids = m.get("uidMappings") or uid_mappings
            gids = m.get("gidMappings") or gid_mappings
            if not uids or not gids:
                raise ConfigError(f"mounts.{i}: an id-mapped mount needs uidMappings and gidMappings (on the mount "
                                  "or the container's user namespace)")
            idmap = (list(uids), list(gids))
        copyup = "tmpcopyup" in opts
        if copyup and (bind or fstype != "tmpfs"):
            raise ConfigError(f"mounts.{i}.options: tmpcopyup is only supported on tmpfs mounts")
        ops.append(MountOp(src, os.path.normpath(dest), fstype, flags, data, prop, aset, aclr, bind, i, idmap,
                           copyup))
    return ops


def delays_readonly(op):
    """runc mounts a read-only tmpfs, and a read-only /dev, read-write and remounts them read-only last
    (mountPropagate, finalizeRootfs): the device nodes, /dev/pts, /dev/shm, the /dev symlinks, mounts nested
    under them and what createContainer hooks make there (GPU device nodes) are all made in between."""
    return bool(op.flags & M["MS_RDONLY"]) and not op.bind and (op.fstype == "tmpfs" or op.dest == "/dev")


def needs_dev_setup(ops):
    """runc makes devices and /dev symlinks unless /dev is bind-mounted from elsewhere."""
    return not any(op.dest == "/dev" and op.bind for op in ops)


# --- applying, by fd -------------------------------------------------------------------------------------

_RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS


def open_in_root(sys, rootfd, path, flags=O_PATH):
    """An O_PATH fd for path resolved inside rootfd (symlinks resolve as if rootfd were /)."""
    return sys.openat2(rootfd, path.lstrip("/") or ".", flags | os.O_CLOEXEC, 0, _RESOLVE)


_MAX_LINKS = 40  # the kernel's own limit on symlinks followed in one lookup


def _parts(path):
    return [p for p in path.split("/") if p and p != "."]


def mkdir_all_in_root(sys, rootfd, path, mode=0o755):
    """mkdir -p of path inside rootfd; returns an O_PATH fd of the directory.  Never leaves the root.

    A dangling symlink on the way is followed inside the root and its target created there, as runc does
    (MkdirAll over SecureJoin): images carry such links (/var/run -> /run, an absolute link to a host path), and
    an absolute target means the rootfs, never the host.

    The short way first: one openat2 of the whole path (it exists: most mount points do), else of its parent and
    a mkdirat of the last component (a fresh tmpfs's /dev/pts, /sys/fs/cgroup/cpu).  Anything else (a dangling
    symlink, a component missing higher up, an error) takes the walk below, which decides as it always did."""
    parts = _parts(path)
    if parts:
        fd = _short_mkdir(sys, rootfd, parts, mode)
        if fd is not None:
            return fd
    done = []  # the components resolved so far, as a path relative to the root
    links = 0
    fd = os.dup(rootfd)
    try:
        while parts:
            name = parts.pop(0)
            sub = "/".join(done + [name])
            try:
                nfd = open_in_root(sys, rootfd, sub, O_PATH | os.O_DIRECTORY)
            except SysError as e:
                if e.errno != errno.ENOENT or name == "..":
                    raise
                try:
                    os.mkdir(name, mode, dir_fd=fd)
                except FileExistsError:
                    target = _readlink(name, fd)
                    if target is None:  # raced: resolve again below (in the root) and fail if not a dir
                        pass
                    else:
                        links += 1
                        if links > _MAX_LINKS:
                            raise SysError("mkdir", "/" + sub, errno.ELOOP) from None
                        if target.startswith("/"):
                            done = []
                            os.close(fd)
                            fd = os.dup(rootfd)
                        parts = _parts(target) + parts
                        continue
                except OSError as e2:
                    raise SysError("mkdir", "/" + sub, e2.errno) from None
                nfd = open_in_root(sys, rootfd, sub, O_PATH | os.O_DIRECTORY)
            os.close(fd)
            fd = nfd
            done.append(name)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _short_mkdir(sys, rootfd, parts, mode):
    """mkdir_all_in_root's short way: an O_PATH fd of the directory, or None to walk."""
    full = "/".join(parts)
    try:
        return open_in_root(sys, rootfd, full, O_PATH | os.O_DIRECTORY)
    except SysError as e:
        if e.errno != errno.ENOENT or len(parts) < 2 or parts[-1] == "..":
            return None
    try:
        pfd = open_in_root(sys, rootfd, "/".join(parts[:-1]), O_PATH | os.O_DIRECTORY)
    except SysError:
        return None
    try:
        os.mkdir(parts[-1], mode, dir_fd=pfd)
    except OSError:  # EEXIST: a dangling symlink (followed by the walk) or a race
        return None
    finally:
        os.close(pfd)
    try:
        return open_in_root(sys, rootfd, full, O_PATH | os.O_DIRECTORY)
    except SysError:
        return None


def _readlink(name, dirfd):
    try:
        return os.readlink(name, dir_fd=dirfd)
    except OSError:
        return None


def make_file_in_root(sys, rootfd, path, mode=0o755, _links=0):
    """Create (if missing) an empty file at path inside rootfd to mount on; returns an O_PATH fd of it.

    A dangling symlink at path is followed inside the root (see mkdir_all_in_root): an image's
    /etc/resolv.conf -> /run/systemd/resolve/stub-resolv.conf gets its target made in the rootfs."""
    parent, name = os.path.split(os.path.normpath("/" + path))
    pfd = mkdir_all_in_root(sys, rootfd, parent)
    target = None
    try:
        try:
            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_WRONLY | os.O_CLOEXEC, mode,
                             dir_fd=pfd))
        except FileExistsError:
            target = _readlink(name, pfd)
        except OSError as e:
            raise SysError("create", path, e.errno) from None
    finally:
        os.close(pfd)
    if target is not None:
        try:
            return open_in_root(sys, rootfd, path)
        except SysError as e:
            if e.errno != errno.ENOENT:
                raise
        if _links >= _MAX_LINKS:
            raise SysError("create", path, errno.ELOOP)
        return make_file_in_root(sys, rootfd, os.path.join(parent, target), mode, _links + 1)
    return open_in_root(sys, rootfd, path)


def fdpath(fd):
    return f"/proc/self/fd/{fd}"


def mount_point(sys, rootfd, op, source_fd=None):
    """Resolve (creating it if needed) op.dest inside the root: a file for a bind of a file, else a directory."""
    is_file = False
    if op.bind:
        try:
            st = os.fstat(source_fd) if source_fd is not None else os.stat(op.source)
        except OSError as e:
            raise SysError("stat mount source", op.source, e.errno) from None
        is_file = not stat.S_ISDIR(st.st_mode)
    if is_file:
        return make_file_in_root(sys, rootfd, op.dest)
    return mkdir_all_in_root(sys, rootfd, op.dest)


OPEN_TREE_CLONE, AT_EMPTY_PATH, AT_RECURSIVE = 1, 0x1000, 0x8000
MOUNT_ATTR_RDONLY, MOUNT_ATTR_IDMAP = 0x1, 0x100000
MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_T_EMPTY_PATH = 0x4, 0x40


def idmapped_tree(sys, op, userns_fd):
    """In the parent, on the host's side: clone the source tree detached (open_tree) and id-map it with the user
    namespace userns_fd; returns the tree's fd.  The kernel's can_idmap_mount() wants CAP_SYS_ADMIN over the
    filesystem's user namespace (the host's, for a host filesystem): a process inside the container's user
    namespace gets EPERM, so this cannot wait for stage B (runc: goCreateMountSources in the parent)."""
    rec = AT_RECURSIVE if op.flags & M["MS_REC"] else 0
    try:
        tree = sys.open_tree(-100, op.source, OPEN_TREE_CLONE | os.O_CLOEXEC | rec)
    except SysError as e:
        raise SysError("open id-mapped mount source", op.source, e.errno) from None
    try:
        sys.mount_setattr(tree, "", AT_EMPTY_PATH | rec, MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    except SysError as e:
        os.close(tree)
        raise SysError("id-map mount source", op.source, e.errno) from None
    return tree


# statfs f_flag (ST_*) -> mount flag, for the flags the kernel locks on a mount copied into a less privileged mount
# namespace (MNT_LOCK_READONLY, _NOSUID, _NODEV, _NOEXEC, _ATIME): a remount must carry them again
_LOCKED = ((0x1, M["MS_RDONLY"]), (0x2, M["MS_NOSUID"]), (0x4, M["MS_NODEV"]), (0x8, M["MS_NOEXEC"]),
           (0x400, M["MS_NOATIME"]), (0x800, M["MS_NODIRATIME"]), (0x1000, M["MS_RELATIME"]))
_ATIME = M["MS_NOATIME"] | M["MS_RELATIME"] | M["MS_STRICTATIME"]


def locked_flags(path, flags):
    """flags plus the source mount's lockable flags (runc rootfs_linux.go, after EPERM): its nosuid/nodev/noexec,
    ro, and its atime mode unless flags choose one."""
    f_flag = os.statvfs(path).f_flag
    out = flags
    for st, ms in _LOCKED:
        if f_flag & st and (not ms & _ATIME or not flags & _ATIME):
            out |= ms
    if not flags & _ATIME and not f_flag & (0x400 | 0x1000):
        out |= M["MS_STRICTATIME"]
    return out


def apply_mount(sys, rootfd, op, cgroup_mount=None, source_fd=None):
    """Apply one MountOp under rootfd.  cgroup mounts are delegated to cgroup_mount(sys, rootfd, op).  source_fd,
    opened by the parent on the host's side: the id-mapped tree of an id-mapped bind (moved into place), or an
    O_PATH fd of a bind source that the container's root may not be able to reach (mounted through it)."""
    if op.fstype in ("cgroup", "cgroup2") and not op.bind:
        if cgroup_mount is not None:
            return cgroup_mount(sys, rootfd, op)
    fd = no_symlinks(sys, rootfd, op) if op.fstype in ("proc", "sysfs") and not op.bind else None
    if fd is None:
        fd = mount_point(sys, rootfd, op, source_fd)
    # tmpcopyup: the image's directory, opened before the tmpfs covers it (read-only only after the copy)
    image = open_in_root(sys, rootfd, op.dest, os.O_RDONLY | os.O_DIRECTORY) if op.copyup else None
    try:
        target = fdpath(fd)
        base = (op.flags & ~(M["MS_REMOUNT"] | M["MS_RDONLY"]) if op.bind or op.copyup or delays_readonly(op)
                else op.flags)
        source = fdpath(source_fd) if source_fd is not None else op.source
        try:
            if op.idmap is not None:
                sys.move_mount(source_fd, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)
            else:
                sys.mount(source or op.fstype, target, op.fstype or None, base, op.data or None)
        except SysError as e:
            if op.fstype == "sysfs" and not op.bind and e.errno == errno.EPERM:
                # a user namespace that does not own the network namespace may not mount sysfs: bind the host's
                # /sys instead (read-only, as the options say), as runc does
                os.close(fd)
                fd = None
                rbind = M["MS_BIND"] | M["MS_REC"]
                return apply_mount(sys, rootfd, op._replace(source="/sys", fstype="bind", flags=op.flags | rbind,
                                                            bind=True), cgroup_mount)
            what = "id-mapped bind" if op.idmap is not None else "mount"
            raise SysError(what, f"{op.source or op.fstype} on {op.dest} ({flag_names(base)})", e.errno) from None
        if image is not None:
            _copy_up(sys, rootfd, op, image)
        # A bind mount takes its flags (ro, nosuid, ...) only on a remount of itself.
        extra = op.flags & ~(M["MS_BIND"] | M["MS_REC"] | M["MS_REMOUNT"])
        if op.bind and extra:
            # reopen: the fd above points at the directory under the new mount
            os.close(fd)
            fd = open_in_root(sys, rootfd, op.dest)
            target = fdpath(fd)
            flags = (op.flags | M["MS_REMOUNT"] | M["MS_BIND"]) & ~M["MS_REC"]
            try:
                try:
                    sys.mount(None, target, None, flags, None)
                except SysError as e:
                    if e.errno != errno.EPERM:
                        raise
                    flags = locked_flags(target, flags)
                    sys.mount(None, target, None, flags, None)
            except SysError as e:
                raise SysError("remount", f"{op.dest} ({flag_names(flags)})", e.errno) from None
        if op.propagation or op.attr_set or op.attr_clr:
            os.close(fd)
            fd = open_in_root(sys, rootfd, op.dest)
            for p in op.propagation:
                sys.mount(None, fdpath(fd), None, p, None)
            if op.attr_set or op.attr_clr:
                sys.mount_setattr(fd, "", 0x1000 | 0x8000, op.attr_set, op.attr_clr)  # AT_EMPTY_PATH|AT_RECURSIVE
    finally:
        if fd is not None:
            os.close(fd)
        if image is not None:
            os.close(image)


def _copy_up(sys, rootfd, op, image):
    """Fill the new tmpfs (op.dest, reopened: now the tmpfs root) from the covered image directory.  A read-only
    tmpfs is mounted read-write and made read-only last, like every read-only tmpfs (delays_readonly)."""
    new = open_in_root(sys, rootfd, op.dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        copy_tree(image, new, op.dest)
    finally:
        os.close(new)


def no_symlinks(sys, rootfd, op):
    """CVE-2019-16884 / CVE-2019-19921: procfs and sysfs only go on a real directory, never through a symlink
    that the image (or a racing container) planted, or later writes meant for /proc could be redirected.
    Returns the directory's O_PATH fd, the mount point, or None when it is missing (it is then made as a
    directory); the error is runc's, which callers grep."""
    try:
        return sys.openat2(rootfd, op.dest.lstrip("/"), O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, 0,
                           RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS)
    except SysError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):  # a symlink, or a file, on the way or at the end
            raise PyruncError(f'error mounting "{op.source or op.fstype}" to rootfs at "{op.dest}": '
                              f'filesystem "{op.fstype}" must be mounted on ordinary directory') from None
        if e.errno == errno.ENOENT:
            return None
        raise


def detach(sys, path):
    sys.umount2(path, MNT_DETACH)
