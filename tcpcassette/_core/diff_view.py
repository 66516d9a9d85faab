"""The differences between two cassettes as one self-contained HTML page.

Each connection that differs is drawn as two conversations side by side, the
recorded one and the new one, a row per message: the changed, added and
removed messages highlighted (a changed message with its first differing byte
marked), runs of unchanged messages folded into a line to unfold.  What
differs is :func:`tcpcassette._core.diff.diff_cassettes`'s result; this
module only draws it.

The page runs no script at all (its Content-Security-Policy allows none and
no network), and every text from a cassette reaches it through
:func:`tcpcassette._core.view.esc`, as in the view.
"""

from __future__ import annotations

from collections.abc import Sequence

from .cassette import CassetteModel
from .diff import CassetteDiff, Change, ConnectionDiff, Message, decoded, messages_of
from .protocols import by_name
from .protocols.base import WireProtocol
from .render import first_difference, hexdump
from .view import HEX_BYTES, TEXT_BYTES, _diverging, document, esc, shown

#: Unchanged messages kept in sight on each side of a change; the rest are folded.
CONTEXT = 1

_Row = tuple[str, Message | None, Message | None]  # (kind, recorded, new)

_SIDES = {"client": "client → server", "server": "server → client"}
_KINDS = {
    "changed": "changed",
    "removed": "only recorded",
    "added": "only new",
    "timing": "moved in time",
}


def render_diff(
    result: CassetteDiff, recorded: CassetteModel, new: CassetteModel, *, title: str
) -> str:
    """The page for ``result``, the differences from ``recorded`` to ``new``."""
    count = len(result.connections)
    parts = [
        f'<p class="summary">--- {esc(result.recorded_name)}<br>+++ {esc(result.new_name)}</p>',
        '<p class="legend">'
        + "".join(f'<span class="key {kind}">{text}</span>' for kind, text in _KINDS.items())
        + '<span class="key same">unchanged</span></p>',
    ]
    if result.equal:
        parts.append('<p class="verdict">no differences</p>')
    else:
        parts.append(f'<p class="verdict">{count} connection(s) differ</p>')
    notes = "".join(f'<p class="note">note: {esc(note)}</p>' for note in result.notes)
    sections = [_section(found, recorded, new) for found in result.connections]
    return document(
        title,
        header="".join(parts),
        body=f'<main class="diff">{notes}{"".join(sections)}</main>',
        style=_DIFF_CSS,
    )


def _section(found: ConnectionDiff, recorded: CassetteModel, new: CassetteModel) -> str:
    protocol = by_name(found.protocol)
    a = (
        messages_of(recorded.connections[found.recorded], protocol)
        if found.recorded is not None
        else []
    )
    b = messages_of(new.connections[found.new], protocol) if found.new is not None else []
    where = found.where
    name = f" · {esc(found.protocol)}" if found.protocol else ""
    head = (
        f'<section class="connection" id="diff-{found.recorded}-{found.new}">'
        f'<h2>{esc(where)} → <span class="target">{esc(found.target)}</span>{name}</h2>'
        f'<p class="meta">{len(found.changes)} change(s)</p>'
        + "".join(f'<p class="note">note: {esc(note)}</p>' for note in found.notes)
        + '<div class="pair heads"><div class="cell">recorded</div><div class="cell">new</div>'
        "</div>"
    )
    rows = _aligned(a, b, found.changes)
    return head + _folded(rows, protocol) + "</section>"


def _aligned(a: Sequence[Message], b: Sequence[Message], changes: Sequence[Change]) -> list[_Row]:
    """Both conversations as rows: each change where it happened, the unchanged
    messages between them paired in order."""
    rows: list[_Row] = []
    i = j = 0
    for change in changes:
        ti = change.recorded.number - 1 if change.recorded is not None else None
        tj = change.new.number - 1 if change.new is not None else None
        while (ti is None or i < ti) and (tj is None or j < tj) and i < len(a) and j < len(b):
            rows.append(("same", a[i], b[j]))
            i, j = i + 1, j + 1
        while ti is not None and i < ti:  # not paired with anything: shown on its side
            rows.append(("same", a[i], None))
            i += 1
        while tj is not None and j < tj:
            rows.append(("same", None, b[j]))
            j += 1
        rows.append((change.kind, change.recorded, change.new))
        i = ti + 1 if ti is not None else i
        j = tj + 1 if tj is not None else j
    while i < len(a) and j < len(b):
        rows.append(("same", a[i], b[j]))
        i, j = i + 1, j + 1
    rows += [("same", m, None) for m in a[i:]] + [("same", None, m) for m in b[j:]]
    return rows


