"""Batch runs: one program over many images, with a results file, a report and costs.

toolmesh run program.py --images frames/ --tasks 1000 --concurrency 16 --out results.jsonl
toolmesh report results.jsonl --node-type cpu-2core
"""

from toolmesh.batch._jsonl import ResultsFile, read_results
from toolmesh.batch._report import (
    LlmCost,
    LlmPrice,
    Report,
    build_report,
    llm_costs,
    load_llm_prices,
    load_prices,
)
from toolmesh.batch._runner import (
    BatchConfig,
    BatchSummary,
    SolverFactory,
    assign_images,
    list_images,
    load_program,
    run_batch,
)
from toolmesh.batch._transport import CallRecord, RecordingTransport
from toolmesh.batch._utilisation import (
    UtilisationSampler,
    UtilisationSummary,
    load_utilisation,
    summarise_utilisation,
)

__all__ = [
    "BatchConfig",
    "BatchSummary",
    "CallRecord",
    "LlmCost",
    "LlmPrice",
    "RecordingTransport",
    "Report",
    "ResultsFile",
    "SolverFactory",
    "UtilisationSampler",
    "UtilisationSummary",
    "assign_images",
    "build_report",
    "list_images",
    "llm_costs",
    "load_llm_prices",
    "load_prices",
    "load_program",
    "load_utilisation",
    "read_results",
    "run_batch",
    "summarise_utilisation",
]
