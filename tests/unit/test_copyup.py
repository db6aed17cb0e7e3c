"""copyup.copy_tree without root: a directory copied by fd, symlinks as symlinks (never followed), modes and
times kept (tests/integration/test_tmpcopyup.py does it under a real tmpfs in a container)."""

import os
import stat

from pyrunc.process.copyup import copy_tree


def test_copy_tree_keeps_links_modes_and_times(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub" / "deep").mkdir(parents=True)
    dst.mkdir()
    (src / "f").write_text("x" * 70000)
    os.chmod(src / "f", 0o751)
    os.utime(src / "f", ns=(1_000_000_000, 2_000_000_000))
    (src / "sub" / "deep" / "g").write_text("g")
    os.chmod(src / "sub", 0o710)
    os.symlink("/etc/passwd", src / "abs")
    os.symlink("nowhere", src / "dangling")
    os.symlink("sub", src / "dirlink")
    os.mkfifo(src / "p")
    s = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    d = os.open(dst, os.O_RDONLY | os.O_DIRECTORY)
    try:
        copy_tree(s, d, "/x")
    finally:
        os.close(s)
        os.close(d)
    assert sorted(os.listdir(dst)) == ["abs", "dangling", "dirlink", "f", "p", "sub"]
    assert (dst / "f").read_text() == "x" * 70000
    st = os.stat(dst / "f")
    assert stat.S_IMODE(st.st_mode) == 0o751 and st.st_mtime_ns == 2_000_000_000
    assert stat.S_IMODE(os.stat(dst / "sub").st_mode) == 0o710
    assert (dst / "sub" / "deep" / "g").read_text() == "g"
    for name, target in (("abs", "/etc/passwd"), ("dangling", "nowhere"), ("dirlink", "sub")):
        assert os.path.islink(dst / name) and os.readlink(dst / name) == target
    assert stat.S_ISFIFO(os.lstat(dst / "p").st_mode)
