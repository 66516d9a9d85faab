"""Reading and writing cassette files: bounded reads, atomic and durable writes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ._errors import CassetteFormatError, CassetteNotFoundError

#: Largest cassette file read by default, checked before reading it.
DEFAULT_MAX_CASSETTE_BYTES = 4 * 1024**3


def read_bytes(path: Path, *, max_bytes: int = DEFAULT_MAX_CASSETTE_BYTES) -> bytes:
    """Read a whole cassette file, refusing files over ``max_bytes``.

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
            return f.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise CassetteNotFoundError(f"{path}: no such cassette file") from exc
    except IsADirectoryError as exc:
        raise CassetteFormatError(f"{path}: is a directory, not a cassette file") from exc


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old file or the whole new one.

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
        with os.fdopen(fd, "wb") as f:
            f.write(data)
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
