"""containerd-shim-pyrunc-v1 end to end: a private containerd runs our shim (`ctr run --runtime
io.containerd.pyrunc.v1`): the scenarios of test_ctr.py that pass under runc-v2 + pyrunc, then what only a shim
has: one shim per pod, containerd restarted under a running task, the shim SIGKILLed, Shutdown."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from . import test_ctr as tc
from ..conftest import require
from .conftest import CMD_TIMEOUT, IMAGE, Ctr, Runtime, _mounts_under, _pids_with_cmdline, wait_caught

pytestmark = pytest.mark.e2e

RUNTIME = "io.containerd.pyrunc.v1"
SHIM = "containerd-shim-pyrunc-v1"
STATE_ROOT = "/run/containerd/pyrunc"


def _shim_binary():
    for p in (os.environ.get("PYRUNC_SHIM"), os.path.join(os.path.dirname(sys.executable), SHIM),
              shutil.which(SHIM)):
        if p and os.path.isfile(p) and os.access(p, os.X_OK):
            return os.path.abspath(p)
    return None


class ShimCtr(Ctr):
    """Ctr whose containers run under our shim, found by name on the test containerd's PATH (SHIM.md §7)."""

    def runtime_args(self, how="shim", binary=None):
        return ["--runtime", RUNTIME]


