"""Storage: nothing lost, nothing hangs, every failure a CassetteError that says what to do."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from tcpcassette import (
    Cassette,
    CassetteError,
    CassetteFormatError,
    CassettePathError,
    Connection,
    ServerData,
    UnplayedError,
    load,
    use_cassette,
)
from tcpcassette._io.storage import CassetteSaveError, lock_path, write_atomically_with

from . import servers
from .commands import run_cli
from .servers import ThreadedServer

Serve = Callable[[servers.Handler], ThreadedServer]
ROOT = Path(__file__).resolve().parent.parent


def shout(port: int, word: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(word)
        return s.recv(100)


@pytest.fixture
def temporary_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The process's temporary directory, for this test only."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    yield directory


# -- a failed save loses nothing -------------------------------------------------------------


def test_a_failed_save_keeps_the_recording_beside_the_cassette(
    cassette_dir: Path, serve: Serve
) -> None:
    server = serve(servers.upper_echo)
    path = cassette_dir / "blocked.msgpack"
    path.mkdir()  # a directory where the file would go: the rename over it fails
    with pytest.raises(CassetteError) as info:
        with use_cassette("blocked", record_mode="all", cassette_dir=cassette_dir):
            assert shout(server.port, b"alpha") == b"ALPHA"
    error = info.value
    assert isinstance(error, CassetteSaveError)
    assert str(error).startswith(f"{path}: could not save the cassette")
    assert error.kept is not None and error.kept.parent == cassette_dir
    assert f"kept in {error.kept}" in str(error) and f"move it to {path}" in str(error)
    kept = load(error.kept)  # a cassette, with what was recorded
    assert [c.client_bytes for c in kept.connections] == [b"alpha"]
    assert [c.server_bytes for c in kept.connections] == [b"ALPHA"]
    assert not lock_path(path).exists()


def test_a_save_that_fails_everywhere_near_keeps_the_recording_in_the_temporary_dir(
    tmp_path: Path, serve: Serve, temporary_dir: Path
) -> None:
    server = serve(servers.upper_echo)
    cassette_dir = tmp_path / "cassettes"
    with pytest.raises(CassetteSaveError) as info:
        with use_cassette("gone", record_mode="all", cassette_dir=cassette_dir):
            assert shout(server.port, b"bravo") == b"BRAVO"
            # The cassette directory becomes a file while the test runs: nothing
            # can be written beside the cassette.
            cassette_dir.rename(tmp_path / "moved")
            cassette_dir.write_text("not a directory")
    kept = info.value.kept
    assert kept is not None and kept.parent == temporary_dir
    assert f"kept in {kept}" in str(info.value)
    assert [c.client_bytes for c in load(kept).connections] == [b"bravo"]


def test_replay_errors_of_a_block_whose_save_failed_are_reported_too(
    tmp_path: Path, serve: Serve, temporary_dir: Path
) -> None:
    cassette_dir = tmp_path / "cassettes"
    first = serve(servers.upper_echo)
    with use_cassette("both", record_mode="all", cassette_dir=cassette_dir):
        shout(first.port, b"alpha")
    second = serve(servers.upper_echo)
    with pytest.raises(CassetteSaveError) as info:
        with use_cassette(
            "both", record_mode="new_episodes", cassette_dir=cassette_dir, strict=True
        ):
            shout(second.port, b"new one")  # recorded; the recorded alpha is never played
            cassette_dir.rename(tmp_path / "moved")
            cassette_dir.write_text("not a directory")
    others = info.value.others
    assert any(isinstance(e, UnplayedError) for e in others), others
    assert info.value.kept is not None
    kept = load(info.value.kept)
    assert [c.client_bytes for c in kept.connections] == [b"alpha", b"new one"]


def test_a_failed_save_of_a_cassette_object_names_the_path_and_keeps_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "file").write_text("x")
    cassette = Cassette(connections=[Connection(target="h:1", events=(ServerData(data=b"z"),))])
    target = tmp_path / "file" / "c.msgpack"  # under a file: cannot be made
    with pytest.raises(CassetteSaveError) as info:
        cassette.save(target)
    assert str(info.value).startswith(f"{target}: could not save the cassette")
    assert info.value.kept is not None
    assert load(info.value.kept).connections == cassette.connections
    info.value.kept.unlink()


# -- nothing but a regular file is read -------------------------------------------------------


def within(seconds: float, fifo: Path, action: Callable[[], object]) -> BaseException | None:
    """What ``action`` raised, run in a thread; a hang fails the test (the FIFO is
    then opened for writing, which releases a reader blocked on it)."""
    found: list[BaseException | None] = []

    def run() -> None:
        try:
            action()
            found.append(None)
        except BaseException as exc:  # handed to the test
            found.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        thread.join(5)
        pytest.fail(f"reading {fifo} blocked for over {seconds} s")
    return found[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("mode", ["none", "once", "new_episodes"])
def test_a_fifo_in_place_of_a_cassette_is_refused_at_once(cassette_dir: Path, mode: str) -> None:
    fifo = cassette_dir / "pipe.msgpack"
    os.mkfifo(fifo)

    def enter() -> None:
        with use_cassette("pipe", record_mode=mode, cassette_dir=cassette_dir):
            pass

    error = within(5, fifo, enter)
    assert isinstance(error, CassetteFormatError), error
    assert str(error).startswith(f"{fifo}: is a FIFO (named pipe), not a cassette file")
    error = within(5, fifo, lambda: load(fifo))
    assert isinstance(error, CassetteFormatError), error


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_show_refuses_a_fifo_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.msgpack"
    os.mkfifo(fifo)
    result = run_cli("show", str(fifo))  # run_cli's timeout fails a hang
    assert result.returncode == 2, result
    assert "is a FIFO (named pipe), not a cassette file" in result.stderr
    assert "Traceback" not in result.stderr


# -- the recording lock -------------------------------------------------------------------------


def test_a_symlink_planted_at_the_lock_is_not_followed(cassette_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "planted"
    outside.parent.mkdir()
    lock_path(cassette_dir / "x.msgpack").symlink_to(outside)
    with pytest.raises(CassetteError, match="is a symlink, which tcpcassette never follows"):
        with use_cassette("x", record_mode="all", cassette_dir=cassette_dir):
            pass
    assert not outside.exists()  # no file made where the link points


def test_a_lock_file_that_cannot_be_opened_is_a_cassette_error(cassette_dir: Path) -> None:
    lock_path(cassette_dir / "x.msgpack").mkdir()  # a directory where the lock goes
    with pytest.raises(CassetteError, match="cannot create the recording lock"):
        with use_cassette("x", record_mode="all", cassette_dir=cassette_dir):
            pass


# -- names and directories that cannot be -------------------------------------------------------


@pytest.mark.parametrize("mode", ["none", "once", "all"])
@pytest.mark.parametrize(
    ("name", "says"),
    [("a\0b", "holds a NUL byte"), ("a" * 5000, "is too long"), ("d/" + "b" * 300, "too long")],
    ids=["nul", "5000-characters", "300-character-file-name"],
)
def test_impossible_names_are_cassette_errors_that_say_what_to_do(
    cassette_dir: Path, mode: str, name: str, says: str
) -> None:
    with pytest.raises(CassettePathError, match=says) as info:
        with use_cassette(name, record_mode=mode, cassette_dir=cassette_dir):
            pass
    assert len(str(info.value)) < 400  # the name is shortened, not printed whole
    assert "name" in str(info.value)


@pytest.mark.parametrize("mode", ["none", "once", "all"])
def test_a_cassette_dir_that_is_a_file_is_a_cassette_error(tmp_path: Path, mode: str) -> None:
    file = tmp_path / "cassettes"
    file.write_text("a file")
    for directory in (file, file / "deeper"):
        with pytest.raises(CassettePathError, match="is a file") as info:
            with use_cassette("x", record_mode=mode, cassette_dir=directory):
                pass
        assert "pass another cassette_dir" in str(info.value)


@pytest.mark.parametrize("name", ["a\0b.msgpack", "a" * 5000 + ".msgpack"], ids=["nul", "long"])
def test_loading_an_impossible_path_is_a_cassette_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(CassetteError) as info:
        load(tmp_path / name)
    assert len(str(info.value)) < 400


# -- what a killed save leaves is removed by the next -------------------------------------------

KILLED_SAVER = """
import sys, time
from pathlib import Path
from typing import Any
from tcpcassette._io.storage import write_atomically_with

