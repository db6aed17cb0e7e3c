"""The D-Bus client of the systemd driver, checked against jeepney as an oracle (byte for byte on what we send,
value for value on what we read), and a whole connection against a fake systemd on a unix socket (no root)."""

import os
import socket
import threading

import pytest

from pyrunc.cgroups import dbus
from pyrunc.errors import PyruncError

jeepney = pytest.importorskip("jeepney", reason="jeepney is the oracle (pip install -e '.[test]')")
from jeepney import DBusAddress, new_error, new_method_call, new_method_return, new_signal  # noqa: E402
from jeepney.low_level import Message  # noqa: E402

SYSTEMD = DBusAddress("/org/freedesktop/systemd1", bus_name="org.freedesktop.systemd1",
                      interface="org.freedesktop.systemd1.Manager")

# a StartTransientUnit body with every property type the driver sends
PROPS = [
    ("Description", ("s", "libcontainer container c1")),
    ("Slice", ("s", "kubepods-besteffort-pod1.slice")),
    ("Delegate", ("b", True)),
    ("PIDs", ("au", [4242])),
    ("MemoryLimit", ("t", 64 << 20)),
    ("CPUShares", ("t", 512)),
    ("CPUQuotaPerSecUSec", ("t", 2 ** 64 - 1)),
    ("AllowedCPUs", ("ay", b"\x03")),
    ("DeviceAllow", ("a(ss)", [("/dev/char/1:3", "rwm"), ("char-136", "rwm")])),
    ("DevicePolicy", ("s", "strict")),
    ("DefaultDependencies", ("b", False)),
]
START = ("cri-containerd-abc.scope", "replace", PROPS, [])


def test_split_signatures():
    assert dbus.split("ssa(sv)a(sa(sv))") == ["s", "s", "a(sv)", "a(sa(sv))"]
    assert dbus.split("a{sv}uo") == ["a{sv}", "u", "o"]
    with pytest.raises(ValueError):
        dbus.split("a(s")


def test_start_transient_unit_bytes_match_jeepney():
    ours = dbus.message(dbus.METHOD_CALL, 7, {dbus.PATH: SYSTEMD.object_path, dbus.INTERFACE: SYSTEMD.interface,
                                              dbus.MEMBER: "StartTransientUnit",
                                              dbus.DESTINATION: SYSTEMD.bus_name},
                        "ssa(sv)a(sa(sv))", START)
    theirs = new_method_call(SYSTEMD, "StartTransientUnit", "ssa(sv)a(sa(sv))", START).serialise(serial=7)
    assert ours == theirs


@pytest.mark.parametrize("sig,body", [
    ("sb", ("cri-containerd-abc.scope", True)),  # SetUnitProperties' head
    ("sba(sv)", ("x.scope", True, [("TasksMax", ("t", 100)), ("CPUWeight", ("t", 39)), ("IOWeight", ("t", 100))])),
    ("ss", ("x.scope", "replace")),  # StopUnit
    ("s", ("x.scope",)),  # ResetFailedUnit, GetUnit
    ("yniqxtd", (255, -2, -3, 65535, -(2 ** 63), 2 ** 64 - 1, 0.5)),
    ("a{sv}", ({"a": ("u", 1), "b": ("as", ["x", "yz"])},)),
    ("(yv)ay", ((1, ("g", "sa(sv)")), b"")),
])
def test_bodies_match_jeepney_both_ways(sig, body):
    theirs = new_method_call(SYSTEMD, "M", sig, body).serialise(serial=1)
    ours = dbus.message(dbus.METHOD_CALL, 1, {dbus.PATH: SYSTEMD.object_path, dbus.INTERFACE: SYSTEMD.interface,
                                              dbus.MEMBER: "M", dbus.DESTINATION: SYSTEMD.bus_name}, sig, body)
    assert ours == theirs
    mtype, _, serial, fields, parsed = dbus.parse(theirs)
    assert (mtype, serial, fields[dbus.MEMBER], fields[dbus.SIGNATURE]) == (dbus.METHOD_CALL, 1, "M", sig)
    assert parsed == Message.from_buffer(theirs).body


def test_parse_what_systemd_sends():
    # JobRemoved(u id, o job, s unit, s result), big-endian too (a peer may send either)
    sig = new_signal(SYSTEMD, "JobRemoved", "uoss", (12, "/org/freedesktop/systemd1/job/12", "x.scope", "done"))
    for endian in ("<", ">"):
        from jeepney.low_level import Endianness

        sig.header.endianness = Endianness.little if endian == "<" else Endianness.big
        data = sig.serialise(serial=3)
        assert dbus.message_length(data) == len(data)
        mtype, _, _, fields, body = dbus.parse(data)
        assert mtype == dbus.SIGNAL and fields[dbus.MEMBER] == "JobRemoved"
        assert body == (12, "/org/freedesktop/systemd1/job/12", "x.scope", "done")


