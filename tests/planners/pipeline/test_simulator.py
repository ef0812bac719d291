"""Tests of the independent pipeline simulator against hand-computed iterations."""

from __future__ import annotations

import random

import pytest

from distplan.models.pipeline import GPU, Cluster, PipelineLayer, PipelinePlan, PipelineProblem
from distplan.planners.pipeline.simulator import evaluate_plan, simulate


def layer(name: str, f: float, b: float, act: float = 0.0, params: float = 0.0) -> PipelineLayer:
    return PipelineLayer(
        name=name, forward_s=f, backward_s=b, activation_bytes=act, parameter_bytes=params
    )


def cluster(
    bandwidth: list[list[float]],
    latency: list[list[float]] | None = None,
    speeds: list[float] | None = None,
    memory: float = 1e12,
) -> Cluster:
    n = len(bandwidth)
    speeds = speeds or [1.0] * n
    gpus = [GPU(name=f"gpu{i}", memory_bytes=memory, speed=speeds[i]) for i in range(n)]
    return Cluster(gpus=gpus, bandwidth_bytes_per_s=bandwidth, latency_s=latency)


def full(n: int, bandwidth: float) -> list[list[float]]:
    return [[0.0 if i == j else bandwidth for j in range(n)] for i in range(n)]


def problem(layers, edges, the_cluster, k, **extra) -> PipelineProblem:
    return PipelineProblem(
        name="t", layers=layers, edges=edges, cluster=the_cluster, microbatches=k, **extra
    )


def gpipe(k: int) -> list[tuple[int, str]]:
    return [(m, "F") for m in range(k)] + [(m, "B") for m in range(k)]


def plan(stage_of_layer, gpus_of_stage, order_of_stage, schedule="gpipe") -> PipelinePlan:
    return PipelinePlan(
        stage_of_layer=stage_of_layer,
        gpus_of_stage=gpus_of_stage,
        order_of_stage=order_of_stage,
        schedule=schedule,
    )


def two_stage_chain(k: int = 2) -> PipelineProblem:
    # Layer a (f=1, b=2) sends 100 bytes to layer b (f=1, b=2); link 100 B/s with 0.5 s latency,
    # so one transfer takes 0.5 + 100/100 = 1.5 s.
    return problem(
        [layer("a", 1, 2, act=100), layer("b", 1, 2)],
        [(0, 1)],
        cluster(full(2, 100.0), latency=[[0, 0.5], [0.5, 0]]),
        k,
    )


def test_single_stage_single_gpu_takes_k_times_forward_plus_backward():
    """One stage on one GPU with K=2 takes 2 * (f + b) and needs no transfer."""
    # f = 1 + 0.5, b = 2 + 1 on a speed-1 GPU: 2 * 4.5 = 9 s.
    p = problem([layer("a", 1, 2), layer("b", 0.5, 1)], [(0, 1)], cluster([[0.0]]), 2)
    ev = evaluate_plan(p, plan([0, 0], [[0]], [gpipe(2)]))
    assert ev.feasible and ev.violations == []
    assert ev.objective == pytest.approx(9.0)
    assert ev.metrics["iteration_s"] == pytest.approx(9.0)
    assert ev.metrics["busy_fraction"] == pytest.approx(1.0)
    assert ev.metrics["num_transfers"] == 0


def test_two_stage_gpipe_with_transfers():
    """Two stages, GPipe, K=2: transfers queue on the link and the iteration takes 12.5 s."""
    # GPU0: F0 [0,1], F1 [1,2].  Activations on link 0->1: mb0 [1,2.5], mb1 waits: [2.5,4].
    # GPU1: F0 [2.5,3.5], F1 [4,5], B0 [5,7], B1 [7,9].
    # Gradients on link 1->0: mb0 [7,8.5], mb1 [9,10.5].
    # GPU0: B0 [8.5,10.5], B1 [10.5,12.5]  ->  12.5 s.
    p = two_stage_chain()
    pl = plan([0, 1], [[0], [1]], [gpipe(2), gpipe(2)])
    ev = evaluate_plan(p, pl)
    assert ev.feasible
    assert ev.objective == pytest.approx(12.5)
    assert ev.metrics["compute_end_s"] == pytest.approx(12.5)
    assert ev.metrics["num_transfers"] == 4
    assert ev.metrics["transfer_bytes"] == pytest.approx(400.0)
    trace = simulate(p, pl)
    spans = {(t.stage, t.microbatch, t.phase): (t.start_s, t.end_s) for t in trace.tasks}
    assert spans[(1, 1, "F")] == pytest.approx((4.0, 5.0))
    assert spans[(0, 0, "B")] == pytest.approx((8.5, 10.5))
    second = [t for t in trace.transfers if t.kind == "activation" and t.index == 1][0]
    assert (second.ready_s, second.start_s, second.end_s) == pytest.approx((2.0, 2.5, 4.0))
    assert ev.metrics["busy_fraction"] == pytest.approx(12 / (2 * 12.5))


