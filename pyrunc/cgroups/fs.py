"""The one place that touches cgroupfs files: a read-only probe for planners and the dumb apply loop.

Every write goes through write_file(), which turns an OSError into a PyruncError whose lowercase message names the
file and the value, e.g. `write /sys/fs/cgroup/memory/x/memory.limit_in_bytes "12": device or resource busy (EBUSY)`.
"""

import errno as _errno
import time

from pyrunc import osx as os, read_bytes
from pyrunc.errors import ConfigError, PyruncError, SysError
from pyrunc.record import record


class Write(record("Write", "controller filename value dir optional retry check", defaults=(False, False, None))):
    """One planned write of `value` to `dir/filename` (`controller` is the key of the dir in Manager.paths).

    optional: ENOENT is ignored (the kernel lacks the knob, e.g. cpu.cfs_burst_us before 5.14).
    retry: EINVAL is not fatal yet; the write is re-issued right after the next successful non-retry write to the
           same dir
           (cpu period before quota, rt period before rt runtime, as runc does when the old quota/new period
           ratio is refused by the kernel).
    check: name of a read-back check (only "shares": the kernel clamps cpu.shares silently).
    (record, not typing.NamedTuple nor collections.namedtuple: `typing` costs ~5 ms of every verb that
    opens a cgroup, `collections` ~2 ms.)
    """

    __slots__ = ()

    def brief(self):
        return (self.controller, self.filename, self.value)


# Errnos that mean "the kernel does not like this value": reported as a configuration problem.
_CONFIG_ERRNOS = (_errno.EINVAL, _errno.ERANGE, _errno.EOVERFLOW)


def _quote(value):
    from .. import fastjson

    return fastjson.dumps(value)


def write_error(path, value, err):
    """The error for a failed write: ConfigError for a refused value, SysError otherwise; both keep .errno."""
    if err in _CONFIG_ERRNOS:
        name = _errno.errorcode.get(err, str(err))
        e = ConfigError(f"write {path} {_quote(value)}: {os.strerror(err).lower()} ({name})")
        e.errno, e.path = err, path
        return e
    e = SysError("write", f"{path} {_quote(value)}", err)
    e.path = path
    return e


def write_file(dirpath, filename, value):
    """Write value to dirpath/filename in one write(2); never creates the file (cgroupfs files exist or not).

    O_TRUNC is ignored by cgroupfs but keeps a temp-dir fake cgroupfs holding only the last value written.
    """
    path = os.path.join(dirpath, filename)
    data = value.encode() if isinstance(value, str) else value
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as exc:
        raise write_error(path, value, exc.errno) from None
    try:
        os.write(fd, data)
    except OSError as exc:
        raise write_error(path, value, exc.errno) from None
    finally:
        os.close(fd)


def read_raw(path):
    """The whole file as text (bad UTF-8 replaced); raises OSError.  By fd (pyrunc.read_bytes): cgroupfs and /proc
    files are small, and open()'s buffered text stack costs five more syscalls (fstat twice, the isatty ioctl, two
    lseeks) and ~15 us of Python per file, a dozen times per create."""
    return read_bytes(path).decode("utf-8", "replace")


def read_text(path):
    """read_raw(path), or None when it cannot be read."""
    try:
        return read_raw(path)
    except OSError:
        return None


def read_file(dirpath, filename):
    path = os.path.join(dirpath, filename)
    try:
        return read_raw(path)
    except OSError as exc:
        raise SysError("read", path, exc.errno) from None


def read_int(dirpath, filename):
    """A single-number file; "max" reads as -1."""
    text = read_file(dirpath, filename).strip()
    if text == "max":
        return -1
    try:
        return int(text)
    except ValueError:
        raise PyruncError(f"parse {os.path.join(dirpath, filename)}: unexpected content {_quote(text)}") from None


def read_keyed(dirpath, filename):
    """A flat keyed file ("key value" per line) -> dict of ints (non-numbers skipped)."""
    out = {}
    for line in read_file(dirpath, filename).splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


class Probe:
    """Read-only view of the cgroupfs used by planners (which then stay pure given the probe)."""

    def exists(self, dirpath, filename):
        return os.path.exists(os.path.join(dirpath, filename))

    def read(self, dirpath, filename):
        """File content, or None when it cannot be read."""
        return read_text(os.path.join(dirpath, filename))


def apply_writes(writes):
    """The dumb apply loop: execute planned writes in order, honouring the optional/retry/check flags."""
    pending = []  # (write, error) refused with EINVAL, to retry after the next success in the same dir
    for w in writes:
        if w.filename == "<bpf device filter>":  # devices.DEVICE_FILTER: cgroup v2 has no devices files
            from pyrunc.cgroups.bpf import attach_device_filter

            try:
                attach_device_filter(w.dir, w.value)
            except PyruncError as exc:
                if not (w.optional and getattr(exc, "errno", 0) == _errno.EPERM):
                    raise
            continue
        try:
            write_file(w.dir, w.filename, w.value)
        except PyruncError as exc:
            err = getattr(exc, "errno", 0)
            if w.optional and err == _errno.ENOENT:
                continue
            if w.retry and err == _errno.EINVAL:
                pending.append((w, exc))
                continue
            raise
        if w.check == "shares":
            _check_shares(w)
        if w.retry:
            continue  # only the partner write (quota, rt runtime, cpu.max) releases the pending ones
        again = [p for p in pending if p[0].dir == w.dir]
        pending = [p for p in pending if p[0].dir != w.dir]
        for p, _ in again:
            write_file(p.dir, p.filename, p.value)
    if pending:
        raise pending[0][1]


def _check_shares(w):
    got = read_int(w.dir, w.filename)
    want = int(w.value)
    if want > got:
        raise ConfigError(f"the maximum allowed cpu-shares is {got}")
    if want < got:
        raise ConfigError(f"the minimum allowed cpu-shares is {got}")


def add_proc(dirpath, pid):
    """Write pid to cgroup.procs; EINVAL may mean the task is still TASK_NEW, so retry a few times (as runc)."""
    for attempt in range(5):
        try:
            write_file(dirpath, "cgroup.procs", str(pid))
            return
        except PyruncError as exc:
            if getattr(exc, "errno", 0) != _errno.EINVAL or attempt == 4:
                raise
            time.sleep(0.03)
