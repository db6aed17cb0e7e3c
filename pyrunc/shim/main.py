"""containerd-shim-pyrunc-v1: the command line containerd runs (SHIM.md §1).

    <shim> -namespace NS -address ADDR -publish-binary EXE -id ID [-debug] start     print the socket address
    <shim> -namespace NS -address ADDR -publish-binary EXE -id ID -bundle B delete   clean up after a dead shim
    <shim> -v                                                                         version

`start` and `delete` are on the critical path of every container (containerd waits for both), so this module
imports only the standard modules Python has already loaded at start-up; the daemon loads the rest after the
fork.  `start` forks the daemon from its own interpreter (no second Python start-up): no thread exists yet, and
the daemon gets /dev/null for stdin and stdout and the bundle's `log` fifo as stderr, never containerd's pipe,
which containerd reads to EOF (CombinedOutput).
"""

import os
import sys

from .. import replace_file

VERSION = "0.1.0"
_STRING_FLAGS = ("namespace", "address", "publish-binary", "id", "bundle", "socket")
_BOOL_FLAGS = ("debug", "v", "info")
SOCKET_DIR = "/run/containerd/s"
GROUP_LABELS = ("io.containerd.runc.v2.group", "io.kubernetes.cri.sandbox-id")
# in the bundle, written first by Create (the state root a cleanup after a crash needs) and removed last by Delete,
# once the rootfs is unmounted: its absence means nothing is left to clean up (cleanup.py, launcher.py)
OPTIONS_FILE = "pyrunc-shim.json"


class Usage(Exception):
    pass


def parse(argv):
    """Go `flag` rules: -name or --name, a value as the next argument or after `=`, flags end at the first
    positional (the action) or at `--`.  Returns (flags dict, action or "")."""
    flags = {k: "" for k in _STRING_FLAGS}
    flags.update({k: False for k in _BOOL_FLAGS})
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        name, eq, value = a.lstrip("-").partition("=")
        if name in _BOOL_FLAGS:
            flags[name] = value.lower() not in ("false", "0", "f") if eq else True
        elif name in _STRING_FLAGS:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise Usage(f"flag needs an argument: -{name}")
                value = argv[i]
            flags[name] = value
        else:
            raise Usage(f"flag provided but not defined: -{name}")
        i += 1
    return flags, (argv[i] if i < len(argv) else "")


def group_key(annotations, cid):
    for label in GROUP_LABELS:
        if (annotations or {}).get(label):
            return annotations[label]
    return cid


def socket_path(address, namespace, key):
    """The runc shim's naming: /run/containerd/s/hex(sha256("<containerd address>/<ns>/<grouping key>"))."""
    import _sha256

    return os.path.join(SOCKET_DIR, _sha256.sha256(os.path.join(address, namespace, key).encode()).hexdigest())


def _annotations(bundle):
    """The config's annotations when one of GROUP_LABELS may be among them, else {} without parsing (or importing
    a JSON decoder: ~1.3 ms of `start`).  A label that is not in the bytes can only be there \\u-escaped."""
    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            data = f.read()
    except OSError:
        return {}
    if b"\\u" not in data and not any(label.encode() in data for label in GROUP_LABELS):
        return {}
    from .. import fastjson

    try:
        cfg = fastjson.loads(data.decode())
    except ValueError:
        return {}
    return cfg.get("annotations") or {}


def _listen(path):
    """A listening socket at path, or None when a live shim already listens there (a container of the same pod).
    _socket, not socket: `socket` imports enum (~4 ms), and start is on every container's critical path."""
    import _socket

    os.makedirs(SOCKET_DIR, mode=0o711, exist_ok=True)
    for _ in range(2):
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            s.bind(path)
        except OSError as e:
            s.close()
            if e.errno != 98:  # EADDRINUSE
                raise
            c = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
            try:
                c.connect(path)
                return None  # live: reuse it
            except OSError:
                os.unlink(path)  # stale: left by a SIGKILLed shim
                continue
            finally:
                c.close()
        os.chmod(path, 0o600)
        s.listen(128)
        return s
    raise OSError(f"listen {path}: address still in use")


