"""Framing, with no network: where each message ends in a byte stream."""

from __future__ import annotations

import random
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpcassette import CassetteError
from tcpcassette._core.framing import (
    Framer,
    LengthPrefixed,
    Lines,
    Raw,
    resolve_framing,
    split_messages,
)

#: Deterministic, quick, and nothing written to disk.
QUICK = settings(max_examples=30, deadline=None, database=None, derandomize=True)

WIDTHS = (1, 2, 4, 8)
ORDERS: tuple[Literal["big", "little"], ...] = ("big", "little")


def frame(body: bytes, framer: LengthPrefixed) -> bytes:
    length = len(body) + (framer.width if framer.includes_header else 0)
    return length.to_bytes(framer.width, framer.byteorder) + body


class FixedSize:
    """A user framer: every message is ``size`` bytes."""

    name = "fixed"

    def __init__(self, size: int) -> None:
        self.size = size

    def split(self, data: bytes) -> list[int]:
        return list(range(self.size, len(data) + 1, self.size))


class BoundedFind(bytes):
    """Bytes whose ``find`` gives up after a budget of calls, to catch a split that never ends."""

    budget = 1000

    def find(self, sub: Any, *args: Any) -> int:
        self.budget -= 1
        if self.budget < 0:
            raise RuntimeError("split() keeps searching and never ends")
        return super().find(sub, *args)


@st.composite
def length_prefixed(draw: st.DrawFn) -> LengthPrefixed:
    return LengthPrefixed(
        width=draw(st.sampled_from(WIDTHS)),
        byteorder=draw(st.sampled_from(ORDERS)),
        includes_header=draw(st.booleans()),
    )


def bodies_for(framer: LengthPrefixed) -> st.SearchStrategy[list[bytes]]:
    # A one-byte header counts to 255, the header itself included where it says so.
    largest = 255 - (framer.width if framer.includes_header else 0) if framer.width == 1 else 300
    return st.lists(st.binary(max_size=largest), max_size=6)


# -- Raw -----------------------------------------------------------------------------------


def test_raw_takes_everything_received_as_one_message() -> None:
    assert Raw().split(b"GET a\r\nGET b\r\n") == [14]


def test_raw_finds_no_message_in_nothing() -> None:
    assert Raw().split(b"") == []


def test_raw_is_named_raw() -> None:
    assert Raw().name == "raw"


# -- Lines ---------------------------------------------------------------------------------


def test_lines_ends_a_message_after_each_newline() -> None:
    assert Lines().split(b"PING\nECHO hi\n") == [5, 13]


def test_lines_leaves_a_line_without_its_newline_for_later() -> None:
    assert Lines().split(b"PING\nECH") == [5]
    assert Lines().split(b"ECH") == []


def test_lines_newline_also_ends_crlf_lines() -> None:
    assert Lines().split(b"PING\r\nQUIT\r\n") == [6, 12]


def test_lines_with_crlf_terminator_ignores_a_bare_newline() -> None:
    assert Lines(b"\r\n").split(b"one\ntwo\r\nthree\r") == [9]


def test_lines_counts_empty_lines_as_messages() -> None:
    assert Lines().split(b"\n\na\n") == [1, 2, 4]


def test_lines_waits_for_a_terminator_cut_in_the_middle() -> None:
    framer = Lines(b"\r\n")
    assert framer.split(b"PING\r") == []
    assert framer.split(b"PING\r\n") == [6]


def test_lines_does_not_let_terminators_overlap() -> None:
    assert Lines(b"aa").split(b"aaa") == [2]
    assert Lines(b"aa").split(b"aaaa") == [2, 4]


def test_lines_is_named_lines() -> None:
    assert Lines().name == "lines"


def test_lines_refuses_an_empty_terminator() -> None:
    with pytest.raises((CassetteError, ValueError)):
        Lines(terminator=b"").split(BoundedFind(b"abc"))


# -- LengthPrefixed ------------------------------------------------------------------------


def test_length_prefixed_default_is_a_four_byte_big_endian_length_of_the_body() -> None:
    framer = LengthPrefixed()
    assert (framer.width, framer.byteorder, framer.includes_header) == (4, "big", False)
    assert framer.split(b"\x00\x00\x00\x03abc\x00\x00\x00\x01z") == [7, 12]


def test_length_prefixed_waits_for_a_frame_cut_in_the_middle() -> None:
    data = b"\x00\x00\x00\x05hello"
    for cut in range(len(data)):
        assert LengthPrefixed().split(data[:cut]) == []
    assert LengthPrefixed().split(data) == [9]


def test_length_prefixed_waits_for_a_header_cut_in_the_middle() -> None:
    assert LengthPrefixed().split(b"\x00\x00\x00\x01a\x00\x00") == [5]


@pytest.mark.parametrize(("byteorder", "header"), [("big", b"\x00\x03"), ("little", b"\x03\x00")])
def test_length_prefixed_reads_the_length_in_its_byte_order(
    byteorder: Literal["big", "little"], header: bytes
) -> None:
    assert LengthPrefixed(width=2, byteorder=byteorder).split(header + b"abc") == [5]


def test_length_prefixed_in_the_wrong_byte_order_waits_for_a_longer_frame() -> None:
    # Read little-endian, b"\x00\x03" announces 768 bytes.
    assert LengthPrefixed(width=2, byteorder="little").split(b"\x00\x03abc") == []


