"""The MySQL/MariaDB client/server protocol: packets, the login, queries and their results.

Every message is one or more packets: a 3-byte little-endian payload
length and a 1-byte sequence id (a payload of ``0xffffff`` bytes continues
in the next packet).  The server speaks first, with a greeting carrying a
random 20-byte salt (the "scramble").

What differs between runs: the connection attributes the client announces
in its login (``HandshakeResponse41``), such as PyMySQL's ``_pid`` and
``_client_version``, whose values change length.  A login is compared with
the attribute values blanked (:meth:`MySql.normalise`), and the packet and
attribute-block lengths recomputed; the attribute names and every other
byte stay strict.

The auth response is not volatile: it is derived from the salt and the
password, and a replay sends the recorded greeting, so a client with the same
password computes the same bytes again.  Another password must be a
mismatch, yet 20 bytes of a hash look random to the generic ``random`` rule of
:mod:`tcpcassette._core.noise`; so the compared form spells the auth response
out as ``0`` and ``1`` characters, which no generic rule takes for random.
The compared form of a login is therefore no valid packet; it is only compared.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import ProtocolBase, printable

#: A packet of this payload length continues in the next one.
MAX_PAYLOAD = 0xFFFFFF
HEADER = 4

CLIENT_CONNECT_WITH_DB = 1 << 3
CLIENT_PROTOCOL_41 = 1 << 9
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_CONNECT_ATTRS = 1 << 20
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21

#: Bytes of a query or value shown when a message is rendered.
SHOWN_BYTES = 60
#: Values of a row shown when it is rendered; more are counted.
SHOWN_VALUES = 6

_COMMANDS = {
    0x01: "Quit",
    0x02: "Init DB",
    0x03: "Query",
    0x0E: "Ping",
    0x16: "Prepare",
    0x17: "Execute",
    0x19: "Close statement",
    0x1A: "Reset statement",
    0x1F: "Reset connection",
}


def packet_end(data: bytes, at: int = 0) -> int | None:
    """The end of the message (one packet, or more for a long payload) at ``at``."""
    while True:
        if at + HEADER > len(data):
            return None
        size = int.from_bytes(data[at : at + 3], "little")
        end = at + HEADER + size
        if end > len(data):
            return None
        if size < MAX_PAYLOAD:
            return end
        at = end


def lenenc_int(data: bytes, at: int) -> tuple[int, int] | None:
    """A length-encoded integer at ``at`` and where it ends (None: malformed or cut)."""
    if at >= len(data):
        return None
    first = data[at]
    width = {0xFC: 2, 0xFD: 3, 0xFE: 8}.get(first)
    if first < 0xFB:
        return first, at + 1
    if width is None or at + 1 + width > len(data):
        return None  # 0xfb (NULL) and 0xff are no integers
    return int.from_bytes(data[at + 1 : at + 1 + width], "little"), at + 1 + width


def encode_lenenc(n: int) -> bytes:
    """``n`` as a length-encoded integer."""
    if n < 0xFB:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little")
    if n < 1 << 24:
        return b"\xfd" + n.to_bytes(3, "little")
    return b"\xfe" + n.to_bytes(8, "little")


def lenenc_str(data: bytes, at: int) -> tuple[bytes | None, int] | None:
    """A length-encoded string (None for SQL NULL) and where it ends (None: malformed)."""
    if at < len(data) and data[at] == 0xFB:
        return None, at + 1
    found = lenenc_int(data, at)
    if found is None or found[1] + found[0] > len(data):
        return None
    n, start = found
    return data[start : start + n], start + n


def _nul_str(data: bytes, at: int) -> tuple[bytes, int] | None:
    end = data.find(b"\x00", at)
    return None if end == -1 else (data[at:end], end + 1)


@dataclass(frozen=True, slots=True)
class Login:
    """The fields of a ``HandshakeResponse41`` payload, and where its attributes are."""

    user: bytes
    auth: tuple[int, int]
    database: bytes | None
    plugin: bytes | None
    attributes_at: int | None
    attributes: tuple[tuple[bytes, bytes], ...]


def login(payload: bytes) -> Login | None:
    """The payload parsed as a ``HandshakeResponse41`` (None: it is not one)."""
    if len(payload) < 33 or payload[9:32] != bytes(23):
        return None
    caps = int.from_bytes(payload[:4], "little")
    if not caps & CLIENT_PROTOCOL_41:
        return None
    user = _nul_str(payload, 32)
    if user is None:
        return None
    name, at = user
    if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
        auth = lenenc_str(payload, at)
        if auth is None or auth[0] is None:
            return None
        secret = (auth[1] - len(auth[0]), auth[1])
        at = auth[1]
    elif caps & CLIENT_SECURE_CONNECTION:
        if at >= len(payload) or at + 1 + payload[at] > len(payload):
            return None
        secret = (at + 1, at + 1 + payload[at])
        at = secret[1]
    else:
        nul = _nul_str(payload, at)
        if nul is None:
            return None
        secret = (at, nul[1] - 1)
        at = nul[1]
    database = plugin = None
    if caps & CLIENT_CONNECT_WITH_DB:
        found = _nul_str(payload, at)
        if found is None:
            return None
        database, at = found
    if caps & CLIENT_PLUGIN_AUTH and at < len(payload):
        found = _nul_str(payload, at)
        if found is None:
            return None
        plugin, at = found
    if not caps & CLIENT_CONNECT_ATTRS or at >= len(payload):
        return Login(name, secret, database, plugin, None, ())
    block = lenenc_int(payload, at)
    if block is None or block[1] + block[0] != len(payload):
        return None
    pairs: list[tuple[bytes, bytes]] = []
    cursor = block[1]
    while cursor < len(payload):
        key = lenenc_str(payload, cursor)
        if key is None or key[0] is None:
            return None
        value = lenenc_str(payload, key[1])
        if value is None or value[0] is None:
            return None
        pairs.append((key[0], value[0]))
        cursor = value[1]
    return Login(name, secret, database, plugin, at, tuple(pairs))


def _greeting_varying(message: bytes) -> list[tuple[int, int]]:
    """In a ``HandshakeV10`` greeting: the connection id with the scramble's first
    part, and its second part (NUL-terminated, after 10 reserved bytes)."""
    if len(message) < HEADER + 2 or message[3] != 0 or message[HEADER] != 10:
        return []
    version = _nul_str(message, HEADER + 1)
    if version is None:
        return []
    at = version[1]  # connection id (4), scramble part 1 (8)
    spans = [(at, min(at + 12, len(message)))]
    # filler 1, capabilities 2, charset 1, status 2, capabilities 2, scramble length 1,
    # reserved 10: then the rest of the scramble.
    second = at + 12 + 19
    end = message.find(b"\x00", second)
    if second < len(message) and end != -1:
        spans.append((second, end))
    return spans


def _is_login(message: bytes) -> bool:
    return len(message) > HEADER and message[3] == 1 and packet_end(message) == len(message)


def _show(value: bytes, limit: int = SHOWN_BYTES) -> str:
    return printable(value, limit)


class MySql(ProtocolBase):
    """The MySQL/MariaDB client/server protocol (protocol version 10)."""

    name = "mysql"

    def detect(self, client: bytes, server: bytes) -> bool:
        # The server's greeting: a packet with sequence id 0, protocol version
        # 10, and a NUL-terminated printable version string.
        if len(server) < HEADER + 2 or server[3] != 0 or server[4] != 10:
            return False
        end = server.find(b"\x00", HEADER + 1, HEADER + 64)
        version = server[HEADER + 1 : end]
        return end > HEADER + 1 and all(0x20 <= c < 0x7F for c in version)

    def split(self, data: bytes, side: str) -> list[int]:
        ends: list[int] = []
        at = 0
        while (end := packet_end(data, at)) is not None:
            ends.append(end)
            at = end
        return ends

    def varying(self, message: bytes, side: str) -> list[tuple[int, int]]:
        """The greeting's connection id and its two parts of the scramble (a fresh
        salt for every connection), and the login's auth response derived from
        it (in the bits :meth:`normalise` makes of it)."""
        if side == "server":
            return _greeting_varying(message)
        if not _is_login(message):
            return []
        found = login(message[HEADER:])
        if found is None:
            return []
        start, end = found.auth
        return [(HEADER + start, HEADER + start + 8 * (end - start))]

    def normalise(self, message: bytes) -> bytes:
        if not _is_login(message):
            return message
        payload = message[HEADER:]
        found = login(payload)
        if found is None:
            return message
        start, end = found.auth
        # The auth response as bits: a wrong password must not pass for a random value.
        bits = "".join(f"{byte:08b}" for byte in payload[start:end]).encode()
        rest = payload[end:] if found.attributes_at is None else payload[end : found.attributes_at]
        payload = payload[:start] + bits + rest
        if found.attributes_at is not None:
            blanked = b"".join(encode_lenenc(len(k)) + k + b"\x00" for k, _ in found.attributes)
            payload += encode_lenenc(len(blanked)) + blanked
        return len(payload).to_bytes(3, "little") + message[3:4] + payload

    def render(self, message: bytes, side: str) -> str:
        payload = message[HEADER:]
        if len(message) < HEADER:
            return "(cut) " + _show(message)
        if side == "client":
            return _render_client(message, payload)
        return _render_server(message[3], payload)


def _render_client(message: bytes, payload: bytes) -> str:
    if _is_login(message) and (found := login(payload)) is not None:
        parts = [f"Login: user {_show(found.user)}"]
        if found.database is not None:
            parts.append(f"database {_show(found.database)}")
        if found.plugin is not None:
            parts.append(f"plugin {_show(found.plugin)}")
        parts.append(f"{len(found.attributes)} attributes")
        return ", ".join(parts)
    if not payload:
        return "(empty packet)"
    command = _COMMANDS.get(payload[0])
    if command is None:
        return f"Packet {message[3]}: {_show(payload, 20)}"
    if len(payload) == 1:
        return command
    if payload[0] in (0x02, 0x03, 0x16):
        return f"{command}: {_show(payload[1:])}"
    return f"{command} ({len(payload) - 1} bytes)"


def _render_server(sequence: int, payload: bytes) -> str:
    if not payload:
        return "(empty packet)"
    first = payload[0]
    if sequence == 0 and first == 10:
        version = _nul_str(payload, 1)
        if version is not None:
            thread = int.from_bytes(payload[version[1] : version[1] + 4], "little")
            return f"Greeting: server {_show(version[0])}, connection {thread}"
    if first == 0xFF and len(payload) >= 3:
        code = int.from_bytes(payload[1:3], "little")
        text = payload[3:]
        if text.startswith(b"#") and len(text) >= 6:
            return f"ERR {code} ({_show(text[1:6])}): {_show(text[6:])}"
        return f"ERR {code}: {_show(text)}"
    if first == 0xFE and len(payload) < 9:
        return "EOF"
    if first in (0x00, 0xFE) and len(payload) >= 7:
        affected = lenenc_int(payload, 1)
        insert_id = lenenc_int(payload, affected[1]) if affected else None
        if affected is not None and insert_id is not None:
            return f"OK: {affected[0]} rows affected, last insert id {insert_id[0]}"
    if first == 0xFE:
        plugin = _nul_str(payload, 1)
        return f"Auth switch: {_show(plugin[0] if plugin else payload[1:])}"
    count = lenenc_int(payload, 0)
    if count is not None and count[1] == len(payload):
        return f"Result set: {count[0]} columns"
    if payload.startswith(b"\x03def"):
        at = 4
        names: list[bytes] = []
        for _ in range(5):  # schema, table, org_table, name, org_name
            field = lenenc_str(payload, at)
            if field is None:
                break
            names.append(field[0] or b"")
            at = field[1]
        if len(names) >= 4:
            return f"Column: {_show(names[3])}"
    values: list[str] = []
    at = 0
    while at < len(payload):
        value = lenenc_str(payload, at)
        if value is None:
            return f"Packet {sequence}: {_show(payload, 20)}"
        values.append("NULL" if value[0] is None else repr(_show(value[0], 20)))
        at = value[1]
    more = len(values) - SHOWN_VALUES
    return "Row: " + ", ".join(values[:SHOWN_VALUES]) + (f", … (+{more})" if more > 0 else "")
