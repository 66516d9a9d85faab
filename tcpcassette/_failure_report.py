"""An HTML report of a replay failure in pytest, named in one line of the failure.

When a test fails on a :class:`ReplayError` that names its cassette and
connection, the page of :func:`tcpcassette._core.view.render_failure` (the
recorded client message beside what the live client sent, their first
difference marked, then the recorded connection) is written into
``--tcpcassette-report-dir`` (default: ``tcpcassette-reports`` in pytest's
cache directory) and the report gets a section naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ._core.errors import CassetteError, ReplayError

#: The section of a failing test's report that names the HTML report.
SECTION = "tcpcassette report"


def add_options(group: pytest.OptionGroup) -> None:
    group.addoption(
        "--tcpcassette-report-dir",
        action="store",
        default=None,
        metavar="DIR",
        help="write an HTML report of each replay failure here (default: "
        "tcpcassette-reports in pytest's cache directory)",
    )


def _directory(config: pytest.Config) -> Path:
    chosen = config.getoption("--tcpcassette-report-dir", default=None)
    if chosen:
        return Path(chosen)
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("tcpcassette-reports"))
    return Path(config.rootpath) / ".pytest_cache" / "tcpcassette-reports"


def _file_name(nodeid: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_.") or "test"
    return name[:150] + ".html"


def attach(item: pytest.Item, report: pytest.TestReport, error: ReplayError) -> None:
    """Write the report of ``error`` and name it in ``report``; a report that cannot
    be written is said in that section instead (the test's own failure stays)."""
    if error.cassette is None or error.connection is None:
        return
    # The loader and the page, only on a failure: not at every pytest start.
    from ._cassette import load
    from ._core.view import render_failure

    try:
        cassette = load(Path(error.cassette))
        if not 0 <= error.connection < len(cassette.connections):
            return
        page = render_failure(
            cassette.connections[error.connection],
            error.connection,
            title=f"{item.nodeid}: replay failed",
            message=str(error),
            position=error.position,
            sent=error.sent,
        )
        directory = _directory(item.config)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / _file_name(item.nodeid)
        path.write_text(page, encoding="utf-8")
    except (CassetteError, OSError) as exc:
        report.sections.append((SECTION, f"no HTML report: {exc}"))
        return
    report.sections.append((SECTION, f"HTML report of the failing connection: {path}"))
