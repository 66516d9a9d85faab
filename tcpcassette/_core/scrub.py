"""Credentials sent in clear, replaced by a placeholder before a recording is saved.

A protocol says where a message holds a credential with an optional
``scrub(message, side, before)`` method (``before``: the other side's last
bytes, for a credential known by the prompt it answers, as SMTP's ``334``).
It returns None, or the message rewritten with each credential replaced by
:data:`PLACEHOLDER` (length fields counting it fixed) and the spans of the
rewritten message that stand for the credentials: the placeholder, and the
length field in front of it where the protocol has one.

A protocol may add ``might_hold_secret(data, side, before)``: a cheap test,
run on a whole run of one side's bytes before it is framed, that answers
False only where ``scrub`` could find nothing in any message of it (a
command name searched for, a side that never carries credentials).  Saving
then skips framing the run.  Without it, every run is framed and searched.

The hook is idempotent: scrubbing a scrubbed message finds the placeholder
where the credential was and returns the same message and spans.  Replay
relies on that to find the spans of a recorded message again: the live
client sends its real credential there, which the rule ``scrubbed`` of
:mod:`tcpcassette._core.noise` accepts.

Connections no protocol claims go through :data:`LINES`, which knows the
line protocols whose login is one command line: FTP and POP3 ``PASS``, IMAP
``LOGIN``.  They need no framing of their own (a login is one line, and a
line is what raw matching compares), so they get no protocol module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace

from .connection import Connection
from .events import ClientData, DataEvent, Event, ServerData

#: What a credential is replaced by.  Letters only, so that it is a valid
#: token wherever one is expected (an SMTP ``AUTH`` continuation line).
PLACEHOLDER = b"tcpcassetteScrubbed"

#: Runs of same-side bytes longer than this are saved as they are, unsearched:
#: logins are short, and searching a bulk transfer would copy it.
MAX_SCRUBBED_RUN = 16 * 1024 * 1024

#: A message rewritten, and the spans of it that stand for credentials.
Scrub = tuple[bytes, list[tuple[int, int]]]


def replace_spans(message: bytes, spans: Iterable[tuple[int, int]]) -> Scrub:
    """``message`` with each ``(start, end)`` span replaced by :data:`PLACEHOLDER`,
    and where the placeholders are in the result.  Overlapping spans are merged."""
    out: list[bytes] = []
    found: list[tuple[int, int]] = []
    at = 0
    size = 0
    for start, end in sorted(spans):
        start = max(start, at)
        if end <= start:
            continue
        out.append(message[at:start])
        size += start - at
        out.append(PLACEHOLDER)
        found.append((size, size + len(PLACEHOLDER)))
        size += len(PLACEHOLDER)
        at = end
    out.append(message[at:])
    return b"".join(out), found


def scrub_message(protocol: object, message: bytes, side: str, before: bytes) -> Scrub | None:
    """``protocol.scrub(message, side, before)``, checked; None when it has no such
    method or the message holds no credential."""
    method = getattr(protocol, "scrub", None)
    if not callable(method):
        return None
    found = method(message, side, before)
    if not found:
        return None
    rewritten, spans = found
    clean = [(int(s), int(e)) for s, e in spans if 0 <= int(s) < int(e) <= len(rewritten)]
    return (bytes(rewritten), clean) if clean else None


def secret_spans(
    protocol: object, message: bytes, side: str, before: bytes
) -> list[tuple[int, int]]:
    """The spans of a recorded (already scrubbed) message that stand for credentials."""
    framer = protocol if protocol is not None else LINES
    spans: list[tuple[int, int]] = []
    at = 0
    for end in [*_ends(framer, message, side), len(message)]:
        if end <= at:
            continue
        piece = message[at:end]
        found = scrub_message(framer, piece, side, before)
        if found is not None and found[0] == piece:
            spans += [(at + s, at + e) for s, e in found[1]]
        at = end
    return spans


def scrub_connection(connection: Connection, protocol: object) -> Connection:
    """``connection`` with every credential its protocol (or :data:`LINES`, when none
    claims it) finds replaced, and the places recorded in ``connection.scrubbed``.

    Runs of same-side chunks are framed into messages; a run that changes is
    saved as one chunk (as the user's filters do), so that each span lies in
    one event: ``(event, start, end)``, the event's index from 0.
    """
    framer = protocol if protocol is not None else LINES
    if not callable(getattr(framer, "scrub", None)):
        return connection  # a protocol that carries no credentials in clear
    hint = getattr(framer, "might_hold_secret", None)
    if not callable(hint):
        hint = None
    out: list[Event] = []
    spans: list[tuple[int, int, int]] = []
    run: list[DataEvent] = []
    last_other = {"client": b"", "server": b""}

    def flush() -> None:
        if not run:
            return
        side = "client" if type(run[0]) is ClientData else "server"
        if len(run) == 1:
            joined = run[0].data
            if len(joined) > MAX_SCRUBBED_RUN:
                out.append(run[0])  # a bulk transfer, not a login: not searched
                run.clear()
                return
        elif sum(len(e.data) for e in run) > MAX_SCRUBBED_RUN:
            out.extend(run)  # a bulk transfer, not a login: not copied to be searched
            run.clear()
            return
        else:
            joined = b"".join(e.data for e in run)
        before = last_other[side]
        if hint is not None and not hint(joined, side, before):
            # The protocol says no message here can hold a credential.
            last_other["server" if side == "client" else "client"] = joined
            out.extend(run)
            run.clear()
            return
        pieces: list[bytes] = []
        found: list[tuple[int, int]] = []
        at = 0
        size = 0
        for end in [*_ends(framer, joined, side), len(joined)]:
            if end <= at:
                continue
            message = joined[at:end]
            scrubbed = scrub_message(framer, message, side, before)
            if scrubbed is not None:
                message = scrubbed[0]
                found += [(size + s, size + e) for s, e in scrubbed[1]]
            pieces.append(message)
            size += len(message)
            at = end
        rewritten = b"".join(pieces)
        last_other["server" if side == "client" else "client"] = rewritten
        if rewritten == joined and not found:
            out.extend(run)
        else:
            index = len(out)
            out.append(replace(run[0], data=rewritten, time=run[-1].time))
            spans.extend((index, s, e) for s, e in found)
        run.clear()

    for event in connection.events:
        if type(event) is ClientData or type(event) is ServerData:
            if run and type(run[0]) is not type(event):
                flush()
            run.append(event)
        else:
            flush()
            out.append(event)
    flush()
    if not spans:
        return connection
    return replace(connection, events=tuple(out), scrubbed=tuple(spans))


def _ends(framer: object, data: bytes, side: str) -> list[int]:
    split = getattr(framer, "split", None)
    if not callable(split):
        return []
    ends = [int(e) for e in split(data, side)]
    return [e for e in ends if 0 < e <= len(data)]


def header_values(head: bytes, names: Sequence[bytes]) -> list[tuple[int, int]]:
    """The ``(start, end)`` spans of the values of the header fields ``names``
    (lower case) in an HTTP-style head, leading and trailing blanks left out."""
    spans = []
    for found in _HEADER.finditer(head):
        if found.group(1).lower() in names and found.end(2) > found.start(2):
            spans.append(found.span(2))
    return spans


_HEADER = re.compile(rb"\r\n([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*(?=\r\n)")
_LINE_PASS = re.compile(rb"(?i)(PASS )([^\r\n]+)\r?\n")
_IMAP_ATOM = rb'(?:"(?:[^"\\\r\n]|\\.)*"|[^ \r\n]+)'
#: In every message :class:`Lines` scrubs: the command words its patterns need.
_LINE_LOGIN_WORD = re.compile(rb"(?i)PASS |LOGIN ")
_IMAP_LOGIN = re.compile(rb"(?i)[^ \r\n]+ LOGIN " + _IMAP_ATOM + rb" (" + _IMAP_ATOM + rb")\r?\n")


class Lines:
    """Logins of line protocols without a protocol module: FTP and POP3 ``PASS``
    (the whole argument) and IMAP ``LOGIN`` (its password, quoted or not)."""

    name = "lines"

    def might_hold_secret(self, data: bytes, side: str, before: bytes) -> bool:
        return side == "client" and _LINE_LOGIN_WORD.search(data) is not None

    def split(self, data: bytes, side: str) -> list[int]:
        ends = []
        at = data.find(b"\n")
        while at != -1:
            ends.append(at + 1)
            at = data.find(b"\n", at + 1)
        return ends

    def scrub(self, message: bytes, side: str, before: bytes) -> Scrub | None:
        if side != "client":
            return None
        found = _LINE_PASS.fullmatch(message)
        if found is not None:
            return replace_spans(message, [found.span(2)])
        found = _IMAP_LOGIN.fullmatch(message)
        if found is not None:
            return replace_spans(message, [found.span(1)])
        return None


#: The scrubber of connections no protocol claims.
LINES = Lines()
