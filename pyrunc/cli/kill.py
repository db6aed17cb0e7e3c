"""pyrunc kill [--all] ID [SIGNAL]: SIGNAL is a number or a name, any case, SIG optional; default TERM."""

from ..errors import UsageError
from .common import runtime


def run(g, o, log):
    from ..container.lifecycle import parse_signal

    if not o.args or len(o.args) > 2:
        raise UsageError('"kill" requires a minimum of 1 and a maximum of 2 arguments')
    sig = parse_signal(o.args[1] if len(o.args) > 1 else None)
    runtime(g, log).kill(o.args[0], sig, all_=o.all)
