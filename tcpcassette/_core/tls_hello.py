"""Reading a TLS ClientHello from the bytes a client sent, with no ``ssl`` at all.

The recording proxy uses this to notice a client starting a TLS handshake (at the
start of a connection, or after STARTTLS or an SSLRequest) and to learn, before it
answers, which name the client asks for and which application protocols it offers.

The format facts relied on:

* Record layer (RFC 8446 section 5.1; RFC 5246 section 6.2): each record is a
  5-byte header, content type 22 (handshake), a version 3.0-3.4 (SSL 3.0 to
  TLS 1.3; TLS 1.3 clients still write 3.1 or 3.3 here) and a 16-bit fragment
  length, at most 2**14 (2**14 + 2048 is allowed here, the ciphertext bound),
  never 0 for a handshake.  One handshake message may be cut over several
  records; no other record type may come between its fragments.
* Handshake header: type 1 (client_hello), then a 24-bit body length.  Nothing
  else is sent before the server answers, so the hello ends where a record ends.
* ClientHello body (RFC 8446 section 4.1.2): legacy_version (3.x), 32 bytes
  random, legacy_session_id<0..32> (1-byte length), cipher_suites<2..2^16-2>
  (2-byte length, whole 2-byte suites), legacy_compression_methods<1..2^8-1>,
  then extensions<0..2^16-1> (2-byte length), which SSL 3.0 and TLS 1.0 hellos
  may leave out altogether.  Each extension is a 2-byte type, a 2-byte length
  and its data; no type appears twice.  Unknown types, GREASE values (RFC 8701)
  among them, are skipped.
* server_name, type 0 (RFC 6066 section 3): ServerNameList<1..2^16-1> of
  entries, each a 1-byte name_type and a 2-byte-length name; name_type 0 is
  host_name, ASCII (an IDNA A-label when the name is international).  The first
  host_name entry is taken.  A client that connects by IP address sends none.
* application_layer_protocol_negotiation, type 16 (RFC 7301 section 3.1):
  ProtocolNameList<2..2^16-1> of ProtocolName<1..2^8-1>, in the client's order.
  Names are opaque bytes (GREASE ones are not ASCII), so they are decoded as
  latin-1: ``name.encode("latin-1")`` gives the bytes back.

The reader is bounded: it never looks past :data:`MAX_HELLO` bytes, and a hello
that would be longer is not one.  Every length is checked against the length
that encloses it, so a prefix of a real hello is :data:`NEED_MORE` and anything
that cannot continue into a hello is ``None`` as soon as the bytes show it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal

#: The longest hello read, its records' headers included.
MAX_HELLO: Final = 64 * 1024
#: The longest record fragment accepted.
MAX_RECORD: Final = 2**14 + 2048

#: The bounds of a handshake record header's first bytes: type 22, version 3.0 to 3.4.
_HEADER: Final = (bytes([22, 3, 0, 0]), bytes([22, 3, 4, MAX_RECORD >> 8]))
CLIENT_HELLO: Final = 1
SERVER_NAME: Final = 0
HOST_NAME: Final = 0
ALPN: Final = 16


@dataclass(frozen=True, slots=True)
class ClientHello:
    """What a ClientHello says: the name asked for, the protocols offered, its size."""

    sni: str
    alpn: tuple[str, ...]
    size: int


class NeedMore(enum.Enum):
    """The type of :data:`NEED_MORE`."""

    NEED_MORE = "NEED_MORE"

    def __repr__(self) -> str:
        return "NEED_MORE"


#: The hello so far is whole and sound, but not finished yet.
NEED_MORE: Final = NeedMore.NEED_MORE


class _Short(Exception):
    """The bytes end before the hello does."""


class _Bad(Exception):
    """The bytes cannot be a ClientHello."""


class _Reader:
    """Reads ``buf`` up to ``end``, the length its enclosing structure declares.

    ``buf`` may stop short of ``end``: running past ``end`` is malformed,
    running past ``buf`` only means more bytes are needed.
    """

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int, end: int) -> None:
        self.buf, self.pos, self.end = buf, pos, end

    def take(self, n: int) -> bytes:
        stop = self.pos + n
        if stop > self.end:
            raise _Bad
        if stop > len(self.buf):
            raise _Short
        chunk = self.buf[self.pos : stop]
        self.pos = stop
        return chunk

    def number(self, width: int) -> int:
        return int.from_bytes(self.take(width), "big")

    def vector(self, width: int, low: int = 0, high: int = 0xFFFF) -> _Reader:
        """The reader of a ``width``-byte-length vector of ``low..high`` bytes, skipped here."""
        n = self.number(width)
        if not low <= n <= high or self.pos + n > self.end:
            raise _Bad
        inner = _Reader(self.buf, self.pos, self.pos + n)
        self.pos += n
        return inner

    def last(self, width: int, low: int = 0) -> _Reader:
        """A vector that must fill what is left of this one."""
        inner = self.vector(width, low)
        if self.more():
            raise _Bad
        return inner

    def rest(self) -> bytes:
        return self.take(self.end - self.pos)

    def more(self) -> bool:
        return self.pos < self.end


def _handshake(data: bytes) -> tuple[bytes, int]:
    """The handshake bytes the records at the start of ``data`` carry, and the
    records' size once they hold the whole hello (0 while they do not)."""
    carried = bytearray()
    declared = 0  # bytes of handshake the record headers seen so far promise
    need = 0  # the whole handshake message's length, once its header is seen
    pos = 0
    while True:
        header = data[pos : pos + 5]
        # Type, version and the length's high byte, as many of them as are there.
        if any(not lo <= got <= hi for got, lo, hi in zip(header, *_HEADER, strict=False)):
            raise _Bad
        if len(header) < 5:
            return bytes(carried), 0
        length = int.from_bytes(header[3:5], "big")
        declared += length
        if not 1 <= length <= MAX_RECORD or pos + 5 + length > MAX_HELLO:
            raise _Bad
        fragment = data[pos + 5 : pos + 5 + length]
        carried += fragment
        pos += 5 + length
        if not need and len(carried) >= 4:
            need = 4 + int.from_bytes(carried[1:4], "big")
        if need and declared > need:
            raise _Bad  # the hello would end inside a record
        if len(fragment) < length:
            return bytes(carried), 0
        if need and declared == need:
            return bytes(carried), pos


