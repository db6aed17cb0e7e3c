"""linux.resources -> systemd unit properties, as D-Bus (name, (signature, value)) pairs.  Pure, given the systemd
version (runc libcontainer/cgroups/systemd v1.go genV1ResourcesProperties, v2.go genV2ResourcesProperties,
common.go addCPUQuota/addCpuset, devices/systemd.go).

What systemd has no property for (swappiness, hugetlb, rdma, net_cls, blkio throttles, ...) is still written to
cgroupfs afterwards by the cgroupfs planner; runc does the same.  Whichever value a property gives, the cgroupfs
write that follows gives the same, so systemd's view (`systemctl show`) and the kernel's agree.
"""

import copy

from pyrunc.cgroups import convert
from pyrunc.cgroups.devices import WILDCARD, Emulator, rule_list
from pyrunc.errors import ConfigError

INFINITY = 2 ** 64 - 1  # systemd's CGROUP_LIMIT_MAX / USEC_INFINITY
DEFAULT_PERIOD = 100000  # the kernel's default cpu quota period, us


def version_number(text):
    """systemd's Version property ("252.39-1~deb12u2", "v245.4-1.fc32", '"245"') -> 252; -1 when unreadable."""
    text = text.lstrip('"v')
    digits = ""
    for ch in text:
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else -1


def _t(v):
    return ("t", v)


def start_properties(name, unit, pid, mode):
    """The properties of a new unit (runc Apply): its place, delegation, the init pid, accounting."""
    props = [("Description", ("s", f"pyrunc container {name}"))]
    if unit.kind == "Slice":
        props.append(("Wants", ("as", [unit.slice])))
    else:
        props += [("Slice", ("s", unit.slice)), ("Delegate", ("b", True))]
    if pid is not None:
        props.append(("PIDs", ("au", [pid])))
    io = "IOAccounting" if mode == "v2" else "BlockIOAccounting"
    props += [(k, ("b", True)) for k in ("MemoryAccounting", "CPUAccounting", io, "TasksAccounting")]
    props.append(("DefaultDependencies", ("b", False)))
    return props


