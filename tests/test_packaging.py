"""What ``pip install .`` installs: every module of the package, and the type marker."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_every_module_and_runs_from_itself(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("tcpcassette-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    source = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "tcpcassette").rglob("*")
        if p.suffix == ".py" or p.name == "py.typed"
    }
    assert source - shipped == set()
    # The package works from the wheel alone (no source tree on the path).
    ran = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import tcpcassette._demo, "
            "tcpcassette._core.replay, tcpcassette._io.session; print(tcpcassette.__file__)",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    assert str(wheel) in ran.stdout
