"""End-of-run cleanup and leak detection: containers, state dir, mounts, cgroups, temp dirs."""

import os
import shutil

from .harness import is_dir

CGROUP_ROOT = "/sys/fs/cgroup"


def _rmdir_tree(path):
    """cgroup dirs can only be rmdir'ed bottom-up (their files are not removable)."""
    for dirpath, dirnames, _ in os.walk(path, topdown=False):
        for d in dirnames:
            try:
                os.rmdir(os.path.join(dirpath, d))
            except OSError:
                pass
    os.rmdir(path)


def cleanup_all(ctx, own_root=True):
    """Delete leftovers; return a list of what leaked (an empty list means clean)."""
    leaks = []
    # Containers still known to the runtime under our root.
    if os.path.isdir(ctx.rt.root):
        for cid in os.listdir(ctx.rt.root):
            if cid.startswith(ctx.prefix):
                leaks.append(f"container {cid} was left behind (deleted now)")
                ctx.rt.force_delete(cid)
    # Mounts under our work dir (bundles) in the host mount namespace.
    with open("/proc/self/mountinfo") as f:
        mounts = [ln.split()[4] for ln in f]
    for mp in reversed(mounts):
        if mp.startswith(ctx.workdir):
            leaks.append(f"mount {mp} was left behind (unmounted now)")
            os.system(f"umount -l '{mp}' 2>/dev/null")
    # cgroups: runtimes remove the leaf but not the parents we asked for; ours are removed
    # here silently, a leftover leaf (a container's cgroup) counts as a leak.
    if os.path.isdir(CGROUP_ROOT):
        for ctrl in sorted(os.listdir(CGROUP_ROOT)):
            base = os.path.join(CGROUP_ROOT, ctrl, ctx.prefix)
            if not is_dir(base):
                continue
            for sub in sorted(os.listdir(base)):
                if is_dir(os.path.join(base, sub)):
                    leaks.append(f"cgroup {ctrl}/{ctx.prefix}/{sub} was left behind")
            try:
                _rmdir_tree(base)
            except OSError as e:
                leaks.append(f"cannot remove {base}: {e}")
    if own_root:
        shutil.rmtree(ctx.rt.root, ignore_errors=True)
    shutil.rmtree(ctx.workdir, ignore_errors=True)
    if os.path.exists(ctx.workdir):
        leaks.append(f"cannot remove {ctx.workdir}")
    return leaks
