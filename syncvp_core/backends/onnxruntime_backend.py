"""onnxruntime backend: the exported graphs on the CPU or CUDA execution provider.

CPU: torch tensors are handed to onnxruntime as numpy views (no copy for contiguous float32 CPU tensors)
and the outputs come back as numpy arrays wrapped by ``torch.from_numpy``.
CUDA: inputs and outputs stay on the GPU and are bound through ``io_binding`` to torch CUDA tensors, so no
host round trip happens between DDIM steps. onnxruntime runs on its own CUDA stream, so the current torch
stream is synchronised before each run (the inputs were produced on it).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..export.deps import HINTS, require
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
from ..triplane import Triplane
from ._batching import run_batched
from .errors import BackendError

_NP = {torch.float32: np.float32, torch.int64: np.int64, torch.float16: np.float16}


def cuda_provider_available() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, manifest: Manifest, device: str = "cpu", threads: int | None = None):
        ort = require("onnxruntime", "the onnxruntime backend")
        self.device = device
        self.manifest = manifest
        self.cfg = manifest.config()
        names = graph_names(self.cfg)
        self._cuda = torch.device(device).type == "cuda"
        self._device_id = torch.device(device).index or 0
        if self._cuda:
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendError(
                    f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (available: "
                    f"{ort.get_available_providers()}); install the GPU build: pip install onnxruntime-gpu "
                    f"(instead of onnxruntime), or use device cpu. {HINTS['onnxruntime']}")
            providers = [("CUDAExecutionProvider", {"device_id": self._device_id}), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = int(threads or torch.get_num_threads())
        so.inter_op_num_threads = 1
        self.sessions = {g: ort.InferenceSession(str(manifest.onnx_path(g)), so, providers=providers)
                         for g in names}
        used = self.sessions[DENOISER].get_providers()
        if self._cuda and used[0] != "CUDAExecutionProvider":
            # onnxruntime silently falls back to the CPU when the CUDA libraries fail to load.
            raise BackendError(f"onnxruntime could not start the CUDA provider (session uses {used}); check the "
                               "CUDA/cuDNN versions onnxruntime-gpu needs")
        self.provider = used[0]
        self._outputs = {g: [o.name for o in s.get_outputs()] for g, s in self.sessions.items()}
        self._out_shapes = {g: {o["name"]: o["shape"] for o in manifest.graphs[g]["outputs"]} for g in names}
        self._static_batch = None if manifest.dynamic_batch else manifest.batch

    # -- the Backend interface ---------------------------------------------------------------------------

    @torch.inference_mode()
    def encode(self, modality: str, x: Tensor, anchor: Tensor | None = None) -> Triplane:
        return latent_from_outputs(self._run(encoder_graph(self.cfg, modality, x.shape[2]), encoder_inputs(x, anchor)))

    @torch.inference_mode()
    def decode(self, modality: str, z: Triplane, anchor: Tensor | None = None) -> Tensor:
        return decoder_output(self._run(f"decoder_{modality}", decoder_inputs(z, anchor)))

    @torch.inference_mode()
    def denoise(self, x_r, x_d, t, ctx_r, ctx_d, present):
        return eps_from_outputs(self._run(DENOISER, step_inputs(x_r, x_d, t, ctx_r, ctx_d, present)))

    # -- execution ---------------------------------------------------------------------------------------

    def _run(self, graph: str, feeds: dict[str, Tensor]) -> dict[str, Tensor]:
        one = self._run_cuda if self._cuda else self._run_cpu
        return run_batched(lambda f: one(graph, f), feeds, self._static_batch, graph)

    def _run_cpu(self, graph: str, feeds: dict[str, Tensor]) -> dict[str, Tensor]:
        arrays = {k: v.detach().cpu().contiguous().numpy() for k, v in feeds.items()}
        outs = self.sessions[graph].run(self._outputs[graph], arrays)
        return {k: torch.from_numpy(v).to(self.device) for k, v in zip(self._outputs[graph], outs)}

    def _run_cuda(self, graph: str, feeds: dict[str, Tensor]) -> dict[str, Tensor]:
        sess = self.sessions[graph]
        io = sess.io_binding()
        keep = []
        for k, v in feeds.items():
            v = v.detach().to(self.device).contiguous()
            keep.append(v)
            io.bind_input(k, "cuda", self._device_id, _NP[v.dtype], tuple(v.shape), v.data_ptr())
        b = next(iter(feeds.values())).shape[0]
        outs = {}
        for k in self._outputs[graph]:
            shape = (b, *self._out_shapes[graph][k][1:])
            out = torch.empty(shape, dtype=torch.float32, device=self.device)
            io.bind_output(k, "cuda", self._device_id, np.float32, shape, out.data_ptr())
            outs[k] = out
        torch.cuda.current_stream(self.device).synchronize()  # inputs were written on torch's stream
        sess.run_with_iobinding(io)
        io.synchronize_outputs()
        del keep
        return outs
