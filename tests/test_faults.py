"""Injected faults, as real clients observe them.

Each test records a healthy exchange with a real server, places a fault, and
replays with the server stopped, asserting the exception the client itself
raises.
"""

from __future__ import annotations

import asyncio
import errno
import http.client
import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

import tcpcassette
from tcpcassette import at, load, use_cassette
from tcpcassette._core.draws import Draws
from tcpcassette._core.replay import corrupted
from tcpcassette.faults import (
    RANDOM_SLICE_MAX,
    Bandwidth,
    Close,
    ConnectTimeout,
    Corrupt,
    Delay,
    Refuse,
    Reset,
    Slice,
    Timeout,
    Truncate,
)

from . import servers
from .blocks import raises_at_exit
from .servers import ThreadedServer

T = TypeVar("T")
Serve = Callable[[servers.Handler], ThreadedServer]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"x" * 2000 if self.path == "/big" else b"hello from the real server"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class RecordedHTTP:
    """A real HTTP server whose exchanges are recorded, then stopped for replay."""

    def __init__(self, cassette_dir: Path) -> None:
        self.cassette_dir = cassette_dir
        self.server = servers.HTTPServer(_Handler)
        self.port = self.server.port
        self.url = f"http://127.0.0.1:{self.port}"

    def record(self, name: str, client: Callable[[], T]) -> T:
        with use_cassette(name, record_mode="all", cassette_dir=self.cassette_dir):
            return client()

    def stop(self) -> None:
        self.server.stop()

    def replay(self, name: str, *faults: tcpcassette.faults.Placement) -> use_cassette:
        self.stop()
        return use_cassette(name, cassette_dir=self.cassette_dir, faults=list(faults))


@pytest.fixture
def web(cassette_dir: Path) -> Iterator[RecordedHTTP]:
    server = RecordedHTTP(cassette_dir)
    yield server
    server.stop()


def httpx_get(url: str, timeout: float = 5.0) -> httpx.Response:
    with httpx.Client(timeout=timeout) as client:
        return client.get(url)


# -- the seed's scenario: a reset reaching httpx -----------------------------------


def test_httpx_sees_connection_reset_by_peer(web: RecordedHTTP) -> None:
    web.record("get", lambda: httpx_get(web.url))
    with web.replay("get", at(Reset(), connection=0, after=1)):
        with pytest.raises(httpx.ReadError, match="Connection reset by peer"):
            httpx_get(web.url)


def test_httpx_sees_a_refused_connect(web: RecordedHTTP) -> None:
    web.record("get", lambda: httpx_get(web.url))
    with web.replay("get", at(Refuse(), connection=0, after=0)):
        with pytest.raises(httpx.ConnectError, match="Connection refused"):
            httpx_get(web.url)


def test_httpx_read_timeout_fires_on_a_silent_server(web: RecordedHTTP) -> None:
    web.record("get", lambda: httpx_get(web.url))
    with web.replay("get", at(Timeout(), connection=0, after=1)):
        with pytest.raises(httpx.ReadTimeout):
            httpx_get(web.url, timeout=0.3)


def test_httpx_connect_timeout_fires_on_a_connect_that_never_completes(web: RecordedHTTP) -> None:
    web.record("get", lambda: httpx_get(web.url))
    with web.replay("get", at(ConnectTimeout(), connection=0, after=0)):
        with pytest.raises(httpx.ConnectTimeout):
            httpx_get(web.url, timeout=0.3)


def test_async_httpx_sees_the_reset_too(web: RecordedHTTP) -> None:
    async def get() -> httpx.Response:
        async with httpx.AsyncClient(timeout=5) as client:
            return await client.get(web.url)

    web.record("aget", lambda: asyncio.run(get()))
    with web.replay("aget", at(Reset(), connection=0, after=1)):
        with pytest.raises(httpx.ReadError):
            asyncio.run(get())


def test_http_client_sees_remote_disconnected_on_close(web: RecordedHTTP) -> None:
    def get() -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=5)
        conn.request("GET", "/")
        body = conn.getresponse().read()
        conn.close()
        return body

    web.record("hc", get)
    with web.replay("hc", at(Close(), connection=0, after=1)):
        with pytest.raises(http.client.RemoteDisconnected):
            get()


