"""Token prices: what a model's prompts and completions cost, from ``prices.yaml``
(shipped here) or a table of the user's own in the same shape."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from toolmesh_codegen.llm import Usage

__all__ = ["TokenPrice", "cost", "load_prices", "price_of"]


@dataclass(frozen=True, slots=True)
class TokenPrice:
    """USD per million prompt and completion tokens."""

    prompt: float
    completion: float


def load_prices(path: Path | None = None) -> dict[str, TokenPrice]:
    """Model name → price, from ``path`` or the bundled table.

    Raises:
        ValueError: the file has no ``llm_models`` mapping or a row lacks a price.
        OSError: the file cannot be read.
    """
    if path is None:
        text = resources.files("toolmesh_codegen.evaluation").joinpath("prices.yaml").read_text()
    else:
        text = path.read_text()
    where = path or "prices.yaml"
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: not YAML: {' '.join(str(exc).split())}") from None
    models = document.get("llm_models") if isinstance(document, dict) else None
    if not isinstance(models, dict):
        raise ValueError(f"{where}: expected a mapping under 'llm_models'")
    prices: dict[str, TokenPrice] = {}
    for name, row in models.items():
        try:
            prices[str(name)] = TokenPrice(
                float(row["usd_per_million_prompt_tokens"]),
                float(row["usd_per_million_completion_tokens"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{where}: {name}: needs usd_per_million_prompt_tokens and "
                "usd_per_million_completion_tokens"
            ) from exc
    return prices


def price_of(model: str, prices: dict[str, TokenPrice]) -> TokenPrice | None:
    """The row for ``model``: its own, else the longest listed prefix of it."""
    if model in prices:
        return prices[model]
    prefixes = [name for name in prices if model.startswith(name)]
    return prices[max(prefixes, key=len)] if prefixes else None


def cost(usage: Usage, model: str, prices: dict[str, TokenPrice]) -> float | None:
    """USD for ``usage`` of ``model``; ``None`` when the table has no price for it."""
    price = price_of(model, prices)
    if price is None:
        return None
    return (usage.prompt_tokens * price.prompt + usage.completion_tokens * price.completion) / 1e6
