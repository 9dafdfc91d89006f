"""One simulated sequence: plan the ego motion, build the scene around it, move the camera and the movers
frame by frame and render colour + depth."""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .config import T0_NS, SimConfig, SimError, SimSequence
from .mjcf import SceneBuilder
from .motion import STYLES, Polyline, Trajectory, camera_rotation, drive, rot_to_quat, yaw_quat
from .profiles import PROFILES, profile_drive
from .render import MujocoRGBDRenderer, mujoco_module
from .street import build_street
from .yard import build_yard

# Bump when a change alters what a seed renders: make-mix renders sequences of an older version again.
# 2: a walker beside the path rounds its corners (no more one-frame jumps of metres after a pan).
SIM_VERSION = 2
SUBSTEPS = 10  # integration steps per frame
FLIP = np.diag([1.0, -1.0, -1.0])  # MuJoCo camera axes (x right, y up, z back) -> optical


@dataclass
class MotionPlan:
    scene: str
    traj: Trajectory          # at the integration step, with look-ahead beyond the last frame
    path: Polyline            # the ego path (plus straight road behind the start) the scene is laid along
    idx: np.ndarray           # integration step of each frame
    ego_s: np.ndarray         # arc length of each frame
    cam_height: tuple[float, float]
    dt_frame: float
    round_corners: float = 0.0  # Profile.round_corners (0 for the scenes' own drive)


def _pick_scene(cfg: SimConfig, rng: np.random.Generator) -> str:
    if cfg.scene != "mixed":
        return cfg.scene
    if cfg.motion == "auto":
        return "street" if rng.random() < 0.6 else "yard"
    scenes = PROFILES[cfg.motion].scenes
    return scenes[int(rng.integers(len(scenes)))]


def _path_along(traj: Trajectory, back: float) -> Polyline:
    """The trajectory as a polyline with ``back`` metres of straight road prepended (standstill and turns
    on the spot add no length, so their duplicate points are dropped)."""
    pre = np.linspace(-back, 0, 31)[:-1]
    px = np.concatenate([pre, traj.x])
    py = np.concatenate([np.zeros_like(pre), traj.y])
    pyaw = np.concatenate([np.zeros_like(pre), traj.yaw])
    seg = np.hypot(np.diff(px), np.diff(py))
    keep = np.concatenate([[True], seg > 1e-6])
    px, py, pyaw = px[keep], py[keep], pyaw[keep]
    s = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(px), np.diff(py)))]) - back
    return Polyline(np.stack([px, py], -1), pyaw, s)


def plan_motion(cfg: SimConfig, rng: np.random.Generator) -> MotionPlan:
    """The ego motion of a sequence (the first draws of the sequence's generator)."""
    scene = _pick_scene(cfg, rng)
    dt_frame = 1.0 / cfg.rate_hz
    duration = (cfg.frames - 1) * dt_frame
    # Plan with look-ahead so the road/scene exists beyond the last frame.
    ahead_s = 12.0 if scene == "street" else 15.0
    dt = dt_frame / SUBSTEPS
    round_corners = 0.0
    if cfg.motion == "auto":
        traj = Trajectory(*drive(rng, STYLES[scene], duration + ahead_s, dt))
        cam_height = STYLES[scene]["cam_height"]
    else:
        traj = profile_drive(rng, cfg.motion, duration + ahead_s, dt)
        cam_height, round_corners = PROFILES[cfg.motion].cam_height, PROFILES[cfg.motion].round_corners
    path = _path_along(traj, 30.0 if scene == "street" else 6.0)
    idx = np.arange(cfg.frames) * SUBSTEPS
    ego_s = np.concatenate([[0.0], np.cumsum(traj.v[:-1] * dt_frame / SUBSTEPS)])[idx]  # not * dt: keeps the rounding
    return MotionPlan(scene, traj, path, idx, ego_s, cam_height, dt_frame, round_corners)


def _mean_normal(path: Polyline, s: float, window: float) -> np.ndarray:
    """The path's left normal averaged over arc length ``s +- window / 2`` (straight beyond its ends)."""
    ss = np.concatenate([[path.s[0] - window], path.s, [path.s[-1] + window]])
    yaw = np.concatenate([path.yaw[:1], path.yaw, path.yaw[-1:]])
    n = np.stack([-np.sin(yaw), np.cos(yaw)], -1)
    cum = np.concatenate([np.zeros((1, 2)), np.cumsum(0.5 * (n[1:] + n[:-1]) * np.diff(ss)[:, None], 0)])
    ends = (s - window / 2, s + window / 2)
    return np.array([np.diff(np.interp(ends, ss, cum[:, j]))[0] for j in (0, 1)]) / window