def produce(f):
    f.write(b"x" * 100000)
    f.flush()
    print("writing", flush=True)
    time.sleep(60)

write_atomically_with(Path(sys.argv[1]), produce)
"""


def temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_the_next_save_removes_what_a_killed_save_left(tmp_path: Path) -> None:
    path = tmp_path / "c.msgpack"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_SAVER), str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline() == "writing\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert len(temporaries(tmp_path)) == 1  # what SIGKILL left
    Cassette(connections=[Connection(target="h:1")]).save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.msgpack"]


def test_a_save_in_progress_keeps_its_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "c.msgpack"
    writing = threading.Event()
    finish = threading.Event()

    def produce(f: object) -> None:
        writing.set()
        assert finish.wait(10)

    thread = threading.Thread(target=write_atomically_with, args=(path, produce))
    thread.start()
    try:
        assert writing.wait(10)
        in_progress = temporaries(tmp_path)
        assert len(in_progress) == 1
        Cassette(connections=[Connection(target="h:1")]).save(path)  # a second saver
        assert temporaries(tmp_path) == in_progress  # not taken for a stale one
    finally:
        finish.set()
        thread.join(10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.msgpack"]


# -- loading many tiny events -------------------------------------------------------------------


def tiny_events_file(path: Path, count: int, *, float_times: bool) -> int:
    """A cassette of ``count`` one-byte events: with whole-number times as a
    machine-made file may hold them, or distinct float times as tcpcassette
    writes a recording; its size."""
    packer = msgpack.Packer(use_bin_type=True)
    pack = packer.pack
    with path.open("wb") as f:
        f.write(packer.pack_map_header(4) + pack("format") + pack("tcpcassette"))
        f.write(pack("version") + pack(1) + pack("hosts") + pack({}))
        f.write(pack("connections") + packer.pack_array_header(1) + packer.pack_map_header(3))
        f.write(pack("target") + pack("h:1") + pack("start") + pack(0.0))
        f.write(pack("events") + packer.pack_array_header(count))
        f.write(
            b"".join(
                pack(["client" if i % 2 else "server", i * 1e-6 if float_times else 0, b"x"])
                for i in range(count)
            )
        )
    return path.stat().st_size


def peak_while_loading(path: Path) -> tuple[Cassette, int]:
    tracemalloc.start()
    try:
        cassette = load(path)
        return cassette, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_loading_tiny_events_takes_at_most_four_times_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tiny.msgpack"
    size = tiny_events_file(path, 200_000, float_times=False)
    cassette, peak = peak_while_loading(path)
    events = cassette.connections[0].events
    assert len(events) == 200_000 and events[0] == ServerData(data=b"x", time=0.0)
    assert events[1].kind == "client" and events[1].time == 0.0
    assert peak <= 4 * size, f"loading a {size} byte file peaked at {peak} bytes"


def test_loading_a_recording_of_tiny_chunks_holds_the_model_once(tmp_path: Path) -> None:
    """Distinct times share nothing: the model (an event, its time and a slot each:
    80 bytes for 20 of file) is what memory holds, never a parsed copy of the file."""
    path = tmp_path / "chunks.msgpack"
    size = tiny_events_file(path, 200_000, float_times=True)
    cassette, peak = peak_while_loading(path)
    events = cassette.connections[0].events
    assert [e.time for e in events[:3]] == [0.0, 1e-6, 2e-6]
    assert peak <= 5 * size, f"loading a {size} byte file peaked at {peak} bytes"


def test_streamed_loading_reports_bad_files_as_before(tmp_path: Path) -> None:
    """The first failing check is reported, in the order of the checks, wherever
    in the file the problem is."""
    path = tmp_path / "bad.msgpack"
    doc = {
        "format": "tcpcassette",
        "version": 1,
        "connections": [
            {"target": "h:1", "events": [["server", 0.0, b"x"], ["client", "soon", b"y"]]}
        ],
        "extra": 1,
    }
    path.write_bytes(msgpack.packb(doc, use_bin_type=True))
    with pytest.raises(CassetteFormatError, match=r"top level: unknown key \['extra'\]"):
        load(path)
    del doc["extra"]
    path.write_bytes(msgpack.packb(doc, use_bin_type=True))
    with pytest.raises(CassetteFormatError, match=r"connection 0 \(h:1\), event 2: time must"):
        load(path)
    doc["connections"] = [{"events": [], "target": "h:1"}]  # events before the target
    path.write_bytes(msgpack.packb(doc, use_bin_type=True))
    assert load(path).connections == [Connection(target="h:1")]


def test_import_refuses_a_fifo_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    result = run_cli("import", str(fifo), "-o", str(tmp_path / "x.msgpack"))
    assert result.returncode == 2, result
    assert "not a regular file" in result.stderr and "Traceback" not in result.stderr


def test_loading_pauses_the_cycle_collector_and_leaves_it_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    from tcpcassette._io import storage

    path, bad = tmp_path / "c.msgpack", tmp_path / "bad.msgpack"
    events = (ServerData(data=b"x"),)
    Cassette(connections=[Connection(target="h:1", events=events)]).save(path)
    bad.write_bytes(b"\x81\xa1x\x01")  # msgpack, but not a cassette
    seen: list[bool] = []
    from tcpcassette._core.codec import decode_file as decode

    def spying(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return decode(*args, **kwargs)

    monkeypatch.setattr(storage, "decode_file", spying)
    assert gc.isenabled()
    assert load(path).connections[0].events == events
    assert gc.isenabled()  # on again afterwards
    with pytest.raises(CassetteError):
        load(bad)
    assert gc.isenabled()  # after an error too
    gc.disable()
    try:
        load(path)
        assert not gc.isenabled()  # off before, off after
    finally:
        gc.enable()
    assert seen == [False, False, False]  # paused while decoding, each time
