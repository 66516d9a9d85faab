"""Carrying out a :class:`ReplayMachine`'s actions on a real socket."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from .._core.actions import Abort, Action, Hangup, Machine, Problem, Send, SendEof, WakeAt
from .wire import reset_transport, set_nodelay


class ReplayLink:
    """One client connection served by a replay machine (a script play or exchanges).

    Args:
        transport: the accepted client connection.
        index: the recorded connection's number in the cassette (-1 for exchanges).
        machine: what decides every action.
        on_problem: called with the connection number and each problem found.
        on_cut_short: called once if a fault ends this play early.
        on_done: called once when the link is finished.
    """

    def __init__(
        self,
        transport: asyncio.Transport,
        index: int,
        machine: Machine,
        *,
        on_problem: Callable[[int, Problem], None],
        on_cut_short: Callable[[int], None],
        on_done: Callable[[ReplayLink], None],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.transport = transport
        self.index = index
        self.machine = machine
        self._on_problem = on_problem
        self._on_cut_short = on_cut_short
        self._on_done = on_done
        self._closed = False
        self._released = False
        self._client_eof = False
        self._draining = False  # after a hang-up: FIN sent, client bytes discarded
        self._queue: deque[Action] = deque()
        self._paused = False
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
        if not self._draining:
            self._do(self.machine.feed(data, self._loop.time()))

    def eof(self) -> None:
        self._client_eof = True
        if self._draining:
            self.transport.close()
            self._finish()
            return
        self._do(self.machine.feed_eof(self._loop.time()))

    def lost(self, exc: Exception | None) -> None:
        self.machine.feed_reset(self._loop.time())
        self._finish()

    def _wake(self) -> None:
        self._do(self.machine.wake(self._loop.time()))

    def _do(self, actions: list[Action]) -> None:
        self._queue.extend(actions)
        self._drain()

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
        while queue and not self._paused:
            if self._closed:
                queue.clear()
                return
            action = queue.popleft()
            if type(action) is Send:
                transport.write(action.data)
            elif type(action) is SendEof:
                if transport.can_write_eof():
                    transport.write_eof()
            elif type(action) is WakeAt:
                self._loop.call_at(action.deadline, self._wake)
            elif type(action) is Hangup:
                self._hang_up()
            elif type(action) is Abort:
                reset_transport(transport)
                self._finish()
            elif isinstance(action, Problem):
                self._on_problem(self.index, action)
        if self.machine.cut_short and not self._released:
            self._released = True
            self._on_cut_short(self.index)

    def _hang_up(self) -> None:
        # An orderly close: FIN now, then discard what the client still sends
        # until it closes too.  Closing the socket outright would answer the
        # client's next write with an RST, and its reads would fail instead
        # of returning EOF.
        if self._client_eof or not self.transport.can_write_eof():
            self.transport.close()
            self._finish()
        else:
            self.transport.write_eof()
            self._draining = True

    def _finish(self) -> None:
        if not self._closed:
            self._closed = True
            self._on_done(self)

    def report_unfinished(self) -> None:
        """The cassette is leaving: report a message the client left half sent, and reset."""
        partial = self.machine.partial_message
        if partial is None or self._closed:
            return
        expected, received = partial
        self._on_problem(
            self.index,
            Problem(
                reason="stalled",
                position=self.machine.position,
                expected=expected,
                actual=received,
                offset=len(received),
            ),
        )
        reset_transport(self.transport)
        self._finish()

    def close(self) -> None:
        """The cassette is leaving: close in order (FIN)."""
        if not self._closed:
            self.transport.close()
            self._finish()
