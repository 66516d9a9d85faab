"""Targets by name, with no network: the name mapping, the router, the codec and the errors."""

from __future__ import annotations

import msgpack
import pytest

from tcpcassette import (
    CassetteError,
    CassetteFormatError,
    ClientClose,
    ClientData,
    Connection,
    InvalidOptionError,
    ServerData,
    UnrecordedConnectionError,
)
from tcpcassette._core.cassette import CassetteModel
from tcpcassette._core.codec import CassetteContents, decode, encode
from tcpcassette._core.options import Limits, ReplayOptions
from tcpcassette._core.router import Forbidden, Router, ToRecord, ToReplay
from tcpcassette._core.targets import TargetTable, is_name, named_targets
from tcpcassette._core.text import export_text, import_text
from tcpcassette._core.transcript import format_transcript

LOCAL = {"localhost": ["127.0.0.1", "::1"]}


def ask(target: str, text: bytes = b"a", answer: bytes = b"b") -> Connection:
    return Connection(
        target=target, events=(ClientData(data=text), ServerData(data=answer), ClientClose())
    )


def router(
    *connections: Connection,
    targets: dict[str, str] | list[str] | None = None,
    record: bool = False,
    hosts: dict[str, tuple[str, ...]] | None = None,
) -> Router:
    return Router(
        connections,
        name="c.msgpack",
        mode="new_episodes" if record else "none",
        record=record,
        options=ReplayOptions(),
        limits=Limits(),
        hosts=hosts if hosts is not None else {"localhost": ("127.0.0.1",)},
        targets=targets,
    )


# -- names and the mapping --------------------------------------------------------------


@pytest.mark.parametrize("name", ["redis", "api-v2", "db_main", "svc.internal", "A1", "9"])
def test_letters_digits_underscores_dots_and_dashes_make_a_name(name: str) -> None:
    assert is_name(name)
    assert named_targets({name: "localhost:6379"}) == {name: ("localhost", 6379)}


@pytest.mark.parametrize("name", ["", "redis:6379", "my redis", "a/b", "ré", "[::1]", " x"])
def test_anything_else_is_not_a_name_and_is_refused_clearly(name: str) -> None:
    assert not is_name(name)
    with pytest.raises(InvalidOptionError, match="is not a target name") as caught:
        named_targets({name: "localhost:6379"})
    assert "letters, digits, '_', '.' and '-'" in str(caught.value)


def test_a_name_must_map_to_host_and_port() -> None:
    with pytest.raises(InvalidOptionError, match="'redis' maps to 'localhost', which has no port"):
        named_targets({"redis": "localhost"})
    with pytest.raises(InvalidOptionError, match=r"'redis': .*the port must be a number"):
        named_targets({"redis": "localhost:0"})
    with pytest.raises(InvalidOptionError, match="must map to a 'host:port' string"):
        named_targets({"redis": 6379})  # type: ignore[dict-item]


def test_two_names_for_one_address_are_refused() -> None:
    with pytest.raises(InvalidOptionError, match=r"'a' and 'b' both map to 127\.0\.0\.1:80"):
        named_targets({"a": "127.0.0.1:80", "b": "127.0.0.1:80"})
    assert len(named_targets({"a": "127.0.0.1:80", "b": "127.0.0.1:81"})) == 2


def test_an_ipv6_literal_maps_a_name() -> None:
    table = TargetTable({}, targets={"v6": "[::1]:6379"})
    assert table.key_for("::1", 6379) == "v6"
    assert table.key_for("0:0:0:0:0:0:0:1", 6379) == "v6"
    assert table.key_for("::1", 6380) is None
    assert table.address_of("v6") == ("::1", 6379)


def test_connects_to_a_named_address_get_the_name_and_nothing_else_is_intercepted() -> None:
    table = TargetTable(LOCAL, targets={"redis": "localhost:6379", "api": "10.0.0.5:80"})
    assert table.key_for("127.0.0.1", 6379) == "redis"
    assert table.key_for("::1", 6379) == "redis"  # host names resolve as they do today
    assert table.key_for("::ffff:127.0.0.1", 6379) == "redis"
    assert table.key_for("10.0.0.5", 80) == "api"
    assert table.key_for("127.0.0.1", 6380) is None
    assert table.key_for("10.0.0.6", 80) is None


