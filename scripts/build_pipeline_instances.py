"""Write the shipped pipeline instances to ``instances/pipeline``.

Usage::

    python scripts/build_pipeline_instances.py [--data DIR] [--out DIR]

``--data`` is the folder of PipeDream profiles (``<profile>/graph.txt``; default
``../shared/data/pipedream_profiles`` beside the repository root). Every profile of
``PROFILES`` is imported by :func:`distplan.planners.pipeline.pipedream_import.import_pipedream`
on every cluster preset of :data:`distplan.planners.pipeline.clusters.PRESETS` with K in
``MICROBATCHES`` micro-batches and written as ``<profile>__<preset>__k<K>.json`` (compact
JSON). The output is deterministic. ``LICENSE-pipedream.md`` carries the MIT notice of the
profiles and ``README.md`` says how the files were made.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from distplan.models import load_instance
from distplan.planners.pipeline.clusters import PRESETS, load_cluster
from distplan.planners.pipeline.pipedream_import import import_pipedream

logger = logging.getLogger("build_pipeline_instances")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "pipedream_profiles"
DEFAULT_OUT = REPO_ROOT / "instances" / "pipeline"

PROFILES: tuple[str, ...] = (
    "alexnet",
    "vgg16",
    "resnet18",
    "resnet50",
    "gnmt_large",
    "inception_v3",
)
MICROBATCHES: tuple[int, ...] = (4, 16)

LICENSE_PIPEDREAM = """\
# Data licence of the pipeline instances

The layer times, activation sizes, parameter sizes and layer graphs in the files `*.json` of this folder are
derived from the per-layer profiles (`profiler/*/profiles/<model>/graph.txt`) of PipeDream,
https://github.com/msr-fiddle/pipedream (snapshot commit `7db6a1c3e64996d5b319faec6ca38cb31bfea1c4`; the
profiles are unchanged since `11c40c015e1b7a8e668363c8521609ad48e287f3`). Clusters are distplan's presets
(`planners/pipeline/presets/__init__.py`). The source repository is distributed under this licence:

```
MIT License

Copyright (c) 2015 - present Microsoft Corporation

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

README_TEMPLATE = """\
# Pipeline instances

`<profile>__<preset>__k<K>.json`: the PipeDream profile `<profile>` (see `LICENSE-pipedream.md`) on the
cluster preset `<preset>` (`planners/pipeline/presets/__init__.py`: physical networks with shared NICs and
switches, documented with their sources) with K micro-batches per iteration, written by
`python scripts/build_pipeline_instances.py`. The profiled minibatch (256 samples for alexnet and resnet18, 128
for the others, read off the profiles' tensor sizes; see `PROFILED_MINIBATCH` in
`planners/pipeline/pipedream_import.py`) is one iteration's global batch split into K micro-batches of
`samples_per_microbatch` = minibatch / K whole samples: per micro-batch, layer times are the profiled
milliseconds / 1000 / K and activation bytes the profiled bytes / K; parameter bytes are unchanged; every layer
pays a launch overhead of 5 µs per task (`launch_overhead_s`); the data-loading time the profiler books on the
`Input` node is set to 0 (as PipeDream's optimizer does); layers are in a topological order and named
`nodeN: <layer>` after the profile's nodes. Other fields keep the model defaults.

| instance | layers | edges | GPUs | samples per micro-batch |
|---|---|---|---|---|
{rows}
"""


def main(argv: list[str] | None = None) -> None:
    """Build every (profile, preset, K) instance, check it loads, and write the licence and README."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="folder of PipeDream profiles"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[str] = []
    for profile in PROFILES:
        graph = args.data / profile / "graph.txt"
        for preset in PRESETS:
            cluster = load_cluster(preset)
            for k in MICROBATCHES:
                name = f"{profile}__{preset}__k{k}"
                problem = import_pipedream(graph, cluster, k, name=name)
                path = args.out / f"{name}.json"
                path.write_text(
                    json.dumps(problem.model_dump(mode="json"), separators=(",", ":")) + "\n",
                    encoding="utf-8",
                )
                if load_instance(path) != problem:
                    raise RuntimeError(f"{path}: does not load back as written")
                rows.append(
                    f"| `{name}` | {len(problem.layers)} | {len(problem.edges)} | {problem.num_gpus} "
                    f"| {problem.samples_per_microbatch} |"
                )
                logger.info(
                    "%s: %d layers, %d edges, %d GPUs",
                    path.name,
                    len(problem.layers),
                    len(problem.edges),
                    problem.num_gpus,
                )
    (args.out / "LICENSE-pipedream.md").write_text(LICENSE_PIPEDREAM, encoding="utf-8")
    (args.out / "README.md").write_text(
        README_TEMPLATE.format(rows="\n".join(rows)), encoding="utf-8"
    )


if __name__ == "__main__":
    main()
