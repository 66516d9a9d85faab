"""A cassette as one self-contained HTML page: a sequence diagram per connection.

The page fetches nothing (a Content-Security-Policy with ``default-src
'none'`` says so to the browser) and runs one inline script, allowed by its
sha256 hash.  A cassette is untrusted input: every piece of text taken from
it reaches the page through :func:`esc`, and the data the script reads is
JSON with ``<``, ``>``, ``&`` and the line separators escaped, read with
``textContent`` and written with ``textContent`` only.
"""

from __future__ import annotations

import base64
import hashlib
import html
import itertools
import json
from dataclasses import dataclass, field

from .cassette import CassetteModel
from .connection import Connection
from .events import (
    ClientClose,
    ClientData,
    ClientReset,
    ConnectRefused,
    ConnectTimedOut,
    ServerClose,
    ServerData,
    ServerReset,
    TlsStart,
)
from .faults import Fault
from .protocols import by_name, detect
from .protocols.base import WireProtocol
from .render import first_difference, hexdump, printable
from .transcript import _ID, ECHO_NOTES, describe_fault

#: Bytes of a message shown as text in the diagram; the hexdump shows up to HEX_BYTES.
TEXT_BYTES = 2048
HEX_BYTES = 4096
#: Pixels per second of a time gap, and the gap past which it is folded.
PIXELS_PER_SECOND = 200.0
FOLD_SECONDS = 0.5


def esc(text: str) -> str:
    """The one way text from a cassette reaches the page: made printable, then
    HTML-escaped with quotes (safe in element content and in quoted attributes)."""
    return html.escape(printable(text, lines=True), quote=True)


def _byte_text(value: int) -> str:
    if value == 0x5C:
        return "\\\\"
    if 0x20 <= value < 0x7F:
        return chr(value)
    return {0x0A: "\\n\n", 0x0D: "\\r", 0x09: "\\t"}.get(value, f"\\x{value:02x}")


_BYTE_TEXT = tuple(_byte_text(b) for b in range(256))


def shown(data: bytes) -> str:
    """Bytes as text a person reads: printable ASCII as is, the rest escaped as in a
    bytes literal, a newline after each ``\\n``."""
    return "".join(_BYTE_TEXT[b] for b in data)


@dataclass
class _Message:
    side: str
    start: int  # offset in the side's byte stream
    data: bytes
    time: float
    cuts: list[int] = field(default_factory=list)  # stream offsets where a new chunk began
    complete: bool = True


_Row = tuple[str, str]  # (kind, html)


def render_view(cassette: CassetteModel, *, title: str) -> str:
    """The whole page for ``cassette``, titled ``title``."""
    hosts = ""
    if cassette.hosts:
        names = ", ".join(f"{n} → {' '.join(a)}" for n, a in sorted(cassette.hosts.items()))
        hosts = f'<p class="hosts">hosts: {esc(names)}</p>'
    summary = f'<p class="summary">{len(cassette.connections)} connection(s)</p>{hosts}'
    return _page(title, summary, list(enumerate(cassette.connections)))


def render_failure(
    connection: Connection,
    index: int,
    *,
    title: str,
    message: str,
    position: int | None,
    sent: bytes | None,
) -> str:
    """A page for one replay failure: the recorded client message and what the live
    client sent, side by side with their first difference marked, above the recorded
    connection's diagram."""
    recorded = _recorded_client_message(connection, position)
    live = sent if sent is not None else b""
    at = first_difference(recorded, live)
    where = f"event {position}" if position is not None else "an unknown event"
    compare = (
        '<section class="failure"><h2>where replay failed</h2>'
        f'<pre class="error">{esc(message)}</pre>'
        f'<p class="meta">connection {index}, {where}; the first difference is at byte '
        f'<span id="divergence">{at}</span></p>'
        '<div class="sides"><div><h3>recorded client message</h3>'
        f'<pre class="recorded">{_diverging(recorded, at)}</pre></div>'
        "<div><h3>what the live client sent</h3>"
        f'<pre class="live">{_diverging(live, at) if sent is not None else "(not known)"}'
        "</pre></div></div></section>"
    )
    return _page(title, "", [(index, connection)], lead=compare)


def _recorded_client_message(connection: Connection, position: int | None) -> bytes:
    """The run of client chunks at or after event ``position`` (from 1)."""
    events = connection.events
    index = max(0, (position or 1) - 1)
    while index < len(events) and type(events[index]) is not ClientData:
        index += 1
    run = []
    while index < len(events) and type(events[index]) is ClientData:
        run.append(events[index].data)
        index += 1
    return b"".join(run)


