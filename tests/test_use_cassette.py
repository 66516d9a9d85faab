"""Recording from real servers and replaying with them stopped, through use_cassette."""

from __future__ import annotations

import asyncio
import errno
import http.client
import http.server
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

import tcpcassette
from tcpcassette import NothingRecordedWarning, load, use_cassette

from . import servers
from .blocks import raises_at_exit
from .servers import ThreadedServer

T = TypeVar("T")
Serve = Callable[[servers.Handler], ThreadedServer]


def record_and_replay(
    cassette_dir: Path, server: ThreadedServer, client: Callable[[], T], name: str = "c"
) -> tuple[T, T]:
    """Run ``client`` against the real server while recording, then again from the cassette."""
    with use_cassette(name, record_mode="all", cassette_dir=cassette_dir):
        live = client()
    server.stop()
    with use_cassette(name, record_mode="none", cassette_dir=cassette_dir) as cassette:
        replayed = client()
    assert cassette.all_played
    return live, replayed


# -- raw sockets -----------------------------------------------------------------


def test_blocking_socket_exchange_replays_identically(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)

    def client() -> list[bytes]:
        with socket.create_connection(server.address) as s:
            s.sendall(b"hello")
            first = s.recv(100)
            s.sendall(b"world")
            return [first, s.recv(100)]

    live, replayed = record_and_replay(cassette_dir, server, client)
    assert live == replayed == [b"HELLO", b"WORLD"]
    conn = load(cassette_dir / "c.msgpack").connections[0]
    assert conn.target == server.target
    assert [e.kind for e in conn.events] == [
        "client",
        "server",
        "client",
        "server",
        "client_close",
        "server_close",
    ]
    assert conn.ending == "client closed, then server closed"
    times = [e.time for e in conn.events]
    assert times == sorted(times) and times[-1] > 0


def test_socket_with_timeout_and_length_prefixed_protocol(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.length_prefixed)

    def client() -> list[bytes]:
        s = socket.create_connection(server.address, timeout=5)
        replies = []
        for body in (b"abc", b"x" * 70000, b""):
            s.sendall(servers.frame(body))
            replies.append(servers.read_frame(s))
        s.close()
        return replies

    live, replayed = record_and_replay(cassette_dir, server, client)
    assert replayed == live
    assert replayed[0] == b"ok:cba" and len(replayed[1]) == 70003


def test_server_chunks_are_replayed_as_separate_writes(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.chunked_sender)

    def client() -> list[bytes]:
        with socket.create_connection(server.address, timeout=5) as s:
            got = []
            for _ in range(3):
                got.append(s.recv(100))
                s.sendall(b"ack")
            got.append(s.recv(100))  # the server's FIN
            return got

    live, replayed = record_and_replay(cassette_dir, server, client)
    assert live == replayed == [b"one", b"two", b"three", b""]
    server_chunks = [
        e.data for e in load(cassette_dir / "c.msgpack").connections[0].events if e.kind == "server"
    ]
    assert server_chunks == [b"one", b"two", b"three"]


def test_client_half_close_reaches_the_server_and_replays(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.half_close_reader)

    def client() -> bytes:
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(b"x" * 1000)
            s.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := s.recv(100):
                reply += chunk
            return reply

    live, replayed = record_and_replay(cassette_dir, server, client)
    assert live == replayed == b"got 1000"
    kinds = [e.kind for e in load(cassette_dir / "c.msgpack").connections[0].events]
    assert kinds.index("client_close") < kinds.index("server")


def test_server_that_speaks_first_replays_its_greeting(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.greeter)

    def client() -> list[bytes]:
        with socket.create_connection(server.address, timeout=5) as s:
            f = s.makefile("rb")
            lines = [f.readline()]
            s.sendall(b"HELO me\r\n")
            lines.append(f.readline())
            s.sendall(b"QUIT\r\n")
            lines.append(f.readline())
            lines.append(f.read())
            return lines

    live, replayed = record_and_replay(cassette_dir, server, client)
    assert live == replayed
    assert replayed == [b"220 hello from greeter\r\n", b"250 HELO me\r\n", b"221 bye\r\n", b""]


