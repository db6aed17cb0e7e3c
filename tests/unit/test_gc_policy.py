"""The CLI's garbage collector: off from the script's start (pyrunc.main), because a verb lives for milliseconds and
its imports alone would run a dozen collections; back on where a verb settles into a long wait on a container
(foreground run and exec, events).  Each case runs in a fresh interpreter: the collector is process-wide."""

import subprocess
import sys

from tests.conftest import REPO


def _fresh(code):
    p = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {REPO!r})\n" + code],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_main_turns_it_off_before_the_cli_is_imported():
    out = _fresh("""
import gc, types
seen = []
fake = types.ModuleType("pyrunc.cli.main")  # the verb dispatcher, standing in: records what it starts with
fake.program = lambda: seen.append(gc.isenabled()) or 0
import pyrunc, pyrunc.cli
sys.modules["pyrunc.cli.main"] = fake
sys.argv = ["/usr/local/bin/pyrunc", "state", "x"]
assert gc.isenabled()
print(pyrunc.main(sys.path[:]), seen)
""")
    assert out == "0 [False]"


def test_the_shim_keeps_it():
    """The shim's daemon runs for the container's life: its collector stays as Python set it."""
    out = _fresh("""
import gc, types
seen = []
fake = types.ModuleType("pyrunc.shim.main")
fake.main = lambda: seen.append(gc.isenabled()) or 0
import pyrunc, pyrunc.shim
sys.modules["pyrunc.shim.main"] = fake
sys.argv = ["/usr/local/bin/containerd-shim-pyrunc-v1", "start"]
print(pyrunc.main(sys.path[:]), seen)
""")
    assert out == "0 [True]"


def test_foreground_run_turns_it_on_for_the_wait():
    """cli/run.py with the runtime and the wait standing in: the collector is on by the time run waits on the
    container, with start-up's objects frozen (gc.freeze), and stays off through create and start."""
    out = _fresh("""
import gc, os, types
from pyrunc.cli import run as r
gc.disable()
seen = []

from pyrunc.container import state as quick_delete
quick_delete.quick = lambda store, log, cid, force=False: seen.append(("quick delete", gc.isenabled())) or False

class Rt:
    store = None

    def create(self, cid, bundle, **kw):
        seen.append(("create", gc.isenabled()))
        return types.SimpleNamespace(pid=os.getpid(), doc={})

    def start(self, cid, wait=True):
        seen.append(("start", gc.isenabled()))

    def delete(self, cid, force=False):
        seen.append(("delete", gc.isenabled()))

r.runtime = lambda g, log, create=False: Rt()
r.reap = lambda pid, block: seen.append(("wait", gc.isenabled(), gc.get_freeze_count() > 0, gc.get_count()[0] < 50)) or 0
o = types.SimpleNamespace(no_subreaper=False, detach=False, console_socket=None, bundle=None, args=["gc-test"],
                          container_id="gc-test", pid_file=None, no_pivot=False, no_new_keyring=False, preserve_fds=0,
                          pidfd_socket=None, keep=False)
r.bundle_and_id = lambda o, log: (".", "gc-test")
r._peek_config = lambda bundle: {}
print(r.run(None, o, None), seen)
""")
    # at the wait: on, with what start-up allocated frozen, so that no first collection walks all of it
    assert out == ("0 [('create', False), ('start', False), ('wait', True, True, True), ('quick delete', True), "
                   "('delete', True)]")
