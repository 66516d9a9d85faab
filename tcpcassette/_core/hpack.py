"""HPACK, the header compression of HTTP/2 (RFC 7541): a decoder.

A header block is a run of representations: an index into the static table
(61 entries, fixed by the RFC) or the dynamic table (what earlier blocks of
the same connection and direction inserted, newest first, from index 62), a
literal header (its name indexed or literal, inserted into the dynamic
table or not), or a dynamic table size update.  String literals may be
Huffman coded with the RFC's fixed code (Appendix B).

Decoding is stateful per connection and direction.  A decoder that did not
see the earlier blocks (a message shown on its own) can be asked to mark the
entries it cannot know, ``(dynamic index 62)``, instead of failing.
"""

from __future__ import annotations

from collections import deque

#: The static table (RFC 7541 Appendix A), from index 1.
STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = (
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
)

#: The length in bits of each symbol's Huffman code (RFC 7541 Appendix B), symbols
#: 0 to 255 and EOS (256).  The code is canonical: codes of one length are
#: consecutive in symbol order, and each length's first code follows the last of
#: the length before, shifted, so the lengths alone determine every code.
CODE_LENGTHS: tuple[int, ...] = (
    # 0-31: control characters
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
    # 32-63: ' ' to '?'
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
    # 64-95: '@' to '_'
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
    # 96-127: '`' to DEL
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
    # 128-255
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    # EOS
    30,
)  # fmt: skip

EOS = 256
#: Bytes of overhead the RFC counts for each dynamic table entry.
ENTRY_OVERHEAD = 32
#: The dynamic table size both sides start with (SETTINGS_HEADER_TABLE_SIZE's default).
DEFAULT_TABLE_SIZE = 4096
#: Bytes an integer may take before the block is called malformed (values stay below 2**35).
MAX_INTEGER_BYTES = 6


class HpackError(ValueError):
    """A header block that is not valid HPACK (or refers to what this decoder cannot know)."""


def huffman_codes() -> dict[tuple[int, int], int]:
    """Every symbol by its ``(length, code)``, from :data:`CODE_LENGTHS`."""
    codes: dict[tuple[int, int], int] = {}
    code = 0
    length = 0
    for bits, symbol in sorted((bits, symbol) for symbol, bits in enumerate(CODE_LENGTHS)):
        code <<= bits - length
        length = bits
        codes[(bits, code)] = symbol
        code += 1
    return codes


_DECODE = huffman_codes()
_SHORTEST = min(CODE_LENGTHS)


def huffman_decode(data: bytes) -> bytes:
    """A Huffman-coded string literal decoded.

    Raises:
        HpackError: EOS inside the string, padding longer than 7 bits, or
            padding that is not the most significant bits of EOS (all ones).
    """
    out = bytearray()
    code = 0
    length = 0
    for byte in data:
        for shift in range(7, -1, -1):
            code = (code << 1) | ((byte >> shift) & 1)
            length += 1
            if length < _SHORTEST:
                continue
            symbol = _DECODE.get((length, code))
            if symbol is None:
                if length > 30:
                    raise HpackError("an invalid Huffman code")
                continue
            if symbol == EOS:
                raise HpackError("EOS inside a Huffman-coded string")
            out.append(symbol)
            code = length = 0
    if length > 7 or code != (1 << length) - 1:
        raise HpackError("invalid padding after a Huffman-coded string")
    return bytes(out)


def decode_integer(data: bytes, at: int, prefix: int) -> tuple[int, int]:
    """The integer with a ``prefix``-bit prefix at ``at``, and where it ends (RFC 7541 5.1)."""
    if at >= len(data):
        raise HpackError("a header block cut short in an integer")
    mask = (1 << prefix) - 1
    value = data[at] & mask
    at += 1
    if value < mask:
        return value, at
    shift = 0
    for _ in range(MAX_INTEGER_BYTES):
        if at >= len(data):
            raise HpackError("a header block cut short in an integer")
        byte = data[at]
        at += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at
    raise HpackError("an integer too long")


