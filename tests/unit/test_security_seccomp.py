"""pyrunc.security.seccomp: real profiles compiled through libseccomp, run on a small cBPF interpreter.

The interpreter below runs the exported program on a synthetic struct seccomp_data, so the behaviour of a
profile (which syscall gets which action, the -ENOSYS stub, argument rules) is tested without root and without
loading anything into the kernel.  tests/integration/test_seccomp_load.py loads programs for real.
"""

import json
import platform
import struct
import subprocess
import sys

import pytest

from pyrunc.errors import ConfigError
from pyrunc.security import enosys
from pyrunc.security import seccomp as sc
from tests.conftest import require

try:
    import pyrunc._seccomp  # noqa: F401
except ImportError as exc:  # pragma: no cover
    require(False, f"pyrunc._seccomp is not built (make install): {exc}")

x86_64_only = pytest.mark.skipif(platform.machine() != "x86_64", reason="syscall numbers below are x86_64's")

AUDIT_X86_64, AUDIT_I386 = 0xC000003E, 0x40000003
ALLOW, KILL_PROCESS, KILL_THREAD, TRAP, LOG, NOTIFY = 0x7FFF0000, 0x80000000, 0, 0x30000, 0x7FFC0000, 0x7FC00000
NR = {"read": 0, "write": 1, "mkdir": 83, "getpid": 39, "personality": 135, "clone": 56, "exit_group": 231,
      "socket": 41, "mkdirat": 258, "ptrace": 101}


def ERRNO(e):
    return 0x50000 | e