def test_http_client_sees_incomplete_read_on_truncate(web: RecordedHTTP) -> None:
    def get() -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=5)
        conn.request("GET", "/big")
        body = conn.getresponse().read()
        conn.close()
        return body

    assert web.record("big", get) == b"x" * 2000
    events = load(web.cassette_dir / "big.msgpack").connections[0].events
    # The last server chunk carries the end of the body: cut it 1000 bytes short.
    last = max(i for i, e in enumerate(events) if e.kind == "server")
    keep = len(events[last].data) - 1000
    with web.replay("big", at(Truncate(nbytes=keep), connection=0, after=last)):
        with pytest.raises(http.client.IncompleteRead):
            get()


# -- raw sockets ----------------------------------------------------------------------


def record_echo(serve: Serve, cassette_dir: Path, name: str = "e") -> ThreadedServer:
    server = serve(servers.upper_echo)
    with use_cassette(name, record_mode="all", cassette_dir=cassette_dir):
        with socket.create_connection(server.address) as s:
            s.sendall(b"first")
            assert s.recv(100) == b"FIRST"
            s.sendall(b"second")
            assert s.recv(100) == b"SECOND"
    server.stop()
    return server


def test_reset_gives_econnreset_on_the_next_read(cassette_dir: Path, serve: Serve) -> None:
    server = record_echo(serve, cassette_dir)
    with use_cassette("e", cassette_dir=cassette_dir, faults=[at(Reset(), connection=0, after=2)]):
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(b"first")
            assert s.recv(100) == b"FIRST"
            # The RST may arrive before the write: the next read *or write* fails.
            with pytest.raises(ConnectionResetError) as info:
                s.sendall(b"second")
                s.recv(100)
    assert info.value.errno == errno.ECONNRESET


def test_reset_reaches_asyncio_streams(cassette_dir: Path, serve: Serve) -> None:
    server = record_echo(serve, cassette_dir)

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"first")
        await reader.readexactly(5)
        writer.write(b"second")
        try:
            await reader.readexactly(6)
        finally:
            writer.close()

    with use_cassette("e", cassette_dir=cassette_dir, faults=[at(Reset(), connection=0, after=2)]):
        with pytest.raises(ConnectionResetError):
            asyncio.run(client())


def test_close_gives_eof_and_sends_nothing_after_it(cassette_dir: Path, serve: Serve) -> None:
    server = record_echo(serve, cassette_dir)
    with use_cassette("e", cassette_dir=cassette_dir, faults=[at(Close(), connection=0, after=2)]):
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(b"first")
            assert s.recv(100) == b"FIRST"
            assert s.recv(100) == b""  # EOF, not SECOND


def test_close_reaches_asyncio_as_incomplete_read(cassette_dir: Path, serve: Serve) -> None:
    server = record_echo(serve, cassette_dir)

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"first")
        try:
            await reader.readexactly(5)
            writer.write(b"second")
            await reader.readexactly(6)
        finally:
            writer.close()

    with use_cassette("e", cassette_dir=cassette_dir, faults=[at(Close(), connection=0, after=2)]):
        with pytest.raises(asyncio.IncompleteReadError):
            asyncio.run(client())


def test_timeout_is_silence_so_the_clients_own_timeout_fires(
    cassette_dir: Path, serve: Serve
) -> None:
    server = record_echo(serve, cassette_dir)
    with use_cassette(
        "e", cassette_dir=cassette_dir, faults=[at(Timeout(), connection=0, after=1)]
    ):
        with socket.create_connection(server.address, timeout=0.3) as s:
            s.sendall(b"first")
            with pytest.raises(TimeoutError):
                s.recv(100)


def test_timeout_reaches_asyncio_wait_for(cassette_dir: Path, serve: Serve) -> None:
    server = record_echo(serve, cassette_dir)

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"first")
        try:
            await asyncio.wait_for(reader.readexactly(5), 0.3)
        finally:
            writer.close()

    with use_cassette(
        "e", cassette_dir=cassette_dir, faults=[at(Timeout(), connection=0, after=1)]
    ):
        with pytest.raises(TimeoutError):
            asyncio.run(client())


def test_timeout_with_seconds_closes_after_the_silence(cassette_dir: Path, serve: Serve) -> None:
    server = record_echo(serve, cassette_dir)
    fault = at(Timeout(seconds=0.2), connection=0, after=1)
    with use_cassette("e", cassette_dir=cassette_dir, faults=[fault]):
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(b"first")
            started = time.monotonic()
            assert s.recv(100) == b""
            assert time.monotonic() - started >= 0.15


