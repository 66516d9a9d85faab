"""pytest --tcpcassette-verify: a throw-away project whose real server changes its answer."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tcpcassette import load

#: The fixtures of a throw-away project: a held port, the target named after it, and
#: the server, started only while recording (``{name}``, ``{server}``, ``{handler}``).
SERVING = """
@pytest.fixture
def port():
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    held.bind(("127.0.0.1", 0))
    yield held.getsockname()[1]
    held.close()


@pytest.fixture
def tcpcassette_config(port):
    return {{"targets": {{"{name}": f"127.0.0.1:{{port}}"}}}}


@pytest.fixture
def server(tcpcassette, port):
    if not tcpcassette.recording:
        yield
        return
    running = {server}(("127.0.0.1", port), {handler})
    threading.Thread(target=running.serve_forever, daemon=True).start()
    yield
    running.shutdown()
    running.server_close()
"""

CONFTEST = """
import os, socket, socketserver, threading
import pytest


class Greet(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            if line.startswith(b"NAME"):
                self.wfile.write(os.environ["GREETING"].encode() + line[4:])
            else:
                self.wfile.write(line.upper())


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


""" + SERVING.format(name="greeter", server="Server", handler="Greet")

TESTS = """
import socket
import pytest

pytestmark = pytest.mark.tcpcassette


def talk(port, line):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(line)
        reply = b""
        while not reply.endswith(b"\\n"):
            reply += s.recv(100)
        return reply


def test_greeting(server, port):
    assert talk(port, b"NAME world\\n").endswith(b" world\\n")


def test_shout(server, port):
    assert talk(port, b"hello\\n") == b"HELLO\\n"
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_services=TESTS)
    monkeypatch.setenv("GREETING", "hello")
    pytester.runpytest_subprocess("--record-mode=once").assert_outcomes(passed=2)
    pytester.runpytest_subprocess().assert_outcomes(passed=2)  # replays, with no server
    return pytester


def cassettes(project: pytest.Pytester) -> dict[str, bytes]:
    found = sorted((project.path / "cassettes").rglob("*.msgpack"))
    assert len(found) == 2
    return {p.name: p.read_bytes() for p in found}


def test_verify_passes_while_the_servers_answer_as_recorded(project: pytest.Pytester) -> None:
    before = cassettes(project)
    result = project.runpytest_subprocess("--tcpcassette-verify")
    result.assert_outcomes(passed=2)
    assert cassettes(project) == before


def test_verify_fails_a_test_whose_server_now_answers_otherwise_with_the_decoded_diff(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = cassettes(project)
    monkeypatch.setenv("GREETING", "goodbye")
    result = project.runpytest_subprocess("--tcpcassette-verify")
    # The cassette is compared when it is put away, after the test's own body: as every
    # cassette error found then, the test's teardown reports it.
    result.assert_outcomes(passed=2, errors=1)
    assert result.ret != 0
    out = result.stdout.str()
    assert re.search(r"ERROR \S*test_greeting", out)
    assert not re.search(r"(ERROR|FAILED) \S*test_shout", out)
    result.stdout.fnmatch_lines(
        [
            "*test_greeting.msgpack: the real servers now answer differently from this "
            "recording (--tcpcassette-verify)*",
            "*@@ connection 0 → greeter @@*",
            "*@ message 2 (server → client) changed*",
            "*after message 1: NAME world\\n*",
            "*- ⇒ hello world\\n*",
            "*+ ⇒ goodbye world\\n*",
        ]
    )
    assert cassettes(project) == before  # the committed cassettes are not changed
    kept = re.search(r"the new recording is in (\S+\.msgpack)", out)
    assert kept is not None
    assert b"goodbye world" in load(Path(kept.group(1))).connections[0].server_bytes
    # And replay still plays the committed recording.
    project.runpytest_subprocess().assert_outcomes(passed=2)


HTTP_CONFTEST = """
import http.server, os, socket, threading
import pytest


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = os.environ["GREETING"].encode()
        self.send_response(200)  # with a Date header: the server's clock
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


""" + SERVING.format(name="web", server="http.server.ThreadingHTTPServer", handler="Hello")

HTTP_TESTS = """
import http.client
import pytest


@pytest.mark.tcpcassette
def test_page(server, port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", "/")
    assert connection.getresponse().read() in (b"hello", b"goodbye")
    connection.close()
"""


def test_verify_ignores_what_a_server_makes_anew_and_reports_what_it_says_otherwise(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(HTTP_CONFTEST)
    pytester.makepyfile(test_web=HTTP_TESTS)
    monkeypatch.setenv("GREETING", "hello")
    pytester.runpytest_subprocess("--record-mode=once").assert_outcomes(passed=1)
    (recorded,) = (pytester.path / "cassettes").rglob("*.msgpack")
    first_date = re.search(rb"Date: ([^\r]+)", load(recorded).connections[0].server_bytes)
    assert first_date is not None
    time.sleep(1.1)  # the server's Date moves on
    passed = pytester.runpytest_subprocess("--tcpcassette-verify")
    passed.assert_outcomes(passed=1)
    monkeypatch.setenv("GREETING", "goodbye")
    failed = pytester.runpytest_subprocess("--tcpcassette-verify")
    failed.assert_outcomes(passed=1, errors=1)
    out = failed.stdout.str()
    assert "the real servers now answer differently" in out
    assert "-  hello" in out and "+  goodbye" in out
    changed = [
        line for line in out.splitlines() if line.startswith(("E           -", "E           +"))
    ]
    assert changed and not any("Date:" in line for line in changed), out
