"""Cassette files: bounded reads, atomic and durable writes, and the recording lock.

The persister of the cassette model (which never touches a file itself):
:func:`read_cassette` and :func:`write_cassette` turn files into
:class:`~tcpcassette._core.codec.CassetteContents` and back, and every
operating-system error is turned into a :class:`CassetteError` that names the
file here, where it enters.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import re
import stat
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

#: Flags that keep an open from blocking on a FIFO or following a planted symlink,
#: where the platform has them.
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)

#: Without fcntl, a temporary file of a save this old is taken as left by a killed save.
_STALE_TMP_AGE = 24 * 3600.0


class CassetteSaveError(CassetteError, OSError):
    """A cassette could not be saved.

    Attributes:
        path: the cassette file that was to be written (None only in a copy).
        kept: where the contents were written instead (a loadable cassette),
            or None when they could not be kept anywhere.
    """

    def __init__(self, message: str, *, path: Path | None = None, kept: Path | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.kept = kept

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def shown(path: Path | str, limit: int = 160) -> str:
    """``path`` for a message: a path of thousands of characters is cut in the middle."""
    text = str(path)
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half]}[...]{text[-half:]}"


def read_cassette(path: Path, *, max_bytes: int = DEFAULT_MAX_CASSETTE_BYTES) -> CassetteContents:
    """Read and validate the cassette file at ``path``.

    Raises:
        CassetteNotFoundError: there is no file at ``path``.
        CassetteFormatError: the file is not a valid cassette, or too large.
        CassetteError: the file cannot be read (permissions, I/O error).
    """

    def decode(f: BinaryIO, size: int) -> CassetteContents:
        with collection_paused():
            return decode_file(f, size, source=str(path))

    return read_with(path, decode, max_bytes=max_bytes)


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Python's cycle collector paused for the block, as it was before afterwards.

    Decoding makes an object per event, none of them in a cycle; left on, the
    collector walks the growing set again and again, which took about 40% of
    a load of 100,000 events.  The pause lasts one decode, bounded by the
    file's size, and the collector runs as usual once it is over.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def write_cassette(path: Path, contents: CassetteContents, *, keep: bool = True) -> None:
    """Write ``contents`` to ``path`` atomically.

    When that fails and ``keep`` is true, the contents are written to another
    file (beside ``path``, or in the temporary directory), so that a recording
    is never lost with the save; the error names that file.

    Raises:
        CassetteSaveError: the file cannot be written (permissions, a full disk).
    """
    try:
        write_atomically_with(path, lambda f: encode_to(contents, f.write))
    except (OSError, ValueError) as exc:
        cause = _cause(exc)
        kept = _keep_elsewhere(path, contents) if keep else None
        if kept is not None:
            what = (
                f" The contents are kept in {shown(kept)} (a cassette: tcpcassette show "
                f"reads it); once the cause is fixed, move it to {shown(path)}."
            )
        elif keep:
            what = " The contents could not be kept anywhere else either (the temporary "
            what += "directory is not writable or full too)."
        else:
            what = ""
        raise CassetteSaveError(
            f"{shown(path)}: could not save the cassette ({cause}). Check that the directory "
            f"exists, is writable and has room.{what}",
            path=path,
            kept=kept,
        ) from exc


def _cause(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        if exc.filename is not None:
            return f"{exc.strerror}: {shown(os.fsdecode(exc.filename))}"
        return exc.strerror
    return str(exc)


def _keep_elsewhere(path: Path, contents: CassetteContents) -> Path | None:
    """Write ``contents`` to a new file beside ``path``, or else in the temporary
    directory; the file's path, or None where neither could be written."""
    stem = path.name[: -len(".msgpack")] if path.name.endswith(".msgpack") else path.name
    prefix = f"{stem[:100]}.unsaved-"
    for directory in (path.parent, Path(tempfile.gettempdir())):
        try:
            fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".msgpack")
        except (OSError, ValueError):
            continue
        try:
            with os.fdopen(fd, "wb", buffering=1 << 20) as f:
                encode_to(contents, f.write)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(name)
            continue
        return Path(name)
    return None


