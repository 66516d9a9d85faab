"""The ``tcpcassette`` marker and fixtures, driven through real pytest runs with pytester."""

from __future__ import annotations

import pytest

from tcpcassette import load

from . import servers
from .servers import ThreadedServer
from .test_plugin import INI, Serve

HELPERS = """
import os, socket

PORT = int(os.environ["TCPCASSETTE_TEST_PORT"])

def echo(payload):
    with socket.create_connection(("127.0.0.1", PORT), timeout=5) as s:
        s.sendall(payload)
        return s.recv(100)
"""


@pytest.fixture
def echo_server(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, pytester: pytest.Pytester
) -> ThreadedServer:
    server = serve(servers.upper_echo)
    pytester.makeini(INI)
    pytester.makepyfile(echohelp=HELPERS)
    monkeypatch.setenv("TCPCASSETTE_TEST_PORT", str(server.port))
    monkeypatch.delenv("TCPCASSETTE_RECORD_MODE", raising=False)
    return server


def client_bytes(path: object) -> list[bytes]:
    return [c.client_bytes for c in load(str(path)).connections]


def record_then_replay(
    pytester: pytest.Pytester, server: ThreadedServer, passed: int, *args: str
) -> None:
    pytester.runpytest("--record-mode=once", *args).assert_outcomes(passed=passed)
    seen = server.connections
    server.stop()
    pytester.runpytest(*args).assert_outcomes(passed=passed)
    assert server.connections == seen  # the replay run reached no server


def test_every_marker_form_records_and_replays(
    pytester: pytest.Pytester, echo_server: ThreadedServer
) -> None:
    pytester.makepyfile(
        test_forms="""
import pytest
from echohelp import echo

@pytest.mark.tcpcassette
def test_bare():
    assert echo(b"bare") == b"BARE"

@pytest.mark.tcpcassette("shared")
def test_named():
    assert echo(b"named") == b"NAMED"

@pytest.mark.tcpcassette(name="kw", strict=True)
def test_options():
    assert echo(b"kw") == b"KW"

@pytest.mark.tcpcassette
class TestGroup:
    def test_one(self):
        assert echo(b"one") == b"ONE"

    @pytest.mark.tcpcassette("closest")
    def test_two(self):
        assert echo(b"two") == b"TWO"
""",
        test_module_wide="""
import pytest
from echohelp import echo

pytestmark = pytest.mark.tcpcassette

def test_modular():
    assert echo(b"mod") == b"MOD"
""",
    )
    record_then_replay(pytester, echo_server, 6)
    c = pytester.path / "cassettes"
    assert client_bytes(c / "test_forms/test_bare.msgpack") == [b"bare"]
    assert client_bytes(c / "shared.msgpack") == [b"named"]
    assert client_bytes(c / "kw.msgpack") == [b"kw"]
    assert client_bytes(c / "test_forms/TestGroup.test_one.msgpack") == [b"one"]
    assert client_bytes(c / "closest.msgpack") == [b"two"]  # the method's marker wins
    assert client_bytes(c / "test_module_wide/test_modular.msgpack") == [b"mod"]


def test_fixture_traffic_in_setup_and_teardown_is_recorded_and_replayed(
    pytester: pytest.Pytester, echo_server: ThreadedServer
) -> None:
    pytester.makepyfile(
        test_fixture="""
import pytest
from echohelp import echo

@pytest.fixture
def seeded():
    assert echo(b"setup") == b"SETUP"
    yield
    assert echo(b"teardown") == b"TEARDOWN"

@pytest.mark.tcpcassette
def test_uses_it(seeded):
    assert echo(b"body") == b"BODY"
"""
    )
    record_then_replay(pytester, echo_server, 1)
    path = pytester.path / "cassettes/test_fixture/test_uses_it.msgpack"
    assert client_bytes(path) == [b"setup", b"body", b"teardown"]


