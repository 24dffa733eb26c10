"""The recorded answers ``toolmesh eval`` is scored on in tests and in
``perf/codegen_eval.py``: ``replays/eval/<model>.yaml``, written by hand as each model
might answer (some right, some wrong, invalid or failing when run), replayed through
:class:`ReplayServer` by model, question and attempt.

The attempt is the number of assistant turns already in the conversation: a repair or
a re-plan resends the conversation with the earlier answer in it, so the n-th answer
of a file's list is what the model says the n-th time it is asked that question.
Token counts are not recorded: a completion reports prompt tokens as the characters of
the request's messages over 4 and completion tokens as its text's over 4 (rounded up),
the usual rule of thumb for English and code with OpenAI's tokenizers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.codegen.replay_server import REPLAYS, Step, completion
from toolmesh_codegen.evaluation import Question

RECORDINGS = REPLAYS / "eval"
_QUESTION = re.compile(r"^Question: (.*)\nInputs of solve\(\):", re.S)


@dataclass(frozen=True)
class Recording:
    """One model's answers: the name it reports and, per question id, its answers."""

    served_as: str
    answers: dict[str, list[str]]
    same_as: str | None


def load_recordings(folder: Path = RECORDINGS) -> dict[str, Recording]:
    """Requested model name (the file's stem) → its recording."""
    out: dict[str, Recording] = {}
    for path in sorted(folder.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        out[path.stem] = Recording(
            served_as=document["served_as"],
            answers={k: list(v) for k, v in document["answers"].items()},
            same_as=document.get("same_as"),
        )
    return out


class EvalResponder:
    """Picks the recorded answer for a chat-completions request."""

    def __init__(self, questions: Sequence[Question], recordings: dict[str, Recording]) -> None:
        self.ids = {q.question: q.id for q in questions}
        self.recordings = recordings

    def answers(self, model: str, question_id: str) -> list[str] | None:
        recording = self.recordings.get(model)
        while recording is not None:
            if question_id in recording.answers:
                return recording.answers[question_id]
            recording = self.recordings.get(recording.same_as or "")
        return None

    def __call__(self, body: dict[str, Any]) -> Step:
        model = str(body.get("model"))
        messages = body.get("messages") or []
        if model not in self.recordings:
            return _error(404, f"The model `{model}` does not exist")
        first_user = next((m["content"] for m in messages if m["role"] == "user"), "")
        match = _QUESTION.match(first_user)
        question_id = self.ids.get(match.group(1)) if match else None
        attempt = sum(1 for m in messages if m["role"] == "assistant")
        answers = self.answers(model, question_id) if question_id else None
        if not answers or attempt >= len(answers):
            # 404 is not retried by the client: the question ends as an LLM error
            return _error(404, f"no recorded answer {attempt + 1} of {model} to {question_id}")
        text = answers[attempt]
        if "```" not in text and "async def solve" in text:
            text = f"```python\n{text.rstrip()}\n```\n"
        prompt = math.ceil(sum(len(str(m.get("content", ""))) for m in messages) / 4)
        return Step(
            completion(
                text,
                model=self.recordings[model].served_as,
                prompt_tokens=prompt,
                completion_tokens=math.ceil(len(text) / 4),
                id=f"chatcmpl-replay-{question_id}-{attempt}",
            )
        )


def _error(status: int, message: str) -> Step:
    return Step({"error": {"message": message, "type": "invalid_request_error"}}, status=status)
