"""The cassette: recorded connections plus the host names they were reached by."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from ._codec import CassetteContents, decode_file, encode_to
from ._connection import Connection
from ._errors import CassetteError, InvalidFaultError
from ._faults import Fault
from ._framing import FramingSpec, resolve_framing
from ._messages import event_position
from ._storage import DEFAULT_MAX_CASSETTE_BYTES, read_with, write_atomically_with


class _LiveSession(Protocol):
    def address(self, target: str) -> tuple[str, int]: ...


class Cassette:
    """A recording of TCP connections, loaded from or saved to a msgpack file.

    Attributes:
        path: the file it was loaded from or will be saved to (None if neither).
        connections: the recorded connections, in the order they were opened.
        hosts: host names resolved during recording, each with its addresses,
            so that replay answers name lookups without a resolver.
        play_counts: how many times replay served each connection, index by
            index (filled in by ``use_cassette``).
    """

    def __init__(
        self,
        *,
        path: str | Path | None = None,
        connections: Iterable[Connection] = (),
        hosts: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.path: Path | None = Path(path) if path is not None else None
        self.connections: list[Connection] = list(connections)
        self.hosts: dict[str, tuple[str, ...]] = {
            name: tuple(addrs) for name, addrs in (hosts or {}).items()
        }
        self.play_counts: list[int] = [0] * len(self.connections)
        self._live: _LiveSession | None = None

    def __repr__(self) -> str:
        return f"<Cassette {str(self.path)!r} with {len(self.connections)} connections>"

    # -- reading and writing -------------------------------------------------

    def save(self, path: str | Path | None = None) -> Path:
        """Write the cassette atomically to ``path`` (default: where it came from).

        Returns:
            The path written.

        Raises:
            CassetteError: there is no path to save to.
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise CassetteError("this cassette has no path; pass one to save(path)")
        contents = CassetteContents(connections=tuple(self.connections), hosts=self.hosts)
        write_atomically_with(target, lambda f: encode_to(contents, f.write))
        if self.path is None:
            self.path = target
        return target

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
            raise InvalidFaultError(f"{self._name()}, connection {connection}: {exc}") from exc

    def remove(self, *, connection: int, event: int) -> None:
        """Remove event number ``event`` (from 1) of connection number ``connection``."""
        index = self._check_connection(connection)
        try:
            self.connections[index] = self.connections[index].without_event(event)
        except InvalidFaultError as exc:
            raise InvalidFaultError(f"{self._name()}, connection {connection}: {exc}") from exc

    def _check_connection(self, connection: int) -> int:
        if not isinstance(connection, int) or not 0 <= connection < len(self.connections):
            raise InvalidFaultError(
                f"{self._name()}: there is no connection {connection!r}; it has connections "
                f"0 to {len(self.connections) - 1}"
            )
        return connection

    def _name(self) -> str:
        return str(self.path) if self.path is not None else "cassette"

    # -- while in use -------------------------------------------------------

    def address(self, target: str) -> tuple[str, int]:
        """Where on loopback the proxy or replay server for ``target`` listens.

        For clients Python cannot redirect (a C library, a subprocess): point
        them here, and their connections are recorded and replayed like
        intercepted ones.  Only valid inside ``use_cassette``.

        Raises:
            CassetteError: the cassette is not in use, or ``target`` cannot be served.
        """
        if self._live is None:
            raise CassetteError(
                f"{self._name()}: address() works only inside the use_cassette block"
            )
        return self._live.address(target)

    @property
    def play_count(self) -> int:
        """How many connections replay served, over all recorded connections."""
        return sum(self.play_counts)

    @property
    def all_played(self) -> bool:
        """True when replay served every recorded connection at least once."""
        return all(count > 0 for count in self.play_counts)


def load(path: str | Path, *, max_bytes: int = DEFAULT_MAX_CASSETTE_BYTES) -> Cassette:
    """Read a cassette file.

    Args:
        path: the ``.msgpack`` file.
        max_bytes: refuse files larger than this, before reading them.

    Returns:
        The cassette, with its connections in recorded order.

    Raises:
        CassetteNotFoundError: there is no such file.
        CassetteFormatError: the file is corrupt, truncated, too large or of
            an unknown version.
    """
    p = Path(path)
    contents = read_with(
        p, lambda f, size: decode_file(f, size, source=str(p)), max_bytes=max_bytes
    )
    return Cassette(path=p, connections=contents.connections, hosts=contents.hosts)
