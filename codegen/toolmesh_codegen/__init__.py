"""toolmesh_codegen: questions → serial programs written by an LLM against the live
registry → checked, provably equivalent parallel programs → sandboxed runs.

    generation = await generate("How many people are there?")
    print(generation.parallel)
    result = await run(generation.parallel, image=Path("frame.jpg"))
    solution = await answer(question, functions=..., llm=..., sandbox=..., inputs=...)

Also reachable as ``toolmesh.codegen``.
"""

from toolmesh_codegen import batch  # the sandboxed solver of `toolmesh run`
from toolmesh_codegen._errors import (
    CodegenError,
    IsolationUnavailable,
    LLMError,
    Problem,
    ProgramError,
    RepairFailed,
    ReplanFailed,
    SandboxCrashed,
    SandboxError,
    SandboxMemoryError,
    SandboxTimeout,
    SandboxViolation,
    ValidationError,
)
from toolmesh_codegen._image import SandboxImage
from toolmesh_codegen._jail import IsolationStatus, isolation_status
from toolmesh_codegen.graph import PlanGraph
from toolmesh_codegen.llm import LLMClient, LLMSettings, Usage
from toolmesh_codegen.parallelize import Plan, parallelize, plan
from toolmesh_codegen.replan import FailureKind, RunFailure, Solution, answer
from toolmesh_codegen.run import Attempt, Generation, generate, run
from toolmesh_codegen.sandbox import Limits, RunResult, Sandbox, require_isolation
from toolmesh_codegen.validate import Program, check, find_problems

__all__ = [
    "Attempt",
    "CodegenError",
    "FailureKind",
    "Generation",
    "IsolationStatus",
    "IsolationUnavailable",
    "LLMClient",
    "LLMError",
    "LLMSettings",
    "Limits",
    "Plan",
    "PlanGraph",
    "Problem",
    "Program",
    "ProgramError",
    "RepairFailed",
    "ReplanFailed",
    "RunFailure",
    "RunResult",
    "Sandbox",
    "SandboxCrashed",
    "SandboxError",
    "SandboxImage",
    "SandboxMemoryError",
    "SandboxTimeout",
    "SandboxViolation",
    "Solution",
    "Usage",
    "ValidationError",
    "answer",
    "batch",
    "check",
    "find_problems",
    "generate",
    "isolation_status",
    "parallelize",
    "plan",
    "require_isolation",
    "run",
]
