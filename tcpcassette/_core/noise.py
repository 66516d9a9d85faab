"""What a live client message may differ in from the recorded one, and why: named rules.

Replay is strict: a live client message must equal the recorded one.  This
module is the one place where it may differ, and every byte it lets differ is
let through by a named rule, never by similarity:

``binding``
    The recorded bytes were already seen replaced by live ones earlier in the
    cassette's use (an echo, below), and the live message uses the same live
    value again: an IMAP tag prefix chosen at connect time, a session token.
``echo``
    The recorded bytes of a differing span come back in server bytes recorded
    later, so the client chose them and the server repeats them (a DNS id, an
    inbox subject, a tag).  The live bytes are then written wherever the
    recorded ones occur in later replies, so the client finds its own value.
    Evidence, so that a coincidence does not pass for an echo:

    * a value of at least :data:`MIN_ECHO_ANYWHERE` bytes that occurs anywhere
      in a later reply;
    * a shorter value of at least :data:`MIN_ECHO_ANCHORED` bytes only where it
      sits at the same offset in the reply (from the start of the reply, or of
      a line) as in the client message.  Such a value is replaced only there.
``random``
    Both the recorded and the live value look random, by :func:`looks_random`:
    a UUID, a run of :data:`MIN_RANDOM_TEXT` or more hex or base64 characters
    with the character spread of random text, or :data:`MIN_RANDOM_BINARY` or
    more bytes of binary with nearly every byte distinct.  Short or
    low-entropy differences (``key1`` and ``key2``, ``GET`` and ``SET``, a small
    integer) never pass this rule.
``learned``
    The span was found to differ between two recordings of the same test
    (``tcpcassette learn``) and is stored in the cassette as volatile.
``scrubbed``
    The recording replaced a credential there by a placeholder before it was
    saved (:mod:`tcpcassette._core.scrub`), so it does not hold the value the
    live client sends.  Accepted in every mode, ``"off"`` included: the
    recorded bytes cannot be sent by any client.

Anything else is a mismatch, and the verdict says which spans were accepted
by which rule next to the one that was not.  ``noise="off"`` accepts nothing
here; ``noise="learned"`` accepts learned spans (and their echoes) only.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from difflib import SequenceMatcher
from typing import Literal

from .errors import choice, quoted
from .events import ClientData, Event, ServerData
from .protocols.base import WireProtocol
from .scrub import secret_spans

#: A value at least this long counts as echoed wherever it recurs in a later reply.
MIN_ECHO_ANYWHERE = 6
#: A shorter echoed value counts only at the same offset; shorter still never.
MIN_ECHO_ANCHORED = 2
#: Text runs (hex, base64) at least this long may look random.
MIN_RANDOM_TEXT = 16
#: Binary runs at least this long may look random.
MIN_RANDOM_BINARY = 8
#: Bits of entropy per character a text run needs to look random.
RANDOM_TEXT_ENTROPY = 3.3
#: Messages longer than this are compared by position only (no alignment).
MAX_ALIGNED_MESSAGE = 16 * 1024

_TOKEN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_NAMED_VALUE = re.compile(rb"[A-Za-z_-]{1,32}=(?=[^=])")
_UUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class NoiseMode(str, enum.Enum):
    """How much of a difference between runs replay tolerates, beyond the protocol's own rules."""

    #: Echoes, random-looking values and learned spans.
    AUTO = "auto"
    #: Learned spans (and their echoes) only.
    LEARNED = "learned"
    #: Nothing: client bytes must equal the recording.
    OFF = "off"

    @classmethod
    def parse(cls, value: str | NoiseMode) -> NoiseMode:
        return choice(
            cls, value, lambda valid: f"noise must be one of {quoted(valid)}, not {value!r}"
        )


#: A protocol's client framing: the end offsets of the complete messages in ``data``.
Splitter = Callable[[bytes], list[int]]

Rule = Literal["binding", "echo", "random", "learned", "protocol", "scrubbed"]
Anchor = Literal["anywhere", "message", "line"]


