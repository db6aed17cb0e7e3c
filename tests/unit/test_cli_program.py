"""bin/pyrunc runs pyrunc.cli.main.program(): main(), then posix._exit after flushing stdout and stderr.  Exit codes
and output must be exactly what main() under the normal interpreter exit gives, even through pipes (block
buffered) and with more output than a pipe holds."""

import re
import subprocess
import sys

import pytest


def _run(entry, argv):
    code = f"import sys\nsys.argv = ['pyrunc'] + {argv!r}\nfrom pyrunc.cli.main import {entry}\n{entry}()"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    # the log line's time: the two runs may fall on either side of a second
    return p.returncode, p.stdout, re.sub(rb'time="[^"]*"', b'time="T"', p.stderr)


@pytest.mark.parametrize("argv", [
    ["--version"],
    ["features"],  # several KB of JSON through a block-buffered pipe
    ["spec", "--bundle", "/nonexistent-pyrunc-test-dir"],  # an error: one line, exit 1
    ["--root", "/nonexistent-pyrunc-test-dir", "state", "nope"],
    ["no-such-verb"],  # click's usage error
])
def test_program_exits_like_main(argv):
    rc_main, out_main, err_main = _run("main", argv)
    rc_prog, out_prog, err_prog = _run("program", argv)
    assert (rc_prog, out_prog, err_prog) == (rc_main, out_main, err_main)


def test_program_flushes_output_larger_than_a_pipe():
    rc, out, _ = _run("program", ["features"])
    assert rc == 0 and out.rstrip().endswith(b"}") and len(out) > 4096


def test_program_exit_code_of_sys_exit_with_text(monkeypatch, capsys):
    from pyrunc.cli import main as cli_main

    seen = []
    monkeypatch.setattr(cli_main, "main", lambda: sys.exit("boom"))
    monkeypatch.setattr(cli_main.posix, "_exit", seen.append)  # program() leaves with posix._exit (no os)
    cli_main.program()
    assert seen == [1] and capsys.readouterr().err == "boom\n"
