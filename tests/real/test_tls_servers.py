"""The TLS servers of tests/realservers_tls.py, talked to directly by real clients.

No tcpcassette here: these prove the harness the TLS recording tests build
on.  For each server, a client verifying against the test CA gets its
answer, and a client that does not trust that CA (its own defaults, or
another CA) is refused with its library's own certificate error.
"""

from __future__ import annotations

import asyncio
import ipaddress
import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import grpc  # type: ignore[import-untyped]
import httpx
import psycopg
import pytest
import redis
import requests
from cryptography import x509
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..realservers_postgres import DATABASE, PASSWORD, USER
from ..realservers_tls import (
    GRPC_CALL,
    GrpcTlsServer,
    HttpsServer,
    LineServer,
    StarttlsSmtpServer,
    TlsPostgresServer,
    TlsRedisServer,
    WorldCA,
    grpc_frame,
    make_ca,
)

TIMEOUT = 5.0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> WorldCA:
    """The CA the real servers' certificates come from."""
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> WorldCA:
    """Another CA, which signed none of the servers' certificates."""
    return make_ca(tmp_path_factory.mktemp("stranger"))


#: OpenSSL's verify codes when no trusted CA issued the certificate, as opposed to,
#: say, a name mismatch: the issuer is unknown (X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
#: or the server sent the CA too, which is not trusted (X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
#: as redis-server does: it completes the chain from its tls-ca-cert-file).
UNKNOWN_ISSUER = {20, 19}


def assert_unknown_issuer(exc: BaseException) -> None:
    """``exc`` is, or wraps, a verification failure because no trusted CA issued the cert."""
    found = verify_error(exc)
    assert found.verify_code in UNKNOWN_ISSUER, found
    assert "certificate verify failed" in str(found)


def verify_error(exc: BaseException) -> ssl.SSLCertVerificationError:
    """The certificate verification failure a client library wrapped in its own error."""
    seen: list[BaseException] = []
    todo: list[object] = [exc]
    while todo:
        current = todo.pop()
        if not isinstance(current, BaseException) or any(current is s for s in seen):
            continue
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.append(current)
        # requests and urllib3 keep the cause in args and in ``reason``, not in __cause__.
        todo.extend([current.__cause__, current.__context__, *current.args])
        todo.append(getattr(current, "reason", None))
    raise AssertionError(f"no certificate verification error in {exc!r}")


# -- The CA and the certificates -------------------------------------------------------------


def test_server_certificates_name_localhost_and_both_loopback_addresses(world: WorldCA) -> None:
    with LineServer(world.ca) as server:
        pem = ssl.get_server_certificate(("127.0.0.1", server.port), timeout=TIMEOUT)
    names = (
        x509.load_pem_x509_certificate(pem.encode())
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]

    # What clients load from the CA file: that one CA, verifying host names.
    context = world.client_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    [trusted] = context.get_ca_certs(binary_form=True)
    assert ssl.DER_cert_to_PEM_cert(trusted).encode() == world.pem


# -- HTTPS: cheroot --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def https(world: WorldCA) -> Iterator[HttpsServer]:
    with HttpsServer(world.ca) as server:
        yield server


def test_requests_and_httpx_verifying_against_the_ca_get_the_page(
    https: HttpsServer, world: WorldCA
) -> None:
    answer = requests.get(
        f"https://localhost:{https.port}/r", verify=str(world.path), timeout=TIMEOUT
    )
    # httpx takes the CA as a context (a path is deprecated since httpx 0.28).
    context = world.client_context()
    assert (answer.status_code, answer.text) == (200, "hello from /r")
    for host in ("localhost", "127.0.0.1"):
        reply = httpx.get(f"https://{host}:{https.port}/x", verify=context, timeout=TIMEOUT)
        assert (reply.http_version, reply.text) == ("HTTP/1.1", "hello from /x")


