"""pyrunc resume ID: thaw a paused container."""

from .main import one_id


def run(g, o, log):
    from ..container.resources import resume

    resume(g.root, one_id(o, "resume"))
