"""NATS: a text protocol of lines, some followed by a payload of a stated size.

The server speaks first with ``INFO {json}``; the client answers with
``CONNECT {json}``, then ``SUB``, ``PUB subject [reply] n`` (and ``HPUB`` with
headers) followed by ``n`` payload bytes, ``PING``/``PONG``.  The server sends
``MSG subject sid [reply] n`` (and ``HMSG``) with payloads, ``+OK``, ``-ERR``.

What differs between runs: the client library's ``"version"`` (and
``"lang"``) in ``CONNECT``.  Their JSON values are volatile; every other byte
must match.  Request/reply inbox subjects (``_INBOX.<random>``) are random
and echoed back by the server in ``MSG`` lines: the generic ``random`` and
``echo`` rules tolerate them, and the protocol frames commands one by one so
that they are judged one at a time.
"""

from __future__ import annotations

import re

from ..scrub import Scrub, replace_spans
from .base import ProtocolBase, ends_of, printable

#: Largest command line read when framing (a longer one ends where it is cut).
MAX_LINE = 64 * 1024
#: Bytes of a payload or JSON shown when a message is rendered.
SHOWN_BYTES = 40
#: CONNECT fields whose values differ between client library versions.
VOLATILE_FIELDS = (b"version", b"lang")

#: INFO fields a server fills anew: ids made at its start and for each
#: connection, the nonce it signs, the (ephemeral) port, the client's address.
VARYING_INFO_FIELDS = (
    b"server_id",
    b"server_name",
    b"client_id",
    b"client_ip",
    b"nonce",
    b"port",
    b"xkey",
)

#: CONNECT fields that are credentials.
SECRET_FIELDS = (b"pass", b"auth_token")
_WITH_PAYLOAD = {b"PUB": 1, b"MSG": 1, b"HPUB": 2, b"HMSG": 2}


def _payload_size(line: bytes) -> int | None:
    """The bytes after the line of a ``PUB``/``MSG``/``HPUB``/``HMSG`` (None: none follow)."""
    words = line.split()
    if not words or words[0].upper() not in _WITH_PAYLOAD:
        return None
    try:
        size = int(words[-1])
    except ValueError:
        return None  # malformed: the line alone is the message
    return size if 0 <= size <= (1 << 31) else None


def message_end(data: bytes, at: int = 0) -> int | None:
    """The end of the NATS message starting at ``at`` (None: it is still arriving)."""
    newline = data.find(b"\n", at, at + MAX_LINE)
    if newline == -1:
        return at + MAX_LINE if len(data) - at >= MAX_LINE else None
    end = newline + 1
    size = _payload_size(data[at:end])
    if size is None:
        return end
    end += size + 2  # the payload and its CRLF
    return end if end <= len(data) else None


def _text(value: bytes, limit: int = SHOWN_BYTES) -> str:
    return printable(value, limit)


def _show(value: bytes) -> str:
    return printable(value, SHOWN_BYTES, quote=True)


class Nats(ProtocolBase):
    """The NATS client protocol (core NATS, with headers)."""

    name = "nats"

    def detect(self, client: bytes, server: bytes) -> bool:
        return server.startswith(b"INFO {") or client.startswith(b"CONNECT {")

    def split(self, data: bytes, side: str) -> list[int]:
        return ends_of(data, message_end)

    def volatile(self, message: bytes) -> list[tuple[int, int]]:
        if not message.startswith(b"CONNECT "):
            return []
        spans: list[tuple[int, int]] = []
        for field in VOLATILE_FIELDS:
            found = re.search(rb'"' + field + rb'"\s*:\s*("[^"\\\r\n]*")', message)
            if found is not None:
                spans.append(found.span(1))
        return sorted(spans)

    def varying(self, message: bytes, side: str) -> list[tuple[int, int]]:
        """The values of :data:`VARYING_INFO_FIELDS` in the server's ``INFO``."""
        if side != "server" or not message.startswith(b"INFO "):
            return []
        spans = []
        for field in VARYING_INFO_FIELDS:
            found = re.search(rb'"' + field + rb'"\s*:\s*("(?:[^"\\\r\n]|\\.)*"|[^,}\s]+)', message)
            if found is not None:
                spans.append(found.span(1))
        return sorted(spans)

    def might_hold_secret(self, data: bytes, side: str, before: bytes) -> bool:
        return side == "client" and b"CONNECT " in data

    def scrub(self, message: bytes, side: str, before: bytes) -> Scrub | None:
        """The JSON string values of ``pass`` and ``auth_token`` in ``CONNECT``."""
        if side != "client" or not message.startswith(b"CONNECT "):
            return None
        spans = []
        for field in SECRET_FIELDS:
            for found in re.finditer(rb'"' + field + rb'"\s*:\s*"((?:[^"\\\r\n]|\\.)*)"', message):
                if found.end(1) > found.start(1):
                    spans.append(found.span(1))
        return replace_spans(message, spans) if spans else None

    def render(self, message: bytes, side: str) -> str:
        newline = message.find(b"\n")
        line = (message if newline == -1 else message[:newline]).rstrip(b"\r\n")
        words = line.split()
        if not words:
            return _show(message)
        verb = words[0].upper()
        if verb in (b"INFO", b"CONNECT"):
            return verb.decode() + " " + _text(line[len(verb) :].strip(), 2 * SHOWN_BYTES)
        size = _payload_size(line)
        if size is None:
            return " ".join(_show(w) for w in words)
        body = message[newline + 1 : newline + 1 + size]
        if _WITH_PAYLOAD[verb] == 2:
            try:
                head = int(words[-2])
            except ValueError:
                head = 0
            headers = body[:head].count(b"\r\n") - 2 if head else 0
            shown = [_show(w) for w in words[1:-2]]
            return " ".join(
                [verb.decode(), *shown, f"+ {max(headers, 0)} headers", _show(body[head:])]
            )
        return " ".join([verb.decode(), *(_show(w) for w in words[1:-1]), _show(body)])
