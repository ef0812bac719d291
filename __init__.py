"""distplan: optimisation and planning for distributed ML and edge systems.

>>> import distplan
>>> problem = distplan.load_instance("instances/pipeline/vgg16__nvswitch-8__k4.json")  # doctest: +SKIP
>>> result = distplan.solve(problem, solver="auto", time_limit=10)  # doctest: +SKIP
"""

from .models import *  # noqa: F403
from .models import load_instance as load_instance
from .models import parse_instance as parse_instance
from .solvers import solve as solve
from .solvers import solvers as solvers

__version__ = "0.1.0"
