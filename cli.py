"""Command-line interface: thin shims over the Python API.

Run as ``distplan ...`` (console script) or ``python cli.py ...`` from the
repository root. The commands never name a problem kind: ``import`` and
``generate`` subcommands are mounted from the kinds' registrations.

Exit codes: 0 a plan (or a feasible plan for ``evaluate``); 1 a solver error (or
a plan the evaluator rejects); 2 bad input, one ``error: <field>: <reason>`` line
per problem; 3 infeasible, or no plan within the time limit. No traceback is
printed unless ``--debug`` is given.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, get_type_hints


def _bootstrap_package() -> None:
    """Make ``import distplan`` work when run as ``python cli.py`` from an uninstalled checkout."""
    if importlib.util.find_spec("distplan") is not None:
        return
    root = Path(__file__).resolve().parent
    spec = importlib.util.spec_from_file_location(
        "distplan", root / "__init__.py", submodule_search_locations=[str(root)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["distplan"] = module
    spec.loader.exec_module(module)


_bootstrap_package()

import typer  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from distplan.models.errors import BackendMissing, BadInput  # noqa: E402
from distplan.models.instance import content_hash, load_instance, problem_schema, read_json  # noqa: E402
from distplan.models.result import HAS_PLAN, SolveResult, SolveStatus  # noqa: E402
from distplan.solvers import solve as solve_problem  # noqa: E402
from distplan.solvers.bench.cli import bench, plot  # noqa: E402
from distplan.solvers.options import parse_option_pairs  # noqa: E402
from distplan.solvers.registry import Command, kinds, problem_kind  # noqa: E402
from distplan.solvers.registry import solvers as registered_solvers  # noqa: E402

EXIT_OK, EXIT_SOLVER_ERROR, EXIT_BAD_INPUT, EXIT_NO_PLAN = 0, 1, 2, 3

_state = {"debug": False}


def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="print tracebacks of unexpected errors")
    ] = False,
) -> None:
    _state["debug"] = debug


def _fail(lines: Sequence[str], code: int = EXIT_BAD_INPUT) -> NoReturn:
    for line in lines:
        typer.echo(f"error: {line}", err=True)
    raise typer.Exit(code=code)


def _validation_lines(source: str, error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{source}: {location}: {item['msg']}")
    return lines


def _guarded(function: Callable[..., Any]) -> Callable[..., Any]:
    """Map the error contract onto exit codes: bad input 2, anything unexpected 1, never a traceback."""

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except ValidationError as exc:
            _fail(_validation_lines("input", exc))
        except _Lines as exc:
            _fail(exc.lines)
        except (BadInput, BackendMissing) as exc:
            _fail([str(exc)])
        except Exception as exc:
            if _state["debug"]:
                raise
            _fail(
                [
                    f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"
                ],
                EXIT_SOLVER_ERROR,
            )

    run.__name__ = function.__name__
    run.__doc__ = function.__doc__
    run.__signature__ = inspect.signature(function, eval_str=True)  # type: ignore[attr-defined]
    run.__annotations__ = get_type_hints(function, include_extras=True)
    return run


def _load_problem(path: Path) -> Any:
    try:
        return load_instance(path)
    except ValidationError as exc:
        raise _Lines(_validation_lines(str(path), exc)) from exc


class _Lines(BadInput):
    """Several bad-input lines at once (one per invalid field)."""

    def __init__(self, lines: list[str]):
        super().__init__(lines[0].split(": ", 1)[0], "; ".join(lines))
        self.lines = lines

    def __str__(self) -> str:
        return "\n".join(self.lines)


def _write_text(data: str, out: Path | None) -> None:
    if out is None:
        typer.echo(data)
        return
    try:
        out.write_text(data + "\n", encoding="utf-8")
    except OSError as exc:
        raise BadInput(str(out), f"cannot write: {exc.strerror or exc}") from exc


@_guarded
def solve(
    instance: Annotated[Path, typer.Argument(help="instance JSON file")],
    solver: Annotated[
        str, typer.Option(help="solver name (see `distplan solvers`) or auto")
    ] = "auto",
    time_limit: Annotated[float, typer.Option(help="seconds")] = 60.0,
    seed: Annotated[int, typer.Option(help="random seed, 0 to 2^31-1")] = 0,
    threads: Annotated[int, typer.Option(help="worker threads")] = 1,
    option: Annotated[
        list[str] | None, typer.Option("--option", help="solver option KEY=VALUE (repeatable)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="write the result JSON here")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the result JSON instead of a summary")
    ] = False,
) -> None:
    """Solve an instance and print the plan and its objective (exit 0 plan, 1 error, 3 no plan)."""
    problem = _load_problem(instance)
    result = solve_problem(
        problem,
        solver,
        time_limit=time_limit,
        seed=seed,
        threads=threads,
        options=parse_option_pairs(option or []),
    )
    payload = result.to_json()
    if out is not None:
        _write_text(payload, out)
    if as_json:
        typer.echo(payload)
    else:
        _print_summary(problem, result)
    if result.status is SolveStatus.ERROR:
        raise typer.Exit(code=EXIT_SOLVER_ERROR)
    if result.status not in HAS_PLAN:
        raise typer.Exit(code=EXIT_NO_PLAN)


def _print_summary(problem: Any, result: SolveResult) -> None:
    kind = problem_kind(problem.kind)
    typer.echo(result.summary())
    if result.objective is not None:
        typer.echo(f"  {kind.objective_label}: {result.objective:.6g}")
    if result.plan is not None and result.status in HAS_PLAN and kind.describe is not None:
        for line in kind.describe(problem, result.plan):
            typer.echo(f"  {line}")
    if result.reason:
        typer.echo(f"  reason: {result.reason}")
    for violation in result.violations:
        typer.echo(f"  violation: {violation}")


@_guarded
def evaluate(
    instance: Annotated[Path, typer.Argument(help="instance JSON file")],
    result_file: Annotated[
        Path, typer.Argument(metavar="RESULT", help="result JSON from `solve --out`")
    ],
) -> None:
    """Re-check a result's plan with the kind's independent evaluator (exit 0 feasible, 1 not, 2 bad input)."""
    problem = _load_problem(instance)
    raw = read_json(result_file)
    try:
        result = SolveResult.model_validate(raw)
    except ValidationError as exc:
        raise _Lines(_validation_lines(str(result_file), exc)) from exc
    if result.kind != problem.kind:
        raise BadInput(
            f"{result_file}: kind",
            f"result is for {result.kind!r}, the instance is {problem.kind!r}",
        )
    if result.instance_name != problem.name:
        raise BadInput(
            f"{result_file}: instance_name",
            f"result is for instance {result.instance_name!r}, not {problem.name!r}",
        )
    if result.instance_hash is not None and result.instance_hash != content_hash(problem):
        raise BadInput(
            f"{result_file}: instance_hash",
            f"result was solved on other content ({result.instance_hash}) than {instance} ({content_hash(problem)})",
        )
    if result.plan is None:
        raise BadInput(f"{result_file}: plan", f"the result has no plan (status {result.status})")
    evaluation = problem_kind(problem.kind).evaluate(problem, result.plan)
    verdict = {
        "feasible": evaluation.feasible,
        "objective": evaluation.objective,
        "violations": evaluation.violations,
    }
    typer.echo(json.dumps(verdict))
    raise typer.Exit(code=EXIT_OK if evaluation.feasible else EXIT_SOLVER_ERROR)


@_guarded
def list_solvers(
    kind: Annotated[str | None, typer.Option(help="only solvers of this problem kind")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List the registered solvers: name, kind, role, capabilities, availability."""
    if kind is not None:
        problem_kind(kind)  # raises BadInput listing the known kinds
    rows: list[dict[str, Any]] = [
        {
            "name": s.name,
            "kind": s.kind,
            "role": s.role.value,
            "available": s.available,
            "deterministic": s.deterministic,
            "honours_time_limit": s.honours_time_limit,
            "options": {
                key: f"{option.meaning} ({option.accepts()})"
                for key, option in s.extra_options.items()
            },
            "description": s.description,
        }
        for s in registered_solvers(kind)
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "kind", "role", "available", "description")
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["kind"]),
            str(row["role"]),
            "yes" if row["available"] else "no",
            str(row["description"]),
        )
    Console().print(table)


