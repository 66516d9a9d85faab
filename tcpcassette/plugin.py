"""The pytest plugin: the ``tcpcassette`` marker and fixtures, ``--record-mode``, ini
options, and a summary of the cassettes used.

It imports only the light parts of tcpcassette: the I/O layer loads when a
test first uses a cassette, so installing tcpcassette costs other pytest
runs nothing.  Its state lives in ``config.stash``.

pytest-recording registers ``--record-mode`` too; when it is installed,
tcpcassette reads that option instead of registering it a second time, so
one flag drives both.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import _failure_report, _freshness, _settings, _sweep, _verify
from ._core.errors import CassetteError, ReplayError
from ._paths import node_name
from ._settings import Outcome, PytestSettings, RecordMode

if TYPE_CHECKING:
    from ._cassette import Cassette

_WORKER_KEY = "tcpcassette_outcomes"
_WORKER_USED = "tcpcassette_used"
#: Cassettes named one by one in the summary; more are counted (-v names them).
_LISTED = 5

_SETTINGS = pytest.StashKey[PytestSettings]()
_FROM_WORKERS = pytest.StashKey[list[Outcome]]()
_USED_BY_WORKERS = pytest.StashKey[dict[str, list[Path]]]()
_FAILED = pytest.StashKey[list[str]]()
#: The ``use_cassette`` of the running test's ``tcpcassette`` fixture.
_IN_USE = pytest.StashKey[Any]()


#: The marker, as ``pytest --markers`` lists it.
MARKER = (
    "tcpcassette(name=None, **options): record or replay the test's TCP connections in "
    "cassette <name> (default: mirrors the test's file and name), from the start of its "
    "setup to the end of its teardown; options are use_cassette's"
)
#: pytest-recording's plugin, which registers ``--record-mode`` as well.
_RECORDING_PLUGIN = "recording"


def _shares_record_mode(pluginmanager: pytest.PytestPluginManager) -> bool:
    """True when pytest-recording will register ``--record-mode`` (installed, not blocked)."""
    if pluginmanager.is_blocked(_RECORDING_PLUGIN):
        return False
    if pluginmanager.has_plugin(_RECORDING_PLUGIN):
        return True
    return importlib.util.find_spec("pytest_recording") is not None


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("tcpcassette", "record and replay TCP connections")
    if not _shares_record_mode(pluginmanager):
        group.addoption(
            "--record-mode",
            action="store",
            default=None,
            choices=[m.value for m in RecordMode],
            help="when to record cassettes: none (replay only, the default), once, "
            "new_episodes or all. Overrides record_mode= arguments and markers.",
        )
    group.addoption(
        "--tcpcassette-block-network",
        action="store_true",
        default=False,
        help="make every outgoing TCP connection that no cassette serves fail at once, in "
        "all tests (tcpcassette.NetworkBlockedError)",
    )
    group.addoption(
        "--tcpcassette-allowed-hosts",
        action="store",
        default="",
        help="with --tcpcassette-block-network: hosts (names or addresses, comma-separated) "
        "that may still be reached",
    )
    group.addoption(
        "--disable-tcpcassette",
        action="store_true",
        default=False,
        help="run tests that use cassettes against the real servers: no cassette is read "
        "or written",
    )
    group.addoption(
        "--tcpcassette-learn",
        action="store_true",
        default=False,
        help="run tests with existing cassettes against the real servers once more (as "
        "recording does) and store what differs from the recording as volatile; the "
        "recordings themselves are kept",
    )
    _sweep.add_options(group)
    _verify.add_options(group)
    _failure_report.add_options(group)
    _freshness.add_options(group)
    parser.addini(
        "tcpcassette_record_mode",
        "record mode when --record-mode is not given (none, once, new_episodes, all)",
        default=None,
    )
    parser.addini(
        "tcpcassette_noise",
        "differences between runs replay tolerates: auto (default), learned or off",
        default=None,
    )
    parser.addini(
        "tcpcassette_max_age",
        "how old a cassette may get before on_expiry applies: seconds, or 90d, 12h, 2w "
        "(default: any age)",
        default=None,
    )
    parser.addini(
        "tcpcassette_on_expiry",
        "what happens to a cassette older than its max_age: warn (default), fail or rerecord",
        default=None,
    )
    parser.addini(
        "tcpcassette_strict",
        "fail every test whose cassette holds connections or requests it never used "
        "(use_cassette's strict=True for the whole suite)",
        type="bool",
        default=None,
    )
    parser.addini(
        "tcpcassette_dir",
        "cassette directory, relative to the rootdir (default: cassettes)",
        default=None,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    cli_mode = config.getoption("record_mode", default=None)
    if cli_mode == "rewrite":  # pytest-recording's name for recording everything afresh
        cli_mode = RecordMode.ALL.value
    settings = PytestSettings(
        cli_record_mode=cli_mode,
        ini_record_mode=config.getini("tcpcassette_record_mode") or None,
        ini_cassette_dir=config.getini("tcpcassette_dir") or None,
        ini_noise=config.getini("tcpcassette_noise") or None,
        ini_max_age=config.getini("tcpcassette_max_age") or None,
        ini_on_expiry=config.getini("tcpcassette_on_expiry") or None,
        ini_strict=config.getini("tcpcassette_strict"),
        learn=bool(config.getoption("--tcpcassette-learn")),
        verify=_verify.enabled(config),
        disabled=bool(config.getoption("--disable-tcpcassette")),
        rootdir=Path(config.rootpath),
    )
    config.stash[_SETTINGS] = settings
    config.stash[_FROM_WORKERS] = []
    config.stash[_USED_BY_WORKERS] = {}
    config.stash[_FAILED] = []
    config.pluginmanager.register(_Failures(config), "tcpcassette-failures")
    if config.getoption("--tcpcassette-block-network"):
        from ._io import intercept, network  # the I/O layer, only when asked for

        allowed = str(config.getoption("--tcpcassette-allowed-hosts") or "").split(",")
        intercept.guard(network.NetworkGuard(allowed))
    _settings.push(settings)
    _sweep.register(config)
    _freshness.register(config, settings)


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.getoption("--tcpcassette-block-network", default=False):
        from ._io import intercept

        intercept.guard(None)
    settings = config.stash.get(_SETTINGS, None)
    if settings is not None:
        _settings.pop(settings)


# -- the marker and fixtures -------------------------------------------------------


@pytest.fixture
def tcpcassette_config() -> dict[str, Any]:
    """Default ``use_cassette`` options for the tests that use a cassette: override
    it in a conftest.py or a module (it may use other fixtures, such as a server's
    port).  Marker arguments override it; ``--record-mode`` overrides both."""
    return {}


def _options(
    request: pytest.FixtureRequest, config: Mapping[str, Any], nodeid: str
) -> tuple[str, dict[str, Any]]:
    """The cassette name and ``use_cassette`` options for the test being set up:
    the ``tcpcassette_config`` fixture's, then its markers' (the nearest wins)."""
    if not isinstance(config, Mapping):
        raise CassetteError(
            f"{request.node.nodeid}: the tcpcassette_config fixture must return a dict of "
            f"use_cassette options, not {type(config).__name__}"
        )
    options = dict(config)
    name: str | None = options.pop("name", None)
    marked, given = _sweep.marker_options(request.node)
    options.update(given)
    return marked or name or node_name(nodeid), options


def _use(name: str, options: dict[str, Any], where: str) -> Any:
    from ._use_cassette import use_cassette  # loads the I/O layer: only when a cassette is used

    known = set(inspect.signature(use_cassette.__init__).parameters) - {"self", "name"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise CassetteError(
            f"{where}: unknown tcpcassette option(s) {', '.join(unknown)}; use_cassette takes "
            f"{', '.join(sorted(known))}"
        )
    return use_cassette(name, **options)


@pytest.fixture
def tcpcassette(
    request: pytest.FixtureRequest, tcpcassette_config: dict[str, Any]
) -> Iterator[Cassette | None]:
    """The cassette of the running test, in use from here to the end of its teardown.

    A test marked ``@pytest.mark.tcpcassette`` gets it before its other fixtures;
    asking for the fixture in an unmarked test uses a cassette the same way.  Its
    ``play_count``, ``play_counts``, ``all_played`` and ``recording`` are live while
    the test runs.  With ``--disable-tcpcassette`` it is None: the test talks to
    the real servers.
    """
    if request.config.getoption("--disable-tcpcassette"):
        yield None
        return
    run = request.node.stash.get(_sweep.CASE, None)
    nodeid = request.node.nodeid if run is None else run.test
    name, options = _options(request, tcpcassette_config, nodeid)
    if run is not None:
        options.update(_sweep.case_options(run))
    using = _use(name, options, request.node.nodeid)
    if run is not None:
        using._sweep = run.case
    began = False
    try:
        with using as cassette:
            request.node.stash[_IN_USE] = using
            if run is not None:
                cassette.sweep_fault = run.case.describe()
            began = True
            try:
                yield cassette
            finally:
                del request.node.stash[_IN_USE]
    except CassetteError as late:
        if run is None or not began:
            raise
        # A sweep case was judged when its test ended; what replay found after
        # that (a silence outlasting the case) goes with its report.
        request.node.stash[_sweep.LATE] = late


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """The test fails with what its cassette found during the test, not its teardown."""
    __tracebackhide__ = True
    using = item.stash.get(_IN_USE, None)
    try:
        result = yield
    except BaseException as failure:
        if using is not None:
            using._check(failure)
        raise
    if using is not None:
        using._check()
    return result


@pytest.fixture(autouse=True)
def _tcpcassette_marked(request: pytest.FixtureRequest) -> None:
    """Marked tests use their cassette from the start of their setup."""
    if request.node.get_closest_marker("tcpcassette") is not None:
        request.getfixturevalue("tcpcassette")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    # Cassette names come from the running test's own node.
    settings = item.config.stash.get(_SETTINGS, None)
    if settings is not None:
        settings.current_test = item.nodeid
    try:
        yield
    finally:
        if settings is not None:
            settings.current_test = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None:
        error = _replay_error(call.excinfo.value)
        if error is not None and error.transcript:
            report.sections.append(("tcpcassette transcript", error.transcript))
        if error is not None and report.failed:
            _failure_report.attach(item, report, error)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _replay_error(exc: BaseException | None) -> ReplayError | None:
    """The ReplayError behind a test failure, following causes and contexts."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ReplayError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput: dict[str, Any] | None = getattr(session.config, "workeroutput", None)
    settings = session.config.stash.get(_SETTINGS, None)
    if workeroutput is not None and settings is not None:
        # Under pytest-xdist, hand this worker's cassette uses to the controller.
        workeroutput[_WORKER_KEY] = [
            (str(o.path), o.replayed, o.recorded, o.learned, list(o.tolerated))
            for o in settings.outcomes
        ]
        workeroutput[_WORKER_USED] = {
            test: [str(p) for p in paths] for test, paths in settings.used.items()
        }


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    rows = getattr(node, "workeroutput", {}).get(_WORKER_KEY, [])
    collected = node.config.stash.get(_FROM_WORKERS, [])
    collected += [
        Outcome(Path(p), replayed, recorded, learned, tuple(tolerated))
        for p, replayed, recorded, learned, tolerated in rows
    ]
    used = node.config.stash.get(_USED_BY_WORKERS, {})
    for test, paths in getattr(node, "workeroutput", {}).get(_WORKER_USED, {}).items():
        used.setdefault(test, []).extend(Path(p) for p in paths)


