"""The layers of the package, kept by walking its imports.

``tcpcassette._core`` is pure: no sockets, threads, clocks, files or
environment, and nothing from the layers above it.  ``tcpcassette._io``
carries out the core's decisions and never imports a front door.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tcpcassette"

#: What the pure core may never import: the world, and the clocks.
WORLD = frozenset(
    {
        "asyncio",
        "concurrent",
        "datetime",
        "fcntl",
        "os",
        "select",
        "selectors",
        "shutil",
        "signal",
        "socket",
        "ssl",
        "subprocess",
        "tempfile",
        "threading",
        "time",
    }
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, here: str | None = None) -> set[str]:
    """Every module ``path`` imports, absolute, anywhere in the file (lazy imports too)."""
    tree = ast.parse(path.read_text(), str(path))
    here = here or module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base)
                module = f"{prefix}.{node.module}" if node.module else prefix
            else:
                module = node.module or ""
            found.add(module)
            # "from . import x" imports the submodule x.
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def modules_under(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def test_the_layers_are_visible_as_folders() -> None:
    assert (PACKAGE / "_core" / "__init__.py").is_file()
    assert (PACKAGE / "_io" / "__init__.py").is_file()
    flat = {p.stem for p in PACKAGE.glob("_*.py")} - {"__init__", "__main__"}
    # What stays at the top are the front doors and where settings come from.
    assert flat == {
        "_cassette",
        "_cli",
        "_demo",
        "_failure_report",
        "_freshness",
        "_git",
        "_paths",
        "_settings",
        "_standalone",
        "_sweep",
        "_use_cassette",
        "_verify",
        "_version",
    }


@pytest.mark.parametrize("path", modules_under("_core"), ids=lambda p: p.stem)
def test_core_touches_nothing_of_the_world(path: Path) -> None:
    imported = imports_of(path)
    world = {m for m in imported if m.split(".")[0] in WORLD}
    assert not world, f"{module_name(path)} imports {sorted(world)}"
    ours = {m for m in imported if m.split(".")[0] == "tcpcassette"}
    outside = {m for m in ours if not m.startswith("tcpcassette._core")}
    assert not outside, f"{module_name(path)} imports {sorted(outside)} from above the core"


@pytest.mark.parametrize("path", modules_under("_io"), ids=lambda p: p.stem)
def test_io_never_imports_a_front_door(path: Path) -> None:
    ours = {m for m in imports_of(path) if m.split(".")[0] == "tcpcassette"}
    above = {m for m in ours if not m.startswith(("tcpcassette._core", "tcpcassette._io"))} - {
        "tcpcassette"
    }
    assert not above, f"{module_name(path)} imports {sorted(above)}"


def test_the_rule_checker_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import socket\n    from .._io import loop\n")
    found = imports_of(sample, "tcpcassette._core.sample")
    assert {"socket", "tcpcassette._io", "tcpcassette._io.loop"} <= found


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(out.split())


@pytest.mark.parametrize(
    "statement",
    [
        "import tcpcassette.faults",
        "import tcpcassette.framing, tcpcassette.matchers, tcpcassette.filters",
        "from tcpcassette import ReplayError, ClientData, FORMAT_VERSION",
    ],
)
def test_public_model_modules_load_no_io(statement: str) -> None:
    loaded = loaded_after(statement)
    io = sorted(m for m in loaded if m.startswith("tcpcassette._io") or m == "asyncio")
    assert not io, f"{statement!r} loaded {io}"


def test_the_plugin_loads_no_io_at_pytest_start() -> None:
    loaded = loaded_after("import tcpcassette.plugin")
    io = sorted(m for m in loaded if m.startswith("tcpcassette._io") or m == "asyncio")
    assert not io, f"the plugin loaded {io} before any test used a cassette"


def test_use_cassette_still_loads_on_first_use() -> None:
    loaded = loaded_after("from tcpcassette import use_cassette")
    assert "tcpcassette._io.session" in loaded


#: What a pytest run that uses no cassette never loads: the plugin costs every run of
#: every project where tcpcassette is installed only the modules of its options.
LOADED_ON_USE = (
    "msgpack",
    "tcpcassette._io",
    "tcpcassette._core.codec",
    "tcpcassette._core.diff",
    "tcpcassette._core.protocols",
    "tcpcassette._core.sweep",
    "tcpcassette._core.view",
    "tcpcassette._use_cassette",
)


def test_a_pytest_run_without_cassettes_loads_only_the_plugins_options(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        import sys

        def pytest_unconfigure(config):
            loaded = sorted(m for m in sys.modules if m.startswith(("tcpcassette", "msgpack")))
            print("LOADED", " ".join(loaded))
        """
    )
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    line = next(x for x in result.outlines if x.startswith("LOADED "))
    loaded = line.split()[1:]
    assert "tcpcassette.plugin" in loaded  # the plugin did load
    heavy = [m for m in loaded if m.startswith(LOADED_ON_USE)]
    assert not heavy, f"a run using no cassette loaded {heavy}"
