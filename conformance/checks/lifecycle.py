"""runtime.md: lifecycle, state, operations and their errors."""

import os
import time

from . import check
from .harness import CheckFail, expect, wait_exit

SLEEP = ["/bin/sleep", "1000"]
# pid 1 of a pid namespace ignores signals it has no handler for, so trap TERM.
TRAPPER = ["/bin/sh", "-c", "trap 'exit 42' TERM; touch /started; while true; do sleep 0.1; done"]


def _cfg(ctx, args):
    c = ctx.config()
    c["process"]["args"] = args
    return c


class Container:
    """A created container, force-deleted on exit."""

    def __init__(self, ctx, args=SLEEP, config=None, name="c"):
        self.ctx = ctx
        self.config = config or _cfg(ctx, args)
        self.name = name

    def __enter__(self):
        self.cid, self.bundle, self.pid = self.ctx.create(self.config, name=self.name)
        return self

    def __exit__(self, *exc):
        self.ctx.rt.force_delete(self.cid)

    def state(self):
        return self.ctx.rt.state(self.cid)


def _wait_for(path, timeout=10):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.path.exists(path)


def _missing(ctx):
    return ctx.new_id("missing")


@check("create: state is \"created\" with the init pid, and the user program has not run",
       "runtime.md#create")
def create_state(ctx):
    with Container(ctx, TRAPPER) as c:
        st = c.state()
        expect(st.get("status") == "created", f"status {st.get('status')!r}")
        expect(isinstance(st.get("pid"), int) and st["pid"] > 0, f"pid {st.get('pid')!r}")
        expect(st["pid"] == c.pid, f"state pid {st['pid']} != --pid-file {c.pid}")
        expect(os.path.exists(f"/proc/{c.pid}"), f"init pid {c.pid} is not alive")
        expect(not os.path.exists(os.path.join(c.bundle, "rootfs/started")),
               "the user program ran before start")


@check("start: runs the user program and state becomes \"running\"", "runtime.md#start")
def start_running(ctx):
    with Container(ctx, TRAPPER) as c:
        ctx.rt.ok("start", c.cid)
        expect(_wait_for(os.path.join(c.bundle, "rootfs/started")), "the user program did not run after start")
        st = c.state()
        expect(st.get("status") == "running", f"status {st.get('status')!r}")


@check("process exit: state becomes \"stopped\"", "runtime.md#lifecycle")
def exit_stopped(ctx):
    with Container(ctx, ["/bin/true"]) as c:
        ctx.rt.ok("start", c.cid)
        wait_exit(c.pid)
        st = c.state()
        expect(st.get("status") == "stopped", f"status {st.get('status')!r}")


@check("delete: a stopped container is deleted and state then fails", "runtime.md#delete")
def delete_stopped(ctx):
    with Container(ctx, ["/bin/true"]) as c:
        ctx.rt.ok("start", c.cid)
        wait_exit(c.pid)
        ctx.rt.ok("delete", c.cid)
        r = ctx.rt.cmd("state", c.cid)
        expect(r.rc != 0, f"state after delete succeeded: {r!r}")
        expect("does not exist" in r.err, f"error does not say 'does not exist': {r!r}")


@check("state document has ociVersion, id, status, pid and the absolute bundle path", "runtime.md#state")
def state_fields(ctx):
    with Container(ctx) as c:
        st = c.state()
        for k, t in (("ociVersion", str), ("id", str), ("status", str), ("pid", int), ("bundle", str)):
            expect(isinstance(st.get(k), t), f"{k} missing or not {t.__name__}: {st!r}")
        expect(st["id"] == c.cid, f"id {st['id']!r}")
        expect(st["bundle"] == c.bundle, f"bundle {st['bundle']!r} != {c.bundle!r}")
        expect(st["ociVersion"].startswith("1."), f"ociVersion {st['ociVersion']!r}")


