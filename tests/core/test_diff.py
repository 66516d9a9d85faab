"""Cassettes compared message by message, decoded, with no network."""

from __future__ import annotations

from tcpcassette import (
    Cassette,
    ClientClose,
    ClientData,
    Connection,
    ServerClose,
    ServerData,
    ServerReset,
)
from tcpcassette._core.diff import diff_cassettes, diff_lines, textconv_lines
from tcpcassette._core.events import Event
from tcpcassette._core.noise import NoiseMode

GET = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"
PING = b"*1\r\n$4\r\nPING\r\n"


def redis(value: bytes, *, times: tuple[float, ...] = (0.001, 0.002, 0.003, 0.004)) -> Connection:
    return Connection(
        target="localhost:6379",
        events=(
            ClientData(data=GET, time=times[0]),
            ServerData(data=b"$%d\r\n%s\r\n" % (len(value), value), time=times[1]),
            ClientData(data=PING, time=times[2]),
            ServerData(data=b"+PONG\r\n", time=times[3]),
            ClientClose(time=0.005),
        ),
    )


def http(
    agent: bytes, body: bytes = b"hi", volatile: tuple[tuple[int, int, int], ...] = ()
) -> Connection:
    request = b"GET /?t=" + agent + b" HTTP/1.1\r\nHost: h:80\r\nUser-Agent: " + agent + b"\r\n\r\n"
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    events: tuple[Event, ...] = (
        ClientData(data=request, time=0.1),
        ServerData(data=reply, time=0.2),
    )
    return Connection(target="h:80", events=events, volatile=volatile)


def cassette(*connections: Connection) -> Cassette:
    return Cassette(connections=list(connections))


def test_the_same_recording_has_no_differences() -> None:
    result = diff_cassettes(cassette(redis(b"hello")), cassette(redis(b"hello")))
    assert result.equal
    assert diff_lines(result)[-1] == "no differences"


def test_a_changed_reply_is_named_by_connection_and_message_and_shown_decoded() -> None:
    result = diff_cassettes(cassette(redis(b"hello")), cassette(redis(b"world")))
    assert not result.equal
    (found,) = result.connections
    assert (found.recorded, found.new, found.protocol) == (0, 0, "redis")
    (change,) = found.changes
    assert change.kind == "changed"
    assert change.recorded is not None and change.recorded.number == 2
    lines = diff_lines(result)
    assert "@@ connection 0 → localhost:6379, redis @@" in lines
    assert "@ message 2 (server → client) changed" in lines
    assert "  after message 1: GET key" in lines
    assert "- ⇒ hello" in lines
    assert "+ ⇒ world" in lines
    assert "-  hello\\r\\n" in lines
    assert "+  world\\r\\n" in lines


def test_a_protocol_field_that_varies_is_no_difference_unless_noise_is_off() -> None:
    a, b = cassette(http(b"lib/1.0")), cassette(http(b"lib/2.0"))
    # The User-Agent header varies by the protocol's rule; the query string does not.
    result = diff_cassettes(a, b)
    assert not result.equal
    (change,) = result.connections[0].changes
    assert change.recorded is not None and change.recorded.kind == "client"
    same_query = cassette(
        Connection(
            target="h:80",
            events=(ClientData(data=b"GET / HTTP/1.1\r\nUser-Agent: lib/1.0\r\n\r\n", time=0.1),),
        )
    )
    other_agent = cassette(
        Connection(
            target="h:80",
            events=(ClientData(data=b"GET / HTTP/1.1\r\nUser-Agent: lib/2.0.1\r\n\r\n", time=0.1),),
        )
    )
    assert diff_cassettes(same_query, other_agent).equal
    assert not diff_cassettes(same_query, other_agent, mode=NoiseMode.OFF).equal


def test_a_learned_volatile_span_of_the_recorded_connection_is_no_difference() -> None:
    start = len(b"GET /?t=")
    learned = ((0, start, start + 7),)
    a = cassette(http(b"lib/1.0", volatile=learned))
    b = cassette(http(b"lib/2.0"))
    assert diff_cassettes(a, b).equal
    # The learned span covers the query only: a changed body is still reported.
    assert not diff_cassettes(a, cassette(http(b"lib/2.0", body=b"ho"))).equal


def test_messages_added_and_removed_are_reported_as_such() -> None:
    short = Connection(target="localhost:6379", events=redis(b"v").events[:2])
    result = diff_cassettes(cassette(redis(b"v")), cassette(short))
    kinds = [c.kind for c in result.connections[0].changes]
    assert kinds == ["removed", "removed", "removed"]
    lines = diff_lines(result)
    assert "@ message 3 (client → server, 14 bytes) only recorded" in lines
    assert "- ⇒ PING" in lines
    back = diff_cassettes(cassette(short), cassette(redis(b"v")))
    assert [c.kind for c in back.connections[0].changes] == ["added", "added", "added"]


