"""Real servers speaking TLS, with certificates from a test CA, on ephemeral loopback ports.

The CA stands for the real world's: the one a client trusts to reach the
real server.  :func:`make_ca` makes one with ``trustme`` and writes its
certificate where clients can load it; each server below takes the
``trustme.CA`` and issues its own certificate for every name a test may dial
(``localhost``, ``127.0.0.1`` and ``::1``), so a client with verification on
(host names checked too) accepts the server, and a client that trusts only
its defaults refuses it.

Every server is a context manager, stopped on leaving the block, and has
``port`` and ``stop()`` as the plain servers in :mod:`tests.realservers` do:

- :class:`HttpsServer`: cheroot's WSGI server with its builtin ssl adapter,
  serving :func:`tests.realservers.wsgi_app` (HTTP/1.1);
- :class:`TlsRedisServer`: Debian's redis-server on its TLS port only;
- :class:`StarttlsSmtpServer`: aiosmtpd refusing mail until STARTTLS;
- :class:`LineServer`: an asyncio TLS server with a tiny line protocol;
- :class:`TlsPostgresServer`: PostgreSQL with ``ssl=on``;
- :class:`GrpcTlsServer`: grpcio over TLS, HTTP/2 chosen by ALPN (``h2``),
  which also answers plain HTTP/2 clients such as httpx's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .realservers import (
    START_TIMEOUT,
    RedisServer,
    SmtpServer,
    missing,
    server_binary,
    wsgi_app,
)
from .realservers_postgres import PostgresServer

if TYPE_CHECKING:
    import trustme

#: Every name a test may dial; each server's certificate names them all.
SERVER_NAMES = ("localhost", "127.0.0.1", "::1")

_S = TypeVar("_S", bound="_Stoppable")


class _Stoppable:
    """A server stopped on leaving its ``with`` block."""

    port: int

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# -- The CA ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorldCA:
    """A CA standing for the real world's, and the file holding its certificate in PEM."""

    ca: trustme.CA
    path: Path

    @property
    def pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting this CA only, verifying as ``ssl`` does by default."""
        return ssl.create_default_context(cafile=str(self.path))


def make_ca(directory: Path, name: str = "ca.pem") -> WorldCA:
    """A new CA, its certificate written to ``directory / name`` for clients to trust."""
    try:
        import trustme
    except ImportError:
        missing("trustme (pip install -e '.[test]')")
    ca = trustme.CA()
    path = directory / name
    ca.cert_pem.write_to_path(str(path))
    return WorldCA(ca, path)


def issue(ca: trustme.CA) -> trustme.LeafCert:
    """A server certificate for every name in :data:`SERVER_NAMES`."""
    return ca.issue_cert(*SERVER_NAMES)


def write_server_files(
    ca: trustme.CA, directory: Path, *, owner: tuple[int, int] | None = None
) -> tuple[Path, Path]:
    """Write a new server certificate (with its chain) and its key into ``directory``;
    both mode 0600, owned by ``owner`` (uid, gid) when given.  Returns (cert, key)."""
    leaf = issue(ca)
    cert, key = directory / "server.crt", directory / "server.key"
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    for path, data in ((cert, chain), (key, leaf.private_key_pem.bytes())):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        if owner is not None:
            os.chown(path, *owner)
    return cert, key


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server-side context holding a new certificate from ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issue(ca).configure_cert(context)
    return context


def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="tcpcassette-tls-"))


# -- HTTPS: cheroot -----------------------------------------------------------------------


class HttpsServer(_Stoppable):
    """cheroot's WSGI server over TLS (its builtin adapter) in a thread, serving ``app``.

    What cheroot would print to stderr goes to ``log`` instead.
    """

    def __init__(self, ca: trustme.CA, app: Callable[..., Iterable[bytes]] = wsgi_app) -> None:
        try:
            from cheroot import wsgi
            from cheroot.ssl.builtin import BuiltinSSLAdapter
        except ImportError:
            missing("cheroot (pip install -e '.[test]')")
        self.log: list[str] = []
        log = self.log

        class Quiet(wsgi.Server):
            """Keeps its complaints (a client refusing the certificate, say) in ``log``."""

            def error_log(self, msg: str = "", level: int = 20, traceback: bool = False) -> None:
                log.append(msg)

        self.dir = _scratch()
        cert, key = write_server_files(ca, self.dir)
        self.server = Quiet(("127.0.0.1", 0), app, numthreads=4)
        self.server.ssl_adapter = BuiltinSSLAdapter(str(cert), str(key))
        self.server.prepare()  # listening from here on
        self.port: int = self.server.bind_addr[1]
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.server.stop()
            self.thread.join(10)
            self.running = False
            shutil.rmtree(self.dir, ignore_errors=True)


# -- Redis over TLS ------------------------------------------------------------------------


_WITH_TLS = " with TLS"


class TlsRedisServer(RedisServer, _Stoppable):
    """Debian's redis-server listening on a TLS port only (``--port 0`` turns plain TCP off).

    Clients are not asked for certificates (``--tls-auth-clients no``).  As
    for :class:`~tests.realservers.RedisServer`, the port is offered and
    redis-server's log tells whether it got it.
    """

    def __init__(self, ca: trustme.CA) -> None:
        binary = server_binary("redis-server", "redis-server")
        self.dir = _scratch()
        cert, key = write_server_files(ca, self.dir)
        ca_file = self.dir / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))  # redis-server will not start without one
        tls = [
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(ca_file),
            "--tls-auth-clients",
            "no",
        ]
        try:
            self._start(
                binary, lambda port: ["--port", "0", "--tls-port", str(port), *tls], " with TLS"
            )
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- SMTP with STARTTLS: aiosmtpd ---------------------------------------------------------


class StarttlsSmtpServer(SmtpServer, _Stoppable):
    """aiosmtpd offering STARTTLS and refusing every mail command before it."""

    def __init__(self, ca: trustme.CA) -> None:
        super().__init__(tls_context=server_context(ca), require_starttls=True)


# -- A tiny line protocol over TLS: asyncio ------------------------------------------------


class LineServer(_Stoppable):
    """``asyncio.start_server`` over TLS in a thread of its own, answering line by line.

    The protocol: ``PING`` is answered ``PONG``, ``ECHO <text>`` with
    ``<text>``, ``QUIT`` with ``BYE`` (and the server closes), anything else
    with ``ERR unknown command``.  Lines end with ``\\n``.
    """

    def __init__(self, ca: trustme.CA, *, client_ca: trustme.CA | None = None) -> None:
        self.context = server_context(ca)
        if client_ca is not None:  # mutual TLS: a client without a certificate from it is refused
            self.context.verify_mode = ssl.CERT_REQUIRED
            client_ca.configure_trust(self.context)
        self.loop = asyncio.new_event_loop()
        self.writers: set[asyncio.StreamWriter] = set()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        started = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        try:
            self.server = started.result(START_TIMEOUT)
        except BaseException:
            self._stop_loop()
            raise
        self.port: int = self.server.sockets[0].getsockname()[1]
        self.running = True

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while line := await reader.readline():
                command, _, text = line.rstrip(b"\r\n").partition(b" ")
                if command == b"PING":
                    writer.write(b"PONG\n")
                elif command == b"ECHO":
                    writer.write(text + b"\n")
                elif command == b"QUIT":
                    writer.write(b"BYE\n")
                    break
                else:
                    writer.write(b"ERR unknown command\n")
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass  # the client went away mid-line: nothing to answer
        finally:
            self.writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def _close(self) -> None:
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await asyncio.wait_for(self.server.wait_closed(), START_TIMEOUT)

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def stop(self) -> None:
        if self.running:
            self.running = False
            asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(START_TIMEOUT)
            self._stop_loop()


# -- PostgreSQL with ssl=on ------------------------------------------------------------------


class TlsPostgresServer(PostgresServer, _Stoppable):
    """A throwaway PostgreSQL cluster with ``ssl=on``; plain connections are still allowed.

    The certificate and key go into the data directory, mode 0600 and owned
    by the user the server runs as, as PostgreSQL insists for the key.
    """

    def __init__(self, ca: trustme.CA, *, auth: str = "scram-sha-256") -> None:
        self.ca = ca
        super().__init__(auth=auth)

    def settings(self, data: Path) -> dict[str, str]:
        owner = None
        if self.user is not None:
            import pwd

            entry = pwd.getpwnam(self.user)
            owner = (entry.pw_uid, entry.pw_gid)
        cert, key = write_server_files(self.ca, data, owner=owner)
        return {"ssl": "on", "ssl_cert_file": cert.name, "ssl_key_file": key.name}


# -- HTTP/2 over TLS: grpcio ---------------------------------------------------------------

#: The gRPC service :class:`GrpcTlsServer` serves: ``/pkg.Svc/Call`` answers ``echo:<request>``.
GRPC_CALL = "/pkg.Svc/Call"


def grpc_frame(message: bytes) -> bytes:
    """A gRPC message as it travels in HTTP/2 DATA: uncompressed, its length in 4 bytes."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


