"""python3 -P -m pyrunc.demo: run a real container from an embedded default bundle with the host's busybox.

(-P: run from a clone's root, plain `-m` would put the cwd first on sys.path and import the source tree's
uncompiled `pyrunc/` instead of the installed package.)

Builds a throw-away bundle (rootfs = a static busybox and its applet links, config = `pyrunc spec` with a
non-terminal process), runs `pyrunc run` on it with a private --root, prints what the container saw, and removes
everything.  Needs root and a static busybox (Debian: busybox-static).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

APPLETS = ("sh", "echo", "cat", "ls", "id", "hostname", "ps", "sleep", "true", "false", "env", "pwd", "mount",
           "grep", "head", "wc", "stat", "mkdir", "touch", "rm", "uname", "date", "readlink", "kill", "test")


def find_busybox():
    for p in ("/bin/busybox", "/usr/bin/busybox", shutil.which("busybox") or ""):
        if p and os.path.exists(p):
            return p
    raise SystemExit("pyrunc demo: no busybox on this host (apt-get install busybox-static)")


def make_bundle(path, args, busybox=None):
    """A bundle at path: rootfs with busybox, /etc/passwd and /etc/group; config = pyrunc spec, no terminal."""
    from .spec.default import default_config

    root = os.path.join(path, "rootfs")
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2(busybox or find_busybox(), os.path.join(root, "bin", "busybox"))
    for a in APPLETS:
        os.symlink("busybox", os.path.join(root, "bin", a))
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    with open(os.path.join(root, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnobody:x:65534:\n")
    cfg = default_config()
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = list(args)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return cfg


def pyrunc_command():
    """The installed `pyrunc` next to this Python; else the module, never shadowed by a source tree in the cwd."""
    here = os.path.join(os.path.dirname(sys.executable), "pyrunc")
    if os.access(here, os.X_OK):
        return [here]
    return [sys.executable, "-P", "-m", "pyrunc.cli.main"]


def main():
    tmp = tempfile.mkdtemp(prefix="pyrunc-demo-")
    try:
        make_bundle(os.path.join(tmp, "bundle"), ["sh", "-c", "echo hello from $(hostname), pid $$; id; uname -r"])
        cmd = pyrunc_command() + ["--root", os.path.join(tmp, "state"), "run", "--bundle",
                                  os.path.join(tmp, "bundle"), f"pyrunc-demo-{os.getpid()}"]
        print("$ pyrunc run ...", flush=True)
        rc = subprocess.call(cmd)
        print(f"container exited with status {rc}")
        return rc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
