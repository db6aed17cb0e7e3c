"""process.capabilities -> the five 64-bit masks pyrunc-init applies (bnd= eff= prm= inh= amb=).

runc 1.1.5 behaviour reproduced here (libcontainer/capabilities/capabilities.go, init_linux.go; checked against
the real runc 1.1.5 on this machine):

* A name that is not in the table, or whose number is above the running kernel's last capability
  (/proc/sys/kernel/cap_last_cap, read at call time), is ignored with ONE warning for all of them:
  ``ignoring unknown or unavailable capabilities: [CAP_BOGUS CAP_FOO]`` (sorted, deduplicated).  It is not an
  error: `runc run` with "CAP_BOGUS" in the bounding set logs level=warning and carries on.
* ``process.capabilities`` absent (None): runc uses an empty Capabilities struct, so every set is empty,
  the whole bounding set is dropped too.  Verified: such a container shows CapInh/CapPrm/CapEff/CapBnd/CapAmb
  all 0000000000000000, even as uid 0.  A present set that is missing or null is the same as an empty one.
* Ambient: runc raises ambient capabilities with errors ignored (gocapability's Apply shadows `err`), and the
  kernel refuses PR_CAP_AMBIENT_RAISE for a capability that is not both permitted and inheritable.  So runc's
  own `runc spec` (ambient set, inheritable empty) runs with CapAmb 0.  pyrunc-init fails hard on a refused
  raise, so the amb mask returned here is already ``amb & prm & inh``: the same result as runc, silently.
"""

# Linux capability numbers, <linux/capability.h>; runc 1.1.5's vendored gocapability knows exactly these.
CAPABILITIES = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

# spec key -> stub key, in the order the stub's CONTROL string lists them
SETS = (("bounding", "bnd"), ("effective", "eff"), ("permitted", "prm"), ("inheritable", "inh"), ("ambient", "amb"))

CAP_LAST_CAP_FILE = "/proc/sys/kernel/cap_last_cap"


def last_cap(path=CAP_LAST_CAP_FILE):
    """The running kernel's highest capability number; the table's highest when the file cannot be read."""
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return max(CAPABILITIES.values())


def masks(capabilities, last=None):
    """Return ({"bnd","eff","prm","inh","amb"}: int masks, warnings: list of str) for process.capabilities.

    `capabilities` is the spec object (dict with optional bounding/effective/permitted/inheritable/ambient
    lists) or None when absent.  `last` overrides the kernel's cap_last_cap (for tests).
    """
    if last is None:
        last = last_cap()
    out = {key: 0 for _, key in SETS}
    ignored = set()
    for spec_key, key in SETS:
        for name in (capabilities or {}).get(spec_key) or ():
            num = CAPABILITIES.get(name)
            if num is None or num > last:
                ignored.add(str(name))
                continue
            out[key] |= 1 << num
    out["amb"] &= out["prm"] & out["inh"]  # see the module docstring: runc ignores a refused ambient raise
    warnings = []
    if ignored:
        warnings.append("ignoring unknown or unavailable capabilities: [%s]" % " ".join(sorted(ignored)))
    return out, warnings


def control(m):
    """The pyrunc-init CONTROL fragment for masks `m`: "bnd=…,eff=…,prm=…,inh=…,amb=…" in hex."""
    return ",".join("%s=%x" % (key, m[key]) for _, key in SETS)
