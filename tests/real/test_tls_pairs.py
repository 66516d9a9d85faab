"""TLS pairs past HTTP/1.1: PostgreSQL after its SSLRequest, and HTTP/2 chosen by ALPN.

Each client verifies its server with verification on, as in production.
libpq and grpcio are C: tcpcassette cannot redirect their connects or set up
their trust, so they dial ``cassette.address(target)`` and verify against
``cassette.ca_file``, and the recording proxy verifies the real server
against ``upstream_ca=``.  httpx speaking HTTP/2 is Python: it is intercepted
and its own context is made to trust the test CA.

Every pair is recorded against a real TLS server from
``tests/realservers_tls.py``, then replayed in a fresh process with the
server stopped (the same client code: it reads ``cassette.ca_file`` again,
from that process's own CA), then replayed with a ``Reset()`` right after
the ``tls`` event.  What the client raises then is compared with what it
raises when a real TLS server resets the connection at that very point
(:class:`ResetAfterHandshake`).

libpq's SCRAM with channel binding cannot be recorded through the proxy, by
design; the recording says so in a ``CassetteError`` with what to do.  And a
client that ends without close_notify (grpcio does) is no TLS failure when
the server answers after that end.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc  # type: ignore[import-untyped]
import httpx
import psycopg
import pytest

import tcpcassette
from tcpcassette import CassetteError, ClientData, TlsStart

from ..realservers import START_TIMEOUT, in_fresh_process
from ..realservers_postgres import DATABASE, PASSWORD, USER
from ..realservers_tls import (
    GRPC_CALL,
    GrpcTlsServer,
    TlsPostgresServer,
    WorldCA,
    grpc_frame,
    make_ca,
    server_context,
)

pytestmark = pytest.mark.record

TIMEOUT = 5.0
#: Where the clients (here and in the replaying process) find the real servers' CA.
CA_VARIABLE = "TCPCASSETTE_TEST_WORLD_CA"
REPO = Path(__file__).resolve().parents[2]


class Where(Protocol):
    """What a client needs from the cassette: where to connect, and the CA to trust."""

    def address(self, target: str) -> tuple[str, int]: ...

    @property
    def ca_file(self) -> Path: ...


@dataclass(frozen=True)
class Direct:
    """A client's way to the real server itself, with no cassette: the world's CA."""

    ca_file: Path

    def address(self, target: str) -> tuple[str, int]:
        host, _, port = target.rpartition(":")
        return host, int(port)


def world_ca() -> str:
    return os.environ[CA_VARIABLE]


def port_of(target: str) -> int:
    return int(target.rpartition(":")[2])


# -- the clients, in their default configuration but for the trust they verify with -------


def psycopg_client(where: Where, target: str) -> list[Any]:
    """libpq with ``sslmode=verify-ca``, its defaults otherwise (``channel_binding=prefer``)."""
    host, port = where.address(target)
    with psycopg.connect(
        host=host,
        port=port,
        user=USER,
        password=PASSWORD,
        dbname=DATABASE,
        connect_timeout=int(TIMEOUT),
        sslmode="verify-ca",
        sslrootcert=str(where.ca_file),
    ) as conn:
        row = conn.execute("select 1 + 1").fetchone()
        return [conn.pgconn.ssl_in_use, row[0] if row else None]


def grpc_client(where: Where, target: str) -> list[Any]:
    """A grpcio secure channel trusting the CA it is given; the name checked is localhost."""
    host, port = where.address(target)
    credentials = grpc.ssl_channel_credentials(root_certificates=where.ca_file.read_bytes())
    options = [("grpc.ssl_target_name_override", "localhost")]
    with grpc.secure_channel(f"{host}:{port}", credentials, options=options) as channel:
        call = channel.unary_unary(GRPC_CALL, request_serializer=bytes, response_deserializer=bytes)
        answer: bytes = call(b"over h2", timeout=TIMEOUT)
        return [answer.decode()]


def httpx_h2_client(where: Where, target: str) -> list[Any]:
    """httpx with ``http2=True``, dialling the real server (intercepted, no address())."""
    context = ssl.create_default_context(cafile=world_ca())
    with httpx.Client(http2=True, verify=context, timeout=TIMEOUT) as client:
        reply = client.post(
            f"https://localhost:{port_of(target)}{GRPC_CALL}",
            content=grpc_frame(b"httpx"),
            headers={"content-type": "application/grpc", "te": "trailers"},
        )
        return [reply.http_version, reply.status_code, reply.content.hex()]


Client = Callable[[Where, str], list[Any]]


# -- replay in a fresh process, the client code unchanged ---------------------------------

_SCRIPT = textwrap.dedent(
    """\
    import importlib, json, sys
    source, repo, spec, name, cassette_dir, target, reset_after = sys.argv[1:]
    sys.path[:0] = [source, repo]
    import tcpcassette

    module, function = spec.split(":")
    client = getattr(importlib.import_module(module), function)
    faults = []
    if reset_after != "-":
        reset = tcpcassette.faults.Reset()
        faults.append(tcpcassette.at(reset, connection=0, after=int(reset_after)))

    def described(error):
        details = error.details() if hasattr(error, "details") else None
        types = [f"{c.__module__}.{c.__qualname__}" for c in type(error).__mro__]
        return {"types": types, "message": str(details or error)}

    out = {"result": None, "client_error": None, "cassette_error": None}
    try:
        with tcpcassette.use_cassette(
            name, record_mode="none", cassette_dir=cassette_dir, targets=[target], faults=faults
        ) as cassette:
            try:
                out["result"] = client(cassette, target)
            except Exception as error:
                out["client_error"] = described(error)
    except Exception as error:
        out["cassette_error"] = described(error)
    print(json.dumps(out))
    """
)


def replay_fresh(
    client: Client, name: str, directory: Path, target: str, reset_after: int | None = None
) -> dict[str, Any]:
    """Replay ``name`` in a new Python process, running ``client`` there."""
    source = Path(tcpcassette.__file__).resolve().parent.parent
    spec = f"{client.__module__}:{client.__name__}"
    after = "-" if reset_after is None else str(reset_after)
    args = (str(source), str(REPO), spec, name, str(directory), target, after)
    return in_fresh_process(_SCRIPT, *args)


def error_of(run: Callable[[], object]) -> dict[str, Any]:
    """What ``run`` raised, described as the fresh process describes it."""
    try:
        run()
    except Exception as error:
        details = error.details() if isinstance(error, grpc.RpcError) else None
        types = [f"{c.__module__}.{c.__qualname__}" for c in type(error).__mro__]
        return {"types": types, "message": str(details or error)}
    raise AssertionError(f"{run} raised nothing")


# -- a real TLS server that resets right after the handshake --------------------------------


class ResetAfterHandshake:
    """A TLS server that completes each handshake and then resets the connection (RST).

    With ``sslrequest``, each client first sends PostgreSQL's 8-byte
    ``SSLRequest`` and is answered ``S``, as a PostgreSQL server does.
    ``alpn`` is the protocol agreed, if the client offers it.
    """

    def __init__(self, world: WorldCA, *, sslrequest: bool = False, alpn: str = "") -> None:
        self.context = server_context(world.ca)
        if alpn:
            self.context.set_alpn_protocols([alpn])
        self.sslrequest = sslrequest
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.handshakes = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return  # stopped
            raw.settimeout(START_TIMEOUT)
            try:
                if self.sslrequest:
                    raw.recv(8)
                    raw.sendall(b"S")
                tls = self.context.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError):
                raw.close()
                continue
            self.handshakes += 1
            tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            tls.close()  # with a zero linger: RST, no close_notify

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not)
        self.listener.close()
        self.thread.join(START_TIMEOUT)


def real_reset(
    world: WorldCA, client: Client, *, sslrequest: bool = False, alpn: str = ""
) -> dict[str, Any]:
    """What ``client`` raises when a real TLS server resets right after the handshake."""
    server = ResetAfterHandshake(world, sslrequest=sslrequest, alpn=alpn)
    try:
        target = f"127.0.0.1:{server.port}"
        failed = error_of(lambda: client(Direct(world.path), target))
        assert server.handshakes >= 1  # the reset came after a handshake, not before
        return failed
    finally:
        server.stop()


# -- recording ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorldCA]:
    ca = make_ca(tmp_path_factory.mktemp("world"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CA_VARIABLE, str(ca.path))
        yield ca


@dataclass(frozen=True)
class Recorded:
    """A cassette recorded from a real server that is stopped now."""

    client: Client
    name: str
    directory: Path
    target: str

    @property
    def connection(self) -> tcpcassette.Connection:
        [connection] = tcpcassette.load(self.directory / f"{self.name}.msgpack").connections
        return connection

    @property
    def tls(self) -> TlsStart:
        [tls] = [e for e in self.connection.events if isinstance(e, TlsStart)]
        return tls

    @property
    def after_tls(self) -> int:
        """The number of events up to and including the ``tls`` event."""
        return self.connection.events.index(self.tls) + 1

    @property
    def sent(self) -> bytes:
        return b"".join(e.data for e in self.connection.events if type(e) is ClientData)


def record(
    client: Client, server: Any, name: str, directory: Path, world: WorldCA, expected: list[Any]
) -> Recorded:
    target = f"localhost:{server.port}"
    try:
        with tcpcassette.use_cassette(
            name,
            record_mode="all",
            cassette_dir=directory,
            targets=[target],
            upstream_ca=world.path,  # for the C clients, whose trust tcpcassette cannot see
        ) as cassette:
            assert client(cassette, target) == expected
    finally:
        server.stop()
    return Recorded(client, name, directory, target)


# -- PostgreSQL: psycopg (libpq) with sslmode=verify-ca ----------------------------------------

PSYCOPG_EXPECTED = [True, 2]
#: What libpq says when the server resets right after the handshake: which one
#: depends on whether it met the reset writing (then reads an end) or reading.
PSYCOPG_RESET = ("server closed the connection unexpectedly", "unexpected eof while reading")


@pytest.fixture(scope="module")
def psycopg_recorded(tmp_path_factory: pytest.TempPathFactory, world: WorldCA) -> Recorded:
    # md5: SCRAM over TLS would bind the login to the certificate libpq sees (see below).
    server = TlsPostgresServer(world.ca, auth="md5")
    directory = tmp_path_factory.mktemp("psycopg")
    return record(psycopg_client, server, "psycopg", directory, world, PSYCOPG_EXPECTED)


def test_psycopg_records_the_plaintext_after_its_sslrequest(psycopg_recorded: Recorded) -> None:
    events = psycopg_recorded.connection.events
    # SSLRequest and the server's "S" in the clear, then TLS, then the protocol inside.
    assert [type(e) for e in events[:3]] == [ClientData, tcpcassette.ServerData, TlsStart]
    assert events[1].data == b"S"
    assert psycopg_recorded.tls.sni == ""  # libpq sends no SNI to an IP address
    assert b"select 1 + 1" in psycopg_recorded.sent
    assert psycopg_recorded.connection.protocol == "postgres"


def test_psycopg_replays_in_a_fresh_process(psycopg_recorded: Recorded) -> None:
    r = psycopg_recorded
    replayed = replay_fresh(r.client, r.name, r.directory, r.target)
    assert replayed == {"result": PSYCOPG_EXPECTED, "client_error": None, "cassette_error": None}


def test_psycopg_meets_a_reset_after_the_handshake_as_from_a_real_server(
    psycopg_recorded: Recorded, world: WorldCA
) -> None:
    real = real_reset(world, psycopg_client, sslrequest=True)
    assert "psycopg.OperationalError" in real["types"], real
    assert any(words in real["message"] for words in PSYCOPG_RESET), real

    r = psycopg_recorded
    replayed = replay_fresh(r.client, r.name, r.directory, r.target, reset_after=r.after_tls)
    failed = replayed["client_error"]
    assert failed is not None and replayed["result"] is None, replayed
    assert replayed["cassette_error"] is None, replayed  # the fault played as placed
    assert failed["types"] == real["types"], replayed
    assert any(words in failed["message"] for words in PSYCOPG_RESET), replayed


def test_psycopg_with_scram_channel_binding_fails_recording_with_what_to_do(
    world: WorldCA, tmp_path: Path
) -> None:
    # libpq's default channel_binding=prefer picks SCRAM-SHA-256-PLUS over TLS, which
    # binds the login to the certificate libpq sees: tcpcassette's, not the server's.
    server = TlsPostgresServer(world.ca)  # scram-sha-256
    target = f"localhost:{server.port}"
    with pytest.raises(CassetteError) as refused:
        try:
            with tcpcassette.use_cassette(
                "scram",
                record_mode="all",
                cassette_dir=tmp_path,
                targets=[target],
                upstream_ca=world.path,
            ) as cassette:
                psycopg_client(cassette, target)
        finally:
            server.stop()
    message = str(refused.value)
    assert "scram" in message and f"recording {target}" in message, message
    assert "channel binding" in message, message
    assert "channel_binding=disable" in message and "md5" in message, message
    # The client's own error is kept, and says the same from libpq's side.
    client_error = refused.value.__context__
    assert isinstance(client_error, psycopg.OperationalError), refused.value
    assert "SCRAM channel binding check failed" in str(client_error)


# -- HTTP/2 over TLS, chosen by ALPN: grpcio ------------------------------------------------

GRPC_EXPECTED = ["echo:over h2"]


@pytest.fixture(scope="module")
def grpc_recorded(tmp_path_factory: pytest.TempPathFactory, world: WorldCA) -> Recorded:
    directory = tmp_path_factory.mktemp("grpc")
    server = GrpcTlsServer(world.ca)
    return record(grpc_client, server, "grpc", directory, world, GRPC_EXPECTED)


def test_grpcio_records_h2_agreed_by_alpn_and_the_plaintext(grpc_recorded: Recorded) -> None:
    tls = grpc_recorded.tls
    assert (tls.sni, tls.alpn) == ("localhost", "h2")  # the name grpcio was told to check
    assert grpc_recorded.connection.events[0] == tls  # TLS from the first byte
    assert grpc_recorded.sent.startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert b"over h2" in grpc_recorded.sent
    assert grpc_recorded.connection.protocol == "http2"


def test_grpcio_replays_in_a_fresh_process(grpc_recorded: Recorded) -> None:
    r = grpc_recorded
    replayed = replay_fresh(r.client, r.name, r.directory, r.target)
    assert replayed == {"result": GRPC_EXPECTED, "client_error": None, "cassette_error": None}


def test_grpcio_meets_a_reset_after_the_handshake_as_from_a_real_server(
    grpc_recorded: Recorded, world: WorldCA
) -> None:
    real = real_reset(world, grpc_client, alpn="h2")
    assert "grpc.RpcError" in real["types"], real
    assert "Connection reset by peer" in real["message"], real

    r = grpc_recorded
    replayed = replay_fresh(r.client, r.name, r.directory, r.target, reset_after=r.after_tls)
    failed = replayed["client_error"]
    assert failed is not None and replayed["result"] is None, replayed
    assert replayed["cassette_error"] is None, replayed  # the fault played as placed
    assert "grpc.RpcError" in failed["types"], replayed
    assert "Connection reset by peer" in failed["message"], replayed


# -- HTTP/2 over TLS: httpx with http2=True, intercepted --------------------------------------

HTTPX_EXPECTED = ["HTTP/2", 200, grpc_frame(b"echo:httpx").hex()]
#: What httpx raises when the server resets right after the handshake: which one
#: depends on whether httpx was writing its preface or reading the answer then.
HTTPX_RESET = {"httpx.RemoteProtocolError", "httpx.WriteError", "httpx.ReadError"}


@pytest.fixture(scope="module")
def httpx_recorded(tmp_path_factory: pytest.TempPathFactory, world: WorldCA) -> Recorded:
    directory = tmp_path_factory.mktemp("httpx")
    server = GrpcTlsServer(world.ca)
    return record(httpx_h2_client, server, "httpx", directory, world, HTTPX_EXPECTED)


def test_httpx_http2_records_h2_agreed_by_alpn_and_the_plaintext(
    httpx_recorded: Recorded,
) -> None:
    tls = httpx_recorded.tls
    assert (tls.sni, tls.alpn) == ("localhost", "h2")
    assert httpx_recorded.sent.startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert grpc_frame(b"httpx") in httpx_recorded.sent
    assert httpx_recorded.connection.protocol == "http2"


def test_httpx_http2_replays_the_same_response_in_a_fresh_process(
    httpx_recorded: Recorded,
) -> None:
    r = httpx_recorded
    replayed = replay_fresh(r.client, r.name, r.directory, r.target)
    assert replayed == {"result": HTTPX_EXPECTED, "client_error": None, "cassette_error": None}


def test_httpx_http2_meets_a_reset_after_the_handshake_as_from_a_real_server(
    httpx_recorded: Recorded, world: WorldCA
) -> None:
    real = real_reset(world, httpx_h2_client, alpn="h2")
    assert HTTPX_RESET & set(real["types"]), real

    r = httpx_recorded
    replayed = replay_fresh(r.client, r.name, r.directory, r.target, reset_after=r.after_tls)
    failed = replayed["client_error"]
    assert failed is not None and replayed["result"] is None, replayed
    assert replayed["cassette_error"] is None, replayed  # the fault played as placed
    assert HTTPX_RESET & set(failed["types"]), replayed


# -- a client that ends without close_notify, as grpcio does --------------------------------


class AnswerAtEnd:
    """A TLS server that reads until the client's end, then says how much it read."""

    def __init__(self, world: WorldCA) -> None:
        self.context = server_context(world.ca)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        raw, _ = self.listener.accept()
        raw.settimeout(START_TIMEOUT)
        with self.context.wrap_socket(raw, server_side=True) as tls:
            read = 0
            while chunk := tls.recv(65536):
                read += len(chunk)
            tls.sendall(b"read %d bytes" % read)  # after the client's end: TLS allows it

    def stop(self) -> None:
        self.thread.join(START_TIMEOUT)
        self.listener.close()


