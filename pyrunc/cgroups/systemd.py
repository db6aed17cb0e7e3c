"""The systemd cgroup driver (`--systemd-cgroup`): systemd owns the container's cgroup as a transient scope unit.

runc's libcontainer/cgroups/systemd, in pyrunc's manager shape (it IS a cgroupfs Manager over the unit's dirs):

  create()       check that systemd runs (/run/systemd/system, sd_booted) and connect: fail before any fork
  apply(r)       before the unit exists: kept for add_pid; after: SetUnitProperties(runtime) then the cgroupfs writes
  add_pid(pid)   the first time: StartTransientUnit(<prefix>-<name>.scope, "replace", [Slice, Delegate=yes,
                 PIDs=[pid], accounting, resource properties]) and wait for its JobRemoved; then the hierarchies
                 systemd does not manage (v1 freezer, cpuset, ...) are made and joined, and everything systemd has
                 no property for is written to cgroupfs.  Later calls (exec) only join the unit's dirs.
  destroy()      StopUnit (waiting for its job), ResetFailedUnit (a failed unit would stay listed), then rmdir the
                 unit's dirs on the hierarchies systemd does not manage
  freeze, pids, stats, kill_all, events: the cgroupfs ones, on the unit's dirs (as runc does)

There is no fallback: if systemd is not PID 1 or cannot be reached, the driver says so and the verb fails.  The
D-Bus peer is systemd's private socket /run/systemd/private (root only, no bus daemon needed, as runc uses it),
else the system bus.
"""

import errno as _errno
import os

from pyrunc.cgroups import dbus as _dbus
from pyrunc.cgroups.manager import Manager, _read_text, _remove
from pyrunc.cgroups.systemd_path import parse, unit_paths
from pyrunc.cgroups.systemd_props import (annotation_properties, resource_properties, start_properties,
                                          version_number)
from pyrunc.errors import ConfigError, PyruncError, SysError

SYSTEMD = "org.freedesktop.systemd1"
OBJECT = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
JOB_TIMEOUT = 30.0  # runc waits 30 s for a unit's start or stop job


class SystemdError(PyruncError):
    pass


def check_running(proc="/proc", run="/run"):
    """sd_booted(3): /run/systemd/system is a directory only when systemd is the init of this pid namespace."""
    if not os.path.isdir(os.path.join(run, "systemd", "system")):
        comm = (_read_text(os.path.join(proc, "1", "comm")) or "unknown").strip()
        raise ConfigError(f"systemd cgroup driver: systemd is not running (pid 1 is {comm})")


def connect(run="/run", timeout=JOB_TIMEOUT):
    """A connection to systemd: its private socket, else the system bus (subscribed to job signals)."""
    errors = []
    private = os.path.join(run, "systemd", "private")
    try:
        return _dbus.Connection(private, timeout=timeout)
    except OSError as e:
        errors.append(f"connect {private}: {_oserror(e)}")
    except PyruncError as e:
        errors.append(str(e))
    bus = os.path.join(run, "dbus", "system_bus_socket")
    try:
        conn = _dbus.Connection(bus, bus=True, timeout=timeout)
        conn.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s",
                  (f"type='signal',sender='{SYSTEMD}',interface='{MANAGER}',member='JobRemoved'",))
        conn.call(SYSTEMD, OBJECT, MANAGER, "Subscribe")  # systemd emits job signals on the bus only if asked
        return conn
    except OSError as e:
        errors.append(f"connect {bus}: {_oserror(e)}")
    except PyruncError as e:
        errors.append(str(e))
    raise SystemdError("systemd cgroup driver: cannot reach systemd over D-Bus: " + "; ".join(errors))


def _oserror(e):
    name = _errno.errorcode.get(e.errno or 0, "")
    return f"{os.strerror(e.errno).lower()} ({name})" if e.errno else str(e)


