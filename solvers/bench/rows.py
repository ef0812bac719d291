"""The sweep's results file: one JSON object per line, appended as runs finish.

Rows are keyed by :attr:`BenchTask.key`; reading the file back gives the keys
already done, so rerunning the same sweep skips them. A line cut short by an
interruption is ignored (with a warning) and its run is done again.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["RowStore"]


class RowStore:
    """Append-only JSON-Lines file of sweep rows.

    Parameters
    ----------
    path:
        The ``results.jsonl`` file; created (with its directory) on first append.
    """

    def __init__(self, path: Path):
        self.path = path

    def read(self) -> list[dict[str, Any]]:
        """Every complete row, in file order; later rows with the same key replace earlier ones."""
        if not self.path.is_file():
            return []
        by_key: dict[str, dict[str, Any]] = {}
        with self.path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    logger.warning(
                        "%s:%d: incomplete row ignored (interrupted write); it will run again",
                        self.path,
                        number,
                    )
                    continue
                if isinstance(row, dict) and isinstance(row.get("key"), str):
                    by_key[row["key"]] = row
        return list(by_key.values())

    def done_keys(self) -> set[str]:
        """Keys of the rows already recorded."""
        return {row["key"] for row in self.read()}

    def append(self, row: dict[str, Any]) -> None:
        """Write one row as a line and flush it to disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair_tail()
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, sort_keys=True, allow_nan=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _repair_tail(self) -> None:
        """End a last line cut short by an interruption, so the next row starts on its own line."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")
