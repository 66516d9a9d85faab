"""What can happen on one recorded connection, as small immutable values.

An event is one step of a connection's script, in the order it happened:
bytes sent by one side, or the way one side ended its half of the
connection.  Injected faults (see :mod:`tcpcassette.faults`) are events too,
so that a fault sits at an exact position in the script.

Every event has a ``kind`` (a short string, also used in the file format),
``data`` (the bytes it carries, empty where there are none) and ``time``
(seconds since the connection was accepted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base class of every step in a connection's script."""

    kind: ClassVar[str] = ""
    #: True for events placed by a user to simulate a failure.
    is_fault: ClassVar[bool] = False

    time: float = 0.0

    @property
    def data(self) -> bytes:
        """The bytes this event carries; empty for events that carry none."""
        return b""


@dataclass(frozen=True, slots=True, kw_only=True)
class DataEvent(Event):
    """Base class of the two events that carry bytes: one chunk, as the proxy read it."""

    data: bytes  # a field where the base class has a read-only property


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientData(DataEvent):
    """Bytes the client sent, as one chunk read by the recording proxy."""

    kind: ClassVar[str] = "client"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerData(DataEvent):
    """Bytes the server sent, as one chunk read by the recording proxy."""

    kind: ClassVar[str] = "server"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientClose(Event):
    """The client closed its sending half (FIN): a close or ``shutdown(SHUT_WR)``."""

    kind: ClassVar[str] = "client_close"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerClose(Event):
    """The server closed its sending half (FIN)."""

    kind: ClassVar[str] = "server_close"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientReset(Event):
    """The client aborted the connection (RST)."""

    kind: ClassVar[str] = "client_reset"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerReset(Event):
    """The server aborted the connection (RST)."""

    kind: ClassVar[str] = "server_reset"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectRefused(Event):
    """The real server refused the connect; the only event of its connection."""

    kind: ClassVar[str] = "connect_refused"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectTimedOut(Event):
    """The connect to the real server never completed within the bound."""

    kind: ClassVar[str] = "connect_timed_out"


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsStart(Event):
    """The client began a TLS handshake here, and the events after it are the
    plaintext that travelled inside TLS.

    The handshake itself is not recorded (its bytes differ on every run):
    replay completes a new one, with a certificate from tcpcassette's test CA.

    Attributes:
        sni: the server name the client asked for (its SNI), "" when it sent none
            (a client that dialled an IP address).
        alpn: the application protocol the handshake settled on (``h2``,
            ``http/1.1``), "" when none was negotiated.
    """

    kind: ClassVar[str] = "tls"

    sni: str = ""
    alpn: str = ""


#: Events that end a connection before it is established.
CONNECT_FAILURES: tuple[type[Event], ...] = (ConnectRefused, ConnectTimedOut)

RECORDED_EVENT_TYPES: tuple[type[Event], ...] = (
    ClientData,
    ServerData,
    ClientClose,
    ServerClose,
    ClientReset,
    ServerReset,
    ConnectRefused,
    ConnectTimedOut,
    TlsStart,
)
