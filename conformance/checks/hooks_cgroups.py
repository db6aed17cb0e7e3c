"""config.md#posix-platform-hooks and config-linux.md#control-groups, checked from the host."""

import json
import os

from . import check
from .harness import expect, wait_exit
from .lifecycle import SLEEP, Container

HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
MEM_LIMIT = 64 << 20
PIDS_LIMIT = 100
CGROUP_ROOT = "/sys/fs/cgroup"


def _hook(name, log):
    # Each hook appends "@@NAME <mount ns>" and then the state JSON it got on stdin.
    return {"path": "/bin/sh",
            "args": ["sh", "-c", f'{{ echo "@@{name} $(readlink /proc/self/ns/mnt)"; cat; echo; }} >> {log}']}


def parse_hook_log(text):
    """[(name, mntns, state dict or error string)] from the hook log, in order."""
    out = []
    for block in text.split("@@")[1:]:
        head, _, body = block.partition("\n")
        name, _, ns = head.partition(" ")
        try:
            st = json.loads(body)
        except ValueError:
            st = f"not JSON: {body[:200]!r}"
        out.append((name, ns, st))
    return out


def hooks_run(ctx):
    def build():
        hdir = os.path.join(ctx.workdir, "hooks")
        os.makedirs(hdir, exist_ok=True)
        log = os.path.join(hdir, "log")
        open(log, "w").close()
        c = ctx.config()
        c["mounts"].append({"destination": "/hooks", "type": "bind", "source": hdir, "options": ["rbind", "rw"]})
        # startContainer runs inside the container: its path and log are container paths.
        c["hooks"] = {h: [_hook(h, "/hooks/log" if h == "startContainer" else log)] for h in HOOKS}
        c["process"]["args"] = ["/bin/sh", "-c", 'echo "@@user" >> /hooks/log']
        snaps = {}

        def snap(key):
            with open(log) as f:
                snaps[key] = parse_hook_log(f.read())

        with Container(ctx, config=c, name="hooks") as ct:
            snap("create")
            snaps["mntns"] = os.readlink(f"/proc/{ct.pid}/ns/mnt")
            snaps["cid"], snaps["bundle"], snaps["pid"] = ct.cid, ct.bundle, ct.pid
            ctx.rt.ok("start", ct.cid)
            snap("start")
            wait_exit(ct.pid)
            ctx.rt.ok("delete", ct.cid)
            snap("delete")
        return snaps
    return ctx.cached_probe("hooks", build)


def _names(entries):
    return [e[0] for e in entries]


def _entry(entries, name):
    for e in entries:
        if e[0] == name:
            return e
    return None


@check("prestart hooks run during create, before createContainer hooks", "config.md#prestart")
def prestart(ctx):
    s = hooks_run(ctx)
    n = _names(s["create"])
    expect("prestart" in n and "createContainer" in n and n.index("prestart") < n.index("createContainer"),
           f"hooks after create: {n}")


@check("createRuntime hooks run during create in the runtime namespace", "config.md#createruntime-hooks")
def create_runtime(ctx):
    s = hooks_run(ctx)
    e = _entry(s["create"], "createRuntime")
    expect(e is not None, f"hooks after create: {_names(s['create'])}")
    expect(e[1] == os.readlink("/proc/self/ns/mnt"), f"ran in mount ns {e[1]}, not the runtime's")
    n = _names(s["create"])
    expect(n.index("createRuntime") < n.index("createContainer"), f"order {n}")


@check("createContainer hooks run during create in the container's mount namespace",
       "config.md#createcontainer-hooks")
def create_container(ctx):
    s = hooks_run(ctx)
    e = _entry(s["create"], "createContainer")
    expect(e is not None, f"hooks after create: {_names(s['create'])}")
    expect(e[1] == s["mntns"], f"ran in mount ns {e[1]}, container's is {s['mntns']}")


@check("startContainer, poststop hooks and the user program do not run during create",
       "config.md#posix-platform-hooks")
def none_early(ctx):
    s = hooks_run(ctx)
    expect("createContainer" in _names(s["create"]), f"create-time hooks did not run: {_names(s['create'])}")
    early = [n for n in _names(s["create"]) if n in ("startContainer", "poststop", "user")]
    expect(not early, f"ran during create: {early}")


# runc 1.1 runs poststart hooks at the end of `create` (status "created"); fixed in runc 1.2.
@check("poststart hooks run during start, not during create", "config.md#poststart",
       todo="runc 1.1.5 runs poststart hooks at the end of create, before start")
def poststart_not_early(ctx):
    s = hooks_run(ctx)
    expect("poststart" in _names(s["delete"]), "poststart hooks never ran")
    expect("poststart" not in _names(s["create"]), f"ran during create: {_names(s['create'])}")


@check("startContainer hooks run in the container before the user program", "config.md#startcontainer-hooks")
def start_container(ctx):
    s = hooks_run(ctx)
    n = _names(s["delete"])
    e = _entry(s["delete"], "startContainer")
    expect(e is not None and "user" in n, f"hooks: {n}")
    expect(n.index("startContainer") < n.index("user"), f"order {n}")
    expect(e[1] == s["mntns"], f"ran in mount ns {e[1]}, container's is {s['mntns']}")


@check("poststart hooks have run when start returns", "config.md#poststart")
def poststart(ctx):
    s = hooks_run(ctx)
    expect("poststart" in _names(s["start"]), f"hooks after start: {_names(s['start'])}")


