"""The noise rules, with no network: what a live client message may differ in, and why."""

from __future__ import annotations

import base64
import random
import struct
import uuid
from collections.abc import Sequence

import pytest

from tcpcassette import ClientData, ServerData
from tcpcassette._core.actions import Abort, Problem, Send
from tcpcassette._core.events import Event
from tcpcassette._core.noise import (
    MIN_ECHO_ANYWHERE,
    Bindings,
    NoiseMode,
    Substitution,
    compare,
    looks_random,
    message_length,
    plausible,
)
from tcpcassette._core.replay import ReplayMachine

RNG = random.Random(20261201)


def rand_bytes(n: int) -> bytes:
    return bytes(RNG.randrange(256) for _ in range(n))


def dns(ident: int, name: bytes = b"\x07example\x03com\x00") -> bytes:
    """A DNS-over-TCP frame: a 2-byte length, the 2-byte id, flags and the question."""
    body = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01"
    return struct.pack(">H", len(body)) + body


def dns_answer(ident: int) -> bytes:
    return dns(ident)[:4] + b"\x81\x80" + dns(ident)[6:] + b"\xc0\x0c\x00\x01\x00\x01" + b"\x00" * 6


def machine(events: tuple[Event, ...], noise: NoiseMode = NoiseMode.AUTO) -> ReplayMachine:
    return ReplayMachine(events, hang_bound=30.0, stall_bound=5.0, noise=noise)


def sent(actions: Sequence[object]) -> list[bytes]:
    return [a.data for a in actions if isinstance(a, Send)]


# -- echo ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(30))
def test_a_random_dns_id_echoed_in_the_answer_is_accepted_and_written_back(seed: int) -> None:
    rng = random.Random(seed)
    recorded_id, live_id = rng.sample(range(65536), 2)
    verdict = compare(dns(recorded_id), dns(live_id), replies=[dns_answer(recorded_id)])
    assert verdict.ok, verdict
    assert {s.rule for s in verdict.spans} == {"echo"}
    bindings = Bindings()
    bindings.add(verdict.substitutions)
    assert bindings.apply(dns_answer(recorded_id)) == dns_answer(live_id)


def test_a_dns_id_with_one_byte_alike_is_still_an_echo() -> None:
    verdict = compare(dns(0x0430), dns(0x04F7), replies=[dns_answer(0x0430)])
    assert verdict.ok
    bindings = Bindings()
    bindings.add(verdict.substitutions)
    assert bindings.apply(dns_answer(0x0430)) == dns_answer(0x04F7)


def test_the_replay_machine_answers_with_the_live_clients_id() -> None:
    events = (ClientData(data=dns(0x1234)), ServerData(data=dns_answer(0x1234)))
    m = machine(events)
    m.start(0.0)
    assert sent(m.feed(dns(0xBEEF), 0.0)) == [dns_answer(0xBEEF)]
    assert [(p, s.rule) for p, s in m.tolerated] == [(1, "echo")]


def test_a_tag_prefix_chosen_once_is_substituted_in_every_later_command_and_reply() -> None:
    events = (
        ServerData(data=b"* OK ready\r\n"),
        ClientData(data=b"KGMO1 LOGIN user pass\r\n"),
        ServerData(data=b"* CAPABILITY IMAP4rev1\r\nKGMO1 OK logged in\r\n"),
        ClientData(data=b"KGMO2 SELECT INBOX\r\n"),
        ServerData(data=b"* 3 EXISTS\r\nKGMO2 OK [READ-WRITE] done\r\n"),
        ClientData(data=b"KGMO3 LOGOUT\r\n"),
        ServerData(data=b"* BYE\r\nKGMO3 OK bye\r\n"),
    )
    m = machine(events)
    assert sent(m.start(0.0)) == [b"* OK ready\r\n"]
    assert sent(m.feed(b"XQZA1 LOGIN user pass\r\n", 0.0)) == [
        b"* CAPABILITY IMAP4rev1\r\nXQZA1 OK logged in\r\n"
    ]
    assert sent(m.feed(b"XQZA2 SELECT INBOX\r\n", 0.0)) == [
        b"* 3 EXISTS\r\nXQZA2 OK [READ-WRITE] done\r\n"
    ]
    assert sent(m.feed(b"XQZA3 LOGOUT\r\n", 0.0)) == [b"* BYE\r\nXQZA3 OK bye\r\n"]


