"""Helpers several planner kinds share: layer-DAG linearisation, the PipeDream profile reader."""

from .linearize import Linearization as Linearization
from .linearize import candidate_cuts as candidate_cuts
from .linearize import linearize as linearize
from .pipedream_graph import Profile as Profile
from .pipedream_graph import layer_name as layer_name
from .pipedream_graph import parse_profile as parse_profile
