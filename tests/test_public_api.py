"""The public names are exported on purpose (ruff's RUF022 keeps __all__ sorted)."""

from __future__ import annotations

import types
from importlib.resources import files

import pytest

import tcpcassette
import tcpcassette.faults
import tcpcassette.protocols


def public_names(module: types.ModuleType) -> set[str]:
    lazy = {name: getattr(module, name) for name in getattr(module, "_LAZY", {})}
    return {
        name
        for name, value in {**vars(module), **lazy}.items()
        if not name.startswith("_")
        and name != "annotations"
        and (
            not isinstance(value, types.ModuleType)
            or name in ("faults", "filters", "framing", "matchers", "protocols")
        )
    }


@pytest.mark.parametrize(
    "module",
    [
        tcpcassette,
        tcpcassette.faults,
        tcpcassette.filters,
        tcpcassette.framing,
        tcpcassette.matchers,
        tcpcassette.protocols,
    ],
)
def test_all_lists_exactly_the_public_names(module: types.ModuleType) -> None:
    assert len(set(module.__all__)) == len(module.__all__)
    assert set(module.__all__) - {"__version__"} == public_names(module)


def test_every_error_derives_from_cassette_error() -> None:
    errors = [getattr(tcpcassette, n) for n in tcpcassette.__all__ if n.endswith("Error")]
    assert len(errors) == 15
    assert all(issubclass(e, tcpcassette.CassetteError) for e in errors)


def test_py_typed_marker_ships() -> None:
    assert files("tcpcassette").joinpath("py.typed").is_file()
