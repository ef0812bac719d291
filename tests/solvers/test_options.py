"""Typed solver options: values are checked against their declaration before a solver runs."""

from __future__ import annotations

import pytest

from distplan.models.errors import BadInput
from distplan.solvers.options import Option, as_option, parse_option_pairs
from distplan.solvers.registry import solvers

ROUNDS = Option("rounding rounds", types=("int",), minimum=1)
METHOD = Option("LP method", choices=("simplex", "ipm"))
BANDWIDTH = Option("'min' or bytes/s", types=("str", "float"), choices=("min",), minimum=1e-9)


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        (ROUNDS, 3, 3),
        (ROUNDS, 3.0, 3),
        (METHOD, "ipm", "ipm"),
        (BANDWIDTH, "min", "min"),
        (BANDWIDTH, 5e9, 5e9),
        (BANDWIDTH, 10, 10.0),
        (Option("flag", types=("bool", "none")), None, None),
        (as_option("anything goes"), [1, 2], [1, 2]),
    ],
)
def test_valid_values_are_converted(option: Option, value: object, expected: object) -> None:
    """A value matching the declaration comes back in its declared type."""
    converted = option.checked("name", value)
    assert converted == expected and type(converted) is type(expected)


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        (ROUNDS, "x", "an integer >= 1"),
        (ROUNDS, 0, "an integer >= 1"),
        (ROUNDS, 2.5, "an integer"),
        (ROUNDS, True, "an integer"),
        (METHOD, "pdlp", "'simplex' or 'ipm'"),
        (BANDWIDTH, "max", "'min', or a number >= 1e-09"),
        (BANDWIDTH, float("nan"), "a number"),
        (Option("flag", types=("bool",)), "false", "true or false"),
    ],
)
def test_bad_values_name_the_option_and_what_it_takes(
    option: Option, value: object, words: str
) -> None:
    """A bad value is BadInput naming options.<key>, what it accepts and what it got."""
    with pytest.raises(BadInput) as caught:
        option.checked("rounds", value)
    assert caught.value.field == "options.rounds"
    assert words in str(caught.value) and repr(value) in str(caught.value)


def test_unknown_type_name_is_a_declaration_error() -> None:
    """Declaring an option with an unknown type fails at registration time."""
    with pytest.raises(ValueError, match="Option types"):
        Option("x", types=("integer",))


def test_cli_pairs_parse_as_json_then_check() -> None:
    """``--option fill_up=false`` reaches a bool option as False, not the truthy string."""
    pairs = parse_option_pairs(["flag=false", "rounds=3"])
    assert Option("f", types=("bool",)).checked("flag", pairs["flag"]) is False
    assert ROUNDS.checked("rounds", pairs["rounds"]) == 3


def test_every_registered_option_is_typed() -> None:
    """Every option of every shipped solver declares its types (no unchecked bare meanings)."""
    untyped = [
        f"{spec.kind}/{spec.name}.{key}"
        for spec in solvers()
        for key, option in spec.extra_options.items()
        if option.types == ("any",)
    ]
    assert untyped == []


def test_within_cuts_the_limit_from_now_and_never_extends_it() -> None:
    """A stage's options get the smaller of its seconds and what is left, counted from now."""
    from distplan.solvers.options import SolveOptions

    options = SolveOptions(time_limit=10.0, seed=7, threads=2, extra={"rounds": 3})
    stage = options.within(4.0)
    assert stage.time_limit == 4.0 and stage.started_at >= options.started_at
    assert (stage.seed, stage.threads, dict(stage.extra)) == (7, 2, {"rounds": 3})
    assert options.within(99.0).time_limit <= 10.0
    assert options.within(-1.0).time_limit == 0.0
