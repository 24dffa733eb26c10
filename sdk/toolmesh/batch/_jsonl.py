"""Crash-safe JSON-lines results: whole lines appended in one write, torn tails dropped."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["ResultsFile", "read_results"]


def read_results(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a results file (a torn last line is ignored)."""
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    # The last element is b"" after a complete final line, or a torn fragment.
    return [json.loads(line) for line in lines[:-1] if line.strip()]


class ResultsFile:
    """Appends one JSON object per line with a single ``write(2)`` on an O_APPEND descriptor.

    A process killed at any moment leaves whole lines plus, at worst, one torn
    tail; ``open(resume=True)`` cuts that tail off, so a resumed run never sees
    half a record. Lines are not buffered in the process: what ``append``
    returned from is in the file.
    """

    def __init__(self, path: Path, *, resume: bool) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume and path.exists():
            data = path.read_bytes()
            cut = data.rfind(b"\n") + 1
            if cut != len(data):
                with open(path, "r+b") as fh:
                    fh.truncate(cut)
        elif path.exists():
            path.unlink()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def done_tasks(self) -> set[int]:
        return {int(r["task"]) for r in read_results(self.path)}

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
        written = os.write(self._fd, line)
        if written != len(line):  # only on a full disk; never leave a torn line behind
            raise OSError(f"short write to {self.path}: {written} of {len(line)} bytes")

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
