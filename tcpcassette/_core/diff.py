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
from .errors import CassetteError
from .events import ClientData, ServerData, TlsStart
from .faults import Fault
from .noise import Bindings, NoiseMode, compare
from .protocols import by_name, detect
from .protocols.base import WireProtocol, varying
from .render import is_text, printable
from .targets import parse_target
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

    @property
    def where(self) -> str:
        """Which connection, in words: ``connection 2``, ``connection 2 (now 3)``."""
        if self.recorded is None:
            return f"connection {self.new} (new only)"
        if self.new is None:
            return f"connection {self.recorded} (recorded only)"
        if self.recorded == self.new:
            return f"connection {self.recorded}"
        return f"connection {self.recorded} (now {self.new})"


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


def _blanked(data: bytes, spans: Sequence[tuple[int, int]]) -> bytes:
    """``data`` with each span replaced by one marker, so values of any length compare equal."""
    out = bytearray()
    at = 0
    for start, end in sorted(spans):
        if start < at:
            continue
        out += data[at:start] + b"\x00<varying>\x00"
        at = end
    out += data[at:]
    return bytes(out)


def _aligned(
    a: Sequence[Message],
    b: Sequence[Message],
    keys_a: Sequence[object],
    keys_b: Sequence[object],
    *,
    pair_differing: bool = True,
) -> list[tuple[Message | None, Message | None]]:
    """``a`` and ``b`` paired by their keys: equal runs, differing runs position by
    position (unless not ``pair_differing``), and what one side has more of on its own."""
    matcher = difflib.SequenceMatcher(None, keys_a, keys_b, autojunk=False)
    out: list[tuple[Message | None, Message | None]] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        common = min(i2 - i1, j2 - j1) if op == "equal" or pair_differing else 0
        out += [(a[i1 + k], b[j1 + k]) for k in range(common)]
        out += [(a[i], None) for i in range(i1 + common, i2)]
        out += [(None, b[j]) for j in range(j1 + common, j2)]
    return out


class _Conversation:
    """Two recordings of one connection compared side by side, as replay would judge them.

    The two directions of a TCP connection are independent streams: when the
    client sent a message before or after a reply arrived is timing, not
    content.  So each side's messages are aligned on their own, the client's
    first: the values the noise rules let differ there (an inbox the client
    chose, a nonce) are written into the recorded server messages where they
    come back (:class:`~tcpcassette._core.noise.Bindings`), as replay writes
    them into its replies.  A server message then says the same when it is
    equal apart from the fields its protocol marks as varying between runs
    (:func:`~tcpcassette._core.protocols.base.varying`) and, in ``AUTO`` mode,
    random-looking values.  How the connection ended is compared as a set:
    which side's close was recorded first is timing too.
    """

    def __init__(self, protocol: WireProtocol | None, mode: NoiseMode) -> None:
        self.protocol = protocol
        self.mode = mode
        self.bindings = Bindings()
        self.partner: dict[int, Message] = {}  # recorded message number -> its new one
        self.changed: list[Change] = []

    def _pair(self, a: Message, b: Message, same: bool) -> None:
        self.partner[a.number] = b
        if not same:
            self.changed.append(Change("changed", a, b))

    def clients(self, a: Sequence[Message], b: Sequence[Message], every: Sequence[Message]) -> None:
        replies = [m for m in every if m.kind == "server"]
        for x, y in _aligned(a, b, [m.key for m in a], [m.key for m in b]):
            if x is None or y is None:
                self.changed.append(Change("removed" if y is None else "added", x, y))
                continue
            later = [m.data for m in replies if m.number > x.number]
            self._pair(x, y, x.key == y.key or self._client_same(x, y, later))

    def _client_same(self, x: Message, y: Message, replies: Sequence[bytes]) -> bool:
        recorded, live = self.bindings.apply(x.data), y.data
        if recorded == live:
            return True
        protocol = self.protocol
        fields: list[tuple[int, int]] = []
        if protocol is not None:
            recorded, live = protocol.normalise(recorded), protocol.normalise(live)
            fields = protocol.volatile(recorded) + varying(protocol, recorded, "client")
        if self.mode is NoiseMode.OFF:
            return recorded == live
        verdict = compare(
            recorded,
            live,
            mode=self.mode,
            replies=replies,
            learned=list(x.spans),
            fields=fields,
            protocol=protocol.name if protocol is not None else "",
        )
        if verdict.ok:
            self.bindings.add(verdict.substitutions)
        return verdict.ok

    def _server_form(self, message: Message, client: Message | None) -> bytes:
        """A recorded server message as replay would send it to the new client."""
        data = self.bindings.apply(message.data)
        partner = self.partner.get(client.number) if client is not None else None
        if self.protocol is not None and client is not None and partner is not None:
            data = self.protocol.rewrite(data, client.data, partner.data)
        return data

    def _server_key(self, data: bytes) -> tuple[str, bytes]:
        if self.mode is NoiseMode.OFF:
            return ("server", data)
        return ("server", _blanked(data, varying(self.protocol, data, "server")))

    def servers(self, a: Sequence[Message], b: Sequence[Message], every: Sequence[Message]) -> None:
        asked: Message | None = None
        forms: dict[int, bytes] = {}
        for m in every:  # the client message each recorded server message answers
            if m.kind == "client":
                asked = m
            elif m.kind == "server":
                forms[m.number] = self._server_form(m, asked)
        keys_a = [self._server_key(forms[m.number]) for m in a]
        keys_b = [self._server_key(m.data) for m in b]
        for x, y in _aligned(a, b, keys_a, keys_b):
            if x is None or y is None:
                self.changed.append(Change("removed" if y is None else "added", x, y))
                continue
            self._pair(x, y, self._server_same(forms[x.number], y.data))

    def _server_same(self, recorded: bytes, live: bytes) -> bool:
        if recorded == live:
            return True
        if self.mode is NoiseMode.OFF:
            return False
        if self._server_key(recorded) == self._server_key(live):
            return True
        verdict = compare(
            recorded,
            live,
            mode=self.mode,
            fields=varying(self.protocol, recorded, "server"),
            protocol=self.protocol.name if self.protocol is not None else "",
        )
        return verdict.ok

    def events(self, a: Sequence[Message], b: Sequence[Message]) -> None:
        """Faults and TLS in their order; closes and resets as a set."""
        ordered_a = [m for m in a if m.kind in ("fault", "tls")]
        ordered_b = [m for m in b if m.kind in ("fault", "tls")]
        ends_a = sorted((m for m in a if m.kind not in ("fault", "tls")), key=lambda m: m.kind)
        ends_b = sorted((m for m in b if m.kind not in ("fault", "tls")), key=lambda m: m.kind)
        for x_list, y_list in ((ordered_a, ordered_b), (ends_a, ends_b)):
            keys_x, keys_y = [m.key for m in x_list], [m.key for m in y_list]
            for x, y in _aligned(x_list, y_list, keys_x, keys_y, pair_differing=False):
                if x is None or y is None:
                    self.changed.append(Change("removed" if y is None else "added", x, y))
                else:
                    self._pair(x, y, x.key == y.key)

    def ordered(
        self, a: Sequence[Message], b: Sequence[Message], *, timing: bool, tolerance: float
    ) -> tuple[Change, ...]:
        """The changes in the new recording's order, each with the last unchanged
        message before it, and (when asked) the messages whose time moved."""
        changes = list(self.changed)
        differing = {id(c.recorded) for c in changes} | {id(c.new) for c in changes}
        if timing:
            for x in a:
                y = self.partner.get(x.number)
                if y is not None and id(x) not in differing and abs(x.time - y.time) > tolerance:
                    changes.append(Change("timing", x, y))
        # Where a recorded-only message sits in the new recording: after the
        # partner of the last recorded message before it that has one.
        where: dict[int, float] = {}
        last = 0.0
        for x in a:
            y = self.partner.get(x.number)
            last = float(y.number) if y is not None else last
            where[x.number] = last if y is not None else last + 0.5

        def position(change: Change) -> float:
            if change.new is not None:
                return float(change.new.number)
            assert change.recorded is not None
            return where[change.recorded.number]

        unchanged = [y for y in b if id(y) not in differing]
        out = []
        for change in sorted(changes, key=position):
            at = position(change)
            before = None
            for y in unchanged:
                if y.number >= at:
                    break
                before = y
            out.append(replace(change, before=before))
        return tuple(out)


