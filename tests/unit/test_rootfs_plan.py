"""pyrunc.process.rootfs and pyrunc.process.plan without root: option parsing, mount plans, the apply loop against
pyrunc.linux.fake.Recorder (openat2 is real: path resolution inside a temporary rootfs is tested for real), and
the config errors plan.build raises before any side effect."""

import os

import pytest

from pyrunc.errors import ConfigError, PyruncError, SysError
from pyrunc.linux import MS, O_PATH
from pyrunc.linux.fake import Recorder
from pyrunc.process import plan as planmod
from pyrunc.process import rootfs
from pyrunc.process.rootfs import MountOp, apply_mount, parse_options, plan_mounts

M = MS


# --- parse_options ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("opts,flags,prop,data,aset,aclr", [
    ([], 0, [], "", 0, 0),
    (["ro"], M["MS_RDONLY"], [], "", 0, 0),
    (["ro", "rw"], 0, [], "", 0, 0),  # later wins, as in runc
    (["rw", "ro"], M["MS_RDONLY"], [], "", 0, 0),
    (["nosuid", "nodev", "noexec"], M["MS_NOSUID"] | M["MS_NODEV"] | M["MS_NOEXEC"], [], "", 0, 0),
    (["nosuid", "suid"], 0, [], "", 0, 0),
    (["bind"], M["MS_BIND"], [], "", 0, 0),
    (["rbind"], M["MS_BIND"] | M["MS_REC"], [], "", 0, 0),
    (["strictatime", "noatime"], M["MS_STRICTATIME"] | M["MS_NOATIME"], [], "", 0, 0),
    (["relatime", "norelatime"], 0, [], "", 0, 0),
    (["defaults"], 0, [], "", 0, 0),
    (["mode=755", "size=65536k"], 0, [], "mode=755,size=65536k", 0, 0),
    (["newinstance", "ptmxmode=0666", "gid=5"], 0, [], "newinstance,ptmxmode=0666,gid=5", 0, 0),
    (["private"], 0, [M["MS_PRIVATE"]], "", 0, 0),
    (["rprivate"], 0, [M["MS_PRIVATE"] | M["MS_REC"]], "", 0, 0),
    (["shared", "rslave"], 0, [M["MS_SHARED"], M["MS_SLAVE"] | M["MS_REC"]], "", 0, 0),
    (["runbindable"], 0, [M["MS_UNBINDABLE"] | M["MS_REC"]], "", 0, 0),
    (["rro"], 0, [], "", 0x1, 0),  # MOUNT_ATTR_RDONLY, recursively (mount_setattr)
    (["rro", "rrw"], 0, [], "", 0, 0x1),
    (["rnosuid", "rnodev", "rnoexec"], 0, [], "", 0x2 | 0x4 | 0x8, 0),
    (["rnoatime"], 0, [], "", 0x10, 0x70),  # the whole MOUNT_ATTR__ATIME field in attr_clr, or EINVAL
    (["rstrictatime"], 0, [], "", 0x20, 0x70),
    (["rnoatime", "rrelatime"], 0, [], "", 0, 0x70),
    (["rro", "rnoatime"], 0, [], "", 0x11, 0x70),
    (["tmpcopyup"], 0, [], "", 0, 0),
    (["rbind", "ro", "rprivate", "size=1m"], M["MS_BIND"] | M["MS_REC"] | M["MS_RDONLY"],
     [M["MS_PRIVATE"] | M["MS_REC"]], "size=1m", 0, 0),
])
def test_parse_options(opts, flags, prop, data, aset, aclr):
    assert parse_options(opts) == (flags, prop, data, aset, aclr)


# --- plan_mounts -----------------------------------------------------------------------------------------