def decode_string(data: bytes, at: int) -> tuple[bytes, int]:
    """The string literal at ``at`` (Huffman-coded or not), and where it ends (RFC 7541 5.2)."""
    if at >= len(data):
        raise HpackError("a header block cut short in a string")
    huffman = bool(data[at] & 0x80)
    length, at = decode_integer(data, at, 7)
    end = at + length
    if end > len(data):
        raise HpackError("a header block cut short in a string")
    raw = data[at:end]
    return (huffman_decode(raw) if huffman else raw), end


def encode_integer(value: int, prefix: int, flags: int = 0) -> bytes:
    """``value`` with a ``prefix``-bit prefix, the first byte's other bits ``flags``
    (RFC 7541 5.1)."""
    mask = (1 << prefix) - 1
    if value < mask:
        return bytes([flags | value])
    out = [flags | mask]
    value -= mask
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_string(value: bytes) -> bytes:
    """``value`` as a string literal, not Huffman-coded (RFC 7541 5.2)."""
    return encode_integer(len(value), 7) + value


def entry_size(name: bytes, value: bytes) -> int:
    """The size the RFC counts for a dynamic table entry."""
    return len(name) + len(value) + ENTRY_OVERHEAD


def unknown_entry(index: int) -> bytes:
    """How a marking decoder names an entry it cannot know."""
    return f"(dynamic index {index})".encode()


class Decoder:
    """Decodes the header blocks of one direction of one connection, in order.

    Args:
        max_size: the dynamic table size the decoder allows (its side's
            ``SETTINGS_HEADER_TABLE_SIZE``); size updates above it are errors.
        mark_unknown: give entries of the dynamic table this decoder never
            saw as :func:`unknown_entry` (name and an empty value) instead of
            raising; for blocks decoded on their own.
    """

    def __init__(self, max_size: int = DEFAULT_TABLE_SIZE, *, mark_unknown: bool = False) -> None:
        self.max_allowed = max_size
        self.max_size = max_size
        self.size = 0
        self.table: deque[tuple[bytes, bytes]] = deque()
        self.mark_unknown = mark_unknown
        #: True once a block referred to an entry this decoder does not know.
        self.saw_unknown = False

    def entry(self, index: int) -> tuple[bytes, bytes]:
        """The header at ``index`` of the combined static and dynamic table."""
        if index <= 0:
            raise HpackError("index 0")
        if index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        dynamic = index - len(STATIC_TABLE) - 1
        if dynamic < len(self.table):
            return self.table[dynamic]
        if self.mark_unknown:
            self.saw_unknown = True
            return unknown_entry(index), b""
        raise HpackError(f"index {index} is beyond the table")

    def add(self, name: bytes, value: bytes) -> None:
        """Insert an entry, evicting the oldest until it fits (RFC 7541 4.4)."""
        size = entry_size(name, value)
        self._evict(self.max_size - size)
        if size <= self.max_size:
            self.table.appendleft((name, value))
            self.size += size

    def resize(self, max_size: int) -> None:
        """A dynamic table size update (RFC 7541 6.3)."""
        if max_size > self.max_allowed:
            raise HpackError(f"a table size update to {max_size}, above {self.max_allowed}")
        self.max_size = max_size
        self._evict(max_size)

    def _evict(self, limit: int) -> None:
        while self.table and self.size > max(limit, 0):
            name, value = self.table.pop()
            self.size -= entry_size(name, value)

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """The headers of one whole header block, in order."""
        headers: list[tuple[bytes, bytes]] = []
        at = 0
        while at < len(block):
            byte = block[at]
            if byte & 0x80:  # indexed header field
                index, at = decode_integer(block, at, 7)
                headers.append(self.entry(index))
            elif byte & 0x40:  # literal with incremental indexing
                name, value, at = self._literal(block, at, 6)
                self.add(name, value)
                headers.append((name, value))
            elif byte & 0x20:  # dynamic table size update
                size, at = decode_integer(block, at, 5)
                if headers:
                    raise HpackError("a table size update after a header")
                self.resize(size)
            else:  # literal without indexing (0000) or never indexed (0001)
                name, value, at = self._literal(block, at, 4)
                headers.append((name, value))
        return headers

    def _literal(self, block: bytes, at: int, prefix: int) -> tuple[bytes, bytes, int]:
        index, at = decode_integer(block, at, prefix)
        if index:
            name = self.entry(index)[0]
        else:
            name, at = decode_string(block, at)
        value, at = decode_string(block, at)
        return name, value, at
