"""The delete at the end of a foreground `run`: the quick one (container/state.py's quick(): the lock, one rmdir per
cgroup dir, the state dir) when the container had its own pid and mount namespaces (the kernel killed all of it
with its init), lifecycle's full delete otherwise.  The CLI runs in a subprocess with lifecycle's full delete
replaced by a marker, so the test tells which of the two ran; the leak check of the `pyrunc` fixture then proves
nothing was left behind."""

import subprocess
import sys

from pyrunc.container.state import Store

REPO = __file__.rsplit("/tests/", 1)[0]

_CLI = """
import sys
from pyrunc.container import lifecycle
full = lifecycle.Runtime._delete
def marked(self, cid, force):
    sys.stderr.write("FULL-DELETE\\n")
    return full(self, cid, force)
lifecycle.Runtime._delete = marked
from pyrunc.cli.main import main
main(sys.argv[1:])
"""


def _run(pyrunc, *args):
    return subprocess.run([sys.executable, "-c", _CLI, "--root", pyrunc.root, *map(str, args)], cwd=REPO,
                          capture_output=True, timeout=60)


def test_foreground_run_with_its_own_pid_namespace_deletes_quickly(pyrunc, bundle):
    cid = pyrunc.new_id("rq")
    p = _run(pyrunc, "run", "--bundle", bundle(["sh", "-c", "exit 7"]), cid)
    assert p.returncode == 7, p.stderr
    assert b"FULL-DELETE" not in p.stderr, "a stopped container with its own pid and mount ns needs no full delete"
    assert cid not in Store(pyrunc.root).ids()


def test_foreground_run_in_the_hosts_pid_namespace_uses_the_full_delete(pyrunc, bundle):
    """Without its own pid namespace the container's processes outlive its init: the full delete kills them."""

    def host_pidns(cfg):
        cfg["linux"]["namespaces"] = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "pid"]

    cid = pyrunc.new_id("rf")
    p = _run(pyrunc, "run", "--bundle", bundle(["true"], edit=host_pidns), cid)
    assert p.returncode == 0, p.stderr
    assert b"FULL-DELETE" in p.stderr
    assert cid not in Store(pyrunc.root).ids()


def test_foreground_run_with_keep_deletes_nothing(pyrunc, bundle):
    cid = pyrunc.new_id("rk")
    p = _run(pyrunc, "run", "--keep", "--bundle", bundle(["true"]), cid)
    assert p.returncode == 0, p.stderr
    assert cid in Store(pyrunc.root).ids()
    assert pyrunc.state(cid)["status"] == "stopped"
    pyrunc("delete", cid, check=True)


_COUNT_OPENS = """
import builtins, sys
real, opened = builtins.open, []
def counting(path, *a, **kw):
    if str(path).endswith("/config.json"):
        opened.append(str(path))
    return real(path, *a, **kw)
builtins.open = counting
from pyrunc.cli.main import main
try:
    main(sys.argv[1:])
finally:
    sys.stderr.write(f"CONFIG-OPENS {len(opened)}\\n")
"""


def test_foreground_run_reads_config_json_once(pyrunc, bundle):
    """run peeks at config.json for its own choices (a terminal? a user namespace?); create then uses that
    document instead of reading and parsing the file a second time."""
    cid = pyrunc.new_id("r1")
    p = subprocess.run([sys.executable, "-c", _COUNT_OPENS, "--root", pyrunc.root, "run", "--bundle",
                        str(bundle(["true"])), cid], cwd=REPO, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert b"CONFIG-OPENS 1\n" in p.stderr, p.stderr


def test_foreground_run_of_a_malformed_config_says_so(pyrunc, tmp_path, bundle):
    b = bundle(["true"])
    (b / "config.json").write_text('{"ociVersion": ')
    cid = pyrunc.new_id("rm")
    p = pyrunc("run", "--bundle", b, cid)
    assert p.returncode != 0
    assert f"parse {b}/config.json" in p.err, p.err