def test_connections_are_paired_by_target_and_an_extra_one_is_added() -> None:
    result = diff_cassettes(cassette(redis(b"v")), cassette(http(b"a"), redis(b"v")))
    (found,) = result.connections
    assert (found.recorded, found.new, found.target) == (None, 0, "h:80")
    assert {c.kind for c in found.changes} == {"added"}
    assert "@@ connection 0 (new only) → h:80, http @@" in diff_lines(result)


def test_timing_is_compared_only_when_asked() -> None:
    slow = redis(b"v", times=(0.001, 0.9, 0.95, 0.96))
    assert diff_cassettes(cassette(redis(b"v")), cassette(slow)).equal
    result = diff_cassettes(cassette(redis(b"v")), cassette(slow), timing=True)
    kinds = [c.kind for c in result.connections[0].changes]
    assert kinds == ["timing", "timing", "timing"]
    assert any(
        "at 0.002000s when recorded, now at 0.900000s" in line for line in diff_lines(result)
    )
    assert diff_cassettes(cassette(redis(b"v")), cassette(slow), timing=True, tolerance=1.0).equal


def test_untrusted_bytes_never_reach_the_text_raw() -> None:
    evil = Connection(
        target="\x1b]0;owned\x07:1",
        events=(ServerData(data=b"+\x1b[2J\xe2\x80\xae\r\n", time=0.0),),
    )
    plain = Connection(target="\x1b]0;owned\x07:1", events=(ServerData(data=b"+ok\r\n", time=0.0),))
    text = "\n".join(diff_lines(diff_cassettes(cassette(plain), cassette(evil))))
    text += "\n".join(textconv_lines(cassette(evil)))
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b" in text


def test_textconv_is_one_line_per_message_deterministic_and_without_times() -> None:
    one = textconv_lines(cassette(redis(b"hello", times=(0.1, 0.2, 0.3, 0.4)), http(b"x")))
    two = textconv_lines(cassette(redis(b"hello", times=(5.0, 6.0, 7.0, 8.0)), http(b"x")))
    assert one == two
    assert one[:4] == [
        "tcpcassette cassette: 2 connection(s)",
        "connection 0 → localhost:6379; protocol redis",
        "     1 client → GET key  ⟨*2\\r\\n$3\\r\\nGET\\r\\n$3\\r\\nkey\\r\\n⟩",
        "     2 server ← hello  ⟨$5\\r\\nhello\\r\\n⟩",
    ]
    changed = textconv_lines(cassette(redis(b"world"), http(b"x")))
    assert [i for i, (a, b) in enumerate(zip(one, changed, strict=True)) if a != b] == [3]


def test_binary_payloads_are_shown_in_hex() -> None:
    blob = Connection(target="db:1", events=(ServerData(data=b"\x00\x01\xff", time=0.0),))
    other = Connection(target="db:1", events=(ServerData(data=b"\x00\x02\xff", time=0.0),))
    assert textconv_lines(cassette(blob))[-1] == "     1 server ← hex 0001ff"
    lines = diff_lines(diff_cassettes(cassette(blob), cassette(other)))
    assert "- ⇒ hex 0001ff" in lines and "+ ⇒ hex 0002ff" in lines


def reordered(first: bytes, second: bytes, *, close_first: str = "client") -> Connection:
    """A pipelining client: it sends its second request before the first reply came."""
    closes: tuple[Event, ...] = (ClientClose(time=0.5), ServerClose(time=0.5))
    if close_first == "server":
        closes = closes[::-1]
    return Connection(
        target="localhost:6379",
        events=(
            ClientData(data=GET, time=0.1),
            ServerData(data=first, time=0.2),
            ClientData(data=PING, time=0.3),
            ServerData(data=second, time=0.4),
            *closes,
        ),
    )


def test_when_a_reply_arrived_between_the_client_messages_is_no_difference() -> None:
    # The client sent PING before the GET's reply came back, in the second recording.
    early = Connection(
        target="localhost:6379",
        events=(
            ClientData(data=GET, time=0.1),
            ClientData(data=PING, time=0.15),
            ServerData(data=b"$1\r\nv\r\n", time=0.2),
            ServerData(data=b"+PONG\r\n", time=0.4),
            ServerClose(time=0.5),
            ClientClose(time=0.5),
        ),
    )
    late = reordered(b"$1\r\nv\r\n", b"+PONG\r\n")
    assert diff_cassettes(cassette(late), cassette(early)).equal
    # What the server said still counts, in whichever order it came.
    changed = diff_cassettes(cassette(late), cassette(reordered(b"$1\r\nw\r\n", b"+PONG\r\n")))
    (change,) = changed.connections[0].changes
    assert change.kind == "changed" and change.new is not None and change.new.data == b"$1\r\nw\r\n"


