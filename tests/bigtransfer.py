"""A large one-way transfer recorded and replayed in fresh processes, measuring peak memory.

Used by the reliability test and the benchmark.  Each side runs in its own
interpreter so that its peak is its own; the peak is read from VmHWM, since
ru_maxrss would carry the parent's peak over through execve.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

_PRELUDE = """
import hashlib, socket, sys
sys.path.insert(0, {root!r})
from tcpcassette import use_cassette
from tests.servers import ThreadedServer
SIZE = {size}
BLOCK = bytes(range(256)) * 1024
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
def sender(conn):
    conn.recv(16)
    for _ in range(SIZE // len(BLOCK)):
        conn.sendall(BLOCK)
    conn.shutdown(socket.SHUT_WR)
def client(port):
    digest, size = hashlib.sha256(), 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(b"go")
        while chunk := s.recv(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
"""

_RECORD = """
server = ThreadedServer(sender)
idle = peak()
with use_cassette("big", record_mode="all", cassette_dir={where!r}):
    size, digest = client(server.port)
print(size, digest, server.port, peak() - idle)
"""

_REPLAY = """
idle = peak()
with use_cassette("big", cassette_dir={where!r}):
    size, digest = client({port})
print(size, digest, peak() - idle)
"""


@dataclass(frozen=True)
class Transfer:
    size: int
    recorded: tuple[int, str]  # bytes and sha256 the client saw while recording
    replayed: tuple[int, str]  # the same, while replaying
    recording_peak: int  # peak RSS above idle, in bytes
    replay_peak: int


def _run(script: str) -> list[str]:
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    ).stdout.split()


def record_and_replay(where: Path, size: int) -> Transfer:
    """Record ``size`` bytes from a server into ``where``, then replay them; measure both."""
    root = str(Path(__file__).resolve().parent.parent)
    prelude = _PRELUDE.format(root=root, size=size)
    out = _run(prelude + textwrap.dedent(_RECORD.format(where=str(where))))
    recorded, port, recording_peak = (int(out[0]), out[1]), int(out[2]), int(out[3])
    out = _run(prelude + textwrap.dedent(_REPLAY.format(where=str(where), port=port)))
    return Transfer(size, recorded, (int(out[0]), out[1]), recording_peak, int(out[2]))
