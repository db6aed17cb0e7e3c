"""A recording stand-in for pyrunc.linux.Linux, so apply loops are unit-tested without root."""


class Recorder:
    """Records every call as (name, *args).

    `fail` maps a call name to an errno to raise on it; `passthrough` names calls that also run for real
    (openat2 needs no privilege, so path resolution inside a temporary rootfs is tested for real)."""

    def __init__(self, fail=None, passthrough=("openat2",)):
        self.calls = []
        self.fail = dict(fail or {})
        self.passthrough = set(passthrough)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)

        def record(*args, **kw):
            from ..errors import SysError

            self.calls.append((name,) + args)
            if name in self.fail:
                raise SysError(name, args[1] if len(args) > 1 else None, self.fail[name])
            if name in self.passthrough:
                from . import real

                return getattr(real, name)(*args, **kw)
            return 0

        return record

    def names(self):
        return [c[0] for c in self.calls]
