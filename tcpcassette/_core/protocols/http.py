"""HTTP/1.1, and the WebSocket protocol it can upgrade to.

Requests are framed by their head and body (``Content-Length`` or chunked),
so pipelined requests are matched one by one.  What differs between runs:

* ``Sec-WebSocket-Key`` is random; the recorded ``Sec-WebSocket-Accept`` is
  derived from it (base64 of the SHA-1 of key and a fixed GUID, RFC 6455),
  so replay computes it again from the live key (:meth:`Http.rewrite`);
* every WebSocket frame a client sends is masked with a random key; frames
  are compared unmasked (:meth:`Http.normalise`), so the payload must match
  and the mask may differ;
* a multipart boundary is random, and tolerated by the generic rules;
* ``User-Agent`` names the client library and its version, which another
  release of the library changes: its value is volatile;
* the port in ``Host`` is the one the client dialled: a test server on a new
  ephemeral port, or ``cassette.address()``, gives another one every run.
"""

from __future__ import annotations

import base64
import hashlib
import re

from ..scrub import Scrub, header_values, replace_spans
from .base import ProtocolBase, printable

_METHODS = (
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE", b"CONNECT",
)  # fmt: skip
_REQUEST_LINE = re.compile(rb"([A-Z]+) (\S+) HTTP/1\.[01]\r?\n")
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_USER_AGENT = re.compile(rb"\r\nUser-Agent[ \t]*:[ \t]*([^\r\n]*)", re.I)
_HOST_PORT = re.compile(rb"\r\nHost[ \t]*:[ \t]*(?:\[[^\]\r\n]*\]|[^:\r\n]*):(\d+)[ \t]*\r\n", re.I)
#: Request headers whose whole value is a credential (lower case).  The scheme
#: of ``Authorization`` and ``Proxy-Authorization`` (``Basic``, ``Bearer``) is kept.
#: Response headers whose values a server makes anew for every response (lower case).
VARYING_HEADERS = (
    b"date",
    b"expires",
    b"age",
    b"x-request-id",
    b"request-id",
    b"x-correlation-id",
    b"x-amz-request-id",
    b"x-runtime",
    b"server-timing",
    b"sec-websocket-accept",
)
SECRET_HEADERS = (
    b"authorization", b"proxy-authorization", b"cookie", b"x-api-key", b"api-key",
    b"x-auth-token", b"x-access-token", b"x-csrf-token", b"x-xsrf-token",
    b"x-amz-security-token", b"x-goog-api-key", b"private-token", b"x-vault-token",
)  # fmt: skip
#: In every message :meth:`Http.scrub` changes: a secret header's name.
_SECRET_NAME = re.compile(b"(?i)" + b"|".join(re.escape(n) for n in SECRET_HEADERS))
_SET_COOKIE = re.compile(rb"(?i)set-cookie")
_SCHEMES = (b"authorization", b"proxy-authorization")
_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9-]*[ \t]+(?=\S)")
#: Largest head read when framing (a longer one is matched as raw bytes).
MAX_HEAD = 64 * 1024
#: Bytes of a body shown when a message is rendered.
SHOWN_BYTES = 60


def _head_end(data: bytes) -> int | None:
    end = data.find(b"\r\n\r\n", 0, MAX_HEAD)
    return None if end == -1 else end + 4


