"""The README's command lines for the standalone proxy and replay server, run as written.

Only the ports change: the real server's and the listening one are ephemeral
ports of this run instead of 6379 and 7000.
"""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tcpcassette import load

from ..realservers import RedisServer, missing, offered_port

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_lines() -> list[str]:
    """The sh block of "The `tcpcassette` command" that runs record, redis-cli and replay."""
    section = README.read_text().split("## The `tcpcassette` command", 1)[1].split("\n## ", 1)[0]
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        if "tcpcassette record" in block and "tcpcassette replay" in block:
            return [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]
    raise AssertionError("the README's record/replay example is gone")


def argv(line: str, *, redis_port: int, listen_port: int, directory: Path) -> list[str]:
    line = line.replace("localhost:6379", f"localhost:{redis_port}")
    line = line.replace("7000", str(listen_port))
    words = shlex.split(line)
    if words[0] == "tcpcassette":
        words = [sys.executable, "-m", "tcpcassette", *words[1:]]
    else:
        binary = shutil.which(words[0])
        if binary is None:
            missing(f"{words[0]} (Debian package redis-tools)")
        words[0] = binary or words[0]
    return [str(directory / w) if w.endswith(".msgpack") else w for w in words]


def started(words: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(words, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on" in line, (line, proc.communicate(timeout=10))
    return proc


@pytest.mark.record
def test_the_documented_record_inject_and_replay_lines_work_as_written(tmp_path: Path) -> None:
    record, client, inject, replay = documented_lines()
    server = RedisServer()
    listen_port = offered_port()

    def words(line: str) -> list[str]:
        return argv(line, redis_port=server.port, listen_port=listen_port, directory=tmp_path)

    try:
        proc = started(words(record))
        assert f"127.0.0.1:{listen_port}" in " ".join(words(record))
        said = subprocess.run(words(client), capture_output=True, text=True, timeout=10)
        assert said.stdout.strip() == "OK", said
        proc.send_signal(signal.SIGINT)  # "Ctrl-C saves"
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "saved " in out and "1 connection(s)" in out
    finally:
        server.stop()
    path = tmp_path / "redis.msgpack"
    assert load(path).connections[0].target == f"localhost:{server.port}"

    assert subprocess.run(words(inject), capture_output=True, timeout=30).returncode == 0
    proc = started(words(replay))  # on the port --listen names, with the server gone
    broken = subprocess.run(words(client), capture_output=True, text=True, timeout=10)
    assert "reset by peer" in (broken.stdout + broken.stderr).lower()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
