"""Real TCP servers for the tests, on ephemeral loopback ports, in threads.

Each server runs a handler per connection on its own thread and is stopped by
the test that started it.  They are deliberately plain socket code: what a
recording must carry is what these do on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import socket
import struct
import threading
from collections.abc import Callable, Iterator

Handler = Callable[[socket.socket], None]

#: How often a stdlib server's loop looks for a shutdown request.  The stdlib's
#: default of 0.5 s made every stop wait for up to half a second.
SHUTDOWN_POLL = 0.005


class ThreadedServer:
    """Accepts on 127.0.0.1:0 and runs ``handler`` for each connection on a thread."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept, daemon=True)
        self._accept_thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _run(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self.handler(conn)
        with contextlib.suppress(OSError):
            conn.close()

    def stop(self) -> None:
        # shutdown() wakes the accept() blocked in the other thread on Linux.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._accept_thread.join(5)
        for t in self._threads:
            t.join(5)


@contextlib.contextmanager
def running(handler: Handler) -> Iterator[ThreadedServer]:
    server = ThreadedServer(handler)
    try:
        yield server
    finally:
        server.stop()


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with an RST."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# -- handlers -------------------------------------------------------------------


def upper_echo(conn: socket.socket) -> None:
    """Echo every chunk upper-cased until the client closes; then close."""
    while data := conn.recv(65536):
        conn.sendall(data.upper())


def length_prefixed(conn: socket.socket) -> None:
    """4-byte big-endian length-prefixed requests; the reply is b'ok:' + request reversed."""
    while True:
        try:
            header = recv_exactly(conn, 4)
        except EOFError:
            return
        body = recv_exactly(conn, struct.unpack(">I", header)[0])
        reply = b"ok:" + body[::-1]
        conn.sendall(struct.pack(">I", len(reply)) + reply)


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def read_frame(sock: socket.socket) -> bytes:
    return recv_exactly(sock, struct.unpack(">I", recv_exactly(sock, 4))[0])


def greeter(conn: socket.socket) -> None:
    """Speaks first, like SMTP: a greeting, then one reply per line, then closes on QUIT."""
    conn.sendall(b"220 hello from greeter\r\n")
    buf = b""
    while True:
        data = conn.recv(4096)
        if not data:
            return
        buf += data
        while b"\r\n" in buf:
            line, buf = buf.split(b"\r\n", 1)
            if line == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            conn.sendall(b"250 " + line + b"\r\n")


def reset_after_request(conn: socket.socket) -> None:
    """Reads one chunk, answers part of it, then resets the connection."""
    conn.recv(4096)
    conn.sendall(b"partial")
    reset(conn)


def reset_at_once(conn: socket.socket) -> None:
    """Resets every connection as soon as it is accepted (the seed's server)."""
    reset(conn)


def half_close_reader(conn: socket.socket) -> None:
    """Reads until the client half-closes, then replies with the byte count and closes."""
    total = 0
    while data := conn.recv(65536):
        total += len(data)
    conn.sendall(f"got {total}".encode())
    conn.shutdown(socket.SHUT_WR)


def chunked_sender(conn: socket.socket) -> None:
    """Sends three separate chunks, pausing until the client acknowledges each one."""
    for part in (b"one", b"two", b"three"):
        conn.sendall(part)
        if conn.recv(16) != b"ack":
            return
    conn.shutdown(socket.SHUT_WR)
    conn.recv(16)


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port where nothing listens while the block runs: connects are refused.

    The port stays bound (never listening) until the block ends, so no other
    server, in this process or another, can start listening there meanwhile.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        yield port


class HTTPServer:
    """The stdlib's threading HTTP server on 127.0.0.1:0, serving in a thread."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port: int = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL}, daemon=True
        )
        self._thread.start()
        self.running = True

    def stop(self) -> None:
        """Stop serving and close the listening socket; stopping twice is harmless."""
        if self.running:
            self.running = False
            self.httpd.shutdown()
            self.httpd.server_close()
            self._thread.join(5)


async def upper_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """asyncio handler: answer one line upper-cased, then close."""
    writer.write((await reader.readline()).upper())
    await writer.drain()
    writer.close()


async def many_line_clients(port: int, count: int) -> list[bytes]:
    """``count`` concurrent asyncio clients, each sending b"client N\\n"; their replies."""

    async def one(i: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"client %d\n" % i)
        reply = await reader.readline()
        writer.close()
        await writer.wait_closed()
        return reply

    return list(await asyncio.gather(*(one(i) for i in range(count))))
