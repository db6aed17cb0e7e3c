"""The mounts a default config gives the container, as the container sees them (its /proc/self/mountinfo), the same
under pyrunc and runc: the cgroup hierarchies under /sys/fs/cgroup with their per-mount flags (read-only, nosuid,
nodev, noexec), the symlinks of combined hierarchies, the masked paths and the read-only /proc paths."""

import pytest


def _mounts(rt, bundle):
    b = bundle(["sh", "-c", "cat /proc/self/mountinfo; echo LINKS; cd /sys/fs/cgroup && for f in *; do "
                            "[ -L $f ] && echo $f; done; true"])
    p = rt("run", "--bundle", b, rt.new_id("mt"))
    assert p.returncode == 0, p.err
    text, _, links = p.out.partition("LINKS\n")
    out = {}
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        f, r = left.split(), right.split()
        mp, opts = f[4], f[5]
        if mp.startswith(("/sys", "/proc/", "/dev")):
            out[mp] = (r[0], opts)
    return out, sorted(links.split())


@pytest.mark.parametrize("what", ["cgroup", "masked and read-only"])
def test_default_mounts_match_runc(pyrunc, bundle, tmp_path, what):
    from .runtimes import RUNC, Runtime

    if not RUNC:
        pytest.skip("runc is not installed: nothing to compare with")
    mine = Runtime("pyrunc", list(pyrunc.argv), pyrunc.root, pyrunc.new_id)
    runc = Runtime("runc", [RUNC], str(tmp_path / "runc-state"), pyrunc.new_id)
    try:
        ours, our_links = _mounts(mine, bundle)
        theirs, their_links = _mounts(runc, bundle)
    finally:
        runc.cleanup()
    if what == "cgroup":
        pick = [mp for mp in theirs if mp.startswith("/sys/fs/cgroup/")]
        assert len(pick) > 1, theirs
        # runc 1.1.5 leaves the tmpfs holding them writable; pyrunc makes it read-only too (its options say ro)
        assert ours["/sys/fs/cgroup"] == ("tmpfs", "ro,nosuid,nodev,noexec,relatime"), ours
        assert {mp: ours.get(mp) for mp in pick} == {mp: theirs[mp] for mp in pick}
        assert our_links == their_links
        assert all(theirs[mp][1].startswith("ro,") for mp in pick), theirs  # what matters most
    else:
        pick = [mp for mp in theirs if mp.startswith("/proc/") or mp == "/sys/firmware"]
        assert len(pick) > 3, theirs
        assert {mp: ours.get(mp) for mp in pick} == {mp: theirs[mp] for mp in pick}
