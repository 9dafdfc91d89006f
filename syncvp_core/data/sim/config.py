"""Simulator configuration, the sequence it produces (arrays + metadata, npz/json on disk), its error type."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..frames import RGBDFrame, intrinsics_matrix
from .profiles import PROFILES

SCENES = ("street", "yard", "mixed")
# "auto": the scene's own vehicle-like driving (street: car, yard: robot), as before profiles existed;
# otherwise a camera-motion profile (:mod:`.profiles`) with stops, bumps and, for handheld, pans and shake.
MOTIONS = ("auto", *PROFILES)
T0_NS = 1_700_000_000_000_000_000  # a fixed start stamp: output does not depend on the clock


class SimError(RuntimeError):
    """The simulator cannot run (no headless OpenGL, bad configuration)."""


@dataclass
class SimConfig:
    height: int = 128
    width: int = 128
    frames: int = 30
    rate_hz: float = 10.0
    scene: str = "mixed"
    fovy_deg: float = 60.0  # vertical field of view
    near_m: float = 0.05
    far_m: float = 400.0
    max_depth_m: float | None = None  # sensor range: farther depth becomes NaN (None = up to far_m)
    antialias: bool = True  # 4x multisampling (colour edges); depth is unaffected
    shadows: bool = True
    motion: str = "auto"

    def __post_init__(self) -> None:
        if self.scene not in SCENES:
            raise SimError(f"scene must be one of {SCENES}, got {self.scene!r}")
        if self.motion not in MOTIONS:
            raise SimError(f"motion must be one of {MOTIONS}, got {self.motion!r}")
        if self.height < 8 or self.width < 8 or self.frames < 1 or self.rate_hz <= 0:
            raise SimError(f"bad simulator size/frames/rate: {self.height}x{self.width}, {self.frames} "
                           f"frames at {self.rate_hz} Hz")
        if not 0 < self.near_m < self.far_m:
            raise SimError(f"need 0 < near_m < far_m, got {self.near_m}, {self.far_m}")

    @property
    def K(self) -> np.ndarray:
        fy = (self.height / 2.0) / math.tan(math.radians(self.fovy_deg) / 2.0)
        return intrinsics_matrix(fy, fy, self.width / 2.0 - 0.5, self.height / 2.0 - 0.5)


@dataclass
class SimSequence:
    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray
    poses: np.ndarray
    stamps_ns: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.rgb.shape[0])

    def frames(self) -> list[RGBDFrame]:
        return [RGBDFrame(int(self.stamps_ns[i]), self.rgb[i], self.depth[i], self.K.copy(),
                          extra={"pose": self.poses[i]}) for i in range(len(self))]

    def save(self, path: str | Path) -> None:
        """Write ``path.npz`` then ``path.json``; both appear whole (temporary file + rename), and the json
        last, so a json beside its npz means a finished sequence (what a resumed generation skips)."""
        path = Path(path)
        tmp = path.with_name("." + path.name + ".partial.npz")  # hidden: never listed as a sequence
        np.savez_compressed(tmp, rgb=self.rgb, depth=self.depth, K=self.K, poses=self.poses,
                            stamps_ns=self.stamps_ns)
        os.replace(tmp, path.with_suffix(".npz"))
        tmp_json = path.with_name("." + path.name + ".partial.json")
        tmp_json.write_text(json.dumps(self.meta, indent=1, sort_keys=True))
        os.replace(tmp_json, path.with_suffix(".json"))

    @classmethod
    def load(cls, path: str | Path) -> SimSequence:
        path = Path(path)
        with np.load(path.with_suffix(".npz")) as z:
            arrays = {k: z[k] for k in ("rgb", "depth", "K", "poses", "stamps_ns")}
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        return cls(**arrays, meta=meta)