def _sideways(plan: MotionPlan, k: int, heading: float, lane_offset: float) -> np.ndarray:
    """The camera's offset from the path point at frame k (``heading``: the path's there).

    A walker turns on the spot and in turns of a metre's radius; the path copies them (a kink where it
    turned standing), and a point a lane's width beside it would swing through metres in a frame. A
    walker rounds such corners instead: the offset follows the path's normal averaged over
    ``round_corners`` times its length, so it moves at most 2 / round_corners metres per metre walked, the
    camera at most 1 + 2 / round_corners times the walker's speed, and not at all while it turns standing."""
    window = plan.round_corners * abs(lane_offset)
    if window == 0.0:  # a vehicle keeps its lane exactly
        return np.array([-math.sin(heading), math.cos(heading)]) * lane_offset
    return _mean_normal(plan.path, plan.ego_s[k], window) * lane_offset


@dataclass
class _Rig:
    """The camera on the vehicle: mounting height and pitch, speed-dependent bob."""

    height: float
    pitch0: float
    bob_phase: float
    bob_freq: float

    @classmethod
    def draw(cls, rng: np.random.Generator, cam_height: tuple[float, float]) -> _Rig:
        return cls(rng.uniform(*cam_height), math.radians(rng.uniform(-4, 2)), rng.uniform(0, 2 * math.pi),
                   rng.uniform(1.0, 2.5))

    def pose(self, plan: MotionPlan, k: int, lane_offset: float) -> tuple[np.ndarray, np.ndarray]:
        """World-from-MuJoCo-camera rotation and position at frame k."""
        tr, i, t = plan.traj, plan.idx[k], k * plan.dt_frame
        (p,), (hd,) = plan.path.at([plan.ego_s[k]])
        xy = p + _sideways(plan, k, hd, lane_offset)
        bob = 0.01 * tr.v[i] ** 0.5 * math.sin(2 * math.pi * self.bob_freq * t + self.bob_phase)
        pitch = self.pitch0 - 0.006 * tr.acc[i] + bob * 0.5
        roll = float(np.clip(0.004 * tr.v[i] * tr.w[i], -0.05, 0.05))
        z = self.height + bob
        if tr.offsets is not None:
            pitch, roll, z = pitch + tr.offsets.pitch[i], roll + tr.offsets.roll[i], z + tr.offsets.lift[i]
        R = camera_rotation(tr.camera_yaw(i, hd), pitch, roll)
        return R, np.array([xy[0], xy[1], z])


def _place_movers(data, mover_ids: list[int], movers: list[dict], path: Polyline, t: float) -> None:
    for mid, tr in zip(mover_ids, movers):
        if tr["kind"] == "static":
            data.mocap_pos[mid] = (*tr["xy"], 0.0)
            data.mocap_quat[mid] = yaw_quat(tr["yaw"])
            continue
        (q,), (qyaw,) = path.at([tr["s0"] + tr["ds"] * t])
        c = q + np.array([-math.sin(qyaw), math.cos(qyaw)]) * tr["offset"]
        data.mocap_pos[mid] = (c[0], c[1], 0.0)
        data.mocap_quat[mid] = yaw_quat(qyaw + (math.pi if tr["reverse"] else 0.0))


@dataclass
class _Setup:
    """What a sequence draws before rendering: ego motion, scene (MJCF text), camera rig."""

    plan: MotionPlan
    scene: SceneBuilder
    info: dict[str, Any]
    xml: str
    lane_offset: float  # of the ego camera (its lane)
    fog: bool
    rig: _Rig


def _set_up(cfg: SimConfig, seed: int) -> _Setup:
    """The draws of sequence ``seed`` in their order; no MuJoCo needed yet."""
    from .world import world_xml

    rng = np.random.default_rng(seed)
    plan = plan_motion(cfg, rng)
    sc = SceneBuilder(rng)
    info: dict[str, Any] = {"scene": plan.scene}
    lane_offset = 0.0
    if plan.scene == "street":
        lane_offset = build_street(sc, plan.path, plan.ego_s, plan.traj.v[plan.idx], info)
    else:
        build_yard(sc, plan.path, plan.ego_s, info)
    xml, fog = world_xml(sc, cfg, plan.scene, info)
    return _Setup(plan, sc, info, xml, lane_offset, fog, _Rig.draw(rng, plan.cam_height))


def _compile(xml: str, seed: int):
    try:
        return mujoco_module().MjModel.from_xml_string(xml)
    except Exception as e:  # a bug in the generator, not the user's input
        raise SimError(f"scene generation produced an invalid model (seed {seed}): {e}") from e


