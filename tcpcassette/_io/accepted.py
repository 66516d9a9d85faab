"""Accepted client connections, before and while a link serves them.

An accepted connection hands its events to whichever link serves it (a proxy
link while recording, a replay link while replaying), chosen by the session
once it knows; a client-first connection waits as an :class:`Opening` until
its first bytes say which recording it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import Session


class Listener:
    """A per-target listening socket (on loopback unless asked otherwise)."""

    def __init__(self, server: asyncio.Server) -> None:
        self.server = server
        self.host: str = server.sockets[0].getsockname()[0]
        self.port: int = server.sockets[0].getsockname()[1]


class Accepted(asyncio.Protocol):
    """An accepted client connection; it hands its events to whichever link serves it."""

    def __init__(self, session: Session, target: str) -> None:
        self.session = session
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.on_data: Callable[[bytes], None] = self._drop
        self.on_eof: Callable[[], None] = _nothing
        self.on_lost: Callable[[Exception | None], None] = _nothing_lost
        self.on_pause: Callable[[], None] = _nothing
        self.on_resume: Callable[[], None] = _nothing

    def _drop(self, data: bytes) -> None:
        pass

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.session._accepted(self, transport)

    def data_received(self, data: bytes) -> None:
        self.on_data(data)

    def eof_received(self) -> bool:
        self.on_eof()
        return True  # half-closed connections stay open for the other direction

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_lost(exc)

    def pause_writing(self) -> None:
        self.on_pause()

    def resume_writing(self) -> None:
        self.on_resume()


def _nothing() -> None:
    pass


def ignore_index(index: int) -> None:
    pass


def _nothing_lost(exc: Exception | None) -> None:
    pass


class Opening:
    """A client-first connection waiting for bytes that say which recording it is."""

    def __init__(self, session: Session, accepted: Accepted, transport: asyncio.Transport) -> None:
        self.session = session
        self.accepted = accepted
        self.transport = transport
        self.buffer = bytearray()
        self.eof = False
        self.done = False
        self._timer: asyncio.TimerHandle | None = None

    def data(self, data: bytes) -> None:
        self.buffer += data
        self.session._decide_opening(self)

    def end(self) -> None:
        self.eof = True
        self.session._decide_opening(self)

    def lost(self, exc: Exception | None) -> None:
        self.finish()

    def arm_stall_timer(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(
            delay, self.session._opening_stalled, self
        )

    def finish(self) -> None:
        self.done = True
        if self._timer is not None:
            self._timer.cancel()
        self.session._openings.discard(self)
