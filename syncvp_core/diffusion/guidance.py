"""Cross-modality guidance: which modalities' context a training clip (or a prediction) is given.

:class:`Mode` is the one spelling of the guidance modes across the project: its value (``"full"``,
``"rgb_only"``, ``"depth_only"``) is what the Predictor returns, the node publishes and evaluation calls a
sensor scenario; its :attr:`~Mode.code` (0, 1, 2) is what batches in tensors. ``NONE`` exists for the node
only (no modality present: nothing to predict from). Training draws one mode per clip from an explicit
categorical distribution (default 50/25/25, the paper's mixture; a dropped modality keeps its aligned
target and only its context is zeroed: docs/design-notes.md, "Guidance modes").
"""
from __future__ import annotations

from enum import Enum

import torch
from torch import Tensor


class Mode(str, Enum):
    """A guidance mode; compares equal to its value (``Mode.FULL == "full"``), so JSON and parameters keep
    plain strings."""

    FULL = "full"
    RGB_ONLY = "rgb_only"
    DEPTH_ONLY = "depth_only"
    NONE = "none"  # the node's mode when neither sensor is usable; never given to the model

    def __str__(self) -> str:
        return self.value

    @property
    def code(self) -> int:
        """The integer that batches: index into the (full, rgb_only, depth_only) tables."""
        if self is Mode.NONE:
            raise ValueError("mode 'none' has no model code: nothing to condition on")
        return GUIDED.index(self)

    @property
    def needs(self) -> tuple[bool, bool]:
        """(colour context used, depth context used)."""
        return self in (Mode.FULL, Mode.RGB_ONLY), self in (Mode.FULL, Mode.DEPTH_ONLY)

    @classmethod
    def of(cls, rgb_present: bool, depth_present: bool) -> Mode:
        """The mode for the modalities at hand (NONE when neither)."""
        if rgb_present:
            return cls.FULL if depth_present else cls.RGB_ONLY
        return cls.DEPTH_ONLY if depth_present else cls.NONE


GUIDED = (Mode.FULL, Mode.RGB_ONLY, Mode.DEPTH_ONLY)  # the modes the model is trained in, in code order

# (rgb present, depth present) for each mode code.
_PRESENCE = torch.tensor([[float(r), float(d)] for r, d in (m.needs for m in GUIDED)])


def sample_modes(batch: int, probs: tuple[float, float, float], generator: torch.Generator | None = None,
                 device=None) -> Tensor:
    """(B,) long tensor of modes drawn i.i.d. from ``probs`` = (full, rgb_only, depth_only)."""
    p = torch.tensor(probs, dtype=torch.float64)
    return torch.multinomial(p, batch, replacement=True, generator=generator).to(device)


def presence(modes: Tensor) -> Tensor:
    """(B,) modes -> (B, 2) float flags (rgb, depth)."""
    return _PRESENCE.to(modes.device)[modes]