def test_the_fixture_gives_the_live_cassette_and_counts_while_the_test_runs(
    pytester: pytest.Pytester, echo_server: ThreadedServer
) -> None:
    pytester.makepyfile(
        test_live="""
import pytest
from echohelp import echo

@pytest.mark.tcpcassette
def test_counts(tcpcassette):
    echo(b"a")
    echo(b"b")
    if tcpcassette.connections:  # replaying: the recording is there
        assert tcpcassette.play_counts == [1, 1]
        assert tcpcassette.play_count == 2 and tcpcassette.all_played

def test_unmarked_asks_for_it(tcpcassette):
    assert tcpcassette.path.name == "test_unmarked_asks_for_it.msgpack"
    echo(b"c")
"""
    )
    record_then_replay(pytester, echo_server, 2)
    assert client_bytes(pytester.path / "cassettes/test_live/test_counts.msgpack") == [b"a", b"b"]


CONFIGURED = """
import pytest
from echohelp import echo

@pytest.fixture
def where(tmp_path_factory):
    return "from-config"

@pytest.fixture
def tcpcassette_config(where):
    return {"cassette_dir": where, "record_mode": "none"}

def test_config_alone(tcpcassette):
    assert echo(b"x") == b"X"

@pytest.mark.tcpcassette(record_mode="once")
def test_marker_beats_config():
    assert echo(b"y") == b"Y"
"""


def test_the_config_fixture_depends_on_fixtures_and_the_marker_overrides_it(
    pytester: pytest.Pytester, echo_server: ThreadedServer
) -> None:
    pytester.makepyfile(test_config=CONFIGURED)
    result = pytester.runpytest()
    # The config's "none" finds no cassette; the marker's "once" records one.
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*CassetteNotFoundError*from-config*test_config_alone*"])
    assert (pytester.path / "from-config/test_config/test_marker_beats_config.msgpack").exists()
    # --record-mode beats marker and config alike.
    pytester.runpytest("--record-mode=all").assert_outcomes(passed=2)
    assert (pytester.path / "from-config/test_config/test_config_alone.msgpack").exists()


