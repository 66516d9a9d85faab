"""A cassette as people read it: numbered connections and events."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .cassette import CassetteModel
from .connection import Connection
from .errors import CassetteError
from .events import ClientData, Event, ServerData, TlsStart
from .faults import Fault
from .framing import FramingSpec, Raw, resolve_framing
from .messages import Item, items
from .protocols import detect
from .protocols.base import WireProtocol
from .render import hexdump, is_text, printable, utc_text
from .scrub import PLACEHOLDER

#: Bytes of a payload shown before it is abbreviated (``full=True`` shows all).
DEFAULT_PAYLOAD_BYTES = 512

_ARROWS = {
    "client": "client → server",
    "server": "server → client",
}
# Payloads a reviewer should look at before a cassette is committed.  The
# group "secret" is the credential itself: one redacted to asterisks (as a
# filter writes it, ``AUTH ***``) is no longer flagged.
_CREDENTIALS: tuple[tuple[re.Pattern[bytes], str], ...] = (
    (
        re.compile(
            rb"(?i)\$4\r\nAUTH\r\n(?:\$\d+\r\n[^\r\n]*\r\n)*?\$\d+\r\n(?P<secret>[^\r\n]*)\r\n(?!\$)"
        ),
        "a Redis AUTH command",
    ),
    (
        re.compile(rb"(?i)\$4\r\nAUTH\r\n(?P<secret>)(?!(?:\$\d+\r\n[^\r\n]*\r\n)+)"),
        "a Redis AUTH command",
    ),
    (
        re.compile(rb"(?im)^AUTH (PLAIN|LOGIN|CRAM-MD5)\b[ \t]*(?P<secret>[^\r\n]*)"),
        "an SMTP AUTH command",
    ),
    (
        re.compile(rb"(?im)^(Proxy-)?Authorization:[ \t]*(?:[^\s*]+[ \t]+)?(?P<secret>[^\r\n]*)"),
        "an HTTP Authorization header",
    ),
    (re.compile(rb"(?im)^Cookie:[ \t]*(?P<secret>[^\r\n]*)"), "an HTTP Cookie header"),
    (re.compile(rb"(?im)^PASS (?P<secret>\S[^\r\n]*)"), "a PASS command"),
    (
        re.compile(
            rb"(?i)\b(password|passwd|secret|api[_-]?key|token)\s*[=:]\s*(?P<secret>[^\s&;,]*)"
        ),
        "a password or key",
    ),
)
# Asterisks only, or ``name=***`` pairs of them (a redacted Cookie header).
_REDACTED = re.compile(rb"\s*(?:[^=;\s]+=)?\*+(?:\s*;\s*(?:[^=;\s]+=)?\*+)*\s*;?\s*")


def credential_warning(data: bytes) -> str | None:
    """What in ``data`` looks like a credential, or None (a redacted one is not)."""
    for pattern, what in _CREDENTIALS:
        for match in pattern.finditer(data):
            secret = match.group("secret")
            if not _REDACTED.fullmatch(secret) and PLACEHOLDER not in secret:
                return what
    return None


_COLORS = {"client": "\033[36m", "server": "\033[33m", "fault": "\033[1;31m", "dim": "\033[2m"}
_RESET = "\033[0m"


def format_transcript(
    cassette: CassetteModel,
    *,
    connections: Iterable[int] | None = None,
    mode: str = "auto",
    full: bool = False,
    color: bool = False,
    framing: FramingSpec = None,
) -> str:
    """A readable transcript of ``cassette``.

    Connections are numbered from 0 and events from 1, the numbers that
    ``Cassette.inject`` and ``tcpcassette inject`` take.

    Args:
        cassette: what to show.
        connections: only these connection numbers (default: all).
        mode: ``"auto"`` (text where printable, hexdump otherwise), ``"text"``
            or ``"hex"``.
        full: show payloads whole instead of abbreviating long ones.
        color: use ANSI colours.
        framing: number framed messages instead of recorded events.

    Raises:
        CassetteError: a connection number the cassette does not have.
    """
    count = len(cassette.connections)
    chosen = range(count) if connections is None else list(connections)
    for index in chosen:
        if not 0 <= index < count:
            have = f"connections 0 to {count - 1}" if count else "no connections"
            raise CassetteError(
                f"{printable(str(cassette.path or 'cassette'))}: there is no connection {index}; "
                f"it has {have}"
            )
    lines = [f"{printable(str(cassette.path or 'cassette'))}: {count} connection(s)"]
    lines.append(f"recorded at: {utc_text(cassette.recorded_at)}")
    if cassette.hosts:
        names = ", ".join(f"{n} → {' '.join(a)}" for n, a in sorted(cassette.hosts.items()))
        lines.append(f"hosts: {printable(names)}")
    for index in chosen:
        lines.append("")
        lines += connection_lines(
            index, cassette.connections[index], mode=mode, full=full, color=color, framing=framing
        )
    return "\n".join(lines)


def connection_lines(
    index: int,
    connection: Connection,
    *,
    mode: str = "auto",
    full: bool = False,
    color: bool = False,
    framing: FramingSpec = None,
    mark: int | None = None,
    around: int | None = None,
) -> list[str]:
    """The transcript of one connection, as lines.

    ``framing`` numbers framed messages instead of recorded events; ``mark``
    points at one numbered item (where replay failed); ``around`` shows only
    that many items on either side of ``mark``.
    """

    def paint(kind: str, text: str) -> str:
        return f"{_COLORS[kind]}{text}{_RESET}" if color else text

    framer = resolve_framing(framing)
    numbered = items(connection, framer)
    sent = sum(len(e.data) for e in connection.events if type(e) is ClientData)
    received = sum(len(e.data) for e in connection.events if type(e) is ServerData)
    unit = "events" if isinstance(framer, Raw) else f"{framer.name} messages"
    lines = [
        f"connection {index} → {printable(connection.target)}: {len(numbered)} {unit}, "
        f"{sent} bytes sent, {received} received; {connection.ending}"
    ]
    first, last = 1, len(numbered)
    if mark is not None and around is not None:
        first, last = max(1, mark - around), min(len(numbered), mark + around)
    if first > 1:
        lines.append(f"  ... {first - 1} earlier")
    volatile = _volatile_notes(connection) if isinstance(framer, Raw) else {}
    scrubbed = _scrubbed_notes(connection) if isinstance(framer, Raw) else {}
    echoed = _echo_notes(connection) if isinstance(framer, Raw) else {}
    protocol = detect(connection)
    if protocol is not None:
        lines[0] += f"; protocol {protocol.name}"
    for number, item in enumerate(numbered, 1):
        if not first <= number <= last:
            continue
        event = item.event
        when = "injected  " if event is not None and event.is_fault else f"{item.time:9.6f}s"
        pointer = "  ◀ here" if number == mark else ""
        head = f"  {number:>4}  {when}  "
        if isinstance(event, Fault):
            lines.append(paint("fault", head + f"FAULT {describe_fault(event)}") + pointer)
        elif event is None:
            lines.append(
                paint(item.kind, head + f"{_ARROWS[item.kind]}  {len(item.data)} bytes") + pointer
            )
            warning = credential_warning(item.data)
            if warning:
                lines.append(
                    paint("fault", f"        ⚠ looks like {warning}: keep it out with filters=")
                )
            lines += payload_lines(item.data, mode=mode, full=full)
            if protocol is not None:
                lines += [
                    paint("dim", f"        ⇒ {text}")
                    for text in rendered(protocol, item, full=full)
                ]
            lines += [paint("dim", note) for note in volatile.get(item.end[0], ())]
            lines += [paint("dim", note) for note in scrubbed.get(item.end[0], ())]
            lines += [paint("dim", note) for note in echoed.get(item.end[0], ())]
        elif isinstance(event, TlsStart):
            lines.append(paint("dim", head + describe_tls(event)) + pointer)
        else:
            lines.append(paint("dim", head + event.kind.replace("_", " ")) + pointer)
    if last < len(numbered):
        lines.append(f"  ... {len(numbered) - last} later")
    return lines


#: Messages of one chunk rendered by its protocol; more are counted (``full``: all shown).
RENDERED_PER_CHUNK = 5


def rendered(protocol: WireProtocol, item: Item, *, full: bool = False) -> list[str]:
    """The protocol's one-line rendering of each whole message in a chunk."""
    side = "client" if item.kind == "client" else "server"
    out: list[str] = []
    start = 0
    ends = protocol.split(item.data, side)
    shown = ends if full else ends[:RENDERED_PER_CHUNK]
    for end in shown:
        out.append(printable(protocol.render(item.data[start:end], side)))
        start = end
    if len(ends) > len(shown):
        out.append(f"… {len(ends) - len(shown)} more messages (--full shows them)")
    return out


