"""The ``tcpcassette`` command: a thin shell over the library's own API.

Exit status: 0 success, 1 a replay mismatch or failed check, 2 bad usage or
an unreadable cassette (one line on stderr; ``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields
from pathlib import Path

from . import _standalone as standalone
from ._cassette import Cassette, load
from ._core.diff import (
    TIMING_TOLERANCE,
    CassetteDiff,
    diff_cassettes,
    diff_lines,
    textconv_lines,
)
from ._core.diff_view import render_diff
from ._core.errors import CassetteError, CassetteFormatError, ReplayError
from ._core.faults import FAULT_TYPES, RANDOM_SLICE_MAX, Fault
from ._core.learn import learn
from ._core.noise import NoiseMode
from ._core.render import printable, show_bytes
from ._core.targets import format_target
from ._core.text import TEXT_FORMAT, export_text, import_text
from ._core.transcript import format_transcript
from ._core.view import render_view
from ._demo import run_demo
from ._git import ATTRIBUTES_LINE, TEXTCONV_KEY, git_setup
from ._io.storage import write_atomically
from ._standalone import Status
from ._version import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


CA_FILE_HELP = (
    "write the test CA's certificate here, for TLS clients to trust (needs the tls extra)"
)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tcpcassette",
        description="Read, edit and demonstrate tcpcassette cassettes.",
        epilog="Example: tcpcassette show cassettes/redis_roundtrip.msgpack",
    )
    parser.add_argument("--version", action="version", version=f"tcpcassette {__version__}")
    debug_help = "show tracebacks on errors (the exit status stays the same)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser(
        "demo",
        help="record, replay and break an exchange with a server of its own",
        description="Starts a small server, records an exchange with it, stops it, replays "
        "the exchange, then replays it with a reset injected. Needs no network.",
        epilog="Example: tcpcassette demo --dir ./cassettes",
    )
    demo.add_argument("--dir", type=Path, help="keep the demo cassette here (default: a temp dir)")
    demo.add_argument(
        "--force", action="store_true", help="replace a demo.msgpack that --dir holds already"
    )

    show = sub.add_parser(
        "show",
        help="print a readable transcript of a cassette",
        description="Connections are numbered from 0 and events from 1: the numbers "
        "inject and remove take.",
        epilog="Example: tcpcassette show cassettes/x.msgpack --connection 0 --hex",
    )
    show.add_argument("path", type=Path)
    show.add_argument("--connection", type=int, action="append", help="only this connection")
    payload = show.add_mutually_exclusive_group()
    payload.add_argument("--hex", action="store_const", const="hex", dest="mode")
    payload.add_argument("--text", action="store_const", const="text", dest="mode")
    show.add_argument(
        "--full", action="store_true", help="show long payloads whole, and every message of a chunk"
    )
    _add_framing(show, "number framed messages instead of recorded chunks")
    show.add_argument("--color", choices=["auto", "always", "never"], default="auto")

    inject = sub.add_parser(
        "inject",
        help="place a fault in a cassette",
        description="Faults: " + ", ".join(_FAULTS) + ".",
        epilog="Example: tcpcassette inject cassettes/x.msgpack reset --connection 0 --after 3",
    )
    inject.add_argument("path", type=Path)
    inject.add_argument("fault", choices=sorted(_FAULTS))
    inject.add_argument("--connection", type=int, required=True)
    inject.add_argument("--after", type=int, default=0, help="after this event (0: at connect)")
    inject.add_argument("--seconds", type=float, help="timeout, delay")
    inject.add_argument(
        "--nbytes", type=int, help="truncate, corrupt; slice: only the next N server bytes"
    )
    inject.add_argument("--then", choices=["close", "reset"], help="truncate")
    inject.add_argument(
        "--size",
        type=_slice_size,
        help=f"slice: bytes per piece, or random (1 to {RANDOM_SLICE_MAX}, drawn from --seed)",
    )
    inject.add_argument("--delay", type=float, help="slice; close: seconds before the FIN")
    inject.add_argument("--seed", type=int, help="corrupt, slice --size random")
    inject.add_argument("--bytes-per-second", type=int, help="bandwidth")
    inject.add_argument("--times", type=int, help="fire on the first N plays only")
    _add_framing(inject, "count --after in framed messages (as show --framing numbers them)")
    inject.add_argument("-o", "--output", type=Path, help="write here instead of in place")

    export = sub.add_parser(
        "export",
        help="write a cassette as editable JSON text",
        description="Printable payloads become text, others hex; import turns it back "
        "into the same bytes.",
        epilog="Example: tcpcassette export cassettes/x.msgpack -o x.json",
    )
    export.add_argument("path", type=Path)
    export.add_argument("-o", "--output", type=Path, help="write here (default: stdout)")

    import_ = sub.add_parser(
        "import",
        help="turn the JSON text form back into a cassette",
        epilog="Example: tcpcassette import x.json -o cassettes/x.msgpack",
    )
    import_.add_argument("file", type=Path)
    import_.add_argument(
        "-o", "--output", type=Path, help="cassette to write (default: FILE with .msgpack)"
    )
    import_.add_argument(
        "--force", action="store_true", help="replace the default output if it exists already"
    )

    learn = sub.add_parser(
        "learn",
        help="store what differs between two recordings of one test as volatile",
        description="Pairs the connections and client messages of CASSETTE and "
        "SECOND_RECORDING (another recording of the same test, made in another run) and "
        "stores every span where they differ in CASSETTE as volatile: replay then "
        "tolerates those bytes, and writes the live client's value where the server "
        "repeats the recorded one.",
        epilog="Example: tcpcassette learn cassettes/x.msgpack /tmp/x-again.msgpack",
    )
    learn.add_argument("path", type=Path, metavar="CASSETTE")
    learn.add_argument("second", type=Path, metavar="SECOND_RECORDING")
    learn.add_argument("-o", "--output", type=Path, help="write here instead of in place")

    edit = sub.add_parser(
        "edit",
        help="edit a cassette in $VISUAL or $EDITOR",
        description="Opens the JSON text form; the cassette is replaced only by a valid edit.",
        epilog="Example: EDITOR=nano tcpcassette edit cassettes/x.msgpack",
    )
    edit.add_argument("path", type=Path)

    _add_diff_parsers(sub)

    rec = sub.add_parser(
        "record",
        help="run a recording proxy for any client",
        description="Listens (on loopback by default), forwards each connection to the target "
        "and records it. Ctrl-C or SIGTERM stops and saves.",
        epilog="Example: tcpcassette record redis.msgpack --target localhost:6379 "
        "--listen 127.0.0.1:7000",
    )
    rec.add_argument("path", type=Path)
    rec.add_argument("--target", required=True, help="HOST:PORT of the real server")
    rec.add_argument(
        "--listen",
        default="127.0.0.1:0",
        help="HOST:PORT to listen on (default: an ephemeral port on 127.0.0.1)",
    )
    rec.add_argument("--ca-file", type=Path, help=CA_FILE_HELP)
    rec.add_argument(
        "--upstream-ca",
        type=Path,
        help="CA file to verify a TLS target's certificate against (default: the system's)",
    )
    keep = rec.add_mutually_exclusive_group()
    keep.add_argument("--append", action="store_true", help="keep the cassette's connections")
    keep.add_argument("--force", action="store_true", help="replace a cassette that exists already")

    rep = sub.add_parser(
        "replay",
        help="run a replay server for any client",
        description="Serves the recorded connections; mismatches are printed as they happen "
        "and make the exit status 1. Ctrl-C or SIGTERM stops.",
        epilog="Example: tcpcassette replay redis.msgpack --listen 127.0.0.1:7000",
    )
    rep.add_argument("path", type=Path)
    rep.add_argument("--target", help="which recorded HOST:PORT to serve (if several)")
    rep.add_argument(
        "--noise",
        choices=["auto", "learned", "off"],
        default="auto",
        help="differences between runs to tolerate: auto (echoed and random-looking values, "
        "learned spans; the default), learned (learned spans only) or off (exact bytes)",
    )
    rep.add_argument(
        "--listen",
        default="127.0.0.1:0",
        help="HOST:PORT to listen on (default: an ephemeral port on 127.0.0.1)",
    )
    rep.add_argument("--ca-file", type=Path, help=CA_FILE_HELP)
    rep.add_argument(
        "--exit-when-played",
        action="store_true",
        help="stop once every recorded connection was played",
    )

    remove = sub.add_parser(
        "remove",
        help="remove one event from a cassette",
        epilog="Example: tcpcassette remove cassettes/x.msgpack --connection 0 --event 4",
    )
    remove.add_argument("path", type=Path)
    remove.add_argument("--connection", type=int, required=True)
    remove.add_argument("--event", type=int, required=True)
    remove.add_argument("-o", "--output", type=Path, help="write here instead of in place")
    _add_view(sub)
    for command in sub.choices.values():
        # --debug after the command too; SUPPRESS keeps one given before it.
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help
        )
    return parser


def _add_diff_parsers(sub: argparse._SubParsersAction[_Parser]) -> None:
    diff = sub.add_parser(
        "diff",
        help="show what differs between two cassettes, message by message, decoded",
        description="Pairs the connections of RECORDED and NEW by target and compares their "
        "messages as each protocol frames and decodes them, each direction on its own. A "
        "client message may differ as the noise rules allow (--noise); a server's reply "
        "where it echoes such a value, or holds what a server makes anew each run (a Date "
        "header, a connection id, a nonce). "
        "Exit status: 0 no differences, 1 differences, 2 bad input.",
        epilog="Example: tcpcassette diff cassettes/x.msgpack /tmp/x-again.msgpack",
    )
    diff.add_argument("recorded", type=Path, metavar="RECORDED")
    diff.add_argument("new", type=Path, metavar="NEW")
    diff.add_argument(
        "--timing",
        action="store_true",
        help=f"also report messages whose time moved by more than {TIMING_TOLERANCE}s",
    )
    diff.add_argument(
        "--noise",
        choices=[m.value for m in NoiseMode],
        default=NoiseMode.LEARNED.value,
        help="what a client message may differ in, as replay's noise= (default learned: "
        "learned spans and protocol fields; auto: what replay tolerates, echoes and "
        "random-looking values too, as --tcpcassette-verify compares; off: every byte)",
    )
    diff.add_argument(
        "--html",
        action="store_true",
        help="write the differences as an HTML page: both conversations side by side",
    )
    diff.add_argument(
        "-o",
        "--output",
        help="with --html: write here ('-' for stdout; default: NEW's name, .diff.html)",
    )
    textconv = sub.add_parser(
        "textconv",
        help="print a cassette as stable text, one line per message (for git diff)",
        description="What git-setup makes git diff and git log -p show for a cassette: "
        "decoded, one line per message, with no times, the same for the same cassette.",
        epilog="Example: tcpcassette textconv cassettes/x.msgpack",
    )
    textconv.add_argument("path", type=Path)
    git_setup = sub.add_parser(
        "git-setup",
        help="make git diff show cassettes decoded (.gitattributes and the repository's config)",
        description=f"Adds {ATTRIBUTES_LINE!r} to the repository's .gitattributes and sets "
        f"{TEXTCONV_KEY} in its .git/config; what is there already is left alone.",
        epilog="Example: tcpcassette git-setup .",
    )
    git_setup.add_argument("repository", type=Path, nargs="?", metavar="PATH")


def _diff_command(args: argparse.Namespace) -> int | None:
    """Run diff, textconv or git-setup; None for another command."""
    if args.command == "diff":
        recorded, new = load(args.recorded), load(args.new)
        result = diff_cassettes(recorded, new, timing=args.timing, mode=NoiseMode(args.noise))
        if args.html:
            _diff_page(args, result, recorded, new)
        elif args.output is not None:
            _say("diff: -o/--output writes the HTML page: add --html")
            return EXIT_USAGE
        else:
            print("\n".join(diff_lines(result)))
        return EXIT_OK if result.equal else EXIT_FAILED
    if args.command == "textconv":
        print("\n".join(textconv_lines(load(args.path))))
        return EXIT_OK
    if args.command == "git-setup":
        for line in git_setup(args.repository):
            print(printable(line))
        return EXIT_OK
    return None


def _diff_page(
    args: argparse.Namespace, result: CassetteDiff, recorded: Cassette, new: Cassette
) -> None:
    page = render_diff(result, recorded, new, title=f"{args.recorded} → {args.new}")
    if args.output == "-":
        sys.stdout.write(page)
        return
    output = Path(args.output) if args.output else args.new.with_suffix(".diff.html")
    write_atomically(output, page.encode())
    what = "no differences" if result.equal else f"{len(result.connections)} connection(s) differ"
    print(printable(f"wrote {output}: the differences from {args.recorded} to {args.new}, {what}"))


def _add_view(sub: argparse._SubParsersAction[_Parser]) -> None:
    view = sub.add_parser(
        "view",
        help="write a cassette as one HTML page: a sequence diagram per connection",
        description="The page is self-contained (no network, one inline script) and opens "
        "from a file in any browser.",
        epilog="Example: tcpcassette view cassettes/x.msgpack -o x.html",
    )
    view.add_argument("path", type=Path)
    view.add_argument(
        "-o", "--output", help="write here ('-' for stdout; default: the cassette's name, .html)"
    )


def _view(args: argparse.Namespace) -> int:
    cassette = load(args.path)
    page = render_view(cassette, title=str(args.path))
    if args.output == "-":
        sys.stdout.write(page)
        return EXIT_OK
    output = Path(args.output) if args.output else args.path.with_suffix(".html")
    write_atomically(output, page.encode())
    count = len(cassette.connections)
    print(printable(f"wrote {output}: the view of {args.path}, {count} connection(s)"))
    return EXIT_OK


def _add_framing(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument(
        "--framing", choices=["raw", "lines", "length-prefixed"], default="raw", help=help
    )


_FAULTS: dict[str, type[Fault]] = {f.kind: f for f in FAULT_TYPES}
#: The inject options that set a fault's parameters (argparse's names).
_FAULT_OPTIONS = ("seconds", "nbytes", "then", "size", "delay", "seed", "bytes_per_second", "times")


def _slice_size(value: str) -> int | str:
    """``--size``: a whole number, or ``random``."""
    if value == "random":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of bytes or random, not {value!r}"
        ) from None


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _fault_from(args: argparse.Namespace) -> Fault:
    cls = _FAULTS[args.fault]
    given = {
        name: getattr(args, name) for name in _FAULT_OPTIONS if getattr(args, name) is not None
    }
    # The fault's own parameters first, then the shared --times.
    params = sorted((f for f in fields(cls) if f.name != "time"), key=lambda f: f.name == "times")
    required = [f.name for f in params if f.default is MISSING and f.default_factory is MISSING]
    unknown = sorted(set(given) - {f.name for f in params})
    missing = [name for name in required if name not in given]
    if unknown or missing:
        takes = ", ".join(_option(f.name) for f in params) or "no options"
        problem = (
            f"does not take {', '.join(_option(o) for o in unknown)}"
            if unknown
            else f"needs {' and '.join(_option(o) for o in missing)}"
        )
        raise CassetteError(
            f"{args.fault} {problem} (it takes {takes}); see tcpcassette inject --help"
        )
    for name, value in given.items():
        if isinstance(value, int) and not -(2**63) <= value < 2**64:
            raise CassetteError(f"{_option(name)} {value} is out of range for a cassette (64 bits)")
    return cls(**given)


def _use_color(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _run(args: argparse.Namespace) -> int:
    found = _diff_command(args)
    if found is not None:
        return found
    if args.command == "demo":
        return run_demo(directory=args.dir, force=args.force)
    if args.command == "show":
        cassette = load(args.path)
        print(
            format_transcript(
                cassette,
                connections=args.connection,
                mode=args.mode or "auto",
                full=args.full,
                color=_use_color(args.color),
                framing=args.framing,
            )
        )
        return EXIT_OK
    if args.command == "inject":
        cassette = load(args.path)
        fault = _fault_from(args)
        cassette.inject(fault, connection=args.connection, after=args.after, framing=args.framing)
        written = cassette.save(args.output)
        print(
            f"{written}: {fault.kind} placed in connection {args.connection} after event "
            f"{args.after}"
        )
        return EXIT_OK
    if args.command == "remove":
        cassette = load(args.path)
        cassette.remove(connection=args.connection, event=args.event)
        written = cassette.save(args.output)
        print(f"{written}: removed event {args.event} of connection {args.connection}")
        return EXIT_OK
    if args.command == "learn":
        return _learn(args)
    if args.command == "export":
        text = export_text(load(args.path))
        if args.output is None:
            sys.stdout.write(text)
        else:
            write_atomically(args.output, text.encode())
        return EXIT_OK
    if args.command == "import":
        return _import(args)
    if args.command == "edit":
        return _edit(args.path)
    if args.command == "record":
        return _record(args)
    if args.command == "replay":
        return _replay(args)
    if args.command == "view":
        return _view(args)
    raise AssertionError(args.command)


def _import(args: argparse.Namespace) -> int:
    output: Path = args.output or args.file.with_suffix(".msgpack")
    replaced = output.exists()
    if replaced and args.output is None and not args.force:
        raise CassetteError(
            f"{output} exists already; importing {args.file} would replace it. Name the "
            "cassette to write with -o, or pass --force to replace it"
        )
    contents = import_text(_read_text(args.file), source=str(args.file))
    Cassette(path=output, connections=contents.connections, hosts=contents.hosts).save()
    what = " (it replaced the file that was there)" if replaced else ""
    print(f"{output}: {len(contents.connections)} connection(s) written{what}")
    return EXIT_OK


#: How replay's hints, written for pytest and use_cassette, read on this command line.
_COMMAND_HINTS = (
    (re.compile(r"--record-mode=all(?: \(or record_mode='all'\))?"), "tcpcassette record --force"),
    (re.compile(r"--record-mode=new_episodes"), "tcpcassette record --append"),
    (re.compile(r"--record-mode=\w+"), "tcpcassette record"),
)


def _for_the_command(text: str) -> str:
    for pattern, instead in _COMMAND_HINTS:
        text = pattern.sub(instead, text)
    return text


def _explained(error: CassetteError, args: argparse.Namespace) -> str:
    """The error's message, with what to do when a command was given the JSON text form."""
    text = str(error)
    if not isinstance(error, CassetteFormatError):
        return text
    for name in ("path", "second"):
        path = getattr(args, name, None)
        if isinstance(path, Path) and _is_text_form(path):
            return (
                f"{path} is the JSON text form of a cassette (what tcpcassette export writes), "
                f"not a cassette; turn it back into one with: tcpcassette import {path} "
                f"-o {path.with_suffix('.msgpack')}"
            )
    return text


