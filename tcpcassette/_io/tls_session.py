"""A session's TLS: the clients' own contexts, and the contexts each side is answered with.

While a cassette is in use, every client-side ``SSLContext`` that wraps a
connection is shown to :meth:`TlsGlue.client_context`: it is made to trust
tcpcassette's test CA too (nothing else about it changes), and it is kept
by the name the client asked for, so that the recording proxy reaches the
real server with the client's own trust, host name check and certificate.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import threading
import weakref
from collections.abc import Callable

from .._core.errors import CassetteError
from .._core.targets import parse_target
from .._core.tls_hello import ClientHello
from .accepted import Accepted
from .tls import Choose, OnFailed, OnReady, TlsUnavailableError, authority, names_for


class TlsGlue:
    """The TLS half of one session.

    Args:
        name: the cassette, for messages.
        upstream_ca: a CA file the recording proxy trusts for real servers,
            for clients whose context it cannot see (None: the system's).
        report: where errors go (the session's error sink).
        handshake_timeout: the longest wait for a real server's handshake.
    """

    def __init__(
        self,
        name: str,
        *,
        upstream_ca: str | os.PathLike[str] | None,
        report: Callable[[CassetteError], None],
        handshake_timeout: float,
    ) -> None:
        self.name = name
        self.handshake_timeout = handshake_timeout
        self.upstream_ca = upstream_ca
        self._report = report
        self._lock = threading.Lock()
        # The newest client context by the server name it asked for.
        self._by_name: dict[str, weakref.ref[ssl.SSLContext]] = {}

    # -- the clients' own contexts (client threads) ---------------------------------

    def client_context(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """A client is about to begin TLS with ``context``."""
        if server_hostname:
            with self._lock:
                self._by_name[server_hostname.lower()] = weakref.ref(context)
        if context.verify_mode != ssl.CERT_NONE:
            with contextlib.suppress(TlsUnavailableError):  # said when a handshake comes
                authority().trust(context)

    # -- recording ------------------------------------------------------------------------

    def upstream(self, hello: ClientHello, target: str) -> tuple[ssl.SSLContext, str | None]:
        """How the proxy reaches the real server: the client's own context where known."""
        host = _host_of(target)
        name = hello.sni or host
        with self._lock:
            found = self._by_name.get(name.lower())
        context = found() if found is not None else None
        if context is None:
            context = ssl.create_default_context(
                cafile=os.fspath(self.upstream_ca) if self.upstream_ca is not None else None
            )
            if hello.alpn:
                context.set_alpn_protocols([p for p in hello.alpn if p.isascii()])
        return context, name

    def answer(self, hello: ClientHello, target: str, alpn: str) -> ssl.SSLContext:
        """The context that answers the client: a test certificate for what it asked."""
        return authority().server_context(names_for(hello.sni, _host_of(target)), alpn)

    def proxy_hooks(self, connection: Accepted, describe: str) -> _ProxyHooks:
        return _ProxyHooks(self, connection, describe)

    def fail(self, describe: str, message: str) -> None:
        self._report(CassetteError(f"{self.name}: {describe}: {message}"))


def _host_of(target: str) -> str:
    try:
        return parse_target(target)[0]
    except CassetteError:
        return target  # a target name: the client's SNI says more


class _ProxyHooks:
    """:class:`~tcpcassette._io.proxy.TlsHooks` for one recorded connection."""

    def __init__(self, glue: TlsGlue, connection: Accepted, describe: str) -> None:
        self._glue = glue
        self._connection = connection
        self._describe = describe

    def begin_client(
        self, pending: bytes, *, choose: Choose, on_ready: OnReady, on_failed: OnFailed
    ) -> None:
        self._connection.begin_tls(pending, choose=choose, on_ready=on_ready, on_failed=on_failed)

    def upstream(self, hello: ClientHello) -> tuple[ssl.SSLContext, str | None]:
        return self._glue.upstream(hello, self._connection.target)

    def answer(self, hello: ClientHello, alpn: str) -> ssl.SSLContext:
        return self._glue.answer(hello, self._connection.target, alpn)

    def failed(self, message: str) -> None:
        self._glue.fail(self._describe, message)

    @property
    def handshake_timeout(self) -> float:
        return self._glue.handshake_timeout
