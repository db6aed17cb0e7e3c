"""config-linux.md: namespaces, hostname/domainname, sysctl, masked and readonly paths, propagation."""

import os

from . import check
from .harness import expect
from .lifecycle import SLEEP, Container

PROBE_NS = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt",
            "cgroup": "cgroup", "user": "user"}
DEFAULT_DEVICES = {"/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7),
                   "/dev/random": (1, 8), "/dev/urandom": (1, 9), "/dev/tty": (5, 0)}
DEV_SYMLINKS = {"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0",
                "/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2"}
EXTRA_DEVICE = {"path": "/dev/conf-null", "type": "c", "major": 1, "minor": 3,
                "fileMode": 0o640, "uid": 0, "gid": 5}
SYSCTL = {"net.ipv4.ip_forward": "1", "kernel.msgmax": "12345"}

DEFAULT_PROBE_ARGS = (
    [f"stat={p}" for p in DEFAULT_DEVICES] + [f"stat={p}" for p in DEV_SYMLINKS]
    + ["stat=/dev/ptmx", f"stat={EXTRA_DEVICE['path']}", f"read={EXTRA_DEVICE['path']}"]
    + ["read=/proc/sys/" + k.replace(".", "/") for k in SYSCTL]
    + ["read=/proc/keys", "read=/proc/timer_list",
       "write=/proc/sys/kernel/domainname", "write=/sys/firmware/"]
)


