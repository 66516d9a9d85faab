"""MQTT 3.1, 3.1.1 and 5: packets of a fixed header byte and a remaining-length varint.

Every packet starts with its type (high four bits) and flags, then the
length of the rest as a variable-length integer of one to four bytes.

What differs between runs: the client id in ``CONNECT``, random when a
client library picks one itself.  Its value with its two-byte length, and
the packet's remaining length in front of it (which follows the id's
length), are volatile; every other byte must match.  Packet ids of
``PUBLISH``, ``SUBSCRIBE`` and their acknowledgements are numbered from 1 by
the client on each connection, so they stay strict.
"""

from __future__ import annotations

from .base import ProtocolBase, ends_of, printable

#: Bytes of a payload shown when a message is rendered.
SHOWN_BYTES = 40

NAMES = {
    1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
    7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
    12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH",
}  # fmt: skip
#: Packets whose variable header is only a packet id (MQTT 3.1.1).
_ID_ONLY = frozenset({4, 5, 6, 7, 11})
_PROTOCOL_NAMES = (b"\x00\x04MQTT", b"\x00\x06MQIsdp")


def varint(data: bytes, at: int) -> tuple[int, int] | None:
    """The variable-length integer at ``at`` and where it ends (None: incomplete).

    More than four bytes is malformed: the value is then -1.
    """
    value = 0
    for i in range(4):
        if at + i >= len(data):
            return None
        byte = data[at + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, at + i + 1
    return -1, at + 4


def packet_end(data: bytes, at: int = 0) -> int | None:
    """The end of the packet starting at ``at`` (None: it is still arriving)."""
    found = varint(data, at + 1)
    if found is None:
        return None
    length, body = found
    if length < 0:
        return body  # malformed: its header alone is matched
    end = body + length
    return end if end <= len(data) else None


def _string(data: bytes, at: int) -> tuple[bytes, int] | None:
    """The length-prefixed string at ``at`` and where it ends (None: cut short)."""
    if at + 2 > len(data):
        return None
    end = at + 2 + int.from_bytes(data[at : at + 2], "big")
    return (data[at + 2 : end], end) if end <= len(data) else None


def _text(value: bytes) -> str:
    return printable(value, SHOWN_BYTES, quote=True)


def _client_id(message: bytes) -> tuple[int, int, int] | None:
    """In a CONNECT: where the body starts, and the client id's span (with its length)."""
    if not message or message[0] >> 4 != 1:
        return None
    header = varint(message, 1)
    if header is None or header[0] < 0:
        return None
    body = header[1]
    name = _string(message, body)
    if name is None or name[1] + 4 > len(message):
        return None
    level = message[name[1]]
    at = name[1] + 4  # level, flags, keep-alive
    if level >= 5:
        properties = varint(message, at)
        if properties is None or properties[0] < 0:
            return None
        at = properties[1] + properties[0]
    client_id = _string(message, at)
    if client_id is None:
        return None
    return body, at, client_id[1]


class Mqtt(ProtocolBase):
    """MQTT, client and broker packets."""

    name = "mqtt"

    def detect(self, client: bytes, server: bytes) -> bool:
        if not client.startswith(b"\x10"):
            return False
        header = varint(client, 1)
        return header is not None and client[header[1] :].startswith(_PROTOCOL_NAMES)

    def split(self, data: bytes, side: str) -> list[int]:
        return ends_of(data, packet_end)

    def volatile(self, message: bytes) -> list[tuple[int, int]]:
        found = _client_id(message)
        if found is None:
            return []
        body, start, end = found
        return [(1, body), (start, end)]

    def render(self, message: bytes, side: str) -> str:
        if not message:
            return ""
        kind, flags = message[0] >> 4, message[0] & 0x0F
        name = NAMES.get(kind, f"type{kind}")
        header = varint(message, 1)
        if header is None or header[0] < 0:
            return f"{name} (malformed)"
        body = message[header[1] :]
        if kind == 1:
            return self._render_connect(message)
        if kind == 2 and len(body) >= 2:
            return f"CONNACK session_present={body[0] & 1} rc={body[1]}"
        if kind == 3:
            return _render_publish(body, flags)
        if kind in _ID_ONLY and len(body) >= 2:
            return f"{name} id={int.from_bytes(body[:2], 'big')}"
        if kind in (8, 10) and len(body) >= 2:
            return f"{name} id={int.from_bytes(body[:2], 'big')} " + _topics(body[2:], kind == 8)
        if kind == 9 and len(body) >= 2:
            codes = ",".join(str(b) for b in body[2:])
            return f"SUBACK id={int.from_bytes(body[:2], 'big')} [{codes}]"
        return name if not body else f"{name} + {len(body)} bytes"

    def _render_connect(self, message: bytes) -> str:
        found = _client_id(message)
        if found is None:
            return "CONNECT (malformed)"
        body, start, end = found
        name = _string(message, body)
        assert name is not None  # _client_id read it
        level, flags = message[name[1]], message[name[1] + 1]
        keepalive = int.from_bytes(message[name[1] + 2 : name[1] + 4], "big")
        parts = [
            f"CONNECT {_text(name[0])} level={level}",
            f"client_id={_text(message[start + 2 : end])}",
            f"keepalive={keepalive}",
        ]
        if flags & 0x02:
            parts.append("clean")
        if flags & 0x80:
            parts.append("username")
        if flags & 0x04:
            parts.append(f"will qos={(flags >> 3) & 3}")
        return " ".join(parts)


def _render_publish(body: bytes, flags: int) -> str:
    qos = (flags >> 1) & 3
    topic = _string(body, 0)
    if topic is None:
        return "PUBLISH (malformed)"
    at = topic[1]
    parts = ["PUBLISH", _text(topic[0]), f"qos={qos}"]
    if qos and at + 2 <= len(body):
        parts.append(f"id={int.from_bytes(body[at : at + 2], 'big')}")
        at += 2
    if flags & 1:
        parts.append("retain")
    if flags & 8:
        parts.append("dup")
    payload = body[at:]
    parts.append(f"+ {len(payload)} bytes")
    return " ".join(parts) + (f": {_text(payload)}" if payload else "")


def _topics(data: bytes, with_qos: bool) -> str:
    out: list[str] = []
    at = 0
    while at < len(data) and len(out) < 8:
        topic = _string(data, at)
        if topic is None:
            break
        at = topic[1]
        if with_qos and at < len(data):
            out.append(f"{_text(topic[0])}(qos={data[at] & 3})")
            at += 1
        else:
            out.append(_text(topic[0]))
    return " ".join(out)
