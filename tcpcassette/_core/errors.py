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
        └── UnplayedError              strict=True: recorded connections or requests never used

Every message names the cassette file, the connection where there is one, and
what to do next.  Errors that happen on tcpcassette's own threads (in the
recording proxy or the replay server) are collected and raised in the test's
own thread when the ``use_cassette`` block exits; when there are several, the
first is raised with its fields intact and the others in its ``others``
attribute (see :func:`gather`).

Errors from elsewhere become tcpcassette's where they enter: operating-system
errors of cassette files in the storage module, a stuck loop thread in the
loop module, bad arguments where options are checked.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence


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
    """

    def __init__(
        self,
        message: str,
        *,
        cassette: str | None = None,
        connection: int | None = None,
        position: int | None = None,
        transcript: str | None = None,
    ) -> None:
        super().__init__(message)
        self.cassette = cassette
        self.connection = connection
        self.position = position
        self.transcript = transcript


class UnrecordedConnectionError(ReplayError):
    """A connection that the cassette has no recording for, in a mode that may not record."""


class ClientMismatchError(ReplayError):
    """The client sent bytes that differ from the recording."""


class ClientStalledError(ReplayError):
    """The client sent part of a recorded message, then nothing more within the bound."""


class UnplayedError(ReplayError):
    """With ``strict=True``: recorded connections or requests the client never used."""


def gather(errors: Sequence[CassetteError]) -> CassetteError:
    """One error to raise for ``errors`` (at least one): the first, telling of the others.

    The first keeps its type and fields (``cassette``, ``connection``,
    ``position``, ``transcript``), so the pytest plugin can still show its
    transcript; its message lists the others, and ``others`` holds them.
    """
    first = errors[0]
    if len(errors) == 1:
        return first
    rest = tuple(errors[1:])
    listed = "\n".join(f"- {e}" for e in rest)
    combined = copy.copy(first)
    combined.args = (f"{first}\n{len(rest)} more:\n{listed}",)
    combined.others = rest
    return combined
