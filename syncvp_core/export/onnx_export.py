"""Export a :class:`SyncVPModel` to the five ONNX files of the three static graphs, plus a manifest.

Uses the TorchScript-based tracer (``torch.onnx.export(..., dynamo=False)``) by default: the model's forward
has no data-dependent control flow, so a trace is exact, and it does not need ``onnxscript``. The
dynamo-based exporter can be selected (``dynamo=True``) where ``onnxscript`` is installed.

Every file is checked with ``onnx.checker`` and for what TensorRT will need (:mod:`.trt_compat`) before
the manifest is written; the manifest is written last and atomically, so a directory with a manifest is a
complete export.
"""
from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..checkpoint import file_sha256
from ..models.syncvp import SyncVPModel
from .deps import require
from .graphs import example_inputs, graph_module, graph_names, graph_specs
from .manifest import FORMAT, ExportError, Manifest, write_manifest
from .trt_compat import check_graph

log = logging.getLogger(__name__)

MIN_OPSET = 17
DEFAULT_OPSET = 17


def weights_sha256(model: torch.nn.Module) -> str:
    """Fingerprint of a model's weights (names, shapes, dtypes, values), independent of the file they came
    from: two exports of the same weights get the same fingerprint."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().contiguous().cpu()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def export_model(model: SyncVPModel, out_dir: str | Path, opset: int = DEFAULT_OPSET, batch: int = 1,
                 dynamic_batch: bool = False, source: dict[str, Any] | None = None, dynamo: bool = False,
                 graphs: tuple[str, ...] | None = None,
                 progress: Callable[[str], None] | None = None) -> Manifest:
    """Write ``<graph>.onnx`` for each graph and ``manifest.json`` to ``out_dir``; returns the manifest.

    ``source``: provenance for the manifest (checkpoint path and sha256, or random-init details).
    ``progress``: called with one line per step (the CLI prints them).
    """
    onnx = require("onnx", "ONNX export")
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old: the graphs need opset >= {MIN_OPSET} "
                          "(LayerNormalization, and what TensorRT parses best)")
    if batch < 1:
        raise ExportError(f"batch must be >= 1, got {batch}")
    say = progress or (lambda msg: log.info(msg))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.float().eval().cpu()
    cfg = model.cfg
    specs = graph_specs(cfg, batch)
    graphs = graph_names(cfg) if graphs is None else graphs
    # A dynamic batch is traced at batch >= 2: the dynamo exporter specialises a size-1 dimension to 1.
    trace_specs = graph_specs(cfg, max(batch, 2)) if dynamic_batch else specs
    entries: dict[str, Any] = {}
    gen = torch.Generator().manual_seed(0)
    for i, name in enumerate(graphs, 1):
        spec = specs[name]
        path = out_dir / f"{name}.onnx"
        say(f"[{i}/{len(graphs)}] exporting {name} -> {path}")
        module = graph_module(model, name)
        args = example_inputs(trace_specs[name], gen)
        dynamic_axes = None
        if dynamic_batch:
            dynamic_axes = {n: {0: "batch"} for n in spec.input_names + spec.output_names}
        _export_one(module, args, path, spec.input_names, spec.output_names, opset, dynamic_axes, dynamo)
        proto = onnx.load(str(path))
        if dynamic_batch:
            # The tracer's shape inference leaves some non-batch output dims symbolic once the batch is
            # dynamic; every dim but the batch is known from the config, so state it.
            _set_io_shapes(proto, spec)
            onnx.save(proto, str(path))
        try:
            onnx.checker.check_model(proto, full_check=True)
        except onnx.checker.ValidationError as e:
            raise ExportError(f"{path}: onnx.checker rejected the exported graph: {e}") from e
        problems = check_graph(proto, allow_dynamic_batch=dynamic_batch)
        if problems:
            raise ExportError(f"{path}: not deployable to TensorRT:\n  " + "\n  ".join(problems))
        ops = sorted({n.op_type for n in proto.graph.node})
        say(f"      ok: {len(proto.graph.node)} nodes, ops: {', '.join(ops)}")

        def io(specs_):
            return [{"name": s.name, "shape": ["batch" if dynamic_batch else s.shape[0], *s.shape[1:]],
                     "dtype": s.dtype} for s in specs_]

        entries[name] = {"file": path.name, "sha256": file_sha256(path), "inputs": io(spec.inputs),
                         "outputs": io(spec.outputs), "nodes": len(proto.graph.node), "ops": ops}
    data = {
        "format": FORMAT,
        "opset": opset,
        "batch": batch,
        "dynamic_batch": dynamic_batch,
        "exporter": "dynamo" if dynamo else "torchscript",
        "torch_version": torch.__version__,
        "onnx_version": onnx.__version__,
        "code_version": __version__,
        "source": {**(source or {}), "weights_sha256": weights_sha256(model)},
        "config": cfg.to_dict(),
        "graphs": entries,
    }
    manifest = write_manifest(out_dir, data)
    say(f"wrote {out_dir / 'manifest.json'}")
    return manifest


def _export_one(module, args, path: Path, input_names, output_names, opset, dynamic_axes, dynamo) -> None:
    kwargs: dict[str, Any] = dict(input_names=input_names, output_names=output_names, opset_version=opset)
    if dynamo:
        require("onnxscript", "the dynamo-based ONNX exporter")
        if dynamic_axes:
            kwargs["dynamic_shapes"] = _dynamo_batch_shapes(args)
        kwargs["dynamo"] = True
        kwargs["external_data"] = False
    else:
        kwargs.update(dynamo=False, do_constant_folding=True, dynamic_axes=dynamic_axes)
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about Python ints taken from tensor shapes; they are static by design here.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*dynamo.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="Constant folding")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", message="The feature will be removed")
        try:
            torch.onnx.export(module, args, str(path), **kwargs)
        except Exception as e:  # the exporters raise many types; name the graph and keep the cause
            raise ExportError(f"exporting {path.name} failed: {type(e).__name__}: {e}") from e


def _set_io_shapes(proto, spec) -> None:
    dims = {s.name: s.shape for s in spec.inputs + spec.outputs}
    for v in list(proto.graph.input) + list(proto.graph.output):
        shape = v.type.tensor_type.shape
        for i, d in enumerate(shape.dim):
            if i == 0:
                d.dim_param = "batch"
            else:
                d.dim_value = dims[v.name][i]


def _dynamo_batch_shapes(args) -> tuple:
    batch = torch.export.Dim("batch", min=1, max=1024)
    return tuple({0: batch} for _ in args)