def test_config_beats_ini_and_ini_beats_the_environment(
    pytester: pytest.Pytester, echo_server: ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI + "tcpcassette_record_mode = none\n")
    monkeypatch.setenv("TCPCASSETTE_RECORD_MODE", "all")
    pytester.makeconftest(
        """
import pytest

@pytest.fixture
def tcpcassette_config():
    return {"record_mode": "once"}
"""
    )
    pytester.makepyfile(
        test_order="""
import pytest
from echohelp import echo

@pytest.mark.tcpcassette
def test_it():
    assert echo(b"z") == b"Z"
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)  # the config's "once" beat the ini's "none"
    assert (pytester.path / "cassettes/test_order/test_it.msgpack").exists()
    (pytester.path / "conftest.py").unlink()
    (pytester.path / "cassettes/test_order/test_it.msgpack").unlink()
    result = pytester.runpytest()  # the ini's "none" beat the environment's "all"
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*CassetteNotFoundError*"])


def test_an_unknown_option_names_itself_and_the_known_ones(
    pytester: pytest.Pytester, echo_server: ThreadedServer
) -> None:
    pytester.makepyfile(
        test_typo="""
import pytest

@pytest.mark.tcpcassette(record_mod="once")
def test_it():
    pass
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*unknown tcpcassette option(s) record_mod*record_mode*"])


def test_disable_runs_marked_tests_live_and_writes_no_cassette(
    pytester: pytest.Pytester, echo_server: ThreadedServer
) -> None:
    pytester.makepyfile(
        test_live="""
import pytest
from tcpcassette import use_cassette
from echohelp import echo

@pytest.mark.tcpcassette
def test_marked(tcpcassette):
    assert tcpcassette is None
    assert echo(b"live") == b"LIVE"

@use_cassette("decorated")
def test_decorated():
    assert echo(b"too") == b"TOO"
"""
    )
    pytester.runpytest("--disable-tcpcassette").assert_outcomes(passed=2)
    assert echo_server.connections == 2  # both reached the real server
    assert not (pytester.path / "cassettes").exists()


def test_two_modules_with_the_same_name_keep_their_own_cassettes(
    pytester: pytest.Pytester, echo_server: ThreadedServer
) -> None:
    for package, word in (("a", "alpha"), ("b", "beta")):
        # "suite", not "tests": pytester runs in this process, which imported its own tests.
        (pytester.path / "suite" / package).mkdir(parents=True)
        (pytester.path / "suite" / package / "__init__.py").write_text("")
        (pytester.path / "suite" / package / "test_api.py").write_text(
            "import pytest\nfrom echohelp import echo\n\n"
            "@pytest.mark.tcpcassette\n"
            f"def test_user():\n    assert echo(b'{word}') == b'{word.upper()}'\n"
        )
    (pytester.path / "suite" / "__init__.py").write_text("")
    record_then_replay(pytester, echo_server, 2)
    c = pytester.path / "cassettes/suite"
    assert client_bytes(c / "a/test_api/test_user.msgpack") == [b"alpha"]
    assert client_bytes(c / "b/test_api/test_user.msgpack") == [b"beta"]


def test_a_cassette_at_the_name_earlier_releases_gave_is_still_used(
    pytester: pytest.Pytester, echo_server: ThreadedServer
) -> None:
    (pytester.path / "suite").mkdir()
    (pytester.path / "suite" / "__init__.py").write_text("")
    (pytester.path / "suite" / "test_old.py").write_text(
        "from tcpcassette import use_cassette\nfrom echohelp import echo\n\n"
        "@use_cassette()\ndef test_it():\n    assert echo(b'old') == b'OLD'\n"
    )
    pytester.runpytest("--record-mode=once").assert_outcomes(passed=1)
    new = pytester.path / "cassettes/suite/test_old/test_it.msgpack"
    legacy = pytester.path / "cassettes/test_old/test_it.msgpack"
    legacy.parent.mkdir(parents=True)
    new.rename(legacy)
    echo_server.stop()
    pytester.runpytest().assert_outcomes(passed=1)  # replayed from where it was
    assert not new.exists()


def test_use_cassette_on_a_class_gives_each_test_method_the_cassette(
    pytester: pytest.Pytester, echo_server: ThreadedServer
) -> None:
    pytester.makepyfile(
        test_cls="""
from tcpcassette import use_cassette
from echohelp import echo

@use_cassette()
class TestThings:
    def test_a(self):
        assert echo(b"a") == b"A"

    def test_b(self):
        assert echo(b"b") == b"B"

    def helper(self):
        return 1
""",
        test_bad_cls="""
import pytest
from tcpcassette import CassetteError, use_cassette

def test_a_class_without_tests_fails_loudly():
    with pytest.raises(CassetteError, match="class Plain: it has no test methods"):
        @use_cassette()
        class Plain:
            def helper(self):
                pass
""",
    )
    record_then_replay(pytester, echo_server, 3)
    assert client_bytes(pytester.path / "cassettes/test_cls/TestThings.test_a.msgpack") == [b"a"]
    assert client_bytes(pytester.path / "cassettes/test_cls/TestThings.test_b.msgpack") == [b"b"]


def test_pytest_recording_installed_alongside_shares_record_mode(
    pytester: pytest.Pytester, echo_server: ThreadedServer
) -> None:
    pytest.importorskip("pytest_recording", reason="pytest-recording (pip install -e '.[test]')")
    pytester.makepyfile(
        test_both="""
import http.server, threading, urllib.request
import pytest
from echohelp import echo

@pytest.fixture
def web():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()

@pytest.mark.vcr
def test_http_by_vcrpy(web):
    assert urllib.request.urlopen(web, timeout=5).status == 200

@pytest.mark.tcpcassette
def test_tcp_by_tcpcassette():
    assert echo(b"both") == b"BOTH"
"""
    )
    result = pytester.runpytest("--record-mode=once", "-p", "recording")
    result.assert_outcomes(passed=2)
    assert (pytester.path / "cassettes/test_both/test_tcp_by_tcpcassette.msgpack").exists()
    assert list(pytester.path.glob("**/test_http_by_vcrpy.yaml"))  # vcrpy recorded its own
    # "rewrite", pytest-recording's mode for recording afresh, records afresh here too.
    before = echo_server.connections
    pytester.runpytest("--record-mode=rewrite", "-k", "tcp").assert_outcomes(passed=1)
    assert echo_server.connections == before + 1
    # With pytest-recording turned off, tcpcassette registers the option itself.
    result = pytester.runpytest("-p", "no:recording", "--record-mode=once", "-k", "tcp")
    result.assert_outcomes(passed=1)


def test_a_bare_decorator_is_collected_and_uses_the_default_cassette(
    pytester: pytest.Pytester, echo_server: ThreadedServer
) -> None:
    pytester.makepyfile(
        test_bare="""
from tcpcassette import use_cassette
from echohelp import echo

@use_cassette
def test_plain():
    assert echo(b"plain") == b"PLAIN"

class TestMethods:
    @use_cassette
    def test_method(self):
        assert echo(b"m") == b"M"
"""
    )
    record_then_replay(pytester, echo_server, 2)  # collected: two tests, not zero
    c = pytester.path / "cassettes/test_bare"
    assert client_bytes(c / "test_plain.msgpack") == [b"plain"]
    assert client_bytes(c / "TestMethods.test_method.msgpack") == [b"m"]


def test_the_summary_names_the_cassettes_of_failing_tests(
    pytester: pytest.Pytester, echo_server: ThreadedServer
) -> None:
    pytester.makepyfile(
        test_fails="""
import pytest
from echohelp import echo

@pytest.mark.tcpcassette
def test_ok():
    assert echo(b"ok") == b"OK"

@pytest.mark.tcpcassette("broken")
def test_broken():
    assert echo(b"x") == b"nothing like it"
"""
    )
    for args in ((), ("-n", "2", "-p", "no:benchmark")):
        result = pytester.runpytest("--record-mode=all", *args)
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines(
            [
                "cassettes of failing tests:",
                "  test_fails.py::test_broken: cassettes/broken.msgpack",
            ]
        )
        assert "test_ok:" not in result.stdout.str()


def test_a_mismatch_fails_the_marked_test_itself_once_not_its_teardown(
    pytester: pytest.Pytester, echo_server: ThreadedServer
) -> None:
    pytester.makepyfile(
        test_change="""
import os
import pytest
from echohelp import echo

WORD = os.environ.get("WORD", "first").encode()

@pytest.mark.tcpcassette
def test_it():
    assert echo(WORD) == WORD.upper()
"""
    )
    pytester.runpytest("--record-mode=once").assert_outcomes(passed=1)
    echo_server.stop()
    os_env = pytester._monkeypatch  # the pytester's own monkeypatch, undone after the test
    os_env.setenv("WORD", "other")
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)  # failed in the test, no error at teardown
    text = result.stdout.str()
    assert text.count("ClientMismatchError") == 2, text  # the failure and its summary line
    result.stdout.fnmatch_lines(["*recorded: first*", "*actual:   other*"])


