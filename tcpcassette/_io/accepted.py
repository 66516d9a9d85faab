"""Accepted client connections, before and while a link serves them.

An accepted connection hands its events to whichever link serves it (a proxy
link while recording, a replay link while replaying), chosen by its
:class:`Handler` once it knows; a connection waiting for its first bytes is
an :class:`Opening` until they say which recording it is.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
from collections.abc import Callable
from typing import Any, Protocol

from .._core.errors import CassetteError
from .._core.render import show_bytes
from .._core.targets import normalise_ip
from .._core.tls_hello import MAX_HELLO, NEED_MORE, read_client_hello
from .tls import Choose, OnFailed, OnReady, TlsLayer, describe_failure


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
    """A per-target listening socket (on loopback unless asked otherwise), and
    its twin on IPv6 loopback for IPv6 clients (where the system has one)."""

    def __init__(self, server: asyncio.Server, server6: asyncio.Server | None = None) -> None:
        self.server = server
        self.server6 = server6
        self.host: str = server.sockets[0].getsockname()[0]
        self.port: int = server.sockets[0].getsockname()[1]
        self.port6: int | None = (
            server6.sockets[0].getsockname()[1] if server6 is not None else None
        )

    def close(self) -> None:
        self.server.close()
        if self.server6 is not None:
            self.server6.close()

    async def wait_closed(self) -> None:
        await self.server.wait_closed()
        if self.server6 is not None:
            await self.server6.wait_closed()


_PROC_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def _proc_address(text: str) -> tuple[str, int]:
    """``0100007F:1F90`` (as /proc/net/tcp spells it) as ``("127.0.0.1", 8080)``."""
    hex_ip, hex_port = text.split(":")
    raw = bytes.fromhex(hex_ip)
    # The kernel prints each 32-bit word in host byte order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if sys.byteorder == "big":
        words = raw
    family = socket.AF_INET if len(words) == 4 else socket.AF_INET6
    ip = normalise_ip(socket.inet_ntop(family, words))
    return ip, int(hex_port, 16)


def peer_owner(peer: Any, local: Any) -> int | None:
    """The user id owning the client end of a loopback connection ``peer`` -> ``local``.

    Linux only, from /proc/net/tcp and /proc/net/tcp6: the row whose local
    address is the peer's and whose remote address is ours names its owner.
    None where that cannot be told: another system, or a client socket that
    is already closed (the kernel keeps no owner for it).
    """
    want_local = (normalise_ip(str(peer[0])), int(peer[1]))
    want_remote = (normalise_ip(str(local[0])), int(local[1]))
    for table in _PROC_TABLES:
        try:
            with open(table, encoding="ascii") as rows:
                next(rows, None)
                for row in rows:
                    fields = row.split()
                    if len(fields) < 10:
                        continue
                    try:
                        if (
                            _proc_address(fields[1]) == want_local
                            and _proc_address(fields[2]) == want_remote
                        ):
                            # inode 0: a socket in TIME_WAIT, which has no owner left.
                            return int(fields[7]) if fields[9] != "0" else None
                    except ValueError:
                        continue
        except OSError:
            continue
    return None


def _ignore_data(data: bytes) -> None:
    pass


def _ignore() -> None:
    pass


def _ignore_lost(exc: Exception | None) -> None:
    pass


class Accepted(asyncio.Protocol):
    """An accepted client connection; it hands its events to whichever link serves it.

    After :meth:`begin_tls`, ``transport`` is the TLS layer over the socket,
    and the events handed on are the plaintext inside TLS.
    """

    def __init__(self, handler: Handler, target: str) -> None:
        self.handler = handler
        self.target = target
        self.transport: asyncio.Transport | None = None
        #: TLS with the client, once it began (the client's ClientHello came).
        self.tls: TlsLayer | None = None
        self._hello: bytearray | None = None  # raw bytes while a ClientHello arrives
        self._chosen = False  # the ClientHello is whole and its context being chosen
        self._choose: Choose
        self._tls_start: _TlsStart | None = None
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
        if self.tls is not None:
            self.tls.feed(data)
        elif self._hello is not None:
            self._hello += data
            if len(self._hello) > 2 * MAX_HELLO:
                # A client does not send more before it is answered; this one is not TLS.
                self._tls_failed(f"the client sent {len(self._hello)} bytes and no TLS handshake")
                return
            self._check_hello()
        else:
            self.on_data(data)

    def eof_received(self) -> bool:
        if self.tls is not None:
            self.tls.feed_eof()
        elif self._hello is not None:
            self._tls_failed("the client closed the connection before its TLS handshake")
        else:
            self.on_eof()
        return True  # half-closed connections stay open for the other direction

    # -- TLS with the client ------------------------------------------------------

    def begin_tls(
        self, pending: bytes, *, choose: Choose, on_ready: OnReady, on_failed: OnFailed
    ) -> None:
        """Answer the client's TLS handshake, whose first bytes are ``pending``.

        Once the whole ClientHello is here, ``choose`` is called with it and
        a function to call with the context to answer it (a certificate for
        the name it asks for), now or later: the recording proxy first
        agrees on a protocol with the real server.  That function returns
        the TLS layer, which is this connection's transport from then on.
        ``on_ready`` follows the handshake; ``on_failed`` gets why TLS failed
        (the connection is then the caller's to end).
        """
        if self.tls is not None or self._hello is not None:
            return
        self._tls_start = _TlsStart(on_ready, on_failed)
        self._hello = bytearray(pending)
        self._choose = choose
        self._check_hello()

    def _check_hello(self) -> None:
        assert self._hello is not None and self._tls_start is not None
        if self._chosen:
            return  # the ClientHello is whole; waiting for its context
        raw = bytes(self._hello)
        found = read_client_hello(raw)
        if found is NEED_MORE:
            return
        if found is None:
            self._tls_failed(f"the client sent no TLS handshake but {show_bytes(raw)}")
            return
        self._chosen = True
        start = self._tls_start
        hello = found

        def proceed(context: ssl.SSLContext) -> TlsLayer:
            assert self.transport is not None and self._hello is not None
            held, self._hello = bytes(self._hello), None
            self.tls = layer = TlsLayer(
                self.transport,
                context,
                server_side=True,
                on_ready=lambda: start.on_ready(hello, layer),
                on_data=lambda data: self.on_data(data),
                on_eof=lambda: self.on_eof(),
                on_failed=lambda exc: self._tls_failed(describe_failure(exc, server_side=True)),
            )
            self.transport = layer
            layer.feed(held)
            return layer

        try:
            self._choose(hello, proceed)
        except CassetteError as exc:
            self._tls_failed(str(exc))

    def _tls_failed(self, reason: str) -> None:
        self._hello = None
        start, self._tls_start = self._tls_start, None
        if start is not None:
            start.on_failed(reason)

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_lost(exc)

    def pause_writing(self) -> None:
        self.on_pause()

    def resume_writing(self) -> None:
        self.on_resume()


class _TlsStart:
    __slots__ = ("on_failed", "on_ready")

    def __init__(self, on_ready: OnReady, on_failed: Callable[[str], None]) -> None:
        self.on_ready, self.on_failed = on_ready, on_failed


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
