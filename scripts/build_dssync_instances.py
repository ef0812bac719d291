"""Write the shipped dssync instances to ``instances/dssync``.

Usage::

    python scripts/build_dssync_instances.py [--out DIR]

Each instance is built by :func:`distplan.planners.dssync.generator.generate_dssync`
with the arguments listed in ``INSTANCES`` (deterministic). Model sizes and
compute times come from public figures; ``instances/dssync/README.md`` lists the
sources.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from distplan.planners.dssync.generator import generate_dssync

logger = logging.getLogger("build_dssync_instances")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "instances" / "dssync"

#: Model bytes (fp32 parameters) and seconds of one local step (see the README).
RESNET50 = {"model_bytes": 25.6e6 * 4, "compute_s": 0.16}
VGG16 = {"model_bytes": 138.4e6 * 4, "compute_s": 0.30}
BERT_LARGE = {"model_bytes": 340e6 * 4, "compute_s": 0.50}

#: (instance name, generator arguments)
INSTANCES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("resnet50__2x4__nonblocking", {**RESNET50, "racks": 2, "workers_per_rack": 4}),
    (
        "resnet50__4x8__oversub4",
        {**RESNET50, "racks": 4, "workers_per_rack": 8, "oversubscription": 4},
    ),
    (
        "resnet50__4x8__dynamic-background",
        {
            **RESNET50,
            "racks": 4,
            "workers_per_rack": 8,
            "oversubscription": 4,
            "background": 0.6,
            "dynamic_background": True,
            "seed": 1,
        },
    ),
    (
        "bert-large__8x8__slow-uplink",
        {
            **BERT_LARGE,
            "racks": 8,
            "workers_per_rack": 8,
            "nic_gbps": 25,
            "slow_uplink": "3:16",
            "seed": 2,
        },
    ),
    (
        "resnet50__8x8__mixed-nics",
        {
            **RESNET50,
            "racks": 8,
            "workers_per_rack": 8,
            "oversubscription": 4,
            "mixed_nics": True,
            "seed": 3,
        },
    ),
    (
        "vgg16__4x8__contended-hosts",
        {
            **VGG16,
            "racks": 4,
            "workers_per_rack": 8,
            "nic_gbps": 25,
            "contended_hosts": 4,
            "seed": 4,
        },
    ),
    (
        "resnet50__16x16__oversub4-background",
        {
            **RESNET50,
            "racks": 16,
            "workers_per_rack": 16,
            "oversubscription": 4,
            "background": 0.5,
            "seed": 5,
        },
    ),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, arguments in INSTANCES:
        problem = generate_dssync(name=name, **arguments)
        path = args.out / f"{name}.json"
        path.write_text(
            json.dumps(problem.model_dump(mode="json"), indent=1) + "\n", encoding="utf-8"
        )
        logger.info("wrote %s", path)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
