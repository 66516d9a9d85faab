"""The public cassette: the model, its file, and the session serving it while in use."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

from ._core.cassette import CassetteModel
from ._core.connection import Connection
from ._core.errors import CassetteError
from ._core.limits import DEFAULT_MAX_CASSETTE_BYTES
from ._io.storage import read_cassette, write_cassette


class _LiveSession(Protocol):
    def address(self, target: str) -> tuple[str, int]: ...

    def play_counts(self) -> list[int]: ...


class Cassette(CassetteModel):
    """A recording of TCP connections, loaded from or saved to a msgpack file.

    Attributes:
        path: the file it was loaded from or will be saved to (None if neither).
        connections: the recorded connections, in the order they were opened.
        hosts: host names resolved during recording, each with its addresses,
            so that replay answers name lookups without a resolver.
    """

    def __init__(
        self,
        *,
        path: str | Path | None = None,
        connections: Iterable[Connection] = (),
        hosts: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        super().__init__(connections=connections, hosts=hosts)
        self.path: Path | None = Path(path) if path is not None else None
        self._play_counts: list[int] = [0] * len(self.connections)
        self._live: _LiveSession | None = None

    # -- reading and writing -------------------------------------------------

    def save(self, path: str | Path | None = None) -> Path:
        """Write the cassette atomically to ``path`` (default: where it came from).

        Returns:
            The path written.

        Raises:
            CassetteError: there is no path to save to, or the file cannot be written.
        """
        target = Path(path) if path is not None else self.path
        if target is None:
            raise CassetteError("this cassette has no path; pass one to save(path)")
        write_cassette(target, self.contents)
        if self.path is None:
            self.path = target
        return target

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
            raise CassetteError(f"{self.label}: address() works only inside the use_cassette block")
        return self._live.address(target)

    @property
    def play_counts(self) -> list[int]:
        """How many times replay served each connection, index by index.

        While the cassette is in use the counts are live; afterwards they are
        those of the last use.
        """
        if self._live is not None:
            live = self._live.play_counts()
            return live + [0] * (len(self.connections) - len(live))
        return list(self._play_counts)

    @play_counts.setter
    def play_counts(self, counts: list[int]) -> None:
        self._play_counts = list(counts)

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
    contents = read_cassette(p, max_bytes=max_bytes)
    return Cassette(path=p, connections=contents.connections, hosts=contents.hosts)