def _parse(data: bytes) -> ClientHello:
    carried, size = _handshake(bytes(data[:MAX_HELLO]))
    top = _Reader(carried, 0, MAX_HELLO)
    if top.number(1) != CLIENT_HELLO:
        raise _Bad
    body = top.vector(3, 41, MAX_HELLO - 9)  # version, random and one suite at least
    if body.number(1) != 3:
        raise _Bad
    body.take(1 + 32)
    body.vector(1, 0, 32)
    suites = body.vector(2, 2, 0xFFFE)
    if (suites.end - suites.pos) % 2:
        raise _Bad
    body.vector(1, 1, 0xFF)
    sni = ""
    alpn: tuple[str, ...] = ()
    if body.more():
        extensions = body.last(2)
        seen: set[int] = set()
        while extensions.more():
            kind = extensions.number(2)
            content = extensions.vector(2)
            if kind in seen:
                raise _Bad
            seen.add(kind)
            if kind == SERVER_NAME:
                sni = _server_name(content)
            elif kind == ALPN:
                alpn = _protocols(content)
    if not size:
        raise _Short  # sound so far, but the bytes of a part skipped unread are missing
    return ClientHello(sni=sni, alpn=alpn, size=size)


def _server_name(content: _Reader) -> str:
    names = content.last(2, 1)
    found = ""
    while names.more():
        name_type = names.number(1)
        raw = names.vector(2, 1).rest()
        if name_type == HOST_NAME and not found:
            if not raw.isascii():
                raise _Bad
            found = raw.decode("ascii")
    return found


def _protocols(content: _Reader) -> tuple[str, ...]:
    names = content.last(2, 2)
    offered: list[str] = []
    while names.more():
        offered.append(names.vector(1, 1, 0xFF).rest().decode("latin-1"))
    return tuple(offered)


def read_client_hello(data: bytes) -> ClientHello | Literal[NeedMore.NEED_MORE] | None:
    """The ClientHello at the start of ``data``; :data:`NEED_MORE` while it is
    incomplete (it may span several records); ``None`` when the bytes are not
    one (a wrong type, a length that overruns, over :data:`MAX_HELLO`).
    Bytes after the hello's last record are left alone.  Never raises."""
    try:
        return _parse(data)
    except _Short:
        return NEED_MORE
    except _Bad:
        return None


def starts_client_hello(data: bytes) -> bool:
    """True when ``data`` (at least 1 byte; empty is False) could be the start of
    a TLS ClientHello: every byte present is checked as :func:`read_client_hello`
    reads it, from the record header (0x16, 3.0-3.4, a sane length) through the
    handshake header (type 1, a length consistent with the record's) onwards."""
    return bool(data) and read_client_hello(data) is not None
