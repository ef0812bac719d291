"""Simulator, part 1: what makes a pipeline plan unreplayable, and what breaks the problem's rules.

Structural errors (wrong lengths, indices out of range, empty stages or GPU
sets, a GPU in two stages, an edge into an earlier stage, an order that misses
or repeats tasks, a sample split of the wrong shape or sum) make the plan
unreplayable. Policy violations (a schedule the problem does not allow,
forbidden replication, a replica with no sample) leave it replayable. Messages
of one kind beyond 20 are summarised as ``"... and N more"``.
"""

from __future__ import annotations

from ...models.pipeline import PipelinePlan, PipelineProblem, split_samples

__all__ = [
    "PHASES",
    "capped",
    "policy_violations",
    "samples_of_stage",
    "stages_text",
    "structural_violations",
]

MAX_MESSAGES = 20
PHASES = ("F", "B")


def capped(messages: list[str], what: str) -> list[str]:
    """At most :data:`MAX_MESSAGES` messages, then a count of the rest."""
    if len(messages) <= MAX_MESSAGES:
        return messages
    return messages[:MAX_MESSAGES] + [f"... and {len(messages) - MAX_MESSAGES} more {what}"]


def stages_text(stages: list[int]) -> str:
    """``[1, 2, 3]`` -> ``"1, 2 and 3"``."""
    if len(stages) == 1:
        return str(stages[0])
    if len(stages) == 2:
        return f"{stages[0]} and {stages[1]}"
    return ", ".join(map(str, stages[:-1])) + f" and {stages[-1]}"


def samples_of_stage(problem: PipelineProblem, plan: PipelinePlan) -> list[list[int]] | None:
    """Whole samples of every replica (the plan's, or :func:`split_samples`); None without N."""
    total = problem.samples_per_microbatch
    if total is None:
        return None
    if plan.samples_of_replica is not None:
        return plan.samples_of_replica
    speeds = [gpu.speed for gpu in problem.cluster.gpus]
    return [split_samples(total, [speeds[g] for g in gpus]) for gpus in plan.gpus_of_stage]


def _layer_violations(problem: PipelineProblem, plan: PipelinePlan) -> list[str]:
    layers, num_stages, stage_of_layer = problem.layers, plan.num_stages, plan.stage_of_layer
    if len(stage_of_layer) != len(layers):
        return [
            f"stage_of_layer has {len(stage_of_layer)} entries, the problem has {len(layers)} layers"
        ]
    bad = [
        f"layer {layer} ({layers[layer].name}) is in stage {stage}, out of range ({num_stages} stages)"
        for layer, stage in enumerate(stage_of_layer)
        if not 0 <= stage < num_stages
    ]
    if bad:
        return capped(bad, "layers out of range")
    used = set(stage_of_layer)
    out = capped(
        [f"stage {s} is empty" for s in range(num_stages) if s not in used], "empty stages"
    )
    backward = [
        f"layer {u} ({layers[u].name}) is in stage {stage_of_layer[u]} "
        f"but feeds layer {v} ({layers[v].name}) in stage {stage_of_layer[v]}"
        for u, v in problem.edges
        if stage_of_layer[u] > stage_of_layer[v]
    ]
    return out + capped(backward, "edges into earlier stages")


def _gpu_violations(problem: PipelineProblem, plan: PipelinePlan) -> list[str]:
    out: list[str] = []
    num_gpus = problem.num_gpus
    stages_of_gpu: dict[int, list[int]] = {}
    for stage, gpus in enumerate(plan.gpus_of_stage):
        if not gpus:
            out.append(f"stage {stage} has no GPUs")
        for gpu in gpus:
            if not 0 <= gpu < num_gpus:
                out.append(f"GPU index {gpu} out of range ({num_gpus} GPUs) in stage {stage}")
        for gpu in sorted(set(gpus)):
            if gpus.count(gpu) > 1:
                out.append(f"stage {stage} lists GPU {gpu} {gpus.count(gpu)} times")
            stages_of_gpu.setdefault(gpu, []).append(stage)
    for gpu, stages in sorted(stages_of_gpu.items()):
        if len(stages) > 1:
            out.append(f"GPU {gpu} is used by stages {stages_text(stages)}")
    return out


