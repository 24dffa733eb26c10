"""Replaying a Dockerfile's COPY and RUN steps without Docker (none runs on these machines).

The build context is what a clean clone holds (``git ls-files``) filtered by the
Dockerfile's ``.dockerignore`` allow-list; COPY places files under a folder that
stands for the image's root; RUN executes in that folder with the image's
absolute paths rewritten into it and ``pip``/``python3`` taken from a virtual
environment that stands for the image's Python. What fails here fails in the image.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Step", "StepFailed", "context_files", "parse", "replay"]


class StepFailed(AssertionError):
    """A RUN step exited non-zero; the message holds the step and its output."""


@dataclass(frozen=True, slots=True)
class Step:
    instruction: str
    argument: str


def parse(dockerfile: Path) -> list[Step]:
    """Instructions in order, continuation lines joined, comments dropped."""
    steps: list[Step] = []
    pending = ""
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        instruction, _, argument = line.partition(" ")
        steps.append(Step(instruction.upper(), argument.strip()))
    return steps


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; ``!`` re-includes."""
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if body.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, body[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, body) for prefix in prefixes)
        if hit:
            excluded = not negate
    return excluded


def context_files(repo: Path, dockerfile: Path) -> list[str]:
    """Files of the build context: tracked files the ``.dockerignore`` lets through."""
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    patterns = [
        line.strip()
        for line in ignore.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.decode()
    return [f for f in listed.split("\0") if f and not _ignored(f, patterns)]


def _copy(argument: str, context: list[str], repo: Path, root: Path, workdir: str) -> None:
    *sources, destination = shlex.split(argument)
    target = root / (
        destination.lstrip("/")
        if destination.startswith("/")
        else workdir.lstrip("/") + "/" + destination
    )
    for source in sources:
        source = source.rstrip("/")
        matched = [f for f in context if fnmatch.fnmatch(f, source) or f.startswith(source + "/")]
        if not matched:
            raise FileNotFoundError(f"COPY {source}: nothing in the build context")
        for name in matched:
            if fnmatch.fnmatch(name, source) and destination.endswith("/"):
                dest = target / Path(name).name  # a file into a folder
            elif fnmatch.fnmatch(name, source):
                dest = target
            else:  # a folder's contents land in the destination, as docker does
                dest = target / name[len(source) + 1 :]
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, dest)


def _rewrite(command: str, root: Path) -> str:
    """Absolute image paths → paths under ``root`` (``/src/x`` → ``ROOT/src/x``)."""
    return re.sub(r"(?<=[\s\"'=])/(?=(src|tmp|opt|models)\b)", f"{root}/", " " + command)[1:]


def replay(
    dockerfile: Path,
    repo: Path,
    root: Path,
    venv: Path,
    *,
    skip: Callable[[str], bool] = lambda _command: False,
) -> list[str]:
    """Run the COPY/WORKDIR/RUN steps into ``root`` with ``venv`` as the image's Python.

    Returns the RUN commands executed (``skip`` leaves some out). Raises
    :class:`StepFailed` with the step's output when a step fails.
    """
    context = context_files(repo, dockerfile)
    workdir = "/"
    ran = []
    for standard in ("opt", "tmp"):  # folders every base image has
        (root / standard).mkdir(parents=True, exist_ok=True)
    shims = root / ".shims"
    shims.mkdir(parents=True, exist_ok=True)
    # scripts, not symlinks: a python reached through a link outside the venv would not
    # know it is the venv's, and would install into the base interpreter
    for name, target in (("python3", "python"), ("python", "python"), ("pip", "pip")):
        shim = shims / name
        shim.write_text(f'#!/bin/sh\nexec "{venv / "bin" / target}" "$@"\n')
        shim.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{shims}{os.pathsep}{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    env.pop("PYTHONPATH", None)
    for step in parse(dockerfile):
        if step.instruction == "WORKDIR":
            workdir = step.argument
            (root / workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif step.instruction == "COPY":
            _copy(step.argument, context, repo, root, workdir)
        elif step.instruction == "RUN":
            if skip(step.argument):
                continue
            ran.append(step.argument)
            done = subprocess.run(
                ["bash", "-c", _rewrite(step.argument, root)],
                cwd=root / workdir.lstrip("/"),
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise StepFailed(f"RUN {step.argument}\n{done.stdout}{done.stderr}")
    return ran
