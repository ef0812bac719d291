"""The exact pipeline CP-SAT model (variables and constraints); see ``exact_cpsat``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from ...models.pipeline import PipelineProblem

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


def build_model(
    problem: PipelineProblem,
    blocks: Blocks,
    groups: list[Group],
    net: Network,
    horizon_seconds: float,
) -> CpModel:
    """Build the CP-SAT model (see the module docstring).

    Every time lies in ``[0, horizon_seconds]``: a serial schedule of any plan
    fits (see :func:`horizon_s`), and a warm start proves that the optimum fits
    below its own simulated time.
    """
    m = cp_model.CpModel()
    k = problem.microbatches
    n = problem.num_gpus
    speeds = [g.speed for g in problem.cluster.gpus]
    layers = problem.layers
    num_blocks = blocks.count
    slots = min(num_blocks, n)
    span = blocks.max_span
    factor = 1.0 + problem.optimizer_state_factor

    # ---- scales
    # A power of ten with 10**8 <= horizon / tick < 10**9: finer than 1 us up to a
    # 100 s horizon; coarser beyond, where finer ticks would break CP-SAT (see _INT_LIMIT).
    tick = 10.0 ** (math.floor(math.log10(max(horizon_seconds, 1e-300))) - _RESOLUTION_DIGITS)
    horizon = _up(horizon_seconds / tick) + 1
    memory_top = max(
        max(g.memory_bytes for g in problem.cluster.gpus),
        factor * sum(x.parameter_bytes for x in layers),
        k * sum(x.activation_bytes for x in layers),
    )
    memory_unit = memory_top / 1e6
    memory_q = 10**4
    activation_top = max([x.activation_bytes for x in layers] + [1e-300])
    transfer_unit = activation_top * len(layers) / 1e6
    lag_q = _pow10_at_most(_INT_LIMIT / (10 * horizon))
    scales = Scales(tick, horizon, memory_unit, memory_q, transfer_unit, lag_q)

    def ticks_down(seconds: float) -> int:
        """Seconds as ticks rounded down, clipped to the horizon (any larger value is infeasible alike)."""
        return min(max(0, _down(seconds / tick)), horizon + 1)

    def add_lower_bound(
        target, constant_s: float, per_unit_s: float, amount, amount_top: int, literals: list
    ) -> None:
        """``target >= floor((constant_s + per_unit_s * amount) / tick)`` when ``literals`` hold.

        ``lag_q * floor(x) > lag_q * (x - 1)``, so the integer form below admits the
        rounded-down real value; clipping a coefficient only weakens the constraint.
        """
        constant = ticks_down(constant_s)
        coefficient = _down(lag_q * per_unit_s / tick) if amount_top > 0 else 0
        coefficient = min(coefficient, _INT_LIMIT // max(amount_top, 1))
        if coefficient <= 0:
            if constant > 0:
                m.Add(target >= constant).OnlyEnforceIf(literals)
            return
        m.Add(lag_q * target >= lag_q * constant + coefficient * amount - lag_q + 1).OnlyEnforceIf(
            literals
        )

    # ---- partition
    in_stage = [[m.NewBoolVar(f"x_b{b}_s{s}") for s in range(slots)] for b in range(num_blocks)]
    for b in range(num_blocks):
        m.AddExactlyOne(in_stage[b])
    stage_of = [m.NewIntVar(0, slots - 1, f"stage_b{b}") for b in range(num_blocks)]
    for b in range(num_blocks):
        m.Add(stage_of[b] == sum(s * in_stage[b][s] for s in range(slots)))
    for u, v in blocks.edges:
        m.Add(stage_of[u] <= stage_of[v])
    used = [m.NewBoolVar(f"used_s{s}") for s in range(slots)]
    for s in range(slots):
        for b in range(num_blocks):
            m.AddImplication(in_stage[b][s], used[s])
        m.AddBoolOr([in_stage[b][s] for b in range(num_blocks)]).OnlyEnforceIf(used[s])
        if s > 0:
            m.AddImplication(used[s], used[s - 1])
    m.Add(used[0] == 1)

    # ---- replica groups
    uses: list[list[tuple[Group, cp_model.IntVar]]] = []
    for s in range(slots):
        row = [(group, m.NewBoolVar(f"use_s{s}_g{group.mask}")) for group in groups]
        m.Add(sum(v for _, v in row) == used[s])
        uses.append(row)
    for g in range(n):
        m.AddAtMostOne([v for s in range(slots) for group, v in uses[s] if group.mask >> g & 1])

    # ---- per-stage sums in model units
    def block_sum(values: list[float]) -> list[float]:
        return [
            sum(values[layer] for layer in blocks.layers_of_block[b]) for b in range(num_blocks)
        ]

    fwd_block = block_sum([x.forward_s for x in layers])
    bwd_block = block_sum([x.backward_s for x in layers])
    par_block = block_sum([x.parameter_bytes for x in layers])
    act_block = block_sum([x.activation_bytes for x in layers])
    par_q = [max(0, _down(v / memory_unit)) for v in par_block]
    act_q = [max(0, _down(v / memory_unit)) for v in act_block]

    def stage_sum(name: str, per_block: list[int], s: int) -> cp_model.IntVar:
        var = m.NewIntVar(0, sum(per_block), f"{name}_s{s}")
        m.Add(var == sum(per_block[b] * in_stage[b][s] for b in range(num_blocks)))
        return var

    params = [stage_sum("params", par_q, s) for s in range(slots)]
    stash = [stage_sum("stash", act_q, s) for s in range(slots)]

    # ---- durations: floor(work / V_A) ticks, summed per block in sub-ticks
    dur_f = [m.NewIntVar(0, horizon, f"durf_s{s}") for s in range(slots)]
    dur_b = [m.NewIntVar(0, horizon, f"durb_s{s}") for s in range(slots)]
    for s in range(slots):
        for dur, per_block in ((dur_f[s], fwd_block), (dur_b[s], bwd_block)):
            m.Add(dur == 0).OnlyEnforceIf(used[s].Not())
            for group, var in uses[s]:
                sub = [
                    min(_down(w * _SUBTICKS / (group.speed * tick)), _SUBTICKS * (horizon + 1))
                    for w in per_block
                ]
                # _SUBTICKS * floor(x) > _SUBTICKS * x - _SUBTICKS >= sum(sub * in_stage) - _SUBTICKS
                m.Add(
                    _SUBTICKS * dur
                    >= sum(q * in_stage[b][s] for b, q in enumerate(sub)) - _SUBTICKS + 1
                ).OnlyEnforceIf(var)

    # ---- intervals
    start_f = [[m.NewIntVar(0, horizon, f"sf_m{i}_s{s}") for s in range(slots)] for i in range(k)]
    end_f = [[m.NewIntVar(0, horizon, f"ef_m{i}_s{s}") for s in range(slots)] for i in range(k)]
    start_b = [[m.NewIntVar(0, horizon, f"sb_m{i}_s{s}") for s in range(slots)] for i in range(k)]
    end_b = [[m.NewIntVar(0, horizon, f"eb_m{i}_s{s}") for s in range(slots)] for i in range(k)]
    for s in range(slots):
        machine = []
        for i in range(k):
            machine.append(m.NewIntervalVar(start_f[i][s], dur_f[s], end_f[i][s], f"F_m{i}_s{s}"))
            machine.append(m.NewIntervalVar(start_b[i][s], dur_b[s], end_b[i][s], f"B_m{i}_s{s}"))
            m.Add(start_b[i][s] >= end_f[i][s])
        m.AddNoOverlap(machine)
    for i in range(k - 1):
        m.Add(start_f[i][0] <= start_f[i + 1][0])  # micro-batches are interchangeable

    # ---- transfers between stages
    producers = [
        layer
        for layer in range(len(layers))
        if any(
            blocks.block_of_layer[c] != blocks.block_of_layer[layer]
            for c in problem.successors[layer]
        )
    ]
    stage_pairs = [(s, t) for s in range(slots) for t in range(s + 1, min(slots, s + span + 1))]
    consumer_in = {}
    for layer in producers:
        for t in range(1, slots):
            var = m.NewBoolVar(f"y_l{layer}_s{t}")
            for c in problem.successors[layer]:
                if blocks.block_of_layer[c] != blocks.block_of_layer[layer]:
                    m.AddImplication(in_stage[blocks.block_of_layer[c]][t], var)
            consumer_in[layer, t] = var
    transfer_q = {
        layer: max(0, _down(layers[layer].activation_bytes / transfer_unit)) for layer in producers
    }
    pair_count = sum(1 for a in groups for b in groups if not a.mask & b.mask) * len(stage_pairs)
    lag_mode = "pairs" if pair_count <= PAIR_BUDGET else "one-sided"
    for s, t in stage_pairs:
        feeds = m.NewBoolVar(f"feeds_s{s}_t{t}")
        terms = []
        for layer in producers:
            z = m.NewBoolVar(f"z_l{layer}_s{s}_t{t}")
            m.AddBoolOr(
                [in_stage[blocks.block_of_layer[layer]][s].Not(), consumer_in[layer, t].Not(), z]
            )
            m.AddImplication(z, feeds)
            terms.append((transfer_q[layer], z))
        top = sum(q for q, _ in terms)
        nbytes = m.NewIntVar(0, top, f"bytes_s{s}_t{t}")
        m.Add(nbytes >= sum(q * z for q, z in terms))
        lag_f = m.NewIntVar(0, horizon, f"lagf_s{s}_t{t}")
        lag_b = m.NewIntVar(0, horizon, f"lagb_s{s}_t{t}")
        if lag_mode == "pairs":
            for a, va in uses[s]:
                for b, vb in uses[t]:
                    if a.mask & b.mask:
                        continue
                    for lag, (latency, per_byte) in (
                        (lag_f, transfer_lag_terms(a, b, net, speeds)),
                        (lag_b, transfer_lag_terms(b, a, net, speeds)),
                    ):
                        add_lower_bound(
                            lag, latency, per_byte * transfer_unit, nbytes, top, [va, vb, feeds]
                        )
        else:
            for side in (s, t):
                for a, va in uses[side]:
                    for lag, sends in ((lag_f, side == s), (lag_b, side == t)):
                        terms = one_sided_lag_terms(a, sends, problem, net)
                        if terms is not None:
                            latency, per_byte = terms
                            add_lower_bound(
                                lag, latency, per_byte * transfer_unit, nbytes, top, [va, feeds]
                            )
        for i in range(k):
            m.Add(start_f[i][t] >= end_f[i][s] + lag_f).OnlyEnforceIf(feeds)
            m.Add(start_b[i][s] >= end_b[i][t] + lag_b).OnlyEnforceIf(feeds)

    # ---- memory: weights + cap * share * activations, cap >= stashed micro-batches
    alpha = _down(factor * memory_q)
    par_top, act_top = sum(par_q), sum(act_q)
    memory_rows = 0
    for s in range(slots):
        needs: list[tuple[int, list, int, int]] = []  # (c, literals, beta, rhs)
        for group, var in uses[s]:
            kept: list[tuple[float, float]] = []
            for g in sorted(
                group.gpus, key=lambda g: (-speeds[g], problem.cluster.gpus[g].memory_bytes)
            ):
                mem = problem.cluster.gpus[g].memory_bytes
                if any(v >= speeds[g] and mm <= mem for v, mm in kept):
                    continue  # dominated by a faster GPU with less memory
                kept.append((speeds[g], mem))
                share = speeds[g] / group.speed
                rhs = _up(mem / memory_unit * memory_q)
                for c in range(1, k + 1):
                    beta = _down(c * share * memory_q)
                    if alpha * par_top + beta * act_top <= rhs:
                        continue  # cannot bind, whatever the stage holds
                    needs.append((c, [var], beta, rhs))
        if not needs:
            continue
        cap = m.NewIntVar(1, k, f"cap_s{s}")
        at_least = {c: m.NewBoolVar(f"cap_s{s}_ge{c}") for c in range(2, k + 1)}
        for c in range(2, k + 1):
            m.Add(cap >= c).OnlyEnforceIf(at_least[c])
            m.Add(cap <= c - 1).OnlyEnforceIf(at_least[c].Not())
        for c, literals, beta, rhs in needs:
            extra = [at_least[c]] if c >= 2 else []
            m.Add(alpha * params[s] + beta * stash[s] <= rhs).OnlyEnforceIf(literals + extra)
            memory_rows += 1
        if any(c >= 2 for c, *_ in needs):
            held = []
            for i in range(k):
                size = m.NewIntVar(0, horizon, f"held_m{i}_s{s}")
                held.append(m.NewIntervalVar(start_f[i][s], size, end_b[i][s], f"stash_m{i}_s{s}"))
            m.AddCumulative(held, [1] * k, cap)

    # ---- all-reduce and makespan
    makespan = m.NewIntVar(0, horizon, "makespan")
    for s in range(slots):
        allreduce = m.NewIntVar(0, horizon, f"allreduce_s{s}")
        for group, var in uses[s]:
            if group.size < 2:
                continue
            steps = 2 * (group.size - 1)
            add_lower_bound(allreduce, steps * group.ring_latency_s, 0.0, params[s], 0, [var])
            links = ((group.link_latency_s, group.link_s_per_byte), *group.exact_links)
            for latency, s_per_byte in links:
                per_unit = steps * s_per_byte / group.size * memory_unit
                add_lower_bound(allreduce, steps * latency, per_unit, params[s], par_top, [var])
        for i in range(k):
            m.Add(makespan >= end_b[i][s] + allreduce)
        m.Add(makespan >= k * (dur_f[s] + dur_b[s]) + allreduce)
    m.Minimize(makespan)
    # Search: partition and groups first, then every task as early as possible
    # (left-justified schedules; without this a single worker improved the
    # makespan one tick at a time).
    choices = [v for row in in_stage for v in row] + [v for row in uses for _, v in row]
    m.AddDecisionStrategy(choices, cp_model.CHOOSE_FIRST, cp_model.SELECT_MAX_VALUE)
    starts = [v for rows in (start_f, start_b) for row in rows for v in row]
    m.AddDecisionStrategy(starts, cp_model.CHOOSE_LOWEST_MIN, cp_model.SELECT_MIN_VALUE)
    sizes = {
        "blocks": num_blocks,
        "stage_slots": slots,
        "groups": len(groups),
        "stage_pairs": len(stage_pairs),
        "memory_rows": memory_rows,
    }
    return CpModel(
        m, scales, slots, in_stage, uses, start_f, start_b, end_f, end_b, makespan, lag_mode, sizes
    )
