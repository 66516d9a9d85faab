"""Bounds with real sockets: a client that keeps sending during a silence, a
cassette used in a forked child, an asyncio connect recorded from a server that
does not answer, too few file descriptors."""

from __future__ import annotations

import socket
import textwrap
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
