"""Redis RESP2 and RESP3: commands as arrays of bulk strings, replies of every RESP type.

What differs between runs: the client library's name and version, which
redis-py (and other clients) announce with ``CLIENT SETINFO LIB-NAME`` and
``LIB-VER`` on every new connection.  Their values (with the length headers
in front of them, since a version may change length) are volatile; every
other byte of a command must match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..scrub import PLACEHOLDER, Scrub
from .base import ProtocolBase, ends_of, printable

#: ``id`` and its integer in a ``HELLO`` reply, RESP3 or RESP2.
_HELLO_ID = re.compile(rb"(?:\$2\r\n|\+)id\r\n:(-?[0-9]+)\r\n")

#: In every command :meth:`Redis.scrub` changes (``AUTH``, ``HELLO ... AUTH``).
_AUTH_WORD = re.compile(rb"(?i)AUTH")
_LINE_TYPES = frozenset(b"+-:_,#(")
_BULK_TYPES = frozenset(b"$!=")
_AGGREGATE_TYPES = frozenset(b"*~>")
_MAP_TYPES = frozenset(b"%|")
_BULK = ord("$")
#: Nesting deeper than this is refused (a cassette is untrusted input).
MAX_DEPTH = 64
#: Arguments shown when a message is rendered; more are counted.
SHOWN_ARGUMENTS = 6
#: Bytes of one argument shown when a message is rendered.
SHOWN_BYTES = 40


def _line_end(data: bytes, at: int) -> int | None:
    end = data.find(b"\r\n", at)
    return None if end == -1 else end + 2


def _count(data: bytes, at: int) -> tuple[int, int] | None:
    """The number after a type byte at ``at``, and where its line ends (None: incomplete)."""
    end = _line_end(data, at)
    if end is None:
        return None
    try:
        return int(data[at + 1 : end - 2]), end
    except ValueError:
        return -2, end  # not a number: malformed, ends the message here


def value_end(data: bytes, at: int = 0, depth: int = 0) -> int | None:
    """The end of the RESP value starting at ``at`` (None: it is still arriving).

    Malformed input ends at its line, so it is matched as a whole rather
    than waited for.
    """
    if at >= len(data):
        return None
    kind = data[at]
    if kind in _LINE_TYPES:
        return _line_end(data, at)
    header = _count(data, at)
    if header is None:
        return None
    n, end = header
    if kind in _BULK_TYPES:
        if n < 0:
            return end
        return end + n + 2 if end + n + 2 <= len(data) else None
    if kind in _AGGREGATE_TYPES or kind in _MAP_TYPES:
        if n < 0 or depth >= MAX_DEPTH:
            return end
        items = n * 2 if kind in _MAP_TYPES else n
        size = len(data)
        for _ in range(items):
            if end < size and data[end] == _BULK:
                # A bulk string, every item of a command: read here, as the
                # bulk branch above reads it, without a call per item.
                line = data.find(b"\r\n", end)
                if line == -1:
                    return None
                try:
                    length = int(data[end + 1 : line])
                except ValueError:
                    length = -1  # malformed: the item ends at its line
                end = line + 2 if length < 0 else line + 4 + length
                if end > size:
                    return None
                continue
            found = value_end(data, end, depth + 1)
            if found is None:
                return None
            end = found
        if kind == ord("|"):  # attributes come before the value they describe
            return value_end(data, end, depth + 1)
        return end
    # An inline command (telnet style): one line.
    newline = data.find(b"\n", at)
    return None if newline == -1 else newline + 1


@dataclass(frozen=True, slots=True)
class Argument:
    """One bulk string of a command: where its ``$n`` header starts, and its value."""

    start: int
    value_start: int
    value_end: int


def arguments(message: bytes) -> list[Argument]:
    """The bulk strings of a command array (empty when it is not one)."""
    if not message.startswith(b"*"):
        return []
    header = _count(message, 0)
    if header is None or header[0] < 0:
        return []
    n, at = header
    out: list[Argument] = []
    for _ in range(min(n, 1 << 16)):
        if at >= len(message) or message[at] != ord("$"):
            return out
        bulk = _count(message, at)
        if bulk is None or bulk[0] < 0:
            return out
        size, value_start = bulk
        value_end_ = value_start + size
        if value_end_ + 2 > len(message):
            return out
        out.append(Argument(at, value_start, value_end_))
        at = value_end_ + 2
    return out


def _show(value: bytes) -> str:
    return printable(value, SHOWN_BYTES, quote=True)


class Redis(ProtocolBase):
    """The Redis serialisation protocol (RESP2 and RESP3)."""

    name = "redis"
    #: Commands stand alone: a pooled client may send one on any connection.
    stateless = True

    def detect(self, client: bytes, server: bytes) -> bool:
        if not client.startswith(b"*"):
            return False
        end = _line_end(client, 0)
        return end is not None and client[1 : end - 2].isdigit() and client[end : end + 1] == b"$"

    def split(self, data: bytes, side: str) -> list[int]:
        return ends_of(data, value_end)

    def volatile(self, message: bytes) -> list[tuple[int, int]]:
        args = arguments(message)
        words = [message[a.value_start : a.value_end].upper() for a in args[:3]]
        setinfo = words[:2] == [b"CLIENT", b"SETINFO"] and len(args) == 4
        if setinfo and words[2] in (b"LIB-VER", b"LIB-NAME"):
            value = args[3]
            return [(value.start, value.value_end + 2)]
        return []

    def varying(self, message: bytes, side: str) -> list[tuple[int, int]]:
        """The connection id in the reply to ``HELLO`` (a map or a flat array
        holding ``id`` and an integer): the server counts connections."""
        if side != "server" or message[:1] not in (b"%", b"*"):
            return []
        found = _HELLO_ID.search(message)
        return [found.span(1)] if found is not None else []

    def might_hold_secret(self, data: bytes, side: str, before: bytes) -> bool:
        return side == "client" and _AUTH_WORD.search(data) is not None

    def scrub(self, message: bytes, side: str, before: bytes) -> Scrub | None:
        """The password of ``AUTH [user] password`` and of ``HELLO ... AUTH user
        password``; its ``$n`` header counts the placeholder, and is part of the span."""
        if side != "client":
            return None
        args = arguments(message)
        words = [message[a.value_start : a.value_end].upper() for a in args]
        secret = None
        if words[:1] == [b"AUTH"] and len(args) in (2, 3):
            secret = len(args) - 1
        elif words[:1] == [b"HELLO"] and b"AUTH" in words[1:]:
            at = words.index(b"AUTH", 1) + 2
            secret = at if at < len(args) else None
        if secret is None:
            return None
        arg = args[secret]
        bulk = b"$%d\r\n%s\r\n" % (len(PLACEHOLDER), PLACEHOLDER)
        rewritten = message[: arg.start] + bulk + message[arg.value_end + 2 :]
        return rewritten, [(arg.start, arg.start + len(bulk))]

    def render(self, message: bytes, side: str) -> str:
        if side == "client":
            args = arguments(message)
            if not args:
                return _show(message.rstrip(b"\r\n"))
            shown = [_show(message[a.value_start : a.value_end]) for a in args[:SHOWN_ARGUMENTS]]
            more = len(args) - SHOWN_ARGUMENTS
            return " ".join(shown) + (f" … (+{more} arguments)" if more > 0 else "")
        return _render_reply(message)


def _render_reply(message: bytes) -> str:
    if not message:
        return ""
    kind = message[0]
    line = message[1:].split(b"\r\n", 1)[0]
    if kind == ord("+"):
        return _show(line)
    if kind == ord("-"):
        return "error " + _show(line)
    if kind in (ord(":"), ord(","), ord("(")):
        return line.decode("ascii", "replace")
    if kind == ord("_") or (kind == ord("$") and line == b"-1"):
        return "nil"
    if kind == ord("#"):
        return "true" if line == b"t" else "false"
    if kind in _BULK_TYPES:
        body = message[len(line) + 3 : -2]
        return _show(body)
    if kind in _AGGREGATE_TYPES:
        return f"[{line.decode('ascii', 'replace')} items]"
    if kind in _MAP_TYPES:
        return f"{{{line.decode('ascii', 'replace')} pairs}}"
    return _show(message.rstrip(b"\r\n"))
