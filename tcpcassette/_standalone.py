"""A recording proxy and a replay server that run on their own, for any client.

``tcpcassette record`` and ``tcpcassette replay`` are thin shells over these:
a client in any language is pointed at the listening address, and the
cassette is the same as one recorded through ``use_cassette``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._cassette import Cassette, load
from ._core.cassette import continue_after
from ._core.errors import CassetteError
from ._core.options import Limits, ReplayOptions
from ._core.targets import format_target, parse_target
from ._io.session import Session, new_session

#: How often the status callback is called while serving, in seconds.
STATUS_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class Status:
    """Live figures while serving."""

    connections: int
    client_bytes: int
    server_bytes: int
    errors: int


def _session(
    cassette: Cassette,
    *,
    replay: bool,
    record: bool,
    target: str,
    options: ReplayOptions | None = None,
    upstream_ca: str | os.PathLike[str] | None = None,
) -> Session:
    return new_session(
        cassette,
        mode="all" if record else "none",
        replay=replay,
        record=record,
        options=options or ReplayOptions(),
        limits=Limits(),
        targets=[target],
        upstream_ca=upstream_ca,
    )


def write_ca_file(path: str | os.PathLike[str]) -> Path:
    """Write the test CA's certificate (never its key) to ``path``, for TLS clients
    that read trust from a file of their own choosing; returns the path.

    Raises:
        CassetteError: the tls extra is missing, or the file cannot be written.
    """
    from ._io.tls import authority

    target = Path(path)
    try:
        target.write_bytes(authority().ca_pem)
    except OSError as exc:
        raise CassetteError(
            f"cannot write the test CA to {target} ({exc.strerror or exc}); choose another "
            "path with --ca-file"
        ) from None
    return target


def _normalise(target: str) -> str:
    host, port = parse_target(target)
    if port is None:
        raise CassetteError(f"{target!r}: give the target as host:port")
    return format_target(host, port)


def _open(session: Session, target: str, listen: tuple[str, int]) -> tuple[str, int]:
    """Listen for ``target`` on ``listen``, then start the session's other listeners.

    The asked-for address is taken first: opening the session listens on an
    ephemeral loopback port for every recorded target, and a target already
    served cannot move to another address.
    """
    try:
        address = session.address(target, listen=listen)
    except OSError as exc:
        session.close()
        raise CassetteError(
            f"cannot listen on {format_target(*listen)} ({exc.strerror or exc}); "
            "choose another address with --listen, or port 0 for a free one"
        ) from None
    session.open()
    return address


def _serve(
    session: Session,
    address: tuple[str, int],
    *,
    stop: threading.Event,
    on_ready: Callable[[str, int], None],
    on_status: Callable[[Status], None],
    until: Callable[[], bool],
) -> None:
    on_ready(*address)
    while not stop.wait(STATUS_INTERVAL) and not until():
        connections, sent, received = session.stats()
        on_status(Status(connections, sent, received, session.error_count))


@dataclass(frozen=True, slots=True)
class Recorded:
    """What ``record`` did to its cassette."""

    cassette: Cassette
    #: Connections this run recorded.
    new: int
    #: False when nothing was recorded and a cassette that was there was left as it was.
    written: bool

    @property
    def summary(self) -> str:
        """One line saying what was written."""
        path, total = self.cassette.path, len(self.cassette.connections)
        if not self.written:
            return f"nothing recorded: {path} left as it was, {total} connection(s)"
        kept = total - self.new
        return f"saved {path}: {total} connection(s)" + (
            f", {self.new} of them new" if kept else ""
        )


def record(
    path: str | Path,
    target: str,
    *,
    listen: tuple[str, int] = ("127.0.0.1", 0),
    append: bool = False,
    force: bool = False,
    stop: threading.Event,
    on_ready: Callable[[str, int], None] = lambda host, port: None,
    on_status: Callable[[Status], None] = lambda status: None,
    upstream_ca: str | os.PathLike[str] | None = None,
) -> Recorded:
    """Proxy ``listen`` to ``target``, recording every connection, until ``stop`` is set.

    A cassette that exists already is never lost by accident: ``append``
    keeps its connections and adds the new ones, ``force`` replaces it, and
    without either the recording does not start.  A run that recorded
    nothing leaves an existing cassette as it was.

    Returns:
        The saved cassette, how many connections are new, and whether it was written.

    Raises:
        CassetteError: the cassette exists and neither ``append`` nor ``force``
            was given, or ``listen`` cannot be listened on.
    """
    target = _normalise(target)
    existing = Path(path).exists()
    if existing and not (append or force):
        raise CassetteError(
            f"{path} exists already; recording would replace it. Pass --append to add "
            "to its connections, or --force to replace it"
        )
    base = load(path) if append and existing else Cassette(path=path)
    session = _session(base, replay=False, record=True, target=target, upstream_ca=upstream_ca)
    address = _open(session, target, listen)
    try:
        _serve(
            session,
            address,
            stop=stop,
            on_ready=on_ready,
            on_status=on_status,
            until=lambda: False,
        )
    finally:
        result = session.close()
        saved = Cassette(
            path=path,
            connections=[*base.connections, *continue_after(base.connections, result.recorded)],
            hosts={**base.hosts, **result.hosts},
        )
        written = bool(result.recorded) or not existing
        if written:
            saved.save()
    if not written:
        saved = load(path) if not append else base
    return Recorded(saved, len(result.recorded), written)


def replay(
    path: str | Path,
    *,
    target: str | None = None,
    listen: tuple[str, int] = ("127.0.0.1", 0),
    stop: threading.Event,
    exit_when_played: bool = False,
    on_ready: Callable[[str, int], None] = lambda host, port: None,
    on_status: Callable[[Status], None] = lambda status: None,
    on_error: Callable[[CassetteError], None] = lambda error: None,
    noise: str = "auto",
) -> list[CassetteError]:
    """Serve the cassette's connections to ``target`` on ``listen`` until ``stop`` is set.

    Args:
        target: which recorded target to serve; may be left out when the
            cassette has connections to one target only.
        exit_when_played: also stop once every recorded connection was played.
        noise: which differences between runs replay tolerates (as ``use_cassette``'s).

    Returns:
        Every replay error found (each was also passed to ``on_error`` as it happened).
    """
    cassette = load(path)
    targets = sorted({c.target for c in cassette.connections})
    if target is None:
        if len(targets) != 1:
            raise CassetteError(
                f"{path}: the cassette has connections to {len(targets)} targets "
                f"({', '.join(targets) or 'none'}); choose one with --target"
            )
        target = targets[0]
    target = target if target in targets else _normalise(target)  # a name is kept as it is
    if target not in targets:
        raise CassetteError(f"{path}: no connection to {target}; it has {', '.join(targets)}")
    options = ReplayOptions.build(noise=noise)
    session = _session(cassette, replay=True, record=False, target=target, options=options)
    session.on_error = on_error
    address = _open(session, target, listen)
    mine = [i for i, c in enumerate(cassette.connections) if c.target == target]

    def all_played() -> bool:
        counts = session.play_counts()
        return all(counts[i] for i in mine) and not session.busy

    try:
        _serve(
            session,
            address,
            stop=stop,
            on_ready=on_ready,
            on_status=on_status,
            until=lambda: exit_when_played and all_played(),
        )
    finally:
        result = session.close()
    return result.errors
