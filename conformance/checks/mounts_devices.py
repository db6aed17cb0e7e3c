"""config.md#mounts, #root; config-linux.md default filesystems and devices; /dev symlinks."""

import os

from . import check
from .harness import expect
from .linux import DEFAULT_DEVICES, DEV_SYMLINKS, EXTRA_DEVICE, mount_entry, mount_opts

HELLO = "hello from the host\n"


def _default(ctx):
    from .process import default_probe
    return default_probe(ctx)


def mounts_probe(ctx):
    def build():
        src = os.path.join(ctx.workdir, "bind-src")
        os.makedirs(src, exist_ok=True)
        with open(os.path.join(src, "hello"), "w") as f:
            f.write(HELLO)
        c = ctx.config()
        c["mounts"] += [
            {"destination": "/mnt/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "noexec", "mode=0700", "size=1m"]},
            {"destination": "/mnt/bind", "type": "bind", "source": src, "options": ["rbind", "ro"]},
            # Order matters: the second mount point only exists inside the first tmpfs.
            {"destination": "/mnt/order", "type": "tmpfs", "source": "outer", "options": ["size=1m"]},
            {"destination": "/mnt/order/inner", "type": "tmpfs", "source": "inner", "options": ["size=1m"]},
        ]
        return ctx.run_probe(c, "stat=/mnt/tmp", "read=/mnt/bind/hello", "write=/mnt/bind/",
                             "write=/mnt/tmp/", name="mounts")
    return ctx.cached_probe("mounts", build)


def _dev_check(path, mm):
    @check(f"default device {path} is a char device {mm[0]}:{mm[1]}", "config-linux.md#default-devices")
    def f(ctx):
        _, d, _ = _default(ctx)
        st = d["results"][f"stat={path}"]
        expect(st.get("type") == "char" and (st.get("major"), st.get("minor")) == mm, f"{path}: {st}")
    return f


for _p, _mm in DEFAULT_DEVICES.items():
    _dev_check(_p, _mm)


@check("/dev/fd, /dev/stdin, /dev/stdout, /dev/stderr are symlinks into /proc/self/fd",
       "runtime-linux.md#dev-symbolic-links")
def dev_symlinks(ctx):
    _, d, _ = _default(ctx)
    for p, target in DEV_SYMLINKS.items():
        st = d["results"][f"stat={p}"]
        expect(st.get("type") == "symlink" and st.get("target") == target, f"{p}: {st}, want -> {target}")


@check("/dev/ptmx refers to the container's /dev/pts/ptmx", "config-linux.md#default-devices")
def dev_ptmx(ctx):
    _, d, _ = _default(ctx)
    st = d["results"]["stat=/dev/ptmx"]
    ok = (st.get("type") == "symlink" and st.get("target") in ("pts/ptmx", "/dev/pts/ptmx")) or \
        (st.get("type") == "char" and (st.get("major"), st.get("minor")) == (5, 2))
    expect(ok, f"/dev/ptmx: {st}")


@check("linux.devices creates the node with type, major:minor, mode, uid and gid", "config-linux.md#devices")
def extra_device(ctx):
    _, d, _ = _default(ctx)
    st = d["results"][f"stat={EXTRA_DEVICE['path']}"]
    want = {"type": "char", "major": 1, "minor": 3, "mode": EXTRA_DEVICE["fileMode"], "uid": 0, "gid": 5}
    got = {k: st.get(k) for k in want}
    expect(got == want, f"{EXTRA_DEVICE['path']}: {got}, want {want}")
    rd = d["results"][f"read={EXTRA_DEVICE['path']}"]
    expect(rd.get("data") == "", f"cannot read the device (allowed by resources.devices): {rd}")


@check("proc is mounted at /proc", "config-linux.md#default-filesystems")
def proc_mount(ctx):
    _, d, _ = _default(ctx)
    e = mount_entry(d, "/proc")
    expect(e and e[0] == "proc", f"/proc: {e}")


@check("sysfs is mounted read-only at /sys", "config-linux.md#default-filesystems")
def sys_mount(ctx):
    _, d, _ = _default(ctx)
    e = mount_entry(d, "/sys")
    expect(e and e[0] == "sysfs" and "ro" in e[3], f"/sys: {e}")


@check("/dev/pts is a new devpts instance (not the host's)", "config-linux.md#default-filesystems")
def devpts_new(ctx):
    _, d, _ = _default(ctx)
    e = mount_entry(d, "/dev/pts")
    expect(e and e[0] == "devpts", f"/dev/pts: {e}")
    host = os.stat("/dev/pts").st_dev
    expect(e[4] != f"{os.major(host)}:{os.minor(host)}", f"/dev/pts is the host's devpts ({e[4]})")
    expect("ptmxmode=666" in e[2], f"devpts options {e[2]} lack ptmxmode=666")


@check("/dev/shm is a tmpfs with nosuid,nodev,noexec", "config-linux.md#default-filesystems")
def shm_mount(ctx):
    _, d, _ = _default(ctx)
    e = mount_entry(d, "/dev/shm")
    expect(e and e[0] == "tmpfs" and {"nosuid", "nodev", "noexec"} <= set(e[3]), f"/dev/shm: {e}")


@check("a tmpfs mount gets its type, flags and data options", "config.md#mounts")
def tmpfs_opts(ctx):
    _, d, _ = mounts_probe(ctx)
    e = mount_entry(d, "/mnt/tmp")
    expect(e and e[0] == "tmpfs", f"/mnt/tmp: {e}")
    expect({"nosuid", "nodev", "noexec"} <= set(e[3]), f"flags {e[3]}")
    expect("size=1024k" in e[2] and "mode=700" in e[2], f"data options {e[2]}")
    st = d["results"]["stat=/mnt/tmp"]
    expect(st.get("mode") == 0o700, f"mode {st}")
    expect(d["results"]["write=/mnt/tmp/"]["result"] == "ok", "tmpfs not writable")


@check("a read-only bind mount shows the source and cannot be written", "config.md#mounts")
def bind_ro(ctx):
    _, d, _ = mounts_probe(ctx)
    expect(d["results"]["read=/mnt/bind/hello"].get("data") == HELLO, f"{d['results']['read=/mnt/bind/hello']}")
    got = d["results"]["write=/mnt/bind/"]["result"]
    expect(got == "EROFS", f"write into the ro bind: {got}")
    expect("ro" in (mount_opts(d, "/mnt/bind") or []), f"/mnt/bind options {mount_opts(d, '/mnt/bind')}")


@check("mounts are made in the listed order", "config.md#mounts")
def mount_order(ctx):
    _, d, _ = mounts_probe(ctx)
    ids = {}
    for ln in d["mountinfo"]:
        f = ln.split()
        ids[f[4]] = (f[0], f[1])
    outer, inner = ids.get("/mnt/order"), ids.get("/mnt/order/inner")
    expect(outer and inner, f"missing mounts: outer={outer} inner={inner}")
    expect(inner[1] == outer[0], f"/mnt/order/inner is not mounted on /mnt/order (ids {outer} {inner})")


@check("root.readonly makes the root filesystem read-only", "config.md#root")
def root_readonly(ctx):
    c = ctx.config()
    c["root"]["readonly"] = True
    c["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]})
    _, d, _ = ctx.run_probe(c, "write=/", "write=/tmp/", name="rootro")
    expect(d["results"]["write=/"]["result"] == "EROFS", f"write to /: {d['results']['write=/']}")
    expect(d["results"]["write=/tmp/"]["result"] == "ok", f"write to a tmpfs on the ro root: "
           f"{d['results']['write=/tmp/']}")
    expect("ro" in (mount_opts(d, "/") or []), f"/ options {mount_opts(d, '/')}")


@check("root.readonly false leaves the root filesystem writable", "config.md#root")
def root_rw(ctx):
    _, d, _ = ctx.run_probe(ctx.config(), "write=/", name="rootrw")
    expect(d["results"]["write=/"]["result"] == "ok", f"write to /: {d['results']['write=/']}")
