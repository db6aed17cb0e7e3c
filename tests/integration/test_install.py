"""The installed `pyrunc` and `containerd-shim-pyrunc-v1` scripts: real pip installs (a venv, `--user`, `--prefix`)
of a wheel built once from this tree, each run twice: the first run (with site, the #! line pip wrote) adds `-SP` to
the script's #! line; from then on the script starts without site (bin/pyrunc, pyrunc/launch.py): it finds pyrunc
next to itself, the hot verbs import neither site nor os, and the verbs that need third-party modules (click for
--help, cffi's backend for features and create) get site's sys.path from launch.need_site().

The third-party modules come from this test run's own site-packages (the wheels are installed --no-deps, offline):
a .pth path line in the install's site dir points there, which only site's sys.path processing reads, or PYTHONPATH
where site reads no .pth (--prefix).

The marker of the slow path is a sitecustomize module on PYTHONPATH, which site.main() imports and the fast path
never does; a .pth import line in the site dir is the same kind of marker.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from ..conftest import REPO, require

PTH_MARK = "pth-import-line-ran"
CUSTOMIZE_MARK = "sitecustomize-ran"
DEPS = sysconfig.get_paths()["purelib"]  # click, cffi and its backend, jsonschema: pyrunc's dependencies


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    """One wheel of this tree (a copy of the tracked files: the build writes into its source tree)."""
    require(shutil.which("cc") is not None, "needs a C compiler to build the wheel")
    tmp = tmp_path_factory.mktemp("wheel")
    src, out = tmp / "src", tmp / "out"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        dst = src / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if os.path.islink(os.path.join(REPO, rel)):
            os.symlink(os.readlink(os.path.join(REPO, rel)), dst)
        elif os.path.isfile(os.path.join(REPO, rel)):  # a tracked file deleted in the work tree is skipped
            shutil.copy2(os.path.join(REPO, rel), dst)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=300)
    (whl,) = out.glob("pyrunc-*.whl")
    return str(whl)


def _pip(python, *args, env=None):
    """pip of this test run acting on another interpreter (--python), without the index: --no-deps, as
    `--version` and `state` import nothing outside pyrunc and the standard library."""
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index",
                    *args], check=True, capture_output=True, timeout=300, env=env)


def _marked_env(tmp_path, **extra):
    """An environment whose PYTHONPATH holds a sitecustomize that announces itself on stderr."""
    mark = tmp_path / "mark"
    mark.mkdir(exist_ok=True)
    (mark / "sitecustomize.py").write_text(f"import sys\nsys.stderr.write({CUSTOMIZE_MARK!r} + '\\n')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(mark), extra.get("PYTHONPATH")]))
    return env


def _run(script, *args, env):
    p = subprocess.run([script, *args], capture_output=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def _first_line(path):
    with open(path, "rb") as f:
        return f.readline().decode().rstrip("\n")


def _check_both_runs(bindir, tmp_path, env, marks=(CUSTOMIZE_MARK,)):
    """Run 1: with site (the marks show), adds -SP.  Runs 2+: `--version`, `state` and the shim, without site's
    code (no mark) and without bin/ on sys.path, each correct."""
    pyrunc, shim = os.path.join(bindir, "pyrunc"), os.path.join(bindir, "containerd-shim-pyrunc-v1")
    assert not os.path.islink(shim), "setuptools installs the symlinked shim as a file of its own"
    for script in (pyrunc, shim):
        before, st = _first_line(script), os.stat(script)
        assert not before.endswith(" -SP"), before
        rc, out, err = _run(script, "--version" if script == pyrunc else "-v", env=env)
        assert rc == 0, err
        assert all(m in err for m in marks), f"the first run goes through site: {err!r}"
        assert _first_line(script) == before + " -SP"
        after = os.stat(script)
        assert (after.st_mode, after.st_uid, after.st_gid) == (st.st_mode, st.st_uid, st.st_gid)
    with open(os.path.join(bindir, "pyrunc.py"), "w") as f:  # -P: bin/ is not on sys.path, nothing there shadows
        f.write("raise SystemExit('bin/ is on sys.path')\n")
    rc, out, err = _run(pyrunc, "--version", env=env)
    assert rc == 0 and out.startswith("pyrunc version "), err
    assert not any(m in err for m in marks), f"the second run must skip site's code: {err!r}"
    rc, out, err = _run(pyrunc, "--root", str(tmp_path / "root"), "state", "nope", env=env)
    assert rc == 1 and "container does not exist" in err, err
    assert not any(m in err for m in marks), err
    rc, out, err = _run(shim, "-v", env=env)
    assert rc == 0 and out.startswith("containerd-shim-pyrunc-v1:\n  Version:"), err
    assert not any(m in err for m in marks), err
    # the short path: a hot verb imports neither site nor os (-X importtime lists every module a run imports)
    rc, out, err = _run(pyrunc, "--root", str(tmp_path / "root"), "state", "nope",
                        env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
    mods = _imported(err)
    assert rc == 1 and "container does not exist" in err and "pyrunc.cli.state" in mods, err
    assert not {"site", "os"} & mods, f"`pyrunc state` imported {sorted({'site', 'os'} & mods)}"
    # the verbs that need more: site's sys.path (its .pth path lines too), still none of site's code
    rc, out, err = _run(pyrunc, "--help", env=env)
    assert rc == 0 and out.startswith("Usage: pyrunc"), err
    assert not any(m in err for m in marks), err
    rc, out, err = _run(pyrunc, "features", env=env)
    assert rc == 0 and json.loads(out)["ociVersionMax"], err
    assert not any(m in err for m in marks), err


def _check_short_path(pyrunc, tmp_path, env):
    rc, out, err = _run(pyrunc, "--root", str(tmp_path / "root"), "state", "nope",
                        env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
    mods = _imported(err)
    assert rc == 1 and "container does not exist" in err and "pyrunc.cli.state" in mods, err
    assert not {"site", "os", "sitecustomize"} & mods, sorted(mods)


def _imported(err):
    """The module names of `-X importtime` lines ("import time:   536 |   2227 |   os")."""
    return {line.rsplit("|", 1)[1].strip() for line in err.splitlines() if line.startswith("import time:") and
            not line.rstrip().endswith("imported package")}


def _venv(path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    (site,) = path.glob("lib/python3*/site-packages")
    return str(path / "bin" / "python"), site


def test_venv_install(wheel, tmp_path):
    python, site = _venv(tmp_path / "venv")
    _pip(python, wheel)
    (site / "probe.pth").write_text(f"import sys; sys.stderr.write({PTH_MARK!r} + '\\n')\n{DEPS}\n")
    _check_both_runs(str(tmp_path / "venv" / "bin"), tmp_path, _marked_env(tmp_path),
                     marks=(CUSTOMIZE_MARK, PTH_MARK))
    # a symlink to the script elsewhere (/usr/local/bin/pyrunc -> /opt/pyrunc/bin/pyrunc): pyrunc is looked for
    # where the script really is
    (tmp_path / "elsewhere" / "bin").mkdir(parents=True)
    link = tmp_path / "elsewhere" / "bin" / "pyrunc"
    link.symlink_to(os.path.relpath(tmp_path / "venv" / "bin" / "pyrunc", link.parent))
    _check_short_path(str(link), tmp_path, _marked_env(tmp_path))


def test_user_install(wheel, tmp_path):
    """pip install --user with HOME elsewhere: pyrunc in ~/.local/lib/pythonX.Y/site-packages, the scripts in
    ~/.local/bin, run by the base interpreter (not a venv), which finds the user site itself."""
    base = getattr(sys, "_base_executable", sys.executable)
    home = tmp_path / "home"
    home.mkdir()
    env = _marked_env(tmp_path, HOME=str(home))
    _pip(base, "--user", wheel, env={**env, "PYTHONPATH": ""})
    (site,) = home.glob(".local/lib/python3*/site-packages")
    (site / "probe.pth").write_text(f"import sys; sys.stderr.write({PTH_MARK!r} + '\\n')\n{DEPS}\n")
    _check_both_runs(str(home / ".local" / "bin"), tmp_path, env, marks=(CUSTOMIZE_MARK, PTH_MARK))


def test_prefix_install(wheel, tmp_path):
    """pip install --prefix P: P/bin and P/lib/pythonX.Y/site-packages, found through PYTHONPATH, which -SP keeps."""
    base = getattr(sys, "_base_executable", sys.executable)
    prefix = tmp_path / "prefix"
    _pip(base, "--prefix", str(prefix), wheel)
    (site,) = prefix.glob("lib/python3*/site-packages")
    _check_both_runs(str(prefix / "bin"), tmp_path, _marked_env(tmp_path, PYTHONPATH=f"{site}:{DEPS}"))


def test_prefix_install_without_pythonpath(wheel, tmp_path):
    """The script finds the pyrunc installed with it under --prefix even where site would not look (no
    PYTHONPATH): the hot verbs work, and a verb that needs site still finds pyrunc's own modules."""
    base = getattr(sys, "_base_executable", sys.executable)
    prefix = tmp_path / "prefix"
    _pip(base, "--prefix", str(prefix), wheel)
    pyrunc = str(prefix / "bin" / "pyrunc")
    env = _marked_env(tmp_path, PYTHONPATH=DEPS)
    _run(pyrunc, "--version", env=env)  # adds -SP
    assert _first_line(pyrunc).endswith(" -SP")
    _check_short_path(pyrunc, tmp_path, env)
    rc, out, err = _run(pyrunc, "features", env=env)  # need_site() keeps the dir pyrunc came from
    assert rc == 0 and json.loads(out)["ociVersionMax"], err


