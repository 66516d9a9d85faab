"""``--tcpcassette-orphans``: the cassette files no collected test used.

The plugin registers one :class:`Orphans` per pytest process when the option
is given.  Every process notes what it collected (and what it deselected or
failed to collect); under pytest-xdist the workers hand that, and the
directories their cassettes live in, to the controller through
``workeroutput``, as they hand over the cassettes each test used (see
:mod:`tcpcassette.plugin`).  The controller, or the only process, then lists
the ``.msgpack`` files under those directories that no test used.

The list means something only when the whole suite ran: with tests
deselected (``-k``, ``-m``, ``--deselect``), paths given on the command line,
collection errors, or tests that did not run (``-x``, an interrupted run),
it is not made, and the summary says why.  A test marked
``@pytest.mark.tcpcassette`` counts its cassette as used even when it is
skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ._settings import PytestSettings

_WORKER_KEY = "tcpcassette_orphans"
#: The key plugin.py hands each worker's cassette uses over in.
_WORKER_USED = "tcpcassette_used"
LIST, FAIL = "list", "fail"


def add_options(group: Any) -> None:
    group.addoption(
        "--tcpcassette-orphans",
        action="store",
        nargs="?",
        const=LIST,
        default=None,
        choices=[LIST, FAIL],
        help="list, after the run, the cassette files under the cassette directories that "
        "no collected test used; =fail also fails the run when there are any. Only when "
        "the whole suite ran (no -k, -m, --deselect or test paths)",
    )


class Orphans:
    def __init__(self, config: pytest.Config, settings: PytestSettings, mode: str) -> None:
        self.config = config
        self.settings = settings
        self.fail = mode == FAIL
        self.worker = hasattr(config, "workerinput")
        self.collected: set[str] = set()
        self.deselected = 0
        self.uncollectable = 0
        self.ran: set[str] = set()
        #: Cassettes marked tests name, used or not (a skipped test's is not orphaned).
        self.declared: set[Path] = set()
        self.directories: set[Path] = set()
        self.used: set[Path] = set()
        self.found: list[Path] | None = None
        self.skipped_because: list[str] = []

    # -- in every process that collects ------------------------------------------

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected += len(items)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.uncollectable += 1

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from . import _sweep
        from ._paths import cassette_path, node_name
        from ._settings import resolve_cassette_dir

        self.directories.add(resolve_cassette_dir(None))
        for item in session.items:
            self.collected.add(item.nodeid)
            self._declare_decorated(item)
            if item.get_closest_marker("tcpcassette") is None:
                continue
            try:
                name, options = _sweep.marker_options(item)
                directory = resolve_cassette_dir(options.get("cassette_dir"))
                self.declared.add(cassette_path(name or node_name(item.nodeid), directory))
            except Exception:  # the test itself reports a bad marker
                continue

    def _declare_decorated(self, item: pytest.Item) -> None:
        """The cassettes of ``@use_cassette`` on the test's function, named as they
        will be when it runs (a skipped test's are declared all the same)."""
        from ._paths import cassette_path, node_name
        from ._settings import resolve_cassette_dir
        from ._use_cassette import DECLARED

        for options in getattr(getattr(item, "obj", None), DECLARED, ()):
            try:
                directory = resolve_cassette_dir(options.cassette_dir)
                name = options.name if options.name is not None else node_name(item.nodeid)
                self.declared.add(cassette_path(name, directory))
            except Exception:  # the test itself reports a bad name or directory
                continue

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "setup":
            self.ran.add(report.nodeid)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        output = getattr(node, "workeroutput", {})
        found = output.get(_WORKER_KEY)
        if found:
            # Every worker collects the whole run; the union is the run's.
            self.collected.update(found["collected"])
            self.deselected = max(self.deselected, int(found["deselected"]))
            self.uncollectable = max(self.uncollectable, int(found["uncollectable"]))
            self.declared.update(Path(p) for p in found["declared"])
            self.directories.update(Path(p) for p in found["directories"])
        for paths in output.get(_WORKER_USED, {}).values():
            self.used.update(Path(p) for p in paths)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput: dict[str, Any] | None = getattr(self.config, "workeroutput", None)
        self.directories.update(self.settings.directories)
        if workeroutput is not None:
            workeroutput[_WORKER_KEY] = {
                "collected": sorted(self.collected),
                "deselected": self.deselected,
                "uncollectable": self.uncollectable,
                "declared": [str(p) for p in self.declared],
                "directories": [str(p) for p in self.directories],
            }
            return
        for paths in self.settings.used.values():
            self.used.update(paths)
        self.skipped_because = self._incomplete()
        if self.skipped_because:
            return
        self.found = orphans(self.directories, self.used | self.declared)
        if self.found and self.fail and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _incomplete(self) -> list[str]:
        """Why this run is not the whole suite (nothing: it is)."""
        why = []
        if self.deselected:
            why.append(f"{self.deselected} test(s) were deselected")
        if self.uncollectable:
            why.append(f"{self.uncollectable} file(s) could not be collected")
        if _narrowed(self.config):
            why.append("test paths were given on the command line")
        missing = len(self.collected - self.ran)
        if missing:
            why.append(f"{missing} collected test(s) did not run")
        return why

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.worker:
            return
        root = Path(self.config.rootpath)
        terminalreporter.write_sep("-", "tcpcassette orphans")
        if self.skipped_because:
            terminalreporter.write_line(
                "not listed, as the whole suite did not run: "
                + "; ".join(self.skipped_because)
                + ". Run the whole suite to list the cassettes no test uses."
            )
            return
        where = ", ".join(sorted(_shown(d, root) for d in self.directories))
        if not self.found:
            terminalreporter.write_line(f"every cassette under {where} was used")
            return
        terminalreporter.write_line(
            f"{len(self.found)} cassette file(s) under {where} that no collected test used"
            + (" (--tcpcassette-orphans=fail: the run fails)" if self.fail else "")
            + ":"
        )
        for path in self.found:
            terminalreporter.write_line(f"  {_shown(path, root)}")
        terminalreporter.write_line(
            "Delete them if their tests are gone, or rename them to the cassette a test uses."
        )


def orphans(directories: set[Path], used: set[Path]) -> list[Path]:
    """The cassette files under ``directories`` that are not in ``used``, sorted."""
    taken = {_key(p) for p in used}
    out: set[Path] = set()
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in directory.rglob("*.msgpack"):
            if path.name.startswith(".") or not path.is_file():
                continue  # a lock or a save under way
            if _key(path) not in taken:
                out.add(path)
    return sorted(out)


def _key(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def _shown(path: Path, root: Path) -> str:
    from ._core.render import printable

    try:
        return printable(str(path.relative_to(root)))
    except ValueError:
        return printable(str(path))


def _narrowed(config: pytest.Config) -> bool:
    """True when test paths on the command line picked part of the suite."""
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        return False
    root = Path(config.rootpath).resolve()
    whole = {root, *((root / p).resolve() for p in config.getini("testpaths"))}
    here = Path(config.invocation_params.dir)
    for arg in config.args:
        if "::" in arg:
            return True  # one test, or one class
        if (here / arg).resolve() not in whole:
            return True
    return False


def register(config: pytest.Config, settings: PytestSettings) -> None:
    mode = config.getoption("--tcpcassette-orphans", default=None)
    if mode is not None:
        config.pluginmanager.register(Orphans(config, settings, str(mode)), "tcpcassette-orphans")
