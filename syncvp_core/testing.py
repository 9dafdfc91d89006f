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
