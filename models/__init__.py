"""Typed problems, plans and results. Knows nothing of solvers."""

from .base import StrictModel as StrictModel
from .instance import PROBLEM_TYPES as PROBLEM_TYPES
from .instance import Problem as Problem
from .instance import load_instance as load_instance
from .instance import parse_instance as parse_instance
from .instance import problem_schema as problem_schema
from .microservice import Borrow as Borrow
from .microservice import Demand as Demand
from .microservice import EdgeServer as EdgeServer
from .microservice import ImageLayer as ImageLayer
from .microservice import Microservice as Microservice
from .microservice import MicroservicePlan as MicroservicePlan
from .microservice import MicroserviceProblem as MicroserviceProblem
from .microservice import Route as Route
from .microservice import ServerLink as ServerLink
from .pipeline import GPU as GPU
from .pipeline import Cluster as Cluster
from .pipeline import PipelineLayer as PipelineLayer
from .pipeline import PipelinePlan as PipelinePlan
from .pipeline import PipelineProblem as PipelineProblem
from .result import HAS_PLAN as HAS_PLAN
from .result import Evaluation as Evaluation
from .result import Role as Role
from .result import SolveResult as SolveResult
from .result import SolveStatus as SolveStatus
from .result import relative_gap as relative_gap
