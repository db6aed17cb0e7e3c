"""What the plan refuses before any side effect (no root): fields pyrunc does not apply, ids setresuid would take
as "unchanged", a missing root, and mounts over or inside /proc.  The integration tier (test_refusals.py) runs the
same bundles for real."""

import os

import pytest

from pyrunc import osx
from pyrunc.errors import ConfigError
from pyrunc.process import plan as planmod
from pyrunc.spec.default import default_config


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return str(tmp_path)


def cfg(**process):
    c = default_config()
    c["process"].update(process)
    return c


LSM = [("process", "apparmorProfile", "docker-default"), ("process", "selinuxLabel", "system_u:system_r:x:s0"),
       ("linux", "mountLabel", "system_u:object_r:x:s0")]


@pytest.mark.parametrize("lsm_present", [True, False], ids=["lsm-host", "no-lsm-host"])
@pytest.mark.parametrize("section,key,value", LSM)
def test_lsm_fields_refused_with_and_without_the_lsm(monkeypatch, bundle, lsm_present, section, key, value):
    """Before the fix the error was raised only where the LSM was absent: on an AppArmor host the profile was
    dropped.  Now the answer does not depend on the host at all (isdir answers "present" for every path)."""
    real_isdir = osx.path.isdir
    lsm = ("/sys/kernel/security/apparmor", "/sys/fs/selinux")
    monkeypatch.setattr(osx.path, "isdir", lambda p: lsm_present if p in lsm else real_isdir(p))
    c = cfg()
    c[section][key] = value
    with pytest.raises(ConfigError, match=f"^{section}.{key}: .*not supported"):
        planmod.build(c, bundle)


@pytest.mark.parametrize("key,value", [("intelRdt", {"closID": "x"})])
def test_unapplied_linux_fields_refused(bundle, key, value):
    c = cfg()
    c["linux"][key] = value
    with pytest.raises(ConfigError, match=f"^linux.{key}: "):
        planmod.build(c, bundle)


def test_empty_values_ask_for_nothing(bundle):
    c = cfg(apparmorProfile="", selinuxLabel="")
    c["linux"].update(mountLabel="", timeOffsets={}, netDevices={})
    planmod.build(c, bundle)


