"""The public cassette: the model, its file, and the session serving it while in use."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ._core.cassette import CassetteModel
from ._core.connection import Connection
from ._core.errors import CassetteError
from ._core.limits import DEFAULT_MAX_CASSETTE_BYTES
from ._io.storage import read_cassette, write_cassette

if TYPE_CHECKING:
    from ._core.sweep import SweepFault


class _LiveSession(Protocol):
    @property
    def recording(self) -> bool: ...

    def address(self, target: str) -> tuple[str, int]: ...

    def play_counts(self) -> list[int]: ...

    def live(self) -> contextlib.AbstractContextManager[None]: ...


class Cassette(CassetteModel):
    """A recording of TCP connections, loaded from or saved to a msgpack file.

    Attributes:
        path: the file it was loaded from or will be saved to (None if neither).
        connections: the recorded connections, in the order they were opened.
        hosts: host names resolved during recording, each with its addresses,
            so that replay answers name lookups without a resolver.
        recorded_at: when it was recorded, in seconds since the Unix epoch
            (``time.time()``); None for a cassette saved before the format
            kept it (then ``max_age`` goes by the file's modification time).
        sweep_fault: in a test the fault sweep runs under a fault, which fault
            and where (a :class:`tcpcassette.faults.SweepFault`); None otherwise.
    """

    def __init__(
        self,
        *,
        path: str | Path | None = None,
        connections: Iterable[Connection] = (),
        hosts: Mapping[str, Iterable[str]] | None = None,
        recorded_at: float | None = None,
    ) -> None:
        super().__init__(connections=connections, hosts=hosts, recorded_at=recorded_at)
        self.path: Path | None = Path(path) if path is not None else None
        self._play_counts: list[int] = [0] * len(self.connections)
        self._live: _LiveSession | None = None
        self.sweep_fault: SweepFault | None = None

    # -- reading and writing -------------------------------------------------

    def save(self, path: str | Path | None = None) -> Path:
        """Write the cassette atomically to ``path`` (default: where it came from).

        Returns:
            The path written.

        Raises:
            CassetteError: there is no path to save to, or the file cannot be
                written; then the contents are kept in another file (beside
                the target, or in the temporary directory), which the
                message names.
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
        intercepted ones.  ``target`` is ``"host:port"`` or a target name
        given in ``use_cassette(targets={"name": "host:port"})`` (or recorded
        in the cassette).  Only valid inside ``use_cassette``.

        Raises:
            CassetteError: the cassette is not in use, or ``target`` cannot be served.
        """
        if self._live is None:
            raise CassetteError(f"{self.label}: address() works only inside the use_cassette block")
        return self._live.address(target)

    @property
    def ca_file(self) -> Path:
        """The PEM file of the test CA that signs the certificates replay and
        recording answer TLS clients with (never its key).

        Python clients inside ``use_cassette`` trust it already.  Give it to
        clients tcpcassette cannot set up: libpq's ``sslrootcert=``,
        ``SSL_CERT_FILE`` or ``REQUESTS_CA_BUNDLE`` for a subprocess, grpc's
        ``root_certificates``.  The CA is made anew in each process (its key
        never leaves memory) and the file is removed when the process ends.

        Raises:
            CassetteError: the ``tls`` extra is not installed.
        """
        from ._io.tls import authority

        return authority().ca_file

    @property
    def recording(self) -> bool:
        """True while the cassette records from real servers, False while it only replays.

        Recording: record mode ``all`` or ``new_episodes``, ``once`` with no
        cassette file yet, and ``--tcpcassette-learn``.  Outside the
        ``use_cassette`` block it is False.  Start the real server a test
        needs only when this is True: replay never reaches it.
        """
        return self._live is not None and self._live.recording

    @contextlib.contextmanager
    def live(self) -> Iterator[None]:
        """Connects made by the calling thread in here go straight to the network.

        They are neither recorded nor replayed, and their name lookups are
        not kept: for a fixture probing whether the server it started is
        ready.  Only the calling thread is affected, so the threads of the
        code under test stay intercepted.  While the cassette only replays,
        a connect in here raises :class:`CassetteError` at once (replay never
        reaches the network); guard the probe with :attr:`recording`.

        Raises:
            CassetteError: the cassette is not in use (on entering), or a
                connect in the block while the cassette only replays.
        """
        if self._live is None:
            raise CassetteError(f"{self.label}: live() works only inside the use_cassette block")
        with self._live.live():
            yield

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
    return Cassette(
        path=p,
        connections=contents.connections,
        hosts=contents.hosts,
        recorded_at=contents.recorded_at,
    )
