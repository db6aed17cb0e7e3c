"""The container's session keyring: a fresh one named after the container, so it never shares the caller's."""

from ..errors import SysError

ENOSYS = 38
KEY_USR_SEARCH = 0x080000


def join_session_keyring(lx, name):
    """runc's setupInit: join a new session keyring and make it searchable by its user (ModKeyringPerm(ring,
    0xffffffff, KEY_USR_SEARCH): its permissions plus that bit).  Only ENOSYS (no keyrings in this kernel) is let
    pass, as runc does; any other failure, a restricted keyring or its permissions included, fails the container
    rather than leave it on the caller's keyring or a keyring with other permissions than asked for."""
    try:
        ring = lx.keyctl_join_session_keyring(name)
    except SysError as e:
        if e.errno == ENOSYS:
            return None
        raise
    desc = lx.keyctl_describe(ring).split(";")
    if len(desc) < 5:
        raise SysError("describe key", f"{ring}: {';'.join(desc)!r}", 22)
    lx.keyctl_setperm(ring, int(desc[3], 16) | KEY_USR_SEARCH)
    return ring
