"""Cassette files: bounded reads, atomic and durable writes, and the recording lock.

The persister of the cassette model (which never touches a file itself):
:func:`read_cassette` and :func:`write_cassette` turn files into
:class:`~tcpcassette._core.codec.CassetteContents` and back, and every
operating-system error is turned into a :class:`CassetteError` that names the
file here, where it enters.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

from .._core.codec import CassetteContents, decode_file, encode_to
from .._core.errors import (
    CassetteError,
    CassetteFormatError,
    CassetteInUseError,
    CassetteNotFoundError,
)
from .._core.limits import DEFAULT_MAX_CASSETTE_BYTES

T = TypeVar("T")

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: recordings are not serialized
    fcntl = None  # type: ignore[assignment]

#: Longest a recording waits for another process recording the same cassette.
DEFAULT_LOCK_TIMEOUT = 60.0


def read_cassette(path: Path, *, max_bytes: int = DEFAULT_MAX_CASSETTE_BYTES) -> CassetteContents:
    """Read and validate the cassette file at ``path``.

    Raises:
        CassetteNotFoundError: there is no file at ``path``.
        CassetteFormatError: the file is not a valid cassette, or too large.
        CassetteError: the file cannot be read (permissions, I/O error).
    """
    return read_with(
        path, lambda f, size: decode_file(f, size, source=str(path)), max_bytes=max_bytes
    )


def write_cassette(path: Path, contents: CassetteContents) -> None:
    """Write ``contents`` to ``path`` atomically.

    Raises:
        CassetteError: the file cannot be written (permissions, a full disk).
    """
    try:
        write_atomically_with(path, lambda f: encode_to(contents, f.write))
    except OSError as exc:
        raise CassetteError(
            f"{path}: could not save the cassette ({exc.strerror or exc}). Check that the "
            "directory exists, is writable and has room."
        ) from exc


def read_with(
    path: Path, parse: Callable[[BinaryIO, int], T], *, max_bytes: int = DEFAULT_MAX_CASSETTE_BYTES
) -> T:
    """Open a cassette file and hand it, with its size, to ``parse``.

    Raises:
        CassetteNotFoundError: there is no file at ``path``.
        CassetteFormatError: the file is larger than ``max_bytes``, or not a regular file.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_bytes:
                raise CassetteFormatError(
                    f"{path}: {size} bytes is over the limit of {max_bytes} bytes; pass a "
                    "larger max_bytes to load() if this cassette is trusted"
                )
            return parse(f, size)
    except FileNotFoundError as exc:
        raise CassetteNotFoundError(f"{path}: no such cassette file") from exc
    except IsADirectoryError as exc:
        raise CassetteFormatError(f"{path}: is a directory, not a cassette file") from exc
    except OSError as exc:
        raise CassetteError(
            f"{path}: could not read the cassette ({exc.strerror or exc}); check its permissions"
        ) from exc


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old file or the whole new one."""
    write_atomically_with(path, lambda f: f.write(data))


def write_atomically_with(path: Path, produce: Callable[[BinaryIO], object]) -> None:
    """Replace ``path`` with what ``produce`` writes to the file it is given, atomically.

    The bytes go to a temporary file in the same directory, are flushed and
    fsynced, and the file is renamed over ``path``; the directory is fsynced
    too, so the rename survives a crash.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _mode_for(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); cassettes are committed and
        # shared, so give it the old file's mode, or what the umask allows.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            produce(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(path.parent)


def _mode_for(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)  # the only portable way to read the umask is to set it
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_directory(directory: Path) -> None:
    # Not every platform lets a directory be opened for fsync; there the
    # rename is as durable as the platform makes it.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def lock_path(path: Path) -> Path:
    """The lock file beside a cassette while it is being recorded: ``.<name>.lock``."""
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def recording_lock(path: Path, *, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive lock on ``path``'s lock file while recording into it.

    Two processes (pytest-xdist workers) recording into one cassette take
    turns: the second waits, then loads what the first saved.  The lock file
    exists only while someone records: its holder removes it before letting
    go, whether the cassette was saved or not.

    Raises:
        CassetteInUseError: the lock was not free within ``timeout`` seconds.
    """
    if fcntl is None:
        yield
        return
    lock = lock_path(path)
    fd = _take_lock(path, lock, time.monotonic() + timeout, timeout)
    try:
        yield
    finally:
        # Removed while still held, so that whoever waits on this file finds
        # it gone once the lock is theirs, and takes a fresh one (see _take_lock).
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)  # closing releases the lock


def _take_lock(path: Path, lock: Path, deadline: float, timeout: float) -> int:
    """A descriptor of ``lock``, locked, that is still the file at that path."""
    assert fcntl is not None
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CassetteError(
                f"{path}: cannot create the recording lock {lock} ({exc.strerror or exc}); the "
                "cassette directory must be writable to record. Replay with --record-mode=none, "
                "or choose a writable cassette_dir."
            ) from exc
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise CassetteInUseError(
                            f"{path}: another process has been recording this cassette for over "
                            f"{timeout:g} s (lock file {lock}). Give the tests different "
                            "cassette names, or raise lock_timeout."
                        ) from None
                    time.sleep(0.02)
            held = _is_at(fd, lock)
        except BaseException:
            os.close(fd)
            raise
        if held:
            return fd
        # The previous holder removed this file as it left; someone may have
        # made and locked a fresh one since: queue on that one.
        os.close(fd)


def _is_at(fd: int, lock: Path) -> bool:
    """Whether the open file ``fd`` is the file now at ``lock``."""
    opened = os.fstat(fd)
    try:
        there = os.stat(lock)
    except FileNotFoundError:
        return False
    return (opened.st_dev, opened.st_ino) == (there.st_dev, there.st_ino)
