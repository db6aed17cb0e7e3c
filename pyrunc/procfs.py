"""Facts about pyrunc's own process from /proc, for any layer (the CLI and the library alike).

No imports: the CLI loads this module only inside the functions that need it.
"""


def in_user_namespace():
    """Not the initial user namespace: its uid_map is anything but the whole range mapped onto itself."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False