def test_two_stage_1f1b():
    """The 1F1B order on two stages interleaves the last stage and takes 12 s."""
    # GPU0: F0 [0,1], F1 [1,2]; activations mb0 [1,2.5], mb1 [2.5,4].
    # GPU1 (F0, B0, F1, B1): F0 [2.5,3.5], B0 [3.5,5.5], F1 [5.5,6.5], B1 [6.5,8.5].
    # Gradients: mb0 [5.5,7], mb1 [8.5,10].  GPU0: B0 [7,9], B1 [10,12]  ->  12 s.
    p = two_stage_chain()
    one_f_one_b = [(0, "F"), (0, "B"), (1, "F"), (1, "B")]
    ev = evaluate_plan(p, plan([0, 1], [[0], [1]], [gpipe(2), one_f_one_b], schedule="1f1b"))
    assert ev.feasible
    assert ev.objective == pytest.approx(12.0)


def test_replicas_split_work_by_speed_and_ring_allreduce():
    """Replicas of speed 1 and 3 split a micro-batch 1:3 and all-reduce in 2(R-1) ring steps."""
    # f=4, b=8: replica shares 1/4 and 3/4; both take 0.25*4/1 = 0.75*4/3 = 1 s forward, 2 s backward.
    # Compute ends at 3 s.  Ring with R=2: 2 steps of 600/2 = 300 bytes, each 0.5 + 300/100 = 3.5 s,
    # so the all-reduce takes 2 * (R-1) * (latency + P/R/bandwidth) = 7 s and the iteration 10 s.
    # Memory (optimizer factor 0): 600 + share * 1000 activations * 1 in flight = 850 and 1350 bytes.
    p = problem(
        [layer("a", 4, 8, act=1000, params=600)],
        [],
        cluster(full(2, 100.0), latency=[[0, 0.5], [0.5, 0]], speeds=[1.0, 3.0]),
        1,
        optimizer_state_factor=0.0,
    )
    pl = plan([0], [[0, 1]], [gpipe(1)])
    ev = evaluate_plan(p, pl)
    assert ev.feasible
    assert ev.metrics["compute_end_s"] == pytest.approx(3.0)
    assert ev.metrics["allreduce_s"] == pytest.approx([7.0])
    assert ev.objective == pytest.approx(10.0)
    assert ev.metrics["peak_memory_bytes"] == pytest.approx([850.0, 1350.0])
    assert ev.metrics["num_transfers"] == 4
    ring = simulate(p, pl).transfers
    assert [(t.index, t.src_gpu, t.dst_gpu, t.nbytes) for t in ring] == [
        (0, 0, 1, 300.0),
        (0, 1, 0, 300.0),
        (1, 0, 1, 300.0),
        (1, 1, 0, 300.0),
    ]


