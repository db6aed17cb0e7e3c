"""pyrunc.container.state.quick: a stopped container removed with one rmdir per cgroup dir and no cgroup manager,
or left untouched for lifecycle's full delete.  Temp dirs stand in for cgroup dirs (rmdir of a non-empty dir
fails as that of a busy cgroup does); no root needed."""

import json
import os

import pytest

from pyrunc.container.state import quick
from pyrunc.container.state import Store
from pyrunc.errors import UsageError
from pyrunc.errors import Logger

MOUNT_NS = {"linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}}


def _container(tmp_path, cid="q1", **doc):
    root = tmp_path / "root"
    (root / cid).mkdir(parents=True)
    base = {"ociVersion": "1.2.0", "id": cid, "init_pid": 0, "config": MOUNT_NS, "cgroup_paths": {},
            "cgroup_created": []}
    base.update(doc)
    (root / cid / "state.json").write_text(json.dumps(base))
    return Store(str(root)), root / cid


def _cgroups(tmp_path):
    """containerd's layout: a namespace parent that create made on the way, the container's leaf below it (two
    controllers sharing one dir, as cpu,cpuacct do), and another container's dir under the same parent."""
    parent = tmp_path / "cg" / "k8s.io"
    leaf, other = parent / "q1", parent / "other"
    leaf.mkdir(parents=True)
    other.mkdir()
    return parent, leaf, other


def test_stopped_container_is_removed_with_its_own_cgroup_only(tmp_path):
    parent, leaf, other = _cgroups(tmp_path)
    store, d = _container(tmp_path, cgroup_paths={"cpu": str(leaf), "cpuacct": str(leaf)},
                          cgroup_created=[str(parent), str(leaf)])
    assert quick(store, Logger(), "q1") is True
    assert not d.exists() and not leaf.exists()
    assert parent.exists() and other.exists(), "the shared parent holds another container: never removed"


def test_busy_own_cgroup_is_left_to_the_full_delete(tmp_path):
    parent, leaf, other = _cgroups(tmp_path)
    (leaf / "sub").mkdir()  # as a cgroup with processes or children: rmdir fails
    store, d = _container(tmp_path, cgroup_paths={"memory": str(leaf)}, cgroup_created=[str(parent), str(leaf)])
    assert quick(store, Logger(), "q1") is False
    assert (d / "state.json").exists() and leaf.exists(), "the state stays for the full delete"


@pytest.mark.parametrize("doc", [
    {"hooks": {"poststop": [{"path": "/bin/true"}]}},
    {"intel_rdt": {"group": "x"}},
    {"cgroup_unit": "pyrunc-q1.scope"},
    {"config": {"linux": {"namespaces": [{"type": "pid"}]}}},  # the rootfs mounts to detach on the host
    {"config": {"linux": {"namespaces": [{"type": "mount"}]}}},  # the host's pid ns: processes outlive the init
    {"config": {"linux": {"namespaces": [{"type": "mount"}, {"type": "pid", "path": "/proc/1/ns/pid"}]}}},
    {"cgroup_paths": {"memory": "/nonexistent"}, "cgroup_created": None},  # no record of what create made
    {"init_pid": os.getpid()},  # not stopped (the start time differs from ours, so only with the right one)
])
def test_everything_else_is_left_to_the_full_delete(tmp_path, doc):
    if "init_pid" in doc:
        from pyrunc.container.state import proc_start_time

        doc["init_start"] = proc_start_time(os.getpid())[1]  # this process: alive, "running"
    store, d = _container(tmp_path, **doc)
    assert quick(store, Logger(), "q1") is False
    assert (d / "state.json").exists()


def test_missing_container_and_dead_create_go_to_the_full_delete(tmp_path):
    store, d = _container(tmp_path)
    assert quick(store, Logger(), "nope") is False
    (d / "state.json").unlink()  # a create that died before writing it: its leftovers are the full delete's
    assert quick(store, Logger(), "q1") is False and d.exists()
    with pytest.raises(UsageError):
        quick(store, Logger(), "../x")
