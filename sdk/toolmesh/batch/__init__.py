"""Batch runs: one program over many images, with a results file, a report and costs.

toolmesh run program.py --images frames/ --tasks 1000 --concurrency 16 --out results.jsonl
toolmesh report results.jsonl --node-type cpu-2core
"""

from toolmesh.batch._jsonl import ResultsFile, read_results
from toolmesh.batch._report import Report, build_report, load_prices
from toolmesh.batch._runner import (
    BatchConfig,
    BatchSummary,
    SolverFactory,
    list_images,
    load_program,
    run_batch,
)
from toolmesh.batch._transport import CallRecord, RecordingTransport

__all__ = [
    "BatchConfig",
    "BatchSummary",
    "CallRecord",
    "RecordingTransport",
    "Report",
    "ResultsFile",
    "SolverFactory",
    "build_report",
    "list_images",
    "load_prices",
    "load_program",
    "read_results",
    "run_batch",
]
