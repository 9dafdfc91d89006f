"""Building TensorRT engines from the exported ONNX graphs (TensorRT 10 Python API).

Engines are built on the machine that runs them (like Isaac ROS does): an engine is specific to the GPU
model and the TensorRT version. :func:`engine_for` goes through the :class:`~.engine_cache.EngineCache`, so a
valid cached engine is reused and anything else is rebuilt.

Precision: ``fp32``, ``fp16`` or ``bf16`` (``BuilderFlag.FP16``/``BF16``). For the reduced precisions the
softmax, normalisation and reduction layers are asked to stay in fp32 (``PREFER_PRECISION_CONSTRAINTS``):
the attention logits and GroupNorm statistics are where fp16 loses accuracy (docs/design-notes.md §8.2).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from .deps import require
from .engine_cache import DeviceInfo, EngineCache, EngineKey, make_key
from .manifest import Manifest

log = logging.getLogger(__name__)

Shapes = dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


class EngineBuildError(RuntimeError):
    """TensorRT could not parse a graph or build an engine; the message carries the parser/builder errors."""


def current_device_info(device_index: int = 0) -> DeviceInfo:
    import torch

    major, minor = torch.cuda.get_device_capability(device_index)
    return DeviceInfo(torch.cuda.get_device_name(device_index), f"{major}.{minor}")


def profile_shapes(manifest: Manifest, graph: str, opt_batch: int = 1, max_batch: int = 4) -> Shapes:
    """(min, opt, max) shape per input of ``graph``: the static shape, or batch 1..max_batch for a
    dynamic-batch export."""
    out: Shapes = {}
    for inp in manifest.graphs[graph]["inputs"]:
        rest = tuple(int(d) for d in inp["shape"][1:])
        if manifest.dynamic_batch:
            if not 1 <= opt_batch <= max_batch:
                raise ValueError(f"need 1 <= opt_batch ({opt_batch}) <= max_batch ({max_batch})")
            out[inp["name"]] = ((1, *rest), (opt_batch, *rest), (max_batch, *rest))
        else:
            s = (int(inp["shape"][0]), *rest)
            out[inp["name"]] = (s, s, s)
    return out


def build_serialized_engine(onnx_path: str | Path, precision: str, shapes: Shapes, workspace_bytes: int | None = None,
                            trt: Any = None) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine (bytes). ``trt`` is the tensorrt module (injectable
    for tests)."""
    trt = trt or require("tensorrt", "building TensorRT engines")
    onnx_path = Path(onnx_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(str(trt.__version__).split(".")[0]) < 10:  # TensorRT 8/9 still need explicit batch requested
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(f"TensorRT could not parse {onnx_path}:\n  " + "\n  ".join(errors))
    config = builder.create_builder_config()
    if workspace_bytes:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    elif precision != "fp32":
        raise EngineBuildError(f"unknown precision {precision!r} (fp32|fp16|bf16)")
    if precision != "fp32":
        kept = _keep_sensitive_layers_fp32(network, trt)
        config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
        log.info("%s: %d softmax/normalisation/reduce layers kept in fp32", onnx_path.name, kept)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        name = network.get_input(i).name
        if name not in shapes:
            raise EngineBuildError(f"{onnx_path}: no profile shape for input {name!r}")
        mn, opt, mx = shapes[name]
        profile.set_shape(name, mn, opt, mx)
    config.add_optimization_profile(profile)
    t0 = time.perf_counter()
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise EngineBuildError(f"TensorRT failed to build an engine from {onnx_path} ({precision}); see the "
                               "TensorRT log above")
    log.info("built %s engine for %s in %.1f s", precision, onnx_path.name, time.perf_counter() - t0)
    return bytes(blob)


def _keep_sensitive_layers_fp32(network: Any, trt: Any) -> int:
    sensitive = {trt.LayerType.SOFTMAX, trt.LayerType.NORMALIZATION, trt.LayerType.REDUCE}
    n = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in sensitive:
            layer.precision = trt.float32
            n += 1
    return n


def engine_key(manifest: Manifest, graph: str, precision: str, device: DeviceInfo, tensorrt_version: str,
               opt_batch: int = 1, max_batch: int = 4) -> EngineKey:
    return make_key(manifest.onnx_path(graph), tensorrt_version, device, precision,
                    profile_shapes(manifest, graph, opt_batch, max_batch))


def engine_for(manifest: Manifest, graph: str, cache: EngineCache, precision: str, device: DeviceInfo,
               opt_batch: int = 1, max_batch: int = 4, workspace_bytes: int | None = None, trt: Any = None) -> Any:
    """The deserialized engine for ``graph``: from ``cache`` when its key matches, else built and stored."""
    trt = trt or require("tensorrt", "TensorRT engines")
    key = engine_key(manifest, graph, precision, device, str(trt.__version__), opt_batch, max_batch)
    shapes = profile_shapes(manifest, graph, opt_batch, max_batch)
    return cache.get_or_build(graph, key, lambda: build_serialized_engine(
        manifest.onnx_path(graph), precision, shapes, workspace_bytes, trt))
