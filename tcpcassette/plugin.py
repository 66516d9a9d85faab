"""The pytest plugin: ``--record-mode``, ini options, and a summary of cassettes used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from . import _settings
from ._settings import RecordMode
from ._use_cassette import Outcome, outcomes

_WORKER_KEY = "tcpcassette_outcomes"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tcpcassette", "record and replay TCP connections")
    group.addoption(
        "--record-mode",
        action="store",
        default=None,
        choices=[m.value for m in RecordMode],
        help="when to record cassettes: none (replay only, the default), once, "
        "new_episodes or all. Overrides record_mode= arguments.",
    )
    parser.addini(
        "tcpcassette_record_mode",
        "record mode when --record-mode is not given (none, once, new_episodes, all)",
        default=None,
    )
    parser.addini(
        "tcpcassette_dir",
        "cassette directory, relative to the rootdir (default: cassettes)",
        default=None,
    )


def pytest_configure(config: pytest.Config) -> None:
    _settings.pytest_settings = _settings.PytestSettings(
        cli_record_mode=config.getoption("--record-mode"),
        ini_record_mode=config.getini("tcpcassette_record_mode") or None,
        ini_cassette_dir=config.getini("tcpcassette_dir") or None,
        rootdir=Path(config.rootpath),
    )
    config.stash[_collected] = []


def pytest_unconfigure(config: pytest.Config) -> None:
    _settings.pytest_settings = None


_collected = pytest.StashKey[list[Outcome]]()


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput: dict[str, Any] | None = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        # Under pytest-xdist, hand this worker's cassette uses to the controller.
        workeroutput[_WORKER_KEY] = [(str(o.path), o.replayed, o.recorded) for o in outcomes()]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    rows = getattr(node, "workeroutput", {}).get(_WORKER_KEY, [])
    collected = node.config.stash.get(_collected, [])
    collected += [Outcome(Path(p), replayed, recorded) for p, replayed, recorded in rows]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    rows = [*outcomes(), *config.stash.get(_collected, [])]
    if not rows:
        return
    recorded: dict[Path, int] = {}
    replayed: dict[Path, int] = {}
    for o in rows:
        if o.recorded:
            recorded[o.path] = recorded.get(o.path, 0) + o.recorded
        elif o.replayed:
            replayed[o.path] = replayed.get(o.path, 0) + o.replayed
    root = Path(config.rootpath)

    def show(paths: dict[Path, int]) -> str:
        names = []
        for p in sorted(paths):
            try:
                names.append(str(p.relative_to(root)))
            except ValueError:
                names.append(str(p))
        return ", ".join(names)

    terminalreporter.write_sep("-", "tcpcassette")
    if recorded:
        terminalreporter.write_line(f"recorded {len(recorded)} cassette(s): {show(recorded)}")
    if replayed:
        terminalreporter.write_line(f"replayed {len(replayed)} cassette(s): {show(replayed)}")
