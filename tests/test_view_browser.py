"""``tcpcassette view`` pages opened in a real browser (headless chromium).

The pages are views of cassettes recorded from real servers (redis-server and
an HTTP server committed in cassettes/, an HTTPS server recorded here), one
with injected faults, and one whose bytes are hostile.  What is asserted is
the DOM after the page's script ran, as chromium's --dump-dom prints it.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests

import tcpcassette
from tcpcassette import ClientData, Connection, ServerData
from tcpcassette._core.render import hexdump
from tcpcassette._core.view import render_view, shown
from tcpcassette.faults import Reset, Timeout

from .realservers_tls import HttpsServer, make_ca

CASSETTES = Path(__file__).resolve().parent.parent / "cassettes"
BROWSER = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="chromium is not installed (apt-get install chromium)"
)

HOSTILE = (
    "<script>document.title='owned';document.body.appendChild("
    "document.createElement('blink'))</script></script>"
    "<img src=x onerror=\"document.title='img';document.body.appendChild("
    "document.createElement('marquee'))\">"
    '<a href="javascript:document.title=1">link</a>\u202eevil\u2028line'
)


class Tags(HTMLParser):
    """The elements of a DOM, with their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def browse(page: Path, tmp_path: Path, *extra: str) -> str:
    """Run chromium headless on ``page``; its stdout (the DOM with --dump-dom)."""
    assert BROWSER is not None
    profile = tmp_path / f"profile-{page.stem}-{len(extra)}"
    result = subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=3000",
            *extra,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def dom_of(cassette: tcpcassette.Cassette, tmp_path: Path, name: str) -> str:
    page = tmp_path / f"{name}.html"
    page.write_text(render_view(cassette, title=name))
    return browse(page, tmp_path, "--dump-dom")


