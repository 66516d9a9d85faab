"""HTTP/2 with prior knowledge (RFC 9113), as gRPC speaks it on plaintext.

The client opens with the connection preface ``PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n``;
after it both sides send frames: a 9-byte header (24-bit length, type,
flags, 31-bit stream id) and the payload.  The preface is one message, and
each frame another.

What differs between runs of the same client in a fresh process:

* flow control and liveness run on timers: how many ``PING`` frames (gRPC's
  bandwidth probes, with payloads of their own), ``WINDOW_UPDATE``,
  ``SETTINGS`` acknowledgements and ``PRIORITY`` frames a client sends, and
  when.  These client frames are :meth:`Http2.ignorable`: replay leaves the
  recorded ones out of the script, skips the live ones, and answers a live
  ``PING`` with its acknowledgement carrying the live payload
  (:meth:`Http2.answer`).  The server's recorded pings are left out too
  (their acknowledgements would be skipped anyway);
* headers are compressed with HPACK, whose bytes change with any value's
  length.  ``HEADERS`` frames are compared decoded (:meth:`Http2.normalise`),
  one header a line; ``:authority`` holds the port dialled (a replay
  listener's is another than the recording proxy's), ``user-agent`` the
  client library's version and ``grpc-timeout`` the time left to a deadline:
  their values are volatile.

Credentials in header blocks (:meth:`Http2.scrub`): the values of the
request headers HTTP/1.1 scrubs (``authorization`` and ``proxy-authorization``
after their scheme, ``cookie``, API-key headers) and the value of each
``set-cookie`` in a response.  A literal header field is rewritten with its
value re-encoded (not Huffman-coded) and the frame's length fixed.  A
literal that also enters the dynamic table gets a stand-in of the secret's
own length (:data:`PLACEHOLDER` repeated and cut), so that the table's sizes,
and so which entries it evicts, stay what both peers counted.  What cannot
be scrubbed is left as recorded: a header referred to by an index carries
no value in the block (the value went by in clear once, as a literal, and
that literal is scrubbed); a literal named by a dynamic index has a name
this frame alone does not tell; a literal cut by a ``CONTINUATION`` frame,
and a frame the rewrite would take over the 16 KiB every peer accepts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

from ..events import ClientData, ServerData
from ..hpack import STATIC_TABLE, Decoder, HpackError, decode_integer, decode_string, encode_string
from ..scrub import PLACEHOLDER, Scrub
from .base import ProtocolBase, ends_of, printable
from .http import SECRET_HEADERS

if TYPE_CHECKING:
    from ..events import Event

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADER_LENGTH = 9

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0, 1, 2, 3, 4, 5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 6, 7, 8, 9

NAMES = {
    DATA: "DATA", HEADERS: "HEADERS", PRIORITY: "PRIORITY", RST_STREAM: "RST_STREAM",
    SETTINGS: "SETTINGS", PUSH_PROMISE: "PUSH_PROMISE", PING: "PING", GOAWAY: "GOAWAY",
    WINDOW_UPDATE: "WINDOW_UPDATE", CONTINUATION: "CONTINUATION",
}  # fmt: skip
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
#: The flags each frame type defines, by bit.
FLAGS: dict[int, tuple[tuple[int, str], ...]] = {
    DATA: ((END_STREAM, "END_STREAM"), (PADDED, "PADDED")),
    HEADERS: (
        (END_STREAM, "END_STREAM"),
        (END_HEADERS, "END_HEADERS"),
        (PADDED, "PADDED"),
        (PRIORITY_FLAG, "PRIORITY"),
    ),
    SETTINGS: ((ACK, "ACK"),),
    PUSH_PROMISE: ((END_HEADERS, "END_HEADERS"), (PADDED, "PADDED")),
    PING: ((ACK, "ACK"),),
    CONTINUATION: ((END_HEADERS, "END_HEADERS"),),
}
SETTING_NAMES = {
    1: "HEADER_TABLE_SIZE", 2: "ENABLE_PUSH", 3: "MAX_CONCURRENT_STREAMS",
    4: "INITIAL_WINDOW_SIZE", 5: "MAX_FRAME_SIZE", 6: "MAX_HEADER_LIST_SIZE",
    8: "ENABLE_CONNECT_PROTOCOL",
}  # fmt: skip
ERROR_NAMES = {
    0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
    4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM",
    8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM",
    12: "INADEQUATE_SECURITY", 13: "HTTP_1_1_REQUIRED",
}  # fmt: skip
#: Headers whose values differ between runs: the port dialled, the library's
#: version, the time left to a deadline.
VOLATILE_HEADERS = frozenset({b":authority", b"user-agent", b"grpc-timeout"})
#: How a HEADERS frame's normalised form starts (it is no frame: frames start with a length).
DECODED = b"HTTP/2 HEADERS decoded\n"
#: Bytes of a header value shown when a frame is rendered.
SHOWN_BYTES = 60
#: The dynamic table size a decoder of a lone block allows in size updates
#: (the peer's setting is not known there).
LENIENT_TABLE_SIZE = 1 << 20


def frame_end(data: bytes, at: int = 0) -> int | None:
    """The end of the frame at ``at`` (None: still arriving)."""
    if len(data) - at < HEADER_LENGTH:
        return None
    end = at + HEADER_LENGTH + int.from_bytes(data[at : at + 3], "big")
    return end if end <= len(data) else None


def client_message_end(data: bytes, at: int = 0) -> int | None:
    """The end of the preface or frame at ``at`` (None: still arriving)."""
    head = data[at : at + len(PREFACE)]
    if head == PREFACE:
        return at + len(PREFACE)
    if len(head) < len(PREFACE) and PREFACE.startswith(head):
        return None
    return frame_end(data, at)


def parse(frame: bytes) -> tuple[int, int, int, bytes] | None:
    """A frame's type, flags, stream id and payload (None: not one whole frame)."""
    if len(frame) < HEADER_LENGTH or frame_end(frame) != len(frame):
        return None
    stream = int.from_bytes(frame[5:9], "big") & 0x7FFFFFFF
    return frame[3], frame[4], stream, frame[HEADER_LENGTH:]


