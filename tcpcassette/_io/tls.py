"""TLS on intercepted connections: tcpcassette's test CA, and TLS over a transport.

The recording proxy and the replay server end the client's TLS themselves,
with a certificate for the name the client asked for, signed by a test CA
made in this process; the proxy opens its own TLS connection to the real
server.  So the cassette holds the plaintext, and replay needs no key but
one made anew in every run.

The CA comes from ``trustme`` (the ``tls`` extra).  Its key lives only in
this process's memory; :attr:`Authority.ca_file` holds the CA's certificate
alone, for clients that read trust from a file (libpq's ``sslrootcert``,
``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``).

:class:`TlsLayer` runs TLS through memory buffers over an asyncio transport
that is already connected, so a handshake can begin in the middle of a
connection (after SMTP's ``STARTTLS`` or PostgreSQL's ``SSLRequest``) and
with bytes that were read before anyone knew they were a ClientHello.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ssl
import tempfile
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._core.errors import CassetteError
from .._core.tls_hello import ClientHello

#: Plaintext read from the TLS object per call.
READ_SIZE = 256 * 1024


#: Given a whole ClientHello and the function that answers it with a server
#: context (now or later), which returns the TLS layer it made.
Choose = Callable[[ClientHello, Callable[[ssl.SSLContext], "TlsLayer"]], object]
#: Called once the client's handshake is done.
OnReady = Callable[[ClientHello, "TlsLayer"], None]
#: Called with why TLS failed.
OnFailed = Callable[[str], None]


class TlsUnavailableError(CassetteError):
    """TLS was needed, but the ``tls`` extra (trustme) is not installed."""


def _trustme() -> Any:
    try:
        import trustme
    except ImportError:
        raise TlsUnavailableError(
            "a client began TLS on an intercepted connection, and recording or replaying "
            "TLS needs the tls extra: pip install 'tcpcassette[tls]'"
        ) from None
    return trustme


class Authority:
    """This process's test CA: server certificates on demand, and trust for clients."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ca: Any = None
        self._pem = b""
        self._file: Path | None = None
        self._contexts: dict[tuple[tuple[str, ...], str], ssl.SSLContext] = {}
        self._trusting: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()

    def _made(self) -> Any:
        if self._ca is None:
            self._ca = _trustme().CA(organization_name="tcpcassette test CA")
            self._pem = self._ca.cert_pem.bytes()
        return self._ca

    @property
    def ca_pem(self) -> bytes:
        """The CA's certificate, PEM-encoded (no key)."""
        with self._lock:
            self._made()
            return self._pem

    @property
    def ca_file(self) -> Path:
        """A file holding the CA's certificate (never its key), in a folder of this
        user's own; removed when the process ends."""
        with self._lock:
            self._made()
            if self._file is None or not self._file.exists():
                folder = Path(tempfile.mkdtemp(prefix="tcpcassette-ca-"))  # mode 0700
                path = folder / "ca.pem"
                path.write_bytes(self._pem)
                if self._file is None:
                    atexit.register(self.forget_files)
                self._file = path
            return self._file

    def server_context(self, names: tuple[str, ...], alpn: str) -> ssl.SSLContext:
        """A server context with a certificate for ``names``, agreeing on ``alpn`` ("": none)."""
        key = (names, alpn)
        with self._lock:
            context = self._contexts.get(key)
            if context is None:
                ca = self._made()
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ca.issue_cert(*names).configure_cert(context)
                if alpn:
                    context.set_alpn_protocols([alpn])
                self._contexts[key] = context
            return context

    def trust(self, context: ssl.SSLContext) -> None:
        """Make a client's ``context`` also trust this CA (once; nothing else changes)."""
        with self._lock:
            if context in self._trusting:
                return
            self._made()
            self._trusting.add(context)
            pem = self._pem
        context.load_verify_locations(cadata=pem.decode("ascii"))

    def forget_files(self) -> None:
        """Remove the CA file (the process is leaving)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.unlink()
                self._file.parent.rmdir()


_authority: Authority | None = None
_authority_lock = threading.Lock()


def authority() -> Authority:
    """The process's test CA (made on first use; a forked child keeps its parent's)."""
    global _authority
    with _authority_lock:
        if _authority is None:
            _authority = Authority()
        return _authority


def names_for(sni: str, host: str) -> tuple[str, ...]:
    """The names a certificate holds for a client that asked for ``sni`` and dialled ``host``."""
    names = [n for n in (sni, host) if n]
    if not sni:  # no name asked for: a client pointed at the listener's own address
        names += ["127.0.0.1", "::1"]
    return tuple(dict.fromkeys(names))


def describe_failure(exc: BaseException, *, server_side: bool) -> str:
    """Why a handshake failed, in words that say what to do."""
    text = str(exc) or type(exc).__name__
    lowered = f"{text} {getattr(exc, 'reason', '')}".lower().replace("_", " ")
    if server_side:
        if (
            "unknown ca" in lowered
            or "bad certificate" in lowered
            or "certificate unknown" in lowered
        ):
            return (
                f"the client refused tcpcassette's certificate ({text}): it does not trust "
                "tcpcassette's test CA. Python clients are set up inside use_cassette; give "
                "other clients cassette.ca_file (libpq sslrootcert=, SSL_CERT_FILE=, "
                "REQUESTS_CA_BUNDLE=, grpc root_certificates=). A client that pins the "
                "server's certificate or key cannot be recorded or replayed through TLS."
            )
        return f"the TLS handshake with the client failed ({text})"
    if "certificate required" in lowered or "handshake failure" in lowered:
        return (
            f"the real server refused the handshake ({text}): it may ask for a client "
            "certificate (mutual TLS), which tcpcassette presents only for Python clients "
            "whose SSLContext it sees. Record such a client with the certificate loaded into "
            "that context, or without mutual TLS."
        )
    if "verify failed" in lowered:
        return (
            f"the real server's certificate failed verification ({text}); tcpcassette checks "
            "it as the client would. For a client tcpcassette cannot see into (libpq, grpcio, "
            "a subprocess), pass upstream_ca= the CA file the real server's certificate "
            "comes from."
        )
    return f"the TLS handshake with the real server failed ({text})"


class TlsLayer(asyncio.Transport):
    """TLS over one side of a connected asyncio transport, through memory buffers.

    It offers what the links use of a transport (``write``, ``write_eof``,
    ``close``, ``abort``, reading pauses, ``get_extra_info``), so a link
    swaps its transport for the layer when TLS begins.  The raw transport's
    protocol hands it every chunk with :meth:`feed` and the FIN with
    :meth:`feed_eof`.

    Args:
        raw: the connected transport.
        context: the TLS context (a server context for the client's side).
        server_side: this end answers the handshake.
        server_hostname: the name to ask for and check (client side only).
        on_ready: the handshake is complete.
        on_data: plaintext arrived.
        on_eof: the peer ended its TLS (close_notify) or its TCP half.
        on_failed: the handshake or the TLS stream failed; the layer stops.
    """

    def __init__(
        self,
        raw: asyncio.Transport,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
        on_ready: Callable[[], None],
        on_data: Callable[[bytes], None],
        on_eof: Callable[[], None],
        on_failed: Callable[[BaseException], None],
    ) -> None:
        super().__init__()
        self.raw = raw
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._in, self._out, server_side=server_side, server_hostname=server_hostname
        )
        self.server_side = server_side
        self._on_ready = on_ready
        self._on_data = on_data
        self._on_eof = on_eof
        self._on_failed = on_failed
        self.ready = False
        self._failed = False
        self._eof_told = False
        self._sent_eof = False
        self._raw_eof = False  # the socket's sending half is closed: nothing more goes out
        self._paused = False
        self._waiting: list[bytes] = []  # plaintext written before the handshake ended

    # -- what the raw transport's protocol hands over ---------------------------------

    def feed(self, data: bytes) -> None:
        if data:
            self._in.write(data)
        self._pump()

    def feed_eof(self) -> None:
        self._in.write_eof()
        self._pump()
        if not self.ready and not self._failed:
            self._fail(ConnectionResetError("the peer closed the connection during the handshake"))
        else:
            self._tell_eof()

    # -- the transport the links use -------------------------------------------------------

    @property
    def selected_alpn(self) -> str:
        return self._tls.selected_alpn_protocol() or ""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._failed or self._sent_eof:
            return
        if not self.ready:
            self._waiting.append(bytes(data))
            return
        try:
            self._tls.write(data)
        except ssl.SSLError as exc:
            if self._eof_told:
                # The peer ended without close_notify (grpcio does), and OpenSSL
                # writes no more after that: the peer reads no more either, so the
                # bytes are dropped, as a closed socket drops them, not reported.
                return
            self._fail(exc)
            return
        self._flush()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """close_notify, then the TCP FIN: how a TLS server ends its side."""
        if self._sent_eof or self._failed:
            return
        self._sent_eof = True
        if self.ready:
            with contextlib.suppress(ssl.SSLError):
                self._tls.unwrap()
            self._flush()
        if self.raw.can_write_eof():
            self._raw_eof = True
            self.raw.write_eof()

    def close(self) -> None:
        if self.ready and not self._sent_eof and not self._failed:
            self._sent_eof = True
            with contextlib.suppress(ssl.SSLError):
                self._tls.unwrap()
            self._flush()
        self.raw.close()

    def abort(self) -> None:
        self.raw.abort()

    def is_closing(self) -> bool:
        return self.raw.is_closing()

    def pause_reading(self) -> None:
        self._paused = True
        self.raw.pause_reading()

    def resume_reading(self) -> None:
        self._paused = False
        self.raw.resume_reading()
        self._pump()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._tls
        return self.raw.get_extra_info(name, default)

    # -- inside ---------------------------------------------------------------------

    def _pump(self) -> None:
        if self._failed:
            return
        if not self.ready:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                return
            except (ssl.SSLError, ssl.CertificateError) as exc:
                self._flush()
                self._fail(exc)
                return
            self.ready = True
            self._flush()
            self._on_ready()
            waiting, self._waiting = self._waiting, []
            for data in waiting:
                self.write(data)
        while not self._paused and not self._failed and not self._eof_told:
            try:
                data = self._tls.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self._tell_eof()
                break
            except ssl.SSLError as exc:
                self._fail(exc)
                break
            if not data:
                self._tell_eof()
                break
            self._on_data(data)
        self._flush()

    def _tell_eof(self) -> None:
        if not self._eof_told and not self._failed:
            self._eof_told = True
            self._on_eof()

    def _flush(self) -> None:
        pending = self._out.read()
        if pending and not self.raw.is_closing() and not self._raw_eof:
            self.raw.write(pending)

    def _fail(self, exc: BaseException) -> None:
        if self.ready and self._sent_eof:
            # This side has ended its TLS already: what the peer complains of now
            # (an alert in answer to the close) ends the stream, it fails nothing.
            self._tell_eof()
            return
        if not self._failed:
            self._failed = True
            self._on_failed(exc)