@dataclass(frozen=True, slots=True)
class Substitution:
    """Live bytes to write where recorded ones occur, in later messages of both sides.

    Attributes:
        recorded: the recorded value.
        live: the live client's value.
        anchor: ``"anywhere"`` (every occurrence), ``"message"`` (at ``offset``
            from the start of a message) or ``"line"`` (at ``offset`` from the
            start of any line).
        offset: where, for anchored substitutions.
    """

    recorded: bytes
    live: bytes
    anchor: Anchor = "anywhere"
    offset: int = 0

    def apply(self, data: bytes) -> bytes:
        """``data`` with the recorded value replaced where this substitution reaches."""
        old, new = self.recorded, self.live
        if self.anchor == "anywhere":
            return data.replace(old, new) if old in data else data
        starts = [0] if self.anchor == "message" else _line_starts(data)
        out = bytearray()
        done = 0
        for start in starts:
            at = start + self.offset
            if at >= done and data[at : at + len(old)] == old:
                out += data[done:at]
                out += new
                done = at + len(old)
        if not done:
            return data
        out += data[done:]
        return bytes(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """A region where the live message differs from the recorded one.

    ``start``/``end`` are offsets in the recorded message, ``live_start``/``live_end``
    in the live one; ``rule`` says why it was accepted (None: it was not).
    """

    start: int
    end: int
    live_start: int
    live_end: int
    rule: Rule | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The outcome of comparing a live client message with the recorded one."""

    spans: tuple[Span, ...] = ()
    substitutions: tuple[Substitution, ...] = ()
    tried: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(s.rule is not None for s in self.spans)

    @property
    def accepted(self) -> tuple[Span, ...]:
        return tuple(s for s in self.spans if s.rule is not None)

    @property
    def rejected(self) -> tuple[Span, ...]:
        return tuple(s for s in self.spans if s.rule is None)


@dataclass(slots=True)
class Bindings:
    """Values seen replaced so far, applied to later recorded bytes of both sides."""

    substitutions: list[Substitution] = field(default_factory=list)

    def add(self, found: Iterable[Substitution]) -> None:
        for s in found:
            if s not in self.substitutions and s.recorded != s.live:
                self.substitutions.append(s)

    def apply(self, data: bytes) -> bytes:
        for s in self.substitutions:
            data = s.apply(data)
        return data

    def __bool__(self) -> bool:
        return bool(self.substitutions)


# -- classification ------------------------------------------------------------------


def _entropy(data: bytes) -> float:
    counts: dict[int, int] = {}
    for b in data:
        counts[b] = counts.get(b, 0) + 1
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def looks_random(value: bytes) -> bool:
    """True for a value a client made up at random: a UUID, a long hex or base64 run, binary noise.

    Text: a UUID, or at least :data:`MIN_RANDOM_TEXT` token characters (hex,
    base64, base64url) with :data:`RANDOM_TEXT_ENTROPY` bits per character
    and digits or mixed case.  Binary: at least :data:`MIN_RANDOM_BINARY`
    bytes, at least three quarters of them distinct, not all printable.
    """
    if _UUID.fullmatch(value):
        return True
    named = _NAMED_VALUE.match(value)
    if named:
        value = value[named.end() :]  # "r=<nonce>": judge the value, not its name
        if _UUID.fullmatch(value):
            return True
    # "--<boundary>" and "--<boundary>--" (multipart): judge what the dashes delimit.
    value = value.strip(b"-") or value
    if all(b in _TOKEN for b in value):
        if len(value) < MIN_RANDOM_TEXT:
            return False
        if all(b in _HEX for b in value):
            return _entropy(value) >= 3.0
        has_digit = any(48 <= b <= 57 for b in value)
        mixed_case = any(65 <= b <= 90 for b in value) and any(97 <= b <= 122 for b in value)
        return (has_digit or mixed_case) and _entropy(value) >= RANDOM_TEXT_ENTROPY
    if len(value) < MIN_RANDOM_BINARY:
        return False
    return not _is_text(value) and len(set(value)) * 4 >= len(value) * 3


def token_around(data: bytes, start: int, end: int) -> tuple[int, int]:
    """``start:end`` widened to the whole token (letters, digits, ``+/=_-``) it lies in."""
    if not all(b in _TOKEN for b in data[start:end]):
        return start, end
    while start > 0 and data[start - 1] in _TOKEN:
        start -= 1
    while end < len(data) and data[end] in _TOKEN:
        end += 1
    return start, end


def _is_token(data: bytes) -> bool:
    return bool(data) and all(b in _TOKEN for b in data)


def _is_text(data: bytes) -> bool:
    return all(32 <= b < 127 or b in (9, 10, 13) for b in data)


def _chosen_value(old: bytes, new: bytes) -> bool:
    """True unless two words differ only a little (``key1`` and ``key2``): a real change.

    A value a client makes up differs in several of its characters; a text
    token that differs in fewer than two, or in less than a third of its
    length, is another key.  (Two random values share a run of characters
    now and then: an IMAP tag prefix of four letters from sixteen keeps two
    different letters in all but about one run in a thousand.)
    """
    if not old.strip() or not new.strip():
        return False  # line ends and spaces are structure, never a value
    if not (_is_token(old) and _is_token(new)):
        return True
    prefix = _common_prefix(old, new)
    suffix = _common_prefix(old[prefix:][::-1], new[prefix:][::-1])
    differing = max(len(old), len(new)) - prefix - suffix
    return differing >= 2 and differing * 3 >= max(len(old), len(new))


def _line_starts(data: bytes) -> list[int]:
    starts = [0]
    at = data.find(b"\n")
    while at != -1 and at + 1 < len(data):
        starts.append(at + 1)
        at = data.find(b"\n", at + 1)
    return starts


def _line_offset(data: bytes, at: int) -> int:
    return at - (data.rfind(b"\n", 0, at) + 1)


# -- differences ---------------------------------------------------------------------


def differences(recorded: bytes, live: bytes) -> list[tuple[int, int, int, int]]:
    """The regions where ``live`` differs from ``recorded``: ``(start, end, live_start, live_end)``.

    Equal lengths are compared byte by byte (runs closer than two bytes are
    merged); other lengths are aligned, for messages up to
    :data:`MAX_ALIGNED_MESSAGE` bytes, and compared as one region beyond.
    """
    if len(recorded) == len(live):
        runs: list[tuple[int, int, int, int]] = []
        i, n = 0, len(recorded)
        while i < n:
            if recorded[i] == live[i]:
                i += 1
                continue
            j = i
            while j < n and (recorded[j] != live[j] or recorded[j : j + 2] != live[j : j + 2]):
                j += 1
            runs.append((i, j, i, j))
            i = j
        return runs
    if max(len(recorded), len(live)) > MAX_ALIGNED_MESSAGE:
        prefix = _common_prefix(recorded, live)
        return [(prefix, len(recorded), prefix, len(live))]
    matcher = SequenceMatcher(None, recorded, live, autojunk=False)
    return [(i1, i2, j1, j2) for op, i1, i2, j1, j2 in matcher.get_opcodes() if op != "equal"]


def by_token(
    recorded: bytes, regions: list[tuple[int, int, int, int]]
) -> list[tuple[int, int, int, int]]:
    """Regions that lie in one token merged, so a value is judged once, whole."""
    merged: list[tuple[int, int, int, int]] = []
    last_token_end = -1
    for region in regions:
        start, end, _, live_end = region
        token_start, token_end = token_around(recorded, start, end)
        if merged and token_start < last_token_end:
            s, _, ls, _ = merged[-1]
            merged[-1] = (s, end, ls, live_end)
        else:
            merged.append(region)
        last_token_end = max(last_token_end, token_end)
    return merged


def _common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


# -- the comparison --------------------------------------------------------------------


def compare(
    recorded: bytes,
    live: bytes,
    *,
    mode: NoiseMode = NoiseMode.AUTO,
    replies: Sequence[bytes] = (),
    learned: Sequence[tuple[int, int]] = (),
    fields: Sequence[tuple[int, int]] = (),
    protocol: str = "",
    elsewhere: Sequence[bytes] = (),
    scrubbed: Sequence[tuple[int, int]] = (),
) -> Verdict:
    """Compare a live client message with the recorded one, by the module's rules.

    Args:
        recorded: the recorded client message (with earlier bindings applied).
        live: what the live client sent for it.
        mode: which rules may accept a difference.
        replies: server replies recorded after this message, in order, where
            an echo of the client's value is looked for.
        elsewhere: server bytes of the cassette's other connections, where a
            long value (:data:`MIN_ECHO_ANYWHERE`) the client chose once and
            used on another connection counts as echoed too.
        learned: ``(start, end)`` spans of ``recorded`` known to be volatile.
        fields: ``(start, end)`` spans of ``recorded`` that ``protocol``
            declares volatile (a client library's version, say); tolerated in
            every mode but ``"off"``.
        scrubbed: ``(start, end)`` spans of ``recorded`` where a credential was
            scrubbed; tolerated in every mode.

    Returns:
        Every differing span with the rule that accepted it (or None), and
        the substitutions to apply to later bytes.
    """
    if recorded == live:
        return Verdict()
    tried: list[str] = ["scrubbed credentials"] if scrubbed else []
    if mode is NoiseMode.OFF and scrubbed:
        learned, fields = (), ()
    elif mode is NoiseMode.OFF:
        regions = differences(recorded, live)[:1] or [(0, len(recorded), 0, len(live))]
        exact = tuple(Span(start=a, end=b, live_start=c, live_end=d) for a, b, c, d in regions)
        return Verdict(spans=exact, tried=("exact bytes (noise='off')",))
    if fields:
        tried.append(f"{protocol} fields")
    tried.append("learned spans")
    if mode is NoiseMode.AUTO:
        tried += ["echo in later replies", "random-looking values"]
    spans: list[Span] = []
    substitutions: list[Substitution] = []
    for start, end, live_start, live_end in by_token(recorded, differences(recorded, live)):
        span, found = _judge(
            recorded,
            live,
            start,
            end,
            live_start,
            live_end,
            mode=mode,
            replies=replies,
            learned=learned,
            fields=fields,
            protocol=protocol,
            elsewhere=elsewhere,
            scrubbed=scrubbed,
        )
        spans.append(span)
        substitutions += found
    return Verdict(spans=tuple(spans), substitutions=tuple(substitutions), tried=tuple(tried))


def _judge(
    recorded: bytes,
    live: bytes,
    start: int,
    end: int,
    live_start: int,
    live_end: int,
    *,
    mode: NoiseMode,
    replies: Sequence[bytes],
    learned: Sequence[tuple[int, int]],
    fields: Sequence[tuple[int, int]] = (),
    protocol: str = "",
    elsewhere: Sequence[bytes] = (),
    scrubbed: Sequence[tuple[int, int]] = (),
) -> tuple[Span, list[Substitution]]:
    # Judge the whole token a difference lies in: "KGMO1" and "XQZA1", not "KGMO" and "XQZA".
    ts, te = token_around(recorded, start, end)
    shift = live_start - start
    ls, le = token_around(live, live_start, live_end)
    if (ts + shift, te + (live_end - end)) != (ls, le):
        # The tokens do not line up on both sides: judge the bare difference.
        ts, te, ls, le = start, end, live_start, live_end
    old, new = recorded[ts:te], live[ls:le]
    base = Span(start=ts, end=te, live_start=ls, live_end=le)
    if any(a <= start and end <= b for a, b in scrubbed):
        return replace(base, rule="scrubbed", detail="a credential scrubbed when recorded"), []
    if any(a <= start and end <= b for a, b in fields):
        return replace(base, rule="protocol", detail=f"a {protocol} field that varies"), []
    if any(a <= start and end <= b for a, b in learned):
        echoes = _echoes(recorded, old, new, ts, replies)
        return replace(base, rule="learned", detail="learned as volatile"), echoes
    if mode is not NoiseMode.AUTO:
        return base, []
    echoes = _echoes(recorded, old, new, ts, replies, elsewhere) if _chosen_value(old, new) else []
    if not echoes and end - start < MIN_ECHO_ANCHORED and not _is_text(recorded):
        # A short binary difference (a 16-bit id with one byte alike): try
        # the windows of the shortest echoable length around it.
        for ws in range(max(0, end - MIN_ECHO_ANCHORED), start + 1):
            we = ws + MIN_ECHO_ANCHORED
            if we <= len(recorded) and we - start + live_start <= len(live):
                window_new = live[ws - start + live_start : we - start + live_start]
                echoes = _echoes(recorded, recorded[ws:we], window_new, ws, replies)
                if echoes:
                    ts = ws
                    break
    if echoes:
        first = echoes[0]
        where = "anywhere" if first.anchor == "anywhere" else f"{first.anchor} byte {first.offset}"
        return replace(base, rule="echo", detail=f"echoed in a later reply ({where})"), [
            *echoes,
            *_bare(echoes, recorded[start:end], live[live_start:live_end], start - ts),
        ]
    if looks_random(old) and looks_random(new):
        return replace(base, rule="random", detail="random-looking on both sides"), []
    return base, []


def _bare(echoes: Sequence[Substitution], old: bytes, new: bytes, inset: int) -> list[Substitution]:
    """The bare difference inside an echoed token, bound where the token was.

    A token reused with another suffix (a tag prefix and a counter: ``KGMO1``,
    then ``KGMO2``) is then recognised in later messages too.  Bare values
    shorter than the evidence rules allow are not bound.
    """
    if not inset and len(old) == len(echoes[0].recorded):
        return []  # the difference is the whole token
    out = []
    for echo in echoes:
        if echo.anchor == "anywhere":
            if len(old) >= MIN_ECHO_ANYWHERE:
                out.append(Substitution(old, new, "anywhere"))
        elif len(old) >= MIN_ECHO_ANCHORED:
            out.append(Substitution(old, new, echo.anchor, echo.offset + inset))
    return out


def _echoes(
    recorded: bytes,
    old: bytes,
    new: bytes,
    at: int,
    replies: Sequence[bytes],
    elsewhere: Sequence[bytes] = (),
) -> list[Substitution]:
    """How ``old`` (at ``at`` in the client message) comes back in ``replies``, as substitutions."""
    if len(old) < MIN_ECHO_ANCHORED or not (replies or elsewhere):
        return []
    if len(old) >= MIN_ECHO_ANYWHERE:
        if any(old in reply for reply in replies) or any(old in other for other in elsewhere):
            return [Substitution(old, new, "anywhere")]
        return []
    found: list[Substitution] = []
    if any(reply[at : at + len(old)] == old for reply in replies):
        found.append(Substitution(old, new, "message", at))
    if not _is_text(recorded):
        return found  # lines mean nothing in binary messages
    line_at = _line_offset(recorded, at)
    if any(
        reply[s + line_at : s + line_at + len(old)] == old
        for reply in replies
        for s in _line_starts(reply)
    ):
        found.append(Substitution(old, new, "line", line_at))
    return found


def _show(data: bytes) -> str:
    if _is_text(data):
        return repr(data.decode("ascii"))
    return data.hex(" ")


def describe(span: Span, recorded: bytes, live: bytes) -> str:
    """One line for a span: where, the two values, and the rule that accepted it (or not)."""
    old = recorded[span.start : span.end]
    new = live[span.live_start : span.live_end]
    where = f"bytes {span.start}-{span.end}" if span.end - span.start != 1 else f"byte {span.start}"
    if span.rule is None:
        return f"not accepted: {where}, recorded {_show(old)}, live {_show(new)}"
    return (
        f"accepted ({span.rule}: {span.detail}): {where}, recorded {_show(old)}, live {_show(new)}"
    )


def explain(verdict: Verdict, recorded: bytes = b"", live: bytes = b"") -> tuple[str, ...]:
    """The lines a mismatch message shows: accepted spans, the refused one, the rules tried."""
    lines = [
        describe(span, recorded, live) if recorded or live else _brief(span)
        for span in verdict.spans
    ]
    if verdict.tried:
        lines.append("rules tried: " + ", ".join(verdict.tried))
    return tuple(lines)


def _brief(span: Span) -> str:
    where = f"bytes {span.start}-{span.end}"
    if span.rule is None:
        return f"not accepted: {where}"
    return f"accepted ({span.rule}: {span.detail}): {where}"


#: Bytes at the end of a partial message that may still be a value arriving.
PARTIAL_MARGIN = 8


def plausible(
    expected: bytes, received: bytes, *, mode: NoiseMode, replies: Sequence[bytes] = ()
) -> bool:
    """Could ``received``, the start of a live message, still be accepted once it is whole?

    A difference that no rule accepts, and that ends well before the bytes
    received so far (:data:`PARTIAL_MARGIN`), fails the message now instead
    of at the stall bound.
    """
    if expected.startswith(received) or received.startswith(expected):
        return True
    if mode is NoiseMode.OFF:
        return False
    # Compared position by position, and aligned (a value may change length).
    return any(
        _plausible(expected, received, expected[:n], mode=mode, replies=replies)
        for n in (len(received), len(received) + PARTIAL_MARGIN)
    )


def _plausible(
    expected: bytes, head: bytes, recorded: bytes, *, mode: NoiseMode, replies: Sequence[bytes]
) -> bool:
    verdict = compare(recorded, head, mode=mode, replies=replies)
    for span in verdict.rejected:
        if span.live_end <= len(head) - PARTIAL_MARGIN:
            return False  # refused, and complete: nothing that arrives later changes it
        # At the end, the live value may still be arriving; the recorded one is
        # whole, and a rule can accept the pair only if it is random or echoed.
        if mode is not NoiseMode.AUTO:
            return False
        ts, te = token_around(expected, span.start, max(span.end, span.start + 1))
        starts = [ts] if te - ts >= MIN_ECHO_ANCHORED else [max(0, ts - 1), ts]
        width = max(te - ts, MIN_ECHO_ANCHORED)
        if not any(
            looks_random(expected[s : s + width])
            or _echoes(expected, expected[s : s + width], b"", s, replies)
            for s in starts
        ):
            return False
    return True


# -- where messages end, and what came back ----------------------------------------


def replies_after(events: Sequence[Event], position: int) -> list[bytes]:
    """The server replies recorded after client message ``position``: runs of server chunks."""
    replies: list[bytes] = []
    current: list[bytes] = []
    for event in events[position + 1 :]:
        if type(event) is ServerData:
            current.append(event.data)
        elif type(event) is ClientData and current:
            replies.append(b"".join(current))
            current = []
    if current:
        replies.append(b"".join(current))
    return replies


def message_length(
    expected: bytes, received: bytes, *, eof: bool, split: Splitter | None = None
) -> int | None:
    """How much of ``received`` is the live client's version of ``expected`` (None: not all here).

    With a protocol's ``split``, the message ends where the protocol says.
    Otherwise a text message ending in a newline ends at the same number of
    newlines (so a value may change length); any other message keeps its
    length.
    """
    if split is not None:
        ends = split(received)
        if ends:
            return ends[0]
        return len(received) if eof else None
    if expected.endswith(b"\n") and _is_text(expected):
        lines = expected.count(b"\n")
        at = -1
        for _ in range(lines):
            at = received.find(b"\n", at + 1)
            if at == -1:
                return len(received) if eof else None
        return at + 1
    if len(received) >= len(expected):
        return len(expected)
    return len(received) if eof else None


@dataclass(frozen=True, slots=True)
class Judged:
    """A whole live message judged against the recorded one.

    Attributes:
        length: how many of the received bytes make the live message.
        verdict: what the rules said.
        recorded: the recorded message, in the form compared (normalised).
        live: the live message, in the form compared.
    """

    length: int
    verdict: Verdict
    recorded: bytes
    live: bytes


def judge(
    expected: bytes,
    received: bytes,
    *,
    eof: bool,
    mode: NoiseMode,
    replies: Sequence[bytes] = (),
    learned: Sequence[tuple[int, int]] = (),
    protocol: WireProtocol | None = None,
    elsewhere: Sequence[bytes] = (),
    scrubbed: bool = False,
    before: bytes = b"",
) -> Judged | None:
    """Judge the live client's version of ``expected`` once it is whole (None: wait for more).

    The one place where a message's end, its normalised form and the
    protocol's volatile fields come together, for the replay machine and
    the choice of a recording alike.  A partial message that already
    differs for good is judged at once (see :func:`plausible`).

    ``scrubbed``: the recording's credentials were scrubbed, so the spans the
    protocol's scrub hook finds in ``expected`` (``before``: the server's last
    bytes before it) accept any live bytes.
    """
    split = None
    if protocol is not None:
        client_protocol = protocol

        def split(data: bytes) -> list[int]:
            return client_protocol.split(data, "client")

    length = message_length(expected, received, eof=eof, split=split)
    if length is None:
        if (
            learned
            or scrubbed
            or split is not None
            or plausible(expected, received, mode=mode, replies=replies)
        ):
            return None
        length = len(received)
    live = received[:length]
    recorded_form, live_form = expected, live
    fields: list[tuple[int, int]] = []
    if protocol is not None:
        recorded_form, live_form = protocol.normalise(expected), protocol.normalise(live)
        fields = protocol.volatile(recorded_form)
    secrets = secret_spans(protocol, recorded_form, "client", before) if scrubbed else []
    verdict = compare(
        recorded_form,
        live_form,
        mode=mode,
        replies=replies,
        learned=learned,
        fields=fields,
        protocol=protocol.name if protocol is not None else "",
        elsewhere=elsewhere,
        scrubbed=secrets,
    )
    return Judged(length, verdict, recorded_form, live_form)
