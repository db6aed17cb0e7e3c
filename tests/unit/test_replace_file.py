"""pyrunc.replace_file: the atomic replace that the script's first run (launch: the #! flag, the code cache) and
the shim's `start` (the bundle's address file) share."""

import os

import pytest

from pyrunc import replace_file, write_beside


def test_replaces_with_the_mode_given_and_leaves_no_temp_file(tmp_path):
    p = tmp_path / "f"
    p.write_text("old")
    replace_file(str(p), "new", 0o750)
    assert p.read_text() == "new" and p.stat().st_mode & 0o7777 == 0o750
    replace_file(str(p), b"\0bytes")
    assert p.read_bytes() == b"\0bytes" and p.stat().st_mode & 0o7777 == 0o644 & ~_umask()
    assert os.listdir(tmp_path) == ["f"]


def test_a_failure_leaves_the_file_and_no_temp_file(tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    (d / "x").write_text("in the way")  # rename onto a non-empty directory fails
    with pytest.raises(OSError):
        replace_file(str(d), "data")
    assert sorted(os.listdir(tmp_path)) == ["dir"] and (d / "x").read_text() == "in the way"


def test_a_symlink_at_the_temp_name_is_not_followed(tmp_path):
    """Another process's pid-named leftover, or a planted link: removed, never written through."""
    target = tmp_path / "target"
    target.write_text("untouched")
    (tmp_path / f".f.{os.getpid()}").symlink_to(target)
    replace_file(str(tmp_path / "f"), "data")
    assert (tmp_path / "f").read_text() == "data" and target.read_text() == "untouched"
    assert sorted(os.listdir(tmp_path)) == ["f", "target"]


def test_write_beside_is_the_first_half(tmp_path, monkeypatch):
    """write_beside: the new file beside path (`.NAME.PID`, the mode given), path untouched, for the caller to
    rename; a write that fails leaves no temp file."""
    p = tmp_path / "f"
    p.write_text("old")
    tmp = write_beside(str(p), b"new", 0o600)
    assert tmp == str(tmp_path / f".f.{os.getpid()}") and p.read_text() == "old"
    assert open(tmp).read() == "new" and os.stat(tmp).st_mode & 0o7777 == 0o600
    os.unlink(tmp)

    def failing_write(fd, data):
        raise OSError(28, "No space left on device")

    import pyrunc

    monkeypatch.setattr(pyrunc._posix, "write", failing_write)  # the posix module's, as pyrunc calls it
    with pytest.raises(OSError):
        write_beside(str(p), "data")
    assert sorted(os.listdir(tmp_path)) == ["f"]


def _umask():
    old = os.umask(0)
    os.umask(old)
    return old
