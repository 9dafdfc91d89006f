"""Ego motion: the planar path everything is laid along, the vehicle-like drive of the scenes' own styles,
and the camera orientation built from heading, pitch and roll."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def rot_to_quat(R: np.ndarray) -> np.ndarray:
    from .render import mujoco_module  # mujoco only when rendering: MUJOCO_GL must be set first

    mujoco = mujoco_module()
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(R, dtype=np.float64).reshape(9))
    return q


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


@dataclass
class Polyline:
    """A dense planar polyline with arc length, used for the ego motion, the road and the traffic."""

    xy: np.ndarray  # (M, 2)
    yaw: np.ndarray  # (M,)
    s: np.ndarray  # (M,) arc length

    def at(self, s: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        s = np.clip(np.asarray(s, dtype=np.float64), self.s[0], self.s[-1])
        x = np.interp(s, self.s, self.xy[:, 0])
        y = np.interp(s, self.s, self.xy[:, 1])
        yaw = np.interp(s, self.s, np.unwrap(self.yaw))
        return np.stack([x, y], -1), yaw

    def distance(self, pts: np.ndarray) -> np.ndarray:
        """Distance of each point (K, 2) to the polyline's vertices (dense, so close to the true one)."""
        d = np.linalg.norm(pts[:, None, :] - self.xy[None, ::2, :], axis=-1)
        return d.min(axis=1)


def drive(rng: np.random.Generator, style: dict, duration_s: float, dt: float) -> tuple[np.ndarray, ...]:
    """Integrate a vehicle-like motion: speed changes with bounded acceleration, straight stretches and
    turns. Returns per-step (x, y, yaw, speed, yaw_rate, accel)."""
    n = int(math.ceil(duration_s / dt)) + 1
    v = rng.uniform(*style["speed"])
    target_v, target_w = v, 0.0
    x = y = 0.0
    yaw = 0.0
    w = 0.0
    t_next_v = rng.uniform(1.0, 4.0)
    t_next_w = rng.uniform(*style["straight_s"])
    turning = False
    out = np.zeros((n, 6))
    for i in range(n):
        t = i * dt
        if t >= t_next_v:
            target_v = rng.uniform(*style["speed"])
            t_next_v = t + rng.uniform(1.5, 5.0)
        if t >= t_next_w:
            turning = not turning
            if turning:
                target_w = rng.choice([-1, 1]) * rng.uniform(*style["yaw_rate"])
                t_next_w = t + rng.uniform(*style["turn_s"])
            else:
                target_w = rng.normal(0, style["yaw_rate"][0] * 0.15)
                t_next_w = t + rng.uniform(*style["straight_s"])
        a = np.clip(target_v - v, -style["accel"] * dt, style["accel"] * dt)
        v = max(0.0, v + a)
        w += np.clip(target_w - w, -style["yaw_acc"] * dt, style["yaw_acc"] * dt)
        out[i] = (x, y, yaw, v, w, a / dt)
        x += v * math.cos(yaw) * dt
        y += v * math.sin(yaw) * dt
        yaw += w * dt
    return tuple(out.T)


STYLES = {
    "street": dict(speed=(4.0, 13.0), accel=2.0, yaw_rate=(0.12, 0.35), yaw_acc=0.25, straight_s=(2.5, 7.0),
                   turn_s=(1.5, 4.0), cam_height=(1.2, 1.7)),
    "yard": dict(speed=(0.4, 2.0), accel=0.6, yaw_rate=(0.2, 0.6), yaw_acc=0.6, straight_s=(2.0, 6.0),
                 turn_s=(1.0, 3.0), cam_height=(0.3, 0.9)),
}


def camera_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World-from-MuJoCo-camera rotation (camera looks along its -z, y up)."""
    f = np.array([math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch), math.sin(pitch)])
    r = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    u = np.cross(r, f)
    r, u = math.cos(roll) * r + math.sin(roll) * u, -math.sin(roll) * r + math.cos(roll) * u
    return np.stack([r, u, -f], axis=1)



@dataclass
class CameraOffsets:
    """Per-step camera motion on top of the vehicle pose, from a motion profile: bumps, handheld shake,
    gait bob and tilt (radians, metres)."""

    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    lift: np.ndarray

    @classmethod
    def zeros(cls, n: int) -> CameraOffsets:
        return cls(*(np.zeros(n) for _ in range(4)))


@dataclass
class Trajectory:
    """The ego motion at the integration step: planar pose, speed, yaw rate, acceleration; ``offsets`` and
    ``labels`` (segment kind per step) only for motion profiles (``None`` for the scenes' own drive)."""

    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    v: np.ndarray
    w: np.ndarray
    acc: np.ndarray
    offsets: CameraOffsets | None = None
    labels: np.ndarray | None = None
    events: list[dict] | None = None

    def camera_yaw(self, i: int, path_heading: float) -> float:
        # Profiles turn in place (pans), where the path's heading stands still: use the integrated yaw.
        if self.offsets is None:
            return path_heading
        return float(self.yaw[i] + self.offsets.yaw[i])
