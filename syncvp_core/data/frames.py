"""The in-memory RGB-D frame: what every reader (bags, folders, simulator) yields and every writer takes, what
evaluation windows are made of, and what the node's context buffer holds. The one frame type."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RGBDFrame:
    """One synchronised colour + depth frame.

    ``rgb`` uint8 (H, W, 3) RGB; ``depth`` float32 (H, W) metres along the optical axis, NaN = invalid,
    registered to the colour image; ``K`` the 3x3 colour camera matrix for this (H, W), or None if unknown.
    Readers and writers always fill both images; the node's context may hold a frame with one modality
    only (None for the other) while a sensor is out, and a window plan holds stamps only.
    """

    stamp_ns: int
    rgb: np.ndarray | None = None
    depth: np.ndarray | None = None
    K: np.ndarray | None = None
    depth_stamp_ns: int | None = None  # None = same as stamp_ns
    frame_id: str = "camera_color_optical_frame"
    extra: dict = field(default_factory=dict)  # e.g. the simulator's camera pose

    def __post_init__(self) -> None:
        if self.depth_stamp_ns is None:
            self.depth_stamp_ns = self.stamp_ns

    @property
    def size(self) -> tuple[int, int]:
        a = self.rgb if self.rgb is not None else self.depth
        return int(a.shape[0]), int(a.shape[1])

    def has(self, need_rgb: bool, need_depth: bool) -> bool:
        return (self.rgb is not None or not need_rgb) and (self.depth is not None or not need_depth)


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)
