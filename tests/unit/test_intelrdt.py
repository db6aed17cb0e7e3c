"""linux.intelRdt over a fake resctrl tree (this host has no resctrl): the plan's checks with runc's errors, and
what apply/destroy do to the tree (group directory, schemata, tasks, monitoring group)."""

import shutil

import pytest

from pyrunc.errors import ConfigError
from pyrunc.process import intelrdt


@pytest.fixture
def resctrl(tmp_path, monkeypatch):
    root = tmp_path / "resctrl"
    for d in ("info/L3", "info/MB", "info/L3_MON"):
        (root / d).mkdir(parents=True)
    (root / "info" / "last_cmd_status").write_text("ok\n")
    (root / "schemata").write_text("L3:0=fff\nMB:0=100\n")
    (root / "tasks").write_text("")
    monkeypatch.setattr(intelrdt, "_rmdir", shutil.rmtree)  # resctrl's rmdir takes the group's files along
    return root


def test_find_root_from_mountinfo(tmp_path):
    mi = tmp_path / "mountinfo"
    mi.write_text("22 1 0:21 / /proc rw - proc proc rw\n"
                  "40 22 0:35 / /sys/fs/resctrl rw,relatime shared:5 - resctrl resctrl rw\n")
    assert intelrdt.find_root(str(mi)) == "/sys/fs/resctrl"
    mi.write_text("22 1 0:21 / /proc rw - proc proc rw\n")
    assert intelrdt.find_root(str(mi)) is None


def test_this_host_refuses_with_runcs_error(monkeypatch):
    monkeypatch.setattr(intelrdt, "find_root", lambda: None)
    with pytest.raises(ConfigError, match=r"^linux.intelRdt: intelRdt is specified in config, but Intel RDT is not "
                                          r"enabled$"):
        intelrdt.plan({"closID": "x"})


def test_group_per_container_with_schemata(resctrl):
    p = intelrdt.plan({"l3CacheSchema": "L3:0=f", "memBwSchema": "MB:0=20", "schemata": ["L2:0=3"]}, str(resctrl))
    rec = intelrdt.apply(p, "c1", 4242)
    group = resctrl / "c1"
    assert (group / "schemata").read_text() == "L3:0=f\nMB:0=20\nL2:0=3\n"
    assert (group / "tasks").read_text() == "4242"
    assert rec == {"path": str(group), "made": True, "mon": None}
    intelrdt.destroy(rec)
    assert not group.exists()


def test_shared_closid_group_is_joined_and_kept(resctrl):
    (resctrl / "gold" / "mon_groups").mkdir(parents=True)  # resctrl makes mon_groups in every group
    p = intelrdt.plan({"closID": "gold", "enableMonitoring": True}, str(resctrl))
    rec = intelrdt.apply(p, "c2", 7)
    assert (resctrl / "gold" / "tasks").read_text() == "7"
    assert (resctrl / "gold" / "mon_groups" / "c2" / "tasks").read_text() == "7"
    intelrdt.join(rec, 8)  # an exec'd process
    assert (resctrl / "gold" / "tasks").read_text() == "8"  # (resctrl's tasks takes one pid per write)
    assert (resctrl / "gold" / "mon_groups" / "c2" / "tasks").read_text() == "8"
    assert not (resctrl / "gold" / "schemata").exists()  # nothing asked: the group's schemata stay as they are
    intelrdt.destroy(rec)
    assert (resctrl / "gold").is_dir() and not (resctrl / "gold" / "mon_groups" / "c2").exists()


def test_closid_with_schemata_makes_the_group_but_never_removes_it(resctrl):
    rec = intelrdt.apply(intelrdt.plan({"closID": "silver", "memBwSchema": "MB:0=50"}, str(resctrl)), "c3", 9)
    assert (resctrl / "silver" / "schemata").read_text() == "MB:0=50\n"
    intelrdt.destroy(rec)
    assert (resctrl / "silver").is_dir()  # runc removes only the groups named after a container


@pytest.mark.parametrize("rdt,err", [
    ({"closID": "missing"}, r"^linux.intelRdt.closID: clos dir .*missing not accessible"),
    ({"closID": ".."}, r"^linux.intelRdt.closID: invalid intelRdt.ClosID '..'"),
    ({"closID": "a/b", "l3CacheSchema": "L3:0=1"}, r"invalid intelRdt.ClosID 'a/b'"),
])
def test_refused(resctrl, rdt, err):
    with pytest.raises(ConfigError, match=err):
        intelrdt.plan(rdt, str(resctrl))


def test_schemas_need_the_hardware(resctrl):
    shutil.rmtree(resctrl / "info" / "L3")
    with pytest.raises(ConfigError, match=r"^linux.intelRdt.l3CacheSchema: .*Intel RDT/CAT is not enabled"):
        intelrdt.plan({"l3CacheSchema": "L3:0=1"}, str(resctrl))
    shutil.rmtree(resctrl / "info" / "MB")
    with pytest.raises(ConfigError, match=r"^linux.intelRdt.memBwSchema: .*Intel RDT/MBA is not enabled"):
        intelrdt.plan({"memBwSchema": "MB:0=1"}, str(resctrl))


def test_refused_write_reports_last_cmd_status_and_undoes(resctrl):
    (resctrl / "info" / "last_cmd_status").write_text("Unknown or unsupported resource name 'L9'\n")
    p = intelrdt.plan({"schemata": ["L9:0=1"]}, str(resctrl))
    (resctrl / "c6").mkdir()
    (resctrl / "c6" / "schemata").mkdir()  # a write that fails, as the kernel refuses a bad line
    with pytest.raises(Exception, match=r"last_cmd_status: Unknown or unsupported resource name 'L9'"):
        intelrdt.apply(p, "c6", 1)
    assert (resctrl / "c6").is_dir()  # existed before: not ours to remove


def test_nothing_asked_for(resctrl):
    assert intelrdt.plan(None, str(resctrl)) is None and intelrdt.plan({}, str(resctrl)) is None
