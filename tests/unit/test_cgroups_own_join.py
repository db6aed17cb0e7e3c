"""Manager.own_join: the files a create's first process joins its cgroups through by itself (a v1 `tasks` write of
0, a clone3 into its cgroup2 cgroup), over the temp-dir fake cgroupfs of test_cgroups_fake.py, for the v1, v2 and
hybrid layouts.  The kernel's side (no global lock for either) is exercised by tests/integration/test_own_join.py."""

import contextlib
import os

import pytest

from pyrunc.cgroups import open_manager
from pyrunc.cgroups.manager import Manager, close_own_join

from .test_cgroups_fake import build_hybrid, build_v1, build_v2, fake, fake_kernel, own  # noqa: F401


def _fds():
    return set(os.listdir("/proc/self/fd"))


def _described(join, root):
    """[(path relative to root, soft or "cgroup2", the fd's open mode)]: the fds checked against the paths."""
    tasks, cgroup2 = join
    out = [(os.path.relpath(path, root), soft, _mode(fd, path)) for fd, path, soft in tasks]
    if cgroup2 is not None:
        fd, d = cgroup2
        out.append((os.path.relpath(d, root), "cgroup2", _mode(fd, d)))
    return out


def _mode(fd, path):
    """"w" (write only), "path" (O_PATH) or "other", for an fd that names path (asserted)."""
    assert os.readlink(f"/proc/self/fd/{fd}") == path
    with open(f"/proc/self/fdinfo/{fd}") as f:
        flags = int(next(line for line in f if line.startswith("flags:")).split()[1], 8)
    if flags & 0o10000000:
        return "path"
    return "w" if flags & 0o3 == os.O_WRONLY else "other"


@contextlib.contextmanager
def _joined(root, proc, cgroup_text, cgroups_path):
    """A created container cgroup's own_join(), closed after the block."""
    own(proc, cgroup_text)
    m = open_manager(cgroups_path, "c1", root=root, proc=proc)
    m.create()
    join = m.own_join()
    try:
        yield m, join
    finally:
        close_own_join(join)


def test_hybrid_v1_tasks_files_and_the_cgroup2_dir(fake, fake_kernel):
    root, proc = fake
    build_hybrid(root)
    before = _fds()
    with _joined(root, proc, "4:memory:/m\n9:name=systemd:/\n0::/u\n", None) as (m, join):
        got = _described(join, root)
    assert _fds() == before
    want = {(os.path.join(os.path.relpath(d, root), "tasks"), k == "name=systemd", "w")
            for k, d in m.paths.items() if k != ""}
    assert set(got[:-1]) == want and len(got[:-1]) == len(want)
    assert got[-1] == ("unified/u/c1", "cgroup2", "path")  # nothing can be read or written through it


def test_v1_has_no_cgroup2_dir_and_co_mounted_controllers_once(fake, fake_kernel):
    root, proc = fake
    build_v1(root)
    with _joined(root, proc, "", "/p/c1") as (m, (tasks, cgroup2)):
        paths = [p for _, p, _ in tasks]
        assert cgroup2 is None
        assert len(paths) == len(set(paths)) == len({d for _, d in m._dirs()})
        assert os.path.join(root, "cpu,cpuacct/p/c1/tasks") in paths


def test_v2_is_the_cgroup2_dir_alone(fake, fake_kernel):
    root, proc = fake
    build_v2(root)
    with _joined(root, proc, "0::/\n", "/p/c1") as (m, join):
        assert _described(join, root) == [("p/c1", "cgroup2", "path")]


def test_a_file_that_will_not_open_leaves_it_to_add_pid_with_no_fd_left(fake, fake_kernel):
    """A missing (or unwritable) tasks file: None, so that add_pid writes cgroup.procs and fails, if it must, with
    the error it always gave; the files opened before it are closed."""
    root, proc = fake
    build_hybrid(root)
    own(proc, "4:memory:/m\n0::/u\n")
    m = open_manager(None, "c1", root=root, proc=proc)
    m.create()
    os.unlink(os.path.join(m.paths["memory"], "tasks"))
    before = _fds()
    assert m.own_join() is None
    assert _fds() == before


def test_the_systemd_driver_joins_through_its_unit():
    from pyrunc.cgroups.systemd import SystemdManager

    assert SystemdManager.own_join is not Manager.own_join
    assert SystemdManager.own_join(object.__new__(SystemdManager)) is None
    with pytest.raises(ValueError):
        SystemdManager.add_pid(object.__new__(SystemdManager), 1, keys=("",))


def test_the_child_writes_0_to_each_and_closes_what_close_stray_fds_would_keep():
    """child.join_own_cgroups, with pipes standing in for the tasks files: one write of 0 each; the fds under
    keep_below (numbers close_stray_fds keeps: stdio, preserved fds) are closed there, the others left to it."""
    from pyrunc.process.child import join_own_cgroups

    pipes = [os.pipe() for _ in range(3)]
    try:
        low, high = pipes[0][1], pipes[1][1]
        cgroup2 = os.open("/", os.O_PATH)
        join_own_cgroups(([(low, "/a/tasks", False), (high, "/b/tasks", True)], (cgroup2, "/")), keep_below=high)
        assert [os.read(r, 10) for r, _ in pipes[:2]] == [b"0", b"0"]
        with pytest.raises(OSError):
            os.fstat(low)
        os.fstat(high)  # still open: close_stray_fds closes it
        os.fstat(cgroup2)
        os.close(cgroup2)
        os.close(high)
        # a refusal names the file, unless the hierarchy is joined best effort (soft)
        bad = pipes[2][1]
        os.close(pipes[2][0])  # EPIPE on write (SIGPIPE is ignored under Python)
        join_own_cgroups(([(bad, "/soft/tasks", True)], None), keep_below=0)
        with pytest.raises(Exception, match=r'^write /hard/tasks "0": broken pipe'):
            join_own_cgroups(([(bad, "/hard/tasks", False)], None), keep_below=0)
    finally:
        for r, w in pipes:
            for fd in (r, w):
                try:
                    os.close(fd)
                except OSError:
                    pass
