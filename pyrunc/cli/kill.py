"""pyrunc kill [--all] ID [SIGNAL]: SIGNAL is a number or a name, any case, SIG optional; default TERM.

Signal 0 is accepted, as by runc and kill(1): it delivers nothing and checks that the container exists (and, without
--all, that its init is alive): exit 0, or runc's error.
"""

from ..errors import UsageError
from .common import runtime


def run(g, o, log):
    from ..container.lifecycle import parse_signal

    if not o.args or len(o.args) > 2:
        raise UsageError('"kill" requires a minimum of 1 and a maximum of 2 arguments')
    raw = o.args[1] if len(o.args) > 1 else None
    sig = 0 if raw is not None and raw.strip().lstrip("+").isdigit() and int(raw) == 0 else parse_signal(raw)
    log.debug(f"kill: container {o.args[0]}, signal {sig}{' to all processes' if o.all else ''}")
    runtime(g, log).kill(o.args[0], sig, all_=o.all)
