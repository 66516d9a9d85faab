"""Two cassettes compared message by message, as a reviewer reads them.

Each connection is cut into messages by its protocol (a run of one side's
chunks when no protocol is known), the messages of the two recordings are
aligned, and what differs is reported decoded.  A client message may differ
inside its volatile spans (the spans learned for the recorded connection and
the fields its protocol marks as varying): replay tolerates those, so they
are no difference here either (:func:`tcpcassette._core.noise.compare`
decides, as it does for replay).  Times are compared only when asked.

:func:`diff_cassettes` returns a structured :class:`CassetteDiff`;
:func:`diff_lines` renders it as text, and :func:`textconv_lines` gives one
cassette as stable text for ``git diff``.  Everything taken from a cassette
reaches the text through :func:`~tcpcassette._core.render.printable` or
``repr``, never raw.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from .cassette import CassetteModel
from .connection import Connection
from .events import ClientData, ServerData, TlsStart
from .faults import Fault
from .noise import NoiseMode, compare
from .protocols import by_name, detect
from .protocols.base import WireProtocol
from .render import is_text, printable
from .transcript import describe_fault, describe_tls, payload_lines

#: Seconds two times of one message may differ by before ``timing`` reports them.
TIMING_TOLERANCE = 0.05
#: Messages of one connection shown before the rest of its changes are counted.
SHOWN_CHANGES = 20

_ARROWS = {"client": "client → server", "server": "server → client"}


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a connection (or one event that carries no bytes).

    Attributes:
        number: its number in the connection, from 1.
        kind: ``"client"`` or ``"server"`` for bytes, else the event's kind
            (``"server_close"``, ``"tls"``, ``"fault"``).
        data: the bytes (empty for other events).
        time: when it began, in seconds from the connection's start.
        label: for an event without bytes, what it was, in words.
        spans: ``(start, end)`` spans of a client message that may vary.
    """

    number: int
    kind: str
    data: bytes
    time: float
    label: str = ""
    spans: tuple[tuple[int, int], ...] = ()

    @property
    def key(self) -> tuple[str, bytes]:
        """What aligning compares: the bytes with their volatile spans blanked."""
        if not self.spans:
            return (self.kind, self.data if self.data else self.label.encode())
        out = bytearray()
        at = 0
        for start, end in self.spans:
            if start < at:
                continue
            out += self.data[at:start] + b"\x00<volatile>\x00"
            at = end
        out += self.data[at:]
        return (self.kind, bytes(out))


def protocol_of(connection: Connection) -> WireProtocol | None:
    """The connection's protocol: the one named at recording, else detected."""
    return by_name(connection.protocol) or detect(connection)


def messages_of(connection: Connection, protocol: WireProtocol | None) -> list[Message]:
    """The connection's messages, in order: each run of one side's chunks cut by the protocol.

    Client runs are numbered as learned volatile spans number them (from 0,
    runs of client chunks with nothing between them).
    """
    out: list[Message] = []
    run: list[tuple[bytes, float]] = []
    run_kind = ""
    client_run = 0

    def flush() -> None:
        nonlocal client_run
        if not run:
            return
        data = b"".join(chunk for chunk, _ in run)
        starts: list[tuple[int, float]] = []
        at = 0
        for chunk, time in run:
            starts.append((at, time))
            at += len(chunk)
        ends = protocol.split(data, run_kind) if protocol is not None else []
        ends = [e for e in ends if 0 < e <= len(data)]
        if not ends or ends[-1] != len(data):
            ends.append(len(data))
        begin = 0
        for end in ends:
            if end <= begin:
                continue
            message = data[begin:end]
            time = max(t for offset, t in starts if offset <= begin)
            spans: list[tuple[int, int]] = []
            if run_kind == "client":
                for start, stop in connection.volatile_in(client_run):
                    lo, hi = max(start, begin) - begin, min(stop, end) - begin
                    if lo < hi:
                        spans.append((lo, hi))
                if protocol is not None:
                    spans += protocol.volatile(protocol.normalise(message))
            out.append(
                Message(len(out) + 1, run_kind, message, time, spans=tuple(sorted(set(spans))))
            )
            begin = end
        if run_kind == "client":
            client_run += 1
        run.clear()

    for event in connection.events:
        kind = type(event)
        if kind is ClientData or kind is ServerData:
            if run and run_kind != event.kind:
                flush()
            run_kind = event.kind
            run.append((event.data, event.time))
            continue
        flush()
        if isinstance(event, Fault):
            out.append(Message(len(out) + 1, "fault", b"", event.time, describe_fault(event)))
        elif isinstance(event, TlsStart):
            out.append(Message(len(out) + 1, "tls", b"", event.time, describe_tls(event)))
        else:
            label = event.kind.replace("_", " ")
            out.append(Message(len(out) + 1, event.kind, b"", event.time, label))
    flush()
    return out


