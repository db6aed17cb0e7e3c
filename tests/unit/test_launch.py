"""pyrunc.launch.add_flag: the one-time `-SP` on the installed script's #! line (the installs themselves are in
tests/integration/test_install.py)."""

import os
import sys

from pyrunc import launch


def _script(tmp_path, first, mode=0o750):
    p = tmp_path / "pyrunc"
    p.write_bytes(first + b"\nimport sys\n")
    p.chmod(mode)
    return p


def test_pip_line_gets_the_flag_once(tmp_path):
    p = _script(tmp_path, b"#!" + os.fsencode(sys.executable))
    link = tmp_path / "link"
    link.symlink_to(p)
    assert launch.add_flag(str(link))
    assert p.read_bytes() == b"#!" + os.fsencode(sys.executable) + b" -SP\nimport sys\n"
    assert link.is_symlink() and p.stat().st_mode & 0o7777 == 0o750
    assert not launch.add_flag(str(p)), "a line with the flag is not pip's any more"
    assert sorted(os.listdir(tmp_path)) == ["link", "pyrunc"], "no temp file left behind"


def test_other_lines_are_left_alone(tmp_path):
    for first in (b"#!/usr/bin/python3", b"#!" + os.fsencode(sys.executable) + b" -E", b"#!/bin/sh"):
        p = _script(tmp_path, first)
        assert not launch.add_flag(str(p))
        assert p.read_bytes() == first + b"\nimport sys\n"


def test_a_line_the_kernel_would_cut_is_left_alone(tmp_path, monkeypatch):
    long_python = "/" + "p" * (launch.BINPRM_BUF - 4)  # "#!" + it + "\n" fits; with " -SP" it would not
    monkeypatch.setattr(sys, "executable", long_python)
    p = _script(tmp_path, b"#!" + long_python.encode())
    assert not launch.add_flag(str(p))
    assert p.read_bytes().startswith(b"#!" + long_python.encode() + b"\n")


def test_missing_script_is_no_error(tmp_path):
    assert not launch.add_flag(str(tmp_path / "missing"))
    assert os.listdir(tmp_path) == []
