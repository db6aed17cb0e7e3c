"""The `tmpcopyup` mount option (a runc extension): a tmpfs mounted over an image directory starts with a copy of
that directory's content, for real.  Everything is resolved inside the rootfs: symlinks are copied as symlinks,
never followed, and a destination reached through an image symlink is the image's directory, never the host's.
"""

import os
import shutil
import subprocess

from ..conftest import require

RUNC = shutil.which("runc")  # runc 1.1.5 implements tmpcopyup too: compared below where it is installed


def _image(root, fifo=True):
    d = os.path.join(root, "data")
    os.makedirs(os.path.join(d, "sub", "deeper"))
    with open(os.path.join(d, "a"), "w") as f:
        f.write("alpha\n")
    os.chmod(os.path.join(d, "a"), 0o604)  # readable by the container's root (no CAP_DAC_OVERRIDE)
    os.chown(os.path.join(d, "a"), 1000, 1001)
    with open(os.path.join(d, "sub", "deeper", "b"), "w") as f:
        f.write("beta\n")
    os.symlink("/etc/passwd", os.path.join(d, "abs"))  # absolute: the container's /etc/passwd, never the host's
    os.symlink("../../../../../../etc/shadow", os.path.join(d, "up"))  # dangling out of the root: kept as is
    if fifo:  # runc 1.1.5 fails on a fifo (lchown of a node it did not create): left out of its comparison
        os.mkfifo(os.path.join(d, "fifo"))
    os.symlink("/etc", os.path.join(root, "etclink"))


def _mount(dest, *opts):
    def edit(c):
        c["mounts"].append({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                            "options": ["tmpcopyup", "nosuid", *opts]})
    return edit


SCRIPT = ("cat /data/a /data/sub/deeper/b; stat -c '%a %u %g' /data/a; readlink /data/abs; readlink /data/up; "
          "test -p /data/fifo && echo fifo; cat /data/abs | head -1; grep ' /data tmpfs' /proc/mounts | wc -l; "
          "touch /data/new && echo wrote")


def run(pyrunc, b, cid):
    return pyrunc("run", "--bundle", b, cid, stdin=subprocess.DEVNULL)


def test_tmpcopyup_copies_the_image_directory(pyrunc, bundle):
    b = bundle(["sh", "-c", SCRIPT], edit=_mount("/data"))
    _image(str(b / "rootfs"))
    p = run(pyrunc, b, pyrunc.new_id("copyup"))
    assert p.returncode == 0, p.err
    assert p.out.split("\n") == ["alpha", "beta", "604 1000 1001", "/etc/passwd", "../../../../../../etc/shadow",
                                 "fifo", "root:x:0:0:root:/root:/bin/sh", "1", "wrote", ""], p.out
    # the writes went to the tmpfs: the image is untouched
    assert not os.path.exists(b / "rootfs" / "data" / "new")
    assert sorted(os.listdir(b / "rootfs" / "data")) == ["a", "abs", "fifo", "sub", "up"]


def test_tmpcopyup_read_only(pyrunc, bundle):
    b = bundle(["sh", "-c", "cat /data/a; touch /data/new 2>/dev/null && echo wrote || echo refused"],
               edit=_mount("/data", "ro"))
    _image(str(b / "rootfs"))
    p = run(pyrunc, b, pyrunc.new_id("copyupro"))
    assert p.returncode == 0, p.err
    assert p.out == "alpha\nrefused\n", p.out


def test_tmpcopyup_through_an_image_symlink_stays_in_the_rootfs(pyrunc, bundle):
    """/etclink -> /etc in the image: the copy is of the image's /etc (passwd, group), not of the host's."""
    b = bundle(["ls", "/etc"], edit=_mount("/etclink"))
    _image(str(b / "rootfs"))
    p = run(pyrunc, b, pyrunc.new_id("copyupln"))
    assert p.returncode == 0, p.err
    assert p.out.split() == ["group", "passwd"], p.out


def test_tmpcopyup_of_a_missing_directory_is_an_empty_tmpfs(pyrunc, bundle):
    b = bundle(["sh", "-c", "ls -A /newdir | wc -l; grep -c ' /newdir tmpfs' /proc/mounts"], edit=_mount("/newdir"))
    p = run(pyrunc, b, pyrunc.new_id("copyupnew"))
    assert p.returncode == 0, p.err
    assert p.out.split() == ["0", "1"], p.out


def test_tmpcopyup_on_a_bind_mount_is_refused(pyrunc, bundle, tmp_path):
    def edit(c):
        c["mounts"].append({"destination": "/data", "type": "bind", "source": str(tmp_path),
                            "options": ["rbind", "tmpcopyup"]})
    p = run(pyrunc, bundle(["echo", "ran"], edit=edit), pyrunc.new_id("copyupbind"))
    assert p.returncode != 0 and "ran" not in p.out
    assert "tmpcopyup" in p.err and "tmpfs" in p.err, p.err


def test_runc_copies_the_same(bundle, tmp_path):
    """The same bundle under runc 1.1.5 (the reference) prints the same: pyrunc follows runc."""
    require(RUNC, "runc is not installed: nothing to compare with")
    b = bundle(["sh", "-c", SCRIPT], edit=_mount("/data"))
    _image(str(b / "rootfs"), fifo=False)
    root = str(tmp_path / "runc-state")
    p = subprocess.run([RUNC, "--root", root, "run", "--bundle", str(b), "pyrunc-it-copyup-runc"], capture_output=True,
                       timeout=60, stdin=subprocess.DEVNULL, text=True)
    subprocess.run([RUNC, "--root", root, "delete", "--force", "pyrunc-it-copyup-runc"], capture_output=True,
                   timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:3] == ["alpha", "beta", "604 1000 1001"], p.stdout + p.stderr
    assert p.stdout.split("\n")[3:] == ["/etc/passwd", "../../../../../../etc/shadow",
                                        "root:x:0:0:root:/root:/bin/sh", "1", "wrote", ""], p.stdout
