"""The version 4 faults on disk, in the text form and in transcripts."""

from __future__ import annotations

import json

import msgpack
import pytest

from tcpcassette import CassetteFormatError, ClientData, Connection, ServerData
from tcpcassette._core import diagnose
from tcpcassette._core.actions import Problem
from tcpcassette._core.cassette import CassetteModel
from tcpcassette._core.codec import CassetteContents, decode, encode, version_for
from tcpcassette._core.faults import Fault
from tcpcassette._core.text import export_text, import_text
from tcpcassette._core.transcript import connection_lines, describe_fault
from tcpcassette.faults import Bandwidth, Close, Corrupt, Delay, Slice, Truncate

#: Faults, or parameters, that only version 4 holds.
NEWER: list[Fault] = [
    Corrupt(),
    Corrupt(nbytes=3, seed=2**63 - 1, times=2),
    Bandwidth(bytes_per_second=100),
    Close(delay=0.5),
    Close(delay=0, times=1),
    Slice(size="random"),
    Slice(size="random", seed=7, delay=0.01),
    Slice(size=1, nbytes=40),
    Slice(size="random", seed=3, nbytes=5, times=1),
]
#: Faults as earlier versions held them: still written in the oldest version.
OLDER: list[Fault] = [
    Close(),
    Slice(size=3),
    Slice(size=2, delay=0.1),
    Truncate(nbytes=9),
    Delay(seconds=1.0),
]


def with_fault(fault: Fault) -> CassetteContents:
    events = (ClientData(data=b"q"), fault, ServerData(data=b"reply"))
    return CassetteContents(connections=(Connection(target="h:1", events=events),), hosts={})


def written(contents: CassetteContents) -> dict[str, object]:
    doc: dict[str, object] = msgpack.unpackb(encode(contents))
    return doc


def fault_payload(doc: dict[str, object]) -> object:
    connections = doc["connections"]
    assert isinstance(connections, list)
    return connections[0]["events"][1][2]


@pytest.mark.parametrize("fault", NEWER, ids=repr)
def test_a_version_4_fault_is_written_in_version_4_and_read_back_as_it_was(fault: Fault) -> None:
    contents = with_fault(fault)
    assert version_for(contents) == 4
    assert written(contents)["version"] == 4
    assert decode(encode(contents), source="t") == contents


@pytest.mark.parametrize("fault", OLDER, ids=repr)
def test_a_fault_earlier_versions_hold_keeps_the_cassette_in_version_1(fault: Fault) -> None:
    contents = with_fault(fault)
    assert written(contents)["version"] == 1
    assert decode(encode(contents), source="t") == contents


def test_what_the_new_faults_store() -> None:
    assert fault_payload(written(with_fault(Corrupt(nbytes=2, seed=5)))) == {
        "nbytes": 2,
        "seed": 5,
    }
    assert fault_payload(written(with_fault(Bandwidth(bytes_per_second=9)))) == {
        "bytes_per_second": 9
    }
    assert fault_payload(written(with_fault(Close(delay=0.5)))) == {"delay": 0.5}
    random = fault_payload(written(with_fault(Slice(size="random", seed=4, nbytes=8))))
    assert random == {"size": "random", "delay": 0.0, "seed": 4, "nbytes": 8}
    # A fixed size draws nothing: no seed on disk, as before version 4.
    assert fault_payload(written(with_fault(Slice(size=3)))) == {"size": 3, "delay": 0.0}


@pytest.mark.parametrize(
    ("fault", "named"),
    [
        (Corrupt(), "a corrupt fault"),
        (Bandwidth(bytes_per_second=1), "a bandwidth fault"),
        (Close(delay=1.0), "a close fault with delay"),
        (Slice(size="random"), "a slice fault with size random and seed"),
        (Slice(size=2, nbytes=3), "a slice fault with nbytes"),
    ],
)
@pytest.mark.parametrize("version", [1, 2, 3])
def test_a_version_4_fault_in_a_file_of_an_earlier_version_is_refused(
    fault: Fault, named: str, version: int
) -> None:
    doc = written(with_fault(fault))
    doc["version"] = version
    with pytest.raises(CassetteFormatError) as raised:
        decode(msgpack.packb(doc, use_bin_type=True), source="old.msgpack")
    message = str(raised.value)
    assert message.startswith("old.msgpack: connection 0 (h:1), event 2: ")
    assert f"{named} needs format version 4, but this file says version {version}" in message
    assert "set its 'version' to 4" in message


