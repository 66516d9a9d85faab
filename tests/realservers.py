"""Real servers nobody here wrote, started by the tests on ephemeral loopback ports.

Record tests (marked ``record``) talk to these.  Under ``pytest
--record-mode=all -m record`` they rewrite the committed cassettes in
``cassettes/``; in an ordinary run they record into a temporary directory and
check that the fresh recording replays like the committed one.  Replay tests
need no server: they replay the committed cassettes.

A missing server skips its record tests with a reason, except when the
environment variable ``CI`` is set: there a missing install step must fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

import tcpcassette
from tcpcassette import _settings
from tcpcassette._core.exchange import exchanges_of

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

REPO_CASSETTES = Path(__file__).resolve().parent.parent / "cassettes"
START_TIMEOUT = 10.0

#: Every password, token and session cookie the test servers check or hand out.
#: No cassette the suite records may hold one (tests/secret_check.py), except
#: in tests marked ``keeps_secrets``, which turn scrubbing off on purpose.
SECRETS: set[str] = set()


def secret(value: str) -> str:
    """``value``, registered in :data:`SECRETS`: ``PASSWORD = secret("...")``."""
    SECRETS.add(value)
    return value


def rerecording() -> bool:
    """True when this run was asked to rewrite the committed cassettes."""
    ps = _settings.current()
    return ps is not None and ps.cli_record_mode == "all"


def missing(what: str) -> None:
    """Skip (or, under CI, fail) a test whose real server is not installed."""
    message = f"{what} is not installed; install it to run the record tests"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must install it: see .ci/run)")
    pytest.skip(message)


def committed_target(name: str) -> tuple[str, int]:
    """The address the committed cassette ``name`` was recorded against."""
    cassette = tcpcassette.load(REPO_CASSETTES / f"{name}.msgpack")
    host, port = cassette.connections[0].target.rsplit(":", 1)
    return host, int(port)


@contextlib.contextmanager
def replaying_committed(name: str, **options: object) -> Iterator[tcpcassette.Cassette]:
    """Replay a committed cassette (never rewriting it, whatever the record mode)."""
    if rerecording():
        pytest.skip("replay tests are skipped while cassettes are re-recorded")
    with tcpcassette.use_cassette(
        name,
        record_mode="none",
        cassette_dir=REPO_CASSETTES,
        **options,  # type: ignore[arg-type]
    ) as cassette:
        yield cassette


# -- Redis --------------------------------------------------------------------------


class RedisServer:
    """Debian's redis-server on an ephemeral loopback port, with nothing persisted.

    redis-server cannot pick a port itself (``--port 0`` turns TCP off), so a
    port the kernel just handed out is offered to it.  Whether redis-server
    got it is read from its own log, not guessed by connecting: if another
    process took the port meanwhile, redis-server says so and exits, and
    another port is tried.
    """

    ATTEMPTS = 10

    def __init__(self, *, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            missing("redis-server (Debian package redis-server)")
        auth = ["--requirepass", password] if password else []
        self._start(binary or "redis-server", lambda port: ["--port", str(port), *auth])

    def _start(self, binary: str, listen: Callable[[int], list[str]], what: str = "") -> None:
        """Start redis-server with ``listen(port)``'s options on an offered port, retrying
        another port while the offered one turns out to be taken."""
        log: list[str] = []
        for _attempt in range(self.ATTEMPTS):
            self.port = offered_port()
            self.proc = subprocess.Popen(
                [
                    binary,
                    *listen(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--logfile",
                    "",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            log = self._read_log_until_ready()
            if self.proc.poll() is None:
                # Ready. Keep reading its log so that it never blocks on a full pipe.
                threading.Thread(target=self._drain, daemon=True).start()
                return
            if not any("Address already in use" in line for line in log):
                break  # not a port clash: retrying would not help
        raise RuntimeError(f"redis-server did not start{what}:\n" + "".join(log))

    def _read_log_until_ready(self) -> list[str]:
        """redis-server's log lines up to "Ready to accept connections", or up to its exit."""
        assert self.proc.stdout is not None
        lines: list[str] = []
        timer = threading.Timer(START_TIMEOUT, self.proc.kill)  # a server that never gets ready
        timer.start()
        try:
            for line in self.proc.stdout:
                lines.append(line)
                if "Ready to accept connections" in line:
                    return lines
        finally:
            timer.cancel()
        self.proc.wait()  # its log ended: it exited
        return lines

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for _line in self.proc.stdout:
            pass

    def stop(self) -> None:
        # Nothing is persisted, so there is nothing to shut down cleanly.
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