def test_a_long_value_echoed_anywhere_is_replaced_everywhere_later() -> None:
    inbox = b"_INBOX.%s" % base64.b32encode(rand_bytes(10)).rstrip(b"=")
    live_inbox = b"_INBOX.%s" % base64.b32encode(rand_bytes(10)).rstrip(b"=")
    assert len(inbox) >= MIN_ECHO_ANYWHERE
    events = (
        ClientData(data=b"SUB " + inbox + b" 1\r\n"),
        ServerData(data=b"+OK\r\n"),
        ClientData(data=b"PUB svc " + inbox + b" 2\r\nhi\r\n"),
        ServerData(data=b"MSG " + inbox + b" 1 5\r\nhello\r\n"),
    )
    m = machine(events)
    m.start(0.0)
    assert sent(m.feed(b"SUB " + live_inbox + b" 1\r\n", 0.0)) == [b"+OK\r\n"]
    assert sent(m.feed(b"PUB svc " + live_inbox + b" 2\r\nhi\r\n", 0.0)) == [
        b"MSG " + live_inbox + b" 1 5\r\nhello\r\n"
    ]


def test_a_value_in_a_length_prefixed_binary_frame_is_echoed_at_its_offset() -> None:
    token_rec, token_live = rand_bytes(4), rand_bytes(4)
    request = b"\x00\x0a\x01\x02" + token_rec + b"\x00\x00"
    reply = b"\x00\x08\x81\x02" + token_rec + b"OK"
    verdict = compare(request, request[:4] + token_live + b"\x00\x00", replies=[reply])
    assert verdict.ok
    assert all(s.anchor == "message" and s.offset == 4 for s in verdict.substitutions)


def test_two_tokens_in_one_message_are_each_accepted_by_their_own_rule() -> None:
    tag_rec, tag_live = b"QWZX", b"PLMK"
    nonce_rec, nonce_live = (uuid.UUID(int=RNG.getrandbits(128), version=4) for _ in range(2))
    recorded = b"%s1 AUTH nonce=%s\r\n" % (tag_rec, str(nonce_rec).encode())
    live = b"%s1 AUTH nonce=%s\r\n" % (tag_live, str(nonce_live).encode())
    verdict = compare(recorded, live, replies=[tag_rec + b"1 OK\r\n"])
    assert verdict.ok
    assert sorted(s.rule or "" for s in verdict.spans) == ["echo", "random"]


# -- coincidences and real changes ------------------------------------------------


def test_a_short_value_that_only_happens_to_occur_elsewhere_is_no_echo() -> None:
    recorded, live = dns(0x1234), dns(0xBEEF)
    reply = b"\x00" * 40 + b"\x12\x34" + b"\x00" * 40  # the id's bytes, at another offset
    verdict = compare(recorded, live, replies=[reply])
    assert not verdict.ok
    assert verdict.rejected[0].start == 2


def test_another_key_is_a_mismatch_even_where_the_reply_repeats_it() -> None:
    recorded = b"*2\r\n$3\r\nGET\r\n$4\r\nkey1\r\n"
    live = b"*2\r\n$3\r\nGET\r\n$4\r\nkey2\r\n"
    verdict = compare(recorded, live, replies=[b"*1\r\n$4\r\nkey1\r\n"])
    assert not verdict.ok
    assert "echo in later replies" in verdict.tried


