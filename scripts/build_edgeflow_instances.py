"""Write the shipped edgeflow instances to ``instances/edgeflow``.

Usage::

    python scripts/build_edgeflow_instances.py [--data DIR] [--out DIR]

``--data`` is ``../shared/data`` beside the repository root by default. Every Paleo
spec of ``PALEO_SPECS`` (``dag_profiles/paleo/<spec>.json``) is imported at batch 1
by :func:`distplan.planners.edgeflow.importers.import_paleo` on every preset of
:data:`distplan.planners.edgeflow.presets.PRESETS`, and the PipeDream profiles of
``PIPEDREAM_PROFILES`` by :func:`~distplan.planners.edgeflow.importers.import_pipedream`
(whole layers), each written as ``<model>__<preset>.json`` (compact JSON). The output
is deterministic. ``LICENSE-data.md`` carries the notices of the sources and
``README.md`` says how the files were made and where the device figures come from.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from distplan.models import load_instance
from distplan.planners.edgeflow.importers import import_paleo, import_pipedream
from distplan.planners.edgeflow.presets import PRESETS

logger = logging.getLogger("build_edgeflow_instances")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "instances" / "edgeflow"

PALEO_SPECS: tuple[str, ...] = ("inception_v3", "vgg16")
#: (profile, images in its profiled minibatch, preset): the minibatch is the first
#: convolution's activation bytes over its per-image output tensor bytes.
PIPEDREAM_PROFILES: tuple[tuple[str, int, str], ...] = (("resnet18", 256, "jetson2-rpi4-wifi"),)


def build(data: Path, out: Path) -> list[Path]:
    """Write every instance; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in PALEO_SPECS:
        for preset in PRESETS:
            problem = import_paleo(
                data / "dag_profiles" / "paleo" / f"{spec}.json",
                devices=preset,
                name=f"{spec}__{preset}",
            )
            written.append(_write(out / f"{problem.name}.json", problem.model_dump_json()))
    for profile, minibatch, preset in PIPEDREAM_PROFILES:
        graph = data / "pipedream_profiles" / profile / "graph.txt"
        problem = import_pipedream(
            graph, minibatch=minibatch, devices=preset, name=f"{profile}_pipedream__{preset}"
        )
        written.append(_write(out / f"{problem.name}.json", problem.model_dump_json()))
    for path in written:
        load_instance(path)  # every file must load back
    return written


def _write(path: Path, text: str) -> Path:
    path.write_text(text + "\n", encoding="utf-8")
    logger.info("wrote %s", path)
    return path


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="where to write the instances"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build(args.data, args.out)


if __name__ == "__main__":
    main()
