"""MQTT 3.1, 3.1.1 and 5: packets of a fixed header byte and a remaining-length varint.

Every packet starts with its type (high four bits) and flags, then the
length of the rest as a variable-length integer of one to four bytes.

What differs between runs: the client id in ``CONNECT``, random when a
client library picks one itself.  Its value with its two-byte length, and
the packet's remaining length in front of it (which follows the id's
length), are volatile; every other byte must match.  Packet ids of
``PUBLISH``, ``SUBSCRIBE`` and their acknowledgements are numbered from 1 by
the client on each connection, so they stay strict.

MQTT 5 puts properties (a varint length, then identifier and value pairs)
into most packets.  The length of ``CONNACK``, ``PUBACK`` and the like tells
whether they carry them; a ``PUBLISH``, ``SUBSCRIBE`` or ``SUBACK`` cannot
tell by itself, so they are rendered by the level the connection's
``CONNECT`` asks for (:meth:`Mqtt.for_connection`).  Matching needs no level:
a property is compared as strictly as any other byte.
"""

from __future__ import annotations

from ..scrub import PLACEHOLDER, Scrub
from .base import ProtocolBase, ends_of, printable

#: The protocol level of MQTT 5.
MQTT_5 = 5

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


#: MQTT 5 properties: identifier -> name and how its value is encoded.
PROPERTIES = {
    0x01: ("payload_format", "byte"), 0x02: ("message_expiry", "int4"),
    0x03: ("content_type", "string"), 0x08: ("response_topic", "string"),
    0x09: ("correlation_data", "binary"), 0x0B: ("subscription_id", "varint"),
    0x11: ("session_expiry", "int4"), 0x12: ("assigned_client_id", "string"),
    0x13: ("server_keepalive", "int2"), 0x15: ("auth_method", "string"),
    0x16: ("auth_data", "binary"), 0x17: ("request_problem_info", "byte"),
    0x18: ("will_delay", "int4"), 0x19: ("request_response_info", "byte"),
    0x1A: ("response_info", "string"), 0x1C: ("server_reference", "string"),
    0x1F: ("reason", "string"), 0x21: ("receive_maximum", "int2"),
    0x22: ("topic_alias_maximum", "int2"), 0x23: ("topic_alias", "int2"),
    0x24: ("maximum_qos", "byte"), 0x25: ("retain_available", "byte"),
    0x26: ("user", "pair"), 0x27: ("maximum_packet_size", "int4"),
    0x28: ("wildcards_available", "byte"), 0x29: ("subscription_ids_available", "byte"),
    0x2A: ("shared_available", "byte"),
}  # fmt: skip
_WIDTHS = {"byte": 1, "int2": 2, "int4": 4}


def properties(data: bytes, at: int) -> tuple[list[str], int] | None:
    """The MQTT 5 properties at ``at`` rendered, and where they end (None: malformed)."""
    found = varint(data, at)
    if found is None or found[0] < 0 or found[1] + found[0] > len(data):
        return None
    length, at = found
    end = at + length
    out: list[str] = []
    while at < end:
        known = PROPERTIES.get(data[at])
        if known is None:
            return None
        name, kind = known
        at += 1
        if kind in _WIDTHS:
            width = _WIDTHS[kind]
            if at + width > end:
                return None
            out.append(f"{name}={int.from_bytes(data[at : at + width], 'big')}")
            at += width
        elif kind == "varint":
            number = varint(data[:end], at)
            if number is None or number[0] < 0:
                return None
            out.append(f"{name}={number[0]}")
            at = number[1]
        else:
            value = _string(data[:end], at)
            if value is None:
                return None
            at = value[1]
            if kind == "pair":
                other = _string(data[:end], at)
                if other is None:
                    return None
                out.append(f"{name}:{_text(value[0])}={_text(other[0])}")
                at = other[1]
            elif kind == "binary":
                out.append(f"{name}=<{len(value[0])} bytes>")
            else:
                out.append(f"{name}={_text(value[0])}")
    return out, end


def _with_properties(head: str, data: bytes, at: int) -> tuple[str, int] | None:
    """``head`` followed by the properties at ``at`` (if any), and where they end."""
    found = properties(data, at)
    if found is None:
        return None
    shown, end = found
    return (f"{head} [{' '.join(shown)}]" if shown else head), end


def connect_level(client: bytes) -> int | None:
    """The protocol level a connection's first client bytes (a ``CONNECT``) ask for."""
    if not client or client[0] >> 4 != 1:
        return None
    header = varint(client, 1)
    if header is None or header[0] < 0:
        return None
    name = _string(client, header[1])
    if name is None or name[1] >= len(client):
        return None
    return client[name[1]]


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


