"""process.scheduler, process.ioPriority, process.execCPUAffinity and linux.personality: parsed and validated into
plain numbers before any side effect (runc's validate.scheduler/ioPriority, configs.ToSchedAttr, ToCPUSet and
specconv's personality conversion), applied by the container process through `apply_*` below.

Where and when runc applies them, and pyrunc with it:

* scheduler, ioPriority, personality: in the container process itself, after no_new_privs and before seccomp and
  the capability drop (standard_init_linux.go and setns_init_linux.go alike), so SCHED_FIFO or a negative nice
  still have CAP_SYS_NICE.  pyrunc: in child.exec_stub, the last Python step before the stub.  ioprio_set is
  runc's call: which=1 (IOPRIO_WHO_PROCESS), who=0, the calling process.
* execCPUAffinity (runc 1.2+), for `exec` processes only: `initial` is the affinity the process starts with, before
  it joins the container's cgroup; `final` is set once it is in the cgroup, before it runs the user program.  A
  process with neither (and every init) is reset to all CPUs, so it does not inherit the caller's affinity
  (runc's tryResetCPUAffinity; the kernel masks the set with the cgroup's cpuset).
"""


from .. import osx as os
from ..errors import ConfigError, SysError

POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3, "SCHED_ISO": 4, "SCHED_IDLE": 5,
            "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02, "SCHED_FLAG_DL_OVERRUN": 0x04,
               "SCHED_FLAG_KEEP_POLICY": 0x08, "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
SCHED_FLAG_UTIL_CLAMP = SCHED_FLAGS["SCHED_FLAG_UTIL_CLAMP_MIN"] | SCHED_FLAGS["SCHED_FLAG_UTIL_CLAMP_MAX"]
UCLAMP_SYSCTL = "/proc/sys/kernel/sched_util_clamp_max"
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
IOPRIO_CLASS_SHIFT = 13
# <linux/ioprio.h>: IOPRIO_WHO_PROCESS 1, IOPRIO_WHO_PGRP 2, IOPRIO_WHO_USER 3.  runc passes 1 (its constant is
# named ioprioWhoPgrp, but 1 is IOPRIO_WHO_PROCESS): who=0 is then the calling process, and so it is here.
IOPRIO_WHO_PROCESS = 1
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
MAX_CPU = 64 * 1024  # runc's configs.MaxCPU: a sanity limit on cpu numbers
_U64 = (1 << 64) - 1