def test_client_without_timeout_fails_clearly_instead_of_hanging(
    cassette_dir: Path, serve: Serve
) -> None:
    server = record_echo(serve, cassette_dir)
    fault = at(Timeout(), connection=0, after=1)
    with raises_at_exit(tcpcassette.ClientStalledError, match="max_silence"):
        with use_cassette("e", cassette_dir=cassette_dir, faults=[fault], max_silence=0.3):
            with socket.create_connection(server.address) as s:  # no timeout of its own
                # Should replay hang, this ends the wait as an EOF: a failure, not a stuck run.
                watchdog = threading.Timer(3, s.shutdown, args=(socket.SHUT_RDWR,))
                watchdog.start()
                try:
                    s.sendall(b"first")
                    started = time.monotonic()
                    with pytest.raises(ConnectionResetError):
                        s.recv(100)
                finally:
                    watchdog.cancel()
                assert time.monotonic() - started >= 0.25  # held for max_silence first


def test_leaving_the_block_ends_a_silence(cassette_dir: Path, serve: Serve) -> None:
    server = record_echo(serve, cassette_dir)
    s = socket.create_connection
    with use_cassette(
        "e", cassette_dir=cassette_dir, faults=[at(Timeout(), connection=0, after=1)]
    ):
        sock = s(server.address, timeout=5)
        sock.sendall(b"first")
    try:
        assert sock.recv(100) == b""  # closed by the block's exit, not left hanging
    finally:
        sock.close()


def test_delay_holds_the_reply_back(cassette_dir: Path, serve: Serve) -> None:
    server = record_echo(serve, cassette_dir)
    with use_cassette(
        "e", cassette_dir=cassette_dir, faults=[at(Delay(seconds=0.3), connection=0, after=1)]
    ):
        with socket.create_connection(server.address, timeout=5) as s:
            started = time.monotonic()
            s.sendall(b"first")
            assert s.recv(100) == b"FIRST"
            assert time.monotonic() - started >= 0.25


def test_refuse_reaches_blocking_and_asyncio_connects(cassette_dir: Path, serve: Serve) -> None:
    server = record_echo(serve, cassette_dir)
    refuse = [at(Refuse(), connection=0, after=0)]
    with use_cassette("e", cassette_dir=cassette_dir, faults=refuse):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(server.address, timeout=2)
        with pytest.raises(ConnectionRefusedError):
            asyncio.run(asyncio.open_connection("127.0.0.1", server.port))


def test_connect_timeout_lets_the_clients_connect_timeout_fire(
    cassette_dir: Path, serve: Serve
) -> None:
    server = record_echo(serve, cassette_dir)
    with use_cassette(
        "e", cassette_dir=cassette_dir, faults=[at(ConnectTimeout(), connection=0, after=0)]
    ):
        with pytest.raises(TimeoutError):
            socket.create_connection(server.address, timeout=0.3)

        async def connect() -> None:
            await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), 0.3)

        with pytest.raises(TimeoutError):
            asyncio.run(connect())


def test_truncate_then_reset_gives_fewer_bytes_then_a_reset(
    cassette_dir: Path, serve: Serve
) -> None:
    server = record_echo(serve, cassette_dir)
    fault = at(Truncate(nbytes=3, then="reset"), connection=0, after=1)
    with use_cassette("e", cassette_dir=cassette_dir, faults=[fault]):
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(b"first")
            got = b""
            with pytest.raises(ConnectionResetError):
                while chunk := s.recv(100):
                    got += chunk
            # The RST may discard bytes the client had not read yet.
            assert got in (b"", b"F", b"FI", b"FIR")


def test_slice_delivers_a_chunk_in_pieces(cassette_dir: Path, serve: Serve) -> None:
    server = record_echo(serve, cassette_dir)
    fault = at(Slice(size=1, delay=0.05), connection=0, after=0)
    with use_cassette("e", cassette_dir=cassette_dir, faults=[fault]):
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(b"first")
            reads: list[bytes] = []
            while sum(len(r) for r in reads) < 5:
                reads.append(s.recv(100))
    assert b"".join(reads) == b"FIRST"
    assert len(reads) > 1  # the client had to put the reply together itself


# -- corrupt, bandwidth, random slices, slow close (format version 4) ----------------

#: A 400-byte reply, every byte value in it.
BIG_REPLY = bytes(range(256)) + bytes(range(144))


def big_replier(conn: socket.socket) -> None:
    """Answers "ask" with BIG_REPLY in one write, then waits for the client to close."""
    servers.recv_exactly(conn, 3)
    conn.sendall(BIG_REPLY)
    conn.recv(16)


