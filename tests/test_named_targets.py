"""Targets by name over real sockets: a server on a new ephemeral port every run still replays.

Each test records against a server on one port, stops it, and replays with the
name mapped to another port that nothing listens on (replay must not need it),
in a fresh process where a next test run would be one.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import tcpcassette
from tcpcassette import (
    CassetteError,
    InvalidOptionError,
    UnrecordedConnectionError,
    load,
    use_cassette,
)
from tcpcassette import _standalone as standalone
from tcpcassette._io.session import Session

from . import servers
from .blocks import raises_at_exit
from .commands import run_cli
from .realservers import CherootServer, in_fresh_process, offered_port
from .servers import SHUTDOWN_POLL, ThreadedServer

Serve = Callable[[servers.Handler], ThreadedServer]


class Shout(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line.upper())


class ShoutServer4(socketserver.ThreadingTCPServer):
    daemon_threads = True


class ShoutServer6(ShoutServer4):
    address_family = socket.AF_INET6


class ShoutServer:
    """A stdlib socketserver on an ephemeral port of ``host``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        kind = ShoutServer6 if ":" in host else ShoutServer4
        self.server = kind((host, 0), Shout)
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(SHUTDOWN_POLL,), daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def shout() -> Iterator[ShoutServer]:
    server = ShoutServer()
    yield server
    server.stop()


def talk(host: str, port: int, line: bytes = b"hello\n") -> bytes:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(line)
        return s.makefile("rb").readline()


def another_port(*used: int) -> int:
    """A free port other than ``used``: nothing listens on it."""
    while True:
        port = offered_port()
        if port not in used:
            return port


REPLAY_SHOUT = """
import json, socket, sys
from tcpcassette import use_cassette

directory, host, port, target = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with use_cassette("named", cassette_dir=directory, targets={"shout": target}) as cas:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"hello\\n")
        got = s.makefile("rb").readline()
    recording = cas.recording
print(json.dumps({"got": got.decode(), "played": cas.play_count, "recording": recording}))
"""


def test_a_socketserver_on_a_new_port_replays_under_its_name_in_a_fresh_process(
    cassette_dir: Path, shout: ShoutServer
) -> None:
    recorded_port = shout.port
    with use_cassette(
        "named",
        record_mode="all",
        cassette_dir=cassette_dir,
        targets={"shout": f"localhost:{recorded_port}"},
    ):
        assert talk("localhost", recorded_port) == b"HELLO\n"
    shout.stop()
    saved = load(cassette_dir / "named.msgpack")
    assert [c.target for c in saved.connections] == ["shout"]
    assert "localhost" in saved.hosts  # the host the name mapped to, as before

    port = another_port(recorded_port)
    result = in_fresh_process(
        REPLAY_SHOUT, str(cassette_dir), "localhost", str(port), f"localhost:{port}"
    )
    assert result == {"got": "HELLO\n", "played": 1, "recording": False}

    shown = run_cli("show", str(cassette_dir / "named.msgpack"))
    assert shown.returncode == 0, shown.stderr
    assert "connection 0 → shout:" in shown.stdout


def test_an_ipv6_literal_address_maps_a_name(cassette_dir: Path) -> None:
    try:
        server = ShoutServer("::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        with use_cassette(
            "named",
            record_mode="all",
            cassette_dir=cassette_dir,
            targets={"shout": f"[::1]:{server.port}"},
        ):
            assert talk("::1", server.port) == b"HELLO\n"
    finally:
        server.stop()
    assert [c.target for c in load(cassette_dir / "named.msgpack").connections] == ["shout"]
    port = another_port(server.port)
    result = in_fresh_process(REPLAY_SHOUT, str(cassette_dir), "::1", str(port), f"[::1]:{port}")
    assert result["got"] == "HELLO\n" and result["played"] == 1


REPLAY_HTTP = """
import http.client, json, sys
from tcpcassette import use_cassette

directory, port = sys.argv[1], int(sys.argv[2])
with use_cassette("http", cassette_dir=directory, targets={"api": f"localhost:{port}"}) as cas:
    bodies = []
    conn = http.client.HTTPConnection("localhost", port, timeout=5)  # Host: localhost:<port>
    for path in ("/one", "/two"):
        conn.request("GET", path)
        bodies.append(conn.getresponse().read().decode())
    conn.close()
print(json.dumps({"bodies": bodies, "played": cas.play_count}))
"""


