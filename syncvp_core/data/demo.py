"""The demo bags committed under ``data/demo/`` and how they are made (``syncvp data make-demo``).

* ``sim_street/``: a simulated drive (MuJoCo, :mod:`.sim`), 160x120, 80 frames at 10 Hz, RealSense layout
  (rgb8 + 16UC1 mm + camera_info), zstd-compressed mcap. Regenerating it gives the same pixels on the same
  OpenGL renderer (``sim_street.json`` records which); ``test_data_demo.py`` re-renders a few frames and
  compares them with the committed bag.
* ``tum_fr1_xyz/``: the first 60 frames (2 s at 30 Hz) of the TUM RGB-D ``freiburg1_xyz`` sequence from
  ``shared/data/real-rgbd`` (160x120), same layout. CC BY 4.0: ``tum_fr1_xyz.ATTRIBUTION.md`` must travel
  with every copy.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .sim import SimConfig

SIM_NAME = "sim_street"
SIM_SEED = 11
SIM_CONFIG = dict(height=120, width=160, frames=80, rate_hz=10.0, scene="street", fovy_deg=60.0)

TUM_NAME = "tum_fr1_xyz"
TUM_SOURCE = "tum_freiburg1_xyz"
TUM_FRAMES = 60

TUM_ATTRIBUTION = """# Attribution: tum_fr1_xyz (demo bag)

The bag `tum_fr1_xyz/` contains data from the **TUM RGB-D SLAM Dataset and Benchmark**, sequence
`rgbd_dataset_freiburg1_xyz`, © Computer Vision Group, Technical University of Munich, licensed under
**CC BY 4.0** (https://creativecommons.org/licenses/by/4.0/).

> Contains data from the TUM RGB-D SLAM Dataset and Benchmark, sequence
> rgbd_dataset_freiburg1_xyz, © Computer Vision Group, Technical University of Munich,
> licensed under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). Modified
> (downscaled, depth converted to millimetres, re-associated) as described below.
>
> J. Sturm, N. Engelhard, F. Endres, W. Burgard and D. Cremers, "A Benchmark for the
> Evaluation of RGB-D SLAM Systems", Proc. of the International Conference on Intelligent
> Robot Systems (IROS), 2012.

Dataset page: https://cvg.cit.tum.de/data/datasets/rgbd-dataset

## Changes
1. From the project's `real-rgbd/tum_freiburg1_xyz` copy (see its `source.md`): colour and depth
   associated by timestamp (|dt| < 20 ms), colour area-downscaled and depth nearest-neighbour downscaled
   from 640x480 to 160x120, depth converted from 1/5000 m to millimetres.
2. Here: the first 60 associated frames written as a ROS 2 bag (mcap, zstd) in the RealSense layout:
   `/camera/color/image_raw` (rgb8), `/camera/aligned_depth_to_color/image_raw` (16UC1 mm, 0 = invalid),
   both `camera_info` topics with the 160x120 intrinsics (fx 129.325, fy 129.125, cx 79.275, cy 63.45),
   header stamps = the original TUM timestamps, frame_id `camera_color_optical_frame`.
   Regenerate with `syncvp data make-demo --out data/demo --which tum`.
"""


def sim_config() -> SimConfig:
    return SimConfig(**SIM_CONFIG)


def make_sim_demo(out: str | Path, overwrite: bool = True) -> Path:
    from .bag_writer import write_rgbd_bag
    from .sim import simulate_sequence

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seq = simulate_sequence(sim_config(), SIM_SEED)
    bag = out / SIM_NAME
    write_rgbd_bag(bag, seq.frames(), compression="zstd", overwrite=overwrite)
    meta = {"seed": SIM_SEED, "config": SIM_CONFIG, "frames": len(seq),
            "gl_renderer": seq.meta.get("gl_renderer"), "mujoco_version": seq.meta.get("mujoco_version"),
            "scene": {k: v for k, v in seq.meta.items() if k not in ("config", "seed")},
            "command": "syncvp data make-demo --out data/demo --which sim"}
    (out / f"{SIM_NAME}.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    return bag


def make_tum_demo(out: str | Path, source_root: str | Path, overwrite: bool = True) -> Path:
    from .folder import folder_to_bag

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    src = Path(source_root) / TUM_SOURCE
    bag = out / TUM_NAME
    folder_to_bag(src, bag, depth_encoding="16UC1", compression="zstd", overwrite=overwrite, stop=TUM_FRAMES,
                  progress=False)
    (out / f"{TUM_NAME}.ATTRIBUTION.md").write_text(TUM_ATTRIBUTION)
    if (src / "source.md").exists():
        shutil.copy(src / "source.md", out / f"{TUM_NAME}.source.md")
    return bag
