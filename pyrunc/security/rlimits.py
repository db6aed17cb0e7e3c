"""process.rlimits -> [(resource number, soft, hard)], ready for prlimit(2) on the container process.

runc 1.1.5 (rlimit_linux.go) knows the 16 names below and fails on any other with "wrong rlimit value: X";
pyrunc raises ConfigError naming the JSON path instead.  Two deliberate differences, both refusing earlier what
would otherwise be a surprise:

* duplicates: runc 1.1.5 accepts two entries of one type and the last wins (verified: two RLIMIT_NOFILE
  entries, 1024 then 512, give `ulimit -n` 512).  The runtime spec (config.md, POSIX process) says "If
  rlimits contains duplicated entries with same type, the runtime MUST generate an error", so pyrunc does.
* soft above hard: runc fails only at prlimit time ("error setting rlimit type 7: invalid argument");
  pyrunc says so while parsing, with the path.

Values are unsigned 64-bit; RLIM_INFINITY is 2**64-1 as in the spec's Go types.
"""

from pyrunc.errors import ConfigError

# <asm-generic/resource.h> numbers (x86, arm, arm64, riscv, s390, ppc; mips and sparc differ and are not
# supported by pyrunc).  `resource` would give them too but not for every name on every libc.
RLIMITS = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}

_U64 = (1 << 64) - 1


def _limit(entry, key, path):
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U64:
        raise ConfigError(f"{path}.{key}: must be an unsigned 64-bit integer, got {value!r}")
    return value


def parse(rlimits, path="process.rlimits"):
    """Return [(resource, soft, hard)] in config order; ConfigError for unknown types, duplicates, bad values.

    `rlimits` is the spec list or None (absent: the container inherits runc's / pyrunc's own limits).
    """
    out = []
    seen = {}
    for i, entry in enumerate(rlimits or ()):
        where = f"{path}.{i}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be an object")
        name = entry.get("type")
        if name not in RLIMITS:
            raise ConfigError(f'{where}.type: unknown rlimit "{name}"')
        if name in seen:
            raise ConfigError(f"{where}.type: duplicate rlimit \"{name}\" (also at {path}.{seen[name]})")
        seen[name] = i
        soft = _limit(entry, "soft", where)
        hard = _limit(entry, "hard", where)
        if soft > hard:
            raise ConfigError(f"{where}: soft limit {soft} is above hard limit {hard} for {name}")
        out.append((RLIMITS[name], soft, hard))
    return out
