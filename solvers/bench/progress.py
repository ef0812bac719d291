"""Progress of a sweep: a rich progress bar on a terminal, one plain line per run otherwise."""

from __future__ import annotations

import sys
from typing import Any, Protocol, TextIO

__all__ = ["PlainProgress", "Progress", "RichProgress", "make_progress"]


class Progress(Protocol):
    """What the sweep tells about its progress."""

    def start(self, total: int, skipped: int) -> None:
        """``total`` runs to do now; ``skipped`` already recorded by an earlier sweep."""

    def advance(self, row: dict[str, Any]) -> None:
        """One run finished with ``row``."""

    def stop(self) -> None:
        """The sweep ended (finished or interrupted)."""


def _describe(row: dict[str, Any]) -> str:
    objective = row.get("objective")
    shown = "-" if objective is None else f"{objective:.6g}"
    return (
        f"{row['kind']}/{row['solver']} on {row['instance_name']} seed {row['seed']}: "
        f"{row['status']} objective {shown} in {row.get('wall_s', 0.0):.2f} s"
    )


class PlainProgress:
    """One line per finished run, for logs and pipes."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.total = 0
        self.done = 0

    def start(self, total: int, skipped: int) -> None:
        self.total = total
        print(
            f"bench: {total} run(s) to do, {skipped} already recorded", file=self.stream, flush=True
        )

    def advance(self, row: dict[str, Any]) -> None:
        self.done += 1
        print(f"[{self.done}/{self.total}] {_describe(row)}", file=self.stream, flush=True)

    def stop(self) -> None:
        print(f"bench: {self.done} of {self.total} run(s) done", file=self.stream, flush=True)


class RichProgress:
    """A rich progress bar with the last finished run, for terminals."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichBar

        self.bar = RichBar(
            TextColumn("bench"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
        )
        self.task_id: Any = None

    def start(self, total: int, skipped: int) -> None:
        self.bar.start()
        self.task_id = self.bar.add_task(f"({skipped} already recorded)", total=total)

    def advance(self, row: dict[str, Any]) -> None:
        self.bar.update(self.task_id, advance=1, description=_describe(row))

    def stop(self) -> None:
        self.bar.stop()


def make_progress(stream: TextIO | None = None) -> Progress:
    """Rich progress when ``stream`` (stderr by default) is a terminal, plain lines otherwise."""
    stream = stream if stream is not None else sys.stderr
    return RichProgress() if stream.isatty() else PlainProgress(stream)
