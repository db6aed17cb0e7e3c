"""linux.seccomp -> a loadable cBPF program (Program.bpf) plus the seccomp(2) flags pyrunc-init passes.

The translation is runc 1.1.5's (libcontainer/specconv SetupSeccomp, libcontainer/seccomp/seccomp_linux.go,
patchbpf), through libseccomp, whose program we export instead of loading: pyrunc-init loads it right before
execve.  What runc does and pyrunc therefore does:

* no defaultAction and no syscalls: seccomp is off (compile returns None);
* every name of a rule becomes its own rule; a rule whose action (with its errno) equals the default action is
  skipped; a name libseccomp cannot resolve for the native arch is skipped silently (runc logs it at debug
  level; verified: ["bogus_call", "mkdir", "mkdirat"] with ERRNO runs, and mkdir fails with EPERM).  The
  skipped names are in Program.ignored for the caller's debug log;
* args on one rule are ANDed, except when two args test the same index: then each arg becomes its own rule
  (ORed), runc's "old behaviour" kept for docker's profiles;
* SCMP_ACT_KILL is KILL_THREAD; ERRNO without errnoRet is EPERM; TRACE without errnoRet traces with EPERM;
  defaultErrnoRet applies to an ERRNO/TRACE default action; errno values are taken modulo 2**16;
* architectures are added to the filter besides the native one; the -ENOSYS stub (see enosys.py) is prepended;
* SCMP_ACT_NOTIFY may not be the default action nor be used on write (runc's rules, kept for compatibility),
  and sets SECCOMP_FILTER_FLAG_NEW_LISTENER in Program.flags.

Difference: runc 1.1.5 refuses any `flags` ("seccomp flags are not yet supported by runc").  pyrunc accepts
those later runc versions accept: SECCOMP_FILTER_FLAG_TSYNC (a no-op, as in runc: the stub is single-threaded),
SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW and SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (set only
with a listener; the kernel refuses it without one).  Anything else is a ConfigError.

Importing this module does no work; pyrunc._seccomp (libseccomp) is loaded inside compile().
"""

import errno as _errno
import os
from dataclasses import dataclass, field

from pyrunc.errors import ConfigError
from pyrunc.security import enosys

ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
           "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")
OPERATORS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
             "SCMP_CMP_MASKED_EQ")
# runc 1.1.5's list plus RISCV64 (later runc); the names are libseccomp's own macro names
ARCHES = ("SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
          "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
          "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
          "SCMP_ARCH_S390X", "SCMP_ARCH_RISCV64")

# <linux/seccomp.h>
SECCOMP_FILTER_FLAG_TSYNC = 1
SECCOMP_FILTER_FLAG_LOG = 2
SECCOMP_FILTER_FLAG_SPEC_ALLOW = 4
SECCOMP_FILTER_FLAG_NEW_LISTENER = 8
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 32
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": 0,
    "SECCOMP_FILTER_FLAG_LOG": SECCOMP_FILTER_FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": SECCOMP_FILTER_FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
}
BPF_MAXINSNS = 4096  # the kernel's limit, and the size of pyrunc-init's buffer
SYSCALL_MAX_ARGS = 6
_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class Program:
    """A compiled filter: `bpf` is a struct sock_filter array in host byte order (8 bytes per instruction)."""

    bpf: bytes
    flags: int
    needs_listener: bool
    ignored: tuple = field(default=())  # syscall names libseccomp does not know, skipped like runc

    @property
    def length(self):
        """Number of instructions (sock_fprog.len)."""
        return len(self.bpf) // 8


def _uint(value, path, bits=64):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise ConfigError(f"{path}: must be an unsigned {bits}-bit integer, got {value!r}")
    return value


def _action(name, errno_ret, path, errno_path):
    """(action name, errno or None) after validation; the numbers come from libseccomp later."""
    if name not in ACTIONS:
        raise ConfigError(f'{path}: unknown seccomp action "{name}"')
    if errno_ret is not None:
        errno_ret = _uint(errno_ret, errno_path, 32)
    return name, errno_ret


