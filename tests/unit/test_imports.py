"""The import budget (house rule 7), checked in fresh interpreters: hot verbs must not pull in heavy or privileged
modules, and `import pyrunc` must import nothing at all of the package."""

import json
import subprocess
import sys
import textwrap

from tests.conftest import REPO

HEAVY = ("jsonschema", "pyroute2", "click", "pyrunc._helper", "pyrunc._seccomp", "cffi", "_cffi_backend")


WRAPPER = textwrap.dedent("""
    import os, sys
    rc = 0
    try:
        exec(compile(sys.argv[1], "<test>", "exec"))
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    mods = sorted(sys.modules)  # taken before the report itself imports json
    import json
    os.write(int(os.environ["PYRUNC_TEST_FD"]), json.dumps([mods, rc]).encode())
""")


def _modules_after(code):
    """Run code in a fresh interpreter (cwd = the repo) and return (sys.modules names, exit code, stderr)."""
    import os

    r, w = os.pipe()
    try:
        p = subprocess.run([sys.executable, "-c", WRAPPER, code], cwd=REPO, pass_fds=(w,), capture_output=True,
                           timeout=60, stdin=subprocess.DEVNULL, env=_env(w))
    finally:
        os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    assert data, p.stderr.decode()
    mods, rc = json.loads(data)
    return set(mods), rc, p.stderr.decode()


def _env(w):
    import os

    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYRUNC_TEST_FD"] = str(w)  # the module list goes there, apart from the verb's own stdout/stderr
    return env


def _run_cli(argv):
    code = f"sys.argv = ['pyrunc'] + {argv!r}\nfrom pyrunc.cli.main import main\nmain()"
    return _modules_after(code)


def test_state_of_missing_container_stays_light(tmp_path):
    mods, rc, err = _run_cli(["--root", str(tmp_path), "state", "nope"])
    assert rc == 1 and "container does not exist" in err
    assert "pyrunc.cli.state" in mods, "the verb must really have run"
    bad = sorted(m for m in mods for h in HEAVY if m == h or m.startswith(h + "."))
    assert not bad, f"`pyrunc state` imported {bad}"


def test_other_hot_verbs_on_missing_container_stay_light(tmp_path):
    for argv in (["kill", "nope", "9"], ["delete", "--force", "nope"], ["list", "--format", "json"]):
        mods, rc, err = _run_cli(["--root", str(tmp_path)] + argv)
        assert f"pyrunc.cli.{argv[0]}" in mods, (argv, err)
        bad = sorted(m for m in mods for h in ("jsonschema", "pyroute2", "click") if m == h or m.startswith(h + "."))
        assert not bad, f"`pyrunc {' '.join(argv)}` imported {bad}"


def test_bad_flag_goes_to_click():
    """The control for the tests above: click IS imported when help or a usage error has to be shown, so a
    missing click in those module lists means the fast path ran, not that the check is blind."""
    mods, rc, err = _run_cli(["state", "--no-such-flag", "x"])
    assert "click" in mods and rc != 0


def test_import_pyrunc_imports_nothing_of_the_package():
    mods, rc, err = _modules_after("import pyrunc")
    assert rc == 0, err
    ours = sorted(m for m in mods if m.startswith("pyrunc."))
    assert ours == [], f"`import pyrunc` imported {ours}"
    assert "pyrunc" in mods


def test_import_subpackages_is_cheap():
    # the packages `state` walks through import nothing heavy on their own
    mods, rc, err = _modules_after("import pyrunc.cgroups, pyrunc.container, pyrunc.linux, pyrunc.cli")
    assert rc == 0, err
    bad = sorted(m for m in mods for h in HEAVY if m == h or m.startswith(h + "."))
    assert not bad, bad


# What each of these costs at start-up here: json (imports re) ~6 ms, enum (imported by `signal`) ~3.5 ms,
# typing ~5 ms, collections ~1.4 ms.  Hot verbs do without them (pyrunc/fastjson.py, _signal, plain classes).
HOT_FORBIDDEN = {"json", "re", "enum", "typing", "collections", "signal", "subprocess"}


def test_hot_verbs_add_no_costly_stdlib_modules(tmp_path):
    baseline, _, _ = _modules_after("pass")  # whatever this interpreter's site already imports is not ours
    for verb in (["state", "nope"], ["start", "nope"], ["kill", "nope", "KILL"], ["delete", "nope"]):
        argv = ["--root", str(tmp_path)] + verb
        mods, rc, _ = _modules_after(f"sys.argv = ['pyrunc'] + {argv!r}\nfrom pyrunc.cli.main import main\nmain()")
        assert rc == 1, verb
        assert f"pyrunc.cli.{verb[0]}" in mods, f"the {verb[0]} verb must really have run"
        added = (mods - baseline) & HOT_FORBIDDEN
        assert not added, f"`pyrunc {verb[0]}` imported {sorted(added)}"


def test_systemd_driver_loads_only_when_used(tmp_path):
    """The systemd driver and its D-Bus client are imported by --systemd-cgroup create and by the verbs on a
    container made with it, never by the others (nor by `import pyrunc.cgroups`)."""
    driver = ("pyrunc.cgroups.systemd", "pyrunc.cgroups.systemd_props", "pyrunc.cgroups.systemd_path",
              "pyrunc.cgroups.dbus")
    for argv in (["state", "nope"], ["kill", "nope", "9"], ["delete", "--force", "nope"], ["list"],
                 ["--systemd-cgroup", "state", "nope"]):
        mods, rc, err = _run_cli(["--root", str(tmp_path)] + argv)
        assert "pyrunc.cli." + [a for a in argv if not a.startswith("-")][0] in mods, (argv, err)
        assert not sorted(mods & set(driver)), f"`pyrunc {' '.join(argv)}` imported {sorted(mods & set(driver))}"
    mods, rc, err = _modules_after("import pyrunc.cgroups, pyrunc.cgroups.manager")
    assert rc == 0 and not mods & set(driver), err
    # the control: the driver's own import brings only cheap stdlib modules (no socket, enum, re, typing)
    baseline, _, _ = _modules_after("import pyrunc.cgroups.manager")
    mods, rc, err = _modules_after("import pyrunc.cgroups.systemd")
    assert rc == 0 and "pyrunc.cgroups.dbus" in mods, err
    assert not (mods - baseline) & (HOT_FORBIDDEN | {"socket", "jeepney", "dbus"}), sorted(mods - baseline)
