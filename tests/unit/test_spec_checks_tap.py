"""TAP output of conformance/spec_checks.py (no root, no containers)."""

import importlib.util
import io
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC_CHECKS = os.path.join(ROOT, "conformance", "spec_checks.py")


@pytest.fixture(scope="module")
def sc():
    spec = importlib.util.spec_from_file_location("spec_checks_under_test", SPEC_CHECKS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tap_line_ok(sc):
    assert sc.tap_line(12, True, "process.cwd is the working directory", "config.md#process") == \
        "ok 12 - process.cwd is the working directory [config.md#process]"


def test_tap_line_not_ok_with_todo(sc):
    line = sc.tap_line(3, False, "poststart after start", "config.md#poststart",
                       "TODO runc fails here: runs at create")
    assert line == "not ok 3 - poststart after start [config.md#poststart] # TODO runc fails here: runs at create"


def test_tap_line_escapes_hash_and_newlines(sc):
    line = sc.tap_line(1, True, "a # b\nc", "x.md#y")
    assert line == "ok 1 - a \\# b c [x.md#y]"
    # the only unescaped ' # ' left would be a directive; there is none
    assert " # " not in line


def test_tap_diag_multiline(sc):
    assert sc.tap_diag("one\n\ntwo\n") == ["#   one", "#", "#   two"]
    assert sc.tap_diag("") == ["#"]


def _tap(sc):
    out = io.StringIO()
    return sc.Tap(out), out


def test_header_and_numbering(sc):
    tap, out = _tap(sc)
    tap.header(2)
    tap.result(True, "first", "runtime.md#state")
    tap.result(False, "second", "runtime.md#start", diag="boom")
    assert out.getvalue().splitlines() == [
        "TAP version 13",
        "1..2",
        "ok 1 - first [runtime.md#state]",
        "not ok 2 - second [runtime.md#start]",
        "#   boom",
    ]
    assert tap.exit_status() == 1


def _tap_runc(sc):
    out = io.StringIO()
    return sc.Tap(out, excuse_todo=True), out


def test_todo_failures_do_not_fail_the_run(sc):
    tap, out = _tap_runc(sc)
    tap.result(True, "a", "s")
    tap.result(False, "b", "s", todo="known", diag="why")
    assert tap.exit_status() == 0
    lines = out.getvalue().splitlines()
    assert lines[1] == "not ok 2 - b [s] # TODO runc fails here: known"
    assert lines[2] == "#   why"
    assert "# todo 1 (failing as expected: 1)" in tap.summary_lines()


def test_todo_that_passes_is_reported(sc):
    tap, _ = _tap_runc(sc)
    tap.result(True, "b", "s", todo="known")
    assert tap.exit_status() == 0
    assert any("drop their TODO" in ln and ln.endswith("1") for ln in tap.summary_lines())


def test_todo_excuses_nothing_for_another_runtime(sc):
    """A TODO mark records a known runc failure; the same failure from pyrunc is pyrunc's own and fails the run."""
    tap, out = _tap(sc)  # not runc: the default
    tap.result(True, "a", "s")
    tap.result(False, "b", "s", todo="known", diag="why")
    assert tap.exit_status() == 1
    lines = out.getvalue().splitlines()
    assert lines[1] == "not ok 2 - b [s]", "no TODO directive: TAP consumers would not count it as a failure"
    assert lines[2] == "#   why" and "runc 1.1.5 fails this check too: known" in lines[3]
    assert tap.summary_lines()[:2] == ["# pass 1", "# fail 1"]
    assert tap.excused(False, todo="known") is False
    # passing a TODO-marked check is a plain pass
    tap2, out2 = _tap(sc)
    tap2.result(True, "c", "s", todo="known")
    assert out2.getvalue() == "ok 1 - c [s]\n" and tap2.exit_status() == 0 and tap2.passed == 1


def test_deviation_is_excused_for_every_runtime_and_counted(sc):
    for tap, out in (_tap(sc), _tap_runc(sc)):
        tap.result(False, "d", "runtime.md#delete", deviation="callers rely on it", diag="deleted")
        assert tap.exit_status() == 0 and tap.excused(False, deviation="x")
        assert out.getvalue().splitlines()[0] == "not ok 1 - d [runtime.md#delete] # TODO deviation: callers rely on it"
        assert "# deviation 1 (deliberate, see conformance/README.md): 1" in tap.summary_lines()


def _fake_runtime(tmp_path, name, version_line):
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    path.chmod(0o755)
    return str(path)


def test_only_runc_itself_gets_its_todos_excused(sc, tmp_path):
    assert sc.is_runc(_fake_runtime(tmp_path, "runc", "runc version 1.1.5+ds1")) is True
    assert sc.is_runc(_fake_runtime(tmp_path, "pyrunc", "pyrunc version 0.1.0")) is False
    # a pyrunc installed under runc's name is still pyrunc
    (tmp_path / "as-runc").mkdir()
    assert sc.is_runc(_fake_runtime(tmp_path / "as-runc", "runc", "pyrunc version 0.1.0")) is False
    assert sc.is_runc(str(tmp_path / "missing")) is False


def test_skip_counts_as_pass_and_says_why(sc):
    tap, out = _tap(sc)
    tap.result(False, "c", "s", skip="no cgroup v1 memory controller")
    assert out.getvalue() == "ok 1 - c [s] # SKIP no cgroup v1 memory controller\n"
    assert tap.exit_status() == 0
    assert "# skip 1" in tap.summary_lines()


def test_diag_only_for_failures_and_todos(sc):
    tap, out = _tap(sc)
    tap.result(True, "passing", "s", diag="noise")
    assert out.getvalue() == "ok 1 - passing [s]\n"


def test_summary_counts(sc):
    tap, _ = _tap(sc)
    tap.result(True, "a", "s")
    tap.result(True, "b", "s")
    tap.result(False, "c", "s")
    assert tap.summary_lines()[:3] == ["# pass 2", "# fail 1", "# skip 0"]


def test_resolve_runtime(sc, tmp_path):
    assert sc.resolve_runtime("sh") == __import__("shutil").which("sh")
    with pytest.raises(SystemExit):
        sc.resolve_runtime("no-such-runtime-binary-xyz")
    with pytest.raises(SystemExit):
        sc.resolve_runtime(str(tmp_path / "missing"))


@pytest.fixture(scope="module")
def registry():
    sys.path.insert(0, os.path.join(ROOT, "conformance"))
    try:
        import checks
        checks.load_all()
        from checks import hooks_cgroups
        yield checks, hooks_cgroups
    finally:
        sys.path.remove(os.path.join(ROOT, "conformance"))


def test_every_check_cites_a_spec_section(registry):
    import re
    checks, _ = registry
    assert len(checks.CHECKS) > 50
    descs = [c.description for c in checks.CHECKS]
    assert len(descs) == len(set(descs)), "duplicate check descriptions"
    for c in checks.CHECKS:
        assert re.fullmatch(r"(runtime|runtime-linux|config|config-linux)\.md#[a-z0-9-]+", c.section), c
        assert c.todo is None or c.todo.strip(), c


def test_parse_hook_log(registry):
    _, hc = registry
    text = '@@prestart mnt:[1]\n{"id": "x", "pid": 5}\n@@user\n\n@@poststop mnt:[1]\nnot json\n'
    got = hc.parse_hook_log(text)
    assert got[0] == ("prestart", "mnt:[1]", {"id": "x", "pid": 5})
    assert got[1][0] == "user"
    assert got[2][0] == "poststop" and got[2][2].startswith("not JSON")