@check("state echoes the config's annotations", "runtime.md#state")
def state_annotations(ctx):
    cfg = _cfg(ctx, SLEEP)
    ann = {"org.example.key": "value", "com.example/other": "with spaces = ok"}
    cfg["annotations"] = ann
    with Container(ctx, config=cfg) as c:
        st = c.state()
        expect(st.get("annotations") == ann, f"annotations {st.get('annotations')!r}")


@check("start of a container that is not \"created\" fails and has no effect", "runtime.md#start")
def start_twice(ctx):
    with Container(ctx) as c:
        ctx.rt.ok("start", c.cid)
        r = ctx.rt.cmd("start", c.cid)
        expect(r.rc != 0, f"second start succeeded: {r!r}")
        expect(c.state().get("status") == "running", "container not running after a failed start")


@check("delete of a running container without --force fails and has no effect", "runtime.md#delete")
def delete_running(ctx):
    with Container(ctx) as c:
        ctx.rt.ok("start", c.cid)
        r = ctx.rt.cmd("delete", c.cid)
        expect(r.rc != 0, f"delete of a running container succeeded: {r!r}")
        expect(c.state().get("status") == "running", "container not running after a failed delete")


@check("delete of a created (not stopped) container without --force fails",
       "runtime.md#delete",
       deviation="runc and pyrunc delete a created container without --force: containerd's shim deletes a "
                 "created task that way")
def delete_created(ctx):
    with Container(ctx) as c:
        r = ctx.rt.cmd("delete", c.cid)
        expect(r.rc != 0, "delete of a created container succeeded")


@check("delete --force of a running container kills it and removes it", "runtime.md#delete")
def delete_force(ctx):
    with Container(ctx) as c:
        ctx.rt.ok("start", c.cid)
        ctx.rt.ok("delete", "--force", c.cid)
        wait_exit(c.pid, timeout=10)
        r = ctx.rt.cmd("state", c.cid)
        expect(r.rc != 0, f"state after delete --force succeeded: {r!r}")


@check("kill sends the signal to the container process", "runtime.md#kill")
def kill_signal(ctx):
    with Container(ctx, TRAPPER) as c:
        ctx.rt.ok("start", c.cid)
        expect(_wait_for(os.path.join(c.bundle, "rootfs/started")), "the user program did not start")
        ctx.rt.ok("kill", c.cid, "TERM")
        code = wait_exit(c.pid, timeout=10)
        expect(code in (42, None), f"exit status {code}, want 42 from the TERM trap")
        expect(c.state().get("status") == "stopped", "not stopped after the process exited")


@check("kill of a stopped container fails", "runtime.md#kill")
def kill_stopped(ctx):
    with Container(ctx, ["/bin/true"]) as c:
        ctx.rt.ok("start", c.cid)
        wait_exit(c.pid)
        r = ctx.rt.cmd("kill", c.cid, "KILL")
        expect(r.rc != 0, f"kill of a stopped container succeeded: {r!r}")


@check("create with an id already in use fails and does not replace the container", "runtime.md#create")
def create_duplicate(ctx):
    with Container(ctx) as c:
        try:
            ctx.create(_cfg(ctx, SLEEP), cid=c.cid, cleanup_on_fail=False)
        except CheckFail:
            pass
        else:
            raise CheckFail("second create with the same id succeeded")
        st = c.state()
        expect(st.get("pid") == c.pid and st.get("status") == "created",
               f"original container changed: {st!r}")


def _missing_check(verb, extra):
    @check(f"{verb} of a missing container fails with a non-zero exit", "runtime.md#errors")
    def f(ctx):
        r = ctx.rt.cmd(verb, *extra(_missing(ctx)))
        expect(r.rc != 0, f"{verb} of a missing id succeeded: {r!r}")
        expect("does not exist" in r.err, f"error does not say 'does not exist': {r!r}")
    return f


for _verb, _extra in (("state", lambda i: [i]), ("start", lambda i: [i]),
                      ("kill", lambda i: [i, "KILL"]), ("delete", lambda i: [i])):
    _missing_check(_verb, _extra)
