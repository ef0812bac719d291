"""``distplan bench``: sweep instances x solvers x seeds, each run in its own process.

See ``solvers/bench/README.md`` for the command and its outputs.
"""

from .child import run_isolated as run_isolated
from .sweep import SweepConfig as SweepConfig
from .sweep import SweepOutcome as SweepOutcome
from .sweep import run_sweep as run_sweep
from .sweep import write_outputs as write_outputs
from .tasks import BenchTask as BenchTask

__all__ = ["BenchTask", "SweepConfig", "SweepOutcome", "run_isolated", "run_sweep", "write_outputs"]