class SystemdManager(Manager):
    """A cgroupfs Manager over the unit's dirs, whose unit systemd starts and stops."""

    def __init__(self, layout, paths, unit, *, name=None, pending=None, started=True, run="/run", conn=None,
                 log=None, extra=()):
        super().__init__(layout, paths, None)
        self.unit = unit.unit
        self._unit = unit
        self._name = name or unit.unit
        self._pending = pending  # (resources, default_devices) kept until the unit is started
        self._started = started
        self._run = run
        self._conn = conn
        self._version = None
        self._log = log
        self._extra = list(extra)  # properties from org.systemd.property.* annotations (runc SystemdProps)

    def _warn(self, msg):
        if self._log is not None:
            self._log.warning(f"systemd cgroup driver: {msg}")

    # -- D-Bus -----------------------------------------------------------------------------------------------
    @property
    def conn(self):
        if self._conn is None:
            self._conn = connect(self._run)
        return self._conn

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _call(self, member, sig="", body=()):
        return self.conn.call(SYSTEMD, OBJECT, MANAGER, member, sig, body)

    def version(self):
        if self._version is None:
            v = self.conn.call(SYSTEMD, OBJECT, "org.freedesktop.DBus.Properties", "Get", "ss", (MANAGER, "Version"))
            self._version = version_number(v[0][1])
        return self._version

    def _wait_job(self, job, what):
        body = self.conn.wait_signal(MANAGER, "JobRemoved", lambda b: b[1] == job, JOB_TIMEOUT)
        if body is None:
            raise SystemdError(f"systemd cgroup driver: timeout waiting for systemd to {what} {self.unit}")
        return body[3]  # the job's result: "done", "failed", "canceled", "timeout", "dependency", "skipped"

    def _reset_failed(self):
        try:
            self._call("ResetFailedUnit", "s", (self.unit,))
        except _dbus.DBusError:
            pass  # NoSuchUnit (already gone) or not failed: nothing to reset

    def _props(self, resources, default_devices):
        mode = "v2" if self.layout.mode == "v2" else "v1"
        return resource_properties(resources, mode, self.version(), default_devices=default_devices,
                                   warn=self._warn)

    def _start(self, pid):
        resources, default_devices = self._pending or ({}, False)
        props, fs_resources = self._props(resources, default_devices)
        props = start_properties(self._name, self._unit, pid, self.layout.mode) + self._extra + props
        for attempt in (1, 2):
            try:
                job = self._call("StartTransientUnit", "ssa(sv)a(sa(sv))", (self.unit, "replace", props, []))[0]
                break
            except _dbus.DBusError as e:
                if e.name != "org.freedesktop.systemd1.UnitExists" or attempt == 2:
                    raise SystemdError(f"systemd cgroup driver: start unit {self.unit}: {e}") from None
                self._reset_failed()  # a leftover failed unit of the same name: let systemd drop it, once
        self._started = True  # the unit exists from here on: a failure below still has destroy() stop it
        result = self._wait_job(job, "start")
        if result != "done":
            self._reset_failed()
            raise SystemdError(f"systemd cgroup driver: start unit {self.unit}: job {result}")
        return fs_resources, default_devices

    # -- the Manager interface -------------------------------------------------------------------------------
    def create(self):
        self.conn  # noqa: B018: reach systemd now, before anything is forked

    def apply(self, resources, *, default_devices=True):
        if not self._started:
            self._pending = (resources or {}, default_devices)
            return
        props, fs_resources = self._props(resources, default_devices)
        if props:
            try:
                self._call("SetUnitProperties", "sba(sv)", (self.unit, True, props))
            except _dbus.DBusError as e:
                raise SystemdError(f"systemd cgroup driver: set properties of {self.unit}: {e}") from None
        super().apply(fs_resources, default_devices=default_devices)

    def own_join(self):
        return None  # the first process joins through the unit (StartTransientUnit's PIDs)

    def add_pid(self, pid, keys=None):
        if keys is not None:
            raise ValueError("the systemd driver joins every hierarchy at once")
        if self._started:
            super().add_pid(pid)
            return
        try:
            fs_resources, default_devices = self._start(pid)
        finally:
            self.close()  # not held while the container is set up (destroy() connects again if it must)
        # The hierarchies systemd leaves alone (v1 cpuset, freezer, net_cls, ...) are made and joined by us, as
        # runc joinCgroups does; on systemd's own ones these are no-ops.
        super().create()
        self._created = None  # destroy() removes the unit's leaf dirs, never the shared slices above them
        super().add_pid(pid)
        if self._pending is not None:
            super().apply(fs_resources, default_devices=default_devices)

    def destroy(self):
        if self._started:
            try:
                job = self._call("StopUnit", "ss", (self.unit, "replace"))[0]
                result = self._wait_job(job, "stop")
                if result != "done":
                    self._warn(f"stop unit {self.unit}: job {result}")
            except _dbus.DBusError as e:
                if e.name != "org.freedesktop.systemd1.NoSuchUnit":  # gone already: the scope emptied
                    raise SystemdError(f"systemd cgroup driver: stop unit {self.unit}: {e}") from None
            self._reset_failed()
            self._started = False
        left = [(d, err) for _, d in self._dirs() for err in (_remove(d),) if err]
        self.close()
        if left:
            raise SysError("rmdir", left[0][0], left[0][1])


def open_manager(cgroups_path, container_id, *, layout, proc="/proc", run="/run", log=None, annotations=None):
    """A manager for a new container: nothing happens on the host until create() (which connects)."""
    check_running(proc, run)
    unit = parse(cgroups_path, container_id)
    extra = annotation_properties(annotations)
    name = (cgroups_path or "").split(":")[-1] or container_id
    return SystemdManager(layout, unit_paths(layout, unit), unit, name=name, started=False, run=run, log=log,
                          extra=extra)


def reopen(layout, paths, unit_name, *, run="/run"):
    """The manager of an existing container, from state.json (its paths and its unit's name)."""
    from pyrunc.cgroups.systemd_path import Unit

    kind = "Slice" if unit_name.endswith(".slice") else "Scope"
    return SystemdManager(layout, dict(paths), Unit("", unit_name, "", kind), started=True, run=run)
