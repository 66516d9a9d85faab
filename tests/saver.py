"""A process that saves one cassette over and over, for the SIGKILL test.

``python tests/saver.py PATH`` saves versions 1, 2, 3, ... of a cassette to
PATH, each different in target, size and bytes, and prints each version's
number once its save has returned, until it is killed.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tcpcassette import Cassette, Connection, ServerData


def version(number: int) -> Cassette:
    """Version ``number``: 300 or 500 chunks of 4 KiB, with bytes of its own."""
    return Cassette(
        connections=[
            Connection(
                target=f"v{number}:1",
                events=tuple(
                    ServerData(data=bytes([(number + i) % 256]) * 4096)
                    for i in range(300 if number % 2 else 500)
                ),
            )
        ]
    )


def version_of(cassette: Cassette) -> int:
    """Which version ``cassette`` claims to be, from its target."""
    return int(cassette.connections[0].target.removeprefix("v").split(":")[0])


def main(path: str) -> None:
    number = 0
    while True:
        number += 1
        version(number).save(path)
        print(number, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
