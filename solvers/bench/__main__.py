"""Entry point of one run's child process: ``python -m distplan.solvers.bench TASK.json ROW.json``."""

import sys

from .child import main

sys.exit(main(sys.argv[1:]))
