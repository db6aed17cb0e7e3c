"""pyrunc.cli.main.parse: Go-style argv parsing (the forms runc's callers send), and the click fallback's exit codes."""

import subprocess
import sys

import pytest

from pyrunc import errors
from pyrunc.cli import main as args  # the parser lives in main (one module less for every verb)
from tests.conftest import REPO


def parse(*argv):
    return args.parse(list(argv))


def test_defaults():
    g, name, o = parse("state", "c1")
    assert name == "state" and o.args == ["c1"]
    assert g.root is None and g.log == "" and g.log_format == "text" and g.debug is False
    assert g.systemd_cgroup is False and g.rootless == "auto"


@pytest.mark.parametrize("argv", [
    ("--root", "/r", "state", "c"), ("--root=/r", "state", "c"), ("-root", "/r", "state", "c"),
    ("-root=/r", "state", "c"),
])
def test_global_flag_forms(argv):
    g, name, o = parse(*argv)
    assert g.root == "/r" and name == "state" and o.args == ["c"]


def test_shim_prefix():
    g, name, o = parse("--root", "/run/containerd/runc/k8s.io", "--log", "/b/log.json", "--log-format", "json",
                       "--systemd-cgroup", "create", "--bundle", "/b", "--pid-file", "/b/init.pid", "--no-pivot",
                       "--no-new-keyring", "id1")
    assert (g.root, g.log, g.log_format, g.systemd_cgroup) == ("/run/containerd/runc/k8s.io", "/b/log.json", "json",
                                                               True)
    assert name == "create" and o.args == ["id1"]
    assert (o.bundle, o.pid_file, o.no_pivot, o.no_new_keyring) == ("/b", "/b/init.pid", True, True)
    assert o.console_socket is None and o.preserve_fds == 0


@pytest.mark.parametrize("argv", [
    ("create", "-bundle", "x", "c"), ("create", "--bundle", "x", "c"), ("create", "--bundle=x", "c"),
    ("create", "-b", "x", "c"), ("create", "-b=x", "c"), ("create", "c", "--bundle", "x"),  # interspersed
])
def test_bundle_forms(argv):
    _, _, o = parse(*argv)
    assert o.bundle == "x" and o.args == ["c"]


@pytest.mark.parametrize("tok,want", [("--detach", True), ("--detach=true", True), ("--detach=false", False),
                                      ("-d", True), ("-detach=1", True), ("--detach=0", False),
                                      ("--detach=F", False), ("--detach=T", True)])
def test_bool_forms(tok, want):
    _, _, o = parse("run", tok, "c")
    assert o.detach is want and o.args == ["c"]


def test_bool_does_not_take_next_token():
    _, _, o = parse("delete", "--force", "c")
    assert o.force is True and o.args == ["c"]
    _, _, o = parse("delete", "c", "-f")
    assert o.force is True and o.args == ["c"]


def test_int_option():
    _, _, o = parse("create", "--preserve-fds", "2", "c")
    assert o.preserve_fds == 2
    _, _, o = parse("run", "--preserve-fds=0x3", "c")
    assert o.preserve_fds == 3


def test_list_option_repeats():
    _, _, o = parse("exec", "-e", "A=1", "--env", "B=2", "--env=C=3", "c", "sh")
    assert o.env == ["A=1", "B=2", "C=3"]
    assert o.args == ["c", "sh"]


def test_exec_rest_args_belong_to_the_command():
    _, _, o = parse("exec", "--tty", "c", "ls", "-l", "--color=never", "--tty")
    assert o.tty is True
    assert o.args == ["c", "ls", "-l", "--color=never", "--tty"]


def test_ps_rest_args():
    _, _, o = parse("ps", "--format", "json", "c", "-ef")
    assert o.format == "json" and o.args == ["c", "-ef"]


def test_double_dash_ends_flags():
    _, _, o = parse("kill", "--", "c", "-9")
    assert o.args == ["c", "-9"]


def test_kill_signal_positional():
    _, _, o = parse("kill", "--all", "c", "KILL")
    assert o.all is True and o.args == ["c", "KILL"]


def test_no_subreaper_single_dash():  # go-runc sends it to restore; run has it too
    _, _, o = parse("run", "-no-subreaper", "--bundle", "b", "c")
    assert o.no_subreaper is True


@pytest.mark.parametrize("argv", [
    (), ("--help",), ("-h",), ("--version",), ("-v",), ("nosuchverb",), ("state", "--help"), ("state", "-h"),
    ("create", "--nosuch", "c"), ("create", "---bundle", "x", "c"), ("create", "--bundle"),
    ("run", "--detach=maybe", "c"), ("create", "--preserve-fds", "two", "c"), ("--root",), ("--nosuch", "state"),
    ("--debug=perhaps", "state", "c"),
])
def test_needs_click(argv):
    with pytest.raises(errors.NeedClick):
        parse(*argv)


def cli(*argv):
    return subprocess.run([sys.executable, "-m", "pyrunc.cli.main", *argv], capture_output=True, cwd=REPO,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_cli_help_and_usage_errors():
    p = cli("--help")
    assert p.returncode == 0 and b"create" in p.stdout and b"--root" in p.stdout
    p = cli("state", "--help")
    assert p.returncode == 0 and b"Usage" in p.stdout
    p = cli("create", "--no-such-flag", "c")
    assert p.returncode != 0
    assert b"no-such-flag" in p.stderr
    p = cli("no-such-verb")
    assert p.returncode != 0
    p = cli()
    assert p.returncode != 0 or b"Usage" in p.stdout + p.stderr


def test_cli_version():
    for flag in ("--version", "-version", "-v"):
        p = cli(flag)
        assert p.returncode == 0, (flag, p.stderr)
        lines = p.stdout.decode().splitlines()
        assert lines[0].startswith("pyrunc version ")
        assert lines[1].startswith("commit: ") and lines[2].startswith("spec: 1.")
