"""pyrunc start ID: let a created container's init exec the user program."""

from .common import one_id, runtime


def run(g, o, log):
    runtime(g, log).start(one_id(o, "start"))