def _diverging(data: bytes, at: int) -> str:
    shown_bytes = data[: at + TEXT_BYTES]
    head, first, rest = shown_bytes[:at], shown_bytes[at : at + 1], shown_bytes[at + 1 :]
    marked = (
        f'<mark class="diverge">{esc(shown(first))}</mark>'
        if first
        else ('<mark class="diverge">(ends here)</mark>')
    )
    more = len(data) - len(shown_bytes)
    tail = f'<span class="more">… {more} more bytes</span>' if more > 0 else ""
    return esc(shown(head)) + marked + esc(shown(rest)) + tail


def _page(
    title: str, summary: str, connections: list[tuple[int, Connection]], *, lead: str = ""
) -> str:
    summaries: list[dict[str, object]] = []
    sections: list[str] = []
    for index, connection in connections:
        protocol = by_name(connection.protocol) or detect(connection)
        section, count = _connection(index, connection, protocol)
        sections.append(section)
        summaries.append(
            {
                "index": index,
                "target": printable(connection.target),
                "protocol": protocol.name if protocol is not None else "",
                "messages": count,
                "ending": connection.ending,
                "faults": sum(1 for e in connection.events if isinstance(e, Fault)),
            }
        )
    data = _script_json({"title": printable(title), "connections": summaries})
    csp = (
        "default-src 'none'; "
        f"script-src 'sha256-{_hash(_SCRIPT)}'; "
        "style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{esc(title)}</title>\n"
        f"<style>{_CSS}</style>\n"
        "</head><body>\n"
        f"<header><h1>{esc(title)}</h1>{summary}"
        '<input id="search" type="search" placeholder="search messages" '
        'aria-label="search messages"> <span id="found"></span></header>\n'
        '<nav id="connections" aria-label="connections"></nav>\n'
        f"<main>{lead}{''.join(sections)}</main>\n"
        f'<script type="application/json" id="data">{data}</script>\n'
        f"<script>{_SCRIPT}</script>\n"
        "</body></html>\n"
    )


def _hash(script: str) -> str:
    return base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


