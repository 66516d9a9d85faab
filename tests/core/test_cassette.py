"""The cassette model, with no files: edits, and connections appended by new_episodes."""

from __future__ import annotations

import pytest

from tcpcassette import ClientData, Connection, InvalidFaultError, ServerData
from tcpcassette._core.cassette import CassetteModel, continue_after
from tcpcassette.faults import Reset


def conn(start: float, *times: float) -> Connection:
    events = tuple(ClientData(data=b"x", time=t) for t in times)
    return Connection(target="h:1", events=events, start=start)


def test_new_episodes_start_after_the_connections_already_kept() -> None:
    kept = [conn(0.0, 0.1, 0.5), conn(2.0, 0.25)]
    recorded = [conn(0.0, 0.1), conn(0.3, 0.2)]
    moved = continue_after(kept, recorded)
    assert [c.start for c in moved] == [2.25, 2.55]
    assert [c.events for c in moved] == [c.events for c in recorded]


def test_nothing_moves_when_nothing_was_kept() -> None:
    recorded = [conn(0.5, 0.1)]
    assert continue_after([], recorded) == recorded


def test_the_model_places_and_removes_faults_and_names_itself_in_errors() -> None:
    model = CassetteModel(
        path="c.msgpack",
        connections=[
            Connection(target="h:1", events=(ClientData(data=b"a"), ServerData(data=b"b")))
        ],
    )
    model.inject(Reset(), connection=0, after=1)
    assert [e.kind for e in model.connections[0].events] == ["client", "reset", "server"]
    model.remove(connection=0, event=2)
    assert [e.kind for e in model.connections[0].events] == ["client", "server"]
    with pytest.raises(InvalidFaultError, match=r"c\.msgpack: there is no connection 3"):
        model.inject(Reset(), connection=3)
    with pytest.raises(InvalidFaultError, match="no connection True"):
        model.inject(Reset(), connection=True)
    assert model.contents.connections == tuple(model.connections)


def test_a_detected_protocol_is_stored_in_version_2_and_absent_ones_keep_version_1() -> None:
    import msgpack

    from tcpcassette._core.codec import CassetteContents, decode, encode

    plain = Connection(target="h:1", events=(ClientData(data=b"x"),))
    tagged = Connection(target="h:1", events=(ClientData(data=b"x"),), protocol="redis")
    for connection, version in ((plain, 1), (tagged, 2)):
        raw = encode(CassetteContents(connections=(connection,), hosts={}))
        assert msgpack.unpackb(raw)["version"] == version
        assert decode(raw, source="t").connections == (connection,)


def test_show_marks_values_the_server_echoes_and_learned_spans() -> None:
    from tcpcassette import format_transcript

    inbox = b"_INBOX.Zq81kd0Pp2"
    connection = Connection(
        target="n:1",
        events=(
            ClientData(data=b"SUB " + inbox + b" 1\r\nHELLO pid=4242\r\n"),
            ServerData(data=b"MSG " + inbox + b" 1 5\r\nhello\r\n"),
        ),
        volatile=((0, 31, 39),),
    )
    shown = format_transcript(CassetteModel(connections=[connection]))
    assert shown.count("«_INBOX.Zq81kd0Pp2» echoed by event 2") == 1
    assert "«pid=4242» volatile: bytes 31-39 of client message 0 (learned)" in shown
    assert "«HELLO" not in shown  # words are not marked


def test_show_counts_a_chunks_later_messages_and_full_shows_every_one() -> None:
    from tcpcassette import format_transcript
    from tcpcassette._core.transcript import RENDERED_PER_CHUNK

    pings = b"".join(b"*2\r\n$4\r\nECHO\r\n$2\r\n%02d\r\n" % i for i in range(8))
    model = CassetteModel(
        path=None,
        connections=[Connection(target="r:6379", events=(ClientData(data=pings),))],
    )
    short = format_transcript(model)
    assert short.count("⇒ ECHO") == RENDERED_PER_CHUNK
    assert f"… {8 - RENDERED_PER_CHUNK} more messages (--full shows them)" in short
    whole = format_transcript(model, full=True)
    assert whole.count("⇒ ECHO") == 8 and "⇒ ECHO 07" in whole and "more messages" not in whole