def header_block(kind: int, flags: int, payload: bytes) -> bytes | None:
    """The header block fragment of a HEADERS frame (padding and priority removed)."""
    at, end = 0, len(payload)
    if flags & PADDED:
        if not payload:
            return None
        end -= payload[0]
        at = 1
    if kind == HEADERS and flags & PRIORITY_FLAG:
        at += 5
    return payload[at:end] if at <= end else None


def decode_alone(block: bytes) -> list[tuple[bytes, bytes]] | None:
    """A header block decoded without the connection's earlier blocks (None: not HPACK).

    Entries of the dynamic table inserted by earlier blocks are given as
    ``(dynamic index N)``; their numbers are the ones the live and the
    recorded client used, so decoded forms compare all the same.
    """
    try:
        return Decoder(LENIENT_TABLE_SIZE, mark_unknown=True).decode(block)
    except HpackError:
        return None


#: The largest frame every peer accepts (``SETTINGS_MAX_FRAME_SIZE``'s initial value).
MIN_MAX_FRAME_SIZE = 1 << 14
_SCHEME_NAMES = (b"authorization", b"proxy-authorization")
_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9-]*[ \t]+(?=\S)")


@dataclass(frozen=True)
class Literal:
    """A literal header field of a block: its name (None: named by a dynamic table
    index), its value decoded, where its value string lies, whether it is indexed."""

    name: bytes | None
    value: bytes
    start: int
    end: int
    indexed: bool


def literals(block: bytes) -> list[Literal]:
    """The literal header fields of a header block, up to the first that is cut short
    or malformed (a block continued in ``CONTINUATION`` frames ends early)."""
    found: list[Literal] = []
    at = 0
    try:
        while at < len(block):
            byte = block[at]
            if byte & 0x80:  # indexed header field: no value here
                _, at = decode_integer(block, at, 7)
                continue
            if byte & 0xE0 == 0x20:  # dynamic table size update
                _, at = decode_integer(block, at, 5)
                continue
            indexed = bool(byte & 0x40)
            index, at = decode_integer(block, at, 6 if indexed else 4)
            name: bytes | None = None
            if index == 0:
                name, at = decode_string(block, at)
            elif index <= len(STATIC_TABLE):
                name = STATIC_TABLE[index - 1][0]
            start = at
            value, at = decode_string(block, at)
            found.append(Literal(name, value, start, at, indexed))
    except HpackError:
        pass
    return found


def secret_part(name: bytes, value: bytes, side: str) -> tuple[int, int] | None:
    """Where the credential lies in a header's value (None: the header holds none)."""
    name = name.lower()
    if side == "client" and name in SECRET_HEADERS:
        start = 0
        scheme = _SCHEME.match(value) if name in _SCHEME_NAMES else None
        if scheme is not None:
            start = scheme.end()
        return (start, len(value)) if len(value) > start else None
    if side == "server" and name == b"set-cookie":
        pair = value.split(b";", 1)[0]
        equals = pair.find(b"=")
        if equals != -1 and len(pair) > equals + 1:
            return equals + 1, len(pair)
    return None