def header(head: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (case-insensitive) in a message head, if present."""
    found = re.search(rb"\r\n" + re.escape(name) + rb"[ \t]*:[ \t]*([^\r\n]*)", head, re.I)
    return found.group(1).strip() if found else None


def _chunked_end(data: bytes, at: int) -> int | None:
    while True:
        line_end = data.find(b"\r\n", at)
        if line_end == -1:
            return None
        try:
            size = int(data[at:line_end].split(b";", 1)[0], 16)
        except ValueError:
            return line_end + 2  # malformed: end the message here
        at = line_end + 2
        if size == 0:
            trailers = data.find(b"\r\n\r\n", at - 2)
            return None if trailers == -1 else trailers + 4
        if at + size + 2 > len(data):
            return None
        at += size + 2


def message_end(data: bytes, *, request: bool) -> int | None:
    """The end of the HTTP message at the start of ``data`` (None: still arriving)."""
    end = _head_end(data)
    if end is None:
        return None
    head = data[:end]
    if (
        header(head, b"transfer-encoding")
        and b"chunked" in (header(head, b"transfer-encoding") or b"").lower()
    ):
        return _chunked_end(data, end)
    length = header(head, b"content-length")
    if length is not None and length.isdigit():
        total = end + int(length)
        return total if total <= len(data) else None
    return end  # requests without a body; responses delimited otherwise are shown whole


# -- WebSocket frames -------------------------------------------------------------------

_OPCODES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}


def frame_end(data: bytes, at: int = 0) -> int | None:
    """The end of the WebSocket frame at ``at`` (None: still arriving)."""
    if len(data) - at < 2:
        return None
    masked = data[at + 1] & 0x80
    size = data[at + 1] & 0x7F
    header_len = 2
    if size == 126:
        header_len = 4
        if len(data) - at < 4:
            return None
        size = int.from_bytes(data[at + 2 : at + 4], "big")
    elif size == 127:
        header_len = 10
        if len(data) - at < 10:
            return None
        size = int.from_bytes(data[at + 2 : at + 10], "big")
    end = at + header_len + (4 if masked else 0) + size
    return end if end <= len(data) else None


def unmask(frame: bytes) -> bytes:
    """A client frame unmasked: its header without the mask bit and key, then the payload."""
    if len(frame) < 2 or not frame[1] & 0x80:
        return frame
    size = frame[1] & 0x7F
    header_len = 2 if size < 126 else 4 if size == 126 else 10
    key = frame[header_len : header_len + 4]
    payload = frame[header_len + 4 :]
    clear = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if len(key) == 4 else payload
    return bytes([frame[0], frame[1] & 0x7F]) + frame[2:header_len] + clear


def _is_frame(data: bytes) -> bool:
    # A client frame: a known opcode in the first byte (RSV1 may be set by
    # permessage-deflate), the mask bit set in the second.
    return len(data) >= 2 and data[0] & 0x0F in _OPCODES and bool(data[1] & 0x80)


def _render_frame(frame: bytes) -> str:
    clear = unmask(frame)
    kind = _OPCODES.get(clear[0] & 0x0F, f"opcode {clear[0] & 0x0F}")
    size = clear[1] & 0x7F
    body = clear[2 + (0 if size < 126 else 2 if size == 126 else 8) :]
    return f"WebSocket {kind} {_show(body)}"


def _show(value: bytes) -> str:
    text = printable(value, SHOWN_BYTES)
    return repr(text.removesuffix("…")) + ("…" if len(value) > SHOWN_BYTES else "")


class Http(ProtocolBase):
    """HTTP/1.1 requests and responses, and WebSocket frames after an upgrade."""

    name = "http"
    #: Requests stand alone: a pool may send one on any keep-alive connection.
    stateless = True

    def detect(self, client: bytes, server: bytes) -> bool:
        found = _REQUEST_LINE.match(client[:8192])
        return found is not None and found.group(1) in _METHODS

    def split(self, data: bytes, side: str) -> list[int]:
        ends: list[int] = []
        at = 0
        while at < len(data):
            rest = data[at:]
            if side == "client" and _is_frame(rest):
                end = frame_end(rest)
            elif side == "server" and not rest.startswith(b"HTTP/"):
                end = frame_end(rest)  # server frames after an upgrade (unmasked)
            else:
                end = message_end(rest, request=side == "client")
            if end is None or end <= 0:
                break
            at += end
            ends.append(at)
        return ends

    def volatile(self, message: bytes) -> list[tuple[int, int]]:
        """The ``User-Agent`` value of a request (a library's version changes with
        it) and the port in ``Host`` (the dialled port)."""
        end = _head_end(message)
        if end is None or _is_frame(message):
            return []
        head = message[:end]
        spans = [(m.start(1), m.end(1)) for m in _USER_AGENT.finditer(head)]
        spans += [(m.start(1), m.end(1)) for m in _HOST_PORT.finditer(head)]
        return sorted(spans)

    def varying(self, message: bytes, side: str) -> list[tuple[int, int]]:
        """The values of :data:`VARYING_HEADERS` in a response: the server's clock
        and the ids it gives each request."""
        if side != "server" or not message.startswith(b"HTTP/"):
            return []
        end = _head_end(message)
        return header_values(message[: end - 2], VARYING_HEADERS) if end is not None else []

    def normalise(self, message: bytes) -> bytes:
        """Client frames unmasked; requests as they are."""
        return unmask(message) if _is_frame(message) else message

    def rewrite(self, reply: bytes, recorded: bytes, live: bytes) -> bytes:
        """The recorded reply made consistent with the live request (``Sec-WebSocket-Accept``)."""
        if b"ebsocket-accept" not in reply.lower():
            return reply
        key = header(live[: _head_end(live) or len(live)], b"sec-websocket-key")
        if key is None:
            return reply
        accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
        return re.sub(
            rb"(?im)^(Sec-WebSocket-Accept[ \t]*:[ \t]*)[^\r\n]*",
            lambda m: m.group(1) + accept,
            reply,
        )

    def might_hold_secret(self, data: bytes, side: str, before: bytes) -> bool:
        found = _SECRET_NAME if side == "client" else _SET_COOKIE
        return found.search(data) is not None

    def scrub(self, message: bytes, side: str, before: bytes) -> Scrub | None:
        """The values of :data:`SECRET_HEADERS` in a request (after the scheme of an
        ``Authorization``), and of each ``Set-Cookie`` (its value, not its name or
        attributes) in a response.  Header values have no length field to fix."""
        if _is_frame(message) or (side == "server" and not message.startswith(b"HTTP/")):
            return None
        end = _head_end(message)
        if end is None:
            return None
        head = message[: end - 2]
        spans: list[tuple[int, int]] = []
        if side == "client":
            for start, stop in header_values(head, SECRET_HEADERS):
                name = head[head.rfind(b"\r\n", 0, start) + 2 : start].split(b":", 1)[0]
                scheme = _SCHEME.match(head, start, stop)
                if name.strip().lower() in _SCHEMES and scheme is not None:
                    start = scheme.end()
                spans.append((start, stop))
        else:
            for start, stop in header_values(head, (b"set-cookie",)):
                value = head[start:stop].split(b";", 1)[0]
                equals = value.find(b"=")
                if equals != -1 and len(value) > equals + 1:
                    spans.append((start + equals + 1, start + len(value)))
        return replace_spans(message, spans) if spans else None

    def render(self, message: bytes, side: str) -> str:
        if side == "client" and _is_frame(message):
            return _render_frame(message)
        if side == "server" and not message.startswith(b"HTTP/"):
            return _render_frame(message)
        end = _head_end(message) or len(message)
        first = message.split(b"\r\n", 1)[0].decode("latin-1")
        first = "".join(c if c.isprintable() else repr(c)[1:-1] for c in first)
        body = message[end:]
        return first + (f" + {len(body)} bytes" if body else "")