def _cpu_quota(props, cpu, version):
    """runc addCPUQuota: CPUQuotaPeriodUSec (v242+) and CPUQuotaPerSecUSec.  systemd keeps the quota as a whole
    percentage of a CPU, so a fraction is rounded UP to the next 10 ms per second and cpu["quota"] is changed to
    match, so that the cgroupfs write that follows agrees with systemd.  Returns nothing; edits props and cpu."""
    quota, period = cpu.get("quota") or 0, cpu.get("period") or 0
    if period and version >= 242:
        props.append(("CPUQuotaPeriodUSec", _t(period)))
    if quota or period:
        per_sec = INFINITY
        if quota > 0:
            period = period or DEFAULT_PERIOD
            per_sec = quota * 1000000 // period
            if per_sec % 10000:
                per_sec = (per_sec // 10000 + 1) * 10000
                cpu["quota"] = per_sec * period // 1000000
        props.append(("CPUQuotaPerSecUSec", _t(per_sec)))


def range_to_bits(text, what):
    """"0-2,7" -> the little-endian byte mask systemd takes for AllowedCPUs/AllowedMemoryNodes (runc RangeToBits)."""
    mask = 0
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ConfigError(f"{what}={text!r} conversion error: invalid range {part!r}")
        lo, hi = int(lo), int(hi) if sep else int(lo)
        if lo > hi:
            raise ConfigError(f"{what}={text!r} conversion error: invalid range {part!r}")
        for i in range(lo, hi + 1):
            mask |= 1 << i
    if not mask:
        raise ConfigError(f"{what}={text!r} conversion error: empty value")
    return mask.to_bytes((mask.bit_length() + 7) // 8, "little")


def _cpuset(props, cpu, version):
    if version < 244:  # AllowedCPUs/AllowedMemoryNodes exist since v244: cgroupfs alone then
        return
    if cpu.get("cpus"):
        props.append(("AllowedCPUs", ("ay", range_to_bits(cpu["cpus"], "linux.resources.cpu.cpus"))))
    if cpu.get("mems"):
        props.append(("AllowedMemoryNodes", ("ay", range_to_bits(cpu["mems"], "linux.resources.cpu.mems"))))


def _tasks_max(limit):
    # 0 and -1 both mean unlimited, as the cgroupfs write that follows says (pids.max "max", runc 1.1)
    return limit if limit > 0 else INFINITY


def device_properties(rules, version, warn=None):
    """The device rules as DevicePolicy/DeviceAllow (runc devices/systemd.go): always "strict" with an explicit
    allow list, the list first emptied (an empty DeviceAllow resets it on a running unit).  What systemd cannot
    express (deny lists, "*:n" rules) is left to the cgroupfs rules written next, as runc does."""
    emu = Emulator()
    for i, rule in enumerate(rules):
        emu.apply(rule, i)
    reset = [("DeviceAllow", ("a(ss)", [])), ("DevicePolicy", ("s", "strict"))]
    if emu.default_allow:
        if not emu.rules:
            return [("DeviceAllow", ("a(ss)", [])), ("DevicePolicy", ("s", "auto"))]
        if warn:
            warn("systemd does not support deny-list device rules: a temporary deny-all rule is applied")
        return reset
    allow = []
    for (t, major, minor), perms in emu.clean_rules():
        group = "block-" if t == "b" else "char-"
        if major == WILDCARD:
            if minor != WILDCARD:
                if warn:
                    warn(f"systemd does not support '*:{minor}' device rules: left to cgroupfs")
                continue
            path = group + "*"
        elif minor == WILDCARD:
            if version < 240:  # older systemd wants the /proc/devices group name: left to cgroupfs
                continue
            path = group + str(major)
        else:
            path = f"/dev/{'block' if t == 'b' else 'char'}/{major}:{minor}"
        allow.append((path, perms))
    return reset + [("DeviceAllow", ("a(ss)", allow))]


def _unified(props, unified, version):
    """runc unifiedResToSystemdProps: the linux.resources.unified keys systemd has a property for."""
    names = {"memory.high": "MemoryHigh", "memory.low": "MemoryLow", "memory.min": "MemoryMin",
             "memory.max": "MemoryMax", "memory.swap.max": "MemorySwapMax"}
    for key in sorted(unified):
        v = str(unified[key]).strip()

        def num():
            if v == "max":
                return INFINITY
            if not v.isdigit():
                raise ConfigError(f"unified resource {key!r} value conversion error: {v!r} is not a number")
            return int(v)

        if key in names:
            props.append((names[key], _t(num())))
        elif key == "pids.max":
            props.append(("TasksMax", _t(num() or 1)))
        elif key == "cpu.weight":
            props.append(("CPUWeight", _t(num())))
        elif key == "cpu.max":
            f = v.split()
            if not 1 <= len(f) <= 2 or not all(x.isdigit() for x in f[1:]) or not (f[0] == "max" or f[0].isdigit()):
                raise ConfigError(f"unified resource {key!r} value invalid: {v!r}")
            cpu = {"quota": 0 if f[0] == "max" else int(f[0]), "period": int(f[1]) if len(f) == 2 else DEFAULT_PERIOD}
            _cpu_quota(props, cpu, version)
        elif key in ("cpuset.cpus", "cpuset.mems") and version >= 244:
            props.append(("AllowedCPUs" if key == "cpuset.cpus" else "AllowedMemoryNodes",
                          ("ay", range_to_bits(v, key))))


def resource_properties(resources, mode, version, *, default_devices=True, warn=None):
    """(properties, resources for the cgroupfs writes that follow) for linux.resources on a "v1"/"hybrid" or
    "v2" host.  The returned resources differ from the given ones only by a rounded-up cpu.quota."""
    r = copy.deepcopy(resources or {})
    props = []
    if r.get("devices") or default_devices:
        props += device_properties(rule_list(r, default_devices), version, warn)
    mem, cpu = r.get("memory") or {}, r.get("cpu") or {}
    if mode == "v2":
        if mem.get("limit"):
            props.append(("MemoryMax", _t(INFINITY if mem["limit"] < 0 else mem["limit"])))
        if mem.get("reservation"):
            props.append(("MemoryLow", _t(INFINITY if mem["reservation"] < 0 else mem["reservation"])))
        swap = convert.swap_to_v2(mem.get("swap"), mem.get("limit"))
        if swap:
            props.append(("MemorySwapMax", _t(INFINITY if swap < 0 else swap)))
        if cpu.get("idle") == 1 and version >= 252:
            props.append(("CPUWeight", _t(0)))  # CPUWeight=0 is systemd's way to set cpu.idle
        elif cpu.get("shares"):
            props.append(("CPUWeight", _t(convert.shares_to_weight(cpu["shares"]))))
        weight = (r.get("blockIO") or {}).get("weight")
        if weight:
            props.append(("IOWeight", _t(convert.blkio_weight_to_io_weight(weight))))
    else:
        if r.get("unified"):
            raise ConfigError("invalid configuration: cannot use unified on cgroup v1")
        if mem.get("limit"):
            props.append(("MemoryLimit", _t(INFINITY if mem["limit"] < 0 else mem["limit"])))
        if cpu.get("shares"):
            props.append(("CPUShares", _t(cpu["shares"])))
        weight = (r.get("blockIO") or {}).get("weight")
        if weight:
            props.append(("BlockIOWeight", _t(weight)))
    _cpu_quota(props, cpu, version)
    if (r.get("pids") or {}).get("limit") is not None:
        props.append(("TasksMax", _t(_tasks_max(r["pids"]["limit"]))))
    _cpuset(props, cpu, version)
    if mode == "v2" and r.get("unified"):
        _unified(props, r["unified"], version)
    return props, r


# --- org.systemd.property.<Name> annotations (runc specconv initSystemdProps) ------------------------------------

ANNOTATION_PREFIX = "org.systemd.property."
_TYPES = {"byte": "y", "int16": "n", "uint16": "q", "int32": "i", "uint32": "u", "int64": "x", "uint64": "t",
          "double": "d", "boolean": "b", "string": "s", "objectpath": "o", "signature": "g"}
_INT_RANGE = {"y": (0, 255), "n": (-2 ** 15, 2 ** 15 - 1), "q": (0, 2 ** 16 - 1), "i": (-2 ** 31, 2 ** 31 - 1),
              "u": (0, 2 ** 32 - 1), "x": (-2 ** 63, 2 ** 63 - 1), "t": (0, 2 ** 64 - 1)}


def _scalar(text, sig=None):
    """One GVariant text value (godbus ParseVariant's subset: numbers, booleans, quoted strings) -> (sig, value)."""
    t = text.strip()
    if t[:1] in "'\"" and len(t) >= 2 and t[-1] == t[0]:
        if sig not in (None, "s", "o", "g"):
            raise ValueError(f"a string where {sig} was given")
        return sig or "s", t[1:-1].replace("\\" + t[0], t[0]).replace("\\\\", "\\")
    if t in ("true", "false"):
        if sig not in (None, "b"):
            raise ValueError(f"a boolean where {sig} was given")
        return "b", t == "true"
    try:
        n = int(t, 0)
    except ValueError:
        try:
            f = float(t)
        except ValueError:
            raise ValueError(f"cannot parse {t!r}") from None
        if sig not in (None, "d"):
            raise ValueError(f"a float where {sig} was given")
        return "d", f
    if sig == "d":
        return "d", float(n)
    sig = sig or ("i" if _INT_RANGE["i"][0] <= n <= _INT_RANGE["i"][1] else "x")  # godbus: int32, else int64
    lo, hi = _INT_RANGE.get(sig, (None, None))
    if lo is None or not lo <= n <= hi:
        raise ValueError(f"{n} does not fit {sig}")
    return sig, n


def parse_variant(text):
    """"uint64 5", "@t 5", "5", "true", "'x'", "['a', 'b']" -> (signature, value)."""
    t = text.strip()
    if t.startswith("[") and t.endswith("]"):
        items = [_scalar(x) for x in t[1:-1].split(",") if x.strip()]
        sigs = {s for s, _ in items}
        if len(sigs) > 1:
            raise ValueError("mixed array")
        return "a" + (sigs.pop() if sigs else "s"), [v for _, v in items]
    word, _, rest = t.partition(" ")
    if word in _TYPES:
        return _scalar(rest, _TYPES[word])
    if word.startswith("@") and rest:
        return _scalar(rest, word[1:])
    return _scalar(t)


def annotation_properties(annotations):
    """The org.systemd.property.* annotations as properties; "...Sec" names of numbers become "...USec" (×10^6),
    as runc converts them.  A bad name or value is a ConfigError naming the annotation."""
    props = []
    for key in sorted(annotations or {}):
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        name, text = key[len(ANNOTATION_PREFIX):], annotations[key]
        if len(name) < 3 or not (name.isascii() and name.isalpha()):
            raise ConfigError(f"annotation {key} name incorrect: must be at least 3 ASCII letters")
        try:
            sig, value = parse_variant(str(text))
        except ValueError as e:
            raise ConfigError(f"annotation {key}={text} value parse error: {e}") from None
        stem = name[:-3]
        if name.endswith("Sec") and stem and stem[-1].islower():
            if sig not in _INT_RANGE and sig != "d":
                raise ConfigError(f"annotation {key}={text} value parse error: not a number")
            name, sig, value = stem + "USec", "t", int(value * 1000000)
        props.append((name, (sig, value)))
    return props
