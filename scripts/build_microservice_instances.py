"""Write the shipped microservice instances to ``instances/microservice``.

Usage::

    python scripts/build_microservice_instances.py [--data PATH] [--out DIR]

``--data`` is the Docker Hub layer file ``top150_images_dockerhub.json``
(default: ``$DISTPLAN_IMAGE_LAYERS`` or ``/work/shared/data/image_layers/...``).
Each instance is built by :func:`distplan.planners.microservice.dockerhub.build_instance`
with the size and seed listed in ``INSTANCES``; the output is deterministic.
``LICENSE-data.md`` carries the MIT notice of the source data.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from distplan.planners.microservice.bounds import throughput_upper_bound
from distplan.planners.microservice.dockerhub import build_instance

logger = logging.getLogger("build_microservice_instances")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(
    os.environ.get(
        "DISTPLAN_IMAGE_LAYERS", "/work/shared/data/image_layers/top150_images_dockerhub.json"
    )
)
DEFAULT_OUT = REPO_ROOT / "instances" / "microservice"

#: (instance name, servers, services, seed)
INSTANCES: tuple[tuple[str, int, int, int], ...] = (
    ("small-4x10", 4, 10, 1),
    ("medium-8x30", 8, 30, 2),
    ("medium-12x50", 12, 50, 3),
    ("large-20x100", 20, 100, 4),
)

LICENSE_DATA = """\
# Data licence of the microservice instances

The files `*.json` in this folder are derived from Docker Hub official-image layer metadata (layer digests and
sizes, image names and pull counts) in `top150_images_dockerhub.json` of the Hermes research artifact by Paulo
Souza ("Paulo Severo"), https://github.com/paulosevero/hermes, snapshot commit
`36391a4d9d4cceaa0eef18972bf1db08b250a94a`. Servers, links, capacities and demands are synthetic, drawn by
`distplan.planners.microservice.dockerhub` (see `scripts/build_microservice_instances.py` for sizes and seeds).
The underlying facts are public Docker Hub registry metadata. The source file is distributed under this licence:

```
MIT License

Copyright (c) 2023 Paulo Severo

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
```
"""


def main(argv: list[str] | None = None) -> None:
    """Build every instance of ``INSTANCES`` and write it with the data licence."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="top150_images_dockerhub.json"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, servers, services, seed in INSTANCES:
        problem = build_instance(args.data, servers, services, seed, name=name)
        path = args.out / f"{name}.json"
        text = json.dumps(problem.model_dump(mode="json"), indent=1) + "\n"
        path.write_text(text, encoding="utf-8")
        logger.info(
            "%s: %d servers, %d services, %d layers, %d demands, demand %.1f rps, bound %.1f rps, "
            "storage %.2f GB",
            path.name,
            servers,
            services,
            len(problem.layers),
            len(problem.demands),
            problem.total_demand_rps,
            throughput_upper_bound(problem),
            sum(server.storage_bytes for server in problem.servers) / 1e9,
        )
    (args.out / "LICENSE-data.md").write_text(LICENSE_DATA, encoding="utf-8")


if __name__ == "__main__":
    main()