def test_a_name_whose_host_is_not_known_yet_matches_once_it_is_learned() -> None:
    table = TargetTable({}, targets={"db": "db.internal:5432"})
    assert table.key_for("10.9.8.7", 5432) is None
    assert table.mentions("db.internal") and not table.mentions("other")
    table.learn("db.internal", ["10.9.8.7"])
    assert table.key_for("10.9.8.7", 5432) == "db"


def test_ignore_wins_over_a_name() -> None:
    table = TargetTable(LOCAL, targets={"redis": "localhost:6379"}, ignore=["localhost:6379"])
    assert table.key_for("127.0.0.1", 6379) is None


def test_address_of_and_name_for_translate_between_a_name_and_this_runs_address() -> None:
    table = TargetTable(LOCAL, targets={"redis": "localhost:6379", "v6": "[::1]:1"})
    assert table.address_of("redis") == ("localhost", 6379)
    assert table.address_of("localhost:7000") == ("localhost", 7000)
    assert table.address_of("unmapped") is None
    assert table.name_for("localhost:6379") == "redis"
    assert table.name_for("[0::1]:1") == "v6"
    assert table.name_for("localhost:6380") is None
    assert table.name_for("not a target:") is None


def test_the_list_form_is_unchanged() -> None:
    table = TargetTable(LOCAL, targets=["localhost:6379"])
    assert table.named == {}
    assert table.key_for("127.0.0.1", 6379) == "localhost:6379"
    assert table.key_for("127.0.0.1", 6380) is None


# -- the router -----------------------------------------------------------------------------


def test_replay_serves_the_name_at_whatever_port_it_maps_to_now() -> None:
    recorded = ask("redis")
    for port in (39999, 41657):
        r = router(recorded, targets={"redis": f"localhost:{port}"})
        assert r.target_for("127.0.0.1", port) == "redis"
        assert isinstance(r.on_connect("redis"), ToReplay)
        assert r.target_for("127.0.0.1", 39998) is None
        assert r.upstream_for("redis") == ("localhost", port)


def test_recording_under_a_name_keeps_the_host_the_name_maps_to() -> None:
    r = router(targets={"redis": "localhost:6379"}, record=True, hosts={})
    r.learn("localhost", ["127.0.0.1"])
    r.learn("elsewhere.test", ["10.0.0.1"])  # not used by any recorded connection
    assert r.target_for("127.0.0.1", 6379) == "redis"
    assert isinstance(r.on_connect("redis"), ToRecord)
    assert r.hosts_for([ask("redis")]) == {"localhost": ("127.0.0.1",)}


def test_replay_learns_lookups_of_hosts_the_names_mention() -> None:
    # Recorded by IP, replayed with the name mapped to a host name the cassette lacks.
    r = router(ask("redis"), targets={"redis": "db.test:6379"}, hosts={})
    assert r.target_for("10.0.0.8", 6379) is None
    r.learn("db.test", ["10.0.0.8"])
    r.learn("other.test", ["10.0.0.9"])
    assert r.target_for("10.0.0.8", 6379) == "redis"
    assert "other.test" not in r.table.names  # replay keeps only what matching needs


def test_address_takes_a_name_or_the_address_it_maps_to() -> None:
    r = router(ask("redis"), targets={"redis": "localhost:6000"})
    assert r.check_address("redis") == "redis"
    assert r.check_address("localhost:6000") == "redis"
    assert r.check_address(" redis ") == "redis"
    with pytest.raises(CassetteError, match=r"needs 'host:port' or a target name .*\['redis'\]"):
        r.check_address("cache")
    # A recorded name serves address() even when this run maps it nowhere.
    assert router(ask("redis")).check_address("redis") == "redis"
    # A host:port the names do not cover keeps its old meaning.
    assert router(ask("localhost:1"), record=True).check_address("localhost:2") == "localhost:2"


# -- the unrecorded-connection error ----------------------------------------------------------


def unrecorded(r: Router, target: str) -> str:
    decision = r.on_connect(target)
    assert isinstance(decision, Forbidden), decision
    assert isinstance(decision.error, UnrecordedConnectionError)
    return str(decision.error)


def test_a_port_that_changed_is_named_as_the_cause_and_naming_the_target_suggested() -> None:
    r = router(ask("localhost:39999"), ask("other:1"))
    message = unrecorded(r, r.target_for("127.0.0.1", 41657) or "")
    assert "holds no connection to localhost:41657, but it holds localhost:39999" in message
    assert "port has likely changed" in message
    assert 'targets={"name": "localhost:' in message
    assert "Recorded targets: localhost:39999, other:1." in message
    assert "new_episodes" not in message  # it would only add a copy under each new port