def test_plan_mounts_basic():
    ops = plan_mounts([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/data/", "type": "bind", "source": "vol", "options": ["ro"]},
        {"destination": "/abs", "source": "/host/dir", "options": ["rbind", "rslave"]},
        {"destination": "/a/./b/../c", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
    ], "/bundle")
    assert [op.dest for op in ops] == ["/proc", "/data", "/abs", "/a/c"]
    assert ops[0] == MountOp("proc", "/proc", "proc", 0, "", [], 0, 0, False, 0)
    assert ops[1].bind and ops[1].source == "/bundle/vol"  # relative bind sources are bundle-relative
    assert ops[1].flags == M["MS_BIND"] | M["MS_RDONLY"]
    assert ops[2].bind and ops[2].source == "/host/dir" and ops[2].fstype == ""
    assert ops[2].propagation == [M["MS_SLAVE"] | M["MS_REC"]]
    assert ops[3].data == "size=1m" and not ops[3].bind and ops[3].index == 3


def test_plan_mounts_relative_destination_rejected():
    with pytest.raises(ConfigError) as e:
        plan_mounts([{"destination": "/ok", "type": "tmpfs"}, {"destination": "rel", "type": "tmpfs"}], "/b")
    assert "mounts.1.destination" in str(e.value)


def test_needs_dev_setup():
    assert rootfs.needs_dev_setup(plan_mounts([{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}], "/b"))
    assert not rootfs.needs_dev_setup(plan_mounts([{"destination": "/dev", "type": "bind", "source": "/dev",
                                                    "options": ["rbind"]}], "/b"))


# --- apply_mount with the recording fake -----------------------------------------------------------------

class Rec(Recorder):
    """Also notes where each mount's /proc/self/fd/N target really pointed at the time of the call."""

    def __init__(self):
        super().__init__()
        self.targets = []

    def mount(self, source, target, fstype, flags, data=None):
        self.calls.append(("mount", source, target, fstype, flags, data))
        if target and target.startswith("/proc/self/fd/"):
            self.targets.append(os.readlink(target))
        else:
            self.targets.append(None)
        return 0


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "rootfs"
    r.mkdir()
    fd = os.open(r, O_PATH | os.O_DIRECTORY)
    yield r, fd
    os.close(fd)


def test_apply_tmpfs_creates_mount_point_and_mounts_by_fd(root):
    r, fd = root
    rec = Rec()
    op = plan_mounts([{"destination": "/run/sub", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "mode=755"]}], "/b")[0]
    apply_mount(rec, fd, op)
    assert (r / "run" / "sub").is_dir()
    assert rec.names().count("mount") == 1
    call = [c for c in rec.calls if c[0] == "mount"][0]
    assert call[1:] == ("tmpfs", call[2], "tmpfs", M["MS_NOSUID"], "mode=755")
    assert call[2].startswith("/proc/self/fd/")
    assert rec.targets == [str(r / "run" / "sub")]


def test_apply_bind_ro_remounts(root, tmp_path):
    r, fd = root
    src = tmp_path / "src"
    src.mkdir()
    srcfile = tmp_path / "file"
    srcfile.write_text("x")
    rec = Rec()
    ops = plan_mounts([{"destination": "/ro", "type": "bind", "source": str(src), "options": ["rbind", "ro"]},
                       {"destination": "/etc/f", "type": "bind", "source": str(srcfile), "options": ["bind"]},
                       {"destination": "/p", "type": "bind", "source": str(src), "options": ["rbind", "rprivate",
                                                                                            "rro"]}], "/b")
    for op in ops:
        apply_mount(rec, fd, op)
    mounts = [c for c in rec.calls if c[0] == "mount"]
    # /ro: the bind (no MS_RDONLY: the kernel ignores it there), then a remount that applies it
    assert mounts[0][1] == str(src) and mounts[0][4] == M["MS_BIND"] | M["MS_REC"]
    assert mounts[1][1] is None and mounts[1][4] == M["MS_BIND"] | M["MS_REMOUNT"] | M["MS_RDONLY"]
    assert rec.targets[0] == rec.targets[1] == str(r / "ro")
    # a file source gets a file mount point
    assert (r / "etc" / "f").is_file() and rec.targets[2] == str(r / "etc" / "f")
    # propagation after the bind, then mount_setattr for rro
    assert mounts[4][4] == M["MS_PRIVATE"] | M["MS_REC"] and rec.targets[4] == str(r / "p")
    setattr_calls = [c for c in rec.calls if c[0] == "mount_setattr"]
    assert len(setattr_calls) == 1
    assert setattr_calls[0][2:] == ("", 0x1000 | 0x8000, 0x1, 0)  # AT_EMPTY_PATH|AT_RECURSIVE, set RDONLY


@pytest.mark.parametrize("dest,fstype,delayed", [("/dev", "tmpfs", True), ("/data", "tmpfs", True),
                                                  ("/dev", "devtmpfs", True), ("/data", "ramfs", False)])
def test_readonly_tmpfs_and_dev_are_mounted_rw_first(root, dest, fstype, delayed):
    """runc's mountPropagate: MS_RDONLY is kept back for a tmpfs and for /dev (remounted at the end)."""
    r, fd = root
    rec = Rec()
    op = plan_mounts([{"destination": dest, "type": fstype, "source": fstype, "options": ["nosuid", "ro"]}],
                     "/b")[0]
    assert rootfs.delays_readonly(op) is delayed
    apply_mount(rec, fd, op)
    (call,) = [c for c in rec.calls if c[0] == "mount"]
    assert call[4] == M["MS_NOSUID"] | (0 if delayed else M["MS_RDONLY"])


