"""pyrunc spec [--bundle B] [--rootless]: write a default config.json, as `runc spec` does."""

import json
import os

from ..errors import PyruncError


def run(g, o, log):
    from ..spec.default import default_config

    path = os.path.join(o.bundle or ".", "config.json")
    cfg = default_config(rootless=o.rootless, uid=os.geteuid(), gid=os.getegid())
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        raise PyruncError(f"File {path} exists. Remove it first") from None
    except OSError as e:
        raise PyruncError(f"create {path}: {os.strerror(e.errno).lower()}") from None
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f, indent="\t")
