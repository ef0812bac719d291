"""Load any instance file: one discriminated union over the problem kinds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from .microservice import MicroserviceProblem
from .pipeline import PipelineProblem

Problem = Annotated[PipelineProblem | MicroserviceProblem, Field(discriminator="kind")]

PROBLEM_TYPES: dict[str, type] = {
    "pipeline": PipelineProblem,
    "microservice": MicroserviceProblem,
}

_problem_adapter: TypeAdapter[Any] = TypeAdapter(Problem)


def parse_instance(data: Any) -> PipelineProblem | MicroserviceProblem:
    """Validate a decoded JSON object as a problem instance.

    Raises
    ------
    pydantic.ValidationError
        When a field is missing, unknown or out of range.
    """
    return _problem_adapter.validate_python(data)


def load_instance(path: str | Path) -> PipelineProblem | MicroserviceProblem:
    """Read and validate an instance file.

    Raises
    ------
    OSError
        When the file cannot be read.
    json.JSONDecodeError
        When the file is not JSON.
    pydantic.ValidationError
        When the JSON is not a valid instance.
    """
    text = Path(path).read_text(encoding="utf-8")
    return parse_instance(json.loads(text))


def problem_schema(kind: str) -> dict[str, Any]:
    """JSON Schema of one problem kind's instances.

    Raises
    ------
    KeyError
        When ``kind`` is not a known problem kind.
    """
    return PROBLEM_TYPES[kind].model_json_schema()
