"""User namespaces as id maps for id-mapped mounts (mount_setattr MOUNT_ATTR_IDMAP takes a user namespace fd).

The namespace is made in the caller's (host) context before the container's processes exist, so hostIDs mean host
ids: a short-lived child unshares a user namespace, the parent writes its uid_map/gid_map, keeps an fd of
/proc/<child>/ns/user and reaps the child.  The fds go to stage B, which attaches the id-mapped trees.
"""

from posix import _exit  # osx leaves out posix's private names

from .. import osx as os
from ..errors import SysError
from ..linux import CLONE_NEWUSER, O_PATH, real
from ..procfs import in_user_namespace
from . import waiter
from .rootfs import idmapped_tree

CALLER_IS_ROOT = os.geteuid() == 0  # at import, in pyrunc's own process: stage B (uid 0 in its namespace) agrees

# pyrunc itself runs in a user namespace that is not the initial one (rootless podman runs its runtime so): no
# mknod there either, whether or not the config asks for a user namespace of its own (runc: RunningInUserNS)
IN_USER_NAMESPACE = in_user_namespace()


def write_id_maps(pid, uid_maps, gid_maps):
    """Write /proc/<pid>/uid_map and gid_map (OCI LinuxIDMapping lists; an empty list is left unwritten).

    A caller that is not root may write only its own id, once (and a gid_map only with setgroups denied); more
    than that comes from its /etc/subuid and /etc/subgid ranges through the setuid newuidmap/newgidmap (uidmap),
    which check them, as runc's nsexec does."""
    for name, maps in (("uid_map", uid_maps), ("gid_map", gid_maps)):
        if not maps:
            continue
        if not CALLER_IS_ROOT and not _own_id_only(maps, os.geteuid() if name == "uid_map" else os.getegid()):
            _mapping_tool("newuidmap" if name == "uid_map" else "newgidmap", pid, maps)
            continue
        if name == "gid_map" and not CALLER_IS_ROOT:
            _deny_setgroups(pid)
        path = f"/proc/{pid}/{name}"
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps).encode())
        except OSError as e:
            raise SysError("write", path, e.errno) from None
        finally:
            os.close(fd)


def _own_id_only(maps, own):
    return len(maps) == 1 and maps[0]["hostID"] == own and maps[0]["size"] == 1


def _mapping_tool(tool, pid, maps):
    """newuidmap/newgidmap PID ID HOSTID SIZE...: the kernel lets only them (setuid root) map subordinate ids."""
    from ..errors import PyruncError

    path = next((os.path.join(d, tool) for d in ("/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin")
                 if os.access(os.path.join(d, tool), os.X_OK)), None)
    if path is None:
        raise PyruncError(f"{tool} not found: a rootless container mapping more than the caller's own id needs it "
                          f"(Debian: apt-get install uidmap)")
    import subprocess

    argv = [path, str(pid)] + [str(m[k]) for m in maps for k in ("containerID", "hostID", "size")]
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=30)
    except subprocess.TimeoutExpired:
        raise PyruncError(f"{' '.join(argv)}: timed out") from None
    if p.returncode != 0:
        why = p.stderr.decode(errors="replace").strip().splitlines()
        sub = "/etc/subuid" if tool == "newuidmap" else "/etc/subgid"
        raise PyruncError(f"{' '.join(argv)} failed ({why[-1] if why else f'exit {p.returncode}'}): the mappings "
                          f"must lie in the caller's {sub} ranges")


def _deny_setgroups(pid):
    """A caller that is not root may write a gid_map only after setgroups is denied in the namespace (user_namespaces(7))."""
    path = f"/proc/{pid}/setgroups"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"deny")
        finally:
            os.close(fd)
    except OSError as e:
        raise SysError("write", path, e.errno) from None


def userns_fd(uid_maps, gid_maps, lx=real):
    lx.lib  # noqa: B018: load the helper before forking
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child only holds the namespace open until the parent has its fd
        code = 1
        try:
            os.close(ready_r)
            os.close(done_w)
            lx.unshare(CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(done_r, 1)
            code = 0
        finally:
            _exit(code)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise SysError("unshare user namespace for an id-mapped mount", None, 1)
        write_id_maps(pid, uid_maps, gid_maps)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        waiter.waitpid(pid, 0)


def userns_fds(ops):
    """{mount index: user namespace fd} for the id-mapped mounts of a plan; the caller closes them."""
    fds = {}
    try:
        for op in ops:
            if op.idmap is not None:
                fds[op.index] = userns_fd(*op.idmap)
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def idmapped_trees(ops, idmap_fds, lx=real):
    """{mount index: fd of its id-mapped tree} (rootfs.idmapped_tree), made in the parent before the first fork, as
    the host's root and outside any new user namespace; stage B moves each into place."""
    fds = {}
    try:
        for op in ops:
            if op.idmap is not None:
                fds[op.index] = idmapped_tree(lx, op, idmap_fds[op.index])
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def source_binds(plan):
    """The bind mounts whose source the parent opens for stage B: all (but id-mapped) with a new user namespace
    made by root.  A caller that is not root could not open them through B's /proc/<pid>/root (B is not
    dumpable), and needs not: it maps itself to the container's root, so B reaches the sources as it would."""
    if not plan.userns or not CALLER_IS_ROOT:
        return []
    return [op for op in plan.mounts if op.bind and op.source and op.idmap is None]


def open_bind_sources(pid, ops):
    """O_PATH fds of the bind sources, for stage B (pid) with a new user namespace: the container's root is an
    unprivileged host uid that cannot search a 0700 directory above a source, so the parent (host root, host
    credentials) opens them, as runc's mount fds.  Opened through /proc/<pid>/root, so that each fd's mount is the
    copy in B's new mount namespace: the kernel binds only from a mount of the caller's namespace (do_loopback's
    check_mnt, else EINVAL).  B's root is still the host's /, so a source names the same file there."""
    fds = []
    try:
        for op in ops:
            try:
                fds.append(os.open(f"/proc/{pid}/root{op.source}", O_PATH | os.O_CLOEXEC))
            except OSError as e:
                raise SysError("open mount source", op.source, e.errno) from None
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return fds
