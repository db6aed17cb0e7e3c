"""The command line: main.py parses argv and dispatches to one module per verb (cli -> library -> linux).

This package's own module is the verb registry, the one description of pyrunc's command line (here rather than in
a module of its own: every call loads the package anyway, and each module more costs ~0.1 ms of start-up).

Both parsers read it.  The fast path (pyrunc.cli.main.parse) parses Go-style argv for every call without importing
click (click alone costs ~28 ms, more than `pyrunc state` may spend in total); the click application
(pyrunc.cli.clickapp) is built from the same table for --help, usage errors and anything the fast path refuses.
Each verb's code lives in pyrunc/cli/<module>.py as `run(g, o)` and is imported only when that verb runs.

Option kinds: "str", "int", "bool", "list" (repeatable), "dur" (a Go duration such as 5s, kept as a string).
"""

# One flag (see O()): names ("--bundle", "-b"), dest, kind, default, help, as attributes of a pyrunc.Namespace:
# neither a namedtuple (`collections` alone costs more than a millisecond of every call's start-up) nor a class
# of ours
from .. import Namespace as _Opt


class Verb:
    """One verb: module (pyrunc/cli/<module>.py), summary, opts, positional args, rest (args after the id).

    opts may be given as a function returning them: a verb's options are then built when first asked for, so that
    a call builds its own verb's and not the ninety others' (~0.3 ms of every start-up)."""

    __slots__ = ("module", "summary", "_opts", "args", "rest", "doc")

    def __init__(self, module, summary, opts, args, rest, doc=None):
        self.module, self.summary, self._opts, self.args, self.rest = module, summary, opts, args, rest
        self.doc = doc  # the longer text of `pyrunc VERB --help`, when the summary is not enough

    @property
    def opts(self):
        if callable(self._opts):
            self._opts = self._opts()
        return self._opts


def O(names, kind="str", default=None, help="", dest=None):
    names = tuple(names.split(","))
    dest = dest or names[0].lstrip("-").replace("-", "_")
    if kind == "list" and default is None:
        default = ()
    if kind == "bool" and default is None:
        default = False
    return _Opt(names=names, dest=dest, kind=kind, default=default, help=help)


GLOBAL = (
    O("--root", default=None, help="root directory for storage of container state (default /run/pyrunc, or "
      "$XDG_RUNTIME_DIR/pyrunc when not root)"),
    O("--log", default="", help="set the log file to write pyrunc logs to (default is stderr)"),
    O("--log-format", default="text", help="set the log format ('text' (default), or 'json')"),
    O("--debug", "bool", help="enable debug logging"),
    O("--systemd-cgroup", "bool", help="enable systemd cgroup support"),
    O("--rootless", default="auto", help="ignore cgroup permission errors ('true', 'false', or 'auto')"),
    O("--criu", default="criu", help="path to the criu binary (checkpoint/restore are not supported yet)"),
)



def _create():
    return (
        O("--bundle,-b", default="", help="path to the root of the bundle directory, defaults to the current "
          "directory"),
        O("--console-socket", help="path to an AF_UNIX socket which will receive the pty master"),
        O("--pid-file", help="specify the file to write the process id to"),
        O("--no-pivot", "bool", help="do not use pivot root to jail process inside rootfs"),
        O("--no-new-keyring", "bool", help="do not create a new session keyring for the container"),
        O("--preserve-fds", "int", 0, help="pass N additional file descriptors to the container"),
        O("--pidfd-socket", help="path to an AF_UNIX socket which will receive the pidfd of the init process"),
    )


# Each verb's options as a function (see Verb): built only for the verb a call runs.
VERBS = {
    "create": Verb("create", "create a container", _create, ("container-id",), False),
    "start": Verb("start", "executes the user defined process in a created container", (), ("container-id",), False),
    "state": Verb("state", "output the state of a container", (), ("container-id",), False),
    "kill": Verb("kill", "kill sends the specified signal (default: SIGTERM) to the container's init process",
                 lambda: (O("--all,-a", "bool", help="send the specified signal to all processes inside the container"),),
                 ("container-id", "[signal]"), False),
    "delete": Verb("delete", "delete any resources held by the container often used with detached container",
                   lambda: (O("--force,-f", "bool", help="forcibly deletes the container if it is still running (uses SIGKILL)"),),
                   ("container-id",), False),
    "run": Verb("run", "create and run a container",
                lambda: _create() + (O("--detach,-d", "bool", help="detach from the container's process"),
                           O("--keep", "bool", help="do not delete the container after it exits"),
                           O("--no-subreaper", "bool", help="disable the use of the subreaper used to reap reparented processes")),
                ("container-id",), False,
                doc="create and run a container\n\n"
                    "CONTAINER-ID names the container and the bundle is --bundle (default: the current directory), as "
                    "in runc.  An argument holding a '/' (which no container id can hold) is the bundle instead: "
                    "`pyrunc run ./mybundle/` runs it under the id mybundle-XXXXXX (the directory's name and 6 random "
                    "hex digits), shown on stderr with --debug."),
    "list": Verb("list", "lists containers started by pyrunc with the given root",
                 lambda: (O("--format,-f", default="table", help="select one of: table or json"),
                          O("--quiet,-q", "bool", help="display only container IDs")), (), False),
    "spec": Verb("spec", "create a new specification file",
                 lambda: (O("--bundle,-b", default="", help="path to the root of the bundle directory"),
                          O("--rootless", "bool", help="generate a configuration for a rootless container")), (), False),
    "exec": Verb("exec", "execute new process inside the container",
                 lambda: (O("--console-socket"), O("--pidfd-socket"), O("--cwd"), O("--env,-e", "list"),
                  O("--tty,-t", "bool"), O("--user,-u"), O("--additional-gids,-g", "list"),
                  O("--process,-p"), O("--detach,-d", "bool"), O("--pid-file"), O("--process-label"),
                  O("--apparmor"), O("--no-new-privs", "bool"), O("--cap,-c", "list"),
                  O("--preserve-fds", "int", 0), O("--cgroup", "list"), O("--ignore-paused", "bool")),
                 ("container-id", "[command...]"), True),
    "ps": Verb("ps", "ps displays the processes running inside a container",
               lambda: (O("--format,-f", default="table", help="select one of: table or json"),),
               ("container-id", "[ps options...]"), True),
    "pause": Verb("pause", "pause suspends all processes inside the container", (), ("container-id",), False),
    "resume": Verb("resume", "resumes all processes that have been previously paused", (), ("container-id",), False),
    "update": Verb("update", "update container resource constraints",
                   lambda: (O("--resources,-r", help="path to the file containing the resources to update or '-' to read from the standard input"),
                    O("--blkio-weight", "int"), O("--cpu-period"), O("--cpu-quota"), O("--cpu-burst"),
                    O("--cpu-share"), O("--cpu-idle"), O("--cpu-rt-period"), O("--cpu-rt-runtime"), O("--cpuset-cpus"),
                    O("--cpuset-mems"), O("--kernel-memory"), O("--kernel-memory-tcp"), O("--memory"),
                    O("--memory-reservation"), O("--memory-swap"), O("--pids-limit", "int"),
                    O("--l3-cache-schema"), O("--mem-bw-schema")),
                   ("container-id",), False),
    "events": Verb("events", "display container events such as OOM notifications, cpu, memory, and IO usage statistics",
                   lambda: (O("--interval", "dur", "5s", help="set the stats collection interval"),
                    O("--stats", "bool", help="display the container's stats then exit")),
                   ("container-id",), False),
    "features": Verb("features", "show the enabled features", (), (), False),
}