def test_replica_transfers_follow_interval_overlap():
    """Sharded transfers send each receiver the overlap of the share intervals."""
    # Stage 0 on GPUs 0,1 (speeds 1,1): intervals [0,.5), [.5,1); stage 1 on GPUs 2,3 (speeds 1,3):
    # [0,.25), [.25,1).  400 activation bytes: 0->2 100 B (1 s), 0->3 100 B (1 s), 1->3 200 B (2 s).
    # Stage 0 F [0,1] on both; GPU2 F [2,3]; GPU3 F waits for 1->3 until 3: [3,4].
    # B: GPU2 [3,4], GPU3 [4,5]; gradients 2->0 [4,5], 3->0 [5,6], 3->1 [5,7].
    # GPU0 B [6,7], GPU1 B [7,8]  ->  8 s (zero parameters: the all-reduces cost nothing).
    p = problem(
        [layer("a", 2, 2, act=400), layer("b", 4, 4)],
        [(0, 1)],
        cluster(full(4, 100.0), speeds=[1.0, 1.0, 1.0, 3.0]),
        1,
    )
    pl = plan([0, 1], [[0, 1], [2, 3]], [gpipe(1), gpipe(1)])
    ev = evaluate_plan(p, pl)
    assert ev.feasible
    assert ev.objective == pytest.approx(8.0)
    assert ev.metrics["num_transfers"] == 3 * 2 + 2 * 4
    activations = sorted(
        (t.src_gpu, t.dst_gpu, t.nbytes)
        for t in simulate(p, pl).transfers
        if t.kind == "activation"
    )
    assert activations == [(0, 2, 100.0), (0, 3, 100.0), (1, 3, 200.0)]


def test_transfer_routes_through_intermediate_gpu():
    """With no direct link, the transfer takes the widest path, its bottleneck and summed latency."""
    # 0->1 has no link; 0-2 is 100 B/s (0.1 s), 2-1 is 50 B/s (0.2 s): 100 bytes take 0.3 + 2 = 2.3 s.
    # F0 [0,1], activation [1,3.3], F1 [3.3,4.3], B1 [4.3,5.3], gradient [5.3,7.6], B0 [7.6,8.6].
    bandwidth = [[0, 0, 100], [0, 0, 50], [100, 50, 0]]
    latency = [[0, 0, 0.1], [0, 0, 0.2], [0.1, 0.2, 0]]
    p = problem(
        [layer("a", 1, 1, act=100), layer("b", 1, 1)], [(0, 1)], cluster(bandwidth, latency), 1
    )
    route = p.cluster.route(0, 1)
    assert route is not None and route.nodes == ("gpu0", "gpu2", "gpu1")
    assert route.bottleneck_bytes_per_s == 50
    assert route.latency_s == pytest.approx(0.3)
    ev = evaluate_plan(
        p,
        plan(
            [
                0,
                1,
            ],
            [[0], [1]],
            [gpipe(1), gpipe(1)],
        ),
    )
    assert ev.objective == pytest.approx(8.6)


def nodes(the_cluster: Cluster, src: int, dst: int) -> tuple[str, ...]:
    route = the_cluster.route(src, dst)
    assert route is not None
    return route.nodes


def test_matrix_form_routes_widest_then_hops_then_smallest_sequence():
    """The matrix form routes through GPUs: widest path, then fewest hops, then the smallest names."""
    wide_detour = cluster([[0, 1, 10], [1, 0, 10], [10, 10, 0]])
    assert nodes(wide_detour, 0, 1) == ("gpu0", "gpu2", "gpu1")
    # 0->3: 0-1-3 and 0-2-3 tie on width and hops; 0-4-5-3 is as wide but longer.
    bandwidth = full(6, 10.0)
    for i, j in [(0, 3), (1, 2), (1, 4), (1, 5), (2, 4), (2, 5), (0, 5), (4, 3)]:
        bandwidth[i][j] = bandwidth[j][i] = 0.0
    assert nodes(cluster(bandwidth), 0, 3) == ("gpu0", "gpu1", "gpu3")
    assert nodes(cluster(bandwidth), 3, 0) == ("gpu3", "gpu1", "gpu0")


