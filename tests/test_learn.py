"""Noise learned from a second recording: a value only another run reveals, then tolerated.

Each recording and each replay runs in a fresh Python process, as the next
test run would: the client puts its own process id on the wire.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tcpcassette import ClientData, Connection, ServerData, load
from tcpcassette._core.learn import learn

from . import servers
from .commands import run_cli
from .servers import ThreadedServer

Serve = Callable[[servers.Handler], ThreadedServer]

CLIENT = """
import os, socket, sys
from tcpcassette import use_cassette
directory, name, mode, port, noise = sys.argv[1:6]
with use_cassette(name, record_mode=mode, cassette_dir=directory, noise=noise):
    with socket.create_connection(("127.0.0.1", int(port)), timeout=5) as s:
        s.sendall(b"HELLO pid=%d\\n" % os.getpid())
        assert s.recv(100) == b"WELCOME\\n"
        s.sendall(b"BYE\\n")
        assert s.recv(100) == b"SEE YOU\\n"
print("ok")
"""


def welcome(conn: socket.socket) -> None:
    """Answers without repeating anything the client said."""
    f = conn.makefile("rb")
    for reply in (b"WELCOME\n", b"SEE YOU\n"):
        if not f.readline():
            return
        conn.sendall(reply)


def run_client(
    directory: Path, name: str, mode: str, port: int, noise: str = "auto"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(CLIENT),
            str(directory),
            name,
            mode,
            str(port),
            noise,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_pid_on_the_wire_replays_after_learning_from_a_second_recording(
    cassette_dir: Path, serve: Serve
) -> None:
    server = serve(welcome)
    assert run_client(cassette_dir, "pid", "all", server.port).stdout.strip() == "ok"
    assert run_client(cassette_dir, "pid-again", "all", server.port).stdout.strip() == "ok"
    server.stop()

    before = run_client(cassette_dir, "pid", "none", server.port)
    assert before.returncode != 0
    assert "ClientMismatchError" in before.stderr and "not accepted" in before.stderr

    learned = run_cli(
        "learn", str(cassette_dir / "pid.msgpack"), str(cassette_dir / "pid-again.msgpack")
    )
    assert learned.returncode == 0, learned.stderr
    assert "client message 0, bytes 6-" in learned.stdout and "1 volatile span(s)" in learned.stdout
    volatile = load(cassette_dir / "pid.msgpack").connections[0].volatile
    assert len(volatile) == 1 and volatile[0][0] == 0

    shown = run_cli("show", str(cassette_dir / "pid.msgpack"))
    assert "volatile: bytes 6-" in shown.stdout and "«pid=" in shown.stdout

    after = run_client(cassette_dir, "pid", "none", server.port)
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == "ok"

    # noise="off" is byte-exact again: the learned span does not apply.
    off = run_client(cassette_dir, "pid", "none", server.port, noise="off")
    assert off.returncode != 0 and "ClientMismatchError" in off.stderr


def conn(*messages: bytes) -> Connection:
    events = []
    for m in messages:
        events += [ClientData(data=m), ServerData(data=b"ok\n")]
    return Connection(target="h:1", events=tuple(events))


def test_learn_widens_differences_to_whole_tokens_and_pairs_messages_in_order() -> None:
    first = [conn(b"HELLO pid=4242 v=1\n", b"PING t=1733000000\n", b"QUIT\n")]
    second = [conn(b"HELLO pid=917 v=1\n", b"PING t=1733000042\n", b"QUIT\n")]
    learning = learn(first, second)
    (connection,) = learning.connections
    assert connection.volatile == ((0, 6, 14), (1, 5, 17))
    assert [(f.first, f.second) for f in learning.found] == [
        (b"pid=4242", b"pid=917"),
        (b"t=1733000000", b"t=1733000042"),
    ]
    assert learning.unpaired == ()


def test_learn_says_what_it_could_not_pair() -> None:
    learning = learn([conn(b"a\n"), conn(b"b\n")], [conn(b"a\n")])
    assert learning.unpaired == ("connection 1 (h:1) has no counterpart",)
    assert learn([conn(b"a\n")], [conn(b"a\n"), conn(b"c\n")]).unpaired == (
        "the second recording has 1 more connection(s) to h:1",
    )


def random_id_cassette(directory: Path) -> None:
    """A recorded connection whose client sent a random-looking request id."""
    from tcpcassette import Cassette

    Cassette(
        connections=[
            Connection(
                target="127.0.0.1:9",
                events=(
                    ClientData(data=b"REQ id=9f1c2be07a4d4c3e8b1f0a2d3c4e5f60\n"),
                    ServerData(data=b"DONE\n"),
                ),
            )
        ]
    ).save(directory / "rid.msgpack")


TEST_RANDOM_ID = """
import os, socket
from tcpcassette import use_cassette

