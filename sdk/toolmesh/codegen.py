"""``toolmesh.codegen``: the codegen agent, imported on first use.

Questions become serial programs written by an LLM against the live registry, which
are validated, rewritten into equivalent concurrent programs and run in a sandbox::

    import toolmesh.codegen

    generation = await toolmesh.codegen.generate("How many people are in the image?")
    print(generation.serial, generation.parallel, sep="\\n")
    result = await toolmesh.codegen.run(generation.parallel, image=Path("frame.jpg"))
    print(result.value, result.rounds)

    parallel_source = toolmesh.codegen.parallelize(open("serial.py").read())

The implementation lives in ``toolmesh-codegen`` (``pip install 'toolmesh[codegen]'``),
found through its ``toolmesh.extensions`` entry point rather than imported: the
client never imports the parts above it, and ``import toolmesh`` does not pay for
the ``openai`` package. Without that part, every name here raises
:class:`toolmesh.MissingPart` saying what to install. Every other public name of
``toolmesh_codegen`` (``Sandbox``, ``plan``, ``check``, the errors) is reachable here too.
"""

from __future__ import annotations

from typing import Any

from toolmesh._extensions import load

__all__ = ["generate", "parallelize", "run"]


def _codegen() -> Any:
    return load("codegen", part="codegen", feature="toolmesh.codegen")


async def generate(question: str, **options: Any) -> Any:
    """An LLM's serial program for ``question``, validated and parallelized (a ``Generation``).

    Options are those of ``toolmesh_codegen.generate`` (``functions``, ``llm``,
    ``address``, ``max_repairs``).
    """
    return await _codegen().generate(question, **options)


def parallelize(source: str) -> str:
    """The concurrent equivalent of a serial ``async def solve(...)`` program."""
    parallel: str = _codegen().parallelize(source)
    return parallel


async def run(source: str, /, **inputs: Any) -> Any:
    """Validate ``source`` against the live registry and run it in a sandbox (a ``RunResult``)."""
    return await _codegen().run(source, **inputs)


def __getattr__(name: str) -> Any:
    module = _codegen()
    if name in module.__all__:
        return getattr(module, name)
    raise AttributeError(f"module 'toolmesh.codegen' has no attribute {name!r}")
