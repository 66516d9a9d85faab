"""Turning cassette names into file paths that stay inside the cassette directory."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._core.errors import CassettePathError
from ._settings import current as current_settings

SUFFIX = ".msgpack"


def cassette_path(name: str, directory: Path) -> Path:
    """``<directory>/<name>.msgpack``, refusing names that would leave ``directory``.

    Raises:
        CassettePathError: ``name`` is empty, absolute, climbs out with
            ``..``, or leads through a symlink to outside the directory.
    """
    if not isinstance(name, str) or not name or name.strip() != name:
        raise CassettePathError(
            f"{name!r:.80} is not a cassette name; use a name like 'redis_roundtrip'"
        )
    if "\0" in name:
        raise CassettePathError(
            f"cassette name {name!r:.80} holds a NUL byte, which no file name can; remove it "
            "(use a name like 'redis_roundtrip')"
        )
    _check_length(name)
    _check_directory(directory)
    if os.path.isabs(name) or Path(name).is_absolute():
        raise CassettePathError(
            f"cassette name {name!r:.80} is an absolute path; names are relative to the cassette "
            f"directory {directory}. Pass cassette_dir= to use another directory."
        )
    relative = name if name.endswith(SUFFIX) else name + SUFFIX
    path = directory / relative
    root = directory.resolve()
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise CassettePathError(
            f"cassette name {name!r:.80} leads to {resolved}, outside the cassette directory "
            f"{root}. Use a plain name, or pass cassette_dir= to use another directory."
        )
    return path


#: The longest file name most file systems take, in bytes.
NAME_MAX = 255
#: The longest path the file system calls take, in bytes (Linux's PATH_MAX).
PATH_MAX = 4096
#: What the temporary file of a save adds to a cassette's file name:
#: ``.<name>.msgpack.<random>.tmp``.
_TEMPORARY_EXTRA = len(".") + len(".xxxxxxxx.tmp")


def _encoded_length(text: str, what: str) -> int:
    try:
        return len(os.fsencode(text))
    except UnicodeEncodeError as exc:
        raise CassettePathError(
            f"{what} {text!r:.80} cannot be a file name here ({exc.reason}); use a name like "
            "'redis_roundtrip'"
        ) from exc


def _check_length(name: str) -> None:
    """Refuse a name whose file, lock or temporary file the file system would refuse."""
    relative = name if name.endswith(SUFFIX) else name + SUFFIX
    parts = relative.replace("\\", "/").split("/")
    for i, part in enumerate(parts):
        room = NAME_MAX - (_TEMPORARY_EXTRA if i == len(parts) - 1 else 0)
        size = _encoded_length(part, "cassette name")
        if size > room:
            raise CassettePathError(
                f"cassette name {name!r:.80} (... {len(name)} characters) is too long: "
                f"{part[:40]!r}... is {size} bytes as a file name, and file systems take "
                f"{room} at most here. Use a shorter name."
            )


def _check_directory(directory: Path) -> None:
    """Refuse a cassette directory that is, or lies under, something other than a directory."""
    if _encoded_length(str(directory), "cassette_dir") + NAME_MAX > PATH_MAX:
        raise CassettePathError(
            f"cassette_dir {str(directory)[:80]!r}... is too long a path for cassette files in "
            "it; choose a shorter cassette_dir."
        )
    for place in (directory, *directory.parents):
        try:
            if os.path.lexists(place):
                if not place.is_dir():
                    raise CassettePathError(
                        f"cassette_dir {directory} cannot be a directory: {place} is a file "
                        "(or not a directory). Remove or rename that file, or pass another "
                        "cassette_dir (or set tcpcassette_dir in the ini file)."
                    )
                return
        except OSError:
            return  # not ours to judge: the file operations report it with the path


_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-\[\]]+")


def _safe(part: str) -> str:
    return _UNSAFE.sub("_", part).strip("._") or "_"


def node_name(nodeid: str) -> str:
    """The default cassette name of a pytest test: its file's path, then its name.

    ``tests/a/test_api.py::TestUser::test_get[x-1]`` is
    ``tests/a/test_api/TestUser.test_get[x-1]``: the cassettes of a suite
    mirror its files, so two modules of the same name never share one.
    """
    path, _, rest = nodeid.partition("::")
    stem = path[: -len(".py")] if path.endswith(".py") else path
    parts = [p for p in stem.replace("\\", "/").split("/") if p and p != "."]
    folders = ["__" if p == ".." else _safe(p) for p in parts]  # never above the directory
    test = ".".join(_safe(p) for p in rest.split("::") if p) or "test"
    return "/".join([*folders, test])


def default_names(func: Callable[..., Any]) -> tuple[str, str]:
    """The default cassette name for a decorated test, and the name earlier
    releases gave it (``<module>/<test>``), still read where it exists."""
    module = getattr(func, "__module__", "") or "tests"
    stem = module.rsplit(".", 1)[-1]
    # A test defined inside a function keeps only its own (and its class's) name.
    test_name: str = func.__qualname__.rsplit("<locals>.", 1)[-1]
    # The running test's node id carries its file and parametrised id: "t.py::test_x[a-1]".
    settings = current_settings()
    running = settings.current_test if settings is not None else None
    node = running.split("::")[-1] if running else ""
    legacy_test = test_name
    if running and node.split("[", 1)[0] == func.__name__:
        legacy_test = test_name.rsplit(func.__name__, 1)[0] + node
        name = node_name(running)
    else:
        name = "/".join([*(_safe(p) for p in module.split(".")), _safe(test_name)])
    return name, f"{_safe(stem)}/{_safe(legacy_test)}"


def default_name(func: Callable[..., Any]) -> str:
    """The default cassette name for a decorated test (see :func:`default_names`)."""
    return default_names(func)[0]
