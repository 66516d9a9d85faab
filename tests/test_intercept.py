"""What must not slip past interception: other loops, odd addresses, lookups,
other users, other patches; and what must be left alone."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tcpcassette import CassetteError, load, use_cassette
from tcpcassette._use_cassette import NothingRecordedWarning

from . import servers


def _shout(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data.upper())


@pytest.fixture
def shout(serve: Callable[[servers.Handler], servers.ThreadedServer]) -> servers.ThreadedServer:
    return serve(_shout)


def _roundtrip(address: Any, family: int = socket.AF_INET) -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(address)
        s.sendall(b"hello")
        return s.recv(100)


# -- uvloop --------------------------------------------------------------------


def test_uvloop_connects_are_recorded_and_replayed_and_never_reach_the_server(
    cassette_dir: Path, shout: servers.ThreadedServer
) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def client() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", shout.port)
        writer.write(b"hello")
        await writer.drain()
        data = await reader.readexactly(5)
        writer.close()
        await writer.wait_closed()
        return data

    def run() -> bytes:
        loop = uvloop.new_event_loop()
        try:
            data: bytes = loop.run_until_complete(client())
            return data
        finally:
            loop.close()

    with use_cassette("uv", record_mode="all", cassette_dir=cassette_dir):
        assert run() == b"HELLO"
    assert [c.target for c in load(cassette_dir / "uv.msgpack").connections] == [shout.target]
    seen = shout.connections
    with use_cassette("uv", record_mode="none", cassette_dir=cassette_dir) as cassette:
        assert run() == b"HELLO"
    assert cassette.play_count == 1
    assert shout.connections == seen, "replay under uvloop reached the live server"


# -- addresses tcpcassette cannot classify ---------------------------------------


def test_a_connect_to_the_unspecified_address_fails_closed_where_recording_is_not_allowed(
    cassette_dir: Path, shout: servers.ThreadedServer
) -> None:
    with pytest.warns(NothingRecordedWarning):
        with use_cassette("empty", record_mode="all", cassette_dir=cassette_dir):
            pass
    seen = shout.connections
    for host in ("", "0.0.0.0", b"127.0.0.1"):
        with pytest.raises(CassetteError), use_cassette("empty", cassette_dir=cassette_dir):
            _roundtrip((host, shout.port))
    assert shout.connections == seen, "an unclassified address reached the live server"


def test_connect_to_the_unspecified_address_is_recorded_as_loopback(
    cassette_dir: Path, shout: servers.ThreadedServer
) -> None:
    with use_cassette("any", record_mode="all", cassette_dir=cassette_dir):
        assert _roundtrip(("", shout.port)) == b"HELLO"
    assert [c.target for c in load(cassette_dir / "any.msgpack").connections] == [shout.target]


# -- name lookups ----------------------------------------------------------------


def test_lookups_in_mode_none_never_reach_the_system_resolver(cassette_dir: Path) -> None:
    name = socket.gethostname()
    try:
        socket.getaddrinfo(name, 80)
    except OSError:
        pytest.skip("this machine's own name does not resolve")
    with pytest.warns(NothingRecordedWarning):
        with use_cassette("empty", record_mode="all", cassette_dir=cassette_dir):
            pass
    with use_cassette("empty", record_mode="none", cassette_dir=cassette_dir):
        with pytest.raises(socket.gaierror, match="never asks the resolver"):
            socket.getaddrinfo(name, 80)
        with pytest.raises(socket.gaierror):
            socket.gethostbyname(name)
        with pytest.raises(socket.gaierror):
            socket.gethostbyname_ex(name)
        # Addresses and the local host's own name need no resolver.
        assert socket.getaddrinfo("127.0.0.1", 80)[0][4][:2] == ("127.0.0.1", 80)
        assert socket.gethostbyname("localhost") == "127.0.0.1"
        # Reverse lookups stay numeric.
        assert socket.getnameinfo(("127.0.0.1", 80), 0)[0] == "127.0.0.1"
        assert socket.gethostbyaddr("127.0.0.1") == ("127.0.0.1", [], ["127.0.0.1"])


@pytest.fixture
def fake_resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """A fixture's own resolver, in place before the block: db.test is loopback."""
    real = socket.getaddrinfo
    asked: dict[str, int] = {}

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        text = host.decode() if isinstance(host, bytes) else host
        asked[text] = asked.get(text, 0) + 1
        return real("127.0.0.1" if text == "db.test" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked


def test_the_resolver_in_place_when_the_block_begins_is_wrapped_and_restored(
    cassette_dir: Path, shout: servers.ThreadedServer, fake_resolver: dict[str, int]
) -> None:
    fake = socket.getaddrinfo
    with use_cassette("db", record_mode="all", cassette_dir=cassette_dir):
        assert socket.getaddrinfo is not fake
        assert _roundtrip(("db.test", shout.port)) == b"HELLO"
    assert socket.getaddrinfo is fake
    assert fake_resolver.get("db.test")
    assert load(cassette_dir / "db.msgpack").hosts == {"db.test": ("127.0.0.1",)}


def test_host_names_given_as_bytes_are_recorded_and_answered(
    cassette_dir: Path, shout: servers.ThreadedServer, fake_resolver: dict[str, int]
) -> None:
    with use_cassette("bytes", record_mode="all", cassette_dir=cassette_dir):
        info = socket.getaddrinfo(b"db.test", shout.port, 0, socket.SOCK_STREAM)
        assert _roundtrip(info[0][4]) == b"HELLO"
    assert load(cassette_dir / "bytes.msgpack").hosts == {"db.test": ("127.0.0.1",)}
    asked = dict(fake_resolver)
    with use_cassette("bytes", record_mode="none", cassette_dir=cassette_dir):
        info = socket.getaddrinfo(b"db.test", shout.port, 0, socket.SOCK_STREAM)
        assert info[0][4][:2] == ("127.0.0.1", shout.port)
    assert fake_resolver == asked, "replay asked the resolver about a name it holds"


# -- other event loops -----------------------------------------------------------


def test_async_with_and_async_def_work_under_trio_and_anyio(
    cassette_dir: Path, shout: servers.ThreadedServer, fake_resolver: dict[str, int]
) -> None:
    trio = pytest.importorskip("trio")
    anyio = pytest.importorskip("anyio")

    async def with_trio() -> bytes:
        async with use_cassette("trio", record_mode="once", cassette_dir=cassette_dir):
            # trio hands getaddrinfo the name as IDNA-encoded bytes.
            stream = await trio.open_tcp_stream("db.test", shout.port)
            async with stream:
                await stream.send_all(b"hello")
                return bytes(await stream.receive_some(100))

    @use_cassette("anyio", record_mode="once", cassette_dir=cassette_dir)
    async def with_anyio() -> bytes:
        async with await anyio.connect_tcp("db.test", shout.port) as stream:
            await stream.send(b"hello")
            return bytes(await stream.receive())

    for _ in range(2):  # recorded, then replayed (record mode once)
        assert trio.run(with_trio) == b"HELLO"
        assert anyio.run(with_anyio, backend="trio") == b"HELLO"
        assert anyio.run(with_anyio, backend="asyncio") == b"HELLO"
    assert len(load(cassette_dir / "trio.msgpack").connections) == 1
    assert len(load(cassette_dir / "anyio.msgpack").connections) == 1


# -- what is left alone ------------------------------------------------------------


def _socketpair_by_hand() -> None:
    """What paho-mqtt does: a listener on 127.0.0.1:0, connected to and accepted."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        with socket.socket() as a:
            a.connect(listener.getsockname())
            b, _ = listener.accept()
            with b:
                a.sendall(b"x")
                assert b.recv(1) == b"x"


def test_a_librarys_own_socket_pair_is_left_alone(cassette_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NothingRecordedWarning)
        with use_cassette("pair", record_mode="all", cassette_dir=cassette_dir):
            _socketpair_by_hand()
    assert load(cassette_dir / "pair.msgpack").connections == []
    with use_cassette("pair", record_mode="none", cassette_dir=cassette_dir):
        _socketpair_by_hand()  # another port this time: still nothing to replay


def test_a_listener_named_in_targets_is_recorded_even_when_opened_inside(
    cassette_dir: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with use_cassette(
        "inside", record_mode="all", cassette_dir=cassette_dir, targets=[f"127.0.0.1:{port}"]
    ):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(1)
        server = threading.Thread(target=lambda: _shout(listener.accept()[0]), daemon=True)
        server.start()
        assert _roundtrip(("127.0.0.1", port)) == b"HELLO"
        server.join(5)
        listener.close()
    assert len(load(cassette_dir / "inside.msgpack").connections) == 1


# -- IPv6 ----------------------------------------------------------------------------


@pytest.fixture
def shout6() -> Iterator[int]:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    listener = socket.socket(socket.AF_INET6)
    try:
        listener.bind(("::1", 0))
    except OSError:
        listener.close()
        pytest.skip("no IPv6 loopback")
    listener.listen(8)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_shout, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def _v6only_roundtrip(port: int) -> bytes:
    with socket.socket(socket.AF_INET6) as s:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.settimeout(5)
        s.connect(("::1", port))
        s.sendall(b"hello")
        return s.recv(100)


def test_an_ipv6_only_client_to_ipv6_loopback_records_and_replays(
    cassette_dir: Path, shout6: int
) -> None:
    with use_cassette("v6", record_mode="all", cassette_dir=cassette_dir):
        assert _v6only_roundtrip(shout6) == b"HELLO"
    recorded = load(cassette_dir / "v6.msgpack").connections
    assert [c.target for c in recorded] == [f"[::1]:{shout6}"]
    assert recorded[0].events, "an empty connection was recorded"
    with use_cassette("v6", record_mode="none", cassette_dir=cassette_dir) as cassette:
        assert _v6only_roundtrip(shout6) == b"HELLO"
    assert cassette.play_count == 1


# -- a block that records nothing ------------------------------------------------------


def test_a_recording_block_with_no_connection_warns_and_names_the_likely_cause(
    cassette_dir: Path,
) -> None:
    with pytest.warns(NothingRecordedWarning, match=r"cassette\.address"):
        with use_cassette("nothing", record_mode="all", cassette_dir=cassette_dir):
            pass


def test_a_block_that_records_or_replays_does_not_warn(
    cassette_dir: Path, shout: servers.ThreadedServer
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", NothingRecordedWarning)
        with use_cassette("one", record_mode="all", cassette_dir=cassette_dir):
            _roundtrip(shout.address)
        with use_cassette("one", record_mode="new_episodes", cassette_dir=cassette_dir):
            _roundtrip(shout.address)


# -- other users ----------------------------------------------------------------------


def _as_another_user(host: str, port: int, uid: int = 65534) -> bytes:
    """Connect, send and read as user ``uid``, in a forked child; what it read."""
    import _socket

    c_connect = _socket.socket.connect  # the C method: nothing of the parent's
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(read)
            os.setuid(uid)
            s = socket.socket()
            s.settimeout(5)
            c_connect(s, (host, port))
            s.sendall(b"hello")
            os.write(write, s.recv(100))
        except BaseException:
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as got:
        data = got.read()
    os.waitpid(pid, 0)
    return data


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="needs Linux and root, to run a client as another user",
)
def test_a_client_of_another_user_is_not_served(
    cassette_dir: Path, shout: servers.ThreadedServer
) -> None:
    with use_cassette("other", record_mode="all", cassette_dir=cassette_dir):
        _roundtrip(shout.address)
    with pytest.raises(CassetteError, match="user id 65534"):
        with use_cassette("other", record_mode="none", cassette_dir=cassette_dir) as cassette:
            host, port = cassette.address(shout.target)
            assert _as_another_user(host, port) != b"HELLO", "another user's client was served"
            # The test's own user is served as before.
            assert _roundtrip((host, port)) == b"HELLO"


# -- other patches ---------------------------------------------------------------------


def test_a_connect_patch_in_place_when_the_block_begins_is_wrapped_and_restored(
    cassette_dir: Path, shout: servers.ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = socket.socket.connect
    seen: list[Any] = []

    def counting(self: socket.socket, address: Any) -> None:
        seen.append(address)
        real(self, address)

    monkeypatch.setattr(socket.socket, "connect", counting)
    with use_cassette("patched", record_mode="all", cassette_dir=cassette_dir):
        assert _roundtrip(shout.address) == b"HELLO"
    assert socket.socket.__dict__["connect"] is counting
    # The client's connect went through the patch, to the cassette's listener.
    assert seen and all(a != shout.address for a in seen[-1:])


@pytest.mark.skipif(not hasattr(socket, "MSG_FASTOPEN"), reason="no TCP Fast Open")
def test_a_tcp_fast_open_sendto_is_intercepted(
    cassette_dir: Path, shout: servers.ThreadedServer
) -> None:
    def fast_open() -> bytes:
        with socket.socket() as s:
            try:
                s.sendto(b"hello", socket.MSG_FASTOPEN, shout.address)
            except OSError as exc:
                pytest.skip(f"TCP Fast Open not usable here: {exc}")
            s.settimeout(5)
            return s.recv(100)

    with use_cassette("tfo", record_mode="all", cassette_dir=cassette_dir):
        assert fast_open() == b"HELLO"
    assert [c.target for c in load(cassette_dir / "tfo.msgpack").connections] == [shout.target]
