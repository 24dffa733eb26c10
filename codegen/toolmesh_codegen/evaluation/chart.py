"""A small picture of the scorecard: accuracy and valid-program rate per model, and
how each model's questions ended. Needs matplotlib (``toolmesh-codegen[plots]``);
without it the scorecard is still written, only the picture is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from toolmesh_codegen.evaluation.runner import Outcome
from toolmesh_codegen.evaluation.scorecard import ModelScore

__all__ = ["write_chart"]

_OUTCOME_COLOURS = {
    Outcome.CORRECT: "#2e7d32",
    Outcome.WRONG: "#f9a825",
    Outcome.FAILED: "#ef6c00",
    Outcome.INVALID: "#c62828",
    Outcome.ERROR: "#757575",
}


def write_chart(scores: Sequence[ModelScore], path: Path) -> bool:
    """Write the chart as PNG to ``path``; ``False`` (nothing written) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    models = [s.model for s in scores]
    positions = range(len(models))
    figure, (rates, outcomes) = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.38
    rates.bar(
        [p - width / 2 for p in positions], [s.valid_rate for s in scores], width,
        label="valid programs", color="#90caf9",
    )  # fmt: skip
    rates.bar(
        [p + width / 2 for p in positions], [s.accuracy for s in scores], width,
        label="accuracy", color="#1565c0",
    )  # fmt: skip
    rates.set_xticks(list(positions), models, rotation=10)
    rates.set_ylim(0, 1.3)
    rates.set_ylabel("share of questions")
    rates.legend(loc="upper center", ncol=2)
    rates.set_title("valid programs and right answers")
    bottoms = [0] * len(scores)
    for outcome, colour in _OUTCOME_COLOURS.items():
        counts = [sum(r.outcome is outcome for r in s.results) for s in scores]
        outcomes.bar(
            list(positions), counts, 0.6, bottom=bottoms, label=outcome.value, color=colour
        )
        bottoms = [b + c for b, c in zip(bottoms, counts, strict=True)]
    outcomes.set_xticks(list(positions), models, rotation=10)
    outcomes.set_ylabel("questions")
    outcomes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    outcomes.set_title("how each question ended")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
