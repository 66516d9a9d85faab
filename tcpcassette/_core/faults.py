"""Faults: events a user places in a connection's script to simulate a failure.

A fault fires when replay reaches its position.  ``times`` limits it to the
first N plays of its connection (a client's retries then see the recorded,
healthy exchange); ``None`` means every play.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

from .errors import InvalidFaultError
from .events import Event

#: The largest whole number a fault may hold: what a cassette can store (a signed 64-bit integer).
MAX_WHOLE = 2**63 - 1


def _check_whole(name: str, value: int, *, least: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= MAX_WHOLE:
        raise InvalidFaultError(
            f"{name} must be a whole number from {least} to {MAX_WHOLE}, not {value!r}"
        )


def _check_seconds(name: str, value: float | None, *, optional: bool) -> None:
    if value is None:
        if not optional:
            raise InvalidFaultError(f"{name} is required")
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidFaultError(f"{name} must be a finite number of seconds, not {value!r}")
    if value < 0:
        raise InvalidFaultError(f"{name} must not be negative, not {value!r}")
    if isinstance(value, int) and value > MAX_WHOLE:
        raise InvalidFaultError(f"{name} must be at most {MAX_WHOLE} seconds, not {value!r}")


def _check_positive_int(name: str, value: int) -> None:
    _check_whole(name, value, least=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault(Event):
    """Base class of injected faults."""

    is_fault: ClassVar[bool] = True
    #: True for faults that act on the connect itself (they must come first).
    at_connect: ClassVar[bool] = False

    times: int | None = None

    def __post_init__(self) -> None:
        if self.times is not None:
            _check_positive_int("times", self.times)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reset(Fault):
    """Abort the connection with a TCP RST: the client sees ECONNRESET."""

    kind: ClassVar[str] = "reset"


@dataclass(frozen=True, slots=True, kw_only=True)
class Close(Fault):
    """Close the connection in order (FIN); nothing scheduled after it is sent."""

    kind: ClassVar[str] = "close"


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeout(Fault):
    """Go silent with the connection open; close it after ``seconds`` (never if None)."""

    kind: ClassVar[str] = "timeout"
    seconds: float | None = None

    def __post_init__(self) -> None:
        Fault.__post_init__(self)
        _check_seconds("seconds", self.seconds, optional=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Delay(Fault):
    """Hold the next event back for ``seconds``: latency."""

    kind: ClassVar[str] = "delay"
    seconds: float

    def __post_init__(self) -> None:
        Fault.__post_init__(self)
        _check_seconds("seconds", self.seconds, optional=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Refuse(Fault):
    """Refuse the connect: the client's connect call raises ConnectionRefusedError."""

    kind: ClassVar[str] = "refuse"
    at_connect: ClassVar[bool] = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectTimeout(Fault):
    """Never complete the connect: the client's own connect timeout fires."""

    kind: ClassVar[str] = "connect_timeout"
    at_connect: ClassVar[bool] = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Truncate(Fault):
    """Send only the first ``nbytes`` of the next server chunk, then close or reset."""

    kind: ClassVar[str] = "truncate"
    nbytes: int
    then: Literal["close", "reset"] = "close"

    def __post_init__(self) -> None:
        Fault.__post_init__(self)
        _check_whole("nbytes", self.nbytes, least=0)
        if self.then not in ("close", "reset"):
            raise InvalidFaultError(f"then must be 'close' or 'reset', not {self.then!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Slice(Fault):
    """Send the following server chunks in pieces of ``size`` bytes, ``delay`` apart."""

    kind: ClassVar[str] = "slice"
    size: int
    delay: float = 0.0

    def __post_init__(self) -> None:
        Fault.__post_init__(self)
        _check_positive_int("size", self.size)
        _check_seconds("delay", self.delay, optional=False)


FAULT_TYPES: tuple[type[Fault], ...] = (
    Reset,
    Close,
    Timeout,
    Delay,
    Refuse,
    ConnectTimeout,
    Truncate,
    Slice,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Placement:
    """A fault placed at a position: connection number, and after which event."""

    fault: Fault
    connection: int
    after: int = 0


def at(fault: Fault, *, connection: int, after: int = 0) -> Placement:
    """Place ``fault`` in connection ``connection`` after event ``after`` (for ``faults=``)."""
    return Placement(fault=fault, connection=connection, after=after)
