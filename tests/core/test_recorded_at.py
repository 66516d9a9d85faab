"""``recorded_at`` as ``show`` and the view print it: a UTC date computed without datetime."""

from __future__ import annotations

import math
import random
from datetime import datetime, timezone

from tcpcassette import ClientData, Connection
from tcpcassette._core.cassette import CassetteModel
from tcpcassette._core.render import utc_text
from tcpcassette._core.transcript import format_transcript
from tcpcassette._core.view import render_view


def expected(seconds: float) -> str:
    at = datetime.fromtimestamp(math.floor(seconds), timezone.utc)
    return f"{at.year:04d}-{at:%m-%d %H:%M:%S} UTC"


def test_utc_text_agrees_with_datetime_across_the_calendar() -> None:
    chosen = [0.0, -1.0, 951_782_400.0, 951_868_799.5, 1_767_225_600.0, 253_402_300_799.0]
    chosen += [-62_135_596_800.0, 4_107_542_400.0]  # year 1 and 2100-03-01 (not a leap year)
    rng = random.Random(20)
    chosen += [rng.uniform(-62_135_596_800, 253_402_300_799) for _ in range(2000)]
    for seconds in chosen:
        assert utc_text(seconds) == expected(seconds), seconds


def test_utc_text_says_unknown_for_none_and_names_what_is_not_a_date() -> None:
    assert utc_text(None) == "unknown"
    assert utc_text(math.nan) == "nan s after the Unix epoch (not a date)"
    assert utc_text(1e300) == "1e+300 s after the Unix epoch (not a date)"


def test_show_and_the_view_say_when_the_cassette_was_recorded_or_that_it_is_unknown() -> None:
    connection = Connection(target="a:1", events=(ClientData(data=b"x", time=0.0),))
    dated = CassetteModel(connections=[connection], recorded_at=1_767_225_600.25)
    undated = CassetteModel(connections=[connection])
    assert format_transcript(dated).splitlines()[1] == "recorded at: 2026-01-01 00:00:00 UTC"
    assert format_transcript(undated).splitlines()[1] == "recorded at: unknown"
    assert (
        '1 connection(s) · recorded: <span class="recorded-at">2026-01-01 00:00:00 UTC</span>'
        in render_view(dated, title="t")
    )
    assert '<span class="recorded-at">unknown</span>' in render_view(undated, title="t")