def record_big(serve: Serve, cassette_dir: Path) -> ThreadedServer:
    """Record one "ask" answered by BIG_REPLY; the server is stopped for replay."""
    server = serve(big_replier)
    with use_cassette("big", record_mode="all", cassette_dir=cassette_dir):
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(b"ask")
            assert servers.recv_exactly(s, len(BIG_REPLY)) == BIG_REPLY
    server.stop()
    return server


def reply_chunks(cassette_dir: Path) -> list[bytes]:
    """The server chunks of the reply, as the proxy read and recorded them."""
    events = load(cassette_dir / "big.msgpack").connections[0].events
    chunks = [e.data for e in events if isinstance(e, tcpcassette.ServerData)]
    assert b"".join(chunks) == BIG_REPLY
    return chunks


def ask(server: ThreadedServer) -> bytes:
    with socket.create_connection(server.address, timeout=5) as s:
        s.sendall(b"ask")
        return servers.recv_exactly(s, len(BIG_REPLY))


def test_corrupt_changes_exactly_nbytes_bytes_the_same_way_every_play(
    cassette_dir: Path, serve: Serve
) -> None:
    server = record_big(serve, cassette_dir)
    first, *rest = reply_chunks(cassette_dir)
    fault = Corrupt(nbytes=3, seed=11)
    with use_cassette("big", cassette_dir=cassette_dir, faults=[at(fault, connection=0, after=1)]):
        got = ask(server)
        again = ask(server)  # the retry plays the same fault again: the same bytes
    changed = [i for i in range(len(BIG_REPLY)) if got[i] != BIG_REPLY[i]]
    assert len(changed) == 3
    assert all(bin(got[i] ^ BIG_REPLY[i]).count("1") == 1 for i in changed)
    assert again == got == corrupted(first, fault) + b"".join(rest)


def test_bandwidth_makes_a_reply_take_as_long_as_the_rate_says(
    cassette_dir: Path, serve: Serve
) -> None:
    server = record_big(serve, cassette_dir)
    fault = at(Bandwidth(bytes_per_second=200), connection=0, after=0)
    with use_cassette("big", cassette_dir=cassette_dir, faults=[fault]):
        started = time.monotonic()
        assert ask(server) == BIG_REPLY
        took = time.monotonic() - started
    # 400 bytes at 200 B/s: the last of 40 pieces leaves 1.95 s after the first.
    assert took >= 1.5


def test_a_slow_close_sends_the_fin_no_earlier_than_its_delay(
    cassette_dir: Path, serve: Serve
) -> None:
    server = record_big(serve, cassette_dir)
    after_reply = len(load(cassette_dir / "big.msgpack").connections[0].events) - 2
    fault = at(Close(delay=0.5), connection=0, after=after_reply)
    with use_cassette("big", cassette_dir=cassette_dir, faults=[fault]):
        with socket.create_connection(server.address, timeout=5) as s:
            started = time.monotonic()
            s.sendall(b"ask")
            assert servers.recv_exactly(s, len(BIG_REPLY)) == BIG_REPLY
            assert s.recv(100) == b""  # the FIN, and nothing after the reply
            waited = time.monotonic() - started
    assert waited >= 0.45


def test_random_slices_arrive_in_pieces_of_at_most_64_bytes_as_the_seed_draws(
    cassette_dir: Path, serve: Serve
) -> None:
    server = record_big(serve, cassette_dir)
    draws = Draws(7)
    boundaries, at_byte = set(), 0
    for chunk in reply_chunks(cassette_dir):
        end = at_byte + len(chunk)
        while at_byte < end:
            at_byte = min(at_byte + 1 + draws.below(RANDOM_SLICE_MAX), end)
            boundaries.add(at_byte)
    fault = at(Slice(size="random", seed=7, delay=0.05), connection=0, after=0)
    with use_cassette("big", cassette_dir=cassette_dir, faults=[fault]):
        with socket.create_connection(server.address, timeout=5) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"ask")
            reads: list[bytes] = []
            while sum(len(r) for r in reads) < len(BIG_REPLY):
                reads.append(s.recv(4096))
    assert b"".join(reads) == BIG_REPLY
    assert len(reads) > 1 and max(len(r) for r in reads) <= RANDOM_SLICE_MAX
    # Each read ends where a drawn piece ends: the pieces are the seed's.
    ends = {sum(len(r) for r in reads[: n + 1]) for n in range(len(reads))}
    assert ends <= boundaries


# -- retries --------------------------------------------------------------------------


def get_with_one_retry(port: int) -> bytes:
    """A client under test: it retries once when the connection is reset."""
    for attempt in range(2):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"first")
                return s.recv(100)
        except ConnectionResetError:
            if attempt == 1:
                raise
    raise AssertionError("unreachable")