def _plan(seccomp, path):
    """Validate and flatten the spec into (default, arches, flags, [(name, action, [args], rule_path)])."""
    if not isinstance(seccomp, dict):
        raise ConfigError(f"{path}: must be an object")
    syscalls = seccomp.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise ConfigError(f"{path}.syscalls: must be an array")
    default = _action(seccomp.get("defaultAction", ""), seccomp.get("defaultErrnoRet"), f"{path}.defaultAction",
                      f"{path}.defaultErrnoRet")
    if default[0] == "SCMP_ACT_NOTIFY":
        raise ConfigError(f"{path}.defaultAction: SCMP_ACT_NOTIFY cannot be used as default action")
    arches = []
    for i, arch in enumerate(seccomp.get("architectures") or []):
        if arch not in ARCHES:
            raise ConfigError(f'{path}.architectures.{i}: unknown seccomp architecture "{arch}"')
        if arch not in [a for _, a in arches]:
            arches.append((i, arch))
    flags = 0
    for i, flag in enumerate(seccomp.get("flags") or []):
        if flag not in FLAGS:
            raise ConfigError(f'{path}.flags.{i}: unsupported seccomp flag "{flag}"')
        flags |= FLAGS[flag]
    rules = []
    for i, call in enumerate(syscalls):
        where = f"{path}.syscalls.{i}"
        if not isinstance(call, dict):
            raise ConfigError(f"{where}: must be an object")
        action = _action(call.get("action", ""), call.get("errnoRet"), f"{where}.action", f"{where}.errnoRet")
        args = []
        for j, arg in enumerate(call.get("args") or []):
            apath = f"{where}.args.{j}"
            if not isinstance(arg, dict):
                raise ConfigError(f"{apath}: must be an object")
            index = _uint(arg.get("index"), f"{apath}.index", 32)
            if index >= SYSCALL_MAX_ARGS:
                raise ConfigError(f"{apath}.index: syscalls only have up to 6 arguments ({index} given)")
            op = arg.get("op")
            if op not in OPERATORS:
                raise ConfigError(f'{apath}.op: unknown seccomp operator "{op}"')
            args.append((index, op, _uint(arg.get("value", 0), f"{apath}.value"),
                         _uint(arg.get("valueTwo", 0), f"{apath}.valueTwo")))
        for k, name in enumerate(call.get("names") or []):
            if not isinstance(name, str):
                raise ConfigError(f"{where}.names.{k}: must be a string")
            if not name:
                raise ConfigError(f"{where}.names.{k}: empty string is not a valid syscall")
            if action[0] == "SCMP_ACT_NOTIFY" and name == "write":
                raise ConfigError(f"{where}.names.{k}: SCMP_ACT_NOTIFY cannot be used for the write syscall")
            rules.append((name, action, args, where))
    return default, arches, flags, rules


