"""Durations, ages and the expiry messages (pure)."""

from __future__ import annotations

import pytest

from tcpcassette._core.errors import CassetteError, InvalidOptionError
from tcpcassette._core.freshness import (
    OnExpiry,
    age,
    describe,
    expired_error,
    expired_message,
    parse_duration,
)

DAY = 86400


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90d", 90 * DAY),
        ("12h", 12 * 3600),
        ("2w", 14 * DAY),
        ("30m", 1800),
        ("45s", 45),
        ("3600", 3600),
        (" 1.5d ", 1.5 * DAY),
        (3600, 3600),
        (0.5, 0.5),
    ],
)
def test_durations_in_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text, source="max_age") == seconds


@pytest.mark.parametrize("bad", ["", "d", "90 days", "-1d", "0", 0, -5, "1y", True, None, [1]])
def test_what_is_no_duration_is_refused_naming_where_it_came_from(bad: object) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        parse_duration(bad, source="ini option tcpcassette_max_age")
    message = str(caught.value)
    assert message.startswith("ini option tcpcassette_max_age: ")
    assert "'90d'" in message and "s, m, h, d or w" in message


def test_expiry_actions() -> None:
    assert OnExpiry.parse("rerecord", source="x") is OnExpiry.RERECORD
    with pytest.raises(InvalidOptionError, match="on_expiry=: 'explode' is not an expiry action"):
        OnExpiry.parse("explode", source="on_expiry=")


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0, "0 seconds"),
        (1, "1 second"),
        (125, "2 minutes"),
        (3600, "1 hour"),
        (95 * DAY, "95 days"),
    ],
)
def test_ages_as_people_say_them(seconds: float, said: str) -> None:
    assert describe(seconds) == said


def test_an_age_is_never_negative() -> None:
    assert age(100.0, now=40.0) == 0.0
    assert age(100.0, now=160.0) == 60.0


def test_the_messages_name_the_cassette_its_age_and_the_bound() -> None:
    said = expired_message("c.msgpack", 95 * DAY, 90 * DAY, dated=True)
    assert said == "c.msgpack: recorded 95 days ago, older than its max_age of 90 days"
    assert "modification time" in expired_message("c", 95 * DAY, 90 * DAY, dated=False)
    error = expired_error("c.msgpack", 95 * DAY, 90 * DAY, dated=True)
    assert isinstance(error, CassetteError)
    assert "--record-mode=all" in str(error) and "c.msgpack" in str(error)
