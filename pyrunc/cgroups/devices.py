"""Device access rules: the defaults every container gets, the v1 file writes, and the v2 eBPF device filter."""

from pyrunc.errors import ConfigError

# runc libcontainer/specconv AllowedDevices, appended after the spec's own rules (so the spec cannot take them
# away by ordering): mknod of any char/block device, then the standard /dev nodes and /dev/pts, ptmx, tun.
DEFAULT_DEVICE_RULES = (
    {"allow": True, "type": "c", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "b", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},  # /dev/null
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},  # /dev/random
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},  # /dev/full
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},  # /dev/tty
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},  # /dev/zero
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},  # /dev/urandom
    {"allow": True, "type": "c", "major": 136, "minor": None, "access": "rwm"},  # /dev/pts/*
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},  # /dev/ptmx
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},  # /dev/net/tun
)


def rule_list(resources, default_devices):
    rules = list(resources.get("devices") or [])
    if default_devices:
        rules.extend(DEFAULT_DEVICE_RULES)
    return rules


def rule_string(rule, index=0):
    """An OCI linux.resources.devices entry -> the v1 devices.allow/deny text, e.g. "c 1:3 rwm"."""
    t = rule.get("type") or "a"
    if t not in ("a", "b", "c"):
        raise ConfigError(f"invalid cgroup device type {t!r} at linux.resources.devices/{index}")
    access = rule.get("access") or ""
    if not access:
        raise ConfigError(f"device access at {index} field cannot be empty")
    if set(access) - set("rwm"):
        raise ConfigError(f"invalid device access {access!r} at linux.resources.devices/{index}")
    major = rule.get("major")
    minor = rule.get("minor")
    major = "*" if major is None or major == -1 else str(major)
    minor = "*" if minor is None or minor == -1 else str(minor)
    return f"{t} {major}:{minor} {access}"


def is_allow_all(rules):
    """True when the rules end up allowing every device (the only v2 case handled without an eBPF program)."""
    allow_all = not rules
    for r in rules:
        wild = (r.get("type") or "a") == "a" and r.get("major") in (None, -1) and r.get("minor") in (None, -1)
        if r.get("allow") and wild and set(r.get("access") or "") >= set("rwm"):
            allow_all = True
        elif not r.get("allow"):
            allow_all = False
    return allow_all


# --- cgroup v2: the eBPF device filter (runc libcontainer/cgroups/devices/devicefilter.go, after crun ebpf.c) ---
#
# cgroup2 has no devices.allow/deny files: access is decided by a BPF_PROG_TYPE_CGROUP_DEVICE program attached to
# the cgroup, called with struct bpf_cgroup_dev_ctx {u32 access_type (type | access << 16); u32 major; u32 minor}
# and returning 1 (allow) or 0 (deny).  The rules first go through runc's emulator of the v1 devices cgroup, so a
# rule list means the same thing on v1 and v2 (including the refusal to punch holes in wildcard rules, which v1
# silently ignores); the program is then one block per remaining exception and a final default verdict.

WILDCARD = -1
BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR = 1, 2
BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE = 1, 2, 4
LICENSE = "Apache"
# Write.filename of the planned "attach this device filter" step (its value is the program bytes); not a file.
DEVICE_FILTER = "<bpf device filter>"


def _perms(s):
    return "".join(c for c in "rwm" if c in s)


class Emulator:
    """runc devices.Emulator: the state of a v1 devices cgroup after a sequence of allow/deny rules."""

    def __init__(self):
        self.default_allow = False
        self.rules = {}  # (type, major, minor) -> perms string

    def apply(self, rule, index=0):
        rule_string(rule, index)  # validates type and access
        t = rule.get("type") or "a"
        major = WILDCARD if rule.get("major") in (None, -1) else int(rule["major"])
        minor = WILDCARD if rule.get("minor") in (None, -1) else int(rule["minor"])
        perms = _perms(rule.get("access") or "")
        if t == "a":
            # any "a" rule resets the cgroup: allow -> black-list (allow all), deny -> white-list (deny all)
            self.default_allow, self.rules = bool(rule.get("allow")), {}
            return
        meta = (t, major, minor)
        if bool(rule.get("allow")) == self.default_allow:
            self._rm(meta, perms)
        else:
            self._add(meta, perms)

    def _add(self, meta, perms):
        self.rules[meta] = _perms(self.rules.get(meta, "") + perms)

    def _rm(self, meta, perms):
        t, major, minor = meta
        for partial in ((t, WILDCARD, minor), (t, major, WILDCARD), (t, WILDCARD, WILDCARD)):
            if partial == meta:
                continue
            if set(self.rules.get(partial, "")) & set(perms):
                raise ConfigError(f"device rule {_meta_str(meta)} {perms} cannot be applied: cannot punch a hole "
                                  f"in the wildcard rule {_meta_str(partial)} {self.rules[partial]}")
        left = _perms(set(self.rules.get(meta, "")) - set(perms))
        if left:
            self.rules[meta] = left
        else:
            self.rules.pop(meta, None)

    def clean_rules(self):
        """runc Emulator.Rules(): the exceptions to the default verdict, sorted by (major, minor, type)."""
        return [(meta, perms) for meta, perms in sorted(self.rules.items(), key=lambda kv: (kv[0][1], kv[0][2],
                                                                                          kv[0][0]))]