def _script_json(value: object) -> str:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>``, ``&`` or line separators."""
    text = json.dumps(value, ensure_ascii=True)  # U+2028/9 and all non-ASCII become \\uXXXX
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _messages(
    connection: Connection, protocol: WireProtocol | None
) -> list[tuple[int, _Message | None]]:
    """(event index, message or None for a non-data event), in the order they happened."""
    out: list[tuple[int, _Message | None]] = []
    offset = {"client": 0, "server": 0}  # stream offset of the pending buffer's start
    pending: dict[str, _Message] = {}
    last_row: dict[str, int] = {}
    for index, event in enumerate(connection.events):
        kind = type(event)
        if kind is not ClientData and kind is not ServerData:
            out.append((index, None))
            continue
        side = event.kind
        if protocol is None:
            out.append((index, _Message(side, offset[side], event.data, event.time)))
            offset[side] += len(event.data)
            last_row[side] = len(out)
            continue
        held = pending.get(side)
        if held is None:
            held = _Message(side, offset[side], b"", event.time)
        else:
            held.cuts.append(held.start + len(held.data))
        held.data += event.data
        held.time = event.time
        consumed = 0
        try:
            ends = protocol.split(held.data, side)
        except Exception:  # a protocol that cannot frame these bytes: show the chunk whole
            ends = [len(held.data)]
        for end in ends:
            if end <= consumed or end > len(held.data):
                continue
            start = held.start + consumed
            cuts = [c for c in held.cuts if start < c < held.start + end]
            out.append((index, _Message(side, start, held.data[consumed:end], event.time, cuts)))
            consumed = end
        rest = held.data[consumed:]
        if rest:
            start = held.start + consumed
            cuts = [c for c in held.cuts if c > start]
            pending[side] = _Message(side, start, rest, event.time, cuts)
        else:
            pending.pop(side, None)
        offset[side] = held.start + len(held.data)
        last_row[side] = len(out)
    # Bytes that never made a whole message, placed after their side's last chunk.
    for side in sorted(pending, key=lambda s: -last_row.get(s, 0)):
        held = pending[side]
        held.complete = False
        out.insert(last_row.get(side, len(out)), (-1, held))
    return out


def _grey_spans(
    connection: Connection, protocol: WireProtocol | None, messages: list[_Message]
) -> dict[str, list[tuple[int, int, str]]]:
    """Stream spans to grey, per side: volatile (learned or declared by the protocol)
    and identifier-like values the server echoes back (replay writes the live ones)."""
    spans: dict[str, list[tuple[int, int, str]]] = {"client": [], "server": []}
    # Learned volatile spans count client messages as runs of client chunks.
    run_start, number, stream = 0, 0, 0
    events = connection.events
    for index, event in enumerate(events):
        if type(event) is not ClientData:
            continue
        if index == 0 or type(events[index - 1]) is not ClientData:
            run_start = stream
        stream += len(event.data)
        if index + 1 < len(events) and type(events[index + 1]) is ClientData:
            continue
        for start, end in connection.volatile_in(number):
            spans["client"].append((run_start + start, run_start + end, "volatile"))
        number += 1
    if protocol is not None:
        for message in messages:
            if message.side != "client" or not message.complete:
                continue
            try:
                declared = protocol.volatile(message.data)
            except Exception:
                declared = []
            for start, end in declared:
                spans["client"].append((message.start + start, message.start + end, "volatile"))
    # Echoed values: as transcript.py finds them, placed in both streams.
    client = connection.client_bytes
    server = connection.server_bytes
    seen: set[bytes] = set()
    for match in _ID.finditer(client):
        value = match.group()
        if value in seen or not (any(48 <= b <= 57 for b in value) and any(b > 57 for b in value)):
            continue
        found = server.find(value)
        if found < 0:
            continue
        seen.add(value)
        spans["client"].append((match.start(), match.end(), "echo"))
        while found >= 0:
            spans["server"].append((found, found + len(value), "echo"))
            found = server.find(value, found + len(value))
        if len(seen) >= ECHO_NOTES * 20:
            break
    for side in spans:
        spans[side].sort()
    return spans


def _body(message: _Message, spans: list[tuple[int, int, str]]) -> str:
    """The message's text with chunk boundaries and greyed spans marked."""
    limit = min(len(message.data), TEXT_BYTES)
    lo, hi = message.start, message.start + limit
    marks: dict[int, list[str]] = {}
    points = {lo, hi}
    for cut in message.cuts:
        if lo < cut < hi:
            points.add(cut)
            marks.setdefault(cut, []).append('<span class="cut" title="chunk boundary"></span>')
    inside = [(max(s, lo), min(e, hi), c) for s, e, c in spans if s < hi and e > lo]
    for start, end, _ in inside:
        points.update((start, end))
    ordered = sorted(points)
    parts: list[str] = []
    for a, b in itertools.pairwise(ordered):
        parts += marks.get(a, [])
        text = esc(shown(message.data[a - lo : b - lo]))
        kinds = sorted({c for s, e, c in inside if s <= a and b <= e})
        if kinds:
            why = " ".join(kinds)
            note = (
                "volatile: may differ between runs"
                if "volatile" in kinds
                else ("echoed by the server: replay writes the live client's value")
            )
            parts.append(f'<span class="{why}" title="{note}">{text}</span>')
        else:
            parts.append(text)
    more = len(message.data) - limit
    if more > 0:
        parts.append(f'<span class="more">… {more} more bytes</span>')
    return "".join(parts)


def _render_line(protocol: WireProtocol | None, message: _Message) -> str:
    if protocol is None or not message.complete:
        return ""
    try:
        return protocol.render(message.data, message.side)
    except Exception:
        return ""


_SIDE_EVENTS = {
    ClientClose: ("client", "FIN", "client closed its side (FIN)"),
    ServerClose: ("server", "FIN", "server closed its side (FIN)"),
    ClientReset: ("client", "RST", "client reset the connection (RST)"),
    ServerReset: ("server", "RST", "server reset the connection (RST)"),
    ConnectRefused: ("server", "refused", "the server refused the connect"),
    ConnectTimedOut: ("server", "timeout", "the connect timed out"),
}


