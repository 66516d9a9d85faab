"""The memcached text protocol (and its meta commands).

A client message is a command line; storage commands (``set``, ``add``,
``replace``, ``append``, ``prepend``, ``cas``, and the meta ``ms``) carry a
data block of the byte count they declare, then ``\\r\\n``.  A server
message is one reply line, or a run of ``VALUE``/``STAT``/``ITEM`` lines
(each ``VALUE`` with its data block) up to ``END``.

Nothing in a memcached command differs between runs by construction: keys,
flags, expiry times and values are the application's, and a ``cas`` token
is the one the server gave (replayed, so the same).  Nothing is volatile.
"""

from __future__ import annotations

import re

from .base import ProtocolBase, ends_of, printable

#: Commands followed by a data block: the byte count is this argument (after the name).
_STORAGE = {b"set": 3, b"add": 3, b"replace": 3, b"append": 3, b"prepend": 3, b"cas": 3}
_META_STORAGE = b"ms"  # ms <key> <datalen> <flags>*
_COMMANDS = frozenset(
    (
        *_STORAGE,
        *(b"get", b"gets", b"gat", b"gats", b"delete", b"incr", b"decr", b"touch"),
        *(b"stats", b"version", b"flush_all", b"quit", b"verbosity", b"cache_memlimit"),
        *(b"mg", b"ms", b"md", b"ma", b"mn", b"me", b"lru_crawler", b"watch", b"shutdown"),
    )
)
#: Server lines that start a multi-line reply, which ends with ``END``.
_LISTS = (b"VALUE ", b"STAT ", b"ITEM ")
#: Replies a server may start a conversation with (detection).
_REPLIES = re.compile(
    rb"(VALUE |STAT |END\r\n|STORED\r\n|NOT_STORED\r\n|EXISTS\r\n|NOT_FOUND\r\n|DELETED\r\n"
    rb"|TOUCHED\r\n|OK\r\n|ERROR|CLIENT_ERROR |SERVER_ERROR |VERSION |\d+\r\n"
    rb"|VA |HD|EN\r\n|NF|NS|EX|MN\r\n)"
)
#: Longest command line framed (a longer one is matched as raw bytes).
MAX_LINE = 64 * 1024
#: Bytes of a key or value shown when a message is rendered.
SHOWN_BYTES = 40
#: Keys shown for a multi-key ``get``; more are counted.
SHOWN_KEYS = 4


def _line_end(data: bytes, at: int) -> int | None:
    end = data.find(b"\r\n", at, at + MAX_LINE)
    if end == -1:
        return at + MAX_LINE if len(data) - at > MAX_LINE else None
    return end + 2


def _block_size(line: bytes) -> int | None:
    """The data block a command line declares (None: no block, or not a number)."""
    words = line.split()
    if not words:
        return None
    if words[0] in _STORAGE:
        position = _STORAGE[words[0]] + 1
    elif words[0] == _META_STORAGE:
        position = 2
    else:
        return None
    if len(words) <= position or not words[position].isdigit():
        return None
    return int(words[position])


def command_end(data: bytes, at: int = 0) -> int | None:
    """The end of the client command at ``at`` (None: still arriving).

    A storage command ends after its data block and ``\\r\\n``; a malformed
    byte count ends the command at its line (it is matched as a whole
    rather than waited for).
    """
    end = _line_end(data, at)
    if end is None:
        return None
    size = _block_size(data[at:end])
    if size is None:
        return end
    total = end + size + 2
    return total if total <= len(data) else None


def reply_end(data: bytes, at: int = 0) -> int | None:
    """The end of the server reply at ``at`` (None: still arriving)."""
    if not data[at:].startswith(_LISTS):
        if data[at:].startswith(b"VA "):  # a meta value: its line, then its block
            end = _line_end(data, at)
            if end is None:
                return None
            words = data[at:end].split()
            if len(words) < 2 or not words[1].isdigit():
                return end
            total = end + int(words[1]) + 2
            return total if total <= len(data) else None
        return _line_end(data, at)
    while True:
        end = _line_end(data, at)
        if end is None:
            return None
        line = data[at:end]
        if line == b"END\r\n":
            return end
        if not line.startswith(_LISTS):
            return end  # something else in a list: the reply ends here
        if line.startswith(b"VALUE "):
            words = line.split()
            if len(words) < 4 or not words[3].isdigit():
                return end
            end += int(words[3]) + 2
            if end > len(data):
                return None
        at = end


def _show(value: bytes) -> str:
    return printable(value, SHOWN_BYTES, quote=True)


class Memcached(ProtocolBase):
    """The memcached text protocol: commands with data blocks, replies up to ``END``."""

    name = "memcached"
    #: Each command stands alone: a pooled client may send it on any connection.
    stateless = True

    def detect(self, client: bytes, server: bytes) -> bool:
        end = client.find(b"\r\n", 0, MAX_LINE)
        if end <= 0:
            return False
        words = client[:end].split(b" ")
        if words[0] not in _COMMANDS:
            return False
        if words[0] in _STORAGE and _block_size(client[:end]) is None:
            return False
        return not server or _REPLIES.match(server) is not None

    def split(self, data: bytes, side: str) -> list[int]:
        find = command_end if side == "client" else reply_end
        return ends_of(data, find)

    def render(self, message: bytes, side: str) -> str:
        end = _line_end(message, 0) or len(message)
        line = message[:end].rstrip(b"\r\n")
        if side == "client":
            words = line.split(b" ")
            if _block_size(line) is not None:
                size = _block_size(line)
                return " ".join(_show(w) for w in words) + f" + {size} bytes"
            if words[0] in (b"get", b"gets", b"gat", b"gats") and len(words) > SHOWN_KEYS + 1:
                shown = " ".join(_show(w) for w in words[: SHOWN_KEYS + 1])
                return shown + f" … (+{len(words) - SHOWN_KEYS - 1} keys)"
            return " ".join(_show(w) for w in words)
        if line.startswith(b"VALUE "):
            keys = [_show(m.split(b" ")[1]) for m in re.findall(rb"(?m)^VALUE [^ \r\n]+", message)]
            return (
                "VALUE " + ", ".join(keys[:SHOWN_KEYS]) + (" …" if len(keys) > SHOWN_KEYS else "")
            )
        if line.startswith(b"STAT "):
            return f"STAT … ({message.count(b'STAT ')} lines)"
        return _show(line) if line else _show(message)
