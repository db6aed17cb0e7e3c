"""The state store: <root>/<id>/state.json, written atomically, one lock per container (Lock).

Status is never stored: it is derived on every read from the init process (pid plus its start time from
/proc/<pid>/stat, so a recycled pid is never mistaken for the container), the exec fifo (present until `start`
consumed it: "created") and the freezer ("paused").  A zombie init counts as stopped, as in runc.
"""

import _signal  # the C module, loaded by every interpreter (`signal` imports enum)
import _thread  # built in, loaded by pyrunc.errors
import marshal  # built in: the state's copy (STATE_COPY)
import posix  # not os: state, start, kill and delete never import it (~1.5 ms; pyrunc/launch.py)

from .. import abspath, errors, read_bytes, write_beside  # errors: its classes are made when first named
from .. import exists as _exists, isdir as _isdir

STATE_FILE = "state.json"
# state.json's document again, in marshal form, written and replaced with it: what load() reads.  marshal is built
# into the interpreter, where fastjson's parser is `_json`, a shared object that costs ~0.2 ms to load here (1.5%
# of `state`, `kill`, `start` and `delete`).  state.json stays the record, which `list`, tools and tests read; where
# the copy is missing or unreadable (a container made before it existed) load() reads state.json.  Whatever
# rewrites state.json other than Container.save must remove the copy.
STATE_COPY = ".state.marshal"
# What a create in progress has made so far (rootfs, cgroup), written before it makes them: if pyrunc dies before
# state.json exists, `delete` still knows what to remove.  Never read by state/list: the container does not exist.
PROVISIONAL = "creating.json"
FIFO = "exec.fifo"
LOCK_FILE = ".lock"  # the container's lock (Lock)
# what create and start leave in the directory; the copy goes first, so that it never outlives state.json
_OWN_FILES = (STATE_COPY, STATE_FILE, PROVISIONAL, FIFO, FIFO + ".start", LOCK_FILE)
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+.-")
MAX_ID = 1024


def _join(root, cid):
    """root/cid, root being absolute and normalized (Store's): os.path.join's result for these, without os."""
    return f"{root}/{cid}" if root != "/" else "/" + cid


def valid_id(cid):
    """[A-Za-z0-9_+.-]{1,1024}, not . or .. (a set check: `re` alone costs milliseconds at start-up)."""
    return 0 < len(cid) <= MAX_ID and cid not in (".", "..") and _ID_CHARS.issuperset(cid)


def check_id(cid):
    if not cid:
        raise errors.UsageError("container id cannot be empty")
    if not valid_id(cid):
        raise errors.UsageError(f"invalid container id format: {cid}")
    return cid


def proc_start_time(pid):
    """(state char, start time in clock ticks) of pid, or None if there is no such process."""
    try:
        data = read_bytes(f"/proc/{pid}/stat")
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[19])