def keep_screenshot(page: Path, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / f"{name}.png"
    browse(page, tmp_path, f"--screenshot={shot}", "--window-size=1200,900", "--hide-scrollbars")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    artifacts = os.environ.get("TCPCASSETTE_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / shot.name)
    return shot


def test_a_redis_server_cassette_shows_lanes_decoded_commands_and_how_it_ended(
    tmp_path: Path,
) -> None:
    cassette = tcpcassette.load(CASSETTES / "sweep" / "redis_counter.msgpack")
    dom = dom_of(cassette, tmp_path, "redis")
    assert 'data-ready="12"' in dom  # the page's own script ran (its hash is allowed)
    assert '<span class="lane-c">client</span>' in dom
    assert '<span class="lane-s">redis</span>' in dom
    assert dom.count('class="row msg client"') == 6 and dom.count('class="row msg server"') == 6
    assert '<div class="label">HELLO 3</div>' in dom
    assert '<div class="label">INCRBY hits 1</div>' in dom
    assert re.search(r'<a href="#conn-0" class="jump"[^>]*>#0 redis · redis · 12 msgs</a>', dom)
    assert "ended: " in dom
    page = tmp_path / "redis.html"
    keep_screenshot(page, tmp_path, "view-redis")


def test_an_http_cassette_shows_requests_and_responses(tmp_path: Path) -> None:
    cassette = tcpcassette.load(CASSETTES / "http" / "keep_alive.msgpack")
    dom = dom_of(cassette, tmp_path, "http")
    assert re.search(r'<div class="label">GET /[^<]*</div>', dom)
    assert re.search(r'<div class="label">[^<]*200[^<]*</div>', dom)
    assert "protocol http" in dom


def test_injected_faults_are_marked_where_they_are(tmp_path: Path) -> None:
    cassette = tcpcassette.load(CASSETTES / "sweep" / "redis_counter.msgpack")
    cassette.inject(Reset(), connection=0, after=2)
    cassette.inject(Timeout(), connection=0, after=5)
    dom = dom_of(cassette, tmp_path, "faults")
    marks = re.findall(r'<div class="row fault" data-event="(\d+)">.*?⚡ FAULT (\w+)', dom)
    assert marks == [("3", "reset"), ("6", "timeout")]
    # The first fault sits between message 2 (the server's reply) and message 3.
    assert dom.index('id="c0m2"') < dom.index("⚡ FAULT reset") < dom.index('id="c0m3"')
    assert 'class="jump faulty"' in dom and "2 fault(s)" in dom
    keep_screenshot(tmp_path / "faults.html", tmp_path, "view-faults")


def test_a_tls_recording_shows_where_tls_began_with_its_sni(tmp_path: Path) -> None:
    world = make_ca(tmp_path)
    server = HttpsServer(world.ca)
    try:
        with tcpcassette.use_cassette(
            "https",
            record_mode="all",
            cassette_dir=tmp_path,
            targets=[f"localhost:{server.port}"],
        ):
            got = requests.get(
                f"https://localhost:{server.port}/hello", verify=str(world.path), timeout=5
            )
            assert got.text == "hello from /hello"
    finally:
        server.stop()
    cassette = tcpcassette.load(tmp_path / "https.msgpack")
    dom = dom_of(cassette, tmp_path, "tls")
    assert '<span class="sni">SNI localhost</span>' in dom
    assert dom.index("🔒 TLS begins") < dom.index("GET /hello")
    assert re.search(r'<div class="label">GET /hello[^<]*</div>', dom)


def test_a_hostile_cassette_runs_nothing_and_changes_nothing(tmp_path: Path) -> None:
    data = HOSTILE.encode()
    hostile = tcpcassette.Cassette(
        connections=[
            Connection(
                target=HOSTILE + ":1",
                events=(
                    ClientData(data=data, time=0.0),
                    ServerData(data=b"+" + data + b"\r\n", time=0.01),
                ),
            )
        ],
        hosts={HOSTILE: ["127.0.0.1"]},
    )
    dom = dom_of(hostile, tmp_path, "hostile")
    assert "<title>hostile</title>" in dom
    assert 'data-ready="2"' in dom  # the page's script ran, and only it
    tags = Tags()
    tags.feed(dom)
    names = [name for name, _ in tags.found]
    assert not {"blink", "marquee", "img", "iframe"} & set(names)
    assert names.count("script") == 2 and names.count("a") == 1  # the list's one link
    attributes = [(key, value or "") for _, attrs in tags.found for key, value in attrs]
    assert not [key for key, _ in attributes if key.startswith("on")]
    assert not [value for _, value in attributes if "javascript:" in value]
    assert "\u202e" not in dom and "\u2028" not in dom
    # What the cassette said is on the page, as text.
    assert "&lt;script&gt;document.title='owned'" in dom
    assert "\\u202eevil" in dom


def test_the_pages_policy_is_enforced_a_script_it_does_not_name_does_not_run(
    tmp_path: Path,
) -> None:
    cassette = tcpcassette.load(CASSETTES / "redis" / "commands.msgpack")
    page = render_view(cassette, title="t")
    assert 'setAttribute("data-ready"' in page
    altered = tmp_path / "altered.html"
    altered.write_text(page.replace('setAttribute("data-ready"', 'setAttribute("data-other"'))
    dom = browse(altered, tmp_path, "--dump-dom")
    assert "data-other" not in dom.split("<script>")[0]
    assert '<a href="#conn-0"' not in dom  # the list the script builds is not there


def long_cassette(messages: int) -> tcpcassette.Cassette:
    """One Redis connection of ``messages`` messages: GET key:N and its reply."""
    events: list[ClientData | ServerData] = []
    for i in range(messages // 2):
        key = f"key:{i}".encode()
        events.append(
            ClientData(data=b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key), time=i * 2e-4)
        )
        events.append(ServerData(data=b"$5\r\nvalue\r\n", time=i * 2e-4 + 1e-4))
    return tcpcassette.Cassette(
        connections=[Connection(target="127.0.0.1:6379", events=tuple(events))]
    )


def test_a_long_cassette_builds_rows_near_the_viewport_and_search_finds_one_deep_inside(
    tmp_path: Path,
) -> None:
    page = tmp_path / "long.html"
    page.write_text(render_view(long_cassette(10_000), title="long"))
    dom = browse(page, tmp_path, "--dump-dom")
    assert 'data-ready="10000"' in dom
    assert 'id="c0m1"' in dom and '<div class="label">GET key:0</div>' in dom
    assert 'id="c0m9001"' not in dom  # far from the viewport: not built
    assert dom.count('class="row msg ') < 2_000
    # Searching (the address can hold the search) keeps the one match, deep in the
    # connection, and scrolls to it.
    searched = subprocess.run(
        [
            *(BROWSER or "", "--headless", "--no-sandbox", "--disable-gpu"),
            f"--user-data-dir={tmp_path / 'profile-search'}",
            "--virtual-time-budget=3000",
            "--dump-dom",
            page.as_uri() + "#search=key%3A4500",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert 'data-current="c0m9001"' in searched
    assert '<div class="row msg client current" id="c0m9001">' in searched
    assert '<div class="label">GET key:4500</div>' in searched
    assert "1 of 10000 messages match; showing 1: connection 0 message #9001" in searched
    assert searched.count('class="row msg ') == 1  # only what matches is kept


def test_bytes_are_shown_escaped_with_their_hexdump_a_click_away(tmp_path: Path) -> None:
    data = bytes(range(256))
    cassette = tcpcassette.Cassette(
        connections=[Connection(target="a:1", events=(ClientData(data=data, time=0.0),))]
    )
    dom = dom_of(cassette, tmp_path, "binary")
    body = re.search(r'<pre class="body">(.*?)</pre>', dom, re.S)
    assert body is not None and body.group(1) == html.escape(shown(data), quote=False)
    dump = re.search(r"<details><summary>hex</summary><pre>(.*?)</pre></details>", dom, re.S)
    assert dump is not None
    assert dump.group(1) == html.escape("\n".join(hexdump(data)), quote=False)
