"""Which mount at a rootfs is pyrunc's (L8): mountinfo parsing without root."""

from pyrunc.container import lifecycle


def test_unescape():
    from pyrunc.mountinfo import unescape

    assert unescape("/plain/path") == "/plain/path"
    assert unescape("/a\\040b\\011c\\134d") == "/a b\tc\\d"
    assert unescape("/caf\u00e9\\040x") == "/caf\u00e9 x"
    assert unescape(b"/a\\040b\\012c") == b"/a b\nc"


def test_top_mount_of_stacked_mounts(monkeypatch, tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text("1 0 0:1 / / rw - ext4 /dev/sda rw\n"
                    "30 1 0:40 / /run/c\\040x/rootfs rw - overlay overlay rw\n"   # the caller's overlay
                    "41 30 0:40 / /run/c\\040x/rootfs rw - overlay overlay rw\n"  # pyrunc's bind on top of it
                    "42 41 0:5 / /run/c\\040x/rootfs/proc rw - proc proc rw\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda p, *a, **k: real_open(info if p == "/proc/self/mountinfo" else p,
                                                                      *a, **k))
    assert lifecycle._top_mount("/run/c x/rootfs") == 41
    assert lifecycle._top_mount("/run/c x/rootfs/proc") == 42
    assert lifecycle._top_mount("/run/other") == 0
    calls = []
    monkeypatch.setattr("pyrunc.linux.real.umount2", lambda *a: calls.append(a), raising=False)
    lifecycle._detach_rootfs("/run/c x/rootfs", None, 41)  # 41 was already there before create: not ours
    assert calls == []
    lifecycle._detach_rootfs("/run/c x/rootfs", None, 30)  # ours (41) sits on the caller's (30): detach ours
    assert calls == [("/run/c x/rootfs", 2)]