class Container:
    """One container's stored state: a dict `doc` plus the directory it lives in."""

    def __init__(self, root, cid, doc):
        self.root = root
        self.id = cid
        self.dir = _join(root, cid)
        self.doc = doc

    @property
    def pid(self):
        return self.doc.get("init_pid", 0)

    def alive(self):
        """True while the init process recorded at create still exists and is not a zombie."""
        pid = self.pid
        if not pid:
            return False
        st = proc_start_time(pid)
        return bool(st) and st[1] == self.doc.get("init_start") and st[0] not in ("Z", "X")

    def paused(self):
        # The freezer file is read here directly (the same file cgroups.Manager.frozen() reads) so that `state`
        # and `list` need not import the cgroups package, which parses mountinfo to open a manager.
        paths = self.doc.get("cgroup_paths") or {}
        if "freezer" in paths:
            name, frozen = paths["freezer"] + "/freezer.state", b"FROZEN"
        elif "" in paths:
            name, frozen = paths[""] + "/cgroup.freeze", b"1"
        else:
            return False
        try:
            return read_bytes(name).strip() == frozen
        except OSError:
            return False

    def status(self):
        if not self.alive():
            return "stopped"
        if self.paused():
            return "paused"
        if _exists(f"{self.dir}/{FIFO}"):
            return "created"
        return "running"

    def oci_state(self):
        """The state document as `runc state` prints it (field order included)."""
        status = self.status()
        d = self.doc
        out = {
            "ociVersion": d.get("ociVersion", ""),
            "id": self.id,
            "pid": self.pid if status != "stopped" else 0,
            "status": status,
            "bundle": d.get("bundle", ""),
            "rootfs": d.get("rootfs", ""),
            "created": d.get("created", ""),
        }
        if d.get("annotations"):
            out["annotations"] = d["annotations"]
        out["owner"] = ""
        return out

    def save(self, name=STATE_FILE):
        """Write a temp file in the same directory and rename it into place (fsync-free: tmpfs under /run).

        state.json, which `state` and `list` read without the lock, is replaced atomically (rename over the old
        one).  The creation record, read only by delete under the lock (create holds it while writing), is
        rewritten as unlink + rename to a free name: on ext4 (a /run on disk) a rename over an existing file
        makes the kernel write the new file's data out at once (auto_da_alloc, for editors' replace-by-rename),
        and unlinking a file whose blocks are allocated cost `delete` ~0.3 ms, several ms while that I/O was
        queued, against ~0.07 ms for one still only in the page cache.  A crash between the two steps leaves the
        new record complete in its temp file, which load_provisional reads."""
        self.place(self.write_temp(name), name)

    def write_temp(self, name=STATE_FILE):
        """save()'s first half: the document in its temp file (and, for state.json, its copy in another), whose
        paths are returned for place().  (create writes state.json's while the init sets itself up, and places
        them once the init is ready.)"""
        from .. import fastjson  # here: start, kill and delete read the copy and write nothing (~0.15 ms to load)

        text = fastjson.dumps(self.doc)
        tmps = [write_beside(f"{self.dir}/{name}", text, 0o600)]
        if name == STATE_FILE:  # what state.json says, read back: lists where the document had tuples
            tmps.append(write_beside(f"{self.dir}/{STATE_COPY}", marshal.dumps(fastjson.loads(text)), 0o600))
        return tmps

    def place(self, tmps, name=STATE_FILE, first=False):
        """save()'s second half: the temp files renamed into place.  For state.json the old copy goes first
        (unless this is the first state.json: create's), then state.json, then its new copy: a crash or a reader
        in between finds no copy, or one that agrees with state.json, never a stale one."""
        if name == PROVISIONAL:
            _unlink_if_there(f"{self.dir}/{PROVISIONAL}")
        elif len(tmps) > 1 and not first:
            _unlink_if_there(f"{self.dir}/{STATE_COPY}")
        posix.rename(tmps[0], f"{self.dir}/{name}")
        if len(tmps) > 1:
            posix.rename(tmps[1], f"{self.dir}/{STATE_COPY}")


def signal_init(c, sig):
    """Signal the init process through a pidfd checked against the recorded start time (never a recycled pid)."""
    if c.pid <= 0:  # none recorded (pidfd_open(0) would be EINVAL)
        raise errors.StateError("container not running")
    try:
        pidfd = posix.pidfd_open(c.pid)
    except ProcessLookupError:
        raise errors.StateError("container not running") from None
    try:
        if not c.alive():
            raise errors.StateError("container not running")
        _signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        raise errors.StateError("container not running") from None
    finally:
        posix.close(pidfd)


def _unlink_if_there(path):
    try:
        posix.unlink(path)
    except FileNotFoundError:
        pass


def _load_copy(d):
    """The document of d/STATE_COPY, or None: no copy, or one that does not read as a document."""
    try:
        doc = marshal.loads(read_bytes(f"{d}/{STATE_COPY}"))
    except (OSError, ValueError, EOFError, TypeError):
        return None
    return doc if type(doc) is dict else None


