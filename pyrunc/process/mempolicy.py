"""linux.memoryPolicy (runtime-spec 1.3): the NUMA memory policy of the container process, set_mempolicy(2).

plan() validates in the caller, before any fork, with runc's rules (validator.go memoryPolicy: DEFAULT and LOCAL
take no nodes; BIND, INTERLEAVE, PREFERRED_MANY and WEIGHTED_INTERLEAVE need at least one) and against the host's
NUMA nodes (/sys/devices/system/node/online): without MPOL_F_RELATIVE_NODES or MPOL_F_STATIC_NODES the kernel
refuses nodes that are not online, so pyrunc says which ones first.  apply() runs in the process that becomes the
container process (stage B for create, exec's stage A whose child inherits it) right after personality, as runc
does (standard_init_linux.go and setns_init_linux.go); the policy survives fork and execve.
"""

from ..errors import ConfigError

MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3, "MPOL_LOCAL": 4,
         "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
FLAGS = {"MPOL_F_NUMA_BALANCING": 1 << 13, "MPOL_F_RELATIVE_NODES": 1 << 14, "MPOL_F_STATIC_NODES": 1 << 15}
NO_NODES = ("MPOL_DEFAULT", "MPOL_LOCAL")
SOME_NODES = ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE")
MAX_NODES = 1024  # the kernel's MAX_NUMNODES on x86_64 (CONFIG_NODES_SHIFT=10)
ONLINE = "/sys/devices/system/node/online"
W = "linux.memoryPolicy"


def parse_list(text, where):
    """"0-3,7" -> {0, 1, 2, 3, 7} (the kernel's list format, as cpuset lists)."""
    nodes = set()
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        lo, sep, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise ConfigError(f"{where}: invalid node list {text!r}") from None
        if a < 0 or b < a or b >= MAX_NODES:
            raise ConfigError(f"{where}: invalid node range {part!r} in {text!r}")
        nodes.update(range(a, b + 1))
    return nodes


def online_nodes(path=ONLINE):
    try:
        with open(path) as f:
            return parse_list(f.read(), path)
    except OSError:
        return {0}  # a kernel without CONFIG_NUMA has one node and no such file


def plan(mp, online=None):
    """(mode | flags, nodemask words) or None when nothing is asked for."""
    if not mp:
        return None
    mode = mp.get("mode")
    if mode not in MODES:
        raise ConfigError(f"{W}.mode: invalid memory policy mode {mode!r}")
    flags = 0
    for i, f in enumerate(mp.get("flags") or ()):
        if f not in FLAGS:
            raise ConfigError(f"{W}.flags.{i}: invalid memory policy flag {f!r}")
        flags |= FLAGS[f]
    if flags & FLAGS["MPOL_F_RELATIVE_NODES"] and flags & FLAGS["MPOL_F_STATIC_NODES"]:
        raise ConfigError(f"{W}.flags: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other")
    nodes = parse_list(mp.get("nodes"), f"{W}.nodes")
    if mode in NO_NODES and nodes:
        raise ConfigError(f"{W}.nodes: memory policy mode {mode} takes no nodes, got {mp['nodes']!r}")
    if mode in SOME_NODES and not nodes:
        raise ConfigError(f"{W}.nodes: memory policy mode {mode} requires at least one node")
    if nodes and not flags & (FLAGS["MPOL_F_RELATIVE_NODES"] | FLAGS["MPOL_F_STATIC_NODES"]):
        online = online_nodes() if online is None else online
        missing = sorted(nodes - online)
        if missing:
            raise ConfigError(f"{W}.nodes: node {','.join(map(str, missing))} is not online on this host "
                              f"(online: {','.join(map(str, sorted(online)))})")
    words = [0] * ((max(nodes) // 64 + 1) if nodes else 0)
    for n in nodes:
        words[n // 64] |= 1 << (n % 64)
    return MODES[mode] | flags, words


def apply(lx, policy):
    if policy is not None:
        lx.set_mempolicy(policy[0], policy[1])
