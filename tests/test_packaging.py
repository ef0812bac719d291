"""The wheel carries every package and data file the code uses (kinds are discovered, not listed)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOT_SHIPPED = {"tests", "benchmarks", "scripts", "instances", "build"}


def _package_dirs() -> list[Path]:
    return sorted(
        init.parent
        for init in REPO.rglob("__init__.py")
        if not NOT_SHIPPED & set(init.relative_to(REPO).parts)
        and not any(p.startswith(".") for p in init.relative_to(REPO).parts)
    )


def test_wheel_holds_every_package_and_data_file(tmp_path: Path) -> None:
    """Build the wheel; every package directory's modules and JSON data are inside, setup.py is not."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    (wheel,) = tmp_path.glob("distplan-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"distplan/py.typed", "distplan/cli.py"}
    for folder in _package_dirs():
        for file in [*folder.glob("*.py"), *folder.glob("*.json")]:
            expected.add("distplan/" + file.relative_to(REPO).as_posix())
    expected.discard("distplan/setup.py")
    missing = sorted(expected - names)
    assert not missing, f"missing from the wheel: {missing}"
    assert "distplan/setup.py" not in names
    assert any(
        name.startswith("distplan/planners/") and name.endswith("/kind.py") for name in names
    )