class Store:
    """All containers under one --root."""

    def __init__(self, root):
        self.root = abspath(root)

    def path(self, cid):
        return _join(self.root, check_id(cid))

    def load(self, cid):
        d = self.path(cid)
        doc = _load_copy(d)
        if doc is not None:
            return Container(self.root, cid, doc)
        from .. import fastjson  # a container without the copy (made before it existed)

        try:
            doc = fastjson.loads(read_bytes(f"{d}/{STATE_FILE}"))
        except FileNotFoundError:
            raise errors.NotFound("container does not exist") from None
        except (OSError, ValueError) as e:
            raise errors.PyruncError(f"load state {d}/{STATE_FILE}: {e}") from None
        return Container(self.root, cid, doc)

    def lock(self, cid):
        """The container's lock for start and delete.  A directory without state.json is a create in progress
        (it holds the lock: "does not exist", never wait on it) or one that died, whose leftovers the caller
        removes: that lock is only tried, never waited for."""
        path = self.path(cid)
        blocking = _exists(f"{path}/{STATE_FILE}")  # the caller loads it under the lock
        if not blocking and not _isdir(path):
            raise errors.NotFound("container does not exist")
        return Lock(path, blocking=blocking)

    def load_provisional(self, cid):
        """A container whose create never wrote state.json: what its creation record says it made (or only its
        id, if it died before writing one).  Call with the container's lock held: a create in progress holds it
        until state.json is written, so under the lock a directory without state.json is a dead creation."""
        d = self.path(cid)
        if not _isdir(d):
            raise errors.NotFound("container does not exist")
        from .. import fastjson

        doc = {}
        # the record, else the temp file of a rewrite that died between its unlink and its rename (Container.save)
        for name in [PROVISIONAL] + [n for n in posix.listdir(d) if n.startswith(f".{PROVISIONAL}.")]:
            try:
                doc = fastjson.loads(read_bytes(f"{d}/{name}"))
                break
            except (OSError, ValueError):  # missing, or a temp file cut short by the crash
                pass
        doc["id"] = cid
        doc.pop("init_pid", None)  # never signal a pid from here: its cgroup is what holds the processes
        return Container(self.root, cid, doc)

    def reserve(self, cid):
        """Create the container's directory, failing if the id is taken; returns it (caller removes on failure).
        The root is made too if need be (with its parents, by os, once per machine)."""
        d = self.path(cid)
        try:
            try:
                posix.mkdir(self.root, 0o711)
            except FileExistsError:
                pass
            except FileNotFoundError:
                import os

                os.makedirs(self.root, mode=0o711, exist_ok=True)
        except OSError as e:
            raise errors.PyruncError(f"mkdir {self.root}: {posix.strerror(e.errno).lower()}") from None
        try:
            posix.mkdir(d, 0o711)
        except FileExistsError:
            raise errors.Exists(f"container with id exists: {cid}") from None
        except NotADirectoryError:  # as runc says it
            raise errors.PyruncError(f"mkdir {self.root}: not a directory") from None
        except OSError as e:
            raise errors.PyruncError(f"mkdir {d}: {posix.strerror(e.errno).lower()}") from None
        return d

    def ids(self):
        try:
            names = sorted(posix.listdir(self.root))
        except FileNotFoundError:
            return []
        return [n for n in names if valid_id(n) and _exists(f"{self.root}/{n}/{STATE_FILE}")]

    def remove(self, cid):
        d = self.path(cid)
        # the files pyrunc makes here, by name (a listing is an open, two getdents and a close more); anything
        # else (the temp file of a save that died) is found by listing once rmdir says the directory is not empty
        err = _unlink_all(d, _OWN_FILES)
        if err is not None and _isdir(d):
            err = _unlink_all(d, posix.listdir(d))
        if err is not None:
            raise err


def _unlink_all(d, names):
    """Unlink names in d (those missing skipped), then rmdir d; None once d is gone, else rmdir's OSError."""
    for name in names:
        try:
            posix.unlink(f"{d}/{name}")
        except OSError:
            pass
    try:
        posix.rmdir(d)
    except FileNotFoundError:
        pass
    except OSError as e:
        return e
    return None


class Lock:
    """The container's lock: concurrent verbs on one id serialize; released on close or exit.

    A POSIX record lock (lockf(3): `posix.lockf`, built into the interpreter) on LOCK_FILE in the container's
    directory.  flock(2) on the directory itself needs `fcntl`, a shared object that costs ~0.2 ms to load (1.5% of
    `start` and `delete`).  A record lock belongs to the process, not to the open file: another thread of the same
    process would get it at once, and any close of the file by the process drops it.  So each path also has a
    mutex of this process (the shim's threads), taken first, and nothing but Lock opens the file.  A forked child
    does not inherit the lock.  All locks are exclusive (lockf has no shared one): exec holds its own only while
    it reads the state.  The file is made on first use (create's, or a container made before it existed), never
    following a symlink."""

    def __init__(self, path, blocking=True):
        self.path = path
        self.fd = None
        self.dir_id = None
        self.blocking = blocking  # False: a lock held elsewhere (a create in progress) reads as "does not exist"
        self._mutex = None

    def __enter__(self):
        mutex = _mutex(self.path)
        if not mutex.acquire(self.blocking):
            raise errors.NotFound("container does not exist")
        try:
            self.fd, self.dir_id = _lock_file(self.path, self.blocking)
        except BaseException:
            mutex.release()
            raise
        self._mutex = mutex
        return self

    def __exit__(self, *exc):
        try:
            posix.close(self.fd)  # drops the record lock
        finally:
            self._mutex.release()
        return False