def test_http_client_replays_with_the_new_port_in_its_host_header(cassette_dir: Path) -> None:
    server = CherootServer()
    recorded_port = server.port
    try:
        with use_cassette(
            "http",
            record_mode="all",
            cassette_dir=cassette_dir,
            targets={"api": f"localhost:{recorded_port}"},
        ):
            conn = http.client.HTTPConnection("localhost", recorded_port, timeout=5)
            bodies = []
            for path in ("/one", "/two"):
                conn.request("GET", path)
                bodies.append(conn.getresponse().read().decode())
            conn.close()
    finally:
        server.stop()
    assert bodies == ["hello from /one", "hello from /two"]
    (recorded,) = load(cassette_dir / "http.msgpack").connections
    assert recorded.target == "api"
    assert f"Host: localhost:{recorded_port}\r\n".encode() in recorded.client_bytes

    port = another_port(recorded_port)  # the Host header the replay sends differs
    result = in_fresh_process(REPLAY_HTTP, str(cassette_dir), str(port))
    assert result == {"bodies": bodies, "played": 1}


# -- the error when only the port changed ------------------------------------------------------


def test_a_port_that_changed_without_a_name_says_so_and_suggests_naming_it(
    cassette_dir: Path, shout: ShoutServer
) -> None:
    recorded_port = shout.port
    with use_cassette("plain", record_mode="all", cassette_dir=cassette_dir):
        assert talk("localhost", recorded_port) == b"HELLO\n"
    shout.stop()
    port = another_port(recorded_port)
    with raises_at_exit(UnrecordedConnectionError) as caught:
        with use_cassette("plain", cassette_dir=cassette_dir):
            with pytest.raises(UnrecordedConnectionError):
                talk("localhost", port)
    message = str(caught.value)
    assert f"no connection to localhost:{port}, but it holds localhost:{recorded_port}" in message
    assert "targets={" in message and "port has likely changed" in message
    assert f"Recorded targets: localhost:{recorded_port}." in message
    assert "new_episodes" not in message


def test_a_named_cassette_replayed_without_names_says_which_names_to_map(
    cassette_dir: Path, shout: ShoutServer
) -> None:
    with use_cassette(
        "named",
        record_mode="all",
        cassette_dir=cassette_dir,
        targets={"shout": f"127.0.0.1:{shout.port}"},
    ):
        assert talk("127.0.0.1", shout.port) == b"HELLO\n"
    with raises_at_exit(UnrecordedConnectionError, match="its targets are named") as caught:
        with use_cassette("named", cassette_dir=cassette_dir):
            with pytest.raises(UnrecordedConnectionError):
                talk("127.0.0.1", shout.port)
    assert 'targets={"shout": "host:port"}' in str(caught.value)


# -- options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("targets", "says"),
    [
        ({"my redis": "localhost:6379"}, "is not a target name"),
        ({"redis:1": "localhost:6379"}, "is not a target name"),
        ({"": "localhost:6379"}, "is not a target name"),
        ({"redis": "localhost"}, "has no port"),
        ({"a": "localhost:1", "b": "localhost:1"}, "both map to"),
        ("localhost:6379", "not one string"),
    ],
)
def test_bad_targets_are_refused_when_the_cassette_is_made(targets: object, says: str) -> None:
    with pytest.raises(InvalidOptionError, match=says):
        use_cassette("x", targets=targets)  # type: ignore[arg-type]


# -- address() by name ------------------------------------------------------------------------

CLIENT = (
    "import socket, sys\n"
    "s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)\n"
    "s.sendall(sys.argv[3].encode() + b'\\n')\n"
    "print(s.makefile('rb').readline().decode().strip())\n"
)


