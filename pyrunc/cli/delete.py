"""pyrunc delete [--force] ID: remove a stopped (or created) container; --force kills a running one first."""

from .common import runtime
from .main import one_id


def run(g, o, log):
    runtime(g, log).delete(one_id(o, "delete"), force=o.force)
