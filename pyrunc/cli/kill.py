"""pyrunc kill [--all] ID [SIGNAL]: SIGNAL is a number or a name, any case, SIG optional; default TERM.

Signal 0 is accepted, as by runc and kill(1): it delivers nothing and checks that the container exists (and, without
--all, that its init is alive): exit 0, or runc's error.

Without --all only the state store is needed (the init is signalled through a pidfd): the library's Runtime, with
the cgroup manager behind it, is loaded only for --all.
"""

import _signal  # the C module: `signal` imports enum

from .. import errors  # its classes are made when first named (errors.py)


def parse_signal(s):
    """A signal number or name (any case, SIG optional; "" or None: TERM); real-time names are refused."""
    if s is None or s == "":
        return _signal.SIGTERM
    try:
        n = int(s)
    except ValueError:
        name = s.upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        n = getattr(_signal, name, None)
        if not isinstance(n, int) or name.startswith("SIG_") or name in ("SIGRTMIN", "SIGRTMAX"):
            raise errors.PyruncError(f"unknown signal {s!r}")
        return n
    if n <= 0 or n > 64:
        raise errors.PyruncError(f"unknown signal {s!r}")
    return n


def run(g, o, log):
    if not o.args or len(o.args) > 2:
        raise errors.UsageError('"kill" requires a minimum of 1 and a maximum of 2 arguments')
    raw = o.args[1] if len(o.args) > 1 else None
    sig = 0 if raw is not None and raw.strip().lstrip("+").isdigit() and int(raw) == 0 else parse_signal(raw)
    if log.debug_enabled:  # the message is built only under --debug
        log.debug(f"kill: container {o.args[0]}, signal {sig}{' to all processes' if o.all else ''}")
    if o.all:
        from .common import runtime

        runtime(g, log).kill(o.args[0], sig, all_=True)
        return
    from ..container.state import Store, signal_init

    signal_init(Store(g.root).load(o.args[0]), sig)
