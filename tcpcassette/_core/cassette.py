"""The cassette model: recorded connections, the host names they were reached by, and edits.

The model holds data and never touches a file; :mod:`tcpcassette._io.storage`
loads and saves it, and :class:`tcpcassette.Cassette` adds the file and the
live session on top.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import PurePath

from .codec import CassetteContents
from .connection import Connection
from .errors import InvalidFaultError
from .faults import Fault
from .framing import FramingSpec, resolve_framing
from .messages import event_position


class CassetteModel:
    """Recorded TCP connections, and the names they were reached by.

    Attributes:
        path: the file it was loaded from or will be saved to (None if neither);
            the model only uses it to name itself in messages.
        connections: the recorded connections, in the order they were opened.
        hosts: host names resolved during recording, each with its addresses,
            so that replay answers name lookups without a resolver.
        recorded_at: when it was recorded, in seconds since the Unix epoch
            (as ``time.time()`` gives them); None for a cassette saved
            before the format kept it.  ``max_age`` measures from here.
    """

    def __init__(
        self,
        *,
        path: str | PurePath | None = None,
        connections: Iterable[Connection] = (),
        hosts: Mapping[str, Iterable[str]] | None = None,
        recorded_at: float | None = None,
    ) -> None:
        self.path: PurePath | None = _as_path(path)
        self.recorded_at: float | None = recorded_at
        self.connections: list[Connection] = list(connections)
        self.hosts: dict[str, tuple[str, ...]] = {
            name: tuple(addrs) for name, addrs in (hosts or {}).items()
        }

    def __repr__(self) -> str:
        return f"<Cassette {str(self.path)!r} with {len(self.connections)} connections>"

    @property
    def contents(self) -> CassetteContents:
        """What a cassette file holds, as the codec writes it."""
        return CassetteContents(
            connections=tuple(self.connections), hosts=self.hosts, recorded_at=self.recorded_at
        )

    # -- editing ------------------------------------------------------------

    def inject(
        self, fault: Fault, *, connection: int, after: int = 0, framing: FramingSpec = None
    ) -> None:
        """Place ``fault`` in connection number ``connection``, after event ``after``.

        Connections are numbered from 0 and events from 1, as ``tcpcassette
        show`` numbers them; ``after=0`` means right after the connect.  With
        a ``framing`` other than raw, ``after`` counts framed messages (as
        ``tcpcassette show --framing`` numbers them); a fault inside a
        recorded chunk splits that chunk.

        Raises:
            InvalidFaultError: no such connection, or an impossible position.
        """
        index = self._check_connection(connection)
        try:
            target, position = event_position(
                self.connections[index], resolve_framing(framing), after
            )
            self.connections[index] = target.with_fault(fault, after=position)
        except InvalidFaultError as exc:
            raise InvalidFaultError(f"{self.label}, connection {connection}: {exc}") from exc

    def remove(self, *, connection: int, event: int) -> None:
        """Remove event number ``event`` (from 1) of connection number ``connection``."""
        index = self._check_connection(connection)
        try:
            self.connections[index] = self.connections[index].without_event(event)
        except InvalidFaultError as exc:
            raise InvalidFaultError(f"{self.label}, connection {connection}: {exc}") from exc

    def _check_connection(self, connection: int) -> int:
        valid = isinstance(connection, int) and not isinstance(connection, bool)
        if not valid or not 0 <= connection < len(self.connections):
            raise InvalidFaultError(
                f"{self.label}: there is no connection {connection!r}; it has connections "
                f"0 to {len(self.connections) - 1}"
            )
        return connection

    @property
    def label(self) -> str:
        """How messages name this cassette: its path, or ``"cassette"``."""
        return str(self.path) if self.path is not None else "cassette"


def _as_path(path: str | PurePath | None) -> PurePath | None:
    if path is None or isinstance(path, PurePath):
        return path
    return PurePath(path)


def continue_after(kept: Sequence[Connection], recorded: Sequence[Connection]) -> list[Connection]:
    """``recorded`` with its start times moved after the end of ``kept`` (new_episodes).

    Starts order exchanges across connections, so connections appended to a
    cassette must begin after the ones it already had, not at 0 again.
    """
    if not kept:
        return list(recorded)
    end = max(c.start + max((e.time for e in c.events), default=0.0) for c in kept)
    return [replace(c, start=round(end + c.start, 6)) for c in recorded]
