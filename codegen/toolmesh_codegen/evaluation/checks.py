"""Whether an answer is the expected one. Deliberately forgiving only where a reader
would be (``"Red "`` is ``red``; 2 is 2.0; within a question's numeric tolerance) and
strict elsewhere: ``True`` is not 1, a list must be in order.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["matches"]


def _text(value: str) -> str:
    return " ".join(value.split()).lower()


def matches(answer: Any, expected: Any, tolerance: float = 0.0) -> bool:
    """``answer`` equals ``expected`` under the rules above (lists and dicts element-wise)."""
    if isinstance(expected, bool) or isinstance(answer, bool):
        return isinstance(answer, bool) and isinstance(expected, bool) and answer == expected
    if isinstance(expected, (int, float)):
        if not isinstance(answer, (int, float)) or not math.isfinite(answer):
            return False
        return abs(answer - expected) <= tolerance + 1e-9 * max(1.0, abs(expected))
    if isinstance(expected, str):
        return isinstance(answer, str) and _text(answer) == _text(expected)
    if isinstance(expected, (list, tuple)):
        return (
            isinstance(answer, (list, tuple))
            and len(answer) == len(expected)
            and all(matches(a, e, tolerance) for a, e in zip(answer, expected, strict=True))
        )
    if isinstance(expected, dict):
        return (
            isinstance(answer, dict)
            and answer.keys() == expected.keys()
            and all(matches(answer[k], expected[k], tolerance) for k in expected)
        )
    return bool(answer == expected)
