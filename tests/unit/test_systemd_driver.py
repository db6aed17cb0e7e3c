"""The systemd driver over a fake systemd (a D-Bus peer on <run>/systemd/private, answering like systemd 252) and
a fake hybrid cgroupfs: what it asks systemd, what it writes itself, what it refuses.  No root needed."""

import os
import shutil
import socket
import threading

import pytest

from pyrunc.cgroups import manager_from_paths, open_manager
from pyrunc.cgroups import systemd as sd
from pyrunc.errors import ConfigError
from tests.unit.test_cgroups_fake import _files, _v1_ctrl_files, build_hybrid, fake, fake_kernel, own  # noqa: F401

jeepney = pytest.importorskip("jeepney", reason="jeepney speaks the fake systemd's side (pip install -e '.[test]')")
from jeepney import DBusAddress, new_error, new_method_return, new_signal  # noqa: E402
from tests.unit.test_systemd_dbus import server_messages  # noqa: E402

MANAGER = DBusAddress("/org/freedesktop/systemd1", bus_name="org.freedesktop.systemd1",
                      interface="org.freedesktop.systemd1.Manager")
# the v1 hierarchies systemd itself makes a delegated scope's cgroup in (with accounting on)
SYSTEMD_OWNS = ("memory", "devices", "pids", "cpu", "cpuacct", "blkio", "systemd")


class FakeSystemd(threading.Thread):
    def __init__(self, path, cgroot):
        super().__init__(daemon=True)
        self.cgroot = cgroot
        self.calls = []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        self.srv.settimeout(0.2)
        self.stop = False
        self.serial = 100
        self.result = "done"  # of every job

    def _send(self, conn, msg):
        self.serial += 1
        conn.sendall(msg.serialise(serial=self.serial))

    def _dirs(self, props_or_unit):
        return [os.path.join(self.cgroot, h, "kubepods.slice/kubepods-pod1.slice", props_or_unit)
                for h in SYSTEMD_OWNS]

    def run(self):
        while not self.stop:
            try:
                conn, _ = self.srv.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        for msg in server_messages(conn):
            member = msg.header.fields[3]
            self.calls.append((member, msg.body))
            job = f"/org/freedesktop/systemd1/job/{len(self.calls)}"
            if member == "Get":
                self._send(conn, new_method_return(msg, "v", (("s", "252.39-1~deb12u2"),)))
            elif member in ("StartTransientUnit", "StopUnit"):
                for d in self._dirs(msg.body[0]):
                    if member == "StartTransientUnit":
                        _files(d, _v1_ctrl_files(os.path.basename(os.path.dirname(os.path.dirname(
                            os.path.dirname(d))))))
                    else:
                        shutil.rmtree(d, ignore_errors=True)
                self._send(conn, new_method_return(msg, "o", (job,)))
                self._send(conn, new_signal(MANAGER, "JobRemoved", "uoss", (len(self.calls), job, msg.body[0],
                                                                             self.result)))
            elif member == "SetUnitProperties":
                self._send(conn, new_method_return(msg))
            else:
                self._send(conn, new_error(msg, "org.freedesktop.systemd1.NoSuchUnit", "s",
                                           (f"Unit {msg.body[0]} not loaded.",)))


@pytest.fixture
def systemd(fake, tmp_path):
    root, proc = fake
    build_hybrid(root)
    own(proc, "9:name=systemd:/\n4:memory:/\n0::/\n")
    run = tmp_path / "run"
    (run / "systemd" / "system").mkdir(parents=True)
    srv = FakeSystemd(str(run / "systemd" / "private"), root)
    srv.start()
    yield root, proc, str(run), srv
    srv.stop = True
    srv.join(5)


