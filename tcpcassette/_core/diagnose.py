"""Error messages that say what went wrong, where, and what to do next."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .actions import Problem
from .connection import Connection
from .errors import (
    ClientHungError,
    ClientMismatchError,
    ClientStalledError,
    ReplayError,
    UnplayedError,
    UnrecordedConnectionError,
)
from .events import ClientData, ServerData, TlsStart
from .protocols import by_name, detect
from .protocols.base import WireProtocol
from .render import first_difference, printable, show_bytes, side_by_side
from .targets import format_target, is_name
from .tls_hello import ClientHello
from .transcript import connection_lines, event_label

#: What to do about a difference on a connection the cassette holds.  Not
#: new_episodes: it adds whole new connections, and this one is recorded.
_RERECORD = (
    "If the client now sends this on purpose, re-record with --record-mode=all "
    "(or record_mode='all'). If it is a value that changes from run to run, let replay "
    "accept it: record twice and run tcpcassette learn (or pytest --tcpcassette-learn), "
    "or pass match= or filters= to use_cassette."
)
#: The same for a new connection whose opening no recording has: here
#: new_episodes would record it (and keep the recordings there are).
_RECORD_NEW = (
    "If the client now opens this connection on purpose, record it with "
    "--record-mode=new_episodes (the recordings already there stay), or re-record everything "
    "with --record-mode=all; if its opening changes from run to run, record twice and run "
    "tcpcassette learn, or pass match= or filters= to use_cassette."
)


def unrecorded(
    cassette: str,
    target: str,
    *,
    recorded: int,
    mode: str,
    recorded_targets: Sequence[str] = (),
    same_host: Sequence[str] = (),
    mapped: Mapping[str, tuple[str, int]] | None = None,
) -> UnrecordedConnectionError:
    """A connection to ``target`` that the cassette cannot serve and may not record.

    Args:
        recorded: how many connections to ``target`` the cassette holds (all played).
        recorded_targets: every target the cassette holds, in recorded order.
        same_host: recorded targets on ``target``'s host with another port.
        mapped: the target names ``targets=`` maps in this run, with their addresses.
    """
    mapped = mapped or {}
    holds = ", ".join(recorded_targets) if recorded_targets else "no connections"
    listed = f"Recorded targets: {holds}."
    names = [t for t in recorded_targets if is_name(t) and t not in mapped]
    lines: list[str]
    if recorded:
        lines = [
            f"{cassette}: the client opened more connections to {target} than the {recorded} "
            f"recorded (every one was already played); in record mode {mode!r} nothing reaches "
            "the network.",
            "If the client reconnects on purpose, let replay serve a recording again with "
            "allow_playback_repeats=True; to record the extra connection use "
            "--record-mode=new_episodes.",
        ]
    elif same_host:
        others = " and ".join(same_host)
        host = target.rsplit(":", 1)[0]
        lines = [
            f"{cassette}: the cassette holds no connection to {target}, but it holds {others}: "
            "the server's port has likely changed since recording (a server on an ephemeral "
            f"port gets a new one every run); in record mode {mode!r} nothing reaches the network.",
            "Name the target so the port may change: use_cassette(..., "
            f'targets={{"name": "{host}:<this run\'s port>"}}) records and replays it as '
            '"name" whatever its port; re-record once with the name (--record-mode=all). '
            "Recording new episodes would only add a copy under each new port.",
        ]
    elif names and not is_name(target):
        quoted = ", ".join(repr(n) for n in names)
        example = ", ".join(f'"{n}": "host:port"' for n in names)
        lines = [
            f"{cassette}: the cassette holds no connection to {target}; its targets are named "
            f"({quoted}) and this run maps no name to {target}; in record mode {mode!r} "
            "nothing reaches the network.",
            f"Map each name to this run's address: targets={{{example}}}.",
        ]
    else:
        where = ""
        if target in mapped:
            where = f" (in this run {target} is {format_target(*mapped[target])})"
        lines = [
            f"{cassette}: the cassette holds no connection to {target}{where}; in record mode "
            f"{mode!r} nothing reaches the network.",
            "Record it with --record-mode=new_episodes, re-record with --record-mode=all, "
            f"or leave {target} out with ignore=[{target!r}]."
            if not is_name(target)
            else "Record it with --record-mode=new_episodes, or re-record with --record-mode=all.",
        ]
    return UnrecordedConnectionError(
        "\n".join([*lines, listed]),
        cassette=cassette,
        target=target,
    )


#: Events shown before the point of failure, so the reader sees what did match.
CONTEXT_EVENTS = 3
#: Events on either side of the failure in the transcript attached to the error.
TRANSCRIPT_AROUND = 8


#: Messages of one chunk decoded in an error message; more are counted.
DECODED_PER_CHUNK = 3


def _protocol(connection: Connection) -> WireProtocol | None:
    return by_name(connection.protocol) or detect(connection)


def _decoded(protocol: WireProtocol | None, data: bytes, side: str) -> list[str]:
    """The protocol's one-line rendering of each whole message in ``data``."""
    if protocol is None or not data:
        return []
    try:
        ends = protocol.split(data, side)
        out, start = [], 0
        for end in ends[:DECODED_PER_CHUNK]:
            out.append(protocol.render(data[start:end], side))
            start = end
    except Exception:  # a protocol that cannot read these bytes must not hide the error
        return []
    if len(ends) > DECODED_PER_CHUNK:
        out.append(f"… {len(ends) - DECODED_PER_CHUNK} more")
    return out