def test_debian_dist_packages_layout(wheel, tmp_path):
    """A Debian Python's pip puts packages in <prefix>/lib/pythonX.Y/dist-packages (/usr/local), scripts in
    <prefix>/bin: the script looks there too."""
    base = getattr(sys, "_base_executable", sys.executable)
    prefix = tmp_path / "local"
    _pip(base, "--prefix", str(prefix), wheel)
    (site,) = prefix.glob("lib/python3*/site-packages")
    site.rename(site.parent / "dist-packages")
    pyrunc = str(prefix / "bin" / "pyrunc")
    env = _marked_env(tmp_path)
    with open(pyrunc, "rb") as f:
        first, rest = f.readline(), f.read()
    with open(pyrunc, "wb") as f:  # what add_flag writes, without the first run (site would not find pyrunc here)
        f.write(first.rstrip(b"\n") + b" -SP\n" + rest)
    rc, out, err = _run(pyrunc, "--version", env=env)
    assert rc == 0 and out.startswith("pyrunc version "), err
    _check_short_path(pyrunc, tmp_path, env)


def test_pyrunc_found_only_by_pth_code_falls_back_to_site(wheel, tmp_path):
    """Like an editable install, whose finder a .pth import line installs: without site's code pyrunc cannot be
    imported, so the script runs site.main() in full and works, only slower."""
    python, site = _venv(tmp_path / "venv")
    _pip(python, wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(str(site / "pyrunc"), str(elsewhere / "pyrunc"))
    (site / "finder.pth").write_text(f"import sys; sys.path.append({str(elsewhere)!r})\n")
    env = _marked_env(tmp_path)
    pyrunc = str(tmp_path / "venv" / "bin" / "pyrunc")
    for _ in range(2):
        rc, out, err = _run(pyrunc, "--version", env=env)
        assert rc == 0 and out.startswith("pyrunc version "), err
        assert CUSTOMIZE_MARK in err, "site.main() must have run in full"
    assert _first_line(pyrunc).endswith(" -SP"), "the flag is added all the same; the fallback keeps it correct"
    rc, out, err = _run(pyrunc, "--root", str(tmp_path / "root"), "state", "nope", env=env)
    assert rc == 1 and "container does not exist" in err, err


def test_script_owned_by_another_user_is_left_alone(wheel, tmp_path):
    """add_flag rewrites only a script its owner runs: root running a venv that belongs to someone else never
    changes that user's file (nor its owner)."""
    python, site = _venv(tmp_path / "venv")
    _pip(python, wheel)
    pyrunc = str(tmp_path / "venv" / "bin" / "pyrunc")
    os.chown(pyrunc, 65534, 65534)
    before = open(pyrunc, "rb").read()
    rc, out, err = _run(pyrunc, "--version", env=_marked_env(tmp_path))
    assert rc == 0 and out.startswith("pyrunc version "), err
    assert open(pyrunc, "rb").read() == before and os.stat(pyrunc).st_uid == 65534


def test_container_lifecycle_through_the_installed_script(wheel, tmp_path, bundle):
    """A real container through an installed venv whose dependencies only site's sys.path finds (a .pth path
    line): create gets them from need_site(); start, state and kill run on the short path, without site or os.
    The container has no mount namespace, so delete detaches its rootfs through the syscall helper, whose cffi
    backend the short path lacks: pyrunc._Missing calls need_site() and the delete succeeds."""
    python, site = _venv(tmp_path / "venv")
    _pip(python, wheel)
    (site / "deps.pth").write_text(f"{DEPS}\n")
    pyrunc = str(tmp_path / "venv" / "bin" / "pyrunc")
    env = _marked_env(tmp_path)
    _run(pyrunc, "--version", env=env)  # adds -SP
    b = bundle(["sleep", "30"], edit=lambda cfg: cfg["linux"].update(
        namespaces=[ns for ns in cfg["linux"]["namespaces"] if ns["type"] != "mount"]))
    root, cid = str(tmp_path / "root"), "inst-life"

    def verb(*argv):
        with open(tmp_path / "err", "w+b") as err:  # a file: the created init keeps its stdio open
            p = subprocess.run([pyrunc, "--root", root, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
                               if argv[0] == "state" else subprocess.DEVNULL, stderr=err, timeout=60,
                               env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
            err.seek(0)
            text = err.read().decode()
        assert p.returncode == 0, (argv, text)
        assert CUSTOMIZE_MARK not in text, (argv, text)
        return _imported(text), p.stdout

    try:
        mods, _ = verb("create", "--bundle", str(b), cid)
        assert "site" in mods and "_cffi_backend" in mods, "create gets site's sys.path for cffi"
        for argv in (["start", cid], ["state", cid], ["kill", cid, "KILL"]):
            mods, out = verb(*argv)
            assert f"pyrunc.cli.{argv[0]}" in mods and not {"site", "os"} & mods, (argv, sorted(mods))
        assert json.loads(out if out else verb("state", cid)[1])["status"] in ("running", "stopped")
        for _ in range(200):
            if json.loads(verb("state", cid)[1])["status"] == "stopped":
                break
        mods, _ = verb("delete", cid)
        assert {"site", "_cffi_backend"} <= mods, "the rootfs detach found cffi through pyrunc._Missing"
        assert not os.path.exists(os.path.join(root, cid))
    finally:
        subprocess.run([pyrunc, "--root", root, "delete", "--force", cid], capture_output=True, timeout=60, env=env)


def test_code_cache_of_an_installed_pyrunc(wheel, tmp_path):
    """The wheel installs pyrunc/_code.cache empty; the first run fills it (launch.build_code_cache) and the next
    runs load pyrunc's modules from it (pyrunc.CodeCache), except one whose installed source was edited since,
    which comes from its source as it would without the cache.  pip's uninstall removes the cache with the rest."""
    python, site = _venv(tmp_path / "venv")
    _pip(python, wheel)
    cache = site / "pyrunc" / "_code.cache"
    assert cache.read_bytes() == b"", "the wheel ships it empty"
    pyrunc, env = str(tmp_path / "venv" / "bin" / "pyrunc"), _marked_env(tmp_path)
    rc, out, err = _run(pyrunc, "--version", env=env)  # the first run: -SP, and the cache
    assert rc == 0, err
    assert cache.stat().st_size > 100000 and cache.stat().st_mode & 0o7777 == 0o644

    def loaders():
        rc, out, err = _run(pyrunc, "--root", str(tmp_path / "root"), "state", "nope",
                            env={**env, "PYTHONVERBOSE": "1"})
        assert rc == 1 and "container does not exist" in err, err
        # -v: "import 'pyrunc.cli.state' # <class 'pyrunc.CodeCache'>"
        return {line.split("'")[1]: line.rpartition("# ")[2] for line in err.splitlines()
                if line.startswith("import 'pyrunc")}

    got = loaders()
    assert {"pyrunc.cli.main", "pyrunc.cli.state", "pyrunc.container.state"} <= got.keys(), got
    assert all(v == "<class 'pyrunc.CodeCache'>" for k, v in got.items() if k != "pyrunc"), got
    state_py = site / "pyrunc" / "cli" / "state.py"
    state_py.write_text(state_py.read_text() + "\nimport sys\nsys.stderr.write('edited state.py ran\\n')\n")
    rc, out, err = _run(pyrunc, "--root", str(tmp_path / "root"), "state", "nope", env=env)
    assert rc == 1 and "edited state.py ran" in err, err
    assert loaders()["pyrunc.cli.state"].startswith("<_frozen_importlib_external.SourceFileLoader")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "uninstall", "-q", "-y", "pyrunc"],
                   check=True, capture_output=True, timeout=120)
    assert not (site / "pyrunc").exists(), sorted(os.listdir(site / "pyrunc"))


def test_script_loads_pyrunc_beside_it_by_its_path(wheel, tmp_path):
    """Without PYTHONPATH the script loads the pyrunc beside it by its path: no directory of sys.path is listed (a
    search lists lib-dynload and site-packages and stats four names: ~0.4 ms of every verb, Dec 2026, issue 12).
    With PYTHONPATH, which comes first, it searches as before.  The script runs under an audit hook that reports
    every directory listing, in a `python -SP` as its #! line starts it."""
    python, site = _venv(tmp_path / "venv")
    _pip(python, wheel)
    script = str(tmp_path / "venv" / "bin" / "pyrunc")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    rc, out, err = _run(script, "--version", env=env)  # the first run: -SP, and the code cache
    assert rc == 0, err
    probe = ("import sys\n"
             "sys.addaudithook(lambda ev, a: ev == 'os.listdir' and sys.stderr.write(f'LISTDIR {a[0]}\\n'))\n"
             f"sys.argv = [{script!r}, '--root', {str(tmp_path / 'root')!r}, 'state', 'nope']\n"
             f"exec(compile(open({script!r}).read(), {script!r}, 'exec'), {{'__name__': '__main__'}})\n")
    for extra, searched in (({}, False), ({"PYTHONPATH": str(tmp_path / "empty")}, True)):
        p = subprocess.run([python, "-SP", "-c", probe], capture_output=True, text=True, timeout=60,
                           env={**env, **extra}, stdin=subprocess.DEVNULL)
        assert p.returncode == 1 and "container does not exist" in p.stderr, p.stderr
        listed = [line for line in p.stderr.splitlines() if line.startswith("LISTDIR")]
        assert bool(listed) == searched, (extra, listed)