def test_server_reset_reaches_the_client_as_a_reset(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.reset_after_request)

    def client() -> tuple[bytes, int | None]:
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(b"hi")
            got = b""
            try:
                while chunk := s.recv(100):
                    got += chunk
            except ConnectionResetError as exc:
                return got, exc.errno
            return got, 0

    live, replayed = record_and_replay(cassette_dir, server, client)
    assert live[1] == replayed[1] == errno.ECONNRESET
    assert replayed[0] in (b"", b"partial")  # an RST may discard bytes not yet read
    events = load(cassette_dir / "c.msgpack").connections[0].events
    assert events[-1].kind == "server_reset"


def test_refused_connect_is_recorded_and_replayed_from_connect(
    cassette_dir: Path, refused_port: int
) -> None:
    port = refused_port

    def client() -> str:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2)
        except ConnectionRefusedError as exc:
            return type(exc).__name__
        return "connected"

    with use_cassette("r", record_mode="all", cassette_dir=cassette_dir):
        assert client() == "ConnectionRefusedError"
    assert load(cassette_dir / "r.msgpack").connections[0].ending == "refused"
    with use_cassette("r", record_mode="none", cassette_dir=cassette_dir):
        assert client() == "ConnectionRefusedError"


def test_refused_connect_reaches_asyncio_too(cassette_dir: Path, refused_port: int) -> None:
    port = refused_port

    async def client() -> None:
        await asyncio.open_connection("127.0.0.1", port)

    with (
        use_cassette("r", record_mode="all", cassette_dir=cassette_dir),
        pytest.raises(ConnectionRefusedError),
    ):
        asyncio.run(client())
    with (
        use_cassette("r", record_mode="none", cassette_dir=cassette_dir),
        pytest.raises(ConnectionRefusedError),
    ):
        asyncio.run(client())


# -- threads, asyncio, http.client ----------------------------------------------


def test_thread_pool_connecting_in_another_order_replays(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.length_prefixed)
    keys = [f"key-{i}".encode() for i in range(16)]

    def one(key: bytes) -> bytes:
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(servers.frame(key))
            return servers.read_frame(s)

    with use_cassette("pool", record_mode="all", cassette_dir=cassette_dir):
        live = [one(k) for k in keys]  # recorded one after another
    server.stop()
    with use_cassette("pool", record_mode="none", cassette_dir=cassette_dir) as cassette:
        with ThreadPoolExecutor(8) as pool:
            replayed = list(pool.map(one, reversed(keys)))  # replayed concurrently, reversed
    assert replayed[::-1] == live
    assert cassette.play_counts == [1] * 16


def test_asyncio_streams_record_and_replay(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.greeter)

    async def client() -> list[bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        lines = [await reader.readline()]
        writer.write(b"PING\r\nQUIT\r\n")
        await writer.drain()
        lines += [await reader.readline(), await reader.readline(), await reader.read()]
        writer.close()
        await writer.wait_closed()
        return lines

    live, replayed = record_and_replay(cassette_dir, server, lambda: asyncio.run(client()))
    assert live == replayed
    assert replayed[:3] == [b"220 hello from greeter\r\n", b"250 PING\r\n", b"221 bye\r\n"]


async def test_async_with_inside_a_pytest_asyncio_test(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)

    async def client() -> bytes:
        reader, writer = await asyncio.open_connection("localhost", server.port)
        writer.write(b"async")
        data = await reader.readexactly(5)
        writer.close()
        await writer.wait_closed()
        return data

    async with use_cassette("a", record_mode="all", cassette_dir=cassette_dir):
        assert await client() == b"ASYNC"
    server.stop()
    async with use_cassette("a", record_mode="none", cassette_dir=cassette_dir) as cassette:
        assert await client() == b"ASYNC"
    assert cassette.play_count == 1
    assert cassette.connections[0].target == f"localhost:{server.port}"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"you asked for {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Date", "fixed")  # the client never sends it back
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[servers.HTTPServer]:
    server = servers.HTTPServer(_Handler)
    yield server
    server.stop()


