"""A minimal D-Bus client, enough for the systemd cgroup driver: marshalling by signature, EXTERNAL auth over a
unix socket, blocking method calls, and signals kept for whoever waits on them.

Why not a library: the driver is used by create and delete, so its import is paid on every such verb.  Measured
with `python -X importtime` in the venv on the development VM (best of 12, bytecode cached), jeepney 0.9 costs
11.4 ms (it imports enum, re, tempfile, socket), dbus-python needs libdbus and a C build; this module needs only
`_socket` and `_struct` (1.4 ms).  `socket` itself is avoided too: it imports enum and selectors (~4.7 ms).

Values follow jeepney's conventions (its test suite is our oracle): a variant is a (signature, value) pair, a
struct a tuple, an array a list (a{..} also takes a dict, ay also bytes), b a bool.

Wire format (D-Bus specification, "Message Protocol"): a 12-byte fixed header (endianness 'l'/'B', type, flags,
version 1, body length, serial), the header fields a(yv), padding to 8, the body.  Every value is aligned to its
type's alignment counted from the start of the message; the body starts 8-aligned, so a body marshalled on its own
from offset 0 is aligned the same.
"""

import _socket
import _struct
import os
import time

from pyrunc.errors import PyruncError

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
NO_REPLY_EXPECTED = 1
# header field codes and their types
PATH, INTERFACE, MEMBER, ERROR_NAME, REPLY_SERIAL, DESTINATION, SENDER, SIGNATURE = 1, 2, 3, 4, 5, 6, 7, 8
_FIELD_SIG = {PATH: "o", INTERFACE: "s", MEMBER: "s", ERROR_NAME: "s", REPLY_SERIAL: "u", DESTINATION: "s",
              SENDER: "s", SIGNATURE: "g", 9: "u"}

_FIXED = {"y": ("B", 1), "b": ("I", 4), "n": ("h", 2), "q": ("H", 2), "i": ("i", 4), "u": ("I", 4),
          "x": ("q", 8), "t": ("Q", 8), "d": ("d", 8), "h": ("I", 4)}
_ALIGN = {"s": 4, "o": 4, "g": 1, "v": 1, "a": 4, "(": 8, "{": 8}


class DBusError(PyruncError):
    """An error reply: .name is the D-Bus error name (org.freedesktop.systemd1.NoSuchUnit, ...)."""

    def __init__(self, name, message):
        super().__init__(f"{message} ({name})" if message else name)
        self.name = name


# --- signatures -----------------------------------------------------------------------------------------------