@pytest.mark.parametrize(
    ("recorded", "live"),
    [
        (b"GET /a\r\n", b"SET /a\r\n"),
        (b"LIMIT 10\r\n", b"LIMIT 11\r\n"),
        (b"select 1 + 1", b"select 2 + 1"),
        (b"user=alice\r\n", b"user=bobby\r\n"),
    ],
)
def test_short_or_low_entropy_differences_are_never_random(recorded: bytes, live: bytes) -> None:
    assert not compare(recorded, live).ok


@pytest.mark.parametrize(
    "value",
    [
        str(uuid.UUID(int=RNG.getrandbits(128), version=4)).encode(),
        rand_bytes(16).hex().encode(),
        base64.b64encode(rand_bytes(18)),
        b"r=" + base64.b64encode(rand_bytes(18)),
        bytes([0x80 | b for b in rand_bytes(12)]),
    ],
)
def test_values_a_client_makes_up_look_random(value: bytes) -> None:
    assert looks_random(value)


@pytest.mark.parametrize(
    "value",
    [b"internationalize", b"aaaaaaaaaaaaaaaaaaaa", b"1234567", b"\x00\x00\x00\x01", b"key1"],
)
def test_words_counters_and_padding_do_not_look_random(value: bytes) -> None:
    assert not looks_random(value)


@pytest.mark.parametrize("seed", range(20))
def test_a_random_nonce_never_echoed_is_tolerated(seed: int) -> None:
    rng = random.Random(seed)
    nonces = [base64.b64encode(bytes(rng.randrange(256) for _ in range(18))) for _ in range(2)]
    verdict = compare(b"n,,n=,r=" + nonces[0], b"n,,n=,r=" + nonces[1])
    assert verdict.ok and {s.rule for s in verdict.spans} == {"random"}


# -- modes, learned spans and messages ---------------------------------------------


def test_noise_off_restores_byte_exact_matching() -> None:
    verdict = compare(dns(1), dns(2), mode=NoiseMode.OFF, replies=[dns_answer(1)])
    assert not verdict.ok
    events = (ClientData(data=dns(0x1234)), ServerData(data=dns_answer(0x1234)))
    m = machine(events, NoiseMode.OFF)
    m.start(0.0)
    problem, abort = m.feed(dns(0xBEEF), 0.0)
    assert isinstance(problem, Problem) and problem.reason == "mismatch" and abort == Abort()


def test_learned_spans_are_tolerated_in_learned_mode_and_echoed() -> None:
    recorded, live = b"PING pid=4242 t=1\r\n", b"PING pid=9137 t=1\r\n"
    reply = b"PONG pid=4242\r\n"
    assert not compare(recorded, live, mode=NoiseMode.LEARNED, replies=[reply]).ok
    verdict = compare(recorded, live, mode=NoiseMode.LEARNED, replies=[reply], learned=[(9, 13)])
    assert verdict.ok and verdict.spans[0].rule == "learned"
    bindings = Bindings()
    bindings.add(verdict.substitutions)
    assert bindings.apply(reply) == b"PONG pid=9137\r\n"


def test_a_mismatch_names_the_accepted_spans_next_to_the_refused_one() -> None:
    recorded = b"XKQW1 FETCH key1\r\n"
    live = b"PZLM1 FETCH key2\r\n"
    events = (ClientData(data=recorded), ServerData(data=b"XKQW1 OK\r\n"))
    m = machine(events)
    m.start(0.0)
    problem = m.feed(live, 0.0)[0]
    assert isinstance(problem, Problem)
    notes = "\n".join(problem.notes)
    assert "accepted (echo" in notes and "'XKQW1'" in notes and "'PZLM1'" in notes
    assert "not accepted" in notes and "'key1'" in notes and "'key2'" in notes
    assert "rules tried" in notes


def test_a_value_may_change_length_in_a_line_of_text() -> None:
    recorded = b"CLIENT SETINFO LIB-VER 5.0.1\r\n"
    live = b"CLIENT SETINFO LIB-VER 5.10.0\r\n"
    assert message_length(recorded, live + b"PING\r\n", eof=False) == len(live)
    assert message_length(recorded, live[:-2], eof=False) is None


