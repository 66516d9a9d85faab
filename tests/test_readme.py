"""The README's examples work when pasted, and its test command is what CI runs."""

from __future__ import annotations

import re
import shlex
import socketserver
import subprocess
import sys
from pathlib import Path

import pytest

import tcpcassette
import tcpcassette._settings

from .servers import SHUTDOWN_POLL

README = Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", TEXT, flags=re.S)


def python_examples() -> list[str]:
    return [code for lang, code in BLOCKS if lang == "python" and code.startswith("# example:")]


def shell_examples() -> list[list[str]]:
    lines = [line for lang, code in BLOCKS if lang == "sh" for line in code.splitlines()]
    commands = []
    for line in lines:
        command = line.split("#", 1)[0].strip()
        words = shlex.split(command) if command else []
        # Commands on the self-contained example's cassette; the Redis
        # walkthrough needs a live redis-server and is covered by tests/real/test_cli_redis.py.
        if words[:1] == ["tcpcassette"] and any("shout" in w for w in words):
            commands.append(words)
    return commands


def test_readme_examples_run_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Each '# example:' block runs after the ones before it, as a reader pastes them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TCPCASSETTE_RECORD_MODE", raising=False)
    # A reader runs these as a script: outside pytest, cassettes/ is in the working directory.
    monkeypatch.setattr(tcpcassette._settings, "_stack", [])
    # The examples stop socketserver servers, and each stop would wait out the
    # stdlib's 0.5 s poll; only that wait is shortened, the code runs as written.
    monkeypatch.setattr(socketserver.BaseServer.serve_forever, "__defaults__", (SHUTDOWN_POLL,))
    examples = python_examples()
    assert len(examples) >= 5
    namespace: dict[str, object] = {"__name__": "readme"}
    printed: dict[str, str] = {}
    for code in examples:
        name = code.splitlines()[0].removeprefix("# example:").strip()
        exec(compile(code, f"README.md # example: {name}", "exec"), namespace)
        printed[name] = capfd.readouterr().out
    # What the examples print is what the README says they show.
    assert printed["record_and_replay"].splitlines() == [
        "1 connection replayed",
        f"localhost:{namespace['port']} [('client', b'hello\\n'), ('server', b'HELLO\\n'), "
        "('client_close', b''), ('server_close', b'')]",
    ]
    assert printed["async_with"] == "b'HELLO\\n'\n"
    assert printed["tls"].splitlines() == [
        "b'hello over TLS'",
        "b'hello over TLS'",
        "['tls', 'client', 'server']",
    ]
    assert printed["address"] == "b'HELLO\\n'\n"  # printed by the subprocess
    assert printed["faults_in_the_file"] == "timed out, as intended\n"  # not a silent pass
    assert printed["corrupt_and_bandwidth"] == "1 byte changed\n"
    assert re.fullmatch(r"b'HELLO AT \d{10}\\n'\n", printed["matching"])
    assert printed["noise"] == "True\n"  # a fresh tag, answered with itself
    assert printed["own_protocol"] == "b'OK'\n"
    assert printed["scrub"] == "False ((0, 17, 36),)\nb'+OK welcome\\r\\n'\n"
    assert printed["pool_order"] == "[b'HELLO\\n', b'PEAR\\n'] [b'HELLO\\n', b'APPLE\\n']\n[1, 1]\n"

    commands = shell_examples()
    assert {w[1] for w in commands} >= {"show", "export", "import", "inject"}
    for words in commands:
        if words[1] == "edit":
            continue  # needs an editor; tests/test_text.py drives it with scripted ones
        result = subprocess.run(
            [sys.executable, "-m", "tcpcassette", *words[1:]],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        # diff exits 1 when the cassettes differ, as the README's examples do.
        expected = 1 if words[1] == "diff" else 0
        assert result.returncode == expected, (words, result.stderr)
    reset = tcpcassette.load(tmp_path / "cassettes/shout_reset.msgpack").connections[0]
    page = (tmp_path / "shout-diff.html").read_text()
    assert 'class="pair added"' in page and "close delay=0.5" in page  # the slow close
    assert [e.kind for e in reset.events][:3] == ["client", "reset", "server"]


def test_ci_runs_the_readme_test_command_exactly() -> None:
    marker = TEXT.index("<!-- test-command")
    command = re.search(r"```sh\n(.*?)\n```", TEXT[marker:], flags=re.S)
    assert command is not None
    ci = (README.parent / ".ci" / "run").read_text()
    assert "test-command" in ci  # .ci/run reads the command from the README itself
    assert command.group(1).count("\n") == 0


def pytest_examples() -> dict[str, str]:
    """The README's pytest project: blocks that begin ``# pytest-example: <file name>``."""
    found = {}
    for lang, code in BLOCKS:
        first = code.splitlines()[0] if code else ""
        if lang == "python" and first.startswith("# pytest-example:"):
            found[first.removeprefix("# pytest-example:").strip()] = code
    return found


def test_readme_pytest_project_records_and_replays_under_xdist(pytester: pytest.Pytester) -> None:
    files = pytest_examples()
    assert set(files) == {"conftest.py", "test_services.py", "test_resilience.py"}
    for name, code in files.items():
        (pytester.path / name).write_text(code)
    pytester.makeini("[pytest]\n")
    recorded = pytester.runpytest_subprocess("--record-mode=once", "-n", "2", "-p", "no:benchmark")
    recorded.assert_outcomes(passed=4)
    cassettes = sorted(
        str(p.relative_to(pytester.path)) for p in pytester.path.glob("cassettes/**/*.msgpack")
    )
    assert cassettes == [
        "cassettes/test_resilience/test_shout_retries_once.msgpack",
        "cassettes/test_services/test_shout.msgpack",
        "cassettes/test_services/test_web.msgpack",
        "cassettes/web-twice.msgpack",
    ]
    # Replaying: other ports, no server, and nothing may reach the network.
    replayed = pytester.runpytest_subprocess(
        "-n",
        "2",
        "-p",
        "no:benchmark",
        "--tcpcassette-block-network",
        "--tcpcassette-sweep-report=sweep.html",  # as the sweep section writes the page
    )
    # The test marked sweep=... runs once more per case: a refused connect, and a
    # reset, close and truncation before the one reply; it survives them all.
    replayed.assert_outcomes(passed=4 + 4)
    assert "test_resilience.py::test_shout_retries_once: 4 case(s): 4 survived" in (
        replayed.stdout.str()
    )
    page = (pytester.path / "sweep.html").read_text()
    assert "<h2>test_resilience.py::test_shout_retries_once: 4 case(s): 4 survived</h2>" in page
    targets = {c.target for p in cassettes for c in tcpcassette.load(pytester.path / p).connections}
    assert targets == {"shout", "web"}