def _decoded_pair(protocol: WireProtocol | None, expected: bytes, actual: bytes) -> str:
    """``recorded ⇒ SET hits 1`` over ``actual ⇒ SET misses 1``, when a protocol reads them."""
    recorded = _decoded(protocol, expected, "client")
    live = _decoded(protocol, actual, "client")
    if not recorded and not live:
        return ""
    return (
        f"  decoded:  recorded ⇒ {' | '.join(recorded) or '(no whole message)'}\n"
        f"            actual   ⇒ {' | '.join(live) or '(no whole message)'}\n"
    )


def _context(connection: Connection, position: int) -> str:
    start = max(0, position - 1 - CONTEXT_EVENTS)
    protocol = _protocol(connection)
    shown = []
    for n, event in enumerate(connection.events[start : position - 1], start + 1):
        line = f"    {n:>4}  {event_label(event)}"
        if type(event) in (ClientData, ServerData):
            side = "client" if type(event) is ClientData else "server"
            decoded = _decoded(protocol, event.data, side)
            if decoded:
                line += f"  ⇒ {' | '.join(decoded)}"
        shown.append(line)
    if not shown:
        return "  (nothing before it was played)"
    return "  played before it:\n" + "\n".join(shown)


def _notes(found: Problem) -> str:
    """What the noise rules accepted and refused, when they judged the message."""
    if not found.notes:
        return ""
    return "  differences, by rule:\n" + "".join(f"    {line}\n" for line in found.notes)


