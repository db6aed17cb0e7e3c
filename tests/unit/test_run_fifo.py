"""A foreground `run` does not wait for the init's byte on the exec fifo (container/start.py, wait=False): it keeps
the fifo open while it waits on the init, then checks the byte.  The runtime and the wait stand in here; the real
thing is every foreground run of tests/integration."""

import subprocess
import sys

from tests.conftest import REPO

HARNESS = """
import os, sys, types
sys.path.insert(0, %r)
from pyrunc.cli import run as r
from pyrunc.container import state
from pyrunc.errors import PyruncError
seen = []
byte, detach = sys.argv[1] == "byte", sys.argv[2] == "detach"
rd, wr = os.pipe2(os.O_NONBLOCK)
if byte:
    os.write(wr, b"0")  # what the init writes on its way to exec
os.close(wr)
state.quick = lambda store, log, cid, force=False: seen.append("quick delete") or True

class Rt:
    store = None

    def create(self, cid, bundle, **kw):
        return types.SimpleNamespace(pid=os.getpid(), doc={})

    def start(self, cid, wait=True):
        seen.append(f"start wait={wait}")
        return None if wait else rd

def reap(pid, block):
    seen.append("reaped, fifo open" if os.fstat(rd) else "?")
    return 7

r.runtime = lambda g, log, create=False: Rt()
r.reap = reap
r.Forwarder = lambda: types.SimpleNamespace(attach=lambda pid: None, stop=lambda: None)
o = types.SimpleNamespace(no_subreaper=False, detach=detach, console_socket=None, bundle=None, args=["f"],
                          container_id="f", pid_file=None, no_pivot=False, no_new_keyring=False, preserve_fds=0,
                          pidfd_socket=None, keep=False)
r.bundle_and_id = lambda o, log: (".", "f")
r._peek_config = lambda bundle: {}
try:
    print(r.run(None, o, None), seen)
except PyruncError as e:
    print(repr(str(e)), seen)
try:
    os.fstat(rd)
    print("fifo left open" if not detach else "detached: run never had it")
except OSError:
    print("fifo closed")
"""


def _run(*argv):
    p = subprocess.run([sys.executable, "-S", "-c", HARNESS % REPO, *argv], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def test_foreground_run_keeps_the_fifo_open_through_the_wait():
    assert _run("byte", "fg") == ["7 ['start wait=False', 'reaped, fifo open', 'quick delete']", "fifo closed"]


def test_an_init_that_never_got_to_the_fifo_is_an_error_as_start_says_it():
    assert _run("nobyte", "fg") == [
        "'pyrunc run failed: container init process exited before start' "
        "['start wait=False', 'reaped, fifo open', 'quick delete']", "fifo closed"]


def test_detached_run_lets_start_wait():
    assert _run("byte", "detach") == ["0 ['start wait=True']", "detached: run never had it"]
