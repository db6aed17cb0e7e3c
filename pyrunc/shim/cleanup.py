"""`containerd-shim-pyrunc-v1 delete`: clean up after a shim that is gone (SHIM.md §1.6).

Runs after every teardown (then there is nothing left to do, and it must be quick) and after a shim died: then
it force-deletes the container (kills what is left, removes its cgroup and state), unmounts the rootfs, and
prints the DeleteResponse containerd publishes: the init pid, 137, now.
"""

import os
import time


def delete(flags):
    from . import service

    cid = flags["id"]
    bundle = flags["bundle"] or os.getcwd()
    pid = 0
    try:
        from .. import fastjson

        with open(os.path.join(bundle, service.OPTIONS_FILE)) as f:
            root = fastjson.loads(f.read())["root"]
    except (OSError, ValueError, KeyError):
        root = None
    if root and os.path.isdir(os.path.join(root, cid)):
        from ..container.lifecycle import Runtime
        from ..errors import PyruncError
        from ..log import Logger

        rt = Runtime(root, Logger())
        try:
            pid = rt.store.load(cid).pid
        except PyruncError:
            pass
        try:
            rt.delete(cid, force=True)
        except PyruncError as e:
            os.write(2, f"delete {cid}: {e}\n".encode())
    rootfs = os.path.join(bundle, "rootfs")
    from . import mounts

    if mounts.mounted(rootfs):
        mounts.unmount(rootfs)
    try:
        os.unlink(os.path.join(bundle, service.OPTIONS_FILE))
    except FileNotFoundError:
        pass
    os.write(1, _delete_response(pid, 137, time.time_ns()))
    return 0


def _delete_response(pid, status, ns):
    from . import api, wire

    return api.DeleteResponse(pid=pid, exit_status=status, exited_at=wire.Timestamp.from_ns(ns)).encode()
