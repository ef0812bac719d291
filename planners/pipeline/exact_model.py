"""The exact pipeline CP-SAT model (variables and constraints); see ``exact_cpsat``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...models.pipeline import PipelineProblem
from ...solvers.lazy import lazy_module

#: Default number of blocks the layers are coarsened to.
from .exact_data import (
    _INT_LIMIT,
    _RESOLUTION_DIGITS,
    _SUBTICKS,
    PAIR_BUDGET,
    Blocks,
    Group,
    Network,
    _down,
    _pow10_at_most,
    _up,
    one_sided_lag_terms,
    transfer_lag_terms,
)

if TYPE_CHECKING:
    from ortools.sat.python import cp_model
else:
    cp_model = lazy_module("ortools.sat.python.cp_model", "ortools")


# ---------------------------------------------------------------------------- model


@dataclass
class Scales:
    """Integer units of the model: seconds per tick, bytes per memory and transfer unit."""

    tick_s: float
    horizon: int
    memory_unit: float
    memory_q: int
    transfer_unit: float
    lag_q: int


@dataclass
class CpModel:
    """The CP-SAT model and the variables needed to read a plan back."""

    model: cp_model.CpModel
    scales: Scales
    slots: int
    in_stage: list[list[cp_model.IntVar]]
    uses: list[list[tuple[Group, cp_model.IntVar]]]
    start_f: list[list[cp_model.IntVar]]
    start_b: list[list[cp_model.IntVar]]
    end_f: list[list[cp_model.IntVar]]
    end_b: list[list[cp_model.IntVar]]
    makespan: cp_model.IntVar
    lag_mode: str
    sizes: dict[str, int] = field(default_factory=dict)


def horizon_s(problem: PipelineProblem, net: Network, slots: int, span: int) -> float:
    """Seconds a serial schedule of any plan takes in the model (valid start-time horizon)."""
    k = problem.microbatches
    speeds = [g.speed for g in problem.cluster.gpus]
    work = k * sum(x.forward_s + x.backward_s for x in problem.layers) / min(speeds)
    n = problem.num_gpus
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    max_latency = max((net.latency[i][j] for i, j in pairs), default=0.0)
    min_bandwidth = min((net.bandwidth[i][j] for i, j in pairs), default=math.inf)
    activations = sum(x.activation_bytes for x in problem.layers)
    parameters = sum(x.parameter_bytes for x in problem.layers)
    stage_pairs = slots * min(span, slots)
    lags = 2 * k * stage_pairs * (max_latency + activations / min_bandwidth)
    allreduce = 2 * max(n - 1, 0) * (max_latency + parameters / min_bandwidth)
    return 1.01 * (work + lags + allreduce) + 1e-6


class _Builder:
    """Builds the CP-SAT model step by step; each method adds one family of constraints."""

    def __init__(
        self,
        problem: PipelineProblem,
        blocks: Blocks,
        groups: list[Group],
        net: Network,
        horizon_seconds: float,
    ):
        self.m = cp_model.CpModel()
        self.problem, self.blocks, self.groups, self.net = problem, blocks, groups, net
        self.k, self.n = problem.microbatches, problem.num_gpus
        self.speeds = [g.speed for g in problem.cluster.gpus]
        self.layers = problem.layers
        self.num_blocks = blocks.count
        self.slots = min(self.num_blocks, self.n)
        self.span = blocks.max_span
        self.factor = 1.0 + problem.optimizer_state_factor
        self.scales = self._scales(horizon_seconds)
        self.tick, self.horizon = self.scales.tick_s, self.scales.horizon

    def _scales(self, horizon_seconds: float) -> Scales:
        # A power of ten with 10**8 <= horizon / tick < 10**9: finer than 1 us up to a
        # 100 s horizon; coarser beyond, where finer ticks would break CP-SAT (see _INT_LIMIT).
        layers = self.layers
        tick = 10.0 ** (math.floor(math.log10(max(horizon_seconds, 1e-300))) - _RESOLUTION_DIGITS)
        horizon = _up(horizon_seconds / tick) + 1
        memory_top = max(
            max(g.memory_bytes for g in self.problem.cluster.gpus),
            self.factor * sum(x.parameter_bytes for x in layers),
            self.k * sum(x.activation_bytes for x in layers),
        )
        activation_top = max([x.activation_bytes for x in layers] + [1e-300])
        lag_q = _pow10_at_most(_INT_LIMIT / (10 * horizon))
        return Scales(
            tick, horizon, memory_top / 1e6, 10**4, activation_top * len(layers) / 1e6, lag_q
        )

    def ticks_down(self, seconds: float) -> int:
        """Seconds as ticks rounded down, clipped to the horizon (any larger value is infeasible alike)."""
        return min(max(0, _down(seconds / self.tick)), self.horizon + 1)

    def add_lower_bound(
        self, target, constant_s: float, per_unit_s: float, amount, amount_top: int, literals: list
    ) -> None:
        """``target >= floor((constant_s + per_unit_s * amount) / tick)`` when ``literals`` hold.

        ``lag_q * floor(x) > lag_q * (x - 1)``, so the integer form below admits the
        rounded-down real value; clipping a coefficient only weakens the constraint.
        """
        m, lag_q = self.m, self.scales.lag_q
        constant = self.ticks_down(constant_s)
        coefficient = _down(lag_q * per_unit_s / self.tick) if amount_top > 0 else 0
        coefficient = min(coefficient, _INT_LIMIT // max(amount_top, 1))
        if coefficient <= 0:
            if constant > 0:
                m.add(target >= constant).only_enforce_if(literals)
            return
        m.add(
            lag_q * target >= lag_q * constant + coefficient * amount - lag_q + 1
        ).only_enforce_if(literals)

    def partition(self) -> None:
        """Blocks to stage slots, edges forward, used slots a prefix; then replica groups."""
        m, num_blocks, slots = self.m, self.num_blocks, self.slots
        self.in_stage = [
            [m.new_bool_var(f"x_b{b}_s{s}") for s in range(slots)] for b in range(num_blocks)
        ]
        for b in range(num_blocks):
            m.add_exactly_one(self.in_stage[b])
        stage_of = [m.new_int_var(0, slots - 1, f"stage_b{b}") for b in range(num_blocks)]
        for b in range(num_blocks):
            m.add(stage_of[b] == sum(s * self.in_stage[b][s] for s in range(slots)))
        for u, v in self.blocks.edges:
            m.add(stage_of[u] <= stage_of[v])
        self.used = [m.new_bool_var(f"used_s{s}") for s in range(slots)]
        for s in range(slots):
            for b in range(num_blocks):
                m.add_implication(self.in_stage[b][s], self.used[s])
            m.add_bool_or([self.in_stage[b][s] for b in range(num_blocks)]).only_enforce_if(
                self.used[s]
            )
            if s > 0:
                m.add_implication(self.used[s], self.used[s - 1])
        m.add(self.used[0] == 1)
        self.uses: list[list[tuple[Group, cp_model.IntVar]]] = []
        for s in range(slots):
            row = [(group, m.new_bool_var(f"use_s{s}_g{group.mask}")) for group in self.groups]
            m.add(sum(v for _, v in row) == self.used[s])
            self.uses.append(row)
        for g in range(self.n):
            m.add_at_most_one(
                [v for s in range(slots) for group, v in self.uses[s] if group.mask >> g & 1]
            )

    def block_sum(self, values: list[float]) -> list[float]:
        """Per-block sums of a per-layer quantity."""
        return [
            sum(values[layer] for layer in self.blocks.layers_of_block[b])
            for b in range(self.num_blocks)
        ]

    def stage_sum(self, name: str, per_block: list[int], s: int) -> cp_model.IntVar:
        var = self.m.new_int_var(0, sum(per_block), f"{name}_s{s}")
        self.m.add(var == sum(per_block[b] * self.in_stage[b][s] for b in range(self.num_blocks)))
        return var

    def durations(self) -> None:
        """Stage parameters and stash in memory units; task durations floor(work / V_A) ticks."""
        m, tick, horizon, unit = self.m, self.tick, self.horizon, self.scales.memory_unit
        layers = self.layers
        self.par_q = [
            max(0, _down(v / unit)) for v in self.block_sum([x.parameter_bytes for x in layers])
        ]
        self.act_q = [
            max(0, _down(v / unit)) for v in self.block_sum([x.activation_bytes for x in layers])
        ]
        self.params = [self.stage_sum("params", self.par_q, s) for s in range(self.slots)]
        self.stash = [self.stage_sum("stash", self.act_q, s) for s in range(self.slots)]
        fwd_block = self.block_sum([x.forward_s for x in layers])
        bwd_block = self.block_sum([x.backward_s for x in layers])
        self.dur_f = [m.new_int_var(0, horizon, f"durf_s{s}") for s in range(self.slots)]
        self.dur_b = [m.new_int_var(0, horizon, f"durb_s{s}") for s in range(self.slots)]
        for s in range(self.slots):
            for dur, per_block in ((self.dur_f[s], fwd_block), (self.dur_b[s], bwd_block)):
                m.add(dur == 0).only_enforce_if(self.used[s].negated())
                for group, var in self.uses[s]:
                    sub = [
                        min(_down(w * _SUBTICKS / (group.speed * tick)), _SUBTICKS * (horizon + 1))
                        for w in per_block
                    ]
                    # _SUBTICKS * floor(x) > _SUBTICKS * x - _SUBTICKS >= sum(sub * in_stage) - _SUBTICKS
                    m.add(
                        _SUBTICKS * dur
                        >= sum(q * self.in_stage[b][s] for b, q in enumerate(sub)) - _SUBTICKS + 1
                    ).only_enforce_if(var)

    def intervals(self) -> None:
        """One machine per stage slot: its F and B intervals never overlap; B after its own F."""
        m, k, slots, horizon = self.m, self.k, self.slots, self.horizon

        def times(prefix: str) -> list[list[cp_model.IntVar]]:
            return [
                [m.new_int_var(0, horizon, f"{prefix}_m{i}_s{s}") for s in range(slots)]
                for i in range(k)
            ]

        self.start_f, self.end_f = times("sf"), times("ef")
        self.start_b, self.end_b = times("sb"), times("eb")
        for s in range(slots):
            machine = []
            for i in range(k):
                machine.append(
                    m.new_interval_var(
                        self.start_f[i][s], self.dur_f[s], self.end_f[i][s], f"F_m{i}_s{s}"
                    )
                )
                machine.append(
                    m.new_interval_var(
                        self.start_b[i][s], self.dur_b[s], self.end_b[i][s], f"B_m{i}_s{s}"
                    )
                )
                m.add(self.start_b[i][s] >= self.end_f[i][s])
            m.add_no_overlap(machine)
        for i in range(k - 1):
            m.add(self.start_f[i][0] <= self.start_f[i + 1][0])  # micro-batches are interchangeable

    def transfers(self) -> None:
        """Per stage pair: bytes fed forward, and lags between the F (B) of the two stages."""
        m, blocks, layers, slots = self.m, self.blocks, self.layers, self.slots
        producers = [
            layer
            for layer in range(len(layers))
            if any(
                blocks.block_of_layer[c] != blocks.block_of_layer[layer]
                for c in self.problem.successors[layer]
            )
        ]
        self.stage_pairs = [
            (s, t) for s in range(slots) for t in range(s + 1, min(slots, s + self.span + 1))
        ]
        consumer_in = {}
        for layer in producers:
            for t in range(1, slots):
                var = m.new_bool_var(f"y_l{layer}_s{t}")
                for c in self.problem.successors[layer]:
                    if blocks.block_of_layer[c] != blocks.block_of_layer[layer]:
                        m.add_implication(self.in_stage[blocks.block_of_layer[c]][t], var)
                consumer_in[layer, t] = var
        unit = self.scales.transfer_unit
        transfer_q = {
            layer: max(0, _down(layers[layer].activation_bytes / unit)) for layer in producers
        }
        groups = self.groups
        pair_count = sum(1 for a in groups for b in groups if not a.mask & b.mask) * len(
            self.stage_pairs
        )
        self.lag_mode = "pairs" if pair_count <= PAIR_BUDGET else "one-sided"
        for s, t in self.stage_pairs:
            feeds = m.new_bool_var(f"feeds_s{s}_t{t}")
            terms = []
            for layer in producers:
                z = m.new_bool_var(f"z_l{layer}_s{s}_t{t}")
                m.add_bool_or(
                    [
                        self.in_stage[blocks.block_of_layer[layer]][s].negated(),
                        consumer_in[layer, t].negated(),
                        z,
                    ]
                )
                m.add_implication(z, feeds)
                terms.append((transfer_q[layer], z))
            top = sum(q for q, _ in terms)
            nbytes = m.new_int_var(0, top, f"bytes_s{s}_t{t}")
            m.add(nbytes >= sum(q * z for q, z in terms))
            self._lags(s, t, feeds, nbytes, top)

    def _lags(self, s: int, t: int, feeds, nbytes, top: int) -> None:
        """Lower bounds on the forward and backward lag between stages ``s`` and ``t``."""
        m, net, unit = self.m, self.net, self.scales.transfer_unit
        lag_f = m.new_int_var(0, self.horizon, f"lagf_s{s}_t{t}")
        lag_b = m.new_int_var(0, self.horizon, f"lagb_s{s}_t{t}")
        if self.lag_mode == "pairs":
            for a, va in self.uses[s]:
                for b, vb in self.uses[t]:
                    if a.mask & b.mask:
                        continue
                    for lag, (latency, per_byte) in (
                        (lag_f, transfer_lag_terms(a, b, net, self.speeds)),
                        (lag_b, transfer_lag_terms(b, a, net, self.speeds)),
                    ):
                        self.add_lower_bound(
                            lag, latency, per_byte * unit, nbytes, top, [va, vb, feeds]
                        )
        else:
            for side in (s, t):
                for a, va in self.uses[side]:
                    for lag, sends in ((lag_f, side == s), (lag_b, side == t)):
                        terms = one_sided_lag_terms(a, sends, self.problem, net)
                        if terms is not None:
                            latency, per_byte = terms
                            self.add_lower_bound(
                                lag, latency, per_byte * unit, nbytes, top, [va, feeds]
                            )
        for i in range(self.k):
            m.add(self.start_f[i][t] >= self.end_f[i][s] + lag_f).only_enforce_if(feeds)
            m.add(self.start_b[i][s] >= self.end_b[i][t] + lag_b).only_enforce_if(feeds)

    def _memory_needs(self, s: int) -> list[tuple[int, list, int, int]]:
        """``(c, literals, beta, rhs)`` rows that can bind for stage slot ``s`` (c stashed micro-batches)."""
        alpha = _down(self.factor * self.scales.memory_q)
        par_top, act_top = sum(self.par_q), sum(self.act_q)
        gpus, memory_q = self.problem.cluster.gpus, self.scales.memory_q
        needs: list[tuple[int, list, int, int]] = []
        for group, var in self.uses[s]:
            kept: list[tuple[float, float]] = []
            for g in sorted(group.gpus, key=lambda g: (-self.speeds[g], gpus[g].memory_bytes)):
                mem = gpus[g].memory_bytes
                if any(v >= self.speeds[g] and mm <= mem for v, mm in kept):
                    continue  # dominated by a faster GPU with less memory
                kept.append((self.speeds[g], mem))
                share = self.speeds[g] / group.speed
                rhs = _up(mem / self.scales.memory_unit * memory_q)
                for c in range(1, self.k + 1):
                    beta = _down(c * share * memory_q)
                    if alpha * par_top + beta * act_top <= rhs:
                        continue  # cannot bind, whatever the stage holds
                    needs.append((c, [var], beta, rhs))
        return needs

    def memory(self) -> None:
        """Weights + cap * share * activations <= memory, cap >= stashed micro-batches."""
        m, k = self.m, self.k
        alpha = _down(self.factor * self.scales.memory_q)
        self.memory_rows = 0
        for s in range(self.slots):
            needs = self._memory_needs(s)
            if not needs:
                continue
            cap = m.new_int_var(1, k, f"cap_s{s}")
            at_least = {c: m.new_bool_var(f"cap_s{s}_ge{c}") for c in range(2, k + 1)}
            for c in range(2, k + 1):
                m.add(cap >= c).only_enforce_if(at_least[c])
                m.add(cap <= c - 1).only_enforce_if(at_least[c].negated())
            for c, literals, beta, rhs in needs:
                extra = [at_least[c]] if c >= 2 else []
                m.add(alpha * self.params[s] + beta * self.stash[s] <= rhs).only_enforce_if(
                    literals + extra
                )
                self.memory_rows += 1
            if any(c >= 2 for c, *_ in needs):
                held = []
                for i in range(k):
                    size = m.new_int_var(0, self.horizon, f"held_m{i}_s{s}")
                    held.append(
                        m.new_interval_var(
                            self.start_f[i][s], size, self.end_b[i][s], f"stash_m{i}_s{s}"
                        )
                    )
                m.add_cumulative(held, [1] * k, cap)

    def objective(self) -> None:
        """All-reduce lower bounds per stage, the makespan and the search strategy."""
        m, k = self.m, self.k
        par_top, unit = sum(self.par_q), self.scales.memory_unit
        self.makespan = m.new_int_var(0, self.horizon, "makespan")
        for s in range(self.slots):
            allreduce = m.new_int_var(0, self.horizon, f"allreduce_s{s}")
            for group, var in self.uses[s]:
                if group.size < 2:
                    continue
                steps = 2 * (group.size - 1)
                self.add_lower_bound(
                    allreduce, steps * group.ring_latency_s, 0.0, self.params[s], 0, [var]
                )
                links = ((group.link_latency_s, group.link_s_per_byte), *group.exact_links)
                for latency, s_per_byte in links:
                    per_unit = steps * s_per_byte / group.size * unit
                    self.add_lower_bound(
                        allreduce, steps * latency, per_unit, self.params[s], par_top, [var]
                    )
            for i in range(k):
                m.add(self.makespan >= self.end_b[i][s] + allreduce)
            m.add(self.makespan >= k * (self.dur_f[s] + self.dur_b[s]) + allreduce)
        m.minimize(self.makespan)
        # Search: partition and groups first, then every task as early as possible
        # (left-justified schedules; without this a single worker improved the
        # makespan one tick at a time).
        choices = [v for row in self.in_stage for v in row] + [
            v for row in self.uses for _, v in row
        ]
        m.add_decision_strategy(choices, cp_model.CHOOSE_FIRST, cp_model.SELECT_MAX_VALUE)
        starts = [v for rows in (self.start_f, self.start_b) for row in rows for v in row]
        m.add_decision_strategy(starts, cp_model.CHOOSE_LOWEST_MIN, cp_model.SELECT_MIN_VALUE)

    def result(self) -> CpModel:
        sizes = {
            "blocks": self.num_blocks,
            "stage_slots": self.slots,
            "groups": len(self.groups),
            "stage_pairs": len(self.stage_pairs),
            "memory_rows": self.memory_rows,
        }
        return CpModel(
            self.m,
            self.scales,
            self.slots,
            self.in_stage,
            self.uses,
            self.start_f,
            self.start_b,
            self.end_f,
            self.end_b,
            self.makespan,
            self.lag_mode,
            sizes,
        )


def build_model(
    problem: PipelineProblem,
    blocks: Blocks,
    groups: list[Group],
    net: Network,
    horizon_seconds: float,
) -> CpModel:
    """Build the CP-SAT model (see the module docstring of ``exact_cpsat``).

    Every time lies in ``[0, horizon_seconds]``: a serial schedule of any plan
    fits (see :func:`horizon_s`), and a warm start proves that the optimum fits
    below its own simulated time.
    """
    builder = _Builder(problem, blocks, groups, net, horizon_seconds)
    builder.partition()
    builder.durations()
    builder.intervals()
    builder.transfers()
    builder.memory()
    builder.objective()
    return builder.result()
