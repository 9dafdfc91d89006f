"""On-disk cache of serialized TensorRT engines, keyed by everything an engine depends on.

An engine is only valid for the exact ONNX graph, TensorRT version, GPU model (name and compute capability),
precision and optimisation-profile shapes it was built with. Each engine file ``<graph>.<precision>.engine``
has a key sidecar ``<graph>.<precision>.engine.key.json`` holding that key and the engine file's sha256.

Loading is conservative: a missing sidecar, a key that differs from the wanted one, an engine whose bytes do
not hash to the recorded sha256 (truncated or corrupt), or an engine the runtime fails to deserialize is
rebuilt, with one log line saying why; it is never used. Writes are atomic (temp file + ``os.replace``), the
engine first and the sidecar last, so a crash leaves either the old pair, or a new engine with a stale
sidecar (rebuilt next time), never a sidecar vouching for a half-written engine.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..checkpoint import file_sha256
from ..fileio import atomic_write_bytes

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class DeviceInfo:
    name: str  # e.g. "NVIDIA H100 80GB HBM3"
    compute_capability: str  # e.g. "9.0"


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    # input name -> (min, opt, max) shapes of the optimisation profile; min == opt == max for static graphs.
    shapes: tuple[tuple[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]], ...]

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shapes"] = {name: [list(s) for s in mom] for name, mom in self.shapes}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EngineKey:
        shapes = tuple((name, tuple(tuple(int(x) for x in s) for s in mom)) for name, mom in d["shapes"].items())
        return cls(d["onnx_sha256"], d["tensorrt_version"], d["gpu_name"], d["compute_capability"],
                   d["precision"], shapes)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def differences(self, other: EngineKey) -> list[str]:
        a, b = self.to_dict(), other.to_dict()
        return [f"{k}: {b[k]!r} -> {a[k]!r}" for k in a if a[k] != b[k]]


def make_key(onnx_path: str | Path, tensorrt_version: str, device: DeviceInfo, precision: str,
             shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]) -> EngineKey:
    return EngineKey(file_sha256(onnx_path), tensorrt_version, device.name, device.compute_capability, precision,
                     tuple(sorted((n, tuple(tuple(s) for s in mom)) for n, mom in shapes.items())))


class EngineCache:
    """Engines for one export directory. ``deserialize(bytes) -> engine`` may return None or raise on a bad
    blob (TensorRT's ``Runtime.deserialize_cuda_engine`` returns None); both mean "rebuild"."""

    def __init__(self, root: str | Path, deserialize: Callable[[bytes], Any]):
        self.root = Path(root)
        self.deserialize = deserialize

    def engine_path(self, graph: str, precision: str) -> Path:
        return self.root / f"{graph}.{precision}.engine"

    @staticmethod
    def key_path(engine_path: Path) -> Path:
        return engine_path.with_name(engine_path.name + ".key.json")

    def load(self, graph: str, key: EngineKey) -> Any | None:
        """The cached engine for ``key``, or None (with a log line saying why) when it must be rebuilt."""
        path = self.engine_path(graph, key.precision)
        if not path.exists():
            log.info("engine cache: no engine for %s at %s; building it", graph, path)
            return None
        why = self._invalid_reason(path, key)
        if why:
            log.warning("engine cache: %s: %s; rebuilding (the old engine is not used)", path, why)
            return None
        try:
            engine = self.deserialize(path.read_bytes())
        except Exception as e:  # noqa: BLE001 - any failure to deserialize means rebuild
            log.warning("engine cache: %s failed to deserialize (%s: %s); rebuilding", path, type(e).__name__, e)
            return None
        if engine is None:
            log.warning("engine cache: %s failed to deserialize (runtime returned None); rebuilding", path)
            return None
        log.info("engine cache: using %s", path)
        return engine

    def _invalid_reason(self, path: Path, key: EngineKey) -> str | None:
        kp = self.key_path(path)
        if not kp.exists():
            return f"key sidecar {kp.name} is missing"
        try:
            side = json.loads(kp.read_text())
            stored = EngineKey.from_dict(side["key"])
            recorded = side["engine_sha256"]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            return f"key sidecar {kp.name} is unreadable ({type(e).__name__}: {e})"
        if stored != key:
            return "engine key does not match (" + "; ".join(key.differences(stored)) + ")"
        if file_sha256(path) != recorded:
            return "engine file does not match the sha256 in its key sidecar (truncated or corrupt)"
        return None

    def store(self, graph: str, key: EngineKey, blob: bytes) -> Path:
        path = self.engine_path(graph, key.precision)
        atomic_write_bytes(path, blob)
        side = {"key": key.to_dict(), "digest": key.digest(), "engine_sha256": hashlib.sha256(blob).hexdigest(),
                "bytes": len(blob)}
        atomic_write_bytes(self.key_path(path), json.dumps(side, indent=2, sort_keys=True).encode())
        return path

    def get_or_build(self, graph: str, key: EngineKey, build: Callable[[], bytes]) -> Any:
        """A usable engine: the cached one if valid, else ``build()`` (serialized bytes), stored and loaded."""
        engine = self.load(graph, key)
        if engine is not None:
            return engine
        blob = build()
        path = self.store(graph, key, blob)
        engine = self.deserialize(blob)
        if engine is None:
            raise RuntimeError(f"a freshly built engine {path} failed to deserialize")
        log.info("engine cache: built and stored %s (%.1f MB)", path, len(blob) / 1e6)
        return engine
