"""Exports made on the fly by the onnxruntime/TensorRT backends when no export directory is given.

They live under ``$SYNCVP_CACHE_DIR`` (default ``$XDG_CACHE_HOME/syncvp`` or ``~/.cache/syncvp``) in
``onnx/<digest>/``, where the digest covers the weights, the config, the opset, the batch mode and the torch
and code versions: a model that changes gets a new export, an unchanged one reuses the old. The export is
written to a temporary directory and renamed into place, so a half-written export is never picked up.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .. import __version__
from ..models.syncvp import SyncVPModel
from .manifest import ExportError, Manifest, read_manifest
from .onnx_export import DEFAULT_OPSET, export_model, weights_sha256

log = logging.getLogger(__name__)


def cache_root() -> Path:
    env = os.environ.get("SYNCVP_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "syncvp"


def export_dir_for(model: SyncVPModel, root: str | Path | None = None, opset: int = DEFAULT_OPSET,
                   dynamic_batch: bool = True) -> Path:
    """Where :func:`ensure_export` keeps the export of ``model`` (whether or not it exists yet)."""
    root = Path(root) if root else cache_root()
    ident = "|".join([weights_sha256(model), model.cfg.to_json(), str(opset), str(dynamic_batch), torch.__version__,
                      __version__])
    return root / "onnx" / hashlib.sha256(ident.encode()).hexdigest()[:20]


def ensure_export(model: SyncVPModel, root: str | Path | None = None, opset: int = DEFAULT_OPSET,
                  dynamic_batch: bool = True, source: dict | None = None) -> Manifest:
    """The export directory for ``model``, exporting it first if this exact model was never exported."""
    final = export_dir_for(model, root, opset, dynamic_batch)
    if final.exists():
        try:
            return read_manifest(final)
        except ExportError as e:
            log.warning("cached export %s is unusable (%s); exporting again", final, e)
            shutil.rmtree(final, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=final.name + ".tmp"))
    log.info("exporting the model to ONNX in %s (first use of these weights)", final)
    try:
        export_model(model, tmp, opset=opset, batch=1, dynamic_batch=dynamic_batch, source=source,
                     progress=log.info)
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "manifest.json").exists():  # lost a race only if the winner finished
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return read_manifest(final)
