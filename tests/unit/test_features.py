"""pyrunc features: runc's shape, honest values read from the implementing tables, and a light import."""

import json
import os
import platform
import re
import shutil
import subprocess
import sys

import pytest

from pyrunc import OCI_VERSION
from pyrunc.cli import features as feat
from pyrunc.linux import NAMESPACES
from pyrunc.process.rootfs import _FLAGS, _MOUNT_ATTR, IDMAP_OPTIONS, PROPAGATION, parse_options
from pyrunc.security import seccomp
from pyrunc.security.caps import CAPABILITIES
from tests.conftest import require

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEAVY = ("jsonschema", "click", "pyroute2", "pyrunc._helper", "pyrunc._seccomp", "_cffi_backend", "cffi", "ctypes")

# runc 1.2's order (types/features/features.go); runc 1.1.5 prints the same minus the keys 1.2 added
TOP_KEYS = ["ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux", "annotations"]
LINUX_KEYS = ["namespaces", "capabilities", "cgroup", "seccomp", "apparmor", "selinux", "intelRdt", "mountExtensions"]
RUNC_12_ADDITIONS = {"linux.cgroup.rdma", "linux.seccomp.knownFlags", "linux.seccomp.supportedFlags", "linux.intelRdt",
                     "linux.intelRdt.enabled", "linux.mountExtensions", "linux.mountExtensions.idmap",
                     "linux.mountExtensions.idmap.enabled"}


