"""The ``dssync`` instance generator: racks of hosts behind top-of-rack switches and a spine.

``distplan generate dssync --racks R --workers-per-rack W --oversubscription X
--model-bytes B ...`` builds one worker per host, a host link of the NIC rate to
its rack's switch, and a rack uplink of ``W * NIC / X`` to the spine
(oversubscription ``X``; 1 = non-blocking). The training task's target loss is
calibrated so that exact averaging every iteration reaches it after
``calibration_iterations`` iterations (the training simulator replays a
global-average schedule); the iteration cap is 20 times that.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer

from ...models.dssync import (
    BackgroundLoad,
    DssyncPlan,
    DssyncProblem,
    TrainingTask,
    Worker,
)
from ...models.errors import BadInput
from ...models.network import Network, NetworkLink, NetworkNode
from .training_sim import train

__all__ = ["generate_dssync"]

GBPS = 1e9 / 8  # bytes/s in one Gbit/s
MAX_RACKS = 64
MAX_WORKERS_PER_RACK = 64
#: Seconds each value of a dynamic background trace lasts.
TRACE_STEP_S = 0.5


def _slow_uplink(text: str | None, racks: int) -> tuple[int, float] | None:
    if not text:
        return None
    rack, sep, factor = text.partition(":")
    try:
        number, slow = int(rack), float(factor)
    except ValueError:
        raise BadInput(
            field="--slow-uplink", reason=f"expected RACK:FACTOR, got {text!r}"
        ) from None
    if not sep or not 0 <= number < racks:
        raise BadInput(
            field="--slow-uplink", reason=f"rack must be in 0..{racks - 1}, got {text!r}"
        )
    if not (1.0 <= slow < 1e6):
        raise BadInput(field="--slow-uplink", reason=f"factor must be in [1, 1e6), got {factor}")
    return number, slow


def generate_dssync(
    racks: Annotated[int, typer.Option(help="racks R")] = 4,
    workers_per_rack: Annotated[int, typer.Option(help="workers (hosts) per rack W")] = 4,
    oversubscription: Annotated[float, typer.Option(help="rack uplink = W * NIC / X")] = 1.0,
    model_bytes: Annotated[float, typer.Option(help="model size M in bytes")] = 102.4e6,
    nic_gbps: Annotated[float, typer.Option(help="NIC rate in Gbit/s")] = 10.0,
    compute_s: Annotated[float, typer.Option(help="seconds of one local step")] = 0.2,
    alpha_s: Annotated[float, typer.Option(help="per-step latency in seconds")] = 20e-6,
    background: Annotated[
        float, typer.Option(help="background load as a fraction of each uplink")
    ] = 0.0,
    dynamic_background: Annotated[bool, typer.Option(help="background as a random trace")] = False,
    slow_uplink: Annotated[
        str | None, typer.Option(help="RACK:FACTOR, one uplink FACTOR times slower")
    ] = None,
    mixed_nics: Annotated[bool, typer.Option(help="odd hosts get a NIC 2.5x faster")] = False,
    contended_hosts: Annotated[
        int, typer.Option(help="hosts whose compute is slowed by a trace")
    ] = 0,
    heterogeneity: Annotated[
        float, typer.Option(help="0 = IID data, 1 = label-skewed by rack")
    ] = 0.3,
    calibration_iterations: Annotated[
        int, typer.Option(help="iterations exact averaging needs")
    ] = 60,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    name: Annotated[str | None, typer.Option(help="instance name")] = None,
) -> DssyncProblem:
    """Build a rack/spine DS-Sync instance (see the module docstring).

    Raises
    ------
    BadInput
        When an argument is out of range; the field names the option.
    """
    checks = [
        ("--racks", 1 <= racks <= MAX_RACKS, f"must be in 1..{MAX_RACKS}"),
        (
            "--workers-per-rack",
            1 <= workers_per_rack <= MAX_WORKERS_PER_RACK,
            f"must be in 1..{MAX_WORKERS_PER_RACK}",
        ),
        ("--oversubscription", 0.1 <= oversubscription <= 1000, "must be in [0.1, 1000]"),
        ("--model-bytes", 1 <= model_bytes <= 1e12, "must be in [1, 1e12] bytes"),
        ("--nic-gbps", 0.01 <= nic_gbps <= 10_000, "must be in [0.01, 10000]"),
        ("--compute-s", 1e-6 <= compute_s <= 1e4, "must be in [1e-6, 1e4] seconds"),
        ("--alpha-s", 0 <= alpha_s <= 10, "must be in [0, 10] seconds"),
        ("--background", 0 <= background < 0.95, "must be in [0, 0.95)"),
        (
            "--contended-hosts",
            0 <= contended_hosts <= racks * workers_per_rack,
            "must be at most the hosts",
        ),
        ("--heterogeneity", 0 <= heterogeneity <= 1, "must be in [0, 1]"),
        ("--calibration-iterations", 1 <= calibration_iterations <= 2000, "must be in 1..2000"),
    ]
    for field, ok, reason in checks:
        if not ok:
            raise BadInput(field=field, reason=reason)
    slow = _slow_uplink(slow_uplink, racks)
    rng = np.random.default_rng(seed)
    nic = nic_gbps * GBPS
    nodes = [NetworkNode(name="spine")]
    links: list[NetworkLink] = []
    workers: list[Worker] = []
    loads: list[BackgroundLoad] = []
    contended = set(
        rng.choice(racks * workers_per_rack, size=contended_hosts, replace=False).tolist()
    )
    for r in range(racks):
        tor = f"tor{r}"
        nodes.append(NetworkNode(name=tor))
        uplink = workers_per_rack * nic / oversubscription
        if slow is not None and slow[0] == r:
            uplink /= slow[1]
        links.append(NetworkLink(source=tor, target="spine", bandwidth_bytes_per_s=uplink))
        if background > 0:
            for a, b in ((tor, "spine"), ("spine", tor)):
                if dynamic_background:
                    trace = (rng.random(64) * 2 * background * uplink).clip(0, 0.95 * uplink)
                    loads.append(
                        BackgroundLoad(
                            source=a,
                            target=b,
                            trace_bytes_per_s=trace.tolist(),
                            trace_step_s=TRACE_STEP_S,
                        )
                    )
                else:
                    loads.append(
                        BackgroundLoad(source=a, target=b, bytes_per_s=background * uplink)
                    )
        for h in range(workers_per_rack):
            host = f"r{r}h{h}"
            rate = nic * (2.5 if mixed_nics and h % 2 == 1 else 1.0)
            nodes.append(NetworkNode(name=host, role="compute"))
            links.append(NetworkLink(source=host, target=tor, bandwidth_bytes_per_s=rate))
            slowdown = None
            if len(workers) in contended:
                slowdown = (1.0 + rng.exponential(1.0, size=16)).round(3).tolist()
            workers.append(
                Worker(
                    name=f"w{r}_{h}",
                    host=host,
                    rack=f"rack{r}",
                    nic_bytes_per_s=rate,
                    compute_s=compute_s,
                    slowdown=slowdown,
                )
            )
    task = TrainingTask(
        loss="logistic",
        dimension=16,
        samples_per_worker=64,
        heterogeneity=heterogeneity,
        learning_rate=0.5,
        batch_size=16,
        target_loss=-1e20,  # calibrated below
        max_iterations=calibration_iterations,
        seed=seed,
    )
    # Ranks as a scheduler hands them out: not rack by rack (seeded shuffle).
    workers = [workers[k] for k in rng.permutation(len(workers))]
    label = name or f"{racks}x{workers_per_rack}"
    problem = DssyncProblem(
        name=label,
        network=Network(nodes=nodes, links=links),
        workers=workers,
        model_bytes=model_bytes,
        alpha_s=alpha_s,
        background=loads,
        training=task,
    )
    everyone = DssyncPlan.of_groups([[[w.name for w in workers]]])
    losses = train(problem, everyone).losses
    target = float(max(losses[max(0, calibration_iterations - 5) :]))
    calibrated = task.model_copy(
        update={"target_loss": target, "max_iterations": 20 * calibration_iterations}
    )
    return problem.model_copy(
        update={"training": TrainingTask.model_validate(calibrated.model_dump())}
    )