def _order_violations(problem: PipelineProblem, plan: PipelinePlan) -> list[str]:
    num_stages = plan.num_stages
    out: list[str] = []
    if len(plan.order_of_stage) != num_stages:
        out.append(
            f"order_of_stage has {len(plan.order_of_stage)} entries, the plan has {num_stages} stages"
        )
    k = problem.microbatches
    complete = {(m, phase) for m in range(k) for phase in PHASES}
    for stage, order in enumerate(plan.order_of_stage[:num_stages]):
        tasks = [(m, phase) for m, phase in order]
        if len(tasks) == 2 * k and set(tasks) == complete:
            continue
        problems = [
            f"stage {stage} order has microbatch {m}, out of range ({k} micro-batches)"
            for m, _ in tasks
            if not 0 <= m < k
        ]
        counts: dict[tuple[int, str], int] = {}
        for task in tasks:
            counts[task] = counts.get(task, 0) + 1
        for (m, phase), count in counts.items():
            if count > 1 and 0 <= m < k:
                times = "twice" if count == 2 else f"{count} times"
                problems.append(f"stage {stage} order lists ({m}, {phase}) {times}")
        problems += [
            f"stage {stage} order misses (microbatch {m}, {p})"
            for m, p in sorted(complete - counts.keys())
        ]
        out += capped(problems, f"problems in the order of stage {stage}")
    return out


def _sample_violations(problem: PipelineProblem, plan: PipelinePlan) -> list[str]:
    total = problem.samples_per_microbatch
    split = plan.samples_of_replica
    if total is None or split is None:
        return []
    if len(split) != plan.num_stages:
        return [
            f"samples_of_replica has {len(split)} entries, the plan has {plan.num_stages} stages"
        ]
    out: list[str] = []
    for stage, (samples, gpus) in enumerate(zip(split, plan.gpus_of_stage, strict=True)):
        if len(samples) != len(gpus):
            out.append(
                f"samples_of_replica[{stage}] has {len(samples)} entries, stage {stage} has {len(gpus)} replicas"
            )
        elif any(n < 0 for n in samples) or sum(samples) != total:
            out.append(
                f"samples_of_replica[{stage}] = {samples}: must be whole numbers >= 0 "
                f"summing to the {total} samples of a micro-batch"
            )
    return capped(out, "sample splits")


def structural_violations(problem: PipelineProblem, plan: PipelinePlan) -> list[str]:
    """Everything that makes the plan impossible to replay (empty: replayable)."""
    if plan.num_stages == 0:
        return ["the plan has no stages (gpus_of_stage is empty)"]
    return (
        _layer_violations(problem, plan)
        + _gpu_violations(problem, plan)
        + _order_violations(problem, plan)
        + _sample_violations(problem, plan)
    )


def policy_violations(problem: PipelineProblem, plan: PipelinePlan) -> list[str]:
    """Broken rules of the problem that still leave the plan replayable."""
    out: list[str] = []
    if plan.schedule not in problem.schedules:
        allowed = ", ".join(problem.schedules)
        out.append(f"schedule '{plan.schedule}' not allowed by the problem (allowed: {allowed})")
    if not problem.allow_replication:
        for stage, gpus in enumerate(plan.gpus_of_stage):
            if len(gpus) > 1:
                out.append(
                    f"stage {stage} has {len(gpus)} replicas but the problem forbids replication"
                )
    samples = samples_of_stage(problem, plan)
    if samples is not None:
        idle = [
            f"stage {stage} replica on GPU {gpus[r]} gets no sample of the "
            f"{problem.samples_per_microbatch}-sample micro-batch"
            for stage, (split, gpus) in enumerate(zip(samples, plan.gpus_of_stage, strict=True))
            for r, n in enumerate(split)
            if n == 0
        ]
        out += capped(idle, "replicas without samples")
    return out
