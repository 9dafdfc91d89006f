"""Cityscapes video sequences with depth from stereo disparity (for training the ``paper`` config).

Expected layout (the official Cityscapes packages ``leftImg8bit_sequence_trainvaltest``,
``disparity_sequence_trainvaltest`` and ``camera_trainvaltest``)::

    ROOT/leftImg8bit_sequence/{split}/{city}/{city}_{seq:06d}_{frame:06d}_leftImg8bit.png
    ROOT/disparity_sequence/{split}/{city}/{city}_{seq:06d}_{frame:06d}_disparity.png
    ROOT/camera/{split}/{city}/{city}_{seq:06d}_{frame:06d}_camera.json   (one per snippet is enough)

Depth follows the Cityscapes convention (cityscapesScripts' README): a disparity PNG value ``p > 0`` is
``d = (p - 1) / 256`` pixels, ``p = 0`` is invalid, and ``depth = baseline * fx / d`` metres with
``baseline`` and ``fx`` from the snippet's camera JSON (``extrinsic.baseline``, ``intrinsic.fx``).

Unlike the original SyncVP loader (a sorted glob cut into blocks of 30, docs/design-notes.md §6.1), colour and
disparity are matched by their (city, sequence, frame) key and sequences are split wherever frame numbers
are not consecutive; a missing disparity file is an error naming it. The frame rate is 17 Hz.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .frames import RGBDFrame, intrinsics_matrix

RATE_HZ = 17.0
_NAME = re.compile(r"^(?P<city>.+)_(?P<seq>\d{6})_(?P<frame>\d{6})_leftImg8bit\.png$")


class CityscapesError(ValueError):
    """The Cityscapes folder is incomplete or malformed; the message names the file."""


def disparity_to_depth(p: np.ndarray, baseline_m: float, fx: float) -> np.ndarray:
    """Cityscapes disparity PNG values (uint16) -> float32 depth in metres (NaN = invalid)."""
    p = np.asarray(p).astype(np.float64)
    d = (p - 1.0) / 256.0
    out = np.full(p.shape, np.nan, np.float32)
    ok = (p > 0) & (d > 0)
    out[ok] = (baseline_m * fx / d[ok]).astype(np.float32)
    return out


@dataclass
class CityscapesSequence:
    name: str
    split: str
    frames_list: list[tuple[int, Path, Path]]  # (frame number, colour, disparity)
    camera: Path

    rate_hz: float = RATE_HZ

    def __len__(self) -> int:
        return len(self.frames_list)

    def calibration(self) -> tuple[np.ndarray, float]:
        try:
            cam = json.loads(self.camera.read_text())
            fx, fy = float(cam["intrinsic"]["fx"]), float(cam["intrinsic"]["fy"])
            u0, v0 = float(cam["intrinsic"]["u0"]), float(cam["intrinsic"]["v0"])
            baseline = float(cam["extrinsic"]["baseline"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CityscapesError(f"{self.camera}: cannot read intrinsic fx/fy/u0/v0 and extrinsic baseline: "
                                  f"{e!r}") from e
        return intrinsics_matrix(fx, fy, u0, v0), baseline

    def source(self) -> dict[str, Any]:
        return {"kind": "cityscapes", "split": self.split, "camera": str(self.camera),
                "first": str(self.frames_list[0][1])}

    def frames(self) -> Iterator[RGBDFrame]:
        from PIL import Image

        K, baseline = self.calibration()
        for n, cf, df in self.frames_list:
            with Image.open(cf) as im:
                rgb = np.array(im.convert("RGB"), dtype=np.uint8)
            with Image.open(df) as im:
                disp = np.array(im)
            if disp.shape != rgb.shape[:2]:
                raise CityscapesError(f"{df}: disparity {disp.shape} and colour {rgb.shape[:2]} differ in size")
            stamp = int(round(n * 1e9 / RATE_HZ))
            yield RGBDFrame(stamp, rgb, disparity_to_depth(disp, baseline, K[0, 0]), K,
                            frame_id="cityscapes_left_camera")


def cityscapes_sequences(root: str | Path, split: str = "train") -> list[CityscapesSequence]:
    """Index the sequences of one split (no image is read)."""
    root = Path(root)
    img_root = root / "leftImg8bit_sequence" / split
    if not img_root.is_dir():
        raise CityscapesError(f"{img_root}: not found (expected ROOT/leftImg8bit_sequence/{split}/<city>/...)")
    groups: dict[tuple[str, str], list[tuple[int, Path]]] = {}
    for f in sorted(img_root.glob("*/*_leftImg8bit.png")):
        m = _NAME.match(f.name)
        if not m:
            raise CityscapesError(f"{f}: name does not match <city>_<seq>_<frame>_leftImg8bit.png")
        groups.setdefault((m["city"], m["seq"]), []).append((int(m["frame"]), f))
    if not groups:
        raise CityscapesError(f"{img_root}: no *_leftImg8bit.png files")
    out: list[CityscapesSequence] = []
    for (city, seq), items in sorted(groups.items()):
        items.sort()
        cam_dir = root / "camera" / split / city
        cams = sorted(cam_dir.glob(f"{city}_{seq}_*_camera.json")) or sorted(cam_dir.glob("*_camera.json"))
        if not cams:
            raise CityscapesError(f"{cam_dir}: no camera JSON for {city}_{seq} (needed for baseline and fx)")
        run: list[tuple[int, Path, Path]] = []
        runs: list[list[tuple[int, Path, Path]]] = []
        for n, f in items:
            disp = root / "disparity_sequence" / split / city / f.name.replace("_leftImg8bit.png", "_disparity.png")
            if not disp.exists():
                raise CityscapesError(f"{disp}: missing disparity for {f}")
            if run and n != run[-1][0] + 1:
                runs.append(run)
                run = []
            run.append((n, f, disp))
        runs.append(run)
        for r in runs:
            out.append(CityscapesSequence(f"{city}_{seq}_{r[0][0]:06d}", split, r, cams[0]))
    return out
