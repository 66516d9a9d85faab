"""The command line and the other ways in, with real sockets: faults, --listen, safety."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

import tcpcassette
from tcpcassette import ClientData, Connection, ConnectRefused, ServerData, at, load, use_cassette
from tcpcassette._core.text import export_text
from tcpcassette.faults import Bandwidth, Close, ConnectTimeout, Corrupt, Fault, Refuse, Slice

from .commands import run_cli
from .realservers import offered_port

TARGET = "localhost:6379"


def hello(target: str = TARGET) -> Connection:
    return Connection(
        target=target, events=(ClientData(data=b"hello\n"), ServerData(data=b"HELLO\n"))
    )


def save(path: Path, *connections: Connection) -> Path:
    tcpcassette.Cassette(connections=list(connections)).save(path)
    return path


def talk(address: tuple[str, int]) -> bytes:
    with socket.create_connection(address, timeout=5) as s:
        s.sendall(b"hello\n")
        return s.recv(100)


def reset_on_first_use(address: tuple[str, int]) -> None:
    """A client that connects and finds the connection reset straight away."""
    with pytest.raises(ConnectionResetError):
        with socket.create_connection(address, timeout=5) as s:
            time.sleep(0.05)  # the reset arrives right after the accept
            s.sendall(b"hello\n")
            s.recv(100)


class Command:
    """``python -m tcpcassette ...`` in the background, with the address it listens on."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tcpcassette", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.line = self.proc.stdout.readline()
        assert "listening on" in self.line, (self.line, self.finish())
        host, _, port = self.line.split("listening on ")[1].split()[0].rpartition(":")
        self.address = (host.strip("[]"), int(port))

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, self.line + out, err

    def stop(self) -> tuple[int, str, str]:
        self.proc.terminate()
        return self.finish()


@pytest.fixture
def commands() -> Iterator[list[Command]]:
    started: list[Command] = []
    yield started
    for command in started:
        if command.proc.poll() is None:
            command.proc.kill()
            command.proc.communicate(timeout=10)


# -- connect-time faults for clients pointed at an address -----------------------------


def test_a_refuse_fault_resets_a_client_that_came_through_address(tmp_path: Path) -> None:
    save(tmp_path / "x.msgpack", hello())
    with use_cassette(
        "x", cassette_dir=tmp_path, faults=[at(Refuse(times=1), connection=0, after=0)]
    ) as cassette:
        address = cassette.address(TARGET)
        reset_on_first_use(address)
        assert talk(address) == b"HELLO\n"  # the retry is served the recording
    assert cassette.play_counts == [2]


def test_a_connect_timeout_fault_is_silence_for_a_client_that_came_through_address(
    tmp_path: Path,
) -> None:
    save(tmp_path / "x.msgpack", hello())
    with use_cassette(
        "x", cassette_dir=tmp_path, faults=[at(ConnectTimeout(times=1), connection=0, after=0)]
    ) as cassette:
        address = cassette.address(TARGET)
        with pytest.raises(TimeoutError):
            with socket.create_connection(address, timeout=5) as s:
                s.settimeout(0.3)
                s.sendall(b"hello\n")
                s.recv(100)  # never answered: the client's own timeout fires
        assert talk(address) == b"HELLO\n"


def test_replay_serves_a_recorded_refusal_as_a_reset_and_exits_when_played(
    tmp_path: Path, commands: list[Command]
) -> None:
    path = save(
        tmp_path / "r.msgpack", Connection(target=TARGET, events=(ConnectRefused(),)), hello()
    )
    command = Command("replay", str(path), "--exit-when-played")
    commands.append(command)
    reset_on_first_use(command.address)
    assert talk(command.address) == b"HELLO\n"
    status, out, err = command.finish()
    assert (status, err) == (0, "") and "replay finished: 0 error(s)" in out