def problem(cassette: str, index: int, connection: Connection, found: Problem) -> ReplayError:
    where = f"{cassette}, connection {index} ({connection.target}), event {found.position}"
    context = _context(connection, found.position)
    kind: type[ReplayError]
    if found.reason == "mismatch":
        kind = ClientMismatchError
        text = (
            f"{where}: the client sent other bytes than were recorded; it was reset.\n"
            f"{side_by_side(found.expected, found.actual, found.offset)}\n"
            f"{_decoded_pair(_protocol(connection), found.expected, found.actual)}"
            f"{_notes(found)}{context}\n{_RERECORD}"
        )
    elif found.reason == "extra":
        kind = ClientMismatchError
        text = (
            f"{where}: the client sent bytes where the recording has none: "
            f"{show_bytes(found.actual)}; it was reset.\n{context}\n{_RERECORD}"
        )
    elif found.reason == "stalled":
        kind = ClientStalledError
        sent, recorded = len(found.actual), len(found.expected)
        how_much = (
            f"sent {sent} of the {recorded} bytes recorded here"
            if sent < recorded
            else f"sent {sent} bytes where {recorded} were recorded, not yet one whole message,"
        )
        text = (
            f"{where}: the client {how_much} and then nothing more; it was reset.\n"
            f"  waiting for: {show_bytes(found.expected[len(found.actual) :])}\n"
            f"  received:    {show_bytes(found.actual)}\n{context}\n"
            "Check that the client flushes its writes; if it now sends a shorter message on "
            "purpose, re-record with --record-mode=all."
        )
    else:
        kind = ClientHungError
        text = (
            f"{where}: the client waited on a silence (a Timeout fault, a Delay, a Close with "
            "a delay, or a recorded gap in realtime replay) longer than max_silence allows and "
            "was reset. Give the "
            "client a timeout of its own (the fault tests that it fires), give the fault "
            "fewer seconds than max_silence, or raise max_silence."
        )
    transcript = "\n".join(
        connection_lines(index, connection, mark=found.position, around=TRANSCRIPT_AROUND)
    )
    return kind(
        text,
        cassette=cassette,
        connection=index,
        position=found.position,
        transcript=transcript,
        target=connection.target,
        key=("event", index, found.position, found.reason, found.actual),
        reset=True,
        sent=found.actual,
    )


def exchange_problem(
    cassette: str, target: str, connections: Sequence[Connection], found: Problem
) -> ReplayError:
    if found.reason == "stalled" and (found.connection is None or not found.expected):
        return ClientStalledError(
            f"{cassette}: a request to {target}, answered request by request, began and "
            f"never completed; it was reset.\n  received: {show_bytes(found.actual)}\n"
            "Check that the client flushes its writes.",
            cassette=cassette,
            target=target,
            key=("exchange", target, None, None, found.reason, found.actual),
            reset=True,
            sent=found.actual,
        )
    if found.connection is None:
        return ClientMismatchError(
            f"{cassette}: a request to {target} matches no unused recorded request (every one "
            f"was used); it was reset.\n  received: {show_bytes(found.actual)}\n"
            "If the client sends it more often than recorded on purpose, allow reuse with "
            "allow_playback_repeats=True, or re-record with --record-mode=all.",
            cassette=cassette,
            target=target,
            key=("exchange", target, None, None, found.reason, found.actual),
            reset=True,
            sent=found.actual,
        )
    index = found.connection
    base = problem(cassette, index, connections[index], found)
    kind = ClientStalledError if found.reason == "stalled" else ClientMismatchError
    return kind(
        f"{cassette}: a request to {target}, answered request by request, matches no unused "
        f"recorded request; the closest is connection {index}, event {found.position}.\n"
        + str(base).split("\n", 1)[1],
        cassette=cassette,
        connection=index,
        position=found.position,
        transcript=base.transcript,
        target=target,
        key=("exchange", target, index, found.position, found.reason, found.actual),
        reset=True,
        sent=found.actual,
    )


def unplayed(cassette: str, items: Sequence[str]) -> UnplayedError:
    listed = "\n".join(f"  - {item}" for item in items)
    return UnplayedError(
        f"{cassette}: strict=True, and the client never used {len(items)} recorded "
        f"item(s):\n{listed}\nA request the client no longer sends is a regression; if it "
        "was dropped on purpose, re-record with --record-mode=all.",
        cassette=cassette,
    )


#: Characters of a rendered first message shown in a strict failure.
FIRST_MESSAGE_CHARS = 120


