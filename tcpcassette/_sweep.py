"""The fault sweep in pytest: ``--tcpcassette-sweep`` and ``@pytest.mark.tcpcassette(sweep=...)``.

Each swept test whose cassette exists gains, at collection, one ordinary
pytest item per case (one fault at one position of its recording, see
:mod:`tcpcassette._core.sweep`), named ``test_x[sweep:reset@c0:before-server-3]``.
A case replays the test's cassette with its fault placed; how the test ends
is the case's outcome, shown in a table per test at the end of the run and
written with ``--tcpcassette-sweep-report``.  A case item passes whatever its
outcome, unless a baseline (``--tcpcassette-sweep-baseline``) holds another
outcome for it: the sweep is a measurement, and a change of it is what fails.

Cases run where the test runs (xdist distributes them); every process makes
the same cases from the same cassettes and seed, which the controller hands to
its workers.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pytest

from ._core.errors import CassetteError, ClientHungError, ReplayError

if TYPE_CHECKING:
    from ._core.sweep import Case, Result

#: The default time limit of one case, in seconds.
DEFAULT_TIMEOUT = 10.0
#: How long after the case's limit replay's own hold on a silence ends: the
#: limit fires first where it can; replay's bound ends what it cannot reach.
SILENCE_MARGIN = 5.0
#: Where a case's result travels with its report (to the xdist controller too).
PROPERTY = "tcpcassette-sweep"
#: The baseline's outcome of a case whose outcome changed, with its report.
CHANGED = "tcpcassette-sweep-was"
_SEED_KEY = "tcpcassette_sweep_seed"
#: Bytes of what an unserved client sent kept in its case's detail.
SHOWN_SENT = 80
_WORKER_KEY = "tcpcassette_sweep"

#: The case a swept item runs.
CASE = pytest.StashKey["SweepRun"]()
_STATE = pytest.StashKey["Sweep"]()
#: What the cassette of a case found after the case was judged.
LATE = pytest.StashKey[CassetteError]()
#: The case ended in its setup, and that report holds its outcome.
_JUDGED = pytest.StashKey[bool]()


@dataclass(frozen=True, slots=True)
class SweepRun:
    """One case of one test: what the item created for it carries.

    Attributes:
        case: the fault and position.
        test: the swept test's own node id.
        timeout: the case's time limit, in seconds.
    """

    case: Case
    test: str
    timeout: float


class CaseTimedOut(BaseException):
    """A case ran past its time limit (raised in the test's thread to end it).

    A BaseException, so a client's ``except Exception`` retry loop cannot keep it.
    """


def add_options(group: Any) -> None:
    """The sweep's command-line options, in the plugin's group."""
    group.addoption(
        "--tcpcassette-sweep",
        action="store_true",
        default=False,
        help="also run every test whose cassette exists once per fault at every point of "
        "its recording (reset, close, silence, truncation... before each server message; "
        "refused and unanswered connects), and show which failures the client survives",
    )
    group.addoption(
        "--tcpcassette-sweep-faults",
        default=None,
        help="the faults to sweep, comma-separated (default: refuse, connect_timeout, reset, "
        "close, timeout, truncate, slice, corrupt)",
    )
    group.addoption(
        "--tcpcassette-sweep-times",
        default="1",
        help="how many plays of a connection each fault hits: a number (default 1: a client "
        "that reconnects meets the recording again), or 'always'",
    )
    group.addoption(
        "--tcpcassette-sweep-max",
        type=int,
        default=None,
        help="at most this many cases per test, a sample drawn from the seed",
    )
    group.addoption(
        "--tcpcassette-sweep-seed",
        type=int,
        default=None,
        help="the seed the sample is drawn from (default: a new one, printed)",
    )
    group.addoption(
        "--tcpcassette-sweep-timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"seconds one case may run before it counts as hung (default {DEFAULT_TIMEOUT:g})",
    )
    group.addoption(
        "--tcpcassette-sweep-report",
        default=None,
        help="write the outcome of every case to this file: JSON (for a baseline), or an "
        "HTML page of the tables when it ends in .html",
    )
    group.addoption(
        "--tcpcassette-sweep-baseline",
        default=None,
        help="a report from an earlier run: fail the cases whose outcome changed since",
    )


def _parse_times(value: str) -> int | None:
    if value == "always":
        return None
    try:
        times = int(value)
    except ValueError:
        times = 0
    if times < 1:
        raise pytest.UsageError(
            f"--tcpcassette-sweep-times={value}: give a whole number from 1, or 'always'"
        )
    return times


class Sweep:
    """The sweep's state and hooks for one pytest process (registered as a plugin)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.enabled = bool(config.getoption("--tcpcassette-sweep"))
        given = config.getoption("--tcpcassette-sweep-faults")
        # The sweep's core loads where a sweep may run, not at every pytest start.
        self._faults: tuple[str, ...] | None = None
        if given is not None:
            from ._core import sweep as core

            try:
                self._faults = core.parse_faults(given, source="--tcpcassette-sweep-faults")
            except CassetteError as error:
                raise pytest.UsageError(str(error)) from None
        self.times = _parse_times(str(config.getoption("--tcpcassette-sweep-times")))
        self.limit: int | None = config.getoption("--tcpcassette-sweep-max")
        if self.limit is not None and self.limit < 1:
            raise pytest.UsageError("--tcpcassette-sweep-max: give a whole number from 1")
        self.timeout = float(config.getoption("--tcpcassette-sweep-timeout"))
        if not self.timeout > 0:
            raise pytest.UsageError("--tcpcassette-sweep-timeout: give seconds above 0")
        workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
        seed = config.getoption("--tcpcassette-sweep-seed")
        if workerinput is not None and _SEED_KEY in workerinput:
            seed = workerinput[_SEED_KEY]  # the controller's, so every worker draws alike
        if seed is None:
            seed = int.from_bytes(os.urandom(4), "big")  # no module to import at every start
        self.seed: int = seed
        self.worker = workerinput is not None
        report = config.getoption("--tcpcassette-sweep-report")
        self.report_path = Path(report) if report else None
        self.baseline: dict[tuple[str, str], Result] = {}
        baseline = config.getoption("--tcpcassette-sweep-baseline")
        self.baseline_path = Path(baseline) if baseline else None
        if self.baseline_path is not None:
            try:
                text = self.baseline_path.read_text(encoding="utf-8")
            except OSError as exc:
                raise pytest.UsageError(
                    f"--tcpcassette-sweep-baseline={baseline}: cannot read it ({exc}); write "
                    "one with --tcpcassette-sweep-report"
                ) from None
            try:
                rows = core.load_report(text, source=str(baseline))
            except CassetteError as error:
                raise pytest.UsageError(str(error)) from None
            self.baseline = {(r.test, r.case): r for r in rows}
        self.results: list[Result] = []
        self.changed: list[tuple[str, str]] = []  # (node id, what changed)
        self.sampled = False
        self.drawn = self.total = 0  # cases sampled, of how many
        self.reported_by_worker = False
        self.notes: list[str] = []
        self._armed: Any = None  # the SIGALRM handler a case's limit replaced

    @property
    def faults(self) -> tuple[str, ...]:
        """The faults swept where a test names none: ``--tcpcassette-sweep-faults``, or all."""
        if self._faults is None:
            from ._core import sweep as core

            self._faults = core.SWEEP_FAULTS
        return self._faults

    # -- collection -------------------------------------------------------------

    def wanted(self, item: pytest.Item) -> tuple[str, ...] | None:
        """The faults to sweep ``item`` with (None: not swept)."""
        if not isinstance(item, pytest.Function) or CASE in item.stash:
            return None
        if self.config.getoption("--disable-tcpcassette"):
            return None  # no cassette is read: there is nothing to place a fault in
        markers = list(item.iter_markers("tcpcassette"))
        if not markers and "tcpcassette" not in item.fixturenames:
            return None
        choice: object = None
        for marker in markers:  # nearest first
            if "sweep" in marker.kwargs:
                choice = marker.kwargs["sweep"]
                break
        if choice is False:
            return None
        if choice is None or choice is True:
            return self.faults if (self.enabled or choice is True) else None
        from ._core import sweep as core

        try:
            if isinstance(choice, str):
                return core.parse_faults(choice, source=f"{item.nodeid}: sweep=")
            if isinstance(choice, (list, tuple)) and all(isinstance(c, str) for c in choice):
                return core.parse_faults(",".join(choice), source=f"{item.nodeid}: sweep=")
        except CassetteError as error:
            raise pytest.UsageError(str(error)) from None
        raise pytest.UsageError(
            f"{item.nodeid}: sweep={choice!r}; give True, False, or the faults to sweep "
            "('reset,timeout' or a list of names)"
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        out: list[pytest.Item] = []
        for item in items:
            out.append(item)
            faults = self.wanted(item)
            if faults is not None:
                assert isinstance(item, pytest.Function)
                out += self._expand(item, faults)
        items[:] = out

    def _expand(self, item: pytest.Function, faults: tuple[str, ...]) -> list[pytest.Item]:
        from ._cassette import load
        from ._core import sweep as core
        from ._core.protocols import by_name, detect
        from ._paths import cassette_path, node_name
        from ._settings import resolve_cassette_dir

        name, options = marker_options(item)
        if options.get("matching") == "exchange":
            self.notes.append(f"{item.nodeid}: not swept: matching='exchange' plays no faults")
            return []
        try:
            path = cassette_path(
                name or node_name(item.nodeid), resolve_cassette_dir(options.get("cassette_dir"))
            )
            if not path.is_file():
                self.notes.append(f"{item.nodeid}: not swept: no cassette yet ({path.name})")
                return []
            cassette = load(path)
        except CassetteError as error:
            self.notes.append(f"{item.nodeid}: not swept: {error}")
            return []
        chosen = options.get("protocol", "auto")
        connections = cassette.connections

        def protocol_of(index: int) -> Any:
            if chosen == "raw":
                return None
            if chosen != "auto":
                return chosen
            return by_name(connections[index].protocol) or detect(connections[index])

        found = core.positions(connections, protocol_of)
        every = core.cases(found, faults=faults, times=self.times)
        picked = core.sample(every, limit=self.limit, seed=self.seed, test=item.nodeid)
        if len(picked) < len(every):
            self.sampled = True
            self.drawn += len(picked)
            self.total += len(every)
        made: list[pytest.Item] = []
        for case in picked:
            if item.name.endswith("]"):
                new_name = f"{item.name[:-1]}-sweep:{case.id}]"
            else:
                new_name = f"{item.name}[sweep:{case.id}]"
            swept = type(item).from_parent(
                item.parent,
                name=new_name,
                callspec=getattr(item, "callspec", None),
                fixtureinfo=getattr(item, "_fixtureinfo", None),
                originalname=item.originalname,
            )
            swept.stash[CASE] = SweepRun(case=case, test=item.nodeid, timeout=self.timeout)
            made.append(swept)
        return made

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        if self.limit is None:
            return None
        return (
            f"tcpcassette sweep: seed {self.seed} (--tcpcassette-sweep-seed={self.seed} draws "
            "the same sample)"
        )

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if self.sampled and reporter is not None and not self.worker:
            reporter.write_line(
                f"tcpcassette sweep: a sample of {self.drawn} of {self.total} cases, seed "
                f"{self.seed} (--tcpcassette-sweep-seed={self.seed} draws it again)"
            )

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[_SEED_KEY] = self.seed

    # -- running a case -----------------------------------------------------------

    # The case's time limit runs from the start of its setup (a fixture may be
    # what meets the fault) to the end of its call.  tcpcassette's own I/O layer
    # is loaded before the first clock starts: its first import takes seconds on
    # a busy machine, and counted against a case it made the first case of a
    # process (and whatever it swept) come out hung.

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Iterator[None]:
        __tracebackhide__ = True
        run = item.stash.get(CASE, None)
        if run is not None:
            self._arm(run)
        try:
            return (yield)
        except BaseException:
            self._disarm()
            raise

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        __tracebackhide__ = True
        try:
            return (yield)
        finally:
            self._disarm()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        self._disarm()

    def _arm(self, run: SweepRun) -> None:
        from . import _use_cassette  # noqa: F401  (loaded once, outside every case's limit)

        if threading.current_thread() is not threading.main_thread():
            return  # replay's own bound on silences (max_silence) still ends a hung read
        if not hasattr(signal, "setitimer") or self._armed is not None:
            return

        def expired(signum: int, frame: FrameType | None) -> None:
            raise CaseTimedOut(
                f"sweep case {run.case.id} ran past its limit of {run.timeout:g} s "
                "(--tcpcassette-sweep-timeout)"
            )

        self._armed = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, run.timeout)

    def _disarm(self) -> None:
        if self._armed is None:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._armed)
        self._armed = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        run = item.stash.get(CASE, None)
        if run is not None and call.when == "teardown" and LATE in item.stash:
            report.sections.append(
                ("tcpcassette sweep: found after the case ended", str(item.stash[LATE]))
            )
        if run is None or call.when == "teardown" or (call.when == "setup" and report.passed):
            return report
        if item.stash.get(_JUDGED, False):
            return report  # judged at its setup already
        self._judge(item, run, report, call.excinfo.value if call.excinfo is not None else None)
        if call.when == "setup":
            item.stash[_JUDGED] = True
            if report.passed:
                # The fault ended the case in a fixture: that is its outcome, and the
                # test's body, whose fixtures are not all there, is not run.
                item.runtest = _not_run  # type: ignore[method-assign]
        return report

    def _judge(
        self,
        item: pytest.Item,
        run: SweepRun,
        report: pytest.TestReport,
        raised: BaseException | None,
    ) -> None:
        from ._core.sweep import Result, changed

        judged = classify(raised)
        if judged is None:
            return  # tcpcassette's own error (a cassette it cannot use): not the client's
        outcome, detail = judged
        result = Result(
            test=run.test,
            case=run.case.id,
            outcome=outcome,
            detail=detail,
            summary=run.case.position.summary,
        )
        report.user_properties.append(
            (
                PROPERTY,
                {
                    "test": result.test,
                    "case": result.case,
                    "outcome": result.outcome,
                    "detail": result.detail,
                    "message": result.summary,
                },
            )
        )
        text = str(report.longrepr) if report.failed and report.longrepr is not None else ""
        if text:
            report.sections.append(("tcpcassette sweep: what the test raised", text))
        before = changed(result, self.baseline)
        if before is not None:
            report.user_properties.append((CHANGED, before.describe()))
            report.outcome = "failed"
            report.longrepr = (
                f"sweep case {run.case.id} of {run.test}: the outcome changed from "
                f"{before.describe()} (in {self.baseline_path}) to {result.describe()}"
                + (f"\n\n{text}" if text else "")
            )
        elif outcome != "skipped":
            report.outcome = "passed"
            report.longrepr = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == PROPERTY and isinstance(value, Mapping):
                from ._core.sweep import Result  # a case's report: a sweep runs

                result = Result(
                    test=str(value["test"]),
                    case=str(value["case"]),
                    outcome=str(value["outcome"]),
                    detail=str(value["detail"]),
                    summary=str(value["message"]),
                )
                self.results.append(result)
        for key, value in report.user_properties:
            if key == CHANGED:
                now = self.results[-1].describe() if self.results else "?"
                self.changed.append((report.nodeid, f"was {value}, now {now}"))

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        found = getattr(node, "workeroutput", {}).get(_WORKER_KEY)
        if not found or self.reported_by_worker:
            return
        # Every worker collects the same cases: one worker's account is the run's.
        self.reported_by_worker = True
        self.sampled = bool(found["sampled"])
        self.drawn, self.total = int(found["drawn"]), int(found["total"])
        self.notes += [str(n) for n in found["notes"] if n not in self.notes]

    # -- the end of the run ----------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput: dict[str, Any] | None = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            # What only collection knows, for the controller's summary.
            workeroutput[_WORKER_KEY] = {
                "sampled": self.sampled,
                "drawn": self.drawn,
                "total": self.total,
                "notes": self.notes,
            }
        if self.worker or self.report_path is None or not self.results:
            return
        from ._core.sweep import dump_report
        from ._core.sweep_view import render_sweep

        if self.report_path.suffix.lower() in (".html", ".htm"):
            note = ""
            if self.sampled:
                note = (
                    f"a sample of {self.drawn} of {self.total} cases: "
                    f"--tcpcassette-sweep-seed={self.seed} draws it again"
                )
            text = render_sweep(self.results, title="tcpcassette fault sweep", note=note)
        else:
            text = dump_report(self.results, seed=self.seed)
        try:
            self.report_path.parent.mkdir(parents=True, exist_ok=True)
            self.report_path.write_text(text, encoding="utf-8")
        except OSError as exc:
            self.notes.append(
                f"could not write the sweep report to {self.report_path} ({exc}); choose "
                "another --tcpcassette-sweep-report"
            )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.worker or not (self.results or self.notes):
            return
        from ._core.sweep import LEGEND, table

        terminalreporter.write_sep("-", "tcpcassette sweep")
        by_test: dict[str, list[Result]] = {}
        for result in self.results:
            by_test.setdefault(result.test, []).append(result)
        for test in sorted(by_test):
            for line in table(test, by_test[test]):
                terminalreporter.write_line(line)
            terminalreporter.write_line("")
        if self.results:
            terminalreporter.write_line("marks: " + ", ".join(LEGEND))
            more = ""
            if self.sampled:
                more = (
                    f" (a sample of {self.drawn} of {self.total}: "
                    f"--tcpcassette-sweep-seed={self.seed} draws it again)"
                )
            terminalreporter.write_line(f"{len(self.results)} sweep case(s){more}")
        if self.report_path is not None and self.results:
            terminalreporter.write_line(f"sweep report: {self.report_path}")
        if self.baseline_path is not None:
            if self.changed:
                terminalreporter.write_line(
                    f"{len(self.changed)} case(s) changed outcome since {self.baseline_path}:"
                )
                for nodeid, what in self.changed:
                    terminalreporter.write_line(f"  {nodeid}: {what}")
            else:
                terminalreporter.write_line(f"no case changed outcome since {self.baseline_path}")
        for note in self.notes:
            terminalreporter.write_line(note)