def test_http_client_keep_alive_records_and_replays(
    cassette_dir: Path, http_server: servers.HTTPServer
) -> None:
    port = http_server.port

    def client() -> list[tuple[int, bytes]]:
        conn = http.client.HTTPConnection("localhost", port, timeout=5)
        out = []
        for path in ("/a", "/b", "/c"):
            conn.request("GET", path)
            resp = conn.getresponse()
            out.append((resp.status, resp.read()))
        conn.close()
        return out

    with use_cassette("http", record_mode="all", cassette_dir=cassette_dir):
        live = client()
    http_server.stop()
    with use_cassette("http", record_mode="none", cassette_dir=cassette_dir):
        replayed = client()
    assert (
        live
        == replayed
        == [(200, b"you asked for /a"), (200, b"you asked for /b"), (200, b"you asked for /c")]
    )
    assert len(load(cassette_dir / "http.msgpack").connections) == 1  # one kept-alive connection


# -- record modes -----------------------------------------------------------------


def echo_once(server_port: int, payload: bytes = b"ping") -> bytes:
    with socket.create_connection(("127.0.0.1", server_port), timeout=5) as s:
        s.sendall(payload)
        return s.recv(100)


def test_mode_once_records_when_missing_then_only_replays(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)
    with use_cassette("o", record_mode="once", cassette_dir=cassette_dir):
        assert echo_once(server.port) == b"PING"
    server.stop()
    with use_cassette("o", record_mode="once", cassette_dir=cassette_dir) as cassette:
        assert echo_once(server.port) == b"PING"
    assert cassette.play_count == 1
    # A connection the cassette lacks is an error, not a trip to the network.
    with (
        raises_at_exit(tcpcassette.UnrecordedConnectionError) as info,
        use_cassette("o", record_mode="once", cassette_dir=cassette_dir),
    ):
        echo_once(server.port)
        echo_once(server.port)
    assert "o.msgpack" in str(info.value) and "new_episodes" in str(info.value)


def test_mode_none_without_a_cassette_says_how_to_record(cassette_dir: Path) -> None:
    with pytest.raises(tcpcassette.CassetteNotFoundError, match="--record-mode=once"):
        with use_cassette("missing", record_mode="none", cassette_dir=cassette_dir):
            pass


def test_mode_none_never_reaches_the_network(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)
    with use_cassette("o", record_mode="all", cassette_dir=cassette_dir):
        echo_once(server.port)
    other = serve(servers.upper_echo)
    with (
        raises_at_exit(tcpcassette.UnrecordedConnectionError, match=other.target),
        use_cassette("o", record_mode="none", cassette_dir=cassette_dir),
    ):
        echo_once(other.port)
    assert other.connections == 0


def test_mode_new_episodes_replays_known_and_appends_new(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)
    with use_cassette("n", record_mode="all", cassette_dir=cassette_dir):
        echo_once(server.port, b"first")
    before = server.connections
    with use_cassette("n", record_mode="new_episodes", cassette_dir=cassette_dir):
        assert echo_once(server.port, b"first") == b"FIRST"  # replayed
        assert echo_once(server.port, b"second") == b"SECOND"  # recorded
    assert server.connections == before + 1
    server.stop()
    with use_cassette("n", record_mode="none", cassette_dir=cassette_dir) as cassette:
        assert echo_once(server.port, b"second") == b"SECOND"
        assert echo_once(server.port, b"first") == b"FIRST"
    assert len(cassette.connections) == 2