def test_replay_applies_an_injected_refuse_fault(tmp_path: Path, commands: list[Command]) -> None:
    path = save(tmp_path / "r.msgpack", hello())
    inject = ("inject", str(path), "refuse", "--connection", "0", "--times", "1")
    assert subprocess.run([sys.executable, "-m", "tcpcassette", *inject]).returncode == 0
    command = Command("replay", str(path), "--exit-when-played")
    commands.append(command)
    reset_on_first_use(command.address)
    assert talk(command.address) == b"HELLO\n"
    status, out, _ = command.finish()
    assert status == 0 and "replay finished: 0 error(s)" in out


# -- --listen ------------------------------------------------------------------------


def listening(*args: str, commands: list[Command]) -> tuple[Command, int]:
    """Start a command with --listen on a port the kernel offers (another try if taken)."""
    for _attempt in range(5):
        port = offered_port()
        try:
            command = Command(*args, "--listen", f"127.0.0.1:{port}")
        except AssertionError:
            continue  # someone took the offered port meanwhile
        commands.append(command)
        return command, port
    raise AssertionError("no offered port could be listened on")


def test_replay_listens_where_listen_says(tmp_path: Path, commands: list[Command]) -> None:
    path = save(tmp_path / "r.msgpack", hello())
    command, port = listening("replay", str(path), "--exit-when-played", commands=commands)
    assert command.address == ("127.0.0.1", port)
    assert talk(("127.0.0.1", port)) == b"HELLO\n"
    status, out, err = command.finish()
    assert status == 0 and "replay finished: 0 error(s)" in out, err


def test_record_append_listens_where_listen_says(tmp_path: Path, commands: list[Command]) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    upstream = f"127.0.0.1:{server.getsockname()[1]}"
    path = save(tmp_path / "r.msgpack", hello(upstream))
    command, port = listening(
        "record", str(path), "--target", upstream, "--append", commands=commands
    )
    assert command.address == ("127.0.0.1", port)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        accepted, _ = server.accept()
        client.sendall(b"again\n")
        assert accepted.recv(100) == b"again\n"
        accepted.sendall(b"AGAIN\n")
        assert client.recv(100) == b"AGAIN\n"
        accepted.close()
    server.close()
    status, out, err = command.stop()
    assert status == 0, err
    assert f"saved {path}: 2 connection(s), 1 of them new" in out
    assert [c.events[0].data for c in load(path).connections] == [b"hello\n", b"again\n"]


def test_listening_on_an_address_in_use_exits_2_with_one_line(tmp_path: Path) -> None:
    path = save(tmp_path / "r.msgpack", hello())
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "tcpcassette", "replay", str(path), "--listen", f":{port}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    assert result.stderr.startswith(f"tcpcassette: cannot listen on 127.0.0.1:{port}")
    assert len(result.stderr.splitlines()) == 1


# -- never destroying a cassette without a flag ----------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args)


def one_line_error(result: subprocess.CompletedProcess[str], status: int = 2) -> str:
    assert result.returncode == status, (result.stdout, result.stderr)
    assert result.stderr.startswith("tcpcassette: ") and result.stderr.count("\n") == 1
    return result.stderr


def test_import_without_output_never_replaces_an_existing_cassette(tmp_path: Path) -> None:
    path = save(tmp_path / "x.msgpack", hello(), hello())
    assert cli("export", str(path), "-o", str(tmp_path / "x.json")).returncode == 0
    edited = tcpcassette.Cassette(connections=[hello()])
    (tmp_path / "x.json").write_text(export_text(edited))
    refused = one_line_error(cli("import", str(tmp_path / "x.json")))
    assert "exists already" in refused and "-o" in refused and "--force" in refused
    assert len(load(path).connections) == 2  # untouched
    forced = cli("import", str(tmp_path / "x.json"), "--force")
    assert forced.returncode == 0
    assert (
        forced.stdout == f"{path}: 1 connection(s) written (it replaced the file that was there)\n"
    )
    assert len(load(path).connections) == 1


def test_record_over_a_cassette_needs_append_or_force(tmp_path: Path) -> None:
    path = save(tmp_path / "x.msgpack", hello())
    refused = one_line_error(cli("record", str(path), "--target", "127.0.0.1:9"))
    assert "--append" in refused and "--force" in refused
    assert len(load(path).connections) == 1


