"""L14: no Python import after pivot_root or after joining the container's mount namespace.

Two halves: the guard (child.forbid_imports, called by stage B right before pivot_root and by stage A before it
joins a mount namespace) leaves the importer nothing but the modules compiled into the interpreter, so a planted
module on sys.path or an extension module not loaded yet cannot be imported; and the code that runs after the
guard has no function-level import at all (which would otherwise fail at run time, in a container).  The
integration tier runs every container with the guard on.
"""

import ast
import inspect
import os
import subprocess
import sys
import textwrap

from pyrunc.process import child, console, init, init_rootfs, sched, stub

GUARDED = """
import sys
sys.path.insert(0, {d!r})
from pyrunc.process import child
child.forbid_imports()
for name in ("planted", "mmap", "pyrunc.spec.fastcheck"):
    try:
        __import__(name)
    except ImportError:
        print("refused", name)
    else:
        print("imported", name)
import _thread, itertools  # compiled in (or already loaded): still fine
print("builtin ok")
"""


def test_forbid_imports_refuses_path_and_extension_modules(tmp_path):
    (tmp_path / "planted.py").write_text("print('planted code ran')\n")
    assert "mmap" not in sys.builtin_module_names
    p = subprocess.run([sys.executable, "-c", GUARDED.format(d=str(tmp_path))], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert p.returncode == 0, p.stderr
    assert "planted code ran" not in p.stdout
    assert p.stdout.splitlines() == ["refused planted", "refused mmap", "refused pyrunc.spec.fastcheck",
                                     "builtin ok"]


# Everything that can run after forbid_imports(): stage B after the guard, exec's stage A after it, and the stub
# hand-over.  A function-level import in any of them would search the container's filesystem.
AFTER_GUARD = [
    child.join_namespaces, child.exec_now, child.exec_stub, child.prepare_exec, child.default_signals,
    child.environ, child._home, child.lookup, child.notify_payload, child.expect, child.run_stage,
    init_rootfs.enter_rootfs, init_rootfs.finish_rootfs,
    sched.apply_process, sched.set_affinity, sched.reset_affinity,
    console.setup, stub.init_args, stub.control, init.set_rlimits,
]


def test_nothing_after_the_guard_imports_at_function_level():
    for fn in AFTER_GUARD:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        bad = [n.lineno for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        bad += [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                and n.func.id == "__import__"]
        assert not bad, f"{fn.__module__}.{fn.__qualname__} imports at function level (lines {bad})"


def test_stages_call_the_guard_before_pivot_and_mount_namespace_join():
    b = inspect.getsource(child.stage_b)
    assert b.index("forbid_imports()") < b.index("enter_rootfs(")
    a = inspect.getsource(child.stage_a)
    assert a.index("forbid_imports()") < a.index("join_namespaces(")


KEPT = """
import sys, weakref
from pyrunc.process import child
refs = [weakref.ref(f) for f in sys.path_importer_cache.values() if f is not None]
assert refs
child.forbid_imports()
print(sum(r() is None for r in refs), len(sys.path_importer_cache), sys.path, sys.path_hooks)
"""


def test_forbid_imports_frees_nothing():
    """The guard swaps in empty import state and keeps the old objects alive: freeing the path finders (each
    holds a set of every file name in its directory) would write to ~80 pages shared with the parent after fork,
    each a copy-on-write fault in stage B (~0.3 ms)."""
    p = subprocess.run([sys.executable, "-c", KEPT], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0", "0", "[]", "[]"]


LOADED = """
import sys
from types import SimpleNamespace as NS
from pyrunc.process import child, init
plan = NS(process=NS(terminal={terminal}), mounts=[], userns=False, ns_new=0)
ctx = init.Ctx()
init.load_stage_modules(plan, ctx)
child.forbid_imports()  # what a stage sees after pivot_root: only what the parent imported before the fork
for name in ("console", "sock"):
    try:
        child.loaded(name)
    except KeyError:
        print("missing", name)
    else:
        print("loaded", name)
"""


def test_terminal_modules_load_before_the_fork_only_when_asked():
    """console.py (termios, fcntl, struct) is for a process with a terminal: Spawn.run imports it before the fork
    when the config asks (init.load_stage_modules), and the stages take it from sys.modules (child.loaded), which
    still works after the guard; a plain config loads neither it nor sock.py (fd passing)."""
    out = {}
    for terminal in (True, False):
        p = subprocess.run([sys.executable, "-c", LOADED.format(terminal=terminal)], capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
        assert p.returncode == 0, p.stderr
        out[terminal] = p.stdout.split("\n")
    assert out[True][:2] == ["loaded console", "loaded sock"]  # console.py passes the pty master over sock.py
    assert out[False][:2] == ["missing console", "missing sock"]
    for fn in (child.exec_now, child.prepare_exec):
        src = inspect.getsource(fn)
        assert "console." not in src.replace('loaded("console").', ""), f"{fn.__name__} uses console.py directly"
