"""The fault sweep through pytest, as a user runs it: throw-away projects in a pytest
subprocess, a real line server on an ephemeral port while recording, and every
case replayed from the cassette alone in a fresh process.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

CONFTEST = """
import os, socket, threading
import pytest


class LineServer:
    # Greets, then answers each line with '+' and the line, until QUIT.
    def __init__(self, sock):
        self.sock = sock
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        with conn:
            conn.sendall(b"HELLO\\n")
            for line in conn.makefile("rb"):
                conn.sendall(b"+" + line)
                if line == b"QUIT\\n":
                    return


@pytest.fixture
def listener():
    # Held from here on, so no other process takes the port: another one every run.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock
    sock.close()


@pytest.fixture
def port(listener):
    return listener.getsockname()[1]


@pytest.fixture
def tcpcassette_config(port):
    return {"targets": {"app": f"127.0.0.1:{port}"}}


@pytest.fixture
def server(tcpcassette, listener):
    if tcpcassette.recording:
        LineServer(listener)  # replaying: no server at all
"""

CLIENT = """
import os, socket

READ_TIMEOUT = float(os.environ.get("READ_TIMEOUT", "5")) or None
RETRIES = int(os.environ.get("RETRIES", "0"))


def talk_once(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT)
    try:
        f = s.makefile("rb")
        if f.readline() != b"HELLO\\n":
            raise ConnectionError("no greeting")
        s.sendall(b"GET a\\n")
        reply = f.readline()
        if not reply:
            raise ConnectionError("closed before the reply")
        s.sendall(b"QUIT\\n")
        f.readline()
        return reply
    finally:
        s.close()


def talk(port):
    for attempt in range(RETRIES + 1):
        try:
            return talk_once(port)
        except ConnectionError:
            if attempt == RETRIES:
                raise
"""

TESTS = """
import pytest
from client import talk


@pytest.mark.tcpcassette
def test_get(server, port):
    assert talk(port) == b"+GET a\\n"
"""

#: Cases of one recorded connection with three server messages: 2 connect faults
#: and 6 faults before each of the 3 messages.
ALL_CASES = 2 + 6 * 3


def project(pytester: pytest.Pytester, tests: str = TESTS) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(client=CLIENT, test_app=tests)
    pytester.makeini("[pytest]\n")
    pytester.runpytest_subprocess("--record-mode=once", "-p", "no:cacheprovider").assert_outcomes(
        passed=len(re.findall(r"^(?:async )?def test_", tests, re.M))
    )


def sweep(pytester: pytest.Pytester, *args: str, limit: float = 10) -> pytest.RunResult:
    """A sweep run in a fresh process, replaying from the cassettes alone; ``limit``
    is each case's time limit."""
    return pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--tcpcassette-block-network",
        "--tcpcassette-sweep",
        f"--tcpcassette-sweep-timeout={limit}",
        *args,
    )


def outcomes(path: Path) -> dict[str, tuple[str, str]]:
    body = json.loads(path.read_text())
    return {c["case"]: (c["outcome"], c["detail"]) for c in body["cases"]}


def collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line and not line.startswith(" ")]


def test_every_case_is_an_item_with_a_stable_id_and_the_test_runs_too(
    pytester: pytest.Pytester,
) -> None:
    project(pytester)
    first = collected(sweep(pytester, "--collect-only", "-q"))
    again = collected(sweep(pytester, "--collect-only", "-q"))
    assert first == again
    assert len(first) == 1 + ALL_CASES
    assert first[:4] == [
        "test_app.py::test_get",
        "test_app.py::test_get[sweep:refuse@c0:connect]",
        "test_app.py::test_get[sweep:connect_timeout@c0:connect]",
        "test_app.py::test_get[sweep:reset@c0:before-server-1]",
    ]
    assert "test_app.py::test_get[sweep:corrupt@c0:before-server-3]" in first
    # -k selects cases as it selects any test.
    picked = collected(sweep(pytester, "--collect-only", "-q", "-k", "close and server"))
    assert picked == [f"test_app.py::test_get[sweep:close@c0:before-server-{n}]" for n in (1, 2, 3)]
    # Without the flag nothing is added, nor with the cassettes turned off.
    plain = pytester.runpytest_subprocess("--collect-only", "-q", "-p", "no:cacheprovider")
    assert collected(plain) == ["test_app.py::test_get"]
    off = sweep(pytester, "--collect-only", "-q", "--disable-tcpcassette")
    assert collected(off) == ["test_app.py::test_get"]


