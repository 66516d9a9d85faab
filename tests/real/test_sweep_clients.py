"""The fault sweep against real clients in their default configuration: redis-py
against redis-server, requests against cheroot.  Each project records once
against the real server, then is swept in a fresh process with no server at all
and the network blocked, under pytest-xdist.

The README's tables come from the committed cassettes in ``cassettes/sweep/``
(recorded by these same projects), swept the same way: the same cassette and
code give the same table on every run.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import tcpcassette
from tcpcassette._core.protocols import by_name
from tcpcassette._core.sweep import server_messages

from ..realservers import SYSTEM_PATH
from .test_pytest_suite import CONFTEST as REDIS_CONFTEST

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

REDIS_TESTS = """
import pytest
import redis


@pytest.fixture
def client(redis_server, redis_port):
    r = redis.Redis(host="127.0.0.1", port=redis_port)  # redis-py's defaults
    yield r
    r.close()


@pytest.mark.tcpcassette
def test_counter(client):
    client.set("hits", 1)
    assert client.incr("hits") == 2
"""

HTTP_CONFTEST = """
import socket, threading
import pytest
from cheroot import wsgi


def app(environ, start_response):
    body = b'{"id": 7, "name": "ada"}'
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def listener():
    sock = socket.socket()  # held, so no other process takes the port
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


@pytest.fixture
def tcpcassette_config(listener):
    return {"targets": {"api": "127.0.0.1:%d" % listener.getsockname()[1]}}


@pytest.fixture
def api(tcpcassette, listener):
    port = listener.getsockname()[1]
    if not tcpcassette.recording:
        yield f"http://127.0.0.1:{port}"  # replaying: no server at all
        return
    listener.close()
    server = wsgi.Server(("127.0.0.1", port), app)
    server.prepare()
    threading.Thread(target=server.serve, daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    with tcpcassette.live():  # cheroot wakes its own listener to stop: not the test's
        server.stop()
"""

HTTP_TESTS = """
import pytest
import requests


@pytest.mark.tcpcassette
def test_get_user(api):
    assert requests.get(f"{api}/users/7").json() == {"id": 7, "name": "ada"}
"""

ARGS = ("-p", "no:cacheprovider", "-p", "no:benchmark", "-n", "2")


def swept(pytester: pytest.Pytester, cassette: str) -> tuple[dict[str, tuple[str, str]], str]:
    """Sweep the project with the network blocked; its outcomes and terminal output."""
    report = pytester.path / "sweep.json"
    result = pytester.runpytest_subprocess(
        *ARGS,
        "--tcpcassette-block-network",
        "--tcpcassette-sweep",
        "--tcpcassette-sweep-timeout=3",
        f"--tcpcassette-sweep-report={report}",
    )
    loaded = tcpcassette.load(pytester.path / cassette)
    (connection,) = loaded.connections
    messages = server_messages(connection, by_name(connection.protocol))
    cases = 2 + 6 * len(messages)
    result.assert_outcomes(passed=1 + cases)  # the cases pass: the sweep measures
    body = json.loads(report.read_text())
    found = {c["case"]: (c["outcome"], c["detail"]) for c in body["cases"]}
    assert len(found) == cases
    return found, result.stdout.str()


def table_of(output: str) -> list[str]:
    """The sweep's table in pytest's output, from its head line to the last error name."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"\S+::\S+: \d+ case", line))
    end = start + 1
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    return lines[start:end]


def test_redis_py_swept_with_its_defaults(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = shutil.which("redis-server", path=SYSTEM_PATH)
    if binary is None:
        pytest.skip("redis-server (Debian package redis-server)")
    monkeypatch.setenv("REDIS_SERVER", binary)
    monkeypatch.delenv("TCPCASSETTE_RECORD_MODE", raising=False)
    pytester.makeconftest(REDIS_CONFTEST)
    pytester.makepyfile(test_store=REDIS_TESTS)
    pytester.makeini("[pytest]\n")
    pytester.runpytest_subprocess(*ARGS, "--record-mode=once").assert_outcomes(passed=1)
    found, _output = swept(pytester, "cassettes/test_store/test_counter.msgpack")
    last = max(int(c.rsplit("-", 1)[1]) for c in found if "before-server" in c)
    # No socket timeout by default: a silent server hangs it, at every message.
    assert {found[f"timeout@c0:before-server-{n}"] for n in range(1, last + 1)} == {("hung", "")}
    assert found["connect_timeout@c0:connect"] == ("hung", "")
    # redis-py retries a command on a new connection after a connection error: a
    # reset before the reply to INCR is survived, its retry answered from the
    # recording as a recovered server would answer it.
    assert found[f"reset@c0:before-server-{last}"] == ("survived", "")
    assert found["refuse@c0:connect"] == ("survived", "")
    # Sliced replies are reassembled: a parser that waits for whole messages.
    assert {found[f"slice@c0:before-server-{n}"] for n in range(1, last + 1)} == {("survived", "")}


def test_requests_swept_with_its_defaults(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(HTTP_CONFTEST)
    pytester.makepyfile(test_users=HTTP_TESTS)
    pytester.makeini("[pytest]\n")
    pytester.runpytest_subprocess(*ARGS, "--record-mode=once").assert_outcomes(passed=1)
    found, _output = swept(pytester, "cassettes/test_users/test_get_user.msgpack")
    error = ("client-error", "requests.exceptions.ConnectionError")
    assert found["refuse@c0:connect"] == error  # no retries by default
    for fault in ("reset", "close", "truncate"):
        assert found[f"{fault}@c0:before-server-1"] == error
    assert found["timeout@c0:before-server-1"] == ("hung", "")  # no timeout by default
    assert found["slice@c0:before-server-1"] == ("survived", "")


@pytest.mark.parametrize(
    ("client", "conftest", "tests", "cassette", "committed"),
    [
        (
            "redis-py",
            REDIS_CONFTEST,
            REDIS_TESTS,
            "cassettes/test_store/test_counter.msgpack",
            "redis_counter",
        ),
        (
            "requests",
            HTTP_CONFTEST,
            HTTP_TESTS,
            "cassettes/test_users/test_get_user.msgpack",
            "requests_user",
        ),
    ],
)
def test_the_readme_tables_are_what_the_committed_cassettes_sweep_to(
    pytester: pytest.Pytester, client: str, conftest: str, tests: str, cassette: str, committed: str
) -> None:
    pytester.makeconftest(conftest)
    pytester.makepyfile(**{cassette.split("/")[1]: tests})
    pytester.makeini("[pytest]\n")
    (pytester.path / cassette).parent.mkdir(parents=True)
    shutil.copy(ROOT / "cassettes" / "sweep" / f"{committed}.msgpack", pytester.path / cassette)
    _found, output = swept(pytester, cassette)
    text = README.read_text()
    match = re.search(
        rf"With {re.escape(client)} (\d+\.\d+)[^\n]*\n(?:[^\n]*\n)*?\n```text\n(.*?)```",
        text,
        flags=re.S,
    )
    assert match, f"README: no sweep table for {client}"
    version, shown = match.group(1), match.group(2).splitlines()
    module = __import__("redis" if client == "redis-py" else client)
    if not module.__version__.startswith(version + "."):
        pytest.skip(f"README's {client} table is for {version}, {module.__version__} installed")
    printed = table_of(output)
    assert shown == printed, "README: paste the table this sweep printed:\n" + "\n".join(printed)