def _meta_str(meta):
    t, major, minor = meta
    return f"{t} {'*' if major == WILDCARD else major}:{'*' if minor == WILDCARD else minor}"


class Insn:
    """One eBPF instruction; `sym` labels it, `target` names the label a jump goes to."""

    __slots__ = ("op", "dst", "src", "off", "imm", "sym", "target")

    def __init__(self, op, dst=0, src=0, off=0, imm=0, target=None):
        self.op, self.dst, self.src, self.off, self.imm, self.sym, self.target = op, dst, src, off, imm, None, target


# op name (as cilium/ebpf prints it) -> opcode byte
OPCODES = {
    "LdXMemW": 0x61,   # BPF_LDX | BPF_MEM | BPF_W
    "AndImm32": 0x54,  # BPF_ALU | BPF_AND | BPF_K
    "RShImm32": 0x74,  # BPF_ALU | BPF_RSH | BPF_K
    "MovReg32": 0xBC,  # BPF_ALU | BPF_MOV | BPF_X
    "MovImm32": 0xB4,  # BPF_ALU | BPF_MOV | BPF_K
    "JNEImm": 0x55,    # BPF_JMP | BPF_JNE | BPF_K
    "JNEReg": 0x5D,    # BPF_JMP | BPF_JNE | BPF_X
    "Exit": 0x95,      # BPF_JMP | BPF_EXIT
}


class Program:
    """The device filter: `insns` (symbolic), `bytes()` (struct bpf_insn array), `text()` (cilium's listing)."""

    def __init__(self, insns, default_allow):
        self.insns = insns
        self.default_allow = default_allow
        self.license = LICENSE

    def resolved(self):
        where = {i.sym: n for n, i in enumerate(self.insns) if i.sym}
        out = []
        for n, i in enumerate(self.insns):
            off = where[i.target] - (n + 1) if i.target else i.off
            out.append((OPCODES[i.op], i.dst, i.src, off, i.imm))
        return out

    def bytes(self):
        import struct

        return b"".join(struct.pack("<BBhi", op, dst | (src << 4), off, imm & 0xFFFFFFFF if imm < 0 else imm)
                        for op, dst, src, off, imm in self.resolved())

    def text(self):
        """One line per instruction and a "block-N:" line per label, in cilium/ebpf asm.Instructions.String()
        form with unresolved jumps (off: -1 <label>), so runc's devicefilter_test.go listings compare as-is."""
        lines = []
        for n, i in enumerate(self.insns):
            if i.sym:
                lines.append(f"{i.sym}:")
            if i.op == "LdXMemW":
                s = f"LdXMemW dst: r{i.dst} src: r{i.src} off: {i.off} imm: {i.imm}"
            elif i.op in ("AndImm32", "RShImm32", "MovImm32"):
                s = f"{i.op} dst: r{i.dst} imm: {i.imm}"
            elif i.op == "MovReg32":
                s = f"MovReg32 dst: r{i.dst} src: r{i.src}"
            elif i.op == "JNEImm":
                s = f"JNEImm dst: r{i.dst} off: -1 imm: {i.imm} <{i.target}>"
            elif i.op == "JNEReg":
                s = f"JNEReg dst: r{i.dst} off: -1 src: r{i.src} <{i.target}>"
            else:
                s = i.op
            lines.append(f"{n}: {s}")
        return "\n".join(lines)


def device_program(rules):
    """Compile OCI device rules (in order) into the cgroup v2 device filter program (runc DeviceFilter)."""
    emu = Emulator()
    for i, rule in enumerate(rules):
        emu.apply(rule, i)
    insns = [
        Insn("LdXMemW", 2, 1, 0),          # R2 <- type (low 16 bits of access_type)
        Insn("AndImm32", 2, imm=0xFFFF),
        Insn("LdXMemW", 3, 1, 0),          # R3 <- access (high 16 bits of access_type)
        Insn("RShImm32", 3, imm=16),
        Insn("LdXMemW", 4, 1, 4),          # R4 <- major
        Insn("LdXMemW", 5, 1, 8),          # R5 <- minor
    ]
    block = 0
    for (t, major, minor), perms in emu.clean_rules():
        nxt = f"block-{block + 1}"
        access = 0
        for c in perms:
            access |= {"r": BPF_DEVCG_ACC_READ, "w": BPF_DEVCG_ACC_WRITE, "m": BPF_DEVCG_ACC_MKNOD}[c]
        first = len(insns)
        insns.append(Insn("JNEImm", 2, imm=BPF_DEVCG_DEV_CHAR if t == "c" else BPF_DEVCG_DEV_BLOCK, target=nxt))
        if access != BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD:
            # the requested access must be a subset of the rule's: (R3 & access) != R3 -> next block
            insns += [Insn("MovReg32", 1, 3), Insn("AndImm32", 1, imm=access), Insn("JNEReg", 1, 3, target=nxt)]
        if major != WILDCARD:
            insns.append(Insn("JNEImm", 4, imm=major, target=nxt))
        if minor != WILDCARD:
            insns.append(Insn("JNEImm", 5, imm=minor, target=nxt))
        insns += [Insn("MovImm32", 0, imm=0 if emu.default_allow else 1), Insn("Exit")]
        insns[first].sym = f"block-{block}"
        block += 1
    last = Insn("MovImm32", 0, imm=1 if emu.default_allow else 0)
    last.sym = f"block-{block}"
    insns += [last, Insn("Exit")]
    return Program(insns, emu.default_allow)
