"""Framing, matchers, exchange mode, repeats, strict mode, filters and realtime replay."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import tcpcassette
from tcpcassette import ClientData, Connection, ServerData, load, use_cassette
from tcpcassette.faults import Reset
from tcpcassette.filters import replace
from tcpcassette.matchers import ignore_ranges, ignore_regex

from . import servers
from .blocks import raises_at_exit
from .servers import ThreadedServer

Serve = Callable[[servers.Handler], ThreadedServer]


def line_echo(conn: socket.socket) -> None:
    """Answers each line with the line upper-cased."""
    for line in conn.makefile("rb"):
        conn.sendall(line.upper())


def talk_lines(port: int, *lines: bytes) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        reader = s.makefile("rb")
        out = []
        for line in lines:
            s.sendall(line)
            out.append(reader.readline())
        return out


def talk_frames(port: int, *bodies: bytes) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        out = []
        for body in bodies:
            s.sendall(servers.frame(body))
            out.append(servers.read_frame(s))
        return out


# -- framing and matchers ---------------------------------------------------------------


def test_lines_framing_with_ignore_regex_accepts_a_new_timestamp(
    cassette_dir: Path, serve: Serve
) -> None:
    server = serve(line_echo)
    with use_cassette("ts", record_mode="all", cassette_dir=cassette_dir):
        assert talk_lines(server.port, b"PING 1700000000\n", b"QUIT\n") == [
            b"PING 1700000000\n",
            b"QUIT\n",
        ]
    server.stop()
    matcher = ignore_regex(rb"\d{10}")
    with use_cassette("ts", cassette_dir=cassette_dir, framing="lines", match=matcher):
        # The reply is the recorded one: replay answers, it does not compute.
        assert talk_lines(server.port, b"PING 1800000000\n", b"QUIT\n") == [
            b"PING 1700000000\n",
            b"QUIT\n",
        ]
    with raises_at_exit(tcpcassette.ClientMismatchError):
        with use_cassette("ts", cassette_dir=cassette_dir):
            with pytest.raises(ConnectionResetError):
                talk_lines(server.port, b"PING 1800000000\n", b"QUIT\n")


def test_length_prefixed_framing_with_ignore_ranges_skips_a_sequence_number(
    cassette_dir: Path, serve: Serve
) -> None:
    server = serve(servers.length_prefixed)

    def request(seq: int, text: bytes) -> bytes:
        return struct.pack(">I", seq) + text

    with use_cassette("seq", record_mode="all", cassette_dir=cassette_dir):
        live = talk_frames(server.port, request(1, b"hello"), request(2, b"world"))
    server.stop()
    # Bytes 4..8 of each framed message hold the sequence number.
    with use_cassette(
        "seq", cassette_dir=cassette_dir, framing="length-prefixed", match=ignore_ranges((4, 8))
    ):
        assert talk_frames(server.port, request(7, b"hello"), request(8, b"world")) == live
    with raises_at_exit(tcpcassette.ClientMismatchError):
        with use_cassette(
            "seq", cassette_dir=cassette_dir, framing="length-prefixed", match=ignore_ranges((4, 8))
        ):
            with pytest.raises((ConnectionResetError, EOFError)):
                talk_frames(server.port, request(7, b"HELLO"))


class NulTerminated:
    """A user's framer: messages end with a NUL byte."""

    name = "nul"

    def split(self, data: bytes) -> list[int]:
        ends, start = [], 0
        while (found := data.find(b"\0", start)) != -1:
            start = found + 1
            ends.append(start)
        return ends


def test_a_custom_framer_and_matcher(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)

    def talk(*messages: bytes) -> list[bytes]:
        with socket.create_connection(server.address, timeout=5) as s:
            out = []
            for m in messages:
                s.sendall(m)
                out.append(servers.recv_exactly(s, len(m)))
            return out

    with use_cassette("nul", record_mode="all", cassette_dir=cassette_dir):
        assert talk(b"select\0", b"quit\0") == [b"SELECT\0", b"QUIT\0"]
    server.stop()

    def case_blind(recorded: bytes, actual: bytes) -> bool:
        return recorded.lower() == actual.lower()

    with use_cassette("nul", cassette_dir=cassette_dir, framing=NulTerminated(), match=case_blind):
        assert talk(b"SeLeCt\0", b"QUIT\0") == [b"SELECT\0", b"QUIT\0"]