def _folded(rows: list[_Row], protocol: WireProtocol | None) -> str:
    """The rows, with runs of unchanged ones folded but for CONTEXT beside each change."""
    out: list[str] = []
    at = 0
    while at < len(rows):
        if rows[at][0] != "same":
            out.append(_pair(rows[at], protocol))
            at += 1
            continue
        end = at
        while end < len(rows) and rows[end][0] == "same":
            end += 1
        keep_head = CONTEXT if at > 0 else 0
        keep_tail = CONTEXT if end < len(rows) else 0
        if end - at <= keep_head + keep_tail + 1:
            out += [_pair(row, protocol) for row in rows[at:end]]
        else:
            out += [_pair(row, protocol) for row in rows[at : at + keep_head]]
            hidden = rows[at + keep_head : end - keep_tail]
            out.append(
                f'<details class="fold"><summary>⋯ {len(hidden)} unchanged message(s)</summary>'
                + "".join(_pair(row, protocol) for row in hidden)
                + "</details>"
            )
            out += [_pair(row, protocol) for row in rows[end - keep_tail : end]]
        at = end
    return "".join(out)


def _pair(row: _Row, protocol: WireProtocol | None) -> str:
    kind, old, new = row
    at = None
    if kind == "changed" and old is not None and new is not None:
        at = first_difference(old.data, new.data)
    absent = "(not in the recorded cassette)" if old is None else "(not in the new cassette)"
    cells = [
        _cell(message, protocol, at, detailed=kind != "same")
        if message is not None
        else f'<div class="cell none">{absent if kind != "same" else ""}</div>'
        for message in (old, new)
    ]
    return (
        f'<div class="pair {kind}" title="{_KINDS.get(kind, "unchanged")}">{"".join(cells)}</div>'
    )


def _cell(
    message: Message, protocol: WireProtocol | None, at: int | None, *, detailed: bool
) -> str:
    arrow = _SIDES.get(message.kind, message.kind.replace("_", " "))
    size = f" · {len(message.data)} bytes" if message.data else ""
    try:
        line = decoded(message, protocol)
    except Exception:  # a protocol that cannot render these bytes: the bytes say it
        line = ""
    head = (
        f'<div class="arrow"><span class="num">#{message.number}</span> {esc(arrow)}{size}'
        f' · <span class="when">{message.time:.6f}s</span></div>'
    )
    label = f'<div class="label">{esc(line)}</div>' if line else ""
    if not message.data:
        return f'<div class="cell {esc(message.kind)}">{head}{label}</div>'
    if at is not None:
        body = _diverging(message.data, at)
    else:
        body = esc(shown(message.data[:TEXT_BYTES]))
        if len(message.data) > TEXT_BYTES:
            body += f'<span class="more">… {len(message.data) - TEXT_BYTES} more bytes</span>'
    hex_part = ""
    if detailed:
        dump = "\n".join(hexdump(message.data[:HEX_BYTES]))
        if len(message.data) > HEX_BYTES:
            dump += f"\n… {len(message.data) - HEX_BYTES} more bytes"
        hex_part = f"<details><summary>hex</summary><pre>{esc(dump)}</pre></details>"
    return (
        f'<div class="cell {esc(message.kind)}">{head}{label}'
        f'<pre class="body">{body}</pre>{hex_part}</div>'
    )


_DIFF_CSS = """
main.diff{margin-left:0}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:8px;margin:3px 0}
.pair>.cell{min-width:0;padding:3px 6px;border-left:4px solid #ddd;border-radius:3px}
.pair.heads>.cell{font-weight:600;color:#555;border:none}
.pair.changed>.cell{background:#fff4d6;border-left-color:#e0a000}
.pair.removed>.cell:first-child{background:#ffe4e4;border-left-color:#c33}
.pair.added>.cell:last-child{background:#e2f5e2;border-left-color:#393}
.pair.timing>.cell{background:#e8eefc;border-left-color:#57c}
.cell.none{color:#888;font-style:italic;background:none}
.fold>summary{color:#888;font-style:italic;padding:2px 6px}
.legend .key{display:inline-block;margin-right:10px;padding:0 6px;border-left:4px solid}
.key.changed{background:#fff4d6;border-color:#e0a000}.key.removed{background:#ffe4e4;border-color:#c33}
.key.added{background:#e2f5e2;border-color:#393}.key.timing{background:#e8eefc;border-color:#57c}
.key.same{border-color:#ddd}.verdict{font-weight:600;margin:4px 0}.note{color:#a52;margin:2px 0}
"""
