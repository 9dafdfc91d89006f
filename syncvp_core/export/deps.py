"""Optional dependencies of the deployment path, imported on demand with an install hint.

``onnx``/``onnxruntime`` come with the ``export`` extra; TensorRT is NVIDIA's wheel and only runs on a
machine with an NVIDIA GPU. A missing package raises :class:`MissingDependency` (an ImportError whose message
says what to install) instead of a bare traceback from deep inside the exporter.
"""
from __future__ import annotations

import importlib
from types import ModuleType

HINTS = {
    "onnx": "pip install 'syncvp_ros[export]'  (or: pip install onnx)",
    "onnxruntime": "pip install 'syncvp_ros[export]'  (or: pip install onnxruntime; onnxruntime-gpu for CUDA)",
    "tensorrt": ("install NVIDIA's TensorRT Python wheel on the GPU machine: pip install tensorrt "
                 "(see https://docs.nvidia.com/deeplearning/tensorrt/install-guide/); it needs an NVIDIA GPU "
                 "and driver"),
}


class MissingDependency(ImportError):
    """An optional package needed for the requested feature is not installed; the message says how to fix it."""


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` naming ``feature`` and the install command."""
    try:
        return importlib.import_module(module)
    except ImportError as e:  # also covers a broken install whose own imports fail
        hint = HINTS.get(module, f"pip install {module}")
        raise MissingDependency(f"{feature} needs the optional package {module!r}, which is not importable "
                                f"({e}). Install it with: {hint}") from e


def available(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