def test_apply_through_absolute_symlink_stays_in_root(root, tmp_path):
    r, fd = root
    outside = tmp_path / "outside" / "dir"
    outside.mkdir(parents=True)
    os.symlink(str(outside), r / "evil")
    rec = Rec()
    op = plan_mounts([{"destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs"}], "/b")[0]
    apply_mount(rec, fd, op)
    assert os.listdir(outside) == [], "a mount point was created outside the rootfs"
    inside = r / str(outside).lstrip("/") / "sub"
    assert inside.is_dir()
    assert rec.targets == [str(inside)]


def test_apply_through_relative_dotdot_symlink_stays_in_root(root, tmp_path):
    r, fd = root
    os.symlink("../../../../../escape", r / "up")
    rec = Rec()
    apply_mount(rec, fd, plan_mounts([{"destination": "/up/x", "type": "tmpfs", "source": "tmpfs"}], "/b")[0])
    assert not (tmp_path / "escape").exists()
    assert (r / "escape" / "x").is_dir()
    assert rec.targets == [str(r / "escape" / "x")]


def test_mkdir_all_dotdot_components_clamped_at_root(root, tmp_path):
    r, fd = root
    rec = Rec()
    # MountOps carry normalized paths; the helper must still never climb out on raw `..`
    d = rootfs.mkdir_all_in_root(rec, fd, "/a/../../../b/c")
    try:
        assert os.readlink(f"/proc/self/fd/{d}") == str(r / "b" / "c")
    finally:
        os.close(d)
    assert not (tmp_path / "b").exists()


def test_make_file_through_dangling_symlink(root, tmp_path):
    """/etc/resolv.conf -> /run/resolv.conf (dangling): the file is made at the target, inside the root."""
    r, fd = root
    (r / "etc").mkdir()
    os.symlink("/run/resolv.conf", r / "etc" / "resolv.conf")
    f = rootfs.make_file_in_root(Rec(), fd, "/etc/resolv.conf")
    try:
        assert os.readlink(f"/proc/self/fd/{f}") == str(r / "run" / "resolv.conf")
    finally:
        os.close(f)


def test_symlink_loop_fails(root):
    r, fd = root
    os.symlink("/l2", r / "l1")
    os.symlink("/l1", r / "l2")
    with pytest.raises(SysError):
        rootfs.mkdir_all_in_root(Rec(), fd, "/l1/x")


def test_mount_failure_names_dest_and_flags(root):
    r, fd = root
    rec = Rec()
    rec.fail = {}

    def failing(*a, **k):
        raise SysError("mount", a[1], 1)

    rec.mount = failing
    op = plan_mounts([{"destination": "/m", "type": "bind", "source": str(r), "options": ["rbind"]}], "/b")[0]
    with pytest.raises(SysError) as e:
        apply_mount(rec, fd, op)
    assert "/m" in str(e.value) and "MS_BIND|MS_REC" in str(e.value) and "EPERM" in str(e.value)


def test_cgroup_mount_delegated(root):
    r, fd = root
    seen = []
    op = plan_mounts([{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}], "/b")[0]
    apply_mount(Rec(), fd, op, lambda lx, rootfd, o: seen.append(o))
    assert seen == [op]


@pytest.mark.parametrize("kind", ["proc", "sysfs"])
@pytest.mark.parametrize("what", ["symlink", "file", "symlink-parent"])
def test_proc_sysfs_only_on_an_ordinary_directory(root, tmp_path, kind, what):
    """runc's check and wording (CVE-2019-16884): nothing is mounted, nothing is made through the link."""
    r, fd = root
    dest = "/proc" if kind == "proc" else "/sys"
    (tmp_path / "target").mkdir()
    if what == "symlink":
        os.symlink(str(tmp_path / "target"), r / dest.lstrip("/"))
    elif what == "file":
        (r / dest.lstrip("/")).write_text("")
    else:
        os.symlink("/elsewhere", r / "up")
        dest = "/up" + dest
    rec = Rec()
    op = plan_mounts([{"destination": dest, "type": kind, "source": kind}], "/b")[0]
    with pytest.raises(PyruncError) as e:
        apply_mount(rec, fd, op)
    assert str(e.value) == (f'error mounting "{kind}" to rootfs at "{dest}": filesystem "{kind}" must be mounted '
                            "on ordinary directory")
    assert rec.names().count("mount") == 0
    assert os.listdir(tmp_path / "target") == [] and not (r / "elsewhere").exists()


def test_proc_on_missing_directory_is_made(root):
    r, fd = root
    rec = Rec()
    apply_mount(rec, fd, plan_mounts([{"destination": "/proc", "type": "proc", "source": "proc"}], "/b")[0])
    assert (r / "proc").is_dir() and rec.targets == [str(r / "proc")]


