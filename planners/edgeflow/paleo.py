"""Read a Paleo architecture spec (``nets/*.json``) into edgeflow layers at batch 1.

Format: ``/work/shared/data/dag_profiles/paleo/FORMAT.md`` (Paleo, Qi et al., ICLR
2017). Blocks namespace their layers as ``Block/layer``; an inner layer without
parents inherits the block's; a reference to a block means its ``endpoint``.
Shapes follow TensorFlow's rules: ``SAME`` gives ``ceil(H / stride)`` rows with
``pad_top = floor(pad_total / 2)``, ``VALID`` gives ``ceil((H - k + 1) / stride)``.
Work is counted in FLOPs (2 per multiply-accumulate for convolutions and inner
products, one per window element for pooling). Dropout is the identity at
inference and is elided. Tensors are float32 unless ``bytes_per_element`` says
otherwise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ...models.edgeflow import Layer
from ...models.errors import BadInput

__all__ = ["read_paleo"]

SPLITTABLE = {"Convolution", "Pooling", "AvgPool", "Concatenate"}


def _flatten(
    layers: dict[str, Any], prefix: str, inherited: list[str], field: str
) -> list[tuple[str, dict[str, Any], list[str]]]:
    """``(full name, spec, resolved-later parent refs)`` of every non-block layer, in file order."""
    out: list[tuple[str, dict[str, Any], list[str]]] = []
    for name, spec in layers.items():
        if not isinstance(spec, dict) or "type" not in spec:
            raise BadInput(
                field=f"{field}.{prefix}{name}", reason="a layer must be an object with a 'type'"
            )
        parents = list(spec.get("parents", []))
        local_names = set(layers)
        refs = [f"{prefix}{p}" if p in local_names else p for p in parents] or list(inherited)
        if spec["type"] == "Block":
            inner = spec.get("layers")
            if not isinstance(inner, dict) or "endpoint" not in spec:
                raise BadInput(
                    field=f"{field}.{prefix}{name}", reason="a Block needs 'layers' and 'endpoint'"
                )
            out.extend(_flatten(inner, f"{prefix}{name}/", refs, field))
        else:
            out.append((f"{prefix}{name}", spec, refs))
    return out


def _endpoints(layers: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Block name -> the full name of its endpoint layer."""
    out: dict[str, str] = {}
    for name, spec in layers.items():
        if isinstance(spec, dict) and spec.get("type") == "Block":
            inner_prefix = f"{prefix}{name}/"
            out.update(_endpoints(spec["layers"], inner_prefix))
            endpoint = f"{inner_prefix}{spec['endpoint']}"
            out[f"{prefix}{name}"] = out.get(endpoint, endpoint)
    return out


def _window(size: int, kernel: int, stride: int, padding: str, where: str) -> tuple[int, int]:
    """Output size and top padding of a window op along one axis (TensorFlow rules)."""
    if padding == "SAME":
        out = math.ceil(size / stride)
        pad_total = max((out - 1) * stride + kernel - size, 0)
        return out, pad_total // 2
    if padding == "VALID":
        if kernel > size:
            raise BadInput(
                field=where, reason=f"kernel {kernel} larger than the input ({size} rows)"
            )
        return math.ceil((size - kernel + 1) / stride), 0
    raise BadInput(field=where, reason=f"padding must be SAME or VALID, got {padding!r}")


def read_paleo(path: Path, bytes_per_element: int = 4) -> tuple[str, list[Layer]]:
    """The spec's name and its layers (batch 1), in file order.

    Raises
    ------
    BadInput
        Unreadable file, invalid JSON, unknown layer type, unknown parent or bad shape.
    """
    field = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(field=field, reason=f"cannot read: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise BadInput(
            field=field, reason=f"not valid JSON: {exc.msg} at line {exc.lineno}"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("layers"), dict):
        raise BadInput(field=f"{field}.layers", reason="expected an object of layers")
    endpoints = _endpoints(data["layers"])
    flat = _flatten(data["layers"], "", [], field)
    shape: dict[str, tuple[int, int, int]] = {}
    alias: dict[str, str] = {}  # elided layers (dropout) -> the layer they pass through
    layers: list[Layer] = []
    for name, spec, refs in flat:
        where = f"{field}.{name}"
        parents = []
        for ref in refs:
            ref = endpoints.get(ref, ref)
            ref = alias.get(ref, ref)
            if ref not in shape:
                raise BadInput(field=where, reason=f"unknown or later parent {ref!r}")
            parents.append(ref)
        kind = spec["type"]
        if kind == "Input":
            n, h, w, c = (int(v) for v in spec["tensor"])
            shape[name] = (h, w, c)
            layers.append(Layer(name=name, out_rows=h, out_bytes=h * w * c * bytes_per_element))
            continue
        if not parents:
            raise BadInput(field=where, reason="a non-input layer needs parents")
        h, w, c = shape[parents[0]]
        extra: dict[str, Any] = {}
        weights = 0.0
        if kind == "Dropout":
            alias[name] = parents[0]
            continue
        if kind == "Convolution":
            kh, kw, c_in, c_out = (int(v) for v in spec["filter"])
            sh, sw = int(spec["strides"][1]), int(spec["strides"][2])
            oh, pad = _window(h, kh, sh, spec.get("padding", "SAME"), where)
            ow, _ = _window(w, kw, sw, spec.get("padding", "SAME"), where)
            flops = 2.0 * kh * kw * c_in * c_out * oh * ow
            weights = (kh * kw * c_in + 1) * c_out * bytes_per_element
            out = (oh, ow, c_out)
            extra = {"kernel_rows": kh, "stride_rows": sh, "pad_top_rows": pad}
        elif kind in ("Pooling", "AvgPool"):
            kh, kw = int(spec["ksize"][1]), int(spec["ksize"][2])
            sh, sw = int(spec["strides"][1]), int(spec["strides"][2])
            oh, pad = _window(h, kh, sh, spec.get("padding", "VALID"), where)
            ow, _ = _window(w, kw, sw, spec.get("padding", "VALID"), where)
            flops = float(kh * kw * c * oh * ow)
            out = (oh, ow, c)
            extra = {"kernel_rows": kh, "stride_rows": sh, "pad_top_rows": pad}
        elif kind == "Concatenate":
            shapes = [shape[p] for p in parents]
            if any(s[:2] != (h, w) for s in shapes):
                raise BadInput(field=where, reason=f"concatenated shapes differ: {shapes}")
            flops, out = 0.0, (h, w, sum(s[2] for s in shapes))
        elif kind == "InnerProduct":
            outputs = int(spec["num_outputs"])
            flops = 2.0 * h * w * c * outputs
            weights = (h * w * c + 1) * outputs * bytes_per_element
            out = (1, 1, outputs)
        elif kind == "Softmax":
            flops, out = 3.0 * h * w * c, (1, 1, h * w * c)
        else:
            raise BadInput(field=where, reason=f"unsupported layer type {kind!r}")
        shape[name] = out
        layers.append(
            Layer(
                name=name,
                inputs=parents,
                work_flops=flops,
                out_rows=out[0],
                out_bytes=float(out[0] * out[1] * out[2] * bytes_per_element),
                weight_bytes=float(weights),
                splittable=kind in SPLITTABLE and out[0] > 1,
                **extra,
            )
        )
    return str(data.get("name", path.stem)), layers