def test_create_starts_a_delegated_scope_then_writes_the_rest(systemd, fake_kernel):
    root, proc, run, srv = systemd
    m = open_manager("kubepods-pod1.slice:cri-containerd:c1", "c1", root=root, proc=proc, systemd=True, run=run,
                     annotations={"org.systemd.property.TimeoutStopSec": "uint64 7"})
    m.create()
    m.apply({"memory": {"limit": 64 << 20}, "pids": {"limit": 10}, "cpu": {"quota": 12345, "period": 100000}})
    assert srv.calls == [], "nothing is asked before the init's pid is known"
    m.add_pid(4242)
    assert [c[0] for c in srv.calls] == ["Get", "StartTransientUnit"]
    name, mode, props, aux = srv.calls[1][1]
    props = dict(props)
    assert (name, mode, aux) == ("cri-containerd-c1.scope", "replace", [])
    assert props["Slice"] == ("s", "kubepods-pod1.slice") and props["Delegate"] == ("b", True)
    assert props["PIDs"] == ("au", [4242]) and props["MemoryLimit"] == ("t", 64 << 20)
    assert props["TasksMax"] == ("t", 10) and props["CPUQuotaPerSecUSec"] == ("t", 130000)
    assert props["DevicePolicy"] == ("s", "strict") and props["TimeoutStopUSec"] == ("t", 7000000)
    scope = "kubepods.slice/kubepods-pod1.slice/cri-containerd-c1.scope"
    assert m.unit == "cri-containerd-c1.scope" and m.paths["memory"] == os.path.join(root, "memory", scope)
    # the hierarchies systemd leaves alone are made and joined by the driver
    assert open(os.path.join(root, "freezer", scope, "cgroup.procs")).read() == "4242"
    # cgroupfs gets what systemd has no property for, and the quota systemd rounded up to whole percents
    assert open(os.path.join(root, "cpu", scope, "cpu.cfs_quota_us")).read() == "13000"
    assert open(os.path.join(root, "memory", scope, "memory.limit_in_bytes")).read() == str(64 << 20)

    # update and delete go through a manager reopened from state.json
    m2 = manager_from_paths(m.paths, root=root, proc=proc, unit=m.unit, run=run)
    m2.apply({"memory": {"limit": 128 << 20}}, default_devices=False)
    assert srv.calls[-1] == ("SetUnitProperties", ("cri-containerd-c1.scope", True, [("MemoryLimit",
                                                                                       ("t", 128 << 20))]))
    assert open(os.path.join(root, "memory", scope, "memory.limit_in_bytes")).read() == str(128 << 20)
    m2.destroy()
    assert [c[0] for c in srv.calls[-2:]] == ["StopUnit", "ResetFailedUnit"]
    left = [h for h in os.listdir(root) if os.path.isdir(os.path.join(root, h, scope))]
    assert left == []


def test_failed_start_job_is_reported_and_the_unit_stopped(systemd, fake_kernel):
    root, proc, run, srv = systemd
    srv.result = "failed"
    m = open_manager("kubepods-pod1.slice:cri-containerd:c2", "c2", root=root, proc=proc, systemd=True, run=run)
    m.create()
    with pytest.raises(sd.SystemdError, match=r"^systemd cgroup driver: start unit cri-containerd-c2.scope: "
                                              r"job failed$"):
        m.add_pid(4242)
    assert [c[0] for c in srv.calls] == ["Get", "StartTransientUnit", "ResetFailedUnit"]
    m.destroy()  # what create's cleanup does next
    assert [c[0] for c in srv.calls[3:]] == ["StopUnit", "ResetFailedUnit"]


@pytest.fixture
def booted(fake, tmp_path):
    """A fake hybrid cgroupfs and a run dir saying systemd booted (/run/systemd/system), with no socket."""
    root, proc = fake
    build_hybrid(root)
    run = tmp_path / "run"
    (run / "systemd" / "system").mkdir(parents=True)
    return root, proc, run


def test_unreachable_systemd_is_a_clear_error_never_cgroupfs(booted):
    root, proc, run = booted
    before = sorted(os.walk(root))
    m = open_manager("system.slice:pyrunc:c1", "c1", root=root, systemd=True, proc=proc, run=str(run))
    with pytest.raises(sd.SystemdError) as ei:
        m.create()
    assert str(ei.value) == (f"systemd cgroup driver: cannot reach systemd over D-Bus: connect {run}/systemd/private: "
                             f"no such file or directory (ENOENT); connect {run}/dbus/system_bus_socket: "
                             "no such file or directory (ENOENT)")
    assert sorted(os.walk(root)) == before


def test_malformed_path_refused_before_connecting(booted):
    root, proc, run = booted
    with pytest.raises(ConfigError, match=r'^expected cgroupsPath to be of format "slice:prefix:name"'):
        open_manager("/kubepods/pod1/c1", "c1", root=root, systemd=True, proc=proc, run=str(run))
