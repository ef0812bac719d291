"""Layer-aware microservice placement (Gu et al., INFOCOM 2022): solvers and evaluator.

Importing this package registers the ``microservice`` kind and its solvers.
"""

from . import baselines as baselines
from . import cp_model as cp_model
from . import greedy as greedy
from . import ilp as ilp
from . import kind as kind
from . import lp_rounding as lp_rounding