def test_show_numbers_framed_messages_and_inject_splits_only_one_chunk(tmp_path: Path) -> None:
    cassette = tcpcassette.Cassette(
        connections=[
            Connection(
                target="h:1",
                events=(ClientData(data=b"a\nb\n"), ServerData(data=b"1\n2\n")),
            )
        ]
    )
    transcript = tcpcassette.format_transcript(cassette, framing="lines")
    assert "4 lines messages" in transcript and "     3 " in transcript
    cassette.inject(Reset(), connection=0, after=3, framing="lines")  # after the reply "1\n"
    assert [(e.kind, e.data) for e in cassette.connections[0].events] == [
        ("client", b"a\nb\n"),
        ("server", b"1\n"),
        ("reset", b""),
        ("server", b"2\n"),
    ]


# -- exchange mode: a pool whose connections carry other requests than when recorded ------


def test_exchange_mode_serves_a_pool_that_spreads_requests_differently(
    cassette_dir: Path, serve: Serve
) -> None:
    server = serve(servers.length_prefixed)
    keys = [f"k{i}".encode() for i in range(12)]
    with use_cassette("pool", record_mode="all", cassette_dir=cassette_dir):
        # Recorded: 3 connections, 4 requests each, in order.
        live = [r for i in range(3) for r in talk_frames(server.port, *keys[i * 4 : i * 4 + 4])]
    server.stop()
    # Replayed: 4 threads, 3 requests each, so no connection repeats a recorded one.
    groups = [keys[i::4] for i in range(4)]
    with raises_at_exit(tcpcassette.ClientMismatchError):
        with use_cassette("pool", cassette_dir=cassette_dir):
            with ThreadPoolExecutor(4) as pool:
                failures = list(pool.map(lambda g: _failure(talk_frames, server.port, *g), groups))
    # Each was reset (a reset met while writing is a broken pipe), none left hanging.
    assert all(isinstance(f, ConnectionError) for f in failures), failures
    with use_cassette(
        "pool", cassette_dir=cassette_dir, matching="exchange", strict=True
    ) as cassette:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda g: talk_frames(server.port, *g), groups))
    answers = dict(
        zip([k for g in groups for k in g], [r for rs in results for r in rs], strict=True)
    )
    assert [answers[k] for k in keys] == live
    assert len(cassette.connections) == 3


def _failure(func: Callable[..., object], *args: object) -> BaseException | None:
    """What ``func(*args)`` raised, or None."""
    try:
        func(*args)
    except (OSError, EOFError) as exc:
        return exc
    return None


def test_exchange_mode_answers_equal_requests_in_recorded_order(
    cassette_dir: Path, serve: Serve
) -> None:
    counter = {"n": 0}

    def counting(conn: socket.socket) -> None:
        for _line in conn.makefile("rb"):
            counter["n"] += 1
            conn.sendall(f"{counter['n']}\n".encode())

    server = serve(counting)
    with use_cassette("incr", record_mode="all", cassette_dir=cassette_dir):
        assert talk_lines(server.port, b"INCR\n", b"INCR\n") == [b"1\n", b"2\n"]
        assert talk_lines(server.port, b"INCR\n") == [b"3\n"]
    server.stop()
    with use_cassette("incr", cassette_dir=cassette_dir, matching="exchange"):
        assert talk_lines(server.port, b"INCR\n") == [b"1\n"]
        assert talk_lines(server.port, b"INCR\n", b"INCR\n") == [b"2\n", b"3\n"]


# -- repeats and strict mode ----------------------------------------------------------------


def test_allow_playback_repeats_serves_a_recording_again(cassette_dir: Path, serve: Serve) -> None:
    server = serve(line_echo)
    with use_cassette("rep", record_mode="all", cassette_dir=cassette_dir):
        talk_lines(server.port, b"hi\n")
    server.stop()
    with use_cassette("rep", cassette_dir=cassette_dir, allow_playback_repeats=True) as cassette:
        for _ in range(3):
            assert talk_lines(server.port, b"hi\n") == [b"HI\n"]
    assert cassette.play_counts == [3]
    with raises_at_exit(tcpcassette.UnrecordedConnectionError):
        with use_cassette("rep", cassette_dir=cassette_dir):
            talk_lines(server.port, b"hi\n")
            talk_lines(server.port, b"hi\n")


