"""Small configurations for tests and smoke runs (importable by every test suite and by users' CI)."""
from __future__ import annotations

from .config import ModelConfig, apply_overrides, from_dict, load_model_config


def micro_config(**overrides) -> ModelConfig:
    """A very small but complete SyncVP config: 16x16 frames, 2 context -> 4-frame chunks, 8x8 latent.

    Keyword overrides use dotted keys, e.g. ``micro_config(**{"fusion.kind": "full"})``; values are YAML.
    """
    base = load_model_config("tiny").to_dict()
    base.update(resolution=[16, 16], chunk_frames=4, context_frames=2, name="micro")
    base["autoencoder"].update(channels=8, channel_mult=[1, 2], num_res_blocks=1)
    base["unet"].update(channels=16, channel_mult=[1, 2], attention_levels=[1], num_heads=2, emb_mult=2)
    base["fusion"].update(num_heads=2)
    base["sampler"].update(steps=3)
    data = apply_overrides(base, [f"{k}={v}" for k, v in overrides.items()])
    return from_dict(ModelConfig, data)


def sliding_frames(n: int, h: int, w: int, rate_hz: float = 10.0, seed: int = 0, drop=(),
                   t0_ns: int = 1_700_000_000_000_000_000) -> list:
    """``n`` synthetic RGB-D frames (:class:`~syncvp_core.data.frames.RGBDFrame`) of a random texture sliding
    right by 1 px per frame over a depth ramp (3 invalid pixels), stamped at ``rate_hz``; frame indices in
    ``drop`` are left out (recording gaps)."""
    import numpy as np

    from .data.frames import RGBDFrame, intrinsics_matrix

    rng = np.random.default_rng(seed)
    tex = rng.integers(0, 256, (h, w + n + 4, 3), dtype=np.uint8)
    out = []
    for i in range(n):
        if i in drop:
            continue
        rgb = np.ascontiguousarray(tex[:, n - i:n - i + w])
        depth = np.linspace(0.8, 3.0, w, dtype=np.float32)[None].repeat(h, 0) + 0.01 * i
        depth[0, :3] = np.nan
        out.append(RGBDFrame(t0_ns + int(i * 1e9 / rate_hz), rgb, depth, intrinsics_matrix(30, 30, w / 2, h / 2)))
    return out


def load_bench(name: str):
    """Import ``bench/<name>.py`` of a source checkout as a module (the bench scripts are not a package; they
    import each other, so ``bench/`` goes on ``sys.path``)."""
    import importlib.util
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parent.parent / "bench"
    if not (bench / f"{name}.py").is_file():
        raise FileNotFoundError(f"{bench / name}.py: the bench scripts live in a source checkout")
    if str(bench) not in sys.path:
        sys.path.insert(0, str(bench))
    spec = importlib.util.spec_from_file_location(name, bench / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