def _run_cli(*args):
    """pyrunc features in a fresh interpreter; stdout, and the heavy modules it imported on stderr."""
    code = ("import sys\n"
            "from pyrunc.cli import main\n"
            "try:\n"
            f"    main.main({list(args)!r})\n"
            "except SystemExit as e:\n"
            "    rc = e.code\n"
            f"sys.stderr.write('\\nMODULES=' + repr(sorted(m for m in sys.modules if m in {HEAVY!r})) + '\\n')\n"
            "sys.exit(rc)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)


def _keys(d, prefix=""):
    out = []
    for k, v in d.items():
        out.append(prefix + k)
        if isinstance(v, dict) and k != "annotations":
            out += _keys(v, prefix + k + ".")
    return out


def test_cli_output_and_import_budget():
    p = _run_cli("features")
    assert p.returncode == 0, p.stderr
    assert "MODULES=[]" in p.stderr, p.stderr
    assert p.stdout.startswith('{\n    "ociVersionMin": "1.0.0",\n') and p.stdout.endswith("\n}\n")
    doc = json.loads(p.stdout)
    assert list(doc) == TOP_KEYS
    assert list(doc["linux"]) == LINUX_KEYS
    assert list(doc["linux"]["cgroup"]) == ["v1", "v2", "systemd", "systemdUser", "rdma"]
    assert list(doc["linux"]["seccomp"]) == ["enabled", "actions", "operators", "archs", "knownFlags",
                                             "supportedFlags"]
    assert doc == feat.features()


def test_cli_refuses_arguments():
    assert _run_cli("features", "extra").returncode != 0


def test_values_are_pyruncs_own():
    """features is built from the tables pyrunc acts on (not a copy of runc's answer); the tests below check
    those tables against the kernel, its headers and libseccomp."""
    d = feat.features()
    assert d["ociVersionMin"] == "1.0.0" and d["ociVersionMax"] == OCI_VERSION
    assert d["hooks"] == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
    assert d["mountOptions"] == sorted(set(_FLAGS) | set(PROPAGATION) | set(_MOUNT_ATTR) | set(IDMAP_OPTIONS))
    assert "tmpcopyup" not in d["mountOptions"]  # parse_options ignores it: not implemented
    assert "rro" in d["mountOptions"]  # CRI turns on recursive read-only mounts from this
    lx = d["linux"]
    assert lx["namespaces"] == sorted(NAMESPACES) and len(lx["namespaces"]) == 8
    assert lx["capabilities"] == list(CAPABILITIES)
    assert lx["cgroup"] == {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": True}
    sc = lx["seccomp"]
    assert sc["enabled"] is True
    assert sc["actions"] == sorted(seccomp.ACTIONS) and sc["operators"] == sorted(seccomp.OPERATORS)
    assert sc["archs"] == sorted(seccomp.ARCHES)
    assert sc["knownFlags"] == list(seccomp.FLAGS)
    assert set(sc["supportedFlags"]) <= set(sc["knownFlags"])
    assert lx["apparmor"] == {"enabled": False} and lx["selinux"] == {"enabled": False}
    assert lx["intelRdt"] == {"enabled": False}
    assert lx["mountExtensions"] == {"idmap": {"enabled": True}}  # containerd allows id-mapped mounts from this
    assert d["annotations"]["io.github.pyrunc.version"]
    assert all(isinstance(v, str) for v in d["annotations"].values())


def test_every_advertised_mount_option_is_parsed_not_passed_as_data():
    for opt in feat.features()["mountOptions"]:
        assert parse_options([opt])[2] == "", opt


# --- advertised values checked against what lies outside pyrunc: the kernel, its UAPI headers, libseccomp ----------

def _header_defines(path, prefix):
    require(os.path.exists(path), f"{path} is missing (linux-libc-dev)")
    with open(path) as f:
        text = f.read()
    out = {}
    for name, val in re.findall(rf"^#define\s+({prefix}\w+)\s+(\(1<<\d+\)|0x[0-9a-fA-F]+|\d+)", text, re.M):
        out[name] = eval(val)  # a literal or (1<<n), matched above
    return out


def test_advertised_namespaces_exist_in_the_running_kernel():
    kernel = set(os.listdir("/proc/self/ns"))
    proc_name = {"mount": "mnt", "network": "net"}
    for ns in feat.features()["linux"]["namespaces"]:
        assert proc_name.get(ns, ns) in kernel, f"{ns}: no /proc/self/ns entry in this kernel"
        assert NAMESPACES[ns][1] == proc_name.get(ns, ns)


def test_advertised_capabilities_are_the_kernels():
    header = _header_defines("/usr/include/linux/capability.h", "CAP_")
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    caps = feat.features()["linux"]["capabilities"]
    for name in caps:
        assert name in header, f"{name} is not a capability of <linux/capability.h>"
        assert CAPABILITIES[name] == header[name], name
        assert header[name] <= last, f"{name} ({header[name]}) is beyond this kernel's cap_last_cap {last}"
    # and none the header and kernel both know is missing (runc lists every capability it knows)
    known = {n for n, v in header.items() if v <= last and n not in ("CAP_LAST_CAP",) and not n.startswith("CAP_TO")}
    assert known - set(caps) == set(), known - set(caps)


def test_advertised_mount_options_use_the_kernels_flag_values():
    """Each advertised option sets or clears the bits <linux/mount.h> defines for it (MS_* for mount(2),
    MOUNT_ATTR_* for the recursive r* options through mount_setattr(2))."""
    ms = _header_defines("/usr/include/linux/mount.h", "MS_")
    attr = _header_defines("/usr/include/linux/mount.h", "MOUNT_ATTR_")
    special = {"ro": "MS_RDONLY", "rw": "MS_RDONLY", "sync": "MS_SYNCHRONOUS", "async": "MS_SYNCHRONOUS",
               "silent": "MS_SILENT", "loud": "MS_SILENT", "mand": "MS_MANDLOCK", "nomand": "MS_MANDLOCK",
               "acl": "MS_POSIXACL", "noacl": "MS_POSIXACL", "iversion": "MS_I_VERSION", "noiversion": "MS_I_VERSION"}
    for opt in feat.features()["mountOptions"]:
        if opt in ("defaults",):
            assert _FLAGS[opt] == (False, 0)
        elif opt == "rbind":
            assert _FLAGS[opt] == (False, ms["MS_BIND"] | ms["MS_REC"])
        elif opt in _FLAGS:
            clear, flag = _FLAGS[opt]
            # a clearing option names the flag it clears: "dev" clears MS_NODEV, "nolazytime" clears MS_LAZYTIME
            name = special.get(opt) or ("MS_" + (opt[2:] if opt.startswith("no") else "NO" + opt).upper()
                                        if clear else "MS_" + opt.upper())
            assert flag == ms[name], (opt, name)
        elif opt in PROPAGATION:
            rec = opt.startswith("r") and opt[1:] in PROPAGATION
            assert PROPAGATION[opt] == ms["MS_" + (opt[1:] if rec else opt).upper()] | (ms["MS_REC"] if rec else 0), opt
        elif opt in _MOUNT_ATTR:
            word = opt[1:]
            atime = {"noatime": "NOATIME", "strictatime": "STRICTATIME", "relatime": "RELATIME",
                     "atime": "RELATIME", "norelatime": "NOATIME", "nostrictatime": "RELATIME"}
            set_bits, clear_bits = _MOUNT_ATTR[opt]
            if word in atime:  # one of the three atime modes: clear the whole field, set the mode
                assert set_bits == attr["MOUNT_ATTR_" + atime[word]] and clear_bits == attr["MOUNT_ATTR__ATIME"], opt
            else:
                sets = not (word in ("rw", "suid", "dev", "exec", "symfollow", "diratime"))
                name = "MOUNT_ATTR_" + {"ro": "RDONLY", "rw": "RDONLY"}.get(word, word.upper() if sets
                                                                           else "NO" + word.upper())
                assert (set_bits, clear_bits) == ((attr[name], 0) if sets else (0, attr[name])), (opt, name)
        else:
            assert opt in IDMAP_OPTIONS, opt


LIBSECCOMP_CDEF = """
typedef void *scmp_filter_ctx;
uint32_t seccomp_arch_resolve_name(const char *arch_name);
const struct scmp_version { unsigned int major; unsigned int minor; unsigned int micro; } *seccomp_version(void);
"""


def _libseccomp():
    """libseccomp itself, opened by soname (ABI mode): not through pyrunc's own binding."""
    from cffi import FFI

    ffi = FFI()
    ffi.cdef(LIBSECCOMP_CDEF)
    try:
        return ffi, ffi.dlopen("libseccomp.so.2")
    except OSError as e:
        require(False, f"libseccomp.so.2 cannot be opened: {e}")


def test_advertised_seccomp_archs_resolve_in_libseccomp():
    from pyrunc._seccomp import lib as ours

    _, libseccomp = _libseccomp()
    for arch in feat.features()["linux"]["seccomp"]["archs"]:
        token = libseccomp.seccomp_arch_resolve_name(arch[len("SCMP_ARCH_"):].lower().encode())
        assert token != 0, f"libseccomp does not know {arch}"
        assert getattr(ours, arch) == token, arch  # the token pyrunc adds to its filters is libseccomp's


def test_advertised_seccomp_actions_are_the_kernels():
    with open("/proc/sys/kernel/seccomp/actions_avail") as f:
        kernel = set(f.read().split())
    kernel_name = {"SCMP_ACT_KILL": "kill_thread", "SCMP_ACT_KILL_THREAD": "kill_thread",
                   "SCMP_ACT_KILL_PROCESS": "kill_process", "SCMP_ACT_TRAP": "trap", "SCMP_ACT_ERRNO": "errno",
                   "SCMP_ACT_TRACE": "trace", "SCMP_ACT_ALLOW": "allow", "SCMP_ACT_LOG": "log",
                   "SCMP_ACT_NOTIFY": "user_notif"}
    for action in feat.features()["linux"]["seccomp"]["actions"]:
        assert kernel_name[action] in kernel, f"{action}: this kernel offers only {sorted(kernel)}"


# A child Python loads a compiled program into the kernel (no_new_privs + seccomp(2), no root needed) and runs a
# probe under it; the exit status and output show what the kernel did.
LOADER = r"""
import ctypes, os, sys
bpf, flags = bytes.fromhex(sys.argv[1]), int(sys.argv[2])
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
buf = ctypes.create_string_buffer(bpf, len(bpf))
prog = Fprog(len(bpf) // 8, ctypes.addressof(buf))
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
rc = libc.syscall(317, 1, ctypes.c_ulong(flags), ctypes.byref(prog))  # seccomp(SECCOMP_SET_MODE_FILTER)
if rc < 0:
    print("load-failed", os.strerror(ctypes.get_errno()), flush=True)
    sys.exit(3)
print("loaded", "listener" if flags & 8 and rc > 0 else "", flush=True)
exec(sys.argv[3])
"""


def _under_filter(spec, probe):
    prog = seccomp.compile(spec)  # pyrunc's translation, through libseccomp, into the kernel
    return subprocess.run([sys.executable, "-c", LOADER, prog.bpf.hex(), str(prog.flags), probe],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, PARENT=str(os.getpid())))


@pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers below are x86_64's")
@pytest.mark.parametrize("action, errno_ret, expect", [
    ("SCMP_ACT_KILL", None, -31), ("SCMP_ACT_KILL_THREAD", None, -31), ("SCMP_ACT_KILL_PROCESS", None, -31),
    ("SCMP_ACT_TRAP", None, -31), ("SCMP_ACT_ERRNO", 42, "ret -1 errno 42"),
    ("SCMP_ACT_TRACE", None, "ret -1 errno 38"),  # no tracer attached: the kernel fails the call with ENOSYS
    ("SCMP_ACT_LOG", None, "ret ppid"), ("SCMP_ACT_ALLOW", None, "ret ppid"), ("SCMP_ACT_NOTIFY", None, "listener"),
])
def test_every_advertised_seccomp_action_works_in_the_kernel(action, errno_ret, expect):
    assert action in feat.features()["linux"]["seccomp"]["actions"]
    rule = {"names": ["getppid"], "action": action}
    if errno_ret is not None:
        rule["errnoRet"] = errno_ret
    spec = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [rule]}
    # (a NOTIFY'd call would wait for a supervisor: only the load, with its listener fd, is checked)
    probe = "pass" if action == "SCMP_ACT_NOTIFY" else (  # the raw syscall: glibc's getppid() checks no error
        "r = libc.syscall(110)\n"
        "print('ret', 'ppid' if r == int(os.environ['PARENT']) else f'{r} errno {ctypes.get_errno()}', flush=True)")
    p = _under_filter(spec, probe)
    assert p.stdout.startswith("loaded"), (p.stdout, p.stderr)
    if isinstance(expect, int):
        assert p.returncode == expect, (p.returncode, p.stdout, p.stderr)  # SIGSYS
    else:
        assert p.returncode == 0 and expect in p.stdout, (p.returncode, p.stdout, p.stderr)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers below are x86_64's")
