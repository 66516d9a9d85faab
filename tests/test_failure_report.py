"""The HTML report of a replay failure in pytest: where it is written and what it shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import tcpcassette
from tcpcassette import ClientData, Connection, ServerData

TEST = """
import socket
from tcpcassette import use_cassette

@use_cassette("greet")
def test_greet():
    with socket.create_connection(("127.0.0.1", 9), timeout=5) as s:
        s.sendall(b"HELLO v1\\n")
        assert s.recv(100) == b"WELCOME\\n"
        s.sendall(b"BYE <b>now</b>\\n")
        s.recv(100)

@use_cassette("greet")
def test_passes_without_a_report():
    with socket.create_connection(("127.0.0.1", 9), timeout=5) as s:
        s.sendall(b"HELLO v1\\n")
        assert s.recv(100) == b"WELCOME\\n"
        s.sendall(b"BYE\\n")
"""


def project(pytester: pytest.Pytester) -> None:
    tcpcassette.Cassette(
        connections=[
            Connection(
                target="127.0.0.1:9",
                events=(
                    ClientData(data=b"HELLO v1\n"),
                    ServerData(data=b"WELCOME\n"),
                    ClientData(data=b"BYE\n"),
                ),
            )
        ]
    ).save(pytester.path / "cassettes" / "greet.msgpack")
    pytester.makepyfile(test_greet=TEST)


def named_report(output: str) -> Path:
    found = re.findall(r"HTML report of the failing connection: (\S+\.html)", output)
    assert len(found) == 1, output
    return Path(found[0])


def test_a_replay_failure_writes_a_report_into_the_cache_and_names_it(
    pytester: pytest.Pytester,
) -> None:
    project(pytester)
    result = pytester.runpytest("-p", "no:asyncio")
    result.assert_outcomes(failed=1, passed=1)
    path = named_report(result.stdout.str())
    assert path.parent == pytester.path / ".pytest_cache" / "d" / "tcpcassette-reports"
    page = path.read_text()
    # Side by side, the first difference marked: "BYE" then "\n" recorded, " " live.
    assert '<span id="divergence">3</span>' in page
    assert '<pre class="recorded">BYE<mark class="diverge">\\n\n</mark></pre>' in page
    assert '<pre class="live">BYE<mark class="diverge"> </mark>&lt;b&gt;now&lt;/b&gt;' in page
    assert "ClientMismatchError" in page or "event 3" in page
    # The recorded connection follows (rows built by the page's script from its data).
    assert page.index('class="failure"') < page.index('id="rows-0"')
    assert '{"kind":"msg","side":"client"' in page
    assert len(list(path.parent.iterdir())) == 1  # the passing test wrote none


def test_the_report_directory_is_chosen_with_an_option(pytester: pytest.Pytester) -> None:
    project(pytester)
    chosen = pytester.path / "reports"
    result = pytester.runpytest("-p", "no:asyncio", f"--tcpcassette-report-dir={chosen}")
    result.assert_outcomes(failed=1, passed=1)
    assert named_report(result.stdout.str()).parent == chosen
    assert [p.name for p in chosen.iterdir()] == ["test_greet.py_test_greet.html"]