def _connection(
    index: int, connection: Connection, protocol: WireProtocol | None
) -> tuple[str, int]:
    listed = _messages(connection, protocol)
    messages = [m for _, m in listed if m is not None]
    spans = _grey_spans(connection, protocol, messages)
    rows: list[str] = []
    previous: float | None = None
    number = 0
    closed: set[str] = set()
    half_close = False
    for event_index, message in listed:
        event = connection.events[event_index] if message is None else None
        time = message.time if message is not None else (event.time if event else 0.0)
        is_fault = isinstance(event, Fault)
        if not is_fault and previous is not None and time - previous > 0:
            rows.append(_gap(time - previous))
        if not is_fault:
            previous = time if previous is None else max(previous, time)
        when = "injected" if is_fault else f"{time:.6f}s"
        if message is not None:
            number += 1
            if closed and message.side not in closed:
                half_close = True  # this side kept sending after the other's FIN
            rows.append(_message_row(index, number, message, when, protocol, spans))
        elif isinstance(event, Fault):
            rows.append(
                f'<div class="row fault" data-event="{event_index + 1}"><span class="when">'
                f'{when}</span><span class="mark">⚡ FAULT {esc(describe_fault(event))}'
                "</span></div>"
            )
        elif isinstance(event, TlsStart):
            sni = esc(event.sni) if event.sni else "no SNI"
            alpn = esc(event.alpn) if event.alpn else "no ALPN"
            rows.append(
                f'<div class="row tls"><span class="when">{when}</span><span class="mark">'
                f'🔒 TLS begins: <span class="sni">SNI {sni}</span>, '
                f'<span class="alpn">ALPN {alpn}</span>; what follows is the plaintext inside'
                "</span></div>"
            )
        elif event is not None:
            side, short, long = _SIDE_EVENTS.get(type(event), ("server", event.kind, event.kind))
            if short == "FIN":
                closed.add(side)
            rows.append(
                f'<div class="row end {side}"><span class="when">{when}</span>'
                f'<span class="lane-c">{short if side == "client" else ""}</span>'
                f'<span class="mark">{long}</span>'
                f'<span class="lane-s">{short if side == "server" else ""}</span></div>'
            )
    ending = esc(connection.ending)
    if half_close:
        ending += " (half-close: one side kept sending after the other's FIN)"
    sent = len(connection.client_bytes)
    received = len(connection.server_bytes)
    name = protocol.name if protocol is not None else "raw"
    unit = f"{name} messages" if protocol is not None else "chunks"
    head = (
        f'<section class="connection" id="conn-{index}">'
        f'<h2>connection {index} → <span class="target">{esc(connection.target)}</span></h2>'
        f'<p class="meta">protocol {esc(name)} · {number} {esc(unit)} · {sent} bytes sent, '
        f"{received} received · started at +{connection.start:.6f}s</p>"
        '<div class="diagram"><div class="row lanes"><span class="when"></span>'
        '<span class="lane-c">client</span><span class="mark"></span>'
        f'<span class="lane-s">{esc(connection.target)}</span></div>'
    )
    tail = f'</div><p class="ending">ended: {ending}</p></section>'
    return head + "".join(rows) + tail, number


def _gap(seconds: float) -> str:
    if seconds > FOLD_SECONDS:
        return (
            f'<div class="row gap folded" title="a gap of {seconds:.3f} s, folded">'
            f'<span class="when"></span><span class="mark">⋯ {seconds:.3f} s later</span></div>'
        )
    height = round(seconds * PIXELS_PER_SECOND)
    if height < 2:
        return ""
    return f'<div class="row gap" style="height:{height}px" title="{seconds:.3f} s"></div>'


