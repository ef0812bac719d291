"""Pipeline planning (Luo et al., INFOCOM 2022): formulations, heuristics, baselines, simulator.

Importing this package registers the ``pipeline`` kind and its solvers.
"""

from . import baselines as baselines
from . import exact_cpsat as exact_cpsat
from . import kind as kind
from . import pipedream_dp as pipedream_dp
from . import topology_planner as topology_planner
