"""Micro-batch task orders (GPipe fill-drain, 1F1B) and plan assembly."""

from __future__ import annotations

from ...models.pipeline import Phase, PipelinePlan, Schedule

Task = tuple[int, Phase]


def gpipe_order(microbatches: int) -> list[Task]:
    """GPipe fill-drain (Huang et al., 2019, Fig. 2c): all forwards, then backwards in reverse."""
    return [(m, "F") for m in range(microbatches)] + [
        (m, "B") for m in reversed(range(microbatches))
    ]


def one_f_one_b_order(stage: int, num_stages: int, microbatches: int) -> list[Task]:
    """1F1B (PipeDream-Flush / Narayanan et al., 2021, Sec. 2.2): warm-up forwards, then alternate.

    Stage ``s`` of ``S`` runs ``min(S - s - 1, K)`` forwards, then one forward and
    one backward in turn, then the remaining backwards.
    """
    warmup = min(num_stages - stage - 1, microbatches)
    order: list[Task] = [(m, "F") for m in range(warmup)]
    next_backward = 0
    for m in range(warmup, microbatches):
        order.append((m, "F"))
        order.append((next_backward, "B"))
        next_backward += 1
    order.extend((m, "B") for m in range(next_backward, microbatches))
    return order


def stage_orders(schedule: Schedule, num_stages: int, microbatches: int) -> list[list[Task]]:
    """Per-stage task orders of a fixed schedule family (``gpipe`` or ``1f1b``)."""
    if schedule == "gpipe":
        return [gpipe_order(microbatches) for _ in range(num_stages)]
    if schedule == "1f1b":
        return [one_f_one_b_order(s, num_stages, microbatches) for s in range(num_stages)]
    raise ValueError(f"schedule {schedule!r} has no fixed order; build it with the list scheduler")


def peak_in_flight(order: list[Task]) -> int:
    """Most micro-batches forwarded but not yet backwarded at any point of ``order``."""
    live = peak = 0
    for _, phase in order:
        live += 1 if phase == "F" else -1
        peak = max(peak, live)
    return peak


def make_plan(
    stage_of_layer: list[int],
    gpus_of_stage: list[list[int]],
    schedule: Schedule,
    microbatches: int,
    order_of_stage: list[list[Task]] | None = None,
) -> PipelinePlan:
    """Assemble a plan; fixed schedules get their order generated."""
    if order_of_stage is None:
        order_of_stage = stage_orders(schedule, len(gpus_of_stage), microbatches)
    return PipelinePlan(
        stage_of_layer=list(stage_of_layer),
        gpus_of_stage=[list(g) for g in gpus_of_stage],
        order_of_stage=[list(o) for o in order_of_stage],
        schedule=schedule,
    )