# --- plan.build --------------------------------------------------------------------------------------------

def _config(**linux):
    return {"ociVersion": "1.2.0", "root": {"path": "rootfs"},
            "process": {"args": ["sh"], "cwd": "/", "env": ["PATH=/bin"]},
            "linux": {"namespaces": [{"type": "mount"}, {"type": "uts"}], **linux}}


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return str(tmp_path)


def test_build_ok(bundle):
    p = planmod.build(_config(), bundle)
    assert p.rootfs == os.path.join(bundle, "rootfs")
    assert p.process.args == ["sh"] and p.process.cwd == "/"
    assert [d["path"] for d in p.devices][:2] == ["/dev/null", "/dev/zero"]


@pytest.mark.parametrize("edit,where", [
    (lambda c: c["linux"].__setitem__("uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]),
     "linux.uidMappings"),
    (lambda c: c["linux"].__setitem__("gidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]),
     "linux.gidMappings"),
    (lambda c: (c.__setitem__("hostname", "h"), c["linux"].__setitem__("namespaces", [{"type": "mount"}])),
     "hostname"),
    (lambda c: c["linux"]["namespaces"].append({"type": "uts"}), "linux.namespaces.2.type"),
    (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "linux.namespaces.2.type"),
    (lambda c: c["process"].__setitem__("cwd", "relative/dir"), "process.cwd"),
    (lambda c: c["process"].__setitem__("args", []), "process.args"),
    (lambda c: c["root"].__setitem__("path", "nonexistent"), "root.path"),
    (lambda c: c["linux"].__setitem__("rootfsPropagation", "sideways"), "linux.rootfsPropagation"),
    (lambda c: c.__setitem__("mounts", [{"destination": "x", "type": "tmpfs"}]), "mounts.0.destination"),
    (lambda c: c["linux"].__setitem__("devices", [{"path": "/dev/x", "type": "z"}]), "linux.devices.0.type"),
])
def test_build_errors(bundle, edit, where):
    cfg = _config()
    edit(cfg)
    with pytest.raises(ConfigError) as e:
        planmod.build(cfg, bundle)
    assert str(e.value).startswith(where), str(e.value)


def test_build_hostname_with_joined_uts_ok(bundle):
    cfg = _config()
    cfg["hostname"] = "h"
    cfg["linux"]["namespaces"] = [{"type": "mount"}, {"type": "uts", "path": "/proc/1/ns/uts"}]
    p = planmod.build(cfg, bundle)
    assert p.ns_join == [("uts", "/proc/1/ns/uts")]


def test_build_join_order_user_first_mount_last(bundle):
    cfg = _config()
    cfg["linux"]["namespaces"] = [{"type": "mount", "path": "/m"}, {"type": "network", "path": "/n"},
                                  {"type": "user", "path": "/u"}, {"type": "uts"}]
    p = planmod.build(cfg, bundle)
    assert [t for t, _ in p.ns_join] == ["user", "network", "mount"]


def test_build_user_devices_override_defaults(bundle):
    cfg = _config(devices=[{"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600}])
    p = planmod.build(cfg, bundle)
    nulls = [d for d in p.devices if d["path"] == "/dev/null"]
    assert nulls == [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600}]


def test_mkdir_all_opens_an_existing_path_once(root):
    """Most mount points exist (or miss only their last component, in a fresh tmpfs): one openat2 of the whole
    path inside the root, not one per component (the cgroup hierarchies alone were 9 x 4 opens per create)."""
    r, fd = root
    (r / "a" / "b" / "c").mkdir(parents=True)
    rec = Rec()
    assert _where(rootfs.mkdir_all_in_root(rec, fd, "/a/b/c")) == str(r / "a" / "b" / "c")
    assert [c[2] for c in rec.calls if c[0] == "openat2"] == ["a/b/c"]
    rec = Rec()
    assert _where(rootfs.mkdir_all_in_root(rec, fd, "/a/b/c/new")) == str(r / "a" / "b" / "c" / "new")
    assert [c[2] for c in rec.calls if c[0] == "openat2"] == ["a/b/c/new", "a/b/c", "a/b/c/new"]


def test_mkdir_all_last_component_a_dangling_symlink_is_followed_in_root(root, tmp_path):
    """The short way gives up on anything but a plain missing directory: the walk follows the link inside the root."""
    r, fd = root
    (r / "a").mkdir()
    os.symlink("/elsewhere/x", r / "a" / "l")
    assert _where(rootfs.mkdir_all_in_root(Rec(), fd, "/a/l")) == str(r / "elsewhere" / "x")
    assert not (tmp_path / "elsewhere").exists()


def _where(fd):
    """The path an O_PATH fd points at; closes it."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
