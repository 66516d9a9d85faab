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
from .http2 import Http2
from .memcached import Memcached
from .mqtt import Mqtt
from .mysql import MySql
from .nats import Nats
from .postgres import Postgres
from .redis import Redis
from .smtp import Smtp

#: The protocols detected by default, in the order they are tried.
KNOWN: tuple[WireProtocol, ...] = (
    Redis(),
    Http2(),
    Http(),
    Postgres(),
    MySql(),
    Memcached(),
    Smtp(),
    Nats(),
    Mqtt(),
)


def detect(
    connection: Connection, protocols: Sequence[WireProtocol] = KNOWN
) -> WireProtocol | None:
    """The protocol the connection's first bytes belong to (None: none known).

    A protocol with a ``for_connection(client, server)`` method is asked for
    the object to use for this connection (MQTT renders by its level).
    """
    client = b"".join(e.data for e in connection.events[:8] if type(e) is ClientData)
    server = b"".join(e.data for e in connection.events[:8] if type(e) is ServerData)
    for protocol in protocols:
        if protocol.detect(client, server):
            # A protocol that renders by what the connection negotiated (MQTT's level).
            specialise = getattr(protocol, "for_connection", None)
            found: WireProtocol = specialise(client, server) if specialise else protocol
            return found
    return None


def refusal(connection: Connection, protocols: Sequence[WireProtocol] = KNOWN) -> str | None:
    """Why the real server refused this recorded connection because tcpcassette
    ended its TLS (a login bound to the TLS channel), and what to do; None when
    no protocol says so.

    A protocol says so with a ``refusal(events)`` method (PostgreSQL's SCRAM
    channel binding); it is optional, as ``ignorable`` is.
    """
    protocol = detect(connection, protocols)
    method = getattr(protocol, "refusal", None)
    if not callable(method):
        return None
    found = method(connection.events)
    return str(found) if found else None


def by_name(name: str | None, protocols: Sequence[WireProtocol] = KNOWN) -> WireProtocol | None:
    """The known protocol called ``name`` (None: no such protocol, or no name)."""
    return next((p for p in protocols if p.name == name), None) if name else None


__all__ = ["KNOWN", "ProtocolBase", "WireProtocol", "by_name", "detect", "refusal"]
