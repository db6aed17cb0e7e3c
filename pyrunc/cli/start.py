"""pyrunc start ID: let a created container's init exec the user program."""

from .main import one_id


def run(g, o, log):
    from ..container.start import start
    from ..container.state import Store

    def runtime():  # for hooks only: the library's Runtime (lifecycle.py) is not loaded otherwise
        from .common import runtime

        return runtime(g, log)

    start(Store(g.root), log, one_id(o, "start"), runtime)