#: Echo notes shown per client chunk.
ECHO_NOTES = 3
_ID = re.compile(rb"[A-Za-z0-9_.+/=-]{8,}")


def _echo_notes(connection: Connection) -> dict[int, list[str]]:
    """Lines marking identifier-like values of a client chunk that later server bytes repeat.

    These are the values replay writes back with the live client's own (the
    echo rule); shorter values echoed at a fixed offset are not marked here.
    """
    notes: dict[int, list[str]] = {}
    events = connection.events
    for index, event in enumerate(events):
        if type(event) is not ClientData:
            continue
        found: list[str] = []
        seen: set[bytes] = set()
        for match in _ID.finditer(event.data):
            value = match.group()
            if value in seen or not (
                any(48 <= b <= 57 for b in value) and any(b > 57 for b in value)
            ):
                continue  # seen already, or a word or a number rather than an identifier
            seen.add(value)
            later = next(
                (
                    n
                    for n, e in enumerate(events[index + 1 :], index + 2)
                    if type(e) is ServerData and value in e.data
                ),
                None,
            )
            if later is not None:
                shown = repr(value)[2:-1]
                found.append(
                    f"        «{shown}» echoed by event {later}: replay writes the live "
                    "client's value there"
                )
            if len(found) == ECHO_NOTES:
                break
        if found:
            notes[index] = found
    return notes


