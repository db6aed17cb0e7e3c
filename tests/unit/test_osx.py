"""pyrunc.osx: posix's functions plus os.path's, with posixpath's results, and no `os` import."""

import os
import posixpath
import subprocess
import sys

import pytest

from pyrunc import osx
from tests.conftest import REPO

PATHS = ["", ".", "..", "/", "//", "///", "a", "a/", "/a", "//a", "///a", "a//b", "a/./b", "a/../b", "../a",
         "../../a/b", "/..", "/../a", "a/..", "a/../..", "./a/", "/a/b/c/", "/a/b/../../..", "//a/../b", "a/b/.",
         "/tmp/x/rootfs", "rootfs", "./rootfs/", "/sys/fs/cgroup/cpu,cpuacct/x", ".hidden/..x/...", "a/b/../../c"]


@pytest.mark.parametrize("p", PATHS)
def test_path_functions_match_posixpath(p):
    for name in ("split", "dirname", "basename", "normpath"):
        assert getattr(osx.path, name)(p) == getattr(posixpath, name)(p), (name, p)
    assert osx.path.abspath(p) == posixpath.abspath(p), p


@pytest.mark.parametrize("parts", [("a", "b"), ("a/", "b"), ("/a", "/b", "c"), ("", "b"), ("a", ""), ("/", "x/"),
                                   ("a", "b", "/c", "d"), ("/sys/fs/cgroup", "cpu", "x/y")])
def test_join_matches_posixpath(parts):
    assert osx.path.join(*parts) == posixpath.join(*parts)


@pytest.mark.parametrize("p", ["/a/b", "a/b", "/a", "/", "x", "../x", "/tmp"])
@pytest.mark.parametrize("start", [".", "/", "/a", "/a/b/c", "a", "/tmp/q"])
def test_relpath_matches_posixpath(p, start):
    assert osx.path.relpath(p, start) == posixpath.relpath(p, start)


def test_relpath_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        osx.path.relpath("")


def test_realpath_exists_isdir_islink_on_a_tree(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    (tmp_path / "l").symlink_to("d")
    (tmp_path / "dangling").symlink_to("nowhere/at/all")
    for name in ("d", "f", "l", "dangling", "missing", "l/../f", "d/../l"):
        p = str(tmp_path / name)
        assert osx.path.realpath(p) == posixpath.realpath(p), name
        assert osx.path.exists(p) == posixpath.exists(p), name
        assert osx.path.isdir(p) == posixpath.isdir(p), name
        assert osx.path.islink(p) == posixpath.islink(p), name
    assert not osx.path.exists("bad\0path") and not osx.path.isdir("bad\0path")


def test_posix_names_and_what_it_adds():
    assert osx.open is os.open and osx.stat is os.stat and osx.O_PATH == os.O_PATH
    assert (osx.SEEK_SET, osx.SEEK_CUR, osx.SEEK_END) == (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END)
    assert osx.fsencode("caf\udce9") == os.fsencode("caf\udce9") and osx.fsdecode(b"caf\xe9") == os.fsdecode(b"caf\xe9")
    assert not hasattr(osx, "environ"), "posix's environ has bytes keys: a str look-up would find nothing"
    assert not hasattr(osx, "walk")


def test_getenv_without_os_and_with_it(monkeypatch):
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pyrunc import osx; "
            "print(osx.getenv('PYRUNC_OSX_T'), osx.getenv('PYRUNC_OSX_NONE', 'dflt'), 'os' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYRUNC_OSX_T"] = "v=1"
    out = subprocess.run([sys.executable, "-S", "-c", code, REPO], env=env, capture_output=True, text=True,
                         timeout=30, check=True).stdout.split()
    assert out == ["v=1", "dflt", "False"], "osx itself must not import os"
    monkeypatch.setenv("PYRUNC_OSX_T", "changed")  # os is loaded here: its live environ is what counts
    assert osx.getenv("PYRUNC_OSX_T") == "changed"