def _optical_pose(R: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Camera-to-world 4x4 in the optical convention from the MuJoCo camera's rotation and position."""
    T = np.eye(4)
    T[:3, :3] = R @ FLIP
    T[:3, 3] = pos
    return T


def _stamps(cfg: SimConfig, which: list[int]) -> np.ndarray:
    return T0_NS + np.round(np.asarray(which) * 1e9 / cfg.rate_hz).astype(np.int64)


def camera_track(cfg: SimConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Poses and stamps of every frame of sequence ``seed``, as :func:`simulate_sequence` renders them, without
    building or rendering the MuJoCo model (milliseconds: for checks of the camera motion)."""
    st = _set_up(cfg, seed)
    which = list(range(cfg.frames))
    return np.stack([_optical_pose(*st.rig.pose(st.plan, k, st.lane_offset)) for k in which]), _stamps(cfg, which)


def max_camera_speed(poses: np.ndarray, stamps_ns: np.ndarray) -> float:
    """The fastest frame-to-frame camera translation of a sequence, m/s (0 for a single frame)."""
    if len(poses) < 2:
        return 0.0
    step = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    return float(np.max(step / (np.diff(stamps_ns) * 1e-9)))


def _motion_info(cfg: SimConfig, plan: MotionPlan, which: list[int]) -> dict[str, Any]:
    tr = plan.traj
    out: dict[str, Any] = {"motion": cfg.motion}
    if tr.labels is not None:
        end_s = (cfg.frames - 1) * plan.dt_frame
        out["frame_segments"] = [str(tr.labels[plan.idx[k]]) for k in which]
        out["bumps"] = [e for e in tr.events or [] if e["t_s"] <= end_s]
    # Kinematics read backwards is kinematics (pitch from acceleration keeps its sign), except a bump's
    # damped ring, which backwards grows.
    out["time_reversible"] = not out.get("bumps")
    return out


def _summary(cfg: SimConfig, plan: MotionPlan, rig: _Rig, depths: np.ndarray, seed: int) -> dict[str, Any]:
    valid = np.isfinite(depths)
    dv = depths[valid]
    v = plan.traj.v[plan.idx]
    return dict(
        seed=int(seed), config=asdict(cfg), frames=cfg.frames, rate_hz=cfg.rate_hz,
        mean_speed_mps=round(float(np.mean(v)), 3), distance_m=round(float(plan.ego_s[-1] - plan.ego_s[0]), 3),
        camera_height_m=round(float(rig.height), 3),
        depth_valid_fraction=round(float(valid.mean()), 4),
        depth_percentiles_m={str(q): round(float(np.percentile(dv, q)), 3) for q in (1, 50, 99)} if dv.size else {},
    )


def simulate_sequence(cfg: SimConfig, seed: int, only_frames: list[int] | None = None) -> SimSequence:
    """Render one sequence. Deterministic in (cfg, seed). ``only_frames``: render just these frame indices
    of the sequence (same scene and motion; e.g. to check a committed recording quickly)."""
    mujoco = mujoco_module()
    st = _set_up(cfg, seed)
    plan, info = st.plan, st.info
    model = _compile(st.xml, seed)
    data = mujoco.MjData(model)
    ego_id = model.body("ego").mocapid[0]
    mover_ids = [model.body(f"mv{i}").mocapid[0] for i in range(len(st.scene.movers))]
    which = list(range(cfg.frames)) if only_frames is None else [int(k) for k in only_frames]
    if any(not 0 <= k < cfg.frames for k in which):
        raise SimError(f"only_frames {which} outside 0..{cfg.frames - 1}")
    rgbs = np.empty((len(which), cfg.height, cfg.width, 3), np.uint8)
    depths = np.empty((len(which), cfg.height, cfg.width), np.float32)
    poses = np.empty((len(which), 4, 4), np.float64)
    renderer = MujocoRGBDRenderer(model, cfg.height, cfg.width, fog=st.fog)
    try:
        for out_i, k in enumerate(which):
            R, pos = st.rig.pose(plan, k, st.lane_offset)
            data.mocap_pos[ego_id] = pos
            data.mocap_quat[ego_id] = rot_to_quat(R)
            _place_movers(data, mover_ids, st.scene.movers, plan.path, k * plan.dt_frame)
            mujoco.mj_kinematics(model, data)
            mujoco.mj_camlight(model, data)
            rgbs[out_i], depths[out_i] = renderer.render(data)
            if cfg.max_depth_m is not None:
                depths[out_i][depths[out_i] > cfg.max_depth_m] = np.nan
            poses[out_i] = _optical_pose(R, pos)
    finally:
        renderer.close()
    info.update(_summary(cfg, plan, st.rig, depths, seed), **_motion_info(cfg, plan, which),
                gl_backend=os.environ.get("MUJOCO_GL", ""), gl_renderer=renderer.gl_renderer,
                mujoco_version=mujoco.__version__, sim_version=SIM_VERSION)
    return SimSequence(rgbs, depths, cfg.K, poses, _stamps(cfg, which), info)
