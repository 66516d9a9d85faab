"""The suite-wide secrets check (tests/secret_check.py) fails a run whose cassettes leak.

Throw-away projects load the same plugin, record a registered password to a
real echo server, and show that only the leak with no exemption fails, naming
the file and the password.
"""

from __future__ import annotations

import pytest

from .realservers import SECRETS

LEAKY = """
import socket

import pytest

from tcpcassette import use_cassette
from tests import servers
from tests.realservers import secret

PASSWORD = secret("leaky-Pa55-7c1e")


def login(directory, scrub):
    with servers.running(servers.upper_echo) as server:
        with use_cassette("login", cassette_dir=directory, record_mode="all", scrub=scrub):
            with socket.create_connection(("127.0.0.1", server.port)) as s:
                s.sendall(f"PASS {PASSWORD}\\r\\n".encode())
                return servers.recv_exactly(s, len(PASSWORD) + 7)


def test_login(tmp_path):
    assert login(tmp_path, SCRUB) == f"PASS {PASSWORD}\\r\\n".upper().encode()
"""


def run(pytester: pytest.Pytester, scrub: bool, marker: str = "") -> pytest.RunResult:
    pytester.makeconftest('pytest_plugins = ["tests.secret_check"]')
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    source = LEAKY.replace("SCRUB", str(scrub))
    if marker:
        source = source.replace("def test_login", f"{marker}\ndef test_login")
    pytester.makepyfile(test_leaky=source)
    return pytester.runpytest("-p", "no:randomly", f"--basetemp={pytester.path / 'inner'}")


@pytest.mark.keeps_secrets
def test_a_password_recorded_with_scrub_false_fails_the_run_naming_file_and_password(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, scrub=False)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_login*"])
    result.stdout.fnmatch_lines(["*inner*login.msgpack: 'leaky-Pa55-7c1e'*"])
    assert "leaky-Pa55-7c1e" in SECRETS  # registered by the project's module


@pytest.mark.keeps_secrets
def test_the_marker_exempts_a_test_that_keeps_its_password_on_purpose(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, scrub=False, marker="@pytest.mark.keeps_secrets")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "inner").is_dir()


def test_a_scrubbed_recording_passes_the_check(pytester: pytest.Pytester) -> None:
    result = run(pytester, scrub=True)
    result.assert_outcomes(passed=1)
    [cassette] = (pytester.path / "inner").rglob("login.msgpack")
    assert b"leaky-Pa55-7c1e" not in cassette.read_bytes()
