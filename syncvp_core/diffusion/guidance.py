"""Cross-modality guidance: which modalities' context a training clip (or a prediction) is given.

Modes are integers so that they batch: 0 = full (both contexts), 1 = RGB-only (depth context dropped),
2 = depth-only (RGB context dropped). Training draws one mode per clip from an explicit categorical
distribution (default 50/25/25, the paper's mixture; the official code's independent per-modality
dropout gives 49/30/21 and misaligns the dropped modality's target window, notes §4.2 — here a dropped
modality keeps its aligned target and only its context is zeroed).
"""
from __future__ import annotations

import torch
from torch import Tensor

FULL, RGB_ONLY, DEPTH_ONLY = 0, 1, 2
MODE_NAMES = ("full", "rgb_only", "depth_only")

# (rgb present, depth present) for each mode.
_PRESENCE = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]])


def sample_modes(batch: int, probs: tuple[float, float, float], generator: torch.Generator | None = None,
                 device=None) -> Tensor:
    """(B,) long tensor of modes drawn i.i.d. from ``probs`` = (full, rgb_only, depth_only)."""
    p = torch.tensor(probs, dtype=torch.float64)
    return torch.multinomial(p, batch, replacement=True, generator=generator).to(device)


def presence(modes: Tensor) -> Tensor:
    """(B,) modes -> (B, 2) float flags (rgb, depth)."""
    return _PRESENCE.to(modes.device)[modes]


def mode_of(rgb_present: bool, depth_present: bool) -> int:
    if rgb_present and depth_present:
        return FULL
    if rgb_present:
        return RGB_ONLY
    if depth_present:
        return DEPTH_ONLY
    raise ValueError("at least one modality must be present")
