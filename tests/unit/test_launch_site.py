"""pyrunc.launch on the short path (what bin/pyrunc does under -SP): need_site() builds site's sys.path once,
without running site's code, and the _Missing finder calls it for a top-level module the short path lacks.  Each
case runs in a fresh `python -SP` (as the script runs) of this test run's venv, where click is only on site's
sys.path (the venv's site-packages); the real installs are in tests/integration/test_install.py."""

import os
import subprocess
import sys

from tests.conftest import REPO

MARK = "sitecustomize-ran"

SHORT = f"""
import sys
base = sys.path[:]
sys.path.append({REPO!r})  # pyrunc where the script would have found it
from pyrunc import launch


class Missing:  # as bin/pyrunc makes it
    pyrunc_sys_path = base

    def find_spec(name, path=None, target=None):
        return launch.find_missing(name, path, target)


sys.meta_path.append(Missing)
"""


def _run(code, tmp_path):
    mark = tmp_path / "mark"
    mark.mkdir(exist_ok=True)
    (mark / "sitecustomize.py").write_text(f"import sys\nsys.stderr.write({MARK!r})\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(mark)  # kept under -S: site would import its sitecustomize, need_site() must not
    p = subprocess.run([sys.executable, "-SP", "-c", code], capture_output=True, text=True, timeout=60, env=env,
                       cwd=str(tmp_path))
    return p.returncode, p.stdout, p.stderr


def test_missing_module_builds_sites_path_once(tmp_path):
    rc, out, err = _run(SHORT + """
assert "site" not in sys.modules
import click  # on site's sys.path only: found through _Missing -> need_site()
assert "site" in sys.modules and Missing not in sys.meta_path
assert launch.need_site() is False, "idempotent"
assert sys.path[:len(base)] == base, "the interpreter's own entries first, as site leaves them"
assert sys.path.count(launch.__file__.rsplit("/", 2)[0]) == 1, "where pyrunc was found stays on sys.path"
print("ok", click.__name__)
""", tmp_path)
    assert rc == 0 and out == "ok click\n", err
    assert MARK not in err, "need_site() must not run sitecustomize"


def test_need_site_called_first(tmp_path):
    rc, out, err = _run(SHORT + """
assert launch.need_site() is True and launch.need_site() is False
import click
print("ok")
""", tmp_path)
    assert rc == 0 and out == "ok\n" and MARK not in err, err


def test_unknown_module_is_still_an_import_error(tmp_path):
    rc, out, err = _run(SHORT + """
try:
    import pyrunc_no_such_module
except ModuleNotFoundError:
    print("not found", "site" in sys.modules)
""", tmp_path)
    assert rc == 0 and out == "not found True\n", err


def test_without_the_script_need_site_does_nothing(tmp_path):
    """Not started by bin/pyrunc (python -m, tests, a program importing pyrunc): sys.path is the caller's."""
    rc, out, err = _run(f"""
import sys
sys.path.append({REPO!r})
from pyrunc import launch
before = sys.path[:]
print(launch.need_site(), sys.path == before, "site" in sys.modules)
""", tmp_path)
    assert rc == 0 and out == "False True False\n", err