def _is_text_form(path: Path) -> bool:
    if not path.is_file():  # a FIFO or a device would be waited on
        return False
    try:
        with path.open("rb") as file:
            head = file.read(4096)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and TEXT_FORMAT.encode() in head


def _read_text(path: Path) -> str:
    if path.exists() and not path.is_file():
        raise CassetteError(
            f"{path}: not a regular file (a FIFO, device or directory); give the path of a "
            "JSON file written by tcpcassette export"
        )
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CassetteError(f"{path}: cannot read ({exc})") from exc


def _edit(path: Path) -> int:
    cassette = load(path)
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.TemporaryDirectory(prefix="tcpcassette-edit-") as tmp:
        draft = Path(tmp) / (path.stem + ".json")
        draft.write_text(export_text(cassette), encoding="utf-8")
        while True:
            status = subprocess.call([*shlex.split(editor), str(draft)])
            if status != 0:
                raise CassetteError(
                    f"{path}: the editor exited with status {status}; the cassette is unchanged"
                )
            try:
                contents = import_text(_read_text(draft), source=str(draft))
                break
            except CassetteError as exc:
                print(f"tcpcassette: {exc}", file=sys.stderr)
                if not _ask("Re-open the editor to fix it? [Y/n] "):
                    print(f"tcpcassette: {path} is unchanged", file=sys.stderr)
                    return EXIT_USAGE
    Cassette(path=path, connections=contents.connections, hosts=contents.hosts).save()
    print(f"{path}: saved {len(contents.connections)} connection(s)")
    return EXIT_OK


