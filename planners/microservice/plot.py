"""Picture of a microservice plan: placement map, storage split per server, served vs demanded.

Three panels, all computed from the plan and the evaluator's functions:

* placement: servers x services, the number of instances of each service on
  each server (``plan.instances``);
* storage per server, in MB: layers *stored* for one local image only,
  layers stored and *shared* (used by two or more local images, or lent to a
  neighbour), and layers *borrowed* from neighbours; the server's storage
  capacity is marked. Stored + shared over all servers is the evaluator's
  ``storage_used_bytes`` and borrowed its ``bytes_borrowed`` for a valid plan;
* requests/s per service: demanded (sum of its demands) and served, the
  evaluator's maximum flow (:func:`~distplan.planners.microservice.evaluator.served_throughput`)
  with only that service's instances; the served values add up to the
  evaluator's objective because services share no flow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...models.errors import BadInput
from ...models.microservice import MicroservicePlan, MicroserviceProblem
from ...solvers.plotting import new_figure, save_figure
from .evaluator import served_throughput

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "ServiceRates",
    "StorageSplit",
    "draw_placement",
    "plot_microservice",
    "service_rates",
    "storage_split",
]

#: Most services or servers whose instance counts are written inside the placement map.
ANNOTATE_MAX = 30
MB = 1e6


@dataclass(frozen=True)
class StorageSplit:
    """One server's layer bytes: stored for one local image only, shared, and borrowed (bytes)."""

    stored_bytes: float
    shared_bytes: float
    borrowed_bytes: float
    capacity_bytes: float


@dataclass(frozen=True)
class ServiceRates:
    """One service's demanded and served requests/s."""

    demanded_rps: float
    served_rps: float


def _check_shape(problem: MicroserviceProblem, plan: MicroservicePlan) -> None:
    servers, services = len(problem.servers), len(problem.services)
    if len(plan.instances) != services or any(len(row) != servers for row in plan.instances):
        raise BadInput("RESULT", f"plan: instances is not {services} services x {servers} servers")
    if len(plan.stored_layers) != servers or len(plan.borrowed_layers) != servers:
        raise BadInput(
            "RESULT",
            f"plan: stored_layers and borrowed_layers need one list per server ({servers})",
        )


def storage_split(problem: MicroserviceProblem, plan: MicroservicePlan) -> list[StorageSplit]:
    """Per server: bytes of layers stored for one local image, stored and shared, and borrowed.

    A stored layer is *shared* when two or more services with instances on the
    server use it (intra-server sharing) or a neighbour borrows it (inter-server
    sharing). A borrow listed twice from the same lender counts once, as in the
    evaluator.
    """
    _check_shape(problem, plan)
    size = problem.layer_size
    lent: list[set[str]] = [set() for _ in problem.servers]
    for borrows in plan.borrowed_layers:
        for borrow in borrows:
            if borrow.from_server < len(lent):
                lent[borrow.from_server].add(borrow.layer)
    out = []
    for n, server in enumerate(problem.servers):
        users: dict[str, int] = {}
        for i, service in enumerate(problem.services):
            if plan.instances[i][n] > 0:
                for digest in service.layers:
                    users[digest] = users.get(digest, 0) + 1
        stored = shared = 0.0
        for digest in set(plan.stored_layers[n]):
            if users.get(digest, 0) >= 2 or digest in lent[n]:
                shared += size.get(digest, 0)
            else:
                stored += size.get(digest, 0)
        borrowed = sum(
            size.get(layer, 0)
            for layer, _ in {(b.layer, b.from_server) for b in plan.borrowed_layers[n]}
        )
        out.append(StorageSplit(stored, shared, float(borrowed), float(server.storage_bytes)))
    return out