@check("poststop hooks run on delete, after the container stopped", "config.md#poststop")
def poststop(ctx):
    s = hooks_run(ctx)
    expect("poststop" not in _names(s["start"]), "poststop ran before delete")
    n = _names(s["delete"])
    expect(n.count("poststop") == 1 and n[-1] == "poststop", f"hooks after delete: {n}")


@check("every hook gets the container state (id, bundle, ociVersion) on stdin", "config.md#posix-platform-hooks")
def hook_state(ctx):
    s = hooks_run(ctx)
    missing = set(HOOKS) - set(_names(s["delete"]))
    expect(not missing, f"hooks that never ran: {sorted(missing)}")
    for name, _, st in s["delete"]:
        if name == "user":
            continue
        expect(isinstance(st, dict), f"{name}: {st}")
        expect(st.get("id") == s["cid"] and st.get("bundle") == s["bundle"] and "ociVersion" in st,
               f"{name}: {st}")


@check("runtime-namespace hooks get the container's host pid in the state", "config.md#posix-platform-hooks")
def hook_state_pid_runtime(ctx):
    s = hooks_run(ctx)
    missing = {"prestart", "createRuntime", "poststart"} - set(_names(s["delete"]))
    expect(not missing, f"hooks that never ran: {sorted(missing)}")
    for name, _, st in s["delete"]:
        if name in ("prestart", "createRuntime", "poststart"):
            expect(isinstance(st, dict) and st.get("pid") == s["pid"], f"{name}: {st}, want pid {s['pid']}")


# runc 1.1 runs these hooks from the container's init, which fills in os.Getpid() (1 in a new pid ns).
@check("container-namespace hooks get the container's host pid in the state", "runtime.md#state",
       todo="runc 1.1.5 passes pid 1 (the pid inside the container) to createContainer/startContainer hooks")
def hook_state_pid_container(ctx):
    s = hooks_run(ctx)
    missing = {"createContainer", "startContainer"} - set(_names(s["delete"]))
    expect(not missing, f"hooks that never ran: {sorted(missing)}")
    for name, _, st in s["delete"]:
        if name in ("createContainer", "startContainer"):
            expect(isinstance(st, dict) and st.get("pid") == s["pid"], f"{name}: {st}, want pid {s['pid']}")


# ------------------------------------------------------------------ cgroups


def cgroup_run(ctx):
    def build():
        c = ctx.config()
        path = ctx.cgroup_path("limits")
        c["linux"]["cgroupsPath"] = path
        c["linux"]["resources"].update({"memory": {"limit": MEM_LIMIT}, "pids": {"limit": PIDS_LIMIT}})
        res = {"path": path}
        with Container(ctx, SLEEP, config=c, name="cg") as ct:
            res["pid"] = ct.pid
            res["cid"] = ct.cid
            rel = path.lstrip("/")
            for ctrl, files in (("memory", ("cgroup.procs", "memory.limit_in_bytes")),
                                ("pids", ("cgroup.procs", "pids.max"))):
                for fn in files:
                    try:
                        with open(os.path.join(CGROUP_ROOT, ctrl, rel, fn)) as f:
                            res[f"{ctrl}/{fn}"] = f.read()
                    except OSError as e:
                        res[f"{ctrl}/{fn}"] = e
            with open(f"/proc/{ct.pid}/cgroup") as f:
                res["proc_cgroup"] = f.read().splitlines()
            ctx.rt.ok("delete", "--force", ct.cid)
            res["after_delete_dirs"] = [ctrl for ctrl in os.listdir(CGROUP_ROOT)
                                        if os.path.isdir(os.path.join(CGROUP_ROOT, ctrl, rel))]
            res["after_delete_state"] = [n for n in os.listdir(ctx.rt.root) if ct.cid in n] \
                if os.path.isdir(ctx.rt.root) else []
        return res
    return ctx.cached_probe("cgroups", build)


@check("linux.cgroupsPath: the container process is in that cgroup", "config-linux.md#cgroups-path")
def cgroups_path(ctx):
    r = cgroup_run(ctx)
    procs = r["memory/cgroup.procs"]
    expect(isinstance(procs, str), f"memory cgroup {r['path']}: {procs}")
    expect(str(r["pid"]) in procs.split(), f"pid {r['pid']} not in cgroup.procs {procs.split()}")
    mem = [ln for ln in r["proc_cgroup"] if ":memory:" in ln]
    expect(mem and mem[0].endswith(":" + r["path"]), f"/proc/pid/cgroup memory line {mem}")


@check("linux.resources.memory.limit is written to the memory cgroup", "config-linux.md#memory")
def memory_limit(ctx):
    r = cgroup_run(ctx)
    got = r["memory/memory.limit_in_bytes"]
    expect(isinstance(got, str) and int(got) == MEM_LIMIT, f"memory.limit_in_bytes {got}")


@check("linux.resources.pids.limit is written to the pids cgroup", "config-linux.md#pids")
def pids_limit(ctx):
    r = cgroup_run(ctx)
    got = r["pids/pids.max"]
    expect(isinstance(got, str) and got.strip() == str(PIDS_LIMIT), f"pids.max {got}")


@check("delete removes the container's cgroups and its state", "runtime.md#delete")
def delete_leaves_nothing(ctx):
    r = cgroup_run(ctx)
    expect(isinstance(r["memory/cgroup.procs"], str), f"the cgroup never existed: {r['memory/cgroup.procs']}")
    expect(not r["after_delete_dirs"], f"cgroup {r['path']} left in {r['after_delete_dirs']}")
    expect(not r["after_delete_state"], f"state left in --root: {r['after_delete_state']}")
