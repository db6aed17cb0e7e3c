"""pyrunc list [--format table|json] [-q]."""

from ..errors import UsageError
from .common import runtime
from .main import dump, out


def run(g, o, log):
    items = runtime(g, log).list()
    if o.quiet:
        out("".join(s["id"] + "\n" for s in items))
        return
    if o.format == "json":
        out(dump(items or None) + "\n")
        return
    if o.format != "table":
        raise UsageError(f"invalid format option: {o.format}")
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]) for s in items]
    widths = [max(max(len(r[i]) for r in rows) + 3, 12) for i in range(5)]  # Go tabwriter(12, 1, 3, ' ')
    out("".join("".join(c.ljust(w) for c, w in zip(r, widths)) + r[5] + "\n" for r in rows))