def compile(seccomp, path="linux.seccomp"):
    """Compile the spec's linux.seccomp object; None when it is absent or empty (seccomp off, as in runc)."""
    if seccomp is None:
        return None
    if not isinstance(seccomp, dict):
        raise ConfigError(f"{path}: must be an object")
    if not seccomp.get("defaultAction") and not seccomp.get("syscalls"):
        return None
    default, arches, flags, rules = _plan(seccomp, path)
    # runc's filterFlags: any NOTIFY rule asks for a listener, even one whose syscall is unknown here
    needs_listener = any(action[0] == "SCMP_ACT_NOTIFY" for _, action, _, _ in rules)

    from pyrunc._seccomp import ffi, lib  # libseccomp: loaded here, never at import

    def act(action):
        name, err = action
        if name == "SCMP_ACT_ERRNO":
            return lib.pyrunc_act_errno(_errno.EPERM if err is None else err & 0xFFFF)
        if name == "SCMP_ACT_TRACE":
            return lib.pyrunc_act_trace(_errno.EPERM if err is None else err & 0xFFFF)
        return getattr(lib, {"SCMP_ACT_KILL": "SCMP_ACT_KILL_THREAD"}.get(name, name))

    default_act = act(default)
    ctx = lib.seccomp_init(default_act)
    if ctx == ffi.NULL:
        raise ConfigError(f"{path}.defaultAction: libseccomp refused {default[0]}")
    try:
        for i, arch in arches:
            rc = lib.seccomp_arch_add(ctx, getattr(lib, arch))
            # EEXIST: the native arch is in the filter already.  EDOM: an arch of the other byte order; runc
            # fails the same way ("error adding architecture to seccomp filter: numerical argument out of domain")
            if rc < 0 and rc != -_errno.EEXIST:
                raise ConfigError(f"{path}.architectures.{i}: add {arch} to the filter: {os.strerror(-rc).lower()}")
        ignored = []
        for name, action, args, where in rules:
            rule_act = act(action)
            if rule_act == default_act:
                continue  # redundant, and libseccomp would refuse it
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr == lib.__NR_SCMP_ERROR:
                ignored.append(name)
                continue
            indexes = [a[0] for a in args]
            groups = [[a] for a in args] if len(set(indexes)) < len(indexes) else [args]
            for group in groups:
                cmp = ffi.new("struct scmp_arg_cmp[]", max(len(group), 1))
                for n, (index, op, value, value_two) in enumerate(group):
                    cmp[n].arg, cmp[n].op = index, getattr(lib, op)
                    cmp[n].datum_a, cmp[n].datum_b = value, value_two
                rc = lib.seccomp_rule_add_array(ctx, rule_act, nr, len(group), cmp)
                if rc < 0:
                    raise ConfigError(f"{where}: add seccomp rule for syscall {name}: {os.strerror(-rc).lower()}")
        bpf = _export(lib, ctx, path)
        patch = b""
        if _wants_enosys_stub(default):
            patch = enosys.stub(_last_syscalls(lib, [a for _, a in arches], [r[0] for r in rules]))
    finally:
        lib.seccomp_release(ctx)
    program = patch + bpf
    if len(program) // 8 > BPF_MAXINSNS:
        raise ConfigError(f"{path}: seccomp program has {len(program) // 8} instructions, the kernel allows "
                          f"{BPF_MAXINSNS}")
    if needs_listener:
        flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER
    else:
        flags &= ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
    return Program(bpf=program, flags=flags, needs_listener=needs_listener, ignored=tuple(ignored))


def _export(lib, ctx, path):
    fd = os.memfd_create("pyrunc-seccomp", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctx, fd)
        if rc < 0:
            raise ConfigError(f"{path}: export seccomp program: {os.strerror(-rc).lower()}")
        size = os.fstat(fd).st_size
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def _wants_enosys_stub(default):
    name, err = default
    if name in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"):
        return False
    return not (name == "SCMP_ACT_ERRNO" and err is not None and err & 0xFFFF == enosys.ENOSYS)


def _last_syscalls(lib, arches, names):
    """{audit arch: {"native"|"x86_64"|"x32": highest syscall number named}} for enosys.stub (runc's
    findLastSyscalls: architectures without any known name get no section)."""
    last = {}
    for arch in arches:
        token = getattr(lib, arch)
        numbers = [lib.seccomp_syscall_resolve_name_arch(token, n.encode()) for n in names]
        top = max([n for n in numbers if n > 0], default=0)
        if not top:
            continue
        if arch == "SCMP_ARCH_X32":
            last.setdefault(enosys.AUDIT_ARCH_X86_64, {})["x32"] = top
        elif arch == "SCMP_ARCH_X86_64":
            last.setdefault(enosys.AUDIT_ARCH_X86_64, {})["x86_64"] = top
        else:
            last[token] = {"native": top}
    return last