@pytest.mark.parametrize("flag", ["--append", "--force"])
def test_record_stopped_with_no_traffic_leaves_the_cassette_as_it_was(
    tmp_path: Path, commands: list[Command], flag: str
) -> None:
    path = save(tmp_path / "x.msgpack", hello())
    before = path.read_bytes()
    command = Command("record", str(path), "--target", "127.0.0.1:9", flag)
    commands.append(command)
    status, out, err = command.stop()
    assert status == 0, err
    assert f"nothing recorded: {path} left as it was, 1 connection(s)" in out
    assert path.read_bytes() == before


# -- crafted JSON ----------------------------------------------------------------------

HUGE = "9" * 4301  # one digit more than Python's int() takes from a string


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
        ('"kind": "client", "time": 0, "hex": 123', "bad payload"),
        ('"kind": "client", "time": 0, "text": ["a"]', "bad payload"),
        ('"kind": "client", "time": 1e999, "text": "a"', "time must be"),
        (f'"kind": "client", "time": {HUGE}, "text": "a"', "(4301 digits)"),
        ('"kind": "truncate", "nbytes": 100000000000000000000000000000', "nbytes must be"),
        (f'"kind": "truncate", "nbytes": {HUGE}', "nbytes must be"),
        ('"kind": "reset", "times": 18446744073709551616', "times must be"),
        (f'"kind": "delay", "seconds": {HUGE}', "seconds must be"),
    ],
    ids=["deep", "hex-int", "text-list", "inf", "4301-digits", "u64+", "nbytes-4301", "2**64", "s"],
)
def test_crafted_json_is_refused_with_one_line_and_status_2(
    tmp_path: Path, text: str, problem: str
) -> None:
    if text.startswith("["):
        document = text
    else:
        document = (
            '{"format": "tcpcassette-text", "version": 1, "hosts": {}, "connections": '
            f'[{{"target": "h:1", "start": 0, "events": [{{{text}}}]}}]}}'
        )
    (tmp_path / "c.json").write_text(document)
    refused = one_line_error(cli("import", str(tmp_path / "c.json")))
    assert problem in refused and "Traceback" not in refused
    assert not (tmp_path / "c.msgpack").exists()


def test_inject_refuses_a_number_no_cassette_can_hold(tmp_path: Path) -> None:
    path = save(tmp_path / "x.msgpack", hello())
    big = "99999999999999999999999"
    result = cli("inject", str(path), "truncate", "--nbytes", big, "--connection", "0")
    assert "--nbytes 99999999999999999999999 is out of range" in one_line_error(result)


# -- what reaches the terminal ---------------------------------------------------------

HOSTILE = "ev\x1b]0;owned\x07il\x1b[2J\u202e:80"


def test_show_escapes_control_characters_from_targets_and_hosts(tmp_path: Path) -> None:
    path = tmp_path / "hostile.msgpack"
    tcpcassette.Cassette(connections=[hello(HOSTILE)], hosts={"h\x1b[31mred": ["127.0.0.1"]}).save(
        path
    )
    shown = cli("show", str(path), "--color", "never")
    assert shown.returncode == 0
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
    assert "\u202e" not in shown.stdout
    assert "ev\\x1b]0;owned\\x07il\\x1b[2J\\u202e:80" in shown.stdout
    assert "h\\x1b[31mred → 127.0.0.1" in shown.stdout
    coloured = cli("show", str(path), "--color", "always").stdout
    assert "\x1b[36m" in coloured and "\x1b]0;" not in coloured  # colours, not the target's


def test_errors_escape_control_characters_from_the_cassette(
    tmp_path: Path, commands: list[Command]
) -> None:
    path = save(tmp_path / "hostile.msgpack", hello(HOSTILE))
    command = Command("replay", str(path))
    commands.append(command)
    with socket.create_connection(command.address, timeout=5) as s:
        s.sendall(b"something else\n")
        with pytest.raises(ConnectionResetError):
            s.recv(100)
    status, _, err = command.stop()
    assert status == 1 and "something else" in err
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err
    assert "ev\\x1b]0;owned" in err


