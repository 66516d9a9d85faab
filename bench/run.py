"""tcpcassette benchmarks, measured side by side in one run.

Every workload runs its variants interleaved (A, B, C, A, B, C, ... with the
order rotated each run), and ratios are computed run by run against the
workload's baseline, so a noisy moment on a shared machine hits every variant
alike.  Prints a table and writes bench/results.json.  Nothing here asserts
speed: the goals column says met or missed.

    python bench/run.py            # the full run (about 15 minutes on 2 cores)
    python bench/run.py --quick    # a small smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import os  # noqa: E402

import msgpack  # noqa: E402

import tcpcassette  # noqa: E402
from tcpcassette import ClientData, Connection, ServerData, use_cassette  # noqa: E402
from tcpcassette._core.view import render_view  # noqa: E402
from tests import servers  # noqa: E402
from tests.bigtransfer import record_and_replay  # noqa: E402
from tests.realservers import (  # noqa: E402
    CherootServer,
    RedisServer,
    offered_port,
    redis_client_options,
    wait_for_port,
)


@dataclass
class Result:
    """One variant of one workload: a rate (or a duration) per run."""

    workload: str
    variant: str
    unit: str
    values: list[float]
    ratios: list[float] = field(default_factory=list)  # per run, against the baseline
    goal: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else float("nan")


RESULTS: list[Result] = []


def interleave(variants: dict[str, Callable[[], float]], runs: int) -> dict[str, list[float]]:
    """Run every variant ``runs`` times, rotating the order; seconds per run."""
    names = list(variants)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(runs):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(variants[name]())
    return seconds


def report(
    workload: str,
    seconds: dict[str, list[float]],
    *,
    work: float,
    unit: str,
    baseline: str,
    goals: dict[str, tuple[str, Callable[[float], bool]]] | None = None,
    higher_is_better: bool = True,
) -> None:
    """Turn seconds into rates and per-run ratios against ``baseline``."""
    base = seconds[baseline]
    for name, values in seconds.items():
        rates = [work / s for s in values] if higher_is_better else values
        if higher_is_better:
            ratios = [b / s for b, s in zip(base, values, strict=True)]  # rate / baseline rate
        else:
            ratios = [s / b for b, s in zip(base, values, strict=True)]
        goal, check = (goals or {}).get(name, ("", None))
        result = Result(workload, name, unit, rates, ratios, goal)
        if check is not None:
            result.met = check(result.ratio)
        RESULTS.append(result)


def relative(
    workload: str,
    label: str,
    seconds: dict[str, list[float]],
    variant: str,
    against: str,
    goal: tuple[str, Callable[[float], bool]] | None = None,
    unit: str = "ratio",
) -> None:
    """A row of ``variant``'s rate over ``against``'s, run by run (their times' inverse)."""
    ratios = [a / v for a, v in zip(seconds[against], seconds[variant], strict=True)]
    result = Result(workload, label, unit, ratios, ratios)
    if goal is not None:
        result.goal, check = goal
        result.met = check(result.ratio)
    RESULTS.append(result)


def failed(workload: str, variant: str, why: str) -> None:
    RESULTS.append(Result(workload, variant, "", [], note=f"not measured: {why}"))


def timed(func: Callable[[], object]) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


@contextlib.contextmanager
def socat(target_port: int) -> Iterator[int]:
    """socat as a reference proxy (a process per connection, like most proxies)."""
    binary = shutil.which("socat")
    if binary is None:
        raise RuntimeError("socat is not installed (Debian package socat)")
    for _attempt in range(10):
        # socat needs a number: take one the kernel offers, and another if
        # something took it before socat could bind it.
        port = offered_port()
        proc = subprocess.Popen(
            [
                binary,
                f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                f"TCP:127.0.0.1:{target_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, proc)
        except RuntimeError:
            proc.wait(10)
            continue
        try:
            yield port
        finally:
            proc.terminate()
            proc.wait(10)
        return
    raise RuntimeError("socat could not bind a port in 10 attempts")


# -- workloads ----------------------------------------------------------------------


def set_get(client: Any, round_trips: int) -> None:
    """``round_trips`` SETs and GETs, one after the other, each reply checked; then close."""
    for i in range(round_trips // 2):
        client.set(f"key:{i}", f"value:{i}")
        if client.get(f"key:{i}") != f"value:{i}".encode():
            raise AssertionError("wrong reply")
    client.close()


def redis_workloads(tmp: Path, *, round_trips: int, pipelines: int, runs: int) -> None:
    import redis

    server = RedisServer()
    try:

        def round_trip_work(port: int) -> None:
            set_get(redis.Redis(host="127.0.0.1", port=port, **redis_client_options()), round_trips)

        def pipeline_work(port: int) -> None:
            r = redis.Redis(host="127.0.0.1", port=port, **redis_client_options())
            for p in range(pipelines):
                pipe = r.pipeline(transaction=False)
                for i in range(1000):
                    pipe.set(f"p{p}:{i}", i)
                if not all(pipe.execute()):
                    raise AssertionError("wrong reply")
            r.close()

        for name, work, count, goals in (
            (
                f"redis-py, {round_trips:,} SET/GET round trips",
                round_trip_work,
                round_trips,
                {
                    "recording": ("≥ 0.90× direct", lambda x: x >= 0.90),
                    "replay": ("≥ 1.0× direct", lambda x: x >= 1.0),
                },
            ),
            (
                f"redis-py, {pipelines} pipelines of 1,000 commands",
                pipeline_work,
                pipelines * 1000,
                {
                    "recording": ("≥ 0.95× direct", lambda x: x >= 0.95),
                    "replay": ("≥ 1.0× direct", lambda x: x >= 1.0),
                },
            ),
        ):
            slug = "rt" if work is round_trip_work else "pipe"
            with use_cassette(slug, record_mode="all", cassette_dir=tmp):
                work(server.port)
            with socat(server.port) as socat_port:
                seconds = interleave(
                    {
                        "direct": lambda w=work: timed(lambda: w(server.port)),
                        "recording": lambda w=work: timed(lambda: _record(tmp, w, server.port)),
                        "replay": lambda w=work, s=slug: timed(
                            lambda: _replay(tmp, s, w, server.port)
                        ),
                        RAW_REPLAY: lambda w=work, s=slug: timed(
                            lambda: _replay(tmp, s, w, server.port, protocol="raw")
                        ),
                        "socat": lambda w=work, p=socat_port: timed(lambda: w(p)),
                    },
                    runs,
                )
            report(name, seconds, work=count, unit="ops/s", baseline="direct", goals=goals)
            relative(
                name,
                "recording vs socat",
                seconds,
                "recording",
                "socat",
                ("≥ 1.0× socat", lambda x: x >= 1.0),
            )
            relative(name, PROTOCOL_VS_RAW, seconds, "replay", RAW_REPLAY, WITHIN_10_PERCENT)
    finally:
        server.stop()


def tls_workloads(tmp: Path, *, round_trips: int, requests_count: int, runs: int) -> None:
    """The same clients over TLS, verification on: direct to the real TLS server, recorded
    through tcpcassette (the client's TLS ends in the proxy, which opens its own to the
    server), and replayed (tcpcassette's test CA answers the handshake)."""
    import redis
    import requests

    from tests.realservers_tls import HttpsServer, TlsRedisServer, make_ca

    ca = make_ca(tmp, "bench-ca.pem")
    trusted = str(ca.path)

    def redis_work(port: int) -> None:
        options = redis_client_options()
        set_get(
            redis.Redis(host="localhost", port=port, ssl=True, ssl_ca_certs=trusted, **options),
            round_trips,
        )

    def https_work(port: int) -> None:
        with requests.Session() as session:
            for i in range(requests_count):
                url = f"https://localhost:{port}/kib?i={i}"
                if len(session.get(url, verify=trusted, timeout=10).content) != 1024:
                    raise AssertionError("wrong body")

    for name, server_type, work, count, unit in (
        (
            f"TLS: redis-py, {round_trips:,} SET/GET round trips (rediss)",
            TlsRedisServer,
            redis_work,
            round_trips,
            "ops/s",
        ),
        (
            f"TLS: requests → cheroot over HTTPS, {requests_count:,} GETs of 1 KiB",
            HttpsServer,
            https_work,
            requests_count,
            "requests/s",
        ),
    ):
        server = server_type(ca.ca)
        slug = f"tls-{work.__name__}"
        try:
            with use_cassette(slug, record_mode="all", cassette_dir=tmp):
                work(server.port)
            seconds = interleave(
                {
                    "direct, over TLS": lambda w=work, p=server.port: timed(lambda: w(p)),
                    "recording": lambda w=work, p=server.port: timed(lambda: _record(tmp, w, p)),
                    "replay": lambda w=work, p=server.port, s=slug: timed(
                        lambda: _replay(tmp, s, w, p)
                    ),
                },
                runs,
            )
        finally:
            server.stop()
        report(
            name,
            seconds,
            work=count,
            unit=unit,
            baseline="direct, over TLS",
            goals={"replay": ("≥ 1.0× the real TLS server", lambda x: x >= 1.0)},
        )
        RESULTS[-1].note = "a new TLS handshake with tcpcassette's test CA each run"


PLUGIN_IMPORT = """
import sys, time
sys.path.insert(0, sys.argv[1])
import pytest
started = time.perf_counter()
import tcpcassette.plugin
print(time.perf_counter() - started)
"""


def plugin_start(tmp: Path, *, starts: int, runs: int) -> None:
    """What the plugin adds to a pytest start: pytest collecting a one-test project with
    the plugin and without it (no other plugin loads in either), and the import alone.

    Each start is a fresh process with Python's bytecode cache on, as a user's is;
    a first start of each kind, not measured, writes it.  The start without the
    plugin names an empty one with ``-p``: pytest looks every ``-p`` name up among
    the installed entry points, a cost that is pytest's, not the plugin's (with
    autoloading on, as users run, it reads them at every start anyway).
    """
    project = tmp / "one-test-project"
    project.mkdir()
    (project / "test_one.py").write_text("def test_one():\n    pass\n")
    empty = tmp / "empty-plugin"
    empty.mkdir()
    (empty / "bench_empty_plugin.py").write_text("")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env |= {
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(empty)]),
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    command = [sys.executable, "-m", "pytest", "-q", "--co", "-p", "no:cacheprovider"]

    def start(*extra: str) -> float:
        def go() -> None:
            subprocess.run(
                [*command, *extra, str(project)],
                cwd=project,
                capture_output=True,
                check=True,
                env=env,
            )

        return sum(timed(go) for _ in range(starts)) / starts

    with_plugin = ("-p", "tcpcassette.plugin")
    without = ("-p", "bench_empty_plugin")
    start(*with_plugin), start(*without)  # the bytecode cache written
    seconds = interleave(
        {"with the plugin": lambda: start(*with_plugin), "without it": lambda: start(*without)},
        runs,
    )
    name = "pytest start, a one-test project collected (other plugins off)"
    for variant, values in seconds.items():
        RESULTS.append(Result(name, variant, "ms", [v * 1000 for v in values]))
    added = [
        (w - o) * 1000
        for w, o in zip(seconds["with the plugin"], seconds["without it"], strict=True)
    ]
    median = statistics.median(added)
    # A start's noise on a busy machine can swamp a difference of 10 ms: a plugin
    # that makes pytest start faster is noise, and shows neither met nor missed.
    RESULTS.append(
        Result(
            name,
            "added by the plugin",
            "ms",
            added,
            [],
            "≤ 10 ms",
            None if median < 0 else median <= 10,
            note="" if median >= 0 else "below zero: noise larger than the plugin's cost",
        )
    )

    def imported() -> float:
        out = subprocess.run(
            [sys.executable, "-c", PLUGIN_IMPORT, str(ROOT)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
        return 1000 * float(out)

    imports = [imported() for _ in range(runs * starts)]
    RESULTS.append(
        Result(
            name,
            "import tcpcassette.plugin after pytest",
            "ms",
            imports,
            note="a fresh process each time",
        )
    )


def _record(tmp: Path, work: Callable[[int], None], port: int) -> None:
    with use_cassette("scratch", record_mode="all", cassette_dir=tmp):
        work(port)


def _replay(
    tmp: Path, name: str, work: Callable[[int], None], port: int, *, protocol: str = "auto"
) -> None:
    with use_cassette(name, record_mode="none", cassette_dir=tmp, protocol=protocol):
        work(port)


#: The variant replaying with the protocol layer off, and the row comparing the two.
RAW_REPLAY = 'replay, protocol="raw" (bytes only)'
PROTOCOL_VS_RAW = "protocol-aware replay vs raw replay"
WITHIN_10_PERCENT = ("≥ 0.90× raw replay", lambda x: x >= 0.90)


def ping_pong(tmp: Path, *, round_trips: int, runs: int) -> None:
    server = servers.ThreadedServer(servers.upper_echo)
    message = b"p" * 64

    def work(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(round_trips):
                s.sendall(message)
                servers.recv_exactly(s, 64)

    try:
        with use_cassette("pingpong", record_mode="all", cassette_dir=tmp):
            work(server.port)
        with socat(server.port) as socat_port, in_process_echo() as floor_port:
            seconds = interleave(
                {
                    "direct": lambda: timed(lambda: work(server.port)),
                    "recording": lambda: timed(lambda: _record(tmp, work, server.port)),
                    "replay": lambda: timed(lambda: _replay(tmp, "pingpong", work, server.port)),
                    "socat": lambda: timed(lambda: work(socat_port)),
                    "in-process asyncio echo (floor)": lambda: timed(lambda: work(floor_port)),
                },
                runs,
            )
        name = f"64-byte ping-pong, {round_trips:,} round trips, raw sockets"
        socat_cost = statistics.median(seconds["socat"]) - statistics.median(seconds["direct"])
        # What each variant adds to a round trip, in µs, and the most it may add.
        allowed = {"recording": socat_cost / round_trips * 1e6, "replay": 8.0}
        goals = {
            "recording": ("adds ≤ socat's cost", lambda x: True),
            "replay": ("adds ≤ 8 µs per round trip", lambda x: True),
        }
        report(
            name, seconds, work=round_trips, unit="round trips/s", baseline="direct", goals=goals
        )
        RESULTS[-1].note = "no tcpcassette: any server on a thread of the client's process"
        for r in RESULTS[-5:]:
            if r.variant in allowed:
                added = statistics.median(seconds[r.variant]) - statistics.median(seconds["direct"])
                added_us = added / round_trips * 1e6
                r.met = added_us <= allowed[r.variant]
                r.note = (
                    f"adds {added_us:.1f} µs per round trip; socat adds "
                    f"{socat_cost / round_trips * 1e6:.1f} µs"
                )
    finally:
        server.stop()


@contextlib.contextmanager
def in_process_echo() -> Iterator[int]:
    """The floor for any replay server inside the client's process: a bare asyncio
    echo on a thread of its own, so each round trip crosses between threads."""

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)  # type: ignore[attr-defined]

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(
        loop.create_server(Echo, "127.0.0.1", 0), loop
    ).result()
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def bulk(tmp: Path, *, size: int, runs: int) -> None:
    block = bytes(range(256)) * 1024  # 256 KiB

    def sender(conn: socket.socket) -> None:
        conn.recv(16)
        for _ in range(size // len(block)):
            conn.sendall(block)
        conn.shutdown(socket.SHUT_WR)

    server = servers.ThreadedServer(sender)

    def work(port: int) -> None:
        got = 0
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"go")
            while chunk := s.recv(1 << 20):
                got += len(chunk)
        if got != size:
            raise AssertionError(f"received {got} of {size}")

    try:
        with use_cassette("bulk", record_mode="all", cassette_dir=tmp):
            work(server.port)

        def record_transfer_only() -> float:
            with use_cassette("scratch", record_mode="all", cassette_dir=tmp):
                return timed(lambda: work(server.port))

        seconds = interleave(
            {
                "direct": lambda: timed(lambda: work(server.port)),
                "recording": lambda: timed(lambda: _record(tmp, work, server.port)),
                "recording, transfer only": record_transfer_only,
                "replay": lambda: timed(lambda: _replay(tmp, "bulk", work, server.port)),
            },
            runs,
        )
        report(
            f"{size >> 20} MiB one-way bulk in 256 KiB writes",
            seconds,
            work=size / 2**20,
            unit="MiB/s",
            baseline="direct",
            goals={
                "recording": ("≥ 0.5× direct", lambda x: x >= 0.5),
                "recording, transfer only": ("≥ 0.5× direct", lambda x: x >= 0.5),
                "replay": ("≥ 0.8× direct", lambda x: x >= 0.8),
            },
        )
        RESULTS[-3].note = "includes saving the cassette to disk, fsynced"
        RESULTS[-2].note = "the proxy alone: the block's saving left out"
        RESULTS[-1].note = "includes loading the cassette from disk"
    finally:
        server.stop()
        (tmp / "bulk.msgpack").unlink(missing_ok=True)
        (tmp / "scratch.msgpack").unlink(missing_ok=True)


def http_peers(tmp: Path, *, requests_count: int, runs: int) -> None:
    import requests

    server = CherootServer()
    headers = {"User-Agent": "tcpcassette-bench", "Accept-Encoding": "identity"}

    def work(port: int) -> None:
        with requests.Session() as session:
            for i in range(requests_count):
                resp = session.get(f"http://127.0.0.1:{port}/kib?i={i}", headers=headers)
                if len(resp.content) != 1024:
                    raise AssertionError("wrong body")

    name = f"requests → cheroot, {requests_count:,} GETs of 1 KiB"
    variants: dict[str, Callable[[], float]] = {
        "direct": lambda: timed(lambda: work(server.port)),
        "tcpcassette record": lambda: timed(lambda: _record(tmp, work, server.port)),
        "tcpcassette replay": lambda: timed(lambda: _replay(tmp, "http", work, server.port)),
        RAW_REPLAY: lambda: timed(lambda: _replay(tmp, "http", work, server.port, protocol="raw")),
    }
    try:
        with use_cassette("http", record_mode="all", cassette_dir=tmp):
            work(server.port)
        try:
            import vcr

            def vcr_record() -> None:
                path = tmp / "vcr-scratch.yaml"
                path.unlink(missing_ok=True)
                with vcr.use_cassette(str(path), record_mode="all"):
                    work(server.port)

            def vcr_replay() -> None:
                with vcr.use_cassette(str(tmp / "vcr.yaml"), record_mode="none"):
                    work(server.port)

            with vcr.use_cassette(str(tmp / "vcr.yaml"), record_mode="all"):
                work(server.port)
            variants["vcrpy record"] = lambda: timed(vcr_record)
            variants["vcrpy replay"] = lambda: timed(vcr_replay)
        except Exception as exc:  # a peer that cannot run gets a row saying why
            failed(name, "vcrpy", f"{type(exc).__name__}: {exc}")
        seconds = interleave(variants, runs)
        report(
            name,
            seconds,
            work=requests_count,
            unit="requests/s",
            baseline="direct",
            goals={"tcpcassette replay": ("≤ 1.2× direct's time", lambda x: x >= 1 / 1.2)},
        )
        relative(
            name, PROTOCOL_VS_RAW, seconds, "tcpcassette replay", RAW_REPLAY, WITHIN_10_PERCENT
        )
        if "vcrpy replay" in seconds:
            speedup = [
                v / t
                for v, t in zip(seconds["vcrpy replay"], seconds["tcpcassette replay"], strict=True)
            ]
            RESULTS.append(
                Result(
                    name,
                    "tcpcassette replay vs vcrpy replay",
                    "× faster",
                    speedup,
                    speedup,
                    "≥ 5× faster",
                    statistics.median(speedup) >= 5,
                )
            )
    finally:
        server.stop()


def mocket_peer(tmp: Path, *, round_trips: int, runs: int) -> None:
    import redis

    name = f"redis-py, {round_trips:,} round trips: tcpcassette vs mocket"
    server = RedisServer()
    expected = [f"value:{i}".encode() for i in range(round_trips // 2)]

    def work(port: int) -> list[object]:
        r = redis.Redis(host="127.0.0.1", port=port, **redis_client_options())
        out = []
        for i in range(round_trips // 2):
            r.set(f"key:{i}", f"value:{i}")
            out.append(r.get(f"key:{i}"))
        r.close()
        return out

    checks: dict[str, bool] = {}

    def checked(variant: str, func: Callable[[], list[object]]) -> float:
        started = time.perf_counter()
        out = func()
        elapsed = time.perf_counter() - started
        checks[variant] = checks.get(variant, True) and out == expected
        return elapsed

    try:
        from mocket import Mocketizer

        def tc_record() -> list[object]:
            with use_cassette("mk-scratch", record_mode="all", cassette_dir=tmp):
                return work(server.port)

        def tc_replay() -> list[object]:
            with use_cassette("mk", cassette_dir=tmp):
                return work(server.port)

        def mocket_record() -> list[object]:
            fresh = Path(tempfile.mkdtemp(dir=tmp))
            with Mocketizer(truesocket_recording_dir=str(fresh)):
                return work(server.port)

        def mocket_replay() -> list[object]:
            with Mocketizer(truesocket_recording_dir=str(tmp / "mocket")):
                return work(server.port)

        with use_cassette("mk", record_mode="all", cassette_dir=tmp):
            work(server.port)
        (tmp / "mocket").mkdir()
        with Mocketizer(truesocket_recording_dir=str(tmp / "mocket")):
            work(server.port)
        seconds = interleave(
            {
                "tcpcassette record": lambda: checked("tcpcassette record", tc_record),
                "mocket record": lambda: checked("mocket record", mocket_record),
                "tcpcassette replay": lambda: checked("tcpcassette replay", tc_replay),
                "mocket replay": lambda: checked("mocket replay", mocket_replay),
            },
            runs,
        )
        report(name, seconds, work=round_trips, unit="ops/s", baseline="mocket record")
        for r in RESULTS[-4:]:
            r.note = "replies correct" if checks.get(r.variant) else "WRONG replies"
        faster = [
            m / t
            for m, t in zip(seconds["mocket record"], seconds["tcpcassette record"], strict=True)
        ]
        RESULTS.append(
            Result(
                name,
                "tcpcassette record vs mocket record",
                "× faster",
                faster,
                faster,
                "≥ 100× faster",
                statistics.median(faster) >= 100,
            )
        )
        replay = [
            t / m
            for t, m in zip(seconds["tcpcassette replay"], seconds["mocket replay"], strict=True)
        ]
        RESULTS.append(
            Result(
                name,
                "tcpcassette replay time / mocket replay time",
                "ratio",
                replay,
                replay,
                "≤ 2×",
                statistics.median(replay) <= 2,
            )
        )
    except Exception as exc:
        failed(name, "mocket", f"{type(exc).__name__}: {exc}")
    finally:
        server.stop()


def codec(tmp: Path, *, runs: int, scale: float) -> None:
    for count, size, label in (
        (int(100_000 * scale), 100, "100 B"),
        (max(2, int(100 * scale)), 1 << 20, "1 MiB"),
    ):
        codec_case(tmp, f"cassette save and load: {count:,} events of {label}", count, size, runs)


def codec_case(tmp: Path, name: str, count: int, size: int, runs: int) -> None:
    payload = [b"x" * size for _ in range(count)]
    cassette = tcpcassette.Cassette(
        connections=[
            Connection(
                target="h:1",
                events=tuple(
                    (ClientData if i % 2 else ServerData)(data=p, time=i * 1e-6)
                    for i, p in enumerate(payload)
                ),
            )
        ]
    )
    raw_doc = {"connections": [{"events": [[i % 2, i * 1e-6, p] for i, p in enumerate(payload)]}]}
    path, raw_path = tmp / "codec.msgpack", tmp / "raw.msgpack"

    def raw_save() -> None:
        # As durable as a cassette save: written, flushed and fsynced.
        with open(raw_path, "wb") as f:
            f.write(msgpack.packb(raw_doc, use_bin_type=True))
            f.flush()
            os.fsync(f.fileno())

    cassette.save(path)
    raw_save()
    seconds = interleave(
        {
            "raw msgpack save (fsynced)": lambda: timed(raw_save),
            "tcpcassette save": lambda: timed(lambda: cassette.save(path)),
            "raw msgpack load": lambda: timed(
                lambda: msgpack.unpackb(raw_path.read_bytes(), raw=False)
            ),
            "tcpcassette load": lambda: timed(lambda: tcpcassette.load(path)),
        },
        runs,
    )
    goals = {
        "save": ("≥ 0.8× raw msgpack", lambda x: x >= 0.8),
        "load": ("≥ 0.5× raw msgpack", lambda x: x >= 0.5),
    }
    for op in ("save", "load"):
        baseline = "raw msgpack save (fsynced)" if op == "save" else "raw msgpack load"
        report(
            name,
            {k: v for k, v in seconds.items() if op in k},
            work=count,
            unit="events/s",
            baseline=baseline,
            goals={f"tcpcassette {op}": goals[op]},
        )
    peaks = [fresh_load(path)[1] / path.stat().st_size for _ in range(min(runs, 3))]
    RESULTS.append(
        Result(
            name,
            "load: peak RSS above idle, as a multiple of the file",
            "× file",
            peaks,
            [],
            "≤ 4×",
            statistics.median(peaks) <= 4,
            note="each load in a fresh process",
        )
    )
    path.unlink()
    raw_path.unlink()


TINY_LOAD = """
import resource, sys, time
sys.path.insert(0, sys.argv[2])
import tcpcassette

def peak():
    # The peak of this process's own memory: VmHWM is made anew at exec, while
    # ru_maxrss can carry the peak of the process that started this one.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

idle = peak()
started = time.perf_counter()
tcpcassette.load(sys.argv[1], max_bytes=1 << 40)
seconds = time.perf_counter() - started
print(seconds, peak() - idle)
"""


def fresh_load(path: Path) -> tuple[float, float]:
    """Seconds to load ``path`` in a fresh process, and its peak RSS above idle in bytes."""
    out = subprocess.run(
        [sys.executable, "-c", TINY_LOAD, str(path), str(ROOT)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1])


def tiny_events(tmp: Path, *, count: int, runs: int) -> None:
    """Loading a file of tiny events (one-byte chunks, whole-number times), each load in
    a fresh process, so that its peak memory above idle can be read."""
    path = tmp / "tiny.msgpack"
    packer = msgpack.Packer(use_bin_type=True)
    pack = packer.pack
    with path.open("wb") as f:
        f.write(packer.pack_map_header(4) + pack("format") + pack("tcpcassette"))
        f.write(pack("version") + pack(1) + pack("hosts") + pack({}) + pack("connections"))
        f.write(packer.pack_array_header(1) + packer.pack_map_header(3) + pack("target"))
        f.write(pack("h:1") + pack("start") + pack(0.0) + pack("events"))
        f.write(packer.pack_array_header(count))
        block = b"".join(pack(["client" if i % 2 else "server", 0, b"x"]) for i in range(1000))
        for _ in range(count // 1000):
            f.write(block)
    size = path.stat().st_size
    seconds: list[float] = []
    peaks: list[float] = []
    for _ in range(runs):
        took, peak = fresh_load(path)
        seconds.append(took)
        peaks.append(peak / size)
    name = f"loading {count:,} tiny events ({size / (1 << 20):.0f} MiB file)"
    RESULTS.append(Result(name, "load time", "s", seconds, []))
    RESULTS.append(
        Result(
            name,
            "peak RSS above idle, as a multiple of the file",
            "× file",
            peaks,
            [],
            "≤ 4×",
            statistics.median(peaks) <= 4,
        )
    )
    path.unlink()


def enter_exit(tmp: Path, *, iterations: int, runs: int) -> None:
    server = servers.ThreadedServer(servers.upper_echo)
    tcpcassette.Cassette(
        connections=[
            Connection(
                target=f"127.0.0.1:{server.port}",
                events=(ClientData(data=b"ping"), ServerData(data=b"PING")),
            )
        ]
    ).save(tmp / "one.msgpack")

    def test_body() -> None:
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(b"ping")
            servers.recv_exactly(s, 4)

    def with_cassette() -> None:
        for _ in range(iterations):
            with use_cassette("one", cassette_dir=tmp):
                test_body()

    def without() -> None:
        for _ in range(iterations):
            test_body()

    try:
        seconds = interleave(
            {
                "without a cassette": lambda: timed(without),
                "with use_cassette": lambda: timed(with_cassette),
            },
            runs,
        )
    finally:
        server.stop()
    per_test = {k: [s / iterations * 1000 for s in v] for k, v in seconds.items()}
    added = [
        w - o
        for w, o in zip(per_test["with use_cassette"], per_test["without a cassette"], strict=True)
    ]
    name = "use_cassette enter + exit around a one-connection replay"
    RESULTS.append(
        Result(name, "without a cassette", "ms per test", per_test["without a cassette"])
    )
    RESULTS.append(Result(name, "with use_cassette", "ms per test", per_test["with use_cassette"]))
    RESULTS.append(
        Result(
            name,
            "added by use_cassette",
            "ms per test",
            added,
            [],
            "≤ 5 ms",
            statistics.median(added) <= 5,
        )
    )


def view_opening(tmp: Path, *, messages: int, runs: int) -> None:
    """``tcpcassette view`` of a large cassette: rendering it, and chromium opening it."""
    name = f"view of a {messages:,}-message Redis cassette"
    events: list[ClientData | ServerData] = []
    for i in range(messages // 2):
        key = f"key:{i}".encode()
        command = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)
        events.append(ClientData(data=command, time=i * 0.0002))
        events.append(ServerData(data=b"$5\r\nvalue\r\n", time=i * 0.0002 + 0.0001))
    cassette = tcpcassette.Cassette(
        connections=[Connection(target="127.0.0.1:6379", events=tuple(events))]
    )
    page = tmp / "view.html"
    empty = tmp / "empty.html"
    empty.write_text("<!DOCTYPE html><title>empty</title>")
    rendered = interleave(
        {"render_view": lambda: timed(lambda: page.write_text(render_view(cassette, title="b")))},
        runs,
    )
    RESULTS.append(
        Result(
            name,
            "render_view",
            "s",
            rendered["render_view"],
            note=f"{page.stat().st_size / 1e6:.1f} MB of HTML",
        )
    )
    browser = shutil.which("chromium")
    if browser is None:
        failed(name, "chromium opens it", "chromium is not installed")
        return

    def opening(target: Path) -> float:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"]
        profile = tempfile.mkdtemp(dir=tmp)
        return timed(
            lambda: subprocess.run(
                [*command, f"--user-data-dir={profile}", target.as_uri()],
                capture_output=True,
                check=True,
                timeout=300,
            )
        )

    seconds = interleave(
        {"an empty page": lambda: opening(empty), "the view": lambda: opening(page)}, runs
    )
    RESULTS.append(Result(name, "chromium opens an empty page", "s", seconds["an empty page"]))
    RESULTS.append(Result(name, "chromium opens the view", "s", seconds["the view"]))
    added = [v - e for v, e in zip(seconds["the view"], seconds["an empty page"], strict=True)]
    RESULTS.append(
        Result(name, "opening time the view adds", "s", added, note="measured, not a goal")
    )


def exchange_scaling(tmp: Path, *, sizes: tuple[int, int], runs: int) -> None:
    """matching="exchange": requests per second at two sizes; linear work keeps the rate."""
    port = offered_port()  # nothing listens there: replay never reaches the network

    def cassette_of(count: int) -> str:
        events: list[ClientData | ServerData] = []
        for i in range(count):
            events.append(ClientData(data=b"GET key%d\n" % i, time=i * 1e-6))
            events.append(ServerData(data=b"VALUE %d\n" % i, time=i * 1e-6))
        name = f"exchange{count}"
        tcpcassette.Cassette(
            connections=[Connection(target=f"127.0.0.1:{port}", events=tuple(events))]
        ).save(tmp / f"{name}.msgpack")
        return name

    def play(count: int, name: str) -> None:
        with use_cassette(name, cassette_dir=tmp, matching="exchange"):
            with socket.create_connection(("127.0.0.1", port)) as s:
                stream = s.makefile("rwb")
                for i in range(count):
                    stream.write(b"GET key%d\n" % i)
                    stream.flush()
                    stream.readline()

    small, large = sizes
    names = {count: cassette_of(count) for count in sizes}
    seconds = interleave(
        {
            f"{small:,} requests": lambda: timed(lambda: play(small, names[small])) / small,
            f"{large:,} requests": lambda: timed(lambda: play(large, names[large])) / large,
        },
        runs,
    )
    report(
        'matching="exchange", requests in one connection, each answered from the book',
        seconds,
        work=1,
        unit="requests/s",
        baseline=f"{small:,} requests",
        goals={f"{large:,} requests": (f"≥ 0.7× the rate at {small:,}", lambda x: x >= 0.7)},
    )


def memory(tmp: Path, *, size: int, runs: int) -> None:
    peaks: dict[str, list[float]] = {"recording": [], "replay": []}
    for _ in range(runs):
        transfer = record_and_replay(tmp, size)
        if transfer.replayed != transfer.recorded:
            raise AssertionError("the replayed transfer differs from the recording")
        peaks["recording"].append(transfer.recording_peak / size)
        peaks["replay"].append(transfer.replay_peak / size)
    name = f"peak RSS above idle while moving {size >> 20} MiB, as a multiple of the payload"
    for variant, values in peaks.items():
        RESULTS.append(
            Result(
                name, variant, "× payload", values, [], "≤ 1.5×", statistics.median(values) <= 1.5
            )
        )
    (tmp / "big.msgpack").unlink(missing_ok=True)


def concurrency(tmp: Path, *, sizes: tuple[int, int], runs: int) -> None:
    async def clients(port: int, count: int) -> int:
        replies = await servers.many_line_clients(port, count)
        return sum(r == b"CLIENT %d\n" % i for i, r in enumerate(replies))

    async def record(count: int) -> int:
        server = await asyncio.start_server(servers.upper_line, "127.0.0.1", 0, backlog=4096)
        port = server.sockets[0].getsockname()[1]
        with use_cassette(f"conc{count}", record_mode="all", cassette_dir=tmp):
            await clients(port, count)
        server.close()
        await server.wait_closed()
        return port

    ports = {n: asyncio.run(record(n)) for n in sizes}
    correct: dict[int, bool] = {}

    def replay(n: int) -> float:
        with use_cassette(f"conc{n}", cassette_dir=tmp):
            started = time.perf_counter()
            ok = asyncio.run(clients(ports[n], n))
            elapsed = time.perf_counter() - started
        correct[n] = correct.get(n, True) and ok == n
        return elapsed

    async def plain(count: int) -> float:
        server = await asyncio.start_server(servers.upper_line, "127.0.0.1", 0, backlog=4096)
        started = time.perf_counter()
        ok = await clients(server.sockets[0].getsockname()[1], count)
        elapsed = time.perf_counter() - started
        server.close()
        await server.wait_closed()
        if ok != count:
            raise AssertionError("the plain server answered wrongly")
        return elapsed

    small, large = sizes
    seconds = interleave(
        {
            f"{small} connections": lambda: replay(small),
            f"{large} connections": lambda: replay(large),
            f"plain asyncio server, {small}": lambda: asyncio.run(plain(small)),
            f"plain asyncio server, {large}": lambda: asyncio.run(plain(large)),
        },
        runs,
    )
    growth = [
        b / a
        for a, b in zip(
            seconds[f"{small} connections"], seconds[f"{large} connections"], strict=True
        )
    ]
    name = f"{small} vs {large} concurrent connections replayed"
    for variant, values in seconds.items():
        if variant.startswith("plain"):
            RESULTS.append(Result(name, variant, "s", values, note="no tcpcassette, for scale"))
            continue
        n = int(variant.split()[0])
        RESULTS.append(
            Result(
                name, variant, "s", values, note="all served correctly" if correct[n] else "ERRORS"
            )
        )
    RESULTS.append(
        Result(
            name,
            f"time for {large} / time for {small}",
            "ratio",
            growth,
            growth,
            f"≤ {large // small}× (linear)",
            statistics.median(growth) <= large / small and all(correct.values()),
        )
    )
    plain_growth = [
        b / a
        for a, b in zip(
            seconds[f"plain asyncio server, {small}"],
            seconds[f"plain asyncio server, {large}"],
            strict=True,
        )
    ]
    RESULTS.append(
        Result(
            name,
            f"plain asyncio server: time for {large} / time for {small}",
            "ratio",
            plain_growth,
            plain_growth,
        )
    )


# -- output ----------------------------------------------------------------------------------


def fmt(value: float) -> str:
    if value != value:  # NaN
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def table() -> str:
    lines = [
        "| workload | variant | median | min–max | ratio (median, same run) | goal | |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in RESULTS:
        spread = f"{fmt(min(r.values))}–{fmt(max(r.values))}" if r.values else "—"
        median = f"{fmt(r.median)} {r.unit}" if r.values else "—"
        verdict = {True: "met", False: "missed", None: ""}[r.met]
        ratio = fmt(r.ratio) + "×" if r.ratios else ""
        extra = f" ({r.note})" if r.note else ""
        lines.append(
            f"| {r.workload} | {r.variant}{extra} | {median} | {spread} | {ratio} | "
            f"{r.goal} | {verdict} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 runs: a smoke run")
    parser.add_argument("--runs", type=int, help="runs per workload (default 5; --quick: 2)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="WORKLOAD",
        help=(
            "run only these: redis ping-pong tls bulk http mocket codec tiny-events "
            "enter/exit exchange memory concurrency view plugin"
        ),
    )
    args = parser.parse_args()
    quick = args.quick
    runs = args.runs or (2 if quick else 5)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tcpcassette-bench-") as tmp_name:
        tmp = Path(tmp_name)
        steps: list[tuple[str, Callable[[], None]]] = [
            (
                "redis",
                lambda: redis_workloads(
                    tmp,
                    round_trips=200 if quick else 10_000,
                    pipelines=1 if quick else 10,
                    runs=runs,
                ),
            ),
            ("ping-pong", lambda: ping_pong(tmp, round_trips=500 if quick else 20_000, runs=runs)),
            (
                "tls",
                lambda: tls_workloads(
                    tmp,
                    round_trips=100 if quick else 2_000,
                    requests_count=20 if quick else 300,
                    runs=runs,
                ),
            ),
            ("bulk", lambda: bulk(tmp, size=(16 if quick else 1024) << 20, runs=runs)),
            ("http", lambda: http_peers(tmp, requests_count=50 if quick else 1000, runs=runs)),
            ("mocket", lambda: mocket_peer(tmp, round_trips=4 if quick else 1000, runs=runs)),
            ("codec", lambda: codec(tmp, runs=runs, scale=0.02 if quick else 1.0)),
            (
                "tiny-events",
                lambda: tiny_events(tmp, count=30_000 if quick else 3_000_000, runs=runs),
            ),
            ("enter/exit", lambda: enter_exit(tmp, iterations=20 if quick else 200, runs=runs)),
            (
                "exchange",
                lambda: exchange_scaling(
                    tmp, sizes=(200, 1_600) if quick else (2_000, 16_000), runs=runs
                ),
            ),
            (
                "memory",
                lambda: memory(tmp, size=(16 if quick else 200) << 20, runs=1 if quick else 3),
            ),
            (
                "concurrency",
                lambda: concurrency(tmp, sizes=(10, 100) if quick else (100, 1000), runs=runs),
            ),
            ("view", lambda: view_opening(tmp, messages=10_000, runs=runs)),
            ("plugin", lambda: plugin_start(tmp, starts=2 if quick else 4, runs=runs)),
        ]
        for label, step in steps:
            if args.only and label not in args.only:
                continue
            step_started = time.perf_counter()
            try:
                step()
            except Exception as exc:
                failed(label, "(all)", f"{type(exc).__name__}: {exc}")
            print(f"  {label}: {time.perf_counter() - step_started:.1f} s", file=sys.stderr)
    print(table())
    meta = {
        "quick": quick,
        "runs": runs,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cores": len(__import__("os").sched_getaffinity(0)),
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "digest": hashlib.sha256(table().encode()).hexdigest()[:12],
    }
    args.output.write_text(
        json.dumps(
            {
                "meta": meta,
                "results": [asdict(r) | {"median": r.median, "ratio": r.ratio} for r in RESULTS],
            },
            indent=1,
            default=str,
        )
    )
    print(f"\n{len(RESULTS)} rows in {meta['seconds']} s; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
