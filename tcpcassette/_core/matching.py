"""Comparing a client's message with the recorded one, and redacting secrets.

A matcher is any callable ``(recorded: bytes, actual: bytes) -> bool``.  A
filter is any callable ``(data: bytes, side: str) -> bytes`` (side is
``"client"`` or ``"server"``): it rewrites bytes before they are saved, and
the same filters rewrite the live client's bytes before they are matched, so
a redacted cassette still replays.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from dataclasses import replace as replace_event

from .connection import Connection
from .errors import InvalidOptionError
from .events import ClientData, DataEvent, Event
from .framing import Framer, Raw

Matcher = Callable[[bytes, bytes], bool]
Filter = Callable[[bytes, str], bytes]


def exact(recorded: bytes, actual: bytes) -> bool:
    """The default: the bytes are equal."""
    return recorded == actual


@dataclass(frozen=True, slots=True)
class IgnoreRegex:
    """Equal once every match of the patterns is blanked out (timestamps, ids)."""

    patterns: tuple[re.Pattern[bytes], ...]

    def __call__(self, recorded: bytes, actual: bytes) -> bool:
        return self._blank(recorded) == self._blank(actual)

    def _blank(self, data: bytes) -> bytes:
        for pattern in self.patterns:
            data = pattern.sub(b"\0", data)
        return data


def ignore_regex(*patterns: bytes | str) -> IgnoreRegex:
    """A matcher that ignores what the regular expressions match, e.g. ``rb"\\d{10}"``."""
    compiled = tuple(re.compile(p.encode() if isinstance(p, str) else p) for p in patterns)
    return IgnoreRegex(compiled)


@dataclass(frozen=True, slots=True)
class IgnoreRanges:
    """Equal apart from the byte ranges ``[start, end)`` (a sequence number at a fixed offset)."""

    ranges: tuple[tuple[int, int], ...]

    def __call__(self, recorded: bytes, actual: bytes) -> bool:
        if len(recorded) != len(actual):
            return False
        a, b = bytearray(recorded), bytearray(actual)
        for start, end in self.ranges:
            a[start:end] = bytes(len(a[start:end]))
            b[start:end] = bytes(len(b[start:end]))
        return a == b


def ignore_ranges(*ranges: tuple[int, int]) -> IgnoreRanges:
    """A matcher that ignores the byte ranges ``(start, end)`` of each message."""
    return IgnoreRanges(tuple(ranges))


@dataclass(frozen=True, slots=True)
class Replace:
    """A filter: replace every match of ``pattern`` with ``replacement`` on one side or both."""

    pattern: re.Pattern[bytes]
    replacement: bytes
    side: str = "client"

    def __call__(self, data: bytes, side: str) -> bytes:
        if self.side not in ("both", side):
            return data
        return self.pattern.sub(self.replacement, data)


def replace(pattern: bytes | str, replacement: bytes | str, *, side: str = "client") -> Replace:
    """A filter replacing a regular expression, e.g. a password, before saving and matching.

    Args:
        pattern: the regular expression (bytes, or str encoded as UTF-8).
        replacement: what to put instead (may use groups, ``rb"\\1"``).
        side: ``"client"`` (default), ``"server"`` or ``"both"``.
    """
    if side not in ("client", "server", "both"):
        raise InvalidOptionError(
            f"replace(): side must be 'client', 'server' or 'both', not {side!r}"
        )
    try:
        pat = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
    except (re.error, TypeError) as exc:
        raise InvalidOptionError(
            f"replace(): {pattern!r} is not a regular expression ({exc})"
        ) from exc
    rep = replacement.encode() if isinstance(replacement, str) else replacement
    if isinstance(rep, bytes):
        _check_template(pat, rep)
    if not isinstance(rep, bytes):
        raise InvalidOptionError(f"replace(): the replacement must be bytes or str, not {rep!r}")
    return Replace(pat, rep, side)


_GROUP_REFERENCE = re.compile(rb"\\(?:g<([^>]*)>|([0-9]{1,2}))")


def _check_template(pattern: re.Pattern[bytes], replacement: bytes) -> None:
    """Refuse group references the pattern lacks now, not at the first match."""
    for name, number in _GROUP_REFERENCE.findall(replacement):
        ref = (name or number).decode("ascii", "replace")
        if ref.isdigit():
            if int(ref) > pattern.groups:
                raise InvalidOptionError(
                    f"replace(): the replacement refers to group {ref}, but {pattern.pattern!r} "
                    f"has {pattern.groups}"
                )
        elif ref not in pattern.groupindex:
            raise InvalidOptionError(
                f"replace(): the replacement refers to group {ref!r}, which "
                f"{pattern.pattern!r} does not define"
            )


def apply_filters(data: bytes, side: str, filters: Sequence[Filter]) -> bytes:
    for f in filters:
        data = f(data, side)
    return data


@dataclass(frozen=True, slots=True)
class MessageRule:
    """How replay delimits and compares client messages when bytes may legitimately differ."""

    framer: Framer
    match: Matcher
    filters: tuple[Filter, ...]

    def take(
        self,
        expected: bytes,
        inbox: bytes,
        *,
        eof: bool,
        scrub: Callable[[bytes], bytes] | None = None,
    ) -> int | None:
        """How many bytes of ``inbox`` make the message matching ``expected``.

        ``scrub`` rewrites a live message (after the filters) the way the
        recording's credentials were scrubbed, before it is matched.

        Returns:
            The byte count; ``None`` when more bytes are needed; ``-1`` when the
            message cannot match.
        """
        if isinstance(self.framer, Raw):
            return self._take_raw(expected, inbox, eof=eof, scrub=scrub)
        ends = self.framer.split(inbox)
        if not ends:
            return -1 if eof and inbox else None
        actual = apply_filters(inbox[: ends[0]], "client", self.filters)
        if scrub is not None:
            actual = scrub(actual)
        return ends[0] if self.match(expected, actual) else -1

    def _take_raw(
        self,
        expected: bytes,
        inbox: bytes,
        *,
        eof: bool,
        scrub: Callable[[bytes], bytes] | None = None,
    ) -> int | None:
        def filtered(data: bytes) -> bytes:
            data = apply_filters(data, "client", self.filters)
            return scrub(data) if scrub is not None else data

        if not self.filters and scrub is None:
            # Without framing, a message keeps its recorded length.
            n = len(expected)
            if len(inbox) < n:
                return -1 if eof else None
            return n if self.match(expected, inbox[:n]) else -1
        # A filter may change lengths: find the shortest prefix that matches.
        # Only prefixes ending like the recorded message are tried.
        last = expected[-1:] or b""
        for n in range(1, len(inbox) + 1):
            if last and inbox[n - 1 : n] != last:
                continue
            if self.match(expected, filtered(inbox[:n])):
                return n
        if eof or len(filtered(inbox)) > len(expected) * 2 + 64:
            return -1
        return None


def redact(connection: Connection, filters: Sequence[Filter]) -> Connection:
    """``connection`` with the filters applied to each run of same-side chunks.

    A run the filters leave the same length keeps its chunk boundaries; one
    whose length changes is saved as one chunk.
    """
    if not filters:
        return connection
    out: list[Event] = []
    run: list[DataEvent] = []

    def flush() -> None:
        if not run:
            return
        side = "client" if type(run[0]) is ClientData else "server"
        joined = b"".join(e.data for e in run)
        filtered = apply_filters(joined, side, filters)
        if filtered == joined:
            out.extend(run)
        elif len(filtered) == len(joined):
            at = 0
            for e in run:
                out.append(replace_event(e, data=filtered[at : at + len(e.data)]))
                at += len(e.data)
        else:
            out.append(replace_event(run[0], data=filtered, time=run[-1].time))
        run.clear()

    for event in connection.events:
        if isinstance(event, DataEvent):
            if run and type(run[0]) is not type(event):
                flush()
            run.append(event)
        else:
            flush()
            out.append(event)
    flush()
    return Connection(target=connection.target, events=tuple(out), start=connection.start)