class GrpcTlsServer(_Stoppable):
    """grpcio's server with ``grpc.ssl_server_credentials``: HTTP/2 over TLS, ALPN ``h2``.

    It serves ``/pkg.Svc/Call`` (bytes in, ``b"echo:" + request`` out), so
    a plain HTTP/2 client posting a gRPC frame gets one back too.
    """

    def __init__(self, ca: trustme.CA) -> None:
        try:
            import grpc  # type: ignore[import-untyped]
        except ImportError:
            missing("grpcio (pip install -e '.[test]')")

        def same(value: bytes) -> bytes:
            return value

        def call(request: bytes, context: Any) -> bytes:
            return b"echo:" + request

        leaf = issue(ca)
        chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        credentials = grpc.ssl_server_credentials([(leaf.private_key_pem.bytes(), chain)])
        self.executor = futures.ThreadPoolExecutor(max_workers=4)
        self.server = grpc.server(self.executor)
        handler = grpc.unary_unary_rpc_method_handler(
            call, request_deserializer=same, response_serializer=same
        )
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("pkg.Svc", {"Call": handler}),)
        )
        self.port: int = self.server.add_secure_port("127.0.0.1:0", credentials)
        self.server.start()  # listening once it returns
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.server.stop(None).wait(10)
            self.executor.shutdown(wait=False)
