"""pyrunc events [--stats] [--interval 5s] ID: one JSON object per line, {"type":"stats"|"oom","id":ID,...}.

--stats prints one sample and exits; otherwise stats every interval and OOM kills as they happen, until the
container stops.  Lines are flushed one by one (a caller reads them as a stream).
"""

from .main import dump, one_id, out


def run(g, o, log):
    from .. import gc_for_a_long_wait
    from ..container.resources import events, parse_duration

    if not o.stats:
        gc_for_a_long_wait()  # it runs until the container stops

    interval = parse_duration(o.interval) if isinstance(o.interval, str) else float(o.interval)
    events(g.root, one_id(o, "events"), interval=interval, once=o.stats,
           emit=lambda ev: out(dump(ev) + "\n"), log=log)
