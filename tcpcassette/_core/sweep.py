"""The fault sweep: every fault at every point of a recording, as cases.

A recording's *positions* are the connect of each connection and the start
of each server message in it: the protocol's messages where a protocol frames
the connection, else the recorded chunks.  A *case* is one fault at one
position; its id names both (``reset@c0:before-server-3``).  From one
cassette the sweep makes every case, the same ones in the same order on every
run, and a case's *result* says how the test fared under it.

Pure: the pytest plugin collects, runs and reports; this module decides what
the cases are, what a case does to a recording, what an outcome is called,
and how results are shown and compared.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from .connection import Connection
from .errors import CassetteError
from .events import ConnectRefused, ConnectTimedOut, Event, ServerData
from .faults import (
    Close,
    ConnectTimeout,
    Corrupt,
    Fault,
    Refuse,
    Reset,
    Slice,
    Timeout,
    Truncate,
)
from .protocols import WireProtocol
from .render import printable, show_bytes

#: The faults a sweep places before each server message, in the order of its table.
MESSAGE_FAULTS = ("reset", "close", "timeout", "truncate", "slice", "corrupt")
#: The faults a sweep places at each connect.
CONNECT_FAULTS = ("refuse", "connect_timeout")
#: Every fault a sweep knows, in the order of its table.
SWEEP_FAULTS = CONNECT_FAULTS + MESSAGE_FAULTS

#: The characters of a message shown in its row of the table.
SHOWN_CHARS = 44


@dataclass(frozen=True, slots=True)
class Position:
    """Where in a recording a sweep places a fault.

    Attributes:
        connection: the recorded connection (from 0).
        message: the server message the fault comes before (from 1); 0 is
            the connect.
        start: where that message begins in the connection's server bytes.
        size: its length in bytes (0 for the connect).
        summary: the message in one line, decoded by its protocol where one
            frames the connection; at the connect, the target (``→ redis``).
    """

    connection: int
    message: int
    start: int = 0
    size: int = 0
    summary: str = ""

    @property
    def label(self) -> str:
        """``connect`` or ``before-server-3``."""
        return "connect" if self.message == 0 else f"before-server-{self.message}"

    @property
    def row(self) -> str:
        """``c0 connect`` or ``c0 server 3``: the position in a table row."""
        where = "connect" if self.message == 0 else f"server {self.message}"
        return f"c{self.connection} {where}"


@dataclass(frozen=True, slots=True)
class SweepFault:
    """The fault a swept test runs under (``cassette.sweep_fault``).

    Attributes:
        id: the case's id, as the test's own id ends: ``reset@c0:before-server-3``.
        kind: the fault's kind (``"reset"``).
        fault: the fault itself, as placed.
        connection: the recorded connection it is placed in (from 0).
        position: ``"connect"`` or ``"before-server-<n>"``.
        message: the server message it comes before, in one line (at a connect,
            the target: ``→ redis``).
    """

    id: str
    kind: str
    fault: Fault
    connection: int
    position: str
    message: str


@dataclass(frozen=True, slots=True)
class Case:
    """One fault at one position.  ``times`` as the fault takes it (None: always)."""

    kind: str
    position: Position
    times: int | None = 1

    @property
    def id(self) -> str:
        return f"{self.kind}@c{self.position.connection}:{self.position.label}"

    def fault(self) -> Fault:
        """The fault this case places."""
        return _MAKERS[self.kind](self.position, self.times)

    def describe(self) -> SweepFault:
        """What the swept test is told of the case it runs under."""
        return SweepFault(
            id=self.id,
            kind=self.kind,
            fault=self.fault(),
            connection=self.position.connection,
            position=self.position.label,
            message=self.position.summary,
        )


def _truncate(position: Position, times: int | None) -> Fault:
    # Half the message, then a reset: a server that died mid-reply.
    return Truncate(nbytes=position.size // 2, then="reset", times=times)


def _slice(position: Position, times: int | None) -> Fault:
    # The message alone in 1-byte pieces; what follows goes out as recorded.
    return Slice(size=1, nbytes=max(position.size, 1), times=times)


def _corrupt(position: Position, times: int | None) -> Fault:
    # One flipped bit, drawn from the message's number: the same on every run.
    return Corrupt(nbytes=1, seed=position.message, times=times)


_MAKERS: dict[str, Callable[[Position, int | None], Fault]] = {
    "refuse": lambda _p, times: Refuse(times=times),
    "connect_timeout": lambda _p, times: ConnectTimeout(times=times),
    "reset": lambda _p, times: Reset(times=times),
    "close": lambda _p, times: Close(times=times),
    "timeout": lambda _p, times: Timeout(times=times),
    "truncate": _truncate,
    "slice": _slice,
    "corrupt": _corrupt,
}


def parse_faults(text: str, *, source: str) -> tuple[str, ...]:
    """``"reset,timeout"`` as fault kinds, in the table's order.

    Raises:
        CassetteError: a kind the sweep does not know, or none at all.
    """
    given = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [kind for kind in given if kind not in _MAKERS]
    if unknown or not given:
        what = f"unknown fault(s) {', '.join(unknown)}" if unknown else "no fault named"
        raise CassetteError(
            f"{source}: {what}; sweep faults are {', '.join(SWEEP_FAULTS)} (comma-separated)"
        )
    return tuple(kind for kind in SWEEP_FAULTS if kind in given)


# -- positions ------------------------------------------------------------------


def _connected(connection: Connection) -> bool:
    """False for a recorded connect that failed: there is no connect to fault."""
    return not any(type(e) in (ConnectRefused, ConnectTimedOut) for e in connection.events)


def server_messages(
    connection: Connection, protocol: WireProtocol | None
) -> list[tuple[int, bytes]]:
    """The connection's server messages: ``(start, bytes)``, ``start`` counted in
    its server bytes.  A protocol's messages where one is given, else the chunks;
    bytes that never make a whole message are one message."""
    chunks = [e.data for e in connection.events if type(e) is ServerData]
    if protocol is None:
        out, start = [], 0
        for data in chunks:
            if data:
                out.append((start, data))
            start += len(data)
        return out
    stream = b"".join(chunks)
    out = []
    start = 0
    while start < len(stream):
        rest = stream[start:]
        try:
            ends = protocol.split(rest, "server")
        except Exception:  # a protocol that cannot read these bytes frames nothing
            ends = []
        ends = [end for end in ends if 0 < end <= len(rest)]
        if not ends:
            out.append((start, rest))
            break
        begin = 0
        for end in ends:
            if end > begin:
                out.append((start + begin, rest[begin:end]))
                begin = end
        start += begin
    return out


def summary(message: bytes, protocol: WireProtocol | None) -> str:
    """A server message in one line for a table row, at most :data:`SHOWN_CHARS` long."""
    text = ""
    if protocol is not None:
        try:
            text = protocol.render(message, "server")
        except Exception:  # a rendering is a courtesy; the bytes are shown instead
            text = ""
    if not text:
        text = show_bytes(message, limit=SHOWN_CHARS)
    text = printable(" ".join(text.split()))
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def positions(
    connections: Sequence[Connection],
    protocol_of: Callable[[int], WireProtocol | None],
) -> list[Position]:
    """Every position of a recording, connection by connection, in order."""
    out: list[Position] = []
    for index, connection in enumerate(connections):
        if not _connected(connection):
            continue
        out.append(
            Position(connection=index, message=0, summary=f"→ {printable(connection.target)}")
        )
        protocol = protocol_of(index)
        for number, (start, data) in enumerate(server_messages(connection, protocol), 1):
            out.append(
                Position(
                    connection=index,
                    message=number,
                    start=start,
                    size=len(data),
                    summary=summary(data, protocol),
                )
            )
    return out


def cases(
    found: Iterable[Position],
    *,
    faults: Sequence[str] = SWEEP_FAULTS,
    times: int | None = 1,
) -> list[Case]:
    """Every case of ``faults`` at the positions ``found``, position by position."""
    out: list[Case] = []
    for position in found:
        kinds = CONNECT_FAULTS if position.message == 0 else MESSAGE_FAULTS
        out += [Case(kind, position, times) for kind in kinds if kind in faults]
    return out


def sample(chosen: Sequence[Case], *, limit: int | None, seed: int, test: str) -> list[Case]:
    """At most ``limit`` of ``chosen``, drawn from ``seed`` (the same draw for the same
    seed, test and cases on every run and machine), in their order."""
    if limit is None or len(chosen) <= limit:
        return list(chosen)

    def rank(case: Case) -> bytes:
        return hashlib.sha256(f"{seed}\0{test}\0{case.id}".encode()).digest()

    kept = set(sorted(range(len(chosen)), key=lambda i: rank(chosen[i]))[:limit])
    return [case for i, case in enumerate(chosen) if i in kept]


# -- placing a case ----------------------------------------------------------------


def _cut(events: list[Event], at: int) -> int:
    """Make the server byte ``at`` begin an event (splitting a chunk if it falls
    inside one); the index of the first event from there on."""
    seen = 0
    for index, event in enumerate(events):
        if type(event) is not ServerData:
            continue
        size = len(event.data)
        if at == seen:
            return index
        if seen < at < seen + size:
            cut = at - seen
            head = replace(event, data=event.data[:cut])
            tail = replace(event, data=event.data[cut:])
            events[index : index + 1] = [head, tail]
            return index + 1
        seen += size
    return len(events)


def place(case: Case, connection: Connection) -> Connection:
    """``connection`` with the case's fault at its position.

    Before a message: the chunk it begins in is split where it begins (and
    where it ends, so a fault acting on "the next chunk" meets this message
    alone); the fault then sits right after the client bytes it answers.

    Raises:
        CassetteError: the position is not in this connection (the cassette
            changed since the sweep's cases were made).
    """
    fault = case.fault()
    position = case.position
    events = list(connection.events)
    if position.message == 0:
        first = next((i for i, e in enumerate(events) if not e.is_fault), len(events))
        events.insert(first, fault)
        return replace(connection, events=tuple(events))
    total = sum(len(e.data) for e in events if type(e) is ServerData)
    if position.start + position.size > total:
        raise CassetteError(
            f"sweep case {case.id}: the recording has {total} server bytes, not the "
            f"{position.start + position.size} this case was made for; the cassette changed "
            "since collection. Run the sweep again."
        )
    _cut(events, position.start + position.size)
    events.insert(_cut(events, position.start), fault)
    return replace(connection, events=tuple(events))


def place_case(case: Case, connections: Sequence[Connection], cassette: str) -> list[Connection]:
    """The connections of ``cassette`` with the case's fault placed.

    Raises:
        CassetteError: the case's position is not in them (the cassette changed
            since the sweep's cases were made).
    """
    index = case.position.connection
    if not 0 <= index < len(connections):
        raise CassetteError(
            f"{cassette}: sweep case {case.id} is for connection {index}, and the cassette "
            f"has {len(connections)}; it changed since the cases were collected. Run the "
            "sweep again."
        )
    try:
        placed = place(case, connections[index])
    except CassetteError as error:
        raise CassetteError(f"{cassette}: {error}") from None
    return [placed if i == index else c for i, c in enumerate(connections)]


# -- outcomes ----------------------------------------------------------------------

#: How a case ended, with the mark the table shows for it.
OUTCOMES = {
    "survived": "ok",
    "client-error": "E",
    "assertion": "A",
    "unserved": "U",
    "hung": "H",
    "skipped": "s",
}
#: What each mark means, for the table's legend.
LEGEND = (
    "ok survived",
    "E<n> client error (its type below the table)",
    "A assertion failed",
    "U unserved (the client did what the recording cannot answer)",
    "H hung",
    "s skipped",
    ". not run",
)


@dataclass(frozen=True, slots=True)
class Result:
    """How one case ended.

    Attributes:
        test: the swept test's own node id (without the case).
        case: the case id.
        outcome: one of :data:`OUTCOMES`.
        detail: the client's exception type for ``client-error``, what the
            client sent that the recording could not answer for
            ``unserved``, the failed check for ``assertion`` (one line each).
        summary: the recorded message at the position, in one line.
    """

    test: str
    case: str
    outcome: str
    detail: str = ""
    summary: str = ""

    @property
    def key(self) -> str:
        """What a baseline compares: the outcome, and for a client error its type."""
        return f"{self.outcome}:{self.detail}" if self.outcome == "client-error" else self.outcome

    def describe(self) -> str:
        return f"{self.outcome} ({self.detail})" if self.outcome == "client-error" else self.outcome


REPORT_FORMAT = "tcpcassette-sweep"
REPORT_VERSION = 1


def dump_report(results: Iterable[Result], *, seed: int) -> str:
    """The results as the JSON a report file holds, in a stable order."""
    rows = sorted(results, key=lambda r: (r.test, _case_order(r.case)))
    body = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "seed": seed,
        "cases": [
            {
                "test": r.test,
                "case": r.case,
                "outcome": r.outcome,
                "detail": r.detail,
                "message": r.summary,
            }
            for r in rows
        ],
    }
    return json.dumps(body, indent=1, ensure_ascii=False) + "\n"


def load_report(text: str, *, source: str) -> list[Result]:
    """The results of a report file.

    Raises:
        CassetteError: not a sweep report this version reads.
    """
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise CassetteError(
            f"{source}: not a sweep report ({exc}); write one with --tcpcassette-sweep-report=PATH"
        ) from exc
    if not isinstance(body, dict) or body.get("format") != REPORT_FORMAT:
        raise CassetteError(
            f"{source}: not a tcpcassette sweep report; write one with "
            "--tcpcassette-sweep-report=PATH"
        )
    if body.get("version") != REPORT_VERSION:
        raise CassetteError(
            f"{source}: sweep report version {body.get('version')!r}, and this tcpcassette "
            f"reads version {REPORT_VERSION}; write it again with --tcpcassette-sweep-report"
        )
    out = []
    for row in body.get("cases", []):
        try:
            out.append(
                Result(
                    test=str(row["test"]),
                    case=str(row["case"]),
                    outcome=str(row["outcome"]),
                    detail=str(row.get("detail", "")),
                    summary=str(row.get("message", "")),
                )
            )
        except (KeyError, TypeError) as exc:
            raise CassetteError(f"{source}: a case without {exc} in the sweep report") from exc
        if out[-1].outcome not in OUTCOMES:
            raise CassetteError(f"{source}: unknown outcome {out[-1].outcome!r} in the report")
    return out


def changed(result: Result, baseline: dict[tuple[str, str], Result]) -> Result | None:
    """The baseline's result for the case if its outcome differs (None: same, or new)."""
    before = baseline.get((result.test, result.case))
    if before is None or before.key == result.key:
        return None
    return before


# -- the table -------------------------------------------------------------------


def _case_order(case_id: str) -> tuple[int, int, int]:
    kind, _, where = case_id.partition("@")
    conn, _, label = where.partition(":")
    number = 0 if label == "connect" else int(label.rsplit("-", 1)[-1] or 0)
    rank = SWEEP_FAULTS.index(kind) if kind in SWEEP_FAULTS else len(SWEEP_FAULTS)
    return (int(conn[1:] or 0), number, rank)


def _split_id(case_id: str) -> tuple[str, str]:
    """``reset@c0:before-server-3`` as ``("reset", "c0 server 3")``."""
    kind, _, where = case_id.partition("@")
    conn, _, label = where.partition(":")
    row = "connect" if label == "connect" else "server " + label.rsplit("-", 1)[-1]
    return kind, f"{conn} {row}"


@dataclass(frozen=True, slots=True)
class Cell:
    """One case in the table: its mark, its outcome and detail (``""`` for a case
    not run, ``mark`` ``""`` where the fault does not apply)."""

    mark: str
    outcome: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Grid:
    """One swept test's results laid out: a row per position, a column per fault."""

    heading: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, str, tuple[Cell, ...]], ...]  # (position, message, cells)
    errors: tuple[str, ...]  # client error types, E1 first