class _Failures:
    """Notes failing tests by node id (under xdist, the controller sees every worker's)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        failed = self.config.stash[_FAILED]
        if report.failed and report.nodeid not in failed:
            failed.append(report.nodeid)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    settings = config.stash.get(_SETTINGS, None)
    mine = settings.outcomes if settings is not None else []
    rows = [*mine, *config.stash.get(_FROM_WORKERS, [])]
    from_workers: dict[str, list[Path]] = config.stash.get(_USED_BY_WORKERS, {})
    used = dict(from_workers)
    used.update(settings.used if settings is not None else {})
    failing = [(t, used[t]) for t in config.stash.get(_FAILED, []) if used.get(t)]
    if not rows and not failing:
        return
    recorded: dict[Path, int] = {}
    replayed: dict[Path, int] = {}
    learned: dict[Path, int] = {}
    tolerated: dict[Path, list[str]] = {}
    for o in rows:
        if o.learned:
            learned[o.path] = learned.get(o.path, 0) + o.learned
        if o.tolerated:
            tolerated.setdefault(o.path, []).extend(o.tolerated)
        if o.recorded:
            recorded[o.path] = recorded.get(o.path, 0) + o.recorded
        elif o.replayed:
            replayed[o.path] = replayed.get(o.path, 0) + o.replayed
    root = Path(config.rootpath)
    verbose = config.get_verbosity() > 0

    def show(paths: dict[Path, Any]) -> str:
        if len(paths) > _LISTED and not verbose:
            return f"{len(paths)} cassettes (-v lists them)"
        names = []
        for p in sorted(paths):
            try:
                names.append(str(p.relative_to(root)))
            except ValueError:
                names.append(str(p))
        return ", ".join(names)

    terminalreporter.write_sep("-", "tcpcassette")
    if recorded:
        terminalreporter.write_line(f"recorded: {show(recorded)}")
    if replayed:
        terminalreporter.write_line(f"replayed: {show(replayed)}")
    if learned:
        spans = sum(learned.values())
        terminalreporter.write_line(f"learned {spans} volatile span(s): {show(learned)}")
    if tolerated:
        count = sum(len(v) for v in tolerated.values())
        rules: dict[str, int] = {}
        for notes in tolerated.values():
            for note in notes:
                rule = note.split(":", 1)[0]
                rules[rule] = rules.get(rule, 0) + 1
        by_rule = ", ".join(f"{n} by {rule}" for rule, n in sorted(rules.items()))
        terminalreporter.write_line(
            f"tolerated {count} difference(s) between runs ({by_rule}): {show(tolerated)}"
            + ("" if verbose else " (-v lists them)")
        )
        if verbose:
            for path in sorted(tolerated):
                for note in tolerated[path]:
                    terminalreporter.write_line(f"  {_relative(path, root)}: {note}")
    if failing:
        terminalreporter.write_line("cassettes of failing tests:")
        for test, paths in failing:
            shown = ", ".join(_relative(p, root) for p in paths)
            terminalreporter.write_line(f"  {test}: {shown}")
