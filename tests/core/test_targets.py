"""Targets, with no network: parsing ``host:port`` and naming the connects to intercept."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpcassette import CassetteError
from tcpcassette._core.targets import (
    TargetTable,
    format_target,
    is_ip,
    normalise_ip,
    parse_target,
)

#: Deterministic, quick, and nothing written to disk.
QUICK = settings(max_examples=30, deadline=None, database=None, derandomize=True)

LOCAL = {"localhost": ["127.0.0.1", "::1"]}

labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)
hostnames = st.lists(labels, min_size=1, max_size=3).map(".".join)
ips = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
ports = st.integers(1, 65535)


# -- parse_target --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("localhost:6379", ("localhost", 6379)),
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        ("db.example.com:5432", ("db.example.com", 5432)),
        ("localhost", ("localhost", None)),
        ("[::1]:6379", ("::1", 6379)),
        ("[fe80::1%eth0]:22", ("fe80::1%eth0", 22)),
        ("[::1]", ("::1", None)),
        ("::1", ("::1", None)),
        ("2001:db8::1", ("2001:db8::1", None)),
        ("  localhost:6379\n", ("localhost", 6379)),
        ("db:1", ("db", 1)),
        ("db:65535", ("db", 65535)),
        ("db:080", ("db", 80)),
    ],
)
def test_parse_target_splits_host_and_port(text: str, parsed: tuple[str, int | None]) -> None:
    assert parse_target(text) == parsed


@pytest.mark.parametrize("text", ["db:0", "db:65536", "db:99999", "db:http", "db:-1", "db: 80"])
def test_parse_target_refuses_a_port_out_of_range_or_not_a_number(text: str) -> None:
    with pytest.raises(CassetteError, match="the port must be a number from 1 to 65535"):
        parse_target(text)


@pytest.mark.parametrize("text", ["[::1]:0", "[::1]:65536", "[::1]:x"])
def test_parse_target_refuses_a_bad_port_after_brackets(text: str) -> None:
    with pytest.raises(CassetteError, match="the port must be a number"):
        parse_target(text)


@pytest.mark.parametrize("text", ["", "   ", ":6379", "[]:6379", "[]"])
def test_parse_target_refuses_a_target_without_a_host(text: str) -> None:
    with pytest.raises(CassetteError, match="is not a target"):
        parse_target(text)


@pytest.mark.parametrize("text", ["db:\N{SUPERSCRIPT TWO}", "db:\N{ARABIC-INDIC DIGIT THREE}"])
def test_parse_target_refuses_a_port_not_written_in_ascii_digits(text: str) -> None:
    with pytest.raises(CassetteError, match="the port must be a number"):
        parse_target(text)


@pytest.mark.parametrize("text", ["[::1]6379", "[::1]x", "[::1"])
def test_parse_target_refuses_a_malformed_bracketed_host(text: str) -> None:
    with pytest.raises(CassetteError):
        parse_target(text)


@pytest.mark.parametrize("text", ["db:", "[::1]:"])
def test_parse_target_refuses_a_colon_with_no_port(text: str) -> None:
    with pytest.raises(CassetteError):
        parse_target(text)


# -- format_target -------------------------------------------------------------------------


def test_format_target_joins_host_and_port() -> None:
    assert format_target("localhost", 6379) == "localhost:6379"
    assert format_target("10.0.0.5", 80) == "10.0.0.5:80"


def test_format_target_puts_ipv6_addresses_in_brackets() -> None:
    assert format_target("::1", 6379) == "[::1]:6379"
    assert format_target("fe80::1%eth0", 22) == "[fe80::1%eth0]:22"


@QUICK
@given(st.one_of(hostnames, ips), ports)
def test_format_target_round_trips_through_parse_target(host: str, port: int) -> None:
    assert parse_target(format_target(host, port)) == (host, port)


# -- is_ip and normalise_ip ----------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "0.0.0.0", "::1", "::", "2001:db8::1", "::ffff:127.0.0.1", "fe80::1%eth0"]
)
def test_is_ip_knows_addresses(host: str) -> None:
    assert is_ip(host)


@pytest.mark.parametrize(
    "host", ["localhost", "db.example.com", "", "127.0.0.1:80", "[::1]", "256.0.0.1", "1.2.3"]
)
def test_is_ip_refuses_names_and_targets(host: str) -> None:
    assert not is_ip(host)


@pytest.mark.parametrize(
    ("ip", "normal"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("::FFFF:7f00:1", "127.0.0.1"),
        ("0:0:0:0:0:ffff:10.0.0.5", "10.0.0.5"),
        ("fe80::1%eth0", "fe80::1"),
        ("fe80::1%3", "fe80::1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
    ],
)
def test_normalise_ip_spells_each_address_one_way(ip: str, normal: str) -> None:
    assert normalise_ip(ip) == normal


def test_normalise_ip_keeps_an_ipv4_compatible_address_as_ipv6() -> None:
    # ::127.0.0.1 is not IPv4-mapped: only ::ffff:a.b.c.d becomes IPv4.
    assert normalise_ip("::127.0.0.1") == "::7f00:1"


@pytest.mark.parametrize("text", ["localhost", "db.example.com", "not an address"])
def test_normalise_ip_leaves_what_is_not_an_address(text: str) -> None:
    assert normalise_ip(text) == text


@QUICK
@given(st.ip_addresses(v=4))
def test_normalise_ip_turns_every_ipv4_mapped_address_into_ipv4(
    ip: ipaddress.IPv4Address,
) -> None:
    assert normalise_ip(f"::ffff:{ip}") == str(ip)


@QUICK
@given(ips)
def test_normalise_ip_is_idempotent(ip: str) -> None:
    once = normalise_ip(ip)
    assert normalise_ip(once) == once
    assert is_ip(once)


# -- TargetTable.key_for: everything intercepted -------------------------------------------


def test_key_for_an_unknown_address_is_the_address() -> None:
    assert TargetTable({}).key_for("10.0.0.5", 5432) == "10.0.0.5:5432"


def test_key_for_an_unknown_ipv6_address_is_in_brackets() -> None:
    assert TargetTable({}).key_for("::1", 6379) == "[::1]:6379"


def test_key_for_an_ipv4_mapped_address_is_the_ipv4_address() -> None:
    assert TargetTable({}).key_for("::ffff:10.0.0.5", 80) == "10.0.0.5:80"


def test_key_for_an_address_with_a_scope_id_drops_it() -> None:
    assert TargetTable({}).key_for("fe80::1%eth0", 22) == "[fe80::1]:22"


def test_key_for_a_recorded_name_names_its_addresses() -> None:
    table = TargetTable(LOCAL)
    assert table.key_for("127.0.0.1", 6379) == "localhost:6379"
    assert table.key_for("::1", 6379) == "localhost:6379"
    assert table.key_for("::ffff:127.0.0.1", 6379) == "localhost:6379"


def test_key_for_normalises_the_recorded_addresses() -> None:
    table = TargetTable({"db": ["::ffff:10.0.0.5", "FE80::1%eth0"]})
    assert table.names == {"db": ["10.0.0.5", "fe80::1"]}
    assert table.key_for("10.0.0.5", 5432) == "db:5432"
    assert table.key_for("fe80::1", 5432) == "db:5432"


def test_key_for_an_address_of_two_names_picks_the_first_name() -> None:
    table = TargetTable({"cache": ["10.0.0.5"], "db": ["10.0.0.5"]})
    assert table.key_for("10.0.0.5", 5432) == "cache:5432"


def test_key_for_a_learned_name_names_its_addresses() -> None:
    table = TargetTable({})
    table.learn("cache.local", ["10.0.0.7"])
    assert table.key_for("10.0.0.7", 11211) == "cache.local:11211"


def test_learn_adds_new_addresses_once_each_and_normalised() -> None:
    table = TargetTable({"db": ["10.0.0.5"]})
    table.learn("db", ["::ffff:10.0.0.5", "10.0.0.6", "10.0.0.6"])
    assert table.names == {"db": ["10.0.0.5", "10.0.0.6"]}


def test_learn_ignores_a_lookup_of_an_address() -> None:
    table = TargetTable({})
    table.learn("10.0.0.5", ["10.0.0.5"])
    table.learn("::1", ["::1"])
    assert table.names == {}
    assert table.key_for("10.0.0.5", 80) == "10.0.0.5:80"


def test_key_for_reuses_a_known_spelling_first() -> None:
    table = TargetTable({"other": ["127.0.0.1"], **LOCAL})
    assert table.key_for("127.0.0.1", 6379) == "other:6379"
    assert table.key_for("127.0.0.1", 6379, known=["localhost:6379"]) == "localhost:6379"


def test_key_for_prefers_the_first_known_spelling_that_fits() -> None:
    table = TargetTable(LOCAL)
    known = ["localhost:5432", "127.0.0.1:6379", "localhost:6379"]
    assert table.key_for("127.0.0.1", 6379, known=known) == "127.0.0.1:6379"


def test_key_for_reuses_a_known_address_spelling_for_a_mapped_address() -> None:
    known = ["127.0.0.1:6379"]
    assert TargetTable({}).key_for("::ffff:127.0.0.1", 6379, known=known) == "127.0.0.1:6379"


def test_key_for_reuses_a_known_ipv6_spelling() -> None:
    known = ["[::1]:6379"]
    assert TargetTable({}).key_for("0:0:0:0:0:0:0:1", 6379, known=known) == "[::1]:6379"


@pytest.mark.parametrize("known", [["localhost:5432"], ["localhost"], ["db:6379"]])
def test_key_for_skips_known_names_of_another_port_or_host(known: list[str]) -> None:
    table = TargetTable({**LOCAL, "db": ["10.0.0.5"]})
    assert table.key_for("::1", 6379, known=known) == "localhost:6379"


# -- TargetTable.key_for: targets and ignore -----------------------------------------------


def test_key_for_with_targets_intercepts_only_those_targets() -> None:
    table = TargetTable(LOCAL, targets=["localhost:6379"])
    assert table.key_for("127.0.0.1", 6379) == "localhost:6379"
    assert table.key_for("127.0.0.1", 5432) is None
    assert table.key_for("10.0.0.5", 6379) is None


def test_key_for_with_a_target_without_port_intercepts_every_port_of_the_host() -> None:
    table = TargetTable(LOCAL, targets=["localhost"])
    assert table.key_for("::1", 5432) == "localhost:5432"
    assert table.key_for("::1", 6379) == "localhost:6379"


def test_key_for_with_targets_keeps_the_spelling_of_the_target() -> None:
    table = TargetTable({**LOCAL, "alias": ["127.0.0.1"]}, targets=["localhost:6379"])
    assert table.key_for("127.0.0.1", 6379, known=["alias:6379"]) == "localhost:6379"


@pytest.mark.parametrize(
    ("target", "ip", "key"),
    [
        ("10.0.0.5:80", "10.0.0.5", "10.0.0.5:80"),
        ("10.0.0.5:80", "::ffff:10.0.0.5", "10.0.0.5:80"),
        ("[::1]:80", "::1", "[::1]:80"),
        ("[::1]:80", "0:0:0:0:0:0:0:1", "[::1]:80"),
        ("::1", "::1", "[::1]:80"),
    ],
)
def test_key_for_with_an_address_target_matches_any_spelling_of_it(
    target: str, ip: str, key: str
) -> None:
    assert TargetTable({}, targets=[target]).key_for(ip, 80) == key


def test_key_for_with_a_target_name_not_yet_resolved_intercepts_once_it_is_learned() -> None:
    table = TargetTable({}, targets=["cache.local:11211"])
    assert table.key_for("10.0.0.7", 11211) is None
    table.learn("cache.local", ["10.0.0.7"])
    assert table.key_for("10.0.0.7", 11211) == "cache.local:11211"


def test_key_for_with_no_targets_intercepts_nothing() -> None:
    assert TargetTable(LOCAL, targets=[]).key_for("127.0.0.1", 6379) is None


def test_key_for_ignores_a_target_on_its_port_only() -> None:
    table = TargetTable(LOCAL, ignore=["localhost:6379"])
    assert table.key_for("127.0.0.1", 6379) is None
    assert table.key_for("127.0.0.1", 5432) == "localhost:5432"


def test_key_for_ignores_a_host_on_every_port() -> None:
    table = TargetTable(LOCAL, ignore=["localhost"])
    assert table.key_for("127.0.0.1", 6379) is None
    assert table.key_for("::1", 5432) is None
    assert table.key_for("10.0.0.5", 5432) == "10.0.0.5:5432"


def test_key_for_ignores_an_address_in_any_spelling() -> None:
    table = TargetTable({}, ignore=["127.0.0.1"])
    assert table.key_for("::ffff:127.0.0.1", 80) is None


def test_key_for_ignore_wins_over_targets() -> None:
    table = TargetTable(LOCAL, targets=["localhost"], ignore=["localhost:6379"])
    assert table.key_for("127.0.0.1", 6379) is None
    assert table.key_for("127.0.0.1", 5432) == "localhost:5432"


def test_key_for_ignore_wins_over_known_names() -> None:
    table = TargetTable(LOCAL, ignore=["localhost"])
    assert table.key_for("127.0.0.1", 6379, known=["localhost:6379"]) is None


def test_key_for_ignores_a_host_learned_later() -> None:
    table = TargetTable({}, ignore=["metrics.local"])
    assert table.key_for("10.0.0.9", 8125) == "10.0.0.9:8125"
    table.learn("metrics.local", ["10.0.0.9"])
    assert table.key_for("10.0.0.9", 8125) is None


@pytest.mark.parametrize("option", ["targets", "ignore"])
def test_target_table_refuses_a_bad_target_at_once(option: str) -> None:
    with pytest.raises(CassetteError, match="the port must be a number"):
        TargetTable({}, **{option: ["localhost:0"]})


@QUICK
@given(ips, ports)
def test_key_for_an_unknown_address_parses_back_to_it(ip: str, port: int) -> None:
    key = TargetTable({}).key_for(ip, port)
    assert key is not None
    host, key_port = parse_target(key)
    assert (normalise_ip(host), key_port) == (normalise_ip(ip), port)
