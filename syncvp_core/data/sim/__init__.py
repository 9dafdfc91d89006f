"""RGB-D video simulator: a camera moving like a vehicle, a mobile robot or a handheld camera through
procedural scenes.

Rendering is MuJoCo's OpenGL renderer, headless: ``MUJOCO_GL=egl`` (default) or ``osmesa``; see
:func:`select_gl_backend`. Every sequence is reproducible from its seed (same machine and GL driver: same
bytes; other GL drivers may differ in the last bit of a few pixels).

Each sequence holds, per frame:

* ``rgb`` uint8 (N, H, W, 3);
* ``depth`` float32 (N, H, W): **z-depth in metres** (distance along the optical axis, REP 118), from the
  depth buffer with MuJoCo's reversed-Z near/far mapping undone exactly (:func:`depth_from_buffer`); the
  sky (no surface before the far plane) and anything beyond ``max_depth_m`` is NaN (no return);
* ``K`` (3, 3): pinhole intrinsics, square pixels, principal point at the image centre
  (``cx = W/2 - 0.5`` with pixel centres at integer coordinates);
* ``poses`` (N, 4, 4): camera-to-world transforms in the **optical** convention (x right, y down,
  z forward), world z up, metres;
* ``stamps_ns`` (N,) int64 at ``rate_hz`` (default 10 Hz).

Scenes (``scene``): ``street`` (road with lane markings, kerbs, buildings, poles, trees, parked and moving
cars, pedestrians), ``yard`` (a warehouse yard: shelves, crates, pillars, walls, people and carts moving)
or ``mixed``. Textures, colours, sun direction and intensity, haze and sky vary per sequence.

Camera motion (``motion``): ``auto`` drives like the scene's vehicle (street: 4-13 m/s, camera 1.2-1.7 m;
yard: a robot at 0.4-2 m/s, camera 0.3-0.9 m); ``handheld``, ``robot`` and ``car`` are the profiles of
:mod:`.profiles` (stops, bumps, turns on the spot, handheld shake).

Modules: :mod:`.config` (configuration, sequence type), :mod:`.render` (headless GL, colour + depth),
:mod:`.motion` and :mod:`.profiles` (ego motion), :mod:`.mjcf`, :mod:`.street`, :mod:`.yard`, :mod:`.world`
(scene text), :mod:`.sequence` (one sequence), :mod:`.writer` (many, on disk), :mod:`.preview` (pictures).

Output of :func:`generate` (``syncvp sim``): ``OUT/seq_NNNNN.npz`` (the arrays above) and
``OUT/seq_NNNNN.json`` (seed, config, scene and motion statistics) per sequence, plus ``OUT/sim_meta.json``.
"""
from .config import MOTIONS, SCENES, T0_NS, SimConfig, SimError, SimSequence
from .motion import STYLES, Polyline, Trajectory, camera_rotation, drive, rot_to_quat, yaw_quat
from .preview import colorize_depth, preview_grid
from .profiles import PROFILES, Profile, profile_drive
from .render import MujocoRGBDRenderer, depth_from_buffer, select_gl_backend
from .sequence import MotionPlan, plan_motion, simulate_sequence
from .writer import generate, list_sequences, quick_frames, sequence_seeds

__all__ = [
    "MOTIONS", "PROFILES", "SCENES", "STYLES", "T0_NS", "MotionPlan", "MujocoRGBDRenderer", "Polyline", "Profile",
    "SimConfig", "SimError", "SimSequence", "Trajectory", "camera_rotation", "colorize_depth", "depth_from_buffer",
    "drive", "generate", "list_sequences", "plan_motion", "preview_grid", "profile_drive", "quick_frames",
    "rot_to_quat", "select_gl_backend", "sequence_seeds", "simulate_sequence", "yaw_quat",
]
