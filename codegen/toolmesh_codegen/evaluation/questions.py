"""The question set: ``questions.yaml`` shipped in this package, checked against a JSON
Schema when loaded, so a typo in a question is an error naming it, not a silent skip.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from toolmesh.data import STREET_FRAMES
from toolmesh_codegen.evaluation.scenes import SCENES, scene_png

__all__ = ["EXPECT_TYPES", "Question", "load_questions", "select"]

#: The answer types a question may ask for, by the name ``expect`` uses.
EXPECT_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "float": (int, float),
    "bool": bool,
    "str": str,
    "list": list,
}

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["questions"],
    "additionalProperties": False,
    "properties": {
        "questions": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id", "category", "image", "question", "expect"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string", "pattern": "^[a-z0-9_]+$"},
                    "category": {
                        "enum": [
                            "count",
                            "presence",
                            "comparison",
                            "colour",
                            "conditional",
                            "per-detection",
                            "geometry",
                        ]
                    },
                    "image": {"type": "string", "pattern": "^(street|scene):.+$"},
                    "question": {"type": "string", "minLength": 1},
                    "expect": {"enum": sorted(EXPECT_TYPES)},
                    "answer": {},
                    "tolerance": {"type": "number", "minimum": 0},
                    "reference": {"type": "string", "minLength": 1},
                },
                "oneOf": [{"required": ["answer"]}, {"required": ["reference"]}],
            },
        }
    },
}


@dataclass(frozen=True, slots=True)
class Question:
    """One question, the picture it is about, and how its answer is checked.

    Exactly one of ``answer`` (known by construction) and ``reference`` (a program
    whose answer on the same mesh is the expected one) is set; ``has_answer`` says which.
    """

    id: str
    category: str
    image: str
    question: str
    expect: str
    answer: Any = None
    has_answer: bool = False
    tolerance: float = 0.0
    reference: str | None = None

    @property
    def expect_type(self) -> type | tuple[type, ...]:
        return EXPECT_TYPES[self.expect]

    def image_bytes(self) -> bytes:
        """The picture as an encoded file (PNG for scenes: lossless, colours exact)."""
        kind, _, name = self.image.partition(":")
        if kind == "scene":
            return scene_png(name)
        return (STREET_FRAMES / name).read_bytes()


def load_questions(path: Path | None = None) -> list[Question]:
    """The questions of ``path`` (default: the shipped set), in file order.

    Raises:
        ValueError: the file is not YAML, breaks the schema, repeats an id, or names a
            missing street frame or an unknown scene.
        OSError: the file cannot be read.
    """
    if path is None:
        text = resources.files("toolmesh_codegen.evaluation").joinpath("questions.yaml").read_text()
        where = "questions.yaml"
    else:
        text, where = path.read_text(), str(path)
    try:
        document = yaml.safe_load(io.StringIO(text))
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: not YAML: {' '.join(str(exc).split())}") from None
    try:
        jsonschema.validate(document, _SCHEMA)
    except jsonschema.ValidationError as exc:
        at = "/".join(str(p) for p in exc.absolute_path)
        raise ValueError(f"{where}: {at or 'top level'}: {exc.message}") from None
    questions: list[Question] = []
    seen: set[str] = set()
    for entry in document["questions"]:
        qid = entry["id"]
        if qid in seen:
            raise ValueError(f"{where}: question id {qid!r} appears twice")
        seen.add(qid)
        kind, _, name = entry["image"].partition(":")
        if kind == "scene" and name not in SCENES:
            raise ValueError(f"{where}: {qid}: unknown scene {name!r} (known: {sorted(SCENES)})")
        if kind == "street" and not (STREET_FRAMES / name).is_file():
            raise ValueError(f"{where}: {qid}: no street frame {name!r}")
        questions.append(
            Question(
                id=qid,
                category=entry["category"],
                image=entry["image"],
                question=" ".join(entry["question"].split()),
                expect=entry["expect"],
                answer=entry.get("answer"),
                has_answer="answer" in entry,
                tolerance=float(entry.get("tolerance", 0.0)),
                reference=entry.get("reference"),
            )
        )
    return questions


def select(questions: Sequence[Question], ids: Sequence[str]) -> list[Question]:
    """The questions named by ``ids`` (all when empty), in the set's order.

    Raises:
        ValueError: an id that is not in the set.
    """
    if not ids:
        return list(questions)
    known = {q.id for q in questions}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ValueError(f"no question {', '.join(map(repr, unknown))} in the set")
    wanted = set(ids)
    return [q for q in questions if q.id in wanted]
