"""The LLM client: any OpenAI-compatible chat-completions endpoint through the ``openai``
package, with timeouts, retries (the package's own, with backoff, on connection errors,
429 and 5xx) and token usage added up across attempts.

Settings: argument > environment > default, read when the client is made:
``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, ``TOOLMESH_LLM_MODEL``,
``TOOLMESH_LLM_TIMEOUT`` (seconds), ``TOOLMESH_LLM_MAX_RETRIES``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import openai

from toolmesh_codegen._errors import LLMError

__all__ = ["Completion", "LLMClient", "LLMSettings", "Usage"]

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_RETRIES = 2


@dataclass(frozen=True, slots=True)
class LLMSettings:
    """Where the LLM is and how long to wait for it."""

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES
    temperature: float = 0.0

    @classmethod
    def resolve(
        cls,
        *,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float | None = None,
        max_retries: int | None = None,
    ) -> LLMSettings:
        env = os.environ
        return cls(
            model=model or env.get("TOOLMESH_LLM_MODEL") or DEFAULT_MODEL,
            base_url=base_url or env.get("OPENAI_BASE_URL") or None,
            api_key=api_key or env.get("OPENAI_API_KEY") or None,
            timeout_s=timeout_s
            if timeout_s is not None
            else float(env.get("TOOLMESH_LLM_TIMEOUT") or DEFAULT_TIMEOUT_S),
            max_retries=max_retries
            if max_retries is not None
            else int(env.get("TOOLMESH_LLM_MAX_RETRIES") or DEFAULT_MAX_RETRIES),
        )

    def require_key(self) -> None:
        """Raise :class:`LLMError` when there is no API key (checked before any work)."""
        if not self.api_key:
            raise LLMError(
                "no API key for the LLM: set OPENAI_API_KEY (and OPENAI_BASE_URL for an "
                "OpenAI-compatible endpoint other than api.openai.com)"
            )


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens spent, added up over requests."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.requests + other.requests,
        )

    def __str__(self) -> str:
        return (
            f"{self.prompt_tokens} prompt + {self.completion_tokens} completion tokens "
            f"in {self.requests} request{'s' if self.requests != 1 else ''}"
        )


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer: its text, the model that wrote it, and what it cost."""

    text: str
    model: str
    usage: Usage
    finish_reason: str | None


class LLMClient:
    """Chat completions against an OpenAI-compatible endpoint; an async context manager.

    Safe to share between tasks of one event loop (the ``openai`` client is).

    Args:
        settings: Model, endpoint, key, timeout, retries; default from the environment.
        client: A ready ``openai.AsyncOpenAI`` (then ``settings`` only names the model).
    """

    def __init__(
        self, settings: LLMSettings | None = None, *, client: openai.AsyncOpenAI | None = None
    ) -> None:
        self.settings = settings or LLMSettings.resolve()
        if client is None:
            self.settings.require_key()
            client = openai.AsyncOpenAI(
                api_key=self.settings.api_key,
                base_url=self.settings.base_url,
                timeout=self.settings.timeout_s,
                max_retries=self.settings.max_retries,
            )
        self._client = client

    async def complete(self, messages: Sequence[dict[str, str]]) -> Completion:
        """One chat completion.

        Raises:
            LLMError: the endpoint failed after retries, timed out, or sent no text.
        """
        try:
            response: Any = await self._client.chat.completions.create(
                model=self.settings.model,
                messages=list(messages),  # type: ignore[arg-type]
                temperature=self.settings.temperature,
            )
        except openai.APITimeoutError as exc:
            raise LLMError(
                f"the LLM did not answer within {self.settings.timeout_s:g} s "
                f"({self.settings.max_retries} retries)"
            ) from exc
        except openai.APIStatusError as exc:
            raise LLMError(f"the LLM endpoint answered {exc.status_code}: {exc.message}") from exc
        except openai.APIConnectionError as exc:
            raise LLMError(f"cannot reach the LLM endpoint: {exc}") from exc
        except openai.OpenAIError as exc:
            raise LLMError(f"LLM request failed: {exc}") from exc
        if not response.choices:
            raise LLMError("the LLM answered with no choices")
        choice = response.choices[0]
        text = choice.message.content or ""
        if not text.strip():
            raise LLMError("the LLM answered with an empty message")
        usage = response.usage
        return Completion(
            text=text,
            model=str(response.model or self.settings.model),
            usage=Usage(
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                requests=1,
            ),
            finish_reason=choice.finish_reason,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
