"""Config glue: the snippets that make containerd (CRI), docker and Kubernetes use pyrunc, and safe in-place edits.

Run as `pyrunc-config` (pyrunc.glue.main); never imported by the `pyrunc` CLI.

containerd  a runc-v2 shim runtime entry with BinaryName (the runtime's name is the CRI handler)
docker      daemon.json "runtimes" entry
kubernetes  a RuntimeClass manifest naming that CRI handler
files       backup to <file>.bak.<timestamp>, then an atomic replace keeping mode and owner

Edits are pure text -> text functions checked by parsing the result; only files.py touches the disk.
"""

from ..errors import PyruncError


class GlueError(PyruncError):
    """A config file cannot be edited safely (unknown version, conflicting entry, result would not parse)."""
