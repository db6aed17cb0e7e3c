"""cgroup management: detect v1 / v2 / hybrid once, plan the writes for linux.resources, apply them.

This package is imported by `pyrunc state` and friends, so importing it does nothing: the two entry points below
import the manager module only when called.

    mgr = open_manager(cgroups_path, container_id)   # compute paths (nothing created)
    mgr.create(); mgr.apply(resources); mgr.add_pid(pid)
    m2 = manager_from_paths(state["cgroup_paths"])  # reopen later from state.json
"""


def open_manager(cgroups_path, container_id, **kwargs):
    """Open a manager for a new container; see pyrunc.cgroups.manager.open_manager."""
    from pyrunc.cgroups.manager import open_manager as _open

    return _open(cgroups_path, container_id, **kwargs)


def manager_from_paths(paths, **kwargs):
    """Reopen a manager from the paths kept in state.json; see pyrunc.cgroups.manager.manager_from_paths."""
    from pyrunc.cgroups.manager import manager_from_paths as _from

    return _from(paths, **kwargs)


__all__ = ["open_manager", "manager_from_paths"]
