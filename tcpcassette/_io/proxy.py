"""The recording proxy: forwards a client to the real server and notes every chunk.

It runs on the private loop.  Each chunk read from either side is forwarded
at once and appended to the connection's recording as it was read, so chunk
boundaries, half-closes and resets reach the other side as they happened.
The hot path appends a plain tuple per chunk; events are built only when the
recording is saved.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Protocol

from .._core.connection import Connection
from .._core.errors import CassetteError
from .._core.events import (
    ClientClose,
    ClientData,
    ClientReset,
    Event,
    ServerClose,
    ServerData,
    ServerReset,
    TlsStart,
)
from .._core.protocols import refusal
from .._core.tls_hello import ClientHello, starts_client_hello
from .tls import Choose, OnFailed, OnReady, TlsLayer, describe_failure
from .wire import reset_transport, set_nodelay

#: Client bytes that must be present before a chunk is taken for the start
#: of a TLS handshake: the record header and the handshake type.
_HELLO_PREFIX = 6
#: Events of a TLS connection its protocol is shown when the link ends, to tell
#: whether the server refused what tcpcassette's TLS broke (a login: it is early).
_REFUSAL_EVENTS = 96


class TlsHooks(Protocol):
    """What the proxy needs from the session to carry a client's TLS through."""

    def begin_client(
        self, pending: bytes, *, choose: Choose, on_ready: OnReady, on_failed: OnFailed
    ) -> None:
        """Answer the client's handshake (see ``Accepted.begin_tls``)."""
        ...

    def upstream(self, hello: ClientHello) -> tuple[ssl.SSLContext, str | None]:
        """The context and server name to reach the real server with, as the client would."""
        ...

    def answer(self, hello: ClientHello, alpn: str) -> ssl.SSLContext:
        """The context to answer the client with: a test certificate, ``alpn`` agreed."""
        ...

    def failed(self, message: str) -> None:
        """Report that TLS failed on this connection, or that the server refused
        what ending the client's TLS broke."""
        ...

    @property
    def handshake_timeout(self) -> float:
        """The longest wait for the real server's handshake, in seconds."""
        ...


class Recording:
    """The events of one connection as it is recorded."""

    __slots__ = ("_entries", "_tls", "ordinal", "started", "target")

    def __init__(self, target: str, ordinal: int, start: float) -> None:
        self.target = target
        self.ordinal = ordinal  # order of the connect, for the cassette's order
        self.started = start
        self._entries: list[tuple[type[Event], float, bytes]] = []
        self._tls: dict[int, tuple[str, str]] = {}  # entry number -> (SNI, ALPN) where TLS began

    def add(self, kind: type[Event], now: float, data: bytes = b"") -> None:
        self._entries.append((kind, now - self.started, data))

    def add_tls(self, now: float, sni: str, alpn: str) -> None:
        self._tls[len(self._entries)] = (sni, alpn)
        self._entries.append((TlsStart, now - self.started, b""))

    def byte_count(self, *, client: bool) -> int:
        """Bytes recorded so far from the client (or from the server)."""
        kind = ClientData if client else ServerData
        return sum(len(data) for k, _, data in list(self._entries) if k is kind)

    def to_connection(self, origin: float, *, limit: int | None = None) -> Connection:
        """The recorded connection; ``origin`` is when the recording began (loop time).
        With ``limit``, only its first ``limit`` events."""
        events: list[Event] = []
        for number, (kind, offset, data) in enumerate(self._entries[:limit]):
            time = round(offset, 6)  # microseconds: finer than the loop's clock is worth
            if kind is ClientData or kind is ServerData:
                events.append(kind(data=data, time=time))
            elif kind is TlsStart:
                sni, alpn = self._tls[number]
                events.append(TlsStart(time=time, sni=sni, alpn=alpn))
            else:
                events.append(kind(time=time))
        start = round(max(0.0, self.started - origin), 6)
        return Connection(target=self.target, events=tuple(events), start=start)