def _end(sig, i):
    """Index just past the single complete type starting at sig[i]."""
    if i >= len(sig):
        raise ValueError(f"bad D-Bus signature {sig!r}: incomplete")
    c = sig[i]
    if c == "a":
        return _end(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        i += 1
        while i < len(sig) and sig[i] != close:
            i = _end(sig, i)
        if i >= len(sig):
            raise ValueError(f"bad D-Bus signature {sig!r}: unclosed {c}")
        return i + 1
    if c in _FIXED or c in "sogv":
        return i + 1
    raise ValueError(f"bad D-Bus signature {sig!r} at {i}")


def split(sig):
    """"sa(sv)u" -> ["s", "a(sv)", "u"]."""
    out, i = [], 0
    while i < len(sig):
        j = _end(sig, i)
        out.append(sig[i:j])
        i = j
    return out


def _alignment(t):
    return _FIXED[t[0]][1] if t[0] in _FIXED else _ALIGN[t[0]]


# --- marshalling ----------------------------------------------------------------------------------------------

def _pad(buf, n):
    buf.extend(b"\0" * (-len(buf) % n))


def _put(buf, t, v, e):
    c = t[0]
    if c in _FIXED:
        fmt, size = _FIXED[c]
        _pad(buf, size)
        buf += _struct.pack(e + fmt, (1 if v else 0) if c == "b" else v)
    elif c in "so":
        data = v.encode()
        _pad(buf, 4)
        buf += _struct.pack(e + "I", len(data)) + data + b"\0"
    elif c == "g":
        data = v.encode()
        buf.append(len(data))
        buf += data + b"\0"
    elif c == "v":
        vsig, val = v
        if len(split(vsig)) != 1:
            raise ValueError(f"variant signature {vsig!r} is not one complete type")
        _put(buf, "g", vsig, e)
        _put(buf, vsig, val, e)
    elif c in "({":
        fields = split(t[1:-1])
        if len(v) != len(fields):
            raise ValueError(f"{len(v)} values for struct {t}")
        _pad(buf, 8)
        for ft, fv in zip(fields, v):
            _put(buf, ft, fv, e)
    elif c == "a":
        et = t[1:]
        _pad(buf, 4)
        at = len(buf)
        buf += b"\0\0\0\0"
        _pad(buf, _alignment(et))  # padding to the first element is not counted in the array length
        start = len(buf)
        if et == "y" and isinstance(v, (bytes, bytearray)):
            buf += v
        else:
            for item in (v.items() if isinstance(v, dict) else v):
                _put(buf, et, item, e)
        _struct.pack_into(e + "I", buf, at, len(buf) - start)
    else:
        raise ValueError(f"bad D-Bus type {t!r}")


def marshal(sig, values, endian="<"):
    """The body bytes for values (a sequence, one per complete type of sig)."""
    types = split(sig)
    if len(types) != len(values):
        raise ValueError(f"{len(values)} values for signature {sig!r}")
    buf = bytearray()
    for t, v in zip(types, values):
        _put(buf, t, v, endian)
    return bytes(buf)


def _get(data, pos, t, e):
    c = t[0]
    if c in _FIXED:
        fmt, size = _FIXED[c]
        pos += -pos % size
        v = _struct.unpack_from(e + fmt, data, pos)[0]
        return (bool(v) if c == "b" else v), pos + size
    if c in "so":
        pos += -pos % 4
        n = _struct.unpack_from(e + "I", data, pos)[0]
        return data[pos + 4:pos + 4 + n].decode(), pos + 5 + n
    if c == "g":
        n = data[pos]
        return data[pos + 1:pos + 1 + n].decode(), pos + 2 + n
    if c == "v":
        vsig, pos = _get(data, pos, "g", e)
        val, pos = _get(data, pos, vsig, e)
        return (vsig, val), pos
    if c in "({":
        pos += -pos % 8
        out = []
        for ft in split(t[1:-1]):
            v, pos = _get(data, pos, ft, e)
            out.append(v)
        return tuple(out), pos
    if c == "a":
        et = t[1:]
        pos += -pos % 4
        n = _struct.unpack_from(e + "I", data, pos)[0]
        pos += 4
        pos += -pos % _alignment(et)
        end = pos + n
        if et == "y":
            return bytes(data[pos:end]), end
        items = []
        while pos < end:
            v, pos = _get(data, pos, et, e)
            items.append(v)
        return (dict(items) if et[0] == "{" else items), end
    raise ValueError(f"bad D-Bus type {t!r}")


def unmarshal(sig, data, endian="<"):
    out, pos = [], 0
    for t in split(sig):
        v, pos = _get(data, pos, t, endian)
        out.append(v)
    return tuple(out)


def message(mtype, serial, fields, sig="", body=(), flags=0):
    """One message: fields {code: value} (types from the spec), sorted by code as jeepney and libdbus send them."""
    fields = dict(fields)
    if sig:
        fields[SIGNATURE] = sig
    payload = marshal(sig, body) if sig else b""
    hdr = bytearray(_struct.pack("<cBBBII", b"l", mtype, flags, 1, len(payload), serial))
    _put(hdr, "a(yv)", [(code, (_FIELD_SIG[code], fields[code])) for code in sorted(fields)], "<")
    _pad(hdr, 8)
    return bytes(hdr) + payload


def message_length(data):
    """Total length of the message starting data (>= 16 bytes)."""
    e = "<" if data[:1] == b"l" else ">"
    body_len, _, fields_len = _struct.unpack_from(e + "III", data, 4)
    head = 16 + fields_len
    return head + (-head % 8) + body_len


def parse(data):
    """A whole message -> (type, flags, serial, {field code: value}, body tuple)."""
    e = "<" if data[:1] == b"l" else ">"
    mtype, flags, _version, body_len, serial = _struct.unpack_from(e + "BBBII", data, 1)
    raw, pos = _get(data, 12, "a(yv)", e)
    fields = {code: v[1] for code, v in raw}
    pos += -pos % 8
    sig = fields.get(SIGNATURE, "")
    body = unmarshal(sig, data[pos:pos + body_len], e) if sig else ()
    return mtype, flags, serial, fields, body


# --- the connection -------------------------------------------------------------------------------------------

class Connection:
    """A blocking connection: to a bus daemon (bus=True: Hello first) or peer-to-peer (systemd's private socket).

    Signals received while waiting for a reply are kept in .signals for wait_signal()."""

    def __init__(self, path, *, bus=False, timeout=30.0):
        self.path = path
        self.timeout = timeout
        self.serial = 0
        self.signals = []
        self._buf = bytearray()
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
            self._auth()
            if bus:
                self.unique_name = self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                             "Hello")[0]
        except BaseException:
            self.sock.close()
            raise

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _auth(self):
        """SASL EXTERNAL with our uid (the peer checks it against SO_PEERCRED) and BEGIN, sent together as sd-bus
        clients send them (spec "Authentication": a client may pipeline BEGIN).  Sending BEGIN only after the OK
        is worse here: BEGIN and the first message then reach systemd (v252) in one read, and it leaves that
        message unprocessed until more bytes arrive, so the first call got no reply."""
        uid = str(os.geteuid()).encode().hex().encode()
        self.sock.sendall(b"\0AUTH EXTERNAL " + uid + b"\r\nBEGIN\r\n")
        line = self._line()
        if not line.startswith(b"OK "):
            raise PyruncError(f"d-bus authentication on {self.path} refused: {line.decode(errors='replace')}")

    def _line(self):
        while b"\r\n" not in self._buf:
            self._fill()
        line, _, rest = bytes(self._buf).partition(b"\r\n")
        self._buf = bytearray(rest)
        return line

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise PyruncError(f"d-bus connection {self.path} closed by the peer")
        self._buf += chunk

    def _read(self, deadline):
        while True:
            if len(self._buf) >= 16:
                n = message_length(self._buf)
                if len(self._buf) >= n:
                    data, self._buf = bytes(self._buf[:n]), self._buf[n:]
                    return parse(data)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            self._fill()

    def send(self, mtype, fields, sig="", body=(), flags=0):
        self.serial += 1
        self.sock.sendall(message(mtype, self.serial, fields, sig, body, flags))
        return self.serial

    def call(self, dest, path, iface, member, sig="", body=(), timeout=None):
        """Call a method and return its reply body; an error reply raises DBusError."""
        fields = {PATH: path, MEMBER: member}
        if iface:
            fields[INTERFACE] = iface
        if dest:
            fields[DESTINATION] = dest
        serial = self.send(METHOD_CALL, fields, sig, body)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                mtype, _, _, f, rbody = self._read(deadline)
            except TimeoutError:
                raise PyruncError(f"d-bus call {iface}.{member} on {self.path}: no reply in "
                                  f"{self.timeout if timeout is None else timeout:g} s") from None
            if mtype == SIGNAL:
                self.signals.append((f.get(INTERFACE), f.get(MEMBER), rbody))
            elif f.get(REPLY_SERIAL) == serial:
                if mtype == ERROR:
                    raise DBusError(f.get(ERROR_NAME, "?"), rbody[0] if rbody and isinstance(rbody[0], str) else "")
                return rbody

    def wait_signal(self, iface, member, match, timeout):
        """The body of the first signal iface.member whose body satisfies match(body), kept or still to come;
        None when none came within timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for i, (si, sm, body) in enumerate(self.signals):
                if si == iface and sm == member and match(body):
                    del self.signals[i]
                    return body
            self.signals.clear()  # nothing else is waited for: keep the list short
            try:
                mtype, _, _, f, body = self._read(deadline)
            except TimeoutError:
                return None
            if mtype == SIGNAL:
                self.signals.append((f.get(INTERFACE), f.get(MEMBER), body))