@_guarded
def schema(
    kind: Annotated[str, typer.Argument(help="problem kind (see `distplan solvers`), or `result`")],
) -> None:
    """Print the JSON Schema of one problem kind's instances, or of the result record."""
    document = SolveResult.model_json_schema() if kind == "result" else problem_schema(kind)
    typer.echo(json.dumps(document, indent=1))


# --- importers and generators, mounted from the kinds' registrations -------------------------


def _with_out(command: Command) -> Callable[..., None]:
    """A typer callback: the kind's builder plus ``--out``; writes the instance JSON."""
    function = command.function
    hints = get_type_hints(function, include_extras=True)
    hints.pop("return", None)
    out_parameter = inspect.Parameter(
        "out",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Path | None, typer.Option(help="write the instance JSON here (default: print it)")
        ],
    )
    parameters = [
        parameter.replace(
            annotation=hints.get(name, parameter.annotation), kind=inspect.Parameter.KEYWORD_ONLY
        )
        for name, parameter in inspect.signature(function).parameters.items()
    ]

    def build(**kwargs: Any) -> None:
        out = kwargs.pop("out", None)
        try:
            problem = function(**kwargs)
        except BadInput:
            raise
        except ValueError as exc:  # an importer rejecting its input file or arguments
            raise BadInput(command.name, str(exc)) from exc
        _write_text(problem.model_dump_json(), out)

    build.__name__ = command.name
    build.__doc__ = command.help or function.__doc__
    build.__signature__ = inspect.Signature([*parameters, out_parameter])  # type: ignore[attr-defined]
    build.__annotations__ = {**hints, "out": out_parameter.annotation}
    return _guarded(build)