def test_new_episodes_records_a_connection_whose_first_bytes_are_new(
    cassette_dir: Path, serve: Serve
) -> None:
    server = serve(servers.upper_echo)
    with use_cassette("n", record_mode="all", cassette_dir=cassette_dir):
        echo_once(server.port, b"known")
    with use_cassette("n", record_mode="new_episodes", cassette_dir=cassette_dir):
        # One recording is unplayed, so this connect is routed to replay; its
        # bytes match nothing, so it is recorded from the real server instead.
        assert echo_once(server.port, b"novel") == b"NOVEL"
    assert [c.client_bytes for c in load(cassette_dir / "n.msgpack").connections] == [
        b"known",
        b"novel",
    ]


def test_mode_all_rewrites_the_cassette_from_scratch(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)
    with use_cassette("a", record_mode="all", cassette_dir=cassette_dir):
        echo_once(server.port, b"old")
    with use_cassette("a", record_mode="all", cassette_dir=cassette_dir):
        echo_once(server.port, b"new")
    assert [c.client_bytes for c in load(cassette_dir / "a.msgpack").connections] == [b"new"]


def test_failing_test_still_saves_what_was_recorded(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)
    with (
        pytest.raises(AssertionError),
        use_cassette("f", record_mode="all", cassette_dir=cassette_dir),
    ):
        assert echo_once(server.port, b"saved") == b"something else"
    assert load(cassette_dir / "f.msgpack").connections[0].server_bytes == b"SAVED"


# -- names, targets, interception -----------------------------------------------


def test_recorded_host_names_answer_lookups_in_replay(cassette_dir: Path) -> None:
    """A client that connects to db.internal replays where that name does not resolve."""
    cassette = tcpcassette.Cassette(
        connections=[
            tcpcassette.Connection(
                target="db.internal:5432",
                events=(tcpcassette.ClientData(data=b"hello"), tcpcassette.ServerData(data=b"hi")),
            )
        ],
        hosts={"db.internal": ["10.255.255.1"]},
    )
    cassette.save(cassette_dir / "dns.msgpack")
    with use_cassette("dns", cassette_dir=cassette_dir):
        assert socket.getaddrinfo("db.internal", 5432, type=socket.SOCK_STREAM)[0][4] == (
            "10.255.255.1",
            5432,
        )
        with socket.create_connection(("db.internal", 5432), timeout=2) as s:
            s.sendall(b"hello")
            assert s.recv(10) == b"hi"


def test_targets_limits_interception(cassette_dir: Path, serve: Serve) -> None:
    recorded, passed = serve(servers.upper_echo), serve(servers.upper_echo)
    with use_cassette("t", record_mode="all", cassette_dir=cassette_dir, targets=[recorded.target]):
        echo_once(recorded.port)
        echo_once(passed.port)
    assert [c.target for c in load(cassette_dir / "t.msgpack").connections] == [recorded.target]
    with use_cassette("t", cassette_dir=cassette_dir, targets=[recorded.target]):
        before = passed.connections
        assert echo_once(passed.port, b"live") == b"LIVE"  # not intercepted: reaches the server
        assert passed.connections == before + 1
        echo_once(recorded.port)


def test_ignore_leaves_a_target_alone(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)
    with pytest.warns(NothingRecordedWarning, match="recorded no connection"):
        with use_cassette(
            "i", record_mode="all", cassette_dir=cassette_dir, ignore=[server.target]
        ):
            assert echo_once(server.port) == b"PING"
    assert load(cassette_dir / "i.msgpack").connections == []


def test_address_serves_clients_that_cannot_be_redirected(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)
    with use_cassette(
        "addr", record_mode="all", cassette_dir=cassette_dir, targets=[server.target]
    ) as cassette:
        host, port = cassette.address(server.target)
        assert host == "127.0.0.1" and port != server.port
        assert echo_once(port, b"via address") == b"VIA ADDRESS"
    server.stop()
    with use_cassette("addr", cassette_dir=cassette_dir, targets=[server.target]) as cassette:
        assert echo_once(cassette.address(server.target)[1], b"via address") == b"VIA ADDRESS"


