"""The fault sweep's results as one self-contained HTML page, styled as the view.

Per swept test the table of :func:`tcpcassette._core.sweep.grid`: a row per
position (the connect and each server message), a column per fault, each case
coloured by its outcome with its mark, and the legend.  The page runs no
script and fetches nothing; every text from a test or a cassette reaches it
through :func:`tcpcassette._core.view.esc`.
"""

from __future__ import annotations

from collections.abc import Sequence

from .sweep import LEGEND, OUTCOMES, Cell, Result, grid
from .view import document, esc

_CLASSES = {
    "survived": "survived",
    "client-error": "client-error",
    "assertion": "assertion",
    "unserved": "unserved",
    "hung": "hung",
    "skipped": "skipped",
}


def render_sweep(results: Sequence[Result], *, title: str, note: str = "") -> str:
    """The page for ``results`` (of any number of tests), titled ``title``;
    ``note`` is a line under the title (how the cases were drawn, say)."""
    by_test: dict[str, list[Result]] = {}
    for result in results:
        by_test.setdefault(result.test, []).append(result)
    legend = "".join(
        f'<span class="key {_CLASSES.get(outcome, "")}">{esc(text)}</span>'
        for outcome, text in zip([*OUTCOMES, "not-run"], LEGEND, strict=True)
    )
    summary = f'<p class="summary">{len(results)} sweep case(s) in {len(by_test)} test(s)</p>'
    if note:
        summary += f'<p class="summary">{esc(note)}</p>'
    tables = "".join(_test(test, by_test[test]) for test in sorted(by_test))
    return document(
        title,
        header=f'{summary}<p class="legend">{legend}</p>',
        body=f'<main class="sweep">{tables}</main>',
        style=_SWEEP_CSS,
    )


def _test(test: str, results: list[Result]) -> str:
    laid = grid(test, results)
    head = "".join(f"<th>{esc(column)}</th>" for column in laid.columns)
    rows = "".join(
        f'<tr><th class="position">{esc(row)}</th><td class="message">{esc(text)}</td>'
        + "".join(_cell(cell, column) for cell, column in zip(cells, laid.columns, strict=True))
        + "</tr>"
        for row, text, cells in laid.rows
    )
    errors = "".join(
        f'<li><span class="key client-error">E{number}</span> {esc(name)}</li>'
        for number, name in enumerate(laid.errors, 1)
    )
    return (
        f'<section class="connection sweep-test"><h2>{esc(laid.heading)}</h2>'
        f"<table><thead><tr><th>position</th><th>message</th>{head}</tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        + (f'<ul class="errors">{errors}</ul>' if errors else "")
        + "</section>"
    )


def _cell(cell: Cell, column: str) -> str:
    if not cell.mark:
        return '<td class="na"></td>'
    if not cell.outcome:
        return f'<td class="not-run" title="{esc(column)}: not run">.</td>'
    why = f"{column}: {cell.outcome}" + (f" ({cell.detail})" if cell.detail else "")
    return (
        f'<td class="case {_CLASSES.get(cell.outcome, "other")}" title="{esc(why)}">'
        f"{esc(cell.mark)}</td>"
    )


_SWEEP_CSS = """
main.sweep{margin-left:0}
table{border-collapse:collapse;font:13px monospace}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
thead th{background:#f3f3f3}
td.message{max-width:32em;overflow-wrap:anywhere;color:#333}
td.case,td.not-run{text-align:center;font-weight:700}
.survived{background:#d8f0d8;color:#164}
.client-error{background:#ffe2b8;color:#741}
.assertion{background:#ffd0d0;color:#900}
.unserved{background:#e6dcf7;color:#426}
.hung{background:#555;color:#fff}
.skipped{background:#eee;color:#666}
.not-run{color:#aaa}
td.na{background:#fafafa}
.legend .key{display:inline-block;margin:2px 8px 2px 0;padding:0 6px;border-radius:3px}
.key.not-run{border:1px solid #ddd}
.errors{list-style:none;padding:0;margin:6px 0}.errors li{margin:2px 0}
"""