def start(flags):
    bundle = flags["bundle"] or os.getcwd()
    cid = flags["id"]
    if not cid:
        raise Usage("start: -id is required")
    path = socket_path(flags["address"], flags["namespace"], group_key(_annotations(bundle), cid))
    address = "unix://" + path
    cgroup = shim_cgroup(_read_options())  # before anything is made: bad options leave nothing behind
    sock = _listen(path)
    # containerd reads `address` on restart, and the daemon at start-up to know which socket to remove at
    # shutdown: written before the daemon exists (containerd/containerd#5195)
    replace_file(os.path.join(bundle, "address"), address)
    if sock is None:
        os.write(1, address.encode())
        return 0
    pid = os.fork()
    if pid == 0:
        _exit = os._exit
        try:
            _become_daemon(bundle, sock)
            warming = None
            if not cgroup:  # else the parent moves us to shim_cgroup: a write to where we were would undo it
                from ..cgroups import warm

                # first: the cgroup lock's grace period (8-20 ms here) then passes while the daemon imports, and
                # the first Create's cgroup steps find the lock ready (Service.create hands this to the library)
                warming = warm.start()
            import gc

            gc.disable()  # until the daemon has imported Create's modules (daemon.run): ~2 ms of collections
            need_site()  # the daemon loads third-party code (cffi for the C helper): start's parent did not
            from .daemon import run

            code = run(flags, bundle, address, warming)
        except BaseException:  # noqa: BLE001: never return into start's stack
            code = 1
            try:
                import traceback

                os.write(2, traceback.format_exc().encode())
            except BaseException:  # noqa: BLE001
                pass
        _exit(code)
    sock.close()
    if cgroup:
        try:
            join_cgroup(cgroup, pid)
        except BaseException:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            for leftover in (path, os.path.join(bundle, "address")):
                try:
                    os.unlink(leftover)
                except FileNotFoundError:
                    pass
            raise
    _oom_score_adj(pid)
    os.write(1, address.encode())
    return 0


def need_site():
    from ..launch import need_site

    need_site()


