"""The ``tcpcassette`` command: a thin shell over the library's own API.

Exit status: 0 success, 1 a replay mismatch or failed check, 2 bad usage or
an unreadable cassette (one line on stderr; ``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ._cassette import load
from ._demo import run_demo
from ._errors import CassetteError, ReplayError
from ._faults import Close, ConnectTimeout, Delay, Fault, Refuse, Reset, Slice, Timeout, Truncate
from ._transcript import format_transcript
from ._version import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tcpcassette",
        description="Read, edit and demonstrate tcpcassette cassettes.",
        epilog="Example: tcpcassette show cassettes/redis_roundtrip.msgpack",
    )
    parser.add_argument("--version", action="version", version=f"tcpcassette {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser(
        "demo",
        help="record, replay and break an exchange with a server of its own",
        description="Starts a small server, records an exchange with it, stops it, replays "
        "the exchange, then replays it with a reset injected. Needs no network.",
        epilog="Example: tcpcassette demo --dir ./cassettes",
    )
    demo.add_argument("--dir", type=Path, help="keep the demo cassette here (default: a temp dir)")

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
    show.add_argument("--full", action="store_true", help="show long payloads whole")
    show.add_argument("--color", choices=["auto", "always", "never"], default="auto")

    inject = sub.add_parser(
        "inject",
        help="place a fault in a cassette",
        description="Faults: reset, close, timeout, delay, refuse, connect_timeout, "
        "truncate, slice.",
        epilog="Example: tcpcassette inject cassettes/x.msgpack reset --connection 0 --after 3",
    )
    inject.add_argument("path", type=Path)
    inject.add_argument("fault", choices=sorted(_FAULTS))
    inject.add_argument("--connection", type=int, required=True)
    inject.add_argument("--after", type=int, default=0, help="after this event (0: at connect)")
    inject.add_argument("--seconds", type=float, help="timeout, delay")
    inject.add_argument("--nbytes", type=int, help="truncate")
    inject.add_argument("--then", choices=["close", "reset"], help="truncate")
    inject.add_argument("--size", type=int, help="slice")
    inject.add_argument("--delay", type=float, help="slice")
    inject.add_argument("--times", type=int, help="fire on the first N plays only")
    inject.add_argument("-o", "--output", type=Path, help="write here instead of in place")

    remove = sub.add_parser(
        "remove",
        help="remove one event from a cassette",
        epilog="Example: tcpcassette remove cassettes/x.msgpack --connection 0 --event 4",
    )
    remove.add_argument("path", type=Path)
    remove.add_argument("--connection", type=int, required=True)
    remove.add_argument("--event", type=int, required=True)
    remove.add_argument("-o", "--output", type=Path, help="write here instead of in place")
    return parser


_FAULTS: dict[str, type[Fault]] = {
    f.kind: f for f in (Reset, Close, Timeout, Delay, Refuse, ConnectTimeout, Truncate, Slice)
}


def _fault_from(args: argparse.Namespace) -> Fault:
    cls = _FAULTS[args.fault]
    options = {
        name: getattr(args, name)
        for name in ("seconds", "nbytes", "then", "size", "delay", "times")
        if getattr(args, name) is not None
    }
    try:
        return cls(**options)
    except TypeError:
        raise CassetteError(
            f"{args.fault} does not take {', '.join('--' + o for o in options)}; "
            f"see tcpcassette inject --help"
        ) from None


def _use_color(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        return run_demo(directory=args.dir)
    if args.command == "show":
        cassette = load(args.path)
        print(
            format_transcript(
                cassette,
                connections=args.connection,
                mode=args.mode or "auto",
                full=args.full,
                color=_use_color(args.color),
            )
        )
        return EXIT_OK
    if args.command == "inject":
        cassette = load(args.path)
        fault = _fault_from(args)
        cassette.inject(fault, connection=args.connection, after=args.after)
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
    raise AssertionError(args.command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except ReplayError as exc:
        if args.debug:
            raise
        print(f"tcpcassette: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except CassetteError as exc:
        if args.debug:
            raise
        print(f"tcpcassette: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
