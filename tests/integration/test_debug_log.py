"""--debug and --log: debug lines about what pyrunc does (the verb; the steps of create, exec and delete), to
stderr or to --log FILE in --log-format; the log file exists after any call made with --log.  runc does the same
with its own lines; where the behaviour is shared, it is checked against runc too."""

import json
import os
import shutil
import subprocess

import pytest

from ..conftest import require

RUNC = shutil.which("runc")


def _logged(path, fmt):
    """[(level, msg)] of a log file written in fmt."""
    out = []
    with open(path) as f:
        for line in f:
            if fmt == "json":
                d = json.loads(line)
                assert set(d) >= {"level", "msg", "time"}, line
                out.append((d["level"], d["msg"]))
            else:
                assert line.startswith('time="') and " level=" in line and " msg=" in line, line
                level = line.split(" level=", 1)[1].split(" ", 1)[0]
                out.append((level, line.split(" msg=", 1)[1].strip().strip('"')))
    return out


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_debug_lines_follow_create_exec_delete(pyrunc, bundle, tmp_path, fmt):
    b = bundle(["sleep", "1000"])
    cid = pyrunc.new_id("dbg")
    log = tmp_path / f"debug.{fmt}"
    flags = ["--log", str(log), "--log-format", fmt, "--debug"]
    err = tmp_path / "create.err"  # a file, not a pipe: the container inherits it and keeps it open
    with open(err, "wb") as fe:
        p = subprocess.run(pyrunc.cmd(*flags, "create", "--bundle", b, cid), stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=fe, timeout=60)
    assert p.returncode == 0, err.read_text()
    pid = pyrunc.state(cid)["pid"]
    created = _logged(log, fmt)
    assert created and all(level == "debug" for level, _ in created), created
    text = "\n".join(msg for _, msg in created)
    for needle in ("create", "config loaded", "namespaces", "cgroup", f"init pid {pid}"):
        assert needle in text, (needle, text)
    assert err.read_text() == "", "with --log, debug lines go to the file only"

    pyrunc(*flags, "start", cid, check=True)
    p = pyrunc(*flags, "exec", cid, "true")
    assert p.returncode == 0, p.err
    execd = _logged(log, fmt)[len(created):]
    text = "\n".join(msg for _, msg in execd)
    assert "start" in text and "exec" in text and "pid " in text, text

    n = len(_logged(log, fmt))
    pyrunc(*flags, "delete", "--force", cid, check=True)
    text = "\n".join(msg for _, msg in _logged(log, fmt)[n:])
    assert "delete" in text and "cgroup" in text, text


def test_debug_to_stderr_and_nothing_without_it(pyrunc, bundle):
    b = bundle(["sleep", "1000"])
    cid = pyrunc.new_id("dbg2")
    assert subprocess.run(pyrunc.cmd("create", "--bundle", b, cid), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60).returncode == 0
    p = pyrunc("--root", pyrunc.root, "--debug", "state", cid, root=False)
    assert p.returncode == 0 and json.loads(p.out)["id"] == cid, "stdout stays the state document"
    assert "level=debug" in p.err and "state" in p.err, p.err
    p = pyrunc("state", cid)
    assert p.returncode == 0 and p.err == "", "no debug lines without --debug"
    pyrunc("delete", "--force", cid, check=True)


@pytest.mark.parametrize("argv", [("list",), ("state", "CID"), ("features",)])
def test_log_file_exists_after_any_call_like_runc(pyrunc, bundle, tmp_path, argv):
    require(RUNC, "runc is not installed: nothing to compare with")
    b = bundle(["sleep", "1000"])
    cid = pyrunc.new_id("logf")
    rid = "runc-" + cid
    assert subprocess.run(pyrunc.cmd("create", "--bundle", b, cid), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60).returncode == 0
    rroot = str(tmp_path / "runc-state")
    assert subprocess.run([RUNC, "--root", rroot, "create", "--bundle", str(b), rid], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60).returncode == 0
    try:
        for tool, root, ident in ((pyrunc.argv, pyrunc.root, cid), ([RUNC], rroot, rid)):
            log = tmp_path / f"{os.path.basename(tool[0])}-{argv[0]}.log"
            args = [ident if a == "CID" else a for a in argv]
            r = subprocess.run(tool + ["--root", root, "--log", str(log), "--log-format", "json", *args],
                               capture_output=True, timeout=60)
            assert r.returncode == 0, (tool, r.stderr)
            assert log.exists(), f"{tool[0]} {argv[0]} --log: no log file after a successful call"
            assert _logged(log, "json") == [], "a successful call without --debug logs nothing"
    finally:
        subprocess.run([RUNC, "--root", rroot, "delete", "--force", rid], capture_output=True, timeout=60)
        pyrunc("delete", "--force", cid)


def test_unopenable_log_is_an_error_like_runc(pyrunc, tmp_path):
    require(RUNC, "runc is not installed: nothing to compare with")
    log = tmp_path / "no-such-dir" / "x.log"
    p = pyrunc("--root", pyrunc.root, "--log", str(log), "list", root=False)
    r = subprocess.run([RUNC, "--root", str(tmp_path / "runc"), "--log", str(log), "list"], capture_output=True,
                       timeout=60)
    assert p.returncode == r.returncode == 1, (p.err, r.stderr)
    assert f"open {log}: no such file or directory" in p.err and f"open {log}" in r.stderr.decode(), p.err