def service_rates(problem: MicroserviceProblem, plan: MicroservicePlan) -> list[ServiceRates]:
    """Per service: demanded requests/s and the evaluator's served requests/s."""
    _check_shape(problem, plan)
    demanded = [0.0] * len(problem.services)
    for demand in problem.demands:
        demanded[demand.service] += demand.rate_rps
    zero = [[0] * len(problem.servers) for _ in problem.services]
    out = []
    for i in range(len(problem.services)):
        only_i = [
            list(plan.instances[i]) if j == i else zero[j] for j in range(len(problem.services))
        ]
        out.append(ServiceRates(demanded[i], served_throughput(problem, only_i)))
    return out


def draw_placement(problem: MicroserviceProblem, plan: MicroservicePlan) -> Figure:
    """The three panels as a matplotlib figure (axes titled placement, storage, requests)."""
    split = storage_split(problem, plan)
    rates = service_rates(problem, plan)
    servers = [s.name for s in problem.servers]
    services = [s.name for s in problem.services]
    figure = new_figure(
        max(10.0, 0.25 * len(services) + 6.0), 4.0 + 0.25 * max(len(servers), 8) * 2
    )
    grid = figure.add_gridspec(2, 2, width_ratios=[max(len(services), 4), 8])
    placement, storage, requests = (
        figure.add_subplot(grid[0, 0]),
        figure.add_subplot(grid[0, 1]),
        figure.add_subplot(grid[1, :]),
    )

    counts = [[plan.instances[i][n] for i in range(len(services))] for n in range(len(servers))]
    image = placement.imshow(counts, cmap="Blues", aspect="auto")
    figure.colorbar(image, ax=placement, label="instances")
    placement.set_yticks(range(len(servers)), servers, fontsize="small")
    placement.set_xticks(range(len(services)), services, rotation=90, fontsize="x-small")
    if len(services) <= ANNOTATE_MAX and len(servers) <= ANNOTATE_MAX:
        for n, row in enumerate(counts):
            for i, count in enumerate(row):
                if count:
                    placement.text(i, n, str(count), ha="center", va="center", fontsize="x-small")
    placement.set_title("placement: instances per server and service")

    ys = range(len(servers))
    stored = [s.stored_bytes / MB for s in split]
    shared = [s.shared_bytes / MB for s in split]
    borrowed = [s.borrowed_bytes / MB for s in split]
    storage.barh(ys, stored, color="tab:blue", label="stored")
    storage.barh(ys, shared, left=stored, color="tab:purple", label="shared")
    storage.barh(
        ys,
        borrowed,
        left=[a + b for a, b in zip(stored, shared, strict=True)],
        color="tab:orange",
        label="borrowed",
    )
    storage.scatter(
        [s.capacity_bytes / MB for s in split],
        ys,
        marker="|",
        s=200,
        color="black",
        label="storage capacity",
        zorder=3,
    )
    storage.set_yticks(list(ys), servers, fontsize="small")
    storage.set_ylim(len(servers) - 0.5, -0.5)
    storage.set_xlabel("MB (1e6 bytes)")
    storage.set_title("layers per server")
    storage.legend(fontsize="x-small", loc="lower right")

    xs = range(len(services))
    requests.bar(
        [x - 0.2 for x in xs],
        [r.demanded_rps for r in rates],
        width=0.4,
        color="tab:gray",
        label="demanded",
    )
    requests.bar(
        [x + 0.2 for x in xs],
        [r.served_rps for r in rates],
        width=0.4,
        color="tab:green",
        label="served",
    )
    requests.set_xticks(list(xs), services, rotation=90, fontsize="x-small")
    requests.set_ylabel("requests/s")
    served = sum(r.served_rps for r in rates)
    requests.set_title(
        f"requests per service: served {served:.6g} of {problem.total_demand_rps:.6g} requests/s"
    )
    requests.legend(fontsize="small")
    figure.suptitle(problem.name)
    return figure


def plot_microservice(problem: MicroserviceProblem, result: Any, path: Path) -> None:
    """The kind's ``plot`` hook: the placement picture of ``result.plan`` as a PNG at ``path``."""
    save_figure(draw_placement(problem, result.plan), path)