def read_with(
    path: Path, parse: Callable[[BinaryIO, int], T], *, max_bytes: int = DEFAULT_MAX_CASSETTE_BYTES
) -> T:
    """Open a cassette file and hand it, with its size, to ``parse``.

    Anything but a regular file (a FIFO, a device, a socket, a directory) is
    refused before it is opened, and again on the open file, so that reading
    never blocks on a FIFO put in a cassette's place.

    Raises:
        CassetteNotFoundError: there is no file at ``path``.
        CassetteFormatError: the file is larger than ``max_bytes``, or not a regular file.
        CassetteError: the file cannot be read (permissions, a name too long, a NUL byte).
    """
    try:
        _refuse_irregular(path, os.stat(path))
        fd = os.open(path, os.O_RDONLY | _O_NONBLOCK | _O_CLOEXEC | _O_BINARY)
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(fd)
            _refuse_irregular(path, info)  # replaced between the check and the open
            if _O_NONBLOCK:
                os.set_blocking(fd, True)
            size = info.st_size
            if size > max_bytes:
                raise CassetteFormatError(
                    f"{shown(path)}: {size} bytes is over the limit of {max_bytes} bytes; pass "
                    "a larger max_bytes to load() if this cassette is trusted"
                )
            return parse(f, size)
    except FileNotFoundError as exc:
        raise CassetteNotFoundError(f"{shown(path)}: no such cassette file") from exc
    except IsADirectoryError as exc:
        raise CassetteFormatError(f"{shown(path)}: is a directory, not a cassette file") from exc
    except ValueError as exc:  # a NUL byte in the path; a CassetteFormatError goes on
        if isinstance(exc, CassetteError):
            raise
        raise CassetteError(
            f"{shown(path)!r}: not a usable file name ({exc}); remove the NUL byte from the "
            "cassette's name"
        ) from exc
    except OSError as exc:
        raise CassetteError(f"{shown(path)}: could not read the cassette ({_advice(exc)})") from exc


def _refuse_irregular(path: Path, info: os.stat_result) -> None:
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise CassetteFormatError(f"{shown(path)}: is a directory, not a cassette file")
    kind = (
        "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "not a regular file"
    )
    raise CassetteFormatError(
        f"{shown(path)}: is {kind}, not a cassette file; tcpcassette reads only regular "
        "files. Remove it, or give the path of the cassette file."
    )


def _advice(exc: OSError) -> str:
    """What went wrong with a cassette path, and what to do about it."""
    cause = exc.strerror or str(exc)
    if exc.errno == errno.ENAMETOOLONG:
        return f"{cause}; use a shorter cassette name or cassette_dir"
    if exc.errno == errno.ENOTDIR:
        return f"{cause}: a part of the path is a file, not a directory; choose another path"
    if exc.errno == errno.ELOOP:
        return f"{cause}: the path leads through a symlink loop; fix or remove the symlink"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{cause}; check its permissions and those of its directory"
    return f"{cause}; check the file and its permissions"


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old file or the whole new one.

    Raises:
        CassetteError: the file cannot be written.
    """
    try:
        write_atomically_with(path, lambda f: f.write(data))
    except (OSError, ValueError) as exc:
        raise CassetteError(
            f"{shown(path)}: could not write the file ({_cause(exc)}). Check that the directory "
            "exists, is writable and has room."
        ) from exc


def write_atomically_with(path: Path, produce: Callable[[BinaryIO], object]) -> None:
    """Replace ``path`` with what ``produce`` writes to the file it is given, atomically.

    The bytes go to a temporary file in the same directory, are flushed and
    fsynced, and the file is renamed over ``path``; the directory is fsynced
    too, so the rename survives a crash.  While it is written, the temporary
    file is locked; one that nobody holds is what a killed save left, and the
    next save of ``path`` removes it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _mode_for(path)
    _remove_stale_temporaries(path)
    fd, tmp_name = _locked_temporary(path)
    try:
        # mkstemp makes the file private (0600); cassettes are committed and
        # shared, so give it the old file's mode, or what the umask allows.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            produce(f)
            f.flush()
            os.fsync(f.fileno())
            # Renamed while still locked: a cleaner never sees it unlocked at its name.
            os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(path.parent)


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


