"""Load any instance file: its ``kind`` picks the problem model from the kind registry."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from .base import ProblemBase
from .errors import BadInput
from .kinds import problem_type

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_JSON_DEPTH",
    "content_hash",
    "load_instance",
    "parse_instance",
    "problem_schema",
    "read_json",
]

#: Largest instance or result file read, in bytes.
MAX_FILE_BYTES = 200 * 1024 * 1024
#: Deepest nesting of JSON arrays and objects accepted (instances need fewer than 10 levels).
MAX_JSON_DEPTH = 64

_STRING = re.compile(r'"(?:\\.|[^"\\])*"')


def _json_depth(text: str) -> int:
    """Deepest nesting of ``[`` and ``{`` outside strings."""
    depth = deepest = 0
    for char in _STRING.sub("", text):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def read_json(path: str | Path) -> Any:
    """Read a JSON file, with every failure as a :class:`BadInput` naming the file.

    Raises
    ------
    BadInput
        When the file cannot be read, is larger than :data:`MAX_FILE_BYTES`, is
        not UTF-8, is not JSON, or nests deeper than :data:`MAX_JSON_DEPTH`.
    """
    source = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_FILE_BYTES:
            raise BadInput(source, f"file is {size} bytes; at most {MAX_FILE_BYTES} are read")
        raw = Path(path).read_bytes()
    except IsADirectoryError as exc:
        raise BadInput(source, "cannot read: is a directory") from exc
    except OSError as exc:
        raise BadInput(source, f"cannot read: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(source, f"not UTF-8 text (byte {exc.start})") from exc
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise BadInput(
            source, f"JSON nests {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(
            source, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except (RecursionError, ValueError) as exc:
        raise BadInput(source, f"not valid JSON: {exc}") from exc


def parse_instance(data: Any) -> ProblemBase:
    """Validate a decoded JSON object as a problem instance of the kind it names.

    Raises
    ------
    BadInput
        When ``data`` is not an object or names no registered kind.
    pydantic.ValidationError
        When a field is missing, unknown or out of range.
    """
    if not isinstance(data, dict):
        raise BadInput("(top level)", f"an instance is a JSON object, got {type(data).__name__}")
    if "kind" not in data:
        raise BadInput("kind", "missing: every instance names its problem kind")
    return problem_type(data["kind"]).model_validate(data)


def load_instance(path: str | Path) -> ProblemBase:
    """Read and validate an instance file.

    Raises
    ------
    BadInput
        When the file cannot be read or decoded, or names no registered kind.
    pydantic.ValidationError
        When the JSON is not a valid instance.
    """
    data = read_json(path)
    try:
        return parse_instance(data)
    except BadInput as exc:
        raise BadInput(f"{path}: {exc.field}", exc.reason) from exc


def problem_schema(kind: str) -> dict[str, Any]:
    """JSON Schema of one problem kind's instances (raises :class:`BadInput` for an unknown kind)."""
    return problem_type(kind).model_json_schema()


def content_hash(problem: ProblemBase) -> str:
    """A short SHA-256 of the problem's canonical JSON: results name the instance they solve."""
    canonical = json.dumps(problem.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