def grid(test: str, results: Sequence[Result], rows: Sequence[tuple[str, str]] = ()) -> Grid:
    """One swept test's results as a :class:`Grid`.

    ``rows`` are ``(row, summary)`` of every position swept, so positions whose
    cases did not run show too; positions of ``results`` are added.
    """
    cells: dict[tuple[str, str], Cell] = {}
    summaries = {row: printable(text) for row, text in rows}
    order = [row for row, _ in rows]
    errors: list[str] = []
    kinds: set[str] = set()
    for r in sorted(results, key=lambda r: _case_order(r.case)):
        kind, row = _split_id(r.case)
        kinds.add(kind)
        if row not in order:
            order.append(row)
        if not summaries.get(row) and r.summary:
            summaries[row] = printable(r.summary)
        mark = OUTCOMES.get(r.outcome, "?")
        if r.outcome == "client-error":
            if r.detail not in errors:
                errors.append(r.detail)
            mark = f"E{errors.index(r.detail) + 1}"
        cells[(row, kind)] = Cell(mark, r.outcome, printable(r.detail))
    columns = tuple(k for k in SWEEP_FAULTS if k in kinds)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    tally = ", ".join(f"{counts[o]} {o}" for o in OUTCOMES if o in counts)
    laid: list[tuple[str, str, tuple[Cell, ...]]] = []
    for row in order:
        connect = row.endswith(" connect")
        marks = tuple(
            cells.get((row, column), Cell("." if (column in CONNECT_FAULTS) == connect else ""))
            for column in columns
        )
        laid.append((row, summaries.get(row, ""), marks))
    return Grid(
        f"{printable(test)}: {len(results)} case(s): {tally}",
        columns,
        tuple(laid),
        tuple(printable(e) for e in errors),
    )


def table(test: str, results: Sequence[Result], rows: Sequence[tuple[str, str]] = ()) -> list[str]:
    """One swept test's results as a text table: a row per position, a column per fault.

    ``rows`` are ``(row, summary)`` of every position swept, so positions whose
    cases did not run show too; positions of ``results`` are added.
    """
    laid = grid(test, results, rows)
    lines = [laid.heading]
    label_width = max([len("position")] + [len(r) for r, _, _ in laid.rows])
    text_width = max([len("message")] + [len(t) for _, t, _ in laid.rows])
    widths = [max(len(c), 3) for c in laid.columns]
    head = f"  {'position':<{label_width}}  {'message':<{text_width}}"
    lines.append(head + "".join(f"  {c:<{w}}" for c, w in zip(laid.columns, widths, strict=True)))
    for row, text, marks in laid.rows:
        line = f"  {row:<{label_width}}  {text:<{text_width}}"
        for cell, width in zip(marks, widths, strict=True):
            line += f"  {cell.mark:<{width}}"
        lines.append(line.rstrip())
    for number, name in enumerate(laid.errors, 1):
        lines.append(f"  E{number} = {name}")
    return lines