def test_a_reset_where_a_close_was_recorded_is_a_difference() -> None:
    reset = Connection(
        target="localhost:6379",
        events=(*reordered(b"+a\r\n", b"+b\r\n").events[:4], ServerReset(time=0.5)),
    )
    changes = (
        diff_cassettes(cassette(reordered(b"+a\r\n", b"+b\r\n")), cassette(reset))
        .connections[0]
        .changes
    )
    kinds = sorted((c.kind, m.kind) for c in changes for m in (c.recorded or c.new,) if m)
    assert kinds == [
        ("added", "server_reset"),
        ("removed", "client_close"),
        ("removed", "server_close"),
    ]


def test_server_values_made_anew_each_run_are_no_difference_but_the_rest_of_the_reply_is() -> None:
    def dated(date: bytes, body: bytes = b"hi") -> Connection:
        reply = b"HTTP/1.1 200 OK\r\nDate: %s\r\nContent-Length: %d\r\n\r\n%s" % (
            date,
            len(body),
            body,
        )
        request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
        return Connection(target="h:80", events=(ClientData(data=request), ServerData(data=reply)))

    monday = dated(b"Mon, 30 Nov 2026 10:00:00 GMT")
    assert diff_cassettes(cassette(monday), cassette(dated(b"Tue, 01 Dec 2026 11:22:33 GMT"))).equal
    other = diff_cassettes(
        cassette(monday), cassette(dated(b"Tue, 01 Dec 2026 11:22:33 GMT", b"ho"))
    )
    assert [c.kind for c in other.connections[0].changes] == ["changed"]
    # noise="off": every byte counts, the Date too.
    off = diff_cassettes(
        cassette(monday), cassette(dated(b"Tue, 01 Dec 2026 11:22:33 GMT")), mode=NoiseMode.OFF
    )
    assert not off.equal


def test_a_value_the_client_chose_and_the_server_echoes_is_no_difference_in_auto_mode() -> None:
    def inbox(name: bytes, answer: bytes = b"pong") -> Connection:
        return Connection(
            target="n:4222",
            events=(
                ClientData(data=b"SUB _INBOX.%s.* 1\r\n" % name),
                ClientData(data=b"PUB help _INBOX.%s.1 4\r\nping\r\n" % name),
                ServerData(data=b"MSG _INBOX.%s.1 1 %d\r\n%s\r\n" % (name, len(answer), answer)),
            ),
        )

    first, second = inbox(b"RG5flrFIHkI46ZJQitwUCS"), inbox(b"GzxiZRq52lznHwFEqZgxCi")
    assert diff_cassettes(cassette(first), cassette(second), mode=NoiseMode.AUTO).equal
    assert not diff_cassettes(cassette(first), cassette(second), mode=NoiseMode.OFF).equal
    changed = diff_cassettes(
        cassette(first), cassette(inbox(b"GzxiZRq52lznHwFEqZgxCi", b"gone")), mode=NoiseMode.AUTO
    )
    (change,) = changed.connections[0].changes
    assert change.kind == "changed" and change.new is not None and b"gone" in change.new.data


def test_a_server_on_another_port_now_is_paired_by_host() -> None:
    moved = Connection(target="localhost:40001", events=redis(b"v").events)
    result = diff_cassettes(cassette(redis(b"v")), cassette(moved))
    assert result.equal
    elsewhere = Connection(target="otherhost:6379", events=redis(b"v").events)
    assert [
        (c.recorded, c.new)
        for c in diff_cassettes(cassette(redis(b"v")), cassette(elsewhere)).connections
    ] == [(0, None), (None, 0)]


def test_two_faults_at_one_place_differ_unless_they_are_the_same() -> None:
    from tcpcassette._core.faults import Delay, Reset

    def faulted(fault: Event) -> Connection:
        events = redis(b"v").events
        return Connection(target="localhost:6379", events=(*events[:2], fault, *events[2:]))

    delayed, reset = faulted(Delay(seconds=2.0)), faulted(Reset())
    assert diff_cassettes(cassette(delayed), cassette(faulted(Delay(seconds=2.0)))).equal
    changes = diff_cassettes(cassette(delayed), cassette(reset)).connections[0].changes
    assert sorted(c.kind for c in changes) == ["added", "removed"]
    lines = diff_lines(diff_cassettes(cassette(delayed), cassette(reset)))
    assert any(line.startswith("- ⇒") and "delay" in line for line in lines), lines
    assert any(line.startswith("+ ⇒") and "reset" in line for line in lines), lines