def subprocess_talk(address: tuple[str, int], line: str = "hello") -> str:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, address[0], str(address[1]), line],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_address_of_a_name_records_and_replays_a_client_tcpcassette_cannot_redirect(
    cassette_dir: Path, shout: ShoutServer
) -> None:
    recorded_port = shout.port
    with use_cassette(
        "sub",
        record_mode="all",
        cassette_dir=cassette_dir,
        targets={"shout": f"localhost:{recorded_port}"},
    ) as cassette:
        assert cassette.address(f"localhost:{recorded_port}") == cassette.address("shout")
        assert subprocess_talk(cassette.address("shout")) == "HELLO"
    shout.stop()
    assert [c.target for c in load(cassette_dir / "sub.msgpack").connections] == ["shout"]
    port = another_port(recorded_port)
    with use_cassette(
        "sub", cassette_dir=cassette_dir, targets={"shout": f"localhost:{port}"}
    ) as cas:
        listener = cas.address("shout")
        assert listener[1] != port and cas.address(f"localhost:{port}") == listener
        assert subprocess_talk(listener) == "HELLO"
    assert cas.all_played


def test_a_name_this_run_maps_nowhere_cannot_be_recorded_and_says_how_to_map_it(
    cassette_dir: Path, shout: ShoutServer
) -> None:
    with use_cassette(
        "sub",
        record_mode="all",
        cassette_dir=cassette_dir,
        targets={"shout": f"127.0.0.1:{shout.port}"},
    ) as cassette:
        assert subprocess_talk(cassette.address("shout")) == "HELLO"
    with raises_at_exit(CassetteError, match="maps no address to it") as caught:
        with use_cassette("sub", record_mode="new_episodes", cassette_dir=cassette_dir) as cassette:
            # Replayed from the recording, as no address is needed for that...
            assert subprocess_talk(cassette.address("shout")) == "HELLO"
            # ...but a new connection to the name has nowhere to be recorded from.
            with pytest.raises(subprocess.CalledProcessError):
                subprocess_talk(cassette.address("shout"), "other")
    assert "targets={'shout': 'host:port'}" in str(caught.value)


# -- cassette.recording -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "exists", "recording"),
    [
        ("none", True, False),
        ("once", False, True),
        ("once", True, False),
        ("new_episodes", False, True),
        ("new_episodes", True, True),
        ("all", False, True),
        ("all", True, True),
    ],
)
def test_recording_says_whether_the_cassette_records_in_each_record_mode(
    cassette_dir: Path, shout: ShoutServer, mode: str, exists: bool, recording: bool
) -> None:
    target = {"shout": f"127.0.0.1:{shout.port}"}
    if exists:
        with use_cassette("r", record_mode="all", cassette_dir=cassette_dir, targets=target):
            assert talk("127.0.0.1", shout.port) == b"HELLO\n"
    with use_cassette("r", record_mode=mode, cassette_dir=cassette_dir, targets=target) as cassette:
        assert cassette.recording is recording
        assert talk("127.0.0.1", shout.port) == b"HELLO\n"
    assert cassette.recording is False  # outside the block it records nothing
    # Recorded once, replayed after (new_episodes found the same exchange in it).
    assert len(load(cassette_dir / "r.msgpack").connections) == 1


LEARN_TEST = """
import socket, socketserver, threading
from tcpcassette import use_cassette


class Upper(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline().upper())


def test_talks():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Upper)
    threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
    port = server.server_address[1]  # another port on every run
    try:
        with use_cassette("upper", targets={"upper": f"127.0.0.1:{port}"}) as cassette:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"hi\\n")
                assert s.recv(10) == b"HI\\n"
            print("RECORDING", cassette.recording)
    finally:
        server.shutdown()
        server.server_close()
"""