def test_a_seed_key_in_an_earlier_version_is_refused_even_when_zero() -> None:
    doc = written(with_fault(Slice(size=3)))
    doc["version"] = 3
    payload = fault_payload(doc)
    assert isinstance(payload, dict)
    payload["seed"] = 0
    with pytest.raises(CassetteFormatError, match="slice fault with seed needs format version 4"):
        decode(msgpack.packb(doc, use_bin_type=True), source="old.msgpack")


def test_a_random_size_is_the_only_text_a_slice_size_may_be() -> None:
    doc = written(with_fault(Slice(size="random")))
    payload = fault_payload(doc)
    assert isinstance(payload, dict)
    payload["size"] = "huge"
    with pytest.raises(CassetteFormatError, match="invalid slice fault: size must be"):
        decode(msgpack.packb(doc, use_bin_type=True), source="t")


# -- the text form --------------------------------------------------------------------


def model(contents: CassetteContents) -> CassetteModel:
    return CassetteModel(connections=contents.connections, hosts=contents.hosts)


@pytest.mark.parametrize("fault", NEWER + OLDER, ids=repr)
def test_the_text_form_round_trips_every_new_fault(fault: Fault) -> None:
    contents = with_fault(fault)
    text = export_text(model(contents))
    assert json.loads(text)["version"] == version_for(contents)
    assert import_text(text, source="t.json") == contents


def test_the_text_form_shows_a_random_slice_with_its_seed() -> None:
    text = export_text(model(with_fault(Slice(size="random", seed=7))))
    line = next(line for line in text.splitlines() if '"slice"' in line)
    assert json.loads(line.strip().rstrip(",")) == {
        "kind": "slice",
        "size": "random",
        "delay": 0.0,
        "seed": 7,
    }


def test_importing_a_new_fault_into_an_earlier_version_is_refused() -> None:
    text = export_text(model(with_fault(Bandwidth(bytes_per_second=5))))
    older = text.replace('"version": 4', '"version": 3')
    with pytest.raises(CassetteFormatError, match="bandwidth fault needs format version 4"):
        import_text(older, source="t.json")


# -- describe_fault and transcripts ---------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "text"),
    [
        (Corrupt(), "corrupt nbytes=1 seed=0"),
        (Corrupt(nbytes=2, seed=9, times=1), "corrupt nbytes=2 seed=9 times=1"),
        (Bandwidth(bytes_per_second=100), "bandwidth bytes_per_second=100"),
        (Close(), "close"),
        (Close(delay=0.5), "close delay=0.5"),
        (Slice(size=3), "slice size=3 delay=0.0"),
        (Slice(size="random"), "slice size=random delay=0.0 seed=0"),
        (Slice(size="random", seed=7, nbytes=10), "slice size=random delay=0.0 seed=7 nbytes=10"),
        (Slice(size=1, nbytes=4, times=2), "slice size=1 delay=0.0 nbytes=4 times=2"),
    ],
)
def test_describe_fault_names_everything_the_run_needs_to_repeat(fault: Fault, text: str) -> None:
    assert describe_fault(fault) == text


def test_the_transcript_shows_a_random_slice_with_its_seed() -> None:
    (connection,) = with_fault(Slice(size="random", seed=7)).connections
    lines = connection_lines(0, connection, mark=2, around=5)
    assert any("FAULT slice size=random delay=0.0 seed=7" in line for line in lines)


def test_a_replay_error_after_a_random_slice_carries_its_seed() -> None:
    events = (
        Slice(size="random", seed=7),
        ClientData(data=b"q"),
        ServerData(data=b"reply"),
        ClientData(data=b"next"),
    )
    connection = Connection(target="h:1", events=events)
    found = Problem(reason="mismatch", position=4, expected=b"next", actual=b"nope", offset=0)
    error = diagnose.problem("c.msgpack", 0, connection, found)
    assert error.transcript is not None
    assert "FAULT slice size=random delay=0.0 seed=7" in error.transcript