def test_requests_and_httpx_with_their_default_trust_refuse_the_server(
    https: HttpsServer,
) -> None:
    url = f"https://localhost:{https.port}/r"
    with pytest.raises(requests.exceptions.SSLError) as refused:
        requests.get(url, timeout=TIMEOUT)
    assert_unknown_issuer(refused.value)
    with pytest.raises(httpx.ConnectError) as refused_too:
        httpx.get(url, timeout=TIMEOUT)
    assert_unknown_issuer(refused_too.value)


# -- Redis over TLS ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_redis(world: WorldCA) -> Iterator[TlsRedisServer]:
    with TlsRedisServer(world.ca) as server:
        yield server


def test_redis_py_over_tls_verifying_against_the_ca_sets_and_gets(
    tls_redis: TlsRedisServer, world: WorldCA
) -> None:
    client = redis.Redis(
        host="localhost",
        port=tls_redis.port,
        ssl=True,
        ssl_ca_certs=str(world.path),
        socket_timeout=TIMEOUT,
    )
    try:
        assert client.set("tls", "on") is True
        assert client.get("tls") == b"on"
    finally:
        client.close()


def test_redis_py_with_its_default_trust_refuses_the_server(tls_redis: TlsRedisServer) -> None:
    client = redis.Redis(
        host="localhost",
        port=tls_redis.port,
        ssl=True,
        socket_timeout=TIMEOUT,
        retry=Retry(NoBackoff(), 0),  # by default it tries 3 more times, backing off
    )
    with pytest.raises(redis.exceptions.ConnectionError) as refused:
        client.ping()
    assert_unknown_issuer(refused.value)
    client.close()


# -- SMTP with STARTTLS: aiosmtpd ---------------------------------------------------------------


@pytest.fixture
def smtp(world: WorldCA) -> Iterator[StarttlsSmtpServer]:
    with StarttlsSmtpServer(world.ca) as server:
        yield server


def test_smtplib_delivers_after_starttls_verifying_against_the_ca(
    smtp: StarttlsSmtpServer, world: WorldCA
) -> None:
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=TIMEOUT) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        code, _ = client.mail("before@example.com")
        assert code == 530  # TLS first
        client.rset()
        code, _ = client.starttls(context=world.client_context())
        assert code == 220
        refused = client.sendmail(
            "from@example.com", ["to@example.com"], b"Subject: sealed\r\n\r\nover TLS\r\n"
        )
        assert refused == {}
    assert len(smtp.messages) == 1
    assert smtp.messages[0].endswith(b"over TLS\r\n")


def test_smtplib_starttls_with_the_default_trust_refuses_the_server(
    smtp: StarttlsSmtpServer,
) -> None:
    with smtplib.SMTP("127.0.0.1", smtp.port, timeout=TIMEOUT) as client:
        with pytest.raises(ssl.SSLCertVerificationError) as refused:
            client.starttls(context=ssl.create_default_context())
    assert_unknown_issuer(refused.value)
    assert smtp.messages == []


# -- A line protocol over TLS: asyncio ----------------------------------------------------------


async def converse(port: int, context: ssl.SSLContext) -> list[bytes]:
    reader, writer = await asyncio.open_connection("localhost", port, ssl=context)
    try:
        writer.write(b"PING\nECHO over tls\nWHAT\nQUIT\n")
        await writer.drain()
        lines = [await reader.readline() for _ in range(4)]
        lines.append(await reader.read())  # the server closes after BYE
        return lines
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.fixture(scope="module")
def lines(world: WorldCA) -> Iterator[LineServer]:
    with LineServer(world.ca) as server:
        yield server


def test_asyncio_client_verifying_against_the_ca_converses(
    lines: LineServer, world: WorldCA
) -> None:
    answer = asyncio.run(asyncio.wait_for(converse(lines.port, world.client_context()), TIMEOUT))
    assert answer == [b"PONG\n", b"over tls\n", b"ERR unknown command\n", b"BYE\n", b""]


