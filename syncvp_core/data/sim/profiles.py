"""Camera-motion profiles: how a handheld camera, a wheeled robot and a car move.

A profile drives a sequence of segments, each drawn by weight:

* ``cruise``: a new target speed, nearly straight;
* ``turn``: slower, with a yaw rate;
* ``stop``: brake to standstill, then hold still (speed, yaw rate and every camera offset exactly 0);
* ``pan``: stand and rotate in place (a robot turning on the spot, a person looking around; handheld
  also changes its tilt here).

A sequence starts part-way through a segment of any kind (also standing, about to move off).

Speed and yaw rate follow their targets with bounded acceleration. While moving, **bumps** arrive at
random per metre travelled (speed bumps and potholes for a car, floor joints and cables for a robot, an
uneven step for a person); each pitches and lifts the camera with a damped oscillation that ends after
``BUMP_S``. A handheld camera also shakes (a few slow sinusoids) and bobs with the gait while walking.

Everything is drawn from the generator passed in, so a sequence is reproducible from its seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .motion import CameraOffsets, Trajectory

SEGMENTS = ("cruise", "turn", "stop", "pan")
BUMP_S = 0.6  # a bump's oscillation is cut to exactly zero after this long (stops hold still)
BUMP_DECAY_S = 0.15
BUMP_HZ = 2.5


@dataclass(frozen=True)
class Profile:
    scenes: tuple[str, ...]                # scenes it belongs in (picked per sequence under scene "mixed")
    speed: tuple[float, float]             # cruise speed, m/s
    accel: float                           # m/s^2, speeding up and braking
    yaw_rate: tuple[float, float]          # turn and pan rate, rad/s
    yaw_acc: float                         # rad/s^2
    cam_height: tuple[float, float]        # m above the ground
    weights: dict[str, float]              # relative frequency of each segment kind
    segment_s: tuple[float, float]         # duration of a cruise/turn/pan segment, s
    stop_s: tuple[float, float]            # how long a stop holds still, s
    bump_per_m: float                      # bumps per metre travelled
    bump_pitch_deg: tuple[float, float]    # peak pitch of a bump
    bump_lift_m: float                     # peak height change of a bump
    shake_deg: float = 0.0                 # handheld tremor, peak, while walking at full speed
    step_hz: tuple[float, float] = (0.0, 0.0)  # gait frequency (handheld)
    step_lift_m: float = 0.0               # gait bob, peak
    tilt_deg: tuple[float, float] = (0.0, 0.0)  # range of the look-up/down angle chosen in pans
    # A camera kept sideways off the path (a street lane) rounds the path's corners over this many times
    # that offset (sequence._sideways); 0: it copies them exactly, as a vehicle keeps its lane.
    round_corners: float = 0.0


PROFILES: dict[str, Profile] = {
    "handheld": Profile(
        scenes=("yard", "street"), speed=(0.4, 1.6), accel=1.5, yaw_rate=(0.3, 0.9), yaw_acc=1.5,
        cam_height=(1.2, 1.7), weights={"cruise": 3, "turn": 2, "stop": 1.2, "pan": 2},
        segment_s=(1.0, 3.5), stop_s=(0.8, 2.5), bump_per_m=0.15, bump_pitch_deg=(0.5, 1.5),
        bump_lift_m=0.01, shake_deg=0.6, step_hz=(1.6, 2.1), step_lift_m=0.02, tilt_deg=(-12.0, 6.0),
        round_corners=3.0),
    "robot": Profile(
        scenes=("yard",), speed=(0.3, 1.5), accel=1.0, yaw_rate=(0.3, 1.0), yaw_acc=1.2,
        cam_height=(0.25, 0.7), weights={"cruise": 3, "turn": 2, "stop": 1.5, "pan": 1.5},
        segment_s=(1.5, 4.0), stop_s=(0.8, 3.0), bump_per_m=0.3, bump_pitch_deg=(0.8, 2.5),
        bump_lift_m=0.008),
    "car": Profile(
        scenes=("street",), speed=(3.0, 15.0), accel=3.0, yaw_rate=(0.1, 0.35), yaw_acc=0.3,
        cam_height=(1.2, 1.7), weights={"cruise": 4, "turn": 2, "stop": 2, "pan": 0},
        segment_s=(2.0, 6.0), stop_s=(1.0, 4.0), bump_per_m=0.02, bump_pitch_deg=(0.7, 2.0),
        bump_lift_m=0.04),
}


@dataclass
class _State:
    kind: str
    t_end: float
    target_v: float
    target_w: float
    holding: bool = False  # stop: reached standstill, now holding


class _Segments:
    """The segment state machine of one profile."""

    def __init__(self, rng: np.random.Generator, prof: Profile) -> None:
        self.rng, self.prof = rng, prof
        kinds = [k for k in SEGMENTS if prof.weights.get(k, 0) > 0]
        p = np.array([prof.weights[k] for k in kinds], dtype=np.float64)
        self.kinds, self.p = kinds, p / p.sum()

    def first(self) -> tuple[_State, float]:
        """The state a sequence starts in (part-way through a segment, any kind) and the starting speed."""
        s = self.next(0.0)
        if s.kind == "stop":  # standing (at a traffic light, say) and about to move off
            return _State("stop", self.rng.uniform(*self.prof.stop_s) * self.rng.uniform(0.2, 1.0), 0.0, 0.0,
                          holding=True), 0.0
        s.t_end = self.rng.uniform(0.2, 1.0) * s.t_end
        return s, s.target_v

    def next(self, t: float, prev: str = "") -> _State:
        rng, prof = self.rng, self.prof
        p = self.p * np.array([k != "stop" for k in self.kinds]) if prev == "stop" else self.p  # move off
        kind = str(rng.choice(self.kinds, p=p / p.sum()))
        dur = rng.uniform(*prof.segment_s)
        side = float(rng.choice([-1.0, 1.0]))
        if kind == "cruise":
            return _State(kind, t + dur, rng.uniform(*prof.speed), rng.normal(0, prof.yaw_rate[0] * 0.1))
        if kind == "turn":
            return _State(kind, t + dur, rng.uniform(*prof.speed) * 0.6, side * rng.uniform(*prof.yaw_rate))
        if kind == "pan":
            return _State(kind, t + dur, 0.0, side * rng.uniform(*prof.yaw_rate))
        return _State(kind, math.inf, 0.0, 0.0)  # stop: the hold time starts at standstill

    def update(self, s: _State, t: float, v: float, w: float) -> _State:
        if s.kind == "stop" and not s.holding and v == 0.0 and w == 0.0:
            return _State("stop", t + self.rng.uniform(*self.prof.stop_s), 0.0, 0.0, holding=True)
        return self.next(t, s.kind) if t >= s.t_end else s


def _integrate(rng: np.random.Generator, prof: Profile, n: int, dt: float) -> tuple[np.ndarray, list[str]]:
    """Speed and yaw rate under the segment script -> per-step (x, y, yaw, v, w, accel), labels."""
    seg = _Segments(rng, prof)
    state, v = seg.first()
    w, x, y, yaw = 0.0, 0.0, 0.0, 0.0
    out = np.zeros((n, 6))
    labels: list[str] = []
    for i in range(n):
        t = i * dt
        state = seg.update(state, t, v, w)
        # A pan turns on the spot: first come to a standstill, then rotate.
        target_w = state.target_w if (state.kind != "pan" or v == 0.0) else 0.0
        a = float(np.clip(state.target_v - v, -prof.accel * dt, prof.accel * dt))
        v = max(0.0, v + a)
        w += float(np.clip(target_w - w, -prof.yaw_acc * dt, prof.yaw_acc * dt))
        out[i] = (x, y, yaw, v, w, a / dt)
        labels.append("stop" if state.holding else ("brake" if state.kind == "stop" else state.kind))
        x += v * math.cos(yaw) * dt
        y += v * math.sin(yaw) * dt
        yaw += w * dt
    return out, labels


def _bumps(rng: np.random.Generator, prof: Profile, v: np.ndarray, dt: float,
           off: CameraOffsets) -> list[dict]:
    """Add bumps (Poisson in distance travelled) to the pitch and lift offsets; returns the events."""
    events = []
    k = int(round(BUMP_S / dt))
    tau = np.arange(k) * dt
    shape = np.exp(-tau / BUMP_DECAY_S) * np.sin(2 * math.pi * BUMP_HZ * tau)
    for i in np.nonzero(rng.random(len(v)) < prof.bump_per_m * v * dt)[0]:
        amp = math.radians(rng.uniform(*prof.bump_pitch_deg)) * float(rng.choice([-1.0, 1.0]))
        end = min(len(v), i + k)
        off.pitch[i:end] += amp * shape[: end - i]
        off.lift[i:end] += prof.bump_lift_m * np.abs(shape[: end - i])
        events.append({"t_s": round(float(i * dt), 3), "pitch_deg": round(math.degrees(amp), 3)})
    return events


def _handheld(rng: np.random.Generator, prof: Profile, v: np.ndarray, labels: list[str], dt: float,
              off: CameraOffsets) -> None:
    """Tremor and gait bob scaled by walking speed (zero when standing), tilt chosen while panning."""
    n = len(v)
    t = np.arange(n) * dt
    walk = np.clip(v / prof.speed[1], 0.0, 1.0)
    shake = math.radians(prof.shake_deg)
    for arr in (off.yaw, off.pitch, off.roll):
        for _ in range(3):
            f, ph = rng.uniform(0.3, 2.5), rng.uniform(0, 2 * math.pi)
            arr += walk * shake / 3 * np.sin(2 * math.pi * f * t + ph)
    step_hz, ph = rng.uniform(*prof.step_hz), rng.uniform(0, 2 * math.pi)
    gait = np.sin(math.pi * step_hz * t + ph)
    off.lift += walk * prof.step_lift_m * (np.abs(gait) - 2 / math.pi)
    off.roll += walk * math.radians(0.5) * gait
    tilt, target = 0.0, 0.0
    rate = math.radians(15.0) * dt  # a person tilts the camera at up to 15 deg/s
    for i, lab in enumerate(labels):
        if lab == "pan":
            if i == 0 or labels[i - 1] != "pan":
                target = math.radians(rng.uniform(*prof.tilt_deg))
            tilt += float(np.clip(target - tilt, -rate, rate))
        off.pitch[i] += tilt


def profile_drive(rng: np.random.Generator, name: str, duration_s: float, dt: float) -> Trajectory:
    """The ego trajectory of profile ``name`` at step ``dt`` over ``duration_s`` (plus its first step)."""
    prof = PROFILES[name]
    n = int(math.ceil(duration_s / dt)) + 1
    out, labels = _integrate(rng, prof, n, dt)
    x, y, yaw, v, w, acc = out.T
    off = CameraOffsets.zeros(n)
    events = _bumps(rng, prof, v, dt, off)
    if prof.shake_deg > 0:
        _handheld(rng, prof, v, labels, dt, off)
    return Trajectory(x, y, yaw, v, w, acc, off, np.array(labels), events)
