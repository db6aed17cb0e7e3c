"""The quick delete: a stopped container whose removal is a few rmdirs, done without lifecycle's machinery.

containerd execs `pyrunc delete` for every container, almost always once it has stopped.  Then there is nothing to
kill or wait for, and removing it is: the lock, one rmdir of each cgroup dir create made, the state directory.  This
module does exactly that with posix (no os, no cgroup manager: pyrunc/launch.py), and leaves everything else to
lifecycle.Runtime.delete: a container that is not stopped, a cgroup that is busy or not empty (the manager waits,
retries for 3 s and names it), the systemd driver's unit, an Intel RDT group, a rootfs without its own mount
namespace to detach, a container without its own pid namespace (whose processes outlive the init: they are
killed, wherever they are in its cgroups), poststop hooks, a dead create's leftovers.  A first rmdir that fails
changes nothing the full path would not do itself: it sees the dirs already gone as removed.
"""

import posix

from .. import errors  # its classes are made when first named (errors.py)

_EBUSY, _ENOTEMPTY = 16, 39  # errno's values on Linux (the errno module is not loaded here)


def quick(store, log, cid, force=False):
    """Delete container cid if it is stopped and quick to remove (see above); False: not done, nothing changed
    but possibly some of its empty cgroup dirs removed.  Raises what loading it raises (a bad id, a bad state)."""
    try:
        with store.lock(cid):
            c = store.load(cid)
            doc = c.doc
            linux = (doc.get("config") or {}).get("linux") or {}
            made = {ns.get("type") for ns in linux.get("namespaces") or () if not ns.get("path")}
            if not {"mount", "pid"} <= made or doc.get("intel_rdt") or doc.get("cgroup_unit") or (
                    doc.get("hooks") or {}).get("poststop"):
                return False
            status = c.status()
            if log.debug_enabled:  # the messages are built only under --debug (a dict of ten paths, here)
                log.debug(f"delete {cid}: status {status}{', force' if force else ''}")
            if status != "stopped" or not _remove_cgroups(doc):
                return False
            if log.debug_enabled:
                log.debug(f"delete {cid}: cgroup {doc.get('cgroup_paths') or None} removed")
            store.remove(cid)
            return True
    except errors.NotFound:  # no such container, or a dead create's leftovers: the full path says or does it
        return False


def _remove_cgroups(doc):
    """One rmdir of each cgroup dir create made, deepest first, as cgroups.Manager.destroy orders them: True if all
    of the container's own dirs are gone.  A parent made on the way (containerd's /<namespace>) goes only if empty:
    other containers may live below it."""
    paths = doc.get("cgroup_paths") or {}
    created = doc.get("cgroup_created")
    if paths and created is None:  # a state without the record: the manager knows what to do
        return False
    own = set(paths.values())
    for d in sorted(set(created or ()), key=lambda p: p.count("/"), reverse=True):
        try:
            posix.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError as e:
            if d in own or e.errno not in (_EBUSY, _ENOTEMPTY):
                return False
    return True
