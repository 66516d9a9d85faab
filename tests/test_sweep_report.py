"""``--tcpcassette-sweep-report=PATH.html``: the sweep's tables as a page, in chromium."""

from __future__ import annotations

import re

import pytest

from .test_sweep import outcomes, project, sweep
from .test_view_browser import BROWSER, Tags, browse


def test_an_html_sweep_report_colours_every_case_by_its_outcome_with_the_legend(
    pytester: pytest.Pytester,
) -> None:
    project(pytester)
    page = pytester.path / "reports" / "sweep.html"
    faults = "--tcpcassette-sweep-faults=refuse,reset,close"
    result = sweep(pytester, faults, f"--tcpcassette-sweep-report={page}")
    result.assert_outcomes(passed=1 + 7)
    assert f"sweep report: {page}" in result.stdout.str()
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text
    # The same run with a JSON report: the page shows exactly its outcomes.
    report = pytester.path / "sweep.json"
    sweep(pytester, faults, f"--tcpcassette-sweep-report={report}").assert_outcomes(passed=8)
    expected = outcomes(report)
    assert expected["close@c0:before-server-3"] == ("survived", "")  # after the reply
    assert expected["reset@c0:before-server-1"] == ("client-error", "ConnectionResetError")
    if BROWSER is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    dom = browse(page, pytester.path, "--dump-dom")
    assert "<h2>test_app.py::test_get: 7 case(s): 1 survived, 6 client-error</h2>" in dom
    rows = re.findall(r'<tr><th class="position">([^<]*)</th>(.*?)</tr>', dom)
    assert [row for row, _ in rows] == ["c0 connect", "c0 server 1", "c0 server 2", "c0 server 3"]
    cells = {
        (row, column): (cls, mark, title)
        for row, body in rows
        for cls, title, mark in re.findall(
            r'<td class="case ([\w-]+)" title="([^"]*)">([^<]*)</td>', body
        )
        for column in [title.split(":")[0]]
    }
    assert len(cells) == len(expected) == 7
    for case, (outcome, detail) in expected.items():
        kind, _, where = case.partition("@")
        row = "c0 connect" if where.endswith("connect") else f"c0 server {where[-1]}"
        cls, mark, title = cells[(row, kind)]
        assert cls == outcome, case
        assert title == f"{kind}: {outcome}" + (f" ({detail})" if detail else "")
        assert mark == "ok" if outcome == "survived" else re.fullmatch(r"E\d", mark), case
    assert cells[("c0 server 3", "close")][:2] == ("survived", "ok")
    legend = re.search(r'<p class="legend">(.*?)</p>', dom)
    assert legend is not None and "ok survived" in legend.group(1) and "H hung" in legend.group(1)
    assert re.search(r'<span class="key client-error">E\d</span> ConnectionResetError', dom)
    tags = Tags()
    tags.feed(dom)
    assert "script" not in [name for name, _ in tags.found]
