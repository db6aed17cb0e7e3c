"""Dispatch linux.resources to the v1 and/or v2 planners according to the detected layout."""

from pyrunc.cgroups import v1, v2
from pyrunc.cgroups.detect import UNIFIED
from pyrunc.errors import ConfigError

# v1 controller -> v2 section, for controllers a hybrid host keeps on cgroup2 (hugetlb on this host).
V1_TO_V2 = {"cpuset": "cpuset", "memory": "memory", "cpu": "cpu", "pids": "pids", "blkio": "io",
            "hugetlb": "hugetlb", "rdma": "rdma"}


def _network_asked(r):
    n = r.get("network") or {}
    return bool(n.get("classID") or n.get("priorities"))


def plan(layout, paths, r, probe, *, default_devices=True):
    if layout.mode == "v1":
        if r.get("unified"):
            raise ConfigError("invalid configuration: cannot use unified on cgroup v1")
        return v1.plan(r, paths, probe, default_devices=default_devices)
    if layout.mode == "v2":
        if _network_asked(r):
            raise ConfigError("cannot set network limits (linux.resources.network): net_cls and net_prio "
                              "do not exist on cgroup v2")
        return v2.plan(r, paths[UNIFIED], probe, base=layout.unified, available=layout.unified_controllers,
                       default_devices=default_devices)
    # hybrid: v1 for what v1 has; controllers only cgroup2 has are written into the cgroup2 dir.
    on_v2 = {c for c, sec in V1_TO_V2.items()
             if c not in paths and sec in layout.unified_controllers}
    out = v1.plan(r, paths, probe, default_devices=default_devices, skip=on_v2)
    if UNIFIED in paths:
        out += v2.plan(r, paths[UNIFIED], probe, base=layout.unified, available=layout.unified_controllers,
                       sections={V1_TO_V2[c] for c in on_v2}, default_devices=False, hybrid=True)
    elif r.get("unified"):
        raise ConfigError("invalid configuration: cannot use unified: no cgroup2 hierarchy")
    return out