def _message_row(
    index: int,
    number: int,
    message: _Message,
    when: str,
    protocol: WireProtocol | None,
    spans: dict[str, list[tuple[int, int, str]]],
) -> str:
    line = _render_line(protocol, message)
    chunks = len(message.cuts) + 1
    size = f"{len(message.data)} bytes" + (f" in {chunks} chunks" if chunks > 1 else "")
    if not message.complete:
        size += ", incomplete"
    arrow = "→" if message.side == "client" else "←"
    shown_hex = message.data[:HEX_BYTES]
    dump = "\n".join(hexdump(shown_hex, offset=0))
    if len(message.data) > len(shown_hex):
        dump += f"\n… {len(message.data) - len(shown_hex)} more bytes"
    label = f'<div class="label">{esc(line)}</div>' if line else ""
    return (
        f'<div class="row msg {message.side}" id="c{index}m{number}">'
        f'<span class="when">{when}</span><span class="lane-c"></span>'
        f'<div class="mark"><div class="arrow"><span class="num">#{number}</span> {arrow} '
        f'<span class="size">{size}</span></div>{label}'
        f'<pre class="body">{_body(message, spans[message.side])}</pre>'
        f"<details><summary>hex</summary><pre>{esc(dump)}</pre></details></div>"
        '<span class="lane-s"></span></div>'
    )


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ccc;
padding:8px 16px;z-index:2}
h1{font-size:18px;margin:0 0 4px}h2{font-size:16px;margin:0}
.summary,.hosts{margin:0;color:#555}
#search{width:24em;padding:3px 6px}
nav{position:fixed;top:110px;left:0;width:220px;bottom:0;overflow:auto;padding:8px;
border-right:1px solid #ddd;background:#fff}
nav a{display:block;padding:2px 4px;color:#036;text-decoration:none;font-size:13px}
nav a:hover{background:#eef}nav .faulty{color:#b00}
main{margin-left:240px;padding:8px 16px}
.connection{background:#fff;border:1px solid #ddd;border-radius:6px;margin:12px 0;padding:10px}
.meta,.ending{color:#555;margin:4px 0}.ending{font-weight:600}
.row{display:grid;grid-template-columns:8em 5em 1fr 5em;align-items:start;position:relative}
.row>.lane-c,.row>.lane-s{text-align:center;font-size:12px;font-weight:600;align-self:stretch}
.row>.lane-c{background:linear-gradient(#5a8,#5a8) center/2px 100% no-repeat}
.row>.lane-s{background:linear-gradient(#c84,#c84) center/2px 100% no-repeat}
.row.lanes>span{background:none;padding-bottom:4px}
.row.lanes .lane-c{color:#286}.row.lanes .lane-s{color:#a52;overflow-wrap:anywhere}
.gap{display:block;background:repeating-linear-gradient(90deg,transparent 0 8em,#eee 8em 100%)}
.gap.folded{display:grid;color:#888;font-style:italic}
.when{color:#888;font:12px monospace;padding-top:2px}
.mark{min-width:0;padding:2px 6px}
.msg .arrow{font:12px monospace;border-bottom:2px solid;position:relative}
.msg.client .arrow{border-color:#5a8;text-align:left}
.msg.server .arrow{border-color:#c84;text-align:right}
.msg.client .arrow::after{content:"";position:absolute;right:-2px;bottom:-6px;
border:5px solid transparent;border-left:9px solid #5a8}
.msg.server .arrow::after{content:"";position:absolute;left:-2px;bottom:-6px;
border:5px solid transparent;border-right:9px solid #c84}
.label{font:600 13px monospace;margin:3px 0;overflow-wrap:anywhere}
.msg.server .label{text-align:right}
pre{margin:2px 0;font:12px monospace;white-space:pre-wrap;overflow-wrap:anywhere;
max-height:7.5em;overflow:auto;background:#f6f6f6;padding:3px}
.cut{display:inline-block;width:0;height:1.1em;border-left:2px dashed #36c;margin:0 1px;
vertical-align:text-bottom}
.volatile,.echo{color:#999;background:#e8e8e8}.more{color:#888}
details summary{cursor:pointer;color:#36c;font-size:12px}
.fault .mark{color:#fff;background:#c00;font-weight:700;border-radius:3px;grid-column:2/5}
.tls .mark{color:#225;background:#dde6ff;border-radius:3px;grid-column:2/5}
.end .mark{color:#555;font-style:italic}
.end.client .lane-c,.end.server .lane-s{color:#b00}
.row.msg{content-visibility:auto;contain-intrinsic-size:auto 160px}
.failure{background:#fff;border:2px solid #c00;border-radius:6px;padding:10px}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.error{max-height:12em}
mark.diverge{background:#f66;color:#000;font-weight:700}
.hidden{display:none}
"""

# The page's one script: builds the list of connections from the JSON data and
# filters messages by the search box.  It writes text with textContent only.
_SCRIPT = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("data").textContent);
  var nav = document.getElementById("connections");
  data.connections.forEach(function (c) {
    var a = document.createElement("a");
    a.href = "#conn-" + c.index;
    a.className = "jump" + (c.faults ? " faulty" : "");
    a.textContent = "#" + c.index + " " + c.target + (c.protocol ? " · " + c.protocol : "") +
      " · " + c.messages + " msgs" + (c.faults ? " · " + c.faults + " fault(s)" : "");
    a.title = "ended: " + c.ending;
    nav.appendChild(a);
  });
  var search = document.getElementById("search");
  var found = document.getElementById("found");
  var rows = Array.prototype.slice.call(document.querySelectorAll(".row.msg"));
  var texts = rows.map(function (r) { return r.textContent.toLowerCase(); });
  search.addEventListener("input", function () {
    var q = search.value.toLowerCase();
    var n = 0;
    rows.forEach(function (r, i) {
      var hit = !q || texts[i].indexOf(q) >= 0;
      r.classList.toggle("hidden", !hit);
      if (hit) { n += 1; }
    });
    found.textContent = q ? n + " of " + rows.length + " messages match" : "";
  });
  document.body.setAttribute("data-ready", String(rows.length));
})();
"""