def _int(value, path, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{path}: must be an integer from {lo} to {hi}, got {value!r}")
    return value


def has_uclamp():
    """Whether the kernel does utilization clamping (CONFIG_UCLAMP_TASK), which SCHED_FLAG_UTIL_CLAMP_* need
    (sched_setattr fails with EOPNOTSUPP otherwise, in the container, once it is too late to say why): the kernel
    registers the sched_util_clamp_* sysctls exactly when it is built with it."""
    return os.path.exists(UCLAMP_SYSCTL)


def scheduler(s, path="process.scheduler", uclamp=None):
    """process.scheduler -> the sched_attr fields (policy, flags, nice, priority, runtime, deadline, period), or
    None when absent.  runc's checks: nice -20..19 for SCHED_OTHER/BATCH; priority only for FIFO/RR; runtime,
    deadline and period only for DEADLINE.  Also refused here: SCHED_FLAG_UTIL_CLAMP_* on a kernel without
    utilization clamping (uclamp: whether it has it; None asks the kernel)."""
    if s is None:
        return None
    if not isinstance(s, dict):
        raise ConfigError(f"{path}: must be an object")
    policy = s.get("policy")
    if not policy:
        raise ConfigError(f"{path}.policy: scheduler policy is required")
    if policy not in POLICIES:
        raise ConfigError(f"{path}.policy: invalid scheduler policy {policy!r}")
    nice = _int(s.get("nice", 0), f"{path}.nice", -(1 << 31), (1 << 31) - 1)
    if policy in ("SCHED_OTHER", "SCHED_BATCH") and not -20 <= nice <= 19:
        raise ConfigError(f"{path}.nice: invalid scheduler.nice: {nice} when scheduler.policy is {policy}")
    priority = _int(s.get("priority", 0), f"{path}.priority", -(1 << 31), (1 << 31) - 1)
    if priority and policy not in ("SCHED_FIFO", "SCHED_RR"):
        raise ConfigError(f"{path}.priority: scheduler.priority can only be specified for SCHED_FIFO or SCHED_RR "
                          f"policy")
    dl = [_int(s.get(k, 0), f"{path}.{k}", 0, _U64) for k in ("runtime", "deadline", "period")]
    if policy != "SCHED_DEADLINE" and any(dl):
        raise ConfigError(f"{path}: scheduler runtime/deadline/period can only be specified for SCHED_DEADLINE "
                          f"policy")
    flags = 0
    for i, flag in enumerate(s.get("flags") or ()):
        if flag not in SCHED_FLAGS:
            raise ConfigError(f"{path}.flags.{i}: invalid scheduler flag {flag!r}")
        if SCHED_FLAGS[flag] & SCHED_FLAG_UTIL_CLAMP and not (has_uclamp() if uclamp is None else uclamp):
            raise ConfigError(f"{path}.flags.{i}: {flag} is not supported by this kernel (no utilization "
                              f"clamping: CONFIG_UCLAMP_TASK is off, {UCLAMP_SYSCTL} is missing)")
        flags |= SCHED_FLAGS[flag]
    return (POLICIES[policy], flags, nice, priority & 0xFFFFFFFF, *dl)


def ioprio(p, path="process.ioPriority"):
    """process.ioPriority -> the ioprio_set value (class << 13 | priority), or None when absent."""
    if p is None:
        return None
    if not isinstance(p, dict):
        raise ConfigError(f"{path}: must be an object")
    cls = p.get("class")
    if cls not in IOPRIO_CLASSES:
        raise ConfigError(f"{path}.class: invalid io priority class {cls!r}")
    prio = p.get("priority", 0)
    if isinstance(prio, bool) or not isinstance(prio, int) or not 0 <= prio <= 7:
        raise ConfigError(f"{path}.priority: invalid io priority {prio!r}: must be from 0 to 7")
    return IOPRIO_CLASSES[cls] << IOPRIO_CLASS_SHIFT | prio


def cpu_list(text, path):
    """A cpu list ("0-3,7", spaces and empty elements allowed) -> a frozenset, or None for "" (runc's ToCPUSet)."""
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise ConfigError(f"{path}: must be a string such as \"0-3,7\"")
    cpus = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a = _cpu(lo)
            b = _cpu(hi) if sep else a
        except ValueError as e:
            raise ConfigError(f"{path}: invalid cpu list {text!r}: {e}") from None
        if a > b:
            raise ConfigError(f"{path}: invalid cpu list {text!r}: invalid range: {part}")
        cpus.update(range(a, b + 1))
    if not cpus:
        raise ConfigError(f"{path}: invalid cpu list {text!r}: no members found in set")
    return frozenset(cpus)


def _cpu(s):
    s = s.strip()
    if not s.isdigit() or not s.isascii():
        raise ValueError(f"{s!r} is not a cpu number")
    n = int(s)
    if n > MAX_CPU:
        raise ValueError(f"values larger than {MAX_CPU} are not supported")
    return n


def affinity(a, path="process.execCPUAffinity"):
    """process.execCPUAffinity -> (initial, final), each a frozenset of cpus or None."""
    if a is None:
        return None, None
    if not isinstance(a, dict):
        raise ConfigError(f"{path}: must be an object")
    return cpu_list(a.get("initial"), f"{path}.initial"), cpu_list(a.get("final"), f"{path}.final")


def personality(p, path="linux.personality"):
    """linux.personality -> the personality(2) persona, or None.  Flags are ignored, as runc ignores them (with a
    warning: "personality flag has not supported at this time"); the second value says whether any were given."""
    if p is None:
        return None, False
    if not isinstance(p, dict):
        raise ConfigError(f"{path}: must be an object")
    domain = p.get("domain")
    if domain not in PERSONALITY_DOMAINS:
        raise ConfigError(f"{path}.domain: invalid personality domain {domain!r}")
    return PERSONALITY_DOMAINS[domain], bool(p.get("flags"))


# --- apply, in the container process (child.exec_stub) ---------------------------------------------------------

def apply_process(proc, lx):
    """scheduler, then ioPriority (runc's order), in the calling process."""
    if proc.scheduler is not None:
        lx.sched_setattr(*proc.scheduler)
    if proc.ioprio is not None:
        lx.ioprio_set(IOPRIO_WHO_PROCESS, 0, proc.ioprio)


def set_affinity(cpus, what):
    try:
        os.sched_setaffinity(0, cpus)
    except OSError as e:
        raise SysError(f"set {what} cpu affinity", ",".join(map(str, sorted(cpus))), e.errno) from None


_EVERY_CPU = b"\xff" * (MAX_CPU // 8)


def reset_affinity(lx):
    """All CPUs, best effort (runc's tryResetCPUAffinity: sched_setaffinity clamps to the kernel's cpus and the
    cgroup's cpuset, so a mask of every possible cpu number is the widest allowed set).  The mask goes to the
    kernel as bytes: os.sched_setaffinity(0, range(MAX_CPU)) builds it from 65536 ints, ~1.5 ms per create."""
    try:
        lx.sched_setaffinity(0, _EVERY_CPU)
    except SysError:
        pass
