"""config.md#process and runtime-linux.md#file-descriptors, seen from inside by the probe."""

from . import check
from .harness import Skip, caps_mask, expect

USER_UID, USER_GID, USER_GIDS = 1000, 1000, [5, 65534]
USER_UMASK = 0o027
USER_CAPS = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
USER_BOUNDING = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID"]


def user_probe(ctx):
    """A non-root process with most process fields set to non-default values.

    As a non-root user (no file capabilities on /probe), the kernel's execve rule gives
    P'(permitted) = P'(effective) = P'(ambient), so the config uses one set for those
    and for inheritable (ambient must be a subset of both) to make all five checkable."""
    def build():
        c = ctx.config()
        p = c["process"]
        p["args"] = ["/probe", "arg with spaces", "--flag=x", ""]
        p["env"] = ["PATH=/bin:/sbin", "FOO=bar", "EMPTY=", "WITH_EQ=a=b"]
        p["cwd"] = "/tmp"
        p["user"] = {"uid": USER_UID, "gid": USER_GID, "additionalGids": USER_GIDS, "umask": USER_UMASK}
        p["capabilities"] = {k: list(USER_CAPS) for k in ("effective", "inheritable", "permitted", "ambient")}
        p["capabilities"]["bounding"] = list(USER_BOUNDING)
        p["noNewPrivileges"] = False
        p["oomScoreAdj"] = 123
        p["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                        {"type": "RLIMIT_CORE", "soft": 4096, "hard": 1048576}]
        return ctx.run_probe(c, *p["args"][1:], name="user")
    return ctx.cached_probe("user", build)


def default_probe(ctx):
    """The base config as root (see harness.base_config), with stat/read/write probes."""
    from .linux import DEFAULT_PROBE_ARGS, default_config
    return ctx.cached_probe("default", lambda: ctx.run_probe(default_config(ctx), *DEFAULT_PROBE_ARGS,
                                                              name="default"))


@check("process.args is the argv of the process, verbatim", "config.md#process")
def args(ctx):
    _, d, _ = user_probe(ctx)
    want = ["/probe", "arg with spaces", "--flag=x", ""]
    expect(d["args"] == want, f"argv {d['args']!r}, want {want!r}")


@check("process.env is the environment, verbatim and in order", "config.md#process")
def env(ctx):
    _, d, _ = user_probe(ctx)
    want = ["PATH=/bin:/sbin", "FOO=bar", "EMPTY=", "WITH_EQ=a=b"]
    got = [e for e in d["env"] if e.split("=", 1)[0] in {w.split("=", 1)[0] for w in want}]
    expect(got == want, f"env {d['env']!r}, want {want!r}")
    extra = [e for e in d["env"] if e.split("=", 1)[0] not in {"HOME"} and e not in want]
    expect(not extra, f"unexpected variables (only HOME may be added): {extra!r}")


@check("process.cwd is the working directory", "config.md#process")
def cwd(ctx):
    _, d, _ = user_probe(ctx)
    expect(d["cwd"] == "/tmp", f"cwd {d['cwd']!r}")


@check("process.user uid and gid set real, effective and saved ids", "config.md#posix-platform-user")
def user_ids(ctx):
    _, d, _ = user_probe(ctx)
    expect(d["uid"] == [USER_UID] * 3, f"resuid {d['uid']}")
    expect(d["gid"] == [USER_GID] * 3, f"resgid {d['gid']}")


@check("process.user.additionalGids are the supplementary groups", "config.md#posix-platform-user")
def user_groups(ctx):
    _, d, _ = user_probe(ctx)
    expect(sorted(d["groups"]) == sorted(USER_GIDS), f"groups {d['groups']}, want {USER_GIDS}")


@check("process.user.umask is the process umask", "config.md#posix-platform-user")
def umask(ctx):
    _, d, _ = user_probe(ctx)
    expect(d["umask"] == USER_UMASK, f"umask {d['umask']:04o}, want {USER_UMASK:04o}")


@check("process.oomScoreAdj is written to oom_score_adj", "config.md#linux-process")
def oom(ctx):
    _, d, _ = user_probe(ctx)
    expect(d["oom_score_adj"] == 123, f"oom_score_adj {d['oom_score_adj']}")


@check("process.capabilities: all five sets equal the config (non-root user)", "config.md#linux-process")
def caps_user(ctx):
    _, d, _ = user_probe(ctx)
    want = {"CapBnd": caps_mask(USER_BOUNDING)}
    for k in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        want[k] = caps_mask(USER_CAPS)
    got = {k: int(v, 16) for k, v in d["caps"].items()}
    bad = {k: f"{got[k]:#x} want {v:#x}" for k, v in want.items() if got.get(k) != v}
    expect(not bad, f"capability sets differ: {bad}")


@check("process.capabilities: bounding and inheritable sets equal the config (root)", "config.md#linux-process")
def caps_root(ctx):
    _, d, _ = default_probe(ctx)
    caps = ctx.config()["process"]["capabilities"]
    got = {k: int(v, 16) for k, v in d["caps"].items()}
    for k, s in (("CapBnd", "bounding"), ("CapInh", "inheritable"), ("CapEff", "effective"),
                 ("CapPrm", "permitted")):
        expect(got[k] == caps_mask(caps[s]), f"{k} {got[k]:#x}, want {caps_mask(caps[s]):#x}")


@check("process.rlimits: soft and hard values are applied", "config.md#posix-process")
def rlimits(ctx):
    _, d, _ = user_probe(ctx)
    r = d["rlimits"]
    expect(r["RLIMIT_NOFILE"] == [512, 1024], f"RLIMIT_NOFILE {r['RLIMIT_NOFILE']}")
    expect(r["RLIMIT_CORE"] == [4096, 1048576], f"RLIMIT_CORE {r['RLIMIT_CORE']}")


@check("process.noNewPrivileges true sets no_new_privs", "config.md#linux-process")
def nnp_true(ctx):
    _, d, _ = default_probe(ctx)
    expect(d["no_new_privs"] == 1, f"no_new_privs {d['no_new_privs']}")


@check("process.noNewPrivileges false leaves no_new_privs unset", "config.md#linux-process")
def nnp_false(ctx):
    _, d, _ = user_probe(ctx)
    expect(d["no_new_privs"] == 0, f"no_new_privs {d['no_new_privs']}")


@check("terminal false: fds 0-2 are the ones the runtime was given", "runtime-linux.md#file-descriptors")
def stdio_inherited(ctx):
    _, d, x = default_probe(ctx)
    fds = {f["fd"]: f for f in d["fds"]}
    for n, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        expect(n in fds, f"fd {n} is not open")
        st = x[name]
        expect((fds[n]["dev"], fds[n]["ino"]) == (st.st_dev, st.st_ino),
               f"fd {n} is {fds[n]['target']!r}, not the {name} passed to create")


@check("only fds 0-2 are open in the process", "runtime-linux.md#file-descriptors")
def no_leaked_fds(ctx):
    _, d, _ = default_probe(ctx)
    extra = [f for f in d["fds"] if f["fd"] > 2]
    expect(not extra, f"leaked fds: {extra}")


@check("the process exit status is reported to the parent", "runtime.md#lifecycle")
def exit_status(ctx):
    c = ctx.config()
    code, _, _ = ctx.run_probe(c, "exit=7", name="exit")
    expect(code in (7, None), f"exit status {code}")
    if code is None:
        raise Skip("the container init was not reparented to the caller (subreaper)")
