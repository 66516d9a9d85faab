"""Hostile input, misbehaving clients, crashes, load and leaks: tests that could fail.

The slowest are marked ``slow``; CI runs them all the same.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tcpcassette
from tcpcassette import CassetteError, ClientData, Connection, ServerData, load, use_cassette
from tcpcassette._core.codec import FORMAT_VERSION, CassetteContents, decode, encode
from tcpcassette._core.text import import_text

from . import saver, servers
from .bigtransfer import record_and_replay
from .blocks import raises_at_exit
from .servers import ThreadedServer

Serve = Callable[[servers.Handler], ThreadedServer]

# -- bad input, fuzzed --------------------------------------------------------------------

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


def valid_doc() -> dict[str, object]:
    return {
        "format": "tcpcassette",
        "version": 1,
        "hosts": {"h": ["127.0.0.1"]},
        "connections": [
            {
                "target": "h:1",
                "start": 0.0,
                "events": [["client", 0.0, b"a"], ["server", 0.1, b"b"], ["reset", 0.0, {}]],
            }
        ],
    }


def assert_well_formed(contents: CassetteContents) -> None:
    """What a successful load must give: the model's types, and contents that save and
    load back unchanged."""
    for connection in contents.connections:
        assert isinstance(connection.target, str)
        assert all(isinstance(e.data, bytes) for e in connection.events)
    assert decode(encode(contents), source="again.msgpack") == contents


def loads_or_refuses(raw: bytes) -> None:
    """The property: a CassetteError naming the file, or a correct load."""
    try:
        contents = decode(raw, source="fuzz.msgpack")
    except CassetteError as exc:
        assert "fuzz.msgpack" in str(exc)
        return
    assert_well_formed(contents)


def imports_or_refuses(text: str, source: str) -> None:
    """The same property for the text form."""
    try:
        contents = import_text(text, source=source)
    except CassetteError as exc:
        assert source in str(exc)
        return
    assert_well_formed(contents)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_load_or_fail_cleanly(raw: bytes) -> None:
    loads_or_refuses(raw)


@settings(max_examples=300, deadline=None)
@given(msgpack_values)
def test_valid_msgpack_of_any_shape_loads_or_fails_cleanly(value: object) -> None:
    loads_or_refuses(msgpack.packb(value, use_bin_type=True))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_each_field_replaced_by_a_wrong_type_fails_cleanly(data: st.DataObject) -> None:
    doc = valid_doc()
    paths: list[tuple[object, object]] = [
        (doc, "format"),
        (doc, "version"),
        (doc, "hosts"),
        (doc, "connections"),
    ]
    conn = doc["connections"][0]  # type: ignore[index]
    paths += [(conn, "target"), (conn, "start"), (conn, "events")]
    events = conn["events"]
    for event in events:
        paths += [(event, 0), (event, 1), (event, 2)]
    owner, key = data.draw(st.sampled_from(paths))
    owner[key] = data.draw(msgpack_values)  # type: ignore[index]
    loads_or_refuses(msgpack.packb(doc, use_bin_type=True))


def test_every_truncation_of_a_cassette_fails_cleanly() -> None:
    raw = msgpack.packb(valid_doc(), use_bin_type=True)
    decode(raw, source="whole.msgpack")  # the whole file loads: only the cuts fail
    for cut in range(len(raw)):
        with pytest.raises(CassetteError, match=r"cut\.msgpack"):
            decode(raw[:cut], source="cut.msgpack")


def test_huge_declared_lengths_are_refused_without_allocating() -> None:
    for header in (b"\xc6\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff"):
        with pytest.raises(CassetteError, match="not a readable"):
            decode(header + b"\x00" * 16, source="huge.msgpack")


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(CassetteError):
        decode(b"\x91" * 100_000, source="deep.msgpack")


def test_unknown_version_and_extension_types_are_refused(tmp_path: Path) -> None:
    newer = FORMAT_VERSION + 1
    with pytest.raises(CassetteError, match=f"version {newer}"):
        decode(msgpack.packb({**valid_doc(), "version": newer}), source="v.msgpack")
    doc = valid_doc()
    doc["connections"][0]["events"][0][2] = msgpack.ExtType(5, b"code")  # type: ignore[index]
    with pytest.raises(CassetteError, match="binary data"):
        decode(msgpack.packb(doc, use_bin_type=True), source="ext.msgpack")


def test_extra_bytes_after_the_cassette_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.msgpack"
    path.write_bytes(msgpack.packb(valid_doc(), use_bin_type=True) + b"\x00")
    with pytest.raises(CassetteError, match="extra data"):
        load(path)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_random_text_imports_or_fails_cleanly(text: str) -> None:
    imports_or_refuses(text, "fuzz.json")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from(["kind", "text", "hex", "time", "seconds", "target"]))
def test_text_form_with_wrong_fields_fails_cleanly(value: object, field: str) -> None:
    doc = {
        "format": "tcpcassette-text",
        "version": 1,
        "hosts": {},
        "connections": [{"target": "h:1", "events": [{"kind": "client", "text": "a"}]}],
    }
    if field == "target":
        doc["connections"][0]["target"] = value  # type: ignore[index]
    else:
        doc["connections"][0]["events"][0][field] = value  # type: ignore[index]
    imports_or_refuses(json.dumps(doc), "t.json")


# -- misbehaving clients ---------------------------------------------------------------------


def two_connections(cassette_dir: Path, name: str = "two") -> int:
    """A cassette with two recorded connections to 127.0.0.1:9, returning that port."""
    tcpcassette.Cassette(
        connections=[
            Connection(
                target="127.0.0.1:9",
                events=(ClientData(data=b"HELLO 1\n"), ServerData(data=b"HI 1\n")),
            ),
            Connection(
                target="127.0.0.1:9",
                events=(ClientData(data=b"HELLO 2\n"), ServerData(data=b"HI 2\n")),
            ),
        ]
    ).save(cassette_dir / f"{name}.msgpack")
    return 9


def good_client(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"HELLO 2\n")
        return s.recv(100)


def test_garbage_bytes_are_reset_and_others_still_served(cassette_dir: Path) -> None:
    port = two_connections(cassette_dir)
    with raises_at_exit(tcpcassette.ClientMismatchError, match="closest is connection"):
        with use_cassette("two", cassette_dir=cassette_dir):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as bad:
                bad.sendall(bytes(random.Random(1).randrange(256) for _ in range(64)))
                with pytest.raises(ConnectionResetError):
                    bad.recv(100)
            assert good_client(port) == b"HI 2\n"


def test_a_silent_client_is_closed_when_the_block_ends(cassette_dir: Path) -> None:
    port = two_connections(cassette_dir)
    with use_cassette("two", cassette_dir=cassette_dir) as cassette:
        silent = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert good_client(port) == b"HI 2\n"
    assert silent.recv(100) == b""  # an orderly close, not a hang
    silent.close()
    assert cassette.play_counts == [0, 1]


def test_a_byte_per_second_client_is_reset_after_the_stall_bound(cassette_dir: Path) -> None:
    port = two_connections(cassette_dir)
    with raises_at_exit(
        tcpcassette.ClientStalledError, match=r"sent 2 of the 8 bytes[\s\S]*received:    b'HE'"
    ):
        with use_cassette("two", cassette_dir=cassette_dir, stall_timeout=0.3):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as slow:
                slow.sendall(b"H")
                time.sleep(0.1)  # the client is slow, but within the bound: it still counts
                slow.sendall(b"E")
                last_byte = time.monotonic()
                assert good_client(port) == b"HI 2\n"  # served meanwhile
                slow.settimeout(2)  # the reset is due 0.3 s after the last byte
                with pytest.raises(ConnectionResetError):
                    slow.recv(100)
                assert time.monotonic() - last_byte >= 0.25  # not before the bound


def test_a_client_reset_mid_exchange_leaves_other_connections_served(cassette_dir: Path) -> None:
    port = two_connections(cassette_dir)
    with use_cassette("two", cassette_dir=cassette_dir) as cassette:
        rude = socket.create_connection(("127.0.0.1", port), timeout=5)
        rude.sendall(b"HELLO 1\n")
        assert rude.recv(100) == b"HI 1\n"
        servers.reset(rude)
        assert good_client(port) == b"HI 2\n"
    assert cassette.play_counts == [1, 1]


def test_a_client_that_half_closes_halfway_gets_a_clear_error(cassette_dir: Path) -> None:
    port = two_connections(cassette_dir)
    with raises_at_exit(
        tcpcassette.ClientStalledError, match="sent 4 of the 8 bytes of connection 1"
    ):
        with use_cassette("two", cassette_dir=cassette_dir):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as early:
                early.sendall(b"HELLO 1\n")
                early.recv(100)
            # It can send nothing more, so there is no stall to wait for: the reset is at
            # once.  A hang would end in TimeoutError after 1 s, and fail the test.
            with socket.create_connection(("127.0.0.1", port), timeout=1) as half:
                half.sendall(b"HELL")
                half.shutdown(socket.SHUT_WR)  # read after the bytes: same socket, in order
                with pytest.raises(ConnectionResetError):
                    half.recv(100)


# -- nothing lost --------------------------------------------------------------------------


def test_saving_survives_sigkill_at_any_moment(tmp_path: Path) -> None:
    """The cassette on disk is always the old one or the whole new one.

    The saver saves version after version of a cassette and reports each save
    once it has returned.  After a SIGKILL at a random moment the file must be
    exactly the last version reported, or the next one (saved, but killed
    before it could say so): a torn, stale or skipped save fails.
    """
    path = tmp_path / "c.msgpack"
    rng = random.Random(7)
    for _ in range(12):
        proc = subprocess.Popen(
            [sys.executable, saver.__file__, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        reported = [proc.stdout.readline() for _save in range(rng.randint(1, 3))]
        assert all(reported), "the saver exited"  # it got some saves done first
        time.sleep(rng.uniform(0.0, 0.02))  # a random moment, mostly within a save
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reported += proc.stdout.readlines()
        proc.stdout.close()
        last = int(reported[-1])
        cassette = load(path)  # never raises: the file is always whole
        assert saver.version_of(cassette) in (last, last + 1)
        assert cassette.connections == saver.version(saver.version_of(cassette)).connections
        path.unlink()  # the next saver starts with no file


def test_ctrl_c_while_recording_still_saves_the_traffic(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)
    with pytest.raises(KeyboardInterrupt):
        with use_cassette("interrupted", record_mode="all", cassette_dir=cassette_dir):
            with socket.create_connection(server.address, timeout=5) as s:
                s.sendall(b"before the interrupt")
                s.recv(100)
            raise KeyboardInterrupt
    saved = load(cassette_dir / "interrupted.msgpack").connections[0]
    assert saved.server_bytes == b"BEFORE THE INTERRUPT"


TAKE_TURNS = """
import os, socket, time
from pathlib import Path