def test_servers_inside_the_test_process_keep_working(cassette_dir: Path) -> None:
    with use_cassette("srv", record_mode="all", cassette_dir=cassette_dir):
        with servers.running(servers.upper_echo) as server:  # started inside the block
            assert echo_once(server.port) == b"PING"
    assert load(cassette_dir / "srv.msgpack").connections[0].server_bytes == b"PING"


@pytest.mark.filterwarnings("ignore::tcpcassette.NothingRecordedWarning")  # nothing to record here
def test_second_cassette_at_once_is_refused(cassette_dir: Path) -> None:
    with use_cassette("one", record_mode="all", cassette_dir=cassette_dir):
        with pytest.raises(tcpcassette.CassetteInUseError, match="one cassette is active"):
            with use_cassette("two", record_mode="all", cassette_dir=cassette_dir):
                pass


@pytest.mark.filterwarnings("ignore::tcpcassette.NothingRecordedWarning")  # nothing to record here
def test_leaving_the_block_restores_the_socket_module(cassette_dir: Path) -> None:
    original = (socket.getaddrinfo, socket.gethostbyname, "connect" in vars(socket.socket))
    with use_cassette("restore", record_mode="all", cassette_dir=cassette_dir):
        assert socket.getaddrinfo is not original[0]
    assert (socket.getaddrinfo, socket.gethostbyname, "connect" in vars(socket.socket)) == original


# -- errors ---------------------------------------------------------------------


def test_mismatch_shows_recorded_and_actual_bytes_and_resets_client(
    cassette_dir: Path, serve: Serve
) -> None:
    server = serve(servers.upper_echo)
    with use_cassette("m", record_mode="all", cassette_dir=cassette_dir):
        with socket.create_connection(server.address) as s:
            s.sendall(b"GET /users/1")
            s.recv(100)
            s.sendall(b"GET /users/2")
            s.recv(100)
    server.stop()
    with raises_at_exit(tcpcassette.ClientMismatchError) as info:
        with use_cassette("m", cassette_dir=cassette_dir):
            with socket.create_connection(server.address, timeout=5) as s:
                s.sendall(b"GET /users/1")
                s.recv(100)
                s.sendall(b"GET /users/9")
                with pytest.raises(ConnectionResetError):
                    s.recv(100)
    message = str(info.value)
    assert "m.msgpack, connection 0 (127.0.0.1:" in message and "event 3" in message
    assert "recorded: GET /users/2" in message and "actual:   GET /users/9" in message
    assert "first difference at byte 11" in message and "--record-mode=all" in message


def acknowledge(conn: socket.socket) -> None:
    """Reads one message and answers with bytes that do not repeat it."""
    conn.recv(100)
    conn.sendall(b"\x06")


def test_mismatch_in_binary_bytes_is_shown_in_hex(cassette_dir: Path, serve: Serve) -> None:
    # (An echo server would repeat the changed bytes: that is an echo, which replay accepts.)
    server = serve(acknowledge)
    with use_cassette("b", record_mode="all", cassette_dir=cassette_dir):
        echo_once(server.port, b"\x00\x01\x02\x03")
    server.stop()
    with raises_at_exit(tcpcassette.ClientMismatchError, match=r"00 01 02 03[\s\S]*00 01 ff"):
        with use_cassette("b", cassette_dir=cassette_dir):
            with pytest.raises(ConnectionResetError):
                echo_once(server.port, b"\x00\x01\xff\x03")


def test_unmatched_first_bytes_name_the_closest_recording(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)
    with use_cassette("u", record_mode="all", cassette_dir=cassette_dir):
        echo_once(server.port, b"HELLO v1")
    server.stop()
    with raises_at_exit(
        tcpcassette.ClientMismatchError,
        match=r"closest is connection 0, event 1:\n  recorded: HELLO v1\n  actual:   GOODBYE",
    ):
        with use_cassette("u", cassette_dir=cassette_dir):
            with pytest.raises(ConnectionResetError):
                echo_once(server.port, b"GOODBYE")


