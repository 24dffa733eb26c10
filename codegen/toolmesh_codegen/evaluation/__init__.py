"""``toolmesh eval``: how well an LLM writes programs for the mesh, measured.

A question set ships here (``questions.yaml``: street frames and synthetic scenes
drawn by ``scenes``, each with an exact answer or a reference program); every model
answers every question the way ``toolmesh ask`` does, and the scorecard says how often
its programs were valid and right, what repairs and re-plans they needed, their tokens,
cost and latency, and the parallel rewrite's speedup on them.
"""

from toolmesh_codegen.evaluation.checks import matches
from toolmesh_codegen.evaluation.prices import TokenPrice, cost, load_prices
from toolmesh_codegen.evaluation.questions import Question, load_questions, select
from toolmesh_codegen.evaluation.runner import (
    EvalSettings,
    MeteredLLM,
    Outcome,
    QuestionResult,
    evaluate_model,
    expected_answers,
)
from toolmesh_codegen.evaluation.scenes import SCENES, scene, scene_png
from toolmesh_codegen.evaluation.scorecard import ModelScore, markdown_table, scorecard_json
from toolmesh_codegen.evaluation.session import RESULTS_NAME, run_eval, write_outputs

__all__ = [
    "RESULTS_NAME",
    "SCENES",
    "EvalSettings",
    "MeteredLLM",
    "ModelScore",
    "Outcome",
    "Question",
    "QuestionResult",
    "TokenPrice",
    "cost",
    "evaluate_model",
    "expected_answers",
    "load_prices",
    "load_questions",
    "markdown_table",
    "matches",
    "run_eval",
    "scene",
    "scene_png",
    "scorecard_json",
    "select",
    "write_outputs",
]
