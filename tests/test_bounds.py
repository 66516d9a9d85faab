"""Bounds with real sockets: a client that keeps sending during a silence, a
cassette used in a forked child, an asyncio connect recorded from a server that
does not answer, too few file descriptors."""

from __future__ import annotations

import asyncio
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import tcpcassette
from tcpcassette import (
    ClientClose,
    ClientData,
    Connection,
    ServerClose,
    ServerData,
    at,
    use_cassette,
)
from tcpcassette._core.events import ConnectRefused, ConnectTimedOut
from tcpcassette.faults import Timeout

from .realservers import in_fresh_process, offered_port


def ping_cassette(directory: Path, name: str, port: int) -> None:
    tcpcassette.Cassette(
        connections=[
            Connection(
                target=f"127.0.0.1:{port}",
                events=(
                    ClientData(data=b"ping\n"),
                    ServerData(data=b"pong\n"),
                    ClientClose(),
                    ServerClose(),
                ),
            )
        ]
    ).save(directory / f"{name}.msgpack")


def test_a_client_sending_through_a_timeout_fault_waits_in_the_kernel(tmp_path: Path) -> None:
    """During a Timeout fault replay stops reading: a client that keeps sending
    fills the socket buffers and blocks, instead of growing replay's memory."""
    port = offered_port()
    ping_cassette(tmp_path, "t", port)
    fault = at(Timeout(seconds=20), connection=0, after=1)
    chunk = b"x" * (1 << 20)
    sent = 0
    with use_cassette("t", cassette_dir=tmp_path, faults=[fault]):
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"ping\n")
            with pytest.raises(TimeoutError):
                while sent < 512 << 20:
                    s.sendall(chunk)
                    sent += len(chunk)
    assert sent < 64 << 20  # the kernel's buffers, not the whole stream


FORKED = textwrap.dedent(
    """
    import json, os, socket, sys, time
    from tcpcassette import use_cassette

    directory, port = sys.argv[1], int(sys.argv[2])

    def ping():
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"ping\\n")
            return s.recv(100).decode()

    with use_cassette("f", cassette_dir=directory):
        parent = ping()
    child = os.fork()
    if child == 0:
        try:
            with use_cassette("f", cassette_dir=directory):
                code = 0 if ping() == "pong\\n" else 3
        except BaseException as exc:
            print(type(exc).__name__, exc, file=sys.stderr)
            code = 4
        os._exit(code)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(child, 9)
        os.waitpid(child, 0)
        status = -1
    print(json.dumps({"parent": parent, "child": os.waitstatus_to_exitcode(status)
                      if status != -1 else "hung"}))
    """
)


def test_use_cassette_in_a_forked_child_starts_its_own_loop(tmp_path: Path) -> None:
    """The parent's private loop thread does not exist in a forked child: the
    child starts a fresh one and replays at once."""
    port = offered_port()
    ping_cassette(tmp_path, "f", port)
    result = in_fresh_process(FORKED, str(tmp_path), str(port))
    assert result == {"parent": "pong\n", "child": 0}


@pytest.fixture
def unresponsive() -> Iterator[int]:
    """A port whose listener never completes a handshake: its one-place backlog is full."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    filler = socket.socket()
    filler.connect(hole.getsockname())
    try:
        yield hole.getsockname()[1]
    finally:
        filler.close()
        hole.close()


def test_recording_an_asyncio_connect_never_blocks_the_event_loop(
    tmp_path: Path, unresponsive: int
) -> None:
    """An asyncio client recording against a server that never answers: its loop
    keeps running (a ticker shows no gap), the client is reset once
    connect_timeout passed, and the cassette holds a connect timeout."""

    async def client() -> tuple[float, bool]:
        loop = asyncio.get_running_loop()
        longest = 0.0
        stop = False

        async def ticker() -> None:
            nonlocal longest
            last = loop.time()
            while not stop:
                await asyncio.sleep(0.01)
                longest = max(longest, loop.time() - last)
                last = loop.time()

        ticks = asyncio.create_task(ticker())
        failed = False
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", unresponsive), 5
            )
            try:
                writer.write(b"ping\n")
                await asyncio.wait_for(reader.read(100), 5)
            finally:
                writer.close()
        except (OSError, asyncio.TimeoutError):
            failed = True
        stop = True
        await ticks
        return longest, failed

    with use_cassette("a", cassette_dir=tmp_path, record_mode="all", connect_timeout=1.0):
        longest, failed = asyncio.run(client())
    assert longest < 0.5, f"the event loop was blocked for {longest:.2f} s"
    assert failed
    events = tcpcassette.load(tmp_path / "a.msgpack").connections[0].events
    assert [type(e) for e in events] == [ConnectTimedOut]


def test_recording_an_asyncio_connect_to_a_closed_port_is_refused_at_once(
    tmp_path: Path,
) -> None:
    """A refusal the kernel answered at once still reaches the asyncio client's
    own connect as ConnectionRefusedError, and is recorded."""
    port = offered_port()

    async def client() -> None:
        await asyncio.open_connection("127.0.0.1", port)

    with use_cassette("r", cassette_dir=tmp_path, record_mode="all"):
        with pytest.raises(ConnectionRefusedError):
            asyncio.run(client())
    events = tcpcassette.load(tmp_path / "r.msgpack").connections[0].events
    assert [type(e) for e in events] == [ConnectRefused]


FEW_DESCRIPTORS = textwrap.dedent(
    """
    import json, resource, sys
    import tcpcassette
    from tcpcassette import ClientData, Connection, ServerData, use_cassette

    directory = sys.argv[1]
    tcpcassette.Cassette(connections=[
        Connection(target=f"127.0.0.1:{20000 + i}",
                   events=(ClientData(data=b"a"), ServerData(data=b"b")))
        for i in range(80)
    ]).save(directory + "/many.msgpack")
    resource.setrlimit(resource.RLIMIT_NOFILE, (48, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    try:
        with use_cassette("many", cassette_dir=directory):
            pass
        print(json.dumps({"error": None}))
    except Exception as exc:
        print(json.dumps({"error": type(exc).__name__, "cassette": isinstance(
            exc, tcpcassette.CassetteError), "text": str(exc)}))
    """
)


def test_too_few_file_descriptors_is_a_cassette_error_saying_how_many(tmp_path: Path) -> None:
    """80 recorded targets and a limit of 48 descriptors: a CassetteError that
    names the limit and how many descriptors are needed, not an IndexError."""
    result = in_fresh_process(FEW_DESCRIPTORS, str(tmp_path))
    assert result["cassette"], result
    text = result["text"]
    assert "too few file descriptors" in text
    assert "80 targets" in text and "may open 48" in text
    needed = int(text.split("It needs at least ")[1].split(",")[0])
    assert needed > 80