def _click_command(command: Command) -> Any:
    single = typer.Typer(
        add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False
    )
    single.command(command.name, help=command.help or command.function.__doc__)(_with_out(command))
    return typer.main.get_command(single)


def _mount(group: typer.Typer, commands_by_kind: dict[str, dict[str, Command]], verb: str) -> None:
    """Mount one subcommand per name; a name several kinds share dispatches on ``--kind``."""
    names = sorted({name for by_name in commands_by_kind.values() for name in by_name})
    for name in names:
        owners = {
            kind: by_name[name]
            for kind, by_name in sorted(commands_by_kind.items())
            if name in by_name
        }
        if len(owners) == 1:
            (command,) = owners.values()
            group.command(name, help=command.help or command.function.__doc__)(_with_out(command))
            continue
        _mount_dispatcher(group, name, owners, verb)


def _mount_dispatcher(group: typer.Typer, name: str, owners: dict[str, Command], verb: str) -> None:
    default = next(
        (kind for kind, command in owners.items() if command.default), next(iter(owners))
    )
    kinds_text = ", ".join(owners)

    @group.command(
        name,
        help=f"{verb} {name} for kind {kinds_text} (--kind, default {default}); --kind K --help for its options.",
        context_settings={
            "ignore_unknown_options": True,
            "allow_extra_args": True,
            "help_option_names": [],
        },
    )
    def dispatch(
        ctx: typer.Context,
        kind: Annotated[str, typer.Option(help=f"problem kind: {kinds_text}")] = default,
    ) -> None:
        if kind not in owners:
            _fail([f"--kind: {name} builds {kinds_text} instances, not {kind!r}"])
        code = _click_command(owners[kind]).main(
            args=list(ctx.args),
            prog_name=f"distplan {verb} {name} --kind {kind}",
            standalone_mode=False,
        )
        if isinstance(code, int) and code:
            raise typer.Exit(code=code)

    # The annotations name locals: give typer the evaluated ones (string annotations would not resolve).
    dispatch.__annotations__ = {
        "ctx": typer.Context,
        "kind": Annotated[str, typer.Option(help=f"problem kind: {kinds_text}")],
        "return": None,
    }


def build_app() -> typer.Typer:
    """The CLI with the kinds registered now (their importers and generators mounted)."""
    root = typer.Typer(
        add_completion=False,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        help="distplan: plans for distributed ML and edge systems.",
    )
    root.callback()(_root)
    root.command("solve")(solve)
    root.command("evaluate")(evaluate)
    root.command("solvers")(list_solvers)
    root.command("schema")(schema)
    root.command("bench")(_guarded(bench))
    root.command("plot")(_guarded(plot))
    import_app = typer.Typer(
        no_args_is_help=True, rich_markup_mode=None, help="Build instances from public data."
    )
    generate_app = typer.Typer(
        no_args_is_help=True, rich_markup_mode=None, help="Generate synthetic instances."
    )
    root.add_typer(import_app, name="import")
    root.add_typer(generate_app, name="generate")
    _mount(
        import_app,
        {kind: {c.name: c for c in problem_kind(kind).importers} for kind in kinds()},
        "import",
    )
    _mount(
        generate_app,
        {kind: {c.name: c for c in problem_kind(kind).generators} for kind in kinds()},
        "generate",
    )
    return root


app = build_app()


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` and return its exit code (usage errors: one line, exit 2)."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(build_app())
    try:
        code = command.main(args=args, prog_name="distplan", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        return EXIT_SOLVER_ERROR
    except (
        typer.TyperException
    ) as exc:  # usage errors: unknown option, missing or malformed argument
        context = getattr(exc, "ctx", None)
        where = f"{context.command_path}: " if context is not None else ""
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        typer.echo(f"error: {where}{message}", err=True)
        return EXIT_BAD_INPUT
    return code if isinstance(code, int) else EXIT_OK


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())


if __name__ == "__main__":
    main()
