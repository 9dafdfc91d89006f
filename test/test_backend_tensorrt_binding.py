"""The TensorRT backend's tensor binding, run against a stand-in engine on CPU memory.

The stand-in execution context reads its inputs from, and writes its output to, the raw addresses the backend
binds with ``set_tensor_address`` (host addresses here, device addresses on a GPU), so this checks dtype
conversion, contiguity, shape setting and that outputs land in the returned torch tensors. The real runtime
(CUDA streams, engine memory) can only be checked on a GPU (docs/deployment.md).
"""
import ctypes
import types

import numpy as np
import pytest
import torch

from syncvp_core.backends.errors import BackendError
from syncvp_core.backends.tensorrt_backend import bind_and_execute

TRT = types.SimpleNamespace(float32="f32", float16="f16", int32="i32", int8="i8", bool="b", int64="i64",
                            bfloat16="bf16")
NP = {"f32": (ctypes.c_float, np.float32), "i64": (ctypes.c_int64, np.int64)}


def _view(ptr, shape, dt):
    ct, npt = NP[dt]
    n = int(np.prod(shape))
    return np.ctypeslib.as_array((ct * n).from_address(ptr)).view(npt).reshape(shape)


class Engine:
    dtypes = {"x": "f32", "t": "i64", "y": "f32"}

    def get_tensor_dtype(self, name):
        return self.dtypes[name]


class Context:
    def __init__(self, max_batch=4, ok=True):
        self.shapes, self.addr, self.max_batch, self.ok, self.streams = {}, {}, max_batch, ok, []

    def set_input_shape(self, name, shape):
        if shape[0] > self.max_batch:
            return False
        self.shapes[name] = shape
        return True

    def set_tensor_address(self, name, ptr):
        self.addr[name] = ptr

    def get_tensor_shape(self, name):
        return self.shapes["x"]

    def execute_async_v3(self, stream):
        self.streams.append(stream)
        x = _view(self.addr["x"], self.shapes["x"], "f32")
        t = _view(self.addr["t"], self.shapes["t"], "i64")
        y = _view(self.addr["y"], self.shapes["x"], "f32")
        y[...] = 2 * x + t.reshape(-1, *([1] * (x.ndim - 1)))
        return self.ok


def test_inputs_are_converted_bound_and_outputs_filled():
    x = torch.arange(24, dtype=torch.float64).reshape(2, 4, 3).transpose(1, 2)  # float64, non-contiguous
    t = torch.tensor([5, 7], dtype=torch.int32)
    ctx = Context()
    out = bind_and_execute(TRT, Engine(), ctx, ["x", "t"], ["y"], {"x": x, "t": t}, "cpu", 1234, "g")
    y = out["y"]
    assert y.dtype == torch.float32 and y.shape == (2, 3, 4) and ctx.streams == [1234]
    expected = 2 * x.float() + t.float().reshape(2, 1, 1)
    assert torch.equal(y, expected)
    assert ctx.shapes == {"x": (2, 3, 4), "t": (2,)}


def test_missing_input_profile_violation_and_failed_execution_are_errors():
    x, t = torch.zeros(2, 3), torch.zeros(2, dtype=torch.int64)
    with pytest.raises(BackendError, match="'t' was not provided"):
        bind_and_execute(TRT, Engine(), Context(), ["x", "t"], ["y"], {"x": x}, "cpu", 0, "g")
    with pytest.raises(BackendError, match="outside the engine's profile"):
        bind_and_execute(TRT, Engine(), Context(max_batch=1), ["x", "t"], ["y"], {"x": x, "t": t}, "cpu", 0, "g")
    with pytest.raises(BackendError, match="execution of g failed"):
        bind_and_execute(TRT, Engine(), Context(ok=False), ["x", "t"], ["y"], {"x": x, "t": t}, "cpu", 0, "g")
