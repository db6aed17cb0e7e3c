"""pyrunc create [--bundle B] [--pid-file P] ... ID: set up the container; its init waits for `start`."""

from ..errors import PyruncError
from .common import failed, runtime
from .main import one_id


def run(g, o, log):
    cid = one_id(o, "create")
    try:
        runtime(g, log, create=True).create(cid, o.bundle or ".", pid_file=o.pid_file,
                                            console_socket=o.console_socket, no_pivot=o.no_pivot,
                                            no_new_keyring=o.no_new_keyring, preserve_fds=o.preserve_fds,
                                            pidfd_socket=o.pidfd_socket)
    except PyruncError as e:
        raise failed("create", e) from None
