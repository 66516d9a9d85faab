"""The settings a session runs with: bounds on every wait, and how replay matches.

Every option is checked here, once, whichever front door it came through
(``use_cassette``, the pytest plugin, the command line).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .errors import InvalidOptionError, choice, quoted
from .framing import FramingSpec, Raw, resolve_framing
from .matching import Filter, Matcher, MessageRule, exact
from .noise import NoiseMode
from .protocols.base import WireProtocol

#: Default bounds, in seconds (see :class:`Limits`).
DEFAULT_STALL_TIMEOUT = 5.0
DEFAULT_MAX_SILENCE = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_SETTLE_TIMEOUT = 0.5


class MatchingMode(str, enum.Enum):
    """How replay chooses what answers a live client."""

    #: Each live connection plays one recorded connection, in order (faults play too).
    SCRIPT = "script"
    #: Each request is answered from any recorded connection to the target (pools).
    EXCHANGE = "exchange"

    @classmethod
    def parse(cls, value: str | MatchingMode) -> MatchingMode:
        """``value`` as a mode, or a :class:`CassetteError` listing the valid ones."""
        return choice(
            cls, value, lambda valid: f"matching must be one of {quoted(valid)}, not {value!r}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Every bound on a wait, in seconds.

    Attributes:
        stall_timeout: a client that sends part of a recorded message and then
            nothing for this long is reset and reported.
        max_silence: a ``Timeout`` fault without ``seconds`` holds a client at
            most this long before replay resets it and reports a hung client.
        connect_timeout: while recording, the longest wait for the real
            server's handshake when the client's socket has no timeout.
        settle_timeout: on leaving the block, how long recording waits for a
            connection that one side closed to be closed by the other.
    """

    stall_timeout: float = DEFAULT_STALL_TIMEOUT
    max_silence: float = DEFAULT_MAX_SILENCE
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    settle_timeout: float = DEFAULT_SETTLE_TIMEOUT

    def __post_init__(self) -> None:
        for name in ("stall_timeout", "max_silence", "connect_timeout", "settle_timeout"):
            value = getattr(self, name)
            if (
                not isinstance(value, (int, float))
                or isinstance(value, bool)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise InvalidOptionError(
                    f"{name} must be a number of seconds above 0, not {value!r}"
                )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayOptions:
    """How replay matches and paces, and how recordings are redacted.

    Attributes:
        matching: script (each connection plays its own recording in order)
            or exchange (each request is answered from any recorded
            connection to the target).
        rule: how client messages are delimited and compared (None: equal bytes).
        speed: replay the recorded gaps between server chunks, this many
            times faster (None: no gaps).
        repeat: recordings and exchanges may be served more than once.
        strict: fail when recorded connections or requests were never used.
        filters: rewrite bytes before they are saved (and, through the rule,
            live client bytes before they are matched).
        noise: which differences between runs replay tolerates (see
            :mod:`tcpcassette._core.noise`).
        protocol: ``"auto"`` (detect the protocols tcpcassette knows from the
            recorded bytes), ``"raw"`` (none) or a protocol object for every
            connection (see :mod:`tcpcassette._core.protocols`).
        scrub: replace credentials sent in clear by a placeholder before a
            recording is saved (see :mod:`tcpcassette._core.scrub`).
    """

    matching: MatchingMode = MatchingMode.SCRIPT
    rule: MessageRule | None = None
    speed: float | None = None
    repeat: bool = False
    strict: bool = False
    filters: tuple[Filter, ...] = ()
    noise: NoiseMode = NoiseMode.AUTO
    protocol: WireProtocol | Literal["auto", "raw"] = "auto"
    scrub: bool = True

    @property
    def exchange(self) -> bool:
        return self.matching is MatchingMode.EXCHANGE

    @classmethod
    def build(
        cls,
        *,
        matching: str | MatchingMode = MatchingMode.SCRIPT,
        match: Matcher | None = None,
        framing: FramingSpec = None,
        filters: Sequence[Filter] = (),
        realtime: bool | float | None = False,
        allow_playback_repeats: bool = False,
        strict: bool = False,
        faults: int = 0,
        noise: str | NoiseMode = NoiseMode.AUTO,
        protocol: WireProtocol | str = "auto",
        scrub: bool = True,
    ) -> ReplayOptions:
        """Options from the arguments users write, each checked.

        Args:
            faults: how many faults are placed for this use (exchange mode plays none).

        Raises:
            CassetteError: an option has a value it cannot take.
        """
        mode = MatchingMode.parse(matching)
        if mode is MatchingMode.EXCHANGE and faults:
            raise InvalidOptionError("faults are played in matching='script' mode only")
        framer = resolve_framing(framing)
        if match is not None and not callable(match):
            raise InvalidOptionError(
                f"match must be a callable (recorded, actual) -> bool, not {match!r}"
            )
        for f in filters:
            if not callable(f):
                raise InvalidOptionError(
                    f"each filter must be a callable (data, side) -> bytes, not {f!r}"
                )
        filters = tuple(filters)
        if not isinstance(scrub, bool):
            raise InvalidOptionError(f"scrub must be True or False, not {scrub!r}")
        rule = None
        if match is not None or filters or not isinstance(framer, Raw):
            rule = MessageRule(framer=framer, match=match or exact, filters=filters)
        return cls(
            matching=mode,
            rule=rule,
            speed=_speed(realtime),
            repeat=bool(allow_playback_repeats),
            strict=bool(strict),
            filters=filters,
            noise=NoiseMode.parse(noise),
            protocol=_protocol(protocol),
            scrub=scrub,
        )


def _protocol(value: WireProtocol | str) -> WireProtocol | Literal["auto", "raw"]:
    if value == "auto" or value == "raw":
        return "auto" if value == "auto" else "raw"
    if isinstance(value, str) or not isinstance(value, WireProtocol):
        raise InvalidOptionError(
            f"protocol must be 'auto', 'raw' or an object with name, detect, split, volatile "
            f"and render (see tcpcassette.protocols), not {value!r}"
        )
    return value


def _speed(realtime: bool | float | None) -> float | None:
    if realtime is True:
        return 1.0
    if realtime is False or realtime is None:
        return None
    if isinstance(realtime, (int, float)) and math.isfinite(realtime) and realtime > 0:
        return float(realtime)
    raise InvalidOptionError(f"realtime must be True, False or a speed > 0, not {realtime!r}")