def test_a_client_without_retries_reports_its_own_error_at_each_reset(
    pytester: pytest.Pytester,
) -> None:
    project(pytester)
    report = pytester.path / "sweep.json"
    result = sweep(
        pytester, "--tcpcassette-sweep-faults=reset,refuse", f"--tcpcassette-sweep-report={report}"
    )
    result.assert_outcomes(passed=1 + 4)  # the cases pass: the sweep measures
    assert outcomes(report) == {
        "refuse@c0:connect": ("client-error", "ConnectionRefusedError"),
        "reset@c0:before-server-1": ("client-error", "ConnectionResetError"),
        "reset@c0:before-server-2": ("client-error", "ConnectionResetError"),
        "reset@c0:before-server-3": ("client-error", "ConnectionResetError"),
    }
    out = result.stdout.str()
    assert "test_app.py::test_get: 4 case(s): 4 client-error" in out
    assert re.search(r"c0 server 2 +b'\+GET a\\n' +E2", out), out
    assert "E1 = ConnectionRefusedError" in out and "E2 = ConnectionResetError" in out


def test_the_same_client_with_one_retry_survives_every_reset_and_close_once(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(pytester)
    monkeypatch.setenv("RETRIES", "1")
    report = pytester.path / "sweep.json"
    result = sweep(
        pytester, "--tcpcassette-sweep-faults=reset,close", f"--tcpcassette-sweep-report={report}"
    )
    result.assert_outcomes(passed=1 + 6)
    assert set(outcomes(report).values()) == {("survived", "")}
    assert len(outcomes(report)) == 6
    # Faults that stay (times=always) meet the retry too.
    again = sweep(
        pytester,
        "--tcpcassette-sweep-faults=reset",
        "--tcpcassette-sweep-times=always",
        f"--tcpcassette-sweep-report={report}",
    )
    again.assert_outcomes(passed=1 + 3)
    assert set(outcomes(report).values()) == {("client-error", "ConnectionResetError")}


def test_a_client_with_no_read_timeout_is_reported_hung_and_the_run_goes_on(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(pytester)
    monkeypatch.setenv("READ_TIMEOUT", "0")  # the socket's default: wait for ever
    report = pytester.path / "sweep.json"
    started = time.monotonic()
    result = sweep(
        pytester,
        "--tcpcassette-sweep-faults=timeout,connect_timeout,reset",
        f"--tcpcassette-sweep-report={report}",
        limit=1.5,
    )
    took = time.monotonic() - started
    result.assert_outcomes(passed=1 + 1 + 3 + 3)
    found = outcomes(report)
    assert {found[f"timeout@c0:before-server-{n}"] for n in (1, 2, 3)} == {("hung", "")}
    assert found["connect_timeout@c0:connect"] == ("hung", "")
    assert found["reset@c0:before-server-2"] == ("client-error", "ConnectionResetError")
    # Four hung cases of 1.5 s each, and the rest: bounded by the case limit.
    assert took < 4 * 1.5 + 30
    assert "H" in result.stdout.str()


def test_the_io_layer_loads_before_the_first_case_clock_starts(pytester: pytest.Pytester) -> None:
    # Its first import takes seconds on a busy machine: counted in a case's
    # limit, the first case of a process came out hung whatever it swept.
    project(pytester)
    pytester.makeconftest(
        CONFTEST
        + """

import sys


def pytest_runtest_setup(item):  # inside the case's limit, before its fixtures
    with open("loaded.txt", "a") as f:
        f.write(f"{item.name} {'tcpcassette._use_cassette' in sys.modules}\\n")
"""
    )
    first = "test_get[sweep:reset@c0:before-server-1]"
    sweep(pytester, "-k", "reset and server-1", "-s").assert_outcomes(passed=1)
    assert (pytester.path / "loaded.txt").read_text().splitlines() == [f"{first} True"]


def test_xdist_gives_the_outcomes_of_a_run_without_it(pytester: pytest.Pytester) -> None:
    project(pytester)
    alone, spread = pytester.path / "alone.json", pytester.path / "spread.json"
    faults = "--tcpcassette-sweep-faults=reset,close,truncate,refuse"
    sweep(pytester, faults, f"--tcpcassette-sweep-report={alone}").assert_outcomes(passed=11)
    result = sweep(pytester, faults, "-n", "2", f"--tcpcassette-sweep-report={spread}")
    result.assert_outcomes(passed=11)
    assert outcomes(alone) == outcomes(spread)
    assert len(outcomes(alone)) == 10
    assert "test_app.py::test_get: 10 case(s)" in result.stdout.str()  # the controller's table


def test_the_baseline_fails_exactly_the_cases_whose_outcome_changed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(pytester)
    before, after = pytester.path / "before.json", pytester.path / "after.json"
    faults = "--tcpcassette-sweep-faults=reset,close,refuse"
    sweep(pytester, faults, f"--tcpcassette-sweep-report={before}").assert_outcomes(passed=8)
    # The same code again: nothing changed, nothing fails.
    same = sweep(pytester, faults, f"--tcpcassette-sweep-baseline={before}")
    same.assert_outcomes(passed=8)
    assert f"no case changed outcome since {before}" in same.stdout.str()
    # A change of code: the client now retries once.
    monkeypatch.setenv("RETRIES", "1")
    result = sweep(
        pytester,
        faults,
        f"--tcpcassette-sweep-baseline={before}",
        f"--tcpcassette-sweep-report={after}",
    )
    old, new = outcomes(before), outcomes(after)
    moved = sorted(case for case in old if old[case] != new[case])
    assert moved and len(moved) < len(old)  # some cases changed, not all
    failed = sorted(
        line.split("[sweep:", 1)[1].split("]", 1)[0]
        for line in result.outlines
        if line.startswith("FAILED ")
    )
    assert failed == moved
    result.assert_outcomes(passed=8 - len(moved), failed=len(moved))
    assert "changed from client-error (ConnectionResetError)" in result.stdout.str()
    assert "was client-error (ConnectionResetError), now survived" in result.stdout.str()


def test_markers_sweep_one_test_narrow_the_faults_or_opt_out(pytester: pytest.Pytester) -> None:
    tests = """
import pytest
from client import talk


@pytest.mark.tcpcassette(sweep="close")
def test_swept(server, port):
    assert talk(port) == b"+GET a\\n"


@pytest.mark.tcpcassette(sweep=False)
def test_kept_out(server, port):
    assert talk(port) == b"+GET a\\n"


@pytest.mark.tcpcassette
def test_only_with_the_flag(server, port):
    assert talk(port) == b"+GET a\\n"
"""
    project(pytester, tests)
    base = ("--collect-only", "-q", "-p", "no:cacheprovider")
    without = collected(pytester.runpytest_subprocess(*base))
    assert [i for i in without if "sweep:" in i] == [
        f"test_app.py::test_swept[sweep:close@c0:before-server-{n}]" for n in (1, 2, 3)
    ]
    flagged = collected(pytester.runpytest_subprocess(*base, "--tcpcassette-sweep"))
    assert not [i for i in flagged if "test_kept_out[" in i]
    assert len([i for i in flagged if "test_only_with_the_flag[" in i]) == ALL_CASES
    assert len([i for i in flagged if "test_swept[" in i]) == 3
    bad = pytester.makepyfile(
        test_bad="import pytest\n@pytest.mark.tcpcassette(sweep='explode')\ndef test_x(): pass\n"
    )
    (pytester.path / "cassettes" / "test_bad").mkdir()
    (pytester.path / "cassettes" / "test_bad" / "test_x.msgpack").write_bytes(
        (pytester.path / "cassettes" / "test_app" / "test_swept.msgpack").read_bytes()
    )
    wrong = pytester.runpytest_subprocess(*base, str(bad))
    assert "unknown fault(s) explode" in wrong.stderr.str() + wrong.stdout.str()


def test_a_swept_test_knows_its_fault_and_can_state_what_it_expects(
    pytester: pytest.Pytester,
) -> None:
    tests = """
import pytest
from client import talk


@pytest.mark.tcpcassette
def test_get(server, port, tcpcassette):
    fault = tcpcassette.sweep_fault
    if fault is None:
        assert talk(port) == b"+GET a\\n"
        return
    assert fault.id == f"{fault.kind}@c0:{fault.position}"
    assert fault.fault.kind == fault.kind and fault.connection == 0
    if fault.kind == "reset":
        with pytest.raises(ConnectionResetError):
            talk(port)
    else:
        assert fault.kind == "close"
        assert fault.message in ("b'HELLO\\\\n'", "b'+GET a\\\\n'", "b'+QUIT\\\\n'")
        if fault.position == "before-server-3":
            assert talk(port) == b"+GET a\\n"  # the reply came before the close
        else:
            with pytest.raises(ConnectionError):
                talk(port)
"""
    project(pytester, tests)
    report = pytester.path / "sweep.json"
    result = sweep(
        pytester, "--tcpcassette-sweep-faults=reset,close", f"--tcpcassette-sweep-report={report}"
    )
    result.assert_outcomes(passed=7)
    assert set(outcomes(report).values()) == {("survived", "")}


def test_a_sample_is_drawn_from_a_printed_seed_and_drawn_again_from_it(
    pytester: pytest.Pytester,
) -> None:
    project(pytester)
    first = sweep(pytester, "--collect-only", "-q", "--tcpcassette-sweep-max=5")
    (seed,) = re.findall(
        r"tcpcassette sweep: a sample of 5 of 20 cases, seed (\d+)", first.stdout.str()
    )
    picked = [i for i in collected(first) if "sweep:" in i]
    assert len(picked) == 5
    again = sweep(
        pytester,
        "--collect-only",
        "-q",
        "--tcpcassette-sweep-max=5",
        f"--tcpcassette-sweep-seed={seed}",
    )
    assert [i for i in collected(again) if "sweep:" in i] == picked
    # Workers draw the controller's sample: xdist finds the same items on each.
    spread = sweep(
        pytester,
        "--tcpcassette-sweep-max=4",
        "--tcpcassette-sweep-faults=reset,close,refuse",
        "-n",
        "2",
    )
    spread.assert_outcomes(passed=1 + 4)
    assert "(a sample of 4 of 7: --tcpcassette-sweep-seed=" in spread.stdout.str()


def test_a_fault_met_in_a_fixture_is_the_case_outcome(pytester: pytest.Pytester) -> None:
    tests = """
import pytest
from client import talk


@pytest.fixture
def greeted(server, port):
    return talk(port)  # the fault may hit here, before the test's body


@pytest.mark.tcpcassette
def test_get(greeted):
    assert greeted == b"+GET a\\n"
"""
    project(pytester, tests)
    report = pytester.path / "sweep.json"
    result = sweep(
        pytester, "--tcpcassette-sweep-faults=reset", f"--tcpcassette-sweep-report={report}"
    )
    result.assert_outcomes(passed=4)
    assert set(outcomes(report).values()) == {("client-error", "ConnectionResetError")}


def test_bad_sweep_options_are_usage_errors(pytester: pytest.Pytester) -> None:
    project(pytester)
    for option, message in [
        ("--tcpcassette-sweep-faults=reset,explode", "unknown fault(s) explode"),
        ("--tcpcassette-sweep-times=0", "whole number from 1, or 'always'"),
        ("--tcpcassette-sweep-max=0", "--tcpcassette-sweep-max"),
        ("--tcpcassette-sweep-timeout=0", "seconds above 0"),
        ("--tcpcassette-sweep-baseline=missing.json", "cannot read it"),
    ]:
        result = sweep(pytester, option)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, option
        assert message in result.stderr.str(), (option, result.stderr.str())


def test_an_async_test_is_swept_and_its_own_timeout_is_a_client_error(
    pytester: pytest.Pytester,
) -> None:
    # The client's own bound, long enough that a reset on a busy machine
    # still arrives within it.
    tests = """
import asyncio
import pytest

WAIT = 3.0


@pytest.mark.asyncio
@pytest.mark.tcpcassette
async def test_get(server, port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert await asyncio.wait_for(reader.readline(), WAIT) == b"HELLO\\n"
        writer.write(b"GET a\\n")
        assert await asyncio.wait_for(reader.readline(), WAIT) == b"+GET a\\n"
        writer.write(b"QUIT\\n")
        await reader.readline()
    finally:
        writer.close()
"""
    project(pytester, tests)
    report = pytester.path / "sweep.json"
    result = sweep(
        pytester, "--tcpcassette-sweep-faults=timeout,reset", f"--tcpcassette-sweep-report={report}"
    )
    result.assert_outcomes(passed=1 + 6)
    found = outcomes(report)
    assert found["timeout@c0:before-server-1"] == ("client-error", "TimeoutError")
    assert found["timeout@c0:before-server-2"] == ("client-error", "TimeoutError")
    assert found["reset@c0:before-server-2"] == ("client-error", "ConnectionResetError")
    assert found["reset@c0:before-server-3"] == ("client-error", "ConnectionResetError")


def test_a_retry_the_recording_cannot_answer_is_unserved_with_what_it_sent(
    pytester: pytest.Pytester,
) -> None:
    tests = """
import os, socket
import pytest


def ask(port, line):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        f = s.makefile("rb")
        assert f.readline() == b"HELLO\\n"
        s.sendall(line)
        reply = f.readline()
        s.sendall(b"QUIT\\n")
        f.readline()
        return reply


@pytest.mark.tcpcassette
def test_get(server, port):
    try:
        reply = ask(port, b"GET a\\n")
    except ConnectionError:
        reply = b""
    if not reply:
        reply = ask(port, b"GET a again\\n")  # a retry that says something else
    assert reply.startswith(b"+GET a")
"""
    project(pytester, tests)
    report = pytester.path / "sweep.json"
    result = sweep(
        pytester, "--tcpcassette-sweep-faults=close", f"--tcpcassette-sweep-report={report}"
    )
    result.assert_outcomes(passed=1 + 3)
    found = outcomes(report)
    assert found["close@c0:before-server-2"] == ("unserved", "sent b'GET a again\\n'")
    assert found["close@c0:before-server-3"] == ("survived", "")
    assert re.search(r"c0 server 2 +b'\+GET a\\n' +U", result.stdout.str())
