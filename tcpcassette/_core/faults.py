"""Faults: events a user places in a connection's script to simulate a failure.

A fault fires when replay reaches its position.  ``times`` limits it to the
first N plays of its connection (a client's retries then see the recorded,
healthy exchange); ``None`` means every play.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

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

    def parameters(self) -> dict[str, Any]:
        """The fault's parameters, in field order (``times`` among them), as a cassette
        stores them: those that are None, or mean nothing in this fault, are left out."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "time" and getattr(self, f.name) is not None
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Reset(Fault):
    """Abort the connection with a TCP RST: the client sees ECONNRESET."""

    kind: ClassVar[str] = "reset"


@dataclass(frozen=True, slots=True, kw_only=True)
class Close(Fault):
    """Close the connection in order (FIN); nothing scheduled after it is sent.

    With ``delay``, a slow close: nothing more is sent for ``delay`` seconds,
    then the FIN (bounded, as every silence is, by ``max_silence``).
    """

    kind: ClassVar[str] = "close"
    delay: float | None = None

    def __post_init__(self) -> None:
        Fault.__post_init__(self)
        _check_seconds("delay", self.delay, optional=True)


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
    """Send only the first ``nbytes`` of the server bytes that follow, then close or reset.

    The bytes are taken from the next server chunk and the server chunks right
    after it (up to the first client event, close or reset), so a message
    recorded in two chunks can be cut anywhere.
    """

    kind: ClassVar[str] = "truncate"
    nbytes: int
    then: Literal["close", "reset"] = "close"

    def __post_init__(self) -> None:
        Fault.__post_init__(self)
        _check_whole("nbytes", self.nbytes, least=0)
        if self.then not in ("close", "reset"):
            raise InvalidFaultError(f"then must be 'close' or 'reset', not {self.then!r}")


#: The largest piece ``Slice(size="random")`` sends: piece sizes are drawn
#: from 1 to this many bytes.
RANDOM_SLICE_MAX = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Slice(Fault):
    """Send the following server chunks in pieces of ``size`` bytes, ``delay`` apart.

    ``size="random"`` draws each piece's size from 1 to :data:`RANDOM_SLICE_MAX`
    from ``seed`` (the same seed, the same pieces).  With ``nbytes``, only the
    next ``nbytes`` server bytes are sliced, and later chunks go out whole again.
    """

    kind: ClassVar[str] = "slice"
    size: int | Literal["random"]
    delay: float = 0.0
    seed: int = 0
    nbytes: int | None = None

    def __post_init__(self) -> None:
        Fault.__post_init__(self)
        if self.size != "random":
            if isinstance(self.size, str):
                raise InvalidFaultError(
                    f"size must be a whole number of bytes or 'random', not {self.size!r}"
                )
            _check_positive_int("size", self.size)
        _check_seconds("delay", self.delay, optional=False)
        _check_whole("seed", self.seed, least=0)
        if self.seed and self.size != "random":
            raise InvalidFaultError(
                f"seed draws the sizes of size='random' pieces; a slice of size {self.size} "
                "takes no seed"
            )
        if self.nbytes is not None:
            _check_positive_int("nbytes", self.nbytes)

    def parameters(self) -> dict[str, Any]:
        found = Fault.parameters(self)
        if self.size != "random":
            del found["seed"]  # it draws nothing for a fixed size
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class Corrupt(Fault):
    """Change ``nbytes`` bytes of the next server chunk, one flipped bit each.

    The positions (distinct; every byte of a shorter chunk) and the bit of
    each are drawn from ``seed``, so the same seed corrupts the same bytes on
    every run and platform.
    """

    kind: ClassVar[str] = "corrupt"
    nbytes: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        Fault.__post_init__(self)
        _check_positive_int("nbytes", self.nbytes)
        _check_whole("seed", self.seed, least=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bandwidth(Fault):
    """Send every following server byte at ``bytes_per_second``: a slow link.

    A later ``Slice`` or ``Bandwidth`` replaces it.
    """

    kind: ClassVar[str] = "bandwidth"
    bytes_per_second: int

    def __post_init__(self) -> None:
        Fault.__post_init__(self)
        _check_positive_int("bytes_per_second", self.bytes_per_second)


FAULT_TYPES: tuple[type[Fault], ...] = (
    Reset,
    Close,
    Timeout,
    Delay,
    Refuse,
    ConnectTimeout,
    Truncate,
    Slice,
    Corrupt,
    Bandwidth,
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
