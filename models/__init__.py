"""Typed problems, plans and results. Knows nothing of solvers.

Problem kinds register their models through the kind registry (:mod:`.kinds`);
:func:`load_instance` dispatches on an instance's ``kind``.
"""

from .base import PlanBase as PlanBase
from .base import ProblemBase as ProblemBase
from .base import StrictModel as StrictModel
from .errors import BackendMissing as BackendMissing
from .errors import BadInput as BadInput
from .errors import DistplanError as DistplanError
from .errors import SolverFailure as SolverFailure
from .instance import content_hash as content_hash
from .instance import load_instance as load_instance
from .instance import parse_instance as parse_instance
from .instance import problem_schema as problem_schema
from .kinds import known_kinds as known_kinds
from .network import Network as Network
from .network import NetworkLink as NetworkLink
from .network import NetworkNode as NetworkNode
from .result import HAS_PLAN as HAS_PLAN
from .result import Evaluation as Evaluation
from .result import Role as Role
from .result import SolveResult as SolveResult
from .result import SolveStatus as SolveStatus
from .result import relative_gap as relative_gap