def stand_in(size: int) -> bytes:
    """:data:`PLACEHOLDER` repeated and cut to ``size`` bytes."""
    return (PLACEHOLDER * (size // len(PLACEHOLDER) + 1))[:size]


def _scrubbed_value(secret: bytes, same_size: bool) -> bytes:
    if secret == PLACEHOLDER or (secret and secret == stand_in(len(secret))):
        return secret  # scrubbed already
    return stand_in(len(secret)) if same_size else PLACEHOLDER


def _scrub_frame(message: bytes, side: str) -> Scrub | None:
    frame = parse(message)
    if frame is None or frame[0] != HEADERS:
        return None
    kind, flags, _, payload = frame
    at = 1 if flags & PADDED else 0
    at += 5 if flags & PRIORITY_FLAG else 0
    block = header_block(kind, flags, payload)
    if block is None:
        return None
    pieces: list[bytes] = []
    spans: list[tuple[int, int]] = []
    done = 0
    size = HEADER_LENGTH + at
    for field in literals(block):
        part = secret_part(field.name, field.value, side) if field.name is not None else None
        if part is None:
            continue
        start, end = part
        secret = _scrubbed_value(field.value[start:end], field.indexed)
        encoded = encode_string(field.value[:start] + secret + field.value[end:])
        pieces.append(block[done : field.start])
        size += field.start - done
        spans.append((size, size + len(encoded)))
        pieces.append(encoded)
        size += len(encoded)
        done = field.end
    if not spans:
        return None
    pieces.append(block[done:])
    new_payload = payload[:at] + b"".join(pieces) + payload[at + len(block) :]
    if len(new_payload) > max(MIN_MAX_FRAME_SIZE, len(payload)):
        return None  # the peer could refuse the frame: left as recorded
    rewritten = len(new_payload).to_bytes(3, "big") + message[3:HEADER_LENGTH] + new_payload
    return rewritten, [(0, 3), *spans]


def _scrub_decoded(message: bytes, side: str) -> Scrub:
    """A decoded HEADERS frame (:meth:`Http2.normalise`) with its credentials replaced,
    and their spans: how replay finds, in a recorded frame's decoded form, the
    values a live client's credentials stand against."""
    out: list[bytes] = []
    spans: list[tuple[int, int]] = []
    size = 0
    for line in message.split(b"\n"):
        name, sep, value = line.partition(b": ")
        part = secret_part(name, value, side) if sep else None
        if part is not None:
            start, end = part
            secret = _scrubbed_value(value[start:end], False)
            at = size + len(name) + len(sep) + start
            spans.append((at, at + len(secret)))
            line = name + sep + value[:start] + secret + value[end:]
        out.append(line)
        size += len(line) + 1
    return b"\n".join(out), spans


def _frames(stream: bytes) -> list[tuple[int, int]]:
    """The ``(start, end)`` offsets of the whole frames in a server's byte stream."""
    starts = [0, *ends_of(stream, frame_end)]
    return list(pairwise(starts))


def ping_ack(payload: bytes) -> bytes:
    """The acknowledgement of a PING carrying ``payload``."""
    return len(payload).to_bytes(3, "big") + bytes([PING, ACK]) + bytes(4) + payload


def _flag_names(kind: int, flags: int) -> str:
    names = [name for bit, name in FLAGS.get(kind, ()) if flags & bit]
    return f" [{' '.join(names)}]" if names else ""


class Http2(ProtocolBase):
    """HTTP/2 frames on a connection opened with the prior-knowledge preface."""

    name = "http2"

    def detect(self, client: bytes, server: bytes) -> bool:
        return client.startswith(PREFACE)

    def split(self, data: bytes, side: str) -> list[int]:
        return ends_of(data, client_message_end if side == "client" else frame_end)

    def ignorable(self, message: bytes) -> bool:
        """Client frames sent on timers: PING (and its ACK), WINDOW_UPDATE, SETTINGS ACK,
        PRIORITY.  Replay skips them where the live client sends them."""
        frame = parse(message)
        if frame is None:
            return False
        kind, flags = frame[0], frame[1]
        return kind in (PING, WINDOW_UPDATE, PRIORITY) or (kind == SETTINGS and bool(flags & ACK))

    def answer(self, message: bytes) -> bytes | None:
        """A live PING is acknowledged with its own payload."""
        frame = parse(message)
        if frame is None or frame[0] != PING or frame[1] & ACK:
            return None
        return ping_ack(frame[3])

    def play(self, events: Sequence[Event]) -> Sequence[Event | None]:
        """Recorded ignorable client frames left out, and the server's PING frames."""
        stream = b"".join(e.data for e in events if type(e) is ServerData)
        pings = [(a, b) for a, b in _frames(stream) if stream[a + 3] == PING]
        out: list[Event | None] = []
        chunk_at = 0  # where the chunk starts in the server's byte stream
        for event in events:
            if type(event) is ClientData:
                out.append(None if self.ignorable(event.data) else event)
            elif type(event) is ServerData:
                data, chunk_end = event.data, chunk_at + len(event.data)
                inside = [(a, b) for a, b in pings if chunk_at <= a and b <= chunk_end]
                if inside:
                    kept, at = [], chunk_at
                    for a, b in inside:
                        kept.append(data[at - chunk_at : a - chunk_at])
                        at = b
                    kept.append(data[at - chunk_at :])
                    played = b"".join(kept)
                    out.append(ServerData(data=played, time=event.time) if played else None)
                else:
                    out.append(event)
                chunk_at = chunk_end
            else:
                out.append(event)
        return out

    def normalise(self, message: bytes) -> bytes:
        """A HEADERS frame as its decoded headers, one a line; other frames as they are."""
        frame = parse(message)
        if frame is None or frame[0] != HEADERS:
            return message
        kind, flags, stream, payload = frame
        block = header_block(kind, flags, payload)
        headers = decode_alone(block) if block is not None else None
        if headers is None:
            return message
        lines = [DECODED + f"stream {stream} flags {flags & ~PADDED & ~PRIORITY_FLAG}".encode()]
        lines += [name + b": " + value for name, value in headers]
        return b"\n".join(lines) + b"\n"

    def volatile(self, message: bytes) -> list[tuple[int, int]]:
        """In a decoded HEADERS frame, the values of :data:`VOLATILE_HEADERS`."""
        if not message.startswith(DECODED):
            return []
        spans: list[tuple[int, int]] = []
        at = len(DECODED)
        for line in message[len(DECODED) :].split(b"\n"):
            name, sep, _ = line.partition(b": ")
            if sep and name in VOLATILE_HEADERS:
                start = at + len(name) + 2
                spans.append((start, at + len(line)))
            at += len(line) + 1
        return spans

    def scrub(self, message: bytes, side: str, before: bytes) -> Scrub | None:
        """The credentials of a HEADERS frame's literal header fields (see the module's
        docstring), with the frame's length and each rewritten value string in the
        spans; in a decoded frame, the credentials' values."""
        if message.startswith(DECODED):
            rewritten, spans = _scrub_decoded(message, side)
            return (rewritten, spans) if spans else None
        return _scrub_frame(message, side)

    def render(self, message: bytes, side: str) -> str:
        if side == "client" and message.startswith(PREFACE):
            return "PRI * HTTP/2.0 (connection preface)"
        frame = parse(message)
        if frame is None:
            return f"(not a whole frame: {len(message)} bytes)"
        kind, flags, stream, payload = frame
        name = NAMES.get(kind, f"type{kind}")
        where = f" stream {stream}" if stream or kind in (DATA, HEADERS, RST_STREAM) else ""
        line = f"{name}{where}{_flag_names(kind, flags)}"
        detail = _detail(kind, flags, payload)
        return f"{line} {detail}" if detail else line


def _detail(kind: int, flags: int, payload: bytes) -> str:
    if kind in (HEADERS, PUSH_PROMISE):
        block = header_block(kind, flags, payload)
        if kind == PUSH_PROMISE and block is not None:
            block = block[4:]
        headers = decode_alone(block) if block is not None else None
        if headers is None:
            return f"(header block of {len(payload)} bytes not decoded)"
        return " ".join(
            f"{printable(n, SHOWN_BYTES)} {printable(v, SHOWN_BYTES, quote=True)}"
            if v or not n.startswith(b"(dynamic")
            else printable(n)
            for n, v in headers
        )
    if kind == DATA:
        return f"{len(payload)} bytes"
    if kind == SETTINGS:
        pairs = [payload[i : i + 6] for i in range(0, len(payload) - 5, 6)]
        return " ".join(
            f"{SETTING_NAMES.get(int.from_bytes(p[:2], 'big'), hex(int.from_bytes(p[:2], 'big')))}"
            f"={int.from_bytes(p[2:], 'big')}"
            for p in pairs
        )
    if kind == PING:
        return f"{len(payload)} bytes"
    if kind == WINDOW_UPDATE and len(payload) >= 4:
        return f"+{int.from_bytes(payload[:4], 'big') & 0x7FFFFFFF}"
    if kind == RST_STREAM and len(payload) >= 4:
        code = int.from_bytes(payload[:4], "big")
        return ERROR_NAMES.get(code, str(code))
    if kind == GOAWAY and len(payload) >= 8:
        last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
        code = int.from_bytes(payload[4:8], "big")
        debug = f" {printable(payload[8:], quote=True)}" if payload[8:] else ""
        return f"last stream {last} {ERROR_NAMES.get(code, str(code))}{debug}"
    if kind == CONTINUATION:
        return f"{len(payload)} bytes"
    return f"{len(payload)} bytes" if payload else ""
