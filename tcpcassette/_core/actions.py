"""What the core tells the I/O layer to do on one client connection.

The replay machine, the exchange server and the router answer every input
with a list of these; the replay server carries them out in order and
decides nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from .noise import Span


@dataclass(frozen=True, slots=True)
class Send:
    """Write ``data`` to the client as one write."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SendEof:
    """Close the sending half (FIN); keep reading what the client sends."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the connection in order (FIN, if not sent yet) and stop serving it."""


@dataclass(frozen=True, slots=True)
class Abort:
    """Abort the connection with an RST and stop serving it."""


@dataclass(frozen=True, slots=True)
class WakeAt:
    """Call the machine's ``wake`` at loop time ``deadline``."""

    deadline: float


@dataclass(frozen=True, slots=True)
class StartTls:
    """Answer the client's TLS handshake as its server, and carry every later
    ``Send`` and client byte inside TLS.

    Attributes:
        sni: the server name recorded for the handshake ("" none).
        alpn: the application protocol to agree on ("" none).
        pending: client bytes the machine had received that came after the
            point where TLS began: the start of the handshake itself.
    """

    sni: str
    alpn: str
    pending: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """The client did something the script does not allow; the I/O layer reports it.

    Attributes:
        reason: ``"mismatch"`` (other bytes than recorded), ``"extra"`` (bytes
            after the script expected none), ``"stalled"`` (part of a message
            and then nothing), ``"hung"`` (the client waited on a silence with
            no timeout of its own).
        position: the number (from 1) of the event being played.
        expected: the recorded bytes from the point of difference's message.
        actual: what the client sent for that message.
        offset: index of the first differing byte within ``expected``/``actual``.
        connection: the recorded connection, when the machine knows it better
            than the link does (exchange mode).
        notes: what the noise rules accepted and refused in this message, and
            which rules they tried, one line each.
    """

    reason: Literal["mismatch", "extra", "stalled", "hung"]
    position: int
    expected: bytes
    actual: bytes
    offset: int
    connection: int | None = None
    notes: tuple[str, ...] = ()


Action = Send | SendEof | Disconnect | Abort | WakeAt | StartTls | Problem

#: Actions after which the connection is over.
ENDINGS = (Disconnect, Abort)


class Machine(Protocol):
    """What the replay server drives: a script play or an exchange server.

    Every input returns the actions to carry out, in order.  ``cut_short``
    turns True once a fault ended the play early (its recording may serve
    the client's retry); ``finished`` once nothing but closing is left.
    """

    @property
    def cut_short(self) -> bool: ...

    @property
    def finished(self) -> bool: ...

    @property
    def complete(self) -> bool:
        """True when the play served everything it was meant to (strict mode counts it)."""
        ...

    @property
    def reading(self) -> bool:
        """False while more client bytes would only be buffered (a delay or a
        silence with enough waiting): the I/O layer stops reading meanwhile."""
        ...

    @property
    def tolerated(self) -> list[tuple[int, Span]]:
        """Differences the noise rules accepted: the event position and the span."""
        ...

    def start(self, now: float) -> list[Action]:
        """The client connected."""
        ...

    def feed(self, data: bytes, now: float) -> list[Action]:
        """The client sent ``data``."""
        ...

    def feed_eof(self, now: float) -> list[Action]:
        """The client closed its sending half (FIN)."""
        ...

    def feed_reset(self, now: float) -> list[Action]:
        """The connection was aborted or lost; nothing more can be sent."""
        ...

    def wake(self, now: float) -> list[Action]:
        """A deadline asked for with :class:`WakeAt` has passed (or not quite)."""
        ...

    def shutdown(self, now: float) -> list[Action]:
        """The cassette is leaving: how to end this connection now."""
        ...


class Wrapper:
    """A :class:`Machine` that hands every call to the ``machine`` it wraps;
    subclasses change what they need."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine

    @property
    def cut_short(self) -> bool:
        return self.machine.cut_short

    @property
    def finished(self) -> bool:
        return self.machine.finished

    @property
    def complete(self) -> bool:
        return self.machine.complete

    @property
    def reading(self) -> bool:
        return self.machine.reading

    @property
    def tolerated(self) -> list[tuple[int, Span]]:
        return self.machine.tolerated

    def start(self, now: float) -> list[Action]:
        return self.machine.start(now)

    def feed(self, data: bytes, now: float) -> list[Action]:
        return self.machine.feed(data, now)

    def feed_eof(self, now: float) -> list[Action]:
        return self.machine.feed_eof(now)

    def feed_reset(self, now: float) -> list[Action]:
        return self.machine.feed_reset(now)

    def wake(self, now: float) -> list[Action]:
        return self.machine.wake(now)

    def shutdown(self, now: float) -> list[Action]:
        return self.machine.shutdown(now)