@pytest.mark.parametrize("op, value, value_two, hit, miss", [
    ("SCMP_CMP_NE", 0o22, 0, 0o27, 0o22), ("SCMP_CMP_LT", 0o22, 0, 0o21, 0o22), ("SCMP_CMP_LE", 0o22, 0, 0o22, 0o23),
    ("SCMP_CMP_EQ", 0o22, 0, 0o22, 0o23), ("SCMP_CMP_GE", 0o22, 0, 0o22, 0o21), ("SCMP_CMP_GT", 0o22, 0, 0o23, 0o22),
    ("SCMP_CMP_MASKED_EQ", 0o2, 0o2, 0o22, 0o20),
])
def test_every_advertised_seccomp_operator_compares_in_the_kernel(op, value, value_two, hit, miss):
    """umask(arg) fails with EPERM exactly when the rule's comparison holds for arg."""
    assert op in feat.features()["linux"]["seccomp"]["operators"]
    arg = {"index": 0, "op": op, "value": value}
    if value_two:
        arg["valueTwo"] = value_two
    spec = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["umask"], "action": "SCMP_ACT_ERRNO", "args": [arg]}]}
    probe = ("for m in (%d, %d):\n"  # the raw syscall: glibc's umask() cannot report an error
             "    r = libc.syscall(95, m)\n"
             "    print(m, 'EPERM' if r == -1 and ctypes.get_errno() == 1 else 'allowed')\n" % (hit, miss))
    p = _under_filter(spec, probe)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert p.stdout.split("\n")[1:3] == [f"{hit} EPERM", f"{miss} allowed"], p.stdout


