"""``tcpcassette record`` and ``replay`` for a TLS client tcpcassette cannot set up:
``--ca-file`` writes the test CA for it, ``--upstream-ca`` verifies the real server."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tcpcassette import TlsStart, load

from ..realservers_tls import LineServer, make_ca
from .test_tls_failures import outside_client

pytestmark = pytest.mark.record


def started(*words: str) -> tuple[subprocess.Popen[str], list[str], tuple[str, int]]:
    """Run the command until it says where it listens; the lines it printed, and that address."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpcassette", *words],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or "listening on" not in lines[-1]:
        line = proc.stdout.readline()
        assert line, (lines, proc.communicate(timeout=10))
        lines.append(line)
    found = re.search(r"listening on ([\d.]+):(\d+)", lines[-1])
    assert found is not None, lines
    return proc, lines, (found.group(1), int(found.group(2)))


def test_record_and_replay_serve_a_tls_client_given_the_ca_file(tmp_path: Path) -> None:
    (tmp_path / "world").mkdir()
    world = make_ca(tmp_path / "world")
    server = LineServer(world.ca)
    cassette = tmp_path / "lines.msgpack"
    try:
        proc, lines, address = started(
            "record",
            str(cassette),
            "--target",
            f"localhost:{server.port}",
            "--ca-file",
            str(tmp_path / "record-ca.pem"),
            "--upstream-ca",
            str(world.path),
        )
        assert f"TLS clients trust {tmp_path / 'record-ca.pem'}" in lines[0]
        assert outside_client(address, tmp_path / "record-ca.pem") == "b'PONG\\n'"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        server.stop()
    recorded = load(cassette).connections[0]
    assert recorded.events[0] == TlsStart(time=recorded.events[0].time, sni="localhost")

    # Another process, so another test CA: the client is given the new one.
    proc, _, address = started(
        "replay", str(cassette), "--ca-file", str(tmp_path / "replay-ca.pem"), "--exit-when-played"
    )
    assert (tmp_path / "replay-ca.pem").read_bytes() != (tmp_path / "record-ca.pem").read_bytes()
    assert outside_client(address, tmp_path / "replay-ca.pem") == "b'PONG\\n'"
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "0 error(s)" in out
