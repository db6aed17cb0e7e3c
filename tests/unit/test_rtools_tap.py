"""Unit tests for the TAP parser and program runner in conformance/rtools.py (no root needed)."""

import importlib.util
import os
import stat
import sys
import textwrap

import pytest

_RTOOLS = os.path.join(os.path.dirname(__file__), "..", "..", "conformance", "rtools.py")
_spec = importlib.util.spec_from_file_location("rtools", _RTOOLS)
rtools = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("rtools", rtools)
_spec.loader.exec_module(rtools)
parse_tap = rtools.parse_tap


def tap(s):
    return parse_tap(textwrap.dedent(s).lstrip("\n"))


def test_simple_pass_plan_first():
    r = tap("""
        TAP version 13
        1..3
        ok 1 - one
        ok 2 - two
        ok 3
        """)
    assert r.version == 13
    assert (r.plan, r.ok, r.not_ok, r.failed, r.skip) == (3, 3, 0, 0, 0)
    assert r.plan_complete and not r.plan_at_end
    assert [t.description for t in r.tests] == ["one", "two", ""]


def test_yaml_blocks_are_not_test_lines():
    # runtime-tools prints JSON-flavoured YAML; embedded TAP text inside a
    # block (runtimetest's stdout) must not be counted.
    r = tap("""
        TAP version 13
        ok 1 - has expected hostname
          ---
          {
            "actual": "x",
            "stdout": "ok 1 - inner\\nnot ok 2 - inner"
          }
          ...
        not ok 2 - mounts
          ---
          message: |
            not ok 99 - looks like a test line
            1..99
          ok 5 - also not a test
          ...
        ok 3 - after
        1..3
        """)
    assert (r.ok, r.not_ok, r.failed, r.finished, r.plan) == (2, 1, 1, 3, 3)
    assert r.plan_complete and r.plan_at_end
    assert '"actual": "x"' in r.tests[0].yaml
    assert "looks like a test line" in r.tests[1].yaml
    assert not r.warnings


def test_not_ok_todo_is_not_a_failure():
    r = tap("""
        1..3
        not ok 1 - unfinished feature # TODO not implemented yet
        ok 2 - bonus # todo surprisingly works
        not ok 3 - real failure
        """)
    assert r.not_ok == 2
    assert r.failed == 1
    assert r.todo == 2 and r.todo_passed == 1
    assert r.tests[0].directive == "TODO"
    assert r.tests[0].reason == "not implemented yet"
    assert r.tests[0].description == "unfinished feature"
    assert r.tests[2].failed


def test_skip_directives():
    r = tap("""
        TAP version 13
        ok 1 # SKIP linux.mountlabel not set
        ok 2 - foo # skipped: no hugetlb
        ok 3 - escaped \\# SKIP is not a directive
        not ok 4 # Skip failing-but-skipped
        1..4
        """)
    # skip counts "ok # SKIP" lines; ok counts the other ok lines
    assert (r.ok, r.skip, r.ok_lines) == (1, 2, 3)
    assert r.ok + r.not_ok + r.skip == r.finished
    assert [t.directive for t in r.tests] == ["SKIP", "SKIP", None, "SKIP"]
    assert r.tests[0].reason == "linux.mountlabel not set"
    assert r.tests[0].description == ""
    assert r.tests[1].description == "foo"
    # a not ok with SKIP is still a not ok line and a failure (only TODO excuses)
    assert r.not_ok == 1 and r.failed == 1


def test_skip_all_plan():
    r = tap("1..0 # SKIP no cgroup v1 here\n")
    assert r.plan == 0 and r.plan_skip_reason == "no cgroup v1 here"
    assert r.plan_complete and r.finished == 0


def test_missing_plan():
    r = tap("""
        TAP version 13
        ok 1 - a
        ok 2 - b
        """)
    assert r.plan is None
    assert not r.plan_complete
    assert r.ok == 2


def test_plan_at_end_and_short_run():
    r = tap("""
        ok 1
        ok 2
        1..3
        """)
    assert r.plan == 3 and r.plan_at_end
    assert not r.plan_complete
    assert r.finished == 2


def test_bail_out_stops_parsing():
    r = tap("""
        1..5
        ok 1
        Bail out! runtime exploded
        ok 2
        """)
    assert r.bail_out == "runtime exploded"
    assert r.finished == 1
    assert not r.plan_complete


def test_unnumbered_and_out_of_sequence_and_noise():
    r = tap("""
        # a diagnostic
        failed to create the container
        ok
        ok
        ok 7
        1..3
        """)
    assert [t.number for t in r.tests] == [1, 2, 7]
    assert r.diagnostics == ["a diagnostic"]
    assert r.unknown == ["failed to create the container"]
    assert any("out of sequence" in w for w in r.warnings)


def test_unterminated_yaml_is_warned():
    r = tap("""
        ok 1
          ---
          foo: bar
        """)
    assert r.finished == 1
    assert r.warnings


# --------------------------------------------------------------------------
# run_program with fake .t programs
# --------------------------------------------------------------------------


def _fake(tmp_path, name, body):
    d = tmp_path / "tools" / "validation" / name
    d.mkdir(parents=True)
    p = d / (name + ".t")
    p.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return str(p)


