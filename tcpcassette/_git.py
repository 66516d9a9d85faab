"""``tcpcassette git-setup``: make ``git diff`` show cassettes decoded.

Two settings do it: a ``.gitattributes`` line giving cassettes the diff driver
``tcpcassette``, and that driver's ``textconv`` command in the repository's
own config (``.git/config``, never the user's global one).  Each is added only
when missing, so a second run changes nothing.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from ._core.errors import CassetteError

#: The line ``.gitattributes`` needs.
ATTRIBUTES_LINE = "*.msgpack diff=tcpcassette"
#: The config key of the driver's text conversion.
TEXTCONV_KEY = "diff.tcpcassette.textconv"
#: Seconds a ``git`` command may take.
GIT_TIMEOUT = 30.0


def textconv_command() -> str:
    """The command git runs on a cassette: ``tcpcassette textconv`` where that is on
    PATH, else this Python running the module."""
    if shutil.which("tcpcassette"):
        return "tcpcassette textconv"
    return f"{shlex.quote(sys.executable)} -m tcpcassette textconv"


def _git(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "-C", str(where), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise CassetteError(
            "git-setup needs git, which is not installed or not on PATH; install git, or add "
            f"the line {ATTRIBUTES_LINE!r} to .gitattributes and set {TEXTCONV_KEY} by hand"
        ) from None
    except subprocess.TimeoutExpired:
        raise CassetteError(
            f"git did not answer within {GIT_TIMEOUT:g}s in {where}; check the repository "
            "with git status"
        ) from None


def git_setup(path: Path | None = None) -> list[str]:
    """Set up the git repository at ``path`` (default: the current directory's).

    Returns:
        What was changed, one line each; ``["already set up"]`` when nothing was.

    Raises:
        CassetteError: git is missing, ``path`` is not in a git repository, or
            git refused to change its config.
    """
    where = Path.cwd() if path is None else Path(path)
    if not where.is_dir():
        raise CassetteError(f"{where} is not a directory; give the path of a git repository")
    found = _git(where, "rev-parse", "--show-toplevel")
    if found.returncode != 0:
        raise CassetteError(
            f"{where} is not in a git repository (git says: {found.stderr.strip()}); run "
            "git-setup inside one, or give its path: tcpcassette git-setup PATH"
        )
    top = Path(found.stdout.strip())
    done: list[str] = []
    attributes = top / ".gitattributes"
    text = attributes.read_text(encoding="utf-8") if attributes.exists() else ""
    if ATTRIBUTES_LINE not in (line.strip() for line in text.splitlines()):
        if text and not text.endswith("\n"):
            text += "\n"
        attributes.write_text(text + ATTRIBUTES_LINE + "\n", encoding="utf-8")
        done.append(f"{attributes}: added {ATTRIBUTES_LINE!r}")
    current = _git(top, "config", "--local", "--get", TEXTCONV_KEY)
    if current.returncode == 0 and current.stdout.strip():
        value = current.stdout.strip()
        if "tcpcassette textconv" not in value:
            done.append(f"{TEXTCONV_KEY} is set to {value!r} already; left as it is")
    else:
        command = textconv_command()
        changed = _git(top, "config", "--local", TEXTCONV_KEY, command)
        if changed.returncode != 0:
            raise CassetteError(
                f"git would not set {TEXTCONV_KEY} in {top} (git says: "
                f"{changed.stderr.strip()}); set it by hand: git config {TEXTCONV_KEY} "
                f"{shlex.quote(command)}"
            )
        done.append(f"{top}: set {TEXTCONV_KEY} to {command!r} (in .git/config)")
    return done or [f"{top}: already set up"]
