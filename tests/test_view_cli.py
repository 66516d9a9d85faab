"""``tcpcassette view``: where it writes, stdout, and its errors."""

from __future__ import annotations

import shutil
from pathlib import Path

from .commands import run_cli

REDIS = Path(__file__).resolve().parent.parent / "cassettes" / "redis" / "commands.msgpack"


def test_view_writes_beside_the_cassette_and_says_where(tmp_path: Path) -> None:
    cassette = tmp_path / "commands.msgpack"
    shutil.copy(REDIS, cassette)
    result = run_cli("view", str(cassette))
    assert result.returncode == 0, result.stderr
    written = tmp_path / "commands.html"
    assert f"wrote {written}" in result.stdout
    page = written.read_text()
    assert page.startswith("<!DOCTYPE html>") and 'id="rows-0"' in page
    assert '{"kind":"msg","side":"client"' in page  # the rows the page's script builds


def test_view_to_a_chosen_file_and_to_stdout(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "page.html"
    assert run_cli("view", str(REDIS), "-o", str(out)).returncode == 0
    result = run_cli("view", str(REDIS), "-o", "-")
    assert result.returncode == 0
    assert result.stdout == out.read_text()


def test_view_errors_are_cassette_errors(tmp_path: Path) -> None:
    missing = run_cli("view", str(tmp_path / "nope.msgpack"))
    assert missing.returncode == 2 and "no such cassette file" in missing.stderr
    assert "Traceback" not in missing.stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    unwritable = run_cli("view", str(REDIS), "-o", str(blocker / "x.html"))
    assert unwritable.returncode == 2 and "could not write the file" in unwritable.stderr
    assert "Traceback" not in unwritable.stderr
    garbage = tmp_path / "garbage.msgpack"
    garbage.write_bytes(b"\x00not a cassette")
    broken = run_cli("view", str(garbage))
    assert broken.returncode == 2 and "garbage.msgpack" in broken.stderr
    assert not (tmp_path / "garbage.html").exists()


def test_view_has_help_with_an_example() -> None:
    result = run_cli("view", "--help")
    assert result.returncode == 0 and "Example: tcpcassette view" in result.stdout