ChangeKind = Literal["changed", "removed", "added", "timing"]


@dataclass(frozen=True, slots=True)
class Change:
    """One difference in a connection: ``recorded`` and ``new`` (one is None for an
    added or removed message); ``before`` is the last message both have before it."""

    kind: ChangeKind
    recorded: Message | None
    new: Message | None
    before: Message | None = None


@dataclass(frozen=True, slots=True)
class ConnectionDiff:
    """The differences of one pair of connections (a connection only one side has
    is all ``added`` or all ``removed``)."""

    recorded: int | None  # its number in the recorded cassette
    new: int | None  # its number in the new one
    target: str
    protocol: str | None
    changes: tuple[Change, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CassetteDiff:
    """Every difference between a recorded cassette and a new one."""

    recorded_name: str
    new_name: str
    connections: tuple[ConnectionDiff, ...]  # only those that differ
    notes: tuple[str, ...] = ()

    @property
    def equal(self) -> bool:
        return not self.connections and not self.notes


def _same(a: Message, b: Message, protocol: WireProtocol | None, mode: NoiseMode) -> bool:
    """True when ``b`` says what ``a`` says, volatile spans of a client message aside."""
    if a.kind != b.kind:
        return False
    if a.key == b.key:
        return True
    if a.kind != "client":
        return a.data == b.data
    recorded, live = a.data, b.data
    if protocol is not None:
        recorded, live = protocol.normalise(recorded), protocol.normalise(live)
    verdict = compare(
        recorded,
        live,
        mode=mode,
        learned=list(a.spans),
        fields=protocol.volatile(recorded) if protocol is not None else (),
        protocol=protocol.name if protocol is not None else "",
    )
    return verdict.ok


def diff_connections(
    recorded: Connection,
    new: Connection,
    *,
    timing: bool = False,
    tolerance: float = TIMING_TOLERANCE,
    mode: NoiseMode = NoiseMode.LEARNED,
) -> tuple[Change, ...]:
    """The changes from ``recorded`` to ``new``, message by message."""
    protocol = protocol_of(recorded) or protocol_of(new)
    a, b = messages_of(recorded, protocol), messages_of(new, protocol)
    if mode is NoiseMode.OFF:  # nothing may vary: no span is blanked either
        a, b = [replace(m, spans=()) for m in a], [replace(m, spans=()) for m in b]
    matcher = difflib.SequenceMatcher(None, [m.key for m in a], [m.key for m in b], autojunk=False)
    changes: list[Change] = []
    before: Message | None = None
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        pairs = list(zip(range(i1, i2), range(j1, j2), strict=False))
        for i, j in pairs:
            if op == "equal" or _same(a[i], b[j], protocol, mode):
                if timing and abs(a[i].time - b[j].time) > tolerance:
                    changes.append(Change("timing", a[i], b[j], before))
                before = b[j]
            else:
                changes.append(Change("changed", a[i], b[j], before))
        for i in range(i1 + len(pairs), i2):
            changes.append(Change("removed", a[i], None, before))
        for j in range(j1 + len(pairs), j2):
            changes.append(Change("added", None, b[j], before))
    return tuple(changes)


def _pairs(
    recorded: Sequence[Connection], new: Sequence[Connection]
) -> list[tuple[int | None, int | None]]:
    """Connections paired by target: the k-th to one target with the k-th to it in the other."""
    waiting: dict[str, list[int]] = {}
    for index, connection in enumerate(new):
        waiting.setdefault(connection.target, []).append(index)
    pairs: list[tuple[int | None, int | None]] = []
    used: set[int] = set()
    for index, connection in enumerate(recorded):
        others = waiting.get(connection.target, [])
        other = others.pop(0) if others else None
        if other is not None:
            used.add(other)
        pairs.append((index, other))
    pairs += [(None, index) for index in range(len(new)) if index not in used]
    return pairs


def diff_cassettes(
    recorded: CassetteModel,
    new: CassetteModel,
    *,
    timing: bool = False,
    tolerance: float = TIMING_TOLERANCE,
    mode: NoiseMode = NoiseMode.LEARNED,
) -> CassetteDiff:
    """Compare ``new`` with ``recorded``, connection by connection and message by message.

    Args:
        recorded: the cassette as it was (the committed one).
        new: the cassette as it is now.
        timing: report messages whose time moved by more than ``tolerance`` seconds.
        mode: what a client message may differ in: ``LEARNED`` (learned spans and
            the protocol's varying fields), ``OFF`` (nothing), ``AUTO`` (random-looking
            values too).
    """
    found: list[ConnectionDiff] = []
    for a, b in _pairs(recorded.connections, new.connections):
        if a is not None and b is not None:
            one, other = recorded.connections[a], new.connections[b]
            protocol = protocol_of(one) or protocol_of(other)
            changes = diff_connections(one, other, timing=timing, tolerance=tolerance, mode=mode)
            notes: list[str] = []
            if timing and abs(one.start - other.start) > tolerance:
                notes.append(f"opened at {one.start:.6f}s, now at {other.start:.6f}s")
            if changes or notes:
                name = protocol.name if protocol is not None else None
                found.append(ConnectionDiff(a, b, one.target, name, changes, tuple(notes)))
            continue
        index = a if a is not None else b
        assert index is not None
        connection = (recorded if a is not None else new).connections[index]
        protocol = protocol_of(connection)
        kind: ChangeKind = "removed" if a is not None else "added"
        listed = messages_of(connection, protocol)
        changes = tuple(
            Change(kind, m if a is not None else None, m if b is not None else None) for m in listed
        )
        name = protocol.name if protocol is not None else None
        found.append(ConnectionDiff(a, b, connection.target, name, changes))
    notes = []
    if dict(recorded.hosts) != dict(new.hosts):
        notes.append(f"host names: {_hosts(recorded)} recorded, {_hosts(new)} now")
    return CassetteDiff(_name(recorded, "recorded"), _name(new, "new"), tuple(found), tuple(notes))


def _name(cassette: CassetteModel, default: str) -> str:
    if cassette.path is None:
        return default
    return f"{printable(str(cassette.path))} ({default})"


def _hosts(cassette: CassetteModel) -> str:
    if not cassette.hosts:
        return "none"
    return printable(", ".join(f"{n} → {' '.join(a)}" for n, a in sorted(cassette.hosts.items())))


# -- text ------------------------------------------------------------------------------


def decoded(message: Message, protocol: WireProtocol | None) -> str:
    """The message in one line: the protocol's rendering, or its bytes, or the event."""
    if not message.data:
        return printable(message.label)
    if protocol is not None:
        return printable(protocol.render(message.data, message.kind))
    return one_line(message.data)


def one_line(data: bytes) -> str:
    """Bytes in one line, whole: an escaped literal where text, else hex."""
    if is_text(data):
        return repr(data)[2:-1]
    return "hex " + data.hex()


def _head(message: Message) -> str:
    arrow = _ARROWS.get(message.kind, message.kind.replace("_", " "))
    size = f", {len(message.data)} bytes" if message.data else ""
    return f"message {message.number} ({arrow}{size})"


def _payload(message: Message) -> list[str]:
    if not message.data:
        return []
    return ["  " + line[8:] for line in payload_lines(message.data, full=True)]


def change_lines(change: Change, protocol: WireProtocol | None) -> list[str]:
    """One change as lines: a head, the decoded message on each side, and the bytes."""
    old, new = change.recorded, change.new
    lines: list[str] = []
    if change.kind == "timing":
        assert old is not None and new is not None
        lines.append(f"@ {_head(new)}: at {old.time:.6f}s when recorded, now at {new.time:.6f}s")
        lines.append(f"  ⇒ {decoded(new, protocol)}")
        return lines
    shown = old if old is not None else new
    assert shown is not None
    if change.kind == "changed":
        assert old is not None and new is not None
        number = old.number if old.number == new.number else f"{old.number}, now {new.number}"
        arrow = _ARROWS.get(old.kind, old.kind.replace("_", " "))
        lines.append(f"@ message {number} ({arrow}) changed")
    else:
        lines.append(f"@ {_head(shown)} {'only recorded' if old is not None else 'only new'}")
    if change.before is not None:
        lines.append(f"  after message {change.before.number}: {decoded(change.before, protocol)}")
    if old is not None:
        lines.append(f"- ⇒ {decoded(old, protocol)}")
    if new is not None:
        lines.append(f"+ ⇒ {decoded(new, protocol)}")
    a, b = _payload(old) if old else [], _payload(new) if new else []
    if protocol is None and len(a) <= 1 and len(b) <= 1 and is_text(shown.data):
        return lines  # the one line shown already is the whole payload
    if a and b:
        body = list(difflib.unified_diff(a, b, n=1, lineterm=""))[2:]
        lines += [f"  {line}" if line.startswith("@@") else line for line in body]
    else:
        lines += ["-" + line for line in a] + ["+" + line for line in b]
    return lines


def diff_lines(result: CassetteDiff) -> list[str]:
    """The differences as text, unified-diff style: ``-`` recorded, ``+`` new."""
    lines = [f"--- {result.recorded_name}", f"+++ {result.new_name}"]
    if result.equal:
        lines.append("no differences")
        return lines
    lines += [f"note: {note}" for note in result.notes]
    for found in result.connections:
        if found.recorded is None:
            where = f"connection {found.new} (new only)"
        elif found.new is None:
            where = f"connection {found.recorded} (recorded only)"
        elif found.recorded == found.new:
            where = f"connection {found.recorded}"
        else:
            where = f"connection {found.recorded} (now {found.new})"
        protocol = by_name(found.protocol)
        name = f", {printable(found.protocol)}" if found.protocol else ""
        lines.append(f"@@ {where} → {printable(found.target)}{name} @@")
        lines += [f"note: {note}" for note in found.notes]
        for change in found.changes[:SHOWN_CHANGES]:
            lines += change_lines(change, protocol)
        if len(found.changes) > SHOWN_CHANGES:
            lines.append(f"… {len(found.changes) - SHOWN_CHANGES} more changes")
    return lines


def textconv_lines(cassette: CassetteModel) -> list[str]:
    """A cassette as stable text for ``git diff``: one line per message, no times.

    The same cassette always gives the same text, and a changed message changes
    only its own line (numbers of later messages aside when one is added).
    """
    count = len(cassette.connections)
    lines = [f"tcpcassette cassette: {count} connection(s)"]
    if cassette.hosts:
        lines.append(f"hosts: {_hosts(cassette)}")
    for index, connection in enumerate(cassette.connections):
        protocol = protocol_of(connection)
        name = f"; protocol {protocol.name}" if protocol is not None else ""
        lines.append(f"connection {index} → {printable(connection.target)}{name}")
        for m, start, end in connection.volatile:
            lines.append(f"  volatile: client message {m}, bytes {start}-{end}")
        for message in messages_of(connection, protocol):
            side = {"client": "client →", "server": "server ←"}.get(message.kind)
            if side is None:
                lines.append(f"  {message.number:>4} {printable(message.label)}")
                continue
            shown = decoded(message, protocol) if protocol is not None else ""
            raw = one_line(message.data)
            text = f"{shown}  ⟨{raw}⟩" if shown and shown != raw else raw
            lines.append(f"  {message.number:>4} {side} {text}")
    return lines