def test_transfers_sharing_a_link_serialise():
    """Two transfers ready together on the same directed link run one after the other."""
    # a (stage 0, GPU0) feeds b (stage 1, GPU1) and c (stage 2, GPU2); GPU0-GPU2 has no link, so
    # a->c routes 0->1->2 and shares link 0->1 with a->b.  Both carry 100 bytes at 100 B/s.
    # F_a [0,1]; a->b [1,2]; a->c waits for link 0->1: [2,3]; F_b [2,2.5]; b->c is 0 bytes: 2.5.
    # F_c [3,4], B_c [4,5]; gradient c->a [5,6] (links 2->1, 1->0), c->b 0 bytes at 5.
    # B_b [5,6]; gradient b->a waits for link 1->0 until 6: [6,7]; B_a [7,8]  ->  8 s.
    bandwidth = [[0, 100, 0], [100, 0, 100], [0, 100, 0]]
    p = problem(
        [layer("a", 1, 1, act=100), layer("b", 0.5, 1), layer("c", 1, 1)],
        [(0, 1), (0, 2), (1, 2)],
        cluster(bandwidth),
        1,
    )
    pl = plan([0, 1, 2], [[0], [1], [2]], [gpipe(1)] * 3)
    ev = evaluate_plan(p, pl)
    assert ev.objective == pytest.approx(8.0)
    trace = simulate(p, pl)
    a_to_c = [
        t for t in trace.transfers if t.kind == "activation" and t.dst_gpu == 2 and t.src_gpu == 0
    ][0]
    assert (a_to_c.start_s, a_to_c.end_s) == pytest.approx((2.0, 3.0))


def test_zero_byte_transfer_costs_only_latency():
    """A stage pair with edges but no bytes orders the tasks and costs the route latency."""
    # F0 [0,1], 0-byte activation arrives at 1.25, F1 [1.25,2.25], B1 [2.25,3.25],
    # gradient at 3.5, B0 [3.5,4.5].
    p = problem(
        [layer("a", 1, 1), layer("b", 1, 1)],
        [(0, 1)],
        cluster(full(2, 100.0), latency=[[0, 0.25], [0.25, 0]]),
        1,
    )
    assert evaluate_plan(
        p, plan([0, 1], [[0], [1]], [gpipe(1), gpipe(1)])
    ).objective == pytest.approx(4.5)


@pytest.mark.parametrize("one_f_one_b", [False, True])
def test_uniform_chain_matches_the_pipeline_formula(one_f_one_b):
    """With free transfers, S equal stages take (K + S - 1) * (f + b) under GPipe and 1F1B."""
    num_stages, k = 4, 6
    layers = [layer(f"l{i}", 1, 2) for i in range(num_stages)]
    edges = [(i, i + 1) for i in range(num_stages - 1)]
    p = problem(layers, edges, cluster(full(num_stages, 1e9)), k)
    orders = []
    for s in range(num_stages):
        if not one_f_one_b:
            orders.append(gpipe(k))
            continue
        warmup = min(k, num_stages - s)
        order = [(m, "F") for m in range(warmup)]
        for m in range(k):
            order += [(m, "B")] + ([(m + warmup, "F")] if m + warmup < k else [])
        orders.append(order)
    pl = plan(list(range(num_stages)), [[s] for s in range(num_stages)], orders)
    assert evaluate_plan(p, pl).objective == pytest.approx((k + num_stages - 1) * 3)


def test_links_carry_one_transfer_at_a_time_in_ready_order():
    """On every directed link, transfers never overlap and are served in order of ready time."""
    p, pl = random_instance(seed=3, num_layers=40, num_stages=4, num_gpus=8, k=5)
    trace = simulate(p, pl)
    on_link: dict[str, list] = {}
    for transfer in trace.transfers:
        if transfer.nbytes > 0:
            route = p.cluster.route(transfer.src_gpu, transfer.dst_gpu)
            assert route is not None
            for resource in route.resources:
                on_link.setdefault(resource, []).append(transfer)
    assert on_link
    for transfers in on_link.values():
        transfers.sort(key=lambda x: x.start_s)
        for first, second in zip(transfers, transfers[1:], strict=False):
            assert second.start_s >= first.end_s
            assert second.ready_s >= first.ready_s


