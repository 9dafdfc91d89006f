"""TensorRT backend: one engine per exported graph, I/O bound to torch CUDA tensors.

Engines come from the :class:`~syncvp_core.export.engine_cache.EngineCache` next to the export (built on
first use, or offline with ``syncvp build-engine``). Each call binds the input tensors' device pointers and
freshly allocated torch output tensors with ``set_tensor_address`` and enqueues the engine with
``execute_async_v3`` on the current torch CUDA stream, so the engine is stream-ordered with the torch DDIM
arithmetic around it and nothing is copied to the host.

This module cannot be exercised on the development machines (no GPU, no TensorRT); what is verified there
and what only a GPU can verify is listed in docs/deployment.md.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..export.deps import require
from ..export.engine_cache import EngineCache
from ..export.graphs import (
    DENOISER,
    decoder_inputs,
    decoder_output,
    encoder_graph,
    encoder_inputs,
    eps_from_outputs,
    graph_names,
    latent_from_outputs,
    step_inputs,
)
from ..export.manifest import Manifest
from ..export.trt_build import current_device_info, engine_for
from ..triplane import Triplane
from ._batching import run_batched
from .errors import BackendError

log = logging.getLogger(__name__)


def _torch_dtype(trt: Any, dt: Any) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.int8: torch.int8,
             trt.bool: torch.bool}
    for name, tdt in (("int64", torch.int64), ("bfloat16", torch.bfloat16)):
        if hasattr(trt, name):
            table[getattr(trt, name)] = tdt
    if dt not in table:
        raise BackendError(f"TensorRT tensor type {dt} has no torch equivalent here")
    return table[dt]


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, manifest: Manifest, device: str = "cuda", precision: str = "fp16",
                 engine_dir: str | Path | None = None, opt_batch: int = 1, max_batch: int = 4,
                 workspace_bytes: int | None = None):
        trt = require("tensorrt", "the TensorRT backend")
        if torch.device(device).type != "cuda" or not torch.cuda.is_available():
            raise BackendError(f"the TensorRT backend needs a CUDA device, got device={device!r} "
                               f"(torch.cuda.is_available()={torch.cuda.is_available()})")
        self.trt = trt
        self.device = device
        self.precision = precision
        self.manifest = manifest
        self.cfg = manifest.config()
        index = torch.device(device).index or 0
        torch.cuda.set_device(index)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        root = Path(engine_dir) if engine_dir else manifest.path / "engines"
        cache = EngineCache(root, self._runtime.deserialize_cuda_engine)
        info = current_device_info(index)
        log.info("TensorRT %s on %s (sm %s), %s engines in %s", trt.__version__, info.name,
                 info.compute_capability, precision, root)
        self._engines: dict[str, Any] = {}
        self._contexts: dict[str, Any] = {}
        self._io: dict[str, tuple[list[str], list[str]]] = {}
        for g in graph_names(self.cfg):
            engine = engine_for(manifest, g, cache, precision, info, opt_batch, max_batch, workspace_bytes, trt)
            ctx = engine.create_execution_context()
            if ctx is None:
                raise BackendError(f"TensorRT could not create an execution context for {g}")
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            ins = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            outs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
            self._engines[g], self._contexts[g], self._io[g] = engine, ctx, (ins, outs)
        self._static_batch = None if manifest.dynamic_batch else manifest.batch

    # -- the Backend interface ---------------------------------------------------------------------------

    @torch.inference_mode()
    def encode(self, modality: str, x: Tensor, anchor: Tensor | None = None) -> Triplane:
        return latent_from_outputs(self._run(encoder_graph(self.cfg, modality, x.shape[2]), encoder_inputs(x, anchor)))

    @torch.inference_mode()
    def decode(self, modality: str, z: Triplane, anchor: Tensor | None = None) -> Tensor:
        return decoder_output(self._run(f"decoder_{modality}", decoder_inputs(z, anchor))).float()

    @torch.inference_mode()
    def denoise(self, x_r, x_d, t, ctx_r, ctx_d, present):
        eps_r, eps_d = eps_from_outputs(self._run(DENOISER, step_inputs(x_r, x_d, t, ctx_r, ctx_d, present)))
        return eps_r.map(lambda p: p.float()), eps_d.map(lambda p: p.float())

    # -- execution ---------------------------------------------------------------------------------------

    def _run(self, graph: str, feeds: dict[str, Tensor]) -> dict[str, Tensor]:
        return run_batched(lambda f: self._execute(graph, f), feeds, self._static_batch, graph)

    def _execute(self, graph: str, feeds: dict[str, Tensor]) -> dict[str, Tensor]:
        ins, outs = self._io[graph]
        stream = torch.cuda.current_stream(self.device)
        return bind_and_execute(self.trt, self._engines[graph], self._contexts[graph], ins, outs, feeds,
                                self.device, stream.cuda_stream, graph)


def bind_and_execute(trt: Any, engine: Any, ctx: Any, inputs: list[str], outputs: list[str],
                     feeds: dict[str, Tensor], device: str, stream_handle: int, graph: str = "") -> dict[str, Tensor]:
    """Bind ``feeds`` (converted to the engine's dtypes, contiguous, on ``device``) and freshly allocated output
    tensors by address, and enqueue the engine on ``stream_handle``. Returns the outputs, which are valid once
    the stream reaches this point (torch work queued later on the same stream is ordered after it)."""
    keep = []  # inputs converted here must outlive the enqueue (the caching allocator is stream-ordered)
    for name in inputs:
        if name not in feeds:
            raise BackendError(f"{graph}: engine input {name!r} was not provided")
        t = feeds[name].detach().to(device, _torch_dtype(trt, engine.get_tensor_dtype(name))).contiguous()
        keep.append(t)
        if not ctx.set_input_shape(name, tuple(t.shape)):
            raise BackendError(f"{graph}: input {name} shape {tuple(t.shape)} is outside the engine's profile")
        ctx.set_tensor_address(name, t.data_ptr())
    result = {}
    for name in outputs:
        shape = tuple(ctx.get_tensor_shape(name))
        out = torch.empty(shape, dtype=_torch_dtype(trt, engine.get_tensor_dtype(name)), device=device)
        ctx.set_tensor_address(name, out.data_ptr())
        result[name] = out
    if not ctx.execute_async_v3(stream_handle):
        raise BackendError(f"TensorRT execution of {graph} failed (see the TensorRT log)")
    del keep
    return result
