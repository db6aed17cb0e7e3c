"""pyrunc state ID: the state document, 2-space indented, no trailing newline (as runc prints it)."""

from .main import dump, one_id, out


def run(g, o, log):
    from ..container.state import Store

    out(dump(Store(g.root).load(one_id(o, "state")).oci_state(), indent=2))