@pytest.mark.parametrize("width", WIDTHS)
def test_length_prefixed_header_is_width_bytes_wide(width: int) -> None:
    data = (2).to_bytes(width, "big") + b"hi" + (0).to_bytes(width, "big")
    assert LengthPrefixed(width=width).split(data) == [width + 2, 2 * width + 2]


def test_length_prefixed_with_includes_header_counts_the_header_in_the_length() -> None:
    framer = LengthPrefixed(width=2, includes_header=True)
    assert framer.split(b"\x00\x05abc\x00\x02") == [5, 7]


def test_length_prefixed_frame_may_have_an_empty_body() -> None:
    assert LengthPrefixed().split(b"\x00\x00\x00\x00") == [4]


def test_length_prefixed_with_includes_header_stops_at_a_zero_length() -> None:
    # A length of 0 cannot count its own header: no frame, and no endless loop.
    assert LengthPrefixed(includes_header=True).split(b"\x00\x00\x00\x00abcd") == []


def test_length_prefixed_with_includes_header_never_ends_a_frame_inside_its_header() -> None:
    framer = LengthPrefixed(width=4, includes_header=True)
    ends = framer.split(b"\x00\x00\x00\x02abcd")  # a frame of 2 bytes with a 4-byte header
    assert all(end - start >= framer.width for start, end in zip([0, *ends], ends, strict=False))


def test_length_prefixed_is_named_length_prefixed() -> None:
    assert LengthPrefixed().name == "length-prefixed"


@QUICK
@given(st.data())
def test_length_prefixed_round_trips_frames(data: st.DataObject) -> None:
    framer = data.draw(length_prefixed())
    bodies = data.draw(bodies_for(framer))
    stream = b"".join(frame(b, framer) for b in bodies)
    assert split_messages(stream, framer) == [frame(b, framer) for b in bodies]


@QUICK
@given(st.data())
def test_length_prefixed_on_a_prefix_finds_only_the_frames_complete_in_it(
    data: st.DataObject,
) -> None:
    framer = data.draw(length_prefixed())
    stream = b"".join(frame(b, framer) for b in data.draw(bodies_for(framer)))
    cut = data.draw(st.integers(0, len(stream)))
    assert framer.split(stream[:cut]) == [e for e in framer.split(stream) if e <= cut]


# -- resolve_framing -----------------------------------------------------------------------


def test_resolve_framing_defaults_to_raw() -> None:
    assert resolve_framing(None) == Raw()


@pytest.mark.parametrize(
    ("name", "framer"),
    [("raw", Raw()), ("lines", Lines()), ("length-prefixed", LengthPrefixed())],
)
def test_resolve_framing_knows_the_framings_by_name(name: str, framer: Framer) -> None:
    assert resolve_framing(name) == framer
    assert resolve_framing(name).name == name


def test_resolve_framing_refuses_an_unknown_name_and_lists_the_known_ones() -> None:
    with pytest.raises(CassetteError, match="unknown framing 'line'") as info:
        resolve_framing("line")
    assert "length-prefixed" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_resolve_framing_passes_a_framer_object_through() -> None:
    framer = LengthPrefixed(width=2, byteorder="little")
    assert resolve_framing(framer) is framer


def test_resolve_framing_accepts_a_user_framer() -> None:
    framer = FixedSize(3)
    assert isinstance(framer, Framer)
    assert resolve_framing(framer) is framer


@pytest.mark.parametrize("spec", [42, b"lines", object(), FixedSize(3).split])
def test_resolve_framing_refuses_what_is_not_a_framer(spec: Any) -> None:
    with pytest.raises(CassetteError, match="is not a framer"):
        resolve_framing(spec)


# -- split_messages ------------------------------------------------------------------------


def test_split_messages_cuts_at_each_end() -> None:
    assert split_messages(b"a\nbb\n", Lines()) == [b"a\n", b"bb\n"]


def test_split_messages_keeps_a_trailing_incomplete_message_last() -> None:
    assert split_messages(b"a\nbb\nccc", Lines()) == [b"a\n", b"bb\n", b"ccc"]


def test_split_messages_of_nothing_is_no_message() -> None:
    assert split_messages(b"", Lines()) == []
    assert split_messages(b"", Raw()) == []


def test_split_messages_under_raw_is_the_whole_input() -> None:
    assert split_messages(b"a\nb", Raw()) == [b"a\nb"]


def test_split_messages_uses_a_user_framer() -> None:
    assert split_messages(b"abcdefgh", FixedSize(3)) == [b"abc", b"def", b"gh"]


FRAMERS: list[Framer] = [Raw(), Lines(), Lines(b"\r\n"), LengthPrefixed(width=1), FixedSize(2)]


@QUICK
@given(st.binary(max_size=200), st.sampled_from(FRAMERS))
def test_split_messages_rejoins_to_the_input(data: bytes, framer: Framer) -> None:
    messages = split_messages(data, framer)
    assert b"".join(messages) == data
    assert all(messages)


@QUICK
@given(st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")), max_size=8))
def test_split_messages_under_lines_gives_back_each_line(lines: list[bytes]) -> None:
    assert split_messages(b"".join(line + b"\n" for line in lines), Lines()) == [
        line + b"\n" for line in lines
    ]


@pytest.mark.parametrize("seed", range(10))
def test_lines_on_growing_input_finds_each_line_once_it_is_complete(seed: int) -> None:
    rng = random.Random(seed)
    stream = b"PING\r\nSET k v\r\n\r\nGET k\r\n"
    cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(0, 6)))
    for cut in [*cuts, len(stream)]:
        assert Lines().split(stream[:cut]) == [e for e in (6, 15, 17, 24) if e <= cut]