@pytest.fixture
def ctr(e2e_session, request):
    binary = _shim_binary()
    require(binary is not None, f"{SHIM} not found: set PYRUNC_SHIM or install pyrunc into this venv")
    d = e2e_session.daemon
    link = os.path.join(d.shims, SHIM)
    if not os.path.islink(link):
        os.symlink(binary, link)
    c = ShimCtr(e2e_session, Runtime("shim", binary), request.node.originalname or request.node.name)
    try:
        yield c
    finally:
        c.cleanup()
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(STATE_ROOT, d.ns))  # the per-namespace state root, once empty
        with contextlib.suppress(OSError):
            os.rmdir(STATE_ROOT)
    # nothing of a container may outlive its deletion: state dir, mounts under the bundles, shim daemons
    # (a daemon may take up to 5 s after Shutdown to hand containerd its last events, as the Go shim does)
    deadline = time.monotonic() + 8
    while (leftovers := [p for p in _shim_pids(d) if _task_ids_of(p) & set(c.ids)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not leftovers, f"shim daemons left: {leftovers}\n{d.log_tail(40)}"
    for cid in c.ids:
        assert not os.path.exists(os.path.join(STATE_ROOT, d.ns, cid)), f"state of {cid} left"
        assert not _mounts_under(os.path.join(d.state, "io.containerd.runtime.v2.task", d.ns, cid))


def _shim_pids(d):
    return [p for p in _pids_with_cmdline(d.sock) if SHIM in _cmdline(p) and _alive(p)]


def _alive(pid):
    """Running, not a zombie: the daemon re-parents to pid 1, which need not reap quickly (or at all, in a
    container's init) — a zombie has exited and holds nothing."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _task_ids_of(pid):
    args = _cmdline(pid).split("\0")
    return {args[i + 1] for i, a in enumerate(args[:-1]) if a == "-id"}


# ----------------------------------------------------------------------------- the scenarios of test_ctr.py


def test_run_rm_output(ctr):
    tc.test_run_rm_output(ctr, "shim")


def test_run_exit_code(ctr):
    tc.test_run_exit_code(ctr, "shim")


def test_run_stdin(ctr):
    tc.test_run_stdin(ctr)


def test_run_env(ctr):
    tc.test_run_env(ctr)


def test_run_cwd(ctr):
    tc.test_run_cwd(ctr)


def test_run_read_only(ctr):
    tc.test_run_read_only(ctr)


def test_exec_user_and_cwd(ctr):
    tc.test_exec_user_and_cwd(ctr)


def test_run_missing_binary(ctr):
    tc.test_run_missing_binary(ctr, "/no/such/binary", "no such file or directory")


def test_run_tty(ctr):
    tc.test_run_tty(ctr)


def test_run_tty_exit_code(ctr):
    tc.test_run_tty_exit_code(ctr)


def test_exec_plain(ctr):
    tc.test_exec_plain(ctr, "shim")


def test_exec_stdin(ctr):
    tc.test_exec_stdin(ctr)


def test_exec_tty(ctr):
    tc.test_exec_tty(ctr)


def test_exec_missing_binary(ctr):
    tc.test_exec_missing_binary(ctr)


def test_task_ps(ctr):
    tc.test_task_ps(ctr)


def test_task_metrics(ctr):
    tc.test_task_metrics(ctr)


def test_task_pause_resume(ctr):
    tc.test_task_pause_resume(ctr)


def test_run_memory_limit(ctr):
    tc.test_run_memory_limit(ctr)


def test_task_kill_trapped_term(ctr):
    tc.test_task_kill_trapped_term(ctr)


def test_task_kill_detached_exit_status(ctr):
    tc.test_task_kill_detached_exit_status(ctr)


def test_task_kill_all(ctr):
    tc.test_task_kill_all(ctr)


def test_task_kill_plain_sigkill(ctr):
    tc.test_task_kill_plain_sigkill(ctr)


def test_containerd_restart(ctr):
    tc.test_containerd_restart(ctr, "shim")


def test_update(ctr):
    """Update from LinuxResources JSON (ctr 1.6 has no `task update`: the call goes to the shim's socket as
    containerd would send it)."""
    from pyrunc.shim import api, ttrpc, wire

    cid = ctr.new_id()
    pid = ctr.run_detached(cid, "sleep", "60", opts=["--memory-limit", str(64 << 20)])
    path = tc.cgroup_path(pid, "memory")
    bundle = os.path.join(ctr.d.state, "io.containerd.runtime.v2.task", ctr.d.ns, cid)
    with open(os.path.join(bundle, "address")) as f:
        address = f.read()
    res = wire.Any(type_url="types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
                   value=b'{"memory": {"limit": %d}, "pids": {"limit": 99}}' % (96 << 20))
    with ttrpc.Client(address) as c:
        c.call(api.TASK_SERVICE, "Update", api.UpdateTaskRequest(id=cid, resources=res).encode(), timeout=10)
        with pytest.raises(ttrpc.Error) as e:
            c.call(api.TASK_SERVICE, "Update", api.UpdateTaskRequest(id="nope", resources=res).encode(), timeout=10)
        assert e.value.code == ttrpc.NOT_FOUND and e.value.message == "container not created: not found"
        with pytest.raises(ttrpc.Error) as e:
            c.call(api.TASK_SERVICE, "Checkpoint", api.CheckpointTaskRequest(id=cid).encode(), timeout=10)
        assert e.value.code == ttrpc.UNIMPLEMENTED and "checkpoint" in e.value.message
    with open(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes") as f:
        assert int(f.read()) == 96 << 20
    with open(f"/sys/fs/cgroup/pids{tc.cgroup_path(pid, 'pids')}/pids.max") as f:
        assert f.read().strip() == "99"


class Events:
    """`ctr events` in the background; expect() reads until a line matches, with a deadline."""

    def __init__(self, d):
        self.p = subprocess.Popen(["ctr", "--address", d.sock, "events"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=d.env)
        self.buf = b""

    def expect(self, *needles, timeout=CMD_TIMEOUT):
        import select

        deadline = time.monotonic() + timeout
        while True:
            for line in self.buf.split(b"\n"):
                if all(n.encode() in line for n in needles):
                    return line.decode()
            left = deadline - time.monotonic()
            assert left > 0, f"no event with {needles}:\n{self.buf.decode(errors='replace')}"
            if select.select([self.p.stdout], [], [], left)[0]:
                self.buf += os.read(self.p.stdout.fileno(), 65536)

    def close(self):
        self.p.kill()
        self.p.wait(5)
        self.p.stdout.close()


# ----------------------------------------------------------------------------- what only a shim does


def test_one_shim_per_pod(ctr):
    """Two containers with the same group annotation share one shim daemon (one socket)."""
    group = ["--label", "io.containerd.runc.v2.group=pod-" + str(os.getpid())]
    a, b = ctr.new_id("a"), ctr.new_id("b")
    ctr.run_detached(a, "sleep", "60", opts=["--annotation", group[1]])
    ctr.run_detached(b, "sleep", "60", opts=["--annotation", group[1]])
    bundles = os.path.join(ctr.d.state, "io.containerd.runtime.v2.task", ctr.d.ns)
    addr = [open(os.path.join(bundles, c, "address")).read() for c in (a, b)]
    assert addr[0] == addr[1]
    daemons = [p for p in _shim_pids(ctr.d) if _task_ids_of(p) & {a, b}]
    assert len(daemons) == 1, daemons
    # deleting the first keeps the shim (the second still runs there), deleting the second ends it
    ctr.d.ctr("task", "kill", "-s", "9", a, check=True)
    ctr.wait_status(a, "STOPPED")
    ctr.d.ctr("task", "delete", a, check=True)
    assert os.path.exists(f"/proc/{daemons[0]}")
    assert ctr.d.tasks()[b][1] == "RUNNING"
    ctr.d.ctr("task", "kill", "-s", "9", b, check=True)
    ctr.wait_status(b, "STOPPED")
    ctr.d.ctr("task", "delete", b, check=True)
    _wait_gone(daemons[0])
    assert not os.path.exists(addr[0][len("unix://"):])


def _wait_gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while _alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still there"
        time.sleep(0.05)


def test_containerd_restart_then_exit_collected(ctr):
    """containerd goes away while the task runs; the task exits meanwhile; the restarted containerd reconnects
    and collects the exit status."""
    cid = ctr.new_id()
    pid = ctr.run_detached(cid, "sh", "-c", 'trap "exit 11" TERM; while :; do sleep 0.1; done')
    assert wait_caught(pid, signal.SIGTERM)
    ctr.d.stop()
    try:
        os.kill(pid, signal.SIGTERM)
        _wait_gone(pid)
    finally:
        ctr.d.start()
    pid2, status = ctr.wait_status(cid, "STOPPED")
    assert pid2 == pid
    r = ctr.d.ctr("task", "delete", cid)
    assert tc.delete_exit_code(r) == 11, r.stderr_s


def test_shim_sigkilled(ctr):
    """The shim dies: containerd runs `delete`, which kills the container and reports 137 (containerd publishes
    it); no state dir, mount, bundle or process is left."""
    cid = ctr.new_id()
    pid = ctr.run_detached(cid, "sleep", "60")
    daemons = [p for p in _shim_pids(ctr.d) if cid in _task_ids_of(p)]
    assert len(daemons) == 1
    bundle = os.path.join(ctr.d.state, "io.containerd.runtime.v2.task", ctr.d.ns, cid)
    sock = open(os.path.join(bundle, "address")).read()[len("unix://"):]
    cgroup = "/sys/fs/cgroup/memory" + tc.cgroup_path(pid, "memory")
    assert os.path.isdir(cgroup)
    ev = Events(ctr.d)
    try:
        os.kill(daemons[0], signal.SIGKILL)
        line = ev.expect("/tasks/exit", f'"container_id":"{cid}"')
        assert '"exit_status":137' in line and f'"pid":{pid}' in line, line
        ev.expect("/tasks/delete", f'"container_id":"{cid}"')
    finally:
        ev.close()
    _wait_gone(pid)
    deadline = time.monotonic() + 15
    while cid in ctr.d.tasks() or os.path.exists(bundle):
        assert time.monotonic() < deadline, (ctr.d.tasks(), os.listdir(bundle))
        time.sleep(0.1)
    assert not os.path.exists(os.path.join(STATE_ROOT, ctr.d.ns, cid))
    assert not _mounts_under(bundle)
    assert not os.path.exists(cgroup)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock)  # the Go shim leaks it too (SHIM.md §6); the next `start` would unlink it as stale
    ctr.d.ctr("container", "rm", cid, check=True)


def test_launcher_answers_the_clean_delete_without_python(ctr, tmp_path):
    """The script as pip writes it (#!<python>) becomes the /bin/sh + Python launcher on its first start
    (pyrunc/shim/launcher.py).  Then the `delete` containerd runs after a clean teardown never starts Python; the
    one after a SIGKILLed shim does, and cleans up."""
    from pyrunc.shim import launcher

    with open(_shim_binary()) as f:
        text = f.read()
    body = text.partition("\n" + launcher.SH_END + "\n")[2] if text.startswith("#!/bin/sh\n") else \
        text.partition("\n")[2]
    os.chmod(tmp_path, 0o755)
    path = tmp_path / SHIM
    path.write_text(f"#!{sys.executable}\n" + body)
    path.chmod(0o755)

    def run(cid, *args):
        return ctr.d.ctr("run", "--fifo-dir", ctr.d.fifo, "--runtime", str(path), *args, IMAGE, cid, *(
            ["true"] if "-d" not in args else ["sleep", "60"]))

    r = run(ctr.new_id(), "--rm")
    assert r.returncode == 0, r.stderr_s
    text = path.read_text()
    assert text.startswith("#!/bin/sh\n" + launcher.MARK), text[:200]
    # from now on, every run of the Python part with the `delete` action leaves a mark
    marks = tmp_path / "python-deletes"
    head, sep, rest = text.partition("\n" + launcher.SH_END + "\n")
    path.write_text(head + sep + f"import sys\nif sys.argv[-1] == 'delete':\n    open({str(marks)!r}, 'a').write('x')\n"
                    + rest)
    for _ in range(2):
        r = run(ctr.new_id(), "--rm")
        assert r.returncode == 0, r.stderr_s
    assert not marks.exists()
    cid = ctr.new_id()
    r = run(cid, "-d", "--null-io")
    assert r.returncode == 0, r.stderr_s
    pid = ctr.d.tasks()[cid][0]
    bundle = os.path.join(ctr.d.state, "io.containerd.runtime.v2.task", ctr.d.ns, cid)
    sock = open(os.path.join(bundle, "address")).read()[len("unix://"):]
    [daemon] = [p for p in _shim_pids(ctr.d) if cid in _task_ids_of(p)]
    os.kill(daemon, signal.SIGKILL)
    _wait_gone(pid)
    deadline = time.monotonic() + 15
    while cid in ctr.d.tasks() or os.path.exists(bundle):
        assert time.monotonic() < deadline, ctr.d.tasks()
        time.sleep(0.1)
    assert marks.read_text() == "x"  # the crash's cleanup ran in Python
    assert not os.path.exists(os.path.join(STATE_ROOT, ctr.d.ns, cid))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(sock)  # a SIGKILLed shim leaks its socket (as the Go shim does)
    ctr.d.ctr("container", "rm", cid, check=True)


def test_shutdown_leaves_nothing(ctr):
    """Delete, then Shutdown with no task left: the daemon exits, its socket, mounts and state are gone."""
    cid = ctr.new_id()
    pid = ctr.run_detached(cid, "sleep", "60")
    cgroup = "/sys/fs/cgroup/memory" + tc.cgroup_path(pid, "memory")
    daemons = [p for p in _shim_pids(ctr.d) if cid in _task_ids_of(p)]
    bundle = os.path.join(ctr.d.state, "io.containerd.runtime.v2.task", ctr.d.ns, cid)
    sock = open(os.path.join(bundle, "address")).read()[len("unix://"):]
    ctr.d.ctr("task", "kill", "-s", "9", cid, check=True)
    ctr.wait_status(cid, "STOPPED")
    ctr.d.ctr("task", "delete", cid, check=True)
    _wait_gone(daemons[0])
    assert not os.path.exists(sock)
    assert not _mounts_under(bundle)
    assert not os.path.exists(cgroup)
    assert not os.path.exists(os.path.join(STATE_ROOT, ctr.d.ns, cid))


def _cgroup_of(pid, controller):
    """The path of pid's cgroup in the hierarchy that has controller (the unified one: "")."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f.read().splitlines():
            _, ctrls, path = line.split(":", 2)
            if controller in ctrls.split(",") or (not controller and not ctrls):
                return path
    return None


def test_shim_cgroup_option(ctr, tmp_path):
    """shim_cgroup in the runtime options (here the TOML of --runtime-config-path, the runtimeoptions.v1.Options
    CRI sends too): `start` moves the daemon into that existing cgroup, as the Go shim does, and Create accepts
    the key.  A shim_cgroup that does not exist fails `start` with its name, and leaves no daemon or socket."""
    name = f"/pyrunc-shimcg-{os.getpid()}"
    unified = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    cg = "/sys/fs/cgroup" + name if unified else "/sys/fs/cgroup/pids" + name
    os.mkdir(cg)
    try:
        conf = tmp_path / "shim.toml"
        conf.write_text(f'shim_cgroup = "{name}"\n')
        cid = ctr.new_id()
        ctr.run_detached(cid, "sleep", "60", opts=["--runtime-config-path", str(conf)])
        daemons = [p for p in _shim_pids(ctr.d) if cid in _task_ids_of(p)]
        assert len(daemons) == 1
        assert _cgroup_of(daemons[0], "" if unified else "pids") == name
        ctr.d.ctr("task", "kill", "-s", "9", cid, check=True)
        ctr.wait_status(cid, "STOPPED")
        ctr.d.ctr("task", "delete", cid, check=True)
        _wait_gone(daemons[0])

        conf.write_text(f'shim_cgroup = "{name}-missing"\n')
        bad = ctr.new_id()
        before = set(_shim_pids(ctr.d))
        r = ctr.run(bad, "true", opts=["--runtime-config-path", str(conf)])
        assert r.returncode != 0 and f"{name}-missing" in r.stderr_s, r.stderr_s
        deadline = time.monotonic() + 5
        while set(_shim_pids(ctr.d)) - before:
            assert time.monotonic() < deadline, set(_shim_pids(ctr.d)) - before
            time.sleep(0.05)
    finally:
        deadline = time.monotonic() + 5
        while True:
            try:
                os.rmdir(cg)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def test_oom_reported_before_exit(ctr):
    """A container killed by the OOM killer: /tasks/oom, then its /tasks/exit (kubelet's OOMKilled needs that
    order), then /tasks/delete."""
    cid = ctr.new_id()
    ev = Events(ctr.d)
    try:
        r = ctr.run(cid, "sh", "-c", "tail /dev/zero", opts=["--rm", "--memory-limit", str(16 << 20)])
        assert r.returncode == 137, (r.returncode, r.stderr_s)
        ev.expect("/tasks/delete", f'"container_id":"{cid}"')
    finally:
        ev.close()
    topics = [line.split()[5] for line in ev.buf.decode().splitlines()
              if f'"container_id":"{cid}"' in line and "/tasks/" in line]
    assert topics == ["/tasks/create", "/tasks/start", "/tasks/oom", "/tasks/exit", "/tasks/delete"], topics


def test_container_signal_state_is_clean(ctr):
    """The daemon ignores SIGPIPE and handles SIGCHLD/SIGTERM; none of that may reach the container's process
    (an ignored disposition and a blocked mask survive execve)."""
    for cmd in (("run",), ("exec",)):
        cid = ctr.new_id()
        if cmd == ("run",):
            r = ctr.run(cid, "cat", "/proc/self/status", opts=["--rm"])
        else:
            ctr.run_detached(cid, "sleep", "60")
            r = ctr.exec(cid, "cat", "/proc/self/status")
        assert r.returncode == 0, r.stderr_s
        fields = dict(line.split(":\t", 1) for line in r.stdout_s.splitlines() if ":\t" in line)
        # signals 32 and 33 are glibc's own (SIGCANCEL, SIGSETXID): no program can set their disposition or mask
        # through libc (Python's signal module refuses them), so an ignored 32 in whatever started containerd is
        # inherited down to the container (seen under `make test`, whose pytest process has it); not asserted here
        glibc = 0b11 << 31
        assert int(fields["SigIgn"], 16) & ~glibc == 0, (cmd, fields)
        assert int(fields["SigBlk"], 16) & ~glibc == 0, (cmd, fields)
