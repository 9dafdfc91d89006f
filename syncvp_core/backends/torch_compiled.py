"""The torch backend with ``torch.compile`` and/or CUDA graphs.

* ``compile=True``: the denoiser step (flat-tensor wrapper of :mod:`syncvp_core.export.graphs`), which runs
  ``steps`` times per prediction, is compiled with ``torch.compile(dynamic=False)``: shapes are static per
  model, so it compiles once, on the first prediction (minutes on a small CPU: inductor needs a C++
  compiler there). ``compile_autoencoders=True`` compiles the four autoencoder graphs too (they run once per
  prediction each).
* ``cuda_graphs=True`` (CUDA only): the denoiser step is captured into a CUDA graph per input shape and
  replayed, removing the per-kernel launch overhead that dominates small models on a GPU. Inputs are copied
  into the graph's static buffers and outputs copied out, so callers may keep or modify them freely.
"""
from __future__ import annotations

import torch
import torch._dynamo
from torch import Tensor

from ..export.graphs import (
    DENOISER,
    decoder_inputs,
    encoder_graph,
    encoder_inputs,
    eps_from_outputs,
    graph_module,
    graph_specs,
    step_inputs,
)
from ..models.syncvp import SyncVPModel
from ..triplane import Triplane
from .errors import BackendError
from .torch_backend import TorchBackend


class CompiledTorchBackend(TorchBackend):
    def __init__(self, model: SyncVPModel, device: str = "cpu", compile: bool = True, cuda_graphs: bool = False,
                 compile_mode: str | None = None, compile_autoencoders: bool = False,
                 compile_backend: str = "inductor"):
        super().__init__(model, device)
        if cuda_graphs and torch.device(device).type != "cuda":
            raise BackendError(f"CUDA graphs need a CUDA device, got device={device!r}")
        self.name = "torch" + ("-compiled" if compile else "") + ("-cudagraphs" if cuda_graphs else "")
        self.cuda_graphs = cuda_graphs
        self._graphs: dict[str, torch.nn.Module] = {}
        if compile:
            # The denoiser graph-breaks around Triplane arithmetic (torch 2.13: 14 breaks), so dynamo compiles
            # ``run_block`` once per block index; the default limit (8) would leave the deeper blocks eager.
            cfg = torch._dynamo.config
            cfg.recompile_limit = max(cfg.recompile_limit, 64)
        for g in graph_specs(model.cfg):
            m = graph_module(self.model, g)
            wanted = compile and (g == DENOISER or compile_autoencoders)
            if wanted:
                m = torch.compile(m, backend=compile_backend, mode=compile_mode, dynamic=False)
            self._graphs[g] = m
        self._step_outputs = graph_specs(model.cfg)[DENOISER].output_names
        self._captured: dict[tuple, tuple[torch.cuda.CUDAGraph, list[Tensor], tuple[Tensor, ...]]] = {}

    @torch.inference_mode()
    def encode(self, modality: str, x: Tensor, anchor: Tensor | None = None) -> Triplane:
        args = [a.to(self.device) for a in encoder_inputs(x, anchor).values()]
        return Triplane(*self._graphs[encoder_graph(self.model.cfg, modality, x.shape[2])](*args))

    @torch.inference_mode()
    def decode(self, modality: str, z: Triplane, anchor: Tensor | None = None) -> Tensor:
        return self._graphs[f"decoder_{modality}"](*decoder_inputs(z, anchor).values())

    @torch.inference_mode()
    def denoise(self, x_r, x_d, t, ctx_r, ctx_d, present):
        args = list(step_inputs(x_r, x_d, t, ctx_r, ctx_d, present).values())
        outs = self._replay(args) if self.cuda_graphs else self._graphs[DENOISER](*args)
        return eps_from_outputs(dict(zip(self._step_outputs, outs)))

    def _replay(self, args: list[Tensor]) -> tuple[Tensor, ...]:
        key = tuple((tuple(a.shape), a.dtype) for a in args)
        if key not in self._captured:
            self._captured[key] = self._capture(args)
        graph, static_in, static_out = self._captured[key]
        for buf, a in zip(static_in, args):
            buf.copy_(a)
        graph.replay()
        return tuple(o.clone() for o in static_out)

    def _capture(self, args: list[Tensor]):
        step = self._graphs[DENOISER]
        static_in = [a.clone() for a in args]
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up off the capture stream (cuDNN/cuBLAS workspace allocation)
            for _ in range(2):
                step(*static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = step(*static_in)
        return graph, static_in, tuple(static_out)
