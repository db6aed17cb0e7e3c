"""`containerd-shim-pyrunc-v1 delete`: clean up after a shim that is gone (SHIM.md §1.6).

Runs after every teardown (then there is nothing left to do, and it must be quick) and after a shim died: then
it force-deletes the container (kills what is left, removes its cgroup and state), unmounts the rootfs, and
prints the DeleteResponse containerd publishes: the init pid, 137, now.
"""

import os
import time

from .main import OPTIONS_FILE


def delete(flags):
    cid = flags["id"]
    bundle = flags["bundle"] or os.getcwd()
    pid = 0
    try:
        with open(os.path.join(bundle, OPTIONS_FILE)) as f:
            doc = f.read()
    except OSError:  # after a clean teardown (the daemon's Delete removed it): no JSON decoder to import
        doc = None
    root = None
    if doc is not None:
        from .. import fastjson

        try:
            root = fastjson.loads(doc)["root"]
        except (ValueError, KeyError, TypeError):
            pass
    if root and os.path.isdir(os.path.join(root, cid)):
        from ..launch import need_site

        need_site()  # the library may load the C helper (cffi)
        from ..container.lifecycle import Runtime
        from ..errors import Logger, PyruncError

        rt = Runtime(root, Logger())
        try:
            pid = rt.store.load(cid).pid
        except PyruncError:
            pass
        try:
            rt.delete(cid, force=True)
        except PyruncError as e:
            os.write(2, f"delete {cid}: {e}\n".encode())
    if doc is not None:  # without the file nothing is mounted: Create writes it first, Delete removes it last
        from . import mounts

        rootfs = os.path.join(bundle, "rootfs")
        if mounts.unmount(rootfs):
            try:
                os.unlink(os.path.join(bundle, OPTIONS_FILE))
            except FileNotFoundError:
                pass
    os.write(1, delete_response(pid, 137, time.time_ns()))
    return 0


def _varint(n):
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def delete_response(pid, status, ns):
    """containerd.task.v2.DeleteResponse{1 pid, 2 exit_status, 3 exited_at Timestamp{1 seconds, 2 nanos}}, encoded
    here: importing the codec and every message (pyrunc/shim/api.py) would cost more than this whole command
    (tests/unit/test_shim_main.py checks it against api.DeleteResponse)."""
    sec, nanos = divmod(ns, 10**9)
    ts = (b"\x08" + _varint(sec) if sec else b"") + (b"\x10" + _varint(nanos) if nanos else b"")
    out = b""
    if pid:
        out += b"\x08" + _varint(pid)
    if status:
        out += b"\x10" + _varint(status)
    return out + b"\x1a" + _varint(len(ts)) + ts
