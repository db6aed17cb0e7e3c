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
print(r._run(None, o, None, None), seen)
""")
    # at the wait: on, with what start-up allocated frozen, so that no first collection walks all of it
    assert out == ("0 [('create', False), ('start', False), ('wait', True, True, True), ('quick delete', True), "
                   "('delete', True)]")


def test_create_and_run_start_the_cgroup_warm_up_before_the_cli_is_imported():
    """cgroups/warm.py: for create and run, pyrunc.main starts the warm-up before importing the CLI, and the verb
    (warm.start()) takes that one; other verbs start none."""
    out = _fresh("""
import importlib.abc, importlib.util, types
from pyrunc.cgroups import warm
seen = []
warm.start_early = lambda: seen.append("early")

class Cli(importlib.abc.MetaPathFinder, importlib.abc.Loader):  # the CLI, standing in: records its import
    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name == "pyrunc.cli.main" else None
    def create_module(self, spec):
        seen.append("cli")
        m = types.ModuleType(spec.name)
        m.program = lambda: 0
        return m
    def exec_module(self, module):
        pass

sys.meta_path.insert(0, Cli())
import pyrunc, pyrunc.cli
for argv in (["create", "c"], ["--root", "run", "state", "c"], ["--log-format=json", "run", "c"], ["--debug", "run"],
             ["-root", "/r", "create"], ["--", "create"], ["kill", "create"], []):
    seen.append(argv[0] if argv else "-")
    sys.argv = ["/usr/local/bin/pyrunc", *argv]
    sys.modules.pop("pyrunc.cli.main", None)
    pyrunc.main(sys.path[:])
print(" ".join(seen))
""")
    assert out == ("create early cli --root cli --log-format=json early cli --debug early cli -root early cli "
                   "-- early cli kill cli - cli")


def test_the_early_warm_up_is_handed_to_the_verb_once():
    out = _fresh("""
from pyrunc.cgroups import warm
warm.Warmup = lambda path: ("warm-up", path)
warm.own_procs_file = lambda: "/own/cgroup.procs"
warm.start_early()
print(warm.start(), warm.start(), warm.start("/x"))
""")
    assert out == "('warm-up', '/own/cgroup.procs') ('warm-up', '/own/cgroup.procs') ('warm-up', '/x')"


def test_the_global_options_that_take_a_value_are_the_clis():
    from pyrunc import _VALUED
    from pyrunc.cli import GLOBAL

    assert _VALUED == {o.names[0].lstrip("-") for o in GLOBAL if o.kind != "bool"}
