"""The in-memory RGB-D frame that every reader (bags, folders, simulator) yields and every writer takes."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RGBDFrame:
    """One synchronised colour + depth frame.

    ``rgb`` uint8 (H, W, 3) RGB; ``depth`` float32 (H, W) metres along the optical axis, NaN = invalid,
    registered to the colour image; ``K`` the 3x3 colour camera matrix for this (H, W), or None if unknown.
    """

    stamp_ns: int
    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray | None = None
    depth_stamp_ns: int | None = None  # None = same as stamp_ns
    frame_id: str = "camera_color_optical_frame"
    extra: dict = field(default_factory=dict)  # e.g. the simulator's camera pose

    def __post_init__(self) -> None:
        if self.depth_stamp_ns is None:
            self.depth_stamp_ns = self.stamp_ns

    @property
    def size(self) -> tuple[int, int]:
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)