def test_a_partial_message_that_already_differs_for_good_fails_at_once() -> None:
    expected = b"*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n"
    assert plausible(expected, b"*2\r\n$3\r\nGET\r\n$3\r\nf", mode=NoiseMode.AUTO)
    assert not plausible(expected, b"*2\r\n$3\r\nSET\r\n$3\r\nfoo\r", mode=NoiseMode.AUTO)
    assert not plausible(b"hello\n", b"D" * 64, mode=NoiseMode.AUTO)


def test_the_machine_matches_a_noisy_message_split_byte_by_byte() -> None:
    events = (ClientData(data=dns(0x1234)), ServerData(data=dns_answer(0x1234)))
    m = machine(events)
    m.start(0.0)
    out: list[object] = []
    for b in dns(0xBEEF):
        out += m.feed(bytes([b]), 0.0)
    assert sent(out) == [dns_answer(0xBEEF)]


def test_substitutions_anchored_at_line_starts_touch_only_those_places() -> None:
    s = Substitution(b"AB12", b"CD34", "line", 0)
    assert s.apply(b"AB12 OK\r\nx AB12\r\nAB12 NO\r\n") == b"CD34 OK\r\nx AB12\r\nCD34 NO\r\n"


@pytest.mark.parametrize("seed", range(200))
def test_a_websocket_key_always_looks_random_even_ending_in_padding_after_letters(
    seed: int,
) -> None:
    # 16 random bytes in base64 end in "=="; "xqLNnwkeUgUFTfiVSouBsg==" once read as name=value.
    rng = random.Random(seed)
    key = base64.b64encode(bytes(rng.randrange(256) for _ in range(16)))
    assert looks_random(key), key
    assert looks_random(b"xqLNnwkeUgUFTfiVSouBsg==")


@pytest.mark.parametrize("seed", range(300))
def test_a_multipart_delimiter_looks_random_as_its_boundary_does(seed: int) -> None:
    # requests' boundary is 32 hex digits; in the body it is "--<boundary>" and
    # "--<boundary>--", once judged with the dashes as text (and missed 1 in 200).
    boundary = random.Random(seed).randbytes(16).hex().encode()
    for token in (boundary, b"--" + boundary, b"--" + boundary + b"--"):
        assert looks_random(token), token
    assert not looks_random(b"----") and not looks_random(b"--weekly-report--")


def test_a_value_chosen_on_one_connection_and_echoed_on_another_is_accepted() -> None:
    # A consumer tag chosen on the control connection comes back in deliveries
    # on the data connection: the router offers the other connections' bytes.
    from tcpcassette import Connection
    from tcpcassette._core.options import Limits, ReplayOptions
    from tcpcassette._core.router import Router, Serve

    tag, live_tag = b"tagqwerty", b"tagzxcvbn"  # short and plain: only an echo accepts it
    control = Connection(
        target="mq:1",
        events=(ClientData(data=b"CONSUME q " + tag + b"\n"), ServerData(data=b"OK\n")),
    )
    data = Connection(
        target="mq:2",
        events=(ServerData(data=b"DELIVER " + tag + b" hello\n"),),
    )
    router = Router(
        [control, data],
        name="c",
        mode="none",
        record=False,
        options=ReplayOptions(),
        limits=Limits(),
    )
    served = router.on_first_bytes("mq:1", b"CONSUME q " + live_tag + b"\n", eof=False)
    assert isinstance(served, Serve)
    sent_back = served.machine.feed(b"CONSUME q " + live_tag + b"\n", 0.0)
    assert [a.data for a in sent_back if isinstance(a, Send)] == [b"OK\n"]
    assert [span.rule for _, span in served.machine.tolerated] == ["echo"]
    greeted = router.on_accept("mq:2")
    assert isinstance(greeted, Serve)
    assert [a.data for a in greeted.machine.start(0.0) if isinstance(a, Send)] == [
        b"DELIVER " + live_tag + b" hello\n"
    ]
