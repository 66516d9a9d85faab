"""A suite as people write it, moved to tcpcassette: redis-server on a new ephemeral port
every run, started by a fixture only while recording, recorded and replayed under
pytest-xdist.  The project runs in a pytest subprocess, as a user's would.
"""

from __future__ import annotations

import shutil

import pytest

import tcpcassette

from ..realservers import SYSTEM_PATH

CONFTEST = """
import os, socket, subprocess, time
import pytest


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_port():
    return free_port()  # another one every run, as with xdist or testcontainers


@pytest.fixture
def tcpcassette_config(redis_port):
    return {"targets": {"redis": f"127.0.0.1:{redis_port}"}}


@pytest.fixture
def redis_server(tcpcassette, redis_port):
    if not tcpcassette.recording:
        yield  # replaying: no redis-server at all
        return
    proc = subprocess.Popen(
        [os.environ["REDIS_SERVER"], "--port", str(redis_port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    with tcpcassette.live():  # the readiness probe stays out of the cassette
        while True:
            try:
                socket.create_connection(("127.0.0.1", redis_port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
    yield
    proc.terminate()
    proc.wait(10)
"""

TESTS = """
import pytest
import redis

pytestmark = pytest.mark.tcpcassette


@pytest.fixture
def client(redis_server, redis_port):
    r = redis.Redis(host="127.0.0.1", port=redis_port)  # redis-py's defaults
    yield r
    r.close()


def test_counter(client):
    client.set("hits", 1)
    assert client.incr("hits") == 2


def test_list(client):
    client.rpush("queue", "a", "b")
    assert client.lrange("queue", 0, -1) == [b"a", b"b"]


class TestHash:
    def test_fields(self, client, tcpcassette):
        client.hset("user", mapping={"name": "ada"})
        assert client.hget("user", "name") == b"ada"
        if not tcpcassette.recording:
            assert tcpcassette.all_played  # live, while the test runs


@pytest.mark.tcpcassette("shared-pipeline")
def test_pipeline(client):
    pipe = client.pipeline()
    pipe.set("a", 1).incr("a").get("a")
    assert pipe.execute() == [True, 2, b"2"]
"""


def test_a_suite_on_ephemeral_ports_records_and_replays_with_two_workers(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = shutil.which("redis-server", path=SYSTEM_PATH)
    if binary is None:
        pytest.skip("redis-server (Debian package redis-server)")
    monkeypatch.setenv("REDIS_SERVER", binary)
    monkeypatch.delenv("TCPCASSETTE_RECORD_MODE", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_store=TESTS)
    pytester.makeini("[pytest]\n")
    args = ("-n", "2", "-p", "no:benchmark")
    pytester.runpytest_subprocess("--record-mode=once", *args).assert_outcomes(passed=4)
    cassettes = sorted(
        str(p.relative_to(pytester.path)) for p in pytester.path.glob("cassettes/**/*.msgpack")
    )
    assert cassettes == [
        "cassettes/shared-pipeline.msgpack",
        "cassettes/test_store/TestHash.test_fields.msgpack",
        "cassettes/test_store/test_counter.msgpack",
        "cassettes/test_store/test_list.msgpack",
    ]
    for path in cassettes:
        (connection,) = tcpcassette.load(pytester.path / path).connections
        assert connection.target == "redis" and connection.protocol == "redis"
    # Replay twice, on other ports each time, with no server and the network blocked.
    for _run in range(2):
        result = pytester.runpytest_subprocess(*args, "--tcpcassette-block-network")
        result.assert_outcomes(passed=4)