def test_recording_is_true_while_learning_and_false_while_replaying_under_pytest(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TCPCASSETTE_RECORD_MODE", raising=False)
    # The runs import this tcpcassette, wherever it is installed from.
    here = str(Path(tcpcassette.__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    pytester.makepyfile(test_upper=LEARN_TEST)
    runs = {
        "record": ("--record-mode=all", "-s"),
        "replay": ("-s",),
        "learn": ("--tcpcassette-learn", "-s"),
    }
    seen: dict[str, list[str]] = {}
    for run, args in runs.items():
        result = pytester.runpytest_subprocess(*args)
        result.assert_outcomes(passed=1)
        seen[run] = re.findall(r"RECORDING (\w+)", result.stdout.str())
    assert seen == {"record": ["True"], "replay": ["False"], "learn": ["True"]}
    saved = load(pytester.path / "cassettes" / "upper.msgpack").connections
    assert [c.target for c in saved] == ["upper"]


# -- cassette.live() ------------------------------------------------------------------------


def test_connects_under_live_reach_the_server_unrecorded_and_other_threads_stay_intercepted(
    cassette_dir: Path, serve: Serve
) -> None:
    server = serve(servers.upper_echo)
    with use_cassette(
        "live",
        record_mode="all",
        cassette_dir=cassette_dir,
        targets={"srv": f"127.0.0.1:{server.port}"},
    ) as cassette:
        answers: list[bytes] = []
        with cassette.live():
            # A readiness probe: straight to the server.
            socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
            # A client thread of the code under test, started here, is still recorded.
            worker = threading.Thread(
                target=lambda: answers.append(raw_talk(server.port, b"thread"))
            )
            worker.start()
            worker.join(10)
        answers.append(raw_talk(server.port, b"main"))
    assert answers == [b"THREAD", b"MAIN"]
    assert wait_for(lambda: server.connections == 3)  # the probe reached the real server
    saved = load(cassette_dir / "live.msgpack")
    assert [c.client_bytes for c in saved.connections] == [b"thread", b"main"]


@pytest.mark.filterwarnings("ignore::tcpcassette.NothingRecordedWarning")  # nothing to record here
def test_lookups_under_live_are_the_resolvers_and_are_not_kept(cassette_dir: Path) -> None:
    with use_cassette("lookups", record_mode="all", cassette_dir=cassette_dir) as cassette:
        session = cassette._live
        assert isinstance(session, Session)
        with cassette.live():
            assert socket.getaddrinfo("localhost", 80)
        assert "localhost" not in session.router.table.names
        socket.getaddrinfo("localhost", 80)  # outside live(): remembered, as always
        assert "localhost" in session.router.table.names


def raw_talk(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        return s.recv(100)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.parametrize("mode", ["none", "once"])
def test_a_connect_under_live_fails_at_once_while_the_cassette_only_replays(
    cassette_dir: Path, serve: Serve, mode: str
) -> None:
    server = serve(servers.upper_echo)
    target = {"srv": f"127.0.0.1:{server.port}"}
    with use_cassette("live", record_mode="all", cassette_dir=cassette_dir, targets=target):
        assert raw_talk(server.port, b"x") == b"X"
    before = server.connections
    with use_cassette("live", record_mode=mode, cassette_dir=cassette_dir, targets=target) as cas:
        assert not cas.recording
        started = time.monotonic()
        with cas.live(), pytest.raises(CassetteError, match="only replays") as caught:
            socket.create_connection(("127.0.0.1", server.port), timeout=5)
        assert time.monotonic() - started < 1.0
        assert not isinstance(caught.value, OSError)  # not mistaken for "not ready yet"
        assert "if cassette.recording" in str(caught.value)
        # Outside live() replay goes on as usual.
        assert raw_talk(server.port, b"x") == b"X"
    time.sleep(0.05)
    assert server.connections == before  # nothing reached the server


def test_live_works_only_inside_the_block(cassette_dir: Path) -> None:
    cassette = tcpcassette.Cassette(path=cassette_dir / "x.msgpack")
    with pytest.raises(CassetteError, match="only inside the use_cassette block"):
        with cassette.live():
            pass


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", [None, "shout"])
def test_the_standalone_replay_serves_a_named_target(
    cassette_dir: Path, shout: ShoutServer, target: str | None
) -> None:
    with use_cassette(
        "named",
        record_mode="all",
        cassette_dir=cassette_dir,
        targets={"shout": f"127.0.0.1:{shout.port}"},
    ):
        assert talk("127.0.0.1", shout.port) == b"HELLO\n"
    shout.stop()
    ready: list[tuple[str, int]] = []
    stop = threading.Event()
    found: list[list[CassetteError]] = []

    def serve() -> None:
        found.append(
            standalone.replay(
                cassette_dir / "named.msgpack",
                target=target,
                stop=stop,
                exit_when_played=True,
                on_ready=lambda host, port: ready.append((host, port)),
            )
        )

    worker = threading.Thread(target=serve)
    worker.start()
    try:
        assert wait_for(lambda: bool(ready) or not worker.is_alive())
        assert ready, "the replay server did not start"
        assert talk(*ready[0]) == b"HELLO\n"
        worker.join(20)  # --exit-when-played: it ends once the recording was played
        assert not worker.is_alive()
    finally:
        stop.set()
        worker.join(20)
    assert found == [[]]
