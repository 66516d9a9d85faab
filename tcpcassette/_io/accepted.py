"""Accepted client connections, before and while a link serves them.

An accepted connection hands its events to whichever link serves it (a proxy
link while recording, a replay link while replaying), chosen by its
:class:`Handler` once it knows; a connection waiting for its first bytes is
an :class:`Opening` until they say which recording it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol


class Handler(Protocol):
    """What accepted connections report to (the session implements it)."""

    def accepted(self, connection: Accepted) -> None:
        """A client connected to ``connection.target``'s listener."""
        ...

    def opening_changed(self, opening: Opening) -> None:
        """A waiting connection sent more bytes, or closed its half."""
        ...

    def opening_stalled(self, opening: Opening) -> None:
        """A waiting connection sent part of a message and then nothing within the bound."""
        ...

    def opening_gone(self, opening: Opening) -> None:
        """A waiting connection is no longer waiting (served, rejected or lost)."""
        ...


class Listener:
    """A per-target listening socket (on loopback unless asked otherwise)."""

    def __init__(self, server: asyncio.Server) -> None:
        self.server = server
        self.host: str = server.sockets[0].getsockname()[0]
        self.port: int = server.sockets[0].getsockname()[1]


def _ignore_data(data: bytes) -> None:
    pass


def _ignore() -> None:
    pass


def _ignore_lost(exc: Exception | None) -> None:
    pass


class Accepted(asyncio.Protocol):
    """An accepted client connection; it hands its events to whichever link serves it."""

    def __init__(self, handler: Handler, target: str) -> None:
        self.handler = handler
        self.target = target
        self.transport: asyncio.Transport | None = None
        self.on_data: Callable[[bytes], None] = _ignore_data
        self.on_eof: Callable[[], None] = _ignore
        self.on_lost: Callable[[Exception | None], None] = _ignore_lost
        self.on_pause: Callable[[], None] = _ignore
        self.on_resume: Callable[[], None] = _ignore

    def route(
        self,
        *,
        data: Callable[[bytes], None],
        eof: Callable[[], None],
        lost: Callable[[Exception | None], None],
        pause: Callable[[], None] = _ignore,
        resume: Callable[[], None] = _ignore,
    ) -> None:
        """Hand this connection's events to a link from now on."""
        self.on_data, self.on_eof, self.on_lost = data, eof, lost
        self.on_pause, self.on_resume = pause, resume

    @property
    def peer_port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("peername")[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.handler.accepted(self)

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


class Opening:
    """A client-first connection waiting for bytes that say which recording it is."""

    def __init__(self, handler: Handler, accepted: Accepted) -> None:
        assert accepted.transport is not None
        self.handler = handler
        self.accepted = accepted
        self.transport: asyncio.Transport = accepted.transport
        self.buffer = bytearray()
        self.eof = False
        self.done = False
        self._timer: asyncio.TimerHandle | None = None
        accepted.route(data=self._data, eof=self._end, lost=self._lost)

    def _data(self, data: bytes) -> None:
        self.buffer += data
        self.handler.opening_changed(self)

    def _end(self) -> None:
        self.eof = True
        self.handler.opening_changed(self)

    def _lost(self, exc: Exception | None) -> None:
        self.finish()

    def arm_stall_timer(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(
            delay, self.handler.opening_stalled, self
        )

    def finish(self) -> None:
        """Stop waiting: the connection is served, rejected or gone."""
        if self.done:
            return
        self.done = True
        if self._timer is not None:
            self._timer.cancel()
        self.handler.opening_gone(self)
