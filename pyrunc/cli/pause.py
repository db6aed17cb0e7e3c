"""pyrunc pause ID: freeze every process of a running (or created) container (v1 freezer / v2 cgroup.freeze)."""

from .main import one_id


def run(g, o, log):
    from ..container.resources import pause

    pause(g.root, one_id(o, "pause"))
