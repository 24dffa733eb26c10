"""``toolmesh.codegen``: the codegen agent, imported on first use.

Questions become serial programs written by an LLM against the live registry, which
are validated, rewritten into equivalent concurrent programs and run in a sandbox::

    import toolmesh.codegen

    generation = await toolmesh.codegen.generate("How many people are in the image?")
    print(generation.serial, generation.parallel, sep="\\n")
    result = await toolmesh.codegen.run(generation.parallel, image=Path("frame.jpg"))
    print(result.value, result.rounds)

    parallel_source = toolmesh.codegen.parallelize(open("serial.py").read())

The implementation lives in the ``toolmesh_codegen`` package (``codegen/``); it is not
imported by ``import toolmesh``, so the SDK does not pay for the ``openai`` package
unless this module is used. Every other public name of ``toolmesh_codegen``
(``Sandbox``, ``plan``, ``check``, the errors) is reachable here too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toolmesh_codegen import Generation, RunResult

__all__ = ["generate", "parallelize", "run"]


async def generate(question: str, **options: Any) -> Generation:
    """An LLM's serial program for ``question``, validated and parallelized.

    Options are those of ``toolmesh_codegen.generate`` (``functions``, ``llm``,
    ``address``, ``max_repairs``).
    """
    from toolmesh_codegen import generate as _generate

    return await _generate(question, **options)


def parallelize(source: str) -> str:
    """The concurrent equivalent of a serial ``async def solve(...)`` program."""
    from toolmesh_codegen import parallelize as _parallelize

    parallel: str = _parallelize(source)
    return parallel


async def run(source: str, /, **inputs: Any) -> RunResult:
    """Validate ``source`` against the live registry and run it in a sandbox."""
    from toolmesh_codegen import run as _run

    return await _run(source, **inputs)


def __getattr__(name: str) -> Any:
    module = importlib.import_module("toolmesh_codegen")
    if name in module.__all__:
        return getattr(module, name)
    raise AttributeError(f"module 'toolmesh.codegen' has no attribute {name!r}")