BLOCKED = """
import socket
import pytest
from tcpcassette import NetworkBlockedError, use_cassette
from echohelp import PORT, echo

def test_unmarked_is_stopped():
    with pytest.raises(NetworkBlockedError, match=f"127.0.0.1:{PORT}.*--tcpcassette-allowed-hosts"):
        echo(b"nope")

@pytest.mark.tcpcassette
def test_a_cassette_serves_it():
    assert echo(b"served") == b"SERVED"

@pytest.mark.tcpcassette(targets=["127.0.0.9:1"])  # intercepts something else only
def test_marked_but_not_intercepted_is_stopped():
    with pytest.raises(NetworkBlockedError):
        echo(b"nope")

def test_unix_sockets_are_not_network(tmp_path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "s"))
    server.listen()
    client = socket.socket(socket.AF_UNIX)
    client.connect(str(tmp_path / "s"))
    client.close()
    server.close()
"""


def test_block_network_stops_what_no_cassette_serves_except_allowed_hosts(
    pytester: pytest.Pytester, echo_server: ThreadedServer
) -> None:
    pytester.makepyfile(test_blocked=BLOCKED)
    result = pytester.runpytest("--tcpcassette-block-network", "--record-mode=once")
    result.assert_outcomes(passed=4)
    assert echo_server.connections == 1  # the recorded one, and nothing else got through
    # Replaying, the same: the cassette serves its connection with no network at all.
    pytester.runpytest("--tcpcassette-block-network").assert_outcomes(passed=4)
    assert echo_server.connections == 1

    pytester.makepyfile(
        test_allowed="""
from echohelp import echo

def test_allowed_host_is_reached():
    assert echo(b"ok") == b"OK"
"""
    )
    result = pytester.runpytest(
        "--tcpcassette-block-network", "--tcpcassette-allowed-hosts=localhost", "test_allowed.py"
    )
    result.assert_outcomes(passed=1)  # localhost's addresses include 127.0.0.1
    assert echo_server.connections == 2