def test_strict_mode_catches_a_dropped_request(cassette_dir: Path, serve: Serve) -> None:
    server = serve(line_echo)
    with use_cassette("s", record_mode="all", cassette_dir=cassette_dir):
        talk_lines(server.port, b"LOGIN\n", b"AUDIT\n")
        talk_lines(server.port, b"second connection\n")
    server.stop()
    with raises_at_exit(tcpcassette.UnplayedError) as info:
        with use_cassette("s", cassette_dir=cassette_dir, strict=True):
            talk_lines(server.port, b"LOGIN\n")  # the AUDIT request was dropped
    message = str(info.value)
    assert "connection 0" in message and "stopped before the end" in message
    assert "connection 1" in message and "never connected" in message
    with use_cassette("s", cassette_dir=cassette_dir) as cassette:  # not strict: passes
        talk_lines(server.port, b"LOGIN\n")
    assert not cassette.all_played and cassette.play_count == 1


def test_strict_exchange_mode_lists_unused_requests(cassette_dir: Path, serve: Serve) -> None:
    server = serve(line_echo)
    with use_cassette("se", record_mode="all", cassette_dir=cassette_dir):
        talk_lines(server.port, b"A\n", b"B\n")
    server.stop()
    with raises_at_exit(tcpcassette.UnplayedError, match=r"event 3: b'B\\n'"):
        with use_cassette("se", cassette_dir=cassette_dir, matching="exchange", strict=True):
            talk_lines(server.port, b"A\n")


# -- filters: secrets stay out of cassettes, and the cassette still replays ------------------


def test_filter_redacts_a_password_and_the_cassette_still_replays(
    cassette_dir: Path, serve: Serve
) -> None:
    server = serve(line_echo)
    secret = replace(rb"AUTH \S+", b"AUTH [redacted]")
    with use_cassette("auth", record_mode="all", cassette_dir=cassette_dir, filters=[secret]):
        assert talk_lines(server.port, b"AUTH hunter2\n", b"GET x\n") == [
            b"AUTH HUNTER2\n",
            b"GET X\n",
        ]
    raw = (cassette_dir / "auth.msgpack").read_bytes()
    assert b"hunter2" not in raw and b"AUTH [redacted]" in raw
    assert b"HUNTER2" in raw  # the filter was for the client side only
    server.stop()
    with use_cassette("auth", cassette_dir=cassette_dir, filters=[secret]):
        assert talk_lines(server.port, b"AUTH another-password\n", b"GET x\n")[1] == b"GET X\n"


def test_filter_on_both_sides(cassette_dir: Path, serve: Serve) -> None:
    server = serve(line_echo)
    token = replace(rb"(?i)token=\w+", b"token=X", side="both")
    with use_cassette("tok", record_mode="all", cassette_dir=cassette_dir, filters=[token]):
        # The live client is served the real bytes; only the cassette is rewritten.
        assert talk_lines(server.port, b"token=abc123\n") == [b"TOKEN=ABC123\n"]
    raw = (cassette_dir / "tok.msgpack").read_bytes()
    assert b"abc123" not in raw and b"ABC123" not in raw
    [recorded] = load(cassette_dir / "tok.msgpack").connections
    assert (recorded.client_bytes, recorded.server_bytes) == (b"token=X\n", b"token=X\n")


# -- readable failures ------------------------------------------------------------------------


def test_mismatch_message_shows_what_played_before(cassette_dir: Path, serve: Serve) -> None:
    server = serve(line_echo)
    with use_cassette("ctx", record_mode="all", cassette_dir=cassette_dir):
        talk_lines(server.port, b"one\n", b"two\n", b"three\n")
    server.stop()
    with raises_at_exit(tcpcassette.ClientMismatchError) as info:
        with use_cassette("ctx", cassette_dir=cassette_dir):
            with pytest.raises(ConnectionResetError):
                talk_lines(server.port, b"one\n", b"two\n", b"tree\n")
    message = str(info.value)
    assert "event 5" in message and "played before it:" in message
    assert "2  server (4 bytes)" in message and "4  server (4 bytes)" in message
    assert info.value.connection == 0 and info.value.position == 5
    assert "◀ here" in (info.value.transcript or "")