def _ask(question: str) -> bool:
    sys.stderr.write(question)
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("", "y", "yes") if answer else False


def _listen_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT``; port 0 means an ephemeral one."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise CassetteError(f"--listen {text!r}: give HOST:PORT, like 127.0.0.1:7000")
    return host, int(port)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        # Not stop.set() here: the handler runs in the main thread, which may be
        # holding the event's own lock inside stop.wait() when the signal comes,
        # and setting it would then wait for that lock forever.
        threading.Thread(target=stop.set, daemon=True).start()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _status_printer() -> Callable[[Status], None]:
    live = sys.stderr.isatty()

    def show(status: Status) -> None:
        if live:
            sys.stderr.write(
                f"\r{status.connections} connection(s), {status.client_bytes} bytes from "
                f"clients, {status.server_bytes} from servers, {status.errors} error(s)  "
            )
            sys.stderr.flush()

    return show


def _ready(what: str) -> Callable[[str, int], None]:
    def ready(host: str, port: int) -> None:
        print(f"{what} listening on {format_target(host, port)} (Ctrl-C to stop)", flush=True)

    return ready


def _write_ca(args: argparse.Namespace) -> None:
    if args.ca_file is not None:
        print(f"TLS clients trust {standalone.write_ca_file(args.ca_file)}", flush=True)


