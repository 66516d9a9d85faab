"""Carrying out a replay machine's actions on a real socket.

The link decides nothing: the machine (:mod:`tcpcassette._core.replay`, or
the exchange server) answers every client event with actions, and the link
performs them in order, holding them back while the client reads slowly.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager

from .._core.actions import (
    Abort,
    Action,
    Disconnect,
    Machine,
    Problem,
    Send,
    SendEof,
    StartTls,
    WakeAt,
    Wrapper,
)
from .wire import reset_transport, set_nodelay


class ReplayLink:
    """One client connection served by a replay machine.

    Args:
        transport: the accepted client connection.
        machine: what decides every action.
        on_problem: called with each problem the machine finds.
        on_cut_short: called once, before the connection ends, if a fault
            ends this play early (its recording may then serve a retry).
        on_done: called once when the connection is over.
        start_tls: called with a ``StartTls`` the moment the machine asks
            for it (so the client's next bytes go to the handshake); it
            answers with :meth:`tls_ready` or :meth:`tls_failed`.  Actions
            after it wait until then.
    """

    def __init__(
        self,
        transport: asyncio.Transport,
        machine: Machine,
        *,
        on_problem: Callable[[Problem], None],
        on_cut_short: Callable[[], None],
        on_done: Callable[[ReplayLink], None],
        start_tls: Callable[[StartTls], None] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.transport = transport
        self._start_tls = start_tls
        self._handshaking = False  # actions wait while the client's TLS handshake runs
        self.machine = machine
        self._on_problem = on_problem
        self._on_cut_short = on_cut_short
        self._on_done = on_done
        self._closed = False
        self._released = False
        self._queue: deque[Action] = deque()
        self._paused = False
        self._reading = True  # whether the transport reads (the machine says)
        self._timer: asyncio.TimerHandle | None = None  # the one wake timer armed
        self._timer_due = 0.0  # when it fires
        self._wanted: float | None = None  # the deadline the machine asked for last
        set_nodelay(transport)

    def start(self, pending: bytes = b"", eof: bool = False) -> None:
        """Begin serving; ``pending`` holds bytes the client sent before the match."""
        now = self._loop.time()
        self._do(self.machine.start(now))
        if pending:
            self._do(self.machine.feed(pending, now))
        if eof:
            self._do(self.machine.feed_eof(now))

    def data(self, data: bytes) -> None:
        self._do(self.machine.feed(data, self._loop.time()))

    def eof(self) -> None:
        self._do(self.machine.feed_eof(self._loop.time()))

    def lost(self, exc: Exception | None) -> None:
        self.machine.feed_reset(self._loop.time())
        self._finish()

    def shutdown(self) -> None:
        """The cassette is leaving: end the connection as the machine says."""
        if not self._closed:
            self._paused = False  # nothing may wait for a slow reader any more
            self._do(self.machine.shutdown(self._loop.time()))
            self._close()

    def _wake(self) -> None:
        self._do(self.machine.wake(self._loop.time()))

    def _do(self, actions: list[Action]) -> None:
        # A play that a fault cut short gives its recording back before the
        # connection ends, so a client that reconnects at once finds it free.
        if not self._released and self.machine.cut_short:
            self._released = True
            self._on_cut_short()
        self._queue.extend(actions)
        if self._start_tls is not None:
            for action in actions:
                if type(action) is StartTls:
                    # Now, not when the queue reaches it: the client's next
                    # bytes are its handshake, whatever is still queued.
                    self._start_tls(action)
        self._drain()
        self._follow_reading()

    def tls_ready(self, layer: asyncio.Transport) -> None:
        """The client's TLS handshake is done: what follows goes inside TLS."""
        self.transport = layer
        self._handshaking = False
        self._drain()

    def tls_failed(self) -> None:
        """The client's TLS failed (already reported): reset it."""
        self._queue.clear()
        reset_transport(self.transport)
        self._finish()

    def _follow_reading(self) -> None:
        # A client that keeps sending while the machine can do nothing with
        # its bytes (a Timeout fault, a delay) waits in the kernel's buffers,
        # not in this process's memory.
        reading = self.machine.reading
        if reading is self._reading or self._closed:
            return
        self._reading = reading
        if reading:
            self.transport.resume_reading()
        else:
            self.transport.pause_reading()

    def pause_writing(self) -> None:
        """The transport's buffer is full: hold further actions until it drains."""
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._drain()

    def _drain(self) -> None:
        # Actions run in order; while the client reads slowly they wait here
        # instead of piling the whole response up in the transport's buffer.
        transport = self.transport
        queue = self._queue
        while queue and not self._paused and not self._handshaking:
            if self._closed:
                queue.clear()
                return
            action = queue.popleft()
            # By exact type (no action class has subclasses), Send first: nearly
            # every action is one.
            if type(action) is Send:
                transport.write(action.data)
            elif type(action) is StartTls:
                if self.transport.get_extra_info("ssl_object") is None:
                    self._handshaking = True
            elif type(action) is SendEof:
                if transport.can_write_eof():
                    transport.write_eof()
            elif type(action) is WakeAt:
                self._wake_at(action.deadline)
            elif type(action) is Disconnect:
                self._close()
            elif type(action) is Abort:
                reset_transport(transport)
                self._finish()
            elif type(action) is Problem:
                self._on_problem(action)

    def _wake_at(self, deadline: float) -> None:
        """Have the machine woken at ``deadline``, with one loop timer at most.

        A machine waits on one deadline at a time, the one it asked for last
        (a stall bound re-armed with every chunk, a delay's end), and a wake
        before it changes nothing.  So a timer already due no later stays, and
        on firing arms itself again for the deadline asked for since: a client
        that sends a message in many chunks costs one timer, not one a chunk.
        """
        self._wanted = deadline
        if self._timer is not None:
            if self._timer_due <= deadline:
                return
            self._timer.cancel()
        self._arm(deadline)

    def _arm(self, deadline: float) -> None:
        self._timer = self._loop.call_at(deadline, self._timer_fired)
        self._timer_due = deadline

    def _timer_fired(self) -> None:
        self._timer = None
        wanted = self._wanted
        if wanted is not None and self._loop.time() < wanted:
            self._arm(wanted)
            return
        self._wanted = None
        self._wake()

    def _close(self) -> None:
        if not self._closed:
            self.transport.close()
            self._finish()

    def _finish(self) -> None:
        if not self._closed:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()  # a finished machine has nothing to wake for
                self._timer = None
            self._on_done(self)


class Locked(Wrapper):
    """A machine whose every call holds ``lock``: one that changes state shared
    with other connections (a live connection that may change recordings)."""

    def __init__(self, machine: Machine, lock: AbstractContextManager[object]) -> None:
        super().__init__(machine)
        self._lock = lock

    def start(self, now: float) -> list[Action]:
        with self._lock:
            return self.machine.start(now)

    def feed(self, data: bytes, now: float) -> list[Action]:
        with self._lock:
            return self.machine.feed(data, now)

    def feed_eof(self, now: float) -> list[Action]:
        with self._lock:
            return self.machine.feed_eof(now)

    def feed_reset(self, now: float) -> list[Action]:
        with self._lock:
            return self.machine.feed_reset(now)

    def wake(self, now: float) -> list[Action]:
        with self._lock:
            return self.machine.wake(now)

    def shutdown(self, now: float) -> list[Action]:
        with self._lock:
            return self.machine.shutdown(now)
