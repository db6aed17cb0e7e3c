"""Device access rules: the defaults every container gets, the v1 file writes, and the v2 hook (not done yet)."""

from pyrunc.errors import ConfigError, PyruncError

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


def device_program(rules):
    """TODO(cgroup v2 devices): compile rules into a BPF_PROG_TYPE_CGROUP_DEVICE program (runc
    libcontainer/cgroups/ebpf/devicefilter) and attach it with bpf(2) through pyrunc.linux. Returns the program
    bytes. Not implemented: v2 hosts refuse device rules other than allow-all until it is."""
    raise PyruncError(
        "cgroup v2 device rules are not implemented (needs an eBPF device program: pyrunc.cgroups.devices.device_program)"
    )