def _lock_file(path, blocking):
    """Open and lock path/LOCK_FILE: (its fd, the directory's (st_dev, st_ino), by which a later lock can tell it is
    still the same).  NotFound where the container is gone, or (not blocking) its lock is held."""
    name = f"{path}/{LOCK_FILE}"
    try:
        fd = posix.open(name, posix.O_RDWR | posix.O_CREAT | posix.O_NOFOLLOW | posix.O_CLOEXEC, 0o600)
    except (FileNotFoundError, NotADirectoryError):
        raise errors.NotFound("container does not exist") from None
    except OSError as e:
        raise errors.PyruncError(f"open {name}: {posix.strerror(e.errno).lower()}") from None
    try:
        while True:
            try:
                posix.lockf(fd, posix.F_LOCK if blocking else posix.F_TLOCK, 0)
                break
            except InterruptedError:  # a signal handler ran (posix.lockf does not retry by itself)
                continue
            except (BlockingIOError, PermissionError):  # F_TLOCK on a held lock: EAGAIN or EACCES
                raise errors.NotFound("container does not exist") from None
        # The container may have been deleted (and a new one of the same id created) while we waited: then this
        # lock is on a dead file and whatever we loaded before is stale.
        held = posix.fstat(fd)
        try:
            now = posix.stat(name, follow_symlinks=False)
            here = posix.stat(path)
        except FileNotFoundError:
            now = None
        if now is None or (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            raise errors.NotFound("container does not exist")
    except BaseException:
        posix.close(fd)
        raise
    return fd, (here.st_dev, here.st_ino)


_MUTEXES = {}  # path -> this process's mutex for it (Lock)
_MUTEXES_LOCK = _thread.allocate_lock()


def _mutex(path):
    with _MUTEXES_LOCK:
        m = _MUTEXES.get(path)
        if m is None:
            m = _MUTEXES[path] = _thread.allocate_lock()
        return m


def write_pid_file(path, pid):
    """Bare digits, no newline, atomically (the shim parses it as soon as the file exists)."""
    from .. import osx as os, replace_file

    path = os.path.abspath(path)
    try:
        replace_file(path, str(pid))
    except OSError as e:  # a missing or unwritable directory: a clear error, not an internal one
        raise errors.PyruncError(f"write pid file {path}: {os.strerror(e.errno).lower()}") from None


# --- the quick delete: a stopped container whose removal is a few rmdirs, done without lifecycle's machinery ------
# containerd execs `pyrunc delete` for every container, almost always once it has stopped.  Then there is nothing to
# kill or wait for, and removing it is: the lock, one rmdir of each cgroup dir create made, the state directory.
# quick() does exactly that with posix (no os, no cgroup manager: pyrunc/launch.py), and leaves everything else to
# lifecycle.Runtime.delete: a container that is not stopped, a cgroup that is busy or not empty (the manager waits,
# retries for 3 s and names it), the systemd driver's unit, an Intel RDT group, a rootfs without its own mount
# namespace to detach, a container without its own pid namespace (whose processes outlive the init: they are
# killed, wherever they are in its cgroups), poststop hooks, a dead create's leftovers.  A first rmdir that fails
# changes nothing the full path would not do itself: it sees the dirs already gone as removed.  It lives here, in
# the module every hot verb loads, rather than in a module of its own: one module less for `delete` (~0.05-0.1 ms)
# for ~0.02 ms more of code to load for `state`, `start` and `kill`.

_EBUSY, _ENOTEMPTY = 16, 39  # errno's values on Linux (the errno module is not loaded here)


def quick(store, log, cid, force=False):
    """Delete container cid if it is stopped and quick to remove (see above), or with force if there is no such
    container; False: not done, nothing changed but possibly some of its empty cgroup dirs removed.  Raises what
    loading it raises (a bad id, a bad state)."""
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
    except errors.NotFound:
        # No directory at all: --force has nothing to do (runc's delete returns nil; containerd's runc-v2 shim runs
        # `delete --force` after every delete).  A dead create's leftovers, or no --force: the full path.
        return force and not _isdir(store.path(cid))


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
