"""``tcpcassette demo``: record, replay and break an exchange with a server of its own."""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from ._core.errors import CassetteError
from ._core.faults import at
from ._core.transcript import format_transcript
from ._use_cassette import use_cassette
from .faults import Reset


class _KeyValueServer:
    """A tiny line protocol: ``SET key value`` answers ``+OK``, ``GET key`` the value."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port: int = self.sock.getsockname()[1]
        self.data: dict[bytes, bytes] = {}
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                self._talk(conn)

    def _talk(self, conn: socket.socket) -> None:
        for line in conn.makefile("rb"):
            words = line.split()
            if words[:1] == [b"SET"] and len(words) == 3:
                self.data[words[1]] = words[2]
                conn.sendall(b"+OK\r\n")
            elif words[:1] == [b"GET"] and len(words) == 2:
                conn.sendall(b"$" + self.data.get(words[1], b"(nil)") + b"\r\n")
            else:
                conn.sendall(b"-ERR unknown command\r\n")

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)


def _client(port: int) -> list[str]:
    """What the demo's client sees: each reply, or the error it got."""
    seen: list[str] = []
    try:
        with socket.create_connection(("localhost", port), timeout=5) as sock:
            replies = sock.makefile("rb")
            for command in (b"SET greeting hello\r\n", b"GET greeting\r\n"):
                sock.sendall(command)
                reply = replies.readline()
                if not reply:
                    seen.append("connection closed by the server")
                    break
                seen.append(f"{command.strip().decode()}  ->  {reply.strip().decode()}")
    except OSError as exc:
        seen.append(f"{type(exc).__name__}: {exc}")
    return seen


def run_demo(
    *, directory: Path | None = None, force: bool = False, out: Callable[[str], None] = print
) -> int:
    """Run the demo, writing what happens with ``out``; returns an exit status.

    The cassette goes to ``directory``, or to a new temporary folder, and is
    kept there either way; the demo says where, so the path it prints can be
    opened with ``tcpcassette show``.  A ``demo.msgpack`` already in
    ``directory`` is replaced only with ``force``: it may be a cassette of the
    user's own that happens to have that name.
    """
    if directory is not None and not force:
        existing = directory / "demo.msgpack"
        if existing.exists() or existing.is_symlink():
            raise CassetteError(
                f"{existing} exists already: the demo records a new cassette of that name. "
                "Pass --force to replace it, or choose another --dir."
            )
    where = (
        directory if directory is not None else Path(tempfile.mkdtemp(prefix="tcpcassette-demo-"))
    )
    result = _run(where, out)
    out(
        f"\nThe cassette is kept in {where}: `tcpcassette show {where / 'demo.msgpack'}` "
        "prints it again. Delete the folder when you are done with it."
    )
    return result


def _run(where: Path, out: Callable[[str], None]) -> int:
    server = _KeyValueServer()
    port = server.port
    out(f"1. Recording: a client talks to a real server on localhost:{port}")
    with use_cassette("demo", record_mode="all", cassette_dir=where) as cassette:
        live = _client(port)
    for line in live:
        out(f"     {line}")
    out(f"   saved {cassette.path}\n")
    out(format_transcript(cassette))
    server.stop()

    out("\n2. Replaying with the server stopped (nothing listens on that port now)")
    with use_cassette("demo", record_mode="none", cassette_dir=where):
        replayed = _client(port)
    for line in replayed:
        out(f"     {line}")

    out("\n3. Replaying with a reset injected after event 2 (the reply to SET)")
    with use_cassette(
        "demo",
        record_mode="none",
        cassette_dir=where,
        faults=[at(Reset(), connection=0, after=2)],
    ):
        broken = _client(port)
    for line in broken:
        out(f"     {line}")

    ok = replayed == live and broken[0] == live[0] and "ConnectionResetError" in broken[-1]
    out(
        "\n"
        + (
            "Replay matched the recording, and the reset reached the client."
            if ok
            else "Unexpected: the replay did not match the recording."
        )
    )
    return 0 if ok else 1
