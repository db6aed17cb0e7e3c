"""Find the cgroup hierarchies under a root (default /sys/fs/cgroup) and the caller's place in them.

Three layouts exist in the wild:
  v2      root itself is cgroup2 (root/cgroup.controllers exists)
  v1      one directory per hierarchy (cpu, "cpu,cpuacct", memory, systemd for name=systemd, ...)
  hybrid  v1 directories plus a cgroup2 mount at root/unified holding the controllers not bound to v1
          (on this host: hugetlb)

For the real root, /proc/self/mountinfo is authoritative (it gives combined hierarchies and the mount root when
we run inside a container); for a temp-dir stand-in (unit tests) there are no mounts and the directory names are
read instead.  Detection runs once per open_manager() call, never at import time.
"""

from pyrunc import osx as os
from pyrunc.errors import PyruncError
from pyrunc.record import record

# Controllers the v1 manager knows, in the order runc applies them (libcontainer/cgroups/fs/fs.go `subsystems`).
V1_ORDER = (
    "cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb",
    "net_cls", "net_prio", "perf_event", "freezer", "rdma", "misc", "name=systemd",
)
UNIFIED = ""  # key of the cgroup2 dir in Manager.paths, as in runc's state.json cgroup_paths


# root; mode "v1", "v2" or "hybrid"; v1: controller -> mountpoint; v1_mount_root: controller -> the hierarchy path
# mounted there ("/" unless containerised); unified: the cgroup2 mountpoint (root in v2 mode, root/unified in
# hybrid mode) or None; unified_controllers: the cgroup2 root's cgroup.controllers.  (Not typing.NamedTuple
# nor collections.namedtuple: importing typing costs ~5 ms of every verb that opens a cgroup, collections ~2 ms.)
Layout = record("Layout", "root mode v1 v1_mount_root unified unified_controllers")


def _under(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def _from_mountinfo(root, text):
    v1, v1root, unified = {}, {}, None
    if "\\" in text:  # a path escaped somewhere (\\ooo): only then import the helper, so delete pays nothing
        from pyrunc.mountinfo import unescape
    else:
        unescape = str
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        f, r = left.split(), right.split()
        if len(f) < 5 or len(r) < 3:
            continue
        mnt_root, mountpoint = unescape(f[3]), unescape(f[4])
        if not _under(mountpoint, root):
            continue
        fstype, opts = r[0], r[2].split(",")
        if fstype == "cgroup2":
            unified = mountpoint
        elif fstype == "cgroup":
            for o in opts:
                if o in V1_ORDER or o.startswith("name="):
                    v1.setdefault(o, mountpoint)
                    v1root.setdefault(o, mnt_root)
    return v1, v1root, unified


def _from_dirs(root):
    v1, unified = {}, None
    try:
        names = sorted(os.listdir(root))
    except OSError:
        names = []
    for name in names:
        d = os.path.join(root, name)
        if os.path.islink(d) or not os.path.isdir(d):
            continue  # "cpu" -> "cpu,cpuacct" symlinks are aliases
        if os.path.exists(os.path.join(d, "cgroup.controllers")):
            unified = d
        elif os.path.exists(os.path.join(d, "cgroup.procs")):
            for c in name.split(","):
                v1.setdefault("name=systemd" if c == "systemd" else c, d)
    return v1, {c: "/" for c in v1}, unified


def detect(root="/sys/fs/cgroup", mountinfo=None):
    """Return the Layout under root. mountinfo: text of /proc/self/mountinfo (read when None)."""
    root = os.path.normpath(root)
    from pyrunc.cgroups.fs import read_text

    if mountinfo is None:
        mountinfo = read_text("/proc/self/mountinfo") or ""
    v1, v1root, unified = _from_mountinfo(root, mountinfo)
    if not v1 and unified is None:
        if os.path.exists(os.path.join(root, "cgroup.controllers")):
            unified = root
        else:
            v1, v1root, unified = _from_dirs(root)
    if unified == root:
        mode, v1, v1root = "v2", {}, {}
    elif v1:
        mode = "hybrid" if unified else "v1"
    elif unified:
        mode = "v2"
    else:
        raise PyruncError(f"detect cgroups {root}: no cgroup hierarchy found")
    ctrls = ()
    if unified:
        ctrls = tuple((read_text(os.path.join(unified, "cgroup.controllers")) or "").split())
    return Layout(root, mode, v1, v1root, unified, ctrls)


def parse_proc_cgroup(text):
    """/proc/<pid>/cgroup -> {controller: path}; the cgroup2 entry ("0::/x") is under key "" (UNIFIED)."""
    out = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        if not ctrls:
            out[UNIFIED] = path
            continue
        for c in ctrls.split(","):
            out[c] = path
    return out


def clean_path(path):
    """runc utils.CleanPath: lexically clean, and make a relative path unable to climb out with "..".

    "../../etc/x" -> "etc/x"; "/a/../../b" -> "/b"; "" -> "".
    """
    if not path:
        return ""
    p = os.path.normpath(path)
    if not p.startswith("/"):
        p = os.path.relpath(os.path.normpath("/" + p), "/")
    else:
        p = os.path.normpath(p)
        if p.startswith("//"):
            p = "/" + p.lstrip("/")
    return "" if p == "." else p