#: Where Debian puts server binaries, searched even when PATH leaves them out.
SYSTEM_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def server_binary(name: str, package: str) -> str:
    """The path of a server binary, or a skip (a failure under CI) naming its package."""
    found = shutil.which(name, path=SYSTEM_PATH)
    if found is None:
        missing(f"{name} (Debian package {package})")
    return found or name


def in_fresh_process(script: str, *args: str, timeout: float = 60.0) -> dict[str, Any]:
    """Run ``script`` in a new Python process, as the next test run would, and return
    the JSON object it prints last."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def offered_port() -> int:
    """A port the kernel considers free right now: an offer, not a reservation."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something accepts on ``port``; a server that exits first raises at once.

    The port was only offered by the kernel (servers that need a number on
    their command line cannot take port 0), so the callers retry with
    another port when the server could not bind it.
    """
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)  # polling a port that is not listening yet
    raise RuntimeError(f"nothing listened on port {port} within {START_TIMEOUT} s")


def redis_client_options() -> dict[str, Any]:
    """redis-py options whose handshake does not depend on the redis-py version.

    redis-py 8 sends HELLO 3, CLIENT MAINT_NOTIFICATIONS and CLIENT SETINFO
    with its own version on connect; cassettes would then break on its next
    release.  RESP2 without them sends only the commands the test makes.
    """
    import inspect

    import redis

    parameters = inspect.signature(redis.Redis.__init__).parameters
    options: dict[str, Any] = {"protocol": 2}
    if "driver_info" in parameters:
        options["driver_info"] = None  # None turns CLIENT SETINFO off
    else:
        options.update(lib_name=None, lib_version=None)
    if "maint_notifications_config" in parameters:
        from redis.maint_notifications import MaintNotificationsConfig

        options["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
    return options


def _endings(connection: tcpcassette.Connection) -> list[str]:
    return sorted(e.kind for e in connection.events if not e.data)


class Stoppable(Protocol):
    port: int

    def stop(self) -> None: ...


def record_then_stop(
    server: Stoppable, workload: Callable[[int], object], expected: object, directory: Path
) -> int:
    """Record ``workload`` against the live ``server`` into cassette ``default``, then
    stop the server (replay must not need it); returns the port it listened on."""
    try:
        with tcpcassette.use_cassette("default", record_mode="all", cassette_dir=directory):
            assert workload(server.port) == expected
    finally:
        server.stop()
    return server.port


def record_and_compare(
    name: str,
    server: Stoppable,
    run: Callable[[int], object],
    expected: object,
    tmp_path: Path,
    **options: Any,
) -> None:
    """Record ``run`` against a live server, then check the fresh recording.

    When re-recording, the cassette goes to ``cassettes/``.  Otherwise it goes
    to ``tmp_path`` and, with the server stopped, must replay to the same
    results, with the same connections ending the same way, and the same
    client bytes (apart from the port, which differs between recordings) as
    the committed cassette.
    """
    where = REPO_CASSETTES if rerecording() else tmp_path
    with tcpcassette.use_cassette(name, record_mode="all", cassette_dir=where, **options):
        assert run(server.port) == expected
    server.stop()
    if rerecording():
        return
    with tcpcassette.use_cassette(name, record_mode="none", cassette_dir=where, **options) as fresh:
        assert run(server.port) == expected
    assert fresh.all_played
    committed = tcpcassette.load(REPO_CASSETTES / f"{name}.msgpack")
    _, committed_port = committed_target(name)
    exchange = options.get("matching") == "exchange"
    # Which side's close is recorded first may differ when both close at once.
    fresh_endings = [_endings(c) for c in fresh.connections]
    committed_endings = [_endings(c) for c in committed.connections]
    if exchange:
        # A pool opens as many connections as its threads happen to need at
        # once, so their number varies between recordings (and exchange mode
        # does not replay how connections end): each must end as one did.
        assert fresh_endings and all(e in committed_endings for e in fresh_endings)
    else:
        assert fresh_endings == committed_endings

    def requests(connections: list[tcpcassette.Connection], port: int) -> list[bytes]:
        # In exchange mode which connection carried a request varies: compare requests.
        if exchange:
            found = [x.request for i, c in enumerate(connections) for x in exchanges_of(i, c)]
        else:
            found = [c.client_bytes for c in connections]
        return sorted(r.replace(str(port).encode(), b"PORT") for r in found)

    assert requests(fresh.connections, server.port) == requests(
        committed.connections, committed_port
    )


# -- HTTP/1.1: cheroot serving a WSGI app ---------------------------------------------


def wsgi_app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """Small, deterministic endpoints for the HTTP scenarios."""
    path = environ["PATH_INFO"]
    if path == "/big":
        body = bytes(range(256)) * 4096  # 1 MiB
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
        )
        return [body[i : i + 65536] for i in range(0, len(body), 65536)]
    if path == "/kib":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "1024")])
        return [b"k" * 1024]
    if path == "/cached":
        start_response("304 Not Modified", [("ETag", '"v1"')])
        return []
    if path == "/upload":
        data = environ["wsgi.input"].read()
        body = f"received {len(data)} bytes".encode()
    else:
        body = f"hello from {path}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class CherootServer:
    """cheroot's WSGI server in a thread, on an ephemeral port, serving ``app``."""

    def __init__(self, app: Callable[..., Iterable[bytes]] = wsgi_app) -> None:
        try:
            from cheroot import wsgi
        except ImportError:
            missing("cheroot (pip install -e '.[test]')")
        self.server = wsgi.Server(("127.0.0.1", 0), app, numthreads=4)
        self.server.prepare()  # listening from here on: connects queue until serve() accepts
        self.port: int = self.server.bind_addr[1]
        self.thread = threading.Thread(target=self.server.serve, daemon=True)
        self.thread.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.server.stop()
            self.thread.join(10)
            self.running = False


# -- SMTP: aiosmtpd ---------------------------------------------------------------------


class SmtpServer:
    """aiosmtpd's controller on an ephemeral port, keeping the messages it receives.

    ``smtp_options`` go to aiosmtpd's ``SMTP`` (``tls_context``, ``require_starttls``).
    """

    def __init__(self, **smtp_options: Any) -> None:
        try:
            from aiosmtpd.controller import Controller
        except ImportError:
            missing("aiosmtpd (pip install -e '.[test]')")
        self.messages: list[bytes] = []
        outer = self

        class Keep:
            async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
                outer.messages.append(envelope.content)  # type: ignore[attr-defined]
                return "250 Message accepted for delivery"

        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        self.port = listener.getsockname()[1]

        class OnBoundSocket(Controller):
            """aiosmtpd's controller serving on a socket bound beforehand, on port 0."""

            def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
                return self.loop.create_server(self._factory_invoker, sock=listener)

        self.controller = OnBoundSocket(
            Keep(),
            hostname="127.0.0.1",
            port=self.port,
            server_hostname="mail.test",
            **smtp_options,
        )
        self.controller.start()  # returns once the server has answered a first connection
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.controller.stop()
            self.running = False
