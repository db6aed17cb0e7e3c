"""The systemd driver's paths: slice:prefix:name parsing, nested slice expansion, and the cgroupfs dirs on v1,
v2 and hybrid layouts (runc libcontainer/cgroups/systemd ExpandSlice, getUnitName, initPaths)."""

import pytest

from pyrunc.cgroups.detect import Layout
from pyrunc.cgroups.systemd_path import expand_slice, parse, unit_paths
from pyrunc.errors import ConfigError


@pytest.mark.parametrize("name,path", [
    ("system.slice", "/system.slice"),
    ("a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"),
    ("kubepods-besteffort-pod1234.slice",
     "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice"),
    ("-.slice", "/"),
])
def test_expand_slice(name, path):
    assert expand_slice(name) == path


@pytest.mark.parametrize("name", ["", ".slice", "a--b.slice", "-a.slice", "a-.slice", "a.scope", "a/b.slice",
                                  "slice", "../x.slice"])
def test_expand_slice_refuses(name):
    with pytest.raises(ConfigError, match=r"^invalid slice name: "):
        expand_slice(name)


def test_parse_cri_path():
    u = parse("kubepods-besteffort-pod42.slice:cri-containerd:abc123", "ignored")
    assert u.slice == "kubepods-besteffort-pod42.slice"
    assert u.unit == "cri-containerd-abc123.scope" and u.kind == "Scope"
    assert u.sliced == "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod42.slice"


def test_parse_defaults():
    assert parse(None, "c1") == ("system.slice", "pyrunc-c1.scope", "/system.slice", "Scope")
    assert parse("", "c1").unit == "pyrunc-c1.scope"
    # an empty slice field is system.slice; the root slice puts the unit at the top
    assert parse(":docker:x", "c1") == ("system.slice", "docker-x.scope", "/system.slice", "Scope")
    assert parse("-.slice:p:x", "c1") == ("-.slice", "p-x.scope", "/", "Scope")


def test_parse_slice_unit():
    # runc getUnitName: a name ending in .slice asks for that slice itself (kubelet's pod slices)
    u = parse("kubepods.slice::kubepods-burstable.slice", "c")
    assert (u.unit, u.kind, u.sliced) == ("kubepods-burstable.slice", "Slice", "/kubepods.slice")


@pytest.mark.parametrize("path,msg", [
    ("system.slice:pyrunc", r'^expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups, '
                            r'got "system.slice:pyrunc" instead$'),
    ("/sys/fs/cgroup/x", r"format \"slice:prefix:name\""),
    ("a:b:c:d", r"format"),
    ("system.slice:p:", r'^invalid cgroupsPath "system.slice:p:" for systemd cgroups: empty name$'),
    ("system:p:n", r"^invalid slice name: system$"),
    ("a--b.slice:p:n", r"^invalid slice name: a--b.slice$"),
    ("system.slice:p:../../etc", r"^invalid systemd unit name 'p-../../etc.scope' from cgroupsPath "
                                 r"'system.slice:p:../../etc': character '/' not allowed$"),
    ("system.slice:p:a b", r"character ' ' not allowed"),
    ("system.slice:p:" + "x" * 300, r"too long"),
])
def test_parse_refuses(path, msg):
    with pytest.raises(ConfigError, match=msg):
        parse(path, "c")


def _layout(mode):
    v1 = {"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
          "memory": "/sys/fs/cgroup/memory", "devices": "/sys/fs/cgroup/devices",
          "name=systemd": "/sys/fs/cgroup/systemd"}
    if mode == "v2":
        return Layout("/sys/fs/cgroup", "v2", {}, {}, "/sys/fs/cgroup", ("memory", "pids"))
    unified = "/sys/fs/cgroup/unified" if mode == "hybrid" else None
    return Layout("/sys/fs/cgroup", mode, v1, {c: "/" for c in v1}, unified, ("hugetlb",) if unified else ())


def test_paths_v1_per_controller():
    u = parse("kubepods-besteffort-pod9.slice:cri-containerd:c9", "c9")
    tail = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod9.slice/cri-containerd-c9.scope"
    assert unit_paths(_layout("v1"), u) == {
        "devices": "/sys/fs/cgroup/devices/" + tail,
        "memory": "/sys/fs/cgroup/memory/" + tail,
        "cpu": "/sys/fs/cgroup/cpu,cpuacct/" + tail,
        "cpuacct": "/sys/fs/cgroup/cpu,cpuacct/" + tail,
        "name=systemd": "/sys/fs/cgroup/systemd/" + tail,
    }


def test_paths_hybrid_adds_cgroup2_dir():
    paths = unit_paths(_layout("hybrid"), parse("system.slice:pyrunc:c1", "c1"))
    assert paths[""] == "/sys/fs/cgroup/unified/system.slice/pyrunc-c1.scope"
    assert paths["memory"] == "/sys/fs/cgroup/memory/system.slice/pyrunc-c1.scope"


def test_paths_v2_and_root_slice():
    assert unit_paths(_layout("v2"), parse("system.slice:pyrunc:c1", "c1")) == {
        "": "/sys/fs/cgroup/system.slice/pyrunc-c1.scope"}
    assert unit_paths(_layout("v2"), parse("-.slice:p:c1", "c1")) == {"": "/sys/fs/cgroup/p-c1.scope"}
