"""Bad input, hundreds of ways: exit 2, one line per problem naming the field, never a traceback.

Malformed instances are derived from every registered kind's first example, so a
kind added later is fuzzed too. Numbers that are non-finite or absurd must be
rejected naming the field; other type changes must never crash validation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from distplan.cli import run
from distplan.models.errors import BadInput
from distplan.models.instance import parse_instance
from distplan.solvers.registry import kinds, problem_kind

#: How many numeric leaves and how many leaves of any type each kind's example is mutated at.
NUMERIC_LEAVES, ANY_LEAVES = 8, 12
#: Written into the JSON text verbatim in place of a number.
ABSURD_NUMBERS = ("1e400", "-1e400", "Infinity", "NaN", "1e308", "1000000000000000000000000000000")
TYPE_CHANGES: tuple[Any, ...] = (None, "x", [], {}, -1, True, [[1, 2], {"a": 1}], "\u0000")


def _example(kind: str) -> dict[str, Any]:
    return problem_kind(kind).examples()[0].problem.model_dump(mode="json")  # type: ignore[misc]


def _leaves(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(data, dict):
        for key in sorted(data):
            yield from _leaves(data[key], (*path, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _leaves(item, (*path, index))
    else:
        yield path, data


def _spread(items: list[Any], count: int) -> list[Any]:
    """``count`` items spread evenly over ``items`` (deterministic)."""
    if len(items) <= count:
        return items
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def _set(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(data))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def _numeric_cases() -> Iterator[Any]:
    for kind in kinds():
        data = _example(kind)
        numeric = [
            p for p, v in _leaves(data) if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        for path in _spread(numeric, NUMERIC_LEAVES):
            for text in ABSURD_NUMBERS:
                yield pytest.param(kind, path, text, id=f"{kind}-{'.'.join(map(str, path))}={text}")


def _type_cases() -> Iterator[Any]:
    for kind in kinds():
        data = _example(kind)
        for path in _spread([p for p, _ in _leaves(data) if p], ANY_LEAVES):
            for value in TYPE_CHANGES:
                yield pytest.param(
                    kind, path, value, id=f"{kind}-{'.'.join(map(str, path))}={value!r}"[:120]
                )


@pytest.mark.parametrize(("kind", "path", "text"), list(_numeric_cases()))
def test_absurd_numbers_are_rejected_naming_the_field(
    kind: str, path: tuple[Any, ...], text: str, tmp_path: Path, capsys
) -> None:
    """Infinity, NaN, 1e400, 1e308 and 1e30 in any numeric field: exit 2 naming the field, no traceback."""
    file = tmp_path / "bad.json"
    file.write_text(
        json.dumps(_set(_example(kind), path, "__NUMBER__")).replace('"__NUMBER__"', text)
    )
    code = run(["solve", str(file), "--time-limit", "1"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("error: ")
    field = next(str(key) for key in reversed(path) if isinstance(key, str))
    assert field in err, (field, err)


@pytest.mark.parametrize(("kind", "path", "value"), list(_type_cases()))
def test_type_changes_never_crash_validation(kind: str, path: tuple[Any, ...], value: Any) -> None:
    """Any leaf replaced by null, a string, a list, a dict, -1 or true: valid, or rejected as bad input."""
    data = _set(_example(kind), path, value)
    try:
        parse_instance(data)
    except ValidationError as exc:
        assert exc.errors(), "a validation error names at least one field"
    except BadInput as exc:
        assert exc.field


def _write(tmp_path: Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


FILE_CASES = {
    "not-utf8": (b'{"kind": "pipeline", "name": "\xff\xfe"}', "not UTF-8"),
    "empty": (b"", "not valid JSON"),
    "deep": (b"[" * 5000 + b"]" * 5000, "nests 5000 levels deep"),
    "array": (b"[1, 2]", "an instance is a JSON object"),
    "no-kind": (b'{"name": "x"}', "kind: missing"),
    "unknown-kind": (b'{"kind": "teleport", "name": "x"}', "kind: unknown problem kind 'teleport'"),
    "kind-not-string": (b'{"kind": 7, "name": "x"}', "unknown problem kind 7"),
    "truncated": (b'{"kind": "pipeline", "name": ', "not valid JSON"),
    "binary": (bytes(range(256)), "not UTF-8"),
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_malformed_files_exit_2_naming_the_file(case: str, tmp_path: Path, capsys) -> None:
    """Unreadable, non-UTF-8, truncated, deeply nested or kind-less files: one line naming the file, exit 2."""
    content, needle = FILE_CASES[case]
    path = _write(tmp_path, f"{case}.json", content)
    assert run(["solve", path]) == 2
    err = capsys.readouterr().err
    assert needle in err and path in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_missing_file_and_directory_exit_2(tmp_path: Path, capsys) -> None:
    """A path that does not exist, or is a directory, is bad input."""
    assert run(["solve", str(tmp_path / "nope.json")]) == 2
    assert run(["solve", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "is a directory" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        (["--seed", "-1"], "seed"),
        (["--seed", str(2**40)], "seed"),
        (["--threads", "0"], "threads"),
        (["--threads", "100000"], "threads"),
        (["--time-limit", "-1"], "time_limit"),
        (["--time-limit", "nan"], "time_limit"),
        (["--time-limit", "0"], "time_limit"),
        (["--option", "novalue"], "--option"),
        (["--option", "bogus=1"], "options.bogus"),
        (["--solver", "nope"], "unknown solver 'nope'"),
        (["--seed", "abc"], "seed"),
        (["--frobnicate"], "No such option"),
    ],
)
def test_bad_solve_arguments_exit_2_in_one_line(
    arguments: list[str], needle: str, tmp_path: Path, capsys
) -> None:
    """Out-of-range or malformed solve arguments: one line naming the argument, exit 2."""
    instance = problem_kind(kinds()[0]).examples()[0].problem  # type: ignore[misc]
    file = tmp_path / "ok.json"
    file.write_text(instance.model_dump_json())
    assert run(["solve", str(file), *arguments]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_evaluate_refuses_a_result_of_another_instance(tmp_path: Path, capsys) -> None:
    """A result solved on different content is refused by name or by content hash."""
    kind = kinds()[0]
    problem = problem_kind(kind).examples()[0].problem  # type: ignore[misc]
    original, result_file = tmp_path / "a.json", tmp_path / "r.json"
    original.write_text(problem.model_dump_json())
    assert run(["solve", str(original), "--out", str(result_file), "--time-limit", "5"]) in (0, 3)
    altered = tmp_path / "b.json"
    data = problem.model_dump(mode="json")
    leaf = next(p for p, v in _leaves(data) if isinstance(v, float) and v > 0 and math.isfinite(v))
    altered.write_text(json.dumps(_set(data, leaf, _get(data, leaf) * 2)))
    capsys.readouterr()
    assert run(["evaluate", str(altered), str(result_file)]) == 2
    assert "instance_hash" in capsys.readouterr().err


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data