@pytest.mark.parametrize("release, expected", [
    ("6.18.44-fc-v669", list(seccomp.FLAGS)),
    ("5.10.0-21-amd64", ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]),
    ("4.14.0", ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"]),
    ("3.10.0-1160.el7.x86_64", []),
    ("garbage", []),
])
def test_supported_flags_follow_the_kernel(release, expected):
    assert feat.supported_seccomp_flags(list(seccomp.FLAGS), release) == expected


def test_same_shape_as_runc():
    require(shutil.which("runc"), "runc not installed")
    ref = json.loads(subprocess.run(["runc", "features"], capture_output=True, text=True, check=True).stdout)
    ours = feat.features()
    rk, ok = _keys(ref), _keys(ours)
    assert set(rk) <= set(ok), set(rk) - set(ok)
    assert set(ok) - set(rk) <= RUNC_12_ADDITIONS
    assert [k for k in ok if k in rk] == rk  # same relative order
    assert ours["hooks"] == ref["hooks"]
    assert ours["linux"]["capabilities"][:len(ref["linux"]["capabilities"])] == ref["linux"]["capabilities"]
    assert ours["linux"]["seccomp"]["operators"] == ref["linux"]["seccomp"]["operators"]
    # tmpcopyup is the one runc option pyrunc does not implement, so it is not advertised
    assert set(ref["mountOptions"]) - set(ours["mountOptions"]) <= {"tmpcopyup"}