def end_without_close_notify(port: int, world: WorldCA) -> None:
    """Send a line over TLS, then end the TCP half with no close_notify, and wait."""
    context = ssl.create_default_context(cafile=str(world.path))
    raw = socket.create_connection(("localhost", port), timeout=TIMEOUT)
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"hello\n")
        tls.shutdown(socket.SHUT_WR)  # ssl's shutdown drops TLS first: a FIN, no alert
        with contextlib.suppress(ConnectionError):
            while tls.recv(65536):  # TLS records, read raw now, until the end
                pass


def test_an_answer_to_a_client_that_ended_without_close_notify_is_no_tls_failure(
    world: WorldCA, tmp_path: Path
) -> None:
    # OpenSSL writes nothing more after an end without close_notify; the bytes the
    # server sends then are recorded, and dropped on the client's side, not reported.
    server = AnswerAtEnd(world)
    try:
        with tcpcassette.use_cassette("ended", record_mode="all", cassette_dir=tmp_path):
            end_without_close_notify(server.port, world)
    finally:
        server.stop()
    [connection] = tcpcassette.load(tmp_path / "ended.msgpack").connections
    kinds = [type(e).__name__ for e in connection.events]
    assert kinds[:3] == ["TlsStart", "ClientData", "ClientClose"], kinds
    answered = [e.data for e in connection.events if isinstance(e, tcpcassette.ServerData)]
    assert answered == [b"read 6 bytes"], connection.events
    # Replay plays that answer after the client's end too.
    with tcpcassette.use_cassette("ended", record_mode="none", cassette_dir=tmp_path) as cassette:
        end_without_close_notify(server.port, world)
    assert cassette.all_played