def test_the_same_host_is_found_under_another_spelling() -> None:
    # Recorded as localhost, dialled by its address.
    r = router(ask("localhost:39999"), targets=None)
    message = unrecorded(r, "127.0.0.1:41657")
    assert "but it holds localhost:39999" in message


def test_a_new_host_suggests_recording_new_episodes_and_lists_the_targets() -> None:
    message = unrecorded(router(ask("localhost:39999")), "10.1.1.1:80")
    assert "holds no connection to 10.1.1.1:80;" in message
    assert "--record-mode=new_episodes" in message and "ignore=['10.1.1.1:80']" in message
    assert "Recorded targets: localhost:39999." in message
    assert "port has likely changed" not in message


def test_named_targets_a_run_does_not_map_are_listed_with_how_to_map_them() -> None:
    message = unrecorded(router(ask("redis"), ask("api")), "localhost:41657")
    assert "its targets are named ('redis', 'api')" in message
    assert 'targets={"redis": "host:port", "api": "host:port"}' in message
    assert "Recorded targets: redis, api." in message


def test_one_connection_too_many_to_a_name_suggests_repeats() -> None:
    r = router(ask("redis"), targets={"redis": "localhost:1"})
    assert isinstance(r.on_connect("redis"), ToReplay)
    r.on_first_bytes("redis", b"a", eof=False)
    message = unrecorded(r, "redis")
    assert "more connections to redis than the 1 recorded" in message
    assert "allow_playback_repeats=True" in message
    assert "ignore=" not in message  # a name is not something ignore= takes


def test_a_name_the_cassette_lacks_is_named_with_its_address_in_this_run() -> None:
    r = router(ask("redis"), targets={"redis": "localhost:1", "api": "localhost:2"})
    message = unrecorded(r, "api")
    assert "holds no connection to api (in this run api is localhost:2)" in message
    assert "Recorded targets: redis." in message


# -- the format -------------------------------------------------------------------------------


def named_contents() -> CassetteContents:
    return CassetteContents(
        connections=(ask("redis"), ask("localhost:6379")),
        hosts={"localhost": ("127.0.0.1",)},
    )


def test_a_named_target_round_trips_in_a_version_2_cassette() -> None:
    raw = encode(named_contents())
    assert msgpack.unpackb(raw)["version"] == 2
    loaded = decode(raw, source="n.msgpack")
    assert [c.target for c in loaded.connections] == ["redis", "localhost:6379"]


def test_cassettes_without_names_are_written_as_before() -> None:
    contents = CassetteContents(connections=(ask("localhost:6379"),), hosts={})
    assert msgpack.unpackb(encode(contents))["version"] == 1


def named_doc(version: int, target: object) -> bytes:
    doc = {
        "format": "tcpcassette",
        "version": version,
        "hosts": {},
        "connections": [{"target": target, "events": [["client", 0.0, b"x"]]}],
    }
    packed: bytes = msgpack.packb(doc, use_bin_type=True)
    return packed


def test_a_version_1_cassette_with_a_name_is_refused_saying_names_need_version_2() -> None:
    with pytest.raises(CassetteFormatError) as caught:
        decode(named_doc(1, "redis"), source="old.msgpack")
    message = str(caught.value)
    assert "connection 0: 'target' 'redis' is not valid" in message
    assert "needs format version 2" in message


@pytest.mark.parametrize("target", ["re dis", "a/b", "", "ré", "redis:", 7])
def test_a_target_that_is_neither_a_name_nor_host_port_is_refused(target: object) -> None:
    with pytest.raises(CassetteFormatError, match="or a target name") as caught:
        decode(named_doc(2, target), source="bad.msgpack")
    assert "connection 0" in str(caught.value)


def test_the_text_form_keeps_names() -> None:
    model = CassetteModel(connections=named_contents().connections, hosts={})
    text = export_text(model)
    assert '"target": "redis"' in text
    assert import_text(text, source="n.json").connections == named_contents().connections


def test_show_prints_the_name() -> None:
    model = CassetteModel(connections=[ask("redis")], hosts={})
    assert "connection 0 → redis:" in format_transcript(model)