def _become_daemon(bundle, sock):
    os.setsid()
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    try:  # containerd holds the read side open (O_RDWR): this never blocks; writes never block either
        log = os.open(os.path.join(bundle, "log"), os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        log = null
    os.dup2(log, 2)
    for fd in {null, log}:
        if fd > 2:
            os.close(fd)
    if sock.fileno() != 3:
        os.dup2(sock.fileno(), 3, inheritable=False)
        sock.close()
    else:
        sock.detach()  # fd 3 stays; the daemon wraps it again


def _fields(data):
    """{field number: last value} of a protobuf message's length-delimited fields (strings, bytes, messages);
    other wire types are skipped.  `start` reads its options with this: the codec (api.py) costs more than it."""
    out, i, n = {}, 0, len(data)

    def varint():
        nonlocal i
        v = shift = 0
        while True:
            if i >= n or shift > 63:
                raise ValueError("truncated varint")
            b = data[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v

    while i < n:
        key = varint()
        kind = key & 7
        if kind == 0:
            varint()
        elif kind == 1:
            i += 8
        elif kind == 5:
            i += 4
        elif kind == 2:
            length = varint()
            if i + length > n:
                raise ValueError("truncated field")
            out[key >> 3] = data[i:i + length]
            i += length
        else:
            raise ValueError(f"wire type {kind}")
    if i > n:
        raise ValueError("truncated field")
    return out


RUNC_OPTIONS = "containerd.runc.v1.Options"  # 3 shim_cgroup
RUNTIME_OPTIONS = "runtimeoptions.v1.Options"  # 2 config_path: a TOML file (service.py reads the rest)


def shim_cgroup(options):
    """The shim_cgroup of the runtime options containerd writes on `start`'s stdin (a google.protobuf.Any), or
    "": a containerd.runc.v1.Options field, or the `shim_cgroup` key of runtimeoptions.v1.Options' TOML file."""
    if not options:
        return ""
    try:
        any_ = _fields(options)
        name = any_.get(1, b"").decode().rsplit("/", 1)[-1]
        value = _fields(any_.get(2, b""))
    except ValueError as e:
        raise Usage(f"start: runtime options: {e}") from None
    if name == RUNC_OPTIONS:
        return value.get(3, b"").decode()
    if name != RUNTIME_OPTIONS or not value.get(2):
        return ""
    path = value[2].decode()
    try:
        with open(path, "rb") as f:
            doc = f.read()
    except OSError as e:
        raise Usage(f"start: read runtime options {path}: {os.strerror(e.errno).lower()}") from None
    if b"shim_cgroup" not in doc:
        return ""  # no TOML parser on start's path when the key is not there
    import tomllib

    try:
        cg = tomllib.loads(doc.decode()).get("shim_cgroup", "")
    except ValueError as e:
        raise Usage(f"start: runtime options {path}: {e}") from None
    if not isinstance(cg, str):
        raise Usage(f"start: runtime options {path}: shim_cgroup must be a string")
    return cg


def _read_options():
    """All of stdin (containerd closes it after the options; nothing when it sends none)."""
    chunks = []
    try:
        while chunk := os.read(0, 65536):
            chunks.append(chunk)
    except OSError:  # no stdin at all
        pass
    return b"".join(chunks)


def join_cgroup(path, pid, root="/sys/fs/cgroup"):
    """Move pid into the existing cgroup `path` (absolute, inside the cgroup tree): on cgroup v2 the one under
    root, on v1 (and hybrid) the one of every hierarchy that has it, as containerd-shim-runc-v2 does for
    shim_cgroup.  Found in no hierarchy: an error naming it."""
    parts = path.split("/")
    if not path.startswith("/") or ".." in parts:
        raise Usage(f"start: shim_cgroup {path!r}: not an absolute cgroup path")
    rel = "/".join(p for p in parts if p)
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        hierarchies = [root]
    else:
        hierarchies = [os.path.join(root, h) for h in sorted(os.listdir(root))
                       if h != "unified" and not os.path.islink(os.path.join(root, h))]
    joined = False
    for h in hierarchies:
        d = os.path.join(h, rel) if rel else h
        if not os.path.isdir(d):
            continue
        try:
            fd = os.open(os.path.join(d, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, str(pid).encode())
            finally:
                os.close(fd)
        except OSError as e:
            raise Usage(f"start: join shim_cgroup {path}: {d}: {os.strerror(e.errno).lower()}") from None
        joined = True
    if not joined:
        raise Usage(f"start: shim_cgroup {path}: no such cgroup")


def _oom_score_adj(pid):
    """containerd's score + 1: under memory pressure the kernel kills the shim before containerd."""
    try:
        with open("/proc/self/oom_score_adj") as f:
            score = int(f.read())
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write(str(min(score + 1, 1000)))
    except (OSError, ValueError):
        pass


def main(argv=None):
    """Run as the program (argv None), leave with os._exit: every byte is already out (os.write, no buffered
    stream), and the interpreter's finalization (~2 ms) would stand between containerd and its answer to `start`
    and `delete`."""
    code = _main(sys.argv[1:] if argv is None else argv)
    if argv is None:
        if sys.argv[-1] == "start":
            _after_start(code)
        os._exit(code)
    return code


def _after_start(code):
    """After a `start` that succeeded (its answer is out): turn the installed script into the /bin/sh + Python
    launcher, once (launcher.py: the `delete` after every clean teardown then costs a shell, not a Python).
    containerd waits for this process to exit: an installed launcher costs a read of 10 bytes, no import."""
    if code:
        return
    try:
        with open(sys.argv[0], "rb") as f:
            if f.read(10) == b"#!/bin/sh\n":
                return
    except OSError:
        return
    from .launcher import install

    install(sys.argv[0])


def _main(argv):
    try:
        flags, action = parse(argv)
        if flags["v"]:
            os.write(1, f"containerd-shim-pyrunc-v1:\n  Version:  {VERSION}\n  Runtime:  pyrunc\n".encode())
            return 0
        if action == "start":
            return start(flags)
        if action == "delete":
            from .cleanup import delete  # need_site() there, only when a crash left something to clean up

            return delete(flags)
        if action == "":
            need_site()
            from .daemon import run

            return run(flags, os.getcwd(), None)
        raise Usage(f"unknown action {action!r}")
    except Usage as e:
        os.write(2, f"containerd-shim-pyrunc-v1: {e}\n".encode())
        return 2
    except Exception as e:  # noqa: BLE001: one line, as containerd shows it
        os.write(2, f"containerd-shim-pyrunc-v1: {e}\n".encode())
        return 1
