"""Toy knapsack: choose items whose weights fit a capacity, maximise their value."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat

from distplan.models.base import PlanBase, ProblemBase


class ToyProblem(ProblemBase):
    """Items with ``values`` and ``weights``; the chosen weights must fit ``capacity``."""

    kind: Literal["toyknap"] = "toyknap"
    values: list[NonNegativeFloat] = Field(min_length=1)
    weights: list[NonNegativeFloat] = Field(min_length=1)
    capacity: NonNegativeFloat


class ToyPlan(PlanBase):
    """Indices of the chosen items."""

    kind: Literal["toyknap"] = "toyknap"
    chosen: list[int]