#: What mkstemp puts between the prefix and the suffix.
_MKSTEMP_PART = re.compile(r"[a-z0-9_]{6,16}")


def _locked_temporary(path: Path) -> tuple[int, str]:
    """A new temporary file beside ``path``, locked, still at its name."""
    while True:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp")
        if fcntl is None:
            return fd, name
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # a cleaner took it for a stale one: it is being removed
            continue
        except OSError:
            return fd, name  # a file system without locks: written unlocked
        if _is_at(fd, Path(name)):
            return fd, name
        os.close(fd)  # removed by a cleaner before it was locked


def _remove_stale_temporaries(path: Path) -> None:
    """Remove what saves of ``path`` that were killed left: temporary files nobody holds."""
    prefix = _temporary_prefix(path)
    try:
        names = [
            n
            for n in os.listdir(path.parent)
            if n.startswith(prefix)
            and n.endswith(".tmp")
            and _MKSTEMP_PART.fullmatch(n[len(prefix) : -len(".tmp")])
        ]
    except OSError:
        return
    for name in names:
        candidate = path.parent / name
        try:
            fd = os.open(candidate, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC)
        except OSError:
            continue  # gone already, or a symlink: not ours to remove
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a save in progress holds it
            elif time.time() - os.fstat(fd).st_mtime < _STALE_TMP_AGE:
                continue
            if _is_at(fd, candidate):
                with contextlib.suppress(OSError):
                    os.unlink(candidate)
        finally:
            os.close(fd)


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
            # O_NOFOLLOW: a symlink planted at the lock's name must not make a
            # file wherever it points.
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC, 0o644)
        except OSError as exc:
            raise _lock_error(path, lock, exc) from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise CassetteError(
                    f"{shown(path)}: the recording lock {shown(lock)} is not a regular file; "
                    "remove it, then record again."
                )
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise CassetteInUseError(
                            f"{shown(path)}: another process has been recording this cassette "
                            f"for over {timeout:g} s (lock file {shown(lock)}). Give the tests "
                            "different cassette names, or raise lock_timeout."
                        ) from None
                    time.sleep(0.02)
                except OSError as exc:
                    raise CassetteError(
                        f"{shown(path)}: cannot lock the recording lock {shown(lock)} "
                        f"({_cause(exc)}); the file system may not support locks. Choose a "
                        "cassette_dir on a local file system, or replay with --record-mode=none."
                    ) from exc
            held = _is_at(fd, lock)
        except BaseException:
            os.close(fd)
            raise
        if held:
            return fd
        # The previous holder removed this file as it left; someone may have
        # made and locked a fresh one since: queue on that one.
        os.close(fd)


def _lock_error(path: Path, lock: Path, exc: OSError) -> CassetteError:
    if exc.errno == errno.ELOOP:
        return CassetteError(
            f"{shown(path)}: the recording lock {shown(lock)} is a symlink, which tcpcassette "
            "never follows; remove it, then record again."
        )
    directory = path.parent
    if exc.errno in (errno.EEXIST, errno.ENOTDIR) or (
        directory.exists() and not directory.is_dir()
    ):
        return CassetteError(
            f"{shown(path)}: cannot create the recording lock {shown(lock)} ({_cause(exc)}): a "
            "part of the cassette directory's path is a file, not a directory. Remove that "
            "file, or choose another cassette_dir."
        )
    return CassetteError(
        f"{shown(path)}: cannot create the recording lock {shown(lock)} ({_cause(exc)}); the "
        "cassette directory must be writable to record. Replay with --record-mode=none, or "
        "choose a writable cassette_dir."
    )


def _is_at(fd: int, lock: Path) -> bool:
    """Whether the open file ``fd`` is the file now at ``lock``."""
    opened = os.fstat(fd)
    try:
        there = os.stat(lock)
    except FileNotFoundError:
        return False
    return (opened.st_dev, opened.st_ino) == (there.st_dev, there.st_ino)