def test_memory_violation_names_gpu_and_breakdown():
    """Peak memory over the GPU's capacity is a violation with the weights/activations breakdown."""
    # Weights + optimizer (1 + 4) * 0.1 GB = 0.5 GB; GPipe with K=2 holds 2 * 0.3 GB activations.
    p = problem([layer("a", 1, 1, act=3e8, params=1e8)], [], cluster([[0.0]], memory=1e9), 2)
    ev = evaluate_plan(p, plan([0], [[0]], [gpipe(2)]))
    assert not ev.feasible
    assert ev.objective == pytest.approx(4.0)
    assert ev.violations == [
        "GPU 0 (gpu0) of stage 0 needs 1.1 GB at peak (weights+optimizer 0.5 GB, activations 0.6 GB), holds 1.0 GB"
    ]
    one_at_a_time = evaluate_plan(
        p, plan([0], [[0]], [[(0, "F"), (0, "B"), (1, "F"), (1, "B")]], "1f1b")
    )
    assert one_at_a_time.feasible
    assert one_at_a_time.metrics["peak_memory_bytes"] == pytest.approx([8e8])


def three_layer_problem(**extra) -> PipelineProblem:
    names = ["conv1", "conv2", "fc"]
    return problem(
        [layer(n, 1, 1, act=10) for n in names],
        [(0, 1), (1, 2)],
        cluster(full(3, 100.0)),
        2,
        **extra,
    )


VALID = {
    "stage_of_layer": [0, 1, 1],
    "gpus_of_stage": [[0], [1]],
    "order_of_stage": [gpipe(2), gpipe(2)],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stage_of_layer": [0, 1]}, "stage_of_layer has 2 entries, the problem has 3 layers"),
        ({"stage_of_layer": [0, 1, 5]}, "layer 2 (fc) is in stage 5, out of range (2 stages)"),
        (
            {"stage_of_layer": [0, 1, 0]},
            "layer 1 (conv2) is in stage 1 but feeds layer 2 (fc) in stage 0",
        ),
        ({"stage_of_layer": [0, 0, 0]}, "stage 1 is empty"),
        ({"gpus_of_stage": [[0], []]}, "stage 1 has no GPUs"),
        ({"gpus_of_stage": [[0], [0]]}, "GPU 0 is used by stages 0 and 1"),
        ({"gpus_of_stage": [[0], [1, 1]]}, "stage 1 lists GPU 1 2 times"),
        ({"gpus_of_stage": [[0], [9]]}, "GPU index 9 out of range (3 GPUs) in stage 1"),
        ({"order_of_stage": [gpipe(2)]}, "order_of_stage has 1 entries, the plan has 2 stages"),
        ({"order_of_stage": [gpipe(2), gpipe(2)[:-1]]}, "stage 1 order misses (microbatch 1, B)"),
        (
            {"order_of_stage": [gpipe(2), gpipe(2)[:-1] + [(1, "F")]]},
            "stage 1 order lists (1, F) twice",
        ),
        (
            {"order_of_stage": [gpipe(2) + [(2, "F")], gpipe(2)]},
            "stage 0 order has microbatch 2, out of range (2 micro-batches)",
        ),
    ],
)
def test_structural_violation_is_named_and_blocks_replay(change, message):
    """Each structural error yields one clear message and no objective."""
    ev = evaluate_plan(three_layer_problem(), plan(**{**VALID, **change}))
    assert not ev.feasible
    assert ev.objective is None
    assert message in ev.violations


@pytest.mark.parametrize(
    ("extra", "change", "message"),
    [
        (
            {"schedules": ["gpipe", "1f1b"]},
            {"schedule": "list"},
            "schedule 'list' not allowed by the problem (allowed: gpipe, 1f1b)",
        ),
        (
            {"allow_replication": False},
            {"gpus_of_stage": [[0], [1, 2]]},
            "stage 1 has 2 replicas but the problem forbids replication",
        ),
    ],
)
def test_policy_violation_is_named_but_still_replayed(extra, change, message):
    """Disallowed schedules and forbidden replication are violations, yet the plan keeps its time."""
    ev = evaluate_plan(three_layer_problem(**extra), plan(**{**VALID, **change}))
    assert not ev.feasible
    assert ev.violations == [message]
    assert ev.objective is not None and ev.objective > 0


def test_valid_three_layer_plan_has_no_violation():
    """The base plan of the structural tests is itself valid."""
    ev = evaluate_plan(three_layer_problem(), plan(**VALID))
    assert ev.feasible and ev.violations == []


