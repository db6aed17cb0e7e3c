"""Where the systemd cgroup driver puts a container: parse `slice:prefix:name`, name the unit, expand the slice,
and compute the cgroupfs directories the unit ends up at.  Pure functions (runc libcontainer/cgroups/systemd
common.go ExpandSlice/getUnitName, v1.go initPaths, v2.go initPath; specconv CreateCgroupConfig).

    "kubepods-besteffort-pod12.slice:cri-containerd:abc"
      slice  kubepods-besteffort-pod12.slice
             -> /kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice
      unit   cri-containerd-abc.scope         (a name ending in ".slice" names a slice unit instead, as with runc)
      v1     <each hierarchy's mountpoint>/<expanded slice>/<unit>
      v2     <cgroup2 mountpoint>/<expanded slice>/<unit>   (hybrid: both, the cgroup2 dir under key "")

An empty cgroupsPath gives `system.slice:pyrunc:<id>` (runc uses the prefix "runc"); an empty slice field is
system.slice and "-.slice" is the root slice.
"""

import os
from collections import namedtuple

from pyrunc.cgroups import detect as _detect
from pyrunc.errors import ConfigError

DEFAULT_SLICE = "system.slice"
DEFAULT_PREFIX = "pyrunc"

# systemd's unit name alphabet (unit-name.c VALID_CHARS); "@" only in template instances, which we never make.
_VALID = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ:-_.\\")
_UNIT_NAME_MAX = 255

# slice: the parent slice unit ("system.slice"); unit: the unit we start; sliced: the slice's cgroup path
# ("/system.slice"); kind: "Scope" or "Slice" (the unit type, as systemd's D-Bus interfaces name it).
Unit = namedtuple("Unit", "slice unit sliced kind")


def expand_slice(slice_name):
    """"a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" -> "/" (runc ExpandSlice)."""
    suffix = ".slice"
    if len(slice_name) < len(suffix) or not slice_name.endswith(suffix) or "/" in slice_name:
        raise ConfigError(f"invalid slice name: {slice_name}")
    stem = slice_name[:-len(suffix)]
    if stem == "-":
        return "/"
    path, prefix = "", ""
    for part in stem.split("-"):
        if not part:  # "a--b.slice", "-a.slice", "a-.slice" and ".slice"
            raise ConfigError(f"invalid slice name: {slice_name}")
        path += "/" + prefix + part + suffix
        prefix += part + "-"
    return path


def _check_unit_name(name, cgroups_path):
    bad = sorted(set(name) - _VALID)
    if bad or len(name) > _UNIT_NAME_MAX or name.startswith("."):
        why = f"character {bad[0]!r} not allowed" if bad else ("too long" if len(name) > _UNIT_NAME_MAX
                                                                 else "starts with a dot")
        raise ConfigError(f"invalid systemd unit name {name!r} from cgroupsPath {cgroups_path!r}: {why}")


def parse(cgroups_path, container_id):
    """cgroupsPath (or None) and the container id -> Unit; a malformed path is a ConfigError naming it."""
    if not cgroups_path:
        slice_name, prefix, name = "", DEFAULT_PREFIX, container_id or ""
    else:
        parts = cgroups_path.split(":")
        if len(parts) != 3:
            raise ConfigError('expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups, '
                              f'got "{cgroups_path}" instead')
        slice_name, prefix, name = parts
    if not name:
        raise ConfigError(f'invalid cgroupsPath "{cgroups_path or ""}" for systemd cgroups: empty name')
    slice_name = slice_name or DEFAULT_SLICE
    sliced = expand_slice(slice_name)
    if name.endswith(".slice"):
        unit, kind = name, "Slice"  # runc getUnitName: the caller asked for a slice (the kubelet does, for pods)
    else:
        unit, kind = f"{prefix}-{name}.scope", "Scope"
    _check_unit_name(unit, cgroups_path or "")
    return Unit(slice_name, unit, sliced, kind)


def unit_paths(layout, unit):
    """{key: cgroupfs dir} of the unit on every hierarchy of the layout (keys as in Manager.paths)."""
    rel = os.path.join(unit.sliced, unit.unit).lstrip("/")
    paths = {}
    for ctrl in _detect.V1_ORDER:
        mnt = layout.v1.get(ctrl)
        if mnt is not None:
            paths[ctrl] = os.path.join(mnt, rel)
    if layout.unified:
        paths[_detect.UNIFIED] = os.path.join(layout.unified, rel)
    return paths
