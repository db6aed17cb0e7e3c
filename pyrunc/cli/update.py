"""pyrunc update [flags] ID | update --resources FILE|- ID: change a live container's cgroup limits (runc update).

With --resources, every other flag is ignored (as in runc); the JSON is a LinuxResources object.
"""

from .main import one_id


def run(g, o, log):
    from ..container import resources

    cid = one_id(o, "update")
    if o.resources:
        if o.resources == "-":
            import sys

            data = sys.stdin.buffer.read()
        else:
            try:
                with open(o.resources, "rb") as f:
                    data = f.read()
            except OSError as e:
                from ..errors import syserror

                raise syserror("open", o.resources, e) from None
        patch = resources.patch_from_json(data, o.resources)
    else:
        patch = resources.patch_from_flags(o, log)
    if o.l3_cache_schema:
        from ..errors import ConfigError

        raise ConfigError("Intel RDT/CAT: l3 cache schema is not enabled")
    if o.mem_bw_schema:
        from ..errors import ConfigError

        raise ConfigError("Intel RDT/MBA: memory bandwidth schema is not enabled")
    resources.update(g.root, cid, patch, log)
