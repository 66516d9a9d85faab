"""Learning what changes between runs from two recordings of the same test: no I/O.

``tcpcassette learn`` pairs the connections of two recordings (the n-th
connection to a target with the n-th to the same target), pairs their client
messages in order, and stores every span where the two differ as volatile
in the first recording (see :mod:`.noise`, rule ``learned``).  Spans are
widened to whole tokens, so a counter or a timestamp is one span, not a few
scattered bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from .connection import Connection
from .events import ClientData
from .noise import by_token, differences, token_around


@dataclass(frozen=True, slots=True)
class Learned:
    """One volatile span found: where, and the two values seen there."""

    connection: int
    message: int
    start: int
    end: int
    first: bytes
    second: bytes


@dataclass(frozen=True, slots=True)
class Learning:
    """The first recording's connections with their volatile spans, and what was found."""

    connections: tuple[Connection, ...]
    found: tuple[Learned, ...]
    unpaired: tuple[str, ...]  # what could not be compared, in words


def client_runs_of(connection: Connection) -> list[bytes]:
    """The connection's client messages: runs of client chunks with nothing between them."""
    runs: list[bytes] = []
    current: list[bytes] = []
    for event in connection.events:
        if type(event) is ClientData:
            current.append(event.data)
        elif current:
            runs.append(b"".join(current))
            current = []
    if current:
        runs.append(b"".join(current))
    return runs


def learn(first: Sequence[Connection], second: Sequence[Connection]) -> Learning:
    """Volatile spans from comparing two recordings of the same test.

    Args:
        first: the recording that keeps its bytes and gains the spans.
        second: another recording of the same test, in another run.
    """
    by_target: dict[str, list[int]] = {}
    for index, connection in enumerate(second):
        by_target.setdefault(connection.target, []).append(index)
    seen: dict[str, int] = {}
    out: list[Connection] = []
    found: list[Learned] = []
    unpaired: list[str] = []
    for index, connection in enumerate(first):
        n = seen.get(connection.target, 0)
        seen[connection.target] = n + 1
        others = by_target.get(connection.target, [])
        if n >= len(others):
            unpaired.append(f"connection {index} ({connection.target}) has no counterpart")
            out.append(connection)
            continue
        mine, theirs = client_runs_of(connection), client_runs_of(second[others[n]])
        if len(mine) != len(theirs):
            unpaired.append(
                f"connection {index} ({connection.target}): {len(mine)} client messages "
                f"against {len(theirs)}; compared the first {min(len(mine), len(theirs))}"
            )
        spans = set(connection.volatile)
        for number, (a, b) in enumerate(zip(mine, theirs, strict=False)):
            if a == b:
                continue
            for start, end, _, _ in by_token(a, differences(a, b)):
                ts, te = token_around(a, start, max(end, start + 1))
                te = min(te, len(a))
                if ts >= te:
                    continue
                spans.add((number, ts, te))
                other_end = min(len(b), te + (len(b) - len(a)))
                found.append(Learned(index, number, ts, te, a[ts:te], b[ts:other_end]))
        out.append(replace(connection, volatile=tuple(sorted(spans))))
    for target, indices in by_target.items():
        extra = len(indices) - seen.get(target, 0)
        if extra > 0:
            unpaired.append(f"the second recording has {extra} more connection(s) to {target}")
    return Learning(connections=tuple(out), found=tuple(found), unpaired=tuple(unpaired))
