"""The shim's task service with the REAL runtime, in-process, without containerd (root): create, hooks, start,
exec, wait, delete on a busybox bundle while the shim's one reaper reaps every child concurrently — the library's
own waits (stage A, hooks run through subprocess) must still see their children's real statuses (SHIM.md §6), and
each process's Wait its own exit code.  Events go to a fake containerd over ttrpc."""

import contextlib
import os
import threading

import pytest

from pyrunc.errors import Logger
from pyrunc.process import waiter
from pyrunc.shim import api, events, reaper, service, stdio, ttrpc, wire
from tests.conftest import require
from tests.unit.test_shim_service import FakeContainerd, _reap_forever, run_isolated

pytestmark = pytest.mark.e2e


def _require():
    require(os.geteuid() == 0, "needs root: real containers")
    from pyrunc.demo import find_busybox

    require(find_busybox() is not None, "busybox (static) is not installed")


@contextlib.contextmanager
def _shim(tmp_path):
    """The daemon's pieces in this (forked, see run_isolated) process: reaper installed as the library's waiter,
    publisher to a fake containerd, the service with the real runtime."""
    fake = FakeContainerd(str(tmp_path / "containerd.ttrpc"))
    rp = reaper.Reaper()
    saved = waiter.waitpid, waiter.exclusive
    reaper.install(rp)
    log = Logger(path=str(tmp_path / "shim.log"))
    pub = events.Publisher(str(tmp_path / "containerd.ttrpc"), "ns1", log)
    svc = service.Service("ns1", pub, rp, log, stdio.Loop(log), lambda: None)
    stop = threading.Event()
    t = threading.Thread(target=_reap_forever, args=(rp, stop), daemon=True)
    t.start()
    h = svc.handlers()
    root = str(tmp_path / "state")
    opts = wire.pack(api.RuntimeOptions(config_path=str(tmp_path / "shim.toml")))
    (tmp_path / "shim.toml").write_text(f'root = "{root}"\n')

    def call(method, **kw):
        req_cls, resp_cls = api.TASK_METHODS[method]
        return resp_cls.decode(h[method](req_cls(**kw).encode()))

    ids = []
    try:
        yield svc, call, fake, opts, ids
    finally:
        for cid in ids:
            for method, kw in (("Kill", {"signal": 9, "all": True}), ("Delete", {})):
                try:
                    call(method, id=cid, **kw)
                except ttrpc.Error:
                    pass
        stop.set()
        pub.close(5)
        fake.server.shutdown()
        waiter.waitpid, waiter.exclusive = saved
        assert not os.listdir(root) if os.path.isdir(root) else True, os.listdir(root)


def _bundle(tmp_path, name, args, hooks=None):
    from pyrunc.demo import make_bundle

    import json

    path = tmp_path / name
    path.mkdir()
    cfg = make_bundle(str(path), args)
    cfg["linux"]["cgroupsPath"] = f"/pyrunc-shim-inproc-{os.getpid()}/{name}"
    if hooks:
        cfg["hooks"] = hooks
    (path / "config.json").write_text(json.dumps(cfg))
    return str(path)


def _exec(args):
    import json

    proc = {"args": args, "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}
    return wire.Any(type_url="types.containerd.io/opencontainers/runtime-spec/1/Process",
                    value=json.dumps(proc).encode())


def test_lifecycle_with_hooks_and_execs_under_the_reaper(tmp_path):
    _require()
    run_isolated(_lifecycle, tmp_path)


def _lifecycle(tmp_path):
    with _shim(tmp_path) as (svc, call, fake, opts, ids):
        mark = tmp_path / "hook-ran"
        hooks = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {mark}; exit 0"]}],
                 "poststart": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 0"]}]}
        for i in range(3):  # again and again: a stolen status fails at random, so give it chances
            cid = f"inproc-{os.getpid()}-{i}"
            ids.append(cid)
            out = tmp_path / f"out-{i}"
            b = _bundle(tmp_path, cid, ["sh", "-c", "read x; echo got-$x; exit 5"], hooks)
            fifo = tmp_path / f"stdin-{i}"
            os.mkfifo(fifo)
            pid = call("Create", id=cid, bundle=b, options=opts, stdin=str(fifo), stdout=f"file://{out}").pid
            assert b'"pid":%d' % pid in mark.read_bytes()  # the prestart hook ran, with the state on stdin
            call("Exec", id=cid, exec_id="e", spec=_exec(["sh", "-c", "exit 6"]))
            call("Start", id=cid)
            call("Start", id=cid, exec_id="e")
            assert call("Wait", id=cid, exec_id="e").exit_status == 6
            call("Exec", id=cid, exec_id="k", spec=_exec(["sleep", "100"]))
            call("Start", id=cid, exec_id="k")
            call("Kill", id=cid, exec_id="k", signal=9)
            assert call("Wait", id=cid, exec_id="k").exit_status == 137
            call("CloseIO", id=cid, stdin=True)  # no client writer: `read` gets EOF
            assert call("Wait", id=cid).exit_status == 5
            call("Delete", id=cid, exec_id="e")
            call("Delete", id=cid, exec_id="k")
            d = call("Delete", id=cid)
            assert (d.pid, d.exit_status) == (pid, 5)
            assert out.read_text() == "got-\n"
        fake.wait_for(lambda got: [t for t, _ in got].count("/tasks/delete") == 3)


def test_failing_hook_fails_create_with_its_status(tmp_path):
    """subprocess waits for the hook itself while the reaper runs: the hook's exit status 3 must reach it (a
    reaped-away status reads as 0 in subprocess, and the create would wrongly succeed)."""
    _require()
    run_isolated(_failing_hook, tmp_path)


def _failing_hook(tmp_path):
    with _shim(tmp_path) as (svc, call, fake, opts, ids):
        for i in range(3):
            cid = f"inproc-fail-{os.getpid()}-{i}"
            ids.append(cid)
            b = _bundle(tmp_path, cid, ["true"], {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]})
            with pytest.raises(ttrpc.Error, match="exit status 3"):
                call("Create", id=cid, bundle=b, options=opts)
            with pytest.raises(ttrpc.Error) as e:
                call("State", id=cid)
            assert e.value.code == ttrpc.NOT_FOUND
