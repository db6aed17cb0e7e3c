"""--no-pivot: which procfs/sysfs mounts are hidden before the move (init_rootfs.full_proc_sys_mounts)."""

from pyrunc.process.init_rootfs import full_proc_sys_mounts

MOUNTINFO = b"""22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:21 /sys /mnt/procsys rw - proc proc rw
25 27 0:23 / /run/with\\040space rw - proc proc rw
26 27 0:5 / /dev rw - devtmpfs udev rw
30 29 0:40 / /b/rootfs/proc rw - proc proc rw
31 29 0:41 / /b/rootfs/sys ro - sysfs sysfs ro
32 27 0:42 / /b/rootfs2/proc rw - proc proc rw
"""


def test_whole_proc_and_sysfs_outside_the_rootfs():
    assert full_proc_sys_mounts("/b/rootfs", MOUNTINFO) == ["/proc", "/sys", "/run/with space", "/b/rootfs2/proc"]


def test_rootfs_path_with_trailing_slash():
    assert "/b/rootfs/proc" not in full_proc_sys_mounts("/b/rootfs/", MOUNTINFO)
