"""tcpcassette diff, textconv and git-setup, on cassettes recorded from a real redis-server."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcpcassette import use_cassette

from .commands import run_cli
from .realservers import RedisServer

redis = pytest.importorskip("redis")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


def record(server: RedisServer, directory: Path, value: str, *, others: int = 0) -> Path:
    """Record a SET of ``value``, GETs of ``others`` other keys and a GET of ``value``,
    with redis-py in its default configuration."""
    with use_cassette("greeting", record_mode="all", cassette_dir=directory):
        client = redis.Redis(host="127.0.0.1", port=server.port)
        client.set("greeting", value)
        for i in range(others):
            client.get(f"other:{i}")
        assert client.get("greeting") == value.encode()
        client.close()
    return directory / "greeting.msgpack"


@pytest.fixture
def two(redis_server: RedisServer, tmp_path: Path) -> tuple[Path, Path]:
    return (
        record(redis_server, tmp_path / "a", "hello"),
        record(redis_server, tmp_path / "b", "goodbye"),
    )


def test_diff_names_the_changed_messages_decoded_and_exits_1(two: tuple[Path, Path]) -> None:
    a, b = two
    done = run_cli("diff", str(a), str(b))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == [f"--- {a} (recorded)", f"+++ {b} (new)"]
    assert any(
        line.startswith("@@ connection 0 → 127.0.0.1:") and "redis @@" in line for line in lines
    )
    assert "- ⇒ SET greeting hello" in lines
    assert "+ ⇒ SET greeting goodbye" in lines
    assert "- ⇒ hello" in lines
    assert "+ ⇒ goodbye" in lines
    assert "  after message" in done.stdout and "GET greeting" not in "\n".join(
        line for line in lines if line.startswith(("-", "+"))
    )


def test_diff_of_a_cassette_with_itself_exits_0(two: tuple[Path, Path]) -> None:
    a, _ = two
    done = run_cli("diff", str(a), str(a))
    assert (done.returncode, done.stdout.splitlines()[-1]) == (0, "no differences")


def test_diff_timing_is_reported_only_with_the_option(two: tuple[Path, Path]) -> None:
    a, _ = two
    again = a.with_name("again.msgpack")
    from tcpcassette import load

    cassette = load(a)
    from dataclasses import replace

    cassette.connections = [
        replace(c, events=tuple(replace(e, time=e.time + 1.0) for e in c.events))
        for c in cassette.connections
    ]
    cassette.save(again)
    assert run_cli("diff", str(a), str(again)).returncode == 0
    timed = run_cli("diff", "--timing", str(a), str(again))
    assert timed.returncode == 1
    assert "when recorded, now at" in timed.stdout


def test_diff_of_bad_input_exits_2_with_what_is_wrong(
    two: tuple[Path, Path], tmp_path: Path
) -> None:
    a, _ = two
    missing = run_cli("diff", str(a), str(tmp_path / "nope.msgpack"))
    assert missing.returncode == 2
    assert "nope.msgpack" in missing.stderr and missing.stdout == ""
    junk = tmp_path / "junk.msgpack"
    junk.write_bytes(b"not a cassette at all")
    bad = run_cli("diff", str(junk), str(a))
    assert bad.returncode == 2
    assert "junk.msgpack" in bad.stderr


def test_textconv_prints_one_stable_line_per_message(two: tuple[Path, Path]) -> None:
    a, _ = two
    first, second = run_cli("textconv", str(a)), run_cli("textconv", str(a))
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    lines = first.stdout.splitlines()
    assert lines[0] == "tcpcassette cassette: 1 connection(s)"
    assert any(
        line.endswith("⟨*3\\r\\n$3\\r\\nSET\\r\\n$8\\r\\ngreeting\\r\\n$5\\r\\nhello\\r\\n⟩")
        for line in lines
    )
    assert any(" server ← hello  ⟨$5\\r\\nhello\\r\\n⟩" in line for line in lines)


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    where = tmp_path / "repo"
    where.mkdir()
    git(where, "init", "-q")
    git(where, "config", "user.name", "Test")
    git(where, "config", "user.email", "test@example.invalid")
    return where


def test_git_setup_adds_the_attribute_and_the_driver_once(repo: Path) -> None:
    first = run_cli("git-setup", str(repo))
    assert first.returncode == 0, first.stderr
    assert "added '*.msgpack diff=tcpcassette'" in first.stdout
    assert "set diff.tcpcassette.textconv" in first.stdout
    assert (repo / ".gitattributes").read_text() == "*.msgpack diff=tcpcassette\n"
    assert "textconv" in git(repo, "config", "--local", "diff.tcpcassette.textconv")
    second = run_cli("git-setup", str(repo))
    assert (second.returncode, second.stdout.strip()) == (0, f"{repo}: already set up")
    assert (repo / ".gitattributes").read_text() == "*.msgpack diff=tcpcassette\n"


def test_git_setup_keeps_what_gitattributes_holds(repo: Path) -> None:
    (repo / ".gitattributes").write_text("*.png binary")
    assert run_cli("git-setup", str(repo)).returncode == 0
    assert (repo / ".gitattributes").read_text() == "*.png binary\n*.msgpack diff=tcpcassette\n"


def test_git_setup_outside_a_repository_or_without_git_is_an_error(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    outside = run_cli("git-setup", str(tmp_path))
    assert outside.returncode == 2
    assert "is not in a git repository" in outside.stderr
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    no_git = run_cli("git-setup", str(tmp_path), env={"PATH": str(empty)})
    assert no_git.returncode == 2
    assert "git-setup needs git" in no_git.stderr


def test_git_diff_and_log_show_a_rerecorded_cassette_decoded(
    redis_server: RedisServer, repo: Path
) -> None:
    # Without tcpcassette on PATH git-setup names this Python, so git runs this code.
    path = os.pathsep.join(str(Path(p)) for p in ("/usr/bin", "/bin"))
    setup = run_cli("git-setup", str(repo), env={"PATH": path})
    assert setup.returncode == 0, setup.stderr
    cassettes = repo / "cassettes"
    record(redis_server, cassettes, "hello")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "recorded")
    record(redis_server, cassettes, "goodbye")
    shown = git(repo, "diff")
    assert "Binary files" not in shown
    changed = [line for line in shown.splitlines() if line.startswith(("-", "+"))]
    assert any(line.startswith("-") and "SET greeting hello" in line for line in changed)
    assert any(line.startswith("+") and "SET greeting goodbye" in line for line in changed)
    assert any(line.startswith("+") and "server ← goodbye" in line for line in changed)
    # A message that did not change is no line of the diff.
    assert not [line for line in changed if "client → GET greeting" in line]
    git(repo, "commit", "-q", "-am", "re-recorded")
    log = git(repo, "log", "-p")
    assert "Binary files" not in log
    assert "+     4 server ← goodbye" in log or any(
        line.startswith("+") and "server ← goodbye" in line for line in log.splitlines()
    )
    assert any(line.startswith("+") and "SET greeting hello" in line for line in log.splitlines())