def test_tmpcopyup_only_on_tmpfs(bundle):
    """tmpcopyup is applied (process/copyup.py) on a tmpfs, and refused, not ignored, anywhere else."""
    c = cfg()
    c["mounts"].append({"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]})
    assert planmod.build(c, bundle).mounts[-1].copyup is True
    c["mounts"][-1] = {"destination": "/etc", "type": "bind", "source": "/tmp", "options": ["rbind", "tmpcopyup"]}
    with pytest.raises(ConfigError, match=rf"^mounts.{len(c['mounts']) - 1}.options: tmpcopyup is only supported "
                                          "on tmpfs"):
        planmod.build(c, bundle)


@pytest.mark.parametrize("user,where", [({"uid": 4294967295, "gid": 0}, "process.user.uid"),
                                        ({"uid": -1, "gid": 0}, "process.user.uid"),
                                        ({"uid": 0, "gid": 4294967295}, "process.user.gid"),
                                        ({"uid": 0, "gid": -5}, "process.user.gid"),
                                        ({"uid": 0, "gid": 0, "additionalGids": [1, -1]},
                                         "process.user.additionalGids.1")])
def test_bad_ids_refused(user, where):
    with pytest.raises(ConfigError, match=f"^{where}: .* is not a valid id"):
        planmod.process_plan({"args": ["true"], "user": user})


def test_too_many_groups_refused():
    user = {"uid": 0, "gid": 0, "additionalGids": list(range(65537))}
    with pytest.raises(ConfigError, match="^process.user.additionalGids: 65537 groups, more than NGROUPS_MAX"):
        planmod.process_plan({"args": ["true"], "user": user})
    user["additionalGids"].pop()
    assert len(planmod.process_plan({"args": ["true"], "user": user}).groups) == 65536


def test_largest_id_accepted():
    q = planmod.process_plan({"args": ["true"], "user": {"uid": 4294967294, "gid": 4294967294,
                                                         "additionalGids": [4294967294]}})
    assert (q.uid, q.gid, q.groups) == (4294967294, 4294967294, [4294967294])


def test_root_required(bundle):
    c = cfg()
    del c["root"]
    with pytest.raises(ConfigError, match="^root must be specified$"):
        planmod.build(c, bundle)


def _mount(dest, source, typ="bind", options=("rbind",)):
    return {"destination": dest, "type": typ, "source": source, "options": list(options)}


@pytest.mark.parametrize("m,why", [
    (_mount("/proc", "/tmp"), "not of type proc"),
    (_mount("/proc", "tmpfs", "tmpfs", ()), "not of type proc"),
    (_mount("/proc/../proc", "/tmp"), "not of type proc"),
    (_mount("/proc/sys", "/tmp"), "inside /proc"),
    (_mount("/proc/kmsg", "/dev/null", options=("bind",)), "inside /proc"),
])
def test_proc_mounts_refused(bundle, m, why):
    c = cfg()
    c["mounts"].append(m)
    with pytest.raises(ConfigError, match=f"mounts.{len(c['mounts']) - 1}.destination: .*{why}"):
        planmod.build(c, bundle)


@pytest.mark.parametrize("m", [_mount("/proc", "/proc"), _mount("/proc/cpuinfo", "/dev/null", options=("bind",)),
                               _mount("/proc/sys/kernel/ns_last_pid", "/dev/null", options=("bind",))])
def test_proc_mounts_allowed(bundle, m):
    c = cfg()
    c["mounts"].append(m)
    planmod.build(c, bundle)


def test_features_claims_nothing_the_plan_refuses(bundle):
    """`features` says apparmor, selinux and intelRdt are off: each of these is refused by the plan, so the
    document and the runtime agree (tmpcopyup, applied now, is listed)."""
    from pyrunc.cli.features import features

    f = features()
    for key, section, field, value in [("apparmor", "process", "apparmorProfile", "p"),
                                       ("selinux", "process", "selinuxLabel", "l"),
                                       ("intelRdt", "linux", "intelRdt", {"closID": "x"})]:
        assert f["linux"][key]["enabled"] is False  # intelRdt: no resctrl here (features probes the host)
        c = cfg()
        c[section][field] = value
        with pytest.raises(ConfigError):
            planmod.build(c, bundle)
    assert "tmpcopyup" in f["mountOptions"]


def test_proc_reached_through_an_image_symlink_refused(bundle):
    """The image's /evil -> /proc (and /deep/x -> ../proc/sys): the destination is judged where the mount lands."""
    root = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(root, "proc", "sys"))
    os.makedirs(os.path.join(root, "deep"))
    os.symlink("/proc", os.path.join(root, "evil"))
    os.symlink("../proc/sys", os.path.join(root, "deep", "x"))
    for dest, why in [("/evil", "not of type proc"), ("/evil/sys/kernel", "inside /proc"),
                      ("/deep/x", "inside /proc")]:
        c = cfg()
        c["mounts"].append(_mount(dest, "/tmp"))
        with pytest.raises(ConfigError, match=why):
            planmod.build(c, bundle)
    c = cfg()
    c["mounts"].append(_mount("/evil/cpuinfo", "/dev/null", options=("bind",)))  # lands on /proc/cpuinfo: allowed
    planmod.build(c, bundle)
    c = cfg()
    c["mounts"].append(_mount("/deep/y", "/tmp"))  # a plain directory: nothing to do with /proc
    planmod.build(c, bundle)


@pytest.mark.parametrize("rlimits,msg", [
    ([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}, {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}],
     r'^process\.rlimits\.1\.type: duplicate rlimit "RLIMIT_NOFILE"'),
    ([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}], r"^process\.rlimits\.0: soft limit 2048 is above"),
])
def test_bad_rlimits_refused_by_the_plan(bundle, rlimits, msg):
    """Before any side effect: they were parsed only at sync 6, in the init protocol, after the state dir, the
    cgroups and two forks (all undone again); now the plan refuses them, and the parent has loaded the rlimits
    code (and `resource`) before its cgroup steps wait for the lock, instead of between sync 6 and 7."""
    with pytest.raises(ConfigError, match=msg):
        planmod.build(cfg(rlimits=rlimits), bundle)
