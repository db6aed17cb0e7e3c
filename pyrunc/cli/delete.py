"""pyrunc delete [--force] ID: remove a stopped (or created) container; --force kills a running one first."""

from .common import one_id, runtime


def run(g, o, log):
    runtime(g, log).delete(one_id(o, "delete"), force=o.force)
