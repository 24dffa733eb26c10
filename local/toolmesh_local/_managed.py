"""Start on entering a ``with`` block, always stop on leaving it.

Everything the local orchestration runs (Triton and gateway processes, the OTLP
receiver, rehearsal namespaces) must be torn down however a command or test ends,
including when start-up itself fails half-way; each class says how to start and
stop, and this base makes them context managers the same way.
"""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

__all__ = ["Managed"]

_M = TypeVar("_M", bound="Managed")


class Managed:
    """``with thing:`` calls ``thing.start()``, and ``thing.stop()`` on the way out."""

    def start(self) -> object:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _M) -> _M:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