def test_client_that_stops_halfway_fails_with_what_was_awaited(
    cassette_dir: Path, serve: Serve
) -> None:
    server = serve(servers.length_prefixed)
    with use_cassette("s", record_mode="all", cassette_dir=cassette_dir):
        with socket.create_connection(server.address) as s:
            s.sendall(servers.frame(b"abc"))
            servers.read_frame(s)
            s.sendall(servers.frame(b"second request"))
            servers.read_frame(s)
    server.stop()
    with raises_at_exit(tcpcassette.ClientStalledError) as info:
        with use_cassette("s", cassette_dir=cassette_dir, stall_timeout=0.2):
            with socket.create_connection(server.address, timeout=5) as s:
                s.sendall(servers.frame(b"abc"))
                servers.read_frame(s)
                s.sendall(servers.frame(b"second request")[:7])  # and then nothing more
                with pytest.raises(ConnectionResetError):
                    s.recv(100)  # the replay server gives up after stall_timeout
    assert "sent 7 of the 18 bytes" in str(info.value)
    assert "event 3" in str(info.value)


def test_corrupt_cassette_is_reported_on_entry(cassette_dir: Path) -> None:
    (cassette_dir / "bad.msgpack").write_bytes(b"\x93\x01")
    with pytest.raises(tcpcassette.CassetteFormatError, match=r"bad\.msgpack: not a readable"):
        with use_cassette("bad", cassette_dir=cassette_dir):
            pass


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", "a/../../b"])
def test_names_that_leave_the_cassette_dir_are_refused(cassette_dir: Path, name: str) -> None:
    with pytest.raises(tcpcassette.CassettePathError):
        use_cassette(name, record_mode="all", cassette_dir=cassette_dir).__enter__()


def test_symlink_out_of_the_cassette_dir_is_refused(cassette_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (cassette_dir / "link").symlink_to(outside)
    with pytest.raises(tcpcassette.CassettePathError, match="outside the cassette directory"):
        use_cassette("link/x", record_mode="all", cassette_dir=cassette_dir).__enter__()


# -- the decorator ------------------------------------------------------------------


def test_decorator_names_the_cassette_after_the_test(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)

    @use_cassette(record_mode="all", cassette_dir=cassette_dir)
    def test_something() -> bytes:
        return echo_once(server.port)

    assert test_something() == b"PING"
    # Not the running test: named after its module's dotted path, as folders.
    assert (cassette_dir / "tests" / "test_use_cassette" / "test_something.msgpack").exists()


def test_decorator_on_methods_and_coroutines(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)

    class Suite:
        @use_cassette("method", record_mode="all", cassette_dir=cassette_dir)
        def run(self, payload: bytes) -> bytes:
            return echo_once(server.port, payload)

    @use_cassette("coro", record_mode="all", cassette_dir=cassette_dir)
    async def coro() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"co")
        data = await reader.readexactly(2)
        writer.close()
        return data

    assert Suite().run(b"m") == b"M"
    assert asyncio.run(coro()) == b"CO"
    assert load(cassette_dir / "method.msgpack").connections[0].client_bytes == b"m"
    assert load(cassette_dir / "coro.msgpack").connections[0].client_bytes == b"co"


def test_error_raised_on_the_servers_thread_surfaces_in_the_test(
    cassette_dir: Path, serve: Serve
) -> None:
    """The client swallows its own error; the cassette still fails the test."""
    server = serve(servers.upper_echo)
    with use_cassette("sw", record_mode="all", cassette_dir=cassette_dir):
        echo_once(server.port, b"expected")
    swallowed: list[OSError] = []
    with (
        raises_at_exit(tcpcassette.ClientMismatchError),
        use_cassette("sw", cassette_dir=cassette_dir),
    ):
        try:
            echo_once(server.port, b"unexpect")
        except OSError as exc:
            swallowed.append(exc)
    # What the client swallowed was the reset, not a timeout after a hang.
    assert [type(e) for e in swallowed] == [ConnectionResetError]
