"""The shim daemon: serves the task service on the socket `start` made (fd 3), reaps every child, publishes
events, and exits after a Shutdown that finds no task left (or on SIGTERM/SIGINT), removing its socket.

Threads: the main thread handles signals and runs the reaper (the only wait4 of the process); the ttrpc server
runs one thread per request; one thread publishes events; one runs the stdio epoll loop; until the first Create
(or WARM_IDLE), one more writes the cgroup lock's warm-up that `start` began at fork (cgroups/warm.py).  The
library forks (stage A of create/exec) from request threads: Python 3.11 allows that; what the child runs touches
no lock another thread may hold — the shim's log writes are single os.write calls (no logging module, no buffered
stream), and the event queue, the reaper and the stdio loop are never used after fork in the child.
"""

import _signal as signal  # not `signal`: its enum wrappers cost ~4 ms on the daemon's start-up path
import _socket
import os


WARM_IDLE = 1.0  # seconds a warm-up begun at fork waits for the first Create before it is ended


def run(flags, bundle, address, warming=None):
    """Serve until stopped; warming: the cgroup lock's warm-up `start` began at fork, for the first Create."""
    from ..linux import PR_SET_CHILD_SUBREAPER, real
    from ..errors import Logger
    from . import events, reaper, service, stdio, ttrpc

    log = Logger(debug=flags["debug"])  # fd 2: the bundle's log fifo, non-blocking, lines dropped on EAGAIN
    ns = flags["namespace"] or "default"
    real.prctl(PR_SET_CHILD_SUBREAPER, 1)
    rp = reaper.Reaper()
    reaper.install(rp)
    if flags["socket"]:
        path = flags["socket"].removeprefix("unix://")
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        sock.bind(path)
        sock.listen(128)
        address = "unix://" + path
    else:
        sock = _socket.socket(fileno=3)
    if address is None:
        try:
            with open(os.path.join(bundle, "address")) as f:
                address = f.read().strip()
        except OSError:
            address = ""

    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    stop = []

    def request_stop():
        stop.append(True)
        try:
            os.write(wake_w, b"x")
        except BlockingIOError:
            pass

    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    os.register_at_fork(after_in_child=_child_signals)

    publisher = events.Publisher(os.environ.get("TTRPC_ADDRESS", ""), ns, log)
    loop = stdio.Loop(log)
    svc = service.Service(ns, publisher, rp, log, loop, request_stop, warming)
    server = ttrpc.Server(sock, {"containerd.task.v2.Task": svc.handlers()}, log=log)
    # Create's imports before serving, on this thread: the first request is Create, which needs them all, and a
    # warm-up running beside it only made the two threads take turns at the GIL (5 ms switch interval).
    _warm_up()
    import gc

    gc.freeze()  # what start-up allocated lives as long as the daemon: later collections skip it
    gc.enable()
    ttrpc.go(server.serve)
    log.info(f"starting signal loop namespace={ns} pid={os.getpid()} runtime=io.containerd.pyrunc.v1")
    import select

    while not stop:
        try:
            if not select.select([wake_r], [], [], WARM_IDLE if svc.warming else None)[0]:
                svc.drop_warming()  # no Create came: its writes end
        except InterruptedError:
            pass
        try:
            while os.read(wake_r, 512):
                pass
        except BlockingIOError:
            pass
        rp.reap()
    svc.drop_warming()
    server.shutdown()
    if address.startswith("unix://"):
        try:
            os.unlink(address[len("unix://"):])
        except FileNotFoundError:
            pass
    publisher.close(5.0)
    return 0


def _warm_up():
    """Import what every Create loads (the first request; measured: the modules new in sys.modules after a
    Create), with the C helper loaded, while containerd is still reading `start`'s answer and dialling us, and
    before gc.freeze().  The exec path (container.execute) waits for the first Exec."""
    try:
        from ..cgroups import manager, v1, v2  # noqa: F401: warm-up, imported for the load only
        from ..container import lifecycle, procsetup  # noqa: F401: warm-up, imported for the load only
        from ..linux import real
        from ..process import child, plan  # noqa: F401: warm-up, imported for the load only
        from ..security import caps, rlimits  # noqa: F401: warm-up, imported for the load only
        from ..spec import validate  # noqa: F401: warm-up, imported for the load only
        from . import mounts  # noqa: F401: warm-up, imported for the load only

        real.lib  # noqa: B018: load the C helper
    except Exception:  # noqa: BLE001: Create reports it properly
        pass


def _child_signals():
    """After fork, in the library's children (stage A of create/exec, the id-map helper): the signal state they
    have under the CLI.  Without this a SIGCHLD in stage A would run our handler and write to the wakeup fd's
    number, which close_stray_fds may have closed and stage A reused for something else."""
    try:
        signal.set_wakeup_fd(-1)
    except ValueError:
        pass
    for sig in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
