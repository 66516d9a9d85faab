"""Corrupt, Bandwidth, random and bounded Slice, slow Close and Truncate across chunks,
as the pure replay machine plays them."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tcpcassette import ClientData, InvalidFaultError, ServerClose, ServerData
from tcpcassette._core.actions import Abort, Action, Problem, Send, SendEof, WakeAt
from tcpcassette._core.draws import Draws
from tcpcassette._core.events import Event
from tcpcassette._core.replay import BANDWIDTH_PIECES_PER_SECOND, ReplayMachine, State
from tcpcassette.faults import (
    RANDOM_SLICE_MAX,
    Bandwidth,
    Close,
    Corrupt,
    Delay,
    Slice,
    Truncate,
)

HANG = 30.0


def machine(events: tuple[Event, ...], play: int = 0) -> ReplayMachine:
    return ReplayMachine(events, play=play, hang_bound=HANG, stall_bound=5.0)


def sent(actions: Sequence[object]) -> list[bytes]:
    return [a.data for a in actions if isinstance(a, Send)]


def played_out(m: ReplayMachine, now: float = 0.0) -> list[tuple[float, Action]]:
    """Start ``m`` and wake it at every deadline it asks for: each action with its time."""
    timeline: list[tuple[float, Action]] = [(now, a) for a in m.start(now)]
    for _ in range(100_000):
        wakes = [a.deadline for _, a in timeline[-3:] if isinstance(a, WakeAt)]
        if not wakes or m.finished or m.state is State.PLAYING:
            return timeline
        now = wakes[-1]
        timeline += [(now, a) for a in m.wake(now)]
    raise AssertionError("the machine never stopped asking to be woken")


def state(m: ReplayMachine) -> State:
    return m.state


# -- Draws ----------------------------------------------------------------------------


def test_draws_are_splitmix64_so_every_platform_draws_the_same() -> None:
    # The published splitmix64 outputs for state 0, taken whole by below(2**64).
    draws = Draws(0)
    assert [draws.below(2**64) for _ in range(3)] == [
        0xE220A8397B1DCDAF,
        0x6E789E6AA1B965F4,
        0x06C45D188009454F,
    ]


def test_the_same_seed_draws_the_same_numbers_and_another_seed_others() -> None:
    first = [Draws(7).below(1000) for _ in range(3)]
    assert first == [Draws(7).below(1000)] * 3
    one, again, other = Draws(7), Draws(7), Draws(8)
    drawn = [one.below(1000) for _ in range(50)]
    assert drawn == [again.below(1000) for _ in range(50)]
    assert drawn != [other.below(1000) for _ in range(50)]
    assert all(0 <= n < 1000 for n in drawn)


def test_draws_below_one_is_always_zero_and_every_value_comes_up() -> None:
    draws = Draws(3)
    assert {draws.below(1) for _ in range(20)} == {0}
    assert {draws.below(6) for _ in range(300)} == set(range(6))


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1"])
def test_draws_refuse_a_seed_that_is_not_a_whole_number(bad: object) -> None:
    with pytest.raises(ValueError, match="seed"):
        Draws(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -3, 2**64 + 1, 2.0])
def test_below_refuses_an_empty_or_too_large_range(bad: object) -> None:
    with pytest.raises(ValueError, match="below"):
        Draws(0).below(bad)  # type: ignore[arg-type]


# -- Corrupt --------------------------------------------------------------------------

REPLY = b"hello world"


def corrupt_reply(fault: Corrupt, reply: bytes = REPLY) -> bytes:
    m = machine((ClientData(data=b"q"), fault, ServerData(data=reply)))
    m.start(0.0)
    (out,) = sent(m.feed(b"q", 0.0))
    return out


def differing(a: bytes, b: bytes) -> list[int]:
    return [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]


def test_corrupt_changes_the_bytes_its_seed_draws() -> None:
    # Positions 1, 5 and 9 and bits 3, 0 and 7, drawn from seed 1.
    assert corrupt_reply(Corrupt(nbytes=3, seed=1)) == b"hmllo!wor\xecd"
    # Seed 0 draws splitmix64's first two outputs: 0xE220A8397B1DCDAF % 11 == 1 is the
    # position, 0x6E789E6AA1B965F4 % 8 == 4 the bit: "e" (0x65) becomes "u" (0x75).
    assert corrupt_reply(Corrupt()) == b"hullo world"


@pytest.mark.parametrize("nbytes", [1, 2, 5, 11])
def test_corrupt_changes_exactly_nbytes_bytes_by_one_bit_each(nbytes: int) -> None:
    out = corrupt_reply(Corrupt(nbytes=nbytes, seed=42))
    changed = differing(REPLY, out)
    assert len(changed) == nbytes
    assert all(bin(REPLY[i] ^ out[i]).count("1") == 1 for i in changed)


def test_corrupt_changes_every_byte_of_a_shorter_chunk() -> None:
    assert len(differing(b"abc", corrupt_reply(Corrupt(nbytes=10), b"abc"))) == 3


def test_corrupt_repeats_with_its_seed_and_differs_with_another() -> None:
    reply = bytes(range(256)) * 4
    same = [corrupt_reply(Corrupt(nbytes=4, seed=9), reply) for _ in range(2)]
    assert same[0] == same[1] != reply
    others = {corrupt_reply(Corrupt(nbytes=4, seed=s), reply) for s in range(10)}
    assert len(others) == 10


def test_corrupt_acts_on_the_next_server_chunk_only() -> None:
    events = (
        Corrupt(nbytes=2, seed=5),
        ClientData(data=b"q"),
        ServerData(data=b"first"),
        ServerData(data=b"second"),
    )
    m = machine(events)
    assert m.start(0.0) == []  # waits for the next server chunk, past the client's
    first, second = sent(m.feed(b"q", 0.0))
    assert len(differing(b"first", first)) == 2
    assert second == b"second"
    assert m.cut_short  # a client that noticed may retry on this recording


def test_corrupt_with_times_spares_the_later_plays() -> None:
    assert corrupt_reply(Corrupt(nbytes=3, times=1)) != REPLY
    events = (Corrupt(nbytes=3, times=1), ServerData(data=REPLY))
    m = machine(events, play=1)
    assert sent(m.start(0.0)) == [REPLY]


def test_a_corrupted_chunk_is_sliced_like_any_other() -> None:
    events = (Slice(size=4), Corrupt(nbytes=1, seed=1), ServerData(data=REPLY))
    pieces = sent(machine(events).start(0.0))
    assert [len(p) for p in pieces] == [4, 4, 3]
    assert len(differing(REPLY, b"".join(pieces))) == 1


# -- Bandwidth ------------------------------------------------------------------------


def test_bandwidth_sends_pieces_whose_pauses_add_up_to_the_rate() -> None:
    rate = 200
    events = (Bandwidth(bytes_per_second=rate), ServerData(data=b"x" * 400), ServerClose())
    timeline = played_out(machine(events))
    pieces = [(t, a.data) for t, a in timeline if isinstance(a, Send)]
    assert b"".join(p for _, p in pieces) == b"x" * 400
    assert {len(p) for _, p in pieces} == {rate // BANDWIDTH_PIECES_PER_SECOND}
    sent_by: list[tuple[float, int]] = []
    total = 0
    for t, piece in pieces:
        # Nothing goes before the link could have carried what went before it.
        assert t >= total / rate - 1e-9
        total += len(piece)
        sent_by.append((t, total))
    last_time, _ = sent_by[-1]
    assert last_time == pytest.approx((400 - 10) / rate)
    waits = [a.deadline for _, a in timeline if isinstance(a, WakeAt)]
    assert waits == pytest.approx([n * 10 / rate for n in range(1, 40)])
    assert timeline[-1][1] == SendEof()


def test_bandwidth_below_its_piece_rate_sends_one_byte_at_a_time() -> None:
    events = (Bandwidth(bytes_per_second=4), ServerData(data=b"abc"))
    timeline = played_out(machine(events))
    assert [(t, a.data) for t, a in timeline if isinstance(a, Send)] == [
        (0.0, b"a"),
        (0.25, b"b"),
        (0.5, b"c"),
    ]


def test_bandwidth_paces_across_chunks_too() -> None:
    events = (
        Bandwidth(bytes_per_second=100),
        ServerData(data=b"12345"),
        ServerData(data=b"678"),
    )
    m = machine(events)
    # 100 B/s: pieces of 5 bytes; the second chunk waits until the first went.
    assert m.start(0.0) == [Send(b"12345"), WakeAt(0.05)]
    assert m.wake(0.05) == [Send(b"678")]


def test_bandwidth_leaves_no_pause_after_a_client_that_took_its_time() -> None:
    events = (
        Bandwidth(bytes_per_second=100),
        ServerData(data=b"12345"),
        ClientData(data=b"q"),
        ServerData(data=b"678"),
    )
    m = machine(events)
    assert m.start(0.0) == [Send(b"12345")]
    assert m.feed(b"q", 3.0) == [Send(b"678")]


def test_a_later_slice_replaces_bandwidth_and_a_later_bandwidth_replaces_slice() -> None:
    events = (
        Bandwidth(bytes_per_second=1),
        ServerData(data=b"ab"),
        Slice(size=3),
        ServerData(data=b"cdefgh"),
        Bandwidth(bytes_per_second=40),
        ServerData(data=b"ijkl"),
    )
    timeline = played_out(machine(events))
    assert [(t, a.data) for t, a in timeline if isinstance(a, Send)] == [
        (0.0, b"a"),
        (1.0, b"b"),
        (1.0, b"cde"),
        (1.0, b"fgh"),
        (1.0, b"ij"),
        (1.05, b"kl"),
    ]


# -- Slice: random sizes, and nbytes --------------------------------------------------


def random_pieces(seed: int, data: bytes = bytes(2000), **more: object) -> list[int]:
    fault = Slice(size="random", seed=seed, **more)  # type: ignore[arg-type]
    return [len(p) for p in sent(machine((fault, ServerData(data=data))).start(0.0))]


def test_random_slices_are_1_to_64_bytes_and_cover_the_chunk() -> None:
    sizes = random_pieces(3)
    assert sum(sizes) == 2000
    assert all(1 <= n <= RANDOM_SLICE_MAX for n in sizes[:-1])
    assert 1 <= sizes[-1] <= RANDOM_SLICE_MAX
    assert len(set(sizes)) > 10  # sizes, not one size
    assert RANDOM_SLICE_MAX == 64


def test_random_slices_repeat_with_their_seed_and_differ_with_another() -> None:
    assert random_pieces(7) == random_pieces(7)
    assert random_pieces(7) != random_pieces(8)
    assert random_pieces(7) == expected_random_sizes(7, 2000)
    default = machine((Slice(size="random"), ServerData(data=bytes(2000))))
    assert [len(p) for p in sent(default.start(0.0))] == random_pieces(0)  # seed 0


def expected_random_sizes(seed: int, *chunks: int) -> list[int]:
    """The piece sizes of chunks of these lengths under Slice(size="random", seed=seed)."""
    draws, sizes = Draws(seed), []
    for left in chunks:
        while left:
            size = min(1 + draws.below(RANDOM_SLICE_MAX), left)
            sizes.append(size)
            left -= size
    return sizes


def test_random_slice_sizes_are_one_stream_across_chunks() -> None:
    events = (
        Slice(size="random", seed=5),
        ServerData(data=bytes(100)),
        ServerData(data=bytes(200)),
    )
    sizes = [len(p) for p in sent(machine(events).start(0.0))]
    assert sizes == expected_random_sizes(5, 100, 200)
    # The second chunk's pieces are the stream's next sizes, not its first ones again.
    assert sizes != expected_random_sizes(5, 100) + expected_random_sizes(5, 200)


def test_slice_with_nbytes_slices_that_many_bytes_then_sends_whole_chunks() -> None:
    events = (Slice(size=2, nbytes=3), ServerData(data=b"abcdef"), ServerData(data=b"gh"))
    assert sent(machine(events).start(0.0)) == [b"ab", b"c", b"def", b"gh"]


def test_slice_with_nbytes_across_chunks_stops_where_they_run_out() -> None:
    events = (
        Slice(size=1, nbytes=4),
        ServerData(data=b"ab"),
        ServerData(data=b"cd"),
        ServerData(data=b"ef"),
    )
    assert sent(machine(events).start(0.0)) == [b"a", b"b", b"c", b"d", b"ef"]


def test_slice_with_nbytes_and_delay_pauses_before_the_rest_too() -> None:
    events = (Slice(size=1, delay=0.1, nbytes=2), ServerData(data=b"abcd"), ServerClose())
    m = machine(events)
    assert m.start(0.0) == [Send(b"a"), WakeAt(0.1)]
    assert m.wake(0.1) == [Send(b"b"), WakeAt(0.2)]
    assert m.wake(0.2) == [Send(b"cd"), SendEof()]


def test_random_slice_with_nbytes_draws_within_it() -> None:
    sizes = random_pieces(11, bytes(500), nbytes=100)
    assert sum(sizes[:-1]) == 100 and sizes[-1] == 400


# -- Close with a delay ---------------------------------------------------------------


def test_a_slow_close_sends_the_fin_only_at_its_deadline() -> None:
    events = (ClientData(data=b"q"), Close(delay=2.0), ServerData(data=b"never"))
    m = machine(events)
    m.start(0.0)
    assert m.feed(b"q", 1.0) == [WakeAt(3.0)]
    assert state(m) is State.SILENT and m.cut_short
    assert m.feed(b"more", 2.0) == []
    assert m.wake(2.9) == []
    assert m.wake(3.0) == [SendEof()]
    assert state(m) is State.DRAINING


def test_a_slow_close_longer_than_the_hang_bound_reports_a_hung_client() -> None:
    m = machine((ClientData(data=b"q"), Close(delay=HANG + 5)))
    m.start(0.0)
    assert m.feed(b"q", 0.0) == [WakeAt(HANG)]
    problem, abort = m.wake(HANG)
    assert isinstance(problem, Problem) and problem.reason == "hung"
    assert abort == Abort()


def test_a_close_without_delay_is_at_once_as_before() -> None:
    m = machine((ServerData(data=b"hi"), Close(), ServerData(data=b"never")))
    assert m.start(0.0) == [Send(b"hi"), SendEof()]


# -- Truncate across chunks -----------------------------------------------------------


def truncated(nbytes: int, *events: Event) -> list[Action]:
    m = machine((ClientData(data=b"q"), Truncate(nbytes=nbytes), *events))
    m.start(0.0)
    return m.feed(b"q", 0.0)


def test_truncate_takes_its_bytes_across_two_chunks() -> None:
    two = (ServerData(data=b"abc"), ServerData(data=b"defg"))
    assert truncated(5, *two) == [Send(b"abc"), Send(b"de"), SendEof()]
    assert truncated(7, *two) == [Send(b"abc"), Send(b"defg"), SendEof()]
    assert truncated(2, *two) == [Send(b"ab"), SendEof()]  # as before: within one chunk


def test_truncate_stops_at_the_first_client_event_or_recorded_close() -> None:
    after_client = (ServerData(data=b"abc"), ClientData(data=b"r"), ServerData(data=b"def"))
    assert truncated(5, *after_client) == [Send(b"abc"), SendEof()]
    after_close = (ServerData(data=b"abc"), ServerClose(), ServerData(data=b"def"))
    assert truncated(5, *after_close) == [Send(b"abc"), SendEof()]


def test_truncate_reads_past_faults_between_the_chunks() -> None:
    events = (ServerData(data=b"abc"), Delay(seconds=1.0), ServerData(data=b"def"))
    assert truncated(4, *events) == [Send(b"abc"), Send(b"d"), SendEof()]


# -- checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Corrupt(nbytes=0), "nbytes"),
        (lambda: Corrupt(seed=-1), "seed"),
        (lambda: Bandwidth(bytes_per_second=0), "bytes_per_second"),
        (lambda: Bandwidth(bytes_per_second=1.5), "bytes_per_second"),  # type: ignore[arg-type]
        (lambda: Slice(size="big"), "size"),  # type: ignore[arg-type]
        (lambda: Slice(size=0), "size"),
        (lambda: Slice(size=3, seed=1), "seed"),
        (lambda: Slice(size="random", seed=-1), "seed"),
        (lambda: Slice(size=1, nbytes=0), "nbytes"),
        (lambda: Close(delay=-1.0), "delay"),
        (lambda: Close(delay=float("nan")), "delay"),
    ],
)
def test_new_fault_parameters_are_checked_when_made(make: object, field: str) -> None:
    with pytest.raises(InvalidFaultError, match=field):
        make()  # type: ignore[operator]