def diff_connections(
    recorded: Connection,
    new: Connection,
    *,
    timing: bool = False,
    tolerance: float = TIMING_TOLERANCE,
    mode: NoiseMode = NoiseMode.LEARNED,
) -> tuple[Change, ...]:
    """The changes from ``recorded`` to ``new``, message by message (see :class:`_Conversation`)."""
    protocol = protocol_of(recorded) or protocol_of(new)
    a, b = messages_of(recorded, protocol), messages_of(new, protocol)
    if mode is NoiseMode.OFF:  # nothing may vary: no span is blanked either
        a, b = [replace(m, spans=()) for m in a], [replace(m, spans=()) for m in b]
    conversation = _Conversation(protocol, mode)
    side = {"client", "server"}
    conversation.clients(
        [m for m in a if m.kind == "client"], [m for m in b if m.kind == "client"], every=a
    )
    conversation.servers(
        [m for m in a if m.kind == "server"], [m for m in b if m.kind == "server"], every=a
    )
    conversation.events([m for m in a if m.kind not in side], [m for m in b if m.kind not in side])
    return conversation.ordered(a, b, timing=timing, tolerance=tolerance)


def _pairs(
    recorded: Sequence[Connection], new: Sequence[Connection]
) -> list[tuple[int | None, int | None]]:
    """Connections paired by target: the k-th to one target with the k-th to it in
    the other.  Those left over are paired in order by host, for a server that
    listens on another port now (a test server's port is ephemeral)."""
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
    for at, (mine, other) in enumerate(pairs):
        if other is not None or mine is None:
            continue
        host = _host(recorded[mine].target)
        moved = next(
            (j for j in range(len(new)) if j not in used and _host(new[j].target) == host), None
        )
        if moved is not None:
            used.add(moved)
            pairs[at] = (mine, moved)
    pairs += [(None, index) for index in range(len(new)) if index not in used]
    return pairs


def _host(target: str) -> str:
    try:
        host, _ = parse_target(target)
    except CassetteError:  # a cassette's target is untrusted: compared whole, then
        return target
    return host


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


def _as_new(old: Message, new: Message | None, protocol: WireProtocol | None) -> Message:
    """``old`` with the values its server fields vary in taken from ``new``, so the
    bytes shown differ only where the message does (not in a ``Date``)."""
    if new is None or old.kind != "server" or protocol is None:
        return old
    spans_old = varying(protocol, old.data, "server")
    spans_new = varying(protocol, new.data, "server")
    if not spans_old or len(spans_old) != len(spans_new):
        return old
    out = bytearray()
    at = 0
    for (start, end), (new_start, new_end) in zip(spans_old, spans_new, strict=True):
        if start < at:
            return old
        out += old.data[at:start] + new.data[new_start:new_end]
        at = end
    out += old.data[at:]
    return replace(old, data=bytes(out))


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
    a, b = _payload(_as_new(old, new, protocol)) if old else [], _payload(new) if new else []
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
        where = found.where
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
