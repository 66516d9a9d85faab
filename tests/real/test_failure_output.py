"""What a user reads when replay and redis-py disagree: a real pytest run, a real redis-server.

redis-py in its default configuration retries a command whose connection was
reset, so one mismatch meets the client several times; the failure must still
explain it once, first, and count the retries.
"""

from __future__ import annotations

import pytest

from ..realservers import RedisServer

COUNTER = """
import os

import pytest
import redis
from tcpcassette import use_cassette

PORT = int(os.environ["TCPCASSETTE_TEST_PORT"])
KEY = os.environ["TCPCASSETTE_TEST_KEY"]


@use_cassette("decorated")
def test_decorated():
    r = redis.Redis(host="localhost", port=PORT)  # redis-py's defaults: it retries
    r.set(KEY, 1)


def test_with_block():
    with use_cassette("block"):
        r = redis.Redis(host="localhost", port=PORT)
        r.set(KEY, 1)


@pytest.mark.tcpcassette
def test_marked():
    r = redis.Redis(host="localhost", port=PORT)
    r.set(KEY, 1)
"""

#: The failure's explanation must start within this many lines of its header.
FIRST_LINES = 60
EXPLANATION = "the client sent other bytes than were recorded"


def failure_sections(output: str) -> dict[str, list[str]]:
    """Each failing test's section of pytest's FAILURES block, by test name."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        stripped = line.strip("_ ")
        if line.startswith("____") and stripped.startswith("test_"):
            current = sections.setdefault(stripped, [])
        elif line.startswith("====") and current is not None:
            current = None
        elif current is not None:
            current.append(line)
    return sections


def test_a_mismatch_redis_py_retries_is_explained_once_and_first(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_counter=COUNTER)
    monkeypatch.delenv("TCPCASSETTE_RECORD_MODE", raising=False)
    server = RedisServer()
    try:
        monkeypatch.setenv("TCPCASSETTE_TEST_PORT", str(server.port))
        monkeypatch.setenv("TCPCASSETTE_TEST_KEY", "hits")
        pytester.runpytest("--record-mode=once").assert_outcomes(passed=3)
    finally:
        server.stop()

    monkeypatch.setenv("TCPCASSETTE_TEST_KEY", "misses")  # another command than recorded
    result = pytester.runpytest()
    result.assert_outcomes(failed=3)  # in the tests themselves: no errors at teardown
    output = result.stdout.str()
    sections = failure_sections(output)
    assert sorted(sections) == ["test_decorated", "test_marked", "test_with_block"], output
    for name, lines in sections.items():
        text = "\n".join(lines)
        assert text.count(EXPLANATION) == 1, f"{name}:\n{text}"
        at = next(n for n, line in enumerate(lines) if EXPLANATION in line)
        assert at < FIRST_LINES, f"{name}: the explanation is at line {at + 1}:\n{text}"
        head = "\n".join(lines[:FIRST_LINES])
        assert "ClientMismatchError" in lines[at], lines[at]
        assert "actual   ⇒ SET misses 1" in head, head  # decoded, beside the recorded one
        assert "more attempt" in head and "by the client's retries" in head, head
        assert "new_episodes" not in head, head  # it would not record an existing connection
        assert "_use_cassette.py" not in text, text  # tcpcassette's own frames are hidden