def default_config(ctx):
    c = ctx.config()
    c["hostname"] = "conformance"
    c["domainname"] = "conf.example.org"
    c["linux"]["sysctl"] = dict(SYSCTL)
    c["linux"]["devices"] = [dict(EXTRA_DEVICE)]
    c["linux"]["resources"]["devices"].append(
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
    return c


def _default(ctx):
    from .process import default_probe
    return default_probe(ctx)


def _host_ns(name, pid="self"):
    return os.stat(f"/proc/{pid}/ns/{name}").st_ino


@check("a new pid namespace makes the process pid 1", "config-linux.md#namespaces")
def pid_one(ctx):
    _, d, _ = _default(ctx)
    expect(d["pid"] == 1, f"pid {d['pid']}")


@check("each listed namespace is new (differs from the runtime's)", "config-linux.md#namespaces")
def ns_new(ctx):
    _, d, _ = _default(ctx)
    same = [t for t in ("pid", "network", "ipc", "uts", "mount")
            if d["namespaces"].get(PROBE_NS[t]) == _host_ns(PROBE_NS[t])]
    expect(not same, f"not new: {same}")


@check("namespaces not listed are inherited from the runtime", "config-linux.md#namespaces")
def ns_inherited(ctx):
    _, d, _ = _default(ctx)
    differ = [t for t in ("user", "cgroup") if d["namespaces"].get(t) != _host_ns(t)]
    expect(not differ, f"not inherited: {differ}")


@check("a namespace given by path is joined", "config-linux.md#namespaces")
def ns_join(ctx):
    with Container(ctx, SLEEP, name="target") as target:
        shared = [t for t in ("network", "ipc", "uts")
                  if _host_ns(PROBE_NS[t], target.pid) == _host_ns(PROBE_NS[t])]
        expect(not shared, f"the target container did not get new namespaces: {shared}")
        c = ctx.config()
        del c["hostname"]
        c["linux"]["namespaces"] = [{"type": "pid"}, {"type": "mount"}] + [
            {"type": t, "path": f"/proc/{target.pid}/ns/{PROBE_NS[t]}"} for t in ("network", "ipc", "uts")]
        _, d, _ = ctx.run_probe(c, name="joiner")
        bad = {t: (d["namespaces"].get(PROBE_NS[t]), _host_ns(PROBE_NS[t], target.pid))
               for t in ("network", "ipc", "uts")
               if d["namespaces"].get(PROBE_NS[t]) != _host_ns(PROBE_NS[t], target.pid)}
        expect(not bad, f"not joined (got, want): {bad}")


@check("hostname is set in the new UTS namespace", "config.md#hostname")
def hostname(ctx):
    _, d, _ = _default(ctx)
    expect(d["hostname"] == "conformance", f"hostname {d['hostname']!r}")


@check("domainname is set in the new UTS namespace", "config.md#domainname",
       todo="runc 1.1.5 ignores the domainname field (the UTS namespace keeps \"(none)\")")
def domainname(ctx):
    _, d, _ = _default(ctx)
    expect(d["domainname"] == "conf.example.org", f"domainname {d['domainname']!r}")


@check("linux.sysctl values are set in the container", "config-linux.md#sysctl")
def sysctl(ctx):
    _, d, _ = _default(ctx)
    for k, v in SYSCTL.items():
        got = d["results"]["read=/proc/sys/" + k.replace(".", "/")]
        expect(got.get("data", "").strip() == v, f"{k}: {got}")


@check("maskedPaths: a masked file reads as empty", "config-linux.md#masked-paths")
def masked_file(ctx):
    _, d, _ = _default(ctx)
    for p in ("/proc/keys", "/proc/timer_list"):
        got = d["results"][f"read={p}"]
        expect(got.get("data") == "", f"{p} is readable: {str(got)[:120]}")


@check("maskedPaths: a masked directory is an empty read-only mount", "config-linux.md#masked-paths")
def masked_dir(ctx):
    _, d, _ = _default(ctx)
    got = d["results"]["write=/sys/firmware/"]["result"]
    expect(got in ("EROFS", "EACCES", "EPERM"), f"/sys/firmware is writable: {got}")
    mps = [ln.split()[4] for ln in d["mountinfo"]]
    expect("/sys/firmware" in mps, "/sys/firmware is not covered by a mount")


@check("readonlyPaths: the paths cannot be written", "config-linux.md#readonly-paths")
def readonly_paths(ctx):
    _, d, _ = _default(ctx)
    got = d["results"]["write=/proc/sys/kernel/domainname"]["result"]
    expect(got == "EROFS", f"write /proc/sys/kernel/domainname: {got}")
    for mp in ("/proc/sys", "/proc/bus"):
        opts = mount_opts(d, mp)
        expect(opts is not None and "ro" in opts, f"{mp} mount options {opts}")


def mount_opts(d, mountpoint):
    """Per-mount options of the topmost mount at mountpoint in the probe's mountinfo."""
    found = None
    for ln in d["mountinfo"]:
        f = ln.split()
        if f[4] == mountpoint:
            found = f[5].split(",")
    return found


def mount_entry(d, mountpoint):
    """(fstype, source, super options, per-mount options, major:minor) of the topmost mount."""
    found = None
    for ln in d["mountinfo"]:
        f = ln.split()
        if f[4] == mountpoint:
            i = f.index("-")
            found = (f[i + 1], f[i + 2], f[i + 3].split(","), f[5].split(","), f[2])
    return found


def _root_optional_fields(d):
    for ln in d["mountinfo"]:
        f = ln.split()
        if f[4] == "/":
            return f[6:f.index("-")]
    return None


def _propagation_check(mode, want, todo=None):
    @check(f"linux.rootfsPropagation {mode} applies to the root mount",
           "config-linux.md#rootfs-mount-propagation", todo=todo)
    def f(ctx):
        c = ctx.config()
        c["linux"]["rootfsPropagation"] = mode
        _, d, _ = ctx.run_probe(c, name=f"prop-{mode}")
        opt = _root_optional_fields(d)
        expect(opt is not None, "no / in mountinfo")
        tags = {o.split(":")[0] for o in opt}
        expect(tags == want, f"/ optional fields {opt}, want tags {sorted(want) or 'none'}")
    return f


_propagation_check("private", set())
# runc makes the rootfs's parent mount private before bind-mounting the rootfs onto itself
# (pivot_root needs a non-shared parent), so the new / is never shared.
_propagation_check("shared", {"shared"},
                   todo="runc 1.1.5 leaves / without a shared:N peer group (rootfs bind made from a private parent)")


@check("without linux.seccomp no seccomp filter is installed", "config-linux.md#seccomp")
def seccomp_none(ctx):
    _, d, _ = _default(ctx)
    expect(d["seccomp"] == "0", f"Seccomp: {d['seccomp']}")


@check("linux.seccomp installs the filter: a listed syscall fails with errnoRet", "config-linux.md#seccomp")
def seccomp_filter(ctx):
    c = ctx.config()
    c["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    _, d, _ = ctx.run_probe(c, name="seccomp")
    expect(d["seccomp"] == "2", f"Seccomp: {d['seccomp']} (want 2, filter mode)")
    expect(d["cwd"] is None, f"getcwd was not blocked: {d['cwd']!r}")


@check("a new cgroup namespace shows the container's cgroups as /", "config-linux.md#namespaces")
def cgroup_ns(ctx):
    c = ctx.config()
    c["linux"]["namespaces"].append({"type": "cgroup"})
    c["linux"]["cgroupsPath"] = ctx.cgroup_path("cgns")
    _, d, _ = ctx.run_probe(c, name="cgns")
    expect(d["namespaces"].get("cgroup") != _host_ns("cgroup"), "cgroup namespace not new")
    mem = [ln for ln in d["cgroup"] if ":memory:" in ln]
    expect(mem == [ln.split(":")[0] + ":memory:/" for ln in mem] and mem, f"memory line {mem}")
