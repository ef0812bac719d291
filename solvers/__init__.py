"""What every problem shares: the registry, ``solve()``, backend glue, statuses and bounds."""

from ..models.result import HAS_PLAN as HAS_PLAN
from ..models.result import Role as Role
from ..models.result import SolveResult as SolveResult
from ..models.result import SolveStatus as SolveStatus
from .api import solve as solve
from .options import InfeasibleProblem as InfeasibleProblem
from .options import SolveOptions as SolveOptions
from .options import SolverOutput as SolverOutput
from .registry import ProblemKind as ProblemKind
from .registry import SolverSpec as SolverSpec
from .registry import get_solver as get_solver
from .registry import kinds as kinds
from .registry import problem_kind as problem_kind
from .registry import register_kind as register_kind
from .registry import register_solver as register_solver
from .registry import solvers as solvers
