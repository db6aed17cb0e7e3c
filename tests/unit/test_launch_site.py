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
import pyrunc
from pyrunc import launch

Missing = pyrunc._Missing(base)  # as pyrunc.main() makes it on the script's short path
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


def _venv_site_packages(python):
    return subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, timeout=60, check=True).stdout.strip()


def test_plain_venv_needs_no_site(tmp_path):
    """The usual install: the script found pyrunc in its venv's site-packages, which is all site would add (the
    venv leaves the system's packages out): need_site() builds nothing, and third-party modules are found there."""
    here = _venv_site_packages(sys.executable)
    rc, out, err = _run(SHORT + f"""
sys.path.append({here!r})  # the script's guess: <bin>/../lib/pythonX.Y/site-packages
assert launch.need_site() is False and "site" not in sys.modules
import click
assert click.__file__.startswith({here!r}) and "site" not in sys.modules
print("ok")
""", tmp_path)
    assert rc == 0 and out == "ok\n", err


def test_venv_with_system_site_packages_builds_sites_path(tmp_path):
    """A venv that includes the system's packages (and the user site): site adds more than the venv's own dir, in
    its own order, so need_site() builds it."""
    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = str(venv / "bin" / "python")
    here = _venv_site_packages(python)
    code = SHORT + f"""
sys.path.append({here!r})
assert launch.need_site() is True and "site" in sys.modules
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    p = subprocess.run([python, "-SP", "-c", code], capture_output=True, text=True, timeout=60, env=env,
                       cwd=str(tmp_path))
    assert p.returncode == 0 and p.stdout == "ok\n", p.stderr