def test_printable_escapes_controls_and_invisible_format_characters() -> None:
    from tcpcassette._core.render import printable  # new with this test

    assert printable("a\x00b\x1bc\x7fd\x9be\u200bf\u2066g\ufeffh") == (
        "a\\x00b\\x1bc\\x7fd\\x9be\\u200bf\\u2066g\\ufeffh"
    )
    assert printable("one\ntwo\tthree") == "one\\ntwo\\tthree"
    assert printable("one\ntwo\x1b", lines=True) == "one\ntwo\\x1b"
    assert printable("café → ok ⚠") == "café → ok ⚠"


# -- show --connection, and the small ones ---------------------------------------------


@pytest.mark.parametrize("number", ["5", "1", "-1"])
def test_show_a_connection_the_cassette_lacks_exits_2_with_one_line(
    tmp_path: Path, number: str
) -> None:
    path = save(tmp_path / "x.msgpack", hello())
    refused = one_line_error(cli("show", str(path), "--connection", number))
    assert f"there is no connection {number}; it has connections 0 to 0" in refused


def test_a_missing_fault_option_is_named(tmp_path: Path) -> None:
    path = save(tmp_path / "x.msgpack", hello())
    missing = one_line_error(cli("inject", str(path), "delay", "--connection", "0"))
    assert "delay needs --seconds (it takes --seconds, --times)" in missing
    extra = one_line_error(cli("inject", str(path), "reset", "--connection", "0", "--size", "4"))
    assert "reset does not take --size (it takes --times)" in extra


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_anywhere_shows_the_traceback_and_keeps_the_status(
    tmp_path: Path, where: str
) -> None:
    missing = str(tmp_path / "missing.msgpack")
    args = ["--debug", "show", missing] if where == "before" else ["show", missing, "--debug"]
    result = cli(*args)
    assert result.returncode == cli("show", missing).returncode == 2
    assert "Traceback" in result.stderr and "CassetteNotFoundError" in result.stderr
    assert result.stderr.splitlines()[-1] == f"tcpcassette: {missing}: no such cassette file"


def test_a_mismatch_with_debug_still_exits_1(tmp_path: Path, commands: list[Command]) -> None:
    path = save(tmp_path / "x.msgpack", hello())
    command = Command("replay", str(path), "--debug")
    commands.append(command)
    with socket.create_connection(command.address, timeout=5) as s:
        s.sendall(b"other\n")
        with pytest.raises(ConnectionResetError):
            s.recv(100)
    assert command.stop()[0] == 1


def test_show_on_a_json_export_suggests_import(tmp_path: Path) -> None:
    path = save(tmp_path / "x.msgpack", hello())
    exported = tmp_path / "x.json"
    assert cli("export", str(path), "-o", str(exported)).returncode == 0
    for command in (["show"], ["inject", "reset", "--connection", "0"], ["replay"]):
        args = [command[0], str(exported), *command[1:]]
        advice = one_line_error(cli(*args))
        assert f"tcpcassette import {exported} -o {tmp_path / 'x.msgpack'}" in advice
        assert "damaged" not in advice


def test_replay_hints_name_what_the_command_line_has(
    tmp_path: Path, commands: list[Command]
) -> None:
    path = save(tmp_path / "x.msgpack", hello())
    command = Command("replay", str(path))
    commands.append(command)
    for payload in (b"other\n", b"hello\n"):  # a mismatch, then one connection too many
        with socket.create_connection(command.address, timeout=5) as s:
            s.sendall(payload)
            try:
                s.recv(100)
                s.sendall(b"more\n")
                s.recv(100)
            except ConnectionResetError:
                pass
    status, _, err = command.stop()
    assert status == 1 and "re-record with tcpcassette record --force" in err
    assert "--record-mode" not in err


