"""pyrunc ps [--format table|json] ID [ps options]: the container's processes.

json: the host pids as a one-line JSON array (containerd's shim parses it); table: host `ps` (default `-ef`)
filtered to the lines whose PID column is one of the container's pids, header kept.
"""

from ..errors import PyruncError
from .main import dump, one_id, out


def run(g, o, log):
    from ..container.resources import processes, ps_table

    cid, ps_args = one_id(o, "ps", extra_ok=True), o.args[1:]
    pids = processes(g.root, cid)
    if o.format == "json":
        out(dump(pids or None) + "\n")
        return
    if o.format != "table":
        raise PyruncError("invalid format option")
    import subprocess

    try:
        p = subprocess.run(["ps"] + (ps_args or ["-ef"]), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except FileNotFoundError:  # runc's words (Go's exec.ErrNotFound)
        raise PyruncError('exec: "ps": executable file not found in $PATH') from None
    text = p.stdout.decode(errors="replace")
    if p.returncode != 0:
        raise PyruncError(f"exit status {p.returncode}: {text}")
    out(ps_table(text, pids))