def test_pytest_report_gets_the_transcript_of_the_failing_connection(
    pytester: pytest.Pytester,
) -> None:
    cassette = tcpcassette.Cassette(
        connections=[
            Connection(
                target="127.0.0.1:9",
                events=(
                    ClientData(data=b"HELLO v1\n"),
                    ServerData(data=b"WELCOME\n"),
                    ClientData(data=b"BYE\n"),
                ),
            )
        ]
    )
    cassette.save(pytester.path / "cassettes" / "greet.msgpack")
    pytester.makepyfile(
        test_greet="""
import socket
from tcpcassette import use_cassette

@use_cassette("greet")
def test_greet():
    with socket.create_connection(("127.0.0.1", 9), timeout=5) as s:
        s.sendall(b"HELLO v1\\n")
        assert s.recv(100) == b"WELCOME\\n"
        s.sendall(b"BYE!\\n")
        s.recv(100)
"""
    )
    result = pytester.runpytest("-p", "no:asyncio")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ClientMismatchError*connection 0 (127.0.0.1:9), event 3*",
            "*- tcpcassette transcript -*",
            "*3  *client → server  4 bytes  ◀ here*",
        ]
    )


# -- realtime ----------------------------------------------------------------------------------


def slow_sender(conn: socket.socket) -> None:
    conn.recv(100)
    conn.sendall(b"first")
    time.sleep(0.3)
    conn.sendall(b"second")


def test_realtime_replays_the_recorded_gaps(cassette_dir: Path, serve: Serve) -> None:
    server = serve(slow_sender)

    def client() -> tuple[list[bytes], float]:
        with socket.create_connection(server.address, timeout=5) as s:
            s.sendall(b"go")
            first = s.recv(100)
            started = time.monotonic()
            second = s.recv(100)
            return [first, second], time.monotonic() - started

    with use_cassette("slow", record_mode="all", cassette_dir=cassette_dir):
        assert client()[0] == [b"first", b"second"]
    server.stop()
    with use_cassette("slow", cassette_dir=cassette_dir, realtime=True):
        chunks, waited = client()
    assert chunks == [b"first", b"second"] and waited >= 0.25
    with use_cassette("slow", cassette_dir=cassette_dir, realtime=2.0):
        chunks, waited = client()
    assert chunks == [b"first", b"second"] and waited >= 0.12


def test_load_keeps_connection_start_times_in_order(cassette_dir: Path, serve: Serve) -> None:
    server = serve(line_echo)
    with use_cassette("order", record_mode="all", cassette_dir=cassette_dir):
        talk_lines(server.port, b"a\n")
        talk_lines(server.port, b"b\n")
    first, second = load(cassette_dir / "order.msgpack").connections
    assert first.start == 0.0 and second.start > 0.0


def test_exchange_mode_ignores_the_order_of_messages_on_a_connection(
    cassette_dir: Path, serve: Serve
) -> None:
    server = serve(line_echo)
    with use_cassette("order", record_mode="all", cassette_dir=cassette_dir):
        assert talk_lines(server.port, b"first\n", b"second\n", b"third\n") == [
            b"FIRST\n",
            b"SECOND\n",
            b"THIRD\n",
        ]
    server.stop()
    with raises_at_exit(tcpcassette.ClientMismatchError):
        with use_cassette("order", cassette_dir=cassette_dir):
            with pytest.raises(ConnectionResetError):
                talk_lines(server.port, b"third\n", b"first\n", b"second\n")
    with use_cassette("order", cassette_dir=cassette_dir, matching="exchange", strict=True):
        assert talk_lines(server.port, b"third\n", b"first\n", b"second\n") == [
            b"THIRD\n",
            b"FIRST\n",
            b"SECOND\n",
        ]