def first_message(connection: Connection, protocol: WireProtocol | None) -> str:
    """The recorded connection's first client message, as its protocol renders it
    (``SET counter 1``), or its bytes where no protocol frames it; empty if the
    client sent nothing.  For naming a connection strict mode found unused."""
    data = bytearray()
    for event in connection.events:
        if type(event) is ClientData:
            data += event.data
        elif data:
            break  # the first run of client bytes holds the first message
    if not data:
        return ""
    message = bytes(data)
    if protocol is not None:
        try:
            ends = protocol.split(message, "client")
            first = message[: ends[0]] if ends else message
            text = printable(protocol.render(first, "client"))
        except Exception:  # a protocol of the user's own that fails: show the bytes
            return show_bytes(message, limit=60)
        if len(text) > FIRST_MESSAGE_CHARS:
            text = text[: FIRST_MESSAGE_CHARS - 3] + "..."
        return f"{protocol.name} {text}"
    return show_bytes(message, limit=60)


def _tls_words(tls: TlsStart) -> str:
    return f"SNI {tls.sni}" if tls.sni else "no SNI"


def unexpected_tls(cassette: str, target: str, hello: ClientHello) -> ClientMismatchError:
    """A client began TLS on a connection to ``target``, whose recordings began in plaintext."""
    asked = f" for {hello.sni}" if hello.sni else ""
    return ClientMismatchError(
        f"{cassette}: a new connection to {target} began a TLS handshake{asked}, but no "
        "unplayed recording to it began with TLS; it was reset. The client is configured "
        "with TLS now and was not when the cassette was recorded: turn TLS off in the "
        "client again, or re-record with --record-mode=all.",
        cassette=cassette,
        target=target,
        key=("unexpected tls", target, hello.sni),
    )


def no_match(
    cassette: str,
    target: str,
    received: bytes,
    closest: Sequence[tuple[int, Connection, bytes]],
    notes: Sequence[str] = (),
    *,
    tls: bool = False,
) -> ClientMismatchError:
    """``tls``: the live connection began with TLS, and ``received`` came inside it."""
    lines = [
        f"{cassette}: a new connection to {target} began with bytes that no unplayed "
        "recording begins with; it was reset."
    ]
    if closest:
        index, _connection, opening = closest[0]
        began = _connection.opening_tls
        if began is not None and not tls:
            lines.append(
                f"  connection {index} began with TLS ({_tls_words(began)}), but this client "
                "sent plaintext: it is configured without TLS now. Turn TLS on in the client "
                "again, or re-record with --record-mode=all."
            )
        elif began is None and tls:
            lines.append(
                f"  connection {index} was plaintext, but this client began with TLS: it is "
                "configured with TLS now. Turn TLS off in the client again, or re-record "
                "with --record-mode=all."
            )
        offset = first_difference(opening, received)
        lines.append(f"  closest is connection {index}, event 1:")
        lines.append(side_by_side(opening, received, offset))
        pair = _decoded_pair(_protocol(_connection), opening, received)
        if pair:
            lines.append(pair.rstrip("\n"))
        if notes:
            lines.append("  differences, by rule:")
            lines += [f"    {line}" for line in notes]
        for other, _connection, other_opening in closest[1:]:
            lines.append(f"  connection {other} begins: {show_bytes(other_opening)}")
    else:
        lines.append(f"  received: {show_bytes(received)}")
        lines.append("  (every recorded connection to this target was already played)")
    lines.append(_RECORD_NEW)
    return ClientMismatchError(
        "\n".join(lines),
        cassette=cassette,
        target=target,
        key=("opening", target, received),
        reset=True,
        sent=received,
    )


def stalled_opening(
    cassette: str, target: str, received: bytes, index: int | None, expected: bytes
) -> ClientStalledError:
    where = f"connection {index}'s first message" if index is not None else "a recorded message"
    return ClientStalledError(
        f"{cassette}: a new connection to {target} sent {len(received)} of the "
        f"{len(expected)} bytes of {where}, and then nothing more; it was reset.\n"
        f"  waiting for: {show_bytes(expected[len(received) :])}\n"
        f"  received:    {show_bytes(received)}\n"
        "Check that the client flushes its writes.",
        cassette=cassette,
        connection=index,
        position=1,
        target=target,
        key=("stalled opening", target, received),
        sent=received,
        reset=True,
    )
