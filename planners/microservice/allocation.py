"""Served throughput of a set of deployable (service, server) pairs, by linear programming.

Once the layers are placed, what remains is to split every server's compute among
the services it can run and route the demand. Its LP relaxation (fractional
instance counts) is

    maximise   sum f[i,r,n]
    subject to sum_n f[i,r,n]        <= D_ir          (demand of i in region r)
               sum_r f[i,r,n]        <= mu_i x[i,n]   (instances serve mu_i each)
               sum_i c_i x[i,n]      <= C_n           (compute, millicores)
               0 <= x[i,n] <= cap[i,n] if (i, n) is deployable, else 0

:class:`ThroughputLP` keeps this LP in one HiGHS instance and switches pairs on
and off by changing the upper bound of ``x[i,n]``, so every re-solve starts from
the previous basis (a few dual simplex iterations). Its optimum ``Phi`` is the
"throughput of a placement" the greedy and LP-rounding heuristics maximise; it
upper-bounds what integer instance counts on the same pairs can serve.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ...models.microservice import MicroserviceProblem
from ...solvers.lazy import lazy_module
from ...solvers.quiet import stdout_to_stderr
from .formulation import FormulationIndex

if TYPE_CHECKING:
    import highspy
else:
    highspy = lazy_module("highspy", "highspy")


__all__ = ["ThroughputLP"]


class ThroughputLP:
    """The LP of the module docstring over the pairs of a :class:`FormulationIndex`.

    Parameters
    ----------
    problem:
        The problem.
    index:
        Pairs, instance caps and flow triples (only ``index.pairs`` can be enabled).
    """

    def __init__(self, problem: MicroserviceProblem, index: FormulationIndex) -> None:
        self.problem = problem
        self.pairs = list(index.pairs)
        self.cap = dict(index.cap)
        self.column = {pair: k for k, pair in enumerate(self.pairs)}
        self.enabled: set[tuple[int, int]] = set()
        n_x = len(self.pairs)
        flows = index.flows
        demand_rows = {key: k for k, key in enumerate(sorted({(i, r) for i, r, _ in flows}))}
        serve_rows = {pair: len(demand_rows) + k for k, pair in enumerate(self.pairs)}
        compute_rows = {
            n: len(demand_rows) + len(serve_rows) + n for n in range(len(problem.servers))
        }
        n_rows = len(demand_rows) + len(serve_rows) + len(compute_rows)
        self._demand_rows = demand_rows
        self._compute_rows = compute_rows
        self._regions_of_pair: dict[tuple[int, int], list[int]] = {}
        for i, r, n in flows:
            self._regions_of_pair.setdefault((i, n), []).append(r)

        columns: list[list[tuple[int, float]]] = []
        for i, n in self.pairs:
            spec = problem.services[i]
            columns.append(
                [
                    (serve_rows[(i, n)], -spec.service_rate_rps),
                    (compute_rows[n], spec.compute_per_instance),
                ]
            )
        for i, r, n in flows:
            columns.append([(demand_rows[(i, r)], 1.0), (serve_rows[(i, n)], 1.0)])
        starts, indices, values = [0], [], []
        for entries in columns:
            for row, value in sorted(entries):
                indices.append(row)
                values.append(value)
            starts.append(len(indices))

        row_upper = np.zeros(n_rows)
        for (i, r), row in demand_rows.items():
            row_upper[row] = index.demand[(i, r)]
        for n, row in compute_rows.items():
            row_upper[row] = problem.servers[n].compute_capacity
        lp = highspy.HighsLp()
        lp.num_col_ = n_x + len(flows)
        lp.num_row_ = n_rows
        lp.col_cost_ = np.concatenate([np.zeros(n_x), np.ones(len(flows))])
        lp.col_lower_ = np.zeros(lp.num_col_)
        lp.col_upper_ = np.concatenate([np.zeros(n_x), np.full(len(flows), highspy.kHighsInf)])
        lp.row_lower_ = np.full(n_rows, -highspy.kHighsInf)
        lp.row_upper_ = row_upper
        lp.sense_ = highspy.ObjSense.kMaximize
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
        lp.a_matrix_.index_ = np.array(indices, dtype=np.int32)
        lp.a_matrix_.value_ = np.array(values)
        with stdout_to_stderr():
            self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        self.highs.setOptionValue("presolve", "off")  # keep warm starts between re-solves
        # Enabling a pair relaxes a bound: the basis stays primal feasible, so
        # primal simplex resumes from it (about twice as fast as dual here).
        self.highs.setOptionValue("simplex_strategy", 4)
        self.highs.passModel(lp)
        self.value = 0.0
        self.solves = 0

    def __enter__(self) -> ThroughputLP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release HiGHS's global thread scheduler.

        HiGHS keeps one scheduler per process, sized by the first solve; a later
        solve asking for another ``threads`` value fails. Resetting it here lets
        the next MILP solve (``solve_milp``) size it again.
        """
        highspy.Highs.resetGlobalScheduler(True)

    def _solve(self) -> float:
        self.highs.run()
        self.solves += 1
        status = self.highs.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(
                f"throughput LP ended with status {self.highs.modelStatusToString(status)}"
            )
        return float(self.highs.getInfo().objective_function_value)

    def _set(self, pair: tuple[int, int], on: bool) -> None:
        self.highs.changeColBounds(self.column[pair], 0.0, float(self.cap[pair]) if on else 0.0)

    def enable(self, pairs: list[tuple[int, int]]) -> float:
        """Make ``pairs`` deployable (unknown pairs are ignored); return the new optimum, requests/s."""
        fresh = [pair for pair in pairs if pair in self.column and pair not in self.enabled]
        for pair in fresh:
            self._set(pair, True)
            self.enabled.add(pair)
        if fresh:
            self.value = self._solve()
        return self.value

    def set_enabled(self, pairs: list[tuple[int, int]]) -> float:
        """Make exactly ``pairs`` deployable; return the new optimum, requests/s."""
        wanted = {pair for pair in pairs if pair in self.column}
        changed = sorted(self.enabled ^ wanted)
        for pair in changed:
            self._set(pair, pair in wanted)
        self.enabled = wanted
        if changed:
            self.value = self._solve() if wanted else 0.0
        return self.value

    def gain(self, pair: tuple[int, int]) -> float:
        """Increase of the optimum if ``pair`` became deployable (the state is left unchanged)."""
        if pair not in self.column or pair in self.enabled:
            return 0.0
        self._set(pair, True)
        value = self._solve()
        self._set(pair, False)
        return max(0.0, value - self.value)

    def rates(self) -> dict[tuple[int, int], float]:
        """First-order value of one instance on every disabled pair, requests/s.

        From the duals of the current optimum (``alpha`` of the demand rows,
        ``gamma`` of the compute rows): ``mu_i * max_r (1 - alpha_ir) -
        c_i * gamma_n``, the reduced cost of ``x[i,n]`` once its flows are priced
        in. Positive when enabling the pair would raise the optimum.
        """
        if self.enabled:
            self._solve()  # the last run may have been a trial
        duals = (
            self.highs.getSolution().row_dual if self.enabled else np.zeros(self.highs.getNumRow())
        )
        out: dict[tuple[int, int], float] = {}
        services = self.problem.services
        for pair in self.pairs:
            if pair in self.enabled:
                continue
            i, n = pair
            unmet = max(
                1.0 - abs(duals[self._demand_rows[(i, r)]]) for r in self._regions_of_pair[pair]
            )
            spec = services[i]
            out[pair] = spec.service_rate_rps * unmet - spec.compute_per_instance * abs(
                duals[self._compute_rows[n]]
            )
        return out

    def instances(self) -> dict[tuple[int, int], float]:
        """Fractional instance counts of the current optimum, by enabled pair."""
        if not self.enabled:
            return {}
        self._solve()  # the last run may have been a trial
        values = self.highs.getSolution().col_value
        return {pair: float(values[self.column[pair]]) for pair in sorted(self.enabled)}

    @staticmethod
    def floor_counts(counts: dict[tuple[int, int], float]) -> dict[tuple[int, int], int]:
        """Integer instance counts: fractional counts rounded down (1e-6 slack)."""
        return {pair: math.floor(value + 1e-6) for pair, value in counts.items() if value > 1e-6}