def test_request_with_a_fresh_random_id():
    with use_cassette("rid", cassette_dir="cassettes"):
        with socket.create_connection(("127.0.0.1", 9), timeout=5) as s:
            s.sendall(b"REQ id=%s\\n" % os.urandom(16).hex().encode())
            assert s.recv(100) == b"DONE\\n"
"""


def test_the_ini_option_sets_the_noise_mode(pytester: pytest.Pytester) -> None:
    random_id_cassette(pytester.mkdir("cassettes"))
    pytester.makepyfile(test_rid=TEST_RANDOM_ID)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)  # auto: random-looking
    pytester.makeini("[pytest]\ntcpcassette_noise = off\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ClientMismatchError*"])


def test_tcpcassette_replay_takes_the_noise_mode(cassette_dir: Path) -> None:
    random_id_cassette(cassette_dir)
    path = str(cassette_dir / "rid.msgpack")
    rng = random.Random(7)
    fresh_id = bytes(rng.randrange(256) for _ in range(16)).hex().encode()
    for noise, expected in (("auto", b"DONE\n"), ("off", b"")):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tcpcassette",
                "replay",
                path,
                "--noise",
                noise,
                "--exit-when-played",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            port = int(line.rsplit(":", 1)[1].split()[0])
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"REQ id=%s\n" % fresh_id)
                try:
                    got = s.recv(100)
                except ConnectionResetError:
                    got = b""
            assert got == expected, noise
            if expected:
                assert proc.wait(timeout=20) == 0  # played: --exit-when-played ends it
        finally:
            proc.kill()
            proc.communicate(timeout=20)


PID_TEST = """
import os, socket, socketserver, threading
from pathlib import Path
from tcpcassette import use_cassette


class Welcome(socketserver.StreamRequestHandler):
    def handle(self):
        if self.rfile.readline():
            self.wfile.write(b"WELCOME\\n")


# The port is kept between runs (targets by name are another feature).
PORT_FILE = Path(__file__).with_name("port.txt")
port = int(PORT_FILE.read_text()) if PORT_FILE.exists() else 0
socketserver.ThreadingTCPServer.allow_reuse_address = True
server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Welcome)
PORT_FILE.write_text(str(server.server_address[1]))
threading.Thread(target=server.serve_forever, daemon=True).start()


@use_cassette("pid")
def test_greets_with_its_pid():
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as s:
        s.sendall(b"HELLO pid=%d\\n" % os.getpid())
        assert s.recv(100) == b"WELCOME\\n"
"""


def test_pytest_learn_runs_marked_tests_live_and_keeps_only_what_differs(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_pid=PID_TEST)
    pytester.runpytest_subprocess("--record-mode=all").assert_outcomes(passed=1)
    cassette = pytester.path / "cassettes" / "pid.msgpack"
    recorded = load(cassette).connections
    pytester.runpytest_subprocess().assert_outcomes(failed=1)  # another pid: a mismatch

    result = pytester.runpytest_subprocess("--tcpcassette-learn")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*learned 1 volatile span(s)*"])
    learned = load(cassette).connections
    assert [c.events for c in learned] == [c.events for c in recorded]  # the recording is kept
    assert len(learned[0].volatile) == 1

    replayed = pytester.runpytest_subprocess("-v")
    replayed.assert_outcomes(passed=1)
    replayed.stdout.fnmatch_lines(["*tolerated 1 difference(s) between runs (1 by learned)*"])