def test_retry_after_one_reset_succeeds(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)
    with use_cassette("r", record_mode="all", cassette_dir=cassette_dir):
        assert get_with_one_retry(server.port) == b"FIRST"
    server.stop()
    fault = at(Reset(times=1), connection=0, after=1)
    with use_cassette("r", cassette_dir=cassette_dir, faults=[fault]) as cassette:
        assert get_with_one_retry(server.port) == b"FIRST"
    assert cassette.play_counts == [2]  # one recording served the failure and the retry


def test_reset_every_time_makes_the_client_give_up(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)
    with use_cassette("r", record_mode="all", cassette_dir=cassette_dir):
        get_with_one_retry(server.port)
    server.stop()
    with use_cassette("r", cassette_dir=cassette_dir, faults=[at(Reset(), connection=0, after=1)]):
        with pytest.raises(ConnectionResetError):
            get_with_one_retry(server.port)


def test_a_retry_replays_the_faulted_recording_not_the_next_one(
    cassette_dir: Path, serve: Serve
) -> None:
    """A fault gives its recording back: the retry is served by it again, not by the next."""
    server = serve(servers.upper_echo)
    with use_cassette("two", record_mode="all", cassette_dir=cassette_dir):
        get_with_one_retry(server.port)
        get_with_one_retry(server.port)
    server.stop()
    cassette = load(cassette_dir / "two.msgpack")
    cassette.inject(Reset(), connection=0, after=1)
    cassette.save()
    with use_cassette("two", cassette_dir=cassette_dir) as replay:
        with pytest.raises(ConnectionResetError):
            get_with_one_retry(server.port)  # both attempts play connection 0
    assert replay.play_counts == [2, 0]

    cassette.remove(connection=0, event=2)  # the permanent reset, placed as event 2
    cassette.inject(Reset(times=1), connection=0, after=1)
    cassette.save()
    with use_cassette("two", cassette_dir=cassette_dir) as replay:
        assert get_with_one_retry(server.port) == b"FIRST"
        assert get_with_one_retry(server.port) == b"FIRST"
    assert replay.play_counts == [2, 1]


def test_fault_in_the_file_is_used_without_use_time_faults(
    cassette_dir: Path, serve: Serve
) -> None:
    server = record_echo(serve, cassette_dir)
    cassette = load(cassette_dir / "e.msgpack")
    cassette.inject(Reset(), connection=0, after=0)
    cassette.save(cassette_dir / "e_reset.msgpack")
    with use_cassette("e_reset", cassette_dir=cassette_dir):
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(b"first")
            with pytest.raises(ConnectionResetError):
                s.recv(100)
    assert load(cassette_dir / "e.msgpack").connections[0].events[0].kind == "client"


def test_use_time_fault_in_a_missing_connection_is_refused(
    cassette_dir: Path, serve: Serve
) -> None:
    record_echo(serve, cassette_dir)
    message = r"e\.msgpack: there is no connection 3"
    with pytest.raises(tcpcassette.InvalidFaultError, match=message):
        with use_cassette("e", cassette_dir=cassette_dir, faults=[at(Reset(), connection=3)]):
            pass


def test_invalid_fault_parameters_are_refused() -> None:
    with pytest.raises(tcpcassette.InvalidFaultError, match="must not be negative"):
        Delay(seconds=-1)
    with pytest.raises(tcpcassette.InvalidFaultError, match="times"):
        Reset(times=0)
    with pytest.raises(tcpcassette.InvalidFaultError, match="then"):
        Truncate(nbytes=1, then="explode")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda n: Reset(times=n), "times"),
        (lambda n: Truncate(nbytes=n), "nbytes"),
        (lambda n: Slice(size=n), "size"),
        (lambda n: Delay(seconds=n), "seconds"),
    ],
)
def test_a_fault_number_a_cassette_cannot_store_is_refused_when_made(
    make: Callable[[int], object], field: str, tmp_path: Path
) -> None:
    with pytest.raises(tcpcassette.InvalidFaultError, match=field):
        make(2**64)  # msgpack stores 64 bits; before, only saving failed
    made = make(2**63 - 1)  # the largest accepted still saves and loads
    assert isinstance(made, tcpcassette.faults.Fault)
    events = (tcpcassette.ClientData(data=b"x"), made)
    c = tcpcassette.Cassette(connections=[tcpcassette.Connection(target="h:1", events=events)])
    assert load(c.save(tmp_path / "big.msgpack")).connections[0].events[1] == made