def _not_run() -> None:
    """The body of a case whose setup met the fault: nothing is left to run."""


def _type_name(exc: BaseException) -> str:
    kind = type(exc)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else _type_name(exc)


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen = 0
    while exc is not None and seen < 10:
        yield exc
        exc = exc.__cause__ or exc.__context__
        seen += 1


def classify(exc: BaseException | None) -> tuple[str, str] | None:
    """A case's outcome and its detail, from what the test raised (``exc`` None: it
    passed).  None for an error of tcpcassette's own that is no replay's (a
    cassette it cannot load): that is no outcome of the case, and stays an error."""
    if exc is None:
        return "survived", ""
    chain = list(_chain(exc))
    if any(isinstance(e, (CaseTimedOut, ClientHungError)) for e in chain):
        return "hung", ""
    if isinstance(exc, pytest.skip.Exception):
        return "skipped", _first_line(exc)
    replay = next((e for e in chain if isinstance(e, ReplayError)), None)
    if replay is not None:
        if replay.sent is not None:
            from ._core.render import show_bytes

            return "unserved", f"sent {show_bytes(replay.sent, limit=SHOWN_SENT)}"
        line = _first_line(replay)
        if replay.cassette:
            # The report travels (a baseline is committed): the cassette by its name only.
            line = line.replace(replay.cassette, Path(replay.cassette).name)
        return "unserved", line
    if isinstance(exc, CassetteError):
        return None
    if isinstance(exc, (AssertionError, pytest.fail.Exception)):
        return "assertion", _first_line(exc)
    return "client-error", _type_name(exc)


def marker_options(node: pytest.Item) -> tuple[str | None, dict[str, Any]]:
    """The cassette name and options a test's markers give (farthest first, so the
    nearest wins); ``sweep`` is the sweep's own and is left out."""
    name: str | None = None
    options: dict[str, Any] = {}
    for marker in reversed(list(node.iter_markers("tcpcassette"))):
        if len(marker.args) > 1:
            raise CassetteError(
                f"{node.nodeid}: @pytest.mark.tcpcassette takes one name at most, "
                f"got {marker.args!r}; give options as keywords"
            )
        if marker.args:
            name = marker.args[0]
        options.update(marker.kwargs)
        name = options.pop("name", name)
    options.pop("sweep", None)
    return name, options


def case_options(run: SweepRun) -> dict[str, Any]:
    """The ``use_cassette`` options a case replays with, over the test's own: replay
    holds a silence a little past the case's limit, and a play the fault cut short is
    not a strict failure."""
    return {"max_silence": run.timeout + SILENCE_MARGIN, "strict": False}


def register(config: pytest.Config) -> None:
    """Set the sweep up for this pytest process."""
    state = Sweep(config)
    config.stash[_STATE] = state
    config.pluginmanager.register(state, "tcpcassette-sweep")