class ProxyLink:
    """One client connection forwarded to its real server and recorded."""

    def __init__(
        self,
        client: asyncio.Transport,
        recording: Recording,
        *,
        on_done: Callable[[ProxyLink], None],
        tls: TlsHooks | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.client = client
        self.recording = recording
        self._server: asyncio.Transport | None = None
        self._raw_server: asyncio.Transport | None = None
        self._tls_hooks = tls
        #: TLS with the real server, once the client began TLS.
        self.server_tls: TlsLayer | None = None
        self._tls_began = False
        self._hello_waiting: tuple[ClientHello, Callable[[ssl.SSLContext], TlsLayer]] | None = None
        self._hello_time = 0.0
        self._queued: list[bytes] = []  # client bytes that arrived before the upstream
        self._client_eof = False
        self._server_eof = False
        self._done = False
        self._on_done = on_done
        #: Resolved once the link is over, however it ended.
        self.finished: asyncio.Future[None] = self._loop.create_future()
        set_nodelay(client)

    # -- the upstream side --------------------------------------------------

    def attach(self, server: asyncio.Transport) -> None:
        """The connection to the real server is ready: send what was queued."""
        self._server = self._raw_server = server
        set_nodelay(server)
        for chunk in self._queued:
            server.write(chunk)
        self._queued.clear()
        if self._hello_waiting is not None:
            hello, proceed = self._hello_waiting
            self._hello_waiting = None
            self._upstream_tls(hello, proceed)
        if self._client_eof and server.can_write_eof():
            server.write_eof()
        if not self._done:
            self.client.resume_reading()

    def server_data(self, data: bytes) -> None:
        self.recording.add(ServerData, self._loop.time(), data)
        self.client.write(data)

    def server_eof(self) -> None:
        self.recording.add(ServerClose, self._loop.time())
        self._server_eof = True
        if self.client.can_write_eof():
            self.client.write_eof()
        self._maybe_finish()

    def server_lost(self, exc: Exception | None) -> None:
        if self._done:
            return
        if exc is not None or not self._server_eof:
            self.recording.add(ServerReset, self._loop.time())
            self._finish(reset_client=True)
        else:
            self._maybe_finish()

    # -- the client side --------------------------------------------------

    def client_data(self, data: bytes) -> None:
        if (
            not self._tls_began
            and self._tls_hooks is not None
            and len(data) >= _HELLO_PREFIX
            and data[0] == 0x16  # a TLS handshake record; anything else costs one compare
            and starts_client_hello(data)
        ):
            self._begin_tls(data)
            return
        self.recording.add(ClientData, self._loop.time(), data)
        if self._server is not None:
            self._server.write(data)
        else:
            self._queued.append(data)
            self.client.pause_reading()

    def client_eof(self) -> None:
        self.recording.add(ClientClose, self._loop.time())
        self._client_eof = True
        if self._server is not None and self._server.can_write_eof():
            self._server.write_eof()
        self._maybe_finish()

    def client_lost(self, exc: Exception | None) -> None:
        if self._done:
            return
        if exc is not None or not self._client_eof:
            self.recording.add(ClientReset, self._loop.time())
            self._finish(reset_server=True)
        else:
            self._maybe_finish()

    # -- TLS: the client's ended here, the real server's begun here ------------

    def _begin_tls(self, data: bytes) -> None:
        assert self._tls_hooks is not None
        self._tls_began = True
        self._hello_time = self._loop.time()
        # Reading goes on: the connection keeps the handshake's bytes until
        # the real server's handshake says how to answer them.
        self._tls_hooks.begin_client(
            data, choose=self._hello_came, on_ready=self._client_ready, on_failed=self._tls_failed
        )

    def _hello_came(
        self, hello: ClientHello, proceed: Callable[[ssl.SSLContext], TlsLayer]
    ) -> None:
        if self._raw_server is None:
            self._hello_waiting = (hello, proceed)  # the real server is still being reached
        else:
            self._upstream_tls(hello, proceed)

    def _upstream_tls(
        self, hello: ClientHello, proceed: Callable[[ssl.SSLContext], TlsLayer]
    ) -> None:
        assert self._tls_hooks is not None and self._raw_server is not None
        hooks = self._tls_hooks
        context, name = hooks.upstream(hello)

        def ready() -> None:
            alpn = layer.selected_alpn
            self.recording.add_tls(self._hello_time, hello.sni, alpn)
            try:
                answer = hooks.answer(hello, alpn)
            except CassetteError as exc:  # no certificate could be made (no tls extra)
                self._tls_failed(str(exc))
                return
            self.client = proceed(answer)

        def failed(exc: BaseException) -> None:
            self._tls_failed(describe_failure(exc, server_side=False))

        layer = TlsLayer(
            self._raw_server,
            context,
            server_side=False,
            server_hostname=name,
            on_ready=ready,
            on_data=self.server_data,
            on_eof=self.server_eof,
            on_failed=failed,
        )
        self.server_tls = self._server = layer
        layer.feed(b"")  # sends the ClientHello
        bound = hooks.handshake_timeout

        def too_slow() -> None:
            if not layer.ready:
                self._tls_failed(
                    f"the real server did not complete its TLS handshake within {bound:g} s "
                    "(connect_timeout); is it a TLS server?"
                )

        self._loop.call_later(bound, too_slow)

    def _client_ready(self, hello: ClientHello, layer: TlsLayer) -> None:
        pass  # the plaintext inside comes through client_data like any other

    def _tls_failed(self, message: str) -> None:
        if self._done:
            return
        assert self._tls_hooks is not None
        self._tls_hooks.failed(message)
        self._finish(reset_client=True, reset_server=True)

    # -- flow control: a slow reader slows the writer ------------------------

    def pause_client_reading(self) -> None:
        self.client.pause_reading()

    def resume_client_reading(self) -> None:
        if not self._done:
            self.client.resume_reading()

    def pause_server_reading(self) -> None:
        if self._server is not None:
            self._server.pause_reading()

    def resume_server_reading(self) -> None:
        if self._server is not None and not self._done:
            self._server.resume_reading()

    # -- ending ---------------------------------------------------------------

    @property
    def half_open(self) -> bool:
        """One side has closed and the other has not yet."""
        return not self._done and (self._client_eof or self._server_eof)

    def _maybe_finish(self) -> None:
        if self._client_eof and self._server_eof:
            self._finish()

    def _finish(self, *, reset_client: bool = False, reset_server: bool = False) -> None:
        if self._done:
            return
        self._done = True
        if reset_client:
            reset_transport(self.client)
        else:
            self.client.close()
        if self._server is not None:
            if reset_server:
                reset_transport(self._server)
            else:
                self._server.close()
        self._done_now()

    def _done_now(self) -> None:
        if self.server_tls is not None and self._tls_hooks is not None:
            # The real server may have refused what ending the client's TLS broke;
            # the protocol tells, from the recording's opening (pure, once per link).
            opening = self.recording.to_connection(self.recording.started, limit=_REFUSAL_EVENTS)
            problem = refusal(opening)
            if problem is not None:
                self._tls_hooks.failed(problem)
        if not self.finished.done():
            self.finished.set_result(None)
        self._on_done(self)

    def close(self) -> None:
        """End the link in order, recording nothing more (the cassette is leaving)."""
        if not self._done:
            self._done = True
            self.client.close()
            if self._server is not None:
                self._server.close()
            self._done_now()

    def fail_upstream(self) -> None:
        """The real server could not be reached after the client connected: reset it."""
        if not self._done:
            self._done = True
            reset_transport(self.client)
            self._done_now()


class UpstreamProtocol(asyncio.Protocol):
    """The proxy's connection to the real server."""

    def __init__(self, link: ProxyLink) -> None:
        self._link = link

    def data_received(self, data: bytes) -> None:
        tls = self._link.server_tls
        if tls is not None:
            tls.feed(data)
        else:
            self._link.server_data(data)

    def eof_received(self) -> bool:
        tls = self._link.server_tls
        if tls is not None:
            tls.feed_eof()
        else:
            self._link.server_eof()
        return True  # keep the half-open connection: the client may still send

    def connection_lost(self, exc: Exception | None) -> None:
        self._link.server_lost(exc)

    def pause_writing(self) -> None:
        self._link.pause_client_reading()

    def resume_writing(self) -> None:
        self._link.resume_client_reading()
