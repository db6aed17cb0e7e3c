"""pyrunc delete [--force] ID: remove a stopped (or created) container; --force kills a running one first."""

from .main import one_id


def run(g, o, log):
    from ..container.state import Store, quick

    cid = one_id(o, "delete")
    if not quick(Store(g.root), log, cid, o.force):  # stopped, a few rmdirs: no lifecycle, no cgroup manager
        from .common import runtime

        runtime(g, log).delete(cid, force=o.force)