import pytest

from tcpcassette import use_cassette

HERE = Path(__file__).parent
LOCK = HERE / "cassettes" / ".shared.msgpack.lock"


def wait_until(condition, what):
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"waited 10 s in vain until {what}"
        time.sleep(0.005)


def has_the_lock_file_open(pid):
    \"\"\"Whether process ``pid`` has opened the lock file: it is waiting for the lock.\"\"\"
    lock = LOCK.stat()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            opened = fd.stat()
        except OSError:  # closed meanwhile
            continue
        if (opened.st_dev, opened.st_ino) == (lock.st_dev, lock.st_ino):
            return True
    return False


@pytest.mark.parametrize("me, them", [("alpha", "bravo"), ("bravo", "alpha")])
def test_record(me, them):
    (HERE / f"{me}.worker").write_text(f"{os.getpid()} {os.environ['PYTEST_XDIST_WORKER']}")
    with use_cassette("shared", record_mode="new_episodes"):
        # Fails with FileExistsError if the other worker is inside its block too.
        os.close(os.open(HERE / "inside", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        with socket.create_connection(("127.0.0.1", {port}), timeout=5) as s:
            s.sendall(me.encode())
            assert s.recv(100) == me.upper().encode()
        if not (HERE / f"{them}.leaving").exists():
            # In first: stay in until the other worker is waiting for the lock, so
            # that without the lock it would have loaded the cassette meanwhile.
            wait_until(lambda: (HERE / f"{them}.worker").exists(), f"{them} started")
            pid = int((HERE / f"{them}.worker").read_text().split()[0])
            wait_until(lambda: has_the_lock_file_open(pid), f"{them} waited for the lock")
        (HERE / f"{me}.leaving").touch()
        os.unlink(HERE / "inside")
"""


def test_two_xdist_workers_recording_one_cassette_take_turns(
    pytester: pytest.Pytester, serve: Serve
) -> None:
    server = serve(servers.upper_echo)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_shared=TAKE_TURNS.replace("{port}", str(server.port)))
    pytester.runpytest("-n", "2", "-p", "no:benchmark").assert_outcomes(passed=2)
    workers = {(pytester.path / f"{w}.worker").read_text().split()[1] for w in ("alpha", "bravo")}
    assert len(workers) == 2  # one test on each worker, both at once
    connections = load(pytester.path / "cassettes/shared.msgpack").connections
    assert sorted(c.client_bytes for c in connections) == [b"alpha", b"bravo"]


def test_a_held_lock_makes_a_second_recorder_fail_clearly(cassette_dir: Path) -> None:
    from tcpcassette._io.storage import recording_lock

    path = cassette_dir / "busy.msgpack"
    with recording_lock(path):
        with pytest.raises(tcpcassette.CassetteInUseError, match="another process"):
            with use_cassette(
                "busy", record_mode="all", cassette_dir=cassette_dir, lock_timeout=0.2
            ):
                pass


@pytest.mark.slow
def test_a_200_mib_transfer_round_trips_holding_it_once_in_memory(tmp_path: Path) -> None:
    """Recording and replaying each hold the payload once: peak RSS <= 1.5x above idle."""
    size = 200 * 1024 * 1024
    transfer = record_and_replay(tmp_path, size)
    assert transfer.recorded[0] == size
    assert transfer.replayed == transfer.recorded  # byte-exact
    assert transfer.recording_peak <= 1.5 * size, f"{transfer.recording_peak / size:.2f}x"
    assert transfer.replay_peak <= 1.5 * size, f"{transfer.replay_peak / size:.2f}x"


# -- under load --------------------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def within(seconds: float, condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` is true now or becomes true within ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.mark.slow
def test_a_thousand_concurrent_connections_record_and_replay(cassette_dir: Path) -> None:
    async def record() -> tuple[int, list[bytes]]:
        server = await asyncio.start_server(servers.upper_line, "127.0.0.1", 0, backlog=2048)
        port = server.sockets[0].getsockname()[1]
        with use_cassette("thousand", record_mode="all", cassette_dir=cassette_dir):
            replies = await servers.many_line_clients(port, 1000)
        server.close()
        await server.wait_closed()
        return port, replies

    port, live = asyncio.run(record())
    assert live == [b"CLIENT %d\n" % i for i in range(1000)]
    assert len(load(cassette_dir / "thousand.msgpack").connections) == 1000
    with use_cassette("thousand", cassette_dir=cassette_dir) as cassette:
        assert asyncio.run(servers.many_line_clients(port, 1000)) == live
    assert cassette.all_played


def ping_pong_cassette(cassette_dir: Path) -> None:
    """cassettes/one.msgpack: one connection to 127.0.0.1:9 that answers ping with pong."""
    tcpcassette.Cassette(
        connections=[
            Connection(
                target="127.0.0.1:9", events=(ClientData(data=b"ping"), ServerData(data=b"pong"))
            )
        ]
    ).save(cassette_dir / "one.msgpack")


@pytest.mark.slow
def test_ten_thousand_sequential_connections_leave_no_fds_or_threads(cassette_dir: Path) -> None:
    ping_pong_cassette(cassette_dir)

    def round_trip() -> None:
        with socket.create_connection(("127.0.0.1", 9), timeout=5) as s:
            s.sendall(b"ping")
            assert s.recv(10) == b"pong"

    with use_cassette("one", cassette_dir=cassette_dir, allow_playback_repeats=True):
        round_trip()  # warm up: the loop thread and its sockets exist from here on
        fds, threads = open_fds(), threading.active_count()
        for _ in range(10_000):
            round_trip()
        # The replay server closes its end of the last connection on its own thread.
        assert within(2, lambda: open_fds() <= fds + 2), (open_fds(), fds)
        assert threading.active_count() == threads


@pytest.mark.slow
def test_a_thousand_uses_of_a_cassette_leak_nothing(cassette_dir: Path) -> None:
    ping_pong_cassette(cassette_dir)
    connect = vars(socket.socket).get("connect")

    def use_once() -> None:
        with use_cassette("one", cassette_dir=cassette_dir):
            with socket.create_connection(("127.0.0.1", 9), timeout=5) as s:
                s.sendall(b"ping")
                assert s.recv(10) == b"pong"

    use_once()
    fds, threads = open_fds(), threading.active_count()
    for _ in range(1000):
        use_once()
    assert open_fds() <= fds + 2 and threading.active_count() == threads
    assert vars(socket.socket).get("connect") is connect


# -- nobody let in -------------------------------------------------------------------------------


def this_machines_other_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, if it has one.

    A UDP connect only picks the route (nothing is sent), and with it the
    address packets would leave from.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never a real peer
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def assert_loopback_only(address: tuple[str, int]) -> None:
    """Something listens at ``address`` on loopback, and not on this machine's other address."""
    host, port = address
    assert host == "127.0.0.1"
    socket.create_connection(address, timeout=2).close()
    other = this_machines_other_address()
    if other is not None:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((other, port), timeout=2)


def test_servers_listen_on_loopback_only(cassette_dir: Path, serve: Serve) -> None:
    server = serve(servers.upper_echo)
    with use_cassette(
        "lo", record_mode="all", cassette_dir=cassette_dir, targets=[server.target]
    ) as cassette:
        assert_loopback_only(cassette.address(server.target))  # the recording proxy
    two_connections(cassette_dir, "lo2")
    with use_cassette("lo2", cassette_dir=cassette_dir, targets=["127.0.0.1:9"]) as cassette:
        assert_loopback_only(cassette.address("127.0.0.1:9"))  # the replay server
