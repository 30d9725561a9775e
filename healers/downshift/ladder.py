"""Approved model ladders: an ordered list of models per app, most capable first, and a floor.

Healer only ever moves one rung at a time, never below the floor and never to a model that is not on the ladder.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_RUNGS = 16
MAX_MODEL_CHARS = 128
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


class LadderError(ValueError):
    """The ladder configuration is invalid; the message says why."""


@dataclass(frozen=True)
class Ladder:
    models: tuple[str, ...]  # most capable (the primary) first
    floor: str               # the cheapest model Healer may select; must be on the ladder

    def __post_init__(self) -> None:
        if not self.models:
            raise LadderError("a ladder needs at least one model")
        if len(self.models) > MAX_RUNGS:
            raise LadderError(f"a ladder has at most {MAX_RUNGS} models")
        for m in self.models:
            if not isinstance(m, str) or not _MODEL.match(m):
                raise LadderError(f"invalid model name {str(m)[:MAX_MODEL_CHARS]!r}")
        if len(set(self.models)) != len(self.models):
            raise LadderError("a ladder lists each model once")
        if self.floor not in self.models:
            raise LadderError(f"floor {self.floor!r} is not on the ladder")

    @classmethod
    def from_config(cls, raw: Any) -> Ladder:
        """`["gpt-4o", "gpt-4o-mini"]` (floor = last) or `{"models": [...], "floor": "..."}`."""
        if isinstance(raw, (list, tuple)):
            models, floor = raw, (raw[-1] if raw else None)
        elif isinstance(raw, dict):
            models = raw.get("models")
            if not isinstance(models, (list, tuple)):
                raise LadderError("ladder.models must be a list")
            floor = raw.get("floor", models[-1] if models else None)
        else:
            raise LadderError("a ladder is a list of models or {models, floor}")
        if not isinstance(floor, str):
            raise LadderError("ladder.floor must be a model name")
        return cls(tuple(models), floor)

    def to_config(self) -> dict[str, Any]:
        return {"models": list(self.models), "floor": self.floor}

    # ------------------------------------------------------------------------------------------ queries
    @property
    def primary(self) -> str:
        return self.models[0]

    @property
    def floor_index(self) -> int:
        return self.models.index(self.floor)

    def allowed(self, model: str | None) -> bool:
        """On the ladder and not below the floor."""
        return model is not None and model in self.models and self.models.index(model) <= self.floor_index

    def tier(self, model: str) -> int:
        """0 for the primary, 1 for one rung down, ...; raises LadderError when the model is not allowed."""
        if not self.allowed(model):
            raise LadderError(f"{str(model)[:MAX_MODEL_CHARS]!r} is not an approved model on this ladder")
        return self.models.index(model)

    def step_down(self, model: str) -> str | None:
        """One rung cheaper, or None at the floor."""
        i = self.tier(model)
        return self.models[i + 1] if i < self.floor_index else None

    def step_up(self, model: str, toward: str | None = None) -> str | None:
        """One rung up, never past `toward` (the model to restore to); None when already there or at the top."""
        i = self.tier(model)
        top = self.tier(toward) if toward is not None else 0
        return self.models[i - 1] if i > top else None