def _record(args: argparse.Namespace) -> int:
    stop = _stop_on_signals()
    _write_ca(args)
    recorded = standalone.record(
        args.path,
        args.target,
        listen=_listen_address(args.listen),
        append=args.append,
        force=args.force,
        stop=stop,
        on_ready=_ready(f"recording {args.target}:"),
        on_status=_status_printer(),
        upstream_ca=args.upstream_ca,
    )
    print(f"\n{recorded.summary}", flush=True)
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    stop = _stop_on_signals()
    _write_ca(args)

    def report(error: CassetteError) -> None:
        _say(_for_the_command(str(error)))

    errors = standalone.replay(
        args.path,
        target=args.target,
        listen=_listen_address(args.listen),
        stop=stop,
        exit_when_played=args.exit_when_played,
        on_ready=_ready(f"replaying {args.path}:"),
        on_status=_status_printer(),
        on_error=report,
        noise=args.noise,
    )
    print(f"\nreplay finished: {len(errors)} error(s)", flush=True)
    return EXIT_FAILED if errors else EXIT_OK


def _learn(args: argparse.Namespace) -> int:
    cassette = load(args.path)
    learning = learn(cassette.connections, load(args.second).connections)
    cassette.connections = list(learning.connections)
    written = cassette.save(args.output)
    for found in learning.found:
        print(
            f"connection {found.connection}, client message {found.message}, bytes "
            f"{found.start}-{found.end}: {show_bytes(found.first)} / {show_bytes(found.second)}"
        )
    for note in learning.unpaired:
        print(f"note: {printable(note)}")
    spans = sum(len(c.volatile) for c in learning.connections)
    print(f"{written}: {spans} volatile span(s) stored ({len(learning.found)} found now)")
    return EXIT_OK


def _say(text: str) -> None:
    """One message on stderr, with anything from a cassette made safe to print."""
    print(f"tcpcassette: {printable(text, lines=True)}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except CassetteError as exc:
        if args.debug:
            traceback.print_exc()
        _say(_explained(exc, args))
        return EXIT_FAILED if isinstance(exc, ReplayError) else EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