def _scrubbed_notes(connection: Connection) -> dict[int, list[str]]:
    """Lines marking where credentials were scrubbed, keyed by their event."""
    notes: dict[int, list[str]] = {}
    events = connection.events
    for index, start, end in connection.scrubbed:
        if index >= len(events):
            continue
        value = printable(repr(events[index].data[start:end])[2:-1])
        notes.setdefault(index, []).append(
            f"        «{value}» scrubbed: bytes {start}-{end}, a credential replaced before "
            "saving (replay accepts the live client's)"
        )
    return notes


def _volatile_notes(connection: Connection) -> dict[int, list[str]]:
    """Lines marking learned volatile spans, keyed by the event that ends their message."""
    if not connection.volatile:
        return {}
    notes: dict[int, list[str]] = {}
    run: list[bytes] = []
    message = 0
    events = connection.events
    for index, event in enumerate(events):
        if type(event) is not ClientData:
            continue
        run.append(event.data)
        if index + 1 < len(events) and type(events[index + 1]) is ClientData:
            continue
        joined = b"".join(run)
        for start, end in connection.volatile_in(message):
            value = repr(joined[start:end])[2:-1]
            notes.setdefault(index, []).append(
                f"        «{value}» volatile: bytes {start}-{end} of client message {message} "
                "(learned)"
            )
        run, message = [], message + 1
    return notes


def describe_fault(fault: Fault) -> str:
    """``reset``, ``delay seconds=0.2 times=1``: a fault and its parameters.

    Every parameter the fault acts on is shown, seeds included
    (``slice size=random delay=0.0 seed=7``), so the run can be repeated.
    """
    # The fault's own parameters first, then the shared ``times``.
    found = fault.parameters()
    names = sorted(found, key=lambda n: n == "times")
    return " ".join([fault.kind, *(f"{n}={found[n]}" for n in names)])


def payload_lines(data: bytes, *, mode: str = "auto", full: bool = False) -> list[str]:
    """A payload as indented lines: text where printable, hexdump otherwise."""
    limit = None if full else DEFAULT_PAYLOAD_BYTES
    shown = data if limit is None else data[:limit]
    more = len(data) - len(shown)
    as_text = mode == "text" or (mode == "auto" and is_text(shown))
    if as_text:
        # repr() escapes what is not printable; [2:-1] drops the b'' around it.
        body = ["        " + repr(line)[2:-1] for line in shown.splitlines(keepends=True)]
    else:
        body = ["        " + line for line in hexdump(shown)]
    if more:
        body.append(f"        ... {more} more bytes (--full shows them)")
    return body


def describe_tls(event: TlsStart) -> str:
    """``TLS begins (SNI db.example, ALPN h2); what follows is the plaintext inside``."""
    sni = f"SNI {printable(event.sni)}" if event.sni else "no SNI"
    alpn = f"ALPN {printable(event.alpn)}" if event.alpn else "no ALPN"
    return f"TLS begins ({sni}, {alpn}); what follows is the plaintext inside"


def event_label(event: Event) -> str:
    """A short label for an event, for error messages."""
    if isinstance(event, Fault):
        return f"fault {describe_fault(event)}"
    if isinstance(event, TlsStart):
        return describe_tls(event)
    if event.data:
        return f"{event.kind} ({len(event.data)} bytes)"
    return event.kind.replace("_", " ")