def test_refuses_malformed_values():
    with pytest.raises(ValueError, match="variant signature"):
        dbus.marshal("v", [("ss", ("a", "b"))])
    with pytest.raises(ValueError, match="values for signature"):
        dbus.marshal("ss", ["a"])


# --- a whole conversation with a fake systemd ---------------------------------------------------------------

def server_messages(conn, on_auth=None):
    """The server side of a D-Bus connection: wait for AUTH and BEGIN, say OK, then yield each message until the
    client goes away.  on_auth(line) sees the AUTH line."""
    from jeepney.low_level import Parser

    conn.settimeout(10)
    buf = b""
    while b"BEGIN\r\n" not in buf:
        data = conn.recv(4096)
        if not data:
            return
        buf += data
    if on_auth:
        on_auth(buf.split(b"\r\n")[0])
    conn.sendall(b"OK 0123456789abcdef0123456789abcdef\r\n")
    parser = Parser()
    parser.add_data(buf.split(b"BEGIN\r\n", 1)[1])
    while True:
        msg = parser.get_next_message()
        if msg is not None:
            yield msg
            continue
        try:
            data = conn.recv(65536)
        except OSError:
            return
        if not data:
            return
        parser.add_data(data)


class FakeSystemd(threading.Thread):
    """Speaks the server side on a unix socket: checks the EXTERNAL auth, answers StartTransientUnit with a job
    path, sends JobRemoved for it (before an unrelated signal, after the reply) and an error for anything else."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(1)
        self.srv.settimeout(10)
        self.auth = None
        self.calls = []

    def run(self):
        conn, _ = self.srv.accept()
        for msg in server_messages(conn, lambda line: setattr(self, "auth", line)):
            self.calls.append((msg.header.fields[3], msg.body))
            if msg.header.fields[3] == "StartTransientUnit":
                job = "/org/freedesktop/systemd1/job/77"
                conn.sendall(new_signal(SYSTEMD, "JobNew", "uos", (77, job, msg.body[0])).serialise(serial=1))
                conn.sendall(new_method_return(msg, "o", (job,)).serialise(serial=2))
                conn.sendall(new_signal(SYSTEMD, "JobRemoved", "uoss", (76, "/j/76", "other", "done"))
                             .serialise(serial=3))
                conn.sendall(new_signal(SYSTEMD, "JobRemoved", "uoss", (77, job, msg.body[0], "done"))
                             .serialise(serial=4))
            else:
                conn.sendall(new_error(msg, "org.freedesktop.systemd1.NoSuchUnit", "s",
                                       (f"Unit {msg.body[0]} not loaded.",)).serialise(serial=5))


def test_connection_auth_call_signal_error(tmp_path):
    path = str(tmp_path / "private")
    fake = FakeSystemd(path)
    fake.start()
    with dbus.Connection(path, timeout=10) as c:
        job = c.call(SYSTEMD.bus_name, SYSTEMD.object_path, SYSTEMD.interface, "StartTransientUnit",
                     "ssa(sv)a(sa(sv))", START)[0]
        assert job == "/org/freedesktop/systemd1/job/77"
        body = c.wait_signal(SYSTEMD.interface, "JobRemoved", lambda b: b[1] == job, 10)
        assert body == (77, job, "cri-containerd-abc.scope", "done")
        with pytest.raises(dbus.DBusError) as ei:
            c.call(SYSTEMD.bus_name, SYSTEMD.object_path, SYSTEMD.interface, "ResetFailedUnit", "s", ("nope.scope",))
        assert ei.value.name == "org.freedesktop.systemd1.NoSuchUnit"
        assert str(ei.value) == "Unit nope.scope not loaded. (org.freedesktop.systemd1.NoSuchUnit)"
    fake.join(10)
    assert fake.auth == b"\0AUTH EXTERNAL " + str(os.geteuid()).encode().hex().encode()
    assert fake.calls[0] == ("StartTransientUnit", START)


def test_connection_refused_is_a_clear_error(tmp_path):
    with pytest.raises(OSError):
        dbus.Connection(str(tmp_path / "absent"), timeout=1)


def test_peer_closing_is_a_clear_error(tmp_path):
    path = str(tmp_path / "s")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def close_after_accept():
        conn, _ = srv.accept()
        conn.recv(100)
        conn.close()

    t = threading.Thread(target=close_after_accept, daemon=True)
    t.start()
    with pytest.raises(PyruncError, match=r"^d-bus connection .*/s closed by the peer$"):
        dbus.Connection(path, timeout=5)
    t.join(5)
    srv.close()
