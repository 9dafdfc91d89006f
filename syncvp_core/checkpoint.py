"""Checkpoints: safetensors weights + a JSON sidecar, never pickle.

``<name>.safetensors`` holds the tensors; the same metadata is stored in the safetensors header (key
``syncvp``) and in ``<name>.json`` beside it for people and tools: the resolved model config, the
training stage and step, a data fingerprint and the code version. Loading checks the file before
trusting it and raises :class:`CheckpointError` naming the file and what is wrong.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .config import ConfigError, ModelConfig, model_config_from_json
from .fileio import atomic_write_bytes

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "assets" / "default" / "syncvp_tiny.safetensors"


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt or does not fit the model."""


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write weights and metadata atomically (a crash never leaves a half-written checkpoint)."""
    from safetensors.torch import save

    path = Path(path)
    meta = {"code_version": __version__, **meta}
    text = json.dumps(meta, sort_keys=True, default=str)
    blob = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata={"syncvp": text})
    atomic_write_bytes(path, blob)
    atomic_write_bytes(sidecar_path(path), json.dumps(meta, indent=2, sort_keys=True, default=str).encode())
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a safetensors checkpoint. Only safetensors is accepted (no pickle, ever)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: only .safetensors checkpoints are loaded (pickle files are unsafe)")
    data = path.read_bytes()
    try:
        tensors = load(data)
    except (SafetensorError, Exception) as e:  # the Rust parser raises several error types
        raise CheckpointError(f"{path}: not a valid safetensors file ({e})") from e
    meta: dict[str, Any] = {}
    header_len = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8 : 8 + header_len])
        text = header.get("__metadata__", {}).get("syncvp")
        if text:
            meta = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable metadata ({e})") from e
    if not meta and sidecar_path(path).exists():
        meta = json.loads(sidecar_path(path).read_text())
    meta["sha256"] = hashlib.sha256(data).hexdigest()
    return tensors, meta


def config_from_meta(meta: dict[str, Any], path: str | Path) -> ModelConfig:
    if "config" not in meta:
        raise CheckpointError(f"{path}: no model config in the checkpoint metadata")
    cfg = meta["config"]
    try:
        return model_config_from_json(cfg if isinstance(cfg, str) else json.dumps(cfg))
    except ConfigError as e:
        raise CheckpointError(f"{path}: its config is invalid: {e}") from e


def load_into(module: nn.Module, tensors: dict[str, torch.Tensor], path: str | Path, prefix: str = "",
              allow_missing: tuple[str, ...] = ()) -> None:
    """Strictly load ``tensors`` (keys under ``prefix``) into ``module``; every mismatch is reported.

    ``allow_missing``: key substrings that may be absent (e.g. new STCA weights when a joint model is
    initialised from two single-modality checkpoints).
    """
    own = module.state_dict()
    sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = [k for k in own if k not in sub and not any(a in k for a in allow_missing)]
    unexpected = [k for k in sub if k not in own]
    shapes = [f"{k}: checkpoint {tuple(sub[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sub if k in own and sub[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        lines = [f"{path}: checkpoint does not fit the model"]
        if missing:
            lines.append(f"  missing {len(missing)} key(s), e.g. {missing[:5]}")
        if unexpected:
            lines.append(f"  unexpected {len(unexpected)} key(s), e.g. {unexpected[:5]}")
        if shapes:
            lines.append(f"  {len(shapes)} shape mismatch(es), e.g. {shapes[:5]}")
        raise CheckpointError("\n".join(lines))
    for k, v in sub.items():
        if not torch.isfinite(v).all() and v.is_floating_point():
            raise CheckpointError(f"{path}: tensor {prefix}{k} contains NaN or inf")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in sub.items()}, strict=False)
