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
    if not name or name.strip() != name:
        raise CassettePathError(
            f"{name!r} is not a cassette name; use a name like 'redis_roundtrip'"
        )
    if os.path.isabs(name) or Path(name).is_absolute():
        raise CassettePathError(
            f"cassette name {name!r} is an absolute path; names are relative to the cassette "
            f"directory {directory}. Pass cassette_dir= to use another directory."
        )
    relative = name if name.endswith(SUFFIX) else name + SUFFIX
    path = directory / relative
    root = directory.resolve()
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise CassettePathError(
            f"cassette name {name!r} leads to {resolved}, outside the cassette directory "
            f"{root}. Use a plain name, or pass cassette_dir= to use another directory."
        )
    return path


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
