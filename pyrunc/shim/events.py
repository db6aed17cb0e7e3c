"""Events to containerd: Forward over ttrpc to TTRPC_ADDRESS (SHIM.md §4).

One publisher thread drains one FIFO queue, so events reach containerd in the order they were published; the
order rules (start before exit, exec exits before the init's, OOM before the init's exit, exit before delete)
are kept by the service publishing in that order.  publish() only queues the event with its time: it runs
under a container's lock on the paths of Create, Start, Delete and of the exit a Wait is answered with, so the
encoding (~0.3 ms, more on a message's first use) is the publisher thread's.  On failure: reconnect at once, then
retry with a growing back-off, drop the event after 5 attempts (as the Go publisher).
"""

import time

from . import sync

FORWARD = ("containerd.services.events.ttrpc.v1.Events", "Forward")
RETRIES = 5


class Publisher:
    def __init__(self, address, namespace, log, *, backoff=1.0):
        self.address = address
        self.ns = namespace
        self.log = log
        self.backoff = backoff
        self.queue = []
        self.cond = sync.Condition()
        self.closed = False
        self.client = None
        from .ttrpc import go

        self.thread = go(self._run)

    def publish(self, topic, event):
        """Queue event (a message nobody changes afterwards) for topic, stamped now."""
        item = (time.time_ns(), topic, event)
        with self.cond:
            self.queue.append(item)
            self.cond.notify()

    def _encode(self, item):
        from . import api, wire

        ns, topic, event = item
        env = api.TtrpcEnvelope(timestamp=wire.Timestamp.from_ns(ns), namespace=self.ns, topic=topic,
                                event=wire.pack(event))
        return api.ForwardRequest(envelope=env).encode()

    def _run(self):
        while True:
            with self.cond:
                while not self.queue and not self.closed:
                    self.cond.wait()
                if not self.queue:
                    return
                item = self.queue[0]
            if self.address:
                try:
                    data = self._encode(item)
                except Exception as e:  # noqa: BLE001: a bad event is dropped, never the publisher thread
                    self.log.error(f"publish {item[1]}: encode: {e}")
                else:
                    self._send(data)
            with self.cond:
                self.queue.pop(0)
                self.cond.notify_all()

    def _send(self, data):
        from . import ttrpc

        for attempt in range(1, RETRIES + 1):
            try:
                if self.client is None:
                    self.client = ttrpc.Client(self.address)
                self.client.call(*FORWARD, data, timeout=5.0,
                                 metadata=(("containerd-namespace-ttrpc", self.ns),))
                return
            except (OSError, ttrpc.Error) as e:
                if self.client is not None:
                    self.client.close()
                    self.client = None
                if attempt == RETRIES:
                    self.log.warning(f"publish event: {e}: dropped after {RETRIES} attempts")
                    return
                if attempt > 1:  # the first retry reconnects at once (containerd restarted: a new socket)
                    time.sleep(self.backoff * (attempt - 1))

    def close(self, timeout=5.0):
        """Let the queue drain (at most timeout seconds), then stop."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        from .ttrpc import joined

        joined(self.thread, timeout)
