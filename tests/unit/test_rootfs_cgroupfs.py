"""cgroupfs.remount_attrs: the mount_setattr attributes that give the cgroup mounts what a bind remount with the
same flags would (the kernel's rules in fs/namespace.c: each per-mount flag set or cleared, atime kept unless
named)."""

from pyrunc.linux import MS
from pyrunc.process.cgroupfs import remount_attrs

RDONLY, NOSUID, NODEV, NOEXEC, ATIME, NOATIME, STRICT, NODIRATIME, NOSYMFOLLOW = (
    0x1, 0x2, 0x4, 0x8, 0x70, 0x10, 0x20, 0x80, 0x200000)


def test_default_cgroup_options():
    flags = MS["MS_RDONLY"] | MS["MS_NOSUID"] | MS["MS_NODEV"] | MS["MS_NOEXEC"] | MS["MS_RELATIME"]
    assert remount_attrs(flags) == (RDONLY | NOSUID | NODEV | NOEXEC, NODIRATIME | NOSYMFOLLOW | ATIME)


def test_no_atime_flag_keeps_the_atime_mode():
    aset, aclr = remount_attrs(MS["MS_NOSUID"])
    assert aset == NOSUID and not aclr & ATIME and aclr & RDONLY


def test_atime_modes():
    assert remount_attrs(MS["MS_NOATIME"])[0] & ATIME == NOATIME
    assert remount_attrs(MS["MS_STRICTATIME"])[0] & ATIME == STRICT
    aset, aclr = remount_attrs(MS["MS_NODIRATIME"])  # names an atime flag: relatime, as the kernel's remount
    assert aset == NODIRATIME and aset & ATIME == 0 and aclr & ATIME
