"""The errors tcpcassette raises, all under one root.

::

    CassetteError
    ├── CassetteNotFoundError      no cassette file where one is needed
    ├── CassetteFormatError        the file is not a valid cassette of a known version
    ├── CassettePathError          a cassette name that would leave the cassette directory
    ├── CassetteInUseError         use_cassette entered while another one is active
    ├── InvalidOptionError         an option (of use_cassette, a filter, a framing) it cannot take
    ├── InvalidFaultError          a fault with bad parameters or at an impossible position
    └── ReplayError                the code under test did something the cassette does not hold
        ├── UnrecordedConnectionError  a connection the cassette has no recording for
        ├── ClientMismatchError        the client sent other bytes than were recorded
        ├── ClientStalledError         the client stopped sending halfway through a message
        │   └── ClientHungError        the client waited on a silence longer than max_silence
        └── UnplayedError              strict=True: recorded connections or requests never used

Every message names the cassette file, the connection where there is one, and
what to do next.  Errors that happen on tcpcassette's own threads (in the
recording proxy or the replay server) are collected and raised in the test's
own thread when the ``use_cassette`` block exits; when there are several, the
first is raised with its fields intact and the others in its ``others``
attribute (see :func:`gather`).  A client that retries a connection replay
reset meets the same problem again: such repeats are counted, not repeated.

Errors from elsewhere become tcpcassette's where they enter: operating-system
errors of cassette files in the storage module, a stuck loop thread in the
loop module, bad arguments where options are checked.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable, Sequence
from typing import TypeVar

from .render import printable


class CassetteError(Exception):
    """Root of every error tcpcassette raises.

    Attributes:
        others: further errors found in the same use of the cassette, in the
            order they were found (empty for a single error).
    """

    others: tuple[CassetteError, ...] = ()


class CassetteNotFoundError(CassetteError, FileNotFoundError):
    """A cassette file is needed (replay, ``load``) but does not exist."""


class CassetteFormatError(CassetteError, ValueError):
    """A cassette file is corrupt, truncated, of the wrong shape or of an unknown version."""


class CassettePathError(CassetteError, ValueError):
    """A cassette name would resolve to a file outside the cassette directory."""


class CassetteInUseError(CassetteError, RuntimeError):
    """``use_cassette`` was entered while another cassette is already active."""


class NetworkBlockedError(CassetteError):
    """A connection no cassette serves, made while ``--tcpcassette-block-network`` is on."""


class InvalidOptionError(CassetteError, ValueError):
    """An option has a value it cannot take (a mode, a bound, a filter, a framing)."""


class InvalidFaultError(CassetteError, ValueError):
    """A fault has invalid parameters or sits where it cannot fire."""


class ReplayError(CassetteError):
    """The code under test did something that the cassette does not hold.

    Attributes:
        cassette: the cassette file, where known.
        connection: the recorded connection concerned (from 0), where known.
        position: the event concerned (from 1), where known.
        transcript: the connection around that event, as ``tcpcassette show``
            prints it (the pytest plugin adds it to the failing test's report).
        target: the target (``host:port``) of the live connection, where known.
        key: what makes this problem this one: two errors with equal keys are
            the same problem met twice (a client retrying what replay reset);
            None when the error is one of a kind.
        reset: replay reset the client's connection over it, so the client
            may retry: a later connection to ``target`` that the cassette has
            nothing left for is one of its retries.
        sent: what the client sent there that the recording could not answer,
            where known.
    """

    def __init__(
        self,
        message: str,
        *,
        cassette: str | None = None,
        connection: int | None = None,
        position: int | None = None,
        transcript: str | None = None,
        target: str | None = None,
        key: tuple[object, ...] | None = None,
        reset: bool = False,
        sent: bytes | None = None,
    ) -> None:
        # Targets, host names and payload renderings come from the cassette, a
        # file that may have been downloaded: none of it may steer a terminal.
        super().__init__(printable(message, lines=True))
        self.cassette = cassette
        self.connection = connection
        self.position = position
        self.transcript = None if transcript is None else printable(transcript, lines=True)
        self.target = target
        self.key = key
        self.reset = reset
        self.sent = sent


class UnrecordedConnectionError(ReplayError):
    """A connection that the cassette has no recording for, in a mode that may not record."""


class ClientMismatchError(ReplayError):
    """The client sent bytes that differ from the recording."""


class ClientStalledError(ReplayError):
    """The client sent part of a recorded message, then nothing more within the bound."""


class ClientHungError(ClientStalledError):
    """The client waited on a silence (a ``Timeout`` fault, a ``Delay``) longer than
    ``max_silence`` allows: it has no timeout of its own there."""


class UnplayedError(ReplayError):
    """With ``strict=True``: recorded connections or requests the client never used."""


#: Distinct further problems a gathered error spells out; more are counted.
LISTED_OTHERS = 3


class _Report:
    """One problem and how often the client met it again.

    A plain class, not a dataclass: this module loads at every pytest start,
    where making a dataclass costs most of a millisecond.
    """

    __slots__ = ("error", "repeats", "unserved")

    def __init__(self, error: CassetteError) -> None:
        self.error = error
        self.repeats = 0  # the same problem again (same key)
        self.unserved = 0  # a retry the cassette had no recording left for

    def text(self) -> str:
        again = self.repeats + self.unserved
        if not again:
            return str(self.error)
        retried = isinstance(self.error, ReplayError) and self.error.reset
        what = (
            f"and {again} more attempt{'s' if again != 1 else ''} by the client's retries"
            if retried
            else f"and {again} more like it"
        )
        if self.unserved == again:
            what += (
                ", on a new connection the cassette had no recording left for"
                if again == 1
                else ", on new connections the cassette had no recording left for"
            )
        elif self.unserved:
            what += (
                f" ({self.unserved} of them on a new connection the cassette had no "
                "recording left for)"
            )
        return f"{self.error}\n  {what}"


class Problems:
    """Errors as they are found, one report per problem (see :func:`gather`)."""

    def __init__(self) -> None:
        self.reports: list[_Report] = []
        self._by_key: dict[tuple[object, ...], _Report] = {}

    def add(self, error: CassetteError) -> bool:
        """Take ``error``; True when it is a problem not met before."""
        key = error.key if isinstance(error, ReplayError) else None
        if key is not None and key in self._by_key:
            self._by_key[key].repeats += 1
            return False
        target = error.target if isinstance(error, ReplayError) else None
        if isinstance(error, UnrecordedConnectionError) and target is not None:
            # Replay reset a connection, and then came one more to the same
            # target with nothing left to serve it: the client retrying.
            for report in reversed(self.reports):
                earlier = report.error
                if isinstance(earlier, ReplayError) and earlier.reset and earlier.target == target:
                    report.unserved += 1
                    return False
        report = _Report(error)
        self.reports.append(report)
        if key is not None:
            self._by_key[key] = report
        return True


def gather(errors: Sequence[CassetteError]) -> CassetteError:
    """One error to raise for ``errors`` (at least one): the first, telling of the others.

    Errors that are the same problem (equal ``key``: the same recorded event
    and the same live bytes, or the same unmatched opening) are reported once,
    with how many more attempts the client made; so is a retry the cassette
    had no recording left for, after replay reset a connection to the same
    target.  Distinct problems are all reported: the first few in full, the
    rest counted.

    The first keeps its type and fields (``cassette``, ``connection``,
    ``position``, ``transcript``), so the pytest plugin can still show its
    transcript; ``others`` holds every other error, repeats included.
    """
    first = errors[0]
    if len(errors) == 1:
        return first
    problems = Problems()
    for error in errors:
        problems.add(error)
    reports = problems.reports
    lines = [reports[0].text()]
    rest = reports[1:]
    if rest:
        lines.append(f"{len(rest)} more:")
        lines += [f"- {r.text()}" for r in rest[:LISTED_OTHERS]]
        if len(rest) > LISTED_OTHERS:
            hidden = len(rest) - LISTED_OTHERS
            lines.append(
                f"- and {hidden} more problem{'s' if hidden != 1 else ''} "
                "(each in this error's .others)"
            )
    combined = copy.copy(first)
    combined.args = ("\n".join(lines),)
    combined.others = tuple(errors[1:])
    return combined


_Choice = TypeVar("_Choice", bound=enum.Enum)


def quoted(values: Sequence[str]) -> str:
    """``'a', 'b'``: values listed as Python literals, for a message."""
    return ", ".join(repr(v) for v in values)


def choice(cls: type[_Choice], value: object, problem: Callable[[list[str]], str]) -> _Choice:
    """``value`` as a member of the enum ``cls``; otherwise an :class:`InvalidOptionError`
    whose message ``problem`` writes from the valid values."""
    try:
        return cls(value)
    except ValueError:
        raise InvalidOptionError(problem([str(m.value) for m in cls])) from None
