"""`-h`/`--help` after every verb of the registry, and an unknown verb, through the installed `pyrunc` command
(click is loaded for these; callers do not parse help, they rely on the exit status)."""

import shutil
import subprocess

import pytest

from pyrunc.cli import VERBS
from tests.conftest import pyrunc_argv, require


def cli(*argv):
    p = subprocess.run(pyrunc_argv() + list(argv), capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    p.out, p.err = p.stdout.decode(), p.stderr.decode()
    return p


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_help_after_every_verb(verb, tmp_path):
    forms = [(verb, "-h"), (verb, "--help"), ("--root", str(tmp_path), verb, "--help"),
             ("--root", str(tmp_path), "--debug", verb, "-h")]
    if VERBS[verb].args and not VERBS[verb].rest:  # after the container id too, as runc takes it (for exec and ps,
        forms.append((verb, "some-id", "--help"))   # what follows the id is the command's, in runc as here)
    for argv in forms:
        p = cli(*argv)
        assert p.returncode == 0, (argv, p.err)
        assert p.out.startswith(f"Usage: pyrunc {verb} "), (argv, p.out[:200])
        assert VERBS[verb].summary.split()[0] in p.out, (argv, p.out[:300])
    assert not list(tmp_path.iterdir()), "help created state"


def test_unknown_verb_is_a_usage_error_naming_it_with_runcs_exit_code():
    runc = shutil.which("runc")
    require(runc, "runc is not installed: nothing to compare the exit code with")
    r = subprocess.run([runc, "frobnicate"], capture_output=True, timeout=60)
    assert r.returncode != 0 and b"'frobnicate'" in r.stderr
    for argv in (("frobnicate",), ("--root", "/nonexistent", "frobnicate", "x"), ("--debug", "frobnicate")):
        p = cli(*argv)
        assert p.returncode == r.returncode, (argv, p.returncode, p.err)
        assert "'frobnicate'" in p.err and "Usage: pyrunc" in p.err, p.err
        assert p.out == ""


@pytest.mark.parametrize("argv, usage", [
    ((), "Usage: pyrunc [OPTIONS] [COMMAND]"),
    (("--root", "/nonexistent-pyrunc-help"), "Usage: pyrunc [OPTIONS] [COMMAND]"),
    (("help",), "Usage: pyrunc [OPTIONS] [COMMAND]"),
    (("h",), "Usage: pyrunc [OPTIONS] [COMMAND]"),
    (("help", "state"), "Usage: pyrunc state "),
    (("help", "exec"), "Usage: pyrunc exec "),
    (("help", "frobnicate"), None),
])
def test_no_verb_and_help_topics_exit_like_runc(argv, usage):
    runc = shutil.which("runc")
    require(runc, "runc is not installed: nothing to compare the exit code with")
    r = subprocess.run([runc] + list(argv), capture_output=True, timeout=60)
    p = cli(*argv)
    assert p.returncode == r.returncode, (argv, p.returncode, r.returncode, p.err)
    if usage is None:
        assert r.returncode != 0 and "No help topic for 'frobnicate'" in p.err and p.out == ""
    else:
        assert r.returncode == 0 and p.out.startswith(usage), (argv, p.out[:200])