def test_cyclic_wait_across_stages_is_a_deadlock():
    """A cross-stage cyclic wait is reported as a deadlock naming who waits for what."""
    # Stage 1 wants mb 1 first, but stage 0 sends mb 1 only after B0, which needs stage 1's B0.
    p = two_stage_chain()
    pl = plan(
        [0, 1],
        [[0], [1]],
        [[(0, "F"), (0, "B"), (1, "F"), (1, "B")], [(1, "F"), (0, "F"), (0, "B"), (1, "B")]],
    )
    ev = evaluate_plan(p, pl)
    assert not ev.feasible and ev.objective is None
    assert ev.violations == [
        "deadlock: no task can start; waiting: stage 0 (mb 0, B) on GPU 0 needs gradients from stage 1; "
        "stage 1 (mb 1, F) on GPU 1 needs activations from stage 0"
    ]
    assert simulate(p, pl).deadlock == ev.violations[0]


def test_backward_before_own_forward_is_a_deadlock():
    """A stage whose order runs B of a micro-batch before its F deadlocks and says so."""
    p = problem([layer("a", 1, 1)], [], cluster([[0.0]]), 1)
    ev = evaluate_plan(p, plan([0], [[0]], [[(0, "B"), (0, "F")]]))
    assert ev.objective is None
    assert ev.violations == [
        "deadlock: no task can start; waiting: stage 0 (mb 0, B) on GPU 0 needs its own forward (mb 0, F), "
        "which comes later in its order"
    ]


def random_instance(seed: int, num_layers: int, num_stages: int, num_gpus: int, k: int):
    """A layered random DAG, a contiguous partition, one or two GPUs per stage and 1F1B orders."""
    rng = random.Random(seed)
    layers = [
        layer(
            f"l{i}",
            rng.uniform(0.1, 1),
            rng.uniform(0.2, 2),
            rng.uniform(1e5, 1e7),
            rng.uniform(1e5, 1e7),
        )
        for i in range(num_layers)
    ]
    edges = [(i, i + 1) for i in range(num_layers - 1)]
    edges += sorted(
        {(i, i + rng.randint(2, 40)) for i in range(0, num_layers - 2, 3) if i + 2 < num_layers}
    )
    edges = sorted({(u, v) for u, v in edges if v < num_layers})
    bandwidth = [
        [0.0 if i == j else (1e11 if i // 8 == j // 8 else 1e10) for j in range(num_gpus)]
        for i in range(num_gpus)
    ]
    latency = [[0.0 if i == j else 1e-5 for j in range(num_gpus)] for i in range(num_gpus)]
    speeds = [rng.choice([1.0, 1.5, 2.0]) for _ in range(num_gpus)]
    p = problem(layers, edges, cluster(bandwidth, latency, speeds, memory=8e10), k)
    stage_of_layer = [i * num_stages // num_layers for i in range(num_layers)]
    per_stage = num_gpus // num_stages
    gpus_of_stage = [list(range(s * per_stage, (s + 1) * per_stage)) for s in range(num_stages)]
    orders = []
    for s in range(num_stages):
        warmup = min(k, num_stages - s)
        order = [(m, "F") for m in range(warmup)]
        for m in range(k):
            order.append((m, "B"))
            if m + warmup < k:
                order.append((m + warmup, "F"))
        orders.append(order)
    return p, plan(stage_of_layer, gpus_of_stage, orders, schedule="1f1b")


def test_same_plan_gives_identical_metrics():
    """Evaluating the same plan twice, or a copy of it, gives identical results."""
    p, pl = random_instance(seed=7, num_layers=60, num_stages=4, num_gpus=8, k=6)
    first = evaluate_plan(p, pl)
    second = evaluate_plan(p, pl)
    third = evaluate_plan(p.model_copy(deep=True), pl.model_copy(deep=True))
    assert first.objective is not None
    assert first == second == third
    assert simulate(p, pl) == simulate(p, pl)


def test_large_plan_replays_every_transfer():
    """16 stages x 16 micro-batches on 16 GPUs with a 1000-layer DAG replays completely (speed is benchmarked, not tested)."""
    p, pl = random_instance(seed=1, num_layers=1000, num_stages=16, num_gpus=16, k=16)
    ev = evaluate_plan(p, pl)
    assert ev.objective is not None and ev.metrics["num_transfers"] > 0