def test_asyncio_client_with_the_default_trust_refuses_the_server(lines: LineServer) -> None:
    talk = converse(lines.port, ssl.create_default_context())
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        asyncio.run(asyncio.wait_for(talk, TIMEOUT))
    assert_unknown_issuer(refused.value)


# -- PostgreSQL with ssl=on ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_postgres(world: WorldCA) -> Iterator[TlsPostgresServer]:
    with TlsPostgresServer(world.ca) as server:
        yield server


def pg_connect(
    server: TlsPostgresServer, host: str, sslmode: str, sslrootcert: Path
) -> psycopg.Connection:
    return psycopg.connect(
        host=host,
        port=server.port,
        user=USER,
        password=PASSWORD,
        dbname=DATABASE,
        connect_timeout=int(TIMEOUT),
        sslmode=sslmode,
        sslrootcert=str(sslrootcert),
    )


@pytest.mark.parametrize(
    ("host", "sslmode"), [("127.0.0.1", "verify-ca"), ("localhost", "verify-full")]
)
def test_psycopg_verifying_against_the_ca_queries_over_tls(
    tls_postgres: TlsPostgresServer, world: WorldCA, host: str, sslmode: str
) -> None:
    with pg_connect(tls_postgres, host, sslmode, world.path) as conn:
        assert conn.pgconn.ssl_in_use
        row = conn.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()
        assert row == (True,)


def test_psycopg_trusting_another_ca_refuses_the_server(
    tls_postgres: TlsPostgresServer, stranger: WorldCA
) -> None:
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        pg_connect(tls_postgres, "127.0.0.1", "verify-ca", stranger.path)


# -- HTTP/2 over TLS: grpcio, and httpx speaking h2 to it -----------------------------------------


@pytest.fixture(scope="module")
def grpc_tls(world: WorldCA) -> Iterator[GrpcTlsServer]:
    with GrpcTlsServer(world.ca) as server:
        yield server


def grpc_call(port: int, host: str, credentials: object) -> bytes:
    with grpc.secure_channel(f"{host}:{port}", credentials) as channel:
        call = channel.unary_unary(GRPC_CALL, request_serializer=bytes, response_deserializer=bytes)
        answer: bytes = call(b"tls", timeout=TIMEOUT)
        return answer


def test_grpc_secure_channel_verifying_against_the_ca_calls(
    grpc_tls: GrpcTlsServer, world: WorldCA
) -> None:
    credentials = grpc.ssl_channel_credentials(root_certificates=world.pem)
    for host in ("localhost", "127.0.0.1"):
        assert grpc_call(grpc_tls.port, host, credentials) == b"echo:tls"


def test_grpc_with_its_default_roots_refuses_the_server(grpc_tls: GrpcTlsServer) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        grpc_call(grpc_tls.port, "localhost", grpc.ssl_channel_credentials())
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "CERTIFICATE_VERIFY_FAILED: unable to get local issuer" in refused.value.details()


def test_httpx_http2_verifying_against_the_ca_speaks_h2_to_grpcio(
    grpc_tls: GrpcTlsServer, world: WorldCA
) -> None:
    with httpx.Client(http2=True, verify=world.client_context(), timeout=TIMEOUT) as client:
        reply = client.post(
            f"https://localhost:{grpc_tls.port}{GRPC_CALL}",
            content=grpc_frame(b"h2"),
            headers={"content-type": "application/grpc", "te": "trailers"},
        )
    assert reply.http_version == "HTTP/2"  # chosen by ALPN
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/grpc"
    assert reply.content == grpc_frame(b"echo:h2")


def test_httpx_http2_with_its_default_trust_refuses_the_server(grpc_tls: GrpcTlsServer) -> None:
    with httpx.Client(http2=True, timeout=TIMEOUT) as client:
        with pytest.raises(httpx.ConnectError) as refused:
            client.post(f"https://localhost:{grpc_tls.port}{GRPC_CALL}", content=grpc_frame(b""))
    assert_unknown_issuer(refused.value)