def run(program, nr, arch=AUDIT_X86_64, args=(0, 0, 0, 0, 0, 0)):
    """Interpret a sock_filter program on seccomp_data {nr, arch, ip=0, args}; return the 32-bit action."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *args)
    insns = list(struct.iter_unpack("=HBBI", program.bpf if hasattr(program, "bpf") else program))
    a, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            (a,) = struct.unpack_from("=I", data, k)
        elif code == 0x54:  # and #k
            a &= k
        elif code == 0x05:  # ja
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45):  # jeq jgt jge jset
            hit = {0x15: a == k, 0x25: a > k, 0x35: a >= k, 0x45: a & k != 0}[code]
            pc += jt if hit else jf
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"opcode {code:#x} not interpreted")


# a docker-like profile, small: allow-list with ERRNO default, three x86 arches, argument rules
DOCKERISH = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 1,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": ["read", "write", "exit_group", "getpid", "mkdirat", "not_a_syscall_xyz"],
         "action": "SCMP_ACT_ALLOW"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},  # = the default: skipped
    ],
}


def test_import_loads_nothing():
    code = "import sys, pyrunc.security.seccomp; print('pyrunc._seccomp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("spec", [None, {}, {"syscalls": []}, {"defaultAction": ""}])
def test_off(spec):
    assert sc.compile(spec) is None


def test_dockerish_compiles():
    p = sc.compile(json.loads(json.dumps(DOCKERISH)))
    assert p.length > 10 and len(p.bpf) == 8 * p.length
    assert p.flags == 0 and p.needs_listener is False
    assert p.ignored == ("not_a_syscall_xyz",)


@x86_64_only
def test_dockerish_behaviour():
    p = sc.compile(DOCKERISH)
    assert run(p, NR["read"]) == ALLOW
    assert run(p, NR["getpid"]) == ALLOW
    assert run(p, NR["mkdir"]) == ERRNO(13)
    assert run(p, NR["ptrace"]) == ERRNO(1)  # default action with defaultErrnoRet
    assert run(p, NR["socket"]) == ERRNO(1)
    # personality: two rules on the same index are ORed
    assert run(p, NR["personality"], args=(0,) * 6) == ALLOW
    assert run(p, NR["personality"], args=(8, 0, 0, 0, 0, 0)) == ALLOW
    assert run(p, NR["personality"], args=(4, 0, 0, 0, 0, 0)) == ERRNO(1)
    # clone: masked equality on the namespace flags
    assert run(p, NR["clone"], args=(0x11, 0, 0, 0, 0, 0)) == ALLOW
    assert run(p, NR["clone"], args=(0x10000000, 0, 0, 0, 0, 0)) == ERRNO(1)  # CLONE_NEWUSER
    # i386: exit_group is 252 there
    assert run(p, 252, arch=AUDIT_I386) == ALLOW
    assert run(p, 39, arch=AUDIT_I386) == ERRNO(13)  # i386 39 is mkdir


@x86_64_only
def test_enosys_stub_for_syscalls_newer_than_the_profile():
    p = sc.compile(DOCKERISH)
    # mkdirat (258) is the highest x86_64 number named: above it -> ENOSYS, below it -> the default
    assert run(p, 259) == ERRNO(38)
    assert run(p, 435) == ERRNO(38)  # clone3
    assert run(p, 257) == ERRNO(1)
    assert run(p, 0x40000000 | 259) == ERRNO(38)  # x32 is checked against x32 numbers
    assert run(p, 1000, arch=AUDIT_I386) == ERRNO(38)
    assert run(p, 0, arch=0xC00000B7) == KILL_THREAD  # an arch not in the filter: libseccomp's bad-arch action


@x86_64_only
def test_no_stub_without_architectures_or_with_permissive_default():
    no_arch = dict(DOCKERISH, architectures=[])
    assert run(sc.compile(no_arch), 435) == ERRNO(1)
    allow = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
             "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    p = sc.compile(allow)
    assert run(p, 435) == ALLOW and run(p, NR["mkdir"]) == ERRNO(1)  # errnoRet defaults to EPERM
    enosys_default = dict(DOCKERISH, defaultErrnoRet=38)
    assert run(sc.compile(enosys_default), 435) == ERRNO(38)


def test_stub_alone():
    stub = enosys.stub({AUDIT_X86_64: {"x86_64": 100}})
    filler = struct.pack("=HBBI", 0x06, 0, 0, ALLOW)
    assert run(stub + filler, 101) == ERRNO(38)
    assert run(stub + filler, 100) == ALLOW
    assert run(stub + filler, 0x40000000 | 500) == ALLOW  # x32 not listed: left to the filter
    assert run(stub + filler, 500, arch=AUDIT_I386) == ALLOW
    s390 = enosys.stub({enosys.AUDIT_ARCH_S390X: {"native": 300}})
    assert run(s390 + filler, 0, arch=enosys.AUDIT_ARCH_S390X) == ERRNO(38)
    assert run(s390 + filler, 5, arch=enosys.AUDIT_ARCH_S390X) == ALLOW
    assert enosys.stub({}) == b""


@x86_64_only
@pytest.mark.parametrize("action,want", [
    ("SCMP_ACT_KILL", KILL_THREAD), ("SCMP_ACT_KILL_THREAD", KILL_THREAD), ("SCMP_ACT_KILL_PROCESS", KILL_PROCESS),
    ("SCMP_ACT_TRAP", TRAP), ("SCMP_ACT_LOG", LOG), ("SCMP_ACT_ERRNO", ERRNO(1)), ("SCMP_ACT_TRACE", 0x7FF00001),
])
def test_actions(action, want):
    p = sc.compile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": action}]})
    assert run(p, NR["getpid"]) == want
    assert run(p, NR["read"]) == ALLOW


@x86_64_only
def test_errno_ret_and_trace_value():
    p = sc.compile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22},
        {"names": ["mkdir"], "action": "SCMP_ACT_TRACE", "errnoRet": 7}]})
    assert run(p, NR["getpid"]) == ERRNO(22)
    assert run(p, NR["mkdir"]) == 0x7FF00007


@x86_64_only
def test_args_on_different_indexes_are_anded():
    p = sc.compile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
                             {"index": 2, "value": 9, "op": "SCMP_CMP_NE"}]}]})
    assert run(p, NR["socket"], args=(16, 3, 0, 0, 0, 0)) == ERRNO(1)
    assert run(p, NR["socket"], args=(16, 3, 9, 0, 0, 0)) == ALLOW
    assert run(p, NR["socket"], args=(2, 3, 0, 0, 0, 0)) == ALLOW


@x86_64_only
def test_args_on_one_index_become_separate_rules():
    # runc: several args on the same index -> one rule per arg, so they are ORed
    p = sc.compile({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                             {"index": 0, "value": 100, "op": "SCMP_CMP_GT"}]}]})
    assert run(p, NR["personality"], args=(1, 0, 0, 0, 0, 0)) == ERRNO(1)
    assert run(p, NR["personality"], args=(200, 0, 0, 0, 0, 0)) == ERRNO(1)
    assert run(p, NR["personality"], args=(50, 0, 0, 0, 0, 0)) == ALLOW


@x86_64_only
@pytest.mark.parametrize("op,value,hits,misses", [
    ("SCMP_CMP_NE", 5, [4, 6], [5]), ("SCMP_CMP_LT", 5, [4], [5, 6]), ("SCMP_CMP_LE", 5, [4, 5], [6]),
    ("SCMP_CMP_EQ", 5, [5], [4, 6]), ("SCMP_CMP_GE", 5, [5, 6], [4]), ("SCMP_CMP_GT", 5, [6], [4, 5]),
    ("SCMP_CMP_GT", 2**40, [2**40 + 1], [2**40, 3]),
])
def test_operators(op, value, hits, misses):
    p = sc.compile({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": value, "op": op}]}]})
    for v in hits:
        assert run(p, NR["personality"], args=(v, 0, 0, 0, 0, 0)) == ERRNO(1), v
    for v in misses:
        assert run(p, NR["personality"], args=(v, 0, 0, 0, 0, 0)) == ALLOW, v


def test_flags():
    base = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    p = sc.compile(dict(base, flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                     "SECCOMP_FILTER_FLAG_TSYNC"]))
    assert p.flags == sc.SECCOMP_FILTER_FLAG_LOG | sc.SECCOMP_FILTER_FLAG_SPEC_ALLOW  # TSYNC: no-op, as in runc
    p = sc.compile(dict(base, flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]))
    assert p.flags == 0  # only meaningful (and only accepted by the kernel) with a listener
    with pytest.raises(ConfigError, match=r'^linux\.seccomp\.flags\.1: unsupported seccomp flag "SECCOMP_FOO"$'):
        sc.compile(dict(base, flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FOO"]))


@x86_64_only
def test_notify():
    p = sc.compile({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                    "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]})
    assert p.needs_listener is True
    assert p.flags == sc.SECCOMP_FILTER_FLAG_NEW_LISTENER | sc.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
    assert run(p, NR["mkdir"]) == NOTIFY
    with pytest.raises(ConfigError, match="SCMP_ACT_NOTIFY cannot be used as default action"):
        sc.compile({"defaultAction": "SCMP_ACT_NOTIFY", "syscalls": []})
    with pytest.raises(ConfigError, match=r"^linux\.seccomp\.syscalls\.0\.names\.1: SCMP_ACT_NOTIFY cannot be used "
                                          r"for the write syscall$"):
        sc.compile({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read", "write"],
                                                                     "action": "SCMP_ACT_NOTIFY"}]})


@pytest.mark.parametrize("spec,message", [
    ({"syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]},
     r'^linux\.seccomp\.defaultAction: unknown seccomp action ""$'),
    ({"defaultAction": "SCMP_ACT_NOPE"}, r'^linux\.seccomp\.defaultAction: unknown seccomp action "SCMP_ACT_NOPE"$'),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"], "action": "SCMP_ACT_ALLOW"},
                                                      {"names": ["mkdir"], "action": "SCMP_ACT_FOO"}]},
     r'^linux\.seccomp\.syscalls\.1\.action: unknown seccomp action "SCMP_ACT_FOO"$'),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                                       "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]}]},
     r'^linux\.seccomp\.syscalls\.0\.args\.0\.op: unknown seccomp operator "SCMP_CMP_FOO"$'),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                                       "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     r"^linux\.seccomp\.syscalls\.0\.args\.0\.index: syscalls only have up to 6 arguments \(6 given\)$"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_FOO"]},
     r'^linux\.seccomp\.architectures\.1: unknown seccomp architecture "SCMP_ARCH_FOO"$'),
    ({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1},
     r"^linux\.seccomp\.defaultErrnoRet: must be an unsigned 32-bit integer, got -1$"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                                       "errnoRet": "x"}]},
     r"^linux\.seccomp\.syscalls\.0\.errnoRet: must be an unsigned 32-bit integer"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", ""], "action": "SCMP_ACT_ERRNO"}]},
     r"^linux\.seccomp\.syscalls\.0\.names\.1: empty string is not a valid syscall$"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                                       "args": [{"index": 0, "value": 2**64, "op": "SCMP_CMP_EQ"}]}]},
     r"^linux\.seccomp\.syscalls\.0\.args\.0\.value: must be an unsigned 64-bit integer"),
])
def test_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        sc.compile(spec)


def test_every_arch_name_is_known_to_libseccomp():
    big_endian = {"SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
                  "SCMP_ARCH_S390", "SCMP_ARCH_S390X"}
    for i, arch in enumerate(sc.ARCHES):
        spec = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86", arch],
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
        if (sys.byteorder == "little") == (arch in big_endian):
            # libseccomp cannot mix byte orders in one filter (runc fails the same way)
            with pytest.raises(ConfigError, match=r"^linux\.seccomp\.architectures\.1: add .* out of domain$"):
                sc.compile(spec)
        else:
            assert sc.compile(spec).length > 0, arch


def test_unknown_syscalls_only_are_skipped():
    p = sc.compile({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["nope1", "nope2"], "action": "SCMP_ACT_ERRNO"}]})
    assert p.ignored == ("nope1", "nope2") and p.length > 0
