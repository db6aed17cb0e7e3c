"""The rootfs mounts containerd sends with Create (containerd.types.Mount: type, source, options), mounted in
order onto <bundle>/rootfs, and unmounted on Delete and by the `delete` subcommand."""


MNT_DETACH = 2


def mount_all(mounts, target, lx=None):
    if lx is None:
        from ..linux import real as lx
    from ..process.rootfs import parse_options

    done = 0
    try:
        for m in mounts:
            flags, prop, data, _, _ = parse_options(list(m.options))
            lx.mount(m.source, target, m.type, flags, data or None)
            done += 1
            for p in prop:
                lx.mount(None, target, None, p)
    except BaseException:
        for _ in range(done):
            unmount(target, lx)
        raise


def mounted(target):
    """How many mounts are stacked on target (mountinfo escapes a space or a backslash in a path as \\ooo)."""
    from ..mountinfo import unescape

    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if unescape(line.split()[4]) == target)


def unmount(target, lx=None):
    """Detach every mount stacked on target (none is fine); False when one of them could not be detached."""
    if lx is None:
        from ..linux import real as lx
    from ..errors import SysError

    for _ in range(mounted(target)):
        try:
            lx.umount2(target, MNT_DETACH)
        except SysError:
            return False
    return True
