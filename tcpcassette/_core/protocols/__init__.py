"""Protocols tcpcassette knows: framing, what changes between runs, and readable messages.

A protocol is a plug-in of the pure core (one module each, no sockets).  It
frames client messages so that a value may change length, declares the
fields that legitimately differ between runs (tolerated by the rule
``protocol``, next to the generic rules of :mod:`tcpcassette._core.noise`),
and renders messages in one line for people.  The raw bytes on disk stay the
truth: a protocol never changes what is stored, only how it is compared and
shown.

The protocol of a connection is detected from its recorded bytes
(:func:`detect`); ``protocol="raw"`` turns the layer off, and a user's own
object with the :class:`WireProtocol` interface can be given instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..connection import Connection
from ..events import ClientData, ServerData
from .base import ProtocolBase, WireProtocol
from .http import Http
from .mqtt import Mqtt
from .nats import Nats
from .redis import Redis

#: The protocols detected by default, in the order they are tried.
KNOWN: tuple[WireProtocol, ...] = (Redis(), Http(), Nats(), Mqtt())


def detect(
    connection: Connection, protocols: Sequence[WireProtocol] = KNOWN
) -> WireProtocol | None:
    """The protocol the connection's first bytes belong to (None: none known)."""
    client = b"".join(e.data for e in connection.events[:8] if type(e) is ClientData)
    server = b"".join(e.data for e in connection.events[:8] if type(e) is ServerData)
    for protocol in protocols:
        if protocol.detect(client, server):
            return protocol
    return None


__all__ = ["KNOWN", "ProtocolBase", "WireProtocol", "detect"]
