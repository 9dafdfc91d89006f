"""``manifest.json``: what an export directory holds and where it came from.

Written last (atomically) by the exporter, so a directory with a manifest is a complete export. Readers
(the onnxruntime/TensorRT backends, ``syncvp build-engine``) check the manifest against the model they are
asked to serve and refuse a directory exported from another config or other weights.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ModelConfig, model_config_from_json
from ..fileio import atomic_write_text

FORMAT = "syncvp-onnx/1"
MANIFEST = "manifest.json"


class ExportError(RuntimeError):
    """An export cannot be produced or an export directory cannot be used; the message says why."""


@dataclass
class Manifest:
    path: Path  # the export directory
    data: dict[str, Any]

    @property
    def opset(self) -> int:
        return int(self.data["opset"])

    @property
    def batch(self) -> int:
        return int(self.data["batch"])

    @property
    def dynamic_batch(self) -> bool:
        return bool(self.data["dynamic_batch"])

    @property
    def weights_sha256(self) -> str:
        return self.data["source"]["weights_sha256"]

    @property
    def graphs(self) -> dict[str, dict[str, Any]]:
        return self.data["graphs"]

    def config(self) -> ModelConfig:
        return model_config_from_json(json.dumps(self.data["config"]))

    def onnx_path(self, graph: str) -> Path:
        return self.path / self.graphs[graph]["file"]


def write_manifest(out_dir: Path, data: dict[str, Any]) -> Manifest:
    atomic_write_text(out_dir / MANIFEST, json.dumps(data, indent=2, sort_keys=True))
    return Manifest(out_dir, data)


def read_manifest(export_dir: str | Path) -> Manifest:
    export_dir = Path(export_dir)
    path = export_dir / MANIFEST
    if not path.exists():
        raise ExportError(f"{export_dir}: no {MANIFEST}; this is not a complete `syncvp export` directory")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ExportError(f"{path}: unreadable manifest ({e})") from e
    if data.get("format") != FORMAT:
        raise ExportError(f"{path}: format {data.get('format')!r}, expected {FORMAT!r}")
    m = Manifest(export_dir, data)
    for name, g in m.graphs.items():
        if not (export_dir / g["file"]).exists():
            raise ExportError(f"{export_dir}: graph {name} file {g['file']} is missing")
    return m


def check_matches(manifest: Manifest, cfg: ModelConfig, weights_sha256: str | None) -> None:
    """Refuse an export made from another model config or other weights."""
    diffs = config_diff(manifest.config().to_dict(), cfg.to_dict())
    if diffs:
        raise ExportError(f"{manifest.path}: exported from a different model config ({'; '.join(diffs[:6])}); "
                          "re-export it with `syncvp export`")
    if weights_sha256 is not None and manifest.weights_sha256 != weights_sha256:
        raise ExportError(f"{manifest.path}: exported from other weights (weights sha256 "
                          f"{manifest.weights_sha256[:12]}..., model {weights_sha256[:12]}...); re-export it")


def config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Human-readable differences between two config dicts: ``key: a_value != b_value``."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, f"{prefix}{k}.")
        elif _norm(va) != _norm(vb):
            out.append(f"{prefix}{k}: {va!r} != {vb!r}")
    return out


def _norm(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v