def test_show_does_not_flag_a_redacted_credential(tmp_path: Path) -> None:
    path = tmp_path / "redacted.msgpack"
    redacted = [
        b"*2\r\n$4\r\nAUTH\r\n$6\r\n******\r\n",
        b"*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$3\r\n***\r\n",
        b"GET / HTTP/1.1\r\nAuthorization: Bearer ***\r\nCookie: a=***; b=***\r\n\r\n",
        b"user=me&password=****",
    ]
    clear = [
        b"*2\r\n$4\r\nAUTH\r\n$6\r\nhunter\r\n",
        b"GET / HTTP/1.1\r\nCookie: a=***; b=x\r\n\r\n",
    ]
    tcpcassette.Cassette(
        connections=[
            Connection(target="h:1", events=tuple(ClientData(data=d) for d in redacted + clear))
        ]
    ).save(path)
    out = cli("show", str(path)).stdout
    assert out.count("⚠") == 2
    assert "⚠ looks like a Redis AUTH command" in out and "⚠ looks like an HTTP Cookie" in out


# -- inject: the faults of format version 4 -------------------------------------------


@pytest.mark.parametrize(
    ("options", "fault"),
    [
        (
            ["corrupt", "--after", "2", "--nbytes", "1", "--seed", "3"],
            Corrupt(nbytes=1, seed=3),
        ),
        (["corrupt", "--after", "1"], Corrupt()),
        (["bandwidth", "--bytes-per-second", "100"], Bandwidth(bytes_per_second=100)),
        (["slice", "--size", "random", "--seed", "7"], Slice(size="random", seed=7)),
        (
            ["slice", "--size", "random", "--seed", "7", "--nbytes", "5", "--times", "1"],
            Slice(size="random", seed=7, nbytes=5, times=1),
        ),
        (["slice", "--size", "2", "--nbytes", "5"], Slice(size=2, nbytes=5)),
        (["close", "--delay", "0.5"], Close(delay=0.5)),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else "",
)
def test_inject_places_each_new_fault(tmp_path: Path, options: list[str], fault: Fault) -> None:
    path = save(tmp_path / "x.msgpack", hello())
    kind, *rest = options
    result = cli("inject", str(path), kind, "--connection", "0", *rest)
    assert result.returncode == 0, result.stderr
    after = int(rest[rest.index("--after") + 1]) if "--after" in rest else 0
    events = load(path).connections[0].events
    assert events[after] == fault
    assert msgpack.unpackb(path.read_bytes())["version"] == 4


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (
            ["bandwidth", "--nbytes", "3"],
            "bandwidth does not take --nbytes (it takes --bytes-per-second, --times)",
        ),
        (["bandwidth"], "bandwidth needs --bytes-per-second"),
        (
            ["corrupt", "--size", "4"],
            "corrupt does not take --size (it takes --nbytes, --seed, --times)",
        ),
        (
            ["close", "--seed", "1"],
            "close does not take --seed (it takes --delay, --times)",
        ),
        (
            ["reset", "--bytes-per-second", "1"],
            "reset does not take --bytes-per-second (it takes --times)",
        ),
        (["slice", "--size", "3", "--seed", "2"], "a slice of size 3 takes no seed"),
        (["bandwidth", "--bytes-per-second", "0"], "bytes_per_second must be a whole number"),
    ],
)
def test_inject_names_what_a_new_fault_takes(
    tmp_path: Path, options: list[str], problem: str
) -> None:
    path = save(tmp_path / "x.msgpack", hello())
    before = path.read_bytes()
    refused = one_line_error(cli("inject", str(path), *options, "--connection", "0"))
    assert problem in refused
    assert path.read_bytes() == before


def test_inject_size_is_a_number_or_random(tmp_path: Path) -> None:
    path = save(tmp_path / "x.msgpack", hello())
    result = cli("inject", str(path), "slice", "--size", "big", "--connection", "0")
    assert result.returncode == 2
    assert "expected a whole number of bytes or random, not 'big'" in result.stderr


def test_show_prints_a_random_slice_with_its_seed(tmp_path: Path) -> None:
    path = save(tmp_path / "x.msgpack", hello())
    inject = ("inject", str(path), "slice", "--size", "random", "--seed", "7", "--after", "1")
    assert cli(*inject, "--connection", "0").returncode == 0
    shown = cli("show", str(path))
    assert shown.returncode == 0
    assert "FAULT slice size=random delay=0.0 seed=7" in shown.stdout
