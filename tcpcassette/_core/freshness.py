"""How old a cassette may get: durations, ages, and what to do about an expired one.

Pure: the caller passes the current time and the time the cassette was
recorded (from the file, or the file's modification time for a cassette
written before the format kept it).
"""

from __future__ import annotations

import enum
import math
import re

from .errors import CassetteError, InvalidOptionError, choice

#: Seconds in each unit a duration may be written in.
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*")


class CassetteExpiredError(CassetteError):
    """A cassette is older than its ``max_age`` and ``on_expiry`` is ``"fail"``."""


class CassetteExpiredWarning(UserWarning):
    """A cassette is older than its ``max_age`` (``on_expiry="warn"``)."""


class OnExpiry(str, enum.Enum):
    """What happens when a cassette is older than its ``max_age``."""

    #: A :class:`CassetteExpiredWarning` names the cassette, its age and the bound.
    WARN = "warn"
    #: The test fails with :class:`CassetteExpiredError`.
    FAIL = "fail"
    #: The cassette is recorded again, as record mode ``all`` would (where the run may record).
    RERECORD = "rerecord"

    @classmethod
    def parse(cls, value: str | OnExpiry, *, source: str) -> OnExpiry:
        return choice(
            cls,
            value,
            lambda valid: (
                f"{source}: {value!r} is not an expiry action; use one of: " + ", ".join(valid)
            ),
        )


def parse_duration(value: object, *, source: str) -> float:
    """``value`` in seconds: a number of seconds, or text such as ``"90d"``, ``"12h"``,
    ``"2w"``, ``"30m"``, ``"45s"`` or ``"3600"``.

    Raises:
        InvalidOptionError: not a positive, finite duration (``source`` names
            where it came from).
    """
    seconds: float
    if isinstance(value, bool):
        raise _bad(value, source)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match is None:
            raise _bad(value, source)
        seconds = float(match.group(1)) * UNITS[match.group(2) or "s"]
    else:
        raise _bad(value, source)
    if not math.isfinite(seconds) or seconds <= 0:
        raise _bad(value, source)
    return seconds


def _bad(value: object, source: str) -> InvalidOptionError:
    return InvalidOptionError(
        f"{source}: {value!r:.60} is not a duration; give a positive number of seconds or a "
        "number with a unit: s, m, h, d or w (such as '90d', '12h', '2w')"
    )


def describe(seconds: float) -> str:
    """A duration as people say it: ``"95 days"``, ``"5 hours"``, ``"40 seconds"``."""
    for unit, size in (("day", UNITS["d"]), ("hour", UNITS["h"]), ("minute", UNITS["m"])):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    count = max(0, int(seconds))
    return f"{count} second{'s' if count != 1 else ''}"


def age(recorded_at: float, now: float) -> float:
    """How long ago ``recorded_at`` was (0 for a time in the future)."""
    return max(0.0, now - recorded_at)


def expired_message(cassette: str, age_seconds: float, max_age: float, *, dated: bool) -> str:
    """What an expired cassette's warning or error says; ``dated`` is False when its
    age comes from the file's modification time (a cassette written before the
    format kept the recording time)."""
    source = "" if dated else " (by the file's modification time)"
    return (
        f"{cassette}: recorded {describe(age_seconds)} ago{source}, older than its max_age "
        f"of {describe(max_age)}"
    )


def expired_error(
    cassette: str, age_seconds: float, max_age: float, *, dated: bool
) -> CassetteError:
    return CassetteExpiredError(
        expired_message(cassette, age_seconds, max_age, dated=dated)
        + ". Record it again against the real servers: pytest --record-mode=all for this "
        "test (or on_expiry='rerecord' where the servers are available), then review and "
        "commit the new cassette."
    )