def _password(message: bytes) -> tuple[int, int, int] | None:
    """In a CONNECT with a password: where the body starts, and the password's span
    (with its length), which is the last field."""
    found = _client_id(message)
    if found is None:
        return None
    body, _, at = found
    name = _string(message, body)
    if name is None:
        return None
    level, flags = message[name[1]], message[name[1] + 1]
    if not flags & 0x40:
        return None
    if flags & 0x04:  # a will: (properties,) topic and payload
        if level >= 5:
            will = varint(message, at)
            if will is None or will[0] < 0:
                return None
            at = will[1] + will[0]
        for _ in range(2):
            field = _string(message, at)
            if field is None:
                return None
            at = field[1]
    if flags & 0x80:  # a user name
        user = _string(message, at)
        if user is None:
            return None
        at = user[1]
    password = _string(message, at)
    return (body, at, password[1]) if password is not None else None


def encode_varint(value: int) -> bytes:
    """``value`` as MQTT's variable-length integer."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class Mqtt(ProtocolBase):
    """MQTT, client and broker packets."""

    name = "mqtt"

    def __init__(self, level: int | None = None) -> None:
        #: The level of the connection's CONNECT (None: not known, rendered as 3.1.1).
        self.level = level

    def for_connection(self, client: bytes, server: bytes) -> Mqtt:
        """This protocol for a connection whose ``CONNECT`` asks for its level."""
        level = connect_level(client)
        return self if level is None or level == self.level else Mqtt(level)

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

    def might_hold_secret(self, data: bytes, side: str, before: bytes) -> bool:
        return side == "client"  # a CONNECT is binary: only framing finds it

    def scrub(self, message: bytes, side: str, before: bytes) -> Scrub | None:
        """The password of a ``CONNECT``, with its length and the packet's remaining
        length (both count the placeholder) in the spans."""
        found = _password(message) if side == "client" else None
        if found is None:
            return None
        body, start, end = found
        field = len(PLACEHOLDER).to_bytes(2, "big") + PLACEHOLDER
        rest = message[body:start] + field + message[end:]
        header = message[:1] + encode_varint(len(rest))
        at = len(header) + start - body
        return header + rest, [(1, len(header)), (at, at + len(field))]

    def render(self, message: bytes, side: str) -> str:
        if not message:
            return ""
        kind, flags = message[0] >> 4, message[0] & 0x0F
        name = NAMES.get(kind, f"type{kind}")
        header = varint(message, 1)
        if header is None or header[0] < 0:
            return f"{name} (malformed)"
        body = message[header[1] :]
        v5 = self.level is not None and self.level >= MQTT_5
        if kind == 1:
            return self._render_connect(message)
        if kind == 2 and len(body) >= 2:
            head = f"CONNACK session_present={body[0] & 1} rc={body[1]}"
            return _rest_properties(head, body, 2, name)
        if kind == 3:
            return _render_publish(body, flags, v5)
        if kind in _ID_ONLY and not (kind == 11 and v5) and len(body) >= 2:
            head = f"{name} id={int.from_bytes(body[:2], 'big')}"
            if len(body) == 2:
                return head
            # MQTT 5: a reason code, then properties when there are more bytes.
            return _rest_properties(f"{head} rc={body[2]}", body, 3, name)
        if kind in (8, 10) and len(body) >= 2:
            head, at = f"{name} id={int.from_bytes(body[:2], 'big')}", 2
            if v5:
                found = _with_properties(head, body, at)
                if found is None:
                    return f"{name} (malformed)"
                head, at = found
            return f"{head} " + _topics(body[at:], kind == 8)
        if kind in (9, 11) and len(body) >= 2:
            head, at = f"{name} id={int.from_bytes(body[:2], 'big')}", 2
            if v5:
                found = _with_properties(head, body, at)
                if found is None:
                    return f"{name} (malformed)"
                head, at = found
            codes = ",".join(str(b) for b in body[at:])
            return f"{head} [{codes}]"
        if kind in (14, 15) and body:
            # MQTT 5: a reason code, then properties when there are more bytes.
            return _rest_properties(f"{name} rc={body[0]}", body, 1, name)
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
        if level >= MQTT_5:
            shown = properties(message, name[1] + 4)
            if shown is None:
                return "CONNECT (malformed)"
            if shown[0]:
                parts.append(f"[{' '.join(shown[0])}]")
        return " ".join(parts)


def _rest_properties(head: str, body: bytes, at: int, name: str) -> str:
    """``head``, with the MQTT 5 properties that follow at ``at`` when there are more bytes."""
    if len(body) <= at:
        return head
    found = _with_properties(head, body, at)
    if found is None or found[1] != len(body):
        return f"{name} (malformed)"
    return found[0]


def _render_publish(body: bytes, flags: int, v5: bool = False) -> str:
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
    if v5:
        found = properties(body, at)
        if found is None:
            return "PUBLISH (malformed)"
        shown, at = found
        if shown:
            parts.append(f"[{' '.join(shown)}]")
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
            options = [f"qos={data[at] & 3}"]
            # MQTT 5 subscription options: no local, retain as published, retain handling.
            if data[at] & 0x04:
                options.append("no_local")
            if data[at] & 0x08:
                options.append("retain_as_published")
            if data[at] & 0x30:
                options.append(f"retain_handling={(data[at] >> 4) & 3}")
            out.append(f"{_text(topic[0])}({','.join(options)})")
            at += 1
        else:
            out.append(_text(topic[0]))
    return " ".join(out)
