"""Pictures of results: ``plot_result`` dispatches to the kind's registered ``plot`` hook.

A kind draws its pictures in ``planners/<kind>/plot.py`` with the helpers here
(matplotlib is the optional extra ``distplan[plot]``, imported only when a
picture is drawn) and registers ``plot=`` in its ``ProblemKind``. A kind without
a hook gets :class:`NoPicture`: "no picture for kind X".
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..models.errors import BackendMissing, BadInput
from .registry import problem_kind

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["NoPicture", "check_png_path", "new_figure", "plot_result", "save_figure"]


class NoPicture(BadInput):
    """The kind registers no ``plot`` hook."""

    def __init__(self, kind: str):
        super().__init__(
            "kind", f"no picture for kind {kind!r} (its registration has no plot hook)"
        )


def new_figure(width_in: float, height_in: float) -> Figure:
    """A matplotlib figure detached from pyplot (no global state, no display needed).

    Raises
    ------
    BackendMissing
        When matplotlib is missing; the message says how to install it.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise BackendMissing("pictures need matplotlib: pip install 'distplan[plot]'") from exc
    return Figure(figsize=(width_in, height_in), layout="constrained")


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as a PNG to ``path`` and return the path.

    Raises
    ------
    BadInput
        When ``path`` does not end in ``.png`` or its directory does not exist.
    """
    path = check_png_path(path)
    figure.savefig(path, dpi=120)
    return path


def check_png_path(path: str | Path) -> Path:
    """``path`` as a Path, when it ends in ``.png`` and its directory exists.

    Raises
    ------
    BadInput
        Otherwise, naming ``--out``.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise BadInput("--out", f"{path}: pictures are written as .png files")
    if not path.parent.is_dir():
        raise BadInput("--out", f"{path.parent} is not a directory")
    return path


def plot_result(problem: Any, result: Any, path: str | Path) -> Path:
    """Draw ``result`` (a ``SolveResult`` with a plan) of ``problem`` into the PNG ``path``.

    The picture is drawn from the kind's evaluator's replay of the plan, not
    from the solver's own numbers.

    Raises
    ------
    NoPicture
        When the kind registers no ``plot`` hook.
    BadInput
        When the result is for another kind or has no plan, or ``path`` is not a
        writable ``.png`` path.
    """
    path = check_png_path(path)
    kind = problem_kind(problem.kind)
    hook = getattr(kind, "plot", None)
    if hook is None:
        raise NoPicture(problem.kind)
    if result.kind != problem.kind:
        raise BadInput(
            "RESULT", f"kind: result is for {result.kind!r}, the instance is {problem.kind!r}"
        )
    if result.plan is None:
        raise BadInput("RESULT", f"plan: the result has no plan (status {result.status})")
    hook(problem, result, path)
    return path