def test_run_program_clean_pass_sees_runtime_and_cwd(tmp_path):
    prog = _fake(tmp_path, "good", """
        echo "TAP version 13"
        echo "ok 1 - runtime is $RUNTIME"
        echo "ok 2 - cwd is $(pwd)"
        echo "1..2"
        echo "some noise" >&2
        """)
    cwd = str(tmp_path / "tools")
    r = rtools.run_program(prog, "someruntime", cwd, 10, str(tmp_path / "out"))
    assert r.name == "good"
    assert r.exit_status == 0 and not r.timed_out
    assert r.clean_pass and r.verdict == "PASS"
    assert r.tap.tests[0].description == "runtime is someruntime"
    assert r.tap.tests[1].description == "cwd is " + cwd
    assert open(r.tap_path).read().startswith("TAP version 13")
    assert "some noise" in r.stderr_head


def test_run_program_failure_and_exit_status(tmp_path):
    prog = _fake(tmp_path, "bad", """
        echo "1..2"
        echo "ok 1"
        echo "failed to create the container" >&2
        exit 1
        """)
    r = rtools.run_program(prog, "x", str(tmp_path), 10, str(tmp_path / "out"))
    assert r.exit_status == 1
    assert not r.clean_pass
    assert r.verdict == "ERROR"
    assert "exit 1" in r.reasons and "plan 2, ran 1" in r.reasons
    assert r.planned_finished == "2/1"


def test_run_program_exit0_with_not_ok_is_fail(tmp_path):
    prog = _fake(tmp_path, "notok", """
        echo "not ok 1 - nope"
        echo "not ok 2 - later # TODO"
        echo "1..2"
        """)
    r = rtools.run_program(prog, "x", str(tmp_path), 10, str(tmp_path / "out"))
    assert r.verdict == "FAIL"
    assert r.tap.not_ok == 2 and r.tap.failed == 1


def test_run_program_timeout_kills_process_group(tmp_path):
    import os
    import select
    import signal

    pidfile = tmp_path / "child.pid"
    prog = _fake(tmp_path, "slow", """
        echo "TAP version 13"
        sleep 60 &
        echo $! > %s
        echo "ok 1 - started"
        sleep 30
        echo "ok 2 - never"
        echo "1..2"
        """ % pidfile)
    r = rtools.run_program(prog, "x", str(tmp_path), 1, str(tmp_path / "out"))
    assert r.timed_out
    assert r.exit_status is None
    assert r.verdict == "TIMEOUT"
    assert r.tap.ok == 1 and r.tap.plan is None
    assert r.duration < 10
    # the background child was SIGKILLed with the group: it exits at once (no sleep standing in for "long enough";
    # a survivor would run for a minute, far past the 10 s allowed here)
    child = int(pidfile.read_text())
    try:
        fd = os.pidfd_open(child)
    except ProcessLookupError:
        return
    try:
        exited = select.select([fd], [], [], 10)[0]
        if not exited:
            os.kill(child, signal.SIGKILL)
        assert exited, "background child of the timed-out program was not killed"
    finally:
        os.close(fd)


def test_table_and_totals(tmp_path):
    good = _fake(tmp_path, "a", 'echo "1..1"; echo "ok 1 # SKIP nope"\n')
    bad = _fake(tmp_path, "b", 'echo "1..1"; echo "not ok 1"\n')
    out = str(tmp_path / "out")
    res = {"r1": {"a": rtools.run_program(good, "r1", str(tmp_path), 10, out),
                  "b": rtools.run_program(bad, "r1", str(tmp_path), 10, out)}}
    txt = rtools.format_table(["a", "b"], ["r1"], res, markdown=False)
    assert "1/2 clean" in txt
    md = rtools.format_table(["a", "b"], ["r1"], res, markdown=True)
    assert md.splitlines()[0].startswith("| program | ok | not ok | skip |")
    assert rtools.discover(str(tmp_path / "tools"), only="^a$") == [good]


def test_orphan_yaml_block_is_recorded():
    # shape of runtime-tools' hooks.t output: an error block with no test point
    r = tap("""
        TAP version 13
          ---
          {
            "error": "Hooks MUST be called in the listed order"
          }
          ...
        1..0
        """)
    assert r.plan == 0 and r.finished == 0 and r.plan_complete
    assert len(r.orphan_yaml) == 1 and "Hooks MUST" in r.orphan_yaml[0]
    assert r.orphan_errors == r.orphan_yaml
    # a block right after a test point belongs to it, a second one does not
    r = tap("""
        ok 1
          ---
          a: 1
          ...
          ---
          b: 2
          ...
        1..1
        """)
    assert r.tests[0].yaml.strip() == "a: 1"
    assert [y.strip() for y in r.orphan_yaml] == ["b: 2"]
    assert r.orphan_errors == []


def test_multiline_description_keeps_its_yaml():
    # runtime-tools' SpecErrorOK prints "desc\nRefer to: url" unescaped
    r = tap("""
        ok 1 - state MUST generate an error
        Refer to: https://example/runtime.md#query-state
          ---
          {
            "error": "exit status 1"
          }
          ...
        1..1
        """)
    assert r.tests[0].yaml is not None and "exit status 1" in r.tests[0].yaml
    assert r.orphan_yaml == [] and r.unknown == ["Refer to: https://example/runtime.md#query-state"]


def test_yaml_before_first_test_without_error_is_not_an_error():
    r = tap("""
          ---
          {
            "stderr": "",
            "stdout": "TAP version 13\\nok 1 - x\\n",
            "error": ""
          }
          ...
        ok 1 - hostname is set
        1..1
        """)
    assert len(r.orphan_yaml) == 1 and r.orphan_errors == []
    assert r.ok == 1 and r.plan_complete
