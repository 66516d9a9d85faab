"""``tcpcassette diff --html``: two recordings from a real redis-server, side by side."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .commands import run_cli
from .realservers import RedisServer
from .test_diff_cli import record as record_greeting
from .test_diff_cli import redis_server as redis_server
from .test_view_browser import BROWSER, Tags, browse

redis = pytest.importorskip("redis")


def record(server: RedisServer, directory: Path, value: str) -> Path:
    """A SET of ``value``, eight GETs of other keys, and a GET of ``value``: redis-py as is."""
    return record_greeting(server, directory, value, others=8)


def test_diff_html_puts_both_conversations_side_by_side_with_the_changes_marked(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    a = record(redis_server, tmp_path / "a", "hello")
    b = record(redis_server, tmp_path / "b", "goodbye<b>")
    done = run_cli("diff", str(a), str(b), "--html")
    assert done.returncode == 1, done.stderr
    page = tmp_path / "b" / "greeting.diff.html"
    assert done.stdout.strip() == (
        f"wrote {page}: the differences from {a} to {b}, 1 connection(s) differ"
    )
    text = page.read_text()
    assert run_cli("diff", str(a), str(b), "--html", "-o", "-").stdout == text
    if BROWSER is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    dom = browse(page, tmp_path, "--dump-dom")
    changed = re.findall(
        r'<div class="pair changed".*?</div></div>(?=<div class="pair|<details|</section)',
        dom,
        re.S,
    )
    # The SET and the GET's reply; nothing else (the HELLO reply's connection id is
    # what a server makes anew for every connection: no difference).
    assert len(changed) == 2
    assert '<div class="label">SET greeting hello</div>' in changed[0]
    assert '<div class="label">SET greeting goodbye&lt;b&gt;</div>' in changed[0]
    assert changed[0].count('<mark class="diverge">') == 2  # the first differing byte, each side
    assert '<div class="label">goodbye&lt;b&gt;</div>' in changed[1]
    # The 18 unchanged messages between the SET and the last reply are folded but for
    # one either side; folded, not dropped.
    folds = re.findall(r'<details class="fold"><summary>⋯ (\d+) unchanged message', dom)
    assert folds[-1] == "16"
    last = dom.rindex('<details class="fold">')
    assert dom.index("SET greeting hello") < last < dom.index('">goodbye&lt;b&gt;</div>')
    assert "GET other:7" in dom[last:]
    names = [name for name, _ in _tags(dom)]
    assert "script" not in names and "b" not in names  # no script, and the bytes stay text
    assert not run_cli(
        "diff", str(a), str(a), "--html", "-o", str(tmp_path / "same.html")
    ).returncode
    assert "no differences" in (tmp_path / "same.html").read_text()


def _tags(dom: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    tags = Tags()
    tags.feed(dom)
    return tags.found


def test_diff_output_without_html_is_refused(tmp_path: Path) -> None:
    cassette = Path(__file__).resolve().parent.parent / "cassettes" / "redis" / "commands.msgpack"
    done = run_cli("diff", str(cassette), str(cassette), "-o", str(tmp_path / "x.html"))
    assert done.returncode == 2 and "add --html" in done.stderr
    assert not (tmp_path / "x.html").exists()
