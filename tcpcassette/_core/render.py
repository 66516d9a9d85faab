"""Showing bytes to people: text where printable, hex otherwise."""

from __future__ import annotations

import math
import re
import string

_PRINTABLE = frozenset(string.printable.encode()) - frozenset(b"\x0b\x0c")

# Characters that steer a terminal or reorder text rather than show: C0 and C1
# controls, DEL, and the invisible format characters (bidirectional overrides,
# zero-width characters, line and paragraph separators).
_UNSHOWABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)
_UNSHOWABLE_BUT_LINES = re.compile(_UNSHOWABLE.pattern.replace("\x00-\x1f", "\x00-\x09\x0b-\x1f"))


def _escaped(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` safe to print: control and invisible format characters escaped as
    in a Python literal (``\\x1b``, ``\\u202e``).  ``lines`` keeps newlines.

    Text read from a cassette (a target, a host name, a protocol's rendering)
    goes through this before it reaches a terminal, so a downloaded cassette
    cannot move the cursor, retitle the window or reorder what is shown.
    """
    return (_UNSHOWABLE_BUT_LINES if lines else _UNSHOWABLE).sub(_escaped, text)


#: Bytes shown of a payload before it is abbreviated in messages.
DEFAULT_SHOW_BYTES = 200


def first_difference(a: bytes, b: bytes) -> int:
    """Index of the first byte where ``a`` and ``b`` differ (the shorter length if none)."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


def is_text(data: bytes) -> bool:
    """True when ``data`` reads as text (printable ASCII, tabs and newlines)."""
    return all(b in _PRINTABLE for b in data)


def show_bytes(data: bytes, *, limit: int | None = DEFAULT_SHOW_BYTES) -> str:
    """A one-line rendering of ``data``: a bytes literal where printable, hex otherwise."""
    shown = data if limit is None else data[:limit]
    more = "" if len(shown) == len(data) else f" ... ({len(data) - len(shown)} more bytes)"
    if is_text(shown):
        return repr(bytes(shown)) + more
    return "hex " + shown.hex(" ") + more


def hexdump(data: bytes, *, offset: int = 0, width: int = 16) -> list[str]:
    """Classic hexdump lines: offset, hex bytes, printable characters."""
    lines = []
    for start in range(0, len(data), width):
        row = data[start : start + width]
        hexes = " ".join(f"{b:02x}" for b in row).ljust(width * 3 - 1)
        chars = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{offset + start:08x}  {hexes}  |{chars}|")
    return lines


def side_by_side(expected: bytes, actual: bytes, offset: int, *, context: int = 40) -> str:
    """Recorded and actual bytes around their first difference, one above the other."""
    start = max(0, offset - context)
    exp = expected[start : offset + context]
    act = actual[start : offset + context]
    lead = "..." if start else ""
    if is_text(exp) and is_text(act):
        exp_s, act_s = repr(exp)[2:-1], repr(act)[2:-1]
        caret = len(repr(expected[start:offset])[2:-1])
    else:
        exp_s, act_s = exp.hex(" "), act.hex(" ")
        caret = 3 * (offset - start)
    pad = " " * (len(lead) + caret)
    return (
        f"  recorded: {lead}{exp_s}\n"
        f"  actual:   {lead}{act_s}\n"
        f"            {pad}^ first difference at byte {offset}"
    )


def utc_text(seconds: float | None) -> str:
    """Seconds since the Unix epoch as a UTC date and time (``2026-01-31 09:05:00 UTC``),
    computed here (the core keeps to arithmetic); ``unknown`` for None."""
    if seconds is None:
        return "unknown"
    if not math.isfinite(seconds) or not -62_135_596_800 <= seconds < 253_402_300_800:
        return f"{seconds!r} s after the Unix epoch (not a date)"
    whole = math.floor(seconds)
    days, rest = divmod(whole, 86_400)
    # Days to a civil date (proleptic Gregorian), counting eras of 400 years from 0000-03-01.
    shifted = days + 719_468
    era = shifted // 146_097
    day_of_era = shifted - era * 146_097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_index = (5 * day_of_year + 2) // 153  # 0 is March
    day = day_of_year - (153 * month_index + 2) // 5 + 1
    month = month_index + 3 if month_index < 10 else month_index - 9
    year = year_of_era + era * 400 + (1 if month <= 2 else 0)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{year:04d}-{month:02d}-{day:02d} {hours:02d}:{minutes:02d}:{secs:02d} UTC"
