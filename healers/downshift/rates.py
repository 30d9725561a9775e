"""A rate card: per-model prices of input (prompt) and output (completion) tokens, so spend can come from token
metrics instead of a dollar metric (pure).

Sources of token metrics: Azure API Management's `azure-openai-emit-token-metric` policy (metrics `Prompt Tokens`,
`Completion Tokens`, `Total Tokens` in Application Insights, with the dimensions the policy configures, e.g.
`Subscription ID` and a `model` dimension set from the deployment), or the app's own prompt/completion token
counters. The conversion to money happens inside the one spend aggregation per tick (`spend.spend_query`): a
`datatable` of the prices, a `lookup` on the model dimension, and `Sum × price / per`; tokens of a model that has no
price are counted (`unpriced`) and make that tenant's spend unknown, never zero.

Configuration (`rateCard` of an app in HEALER_DOWNSHIFT_APPS), prices per `per` tokens (default 1,000):

    {"inputMetric": "Prompt Tokens", "outputMetric": "Completion Tokens", "modelDimension": "model", "per": 1000,
     "currency": "USD", "asOf": "2026-12-02",
     "models": {"gpt-4o": {"input": 0.0025, "output": 0.01}, "gpt-4o-mini": {"input": 0.00015, "output": 0.0006}}}
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

MAX_MODELS = 64
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/-]{0,127}$")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
_DIMENSION = re.compile(r"^[A-Za-z_][A-Za-z0-9 _.-]{0,63}$")
# The documented example: the published global standard (pay-as-you-go) prices per 1K tokens, as of 2026-12-02.
EXAMPLE = {"inputMetric": "Prompt Tokens", "outputMetric": "Completion Tokens", "modelDimension": "model",
           "per": 1000, "currency": "USD", "asOf": "2026-12-02",
           "models": {"gpt-4o": {"input": 0.0025, "output": 0.01},
                      "gpt-4o-mini": {"input": 0.00015, "output": 0.0006}}}


class RateCardError(ValueError):
    pass


@dataclass(frozen=True)
class RateCard:
    prices: tuple[tuple[str, float, float], ...]   # (model, input price, output price) per `per` tokens
    input_metric: str = "Prompt Tokens"
    output_metric: str = "Completion Tokens"
    model_dimension: str = "model"
    per: int = 1000
    currency: str = "USD"
    as_of: str = ""

    @classmethod
    def from_config(cls, raw: Any) -> RateCard:
        if not isinstance(raw, dict):
            raise RateCardError("rateCard must be a JSON object")
        known = {"inputMetric", "outputMetric", "modelDimension", "per", "currency", "asOf", "models"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise RateCardError(f"unknown rateCard fields: {', '.join(u[:40] for u in unknown[:5])}")
        models = raw.get("models")
        if not isinstance(models, dict) or not 1 <= len(models) <= MAX_MODELS:
            raise RateCardError(f"rateCard.models must map 1..{MAX_MODELS} models to {{input, output}} prices")
        prices = []
        for model, price in sorted(models.items()):
            if not isinstance(model, str) or not _MODEL.match(model):
                raise RateCardError(f"invalid model name {str(model)[:64]!r}")
            if not isinstance(price, dict) or set(price) != {"input", "output"}:
                raise RateCardError(f"rateCard.models[{model!r}] must be {{\"input\": price, \"output\": price}}")
            prices.append((model, _price(price["input"], model), _price(price["output"], model)))
        card = cls(tuple(prices), _text(raw, "inputMetric", "Prompt Tokens", _NAME),
                   _text(raw, "outputMetric", "Completion Tokens", _NAME),
                   _text(raw, "modelDimension", "model", _DIMENSION), _per(raw.get("per", 1000)),
                   _text(raw, "currency", "USD", re.compile(r"^[A-Z]{3}$")),
                   _text(raw, "asOf", "", re.compile(r"^(\d{4}-\d{2}-\d{2})?$")))
        if card.input_metric == card.output_metric:
            raise RateCardError("rateCard.inputMetric and outputMetric must differ")
        return card

    def price(self, model: str) -> tuple[float, float] | None:
        for name, inp, out in self.prices:
            if name == model:
                return inp, out
        return None

    def cost(self, model: str, input_tokens: float, output_tokens: float) -> float | None:
        """Money for a model's tokens; None when the model has no price (unknown, never zero)."""
        price = self.price(model)
        if price is None:
            return None
        return (input_tokens * price[0] + output_tokens * price[1]) / self.per

    def kql_table(self) -> str:
        """The prices as a KQL `datatable` literal (model, inputPrice, outputPrice)."""
        from healers.downshift.spend import kql_string
        rows = ",\n    ".join(f"{kql_string(m)}, {_real(i)}, {_real(o)}" for m, i, o in self.prices)
        return f"datatable(model: string, inputPrice: real, outputPrice: real) [\n    {rows}\n]"


def _price(value: Any, model: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1e6 or value != value:
        raise RateCardError(f"price of {model!r} must be a number in [0, 1e6]")
    return float(value)


def _per(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in (1, 1000, 1_000_000):
        raise RateCardError("rateCard.per must be 1, 1000 or 1000000 (tokens a price is for)")
    return value


def _text(raw: dict, name: str, default: str, pattern: re.Pattern[str]) -> str:
    value = raw.get(name, default)
    if not isinstance(value, str) or not pattern.match(value):
        raise RateCardError(f"rateCard.{name} is invalid")
    return value


def _real(value: float) -> str:
    """A KQL real literal without exponent notation."""
    text = format(Decimal(repr(float(value))), "f")
    return text if "." in text else text + ".0"
